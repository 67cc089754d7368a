"""respond: a plain-language answer from the tool's result, or an honest account of the failure, plus the
LLM calls and tokens the run used."""

from __future__ import annotations

from typing import Any

from langgraph.runtime import Runtime

from graph import prompts
from graph.context import Context
from graph.state import State, empty_usage
from graph.structured import call_text
from nodes.common import context_of, model_of


def usage_line(usage: dict[str, Any] | None) -> str:
    """`3 LLM calls, 1200 input + 300 output tokens`."""
    u = usage or empty_usage()
    return f"{u['calls']} LLM call(s), {u['input_tokens']} input + {u['output_tokens']} output tokens"


def respond(state: State, runtime: Runtime[Context]) -> dict[str, Any]:
    """Write the answer; failures are reported from the recorded facts, not by the model."""
    usage = state.get("usage") or empty_usage()
    outcome = state.get("outcome")
    result = state.get("result") or {}
    if outcome == "answered" and result.get("ok"):
        text, usage = call_text(
            model_of(context_of(runtime)),
            prompts.respond(state["request"], state["tool"], state.get("arguments") or {}, result.get("result")),
            usage=usage,
        )
    else:
        outcome = outcome or "error"
        text = state.get("failure") or "The run ended without a result."
    answer = f"{text}\n\n({usage_line(usage)})"
    history = [*(state.get("history") or []), {"request": state.get("request", ""), "answer": text}]
    return {"answer": answer, "usage": usage, "outcome": outcome, "history": history[-20:]}
