"""Map LangGraph v2 stream chunks to typed view events that the CLI and the Streamlit app render.

Stream a run with `graph.stream(input, config, context=..., stream_mode=STREAM_MODES, version="v2")`; every
chunk is `{"type", "ns", "data"}`. `map_chunk(chunk)` is a pure function: one chunk in, zero or more view
events out, no I/O and no state, so it is tested on real chunks without any UI.

- `tasks`    a task starting gives `NodeStarted`; a task ending with an error gives `NodeFailed`.
- `updates`  a node's state update gives `NodeFinished` with a one-line summary; the `respond` update (any
             update carrying `answer`) also gives `Answer`; `__interrupt__` gives one `Interrupted` per interrupt.
- `custom`   the nodes' `graph.progress.emit` events: `Progress`, `Code`, `TestResult`, `Usage`, `Decision`,
             `ToolCall`; an unknown kind becomes `CustomEvent` so nothing is silently lost.
- `messages` streamed model text gives `Token` (empty chunks, e.g. structured-output tool-call deltas, are dropped).

Chunks from subgraphs (non-empty `ns`) are mapped the same way and carry their namespace in `ns`.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from typing import Annotated, Any, Literal

from pydantic import BaseModel, Field, TypeAdapter

STREAM_MODES: list[str] = ["updates", "custom", "messages", "tasks"]
SUMMARY_WIDTH = 160


class _Event(BaseModel):
    ns: list[str] = Field(default_factory=list, description="Subgraph namespace; empty for the root graph.")


class NodeStarted(_Event):
    kind: Literal["node_started"] = "node_started"
    node: str
    task_id: str = ""


class NodeFinished(_Event):
    kind: Literal["node_finished"] = "node_finished"
    node: str
    summary: str
    keys: list[str] = Field(default_factory=list, description="The state keys the node updated.")


class NodeFailed(_Event):
    kind: Literal["node_failed"] = "node_failed"
    node: str
    error: str


class Progress(_Event):
    kind: Literal["progress"] = "progress"
    node: str
    message: str


class Code(_Event):
    kind: Literal["code"] = "code"
    node: str
    code_kind: str = Field(description="tests | implementation")
    text: str


class TestResult(_Event):
    __test__ = False  # not a pytest test class

    kind: Literal["test_result"] = "test_result"
    node: str
    phase: str = Field(description="red (against the stub) | green (against the implementation)")
    name: str
    outcome: str
    message: str = ""


class Usage(_Event):
    kind: Literal["usage"] = "usage"
    node: str = ""
    calls: int = 0
    input_tokens: int = 0
    output_tokens: int = 0


class Decision(_Event):
    kind: Literal["decision"] = "decision"
    node: str
    route: str = "compute"
    choice: str | None = None
    steps: list[str] = Field(default_factory=list, description="chain: the plan")
    reason: str = ""
    asked_model: bool = False


class ToolCall(_Event):
    kind: Literal["tool_call"] = "tool_call"
    node: str
    tool: str
    version: int | None = None
    arguments: dict[str, Any] = Field(default_factory=dict)


class Token(_Event):
    kind: Literal["token"] = "token"
    node: str
    text: str


class Answer(_Event):
    kind: Literal["answer"] = "answer"
    text: str
    outcome: str | None = None
    failure: str | None = None
    usage: Usage | None = None


class Interrupted(_Event):
    kind: Literal["interrupt"] = "interrupt"
    interrupt_id: str = ""
    value: Any = None


class ErrorEvent(_Event):
    """A run-level error raised out of the stream (the CLI and the app create it; chunks never do)."""

    kind: Literal["error"] = "error"
    message: str


class CustomEvent(_Event):
    kind: Literal["custom"] = "custom"
    node: str = ""
    event: str
    data: dict[str, Any] = Field(default_factory=dict)


ViewEvent = Annotated[
    NodeStarted
    | NodeFinished
    | NodeFailed
    | Progress
    | Code
    | TestResult
    | Usage
    | Decision
    | ToolCall
    | Token
    | Answer
    | Interrupted
    | ErrorEvent
    | CustomEvent,
    Field(discriminator="kind"),
]
view_event_adapter: TypeAdapter[ViewEvent] = TypeAdapter(ViewEvent)


# LangGraph's internal node names, as the views show them.
_DISPLAY_NAMES = {"__default_error_handler__": "error_handler", "__start__": "start"}


def display_node(name: str) -> str:
    """A node's name for display (LangGraph's internal error-handler node becomes `error_handler`)."""
    return _DISPLAY_NAMES.get(name, name)


def map_chunk(chunk: Mapping[str, Any]) -> list[ViewEvent]:
    """The view events for one v2 stream chunk (`{"type", "ns", "data"}`); unknown chunk types give none."""
    kind = chunk.get("type")
    ns = [str(part) for part in chunk.get("ns") or ()]
    data = chunk.get("data")
    if kind == "tasks" and isinstance(data, Mapping):
        return _map_task(data, ns)
    if kind == "updates" and isinstance(data, Mapping):
        return _map_updates(data, ns)
    if kind == "custom" and isinstance(data, Mapping):
        return _map_custom(data, ns)
    if kind == "messages" and isinstance(data, tuple | list) and len(data) == 2:
        return _map_message(data[0], data[1], ns)
    return []


def map_chunks(chunks: Iterable[Mapping[str, Any]]) -> list[ViewEvent]:
    """`map_chunk` over a whole stream, in order."""
    return [event for chunk in chunks for event in map_chunk(chunk)]


def _map_task(data: Mapping[str, Any], ns: list[str]) -> list[ViewEvent]:
    name = display_node(str(data.get("name", "")))
    if "input" in data and "result" not in data:
        return [NodeStarted(node=name, task_id=str(data.get("id", "")), ns=ns)]
    error = data.get("error")
    if error is not None:
        return [NodeFailed(node=name, error=_error_text(error), ns=ns)]
    return []


def _map_updates(data: Mapping[str, Any], ns: list[str]) -> list[ViewEvent]:
    events: list[ViewEvent] = []
    for node, update in data.items():
        if node == "__interrupt__":
            for item in update or ():
                events.append(
                    Interrupted(
                        interrupt_id=str(getattr(item, "id", "") or ""),
                        value=_jsonable(getattr(item, "value", item)),
                        ns=ns,
                    )
                )
            continue
        update_map: Mapping[str, Any] = update if isinstance(update, Mapping) else {}
        node = display_node(str(node))
        events.append(
            NodeFinished(node=str(node), summary=summarize_update(str(node), update_map), keys=list(update_map), ns=ns)
        )
        answer = update_map.get("answer")
        if isinstance(answer, str) and answer:
            usage = update_map.get("usage")
            events.append(
                Answer(
                    text=answer,
                    outcome=update_map.get("outcome"),
                    failure=update_map.get("failure"),
                    usage=Usage(node=str(node), **_usage_fields(usage)) if isinstance(usage, Mapping) else None,
                    ns=ns,
                )
            )
    return events


def _map_custom(data: Mapping[str, Any], ns: list[str]) -> list[ViewEvent]:
    event = str(data.get("event", ""))
    node = str(data.get("node") or "")
    try:
        if event == "progress":
            return [Progress(node=node, message=str(data.get("message", "")), ns=ns)]
        if event == "code":
            return [Code(node=node, code_kind=str(data.get("kind", "")), text=str(data.get("text", "")), ns=ns)]
        if event == "test_result":
            return [
                TestResult(
                    node=node,
                    phase=str(data.get("phase", "")),
                    name=str(data.get("name", "")),
                    outcome=str(data.get("outcome", "")),
                    message=str(data.get("message") or ""),
                    ns=ns,
                )
            ]
        if event == "llm":
            return [Usage(node=node, **_usage_fields(data), ns=ns)]
        if event == "decision":
            return [
                Decision(
                    node=node,
                    route=str(data.get("route") or "compute"),
                    choice=data.get("choice"),
                    steps=[str(s) for s in data.get("steps") or []],
                    reason=str(data.get("reason") or ""),
                    asked_model=bool(data.get("asked_model")),
                    ns=ns,
                )
            ]
        if event == "tool_call":
            return [
                ToolCall(
                    node=node,
                    tool=str(data.get("tool", "")),
                    version=data.get("version"),
                    arguments=dict(data.get("arguments") or {}),
                    ns=ns,
                )
            ]
    except (TypeError, ValueError):
        pass  # a malformed known event is still shown, as a generic one below
    rest = {k: _jsonable(v) for k, v in data.items() if k not in ("event", "node")}
    return [CustomEvent(node=node, event=event, data=rest, ns=ns)]


def _map_message(message: Any, metadata: Any, ns: list[str]) -> list[ViewEvent]:
    text = _message_text(getattr(message, "content", ""))
    if not text:
        return []
    node = str(metadata.get("langgraph_node", "")) if isinstance(metadata, Mapping) else ""
    return [Token(node=node, text=text, ns=ns)]


def _message_text(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        parts = []
        for block in content:
            if isinstance(block, str):
                parts.append(block)
            elif isinstance(block, Mapping) and block.get("type") == "text":
                parts.append(str(block.get("text", "")))
        return "".join(parts)
    return ""


def _usage_fields(data: Mapping[str, Any]) -> dict[str, int]:
    return {key: int(data.get(key) or 0) for key in ("calls", "input_tokens", "output_tokens")}


def _error_text(error: Any) -> str:
    if isinstance(error, BaseException):
        text = str(error).strip()
        return f"{type(error).__name__}: {text}" if text else type(error).__name__
    return str(error)


def _jsonable(value: Any) -> Any:
    try:
        json.dumps(value)
        return value
    except (TypeError, ValueError):
        return repr(value)


def _short(text: Any, width: int = SUMMARY_WIDTH) -> str:
    line = " ".join(str(text).split())
    return line if len(line) <= width else line[: width - 1] + "…"


def question_of(value: Any) -> str:
    """The question an interrupt asks (clarify's payload is `{"question", ...}`), as one line of text."""
    if isinstance(value, Mapping) and value.get("question"):
        return str(value["question"])
    return value if isinstance(value, str) else json.dumps(value, default=str)


def decision_text(decision: Mapping[str, Any]) -> str:
    """`compute: reuse calculate_percentage — why`, `decline — why`: the route, the tool for compute, the reason."""
    route = str(decision.get("route") or "compute")
    if route == "compute":
        choice = decision.get("choice")
        route += f": reuse {choice}" if choice else ": create a new tool"
    elif route == "chain" and decision.get("steps"):
        route += " of " + "; ".join(f"{i}. {step}" for i, step in enumerate(decision["steps"], 1))
    reason = str(decision.get("reason") or "").strip()
    return f"{route} — {reason}" if reason else route


def _count_tests(source: str) -> int:
    return sum(1 for line in source.splitlines() if line.lstrip().startswith(("def test_", "async def test_")))


def _report_line(report: Mapping[str, Any]) -> str:
    verdict = report.get("verdict", "?")
    if report.get("problems"):
        return f"{verdict}: {report['problems'][0]}"
    counts = [f"{report[key]} {key}" for key in ("passed", "failed", "errors") if report.get(key)]
    text = f"{verdict}" + (f" ({', '.join(counts)})" if counts else "")
    message = report.get("message") or report.get("reason")
    return f"{text}: {message}" if message and verdict != "passed" else text


def summarize_update(node: str, update: Mapping[str, Any]) -> str:
    """One line saying what a node did, from its state update (by the keys it set, not by its name)."""
    if not update:
        return "no change"
    parts: list[str] = []
    if (outcome := update.get("outcome")) and update.get("failure"):
        parts.append(f"{outcome}: {update['failure']}")
    if "request" in update:
        parts.append(f"request: {update['request']}")
    if update.get("answer"):
        parts.append(f"answer: {update['answer']}")
    if "candidates" in update:
        hits = update.get("candidates") or []
        if hits:
            names = ", ".join(f"{h.get('name')} ({float(h.get('score') or 0):.2f})" for h in hits[:3])
            parts.append(f"{len(hits)} candidate(s): {names}")
        else:
            parts.append("no candidates in the library")
    if decision := update.get("decision"):
        parts.append(f"route {decision_text(decision)}")
    if chain := update.get("chain"):
        steps, done = chain.get("steps") or [], chain.get("results") or []
        if done:
            last = done[-1]
            parts.append(f"chain step {last.get('step')} of {len(steps)} done: {last.get('tool')} returned "
                         f"{json.dumps(_jsonable(last.get('result')))}")
        elif steps:
            parts.append(f"chain of {len(steps)} steps: " + "; ".join(str(s) for s in steps))
    if asked := update.get("clarifications"):
        parts.append(f"asked {question_of(asked[-1])!r}, answered {asked[-1].get('answer', '')!r}")
    if spec := update.get("spec"):
        parts.append(f"spec {spec.get('signature') or spec.get('name', '')}")
    if update.get("tests"):
        parts.append(f"{_count_tests(update['tests'])} test(s) written")
    if red := update.get("red_report"):
        if red.get("red_ok"):
            parts.append(f"red phase ok: all {red.get('failed', 0) + red.get('errors', 0)} test(s) fail on the stub")
        elif red.get("reasons"):
            parts.append(f"red phase rejected: {red['reasons'][0]}")
        else:
            parts.append(f"red phase: {_report_line(red)}")
    if update.get("test_feedback") and not update.get("red_report"):
        parts.append(f"tests sent back: {update['test_feedback']}")
    if update.get("code"):
        parts.append(f"implementation, {len(update['code'].splitlines())} lines")
    if report := update.get("verify_report"):
        parts.append(f"tests: {_report_line(report)}")
    if update.get("repairs"):
        parts.append(f"repair attempt {update['repairs']}")
    if objection := update.get("test_objection"):
        parts.append(f"test objection: {objection.get('test') or objection.get('name', '')}".rstrip(": "))
    if revisions := update.get("test_revisions"):
        parts.append(f"{len(revisions)} recorded test revision(s)")
    if (tool := update.get("tool")) and tool.get("name"):
        version = f" v{tool['version']}" if tool.get("version") is not None else ""
        parts.append(f"tool {tool['name']}{version}")
    if (arguments := update.get("arguments")) and "result" not in update:
        parts.append(f"arguments {json.dumps(_jsonable(arguments))}")
    if result := update.get("result"):
        if result.get("ok"):
            parts.append(f"result {json.dumps(_jsonable(result.get('result')))}")
        else:
            error = result.get("error") or {}
            parts.append(f"call failed: {error.get('type', '')} {error.get('message', '')}".strip())
    if not parts:
        keys = [k for k in update if k not in ("usage", "history")]
        parts.append(f"updated {', '.join(keys)}" if keys else "no change")
    return _short("; ".join(parts))
