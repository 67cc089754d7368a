"""Every prompt the graph sends, in one place. Each builder returns the message list for one step.

The human message of every step starts with `User request: ...` on its own line (the demo model reads it).
"""

from __future__ import annotations

import json
from typing import Any

from langchain_core.messages import BaseMessage, HumanMessage, SystemMessage

AGENT_ROLE = (
    "You are the engineering core of an agent that answers requests with small, pure Python tools. "
    "It reuses a tool from its library when one fits, and otherwise engineers a new one by test-driven "
    "development in an isolated sandbox."
)


def _spec_text(spec: dict[str, Any]) -> str:
    lines = [
        f"Name: {spec['name']}",
        f"Signature: {spec['signature']}",
        f"Description: {spec['description']}",
        "Parameters (JSON schema): " + json.dumps(spec["parameters_schema"]),
        "Returns (JSON schema): " + json.dumps(spec["returns_schema"]),
        f"Worked example: {spec['name']}(**{spec['example']['arguments_json']}) == {spec['example']['result_json']}",
        "Edge cases:",
        *[f"- {case}" for case in spec.get("edge_cases", [])],
    ]
    return "\n".join(lines)


DECIDE_RULES = (
    "Step: decide. This is the first decision of the turn: choose its route, with a one-sentence reason.\n"
    "- compute: a deterministic computation over values the user gave, in this message, in the clarifications "
    "or earlier in the conversation. Set `tool` to the one candidate tool that computes exactly what is asked "
    "when called with arguments taken from the request, or null to have a new small, general tool engineered. "
    "Never pick a tool that only does something similar. With a tool, also set `arguments_json`: its keyword "
    "arguments as a JSON object fitting its parameters schema, exactly as the user gave them (numbers as "
    "numbers, text verbatim without quotes); do not compute the answer yourself.\n"
    "- chat: a greeting, thanks, or a question about you or your tool library (which tools exist, what was just "
    "built, a tool's tests or code). Answer in `reply` from the library listing and the conversation below "
    "only, never from memory; never claim a tool that is not listed. Set `show_tool` to a listed tool whose "
    "tests and code the user asks to see: they are appended from the library.\n"
    "- clarify: a computation whose inputs are missing or ambiguous. Put one precise question in `reply` "
    "(which value, in which unit). Never guess, default or invent a value.\n"
    "- decline: the request needs live or outside data (weather, news, prices, scores, today's date), personal "
    "data (accounts, messages, files), an action in the world (sending, buying, booking), or anything the "
    "sandbox forbids (network, files, other processes). In `reply`, one honest sentence on why, and what you "
    "can compute instead. Nothing is built.\n"
    "- chain: several computations in one request, later ones using earlier results. List the steps in "
    "`steps`, one small computation each, in order.\n"
    "Tools are pure Python functions run in an isolated sandbox with no network and no files."
)


def decide(
    request: str,
    candidates: list[dict[str, Any]],
    library: list[dict[str, Any]],
    library_size: int,
    history: list[dict[str, str]],
) -> list[BaseMessage]:
    """decide: the turn's route (compute | chat | clarify | decline | chain), and for compute the tool or none."""
    cards = "\n".join(
        f"- {c['name']}{_params_of(c['signature'])}: {c['description']}"
        + (f"\n  Parameters (JSON schema): {json.dumps(c['parameters_schema'])}" if c.get("parameters_schema") else "")
        for c in candidates
    )
    if not cards:
        cards = "(none: no library tool is close to this request, so a compute request gets a new tool)"
    listing = "\n".join(f"* {t['name']}{_params_of(t['signature'])}: {t['description']}" for t in library)
    if library_size > len(library):
        listing += f"\n* ... and {library_size - len(library)} more"
    return [
        SystemMessage(f"{AGENT_ROLE}\n{DECIDE_RULES}"),
        HumanMessage(
            f"User request: {request}\n\nCandidate tools for compute:\n{cards}\n\n"
            f"The library ({library_size} tool(s)):\n{listing or '(empty)'}\n\n"
            f"Earlier in this conversation:\n{_history_text(history, 5) or '(nothing yet)'}"
        ),
    ]


