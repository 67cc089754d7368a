"""The turn's first decision, each route end to end: real Docker sandbox, real library and embeddings, a scripted
chat model counting its calls. chat and decline are answered by the one decide call; nothing is built."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from graph import resources
from graph.schemas import (
    Implementation,
    Parameter,
    Returns,
    TestSuite,
    ToolSpec,
    TurnDecision,
    WorkedExample,
)
from graph.scripted import DEMO_CHAT, DEMO_DECLINE, SCRIPTED_LABEL
from graph.scripted import tool_call as scripted_tool_call
from sea.settings import get_settings
from tests.graph.graph_test_helpers import (
    PERCENT_REQUEST,
    REVERSE_REQUEST,
    SYNTHESIS_KINDS,
    answer_from_result,
    reverse_script,
    run_graph,
)

pytestmark = [pytest.mark.docker, pytest.mark.slow]


def library_snapshot() -> tuple[int, dict[str, str]]:
    """The library's tool count and every file under its tools folder with its sha256."""
    tools = resources.get_library().list_tools(include_retired=True)
    root = get_settings().tools_dir
    files = {
        str(path.relative_to(root)): hashlib.sha256(path.read_bytes()).hexdigest()
        for path in sorted(root.rglob("*"))
        if path.is_file() and not path.name.endswith((".lock", "usage.json"))
    }
    assert files, f"no tool files under {root}"
    return len(tools), files


def test_a_greeting_is_answered_from_the_real_listing_in_one_call(sea_home: Path, script) -> None:
    before = library_snapshot()
    model, model_id = script(
        TurnDecision=[
            TurnDecision(
                route="chat",
                reason="A greeting and a question about what the agent does.",
                reply="Hello! I compute with small tested tools, e.g. word_count and is_palindrome.",
            )
        ]
    )
    run = run_graph("Hi there! What can you do for me?", model_id)
    assert run.state["decision"]["route"] == "chat"
    assert run.state["decision"]["reason"] == "A greeting and a question about what the agent does."
    assert run.state["outcome"] == "replied"
    assert run.state["answer"] == "Hello! I compute with small tested tools, e.g. word_count and is_palindrome."
    assert model.kinds() == ["TurnDecision"] and run.state["usage"]["calls"] == 1
    prompt = model.calls[0].text
    names = sorted(tool.name for tool in resources.get_library().list_tools())
    assert f"The library ({len(names)} tool(s)):" in prompt
    for name in names:  # the real listing reached the model, every tool with its signature
        assert f"* {name}(" in prompt
    assert library_snapshot() == before
    assert run.state["spec"] == {} and run.state["tool"] == {}
    assert run.state["history"][-1]["route"] == "chat"
    (decision,) = run.events_of("decision")
    assert decision["route"] == "chat" and decision["reason"].startswith("A greeting")


def test_show_me_the_tests_appends_the_real_tests_and_code(sea_home: Path, script) -> None:
    before = library_snapshot()
    model, model_id = script(
        TurnDecision=[
            TurnDecision(route="chat", reason="A question about a tool.", reply="Here it is.", show_tool="no_such"),
            TurnDecision(route="chat", reason="A question about a tool.", reply="Here it is.", show_tool="word_count"),
        ]
    )
    run = run_graph("Show me the tests of word_count", model_id)
    assert run.state["outcome"] == "replied"
    manifest = resources.get_library().get("word_count")
    assert run.state["answer"].startswith("Here it is.")
    assert manifest.tests.strip() in run.state["answer"] and manifest.code.strip() in run.state["answer"]
    assert "show_tool 'no_such' is not in the library" in model.calls[1].text  # an invented tool is refused
    assert run.state["usage"]["calls"] == 2
    assert library_snapshot() == before


def test_what_did_you_just_build_sees_the_threads_history(sea_home: Path, script) -> None:
    graph_run = run_graph(
        PERCENT_REQUEST,
        script(
            TurnDecision=[TurnDecision(route="compute", tool="calculate_percentage", reason="percentages")],
            ToolArguments=[scripted_tool_call("ToolArguments", {"value": 300, "percent": 15})],
            text=[answer_from_result],
        )[1],
    )
    model, model_id = script(
        TurnDecision=[TurnDecision(route="chat", reason="About the last turn.", reply="I used calculate_percentage.")]
    )
    run = run_graph(
        "Which tool did you just use?",
        model_id,
        graph=graph_run.graph,
        thread_id=graph_run.config["configurable"]["thread_id"],
    )
    assert run.state["outcome"] == "replied"
    prompt = model.calls[0].text
    assert f"- {PERCENT_REQUEST} -> The answer is 45" in prompt
    assert "[tool: calculate_percentage v1]" in prompt
    assert [turn["route"] for turn in run.state["history"]] == ["compute", "chat"]


