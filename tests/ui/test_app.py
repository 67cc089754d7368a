"""The Streamlit app through AppTest, driving real runs: the real graph, sandbox, library and checkpointer in a
temporary SEA_HOME, with the scripted demo model selected explicitly (SEA_MODEL=scripted:demo)."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from streamlit.testing.v1 import AppTest

from graph.checkpointing import close_checkpointer
from graph.runs import thread_config
from sandbox import get_sandbox
from tests.ui.ui_helpers import APP, point_at, restore
from ui import runner
from ui.view import DEMO_LABEL

RUN_TIMEOUT = 300  # a synthesis run on a busy 2-core machine; never a speed assertion


def new_app(thread: str | None = None) -> AppTest:
    """The app, run once (optionally opening a thread as a shared link would)."""
    at = AppTest.from_file(str(APP), default_timeout=60)
    if thread:
        at.query_params["thread"] = thread
    return at.run(timeout=RUN_TIMEOUT)


def ask(at: AppTest, request: str) -> AppTest:
    """Type a request in the chat input and wait for the run."""
    return at.chat_input[0].set_value(request).run(timeout=RUN_TIMEOUT)


def texts(block: Any) -> str:
    """Every text shown in a block (markdown, captions, boxes, code), one per line."""
    parts: list[str] = []
    for kind in ("markdown", "caption", "error", "warning", "info", "code"):
        parts.extend(str(element.value) for element in getattr(block, kind))
    return "\n".join(parts)


def result_lines(text: str) -> list[str]:
    """The test-result lines (✔/✘) of a block's text."""
    return [line for line in text.splitlines() if line.startswith((":green[✔]", ":red[✘]"))]


def assistant_messages(at: AppTest) -> list[Any]:
    return [m for m in at.chat_message if m.name == "assistant"]


def nodes_of(at: AppTest) -> list[str]:
    return [status.label.split(" — ")[0] for status in at.status]


def test_percentage_shows_a_status_per_node_and_the_answer(demo_home: Path) -> None:
    at = new_app()
    assert not at.exception
    thread_id = at.query_params["thread"]
    assert thread_id == at.session_state["thread_id"]

    ask(at, "What is 15 percent of 300?")

    assert not at.exception
    assert nodes_of(at) == ["retrieve", "decide", "execute", "respond"]
    assert all(status.state == "complete" for status in at.status)
    answer = texts(assistant_messages(at)[-1])
    assert "The result is 45" in answer
    assert "LLM calls" in answer and DEMO_LABEL in answer
    assert "Reuse calculate\\_percentage" in texts(at.status[1])  # the decision, with its reason
    assert at.query_params["thread"] == thread_id  # the conversation stays on its thread
    library = [e.label for e in at.sidebar.expander]
    assert any(label.startswith("calculate_percentage v1 · 1 call(s)") for label in library), library


def test_reverse_shows_red_and_green_phases_and_a_reload_reopens_the_thread(demo_home: Path) -> None:
    at = new_app()
    thread_id = at.query_params["thread"]
    ask(at, "Reverse the string 'hello world'")

    assert not at.exception
    nodes = nodes_of(at)
    assert nodes == [
        "retrieve", "decide", "spec", "write_tests", "red_phase", "implement", "verify", "register", "execute",
        "respond",
    ]  # fmt: skip
    red = texts(at.status[nodes.index("red_phase")])
    green = texts(at.status[nodes.index("verify")])
    assert red.count("fails on the stub, as it should") >= 2
    assert green.count("passes") == red.count("fails on the stub, as it should")
    code = [c.value for c in at.code]
    assert any("def test_" in c for c in code) and any("def reverse_string" in c for c in code)
    assert "dlrow olleh" in texts(assistant_messages(at)[-1])

    # A reload (or a shared link) reopens the conversation from the checkpointer.
    reloaded = new_app(thread=thread_id)
    assert not reloaded.exception
    assert reloaded.session_state["thread_id"] == thread_id
    assert nodes_of(reloaded) == nodes
    assert result_lines(texts(reloaded.status[nodes.index("red_phase")])) == result_lines(red)
    assert result_lines(texts(reloaded.status[nodes.index("verify")])) == result_lines(green)
    assert [m.markdown[0].value for m in reloaded.chat_message if m.name == "user"] == [
        "Reverse the string 'hello world'"
    ]
    assert "dlrow olleh" in texts(assistant_messages(reloaded)[-1])

    # The conversation continues on the same thread, reusing the tool it just made.
    ask(reloaded, "Reverse 'Python'")
    assert not reloaded.exception
    assert "nohtyP" in texts(assistant_messages(reloaded)[-1])
    assert nodes_of(reloaded)[len(nodes):] == ["retrieve", "decide", "execute", "respond"]


