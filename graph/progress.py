"""Custom stream events written by the nodes through `get_stream_writer()`.

Each event is a dict `{"event": kind, "node": node_name, ...}`. Kinds (documented in docs/graph.md):

- "progress"     {message}
- "code"         {kind: "tests" | "implementation", text}
- "test_result"  {phase: "red" | "green", name, outcome, message}
- "llm"          {calls, input_tokens, output_tokens}  (the run's running totals after each model call)
- "decision"     {choice, reason, asked_model}
- "tool_call"    {tool, version, arguments}

Outside a graph run (unit tests calling helpers directly) the events go nowhere.
"""

from __future__ import annotations

from typing import Any

from langgraph.config import get_config, get_stream_writer


def _current_node() -> str:
    try:
        return str(get_config().get("metadata", {}).get("langgraph_node", ""))
    except RuntimeError:
        return ""


def emit(event: str, **data: Any) -> None:
    """Write one custom event for the current node; a no-op outside a run or when `custom` isn't streamed."""
    try:
        writer = get_stream_writer()
    except RuntimeError:
        return
    writer({"event": event, "node": data.pop("node", None) or _current_node(), **data})
