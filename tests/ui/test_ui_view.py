"""The pure view functions (ui/view.py) on real events: real runs of the graph, real sandbox and library,
the scripted demo model; and ui/runner.py rebuilding a thread's turns from the real checkpointer."""

from __future__ import annotations

import itertools
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from graph import events as ev
from graph.checkpointing import close_checkpointer
from ui import runner, view

DEMO = "scripted:demo"


@pytest.fixture
def graph(demo_home: Path) -> Iterator[Any]:
    """The real graph on the real SQLite checkpointer of the temporary data directory."""
    compiled, saver = runner.open_graph()
    yield compiled
    close_checkpointer(saver)


def _run(graph: Any, request: str) -> tuple[str, view.TurnView, list[tuple[view.Change, str, str]]]:
    """Run a request on a new thread; returns the thread id, the turn and every change with the label it made."""
    thread_id = str(uuid.uuid4())
    changes: list[tuple[view.Change, str, str]] = []

    def on_change(turn: view.TurnView, change: view.Change) -> None:
        step = turn.steps[change.step] if change.step is not None else None
        changes.append((change, step.label if step else "", step.state if step else ""))

    turn = runner.run_turn(graph, thread_id, {"request": request}, model=DEMO, request=request, on_change=on_change)
    return thread_id, turn, changes


def test_percentage_run_folds_into_one_step_per_node_and_the_answer(graph: Any) -> None:
    thread_id, turn, changes = _run(graph, "What is 15 percent of 300?")

    assert not turn.error
    assert [s.node for s in turn.steps] == ["retrieve", "decide", "execute", "respond"]
    assert all(s.state == "complete" for s in turn.steps)
    assert view.answer_style(turn) == "answer"
    body = view.answer_body(turn.answer, turn.usage)
    assert "45" in body
    assert "LLM call(s)" not in body  # the usage line is shown apart, as a caption
    assert turn.usage["calls"] >= 1 and turn.usage["input_tokens"] > 0
    decide = turn.steps[1]
    assert any(i.kind == "decision" and "Reuse calculate_percentage" in i.text for i in decide.items)
    assert any(i.kind == "tool_call" and "calculate_percentage" in i.text for i in turn.steps[2].items)

    # The page draws a status box when a step first appears: each step's first change must say so.
    first_change = {}
    for change, _label, _state in changes:
        if change.step is not None:
            first_change.setdefault(change.step, change)
    assert sorted(first_change) == list(range(len(turn.steps)))
    assert all(c.new_step for c in first_change.values())

    # Reloading the thread from the checkpointer shows the same steps, answer and usage.
    loaded = runner.load_turns(graph, thread_id)
    assert len(loaded) == 1
    assert loaded[0].request == "What is 15 percent of 300?"
    assert [s.node for s in loaded[0].steps] == ["retrieve", "decide", "execute", "respond"]
    assert view.answer_body(loaded[0].answer, loaded[0].usage) == body
    assert loaded[0].usage == turn.usage


def test_synthesis_run_shows_red_and_green_results_and_live_labels(graph: Any) -> None:
    thread_id, turn, changes = _run(graph, "Reverse the string 'hello world'")

    nodes = [s.node for s in turn.steps]
    assert nodes == [
        "retrieve", "decide", "spec", "write_tests", "red_phase", "implement", "verify", "register", "execute",
        "respond",
    ]  # fmt: skip
    red = turn.steps[nodes.index("red_phase")]
    green = turn.steps[nodes.index("verify")]
    red_tests = [i for i in red.items if i.kind == "test"]
    green_tests = [i for i in green.items if i.kind == "test"]
    assert len(red_tests) >= 2 and len(red_tests) == len(green_tests)
    assert all(i.ok and "fails on the stub, as it should" in i.text for i in red_tests)
    assert all(i.ok and "passes" in i.text for i in green_tests)
    codes = {i.title: i.text for s in turn.steps for i in s.items if i.kind == "code"}
    assert "def test_" in codes[view.code_title("tests")]
    assert "def reverse_string" in codes[view.code_title("implementation")]
    assert "dlrow olleh" in turn.answer

    # While the tests ran, the red phase's label counted them.
    red_labels = [label for _c, label, state in changes if label.startswith("red_phase") and state == "running"]
    assert f"red_phase — {len(red_tests)} test(s) run, {len(red_tests)} as expected (red phase)" in red_labels

    loaded = runner.load_turns(graph, thread_id)
    assert [s.node for s in loaded[0].steps] == nodes
    for node, shown in (("red_phase", red_tests), ("verify", green_tests)):
        rebuilt = [i for i in loaded[0].steps[nodes.index(node)].items if i.kind == "test"]
        assert [(i.text, i.ok) for i in rebuilt] == [(i.text, i.ok) for i in shown]
    loaded_codes = [i.text for s in loaded[0].steps for i in s.items if i.kind == "code"]
    assert codes[view.code_title("tests")] in loaded_codes
    assert "dlrow olleh" in loaded[0].answer


