"""The graph's error handler: a node that raised (after its RetryPolicy gave up) ends the run cleanly through
`respond`, with one clear message instead of a traceback."""

from __future__ import annotations

import logging
from typing import Literal

from langgraph.errors import NodeError
from langgraph.types import Command

from graph.state import State
from graph.structured import is_transient_api_error

log = logging.getLogger(__name__)

# Errors whose own message is written for users.
_USER_FACING = ("ModelNotConfiguredError", "StructuredOutputError", "ScriptedModelError", "SandboxError")


def describe_error(node: str, error: BaseException) -> str:
    """One clear sentence (or two) saying which step failed and why."""
    names = {cls.__name__ for cls in type(error).__mro__}
    message = str(error).strip() or type(error).__name__
    if names & set(_USER_FACING):
        return f"The {node} step failed: {message}"
    if is_transient_api_error(error):
        return (
            f"The {node} step failed: the model API kept failing ({type(error).__name__}: "
            f"{message.splitlines()[0][:300]}) after its retries. Try again in a moment."
        )
    return f"The {node} step failed unexpectedly ({type(error).__name__}: {message.splitlines()[0][:300]})."


def handle_node_error(state: State, error: NodeError) -> Command[Literal["respond"]]:
    """Record the failure and go to respond, which tells the user what failed."""
    # The traceback goes to debug logging only: users see the one clear message.
    log.debug("node %s failed", error.node, exc_info=error.error)
    update: dict[str, object] = {"outcome": "error", "failure": describe_error(error.node, error.error)}
    spent = getattr(error.error, "usage", None)  # a StructuredOutputError knows what its attempts cost
    if isinstance(spent, dict):
        update["usage"] = spent
    return Command(goto="respond", update=update)