def _history_text(history: list[dict[str, str]], turns: int) -> str:
    lines = []
    for turn in history[-turns:]:
        tool = f" [tool: {turn['tool']}]" if turn.get("tool") else ""
        answer = " ".join(str(turn.get("answer", "")).split())
        answer = answer if len(answer) <= 400 else answer[:399] + "…"
        lines.append(f"- {turn['request']} -> {answer}{tool}")
    return "\n".join(lines)


def _params_of(signature: str) -> str:
    start = signature.find("(")
    return signature[start:] if start >= 0 else ""


def spec(request: str, sandbox_description: str, decision_reason: str) -> list[BaseMessage]:
    """spec: describe the new tool before any test or code exists."""
    return [
        SystemMessage(
            f"{AGENT_ROLE}\nStep: spec. Specify one small, general, pure function that answers requests like "
            "this one (not only this exact request): a snake_case name, a description someone would search "
            "for, typed parameters (all required) and return type, one worked example with exact JSON values, "
            "the behaviour at the edges (empty input, invalid values: which exception), the modules it "
            "will import, and `request_arguments_json`: the arguments that answer this user's request with it, "
            f"exactly as the request gives them.\n{sandbox_description}"
        ),
        HumanMessage(f"User request: {request}\n\nWhy no existing tool was used: {decision_reason}"),
    ]


def write_tests(
    request: str, spec_: dict[str, Any], sandbox_description: str, feedback: str, previous_tests: str
) -> list[BaseMessage]:
    """write_tests: pytest tests from the spec alone."""
    retry = ""
    if feedback:
        retry = (
            f"\n\nYour previous tests were sent back:\n{feedback}\n\nPrevious tests:\n```python\n{previous_tests}\n```"
        )
    return [
        SystemMessage(
            f"{AGENT_ROLE}\nStep: write_tests. Write the pytest module test_tool.py for the function specified "
            "below. No implementation exists yet: the tests first run against a stub raising "
            "NotImplementedError, and every test must fail there. Rules: import the function with "
            f"`from tool import {spec_['name']}`; plain test functions named test_*; check exact values from the "
            "spec, including the worked example and the edge cases (use pytest.raises for specified "
            "exceptions); no fixtures, no skips, no mocking, no file or network access, no pytest hooks or "
            f"conftest.\n{sandbox_description}"
        ),
        HumanMessage(f"User request: {request}\n\nSpec:\n{_spec_text(spec_)}{retry}"),
    ]


def implement(request: str, spec_: dict[str, Any], tests: str, sandbox_description: str) -> list[BaseMessage]:
    """implement: the code from the spec and the tests."""
    return [
        SystemMessage(
            f"{AGENT_ROLE}\nStep: implement. Write tool.py: define the function with exactly the spec's "
            "signature at module level, pure and deterministic, importing only allowed modules. It must pass "
            f"the tests below.\n{sandbox_description}"
        ),
        HumanMessage(
            f"User request: {request}\n\nSpec:\n{_spec_text(spec_)}\n\nTests (test_tool.py):\n```python\n{tests}\n```"
        ),
    ]