def test_second_turn_and_a_fork_are_rebuilt_on_the_current_branch(graph: Any) -> None:
    thread_id, _first, _ = _run(graph, "What is 15 percent of 300?")
    runner.run_turn(graph, thread_id, {"request": "Reverse 'Python'"}, model=DEMO, request="Reverse 'Python'")
    turns = runner.load_turns(graph, thread_id)
    assert [t.request for t in turns] == ["What is 15 percent of 300?", "Reverse 'Python'"]
    assert "nohtyP" in turns[1].answer and "45" in turns[0].answer

    # Fork the second turn at its first step with another request: the thread now ends with the fork's branch.
    rows, _head = runner.checkpoint_rows(graph, thread_id)
    second_input = [r for r in rows if r.source == "input"][1]
    step0 = next(r for r in rows if r.parent_id == second_input.checkpoint_id)
    forked = runner.fork(graph, thread_id, step0.checkpoint_id, ["request=What is 15 percent of 300?"], model=DEMO)
    assert not forked.error and "45" in forked.answer
    turns = runner.load_turns(graph, thread_id)
    assert len(turns) == 2
    assert "45" in turns[1].answer and "nohtyP" not in turns[1].answer
    assert turns[1].steps[0].node == "fork"


def test_a_failed_run_is_an_honest_failure(graph: Any) -> None:
    _thread, turn, _ = _run(graph, "What's the weather in Paris?")
    assert view.answer_style(turn) == "failure"
    assert turn.outcome == "error"
    assert "only knows its demo examples" in turn.answer
    decide = next(s for s in turn.steps if s.node == "decide")
    assert decide.state == "error"
    assert decide.label.startswith("decide — ScriptedModelError")


def test_test_line_flags_a_test_that_passes_on_the_stub() -> None:
    vacuous = ev.TestResult(node="red_phase", phase="red", name="test_tool.py::test_x", outcome="passed")
    line, ok = view.test_line(vacuous)
    assert not ok and "does not fail on the stub" in line
    broken = ev.TestResult(node="verify", phase="green", name="t::test_y", outcome="failed", message="assert 1 == 2")
    line, ok = view.test_line(broken)
    assert not ok and "fails on the implementation: assert 1 == 2" in line


def test_labels_usage_and_markdown_escaping() -> None:
    assert view.model_label("scripted:demo") == "scripted:demo (offline demo — scripted, not a real model)"
    assert view.model_label("openai:gpt-4.1-mini") == "openai:gpt-4.1-mini"
    assert view.model_label(None) == "no model configured"
    assert view.usage_text({"calls": 1, "input_tokens": 5, "output_tokens": 2}) == (
        "1 LLM call · 5 input + 2 output tokens"
    )
    usage = {"calls": 2, "input_tokens": 10, "output_tokens": 3}
    assert view.answer_body("It is 45.\n\n(2 LLM call(s), 10 input + 3 output tokens)", usage) == "It is 45."
    assert view.answer_body("It is 45.\n\n(9 LLM call(s), 1 input + 1 output tokens)", usage).endswith("tokens)")
    assert view.escape_markdown("a*b_[x](y) $5") == "a\\*b\\_\\[x\\]\\(y\\) \\$5"
    assert view.node_title("__default_error_handler__") == "error_handler"


