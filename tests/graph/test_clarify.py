"""The clarify route end to end: a computation whose inputs are missing pauses the run with interrupt(), asks one
question, and the user's reply resumes the same run to the right answer. Real sandbox and library, scripted model."""

from __future__ import annotations

import io
import re
from pathlib import Path

import pytest
from durability_helpers import run_cli
from langgraph.types import Command

from graph.context import Context
from graph.schemas import TurnDecision
from graph.scripted import DEMO_CLARIFY
from graph.scripted import tool_call as scripted_tool_call
from tests.graph.graph_test_helpers import SYNTHESIS_KINDS, answer_from_result, run_graph

pytestmark = [pytest.mark.docker, pytest.mark.slow]
QUESTION = "Which temperature, in degrees Celsius, should I convert?"
DEMO = ("--model", "scripted:demo")


def _ask() -> TurnDecision:
    return TurnDecision(route="clarify", reason="No temperature was given.", reply=QUESTION)


def test_a_missing_input_interrupts_and_the_answer_resumes_the_same_run(sea_home: Path, script) -> None:
    model, model_id = script(
        TurnDecision=[
            _ask(),
            TurnDecision(route="compute", tool="celsius_to_fahrenheit", reason="The user gave 100 degrees."),
        ],
        ToolArguments=[scripted_tool_call("ToolArguments", {"celsius": 100})],
        text=[answer_from_result],
    )
    run = run_graph("Convert the temperature to Fahrenheit", model_id)
    snapshot = run.graph.get_state(run.config)
    assert snapshot.next == ("clarify",)
    (waiting,) = [i for task in snapshot.tasks for i in task.interrupts]
    assert waiting.value == {
        "question": QUESTION, "reason": "No temperature was given.", "request": "Convert the temperature to Fahrenheit"
    }  # fmt: skip
    assert run.state["decision"]["route"] == "clarify" and run.state.get("answer", "") == ""
    assert model.kinds() == ["TurnDecision"]  # nothing was computed, let alone a value invented

    out = run.graph.invoke(Command(resume="100"), run.config, context=Context(model=model_id))
    assert out["outcome"] == "answered" and out["result"]["result"] == 212
    assert out["clarifications"] == [{"question": QUESTION, "answer": "100"}]
    assert "Answered: 100" in model.calls[1].text  # the second decision saw the user's answer
    assert "Answered: 100" in model.calls[2].text  # and so did the argument extraction
    assert not SYNTHESIS_KINDS & set(model.kinds())
    assert out["usage"]["calls"] == len(model.calls)
    assert out["history"][-1]["request"].startswith("Convert the temperature to Fahrenheit\n\nClarifications")


def test_the_questions_are_bounded(sea_home: Path, script) -> None:
    model, model_id = script(TurnDecision=[_ask(), _ask()])
    run = run_graph("Convert the temperature to Fahrenheit", model_id, max_clarifications=1)
    context = Context(model=model_id, max_clarifications=1)
    out = run.graph.invoke(Command(resume="I don't know"), run.config, context=context)
    assert out["outcome"] == "needs_input"
    assert out["answer"] == f"I still can't compute this without an answer to: {QUESTION} Ask again with that value."
    assert run.graph.get_state(run.config).next == ()
    assert model.kinds() == ["TurnDecision", "TurnDecision"]


def _thread_of(stderr: str) -> str:
    match = re.search(r"^thread (\S+) · model ", stderr, re.MULTILINE)
    assert match, stderr
    return match.group(1)


def test_cli_prints_the_question_and_runs_resume_answers_it(sea_home: Path) -> None:
    asked = run_cli(sea_home, "ask", DEMO_CLARIFY, *DEMO)
    assert asked.returncode == 0, asked.stderr
    thread = _thread_of(asked.stderr)
    assert "⏸ question: Which temperature, in degrees Celsius, should I convert to Fahrenheit?" in asked.stderr
    assert "Question: Which temperature, in degrees Celsius, should I convert to Fahrenheit?" in asked.stdout
    assert f"Answer it with: python -m graph runs resume {thread} --answer TEXT" in asked.stdout

    refused = run_cli(sea_home, "runs", "resume", thread, *DEMO)
    assert refused.returncode == 2 and "is waiting for an answer to: Which temperature" in refused.stderr
    answered = run_cli(sea_home, "runs", "resume", thread, "--answer", "25", *DEMO)
    assert answered.returncode == 0, answered.stderr
    assert "The result is 77" in answered.stdout
    assert '⚙ celsius_to_fahrenheit v1({"celsius": 25' in answered.stderr
    again = run_cli(sea_home, "runs", "resume", thread, "--answer", "30", *DEMO)
    assert again.returncode == 2 and "no unfinished run" in again.stderr


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_cli_asks_on_the_terminal_and_the_next_message_on_the_thread_answers(sea_home: Path) -> None:
    from graph.cli import main

    out, err = io.StringIO(), io.StringIO()
    assert main(["ask", DEMO_CLARIFY, *DEMO], out=out, err=err, stdin=_Terminal("100\n")) == 0, err.getvalue()
    assert "? Which temperature, in degrees Celsius, should I convert to Fahrenheit?" in err.getvalue()
    assert "The result is 212" in out.getvalue() and "Question:" not in out.getvalue()

    out, err = io.StringIO(), io.StringIO()
    assert main(["ask", DEMO_CLARIFY, *DEMO], out=out, err=err, stdin=io.StringIO("")) == 0  # no terminal
    thread = _thread_of(err.getvalue())
    assert "Question: Which temperature" in out.getvalue()
    out, err = io.StringIO(), io.StringIO()
    assert main(["ask", "-40", "--thread", thread, *DEMO], out=out, err=err, stdin=io.StringIO("")) == 0
    assert f"note: answering the question thread {thread} is waiting on" in err.getvalue()
    assert "The result is -40" in out.getvalue()
