"""What the page shows, as plain data: pure functions from `graph.events` view events to a turn's trace.

Nothing here imports Streamlit, so every function is tested on real events without a page. `ui/render.py`
draws a `TurnView`; `apply_event` folds one event into it and says what changed, so the page can update just
that part while a run streams.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from graph import events as ev

DEMO_MODEL = "scripted:demo"
DEMO_LABEL = "offline demo — scripted, not a real model"
StepState = Literal["running", "complete", "error"]
ItemKind = Literal["progress", "code", "test", "decision", "tool_call", "error"]
FAILED_OUTCOMES = ("gave_up", "error", "tool_error", "bad_arguments")


@dataclass
class Item:
    """One line or block inside a node's step: a progress line, code, a test result, the decision, ..."""

    kind: ItemKind
    text: str
    title: str = ""
    ok: bool | None = None  # tests: did the test do what its phase expects (fail on the stub, pass on the code)


def node_title(node: str) -> str:
    """A node's name as shown, as the CLI shows it (LangGraph's error-handler node is `error_handler`)."""
    return ev.display_node(node)


@dataclass
class Step:
    """One node step of a run: one `st.status` box."""

    node: str
    task_id: str = ""
    state: StepState = "running"
    summary: str = ""
    live: str = ""  # what the running step is doing now (the latest progress or the test count)
    items: list[Item] = field(default_factory=list)
    tests_run: int = 0
    tests_as_expected: int = 0

    @property
    def label(self) -> str:
        """The status box label: the node and its one-line summary (or, while running, what it is doing)."""
        name = node_title(self.node)
        if self.state == "running":
            return f"{name} — {self.live}" if self.live else f"{name} …"
        text = self.summary or self.live
        return f"{name} — {text}" if text else name


@dataclass
class TurnView:
    """One request and everything its run showed: the steps, the answer, the usage, errors and interrupts."""

    request: str
    model: str = ""
    steps: list[Step] = field(default_factory=list)
    streamed: str = ""  # the answer's tokens while the respond step streams them
    answer: str = ""
    outcome: str | None = None
    failure: str | None = None
    usage: dict[str, int] = field(default_factory=dict)
    error: str = ""  # a run-level error (the stream itself raised)
    interrupts: list[Any] = field(default_factory=list)
    unfinished: list[str] = field(default_factory=list)  # nodes still to run when the run stopped

    @property
    def failed(self) -> bool:
        """True when the run ended without a real answer."""
        return bool(self.error) or self.outcome in FAILED_OUTCOMES


@dataclass(frozen=True)
class Change:
    """What one event changed in a TurnView: a new step, a step's label/state, a new item, or the answer."""

    step: int | None = None
    new_step: bool = False
    label: bool = False
    item: Item | None = None
    answer: bool = False


_MARKDOWN_SPECIALS = "\\`*_{}[]<>()#+-.!|~$:"


def shorten(text: object, width: int = 160) -> str:
    """One line of at most `width` characters (whitespace collapsed, an ellipsis when cut)."""
    line = " ".join(str(text).split())
    return line if len(line) <= width else line[: width - 1] + "…"


def escape_markdown(text: str) -> str:
    """Plain text that Streamlit's markdown shows literally (no emphasis, links, LaTeX or emoji codes)."""
    return "".join("\\" + ch if ch in _MARKDOWN_SPECIALS else ch for ch in text)


def model_label(model: str | None) -> str:
    """How a model id is shown everywhere: the demo always says it is scripted."""
    if not model:
        return "no model configured"
    if model.strip() == DEMO_MODEL:
        return f"{DEMO_MODEL} ({DEMO_LABEL})"
    return model.strip()


def usage_text(usage: Mapping[str, Any] | None) -> str:
    """`3 LLM calls · 705 input + 42 output tokens`."""
    u = usage or {}
    calls = int(u.get("calls") or 0)
    return (
        f"{calls} LLM call{'s' if calls != 1 else ''} · {int(u.get('input_tokens') or 0)} input + "
        f"{int(u.get('output_tokens') or 0)} output tokens"
    )


