"""Each node on its own: a plain function of the state and the runtime, with a scripted model and the real
library and sandbox (temporary SEA_HOME)."""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any

import pytest
from langgraph.runtime import Runtime

import nodes
from graph import resources
from graph.context import Context
from graph.schemas import Implementation, Repair, TestObjection, TestRevision, TestSuite, TurnDecision
from graph.scripted import REVERSE_STRING_CODE, REVERSE_STRING_SPEC, REVERSE_STRING_TESTS, tool_call
from graph.state import turn_reset
from graph.structured import StructuredOutputError
from nodes.spec import spec_record
from tests.graph.graph_test_helpers import BUGGY_REVERSE_CODE, PERCENT_REQUEST, REVERSE_REQUEST, answer_from_result

pytestmark = [pytest.mark.docker]

REVERSE_SPEC = spec_record(REVERSE_STRING_SPEC)


def runtime(model_id: str | None = None, **context: Any) -> Runtime[Context]:
    return Runtime(context=Context(model=model_id, **context))


def synthesis_state(**extra: Any) -> dict[str, Any]:
    return {**turn_reset(), "request": REVERSE_REQUEST, "spec": REVERSE_SPEC, **extra}


# ---- retrieve / decide -----------------------------------------------------------------------------------


def test_retrieve_finds_candidates_and_resets_the_turn(sea_home: Path) -> None:
    update = nodes.retrieve({"request": PERCENT_REQUEST, "code": "old", "repairs": 3}, runtime(retrieve_k=3))
    assert 1 <= len(update["candidates"]) <= 3
    assert "calculate_percentage" in [c["name"] for c in update["candidates"]]
    assert set(update["library_signal"]) >= {"choice", "confidence", "above_floor", "reason"}
    assert update["code"] == "" and update["repairs"] == 0 and update["failure"] is None


def test_retrieve_refuses_an_empty_request(sea_home: Path) -> None:
    update = nodes.retrieve({"request": "  "}, runtime())
    assert update["outcome"] == "error" and update["failure"].startswith("The request is empty")


def test_retrieve_refuses_an_over_long_request_in_one_sentence(sea_home: Path) -> None:
    limit = resources.get_library().settings.max_request_chars
    update = nodes.retrieve({"request": "reverse " + "x" * limit}, runtime())
    assert update["outcome"] == "error"
    assert update["failure"].startswith(f"The request is {limit + 8:,} characters long, over the limit of {limit:,}")
    assert "candidates" not in update or not update["candidates"]


def test_decide_below_the_floor_offers_no_candidate(sea_home: Path, script) -> None:
    """Below the library's floor no tool is offered for reuse: a tool name is refused, a new tool is engineered."""
    model, model_id = script(
        TurnDecision=[
            TurnDecision(route="compute", tool="a", reason="?"),
            TurnDecision(route="compute", tool=None, reason="Nothing close: build one."),
        ]
    )
    state = {"request": "x", "candidates": [{"name": "a"}], "library_signal": {"above_floor": False, "reason": "low"}}
    update = nodes.decide(state, runtime(model_id))
    assert update["decision"]["route"] == "compute" and update["decision"]["choice"] is None
    assert update["decision"]["reason"] == "Nothing close: build one."
    assert "(none: no library tool is close" in model.calls[0].text
    assert "'a' is not a candidate (there are none)" in model.calls[1].text
    assert "tool" not in update and "outcome" not in update


def test_decide_picks_a_candidate_and_loads_the_tool(sea_home: Path, script) -> None:
    model, model_id = script(
        TurnDecision=[
            TurnDecision(route="compute", tool="not_offered", reason="?"),
            TurnDecision(route="compute", tool="calculate_percentage", reason="It computes percentages."),
        ]
    )
    state = nodes.retrieve({"request": PERCENT_REQUEST}, runtime())
    state["request"] = PERCENT_REQUEST
    state["library_signal"]["above_floor"] = True  # the model is asked whatever the calibration says
    update = nodes.decide(state, runtime(model_id))
    assert update["decision"]["choice"] == "calculate_percentage" and update["decision"]["asked_model"]
    assert update["tool"]["name"] == "calculate_percentage"
    assert set(update["tool"]["parameters_schema"]["properties"]) == {"value", "percent"}
    assert "'not_offered' is not a candidate" in model.calls[1].text
    assert "- calculate_percentage(" in model.calls[0].text  # the candidate card with its parameters
    assert update["usage"]["calls"] == 2


