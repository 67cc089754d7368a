"""Helpers of the tool library's tests (a uniquely named module, importable from any test file)."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

from sea.settings import get_settings
from tools_library.models import Provenance, ToolDraft

ROOT = Path(__file__).resolve().parents[2]


def make_draft(
    name: str = "add_numbers",
    *,
    body: str = "return a + b",
    description: str | None = None,
    signature: str | None = None,
    params: str = "a: float, b: float",
    returns: str = "float",
    tests: str | None = None,
    verified: bool = True,
) -> ToolDraft:
    """A draft whose code defines `name`; `verified` sets a passing report as the graph would pass one."""
    code = f"def {name}({params}) -> {returns}:\n    {body}\n"
    if tests is None:
        # Calls the tool (so it fails on the library's red-phase stub) and checks only that it answers.
        samples = {"int": "2", "float": "2.0", "str": "'ab'"}
        arguments = ", ".join(
            f"{part.split(':')[0].strip()}={samples.get(part.split(':')[-1].strip(), 'None')}"
            for part in params.split(",")
            if part.strip()
        )
        tests = textwrap.dedent(
            f"""\
            from tool import {name}


            def test_it_answers():
                {name}({arguments})
            """
        )
    return ToolDraft(
        name=name,
        signature=signature or f"def {name}({params}) -> {returns}",
        description=description or f"Tool {name}: {body}.",
        code=code,
        tests=tests,
        verification={"verdict": "passed", "passed": 1} if verified else {},
        provenance=Provenance(request=f"please make {name}", model_id="scripted:test"),
    )


def run_python(code: str, env_extra: dict[str, str], timeout: float = 300) -> subprocess.CompletedProcess[str]:
    """Run a Python snippet in a fresh process from the project root (for concurrency and kill tests)."""
    env = {**os.environ, **env_extra}
    return subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout
    )


def run_cli(*args: str, env_extra: dict[str, str], timeout: float = 300) -> subprocess.CompletedProcess[str]:
    """Run `python -m tools_library ARGS` in a fresh process."""
    env = {**os.environ, **env_extra}
    return subprocess.run(
        [sys.executable, "-m", "tools_library", *args],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout,
    )


def docker_ready() -> str | None:
    """None when the Docker engine and the sandbox image are there, else why not."""
    try:
        import docker

        client = docker.from_env()
        client.ping()
        client.images.get(get_settings().sandbox_image)
    except Exception as exc:
        return f"sandbox not available: {exc}"
    return None
