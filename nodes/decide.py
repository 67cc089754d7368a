"""decide: the model picks one candidate tool or says none fits; with no candidate above the floor, no model."""

from __future__ import annotations

from typing import Any

from langgraph.runtime import Runtime

from graph import prompts
from graph.context import Context
from graph.progress import emit
from graph.resources import get_library
from graph.schemas import ToolChoice
from graph.state import State
from graph.structured import call_structured
from nodes.common import context_of, model_of


def tool_record(manifest: Any, source: str) -> dict[str, Any]:
    """The state's view of a tool version: what execute and respond need."""
    return {
        "name": manifest.name,
        "version": manifest.version,
        "signature": manifest.signature,
        "description": manifest.description,
        "parameters_schema": manifest.parameters_schema,
        "source": source,
    }


def decide(state: State, runtime: Runtime[Context]) -> dict[str, Any]:
    """Reuse a tool or build one; the choice and its reason are kept in state."""
    candidates = state.get("candidates") or []
    signal = state.get("library_signal") or {}
    if not candidates or not signal.get("above_floor", False):
        reason = "No tool in the library is close enough to consider"
        if signal.get("reason"):
            reason += f" ({signal['reason']})"
        decision = {"choice": None, "reason": reason + ".", "asked_model": False}
        emit("decision", **decision)
        return {"decision": decision}
    context = context_of(runtime)
    names = {c["name"] for c in candidates}

    def check(choice: ToolChoice) -> list[str]:
        if choice.choice is not None and choice.choice not in names:
            return [f"{choice.choice!r} is not a candidate; choose one of {sorted(names)} or null."]
        return []

    choice, usage = call_structured(
        model_of(context),
        ToolChoice,
        prompts.decide(state["request"], candidates),
        usage=state.get("usage"),
        retries=context.structured_output_retries,
        check=check,
    )
    decision = {"choice": choice.choice, "reason": choice.reason, "asked_model": True}
    emit("decision", **decision)
    update: dict[str, Any] = {"decision": decision, "usage": usage}
    if choice.choice is not None:
        version = next(c["version"] for c in candidates if c["name"] == choice.choice)
        update["tool"] = tool_record(get_library().get(choice.choice, version), source="library")
    return update