# ---- spec / write_tests / implement ----------------------------------------------------------------------


def test_spec_refuses_a_taken_name_and_derives_the_signature(sea_home: Path, script) -> None:
    taken = REVERSE_STRING_SPEC.model_copy(update={"name": "calculate_percentage"})
    model, model_id = script(ToolSpec=[taken, REVERSE_STRING_SPEC])
    update = nodes.spec({"request": REVERSE_REQUEST, "decision": {"reason": "none fits"}}, runtime(model_id))
    assert update["spec"]["signature"] == "def reverse_string(text: str) -> str"
    assert update["spec"]["parameters_schema"]["required"] == ["text"]
    assert "'calculate_percentage' already exists" in model.calls[1].text
    assert "none fits" in model.calls[0].text
    assert "may import only these standard-library modules" in model.calls[0].text


def test_write_tests_feeds_static_problems_back(sea_home: Path, script) -> None:
    cheating = "import os\nfrom tool import reverse_string\n\ndef test_x():\n    os._exit(0)\n"
    model, model_id = script(TestSuite=[TestSuite(tests=cheating), TestSuite(tests=REVERSE_STRING_TESTS)])
    update = nodes.write_tests(synthesis_state(), runtime(model_id))
    assert update["tests"] == REVERSE_STRING_TESTS
    assert "importing 'os'" in model.calls[1].text
    assert "No implementation exists yet" in model.calls[0].text


def test_implement_feeds_a_wrong_signature_back(sea_home: Path, script) -> None:
    wrong = "def reverse_string(s):\n    return s[::-1]\n"
    model, model_id = script(Implementation=[Implementation(code=wrong), Implementation(code=REVERSE_STRING_CODE)])
    update = nodes.implement(synthesis_state(tests=REVERSE_STRING_TESTS), runtime(model_id))
    assert update["code"] == REVERSE_STRING_CODE
    assert "but the spec's signature is `def reverse_string(text: str) -> str`" in model.calls[1].text
    assert REVERSE_STRING_TESTS in model.calls[0].text


# ---- red phase -------------------------------------------------------------------------------------------


def test_red_phase_accepts_tests_that_all_fail_on_the_stub(sea_home: Path) -> None:
    update = nodes.red_phase(synthesis_state(tests=REVERSE_STRING_TESTS), runtime())
    report = update["red_report"]
    assert report["red_ok"] is True and report["reasons"] == []
    assert report["failed"] == 4 and report["verdict"] == "failed"
    assert "test_feedback" not in update


def test_red_phase_rejects_tests_that_pass_on_the_stub(sea_home: Path) -> None:
    tests = REVERSE_STRING_TESTS + "\n\ndef test_callable():\n    assert callable(reverse_string)\n"
    update = nodes.red_phase(synthesis_state(tests=tests, test_rewrites=0), runtime(max_test_rewrites=2))
    assert update["red_report"]["red_ok"] is False
    assert "test_callable passed against a stub" in update["test_feedback"]
    assert update["test_rewrites"] == 1 and "outcome" not in update


def test_red_phase_rejects_tests_failing_for_another_reason(sea_home: Path) -> None:
    tests = "from tool import reverse_string\n\n\ndef test_typo():\n    assert reverse_strin('a') == 'a'\n"
    update = nodes.red_phase(synthesis_state(tests=tests), runtime())
    assert update["red_report"]["red_ok"] is False
    assert "test_typo failed for another reason" in update["test_feedback"]


def test_red_phase_gives_up_after_the_rewrites(sea_home: Path) -> None:
    tests = "from tool import reverse_string\n\n\ndef test_nothing():\n    assert True\n"
    update = nodes.red_phase(synthesis_state(tests=tests, test_rewrites=1), runtime(max_test_rewrites=1))
    assert update["outcome"] == "gave_up"
    assert "Nothing was registered" in update["failure"]


def test_red_phase_static_problems_never_reach_the_sandbox(sea_home: Path, monkeypatch) -> None:
    def no_sandbox() -> None:
        raise AssertionError("the sandbox must not be used")

    monkeypatch.setattr(importlib.import_module("nodes.red_phase"), "get_sandbox_client", no_sandbox)
    update = nodes.red_phase(synthesis_state(tests="def test_x():\n    assert 1\n"), runtime())
    assert update["red_report"]["verdict"] == "static_error"
    assert "from tool import reverse_string" in update["test_feedback"]


