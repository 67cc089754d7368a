"""One node per module. Each node is a plain sync function of the state (and the runtime) returning a partial
state update; blocking sandbox calls stay in sync nodes."""

from nodes.clarify import clarify
from nodes.decide import decide
from nodes.execute import execute
from nodes.implement import implement
from nodes.next_step import next_step
from nodes.red_phase import red_phase
from nodes.register import register
from nodes.repair import repair
from nodes.respond import respond
from nodes.retrieve import retrieve
from nodes.revise_tests import revise_tests
from nodes.spec import spec
from nodes.verify import verify
from nodes.write_tests import write_tests

__all__ = [
    "clarify",
    "decide",
    "execute",
    "implement",
    "next_step",
    "red_phase",
    "register",
    "repair",
    "respond",
    "retrieve",
    "revise_tests",
    "spec",
    "verify",
    "write_tests",
]
