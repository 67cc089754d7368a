"""Durability: checkpoints on SQLite and a real PostgreSQL, replay, fork, and a killed run resumed.

The graph runs for real (real sandbox, real tool library) with a scripted model. PostgreSQL tests need
SEA_TEST_POSTGRES_URI (written by scripts/test_services.sh, which `make test` runs first).
"""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import textwrap
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from durability_helpers import PROJECT_ROOT, PYTHON, run_cli, subprocess_env
from graph_test_helpers import PYTHON_REQUEST, REVERSE_REQUEST, reverse_script
from langgraph.checkpoint.base import BaseCheckpointSaver
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.checkpoint.sqlite import SqliteSaver

from graph import resources
from graph.builder import build_graph
from graph.checkpointing import CheckpointerConfigError, make_checkpointer, open_checkpointer
from graph.context import Context
from graph.runs import (
    RunsError,
    fork,
    get_checkpoint,
    history,
    list_threads,
    replay_config,
    resume_config,
    stream_run,
    thread_config,
)
from sea.settings import Settings, get_settings

SYNTHESIS_PATH = [
    "input", "start", "retrieve", "decide", "spec", "write_tests", "red_phase",
    "implement", "verify", "register", "execute", "respond",
]  # fmt: skip
POSTGRES_URI = os.environ.get("SEA_TEST_POSTGRES_URI")
needs_postgres = pytest.mark.skipif(
    not POSTGRES_URI, reason="SEA_TEST_POSTGRES_URI is not set; run scripts/test_services.sh (make test does)"
)


# --- the saver factory -----------------------------------------------------------------------------------


def test_sqlite_is_the_default_and_lives_in_sea_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SEA_CHECKPOINTER", raising=False)
    settings = Settings(home=tmp_path / "home")
    with open_checkpointer(settings) as saver:
        assert isinstance(saver, SqliteSaver)
        mode = saver.conn.execute("PRAGMA journal_mode").fetchone()[0]
    assert mode.lower() == "wal"
    assert settings.checkpoints_path == tmp_path / "home" / "checkpoints.sqlite"
    assert settings.checkpoints_path.exists()
    tables = {r[0] for r in sqlite3.connect(settings.checkpoints_path).execute("SELECT name FROM sqlite_master")}
    assert {"checkpoints", "writes"} <= tables


def test_memory_checkpointer_on_request(tmp_path: Path) -> None:
    with open_checkpointer(Settings(home=tmp_path, checkpointer="memory")) as saver:
        assert isinstance(saver, InMemorySaver)
    assert not (tmp_path / "checkpoints.sqlite").exists()


def test_postgres_without_uri_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(CheckpointerConfigError, match="SEA_POSTGRES_URI"):
        make_checkpointer(Settings(home=tmp_path, checkpointer="postgres"))


def test_postgres_unreachable_is_one_sentence(tmp_path: Path) -> None:
    settings = Settings(
        home=tmp_path, checkpointer="postgres", postgres_uri="postgresql://nobody:x@127.0.0.1:1/none?connect_timeout=2"
    )
    with pytest.raises(CheckpointerConfigError, match="Cannot connect to PostgreSQL") as info:
        make_checkpointer(settings)
    assert "\n" not in str(info.value)


@needs_postgres
def test_postgres_saver_is_set_up_on_a_real_server(tmp_path: Path) -> None:
    from langgraph.checkpoint.postgres import PostgresSaver

    with open_checkpointer(Settings(home=tmp_path, checkpointer="postgres", postgres_uri=POSTGRES_URI)) as saver:
        assert isinstance(saver, PostgresSaver)
        with saver._cursor() as cur:
            cur.execute("SELECT to_regclass('public.checkpoints')::text AS t")
            assert cur.fetchone()["t"] == "checkpoints"


