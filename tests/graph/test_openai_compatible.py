"""A real provider client end to end: `init_chat_model("openai:...")` with SEA_MODEL_BASE_URL pointing at a
local OpenAI-compatible server that plays a scripted LLM. This checks what the scripted chat model can't: the
provider's structured-output request (json_schema), its parsing, token usage from the API, a 429 with
Retry-After, and a malformed JSON answer fed back through the real parser."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from graph import resources
from tests.graph.graph_test_helpers import PERCENT_REQUEST, run_graph

pytestmark = [pytest.mark.docker]


class FakeOpenAI:
    """Answers /v1/chat/completions from one queue per structured-output schema name ("text" for plain)."""

    def __init__(self, replies: dict[str, list[tuple[int, str]]]) -> None:
        self.replies = replies
        self.requests: list[dict[str, Any]] = []
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                fake.requests.append(body)
                kind = (body.get("response_format") or {}).get("json_schema", {}).get("name", "text")
                status, content = fake.replies[kind].pop(0)
                if status == 200 and body.get("stream"):
                    self._stream(body, content)
                    return
                if status != 200:
                    payload = json.dumps({"error": {"message": content, "type": "rate_limit_error"}}).encode()
                    self.send_response(status)
                    self.send_header("Retry-After", "0")
                else:
                    payload = json.dumps(
                        {
                            "id": "chatcmpl-test",
                            "object": "chat.completion",
                            "created": 0,
                            "model": body["model"],
                            "choices": [
                                {
                                    "index": 0,
                                    "message": {"role": "assistant", "content": content},
                                    "finish_reason": "stop",
                                }
                            ],
                            "usage": {"prompt_tokens": 100, "completion_tokens": 10, "total_tokens": 110},
                        }
                    ).encode()
                    self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def _stream(self, body: dict[str, Any], content: str) -> None:
                """Server-sent chunks, as OpenAI streams; usage only when the client asks (include_usage)."""
                self.send_response(200)
                self.send_header("Content-Type", "text/event-stream")
                self.end_headers()
                base = {"id": "chatcmpl-test", "object": "chat.completion.chunk", "created": 0, "model": body["model"]}
                pieces = [content[i : i + 8] for i in range(0, len(content), 8)] or [""]
                chunks = [
                    {**base, "choices": [{"index": 0, "delta": {"role": "assistant", "content": piece},
                                          "finish_reason": None}]}
                    for piece in pieces
                ]  # fmt: skip
                chunks.append({**base, "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]})
                if (body.get("stream_options") or {}).get("include_usage"):
                    usage = {"prompt_tokens": 100, "completion_tokens": 10, "total_tokens": 110}
                    chunks.append({**base, "choices": [], "usage": usage})
                for chunk in chunks:
                    self.wfile.write(f"data: {json.dumps(chunk)}\n\n".encode())
                self.wfile.write(b"data: [DONE]\n\n")
                self.wfile.flush()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}/v1"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def kinds(self) -> list[str]:
        return [(r.get("response_format") or {}).get("json_schema", {}).get("name", "text") for r in self.requests]


@pytest.fixture
def fake_openai(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-local-test")
    servers: list[FakeOpenAI] = []

    def start(replies: dict[str, list[tuple[int, str]]]) -> FakeOpenAI:
        server = FakeOpenAI(replies)
        server.thread.start()
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.server.shutdown()
        server.server.server_close()


def _decision(tool: str | None, reason: str) -> dict[str, object]:
    """A compute decision as the API returns it (strict mode: every field present)."""
    return {
        "route": "compute", "reason": reason, "tool": tool, "arguments_json": None, "reply": None, "show_tool": None,
        "steps": [],
    }  # fmt: skip


def test_a_real_openai_client_runs_the_graph(sea_home: Path, fake_openai) -> None:
    server = fake_openai(
        {
            "TurnDecision": [
                (429, "Rate limit reached"),
                (200, json.dumps(_decision("calculate_percentage", "It computes percentages."))),
            ],
            "ToolArguments": [
                (200, '{"value": 300, "percent": '),  # cut-off JSON: the real parser fails, the error is fed back
                (200, json.dumps({"value": 300, "percent": 15})),
            ],
            "text": [(200, "15 percent of 300 is 45.")],
        }
    )
    run = run_graph(PERCENT_REQUEST, "openai:gpt-4.1-mini", model_base_url=server.url)
    assert run.state["outcome"] == "answered", run.state.get("failure")
    assert run.state["result"]["result"] == 45
    assert run.state["answer"].startswith("15 percent of 300 is 45.")
    assert server.kinds() == ["TurnDecision", "TurnDecision", "ToolArguments", "ToolArguments", "text"]
    # The structured requests carry the schema the provider enforces.
    decide_request = server.requests[1]
    assert decide_request["response_format"]["json_schema"]["schema"]["required"] == [
        "route", "reason", "tool", "reply", "arguments_json", "show_tool", "steps"
    ]
    assert decide_request["model"] == "gpt-4.1-mini" and decide_request["temperature"] == 0.0
    feedback = server.requests[3]["messages"][-1]["content"]
    assert "Your previous answer was rejected" in feedback
    # Usage comes from the API: 100 + 10 tokens per answered call; the 429 is no call. The cut-off answer counts
    # as a call, but OpenAI's client raises while parsing it and drops its usage, so its tokens are unknown.
    assert run.state["usage"] == {"calls": 4, "input_tokens": 300, "output_tokens": 30}
    assert resources.get_library().get("calculate_percentage").usage.calls == 1


def test_a_provider_that_keeps_failing_ends_the_run_cleanly(sea_home: Path, fake_openai, monkeypatch) -> None:
    from sea.settings import get_settings

    monkeypatch.setenv("SEA_API_RETRIES", "1")
    get_settings.cache_clear()
    server = fake_openai({"TurnDecision": [(503, "overloaded")] * 3})  # the client's own 2 retries, then ours: none
    run = run_graph(PERCENT_REQUEST, "openai:gpt-4.1-mini", model_base_url=server.url)
    assert run.state["outcome"] == "error"
    assert run.state["answer"].startswith("The decide step failed: the model API kept failing")
    assert "Traceback" not in run.state["answer"]
    assert len(server.requests) == 3


def test_a_real_openai_client_synthesizes_a_tool(sea_home: Path, fake_openai) -> None:
    from graph.scripted import REVERSE_STRING_CODE, REVERSE_STRING_SPEC, REVERSE_STRING_TESTS
    from tests.graph.graph_test_helpers import REVERSE_REQUEST

    spec_without_arguments = REVERSE_STRING_SPEC.model_copy(update={"request_arguments_json": ""})
    server = fake_openai(
        {
            "TurnDecision": [(200, json.dumps(_decision(None, "Nothing here reverses text.")))],
            # No request arguments in the spec: execute extracts them, so the arguments' schema is checked too.
            "ToolSpec": [(200, spec_without_arguments.model_dump_json())],
            "TestSuite": [(200, json.dumps({"tests": REVERSE_STRING_TESTS}))],
            "Implementation": [(200, json.dumps({"code": REVERSE_STRING_CODE}))],
            "ToolArguments": [(200, json.dumps({"text": "hello world"}))],
            "text": [(200, "Reversed: dlrow olleh")],
        }
    )
    run = run_graph(REVERSE_REQUEST, "openai:gpt-4.1-mini", model_base_url=server.url)
    assert run.state["outcome"] == "answered", run.state.get("failure")
    assert run.state["result"]["result"] == "dlrow olleh"
    assert run.state["spec"]["signature"] == "def reverse_string(text: str) -> str"
    manifest = resources.get_library().get("reverse_string")
    assert manifest.provenance.model_id == "openai:gpt-4.1-mini"
    spec_schema = server.requests[server.kinds().index("ToolSpec")]["response_format"]["json_schema"]
    assert spec_schema["strict"] is True and "Parameter" in spec_schema["schema"]["$defs"]
    arguments_schema = server.requests[server.kinds().index("ToolArguments")]["response_format"]["json_schema"]
    assert arguments_schema["schema"]["properties"]["text"]["type"] == "string"


def test_streamed_runs_count_tokens_against_an_openai_compatible_server(sea_home: Path, fake_openai) -> None:
    """The CLI and the app stream runs (stream_mode "messages"), so the answer streams; langchain-openai turns
    streamed usage off for a custom base URL, and the tokens read 0 unless stream_usage is passed. Structured
    calls are not streamed (their streamed json_schema path drops the usage)."""
    import uuid

    from langgraph.checkpoint.memory import InMemorySaver

    from graph.builder import build_graph
    from graph.context import Context
    from graph.runs import stream_run, thread_config

    server = fake_openai(
        {
            "TurnDecision": [(200, json.dumps(_decision("calculate_percentage", "It computes percentages.")))],
            "ToolArguments": [(200, json.dumps({"value": 300, "percent": 15}))],
            "text": [(200, "15 percent of 300 is 45.")],
        }
    )
    graph = build_graph(InMemorySaver())
    context = Context(model="openai:gpt-4.1-mini", model_base_url=server.url)
    result = stream_run(graph, {"request": PERCENT_REQUEST}, thread_config(uuid.uuid4().hex), context=context)
    assert result.values["outcome"] == "answered", result.values.get("failure")
    streamed = [r for r in server.requests if r.get("stream")]
    assert [server.kinds()[server.requests.index(r)] for r in streamed] == ["text"]  # the answer streamed
    assert streamed[0]["stream_options"] == {"include_usage": True}
    calls = len(server.requests)
    assert result.values["usage"] == {"calls": calls, "input_tokens": 100 * calls, "output_tokens": 10 * calls}
    assert result.values["answer"] == "15 percent of 300 is 45."
