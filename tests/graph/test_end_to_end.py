"""The graph end to end: real Docker sandbox, real library and embeddings, scripted chat model."""

from __future__ import annotations

from pathlib import Path

import httpx
import openai
import pytest

from graph import resources
from graph.schemas import Implementation, Repair, TestObjection, TestRevision, TestSuite, TurnDecision
from graph.scripted import REVERSE_STRING_CODE, REVERSE_STRING_TESTS, SCRIPTED_LABEL, tool_call
from tests.graph.graph_test_helpers import (
    BUGGY_REVERSE_CODE,
    PERCENT_REQUEST,
    PYTHON_REQUEST,
    REVERSE_REQUEST,
    SYNTHESIS_KINDS,
    answer_from_result,
    reverse_script,
    run_graph,
)

pytestmark = [pytest.mark.docker, pytest.mark.slow]


def _tool_names() -> set[str]:
    return {tool.name for tool in resources.get_library().list_tools()}


def test_the_three_examples(sea_home: Path, script) -> None:
    """Reuse a seed tool, synthesize reverse_string, then reuse it without a single synthesis call."""
    # 1. "What is 15 percent of 300?" reuses the seeded calculate_percentage.
    model, model_id = script(
        TurnDecision=[TurnDecision(route="compute", tool="calculate_percentage", reason="It computes percentages.")],
        ToolArguments=[tool_call("ToolArguments", {"value": 300, "percent": 15})],
        text=[answer_from_result],
    )
    run = run_graph(PERCENT_REQUEST, model_id)
    assert run.state["outcome"] == "answered", run.state.get("failure")
    assert run.state["tool"]["name"] == "calculate_percentage"
    assert run.state["result"]["ok"] is True
    assert run.state["result"]["result"] == 45  # computed in the sandbox by the seed tool
    assert "45" in run.state["answer"]
    assert not SYNTHESIS_KINDS & set(model.kinds())

    # 2. "Reverse the string 'hello world'" synthesizes reverse_string, registers it and answers.
    assert "reverse_string" not in _tool_names()
    model, model_id = script(**reverse_script())
    run = run_graph(REVERSE_REQUEST, model_id)
    assert run.state["outcome"] == "answered", run.state.get("failure")
    assert run.state["result"]["result"] == "dlrow olleh"
    assert "dlrow olleh" in run.state["answer"]
    assert run.state["red_report"]["red_ok"] is True
    assert run.state["verify_report"]["verdict"] == "passed"
    assert run.state["repairs"] == 0
    manifest = resources.get_library().get("reverse_string")
    assert manifest.code == REVERSE_STRING_CODE
    assert manifest.verification["verdict"] == "passed"
    assert manifest.provenance.request == REVERSE_REQUEST
    assert manifest.provenance.model_id == model_id
    assert manifest.provenance.thread_id == run.config["configurable"]["thread_id"]
    assert manifest.provenance.sandbox_image_id
    assert {"ToolSpec", "TestSuite", "Implementation"} <= set(model.kinds())
    red = [e for e in run.events_of("test_result") if e["phase"] == "red"]
    green = [e for e in run.events_of("test_result") if e["phase"] == "green"]
    assert len(red) == len(green) == 4
    assert all(e["outcome"] == "failed" for e in red) and all(e["outcome"] == "passed" for e in green)
    assert [e["kind"] for e in run.events_of("code")] == ["tests", "implementation"]

    # 3. "Reverse 'Python'" reuses it: no spec, tests or implementation prompt reaches the model.
    model, model_id = script(
        TurnDecision=[TurnDecision(route="compute", tool="reverse_string", reason="It reverses a string.")],
        ToolArguments=[tool_call("ToolArguments", {"text": "Python"})],
        text=[answer_from_result],
    )
    run = run_graph(PYTHON_REQUEST, model_id)
    assert run.state["outcome"] == "answered", run.state.get("failure")
    assert run.state["decision"]["choice"] == "reverse_string"
    assert run.state["result"]["result"] == "nohtyP"
    assert "nohtyP" in run.state["answer"]
    assert not SYNTHESIS_KINDS & set(model.kinds()), model.kinds()
    assert not any("Step: spec" in c.text or "Step: write_tests" in c.text for c in model.calls)
    assert resources.get_library().get("reverse_string").usage.calls == 2


def test_usage_is_counted_and_shown(sea_home: Path, script) -> None:
    model, model_id = script(**reverse_script())
    run = run_graph(REVERSE_REQUEST, model_id)
    usage = run.state["usage"]
    assert usage["calls"] == len(model.calls)
    assert usage["input_tokens"] > 0 and usage["output_tokens"] > 0
    assert "LLM call" not in run.state["answer"]  # the usage is shown once, apart from the answer
    assert run.events_of("llm")[-1]["calls"] == usage["calls"]


