"""Helpers for the durability, events, CLI and Studio tests (not a test module): child processes."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parents[2]
PYTHON = sys.executable
KEPT_SETTINGS = ("SEA_SANDBOX_IMAGE", "SEA_TEST_POSTGRES_URI")


def subprocess_env(home: Path, **extra: str) -> dict[str, str]:
    """A child's environment: this project on the path, SEA_HOME=home, no other SEA_* setting (so no model)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("SEA_") or k in KEPT_SETTINGS}
    env.update(
        {
            "SEA_HOME": str(home),
            "PYTHONPATH": str(PROJECT_ROOT),
            "LANGSMITH_TRACING": "false",
            "LANGGRAPH_CLI_NO_ANALYTICS": "1",
            "PYTHONUNBUFFERED": "1",
        }
    )
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
