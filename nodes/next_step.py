"""next_step: a chain's step boundary. It records the step that just ran (its tool, arguments and result), then
either starts the next step (the per-step keys reset, the library searched for that step) for decide, or, with
every step done, leaves the results for respond. Each step reuses or engineers a small, general tool of its own;
the chain itself is not registered."""

from __future__ import annotations

from typing import Any

from langgraph.runtime import Runtime

from graph.context import Context
from graph.progress import emit
from graph.state import State, step_reset
from nodes.common import context_of, search_library


def next_step(state: State, runtime: Runtime[Context]) -> dict[str, Any]:
    """Record the finished step (if any) and set up the next one."""
    chain = dict(state.get("chain") or {})
    steps, results = list(chain.get("steps") or []), list(chain.get("results") or [])
    result, tool = state.get("result") or {}, state.get("tool") or {}
    if state.get("outcome") == "answered" and result.get("ok") and len(results) < len(steps):
        results.append(
            {
                "step": len(results) + 1,
                "request": steps[len(results)],
                "tool": tool.get("name"),
                "version": tool.get("version"),
                "source": tool.get("source"),
                "arguments": state.get("arguments") or {},
                "result": result.get("result"),
            }
        )
    chain["results"] = results
    if len(results) >= len(steps):
        emit("progress", message=f"All {len(steps)} steps of the chain are done")
        return {"chain": chain}
    update: dict[str, Any] = {**step_reset(), "chain": chain}
    emit("progress", message=f"Step {len(results) + 1} of {len(steps)}: {steps[len(results)]}")
    # The library is searched for the step's own words (the earlier results only add noise to the search).
    update.update(search_library(steps[len(results)], context_of(runtime).retrieve_k))
    return update
