"""Driving runs for the app, without Streamlit: check the set-up, stream a turn, load a thread's past turns.

A run streams with `graph.events.STREAM_MODES` and `version="v2"` through `graph.runs.stream_run` (the same
path the CLI takes, `durability="sync"`), each chunk mapped to view events by `graph.events.map_chunk`, folded
into a `TurnView` by `ui.view.apply_event`, and every change handed to the page's callback.
"""

from __future__ import annotations

import json
import logging
import sqlite3
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from langgraph.types import Command
from pydantic import ValidationError

from graph import events as ev
from sea.settings import get_settings
from ui import view

log = logging.getLogger(__name__)

OnChange = Callable[[view.TurnView, view.Change], None]

NO_MODEL_HELP = (
    "No chat model is configured, so the agent cannot answer yet. Either set `SEA_MODEL=provider:model` with the "
    "provider's API key before `make app` (for example `SEA_MODEL=openai:gpt-4.1-mini` and `OPENAI_API_KEY=...`; "
    "`anthropic:...` with `ANTHROPIC_API_KEY`, `ollama:...`, or an OpenAI-compatible server with "
    "`SEA_MODEL_BASE_URL`), or choose **scripted:demo** in the sidebar: the offline demo, scripted, not a real "
    "model, which knows only its demo examples (one or more per route)."
)


class SetupError(Exception):
    """Something the user must fix before a run (settings, model, checkpointer); one clear message."""


@dataclass
class Problem:
    """A set-up problem to show instead of running: what is wrong and what to run or set."""

    title: str
    message: str


def one_line(exc: BaseException) -> str:
    """An exception as one short line (no traceback)."""
    text = " ".join(str(exc).split())
    if len(text) > 400:
        text = text[:399] + "…"
    return text or type(exc).__name__


def settings_problem() -> Problem | None:
    """A bad SEA_* setting as one sentence, or None."""
    try:
        get_settings()
    except ValidationError as exc:
        error = exc.errors()[0]
        where = ".".join(str(p) for p in error.get("loc", ())) or "settings"
        return Problem("Bad setting", f"SEA_{where.upper()}: {error.get('msg', 'invalid value')}.")
    return None


def model_problem(model: str | None) -> Problem | None:
    """Why `model` cannot be used (how to configure one), or None when it can."""
    from graph.models import ModelNotConfiguredError, get_chat_model

    if not model or not model.strip():
        return Problem("No model configured", NO_MODEL_HELP)
    settings = get_settings()
    try:
        get_chat_model(model, base_url=settings.model_base_url, temperature=settings.model_temperature)
    except ModelNotConfiguredError as exc:
        return Problem("The model cannot be used", f"{one_line(exc)}\n\n{NO_MODEL_HELP}")
    return None


def sandbox_problem() -> Problem | None:
    """Why the sandbox cannot run code (Docker unreachable, image missing, with what to run), or None."""
    from sandbox import SandboxError, get_sandbox

    try:
        get_sandbox().image_id()
    except SandboxError as exc:
        return Problem("The sandbox is not available", one_line(exc))
    except Exception as exc:  # docker-py raises its own types for odd daemon states
        return Problem(
            "The sandbox is not available",
            f"Docker could not be reached ({one_line(exc)}): start Docker, then build the image with "
            "`python -m sandbox build-image` (or `make setup`).",
        )
    return None


def open_graph() -> tuple[Any, Any]:
    """(compiled graph, saver) from Settings; the app keeps them in `st.cache_resource`."""
    from graph.builder import build_graph
    from graph.checkpointing import CheckpointerConfigError, make_checkpointer

    try:
        saver = make_checkpointer()
    except CheckpointerConfigError as exc:
        raise SetupError(str(exc)) from None
    except sqlite3.DatabaseError as exc:
        path = get_settings().checkpoints_path
        raise SetupError(
            f"The checkpoints file {path} cannot be opened ({one_line(exc)}); move it away to start with no history."
        ) from None
    return build_graph(saver), saver


def context_for(model: str) -> Any:
    """The run's Context with the chosen model (other fields from Settings)."""
    from graph.context import Context

    return Context(model=model.strip())


def parse_resume_value(text: str) -> Any:
    """An interrupt answer: JSON when it parses as JSON, else the plain string."""
    try:
        return json.loads(text)
    except (json.JSONDecodeError, RecursionError):  # not JSON, or nested past the parser's stack: the text
        return text


