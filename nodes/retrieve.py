"""retrieve: the top-k candidate tools from the library for the request (and a clean start for the turn)."""

from __future__ import annotations

from typing import Any

from langgraph.runtime import Runtime

from graph.context import Context
from graph.progress import emit
from graph.resources import get_library
from graph.state import State, turn_reset
from nodes.common import context_of
from tools_library.retrieval import request_too_long


def retrieve(state: State, runtime: Runtime[Context]) -> dict[str, Any]:
    """Search the library; records the candidates and the library's own reuse signal."""
    update = turn_reset()
    request = (state.get("request") or "").strip()
    if not request:
        update.update(outcome="error", failure="The request is empty: ask for something, e.g. 'Reverse \"abc\"'.")
        return update
    context = context_of(runtime)
    library = get_library()
    refusal = request_too_long(request, library.settings.max_request_chars)
    if refusal:  # Studio and `runs fork --set request=...` reach the graph without the CLI's or the app's check
        update.update(outcome="error", failure=refusal)
        return update
    hits = library.search(request, k=context.retrieve_k)
    signal = library.reuse_decision(hits)
    emit(
        "progress",
        message=f"Found {len(hits)} candidate tool(s)"
        + (f", best {hits[0].name} ({hits[0].score:.2f})" if hits else "")
        + f"; {signal.reason}",
    )
    update.update(
        candidates=[hit.model_dump(mode="json") for hit in hits],
        library_signal=signal.model_dump(mode="json"),
    )
    return update