# ---- verify / repair / revise_tests ----------------------------------------------------------------------


def test_verify_passes_a_correct_implementation(sea_home: Path) -> None:
    update = nodes.verify(synthesis_state(tests=REVERSE_STRING_TESTS, code=REVERSE_STRING_CODE), runtime())
    assert update["verify_report"]["verdict"] == "passed"
    assert update["verify_report"]["passed"] == 4
    assert update["verify_report"]["image_id"]
    assert "outcome" not in update


def test_verify_fails_a_buggy_implementation_and_gives_up_at_the_limit(sea_home: Path) -> None:
    state = synthesis_state(tests=REVERSE_STRING_TESTS, code=BUGGY_REVERSE_CODE, repairs=0)
    update = nodes.verify(state, runtime(max_repairs=2))
    assert update["verify_report"]["verdict"] == "failed" and "outcome" not in update
    assert [t["name"] for t in update["verify_report"]["tests"] if t["outcome"] == "failed"] == [
        "test_tool.py::test_reverses_a_phrase"
    ]
    state["repairs"] = 2
    update = nodes.verify(state, runtime(max_repairs=2))
    assert update["outcome"] == "gave_up"
    assert "test_reverses_a_phrase" in update["failure"] and "Nothing was registered" in update["failure"]


def test_verify_static_problems_count_as_a_failure_without_running(sea_home: Path, monkeypatch) -> None:
    monkeypatch.setattr(importlib.import_module("nodes.verify"), "get_sandbox_client", lambda: pytest.fail("sandbox"))
    code = "import subprocess\n" + REVERSE_STRING_CODE
    update = nodes.verify(synthesis_state(tests=REVERSE_STRING_TESTS, code=code), runtime())
    assert update["verify_report"]["verdict"] == "static_error"
    assert "importing 'subprocess'" in update["verify_report"]["problems"][0]


FAILED_REPORT = {
    "verdict": "failed",
    "tests": [{"name": "test_tool.py::test_reverses_a_phrase", "outcome": "failed", "message": "assert 'x' == 'y'"}],
    "expected_tests": ["test_reverses_a_phrase"],
}


def test_repair_replaces_only_the_code_and_counts_the_attempt(sea_home: Path, script) -> None:
    model, model_id = script(Repair=[Repair(analysis="words vs characters", code=REVERSE_STRING_CODE)])
    state = synthesis_state(tests=REVERSE_STRING_TESTS, code=BUGGY_REVERSE_CODE, verify_report=FAILED_REPORT)
    update = nodes.repair(state, runtime(model_id))
    assert update["code"] == REVERSE_STRING_CODE and update["repairs"] == 1
    assert "tests" not in update and update["test_objection"] is None
    assert "test_reverses_a_phrase: failed: assert 'x' == 'y'" in model.calls[0].text


def test_repair_keeps_an_objection_only_while_revisions_are_left(sea_home: Path, script) -> None:
    objection = TestObjection(test_name="test_reverses_a_phrase", argument="The spec says so.")
    fix = Repair(analysis="a", code=REVERSE_STRING_CODE, test_objection=objection)
    model, model_id = script(Repair=[fix, fix])
    state = synthesis_state(tests=REVERSE_STRING_TESTS, code=BUGGY_REVERSE_CODE, verify_report=FAILED_REPORT)
    assert nodes.repair(state, runtime(model_id, max_test_revisions=1))["test_objection"]["test_name"] == (
        "test_reverses_a_phrase"
    )
    assert nodes.repair(state, runtime(model_id, max_test_revisions=0))["test_objection"] is None
    assert "no test revisions are left" in model.calls[1].text


def test_revise_tests_records_the_argued_revision(sea_home: Path, script) -> None:
    new_tests = REVERSE_STRING_TESTS.replace('"Python 3.11"', '"abc"')
    argument = "The spec only promises reversal; this changes nothing of substance but is recorded."
    _model, model_id = script(
        TestRevision=[
            TestRevision(argument=argument, changed_tests=["test_reversing_twice_gives_the_original"], tests=new_tests)
        ]
    )
    objection = {"test_name": "test_reversing_twice_gives_the_original", "argument": "too long"}
    state = synthesis_state(
        tests=REVERSE_STRING_TESTS, code=REVERSE_STRING_CODE, test_objection=objection, repairs=1,
        verify_report=FAILED_REPORT,
    )  # fmt: skip
    update = nodes.revise_tests(state, runtime(model_id))
    assert update["tests"] == new_tests and update["test_objection"] is None
    (entry,) = update["test_revisions"]
    assert entry["argument"] == argument and entry["objection"] == objection and entry["after_repair"] == 1
    assert entry["old_tests_sha256"] != entry["new_tests_sha256"]
    assert '+    assert reverse_string(reverse_string("abc")) == "abc"' in entry["diff"]