@pytest.mark.parametrize(
    ("request_text", "reply"),
    [
        ("What's the weather going to be like in Chicago tomorrow afternoon?",
         "I have no live weather data; give me temperatures and I can convert or average them."),
        ("How much money is in my checking account right now?",
         "I can't see your accounts; give me the transactions and I can total them."),
        ("Who won last night's Lakers game?",
         "I have no live sports results; give me the scores and I can compare them."),
        ("Email my landlord that the rent will be late",
         "I can't send messages; I can compute the late fee if you give me the terms."),
        ("Download https://example.com/data.csv and sum its second column",
         "My tools run in a sandbox with no network; paste the numbers and I can sum them."),
    ],
    ids=["live-data", "personal-data", "outside-data", "action-in-the-world", "sandbox-forbids"],
)
def test_each_kind_of_decline_leaves_the_library_unchanged(
    sea_home: Path, script, request_text: str, reply: str
) -> None:
    before = library_snapshot()
    model, model_id = script(TurnDecision=[TurnDecision(route="decline", reason="Not computable here.", reply=reply)])
    run = run_graph(request_text, model_id)
    assert run.state["decision"]["route"] == "decline"
    assert run.state["outcome"] == "declined"
    assert run.state["answer"] == reply
    assert model.kinds() == ["TurnDecision"] and run.state["usage"]["calls"] == 1
    assert not SYNTHESIS_KINDS & set(model.kinds())
    assert run.state["spec"] == {} and run.state["tool"] == {} and run.state["arguments"] == {}
    assert library_snapshot() == before


def test_a_decline_without_a_reply_is_asked_again(sea_home: Path, script) -> None:
    model, model_id = script(
        TurnDecision=[
            TurnDecision(route="decline", reason="Live data.", reply="  "),
            TurnDecision(route="decline", reason="Live data.", reply="I have no live data."),
        ]
    )
    run = run_graph("What's the weather in Paris?", model_id)
    assert run.state["answer"] == "I have no live data."
    assert "reply: a decline decision needs the text to say to the user." in model.calls[1].text


def test_the_demo_knows_a_chat_and_a_decline(sea_home: Path) -> None:
    before = library_snapshot()
    chat = run_graph(DEMO_CHAT, "scripted:demo")
    assert chat.state["outcome"] == "replied" and chat.state["answer"].startswith(SCRIPTED_LABEL)
    for name in ("calculate_percentage", "word_count", "is_palindrome"):
        assert name in chat.state["answer"]  # from the real listing in the prompt
    assert chat.state["usage"]["calls"] == 1
    decline = run_graph(DEMO_DECLINE, "scripted:demo")
    assert decline.state["outcome"] == "declined" and decline.state["answer"].startswith(SCRIPTED_LABEL)
    assert decline.state["usage"]["calls"] == 1
    assert library_snapshot() == before


COMMON_SPEC = ToolSpec(
    name="common_elements",
    description="The numbers that appear in both lists, in the order of the first list, without repeats.",
    parameters=[
        Parameter(name="first", type="array", items="number", description="The first list of numbers."),
        Parameter(name="second", type="array", items="number", description="The second list of numbers."),
    ],
    returns=Returns(type="array", items="number", description="The numbers in both lists."),
    example=WorkedExample(arguments_json='{"first": [1, 2, 3], "second": [3, 4]}', result_json="[3]"),
    edge_cases=["An empty list gives an empty list."],
    imports=[],
)
COMMON_TESTS = """from tool import common_elements


def test_the_worked_example():
    assert common_elements([1, 2, 3], [3, 4]) == [3]


def test_order_and_repeats():
    assert common_elements([5, 1, 5, 2], [2, 5]) == [5, 2]


def test_empty():
    assert common_elements([], [1]) == []
"""
COMMON_CODE = '''def common_elements(first: list[float], second: list[float]) -> list[float]:
    """The numbers in both lists, in the order of the first, without repeats."""
    wanted, seen, out = set(second), set(), []
    for number in first:
        if number in wanted and number not in seen:
            seen.add(number)
            out.append(number)
    return out
'''


def test_integers_stay_integers_from_the_request_to_the_answer(sea_home: Path, script) -> None:
    """The issue's "12.0": integers given for a JSON "number" reached the tool as floats; they keep their type."""
    model, model_id = script(
        TurnDecision=[TurnDecision(route="compute", tool=None, reason="No tool intersects lists.")],
        ToolSpec=[COMMON_SPEC],
        TestSuite=[TestSuite(tests=COMMON_TESTS)],
        Implementation=[Implementation(code=COMMON_CODE)],
        ToolArguments=[scripted_tool_call("ToolArguments", {"first": [3, 8, 12], "second": [5, 12, 18]})],
        text=[answer_from_result],
    )
    run = run_graph("Which numbers appear in both [3, 8, 12] and [5, 12, 18]?", model_id)
    assert run.state["outcome"] == "answered", run.state.get("failure")
    assert run.state["arguments"] == {"first": [3, 8, 12], "second": [5, 12, 18]}
    assert all(type(n) is int for n in run.state["arguments"]["first"])
    assert run.state["result"]["result"] == [12] and type(run.state["result"]["result"][0]) is int
    assert run.state["answer"] == "The answer is [12]."  # as the tool returned it, not 12.0
    (call,) = run.events_of("tool_call")
    assert call["arguments"] == {"first": [3, 8, 12], "second": [5, 12, 18]}
    respond_prompt = model.calls[-1].text
    assert 'Arguments: {"first": [3, 8, 12], "second": [5, 12, 18]}' in respond_prompt
    assert "Result (JSON): [12]" in respond_prompt