def test_no_model_configured_says_how_to_configure_one(unconfigured_home: Path) -> None:
    at = new_app()
    assert not at.exception
    assert at.sidebar.selectbox[0].value == ""  # never silently the scripted model
    message = "\n".join(w.value for w in at.warning)
    assert "No model configured" in message and "SEA_MODEL" in message and "scripted:demo" in message

    ask(at, "What is 15 percent of 300?")
    assert not at.exception
    assert len(at.status) == 0  # nothing ran
    assert "SEA_MODEL" in texts(assistant_messages(at)[-1])
    assert [m.markdown[0].value for m in at.chat_message if m.name == "user"] == ["What is 15 percent of 300?"]
    compiled, saver = runner.open_graph()
    try:
        assert not list(compiled.get_state_history(thread_config(at.session_state["thread_id"])))
    finally:
        close_checkpointer(saver)

    # Choosing the offline demo in the sidebar makes the page say what it is.
    at.sidebar.selectbox[0].set_value("scripted:demo").run()
    assert not at.exception
    assert not any("No model configured" in w.value for w in at.warning)
    assert any(DEMO_LABEL in c.value for c in at.caption)


def test_a_failed_run_shows_the_honest_failure(demo_home: Path) -> None:
    at = ask(new_app(), "What's the weather in Paris?")
    assert not at.exception
    states = {s.label.split(" — ")[0]: s.state for s in at.status}
    assert states["decide"] == "error" and states["respond"] == "complete"
    failure = "\n".join(e.value for e in assistant_messages(at)[-1].error)
    assert "The decide step failed" in failure and "only knows its demo examples" in failure


def test_new_conversation_and_empty_requests(demo_home: Path) -> None:
    at = new_app()
    first = at.query_params["thread"]
    at.sidebar.button[0].click().run()
    second = at.query_params["thread"]
    assert second != first and at.session_state["thread_id"] == second

    ask(at, "   ")
    assert not at.exception
    assert any("The request is empty" in w.value for w in at.warning)
    assert len(at.status) == 0


@pytest.fixture
def missing_image_home(tmp_path: Path, seeded_home: Path) -> Iterator[Path]:
    """The demo with SEA_SANDBOX_IMAGE naming an image that does not exist (a fault, injected by name)."""
    import shutil

    home = tmp_path / "sea-home"
    shutil.copytree(seeded_home, home)
    saved = point_at(home, SEA_MODEL="scripted:demo", SEA_SANDBOX_IMAGE=f"sea-sandbox:missing-{uuid.uuid4().hex[:6]}")
    get_sandbox().close()  # the process-wide sandbox is rebuilt from the new settings
    try:
        yield home
    finally:
        restore(saved)
        get_sandbox().close()
        assert "missing" not in os.environ.get("SEA_SANDBOX_IMAGE", "")


def test_missing_sandbox_image_says_what_to_run(missing_image_home: Path) -> None:
    at = new_app()
    assert not at.exception
    message = "\n".join(e.value for e in at.error)
    assert "The sandbox is not available" in message and "python -m sandbox build-image" in message

    ask(at, "What is 15 percent of 300?")
    assert not at.exception
    assert len(at.status) == 0
    assert "build-image" in texts(assistant_messages(at)[-1])