def test_lineage_follows_the_branch_that_ends_at_the_head() -> None:
    def row(cid: str, parent: str | None, source: str = "loop", node: str = "n") -> view.CheckpointRow:
        return view.CheckpointRow(cid, parent, 0, source, node, [], "")

    rows = [row("a", None, "input"), row("b", "a"), row("c", "b"), row("c2", "b", "update", "fork"), row("d", "c2")]
    assert [r.checkpoint_id for r in view.lineage(rows, "d")] == ["a", "b", "c2", "d"]
    assert [r.checkpoint_id for r in view.lineage(rows, "c")] == ["a", "b", "c"]
    assert view.lineage(rows, "missing") == []


def test_an_interrupted_run_is_shown_and_resumed_with_a_command() -> None:
    # The agent's graph has no interrupt() yet; a small real LangGraph graph exercises the app's resume path.
    from typing import TypedDict

    from langgraph.checkpoint.memory import InMemorySaver
    from langgraph.graph import END, START, StateGraph
    from langgraph.types import interrupt

    class AskState(TypedDict, total=False):
        request: str
        answer: str

    def ask_unit(state: AskState) -> dict[str, str]:
        unit = interrupt({"question": "Which unit?"})
        return {"answer": f"{state['request']} in {unit}"}

    builder = StateGraph(AskState)
    builder.add_node("ask_unit", ask_unit)
    builder.add_edge(START, "ask_unit")
    builder.add_edge("ask_unit", END)
    small = builder.compile(checkpointer=InMemorySaver())
    thread_id = str(uuid.uuid4())

    turn = runner.run_turn(small, thread_id, {"request": "20 degrees"}, model=DEMO, request="20 degrees")
    assert turn.interrupts == [{"question": "Which unit?"}]
    assert view.answer_style(turn) == "interrupted"
    status = runner.thread_status(small, thread_id)
    assert status.interrupts == [{"question": "Which unit?"}] and status.next == ["ask_unit"]

    resumed = runner.run_turn(
        small, thread_id, runner.resume_command(runner.parse_resume_value("celsius")), model=DEMO, request="(resume)"
    )
    assert resumed.answer == "20 degrees in celsius"
    assert view.answer_style(resumed) == "answer"
    assert runner.thread_status(small, thread_id) == runner.ThreadStatus(interrupts=[], next=[])
    assert runner.parse_resume_value('{"unit": "K"}') == {"unit": "K"}
    deep = "[" * 100_000 + "]" * 100_000  # past the JSON parser's stack: kept as the text it is
    assert runner.parse_resume_value(deep) == deep


def test_a_run_whose_checkpointer_fails_is_one_line(demo_home: Path) -> None:
    compiled, saver = runner.open_graph()
    saver.conn.close()  # a fault, injected: the checkpoint database goes away before the run
    turn = runner.run_turn(compiled, str(uuid.uuid4()), {"request": "What is 15 percent of 300?"}, model=DEMO,
                           request="What is 15 percent of 300?")
    assert turn.error.startswith("The run failed: ProgrammingError: Cannot operate on a closed database")
    assert "\n" not in turn.error
    assert view.answer_style(turn) == "failure"


def test_the_answer_streams_into_the_turn_word_by_word(demo_home: Path) -> None:
    compiled, _saver = runner.open_graph()
    seen: list[str] = []

    def on_change(turn: view.TurnView, change: view.Change) -> None:
        if change.answer and turn.streamed and not turn.answer:
            seen.append(turn.streamed)

    turn = runner.run_turn(compiled, str(uuid.uuid4()), {"request": "What is 15 percent of 300?"}, model=DEMO,
                           request="What is 15 percent of 300?", on_change=on_change)
    assert turn.answer == "[scripted demo model] The result is 45.0."
    assert len(seen) >= 5 and seen[-1] == turn.answer  # the answer grew word by word while it streamed
    assert all(later.startswith(earlier) for earlier, later in itertools.pairwise(seen))