def answer_body(answer: str, usage: Mapping[str, Any] | None) -> str:
    """The answer without the usage line respond appends (shown apart, as a caption), when it is exactly that."""
    if usage:
        u = {k: int(usage.get(k) or 0) for k in ("calls", "input_tokens", "output_tokens")}
        suffix = f"\n\n({u['calls']} LLM call(s), {u['input_tokens']} input + {u['output_tokens']} output tokens)"
        if answer.endswith(suffix):
            return answer[: -len(suffix)]
    return answer


def test_line(event: ev.TestResult) -> tuple[str, bool]:
    """A test result as one line, and whether it did what its phase expects."""
    expected = "failed" if event.phase == "red" else "passed"
    ok = event.outcome == expected or (event.phase == "red" and event.outcome == "error")
    name = event.name.split("::")[-1]
    if event.phase == "red":
        note = "fails on the stub, as it should" if ok else "does not fail on the stub"
    else:
        note = "passes" if ok else "fails on the implementation"
    line = f"{event.phase} · {name}: {event.outcome} — {note}"
    if not ok and event.message:
        line += f": {shorten(event.message, 200)}"
    return line, ok


def decision_line(event: ev.Decision) -> str:
    """The turn's first decision: its route (and, for compute, the tool reused or a new one), with its reason."""
    if event.route == "compute":
        verb = f"Reuse {event.choice}" if event.choice else "Create a new tool"
    else:
        verb = {"chat": "Answer directly", "clarify": "Ask a question", "decline": "Decline",
                "chain": "Plan a chain"}.get(event.route, event.route)
    text = f"Route {event.route} · {verb}"
    if event.steps:
        text += " (" + "; ".join(f"{i}. {step}" for i, step in enumerate(event.steps, 1)) + ")"
    return f"{text}: {event.reason}" if event.reason else text


def tool_call_line(event: ev.ToolCall) -> str:
    """The sandbox call: tool, version and arguments."""
    version = f" v{event.version}" if event.version is not None else ""
    args = ", ".join(f"{k}={json.dumps(v, default=str)}" for k, v in event.arguments.items())
    return f"Calling `{event.tool}{version}({args})` in the sandbox"


def code_title(code_kind: str) -> str:
    """A caption for a code block."""
    return {"tests": "Tests (test_tool.py)", "implementation": "Implementation (tool.py)"}.get(
        code_kind, code_kind or "code"
    )


def _step_for(turn: TurnView, node: str) -> tuple[int, bool]:
    """The running step of `node` (the newest one), or a new step when it has none; (index, created)."""
    for index in range(len(turn.steps) - 1, -1, -1):
        step = turn.steps[index]
        if step.node == node and step.state == "running":
            return index, False
    if not node and turn.steps:  # an event with no node belongs to whatever runs now
        return len(turn.steps) - 1, False
    turn.steps.append(Step(node=node or "run"))
    return len(turn.steps) - 1, True


def _add_item(turn: TurnView, node: str, item: Item, live: str | None = None) -> Change:
    index, created = _step_for(turn, node)
    step = turn.steps[index]
    step.items.append(item)
    if live is not None:
        step.live = live
    return Change(step=index, new_step=created, label=created or live is not None, item=item)


