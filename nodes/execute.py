"""execute: the model extracts the arguments against the tool's JSON schema, they are validated, and the tool
runs in the sandbox (never on the host). Wrong or missing arguments give a clear message."""

from __future__ import annotations

import json
from typing import Any

from langgraph.runtime import Runtime

from graph import prompts
from graph.context import Context
from graph.progress import emit
from graph.resources import get_library, get_sandbox_client
from graph.schemas import argument_problems, arguments_model, validated_arguments
from graph.state import State
from graph.structured import StructuredOutputError, call_structured
from nodes.common import context_of, model_of, request_text


def _proposed(state: State, tool: dict[str, Any], schema: dict[str, Any]) -> tuple[dict[str, Any] | None, list[str]]:
    """The arguments decide or spec already took for this tool from this very request, and their problems."""
    proposed = state.get("proposed_arguments") or {}
    arguments = proposed.get("arguments")
    if proposed.get("tool") != tool.get("name") or proposed.get("for") != request_text(state):
        return None, []  # for another tool (a twin was used) or another request (a fork edited it)
    if not isinstance(arguments, dict):
        return None, []
    return arguments, argument_problems(schema, arguments)


def execute(state: State, runtime: Runtime[Context]) -> dict[str, Any]:
    """Take the arguments (from the turn's decision or the new tool's spec when they fit the tool's JSON schema,
    else extracted by the model), call the tool in the sandbox, record its usage."""
    context = context_of(runtime)
    tool = state["tool"]
    schema = tool.get("parameters_schema") or {"type": "object", "properties": {}}
    proposed, proposed_problems = _proposed(state, tool, schema)
    if proposed is not None and not proposed_problems:
        usage = state.get("usage")
        arguments = validated_arguments(schema, proposed)
        emit("progress", message="Arguments taken with the decision or the spec: no extra model call")
    else:
        if proposed is not None:
            emit("progress", message=f"The arguments given earlier don't fit: {proposed_problems[0]}; asking again")
        try:
            extracted, usage = call_structured(
                model_of(context),
                arguments_model(schema),
                prompts.extract_arguments(request_text(state), tool, state.get("history") or []),
                usage=state.get("usage"),
                retries=context.structured_output_retries,
                check=lambda args: argument_problems(schema, args.model_dump(exclude_unset=True)),
            )
        except StructuredOutputError as exc:
            problems = "; ".join(exc.problems or [str(exc)])
            message = f"The request doesn't give valid arguments for {tool['signature']}: {problems}."
            return {"outcome": "bad_arguments", "failure": message, "arguments": {}, "usage": exc.usage}
        arguments = validated_arguments(schema, extracted.model_dump(exclude_unset=True))
    emit("tool_call", tool=tool["name"], version=tool["version"], arguments=arguments)
    library = get_library()
    manifest = library.get(tool["name"], tool["version"])
    try:
        result = get_sandbox_client().call(manifest.code, manifest.name, arguments)
    except ValueError as exc:  # the sandbox refuses arguments it cannot carry (too large, too deeply nested)
        message = f"The arguments for {tool['signature']} can't be sent to the sandbox: {exc}."
        return {"outcome": "bad_arguments", "failure": message, "arguments": {}, "usage": usage}
    library.record_usage(manifest.name, manifest.version, result.ok)
    data = result.model_dump(mode="json")
    update: dict[str, Any] = {"arguments": arguments, "result": data, "usage": usage}
    if result.ok:
        emit("progress", message=f"{tool['name']} returned {json.dumps(result.result, default=str)}")
        update["outcome"] = "answered"
    else:
        error = result.error
        detail = f"{error.type}: {error.message}" if error else "no detail"
        emit("progress", message=f"{tool['name']} failed in the sandbox: {detail}")
        update.update(outcome="tool_error", failure=f"{tool['name']} failed in the sandbox ({detail}).")
    return update
