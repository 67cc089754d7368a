"""The host-side limits of the sandbox, against the real engine: how many jobs run at once
(SEA_SANDBOX_MAX_JOBS), how large a job may be, NUL bytes in source files, and how deeply JSON may nest.

Containers are counted from the engine (the sandbox's instance label) and their memory from the engine's
cgroups, never from the sandbox's own bookkeeping.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from bench.sandbox_limits import HOLD_TOOL, EngineSampler
from sandbox import Sandbox, SandboxUnavailableError
from sandbox.container import LABEL_INSTANCE, connect
from sandbox.models import MAX_JSON_DEPTH, CallResult, json_depth
from sandbox.pool import JobSlots
from sandbox.runner import MAX_JOB_BYTES
from sandbox.service import MAX_SOURCE_BYTES
from tests.sandbox.conftest import make_settings
from tests.sandbox.test_sandbox_cli import run_cli

pytestmark = [pytest.mark.docker]

HOLD_MB = 200
DEEP_TOOL = "def deep(n):\n    value = 0\n    for _ in range(n):\n        value = [value]\n    return value\n"
LEN_TOOL = "def size(text):\n    return len(text)\n"


def nested(levels: int) -> list:
    value: list = []
    for _ in range(levels - 1):
        value = [value]
    return value


def instance_containers(instance_id: str) -> list[dict]:
    return connect().containers(all=True, filters={"label": f"{LABEL_INSTANCE}={instance_id}"})


@pytest.fixture
def make_sandbox(tmp_path: Path) -> Iterator:
    """Sandboxes with their own settings, closed at the end."""
    made: list[Sandbox] = []

    def make(pool_size: int, **settings: object) -> Sandbox:
        sandbox = Sandbox(make_settings(tmp_path / f"home-{len(made)}", **settings), pool_size=pool_size)
        made.append(sandbox)
        return sandbox

    yield make
    for sandbox in made:
        sandbox.close()


# --- concurrent jobs ------------------------------------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize("pool_size", [0, 2], ids=["fresh-containers", "warm-pool"])
def test_twelve_concurrent_calls_never_run_more_than_the_cap_at_once(make_sandbox, pool_size: int) -> None:
    cap, calls = 3, 12
    sandbox = make_sandbox(pool_size, sandbox_max_jobs=cap, sandbox_timeout_s=60.0)
    if pool_size:
        assert sandbox.warm_up(timeout_s=120)
    answers: dict[int, CallResult | BaseException] = {}

    def one(tag: int) -> None:
        try:
            answers[tag] = sandbox.call(HOLD_TOOL, "hold", {"mb": HOLD_MB, "seconds": 1.5, "tag": tag})
        except BaseException as exc:  # handed to the assertions below
            answers[tag] = exc

    # A container executing a job holds the tool's 200 MB; an idle warm one about 45 MB.
    with EngineSampler(sandbox.instance_id, executing_bytes=150 * 2**20, period_s=0.05) as sampler:
        threads = [threading.Thread(target=one, args=(tag,)) for tag in range(calls)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(600)
    peaks = sampler.peaks

    for tag in range(calls):
        answer = answers[tag]
        assert isinstance(answer, CallResult) and answer.ok, f"call {tag}: {answer!r}"
        assert answer.result == {"tag": tag, "held_mb": HOLD_MB}
    assert peaks.samples > 20 and peaks.executing >= 1, f"the sampler saw no job executing: {peaks}"
    assert peaks.executing <= cap, f"{peaks.executing} containers executed jobs at once, over the cap of {cap}"
    assert sandbox.job_slots.peak == cap  # 12 callers at once fill every slot
    if pool_size == 0:
        # Every container of a sandbox without a pool is one job's: the engine never held more than the cap.
        assert peaks.alive <= cap, f"{peaks.alive} containers existed at once, over the cap of {cap}"


def test_a_queued_job_gets_its_whole_timeout_once_it_runs(make_sandbox) -> None:
    sandbox = make_sandbox(0, sandbox_max_jobs=1)
    first: dict[str, CallResult] = {}
    holder = threading.Thread(
        target=lambda: first.setdefault("r", sandbox.call(HOLD_TOOL, "hold", {"mb": 1, "seconds": 5, "tag": 0}))
    )
    holder.start()
    deadline = time.monotonic() + 60
    while sandbox.job_slots.running() == 0 and time.monotonic() < deadline:
        time.sleep(0.01)
    # This job waits for the first one's 5 s, longer than its own 3 s timeout, and must still finish.
    queued = sandbox.call(HOLD_TOOL, "hold", {"mb": 1, "seconds": 1, "tag": 1}, timeout_s=3)
    holder.join(120)
    assert first["r"].ok and first["r"].result["tag"] == 0
    assert queued.ok, queued.error
    assert queued.result["tag"] == 1
    assert queued.duration_ms > 3000  # it waited for its slot longer than its timeout, and was not cut short


def test_job_slots_let_callers_in_by_arrival_order_and_say_when_the_wait_runs_out() -> None:
    slots = JobSlots(1)
    slots.acquire(1)
    order: list[int] = []

    def waiter(n: int) -> None:
        slots.acquire(60)
        order.append(n)
        time.sleep(0.01)
        slots.release()

    threads = []
    for n in range(6):
        thread = threading.Thread(target=waiter, args=(n,))
        thread.start()
        threads.append(thread)
        while slots.waiting() < n + 1:  # each caller is queued before the next one comes
            time.sleep(0.001)
    slots.release()
    for thread in threads:
        thread.join(30)
    assert order == list(range(6))
    assert slots.peak == 1 and slots.running() == 0

    slots.acquire(1)
    with pytest.raises(SandboxUnavailableError, match=r"exhausted.*SEA_SANDBOX_MAX_JOBS=1"):
        slots.acquire(0.2)
    slots.release()
    assert slots.waiting() == 0 and slots.running() == 0


# --- job size -----------------------------------------------------------------------------------------------


def test_a_job_over_the_runner_limit_is_refused_before_any_container(make_sandbox) -> None:
    sandbox = make_sandbox(2)
    big = "a" * (70 * 2**20)
    assert len(big) > MAX_JOB_BYTES
    with pytest.raises(ValueError, match=r"70\.0 MiB .* over the sandbox's limit of 64 MiB per job"):
        sandbox.call(LEN_TOOL, "size", {"text": big})
    assert sandbox._pool is None  # not started for it
    assert instance_containers(sandbox.instance_id) == []
    # The refusal cost nothing: the same sandbox runs the next job.
    assert sandbox.call(LEN_TOOL, "size", {"text": "abc"}).result == 3


def test_source_over_the_sane_size_is_refused(make_sandbox) -> None:
    sandbox = make_sandbox(0)
    huge = "x = 1\n" * (MAX_SOURCE_BYTES // 6 + 1)
    with pytest.raises(ValueError, match=r"test_code is 1\.0 MiB, over the sandbox's limit of 1 MiB per source"):
        sandbox.run_tests(LEN_TOOL, huge)
    with pytest.raises(ValueError, match=r"tool_code is .* MiB, over the sandbox's limit of 1 MiB"):
        sandbox.call(huge, "size", {"text": ""})
    assert instance_containers(sandbox.instance_id) == []


def test_the_cli_refuses_a_source_file_over_the_limit(tmp_path: Path) -> None:
    code = tmp_path / "tool.py"
    code.write_text(LEN_TOOL + "#" * (2 * MAX_SOURCE_BYTES) + "\n")
    tests = tmp_path / "test_tool.py"
    tests.write_text("from tool import size\n\n\ndef test_size():\n    assert size('ab') == 2\n")
    for args in (("run-tests", "--code", str(code), "--tests", str(tests)),
                 ("call", "--code", str(code), "--function", "size", "--args", '{"text": "ab"}')):
        exit_code, body = run_cli(*args, home=tmp_path / "home")
        assert exit_code == 2, body
        assert body["error"]["type"] == "BadInput"
        assert "over the sandbox's limit of 1 MiB per source file" in body["error"]["message"]


# --- NUL bytes ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("which", ["tests", "code"])
def test_a_nul_byte_in_a_file_given_to_run_tests_is_one_clear_line(tmp_path: Path, which: str) -> None:
    files = {"code": tmp_path / "tool.py", "tests": tmp_path / "test_tool.py"}
    files["code"].write_text(LEN_TOOL)
    files["tests"].write_text("from tool import size\n\n\ndef test_size():\n    assert size('ab') == 2\n")
    files[which].write_text(files[which].read_text() + "\x00\n")
    exit_code, body = run_cli("run-tests", "--code", str(files["code"]), "--tests", str(files["tests"]),
                              home=tmp_path / "home")
    assert exit_code == 2
    assert body["error"]["type"] == "BadInput"
    assert body["error"]["message"] == (
        f"The {which} file {files[which]} contains a NUL byte (line {6 if which == 'tests' else 3}), "
        "which Python source cannot contain."
    )


# --- deeply nested JSON -------------------------------------------------------------------------------------


def test_json_depth_counts_without_recursion() -> None:
    assert json_depth(0) == 0 and json_depth([]) == 1 and json_depth({"a": [1, {"b": 2}]}) == 3
    assert json_depth(nested(100)) == 100
    assert json_depth(nested(100_000)) == MAX_JSON_DEPTH + 1  # stops counting past the limit


TOO_DEEP = f"The result nests more than {MAX_JSON_DEPTH} levels of lists and objects, the most the sandbox accepts."


@pytest.mark.parametrize("levels", [MAX_JSON_DEPTH + 1, 500, 993, 5000])
def test_a_result_nested_too_deep_is_a_clear_call_error(sandbox: Sandbox, levels: int) -> None:
    # 500 used to exhaust the host's stack; about 993 the runner's own; from about 995 on, the tool's json.dumps
    # fails inside the container (its message then names the recursion limit).
    result = sandbox.call(DEEP_TOOL, "deep", {"n": levels})
    assert not result.ok and result.error is not None
    assert result.error.type == "ResultNotJSON", result.error
    if levels <= 500:
        assert result.error.message == TOO_DEEP
    assert "Traceback" not in result.error.message and "\n" not in result.error.message
    json.loads(result.model_dump_json())  # the result object itself stays serialisable


def test_a_result_at_the_depth_limit_comes_back(sandbox: Sandbox) -> None:
    result = sandbox.call(DEEP_TOOL, "deep", {"n": MAX_JSON_DEPTH})
    assert result.ok, result.error
    assert json_depth(result.result) == MAX_JSON_DEPTH


def test_the_cli_reports_a_too_deep_result_as_the_tool_s_error(tmp_path: Path) -> None:
    code = tmp_path / "tool.py"
    code.write_text(DEEP_TOOL)
    exit_code, body = run_cli("call", "--code", str(code), "--function", "deep", "--args", '{"n": 500}',
                              home=tmp_path / "home")
    assert exit_code == 0  # the sandbox worked; the tool's result was refused
    assert body["ok"] is False and body["error"]["type"] == "ResultNotJSON"
    assert f"more than {MAX_JSON_DEPTH} levels" in body["error"]["message"]


def test_arguments_nested_too_deep_are_refused(tmp_path: Path, make_sandbox) -> None:
    code = tmp_path / "tool.py"
    code.write_text(DEEP_TOOL)
    deep_args = '{"n": ' + "[" * 1000 + "]" * 1000 + "}"
    exit_code, body = run_cli("call", "--code", str(code), "--function", "deep", "--args", deep_args,
                              home=tmp_path / "home")
    assert exit_code == 2
    assert body["error"] == {
        "type": "BadInput",
        "message": f"--args nests more than {MAX_JSON_DEPTH} levels of lists and objects, the most the sandbox "
        "accepts.",
    }
    # Deep, but parseable: refused by the depth check rather than by the parser.
    exit_code, body = run_cli("call", "--code", str(code), "--function", "deep", "--args",
                              '{"n": ' + "[" * 150 + "]" * 150 + "}", home=tmp_path / "home")
    assert exit_code == 2 and "nests more than" in body["error"]["message"]

    sandbox = make_sandbox(0)
    with pytest.raises(ValueError, match=f"kwargs nest more than {MAX_JSON_DEPTH} levels"):
        sandbox.call(DEEP_TOOL, "deep", {"n": nested(1000)})
    assert instance_containers(sandbox.instance_id) == []
