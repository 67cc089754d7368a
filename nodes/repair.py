"""repair: a new implementation from the per-test failures. The tests stay as they are; the model may only
object to a test, which routes to the recorded revise_tests step."""

from __future__ import annotations

from typing import Any

from langgraph.runtime import Runtime

from graph import prompts
from graph.context import Context
from graph.progress import emit
from graph.schemas import Repair
from graph.state import State
from graph.static_checks import check_tool_code, test_function_names
from graph.structured import call_structured
from nodes.common import allowed_modules, context_of, failures_text, model_of, request_text, sandbox_description


def repair(state: State, runtime: Runtime[Context]) -> dict[str, Any]:
    """Replace the implementation (never the tests); count the attempt; keep any objection to a test."""
    context = context_of(runtime)
    spec = state["spec"]
    tests = state["tests"]
    allowed = allowed_modules()
    revisions_left = max(0, context.max_test_revisions - len(state.get("test_revisions") or []))
    known_tests = set(test_function_names(tests))

    def check(fix: Repair) -> list[str]:
        problems = check_tool_code(fix.code, spec["name"], spec["signature"], allowed)
        if fix.test_objection is not None and fix.test_objection.test_name not in known_tests:
            problems.append(f"test_objection names {fix.test_objection.test_name!r}, which is not a test here.")
        return problems

    attempt = (state.get("repairs") or 0) + 1
    emit("progress", message=f"Repair attempt {attempt} of {context.max_repairs}")
    fix, usage = call_structured(
        model_of(context),
        Repair,
        prompts.repair(
            request_text(state),
            spec,
            tests,
            state.get("code") or "",
            failures_text(state.get("verify_report") or {}),
            sandbox_description(),
            revisions_left,
        ),
        usage=state.get("usage"),
        retries=context.structured_output_retries,
        check=check,
    )
    emit("code", kind="implementation", text=fix.code)
    objection = fix.test_objection.model_dump(mode="json") if fix.test_objection else None
    if objection is not None and revisions_left == 0:
        emit("progress", message="The repair step objected to a test, but no test revisions are left.")
        objection = None
    if objection is not None:
        emit("progress", message=f"The repair step objects to {objection['test_name']}: {objection['argument']}")
    return {"code": fix.code, "repairs": attempt, "test_objection": objection, "usage": usage}