@pytest.mark.parametrize("backend", ["sqlite", "memory", pytest.param("postgres", marks=needs_postgres)])
def test_studio_checkpointer_yields_an_async_saver_on_the_same_storage(
    backend: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """What langgraph.json's checkpointer.path gives the server: an async saver scripts can read back."""
    import asyncio
    from typing import TypedDict

    from langgraph.graph import END, START, StateGraph

    from graph.checkpointing import studio_checkpointer

    class Toy(TypedDict, total=False):
        request: str
        answer: str

    builder = StateGraph(Toy)
    builder.add_node("respond", lambda state: {"answer": state["request"][::-1]})
    builder.add_edge(START, "respond")
    builder.add_edge("respond", END)
    monkeypatch.setenv("SEA_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("SEA_CHECKPOINTER", backend)
    if backend == "postgres":
        monkeypatch.setenv("SEA_POSTGRES_URI", str(POSTGRES_URI))
    get_settings.cache_clear()
    thread_id = f"studio-{uuid.uuid4().hex}"

    async def run_as_the_server_does() -> tuple[str, dict[str, Any]]:
        async with studio_checkpointer() as saver:
            graph = builder.compile(checkpointer=saver)
            config = {"configurable": {"thread_id": thread_id}}
            await graph.ainvoke({"request": "abc"}, config)
            return type(saver).__name__, dict((await graph.aget_state(config)).values)

    try:
        kind, values = asyncio.run(run_as_the_server_does())
        assert values == {"request": "abc", "answer": "cba"}
        assert kind == {"sqlite": "AsyncSqliteSaver", "memory": "InMemorySaver", "postgres": "AsyncPostgresSaver"}[
            backend
        ]
        if backend != "memory":  # scripts open the same storage with the sync saver and see the thread
            with open_checkpointer() as saver:
                item = saver.get_tuple({"configurable": {"thread_id": thread_id}})
                assert item is not None and item.checkpoint["channel_values"]["answer"] == "cba"
    finally:
        get_settings.cache_clear()


# --- a real run on each backend --------------------------------------------------------------------------

BACKENDS = ["sqlite", pytest.param("postgres", marks=needs_postgres)]


def _settings(backend: str) -> Settings:
    settings = get_settings()
    if backend == "postgres":
        return settings.model_copy(update={"checkpointer": "postgres", "postgres_uri": POSTGRES_URI})
    return settings


@pytest.fixture
def saver_factory(sea_home: Path) -> Iterator[Any]:
    """`saver_factory(backend)` opens a fresh saver (a new connection) on the test's storage."""
    opened: list[Any] = []

    def open_saver(backend: str) -> BaseCheckpointSaver:
        context = open_checkpointer(_settings(backend))
        opened.append(context)
        return context.__enter__()

    yield open_saver
    for context in reversed(opened):
        context.__exit__(None, None, None)


def _synthesize(saver: BaseCheckpointSaver, model_id: str) -> tuple[Any, str, Any]:
    graph = build_graph(saver)
    thread_id = f"durability-{uuid.uuid4().hex}"
    result = stream_run(graph, {"request": REVERSE_REQUEST}, thread_config(thread_id), context=Context(model=model_id))
    return graph, thread_id, result


def _checkpoint_before(graph: Any, thread_id: str, node: str) -> str:
    """The id of the first checkpoint whose next step is `node`."""
    checkpoints = history(graph, thread_id)
    found = [c.checkpoint_id for c in checkpoints if c.next == [node]]
    assert found, f"no checkpoint before {node}: " + " | ".join(f"{c.node}: {c.summary}" for c in checkpoints)
    return found[0]


@pytest.mark.docker
@pytest.mark.parametrize("backend", BACKENDS)
def test_checkpoints_are_persisted_and_listed(backend: str, saver_factory: Any, script: Any) -> None:
    _, model_id = script(**reverse_script())
    _, thread_id, result = _synthesize(saver_factory(backend), model_id)
    assert result.finished and "dlrow olleh" in result.values["answer"]

    # A new connection (as another process would open) sees the same thread and every step of it.
    reopened = build_graph(saver_factory(backend))
    listed = {t.thread_id: t for t in list_threads(reopened)}
    assert thread_id in listed
    assert listed[thread_id].request == REVERSE_REQUEST
    assert listed[thread_id].outcome == "answered" and listed[thread_id].next == []
    checkpoints = history(reopened, thread_id)
    assert [c.node for c in checkpoints] == SYNTHESIS_PATH
    assert [c.step for c in checkpoints] == list(range(-1, len(SYNTHESIS_PATH) - 1))
    assert "4 test(s) written" in checkpoints[SYNTHESIS_PATH.index("write_tests")].summary
    assert "passed" in checkpoints[SYNTHESIS_PATH.index("verify")].summary
    assert "reverse_string" in checkpoints[SYNTHESIS_PATH.index("register")].summary
    assert reopened.get_state(thread_config(thread_id)).values["answer"] == result.values["answer"]


@pytest.mark.docker
@pytest.mark.parametrize("backend", BACKENDS)
def test_replay_from_a_checkpoint_reruns_only_the_later_steps(
    backend: str, saver_factory: Any, script: Any
) -> None:
    _, model_id = script(**reverse_script())
    graph, thread_id, first = _synthesize(saver_factory(backend), model_id)
    before_execute = _checkpoint_before(graph, thread_id, "execute")

    replay_model, replay_id = script(**reverse_script())
    replayed = stream_run(
        build_graph(saver_factory(backend)), None, replay_config(graph, thread_id, before_execute),
        context=Context(model=replay_id),
    )  # fmt: skip
    assert replayed.values["answer"] == first.values["answer"]
    # Only respond asked the model again (execute takes the arguments the spec took from the same request);
    # nothing was re-synthesized.
    assert replay_model.kinds() == ["text"]
    assert [e.node for e in replayed.events if e.kind == "node_started"] == ["execute", "respond"]
    assert [v.version for v in resources.get_library().versions("reverse_string")] == [1]
    nodes = [c.node for c in history(graph, thread_id)]
    assert nodes[: len(SYNTHESIS_PATH)] == SYNTHESIS_PATH
    assert nodes[len(SYNTHESIS_PATH):] == ["replay", "execute", "respond"]


@pytest.mark.docker
@pytest.mark.parametrize("backend", BACKENDS)
def test_fork_with_an_edited_value_changes_the_outcome(backend: str, saver_factory: Any, script: Any) -> None:
    _, model_id = script(**reverse_script())
    graph, thread_id, first = _synthesize(saver_factory(backend), model_id)
    original_end = first.config
    before_execute = _checkpoint_before(graph, thread_id, "execute")

    fork_model, fork_id = script(
        ToolArguments=[lambda messages, kind: _arguments_from_prompt(messages)],
        text=reverse_script()["text"],
    )
    branch = fork(graph, thread_id, before_execute, {"request": PYTHON_REQUEST})
    assert branch["configurable"]["checkpoint_id"] != before_execute
    forked = stream_run(graph, None, branch, context=Context(model=fork_id))
    assert "nohtyP" in forked.values["answer"]
    assert forked.values["request"] == PYTHON_REQUEST
    assert fork_model.kinds() == ["ToolArguments", "text"]
    # The original branch is untouched: its last checkpoint still holds the first answer.
    assert "dlrow olleh" in graph.get_state(original_end).values["answer"]
    fork_row = next(c for c in history(graph, thread_id) if c.node == "fork")
    assert fork_row.next == ["execute"] and PYTHON_REQUEST in fork_row.summary


def _arguments_from_prompt(messages: list[Any]) -> Any:
    from graph.scripted import tool_call

    text = "\n".join(str(m.content) for m in messages)
    assert PYTHON_REQUEST in text, "execute did not see the edited request"
    return tool_call("ToolArguments", {"text": "Python"})


@pytest.mark.docker
def test_fork_refuses_unknown_keys_and_bad_values(saver_factory: Any, script: Any) -> None:
    _, model_id = script(**reverse_script())
    graph, thread_id, _ = _synthesize(saver_factory("sqlite"), model_id)
    before_execute = _checkpoint_before(graph, thread_id, "execute")
    count = len(history(graph, thread_id))
    with pytest.raises(RunsError, match="Unknown state key"):
        fork(graph, thread_id, before_execute, {"no_such_key": 1})
    with pytest.raises(RunsError, match="Bad value for repairs"):
        fork(graph, thread_id, before_execute, {"repairs": "many"})
    with pytest.raises(RunsError, match="no checkpoint"):
        fork(graph, thread_id, "ffffffffffff", {"request": "x"})
    with pytest.raises(RunsError, match="No thread"):
        get_checkpoint(graph, "no-such-thread", before_execute)
    with pytest.raises(RunsError, match="no unfinished run"):
        resume_config(graph, thread_id)
    assert len(history(graph, thread_id)) == count  # nothing was written by the refused edits


# --- a run killed mid-synthesis, resumed in a new process ---------------------------------------------------

CHILD = textwrap.dedent(
    """
    import sys, time
    from pathlib import Path
    from graph_test_helpers import REVERSE_REQUEST, reverse_script
    from graph.builder import build_graph
    from graph.checkpointing import open_checkpointer
    from graph.context import Context
    from graph.runs import stream_run, thread_config
    from graph.scripted import ScriptedChatModel, register_scripted

    thread_id, marker = sys.argv[1], Path(sys.argv[2])

    def hang_in_implement(messages, kind):
        marker.write_text("implementing")
        time.sleep(600)  # the parent SIGKILLs us here

    model = ScriptedChatModel(by_kind=reverse_script(Implementation=[hang_in_implement]))
    with open_checkpointer() as saver:
        stream_run(build_graph(saver), {"request": REVERSE_REQUEST}, thread_config(thread_id),
                   context=Context(model=register_scripted("child", model)), durability="sync")
    """
)


@pytest.mark.docker
@pytest.mark.slow
def test_run_killed_mid_synthesis_resumes_from_its_checkpoint(sea_home: Path, tmp_path: Path) -> None:
    thread_id = f"killed-{uuid.uuid4().hex}"
    marker = tmp_path / "in-implement"
    child_script = tmp_path / "child.py"
    child_script.write_text(CHILD)
    env = subprocess_env(sea_home, PYTHONPATH=f"{PROJECT_ROOT}{os.pathsep}{Path(__file__).parent}")
    child = subprocess.Popen(
        [PYTHON, str(child_script), thread_id, str(marker)], cwd=PROJECT_ROOT, env=env,
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 240
        while not marker.exists():
            assert child.poll() is None, f"the child ended early: {child.stdout.read() if child.stdout else ''}"
            assert time.monotonic() < deadline, "the child never reached implement"
            time.sleep(0.2)
        child.send_signal(signal.SIGKILL)
        assert child.wait(timeout=30) == -signal.SIGKILL
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()

    # What the killed process left: every step up to the red phase, and implement still to run.
    with open_checkpointer() as saver:
        graph = build_graph(saver)
        checkpoints = history(graph, thread_id)
        assert [c.node for c in checkpoints] == SYNTHESIS_PATH[: SYNTHESIS_PATH.index("red_phase") + 1]
        assert checkpoints[-1].next == ["implement"]
        assert [t.next for t in list_threads(graph) if t.thread_id == thread_id] == [["implement"]]

    # A new process resumes it from that checkpoint through the CLI; the earlier steps do not run again.
    resumed = run_cli(sea_home, "runs", "resume", thread_id, "--model", "scripted:demo")
    assert resumed.returncode == 0, resumed.stderr
    assert "dlrow olleh" in resumed.stdout
    started = [line[2:].strip() for line in resumed.stderr.splitlines() if line.startswith("▶ ")]
    assert started == ["implement", "verify", "register", "execute", "respond"]

    with open_checkpointer() as saver:
        graph = build_graph(saver)
        assert [c.node for c in history(graph, thread_id)] == SYNTHESIS_PATH
        assert graph.get_state(thread_config(thread_id)).values["outcome"] == "answered"
    resources.reset()
    get_settings.cache_clear()
    assert [v.version for v in resources.get_library().versions("reverse_string")] == [1]
