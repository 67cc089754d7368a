"""verify: static checks of code and tests, then the tests run against the implementation in the sandbox."""

from __future__ import annotations

from typing import Any

from langgraph.runtime import Runtime

from graph.context import Context
from graph.progress import emit
from graph.resources import get_sandbox_client
from graph.state import State
from graph.static_checks import check_test_code, check_tool_code
from nodes.common import allowed_modules, context_of, failures_text, summarize_report


def _gave_up(state: State, report: dict[str, Any], max_repairs: int) -> dict[str, Any]:
    name = state["spec"]["name"]
    return {
        "outcome": "gave_up",
        "failure": (
            f"I could not build a working {name}: after {state.get('repairs') or 0} repair attempt(s) "
            f"(the limit is {max_repairs}) the implementation still fails its tests:\n"
            f"{failures_text(report)}\nNothing was registered."
        ),
    }


def verify(state: State, runtime: Runtime[Context]) -> dict[str, Any]:
    """Record the verification report; `verdict == "passed"` only when every test ran and passed."""
    spec = state["spec"]
    code, tests = state.get("code") or "", state.get("tests") or ""
    allowed = allowed_modules()
    problems = check_tool_code(code, spec["name"], spec["signature"], allowed) + check_test_code(
        tests, spec["name"], allowed
    )
    if problems:
        emit("progress", message="Static checks failed: " + problems[0])
        report: dict[str, Any] = {"verdict": "static_error", "problems": problems, "tests": []}
        return _finish(state, runtime, report)
    emit("progress", message="Verifying: running the tests against the implementation")
    report = summarize_report(get_sandbox_client().run_tests(code, tests))
    for test in report["tests"]:
        emit("test_result", phase="green", name=test["name"], outcome=test["outcome"], message=test["message"])
    emit(
        "progress",
        message=f"Verification {report['verdict']}: {report['passed']} passed, "
        f"{report['failed']} failed, {report['errors']} errors",
    )
    return _finish(state, runtime, report)


def _finish(state: State, runtime: Runtime[Context], report: dict[str, Any]) -> dict[str, Any]:
    update: dict[str, Any] = {"verify_report": report}
    max_repairs = context_of(runtime).max_repairs
    if report["verdict"] != "passed" and (state.get("repairs") or 0) >= max_repairs:
        update.update(_gave_up(state, report, max_repairs))
    return update
