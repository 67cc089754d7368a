"""Threads and checkpoints: list, inspect, replay, fork and resume runs (from Python and the CLI).

Every function takes a graph compiled *with* a checkpointer (`build_graph(saver)`) or the saver itself.

- replay:  `stream(None, snapshot.config)`: the nodes after that checkpoint run again (model calls included).
- fork:    `update_state(snapshot.config, values, as_node=<the node that wrote it>)` makes a new branch
           checkpoint with the edited values and the same next step; running from it continues the branch.
- resume:  `stream(None, {"configurable": {"thread_id": ...}})` continues an interrupted or killed run from its
           last checkpoint.
"""

from __future__ import annotations

import json
import typing
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.base import BaseCheckpointSaver
from langgraph.pregel import Pregel
from langgraph.types import StateSnapshot
from pydantic import TypeAdapter, ValidationError

from graph.events import STREAM_MODES, ViewEvent, display_node, map_chunk, question_of, summarize_update

Durability = Literal["sync", "async", "exit"]


class RunsError(ValueError):
    """A bad thread id, checkpoint id or state edit; the message is one sentence for the user."""


@dataclass
class ThreadInfo:
    """One conversation thread in the checkpointer."""

    thread_id: str
    checkpoints: int
    last_checkpoint_id: str
    updated_at: str
    request: str = ""
    outcome: str | None = None
    next: list[str] = field(default_factory=list)


@dataclass
class CheckpointInfo:
    """One checkpoint of a thread, as `runs show` lists it."""

    checkpoint_id: str
    parent_id: str | None
    step: int
    source: str  # input | loop | update | fork
    node: str  # the node that wrote it ("input" for the run's input, "fork" for a state edit)
    created_at: str
    next: list[str]
    summary: str


@dataclass
class RunResult:
    """How a streamed run ended: the thread's final values and the config of its last checkpoint."""

    values: dict[str, Any]
    config: RunnableConfig
    next: list[str]
    events: list[ViewEvent] = field(default_factory=list)
    interrupts: list[Any] = field(default_factory=list)  # the values of interrupts waiting for an answer

    @property
    def finished(self) -> bool:
        """True when nothing is left to run on this thread."""
        return not self.next


def thread_config(thread_id: str, checkpoint_id: str | None = None) -> RunnableConfig:
    """The config naming a thread (and optionally one of its checkpoints)."""
    configurable: dict[str, Any] = {"thread_id": thread_id}
    if checkpoint_id:
        configurable["checkpoint_id"] = checkpoint_id
    return {"configurable": configurable}


def _checkpointer(graph: Pregel) -> BaseCheckpointSaver:
    saver = graph.checkpointer
    if not isinstance(saver, BaseCheckpointSaver):
        raise RunsError("This graph was compiled without a checkpointer; use build_graph(checkpointer).")
    return saver


# --- threads ---------------------------------------------------------------------------------------------


def _thread_rows(saver: BaseCheckpointSaver) -> list[tuple[str, int, str]]:
    """(thread_id, root checkpoints, newest checkpoint id) per thread, newest first."""
    query = (
        "SELECT thread_id, COUNT(*) AS n, MAX(checkpoint_id) AS last FROM checkpoints "
        "WHERE checkpoint_ns = '' GROUP BY thread_id ORDER BY last DESC"
    )
    conn = getattr(saver, "conn", None)
    module = type(saver).__module__
    if conn is not None and module.startswith("langgraph.checkpoint.sqlite"):
        with saver.lock:  # type: ignore[attr-defined]
            return [(str(t), int(n), str(last)) for t, n, last in conn.execute(query).fetchall()]
    if conn is not None and module.startswith("langgraph.checkpoint.postgres"):
        with saver._cursor() as cur:  # type: ignore[attr-defined]
            cur.execute(query)
            return [(str(r["thread_id"]), int(r["n"]), str(r["last"])) for r in cur.fetchall()]
    # Any other saver: walk every checkpoint through the public API.
    counts: dict[str, list[Any]] = {}
    for item in saver.list(None):
        configurable = item.config["configurable"]
        if configurable.get("checkpoint_ns", ""):
            continue
        thread_id = str(configurable["thread_id"])
        entry = counts.setdefault(thread_id, [0, ""])
        entry[0] += 1
        entry[1] = max(entry[1], str(configurable["checkpoint_id"]))
    rows = [(t, n, last) for t, (n, last) in counts.items()]
    return sorted(rows, key=lambda row: row[2], reverse=True)


