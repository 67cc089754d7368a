"""retrieve: the top-k candidate tools from the library for the request (and a clean start for the turn)."""

from __future__ import annotations

from typing import Any

from langgraph.runtime import Runtime

from graph.context import Context
from graph.state import State, turn_reset
from nodes.common import context_of, search_library


def retrieve(state: State, runtime: Runtime[Context]) -> dict[str, Any]:
    """Search the library; records the candidates and the library's own reuse signal."""
    update = turn_reset()
    request = (state.get("request") or "").strip()
    if not request:
        update.update(outcome="error", failure="The request is empty: ask for something, e.g. 'Reverse \"abc\"'.")
        return update
    update.update(search_library(request, context_of(runtime).retrieve_k))
    return update
