"""Helpers for the graph tests (not a test module): running the graph, scripted answers, tool sources."""

from __future__ import annotations

import json
import re
import uuid
from dataclasses import dataclass, field
from typing import Any

from langchain_core.messages import BaseMessage
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.graph.state import CompiledStateGraph

from graph.builder import build_graph
from graph.context import Context
from graph.schemas import Implementation, Repair, TestSuite, TurnDecision
from graph.scripted import REVERSE_STRING_CODE, REVERSE_STRING_SPEC, REVERSE_STRING_TESTS, tool_call

PERCENT_REQUEST = "What is 15 percent of 300?"
REVERSE_REQUEST = "Reverse the string 'hello world'"
PYTHON_REQUEST = "Reverse 'Python'"
SYNTHESIS_KINDS = {"ToolSpec", "TestSuite", "Implementation", "Repair", "TestRevision"}
_RESULT = re.compile(r"^Result \(JSON\): (.+)$", re.MULTILINE)

BUGGY_REVERSE_CODE = '''def reverse_string(text: str) -> str:
    """Reverses the words, not the characters (wrong)."""
    return " ".join(reversed(text.split(" ")))
'''


@dataclass
class Run:
    """A finished run: its final state and the custom events it streamed."""

    state: dict[str, Any]
    events: list[dict[str, Any]] = field(default_factory=list)
    graph: CompiledStateGraph | None = None
    config: dict[str, Any] = field(default_factory=dict)

    def events_of(self, kind: str) -> list[dict[str, Any]]:
        return [e for e in self.events if e.get("event") == kind]


def run_graph(
    request: str,
    model_id: str | None,
    *,
    graph: CompiledStateGraph | None = None,
    thread_id: str | None = None,
    **context: Any,
) -> Run:
    """Run the graph once with an in-memory checkpointer and collect the custom events."""
    compiled = graph or build_graph(InMemorySaver())
    config = {"configurable": {"thread_id": thread_id or uuid.uuid4().hex}}
    events: list[dict[str, Any]] = []
    for part in compiled.stream(
        {"request": request}, config, context=Context(model=model_id, **context), stream_mode="custom", version="v2"
    ):
        events.append(part["data"])
    return Run(state=compiled.get_state(config).values, events=events, graph=compiled, config=config)


def answer_from_result(messages: list[BaseMessage], kind: str) -> str:
    """A scripted respond step that reports the result it was given in the prompt."""
    text = "\n".join(str(m.content) for m in messages)
    match = _RESULT.search(text)
    assert match, "the respond prompt carries no result"
    return f"The answer is {json.loads(match.group(1))!r}."


def last_human(messages: list[BaseMessage]) -> str:
    return str(messages[-1].content)


def none_fits() -> TurnDecision:
    return TurnDecision(route="compute", tool=None, reason="No candidate reverses a string.")


def reverse_script(**overrides: list[Any]) -> dict[str, list[Any]]:
    """by_kind responses that synthesize reverse_string and answer; override any kind's queue."""
    script: dict[str, list[Any]] = {
        "TurnDecision": [none_fits()],
        "ToolSpec": [REVERSE_STRING_SPEC],
        "TestSuite": [TestSuite(tests=REVERSE_STRING_TESTS)],
        "Implementation": [Implementation(code=REVERSE_STRING_CODE)],
        "Repair": [Repair(analysis="unused", code=REVERSE_STRING_CODE)],
        "ToolArguments": [tool_call("ToolArguments", {"text": "hello world"})],
        "text": [answer_from_result],
    }
    script.update(overrides)
    return script