def repair(
    request: str,
    spec_: dict[str, Any],
    tests: str,
    code: str,
    failures: str,
    sandbox_description: str,
    revisions_left: int,
) -> list[BaseMessage]:
    """repair: fix the implementation from the per-test failures."""
    objection = (
        "The tests are fixed: change only the implementation. Only if a test plainly contradicts the spec, "
        "name it in test_objection and argue from the spec's text why it is wrong; the objection is recorded "
        f"and reviewed in a separate step ({revisions_left} such revisions left)."
        if revisions_left > 0
        else "The tests are fixed and no test revisions are left: change only the implementation."
    )
    return [
        SystemMessage(
            f"{AGENT_ROLE}\nStep: repair. The implementation failed its tests in the sandbox. Work out why from "
            f"the failures and return the full corrected tool.py. {objection}\n{sandbox_description}"
        ),
        HumanMessage(
            f"User request: {request}\n\nSpec:\n{_spec_text(spec_)}\n\nTests (test_tool.py):\n```python\n{tests}\n"
            f"```\n\nCurrent implementation (tool.py):\n```python\n{code}\n```\n\nFailures:\n{failures}"
        ),
    ]


def revise_tests(
    request: str, spec_: dict[str, Any], tests: str, failures: str, objection: dict[str, Any]
) -> list[BaseMessage]:
    """revise_tests: the recorded step in which a test may be changed, argued from the spec."""
    return [
        SystemMessage(
            f"{AGENT_ROLE}\nStep: revise_tests. A repair step objected to a test. Change a test only if the spec's "
            "text shows the test is wrong; quote the spec in your argument. Never weaken a test to fit the "
            "code, and never remove the worked example's check. Return the full revised test_tool.py and the "
            "names of the tests you changed; the revision is recorded, and the revised tests must fail against "
            "a stub again before they are used."
        ),
        HumanMessage(
            f"User request: {request}\n\nSpec:\n{_spec_text(spec_)}\n\nTests (test_tool.py):\n```python\n{tests}\n"
            f"```\n\nFailures:\n{failures}\n\nObjection to {objection.get('test_name')}: {objection.get('argument')}"
        ),
    ]


def extract_arguments(request: str, tool: dict[str, Any], history: list[dict[str, str]]) -> list[BaseMessage]:
    """execute: the arguments for the tool, taken from the request."""
    earlier = ""
    if history:
        earlier = "\n\nEarlier in this conversation:\n" + "\n".join(
            f"- {turn['request']} -> {turn['answer']}" for turn in history[-3:]
        )
    return [
        SystemMessage(
            f"{AGENT_ROLE}\nStep: execute. Extract the keyword arguments for the tool below from the user's "
            "request, exactly as the request gives them (numbers as numbers, text verbatim without quotes). "
            "Do not compute the answer yourself."
        ),
        HumanMessage(
            f"User request: {request}\n\nTool: {tool['signature']}\n{tool['description']}\n"
            f"Parameters (JSON schema): {json.dumps(tool['parameters_schema'])}{earlier}"
        ),
    ]


def respond(request: str, tool: dict[str, Any], arguments: dict[str, Any], result: Any) -> list[BaseMessage]:
    """respond: a plain-language answer from the tool's result."""
    return [
        SystemMessage(
            f"{AGENT_ROLE}\nStep: respond. Answer the user in one or two plain sentences using the tool's "
            "result exactly as computed; do not recompute or round it differently."
        ),
        HumanMessage(
            f"User request: {request}\n\nTool: {tool['signature']}\nArguments: {json.dumps(arguments)}\n"
            f"Result (JSON): {json.dumps(result)}"
        ),
    ]


def respond_chain(request: str, results: list[dict[str, Any]]) -> list[BaseMessage]:
    """respond, after a chain: a plain-language answer explaining each step from the tools' results."""
    steps = "\n".join(
        f"{r['step']}. {r['request']}: {r['tool']}({json.dumps(r['arguments'])}) returned {json.dumps(r['result'])}"
        for r in results
    )
    return [
        SystemMessage(
            f"{AGENT_ROLE}\nStep: respond. The request was answered by a chain of tool calls. Answer the user in a "
            "few plain sentences that explain the chain step by step, using each result exactly as computed; do "
            "not recompute or round anything differently."
        ),
        HumanMessage(
            f"User request: {request}\n\nSteps:\n{steps}\n\nResult (JSON): {json.dumps(results[-1]['result'])}"
        ),
    ]