def test_a_reused_tool_gets_the_numbers_as_given(sea_home: Path, script) -> None:
    _model, model_id = script(
        TurnDecision=[TurnDecision(route="compute", tool="calculate_percentage", reason="percentages")],
        ToolArguments=[scripted_tool_call("ToolArguments", {"value": 300, "percent": 15})],
        text=[answer_from_result],
    )
    run = run_graph(PERCENT_REQUEST, model_id)
    assert run.state["arguments"] == {"value": 300, "percent": 15}
    assert [type(v) for v in run.state["arguments"].values()] == [int, int]
    assert run.state["result"]["result"] == 45


# ---- fewer model calls: the decision (reuse) and the spec (a new tool) carry the request's arguments ----------


def test_a_reuse_is_answered_in_two_calls(sea_home: Path, script) -> None:
    model, model_id = script(
        TurnDecision=[
            TurnDecision(
                route="compute", tool="calculate_percentage", reason="percentages",
                arguments_json='{"value": 300, "percent": 15}',
            )
        ],
        text=[answer_from_result],
    )  # fmt: skip
    run = run_graph(PERCENT_REQUEST, model_id)
    assert run.state["outcome"] == "answered", run.state.get("failure")
    assert model.kinds() == ["TurnDecision", "text"] and run.state["usage"]["calls"] == 2
    assert run.state["arguments"] == {"value": 300, "percent": 15} and run.state["result"]["result"] == 45
    assert 'Parameters (JSON schema): {"properties": {"percent": {' in model.calls[0].text  # the tool's schema


def test_a_synthesis_is_answered_in_five_calls(sea_home: Path, script) -> None:
    model, model_id = script(**reverse_script())
    run = run_graph(REVERSE_REQUEST, model_id)
    assert run.state["outcome"] == "answered", run.state.get("failure")
    assert model.kinds() == ["TurnDecision", "ToolSpec", "TestSuite", "Implementation", "text"]
    assert run.state["arguments"] == {"text": "hello world"} and run.state["result"]["result"] == "dlrow olleh"


def test_arguments_that_do_not_fit_are_extracted_again(sea_home: Path, script) -> None:
    model, model_id = script(
        TurnDecision=[
            TurnDecision(
                route="compute", tool="calculate_percentage", reason="percentages",
                arguments_json='{"value": "300", "percent": 15}',
            )
        ],
        ToolArguments=[scripted_tool_call("ToolArguments", {"value": 300, "percent": 15})],
        text=[answer_from_result],
    )  # fmt: skip
    run = run_graph(PERCENT_REQUEST, model_id)
    assert model.kinds() == ["TurnDecision", "ToolArguments", "text"]
    assert run.state["arguments"] == {"value": 300, "percent": 15}
    assert any("don't fit: value: '300' is not of type 'number'" in e["message"] for e in run.events_of("progress"))


def test_arguments_for_another_request_are_not_reused(sea_home: Path, script) -> None:
    """A fork that edits the request must not run the tool with the arguments taken from the old request."""
    from langgraph.runtime import Runtime

    from graph.context import Context
    from nodes import execute

    model, model_id = script(ToolArguments=[scripted_tool_call("ToolArguments", {"text": "Python"})])
    tool = resources.get_library().get("word_count")
    state = {
        "request": "How many words are in 'a b c'?",
        "tool": {"name": "word_count", "version": tool.version, "signature": tool.signature,
                 "description": tool.description, "parameters_schema": tool.parameters_schema},
        "proposed_arguments": {"tool": "word_count", "for": "How many words are in 'x'?", "arguments": {"text": "x"}},
    }  # fmt: skip
    update = execute(state, Runtime(context=Context(model=model_id)))
    assert model.kinds() == ["ToolArguments"] and update["arguments"] == {"text": "Python"}


def test_the_demo_reuses_in_two_calls_and_synthesizes_in_five(sea_home: Path) -> None:
    reuse = run_graph(PERCENT_REQUEST, "scripted:demo")
    assert reuse.state["result"]["result"] == 45 and reuse.state["usage"]["calls"] == 2
    built = run_graph(REVERSE_REQUEST, "scripted:demo")
    assert built.state["result"]["result"] == "dlrow olleh" and built.state["usage"]["calls"] == 5
    again = run_graph("Reverse 'Python'", "scripted:demo")
    assert again.state["result"]["result"] == "nohtyP" and again.state["usage"]["calls"] == 2
