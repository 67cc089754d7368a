"""The wiring: nodes, edges, retry policies and the error handler.

`builder` is the uncompiled StateGraph; `build_graph(checkpointer)` compiles it; the module-level `graph`
is compiled without a checkpointer, as `langgraph dev` requires (langgraph.json names `graph.builder:graph`).
"""

from __future__ import annotations

from typing import Any

from langgraph.graph import END, START, StateGraph
from langgraph.graph.state import CompiledStateGraph
from langgraph.types import Checkpointer, RetryPolicy

from graph import routing
from graph.context import Context
from graph.errors import handle_node_error
from graph.state import InputState, State
from graph.structured import is_transient_api_error
from nodes import (
    clarify,
    decide,
    execute,
    implement,
    next_step,
    red_phase,
    register,
    repair,
    respond,
    retrieve,
    revise_tests,
    spec,
    verify,
    write_tests,
)
from sea.settings import get_settings

MODEL_NODES = ("decide", "spec", "write_tests", "implement", "repair", "revise_tests", "execute", "respond")
SANDBOX_NODES = ("red_phase", "verify", "register", "execute")


def _is_sandbox_busy(exc: BaseException) -> bool:
    # The pool being exhausted passes; a missing daemon or image does not, so only retry the former.
    names = {cls.__name__ for cls in type(exc).__mro__}
    return "SandboxUnavailableError" in names and "exhausted" in str(exc).lower()


def _retry_on(exc: BaseException) -> bool:
    busy_library = any(cls.__name__ == "LibraryBusyError" for cls in type(exc).__mro__)
    return is_transient_api_error(exc) or _is_sandbox_busy(exc) or busy_library


def model_retry_policy() -> RetryPolicy:
    """Transient API errors (429, 5xx, timeouts, connections), a busy sandbox pool or library lock, with backoff."""
    return RetryPolicy(
        initial_interval=0.5, backoff_factor=2.0, max_interval=30.0, max_attempts=get_settings().api_retries,
        retry_on=_retry_on,
    )  # fmt: skip


def make_builder() -> StateGraph:
    """A fresh uncompiled graph."""
    retry = model_retry_policy()
    sg: StateGraph = StateGraph(State, input_schema=InputState, context_schema=Context)
    sg.set_node_defaults(error_handler=handle_node_error)
    sg.add_node("retrieve", retrieve, retry_policy=retry)
    sg.add_node("decide", decide, retry_policy=retry)
    sg.add_node("clarify", clarify)
    sg.add_node("next_step", next_step, retry_policy=retry)
    sg.add_node("spec", spec, retry_policy=retry)
    sg.add_node("write_tests", write_tests, retry_policy=retry)
    sg.add_node("red_phase", red_phase, retry_policy=retry)
    sg.add_node("implement", implement, retry_policy=retry)
    sg.add_node("verify", verify, retry_policy=retry)
    sg.add_node("repair", repair, retry_policy=retry)
    sg.add_node("revise_tests", revise_tests, retry_policy=retry)
    sg.add_node("register", register, retry_policy=retry)
    sg.add_node("execute", execute, retry_policy=retry)
    sg.add_node("respond", respond, retry_policy=retry)

    sg.add_edge(START, "retrieve")
    sg.add_conditional_edges("retrieve", routing.after_retrieve)
    sg.add_conditional_edges("decide", routing.after_decide)
    sg.add_edge("clarify", "decide")
    sg.add_edge("spec", "write_tests")
    sg.add_edge("write_tests", "red_phase")
    sg.add_conditional_edges("red_phase", routing.after_red_phase)
    sg.add_edge("implement", "verify")
    sg.add_conditional_edges("verify", routing.after_verify)
    sg.add_conditional_edges("repair", routing.after_repair)
    sg.add_edge("revise_tests", "red_phase")
    sg.add_conditional_edges("register", routing.after_register)
    sg.add_conditional_edges("execute", routing.after_execute)
    sg.add_conditional_edges("next_step", routing.after_next_step)
    sg.add_edge("respond", END)
    return sg


# LangGraph adds the default error-handler node to a builder when it compiles, so a builder compiles once:
# `build_graph` always compiles a fresh one, and `builder` is left for a caller to compile once itself.
builder = make_builder()


def build_graph(checkpointer: Checkpointer = None, *, store: Any = None) -> CompiledStateGraph:
    """Compile the graph with a checkpointer (and optionally a store) of the caller's choosing."""
    return make_builder().compile(checkpointer=checkpointer, store=store, name="self-engineering-agent")


graph = build_graph()
