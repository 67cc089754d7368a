"""retrieve: the top-k candidate tools from the library for the request (and a clean start for the turn)."""

from __future__ import annotations

from typing import Any

from langgraph.runtime import Runtime

from graph.context import Context
from graph.resources import get_library
from graph.state import State, turn_reset
from nodes.common import context_of, search_library
from tools_library.retrieval import request_too_long


def retrieve(state: State, runtime: Runtime[Context]) -> dict[str, Any]:
    """Search the library; records the candidates and the library's own reuse signal."""
    update = turn_reset()
    request = (state.get("request") or "").strip()
    if not request:
        update.update(outcome="error", failure="The request is empty: ask for something, e.g. 'Reverse \"abc\"'.")
        return update
    refusal = request_too_long(request, get_library().settings.max_request_chars)
    if refusal:  # Studio and `runs fork --set request=...` reach the graph without the CLI's or the app's check
        update.update(outcome="error", failure=refusal)
        return update
    update.update(search_library(request, context_of(runtime).retrieve_k))
    return update