def test_repair_path(sea_home: Path, script) -> None:
    """The first implementation fails a test; the repair, given the per-test failures, passes."""
    model, model_id = script(
        **reverse_script(
            Implementation=[Implementation(code=BUGGY_REVERSE_CODE)],
            Repair=[Repair(analysis="It reversed words, not characters.", code=REVERSE_STRING_CODE)],
        )
    )
    run = run_graph(REVERSE_REQUEST, model_id)
    assert run.state["outcome"] == "answered", run.state.get("failure")
    assert run.state["repairs"] == 1
    assert run.state["result"]["result"] == "dlrow olleh"
    repair_prompt = next(c for c in model.calls if c.kind == "Repair").text
    assert "test_reverses_a_phrase" in repair_prompt  # the failing test reached the repair step
    assert "test_empty_string_stays_empty:" not in repair_prompt  # passing tests are not listed as failures
    assert resources.get_library().get("reverse_string").code == REVERSE_STRING_CODE
    assert run.state["test_revisions"] == []


def test_give_up_path_registers_nothing(sea_home: Path, script) -> None:
    model, model_id = script(
        **reverse_script(
            Implementation=[Implementation(code=BUGGY_REVERSE_CODE)],
            Repair=[Repair(analysis="try again", code=BUGGY_REVERSE_CODE)] * 2,
        )
    )
    run = run_graph(REVERSE_REQUEST, model_id, max_repairs=2)
    assert run.state["outcome"] == "gave_up"
    assert run.state["repairs"] == 2
    assert "reverse_string" not in _tool_names()
    answer = run.state["answer"]
    assert "Nothing was registered" in answer
    assert "test_reverses_a_phrase" in answer
    assert "ToolArguments" not in model.kinds()  # nothing was executed either


def test_vacuous_tests_are_rejected_in_the_red_phase(sea_home: Path, script) -> None:
    vacuous = (
        "from tool import reverse_string\n\n\n"
        "def test_something():\n    assert True\n\n\n"
        "def test_reverses():\n    assert reverse_string('ab') == 'ba'\n"
    )
    model, model_id = script(
        **reverse_script(TestSuite=[TestSuite(tests=vacuous), TestSuite(tests=REVERSE_STRING_TESTS)])
    )
    run = run_graph(REVERSE_REQUEST, model_id)
    assert run.state["outcome"] == "answered", run.state.get("failure")
    assert run.state["test_rewrites"] == 1
    assert run.state["tests"] == REVERSE_STRING_TESTS
    second_write = [c for c in model.calls if c.kind == "TestSuite"][1].text
    assert "test_something passed against a stub" in second_write
    assert resources.get_library().get("reverse_string").tests == REVERSE_STRING_TESTS


def test_vacuous_tests_every_time_give_up(sea_home: Path, script) -> None:
    vacuous = "from tool import reverse_string\n\n\ndef test_nothing():\n    assert reverse_string is not None\n"
    model, model_id = script(**reverse_script(TestSuite=[TestSuite(tests=vacuous)] * 2))
    run = run_graph(REVERSE_REQUEST, model_id, max_test_rewrites=1)
    assert run.state["outcome"] == "gave_up"
    assert "could not write proper tests" in run.state["answer"]
    assert "Implementation" not in model.kinds()
    assert "reverse_string" not in _tool_names()


def test_a_test_revision_goes_through_its_recorded_step(sea_home: Path, script) -> None:
    wrong_tests = REVERSE_STRING_TESTS + (
        "\n\ndef test_spaces_are_dropped():\n    assert reverse_string('a b') == 'ba'\n"
    )
    argument = (
        "The spec says the tool reverses a string character by character; a space is a character, so "
        "reverse_string('a b') must be 'b a', not 'ba'."
    )
    fixed_tests = REVERSE_STRING_TESTS + (
        "\n\ndef test_spaces_are_dropped():\n    assert reverse_string('a b') == 'b a'\n"
    )
    model, model_id = script(
        **reverse_script(
            TestSuite=[TestSuite(tests=wrong_tests)],
            Repair=[
                Repair(
                    analysis="The code is right; test_spaces_are_dropped contradicts the spec.",
                    code=REVERSE_STRING_CODE,
                    test_objection=TestObjection(test_name="test_spaces_are_dropped", argument=argument),
                )
            ],
            TestRevision=[
                TestRevision(argument=argument, changed_tests=["test_spaces_are_dropped"], tests=fixed_tests)
            ],
        )
    )
    run = run_graph(REVERSE_REQUEST, model_id)
    assert run.state["outcome"] == "answered", run.state.get("failure")
    assert model.kinds().count("TestRevision") == 1
    (revision,) = run.state["test_revisions"]
    assert revision["argument"] == argument
    assert revision["changed_tests"] == ["test_spaces_are_dropped"]
    assert revision["objection"]["test_name"] == "test_spaces_are_dropped"
    assert "-    assert reverse_string('a b') == 'ba'" in revision["diff"]
    assert run.state["tests"] == fixed_tests
    # The revised tests went through the red phase again: red events for 5 tests, twice.
    red = [e for e in run.events_of("test_result") if e["phase"] == "red"]
    assert len(red) == 10
    manifest = resources.get_library().get("reverse_string")
    assert manifest.tests == fixed_tests
    assert manifest.verification["test_revisions"][0]["argument"] == argument


