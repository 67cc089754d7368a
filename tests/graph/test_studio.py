"""Studio's API server (`langgraph dev`) serving the graph offline, sharing the SQLite checkpoints with scripts.

The server runs in a temporary working folder (its `.langgraph_api/` files stay out of the project) with
SEA_HOME in a temporary folder and the demo model configured through the environment (SEA_MODEL).
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from durability_helpers import PROJECT_ROOT, subprocess_env
from graph_test_helpers import PYTHON_REQUEST, REVERSE_REQUEST

from graph.builder import build_graph
from graph.checkpointing import open_checkpointer
from graph.runs import history, list_threads
from graph.scripted import DEMO_CLARIFY
from sea.settings import get_settings

LANGGRAPH = Path(os.environ.get("VIRTUAL_ENV", PROJECT_ROOT / ".venv")) / "bin" / "langgraph"
CONFIG = PROJECT_ROOT / "langgraph.json"
pytestmark = pytest.mark.skipif(not LANGGRAPH.exists(), reason=f"langgraph-cli is not installed ({LANGGRAPH})")


def test_langgraph_json_is_valid() -> None:
    result = subprocess.run(
        [str(LANGGRAPH), "validate", "--config", str(CONFIG)], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    assert "is valid" in result.stdout and "1 graph" in result.stdout


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _ok(url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/ok", timeout=2) as response:
            return response.status == 200
    except OSError:
        return False


@pytest.fixture
def studio(sea_home: Path, tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """A `langgraph dev` server on a free loopback port; yields its URL and working folder, stops it by pid."""
    with _langgraph_dev(sea_home, tmp_path) as served:
        yield served


@contextmanager
def _langgraph_dev(sea_home: Path, tmp_path: Path) -> Iterator[tuple[str, Path]]:
    workdir = tmp_path / "studio"
    workdir.mkdir()
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    log = (tmp_path / "langgraph-dev.log").open("w")
    server = subprocess.Popen(
        [str(LANGGRAPH), "dev", "--config", str(CONFIG), "--no-browser", "--no-reload", "--port", str(port)],
        cwd=workdir, env=subprocess_env(sea_home, SEA_MODEL="scripted:demo"),
        stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 180
        while not _ok(url):
            if server.poll() is not None or time.monotonic() > deadline:
                log.flush()
                raise AssertionError("langgraph dev did not start:\n" + (tmp_path / "langgraph-dev.log").read_text())
            time.sleep(0.5)
        yield url, workdir
    finally:
        if server.poll() is None:
            os.killpg(server.pid, signal.SIGTERM)  # the server's own process group, started above
            try:
                server.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(server.pid, signal.SIGKILL)
                server.wait()
        log.close()


@pytest.mark.docker
@pytest.mark.slow
def test_studio_server_runs_the_graph_and_shares_checkpoints(studio: tuple[str, Path], sea_home: Path) -> None:
    from langgraph_sdk import get_sync_client

    url, workdir = studio
    client = get_sync_client(url=url)
    assistants = client.assistants.search(graph_id="agent")
    assert assistants, "the server does not serve the graph 'agent'"

    # A thread-less run: the demo model comes from SEA_MODEL in the server's environment.
    values = client.runs.wait(None, "agent", input={"request": REVERSE_REQUEST}, context={"max_repairs": 1})
    assert isinstance(values, dict), values
    assert "dlrow olleh" in values["answer"] and "[scripted demo model]" in values["answer"]
    assert values["outcome"] == "answered" and values["tool"]["name"] == "reverse_string"

    # A run on a thread: its checkpoints land in $SEA_HOME/checkpoints.sqlite, where scripts and the CLI see it.
    thread_id = client.threads.create()["thread_id"]
    values = client.runs.wait(thread_id, "agent", input={"request": PYTHON_REQUEST}, context={"model": "scripted:demo"})
    assert "nohtyP" in values["answer"]
    assert values["decision"]["choice"] == "reverse_string"  # the tool the first run made, reused

    get_settings.cache_clear()
    assert get_settings().checkpoints_path == sea_home / "checkpoints.sqlite"
    with open_checkpointer() as saver:
        graph = build_graph(saver)
        assert thread_id in {t.thread_id for t in list_threads(graph)}
        nodes = [c.node for c in history(graph, thread_id)]
        assert nodes[-2:] == ["execute", "respond"] and "implement" not in nodes
        assert graph.get_state({"configurable": {"thread_id": thread_id}}).values["answer"] == values["answer"]

    # The clarify route: the run pauses on interrupt(), the question is visible to Studio, Command(resume=...)
    # answers it and the same run goes on.
    thread_id = client.threads.create()["thread_id"]
    client.runs.wait(thread_id, "agent", input={"request": DEMO_CLARIFY})
    state = client.threads.get_state(thread_id)
    assert state["next"] == ["clarify"]
    (waiting,) = [i for task in state["tasks"] for i in task["interrupts"]]
    assert waiting["value"]["question"] == "Which temperature, in degrees Celsius, should I convert to Fahrenheit?"
    assert state["values"]["decision"]["route"] == "clarify"
    values = client.runs.wait(thread_id, "agent", command={"resume": "25"})
    assert values["outcome"] == "answered" and values["result"]["result"] == 77
    assert values["clarifications"] == [{"question": waiting["value"]["question"], "answer": "25"}]
    assert client.threads.get_state(thread_id)["next"] == []

    # The server's own files went to its working folder, not the project.
    assert (workdir / ".langgraph_api").is_dir()


STUDIO_ORIGIN = "https://smith.langchain.com"


def _preflight(url: str, origin: str) -> tuple[int, dict[str, str]]:
    request = urllib.request.Request(
        f"{url}/threads", method="OPTIONS",
        headers={"Origin": origin, "Access-Control-Request-Method": "POST",
                 "Access-Control-Request-Headers": "content-type,x-api-key"},
    )  # fmt: skip
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, {k.lower(): v for k, v in response.headers.items()}
    except urllib.error.HTTPError as exc:
        return exc.code, {k.lower(): v for k, v in exc.headers.items()}


@pytest.mark.slow
def test_the_api_server_answers_only_the_studio_origin(tmp_path: Path) -> None:
    """langgraph.json's http.cors: a page on another origin cannot drive the local server from a browser."""
    with _langgraph_dev(tmp_path / "sea-home", tmp_path) as (url, _):
        status, headers = _preflight(url, "https://evil.example")
        assert status >= 400, headers
        assert headers.get("access-control-allow-origin") not in ("*", "https://evil.example"), headers

        # A request the browser sends without a preflight: the server answers, but tells the browser nothing
        # may read it.
        request = urllib.request.Request(f"{url}/ok", headers={"Origin": "https://evil.example"})
        with urllib.request.urlopen(request, timeout=10) as response:
            assert "access-control-allow-origin" not in {k.lower() for k in response.headers}

        status, headers = _preflight(url, STUDIO_ORIGIN)
        assert status == 200, headers
        assert headers["access-control-allow-origin"] == STUDIO_ORIGIN
        assert "POST" in headers["access-control-allow-methods"]
        assert "content-type" in headers["access-control-allow-headers"].lower()
