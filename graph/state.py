"""The graph's typed state.

Every value is plain JSON (str, int, dict, list) so checkpoints, Studio and the stream events can carry it
without custom serialisers. Nodes return partial updates; no key has a reducer, because the steps run one at a
time and each turn starts by resetting the per-turn keys (see `turn_reset`).
"""

from __future__ import annotations

from typing import Any, Literal, TypedDict

Outcome = Literal[
    "answered",  # the tool ran and the model answered from its result
    "tool_error",  # the tool ran in the sandbox and raised, or the sandbox refused the call
    "bad_arguments",  # the request's arguments did not fit the tool's schema
    "gave_up",  # synthesis failed honestly: nothing was registered
    "error",  # a step failed (no model configured, API errors exhausted, sandbox unavailable, ...)
    "replied",  # chat: answered from the library listing and the thread's history, nothing built
    "declined",  # decline: one honest sentence on why, nothing specified, built or registered
    "needs_input",  # clarify: the inputs are still missing after the questions allowed
]


class InputState(TypedDict):
    """What a caller passes in: the user's request only."""

    request: str


class Usage(TypedDict):
    """LLM calls and tokens used in one run (one turn)."""

    calls: int
    input_tokens: int
    output_tokens: int


class State(TypedDict, total=False):
    """The whole state of one conversation thread; the per-turn keys are reset by `retrieve`."""

    request: str
    # retrieve / decide
    candidates: list[dict[str, Any]]  # SearchHit dumps, best first
    library_signal: dict[str, Any]  # the library's ReuseDecision dump
    # {"route": compute|chat|clarify|decline|chain, "reason", "choice": tool name|None, "reply", "show_tool",
    #  "steps", "asked_model"}: the turn's first decision (see graph.schemas.TurnDecision)
    decision: dict[str, Any]
    clarifications: list[dict[str, str]]  # clarify: {"question", "answer"} asked and answered in this turn
    # chain: {"steps": [str, ...], "results": [{"step", "request", "tool", "version", "arguments", "result"}]};
    # while len(results) < len(steps), every step's node works on the current step (see nodes.common.request_text)
    chain: dict[str, Any]
    # synthesis
    spec: dict[str, Any]  # ToolSpec dump
    tests: str  # test_tool.py
    test_feedback: str  # why write_tests must try again (red phase, static checks)
    test_rewrites: int  # how many times write_tests was sent back by the red phase
    red_report: dict[str, Any]  # red-phase summary
    code: str  # tool.py
    verify_report: dict[str, Any]  # last verification summary (TestReport or static-check failure)
    repairs: int  # repair attempts used
    test_objection: dict[str, Any] | None  # the repair step's request to revise a test, with its argument
    test_revisions: list[dict[str, Any]]  # audit list of recorded test revisions
    # execution
    tool: dict[str, Any]  # {"name", "version", "signature", "description", "parameters_schema", "source"}
    arguments: dict[str, Any]
    # the arguments decide (reuse) or spec (a new tool) already took from the request, so execute needs no model
    # call: {"tool": name, "for": the request text they were taken from, "arguments": {...}}
    proposed_arguments: dict[str, Any]
    result: dict[str, Any]  # CallResult dump (ok, result, error)
    # outcome
    outcome: Outcome | None
    failure: str | None  # one clear sentence (or a short paragraph) saying what failed
    answer: str
    usage: Usage
    history: list[dict[str, str]]  # earlier turns of this thread: {"request", "answer", "route", "tool"}


def empty_usage() -> Usage:
    """Zero calls and tokens."""
    return {"calls": 0, "input_tokens": 0, "output_tokens": 0}


STEP_KEYS = (
    "candidates", "library_signal", "decision", "spec", "tests", "test_feedback", "test_rewrites", "red_report",
    "code", "verify_report", "repairs", "test_objection", "test_revisions", "tool", "arguments", "proposed_arguments",
    "result", "outcome", "failure",
)  # fmt: skip


def step_reset() -> dict[str, Any]:
    """The per-step keys at the start of a chain's next step (usage, history, clarifications and chain stay)."""
    fresh = turn_reset()
    return {key: fresh[key] for key in STEP_KEYS}


def turn_reset() -> dict[str, Any]:
    """The per-turn keys at the start of a turn, so a thread's second request starts clean."""
    return {
        "candidates": [],
        "library_signal": {},
        "decision": {},
        "clarifications": [],
        "chain": {},
        "spec": {},
        "tests": "",
        "test_feedback": "",
        "test_rewrites": 0,
        "red_report": {},
        "code": "",
        "verify_report": {},
        "repairs": 0,
        "test_objection": None,
        "test_revisions": [],
        "tool": {},
        "arguments": {},
        "proposed_arguments": {},
        "result": {},
        "outcome": None,
        "failure": None,
        "answer": "",
        "usage": empty_usage(),
    }
