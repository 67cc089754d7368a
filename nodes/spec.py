"""spec: name, signature, description, typed parameters and return, a worked example, edge cases, imports."""

from __future__ import annotations

from typing import Any

from langgraph.runtime import Runtime

from graph import prompts
from graph.context import Context
from graph.progress import emit
from graph.resources import get_library
from graph.schemas import (
    ToolSpec,
    parameters_schema_of,
    parse_arguments_json,
    returns_schema_of,
    signature_of,
    spec_problems,
)
from graph.state import State
from graph.structured import call_structured
from nodes.common import allowed_modules, context_of, model_of, request_text, sandbox_description


def spec_record(tool_spec: ToolSpec) -> dict[str, Any]:
    """The state's spec: the model's fields plus the derived signature and JSON schemas."""
    return {
        **tool_spec.model_dump(mode="json"),
        "signature": signature_of(tool_spec),
        "parameters_schema": parameters_schema_of(tool_spec),
        "returns_schema": returns_schema_of(tool_spec),
    }


def spec(state: State, runtime: Runtime[Context]) -> dict[str, Any]:
    """Ask the model for the new tool's spec; reject names already taken and imports the sandbox lacks."""
    from tools_library.models import ToolNameError, validate_tool_name

    context = context_of(runtime)
    allowed = allowed_modules()
    taken = {tool.name for tool in get_library().list_tools(include_retired=True)}

    def check(tool_spec: ToolSpec) -> list[str]:
        problems = []
        try:
            validate_tool_name(tool_spec.name)
        except ToolNameError as exc:
            problems.append(str(exc))
        if tool_spec.name in taken:
            problems.append(f"A tool named {tool_spec.name!r} already exists and does something else: pick another.")
        return problems + spec_problems(tool_spec, allowed)

    emit("progress", message="Writing the spec of a new tool")
    tool_spec, usage = call_structured(
        model_of(context),
        ToolSpec,
        prompts.spec(request_text(state), sandbox_description(), (state.get("decision") or {}).get("reason", "")),
        usage=state.get("usage"),
        retries=context.structured_output_retries,
        check=check,
    )
    record = spec_record(tool_spec)
    emit("progress", message=f"Spec: {record['signature']}")
    update: dict[str, Any] = {"spec": record, "usage": usage}
    arguments = parse_arguments_json(tool_spec.request_arguments_json)
    if arguments is not None:  # the request's arguments under this spec: execute needs no model call for them
        update["proposed_arguments"] = {"tool": tool_spec.name, "for": request_text(state), "arguments": arguments}
    return update