def apply_event(turn: TurnView, event: ev.ViewEvent) -> Change | None:
    """Fold one view event into `turn` (mutating it) and say what changed; None when nothing visible did."""
    if isinstance(event, ev.NodeStarted):
        turn.steps.append(Step(node=event.node, task_id=event.task_id))
        return Change(step=len(turn.steps) - 1, new_step=True, label=True)
    if isinstance(event, ev.NodeFinished):
        index, created = _step_for(turn, event.node)
        step = turn.steps[index]
        step.state, step.summary = "complete", event.summary
        return Change(step=index, new_step=created, label=True)
    if isinstance(event, ev.NodeFailed):
        index, created = _step_for(turn, event.node)
        step = turn.steps[index]
        step.state, step.summary = "error", event.error
        step.items.append(Item(kind="error", text=event.error))
        return Change(step=index, new_step=created, label=True, item=step.items[-1])
    if isinstance(event, ev.Progress):
        return _add_item(turn, event.node, Item(kind="progress", text=event.message), live=event.message)
    if isinstance(event, ev.Code):
        return _add_item(turn, event.node, Item(kind="code", text=event.text, title=code_title(event.code_kind)))
    if isinstance(event, ev.TestResult):
        line, ok = test_line(event)
        change = _add_item(turn, event.node, Item(kind="test", text=line, ok=ok, title=event.phase), live="")
        step = turn.steps[change.step or 0]
        step.tests_run += 1
        step.tests_as_expected += int(ok)
        step.live = f"{step.tests_run} test(s) run, {step.tests_as_expected} as expected ({event.phase} phase)"
        return change
    if isinstance(event, ev.Decision):
        return _add_item(turn, event.node, Item(kind="decision", text=decision_line(event)))
    if isinstance(event, ev.ToolCall):
        return _add_item(turn, event.node, Item(kind="tool_call", text=tool_call_line(event)))
    if isinstance(event, ev.Usage):
        turn.usage = {"calls": event.calls, "input_tokens": event.input_tokens, "output_tokens": event.output_tokens}
        return None
    if isinstance(event, ev.Token):
        if event.node != "respond":
            return None  # other nodes stream structured output; their results arrive as Code and summaries
        turn.streamed += event.text
        return Change(answer=True)
    if isinstance(event, ev.Answer):
        turn.answer, turn.outcome, turn.failure = event.text, event.outcome, event.failure
        if event.usage is not None:
            turn.usage = {
                "calls": event.usage.calls,
                "input_tokens": event.usage.input_tokens,
                "output_tokens": event.usage.output_tokens,
            }
        return Change(answer=True)
    if isinstance(event, ev.Interrupted):
        turn.interrupts.append(event.value)
        return Change(answer=True)
    if isinstance(event, ev.ErrorEvent):
        turn.error = event.message
        changed = None
        for index, step in enumerate(turn.steps):
            if step.state == "running":
                step.state = "error"
                changed = index
        return Change(step=changed, label=changed is not None, answer=True)
    if isinstance(event, ev.CustomEvent):
        text = f"{event.event}: {json.dumps(event.data, default=str)}"
        return _add_item(turn, event.node, Item(kind="progress", text=text))
    return None


def fold(request: str, events: Iterable[ev.ViewEvent], model: str = "") -> TurnView:
    """A whole run's events folded into one TurnView."""
    turn = TurnView(request=request, model=model)
    for event in events:
        apply_event(turn, event)
    return turn


def finish_turn(
    turn: TurnView, values: Mapping[str, Any], next_nodes: list[str], interrupts: list[Any] | None = None
) -> TurnView:
    """Complete a streamed turn from the thread's final values (the answer and usage are authoritative there).
    A run waiting on a question is not unfinished: its question is the turn's answer until the user replies."""
    if interrupts:
        turn.interrupts = list(interrupts)
        for step in turn.steps:
            if step.state == "running":
                step.state, step.summary = "complete", f"asked: {question_text(turn.interrupts)}"
        next_nodes = []
    turn.unfinished = list(next_nodes)
    if values.get("answer") and not turn.unfinished:
        turn.answer = str(values["answer"])
        turn.outcome = values.get("outcome")
        turn.failure = values.get("failure")
    if values.get("usage"):
        turn.usage = {k: int(values["usage"].get(k) or 0) for k in ("calls", "input_tokens", "output_tokens")}
    if turn.unfinished:
        for step in turn.steps:
            if step.state == "running":
                step.state = "error"
                step.summary = step.summary or "stopped before it finished"
    return turn


def question_text(interrupts: list[Any]) -> str:
    """The question a run waits on (the first interrupt's), as text."""
    return ev.question_of(interrupts[0]) if interrupts else ""


def answer_style(turn: TurnView) -> Literal["answer", "failure", "unfinished", "interrupted", "none"]:
    """How the answer area looks: a normal answer, an honest failure, an unfinished or interrupted run."""
    if turn.interrupts:
        return "interrupted"
    if turn.error or (turn.failed and turn.answer):
        return "failure"
    if turn.unfinished:
        return "unfinished"
    if turn.answer:
        return "answer"
    return "none"


# --- past turns, rebuilt from the checkpointer -----------------------------------------------------------


