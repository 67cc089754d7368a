"""The scripted chat model: prepared responses in order, for tests and for the labelled offline demo.

`ScriptedChatModel(responses=[...])` answers each call with the next response; `ScriptedChatModel(by_kind={...})`
keeps one ordered queue per kind of call (the structured-output schema's name, or "text"), so a step the graph
skips (decide when no candidate clears the library's floor) doesn't shift the others. A response is:
- a Pydantic object: a tool call named after its class, so `with_structured_output(ThatClass)` parses it;
- `tool_call(name, args)`: a tool call with arbitrary (possibly malformed) arguments;
- a string or AIMessage: a plain answer;
- an exception (instance): raised, to inject API faults;
- a callable `(messages, kind) -> any of the above`: computed from the prompt.
It records every call (`calls`: the structured-output schema asked for, or "text", and the messages), so tests can
assert which steps asked the model. Token counts are estimates (4 characters a token), labelled as such.

`DemoChatModel` (`--model scripted:demo`) answers from the prompt, knows only its demo examples (`DEMO_REQUESTS`: one
or more per route), and says it is scripted in every answer.
"""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from langchain_core.callbacks import CallbackManagerForLLMRun
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, AIMessageChunk, BaseMessage
from langchain_core.outputs import ChatGeneration, ChatGenerationChunk, ChatResult
from langchain_core.runnables import Runnable
from langchain_core.utils.function_calling import convert_to_openai_tool
from pydantic import BaseModel, ConfigDict, Field, PrivateAttr

from graph import schemas

SCRIPTED_LABEL = "[scripted demo model]"
_registry: dict[str, ScriptedChatModel] = {}
_registry_lock = threading.Lock()


class ScriptedModelError(RuntimeError):
    """The script ran out, or was asked for something it wasn't prepared for."""


def tool_call(name: str, args: dict[str, Any]) -> AIMessage:
    """An AIMessage calling tool `name` with `args` (as a structured-output answer)."""
    return AIMessage(content="", tool_calls=[{"name": name, "args": args, "id": f"call_{name}"}])


def _text_of(messages: Sequence[BaseMessage]) -> str:
    return "\n".join(m.content if isinstance(m.content, str) else json.dumps(m.content) for m in messages)


