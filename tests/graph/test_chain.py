"""The chain route end to end: several computations in one request, a short plan of steps, each step reusing or
engineering a small general tool, later steps taking earlier results; every step in the trace. Real sandbox and
library, scripted model counting its calls."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from graph import resources
from graph.schemas import Implementation, TestSuite, TurnDecision
from graph.scripted import REVERSE_STRING_CODE, REVERSE_STRING_SPEC, REVERSE_STRING_TESTS
from graph.scripted import tool_call as scripted_tool_call
from tests.graph.graph_test_helpers import answer_from_result, run_graph

pytestmark = [pytest.mark.docker, pytest.mark.slow]


def _compute(tool: str | None, arguments: dict | None = None) -> TurnDecision:
    return TurnDecision(
        route="compute", tool=tool, reason=f"step with {tool}",
        arguments_json=json.dumps(arguments) if arguments is not None else None,
    )  # fmt: skip


def _tool_names() -> set[str]:
    return {tool.name for tool in resources.get_library().list_tools()}


def test_a_two_step_chain_reuses_two_tools_and_passes_the_first_result_on(sea_home: Path, script) -> None:
    text = "the quick brown fox jumps over the lazy dog"
    steps = [f"Count the words in '{text}'", "What is 20 percent of the result of step 1?"]
    model, model_id = script(
        TurnDecision=[
            TurnDecision(route="chain", reason="A percentage of a count: two computations.", steps=steps),
            _compute("word_count", {"text": text}),
            _compute("calculate_percentage", {"value": 9, "percent": 20}),
        ],
        text=[answer_from_result],
    )
    before = _tool_names()
    run = run_graph(f"What is 20 percent of the number of words in '{text}'?", model_id)
    assert run.state["outcome"] == "answered", run.state.get("failure")
    results = run.state["chain"]["results"]
    assert [(r["tool"], r["arguments"], r["result"]) for r in results] == [
        ("word_count", {"text": text}, 9),
        ("calculate_percentage", {"value": 9, "percent": 20}, 1.8),
    ]
    assert run.state["answer"] == "The answer is 1.8."
    assert model.kinds() == ["TurnDecision", "TurnDecision", "TurnDecision", "text"]
    step_two = model.calls[2].text
    assert "User request: What is 20 percent of the result of step 1?" in step_two
    assert f"- step 1 (Count the words in '{text}'): 9" in step_two  # the earlier result reached step 2
    respond_prompt = model.calls[3].text
    assert 'word_count({"text": "the quick brown fox jumps over the lazy dog"}) returned 9' in respond_prompt
    assert _tool_names() == before  # nothing new: the chain itself is not registered
    progress = [e["message"] for e in run.events_of("progress")]
    assert f"Step 1 of 2: {steps[0]}" in progress and f"Step 2 of 2: {steps[1]}" in progress
    assert run.state["history"][-1]["route"] == "chain"
    assert run.state["history"][-1]["tool"] == "word_count v1, calculate_percentage v1"


def test_a_three_step_chain_engineers_one_tool_and_reuses_others(sea_home: Path, script) -> None:
    steps = [
        "Reverse the string 'stressed'",
        "Tell whether the result of step 1 is a palindrome",
        "Count the words in the result of step 1",
    ]
    model, model_id = script(
        TurnDecision=[
            TurnDecision(route="chain", reason="Three computations, each on the first result.", steps=steps),
            _compute(None),  # no tool reverses a string: engineer one
            _compute("is_palindrome", {"text": "desserts"}),
            _compute("word_count", {"text": "desserts"}),
        ],
        ToolSpec=[REVERSE_STRING_SPEC.model_copy(update={"request_arguments_json": '{"text": "stressed"}'})],
        TestSuite=[TestSuite(tests=REVERSE_STRING_TESTS)],
        Implementation=[Implementation(code=REVERSE_STRING_CODE)],
        text=[answer_from_result],
    )
    assert "reverse_string" not in _tool_names()
    run = run_graph(
        "Reverse 'stressed', then tell me whether the result is a palindrome and how many words it has", model_id
    )
    assert run.state["outcome"] == "answered", run.state.get("failure")
    results = run.state["chain"]["results"]
    assert [(r["tool"], r["result"], r["source"]) for r in results] == [
        ("reverse_string", "desserts", "synthesized"),
        ("is_palindrome", False, "library"),
        ("word_count", 1, "library"),
    ]
    assert run.state["answer"] == "The answer is 1."
    assert "reverse_string" in _tool_names()  # the one new tool is small and general, registered on its own
    manifest = resources.get_library().get("reverse_string")
    assert manifest.provenance.request.startswith("Reverse the string 'stressed'\n\nThis is step 1 of 3")
    assert model.kinds() == [
        "TurnDecision", "TurnDecision", "ToolSpec", "TestSuite", "Implementation", "TurnDecision", "TurnDecision",
        "text",
    ]  # fmt: skip
    started = [e["message"] for e in run.events_of("progress") if e["message"].startswith("Step ")]
    assert started == [f"Step {i} of 3: {step}" for i, step in enumerate(steps, 1)]


def test_a_failing_step_stops_the_chain_and_says_which(sea_home: Path, script) -> None:
    steps = ["Count the words in 'a b'", "What is 50 percent of the result of step 1?"]
    _model, model_id = script(
        TurnDecision=[
            TurnDecision(route="chain", reason="two steps", steps=steps),
            _compute("word_count", {"text": "a b"}),
            _compute("calculate_percentage", {"value": "two"}),
        ],
        ToolArguments=[scripted_tool_call("ToolArguments", {"value": "two"})],
    )
    run = run_graph("Half of the number of words in 'a b'?", model_id, structured_output_retries=0)
    assert run.state["outcome"] == "bad_arguments", run.state["answer"]
    assert run.state["answer"].startswith(f"Step 2 of 2 ({steps[1]}) failed: ")
    assert run.state["answer"].endswith("Before it, step 1 gave 2.")


def test_a_chain_step_must_be_one_computation(sea_home: Path, script) -> None:
    model, model_id = script(
        TurnDecision=[
            TurnDecision(route="chain", reason="two steps", steps=["Count the words in 'a b'", "Double it"]),
            TurnDecision(route="chat", reason="?", reply="hi"),
            _compute("word_count", {"text": "a b"}),
            _compute("calculate_percentage", {"value": 2, "percent": 200}),
        ],
        text=[answer_from_result],
    )
    run = run_graph("Count the words in 'a b' and double it", model_id)
    assert run.state["outcome"] == "answered" and run.state["chain"]["results"][-1]["result"] == 4
    assert "route: this is one step of a chain, a single computation: choose compute" in model.calls[2].text


def test_the_demo_knows_a_chain(sea_home: Path) -> None:
    from graph.scripted import DEMO_CHAIN, SCRIPTED_LABEL

    run = run_graph(DEMO_CHAIN, "scripted:demo")
    assert run.state["outcome"] == "answered", run.state.get("failure")
    assert [(r["tool"], r["result"]) for r in run.state["chain"]["results"]] == [
        ("word_count", 5), ("calculate_percentage", 1.0)
    ]  # fmt: skip
    assert run.state["answer"].startswith(f"{SCRIPTED_LABEL} Step by step: 1. Count the words")
    assert "word_count" in run.state["answer"] and "returned 1.0" in run.state["answer"]
    assert run.state["usage"]["calls"] == 4  # the plan, one decision per step, the answer