def test_revise_tests_refuses_an_unargued_or_empty_revision(sea_home: Path, script) -> None:
    _model, model_id = script(
        TestRevision=[TestRevision(argument="wrong", changed_tests=[], tests=REVERSE_STRING_TESTS)]
    )
    state = synthesis_state(tests=REVERSE_STRING_TESTS, test_objection={"test_name": "t", "argument": "a"})
    with pytest.raises(StructuredOutputError) as info:
        nodes.revise_tests(state, runtime(model_id, structured_output_retries=0))
    message = str(info.value)
    assert "argue" in message or "explain" in message
    assert "Name the tests you changed" in message and "identical" in message


# ---- register / execute / respond ------------------------------------------------------------------------


def test_register_is_idempotent_and_records_provenance(sea_home: Path) -> None:
    verified = nodes.verify(synthesis_state(tests=REVERSE_STRING_TESTS, code=REVERSE_STRING_CODE), runtime())
    state = synthesis_state(tests=REVERSE_STRING_TESTS, code=REVERSE_STRING_CODE, **verified)
    config = {"configurable": {"thread_id": "thread-7"}}
    first = nodes.register(state, runtime("scripted:demo"), config)
    second = nodes.register(state, runtime("scripted:demo"), config)
    assert first["tool"] == second["tool"] and first["tool"]["version"] == 1
    manifest = resources.get_library().get("reverse_string")
    assert manifest.provenance.thread_id == "thread-7" and manifest.provenance.model_id == "scripted:demo"
    assert manifest.verification["verdict"] == "passed" and manifest.verification["repairs"] == 0
    assert len(resources.get_library().versions("reverse_string")) == 1


SAFE_DIVIDE_CODE = '''def safe_divide(a: float, b: float) -> float:
    """Divide a by b; dividing by zero raises ZeroDivisionError."""
    if b == 0:
        raise ZeroDivisionError("cannot divide by zero")
    return a / b
'''
SAFE_DIVIDE_TESTS = """import pytest
from tool import safe_divide


def test_divides():
    assert safe_divide(6, 3) == 2


def test_zero_raises():
    with pytest.raises(ZeroDivisionError):
        safe_divide(1, 0)
"""


def test_execute_reports_a_tool_error_and_records_usage(sea_home: Path, script) -> None:
    from tools_library.models import Provenance, ToolDraft

    library = resources.get_library()
    manifest = library.register(
        ToolDraft(
            name="safe_divide",
            signature="def safe_divide(a: float, b: float) -> float",
            description="Divide one number by another.",
            parameters_schema={
                "type": "object",
                "properties": {"a": {"type": "number"}, "b": {"type": "number"}},
                "required": ["a", "b"],
            },
            returns_schema={"type": "number"},
            code=SAFE_DIVIDE_CODE,
            tests=SAFE_DIVIDE_TESTS,
            provenance=Provenance(request="test", source="synthesized"),
        ),
    )
    tool = {
        "name": manifest.name,
        "version": manifest.version,
        "signature": manifest.signature,
        "description": manifest.description,
        "parameters_schema": manifest.parameters_schema,
    }
    _model, model_id = script(ToolArguments=[tool_call("ToolArguments", {"a": 1, "b": 0})])
    update = nodes.execute({"request": "1 divided by 0", "tool": tool, "usage": None}, runtime(model_id))
    assert update["outcome"] == "tool_error"
    assert "ZeroDivisionError" in update["failure"] and "cannot divide by zero" in update["failure"]
    assert update["arguments"] == {"a": 1.0, "b": 0.0}
    usage = library.get("safe_divide").usage
    assert usage.calls == 1 and usage.failures == 1


