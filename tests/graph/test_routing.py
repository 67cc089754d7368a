"""Routing functions and the graph's topology (no Docker, no model)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, get_args, get_type_hints

import pytest

from graph import routing
from graph.builder import build_graph, builder, graph

SNAPSHOT = Path(__file__).with_name("graph.mmd")


def test_after_retrieve() -> None:
    assert routing.after_retrieve({"request": "x"}) == "decide"
    assert routing.after_retrieve({"outcome": "error", "failure": "The request is empty."}) == "respond"


@pytest.mark.parametrize(
    ("state", "expected"),
    [
        ({"decision": {"choice": "reverse_string"}}, "execute"),
        ({"decision": {"choice": None}}, "spec"),
        ({"decision": {}}, "spec"),
        ({"decision": {"choice": "x"}, "failure": "boom", "outcome": "error"}, "respond"),
        ({"decision": {"route": "compute", "choice": "word_count"}}, "execute"),
        ({"decision": {"route": "compute", "choice": None}}, "spec"),
        ({"decision": {"route": "clarify", "reply": "Which value?"}}, "clarify"),
        ({"decision": {"route": "clarify", "reply": "x"}, "outcome": "needs_input"}, "respond"),  # questions used up
        ({"decision": {"route": "chat", "reply": "Hello"}, "outcome": "replied"}, "respond"),
        ({"decision": {"route": "decline", "reply": "No live data"}, "outcome": "declined"}, "respond"),
        ({"decision": {"route": "chain", "steps": ["a", "b"]}, "outcome": "declined"}, "respond"),
        ({"decision": {"route": "chat", "choice": "word_count"}}, "respond"),  # a tool never runs off compute
    ],
)
def test_after_decide(state: dict[str, Any], expected: str) -> None:
    assert routing.after_decide(state) == expected


@pytest.mark.parametrize(
    ("state", "expected"),
    [
        ({"red_report": {"red_ok": True}, "code": ""}, "implement"),
        ({"red_report": {"red_ok": True}, "code": "def f(): ..."}, "verify"),  # after a test revision
        ({"red_report": {"red_ok": False}}, "write_tests"),
        ({"red_report": {"red_ok": False}, "outcome": "gave_up", "failure": "no proper tests"}, "respond"),
    ],
)
def test_after_red_phase(state: dict[str, Any], expected: str) -> None:
    assert routing.after_red_phase(state) == expected


@pytest.mark.parametrize(
    ("state", "expected"),
    [
        ({"verify_report": {"verdict": "passed"}}, "register"),
        ({"verify_report": {"verdict": "failed"}}, "repair"),
        ({"verify_report": {"verdict": "static_error"}}, "repair"),
        ({"verify_report": {"verdict": "timeout"}}, "repair"),
        ({"verify_report": {"verdict": "failed"}, "outcome": "gave_up", "failure": "x"}, "respond"),
    ],
)
def test_after_verify(state: dict[str, Any], expected: str) -> None:
    assert routing.after_verify(state) == expected


def test_after_repair() -> None:
    assert routing.after_repair({"test_objection": None}) == "verify"
    assert routing.after_repair({"test_objection": {"test_name": "t", "argument": "a"}}) == "revise_tests"


@pytest.mark.parametrize(
    "route", [routing.after_retrieve, routing.after_decide, routing.after_red_phase, routing.after_verify]
)
def test_every_route_declares_its_destinations(route) -> None:
    destinations = set(get_args(get_type_hints(route)["return"]))
    assert destinations <= set(builder.nodes), destinations - set(builder.nodes)


def test_topology_matches_the_snapshot() -> None:
    """An unintended edge change fails here; update tests/graph/graph.mmd deliberately when it is intended."""
    assert graph.get_graph().draw_mermaid() == SNAPSHOT.read_text(encoding="utf-8")


def test_the_issue_steps_are_all_nodes() -> None:
    steps = {"retrieve", "decide", "spec", "write_tests", "implement", "verify", "repair", "register", "execute"}
    assert steps | {"respond", "red_phase", "revise_tests"} <= set(builder.nodes)


def test_every_synthesis_loop_edge_is_drawn() -> None:
    edges = set(re.findall(r"^\s*(\w+) -\.?-?>\s*(\w+);", graph.get_graph().draw_mermaid(), re.MULTILINE))
    for edge in [
        ("verify", "repair"),
        ("repair", "verify"),
        ("repair", "revise_tests"),
        ("revise_tests", "red_phase"),
        ("red_phase", "write_tests"),
        ("verify", "register"),
        ("decide", "execute"),
        ("decide", "clarify"),
        ("clarify", "decide"),
    ]:
        assert edge in edges, edge


def test_the_module_graph_has_no_checkpointer_and_build_graph_compiles_repeatedly() -> None:
    from langgraph.checkpoint.memory import InMemorySaver

    assert graph.checkpointer is None
    first, second = build_graph(InMemorySaver()), build_graph(InMemorySaver())
    assert first.checkpointer is not None and second.checkpointer is not first.checkpointer