@dataclass
class CheckpointRow:
    """What the page needs of one checkpoint (from `graph.runs.history`), plus its state values."""

    checkpoint_id: str
    parent_id: str | None
    step: int
    source: str
    node: str
    next: list[str]
    summary: str
    values: dict[str, Any] = field(default_factory=dict)


def lineage(rows: list[CheckpointRow], head_id: str) -> list[CheckpointRow]:
    """The checkpoints on the branch ending at `head_id`, oldest first (replays and forks make branches)."""
    by_id = {row.checkpoint_id: row for row in rows}
    chain: list[CheckpointRow] = []
    seen: set[str] = set()
    current = by_id.get(head_id)
    while current is not None and current.checkpoint_id not in seen:
        seen.add(current.checkpoint_id)
        chain.append(current)
        current = by_id.get(current.parent_id or "")
    chain.reverse()
    return chain


def _report_items(report: Any, phase: str, node: str) -> list[Item]:
    items: list[Item] = []
    for test in (report or {}).get("tests") or () if isinstance(report, Mapping) else ():
        if not isinstance(test, Mapping):
            continue
        result = ev.TestResult(
            node=node,
            phase=phase,
            name=str(test.get("name", "")),
            outcome=str(test.get("outcome", "")),
            message=str(test.get("message") or ""),
        )
        line, ok = test_line(result)
        items.append(Item(kind="test", text=line, ok=ok, title=phase))
    return items


def _items_from_values(row: CheckpointRow) -> list[Item]:
    """What a checkpointed step showed, rebuilt from the state it wrote (code, test results, decision, call)."""
    if row.node == "red_phase":
        return _report_items(row.values.get("red_report"), "red", row.node)
    if row.node == "verify":
        return _report_items(row.values.get("verify_report"), "green", row.node)
    if row.node == "execute" and isinstance(row.values.get("tool"), Mapping) and row.values["tool"].get("name"):
        tool = row.values["tool"]
        call = ev.ToolCall(
            node="execute",
            tool=str(tool["name"]),
            version=tool.get("version"),
            arguments=dict(row.values.get("arguments") or {}),
        )
        return [Item(kind="tool_call", text=tool_call_line(call))]
    if row.node == "write_tests" and row.values.get("tests"):
        return [Item(kind="code", text=str(row.values["tests"]), title=code_title("tests"))]
    if row.node in ("implement", "repair") and row.values.get("code"):
        return [Item(kind="code", text=str(row.values["code"]), title=code_title("implementation"))]
    if row.node == "decide" and row.values.get("decision"):
        decision = row.values["decision"]
        event = ev.Decision(
            node="decide",
            route=str(decision.get("route") or "compute"),
            choice=decision.get("choice"),
            steps=[str(s) for s in decision.get("steps") or []],
            reason=str(decision.get("reason") or ""),
            asked_model=bool(decision.get("asked_model")),
        )
        return [Item(kind="decision", text=decision_line(event))]
    return []


def turns_from_checkpoints(rows: list[CheckpointRow], head_id: str) -> list[TurnView]:
    """A thread's past turns on its current branch: one TurnView per run input, a step per checkpoint."""
    turns: list[TurnView] = []
    last_values: dict[str, Any] = {}
    last_next: list[str] = []

    def close() -> None:
        if turns:
            finish_turn(turns[-1], last_values, last_next)

    for row in lineage(rows, head_id):
        if row.source == "input":
            close()
            request = str(row.summary.removeprefix("request: ")) if row.summary.startswith("request: ") else ""
            turns.append(TurnView(request=request))
            last_values, last_next = {}, []
            continue
        if not turns:
            turns.append(TurnView(request=str(row.values.get("request", ""))))
        turn = turns[-1]
        if not turn.request and row.values.get("request"):
            turn.request = str(row.values["request"])
        last_values, last_next = row.values, row.next
        if row.node == "start":
            continue  # the input being applied, not a node's work
        state: StepState = "error" if row.node in ("__error__",) else "complete"
        turn.steps.append(Step(node=row.node, state=state, summary=row.summary, items=_items_from_values(row)))
    close()
    return turns