def list_threads(graph: Pregel, limit: int | None = None) -> list[ThreadInfo]:
    """The threads in the graph's checkpointer, most recently updated first."""
    saver = _checkpointer(graph)
    threads: list[ThreadInfo] = []
    for thread_id, count, last in _thread_rows(saver)[:limit]:
        snapshot = graph.get_state(thread_config(thread_id))
        values: Mapping[str, Any] = snapshot.values or {}
        threads.append(
            ThreadInfo(
                thread_id=thread_id,
                checkpoints=count,
                last_checkpoint_id=last,
                updated_at=str(snapshot.created_at or ""),
                request=str(values.get("request", "")),
                outcome=values.get("outcome"),
                next=list(snapshot.next),
            )
        )
    return threads


# --- checkpoints -----------------------------------------------------------------------------------------


def _checkpoint_id(snapshot: StateSnapshot | None) -> str:
    if snapshot is None or not snapshot.config:
        return ""
    return str(snapshot.config["configurable"].get("checkpoint_id", ""))


def _changed(values: Mapping[str, Any], parent: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in values.items() if k not in parent or parent[k] != v}


def _describe(snapshot: StateSnapshot, parent: StateSnapshot | None) -> tuple[str, str]:
    """(writer node, one-line summary) for a checkpoint, from its parent's tasks and the values it changed."""
    source = str((snapshot.metadata or {}).get("source", ""))
    if source == "input":
        start = next((t.result for t in snapshot.tasks if t.name == "__start__" and t.result), None)
        request = (start or {}).get("request") if isinstance(start, Mapping) else None
        return "input", f"request: {request}" if request else "run input"
    changed = _changed(snapshot.values or {}, parent.values if parent else {})
    if source == "update":
        return "fork", "state edited: " + (summarize_update("fork", changed) if changed else "no change")
    if source == "fork":
        return "replay", "copy of an earlier checkpoint, replayed"
    writers = [display_node(t.name) for t in (parent.tasks if parent else ()) if t.name != "__start__"]
    node = ",".join(writers) if writers else "start"
    if node == "start":
        request = changed.get("request") or (snapshot.values or {}).get("request")
        return node, f"request: {request}" if request else summarize_update(node, changed)
    return node, summarize_update(node, changed)


def _history(graph: Pregel, thread_id: str) -> list[StateSnapshot]:
    _checkpointer(graph)
    snapshots = list(graph.get_state_history(thread_config(thread_id)))
    if not snapshots:
        raise RunsError(f"No thread {thread_id!r} in the checkpointer; `runs list` shows the threads.")
    return snapshots


def history(graph: Pregel, thread_id: str) -> list[CheckpointInfo]:
    """The thread's checkpoints, oldest first, each with the node that wrote it and a summary."""
    snapshots = _history(graph, thread_id)
    by_id = {_checkpoint_id(s): s for s in snapshots}
    infos: list[CheckpointInfo] = []
    for snapshot in reversed(snapshots):
        parent_id = (
            str(snapshot.parent_config["configurable"].get("checkpoint_id"))
            if snapshot.parent_config
            else None
        )
        node, summary = _describe(snapshot, by_id.get(parent_id or ""))
        metadata = snapshot.metadata or {}
        infos.append(
            CheckpointInfo(
                checkpoint_id=_checkpoint_id(snapshot),
                parent_id=parent_id,
                step=int(metadata.get("step", -1)),
                source=str(metadata.get("source", "")),
                node=node,
                created_at=str(snapshot.created_at or ""),
                next=list(snapshot.next),
                summary=summary,
            )
        )
    return infos


