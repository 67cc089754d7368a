"""implement: tool.py from the spec and the tests; static problems are fed back before anything runs."""

from __future__ import annotations

from typing import Any

from langgraph.runtime import Runtime

from graph import prompts
from graph.context import Context
from graph.progress import emit
from graph.schemas import Implementation
from graph.state import State
from graph.static_checks import check_tool_code
from graph.structured import call_structured
from nodes.common import allowed_modules, context_of, model_of, request_text, sandbox_description


def implement(state: State, runtime: Runtime[Context]) -> dict[str, Any]:
    """Ask for the implementation of the spec that passes the tests."""
    context = context_of(runtime)
    spec = state["spec"]
    allowed = allowed_modules()
    emit("progress", message=f"Implementing {spec['name']}")
    implementation, usage = call_structured(
        model_of(context),
        Implementation,
        prompts.implement(request_text(state), spec, state["tests"], sandbox_description()),
        usage=state.get("usage"),
        retries=context.structured_output_retries,
        check=lambda i: check_tool_code(i.code, spec["name"], spec["signature"], allowed),
    )
    emit("code", kind="implementation", text=implementation.code)
    return {"code": implementation.code, "usage": usage}