def test_objection_without_revisions_left_changes_no_test(sea_home: Path, script) -> None:
    wrong_tests = REVERSE_STRING_TESTS + "\n\ndef test_wrong():\n    assert reverse_string('ab') == 'ab'\n"
    objection = TestObjection(test_name="test_wrong", argument="The spec says 'ab' reverses to 'ba'.")
    model, model_id = script(
        **reverse_script(
            TestSuite=[TestSuite(tests=wrong_tests)],
            Repair=[Repair(analysis="test is wrong", code=REVERSE_STRING_CODE, test_objection=objection)],
        )
    )
    run = run_graph(REVERSE_REQUEST, model_id, max_test_revisions=0, max_repairs=1)
    assert run.state["outcome"] == "gave_up"
    assert "TestRevision" not in model.kinds()
    assert run.state["tests"] == wrong_tests
    assert "reverse_string" not in _tool_names()


def test_malformed_structured_output_is_retried_with_the_error(sea_home: Path, script) -> None:
    model, model_id = script(
        TurnDecision=[
            tool_call("TurnDecision", {"pick": "calculate_percentage"}),
            TurnDecision(route="compute", tool="calculate_percentage", reason="percentages"),
        ],
        ToolArguments=[tool_call("ToolArguments", {"value": 300, "percent": 15})],
        text=[answer_from_result],
    )
    run = run_graph(PERCENT_REQUEST, model_id)
    assert run.state["outcome"] == "answered", run.state.get("failure")
    first, second = [c for c in model.calls if c.kind == "TurnDecision"]
    assert "rejected" not in first.text
    assert "Your previous answer was rejected" in second.text and "reason" in second.text
    assert run.state["usage"]["calls"] == 4


def test_malformed_structured_output_exhausted_fails_cleanly(sea_home: Path, script) -> None:
    model, model_id = script(TurnDecision=[tool_call("TurnDecision", {"nonsense": 1})] * 2)
    run = run_graph(PERCENT_REQUEST, model_id, structured_output_retries=1)
    assert run.state["outcome"] == "error"
    assert "still invalid after 2 attempts" in run.state["answer"]
    assert "Traceback" not in run.state["answer"]
    assert model.kinds() == ["TurnDecision", "TurnDecision"]
    assert run.state["usage"]["calls"] == 2  # the failed attempts are counted too
    assert "LLM call" not in run.state["answer"]


def _rate_limit() -> openai.RateLimitError:
    request = httpx.Request("POST", "https://api.example.invalid/v1/chat/completions")
    return openai.RateLimitError("Rate limit reached", response=httpx.Response(429, request=request), body=None)


def _server_error() -> openai.InternalServerError:
    request = httpx.Request("POST", "https://api.example.invalid/v1/chat/completions")
    return openai.InternalServerError("Bad gateway", response=httpx.Response(502, request=request), body=None)


def test_a_transient_api_error_is_retried(sea_home: Path, script) -> None:
    model, model_id = script(
        TurnDecision=[_rate_limit(), TurnDecision(route="compute", tool="calculate_percentage", reason="percentages")],
        ToolArguments=[_server_error(), tool_call("ToolArguments", {"value": 300, "percent": 15})],
        text=[answer_from_result],
    )
    run = run_graph(PERCENT_REQUEST, model_id)
    assert run.state["outcome"] == "answered", run.state.get("failure")
    assert run.state["result"]["result"] == 45
    assert model.kinds() == ["TurnDecision", "TurnDecision", "ToolArguments", "ToolArguments", "text"]


