"""The model factory, the scripted model, structured calls, schemas, static checks and context (no Docker)."""

from __future__ import annotations

import httpx
import openai
import pytest
from langchain_core.messages import HumanMessage

from graph.context import Context, resolve_context
from graph.errors import describe_error
from graph.models import ModelNotConfiguredError, get_chat_model
from graph.schemas import (
    Parameter,
    Returns,
    ToolSpec,
    TurnDecision,
    WorkedExample,
    argument_problems,
    arguments_model,
    parameters_schema_of,
    signature_of,
    spec_problems,
    validated_arguments,
)
from graph.scripted import (
    REVERSE_STRING_CODE,
    REVERSE_STRING_TESTS,
    SCRIPTED_LABEL,
    DemoChatModel,
    ScriptedChatModel,
    ScriptedModelError,
    tool_call,
)
from graph.static_checks import check_test_code, check_tool_code, test_function_names
from graph.structured import StructuredOutputError, add_usage, call_structured, call_text, is_transient_api_error
from sea.settings import get_settings
from tools_library.models import make_stub

ALLOWED = frozenset({"math", "re", "string"})
SIGNATURE = "def reverse_string(text: str) -> str"


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch):
    for key in ("SEA_MODEL", "SEA_MAX_REPAIRS", "SEA_RETRIEVE_K"):
        monkeypatch.delenv(key, raising=False)
    get_settings.cache_clear()
    yield monkeypatch
    get_settings.cache_clear()


# ---- model factory ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("model", [None, "", "   "])
def test_no_model_configured_says_how(model: str | None) -> None:
    with pytest.raises(ModelNotConfiguredError, match=r"SEA_MODEL=openai:gpt-4\.1-mini") as info:
        get_chat_model(model)
    assert "scripted:demo" in str(info.value)


def test_a_model_without_provider_is_refused() -> None:
    with pytest.raises(ModelNotConfiguredError, match="not of the form provider:model"):
        get_chat_model("gpt-4.1-mini")


def test_an_unknown_scripted_model_is_refused() -> None:
    with pytest.raises(ModelNotConfiguredError, match="No scripted model named 'nope'"):
        get_chat_model("scripted:nope")


def test_openai_without_a_key_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    with pytest.raises(ModelNotConfiguredError, match="could not be set up") as info:
        get_chat_model("openai:gpt-4.1-mini-no-key")
    assert "\n" not in str(info.value)


