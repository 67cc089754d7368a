"""decide: the first decision of every turn, in one structured model call: the route (compute | chat |
clarify | decline | chain) with its reason, and for compute the candidate tool to reuse or none (engineer one).
chat and decline are answered by this same call (`reply`); nothing is specified, built or registered. clarify
goes to the clarify node, which asks the question with `interrupt()` (at most `max_clarifications` per turn)."""

from __future__ import annotations

from typing import Any

from langgraph.runtime import Runtime

from graph import prompts
from graph.context import Context
from graph.progress import emit
from graph.resources import get_library
from graph.schemas import TurnDecision, parse_arguments_json
from graph.state import State
from graph.structured import call_structured
from nodes.common import context_of, model_of, request_text, tool_record

LISTED_TOOLS = 40  # the library listing the model sees (chat answers from it); the rest are counted


def decide(state: State, runtime: Runtime[Context]) -> dict[str, Any]:
    """Choose the turn's route; the decision and its reason are kept in state (and streamed)."""
    context = context_of(runtime)
    library = get_library()
    signal = state.get("library_signal") or {}
    # Reuse is offered only among candidates the library's calibrated signal puts above its floor.
    candidates = (state.get("candidates") or []) if signal.get("above_floor", False) else []
    offered = {c["name"] for c in candidates}
    tools = sorted(library.list_tools(), key=lambda t: t.name)
    listed = [{"name": t.name, "signature": t.signature, "description": t.description} for t in tools]
    known = {t.name for t in tools}
    in_chain = bool((state.get("chain") or {}).get("steps"))
    schemas_of = {t.name: t.parameters_schema for t in tools}
    cards = [{**c, "parameters_schema": schemas_of.get(c["name"])} for c in candidates]

    def check(decision: TurnDecision) -> list[str]:
        problems: list[str] = []
        if decision.route == "compute" and decision.tool is not None and decision.tool not in offered:
            problems.append(
                f"tool {decision.tool!r} is not a candidate; choose one of {sorted(offered)} or null."
                if offered
                else f"tool {decision.tool!r} is not a candidate (there are none): use null to engineer a new tool."
            )
        if decision.route in ("chat", "clarify", "decline") and not (decision.reply or "").strip():
            problems.append(f"reply: a {decision.route} decision needs the text to say to the user.")
        given = (decision.arguments_json or "").strip()
        if decision.route == "compute" and decision.tool and given and parse_arguments_json(given) is None:
            problems.append('arguments_json: must be a JSON object of keyword arguments, e.g. {"text": "abc"}.')
        if decision.route == "chat" and decision.show_tool and decision.show_tool not in known:
            problems.append(f"show_tool {decision.show_tool!r} is not in the library; name a listed tool or null.")
        if decision.route == "chain" and len(decision.steps) < 2:
            problems.append("steps: a chain needs at least two steps; one computation is the compute route.")
        if in_chain and decision.route not in ("compute", "clarify"):
            problems.append(
                "route: this is one step of a chain, a single computation: choose compute (or clarify if its "
                "input is missing)."
            )
        return problems

    choice, usage = call_structured(
        model_of(context),
        TurnDecision,
        prompts.decide(
            request_text(state), cards, listed[:LISTED_TOOLS], len(listed), state.get("history") or []
        ),
        usage=state.get("usage"),
        retries=context.structured_output_retries,
        check=check,
    )
    decision = {
        "route": choice.route,
        "reason": choice.reason,
        "choice": choice.tool if choice.route == "compute" else None,
        "reply": (choice.reply or "").strip() if choice.route != "compute" else "",
        "show_tool": choice.show_tool if choice.route == "chat" else None,
        "steps": list(choice.steps) if choice.route == "chain" else [],
        "asked_model": True,
    }
    update: dict[str, Any] = {"decision": decision, "usage": usage}
    if decision["choice"] is not None:
        version = next(c["version"] for c in candidates if c["name"] == decision["choice"])
        update["tool"] = tool_record(library.get(decision["choice"], version), source="library")
        arguments = parse_arguments_json(choice.arguments_json)
        if arguments is not None:  # taken in this same call: execute checks them and needs no model call
            update["proposed_arguments"] = {
                "tool": decision["choice"], "for": request_text(state), "arguments": arguments
            }
    elif choice.route == "chat":
        update["outcome"] = "replied"
    elif choice.route == "decline":
        update["outcome"] = "declined"
    elif choice.route == "clarify" and len(state.get("clarifications") or []) >= context.max_clarifications:
        # The questions allowed are used up: say what is still missing rather than ask forever or guess.
        decision["reply"] = (
            f"I still can't compute this without an answer to: {decision['reply']} Ask again with that value."
        )
        update["outcome"] = "needs_input"
    elif choice.route == "chain":
        # The plan: next_step runs each step through decide (reuse or engineer), later steps seeing earlier results.
        update["chain"] = {"steps": decision["steps"], "results": []}
    emit("decision", **decision)
    return update