def test_execute_refuses_arguments_the_sandbox_cannot_carry_in_one_sentence(sea_home: Path, script) -> None:
    from tools_library.models import Provenance, ToolDraft

    code = (
        "def nesting_depth(value: list) -> int:\n"
        "    return 1 + max((nesting_depth(v) for v in value if isinstance(v, list)), default=0)\n"
    )
    tests = (
        "from tool import nesting_depth\n\n\n"
        "def test_flat():\n    assert nesting_depth([1, 2]) == 1\n\n\n"
        "def test_two():\n    assert nesting_depth([[1]]) == 2\n"
    )
    library = resources.get_library()
    manifest = library.register(
        ToolDraft(
            name="nesting_depth", signature="def nesting_depth(value: list) -> int",
            description="How deeply a list nests.",
            parameters_schema={"type": "object", "properties": {"value": {"type": "array"}}, "required": ["value"]},
            returns_schema={"type": "integer"}, code=code, tests=tests,
            provenance=Provenance(request="test", source="synthesized"),
        ),
    )
    tool = {"name": manifest.name, "version": manifest.version, "signature": manifest.signature,
            "description": manifest.description, "parameters_schema": manifest.parameters_schema}
    deep: list = []
    for _ in range(150):
        deep = [deep]
    _model, model_id = script(ToolArguments=[tool_call("ToolArguments", {"value": deep})])
    update = nodes.execute({"request": "how deep is this", "tool": tool, "usage": None}, runtime(model_id))
    assert update["outcome"] == "bad_arguments"
    assert update["failure"].startswith("The arguments for def nesting_depth(value: list) -> int can't be sent")
    assert "nest more than 100 levels" in update["failure"]
    assert library.get("nesting_depth").usage.calls == 0  # nothing ran


def test_respond_reports_a_failure_without_the_model(sea_home: Path, script) -> None:
    model, model_id = script()
    state = {"request": "x", "outcome": "gave_up", "failure": "I could not build it.", "usage": None}
    update = nodes.respond(state, runtime(model_id))
    assert update["answer"] == "I could not build it."  # the usage is in update["usage"], shown apart once
    assert update["outcome"] == "gave_up" and model.calls == []
    assert update["history"] == [{"request": "x", "answer": "I could not build it.", "route": "", "tool": ""}]


def test_respond_answers_from_the_result(sea_home: Path, script) -> None:
    _model, model_id = script(text=[answer_from_result])
    state = {
        "request": PERCENT_REQUEST,
        "outcome": "answered",
        "tool": {"signature": "def calculate_percentage(value: float, percent: float) -> float"},
        "arguments": {"value": 300.0, "percent": 15.0},
        "result": {"ok": True, "result": 45.0},
        "usage": {"calls": 2, "input_tokens": 10, "output_tokens": 5},
    }
    update = nodes.respond(state, runtime(model_id))
    assert update["answer"] == "The answer is 45.0."
    assert update["usage"]["calls"] == 3 and "LLM call" not in update["answer"]


def test_register_uses_an_existing_twin_instead_of_a_duplicate(sea_home: Path) -> None:
    verified = nodes.verify(synthesis_state(tests=REVERSE_STRING_TESTS, code=REVERSE_STRING_CODE), runtime())
    state = synthesis_state(tests=REVERSE_STRING_TESTS, code=REVERSE_STRING_CODE, **verified)
    first = nodes.register(state, runtime("scripted:demo"), {"configurable": {"thread_id": "a"}})
    twin_spec = {**REVERSE_SPEC, "name": "flip_text", "signature": "def flip_text(text: str) -> str"}
    twin_code = REVERSE_STRING_CODE.replace("reverse_string", "flip_text")
    twin_tests = REVERSE_STRING_TESTS.replace("reverse_string", "flip_text")
    verified = nodes.verify(synthesis_state(spec=twin_spec, tests=twin_tests, code=twin_code), runtime())
    twin_state = synthesis_state(spec=twin_spec, tests=twin_tests, code=twin_code, **verified)
    proposed = {"tool": "flip_text", "for": REVERSE_REQUEST, "arguments": {"text": "hello world"}}
    twin_state["proposed_arguments"] = proposed
    second = nodes.register(twin_state, runtime("scripted:demo"), {"configurable": {"thread_id": "b"}})
    assert second["tool"]["name"] == first["tool"]["name"] == "reverse_string"
    assert second["proposed_arguments"] == {**proposed, "tool": "reverse_string"}  # the spec's arguments go along
    assert second["tool"]["source"] == "library"
    assert "flip_text" not in {tool.name for tool in resources.get_library().list_tools()}