def test_openai_with_a_key_and_base_url_builds_init_chat_model(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-not-used")
    model = get_chat_model("openai:gpt-4.1-mini", base_url="http://localhost:9/v1", temperature=0.3)
    assert type(model).__name__ == "ChatOpenAI"
    assert model.model_name == "gpt-4.1-mini"
    assert str(model.openai_api_base).startswith("http://localhost:9")
    assert model.temperature == 0.3


def test_anthropic_and_ollama_build_their_own_chat_models(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-ant-test-not-used")
    anthropic_model = get_chat_model("anthropic:claude-sonnet-4-5", temperature=0.2)
    assert type(anthropic_model).__name__ == "ChatAnthropic"
    assert anthropic_model.model == "claude-sonnet-4-5"
    ollama_model = get_chat_model("ollama:llama3.1", base_url="http://127.0.0.1:9")
    assert type(ollama_model).__name__ == "ChatOllama"
    assert ollama_model.model == "llama3.1"
    assert ollama_model.base_url == "http://127.0.0.1:9"


def test_an_uninstalled_provider_says_what_to_install() -> None:
    with pytest.raises(ModelNotConfiguredError, match=r"not installed|could not be set up"):
        get_chat_model("no-such-provider-xyz:some-model")


def test_the_demo_is_chosen_only_explicitly() -> None:
    assert isinstance(get_chat_model("scripted:demo"), DemoChatModel)


def test_the_demo_labels_its_answers_and_refuses_other_requests() -> None:
    demo = DemoChatModel()
    text = demo.invoke([HumanMessage("User request: Reverse 'Python'\nResult (JSON): \"nohtyP\"")]).content
    assert text.startswith(SCRIPTED_LABEL) and "nohtyP" in text
    with pytest.raises(ScriptedModelError, match="only knows its demo examples"):
        demo.invoke([HumanMessage("User request: What's the weather?")])


# ---- scripted model --------------------------------------------------------------------------------------


def test_scripted_model_answers_in_order_and_records_calls() -> None:
    model = ScriptedChatModel(responses=[TurnDecision(route="compute", tool="a", reason="r"), "plain"])
    parsed = model.with_structured_output(TurnDecision).invoke("pick")
    assert parsed == TurnDecision(route="compute", tool="a", reason="r")
    assert model.invoke("say").content == "plain"
    assert model.kinds() == ["TurnDecision", "text"]
    with pytest.raises(ScriptedModelError, match="no response left"):
        model.invoke("more")


def test_scripted_model_refuses_a_response_of_the_wrong_kind() -> None:
    model = ScriptedChatModel(responses=[TurnDecision(route="compute", tool="a", reason="r")])
    with pytest.raises(ScriptedModelError, match="asked for ToolSpec"):
        model.with_structured_output(ToolSpec).invoke("spec")


def test_scripted_model_by_kind_queues() -> None:
    model = ScriptedChatModel(
        by_kind={"text": ["one", "two"], "TurnDecision": [TurnDecision(route="compute", tool=None, reason="x")]}
    )
    assert model.invoke("a").content == "one"
    assert model.with_structured_output(TurnDecision).invoke("b").tool is None
    assert model.invoke("c").content == "two"
    assert model.remaining == 0


def test_scripted_model_raises_injected_errors_and_estimates_tokens() -> None:
    model = ScriptedChatModel(responses=[RuntimeError("injected"), "x" * 400])
    with pytest.raises(RuntimeError, match="injected"):
        model.invoke("a")
    message = model.invoke("b" * 40)
    assert message.usage_metadata["output_tokens"] == 100
    assert message.usage_metadata["input_tokens"] == 10


# ---- structured calls ------------------------------------------------------------------------------------


def test_malformed_output_is_fed_back_then_accepted() -> None:
    model = ScriptedChatModel(
        responses=[
            tool_call("TurnDecision", {"route": 5}),
            TurnDecision(route="compute", tool="tool_a", reason="fits"),
        ]
    )
    parsed, usage = call_structured(model, TurnDecision, [HumanMessage("pick")], usage=None, retries=2)
    assert parsed.tool == "tool_a"
    assert usage["calls"] == 2
    retry_prompt = model.calls[1].text
    assert "Your previous answer was rejected" in retry_prompt
    assert "route" in retry_prompt and "reason" in retry_prompt  # the validation errors
    assert '"route": 5' in retry_prompt  # the previous answer


def test_a_check_failure_is_fed_back_like_a_schema_error() -> None:
    model = ScriptedChatModel(
        responses=[
            TurnDecision(route="compute", tool="made_up", reason="x"),
            TurnDecision(route="compute", tool="real", reason="y"),
        ]
    )

    def check(choice: TurnDecision) -> list[str]:
        return [] if choice.tool == "real" else ["'made_up' is not a candidate"]

    parsed, _ = call_structured(model, TurnDecision, [HumanMessage("pick")], usage=None, retries=1, check=check)
    assert parsed.tool == "real"
    assert "'made_up' is not a candidate" in model.calls[1].text


def test_malformed_output_exhausted_raises_a_clear_error() -> None:
    model = ScriptedChatModel(responses=["no tool call at all", tool_call("TurnDecision", {})])
    with pytest.raises(StructuredOutputError, match="still invalid after 2 attempts") as info:
        call_structured(model, TurnDecision, [HumanMessage("pick")], usage=None, retries=1)
    assert len(model.calls) == 2
    assert info.value.problems == ["route: Field required", "reason: Field required"]


def test_usage_adds_up() -> None:
    model = ScriptedChatModel(responses=["a" * 40, "b" * 80])
    _, usage = call_text(model, [HumanMessage("x" * 8)], usage=None)
    _, usage = call_text(model, [HumanMessage("x" * 8)], usage=usage)
    assert usage == {"calls": 2, "input_tokens": 4, "output_tokens": 30}
    assert add_usage(usage, None)["calls"] == 3


def _status_error(cls: type[openai.APIStatusError], status: int) -> openai.APIStatusError:
    request = httpx.Request("POST", "https://api.example.invalid/v1")
    return cls("x", response=httpx.Response(status, request=request), body=None)


@pytest.mark.parametrize(
    ("error", "transient"),
    [
        (_status_error(openai.RateLimitError, 429), True),
        (_status_error(openai.InternalServerError, 503), True),
        (openai.APITimeoutError(request=httpx.Request("POST", "https://x.invalid")), True),
        (openai.APIConnectionError(request=httpx.Request("POST", "https://x.invalid")), True),
        (httpx.ReadTimeout("slow"), True),
        (TimeoutError(), True),
        (_status_error(openai.AuthenticationError, 401), False),
        (_status_error(openai.BadRequestError, 400), False),
        (ValueError("bug"), False),
        (StructuredOutputError("bad"), False),
    ],
)
def test_transient_api_errors_are_told_apart(error: Exception, transient: bool) -> None:
    assert is_transient_api_error(error) is transient


def test_error_messages_for_users() -> None:
    assert describe_error("spec", ModelNotConfiguredError("No chat model is configured.")) == (
        "The spec step failed: No chat model is configured."
    )
    assert "model API kept failing" in describe_error("decide", _status_error(openai.RateLimitError, 429))
    assert describe_error("verify", KeyError("spec")).startswith("The verify step failed unexpectedly (KeyError")


# ---- schemas ---------------------------------------------------------------------------------------------


def _spec(**overrides) -> ToolSpec:
    data = {
        "name": "repeat_text",
        "description": "Repeat a text n times.",
        "parameters": [
            Parameter(name="text", type="string", description="the text"),
            Parameter(name="times", type="integer", description="how often"),
        ],
        "returns": Returns(type="string", description="the repeated text"),
        "example": WorkedExample(arguments_json='{"text": "ab", "times": 2}', result_json='"abab"'),
        "edge_cases": ["times=0 gives ''"],
        "imports": [],
    }
    data.update(overrides)
    return ToolSpec(**data)


def test_signature_and_schema_come_from_the_typed_parameters() -> None:
    spec = _spec()
    assert signature_of(spec) == "def repeat_text(text: str, times: int) -> str"
    schema = parameters_schema_of(spec)
    assert schema["required"] == ["text", "times"]
    assert schema["properties"]["times"]["type"] == "integer"
    listing = _spec(returns=Returns(type="array", items="string", description="parts"))
    assert signature_of(listing).endswith("-> list[str]")


def test_spec_problems() -> None:
    assert spec_problems(_spec(), ALLOWED) == []
    assert "not available in the sandbox: os" in spec_problems(_spec(imports=["os"]), ALLOWED)[0]
    bad_example = _spec(example=WorkedExample(arguments_json='{"text": "ab"}', result_json='"x"'))
    assert any("times" in p and "required" in p for p in spec_problems(bad_example, ALLOWED))
    assert any("not valid JSON" in p for p in spec_problems(_spec(example=WorkedExample(
        arguments_json="{text}", result_json="1")), ALLOWED))  # fmt: skip
    dup = _spec(parameters=[Parameter(name="a", type="string", description="")] * 2)
    assert "Parameter names must be unique." in spec_problems(dup, ALLOWED)


def test_arguments_are_validated_against_the_json_schema() -> None:
    schema = parameters_schema_of(_spec())
    assert argument_problems(schema, {"text": "ab", "times": 2}) == []
    assert validated_arguments(schema, {"text": "ab", "times": 2}) == {"text": "ab", "times": 2}
    problems = argument_problems(schema, {"text": 3, "extra": 1})
    assert any(p.startswith("text:") for p in problems)
    assert any(p.startswith("times:") and "required" in p for p in problems)
    assert any(p.startswith("extra:") for p in problems)


def test_arguments_keep_their_json_types() -> None:
    """Validated with the JSON schema itself: nothing is coerced through a Pydantic float or str."""
    schema = {
        "type": "object",
        "properties": {
            "numbers": {"type": "array", "items": {"type": "integer"}},
            "value": {"type": "number"},
            "label": {"type": "string"},
            "times": {"type": "integer"},
        },
        "required": ["numbers", "value", "label", "times"],
    }
    given = {"numbers": [3, 8, 12], "value": 300, "label": "7", "times": 2.0}
    checked = validated_arguments(schema, given)
    assert checked == {"numbers": [3, 8, 12], "value": 300, "label": "7", "times": 2}
    assert [type(v) for v in checked["numbers"]] == [int, int, int]
    assert type(checked["value"]) is int and type(checked["label"]) is str and type(checked["times"]) is int
    assert type(validated_arguments(schema, {**given, "value": 2.5})["value"]) is float
    problems = argument_problems(schema, {**given, "value": True, "label": 7, "numbers": [1.5]})
    assert problems == [
        "label: 7 is not of type 'string'", "numbers.0: 1.5 is not of type 'integer'",
        "value: True is not of type 'number'",
    ]  # fmt: skip
    with pytest.raises(ValueError, match="not of type"):
        validated_arguments(schema, {**given, "label": 7})
    model = arguments_model(schema)  # the model sees the tool's schema; parsing leaves the values alone
    assert model.model_json_schema()["properties"]["numbers"]["items"] == {"type": "integer"}
    assert model.model_validate(given).model_dump(exclude_unset=True) == given


# ---- static checks ---------------------------------------------------------------------------------------


def test_good_code_and_tests_pass_the_static_checks() -> None:
    assert check_tool_code(REVERSE_STRING_CODE, "reverse_string", SIGNATURE, ALLOWED) == []
    assert check_test_code(REVERSE_STRING_TESTS, "reverse_string", ALLOWED) == []
    assert len(test_function_names(REVERSE_STRING_TESTS)) == 4


@pytest.mark.parametrize(
    ("code", "fragment"),
    [
        ("def reverse_string(text: str) -> str\n", "does not parse"),
        ("def other(text: str) -> str:\n    return text\n", "does not define the function reverse_string"),
        ("def reverse_string(s: str) -> str:\n    return s\n", "but the spec's signature is"),
        ("def reverse_string(text: str, *a) -> str:\n    return text\n", "exactly the spec's parameters"),
        ("import os\ndef reverse_string(text: str) -> str:\n    return text\n", "importing 'os'"),
        ("from os import path\ndef reverse_string(text: str) -> str:\n    return text\n", "importing 'os'"),
        ("def reverse_string(text: str) -> str:\n    return eval('text')\n", "calling eval()"),
        ("def reverse_string(text: str) -> str:\n    return ().__class__.__name__\n", "using .__class__"),
    ],
)
def test_code_static_problems(code: str, fragment: str) -> None:
    problems = check_tool_code(code, "reverse_string", SIGNATURE, ALLOWED)
    assert any(fragment in p for p in problems), problems


GOOD_HEAD = "from tool import reverse_string\n\n"


@pytest.mark.parametrize(
    ("tests", "fragment"),
    [
        ("def test_x(:\n", "does not parse"),
        ("def test_x():\n    assert reverse_string('a') == 'a'\n", "from tool import reverse_string"),
        (GOOD_HEAD + "X = 1\n", "no test function"),
        (GOOD_HEAD + "import tool\ndef test_x():\n    assert tool.reverse_string('a')\n", "import the tool module"),
        (GOOD_HEAD + "def reverse_string(t):\n    return t[::-1]\ndef test_x():\n    assert 1\n", "redefine"),
        (GOOD_HEAD + "def test_x(monkeypatch):\n    assert reverse_string('a')\n", "fixture 'monkeypatch'"),
        (GOOD_HEAD + "def pytest_collection_modifyitems(items):\n    pass\ndef test_x():\n    pass\n", "hook"),
        (GOOD_HEAD + "import pytest\n@pytest.mark.skip\ndef test_x():\n    pass\n", "skip"),
        (GOOD_HEAD + "import pytest\ndef test_x():\n    pytest.exit('done')\n", "pytest.exit"),
        (GOOD_HEAD + "import os\ndef test_x():\n    os._exit(0)\n", "importing 'os'"),
        (GOOD_HEAD + "import sys\ndef test_x():\n    sys.exit(0)\n", "importing 'sys'"),
        (GOOD_HEAD + "def test_x():\n    exit(0)\n", "calling exit()"),
        (GOOD_HEAD + "import conftest\ndef test_x():\n    pass\n", "conftest"),
        (GOOD_HEAD + "pytest_plugins = ['x']\ndef test_x():\n    pass\n", "pytest_plugins"),
        (GOOD_HEAD + "def test_x():\n    assert 1\ndef test_x():\n    assert 2\n", "defined more than once"),
    ],
)
def test_tests_static_problems(tests: str, fragment: str) -> None:
    problems = check_test_code(tests, "reverse_string", ALLOWED)
    assert any(fragment in p for p in problems), problems


def test_hypothesis_and_pytest_raises_are_allowed_in_tests() -> None:
    tests = (
        GOOD_HEAD + "import pytest\nfrom hypothesis import given, strategies as st\n\n"
        "@given(st.text())\ndef test_twice(s):\n    assert reverse_string(reverse_string(s)) == s\n\n"
        "def test_type():\n    with pytest.raises(TypeError):\n        reverse_string(None)\n"
    )
    assert check_test_code(tests, "reverse_string", ALLOWED) == []


def test_the_stub_has_the_signature_and_raises() -> None:
    stub = make_stub("reverse_string", SIGNATURE)
    assert check_tool_code(stub, "reverse_string", SIGNATURE, ALLOWED) == []
    namespace: dict = {}
    exec(compile(stub, "tool.py", "exec"), namespace)  # our own generated stub, not model output
    with pytest.raises(NotImplementedError):
        namespace["reverse_string"]("abc")


# ---- context ---------------------------------------------------------------------------------------------


def test_context_precedence_explicit_then_env_then_default(clean_env: pytest.MonkeyPatch) -> None:
    assert Context().max_repairs == 3 and Context().model is None
    clean_env.setenv("SEA_MAX_REPAIRS", "5")
    clean_env.setenv("SEA_MODEL", "scripted:demo")
    get_settings.cache_clear()
    assert Context().max_repairs == 5 and Context().model == "scripted:demo"
    assert Context(max_repairs=1).max_repairs == 1


def test_context_from_a_dict_or_nothing(clean_env: pytest.MonkeyPatch) -> None:
    assert resolve_context(None) == Context()
    ctx = resolve_context({"model": "scripted:demo", "retrieve_k": 7, "unknown": 1, "max_repairs": None})
    assert ctx.model == "scripted:demo" and ctx.retrieve_k == 7 and ctx.max_repairs == 3


def test_scripted_plain_answers_stream_word_by_word_and_structured_ones_do_not() -> None:
    model = ScriptedChatModel(responses=["It is 45.", TurnDecision(route="chat", reason="r", reply="Hi")])
    chunks = [c.content for c in model.stream("say")]
    assert [c for c in chunks if c] == ["It ", "is ", "45."]
    assert model.with_structured_output(TurnDecision).invoke("pick").reply == "Hi"
    assert model.kinds() == ["text", "TurnDecision"]
