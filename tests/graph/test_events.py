"""The stream-to-view-event mapping, on real chunks from real runs (real sandbox and library, scripted model)."""

from __future__ import annotations

import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any, TypedDict

import pytest
from graph_test_helpers import REVERSE_REQUEST, reverse_script
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.graph import END, START, StateGraph
from langgraph.types import interrupt

from graph import events as ev
from graph import resources
from graph.builder import build_graph
from graph.context import Context
from graph.scripted import REVERSE_STRING_CODE, REVERSE_STRING_TESTS, ScriptedChatModel, register_scripted
from sea.settings import get_settings

SYNTHESIS_NODES = [
    "retrieve", "decide", "spec", "write_tests", "red_phase", "implement", "verify", "register", "execute", "respond",
]  # fmt: skip


class RecordedRun(TypedDict):
    chunks: list[dict[str, Any]]
    events: list[ev.ViewEvent]
    values: dict[str, Any]
    model: ScriptedChatModel


@pytest.fixture(scope="module")
def synthesis_run(seeded_home_template: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[RecordedRun]:
    """One real synthesis of reverse_string, streamed with the CLI's modes: the raw chunks and their events."""
    home = tmp_path_factory.mktemp("events") / "sea-home"
    shutil.copytree(seeded_home_template, home)
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("SEA_HOME", str(home))
        get_settings.cache_clear()
        resources.reset()
        model = ScriptedChatModel(by_kind=reverse_script())
        model_id = register_scripted(f"events-{uuid.uuid4().hex[:8]}", model)
        graph = build_graph(InMemorySaver())
        config = {"configurable": {"thread_id": "events"}}
        chunks = list(
            graph.stream(
                {"request": REVERSE_REQUEST}, config, context=Context(model=model_id),
                stream_mode=ev.STREAM_MODES, version="v2",
            )
        )  # fmt: skip
        values = dict(graph.get_state(config).values)
        yield RecordedRun(chunks=chunks, events=ev.map_chunks(chunks), values=values, model=model)
    get_settings.cache_clear()
    resources.reset()


def _of(events: list[ev.ViewEvent], kind: type[Any]) -> list[Any]:
    return [e for e in events if isinstance(e, kind)]


@pytest.mark.docker
def test_every_node_starts_and_finishes_in_order(synthesis_run: RecordedRun) -> None:
    events = synthesis_run["events"]
    assert [e.node for e in _of(events, ev.NodeStarted)] == SYNTHESIS_NODES
    assert [e.node for e in _of(events, ev.NodeFinished)] == SYNTHESIS_NODES
    assert not _of(events, ev.NodeFailed)
    # Each node's start comes before its finish, and the next node starts after it finished.
    order = [(e.kind, e.node) for e in events if isinstance(e, ev.NodeStarted | ev.NodeFinished)]
    assert order == [(k, n) for n in SYNTHESIS_NODES for k in ("node_started", "node_finished")]
    assert all(e.task_id for e in _of(events, ev.NodeStarted))


@pytest.mark.docker
def test_node_summaries_say_what_each_step_did(synthesis_run: RecordedRun) -> None:
    summaries = {e.node: e.summary for e in _of(synthesis_run["events"], ev.NodeFinished)}
    assert "candidate" in summaries["retrieve"]
    assert summaries["decide"].startswith("route compute: create a new tool — ")
    assert "def reverse_string(text: str) -> str" in summaries["spec"]
    assert summaries["write_tests"] == "4 test(s) written"
    assert summaries["red_phase"] == "red phase ok: all 4 test(s) fail on the stub"
    assert summaries["implement"] == f"implementation, {len(REVERSE_STRING_CODE.splitlines())} lines"
    assert summaries["verify"] == "tests: passed (4 passed)"
    assert summaries["register"] == "tool reverse_string v1"
    assert summaries["execute"] == 'result "dlrow olleh"'
    assert "dlrow olleh" in summaries["respond"]
    assert all("\n" not in s and len(s) <= ev.SUMMARY_WIDTH for s in summaries.values())


@pytest.mark.docker
def test_each_test_result_is_an_event_red_then_green(synthesis_run: RecordedRun) -> None:
    results = _of(synthesis_run["events"], ev.TestResult)
    red = [r for r in results if r.phase == "red"]
    green = [r for r in results if r.phase == "green"]
    assert results == red + green  # all red results come before any green one
    names = {r.name.split("::")[-1] for r in red}
    assert names == {
        "test_reverses_a_phrase", "test_empty_string_stays_empty",
        "test_single_character_is_unchanged", "test_reversing_twice_gives_the_original",
    }  # fmt: skip
    assert {r.outcome for r in red} == {"failed"} and all("NotImplementedError" in r.message for r in red)
    assert {r.name for r in green} == {r.name for r in red}
    assert {r.outcome for r in green} == {"passed"}
    assert {r.node for r in red} == {"red_phase"} and {r.node for r in green} == {"verify"}


@pytest.mark.docker
def test_code_events_carry_the_tests_and_the_implementation(synthesis_run: RecordedRun) -> None:
    code = _of(synthesis_run["events"], ev.Code)
    by_kind = {c.code_kind: c for c in code}
    assert by_kind["tests"].text == REVERSE_STRING_TESTS and by_kind["tests"].node == "write_tests"
    assert by_kind["implementation"].text == REVERSE_STRING_CODE and by_kind["implementation"].node == "implement"


@pytest.mark.docker
def test_usage_tool_call_and_answer(synthesis_run: RecordedRun) -> None:
    events, values = synthesis_run["events"], synthesis_run["values"]
    usage = _of(events, ev.Usage)
    calls = [u.calls for u in usage]
    assert calls == sorted(calls) and calls[-1] == values["usage"]["calls"] == len(synthesis_run["model"].calls)
    assert usage[-1].input_tokens == values["usage"]["input_tokens"] > 0
    (tool_call,) = _of(events, ev.ToolCall)
    assert (tool_call.tool, tool_call.version, tool_call.arguments) == ("reverse_string", 1, {"text": "hello world"})
    (answer,) = _of(events, ev.Answer)
    assert answer.text == values["answer"] and "dlrow olleh" in answer.text
    assert answer.outcome == "answered" and answer.failure is None
    assert answer.usage is not None and answer.usage.calls == values["usage"]["calls"]
    decisions = _of(events, ev.Decision)
    assert decisions and decisions[0].choice is None and decisions[0].node == "decide"


@pytest.mark.docker
def test_events_round_trip_as_json(synthesis_run: RecordedRun) -> None:
    for event in synthesis_run["events"]:
        assert ev.view_event_adapter.validate_json(event.model_dump_json()) == event


@pytest.mark.docker
def test_mapping_is_pure(synthesis_run: RecordedRun) -> None:
    chunks = synthesis_run["chunks"]
    assert ev.map_chunks(chunks) == synthesis_run["events"]
    assert ev.map_chunks(reversed(chunks)) == [e for c in reversed(chunks) for e in ev.map_chunk(c)]


# --- failures, interrupts, tokens and unknown events, from small real graphs --------------------------------


class _Toy(TypedDict, total=False):
    request: str
    answer: str


def _toy_chunks(node: Any, graph_input: Any = None, *, config_id: str = "toy") -> list[dict[str, Any]]:
    builder = StateGraph(_Toy)
    builder.add_node("step", node)
    builder.add_edge(START, "step")
    builder.add_edge("step", END)
    graph = builder.compile(checkpointer=InMemorySaver())
    chunks: list[dict[str, Any]] = []
    try:
        for chunk in graph.stream(
            graph_input or {"request": "x"}, {"configurable": {"thread_id": config_id}},
            stream_mode=ev.STREAM_MODES, version="v2",
        ):  # fmt: skip
            chunks.append(chunk)
    except ValueError:
        pass
    return chunks


def test_a_failing_node_gives_node_failed() -> None:
    def step(state: _Toy) -> dict[str, Any]:
        raise ValueError("the sandbox said no")

    events = ev.map_chunks(_toy_chunks(step))
    assert [type(e) for e in events] == [ev.NodeStarted, ev.NodeFailed]
    assert events[1].node == "step" and events[1].error == "ValueError: the sandbox said no"


def test_an_interrupt_gives_interrupted() -> None:
    def step(state: _Toy) -> dict[str, Any]:
        return {"answer": interrupt({"question": "Which tool?"})}

    events = ev.map_chunks(_toy_chunks(step))
    (paused,) = _of(events, ev.Interrupted)
    assert paused.value == {"question": "Which tool?"} and paused.interrupt_id
    assert not _of(events, ev.NodeFinished)


def test_model_text_gives_tokens_and_structured_calls_give_none() -> None:
    model = ScriptedChatModel(responses=["Here is ", "the answer."])

    def step(state: _Toy) -> dict[str, Any]:
        return {"answer": str(model.invoke("hi").content) + str(model.invoke("again").content)}

    events = ev.map_chunks(_toy_chunks(step))
    tokens = _of(events, ev.Token)
    assert "".join(t.text for t in tokens) == "Here is the answer."
    assert {t.node for t in tokens} == {"step"}
    (answer,) = _of(events, ev.Answer)
    assert answer.text == "Here is the answer."


def test_unknown_and_malformed_custom_events_are_kept() -> None:
    from graph.progress import emit

    def step(state: _Toy) -> dict[str, Any]:
        emit("sandbox_pool", warm=2)
        emit("tool_call", tool="t", arguments="not a dict")
        return {}

    events = ev.map_chunks(_toy_chunks(step))
    custom = _of(events, ev.CustomEvent)
    assert [(c.event, c.node, c.data) for c in custom] == [
        ("sandbox_pool", "step", {"warm": 2}),
        ("tool_call", "step", {"tool": "t", "arguments": "not a dict"}),
    ]
    assert _of(events, ev.NodeFinished)[0].summary == "no change"


def test_chunks_of_other_types_map_to_nothing() -> None:
    assert ev.map_chunk({"type": "values", "ns": (), "data": {"request": "x"}}) == []
    assert ev.map_chunk({"type": "debug", "ns": (), "data": {}}) == []
    assert ev.map_chunk({}) == []
