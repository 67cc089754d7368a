"""Shared helpers for the durability, events, CLI and Studio tests (not a test module)."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sea.settings import get_settings

PROJECT_ROOT = Path(__file__).resolve().parents[2]
PYTHON = sys.executable

REVERSE_REQUEST = "Reverse the string 'hello world'"
PERCENT_REQUEST = "What is 15 percent of 300?"
PYTHON_REQUEST = "Reverse 'Python'"


@contextmanager
def sea_home(path: Path, **settings: str) -> Iterator[Path]:
    """Point SEA_HOME (and any SEA_* setting) at `path` for the duration, resetting cached resources."""
    from graph import resources

    saved = {k: os.environ.get(k) for k in ["SEA_HOME", *(f"SEA_{k.upper()}" for k in settings)]}
    os.environ["SEA_HOME"] = str(path)
    for key, value in settings.items():
        os.environ[f"SEA_{key.upper()}"] = value
    get_settings.cache_clear()
    resources.reset()
    try:
        yield path
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        get_settings.cache_clear()
        resources.reset()


def subprocess_env(home: Path, **extra: str) -> dict[str, str]:
    """The environment for a child process: this project on the path, SEA_HOME set, no model by default."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("SEA_") or k == "SEA_TEST_POSTGRES_URI"}
    env.update(
        {
            "SEA_HOME": str(home),
            "PYTHONPATH": str(PROJECT_ROOT),
            "LANGSMITH_TRACING": "false",
            "LANGGRAPH_CLI_NO_ANALYTICS": "1",
            "PYTHONUNBUFFERED": "1",
        }
    )
    for key in ("SEA_SANDBOX_IMAGE",):
        if key in os.environ:
            env[key] = os.environ[key]
    env.update(extra)
    return env


def run_cli(home: Path, *args: str, timeout: float = 300, **env: str) -> subprocess.CompletedProcess[str]:
    """`python -m graph ARGS` in a child process with SEA_HOME=home."""
    return subprocess.run(
        [PYTHON, "-m", "graph", *args],
        cwd=PROJECT_ROOT,
        env=subprocess_env(home, **env),
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def node_names(checkpoints: list[Any]) -> list[str]:
    """The writer node of each checkpoint in a `runs.history` list."""
    return [c.node for c in checkpoints]
