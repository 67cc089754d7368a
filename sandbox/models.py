"""Typed results of sandbox jobs. JSON-serialisable; shared by the Python API, the CLI and the graph."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field

# The deepest nesting of lists and objects accepted in a call's arguments and result (and in JSON given on the
# command line): far beyond any real tool's data, well inside what json, pydantic and the checkpoint
# serialisers handle without running out of stack. Defined with the runner, which checks results with it.
from sandbox.runner import MAX_JSON_DEPTH

Verdict = Literal["passed", "failed", "error", "timeout", "oom"]
TestOutcome = Literal["passed", "failed", "error", "skipped"]


class TestCaseResult(BaseModel):
    """One collected test and what happened to it."""

    __test__ = False  # not a pytest test class

    name: str = Field(description="The test's node id within the test file, e.g. test_tool.py::test_empty.")
    outcome: TestOutcome
    message: str = Field(default="", description="Failure or error message, trimmed.")
    duration_ms: float = 0.0


class TestReport(BaseModel):
    """The structured report of `run_tests`.

    `verdict` is "passed" only when the pytest session finished, every test found in the source was
    collected and reported, and every report passed.
    """

    __test__ = False

    verdict: Verdict
    passed: int = 0
    failed: int = 0
    errors: int = 0
    skipped: int = 0
    collected: int = 0
    expected_tests: list[str] = Field(default_factory=list, description="Test functions found in the source.")
    tests: list[TestCaseResult] = Field(default_factory=list)
    message: str = Field(default="", description="Why the verdict is what it is, in one or two sentences.")
    stdout: str = ""
    stderr: str = ""
    duration_ms: float = 0.0
    image_id: str = ""

    def failures(self) -> list[TestCaseResult]:
        """The tests that failed or errored."""
        return [t for t in self.tests if t.outcome in ("failed", "error")]


class CallError(BaseModel):
    """An exception raised by a tool, or a sandbox-level failure (type Timeout, OutOfMemory, ...)."""

    type: str
    message: str
    traceback: str = ""


class CallResult(BaseModel):
    """The outcome of `call`: `ok` with a JSON `result`, or an `error`."""

    ok: bool
    result: Any = None
    error: CallError | None = None
    stdout: str = ""
    stderr: str = ""
    duration_ms: float = 0.0
    image_id: str = ""


def json_depth(value: Any, limit: int = MAX_JSON_DEPTH) -> int:
    """How deeply lists, tuples and dicts nest in `value` (a scalar is 0, `[]` is 1), counted without
    recursion; stops counting at `limit + 1`, so a huge value costs no more than it must."""
    deepest = 0
    stack: list[tuple[Any, int]] = [(value, 0)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict):
            children: Any = item.values()
        elif isinstance(item, (list, tuple)):
            children = item
        else:
            continue
        depth += 1
        if depth > limit:
            return depth
        deepest = max(deepest, depth)
        stack.extend((child, depth) for child in children if isinstance(child, (dict, list, tuple)))
    return deepest