def test_transient_api_errors_exhausted_fail_cleanly(sea_home: Path, script, monkeypatch) -> None:
    from sea.settings import get_settings

    monkeypatch.setenv("SEA_API_RETRIES", "2")
    get_settings.cache_clear()
    model, model_id = script(
        TurnDecision=[_server_error(), _server_error(), TurnDecision(route="compute", tool=None, reason="x")]
    )
    run = run_graph(PERCENT_REQUEST, model_id)
    assert run.state["outcome"] == "error"
    assert "model API kept failing" in run.state["answer"]
    assert model.kinds() == ["TurnDecision", "TurnDecision"]


def test_wrong_arguments_give_a_clear_message(sea_home: Path, script) -> None:
    model, model_id = script(
        TurnDecision=[TurnDecision(route="compute", tool="calculate_percentage", reason="percentages")],
        ToolArguments=[tool_call("ToolArguments", {"value": "three hundred"})] * 3,
    )
    run = run_graph(PERCENT_REQUEST, model_id)
    assert run.state["outcome"] == "bad_arguments"
    answer = run.state["answer"]
    assert answer.startswith("The request doesn't give valid arguments for def calculate_percentage(")
    assert "percent: required, but not given" in answer  # every problem at once, from the JSON schema
    assert "value: 'three hundred' is not of type 'number'" in answer
    assert "text" not in model.kinds()  # no answer invented from nothing
    assert run.state["usage"]["calls"] == 4
    assert resources.get_library().get("calculate_percentage").usage.calls == 0  # nothing ran


def test_no_model_configured_says_how_to_configure_one(sea_home: Path) -> None:
    run = run_graph(PERCENT_REQUEST, None)
    assert run.state["outcome"] == "error"
    assert "No chat model is configured" in run.state["answer"]
    assert "SEA_MODEL=openai:gpt-4.1-mini" in run.state["answer"]
    assert "scripted:demo" in run.state["answer"]


def test_an_empty_request_is_refused_clearly(sea_home: Path, script) -> None:
    model, model_id = script()
    run = run_graph("   ", model_id)
    assert run.state["outcome"] == "error"
    assert run.state["answer"].startswith("The request is empty")
    assert model.calls == []


def test_the_offline_demo_knows_the_three_examples_and_says_it_is_scripted(sea_home: Path) -> None:
    answers = {}
    for request in (PERCENT_REQUEST, REVERSE_REQUEST, PYTHON_REQUEST):
        run = run_graph(request, "scripted:demo")
        assert run.state["outcome"] == "answered", run.state.get("failure")
        answers[request] = run.state["answer"]
        assert SCRIPTED_LABEL in run.state["answer"]
    assert "45" in answers[PERCENT_REQUEST]
    assert "dlrow olleh" in answers[REVERSE_REQUEST]
    assert "nohtyP" in answers[PYTHON_REQUEST]
    other = run_graph("What's the weather in Paris?", "scripted:demo")
    assert other.state["outcome"] == "error"
    assert "only knows its demo examples" in other.state["answer"]


def test_a_thread_continues_with_its_history(sea_home: Path, script) -> None:
    model, model_id = script(
        TurnDecision=[TurnDecision(route="compute", tool="calculate_percentage", reason="percentages")] * 2,
        ToolArguments=[tool_call("ToolArguments", {"value": 300, "percent": 15})] * 2,
        text=[answer_from_result] * 2,
    )
    first = run_graph(PERCENT_REQUEST, model_id, thread_id="conversation-1")
    second = run_graph("And 15 percent of 300 again?", model_id, graph=first.graph, thread_id="conversation-1")
    assert second.state["outcome"] == "answered"
    assert [turn["request"] for turn in second.state["history"]] == [PERCENT_REQUEST, "And 15 percent of 300 again?"]
    assert second.state["usage"]["calls"] == 3  # counted per run, not per thread
    assert PERCENT_REQUEST in [c for c in model.calls if c.kind == "ToolArguments"][1].text


def test_a_missing_sandbox_image_ends_the_run_with_its_one_sentence(sea_home: Path, script) -> None:
    from sandbox import Sandbox
    from sea.settings import Settings

    model, model_id = script(
        TurnDecision=[TurnDecision(route="compute", tool="calculate_percentage", reason="percentages")],
        ToolArguments=[tool_call("ToolArguments", {"value": 300, "percent": 15})],
    )
    missing = Sandbox(Settings(sandbox_image="sea-sandbox:does-not-exist"))
    resources.use_sandbox(missing)
    try:
        run = run_graph(PERCENT_REQUEST, model_id)
    finally:
        resources.use_sandbox(None)
        missing.close()
    assert run.state["outcome"] == "error"
    assert run.state["answer"].startswith(
        "The execute step failed: The sandbox image sea-sandbox:does-not-exist is missing"
    )
    assert "python -m sandbox build-image" in run.state["answer"]
    assert "text" not in model.kinds()
