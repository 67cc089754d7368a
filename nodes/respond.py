"""respond: the turn's answer. From a tool's result: a plain-language answer by the model. From a chat, decline
or clarify decision: the decision's own reply (no model call), with a shown tool's real tests and code from the
library. From a failure: the recorded failure text, never model-invented. The calls and tokens used stay in
`usage` (the CLI and the app show them once, apart from the answer)."""

from __future__ import annotations

import json
from typing import Any

from langgraph.runtime import Runtime

from graph import prompts
from graph.context import Context
from graph.resources import get_library
from graph.state import State, empty_usage
from graph.structured import call_text
from nodes.common import context_of, model_of, request_text

REPLY_OUTCOMES = ("replied", "declined", "needs_input")


def usage_line(usage: dict[str, Any] | None) -> str:
    """`3 LLM call(s), 1200 input + 300 output tokens`."""
    u = usage or empty_usage()
    return f"{u['calls']} LLM call(s), {u['input_tokens']} input + {u['output_tokens']} output tokens"


def _shown_tool(name: str) -> str:
    """A library tool's real signature, description, tests and code, as markdown."""
    tool = get_library().get(name)
    return (
        f"**{tool.name} v{tool.version}** `{tool.signature}`: {tool.description}\n\n"
        f"Tests (test_tool.py):\n```python\n{tool.tests.rstrip()}\n```\n\n"
        f"Implementation (tool.py):\n```python\n{tool.code.rstrip()}\n```"
    )


def _history_tool(state: State) -> str:
    done = (state.get("chain") or {}).get("results") or []
    if done:
        return ", ".join(f"{r['tool']} v{r['version']}" for r in done)
    tool = state.get("tool") or {}
    if not tool.get("name") or state.get("outcome") != "answered":
        return ""
    made = " (engineered in this turn)" if tool.get("source") == "synthesized" else ""
    return f"{tool['name']} v{tool.get('version')}{made}"


def respond(state: State, runtime: Runtime[Context]) -> dict[str, Any]:
    """Write the answer; failures are reported from the recorded facts, not by the model."""
    usage = state.get("usage") or empty_usage()
    outcome = state.get("outcome")
    result = state.get("result") or {}
    decision = state.get("decision") or {}
    chain = state.get("chain") or {}
    steps, done = list(chain.get("steps") or []), list(chain.get("results") or [])
    if steps and outcome == "answered" and len(done) == len(steps):
        text, usage = call_text(model_of(context_of(runtime)), prompts.respond_chain(request_text(state), done),
                                usage=usage)
    elif outcome == "answered" and result.get("ok"):
        text, usage = call_text(
            model_of(context_of(runtime)),
            prompts.respond(request_text(state), state["tool"], state.get("arguments") or {}, result.get("result")),
            usage=usage,
        )
    elif outcome in REPLY_OUTCOMES and not state.get("failure"):
        text = str(decision.get("reply") or "")
        if decision.get("show_tool"):
            text = f"{text}\n\n{_shown_tool(decision['show_tool'])}".strip()
    else:
        outcome = outcome or "error"
        text = state.get("failure") or "The run ended without a result."
        if steps and len(done) < len(steps):  # a chain stopped at one of its steps: say which, and what was done
            finished = "; ".join(f"step {r['step']} gave {json.dumps(r['result'])}" for r in done)
            text = f"Step {len(done) + 1} of {len(steps)} ({steps[len(done)]}) failed: {text}" + (
                f" Before it, {finished}." if finished else ""
            )
    entry = {
        "request": request_text(state),
        "answer": text,
        "route": "chain" if steps else str(decision.get("route") or ""),
        "tool": _history_tool(state),
    }
    history = [*(state.get("history") or []), entry]
    return {"answer": text, "usage": usage, "outcome": outcome, "history": history[-20:]}
