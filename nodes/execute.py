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


def execute(state: State, runtime: Runtime[Context]) -> dict[str, Any]:
    """Extract and validate the arguments, call the tool in the sandbox, record its usage."""
    context = context_of(runtime)
    tool = state["tool"]
    schema = tool.get("parameters_schema") or {"type": "object", "properties": {}}
    arguments_schema = arguments_model(schema)
    try:
        extracted, usage = call_structured(
            model_of(context),
            arguments_schema,
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