def run_turn(
    graph: Any,
    thread_id: str,
    graph_input: Any,
    *,
    model: str,
    request: str,
    on_change: OnChange | None = None,
    config: dict[str, Any] | None = None,
) -> view.TurnView:
    """Stream one run on a thread and fold it into a TurnView, calling `on_change` for each visible change.

    `graph_input` is `{"request": ...}` for a new turn, `None` to continue (resume, replay, fork from `config`),
    or a `Command(resume=...)` answering an interrupt. A failure of the stream itself becomes the turn's error
    (one line), never an exception for the page.
    """
    from graph.runs import stream_run, thread_config

    turn = view.TurnView(request=request, model=model)

    def on_event(event: ev.ViewEvent) -> None:
        change = view.apply_event(turn, event)
        if change is not None and on_change is not None:
            on_change(turn, change)

    run_config = config or thread_config(thread_id)
    try:
        result = stream_run(graph, graph_input, run_config, context=context_for(model), on_event=on_event)
    except Exception as exc:  # a run-level failure: shown as one line, the traceback only in the log
        log.debug("run failed", exc_info=exc)
        message = f"The run failed: {type(exc).__name__}: {one_line(exc)}"
        try:
            turn.unfinished = thread_status(graph, thread_id).next
        except Exception:  # the checkpointer itself may be what failed
            turn.unfinished = []
        if turn.unfinished:
            message += " It stopped at its last checkpoint: **Resume the run** continues it."
        on_event(ev.ErrorEvent(message=message))
        return turn
    before = [(step.state, step.summary) for step in turn.steps]
    view.finish_turn(turn, result.values, result.next, result.interrupts)
    if on_change is not None:
        for index, step in enumerate(turn.steps):  # steps the end of the run closed (a question asked, a stop)
            if index < len(before) and before[index] != (step.state, step.summary):
                on_change(turn, view.Change(step=index, label=True))
        on_change(turn, view.Change(answer=True))
    return turn


def resume_command(value: Any) -> Command:
    """The input that answers a pending interrupt."""
    return Command(resume=value)


@dataclass
class ThreadStatus:
    """What is pending on a thread: interrupts waiting for an answer, or nodes a stopped run never ran."""

    interrupts: list[Any]
    next: list[str]


def thread_status(graph: Any, thread_id: str) -> ThreadStatus:
    """Pending interrupts (`snapshot.tasks[*].interrupts`) and the next nodes of the thread's last checkpoint."""
    from graph.runs import thread_config

    snapshot = graph.get_state(thread_config(thread_id))
    interrupts = [
        getattr(item, "value", item) for task in (snapshot.tasks or ()) for item in (task.interrupts or ())
    ]
    return ThreadStatus(interrupts=interrupts, next=list(snapshot.next or ()))


def checkpoint_rows(graph: Any, thread_id: str) -> tuple[list[view.CheckpointRow], str]:
    """The thread's checkpoints with their values, and the id of the newest (the head); ([], "") if none."""
    from graph.runs import RunsError, history, thread_config

    try:
        infos = history(graph, thread_id)
    except RunsError:
        return [], ""
    values = {
        str(s.config["configurable"].get("checkpoint_id")): dict(s.values or {})
        for s in graph.get_state_history(thread_config(thread_id))
    }
    rows = [
        view.CheckpointRow(
            checkpoint_id=info.checkpoint_id,
            parent_id=info.parent_id,
            step=info.step,
            source=info.source,
            node=info.node,
            next=info.next,
            summary=info.summary,
            values=values.get(info.checkpoint_id, {}),
        )
        for info in infos
    ]
    head = graph.get_state(thread_config(thread_id)).config["configurable"].get("checkpoint_id", "")
    return rows, str(head)


def load_turns(graph: Any, thread_id: str) -> list[view.TurnView]:
    """The thread's past turns on its current branch, rebuilt from the checkpointer; a run waiting on a question
    shows that question as its last turn's answer."""
    rows, head = checkpoint_rows(graph, thread_id)
    turns = view.turns_from_checkpoints(rows, head) if rows else []
    status = thread_status(graph, thread_id)
    if turns and status.interrupts:
        view.finish_turn(turns[-1], {}, [], status.interrupts)
    return turns


def replay(graph: Any, thread_id: str, checkpoint_id: str, *, model: str, on_change: OnChange | None = None
           ) -> view.TurnView:
    """Re-run a thread from one of its checkpoints (a new branch); RunsError for a bad checkpoint."""
    from graph.runs import get_checkpoint, replay_config

    config = replay_config(graph, thread_id, checkpoint_id)
    request = str((get_checkpoint(graph, thread_id, checkpoint_id).values or {}).get("request", ""))
    return run_turn(graph, thread_id, None, model=model, request=f"(replay) {request}", on_change=on_change,
                    config=config)


def fork(graph: Any, thread_id: str, checkpoint_id: str, assignments: list[str], *, model: str,
         on_change: OnChange | None = None) -> view.TurnView:
    """Fork a thread at a checkpoint with `key=value` edits, then run the new branch; RunsError on bad input."""
    from graph.runs import fork as fork_at
    from graph.runs import get_checkpoint, parse_assignments, validate_edit

    values = parse_assignments([a for a in assignments if a.strip()])
    validate_edit(graph, values)
    config = fork_at(graph, thread_id, checkpoint_id, values)
    request = str(values.get("request") or (get_checkpoint(graph, thread_id, checkpoint_id).values or {}).get(
        "request", ""))
    return run_turn(graph, thread_id, None, model=model, request=f"(fork) {request}", on_change=on_change,
                    config=config)


def recent_threads(graph: Any, limit: int = 20) -> list[Any]:
    """The most recently updated threads (`graph.runs.ThreadInfo`), newest first."""
    from graph.runs import list_threads

    return list(list_threads(graph, limit=limit))


def library_tools() -> list[Any]:
    """The library's active tools (ToolManifest), sorted by name."""
    from graph.resources import get_library

    return list(get_library().list_tools())
