"""Routing: pure functions of the state. Nodes record their outcome (and, when a bound is reached, the
failure); these functions only read it, so every edge is a Literal destination drawn by `get_graph()`."""

from __future__ import annotations

from typing import Literal

from graph.state import State


def _failed(state: State) -> bool:
    return bool(state.get("failure")) or state.get("outcome") in ("gave_up", "error", "bad_arguments", "tool_error")


def after_retrieve(state: State) -> Literal["decide", "respond"]:
    """A bad request goes straight to respond."""
    return "respond" if _failed(state) else "decide"


def after_decide(state: State) -> Literal["execute", "spec", "clarify", "next_step", "respond"]:
    """compute: a chosen tool runs, otherwise a new tool is engineered; clarify asks its question (unless the
    questions are used up); chain starts its first step; chat and decline are answered by respond from the
    decision (nothing built)."""
    decision = state.get("decision") or {}
    route = decision.get("route", "compute")
    if _failed(state) or state.get("outcome"):
        return "respond"
    if route == "clarify":
        return "clarify"
    if route == "chain":
        return "next_step" if (state.get("chain") or {}).get("steps") else "respond"
    if route != "compute":
        return "respond"
    return "execute" if decision.get("choice") else "spec"


def _chain_running(state: State) -> bool:
    chain = state.get("chain") or {}
    return bool(chain.get("steps"))


def after_execute(state: State) -> Literal["next_step", "respond"]:
    """In a chain, an answered step goes to the step boundary; otherwise (or on a failure) respond."""
    return "next_step" if _chain_running(state) and state.get("outcome") == "answered" else "respond"


def after_next_step(state: State) -> Literal["decide", "respond"]:
    """More steps: decide the next one. Every step done: respond explains the chain."""
    chain = state.get("chain") or {}
    return "decide" if len(chain.get("results") or []) < len(chain.get("steps") or []) else "respond"


def after_red_phase(state: State) -> Literal["implement", "verify", "write_tests", "respond"]:
    """Proper red: implement (or, after a test revision, verify the current code). Otherwise rewrite the tests,
    or give up when the rewrites are used up."""
    if _failed(state):
        return "respond"
    if (state.get("red_report") or {}).get("red_ok"):
        return "verify" if state.get("code") else "implement"
    return "write_tests"


def after_verify(state: State) -> Literal["register", "repair", "respond"]:
    """Passed: register. Failed: repair, until the attempts are used up (verify then records the failure)."""
    if _failed(state):
        return "respond"
    return "register" if (state.get("verify_report") or {}).get("verdict") == "passed" else "repair"


def after_register(state: State) -> Literal["execute", "respond"]:
    """Registered (or an existing twin chosen): run it. Refused by the library's own verification: respond."""
    return "respond" if _failed(state) else "execute"


def after_repair(state: State) -> Literal["verify", "revise_tests"]:
    """An objection to a test goes through the recorded revision step; otherwise verify the new code."""
    return "revise_tests" if state.get("test_objection") else "verify"
