"""red_phase: the tests run in the sandbox against a stub raising NotImplementedError; every test must be
collected and fail. Tests that pass against the stub, or don't collect, go back to write_tests with the reason."""

from __future__ import annotations

from typing import Any

from langgraph.runtime import Runtime

from graph.context import Context
from graph.progress import emit
from graph.resources import get_sandbox_client
from graph.state import State
from graph.static_checks import check_test_code, test_function_names
from nodes.common import allowed_modules, context_of, summarize_report
from tools_library.models import make_stub


def red_verdict(report: dict[str, Any], expected: list[str]) -> list[str]:
    """Why a red-phase report is not a proper red (empty when every expected test was collected and failed)."""
    reasons: list[str] = []
    by_name = {t["name"].split("::")[-1].split("[")[0]: t for t in report.get("tests", [])}
    if report.get("verdict") in ("timeout", "oom"):
        reasons.append(f"The test run ended with {report['verdict']}: {report.get('message', '')}")
        return reasons
    for name in expected:
        test = by_name.get(name)
        if test is None:
            reasons.append(f"{name} was not collected.")
        elif test["outcome"] == "passed":
            reasons.append(f"{name} passed against a stub that raises NotImplementedError: it checks nothing.")
        elif test["outcome"] == "skipped":
            reasons.append(f"{name} was skipped.")
        elif test["outcome"] == "error":
            reasons.append(f"{name} errored outside the test body: {test.get('message', '')[:300]}")
        elif "NotImplementedError" not in test.get("message", "") and test.get("message"):
            reasons.append(f"{name} failed for another reason than the missing implementation: {test['message'][:300]}")
    if not expected:
        reasons.append("The tests contain no test function.")
    if not report.get("tests") and report.get("message"):
        reasons.append(report["message"])
    return reasons


def red_phase(state: State, runtime: Runtime[Context]) -> dict[str, Any]:
    """Run the tests against the stub; record the red report and, if it isn't red, why."""
    spec = state["spec"]
    tests = state.get("tests") or ""
    problems = check_test_code(tests, spec["name"], allowed_modules())
    if problems:
        reasons = problems
        report: dict[str, Any] = {"verdict": "static_error", "problems": problems}
    else:
        emit("progress", message="Red phase: running the tests against a stub that raises NotImplementedError")
        result = get_sandbox_client().run_tests(make_stub(spec["name"], spec["signature"]), tests)
        report = summarize_report(result)
        for test in report["tests"]:
            emit("test_result", phase="red", name=test["name"], outcome=test["outcome"], message=test["message"])
        reasons = red_verdict(report, test_function_names(tests))
    red_ok = not reasons
    report["red_ok"] = red_ok
    report["reasons"] = reasons
    update: dict[str, Any] = {"red_report": report}
    if red_ok:
        emit("progress", message=f"Red phase passed: all {len(test_function_names(tests))} tests fail on the stub")
    else:
        emit("progress", message="Red phase rejected the tests: " + reasons[0])
        update["test_feedback"] = "\n".join(f"- {r}" for r in reasons)
        rewrites = (state.get("test_rewrites") or 0) + 1
        update["test_rewrites"] = rewrites
        limit = context_of(runtime).max_test_rewrites
        if rewrites > limit:
            update["outcome"] = "gave_up"
            update["failure"] = (
                f"I could not write proper tests for {spec['name']}: after {rewrites} attempts the tests still "
                f"don't all fail against an empty stub (the limit is {limit} rewrites):\n{update['test_feedback']}"
                "\nNothing was registered."
            )
    return update
