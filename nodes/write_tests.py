"""write_tests: pytest tests written from the spec alone (no implementation exists yet)."""

from __future__ import annotations

from typing import Any

from langgraph.runtime import Runtime

from graph import prompts
from graph.context import Context
from graph.progress import emit
from graph.schemas import TestSuite
from graph.state import State
from graph.static_checks import check_test_code
from graph.structured import call_structured
from nodes.common import allowed_modules, context_of, model_of, request_text, sandbox_description


def write_tests(state: State, runtime: Runtime[Context]) -> dict[str, Any]:
    """Ask for test_tool.py; static problems are fed back to the model before anything runs."""
    context = context_of(runtime)
    spec = state["spec"]
    allowed = allowed_modules()
    feedback = state.get("test_feedback") or ""
    emit("progress", message="Writing tests from the spec" + (" (again, with feedback)" if feedback else ""))
    suite, usage = call_structured(
        model_of(context),
        TestSuite,
        prompts.write_tests(request_text(state), spec, sandbox_description(), feedback, state.get("tests") or ""),
        usage=state.get("usage"),
        retries=context.structured_output_retries,
        check=lambda s: check_test_code(s.tests, spec["name"], allowed),
    )
    emit("code", kind="tests", text=suite.tests)
    return {"tests": suite.tests, "test_feedback": "", "usage": usage}