def get_checkpoint(graph: Pregel, thread_id: str, checkpoint_id: str) -> StateSnapshot:
    """The snapshot of one checkpoint, named by its id or a unique part of it (at least 6 characters)."""
    checkpoint_id = checkpoint_id.strip()
    snapshots = _history(graph, thread_id)
    exact = [s for s in snapshots if _checkpoint_id(s) == checkpoint_id]
    if exact:
        return exact[0]
    wanted = checkpoint_id.replace("-", "").lower()
    if len(wanted) < 6:
        raise RunsError(f"Checkpoint id {checkpoint_id!r} is too short; give at least 6 characters of it.")
    # Ids are time-ordered uuid6 strings whose neighbours share a prefix, so any unique part of one will do.
    matches = [s for s in snapshots if wanted in _checkpoint_id(s).replace("-", "").lower()]
    if not matches:
        raise RunsError(f"Thread {thread_id!r} has no checkpoint {checkpoint_id!r}; `runs show` lists them.")
    if len(matches) > 1:
        raise RunsError(f"Checkpoint id {checkpoint_id!r} matches {len(matches)} checkpoints; give more of it.")
    return matches[0]


# --- replay, fork, resume --------------------------------------------------------------------------------


def replay_config(graph: Pregel, thread_id: str, checkpoint_id: str) -> RunnableConfig:
    """The config to replay a thread from one of its checkpoints (run it with input None)."""
    snapshot = get_checkpoint(graph, thread_id, checkpoint_id)
    if not snapshot.next:
        raise RunsError(
            f"Checkpoint {_checkpoint_id(snapshot)} is the end of a run, so there is nothing to replay from it."
        )
    return snapshot.config


def state_keys(graph: Pregel) -> dict[str, Any]:
    """The graph's state keys and their type annotations."""
    schema = graph.builder.state_schema  # type: ignore[attr-defined]
    return typing.get_type_hints(schema)


def parse_assignments(assignments: list[str]) -> dict[str, Any]:
    """`key=value` strings to a dict; a value is JSON when it parses as JSON, else the plain string. JSON
    nested deeper than the sandbox's MAX_JSON_DEPTH is refused."""
    from sandbox.models import MAX_JSON_DEPTH, json_depth  # the one limit for JSON values; imported on use

    values: dict[str, Any] = {}
    for assignment in assignments:
        key, sep, raw = assignment.partition("=")
        key = key.strip()
        if not sep or not key:
            raise RunsError(f"--set expects key=value, got {assignment!r}.")
        too_deep = RunsError(
            f"--set {key}: the JSON value nests more than {MAX_JSON_DEPTH} levels of lists and objects, "
            "the most a state value may have."
        )
        try:
            values[key] = json.loads(raw)
        except json.JSONDecodeError:
            values[key] = raw
        except RecursionError:
            raise too_deep from None
        if json_depth(values[key]) > MAX_JSON_DEPTH:
            raise too_deep
    return values


def validate_edit(graph: Pregel, values: Mapping[str, Any]) -> dict[str, Any]:
    """The edit checked against the state schema: unknown keys and ill-typed values are refused."""
    if not values:
        raise RunsError("Nothing to change: give at least one key=value.")
    keys = state_keys(graph)
    unknown = sorted(set(values) - set(keys))
    if unknown:
        raise RunsError(
            f"Unknown state key(s) {', '.join(unknown)}; the state has: {', '.join(sorted(keys))}."
        )
    checked: dict[str, Any] = {}
    for key, value in values.items():
        try:
            checked[key] = TypeAdapter(keys[key]).validate_python(value)
        except ValidationError as exc:
            problem = exc.errors()[0].get("msg", "invalid value")
            raise RunsError(f"Bad value for {key}: {problem} (got {json.dumps(value)}).") from None
    return checked