def test_a_stopped_run_can_be_resumed(demo_home: Path) -> None:
    # A run stopped after `decide` (its process gone mid-run): the checkpoints up to there are on disk.
    compiled, saver = runner.open_graph()
    thread_id = str(uuid.uuid4())
    try:
        stream = compiled.stream(
            {"request": "What is 15 percent of 300?"}, thread_config(thread_id), context=runner.context_for(
                "scripted:demo"), stream_mode=["updates"], durability="sync", version="v2",
        )  # fmt: skip
        for chunk in stream:
            if "decide" in chunk["data"]:
                break
        stream.close()
        assert compiled.get_state(thread_config(thread_id)).next == ("execute",)
    finally:
        close_checkpointer(saver)

    at = new_app(thread=thread_id)
    assert not at.exception
    assert any("stopped before execute" in i.value for i in at.info)
    assert nodes_of(at) == ["retrieve", "decide"]

    resume = next(b for b in at.button if b.label == "Resume the run")
    resume.click().run(timeout=RUN_TIMEOUT)
    assert not at.exception
    assert nodes_of(at)[-2:] == ["execute", "respond"]
    assert "The result is 45" in texts(assistant_messages(at)[-1])
    assert not any("stopped before" in i.value for i in at.info)


@pytest.fixture
def no_docker_home(tmp_path: Path, seeded_home: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """The demo with DOCKER_HOST pointing at a socket nobody listens on (a fault, injected by address)."""
    import shutil

    home = tmp_path / "sea-home"
    shutil.copytree(seeded_home, home)
    saved = point_at(home, SEA_MODEL="scripted:demo")
    monkeypatch.setenv("DOCKER_HOST", f"unix://{tmp_path / 'no-docker.sock'}")
    get_sandbox().close()
    try:
        yield home
    finally:
        monkeypatch.undo()
        restore(saved)
        get_sandbox().close()


def test_unreachable_docker_says_what_to_do(no_docker_home: Path) -> None:
    at = new_app()
    assert not at.exception
    message = "\n".join(e.value for e in at.error)
    assert "The Docker daemon is unreachable" in message and "start Docker" in message

    ask(at, "What is 15 percent of 300?")
    assert not at.exception
    assert len(at.status) == 0


def test_sidebar_replay_and_a_refused_fork(demo_home: Path) -> None:
    at = ask(new_app(), "What is 15 percent of 300?")
    checkpoints_before = next(e.label for e in at.sidebar.expander if e.label.startswith("Checkpoints"))

    # A fork with an unknown state key is refused with one sentence; nothing runs.
    at.sidebar.text_area(key="fork_edits").set_value("nonsense_key=1")
    next(b for b in at.sidebar.button if b.label == "Fork and run").click().run(timeout=RUN_TIMEOUT)
    assert not at.exception
    assert any("Unknown state key(s) nonsense_key" in e.value for e in at.error)

    # Replay from the first checkpoint re-runs the steps on a new branch of the same thread.
    at.sidebar.selectbox(key="checkpoint_choice").set_value(at.sidebar.selectbox(key="checkpoint_choice").options[0])
    next(b for b in at.sidebar.button if b.label == "Replay from here").click().run(timeout=RUN_TIMEOUT)
    assert not at.exception
    assert "The result is 45" in texts(assistant_messages(at)[-1])
    assert [m.markdown[0].value for m in at.chat_message if m.name == "user"][-1].startswith("\\(replay from")
    checkpoints_after = next(e.label for e in at.sidebar.expander if e.label.startswith("Checkpoints"))
    assert checkpoints_after != checkpoints_before


def test_recent_conversations_reopen_a_thread(demo_home: Path) -> None:
    at = ask(new_app(), "What is 15 percent of 300?")
    first = at.session_state["thread_id"]
    next(b for b in at.sidebar.button if b.label == "New conversation").click().run()
    assert at.session_state["thread_id"] != first and len(at.status) == 0

    opener = next(b for b in at.sidebar.button if b.label == "What is 15 percent of 300?")
    opener.click().run(timeout=RUN_TIMEOUT)
    assert not at.exception
    assert at.session_state["thread_id"] == first and at.query_params["thread"] == first
    assert nodes_of(at) == ["retrieve", "decide", "execute", "respond"]
    assert "The result is 45" in texts(assistant_messages(at)[-1])


def test_an_unreadable_checkpoints_file_is_one_clear_message(demo_home: Path) -> None:
    (demo_home / "checkpoints.sqlite").write_bytes(b"this is not a database\n" * 200)  # a fault, injected
    at = new_app()
    assert not at.exception
    message = "\n".join(e.value for e in at.error)
    assert "checkpoints.sqlite cannot be opened" in message and "move it away" in message


def test_a_bad_setting_is_one_clear_message(demo_home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from sea.settings import get_settings

    monkeypatch.setenv("SEA_MAX_REPAIRS", "many")
    get_settings.cache_clear()
    at = new_app()
    assert not at.exception
    assert any("SEA_MAX_REPAIRS" in e.value for e in at.error)
    monkeypatch.undo()
    get_settings.cache_clear()


def test_the_route_shows_in_the_trace_and_a_decline_builds_nothing(demo_home: Path) -> None:
    from graph.scripted import DEMO_DECLINE

    at = new_app()
    tools_before = [e.label for e in at.sidebar.expander if " v" in e.label]
    ask(at, DEMO_DECLINE)
    assert not at.exception
    assert nodes_of(at) == ["retrieve", "decide", "respond"]
    assert "Route decline · Decline" in texts(at.status[1])  # the decision, with its reason
    answer = texts(assistant_messages(at)[-1])
    assert "I can't know tomorrow's weather" in answer
    assert answer.count("1 LLM call ·") == 1  # the usage once, as a caption
    assert [e.label for e in at.sidebar.expander if " v" in e.label] == tools_before


def test_a_question_shows_in_the_chat_and_the_next_message_answers_it(demo_home: Path) -> None:
    from graph.scripted import DEMO_CLARIFY

    at = new_app()
    thread_id = at.query_params["thread"]
    ask(at, DEMO_CLARIFY)
    assert not at.exception
    assert nodes_of(at) == ["retrieve", "decide", "clarify"]
    assert "Route clarify · Ask a question" in texts(at.status[1])
    question = texts(assistant_messages(at)[-1])
    assert "Which temperature, in degrees Celsius, should I convert to Fahrenheit?" in question
    assert "Your next message answers it" in question
    labels = [button.label for button in at.main.button]
    assert "Resume the run" not in labels and not at.main.text_input  # the chat input answers
    compiled, _saver = runner.open_graph()
    assert runner.thread_status(compiled, thread_id).next == ["clarify"]

    ask(at, "25")
    assert not at.exception
    users = [texts(m) for m in at.chat_message if m.name == "user"]
    assert users[-1] == "25", [(m.name, texts(m)[:80]) for m in at.chat_message]  # the answer, as the user's
    answer = texts(assistant_messages(at)[-1])
    assert "The result is 77" in answer
    assert nodes_of(at)[-4:] == ["clarify", "decide", "execute", "respond"]
    assert runner.thread_status(compiled, thread_id) == runner.ThreadStatus(interrupts=[], next=[])
    values = compiled.get_state(thread_config(thread_id)).values
    assert values["clarifications"][0]["answer"] == "25" and values["result"]["result"] == 77

    reopened = new_app(thread_id)  # a reload rebuilds the thread from its checkpoints
    assert not reopened.exception
    assert "The result is 77" in texts(assistant_messages(reopened)[-1])


def test_a_reload_while_a_question_waits_shows_the_question(demo_home: Path) -> None:
    from graph.scripted import DEMO_CLARIFY

    at = new_app()
    thread_id = at.query_params["thread"]
    ask(at, DEMO_CLARIFY)
    reopened = new_app(thread_id)
    assert not reopened.exception
    last = texts(assistant_messages(reopened)[-1])
    assert "Which temperature, in degrees Celsius" in last and "stopped before" not in last
    ask(reopened, "100")
    assert "The result is 212" in texts(assistant_messages(reopened)[-1])
