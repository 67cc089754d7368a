"""Deeply nested JSON given to `python -m graph runs fork --set` is one clear line and exit code 2, never a
RecursionError traceback, and the thread is left as it was."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from durability_helpers import run_cli
from graph_test_helpers import PERCENT_REQUEST

from sandbox.models import MAX_JSON_DEPTH

DEMO = ("--model", "scripted:demo")


def deep_json(levels: int) -> str:
    return "[" * levels + "]" * levels


def too_deep(key: str) -> str:
    return (
        f"error: --set {key}: the JSON value nests more than {MAX_JSON_DEPTH} levels of lists and objects, the most "
        "a state value may have."
    )


def _one_line(result: object) -> str:
    stderr = result.stderr.strip()  # type: ignore[attr-defined]
    assert "Traceback" not in stderr and "RecursionError" not in stderr, stderr
    assert len(stderr.splitlines()) == 1, stderr
    return stderr


@pytest.mark.parametrize("levels", [MAX_JSON_DEPTH + 1, 5000])
@pytest.mark.parametrize("key", ["arguments", "request"])
def test_a_too_deep_set_value_is_refused_in_one_line(tmp_path: Path, key: str, levels: int) -> None:
    assignment = f"{key}={deep_json(levels)}"
    result = run_cli(tmp_path / "home", "runs", "fork", "some-thread", "some-checkpoint", "--set", assignment, *DEMO)
    assert result.returncode == 2
    assert _one_line(result) == too_deep(key)


def test_a_set_value_at_the_limit_is_judged_by_the_state_schema(tmp_path: Path) -> None:
    result = run_cli(tmp_path / "home", "runs", "fork", "some-thread", "some-checkpoint", "--set",
                     f"arguments={deep_json(MAX_JSON_DEPTH)}", *DEMO)  # fmt: skip
    assert result.returncode == 2
    assert _one_line(result).startswith("error: Bad value for arguments: Input should be a valid dictionary")


@pytest.mark.docker
def test_a_too_deep_fork_leaves_the_thread_as_it_was(sea_home: Path) -> None:
    asked = run_cli(sea_home, "ask", PERCENT_REQUEST, *DEMO)
    assert asked.returncode == 0, asked.stderr
    match = re.search(r"^thread (\S+) · model ", asked.stderr, re.MULTILINE)
    assert match, asked.stderr
    thread = match.group(1)
    before = run_cli(sea_home, "runs", "show", thread)
    assert before.returncode == 0, before.stderr
    checkpoint = next(line.split()[1] for line in before.stdout.splitlines()[1:] if line.split()[3] == "execute")

    value = '{"a": ' + deep_json(5000) + ', "x": 1}'
    refused = run_cli(sea_home, "runs", "fork", thread, checkpoint, "--set", f"arguments={value}", *DEMO)
    assert refused.returncode == 2
    assert _one_line(refused) == too_deep("arguments")
    after = run_cli(sea_home, "runs", "show", thread)
    assert after.stdout == before.stdout  # no checkpoint was added
