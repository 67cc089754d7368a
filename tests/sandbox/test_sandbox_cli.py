"""`python -m sandbox` end to end, through a subprocess, against the real engine and image."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from sandbox import Sandbox

pytestmark = [pytest.mark.docker]

REPO_ROOT = Path(__file__).resolve().parents[2]
TOOL = "def add(a, b):\n    return a + b\n"
TESTS = (
    "from tool import add\n\n\ndef test_add():\n    assert add(1, 2) == 3\n\n\n"
    "def test_wrong():\n    assert add(1, 1) == 3\n"
)


def run_cli(*args: str, home: Path, **env_overrides: str) -> tuple[int, dict]:
    env = dict(os.environ, SEA_HOME=str(home), PYTHONPATH=str(REPO_ROOT), **env_overrides)
    done = subprocess.run(
        [sys.executable, "-m", "sandbox", *args], cwd=REPO_ROOT, env=env, capture_output=True, text=True,
        timeout=300,
    )
    lines = done.stdout.strip().splitlines()
    assert len(lines) == 1, f"expected one JSON line, got: {done.stdout!r} (stderr: {done.stderr[-2000:]!r})"
    assert "Traceback" not in done.stderr
    return done.returncode, json.loads(lines[0])


@pytest.fixture
def files(tmp_path: Path) -> dict[str, Path]:
    (tmp_path / "tool.py").write_text(TOOL)
    (tmp_path / "test_tool.py").write_text(TESTS)
    return {"tool": tmp_path / "tool.py", "tests": tmp_path / "test_tool.py", "home": tmp_path / "home"}


def test_run_tests_prints_the_report_and_exits_0_whatever_the_verdict(
    sandbox: Sandbox, files: dict[str, Path]
) -> None:
    code, body = run_cli("run-tests", "--code", str(files["tool"]), "--tests", str(files["tests"]),
                         home=files["home"])
    assert code == 0
    assert body["verdict"] == "failed" and body["passed"] == 1 and body["failed"] == 1
    names = {t["name"]: t for t in body["tests"]}
    assert names["test_tool.py::test_wrong"]["outcome"] == "failed"
    assert "assert 2 == 3" in names["test_tool.py::test_wrong"]["message"]
    assert body["image_id"] == sandbox.image_id()


def test_call_prints_the_result_or_the_error(sandbox: Sandbox, files: dict[str, Path]) -> None:
    code, body = run_cli("call", "--code", str(files["tool"]), "--function", "add", "--args", '{"a": 2, "b": 40}',
                         home=files["home"])
    assert code == 0 and body["ok"] is True and body["result"] == 42
    code, body = run_cli("call", "--code", str(files["tool"]), "--function", "add", "--args", '{"a": 2}',
                         home=files["home"])
    assert code == 0 and body["ok"] is False
    assert body["error"]["type"] == "BadArguments" and body["error"]["message"]


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["call", "--function", "add", "--args", "{not json"], "--args is not valid JSON"),
        (["call", "--function", "add", "--args", "[1, 2]"], "JSON object"),
        (["call", "--function", "no such name"], "function name"),
        (["call", "--code", "/nonexistent/tool.py", "--function", "add"], "does not exist"),
        (["run-tests", "--tests", "/nonexistent/test_tool.py"], "does not exist"),
        (["run-tests"], "required"),
        (["frobnicate"], "invalid choice"),
    ],
)
def test_bad_input_is_one_clear_error_with_exit_2(files: dict[str, Path], args: list[str], needle: str) -> None:
    full = list(args)
    if "--code" not in full and full[0] in ("call", "run-tests") and full != ["run-tests"]:
        full += ["--code", str(files["tool"])]
    if full[0] == "run-tests" and "--tests" not in full and full != ["run-tests"]:
        full += ["--tests", str(files["tests"])]
    code, body = run_cli(*full, home=files["home"])
    assert code == 2
    assert body["ok"] is False and body["error"]["type"] == "BadInput"
    assert needle in body["error"]["message"]


def test_an_unreachable_daemon_exits_1_with_a_json_error(files: dict[str, Path]) -> None:
    code, body = run_cli("call", "--code", str(files["tool"]), "--function", "add", home=files["home"],
                         DOCKER_HOST=f"unix://{files['home']}/no-docker.sock")
    assert code == 1
    assert body == {"ok": False, "error": {"type": "SandboxUnavailable", "message": body["error"]["message"]}}
    assert "Docker daemon is unreachable" in body["error"]["message"]


def test_a_missing_image_exits_1_and_names_the_build_command(files: dict[str, Path]) -> None:
    code, body = run_cli("run-tests", "--code", str(files["tool"]), "--tests", str(files["tests"]),
                         home=files["home"], SEA_SANDBOX_IMAGE="sea-sandbox-missing:nope")
    assert code == 1 and body["error"]["type"] == "SandboxUnavailable"
    assert "python -m sandbox build-image" in body["error"]["message"]


def test_janitor_reports_how_many_it_removed(sandbox: Sandbox, files: dict[str, Path]) -> None:
    code, body = run_cli("janitor", home=files["home"])
    assert code == 0 and body["ok"] is True and isinstance(body["removed"], int)
    # the session's pool belongs to a live process: the janitor must leave it alone
    assert sandbox.call(TOOL, "add", {"a": 1, "b": 1}).result == 2


def test_build_image_finds_the_current_image(sandbox: Sandbox, files: dict[str, Path]) -> None:
    code, body = run_cli("build-image", home=files["home"])
    assert code == 0 and body["ok"] is True
    assert body["image_id"] == sandbox.image_id()