def _estimate_tokens(text: str) -> int:
    return max(1, len(text) // 4)


class ScriptedCall(BaseModel):
    """One call the scripted model received."""

    model_config = ConfigDict(arbitrary_types_allowed=True)
    kind: str  # the structured-output schema's name, or "text"
    messages: list[BaseMessage]

    @property
    def text(self) -> str:
        return _text_of(self.messages)


class ScriptedChatModel(BaseChatModel):
    """A chat model answering from a prepared list of responses, in order."""

    responses: list[Any] = Field(default_factory=list)
    by_kind: dict[str, list[Any]] = Field(default_factory=dict)
    calls: list[ScriptedCall] = Field(default_factory=list)
    _position: int = PrivateAttr(default=0)
    _lock: threading.Lock = PrivateAttr(default_factory=threading.Lock)

    @property
    def _llm_type(self) -> str:
        return "scripted"

    _kind_positions: dict[str, int] = PrivateAttr(default_factory=dict)

    @property
    def remaining(self) -> int:
        """Responses not yet used."""
        if self.by_kind:
            return sum(len(q) - self._kind_positions.get(k, 0) for k, q in self.by_kind.items())
        return len(self.responses) - self._position

    def remaining_of(self, kind: str) -> int:
        """Responses of one kind not yet used (by_kind mode)."""
        return len(self.by_kind.get(kind, [])) - self._kind_positions.get(kind, 0)

    def kinds(self) -> list[str]:
        """The kinds of the calls received so far, in order."""
        return [c.kind for c in self.calls]

    def bind_tools(self, tools: Sequence[Any], *, tool_choice: Any = None, **kwargs: Any) -> Runnable:
        """Remember which schema is asked for; the response itself comes from the script."""
        names = [convert_to_openai_tool(t)["function"]["name"] for t in tools]
        return self.bind(scripted_tools=names)

    def _next_response(self, messages: list[BaseMessage], kind: str) -> Any:
        with self._lock:
            self.calls.append(ScriptedCall(kind=kind, messages=list(messages)))
            if self.by_kind:
                queue, position = self.by_kind.get(kind, []), self._kind_positions.get(kind, 0)
                if position >= len(queue):
                    raise ScriptedModelError(f"The scripted model has no {kind} response left (it had {len(queue)}).")
                self._kind_positions[kind] = position + 1
                return queue[position]
            if self._position >= len(self.responses):
                raise ScriptedModelError(
                    f"The scripted model has no response left for a {kind} call (it had {len(self.responses)})."
                )
            response = self.responses[self._position]
            self._position += 1
        return response

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        tools: list[str] = kwargs.get("scripted_tools") or []
        kind = tools[0] if tools else "text"
        response = self._next_response(messages, kind)
        if callable(response) and not isinstance(response, BaseModel | BaseMessage):
            response = response(messages, kind)
        if isinstance(response, BaseException):
            raise response
        message = self._as_message(response, kind)
        out_text = message.content if isinstance(message.content, str) else ""
        out_text += json.dumps([tc["args"] for tc in message.tool_calls], default=str)
        message.usage_metadata = {
            "input_tokens": _estimate_tokens(_text_of(messages)),
            "output_tokens": _estimate_tokens(out_text),
            "total_tokens": _estimate_tokens(_text_of(messages)) + _estimate_tokens(out_text),
        }
        message.response_metadata = {"model_name": self._llm_type, "token_counts": "estimated"}
        return ChatResult(generations=[ChatGeneration(message=message)])

    def _should_stream(self, *, async_api: bool, run_manager: Any = None, **kwargs: Any) -> bool:
        """Plain answers stream (word by word) when the caller streams; structured answers never do."""
        if kwargs.get("scripted_tools"):
            return False
        return super()._should_stream(async_api=async_api, run_manager=run_manager, **kwargs)

    def _stream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> Iterator[ChatGenerationChunk]:
        """A plain answer, one word at a time (as a provider streams tokens); the last chunk carries the usage."""
        result = self._generate(messages, stop=stop, run_manager=None, **kwargs)
        message = result.generations[0].message
        text = message.content if isinstance(message.content, str) else ""
        pieces = re.findall(r"\s+|\S+\s*", text) or [text]  # every character, in order
        for piece in pieces:
            chunk = ChatGenerationChunk(message=AIMessageChunk(content=piece))
            if run_manager is not None:
                run_manager.on_llm_new_token(piece, chunk=chunk)
            yield chunk
        yield ChatGenerationChunk(
            message=AIMessageChunk(
                content="", usage_metadata=message.usage_metadata, response_metadata=message.response_metadata
            )
        )

    @staticmethod
    def _as_message(response: Any, kind: str) -> AIMessage:
        if isinstance(response, AIMessage):
            return response.model_copy(deep=True)
        if isinstance(response, BaseModel):
            name = type(response).__name__
            if kind not in ("text", name):
                raise ScriptedModelError(f"The script's next response is a {name} but the step asked for {kind}.")
            return tool_call(name, response.model_dump(mode="json"))
        if isinstance(response, str):
            return AIMessage(content=response)
        raise ScriptedModelError(f"Unsupported scripted response of type {type(response).__name__}.")


def register_scripted(name: str, model: ScriptedChatModel) -> str:
    """Make `model` available as `scripted:<name>` to the model factory; returns that model id."""
    with _registry_lock:
        _registry[name] = model
    return f"scripted:{name}"


def unregister_scripted(name: str) -> None:
    """Forget a registered scripted model."""
    with _registry_lock:
        _registry.pop(name, None)


def registered_scripted(name: str) -> ScriptedChatModel | None:
    """The scripted model registered as `name`, if any."""
    with _registry_lock:
        return _registry.get(name)


# ---------------------------------------------------------------------------------------------------------
# The offline demo: one or more examples per route, computed from the prompt, labelled everywhere


DEMO_REQUESTS = (
    "What is 15 percent of 300?",  # compute: reuse a seed tool
    "Reverse the string 'hello world'",  # compute: engineer reverse_string
    "Reverse 'Python'",  # compute: reuse what was engineered
    "Hi there! What can you do for me?",  # chat: answered from the real library listing
    "What's the weather going to be like in Chicago tomorrow afternoon?",  # decline: live outside data
    "Convert the temperature to Fahrenheit",  # clarify: which temperature? then reuse celsius_to_fahrenheit
    "What is 20 percent of the number of words in 'the quick brown fox jumps'?",  # chain: word_count, then a percent
)
DEMO_CHAT, DEMO_DECLINE, DEMO_CLARIFY, DEMO_CHAIN = DEMO_REQUESTS[3:7]
DEMO_CHAIN_STEPS = ("Count the words in 'the quick brown fox jumps'", "What is 20 percent of the result of step 1?")
_STEP_ONE = re.compile(r"^- step 1 \(.*\): (.+)$", re.MULTILINE)
_ANSWERED = re.compile(r"Answered: .*?(-?\d+(?:\.\d+)?)")
_REQUEST_LINE = re.compile(r"^User request: (.+)$", re.MULTILINE)
_CANDIDATE_LINE = re.compile(r"^- ([a-z][a-z0-9_]*)\(", re.MULTILINE)
_LIBRARY_LINE = re.compile(r"^\* ([a-z][a-z0-9_]*)\(", re.MULTILINE)
_RESULT_LINE = re.compile(r"^Result \(JSON\): (.+)$", re.MULTILINE)

REVERSE_STRING_SPEC = schemas.ToolSpec(
    name="reverse_string",
    description="Reverse a string character by character, e.g. 'abc' becomes 'cba'.",
    parameters=[schemas.Parameter(name="text", type="string", description="The text to reverse.")],
    returns=schemas.Returns(type="string", description="The characters of text in reverse order."),
    example=schemas.WorkedExample(arguments_json='{"text": "abc"}', result_json='"cba"'),
    edge_cases=["An empty string gives an empty string.", "A single character is returned unchanged."],
    imports=[],
    request_arguments_json='{"text": "hello world"}',  # for "Reverse the string 'hello world'"
)
REVERSE_STRING_TESTS = """from tool import reverse_string


def test_reverses_a_phrase():
    assert reverse_string("hello world") == "dlrow olleh"


def test_empty_string_stays_empty():
    assert reverse_string("") == ""


def test_single_character_is_unchanged():
    assert reverse_string("a") == "a"


def test_reversing_twice_gives_the_original():
    assert reverse_string(reverse_string("Python 3.11")) == "Python 3.11"
"""
REVERSE_STRING_CODE = '''def reverse_string(text: str) -> str:
    """Return the characters of text in reverse order."""
    return text[::-1]
'''


class DemoChatModel(ScriptedChatModel):
    """The labelled offline demo (`scripted:demo`): knows only the examples in DEMO_REQUESTS."""

    @property
    def _llm_type(self) -> str:
        return "scripted-demo"

    def _next_response(self, messages: list[BaseMessage], kind: str) -> Any:
        with self._lock:
            self.calls.append(ScriptedCall(kind=kind, messages=list(messages)))
            del self.calls[:-50]  # the demo lives as long as the process: keep only recent calls
        text = _text_of(messages)
        match = _REQUEST_LINE.search(text)
        request = match.group(1).strip() if match else ""
        if request not in DEMO_REQUESTS and request not in DEMO_CHAIN_STEPS:
            raise ScriptedModelError(
                "The scripted demo model only knows its demo examples ("
                + "; ".join(DEMO_REQUESTS)
                + "). Configure a real model to ask anything else, e.g. SEA_MODEL=openai:gpt-4.1-mini with "
                "OPENAI_API_KEY set, or --model provider:model."
            )
        return self._demo_answer(request, kind, text)

    def _demo_answer(self, request: str, kind: str, prompt: str) -> Any:
        percentage = request == DEMO_REQUESTS[0]
        if kind == "TurnDecision":
            return self._demo_decision(request, prompt)
        if kind == "ToolSpec":
            return REVERSE_STRING_SPEC.model_copy(update={"request_arguments_json": json.dumps(_demo_phrase(request))})
        if kind == "TestSuite":
            return schemas.TestSuite(tests=REVERSE_STRING_TESTS)
        if kind in ("Implementation", "Repair"):
            if kind == "Repair":
                return schemas.Repair(analysis=f"{SCRIPTED_LABEL} unchanged", code=REVERSE_STRING_CODE)
            return schemas.Implementation(code=REVERSE_STRING_CODE)
        if kind == "ToolArguments":
            if request == DEMO_CLARIFY:
                return tool_call(kind, {"celsius": _demo_number(prompt)})
            if percentage:
                return tool_call(kind, {"value": 300, "percent": 15})
            return tool_call(kind, _demo_phrase(request))
        if kind == "text" and "\nSteps:\n" in prompt:  # after a chain: each step and its result
            lines = prompt.split("\nSteps:\n", 1)[1].split("\n\nResult (JSON):", 1)[0].splitlines()
            return f"{SCRIPTED_LABEL} Step by step: " + " ".join(line.strip() for line in lines)
        if kind == "text":
            result = _RESULT_LINE.search(prompt)
            value = json.loads(result.group(1)) if result else None
            return f"{SCRIPTED_LABEL} The result is {value!r}."
        raise ScriptedModelError(f"The scripted demo model has no answer for a {kind} step.")

    @staticmethod
    def _demo_decision(request: str, prompt: str) -> schemas.TurnDecision:
        """The turn's route for each demo example, computed from the prompt (the offered tools, the listing)."""
        if request == DEMO_CHAT:
            section = prompt.split("The library (", 1)[-1]
            names = _LIBRARY_LINE.findall(section)
            listing = ", ".join(names) if names else "no tools yet"
            return schemas.TurnDecision(
                route="chat",
                reason=f"{SCRIPTED_LABEL} A greeting and a question about the agent.",
                reply=f"{SCRIPTED_LABEL} Hello! I answer computations with small, tested Python tools that run in a "
                f"sandbox, and I build a new one when none fits. My library has {len(names)} tool(s): {listing}.",
            )
        if request == DEMO_CHAIN:
            return schemas.TurnDecision(
                route="chain",
                reason=f"{SCRIPTED_LABEL} A percentage of a word count: two computations, the second on the first.",
                steps=list(DEMO_CHAIN_STEPS),
            )
        if request in DEMO_CHAIN_STEPS:
            first = request == DEMO_CHAIN_STEPS[0]
            step_one = _STEP_ONE.search(prompt)
            tool = "word_count" if first else "calculate_percentage"
            arguments = {"text": "the quick brown fox jumps"} if first else {
                "value": json.loads(step_one.group(1)) if step_one else None, "percent": 20}
            return schemas.TurnDecision(
                route="compute", reason=f"{SCRIPTED_LABEL} {tool} does this step.", tool=tool,
                arguments_json=json.dumps(arguments),
            )  # fmt: skip
        if request == DEMO_DECLINE:
            return schemas.TurnDecision(
                route="decline",
                reason=f"{SCRIPTED_LABEL} A forecast needs live weather data.",
                reply=f"{SCRIPTED_LABEL} I can't know tomorrow's weather: my tools run offline in a sandbox with no "
                "live data, but I can convert or compute with temperatures you give me.",
            )
        section = prompt.split("Candidate tools for compute:", 1)[-1].split("The library (", 1)[0]
        offered = set(_CANDIDATE_LINE.findall(section))
        if request == DEMO_CLARIFY:
            if _demo_number(prompt) is None:
                return schemas.TurnDecision(
                    route="clarify",
                    reason=f"{SCRIPTED_LABEL} A conversion, but the request gives no temperature.",
                    reply="Which temperature, in degrees Celsius, should I convert to Fahrenheit?",
                )
            if "celsius_to_fahrenheit" not in offered:
                return schemas.TurnDecision(
                    route="decline",
                    reason=f"{SCRIPTED_LABEL} The demo can only reuse the seeded celsius_to_fahrenheit.",
                    reply=f"{SCRIPTED_LABEL} The demo needs the seeded celsius_to_fahrenheit tool for this.",
                )
            return schemas.TurnDecision(
                route="compute",
                reason=f"{SCRIPTED_LABEL} The user gave the temperature; celsius_to_fahrenheit converts it.",
                tool="celsius_to_fahrenheit",
                arguments_json=json.dumps({"celsius": _demo_number(prompt)}),
            )
        percentage = request == DEMO_REQUESTS[0]
        wanted = "calculate_percentage" if percentage else "reverse_string"
        if wanted in offered:
            arguments = {"value": 300, "percent": 15} if percentage else _demo_phrase(request)
            return schemas.TurnDecision(
                route="compute",
                reason=f"{SCRIPTED_LABEL} {wanted} does this.",
                tool=wanted,
                arguments_json=json.dumps(arguments),
            )
        return schemas.TurnDecision(
            route="compute", reason=f"{SCRIPTED_LABEL} No candidate reverses a string.", tool=None
        )


def _demo_phrase(request: str) -> dict[str, str]:
    """reverse_string's arguments for a demo request: the text between single quotes."""
    phrase = re.search(r"'([^']*)'", request)
    return {"text": phrase.group(1) if phrase else ""}


def _demo_number(prompt: str) -> float | int | None:
    """The number in the user's latest clarification answer, as JSON would read it (25 stays an int)."""
    found = _ANSWERED.findall(prompt)
    return json.loads(found[-1]) if found else None


ResponseFactory = Callable[[list[BaseMessage], str], Any]
