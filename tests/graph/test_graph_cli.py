"""`python -m graph` through a child process: bad input, no model, and a real conversation with the demo model."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from durability_helpers import run_cli
from graph_test_helpers import PERCENT_REQUEST, PYTHON_REQUEST, REVERSE_REQUEST

DEMO = ("--model", "scripted:demo")


def _one_line_error(result: object, *fragments: str) -> None:
    stderr = result.stderr.strip()  # type: ignore[attr-defined]
    assert result.returncode == 2, stderr  # type: ignore[attr-defined]
    assert "Traceback" not in stderr
    assert len(stderr.splitlines()) == 1, stderr
    for fragment in fragments:
        assert fragment in stderr


def test_no_model_configured_says_how_to_configure_one(sea_home: Path) -> None:
    result = run_cli(sea_home, "ask", REVERSE_REQUEST)
    _one_line_error(result, "error: No chat model is configured", "SEA_MODEL", "scripted:demo")
    assert result.stdout == ""
    listing = run_cli(sea_home, "runs", "list")
    assert listing.returncode == 0 and "No threads yet" in listing.stdout  # nothing ran, nothing was stored


@pytest.mark.parametrize(
    ("args", "env", "fragment"),
    [
        (["ask", "   ", *DEMO], {}, "The request is empty"),
        (["ask", "hi", "--model", "nonsense"], {}, "not of the form provider:model"),
        (["ask", "hi", "--model", "scripted:nobody"], {}, "No scripted model named 'nobody'"),
        (["runs", "fork", "t", "c"], {}, "--set"),
        (["runs", "fork", "t", "c", "--set", "novalue", *DEMO], {}, "--set expects key=value"),
        (["runs", "show", "no-such-thread"], {}, "No thread 'no-such-thread'"),
        (["runs", "resume", "no-such-thread", *DEMO], {}, "No thread 'no-such-thread'"),
        (["runs", "replay", "no-such-thread", "abcdef", *DEMO], {}, "No thread 'no-such-thread'"),
        (["runs", "list", "--limit", "many"], {}, "invalid int value"),
        (["frobnicate"], {}, "invalid choice"),
        (["runs", "list"], {"SEA_CHECKPOINTER": "postgres"}, "SEA_POSTGRES_URI"),
        (["runs", "list"], {"SEA_CHECKPOINTER": "mongo"}, "Bad setting SEA_CHECKPOINTER"),
    ],
)
def test_bad_input_is_one_line_and_exit_code_2(
    sea_home: Path, args: list[str], env: dict[str, str], fragment: str
) -> None:
    _one_line_error(run_cli(sea_home, *args, **env), fragment)


def _thread_of(stderr: str) -> str:
    match = re.search(r"^thread (\S+) · model ", stderr, re.MULTILINE)
    assert match, stderr
    return match.group(1)


def _started(stderr: str) -> list[str]:
    return [line[2:].strip() for line in stderr.splitlines() if line.startswith("▶ ")]


def _usage(stdout: str) -> tuple[int, int, int]:
    match = re.search(r"^LLM: (\d+) calls, (\d+) input tokens, (\d+) output tokens · thread ", stdout, re.MULTILINE)
    assert match, stdout
    return int(match.group(1)), int(match.group(2)), int(match.group(3))


def _checkpoint_rows(show_stdout: str) -> list[dict[str, str]]:
    rows = []
    for line in show_stdout.splitlines()[1:]:
        parts = line.split()
        rows.append({"step": parts[0], "id": parts[1], "node": parts[2], "next": parts[3]})
    return rows


@pytest.mark.docker
@pytest.mark.slow
def test_a_conversation_inspected_replayed_and_forked(sea_home: Path) -> None:
    first = run_cli(sea_home, "ask", REVERSE_REQUEST, *DEMO, "--show-code")
    assert first.returncode == 0, first.stderr
    thread = _thread_of(first.stderr)
    assert "dlrow olleh" in first.stdout and "[scripted demo model]" in first.stdout
    calls, tokens_in, tokens_out = _usage(first.stdout)
    assert calls >= 5 and tokens_in > 0 and tokens_out > 0
    assert _started(first.stderr) == [
        "retrieve", "decide", "spec", "write_tests", "red_phase", "implement", "verify", "register", "execute",
        "respond",
    ]  # fmt: skip
    assert "red   test_tool.py::test_reverses_a_phrase: failed (as it should, on the stub)" in first.stderr
    assert "green test_tool.py::test_reverses_a_phrase: passed" in first.stderr
    assert "    │ def reverse_string(text: str) -> str:" in first.stderr  # --show-code
    assert '⚙ reverse_string v1({"text": "hello world"}) in the sandbox' in first.stderr

    # --thread continues the conversation; the new tool is reused without any synthesis step.
    second = run_cli(sea_home, "ask", PYTHON_REQUEST, "--thread", thread, *DEMO)
    assert second.returncode == 0, second.stderr
    assert "nohtyP" in second.stdout and _thread_of(second.stderr) == thread
    assert not {"spec", "write_tests", "implement"} & set(_started(second.stderr))

    listing = run_cli(sea_home, "runs", "list")
    assert listing.returncode == 0
    (row,) = [line for line in listing.stdout.splitlines() if line.startswith(thread)]
    assert "answered" in row and PYTHON_REQUEST in row

    show = run_cli(sea_home, "runs", "show", thread)
    assert show.returncode == 0, show.stderr
    rows = _checkpoint_rows(show.stdout)
    assert [r["node"] for r in rows].count("respond") == 2  # two turns on one thread
    before_execute = next(r for r in rows if r["next"] == "execute")  # first turn, after register

    refused = run_cli(sea_home, "runs", "fork", thread, before_execute["id"], "--set", "colour=blue", *DEMO)
    _one_line_error(refused, "Unknown state key(s) colour", "request")

    replay = run_cli(sea_home, "runs", "replay", thread, before_execute["id"][-12:], *DEMO)
    assert replay.returncode == 0, replay.stderr
    assert "dlrow olleh" in replay.stdout and _started(replay.stderr) == ["execute", "respond"]

    forked = run_cli(
        sea_home, "runs", "fork", thread, before_execute["id"], "--set", f"request={PYTHON_REQUEST}", *DEMO
    )
    assert forked.returncode == 0, forked.stderr
    assert "nohtyP" in forked.stdout and "dlrow olleh" not in forked.stdout
    assert '⚙ reverse_string v1({"text": "Python"})' in forked.stderr

    after = _checkpoint_rows(run_cli(sea_home, "runs", "show", thread).stdout)
    assert [r["node"] for r in after].count("fork") == 1 and [r["node"] for r in after].count("replay") == 1
    _one_line_error(run_cli(sea_home, "runs", "resume", thread, *DEMO), "no unfinished run")


@pytest.mark.docker
def test_a_failed_run_is_told_plainly_with_exit_code_1(sea_home: Path) -> None:
    result = run_cli(sea_home, "ask", "What's the weather in Paris?", *DEMO)
    assert result.returncode == 1, result.stderr
    assert "Traceback" not in result.stderr + result.stdout
    assert "only knows its demo examples" in result.stdout  # the demo says what it can do, in the answer
    assert "✗ decide: ScriptedModelError: The scripted demo model only knows" in result.stderr
    assert "✓ error_handler: error: The decide step failed" in result.stderr
    assert _started(result.stderr)[-1] == "respond"
    assert _usage(result.stdout)[0] == 0


@pytest.mark.docker
def test_ask_on_a_thread_with_an_unfinished_run_says_so(sea_home: Path) -> None:
    """In-process (same code path as `python -m graph`): a forked, not yet run branch is an unfinished run."""
    import io

    from graph.builder import build_graph
    from graph.checkpointing import open_checkpointer
    from graph.cli import main
    from graph.runs import fork, history

    out, err = io.StringIO(), io.StringIO()
    assert main(["ask", PERCENT_REQUEST, *DEMO], out=out, err=err) == 0, err.getvalue()
    assert "45" in out.getvalue()
    thread = _thread_of(err.getvalue())
    with open_checkpointer() as saver:
        graph = build_graph(saver)
        before_execute = next(c for c in history(graph, thread) if c.next == ["execute"])
        fork(graph, thread, before_execute.checkpoint_id, {"request": PERCENT_REQUEST})

    out, err = io.StringIO(), io.StringIO()
    assert main(["runs", "list", "--limit", "1"], out=out, err=err) == 0
    (row,) = out.getvalue().splitlines()[1:]
    assert row.startswith(thread) and "next: execute" in row

    out, err = io.StringIO(), io.StringIO()
    assert main(["ask", PERCENT_REQUEST, "--thread", thread, *DEMO], out=out, err=err) == 0, err.getvalue()
    assert f"note: thread {thread} had an unfinished run (next: execute)" in err.getvalue()
    assert "45" in out.getvalue()


@pytest.mark.docker
def test_the_route_is_shown_and_the_usage_line_appears_once(sea_home: Path) -> None:
    from graph.scripted import DEMO_CHAT, DEMO_DECLINE

    decline = run_cli(sea_home, "ask", DEMO_DECLINE, *DEMO)
    assert decline.returncode == 0, decline.stderr
    assert "◆ route decline — [scripted demo model] A forecast needs live weather data." in decline.stderr
    assert "I can't know tomorrow's weather" in decline.stdout
    assert _started(decline.stderr) == ["retrieve", "decide", "respond"]
    assert _usage(decline.stdout)[0] == 1
    assert decline.stdout.count("LLM") == 1 and "LLM call" not in decline.stdout  # once, below the answer

    chat = run_cli(sea_home, "ask", DEMO_CHAT, *DEMO)
    assert chat.returncode == 0, chat.stderr
    assert "◆ route chat — " in chat.stderr and "word_count" in chat.stdout
    percent = run_cli(sea_home, "ask", PERCENT_REQUEST, *DEMO)
    assert "◆ route compute: reuse calculate_percentage — " in percent.stderr


class _Recording:
    """A stdout that keeps every write, to see the answer arrive in pieces."""

    def __init__(self) -> None:
        self.writes: list[str] = []

    def write(self, text: str) -> int:
        self.writes.append(text)
        return len(text)

    def flush(self) -> None:
        pass

    def getvalue(self) -> str:
        return "".join(self.writes)


@pytest.mark.docker
def test_the_answer_streams_token_by_token_and_is_printed_once(sea_home: Path) -> None:
    import io

    from graph.cli import main

    out, err = _Recording(), io.StringIO()
    assert main(["ask", PERCENT_REQUEST, *DEMO], out=out, err=err) == 0, err.getvalue()  # type: ignore[arg-type]
    text = out.getvalue()
    answer = "[scripted demo model] The result is 45.0."
    assert text.count(answer) == 1 and text.startswith(f"\n{answer}\nLLM: 2 calls, ")
    before_usage = out.writes[: next(i for i, w in enumerate(out.writes) if w.startswith("LLM: "))]
    pieces = [w for w in before_usage if w.strip()]
    assert len(pieces) >= 5 and "".join(pieces).strip() == answer  # one write per streamed word
