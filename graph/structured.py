"""Calling a model for a structured (Pydantic) output, counting calls and tokens.

- A malformed output (no tool call, a validation error, or a problem found by the caller's `check`) is retried
  with the error fed back, up to `retries` more times; then StructuredOutputError says what was wrong.
- Transient API errors (429, 5xx, timeouts, connection errors) propagate: the node's RetryPolicy
  (`is_transient_api_error`) retries them with backoff, and the graph's error handler ends the run cleanly.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from langchain_core.exceptions import OutputParserException
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, BaseMessage, HumanMessage
from pydantic import BaseModel, ValidationError

from graph.progress import emit
from graph.state import Usage, empty_usage

T = TypeVar("T", bound=BaseModel)
Check = Callable[[Any], Sequence[str]]

_TRANSIENT_NAMES = frozenset(
    {
        "RateLimitError",
        "APITimeoutError",
        "APIConnectionError",
        "InternalServerError",
        "ServiceUnavailableError",
        "OverloadedError",
        "ReadTimeout",
        "ConnectTimeout",
        "ConnectError",
        "RemoteProtocolError",
        "TimeoutException",
    }
)


# Provider errors that mean "the answer was unusable" rather than "the API failed".
_MALFORMED_NAMES = frozenset({"LengthFinishReasonError", "ContentFilterFinishReasonError"})


class StructuredOutputError(RuntimeError):
    """The model's output stayed malformed after every allowed retry; `problems` are the last ones found."""

    def __init__(self, message: str, problems: Sequence[str] = (), usage: Usage | None = None) -> None:
        super().__init__(message)
        self.problems = list(problems)
        self.usage = usage  # the calls and tokens spent on the failed attempts


def is_transient_api_error(exc: BaseException) -> bool:
    """True for errors worth retrying with backoff: rate limits, 5xx, timeouts, dropped connections."""
    status = getattr(exc, "status_code", None)
    if status is None:
        status = getattr(getattr(exc, "response", None), "status_code", None)
    if isinstance(status, int) and (status in (408, 409, 429) or status >= 500):
        return True
    if isinstance(exc, TimeoutError | ConnectionError):
        return True
    return any(cls.__name__ in _TRANSIENT_NAMES for cls in type(exc).__mro__)


def add_usage(usage: Usage | None, message: BaseMessage | None) -> Usage:
    """`usage` plus one call and the message's token counts (0 when the provider reports none)."""
    total = dict(usage or empty_usage())
    meta = getattr(message, "usage_metadata", None) or {}
    return {
        "calls": int(total.get("calls", 0)) + 1,
        "input_tokens": int(total.get("input_tokens", 0)) + int(meta.get("input_tokens", 0) or 0),
        "output_tokens": int(total.get("output_tokens", 0)) + int(meta.get("output_tokens", 0) or 0),
    }


def _raw_output(raw: Any) -> str:
    if isinstance(raw, AIMessage):
        if raw.tool_calls:
            return json.dumps([tc.get("args") for tc in raw.tool_calls], default=str)[:2000]
        return str(raw.content)[:2000]
    return ""


def _unstreamed(model: BaseChatModel) -> BaseChatModel:
    """The model with streaming off, for structured calls. Runs stream (the CLI and the app ask for "messages"),
    which makes a provider model stream every call; a structured answer is parsed whole anyway, and
    langchain-openai's streamed json_schema path drops the token usage. Models that cannot stream (the scripted
    ones) are returned as they are."""
    from graph.scripted import ScriptedChatModel  # its structured answers never stream (and a copy would fork
    # its script)

    if model.disable_streaming is True or type(model)._stream is BaseChatModel._stream:
        return model
    if isinstance(model, ScriptedChatModel):
        return model
    return model.model_copy(update={"disable_streaming": True})


def call_structured(
    model: BaseChatModel,
    schema: type[T],
    messages: Sequence[BaseMessage],
    *,
    usage: Usage | None,
    retries: int,
    check: Check | None = None,
) -> tuple[T, Usage]:
    """Ask `model` for a `schema` object; returns it and the updated usage, or raises StructuredOutputError."""
    runnable = _unstreamed(model).with_structured_output(schema, include_raw=True)
    conversation = list(messages)
    current = usage or empty_usage()
    problems: list[str] = []
    for _attempt in range(retries + 1):
        try:
            output = runnable.invoke(conversation)
        except Exception as exc:
            # Some providers parse inside the client (OpenAI's json_schema method), so a malformed answer
            # raises here instead of coming back as `parsing_error`; everything else propagates.
            if not _is_malformed_output(exc):
                raise
            output = {"raw": None, "parsed": None, "parsing_error": exc}
        raw = output.get("raw") if isinstance(output, dict) else None
        current = add_usage(current, raw)
        emit("llm", **current)
        if not isinstance(output, dict):
            output = {}
        parsed, error = output.get("parsed"), output.get("parsing_error")
        if error is not None:
            problems = _error_lines(error, schema.__name__)
        elif parsed is None:
            problems = [f"No {schema.__name__} was returned: answer by calling the {schema.__name__} tool."]
        else:
            problems = list(check(parsed)) if check else []
            if not problems:
                return parsed, current
        emit("progress", message=f"Malformed {schema.__name__} output, asking again: {problems[0]}")
        conversation = [
            *messages,
            HumanMessage(
                "Your previous answer was rejected:\n- "
                + "\n- ".join(problems)
                + f"\nYour previous answer was: {_raw_output(raw)}\nAnswer again, fixing every problem."
            ),
        ]
    raise StructuredOutputError(
        f"The model's {schema.__name__} output was still invalid after {retries + 1} attempts: "
        + "; ".join(problems),
        problems,
        current,
    )


def call_text(model: BaseChatModel, messages: Sequence[BaseMessage], *, usage: Usage | None) -> tuple[str, Usage]:
    """A plain-text answer and the updated usage."""
    message = model.invoke(list(messages))
    current = add_usage(usage, message)
    emit("llm", **current)
    content = message.content if isinstance(message.content, str) else json.dumps(message.content)
    return content.strip(), current


def _is_malformed_output(exc: BaseException) -> bool:
    if isinstance(exc, ValidationError | OutputParserException | json.JSONDecodeError):
        return True
    return any(cls.__name__ in _MALFORMED_NAMES for cls in type(exc).__mro__)


def _error_lines(error: BaseException, schema_name: str) -> list[str]:
    """One line per validation error (`field: message`), or the parser's message."""
    if isinstance(error, ValidationError):
        return [
            f"{'.'.join(str(p) for p in err['loc']) or schema_name}: {err['msg']}" for err in error.errors()
        ]
    return [f"The output did not match the {schema_name} schema: {_short(error)}"]


def _short(error: BaseException) -> str:
    text = str(error).strip()
    lines = [line for line in text.splitlines() if "errors.pydantic.dev" not in line]
    return " ".join(line.strip() for line in lines)[:1200]
