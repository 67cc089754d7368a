"""clarify: a computation whose inputs are missing pauses the run with `interrupt()` and asks the decision's one
question; the user's reply resumes the same run and goes back to decide with the question and its answer.

`interrupt()` is the first thing the node does (it re-runs from the top on resume), so nothing happens twice.
The payload is plain JSON: `{"question", "reason", "request"}`; resume with `Command(resume="the answer")`.
"""

from __future__ import annotations

import json
from typing import Any

from langgraph.runtime import Runtime
from langgraph.types import interrupt

from graph.context import Context
from graph.state import State


def clarify(state: State, runtime: Runtime[Context]) -> dict[str, Any]:
    """Ask the question, wait for the answer, keep both in `clarifications`."""
    decision = state.get("decision") or {}
    question = str(decision.get("reply") or "What values should I compute with?")
    answer = interrupt({"question": question, "reason": decision.get("reason", ""), "request": state["request"]})
    text = answer if isinstance(answer, str) else json.dumps(answer, default=str)
    clarifications = [*(state.get("clarifications") or []), {"question": question, "answer": text.strip()}]
    return {"clarifications": clarifications, "outcome": None}