def fork(graph: Pregel, thread_id: str, checkpoint_id: str, values: Mapping[str, Any]) -> RunnableConfig:
    """A new branch checkpoint after `checkpoint_id` with `values` applied; returns its config.

    The edit is applied as if written by the node that wrote that checkpoint, so the next step stays the same.
    """
    checked = validate_edit(graph, values)
    snapshot = get_checkpoint(graph, thread_id, checkpoint_id)
    source = (snapshot.metadata or {}).get("source")
    if source == "input":
        raise RunsError(
            "That checkpoint is the run's raw input; fork from the next one (step 0) to edit the starting state."
        )
    if not snapshot.next:
        raise RunsError(
            f"Checkpoint {_checkpoint_id(snapshot)} is the end of a run, so a fork from it would run nothing."
        )
    parent_id = snapshot.parent_config["configurable"].get("checkpoint_id") if snapshot.parent_config else None
    parent = next((s for s in _history(graph, thread_id) if _checkpoint_id(s) == parent_id), None)
    writers = [t.name for t in (parent.tasks if parent else ())]
    as_node = writers[0] if len(writers) == 1 else None
    if source == "update" or as_node is None:
        # An edit on an edit (or a checkpoint written by several nodes): let LangGraph pick the last writer.
        return graph.update_state(snapshot.config, checked)
    return graph.update_state(snapshot.config, checked, as_node=as_node)


def resume_config(graph: Pregel, thread_id: str, *, answer: str | None = None) -> RunnableConfig:
    """The config to continue a thread's unfinished run from its last checkpoint. A run waiting on a question
    needs its `answer` (resume it with `Command(resume=answer)`); an answer for a run that asks nothing is refused."""
    snapshot = _history(graph, thread_id)[0]
    if not snapshot.next:
        raise RunsError(f"Thread {thread_id!r} has no unfinished run to resume; its last run ended.")
    waiting = pending_interrupts(graph.get_state(thread_config(thread_id)))
    if waiting and answer is None:
        raise RunsError(
            f"Thread {thread_id!r} is waiting for an answer to: {question_of(waiting[0])} Give it with --answer TEXT."
        )
    if answer is not None and not waiting:
        raise RunsError(f"Thread {thread_id!r} asks no question, so --answer has nothing to answer.")
    if answer is not None and not answer.strip():
        raise RunsError("The answer is empty; say the value the question asks for.")
    return thread_config(thread_id)


def stream_run(
    graph: Pregel,
    graph_input: Any,
    config: RunnableConfig,
    *,
    context: Any = None,
    on_event: Callable[[ViewEvent], None] | None = None,
    durability: Durability = "sync",
) -> RunResult:
    """Run the graph, mapping each stream chunk to view events (passed to `on_event`, and kept).

    `durability="sync"` writes each checkpoint before the next step starts, so a killed process loses at most
    the step it was in, and replays are exact.
    """
    events: list[ViewEvent] = []
    for chunk in _stream(graph, graph_input, config, context=context, durability=durability):
        for event in map_chunk(chunk):
            events.append(event)
            if on_event is not None:
                on_event(event)
    thread_id = config["configurable"]["thread_id"]
    snapshot = graph.get_state(thread_config(thread_id))
    return RunResult(
        values=dict(snapshot.values),
        config=snapshot.config,
        next=list(snapshot.next),
        events=events,
        interrupts=pending_interrupts(snapshot),
    )


def pending_interrupts(snapshot: StateSnapshot) -> list[Any]:
    """The values of the interrupts a thread's last checkpoint waits on (`tasks[*].interrupts`)."""
    return [getattr(item, "value", item) for task in (snapshot.tasks or ()) for item in (task.interrupts or ())]



def _stream(
    graph: Pregel, graph_input: Any, config: RunnableConfig, *, context: Any, durability: Durability
) -> Iterator[Any]:
    return graph.stream(
        graph_input,
        config,
        context=context,
        stream_mode=STREAM_MODES,
        durability=durability,
        version="v2",
    )


def updated_at(info: ThreadInfo | CheckpointInfo) -> str:
    """A short local-independent timestamp (UTC, seconds) for display."""
    raw = info.updated_at if isinstance(info, ThreadInfo) else info.created_at
    try:
        return datetime.fromisoformat(raw).strftime("%Y-%m-%d %H:%M:%S")
    except ValueError:
        return raw
