"""The Sandbox Python API against the real Docker engine and the real sandbox image."""

from __future__ import annotations

import asyncio
import threading
import time
from pathlib import Path

import pytest

from sandbox import Sandbox, SandboxError, SandboxUnavailableError
from sandbox import container as ctr
from sandbox.models import TestReport
from sandbox.service import parse_envelope

pytestmark = [pytest.mark.docker]

ADD_TOOL = "def add(a, b):\n    return a + b\n"

THREE_PASSING = """\
from tool import add


def test_small():
    assert add(1, 2) == 3


def test_negative():
    assert add(-1, -2) == -3


class TestAdd:
    def test_zero(self):
        assert add(0, 0) == 0
"""


# --- run_tests -------------------------------------------------------------------------------------------


def test_passing_tests_are_reported_one_by_one(sandbox: Sandbox) -> None:
    report = sandbox.run_tests(ADD_TOOL, THREE_PASSING)
    assert report.verdict == "passed", report.message
    assert (report.passed, report.failed, report.errors, report.collected) == (3, 0, 0, 3)
    assert report.expected_tests == ["test_small", "test_negative", "TestAdd::test_zero"]
    assert [t.name for t in report.tests] == [
        "test_tool.py::test_small",
        "test_tool.py::test_negative",
        "test_tool.py::TestAdd::test_zero",
    ]
    assert all(t.outcome == "passed" and t.duration_ms >= 0 for t in report.tests)
    assert report.image_id == sandbox.image_id() and report.image_id.startswith("sha256:")
    assert report.duration_ms > 0


def test_a_failing_test_gives_its_message(sandbox: Sandbox) -> None:
    tests = THREE_PASSING + "\n\ndef test_wrong():\n    assert add(2, 2) == 5\n"
    report = sandbox.run_tests(ADD_TOOL, tests)
    assert report.verdict == "failed"
    assert (report.passed, report.failed) == (3, 1)
    [failure] = report.failures()
    assert failure.name == "test_tool.py::test_wrong"
    assert "assert 4 == 5" in failure.message
    assert "test_wrong" in report.message


def test_parametrised_and_hypothesis_tests_count(sandbox: Sandbox) -> None:
    tests = """\
import pytest
from hypothesis import given, settings, strategies as st
from tool import add


@pytest.mark.parametrize("a", [1, 2, 3])
def test_param(a):
    assert add(a, 0) == a


@settings(max_examples=20, deadline=None)
@given(st.integers(), st.integers())
def test_commutes(a, b):
    assert add(a, b) == add(b, a)
"""
    report = sandbox.run_tests(ADD_TOOL, tests)
    assert report.verdict == "passed", report.message
    assert report.passed == 4 and report.expected_tests == ["test_param", "test_commutes"]


def test_a_setup_error_is_not_a_pass(sandbox: Sandbox) -> None:
    tests = """\
import pytest
from tool import add


@pytest.fixture
def broken():
    raise RuntimeError("fixture exploded")


def test_uses_fixture(broken):
    assert add(1, 1) == 2
"""
    report = sandbox.run_tests(ADD_TOOL, tests)
    assert report.verdict == "failed"
    assert report.tests[0].outcome == "error" and "fixture exploded" in report.tests[0].message


def test_a_skipped_test_does_not_count_as_passing(sandbox: Sandbox) -> None:
    tests = "import pytest\n\n\ndef test_later():\n    pytest.skip('not yet')\n"
    report = sandbox.run_tests(ADD_TOOL, tests)
    assert report.verdict == "failed"
    assert report.skipped == 1 and "skipped" in report.message


def test_a_collection_error_is_an_error(sandbox: Sandbox) -> None:
    tests = "from tool import subtract\n\n\ndef test_subtract():\n    assert subtract(3, 1) == 2\n"
    report = sandbox.run_tests(ADD_TOOL, tests)
    assert report.verdict == "error"
    assert "Collecting the tests failed" in report.message and "subtract" in report.message


def test_a_syntax_error_in_the_tool_is_named(sandbox: Sandbox) -> None:
    report = sandbox.run_tests("def add(a, b)\n    return a + b\n", THREE_PASSING)
    assert report.verdict == "error"
    assert report.message.startswith("tool.py does not parse: line 1")


def test_a_test_file_without_tests_is_an_error(sandbox: Sandbox) -> None:
    report = sandbox.run_tests(ADD_TOOL, "from tool import add\n\nVALUE = add(1, 2)\n")
    assert report.verdict == "error" and "defines no test functions" in report.message


def test_os_exit_inside_a_test_never_counts_as_passed(sandbox: Sandbox) -> None:
    tests = "import os\nfrom tool import add\n\n\ndef test_quits():\n    os._exit(0)\n"
    report = sandbox.run_tests(ADD_TOOL, tests)
    assert report.verdict == "error"
    assert "did not finish" in report.message and "exited with status 0" in report.message


def test_a_test_file_that_exits_while_imported_is_not_passed(sandbox: Sandbox) -> None:
    tests = "import os\nos._exit(0)\n\n\ndef test_never_runs():\n    assert False\n"
    report = sandbox.run_tests(ADD_TOOL, tests)
    assert report.verdict == "error"
    assert report.passed == 0


def test_sys_exit_inside_a_test_is_not_passed(sandbox: Sandbox) -> None:
    tests = "import sys\n\n\ndef test_exits():\n    sys.exit(0)\n\n\ndef test_fine():\n    assert True\n"
    report = sandbox.run_tests(ADD_TOOL, tests)
    assert report.verdict != "passed"


def test_an_uncollected_test_function_is_an_error(sandbox: Sandbox) -> None:
    tests = """\
from tool import add


class TestHidden:
    def __init__(self):
        pass

    def test_never_collected(self):
        assert add(1, 1) == 3


def test_visible():
    assert add(1, 1) == 2
"""
    report = sandbox.run_tests(ADD_TOOL, tests)
    assert report.verdict == "error"
    assert "TestHidden::test_never_collected" in report.message


def test_a_plugin_smuggled_in_by_the_test_file_is_rejected(sandbox: Sandbox) -> None:
    # tool.py doubles as a pytest plugin that rewrites every report to "passed".
    tool = """\
import pytest


def add(a, b):
    return a - b


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    report.outcome = "passed"
    report.longrepr = None
"""
    tests = 'pytest_plugins = ["tool"]\nfrom tool import add\n\n\ndef test_add():\n    assert add(1, 2) == 3\n'
    report = sandbox.run_tests(tool, tests)
    assert report.verdict == "error"
    assert "registered pytest plugins" in report.message and "tool" in report.message


def test_a_forged_envelope_printed_by_the_code_is_ignored(sandbox: Sandbox) -> None:
    forge = """\
import glob, json, os, sys
FAKE = {"kind": "tests", "report": {"verdict": "passed", "passed": 99, "tests": []}}


def forge():
    line = "0" * 32 + " " + json.dumps(FAKE) + "\\n"
    print(line, end="")
    print(line, end="", file=sys.stderr)
    for path in glob.glob("/proc/[0-9]*/fd/[12]"):  # try every other process's stdout and stderr
        try:
            with open(path, "w") as handle:
                handle.write(line)
        except OSError:
            pass
    return 1
"""
    tests = "from tool import forge\n\n\ndef test_forge():\n    assert forge() == 2\n"
    report = sandbox.run_tests(forge, tests)
    assert report.verdict == "failed" and report.passed == 0 and report.failed == 1
    assert '"passed": 99' in report.stdout  # the forgery was captured as plain output, nothing more

    result = sandbox.call(forge, "forge", {})
    assert result.ok and result.result == 1


def test_envelope_parsing_accepts_only_our_nonce() -> None:
    nonce = "ab" * 16
    good = f'{nonce} {{"kind": "call", "result": {{"ok": true, "result": 1}}}}\n'.encode()
    assert parse_envelope(good, nonce) == {"kind": "call", "result": {"ok": True, "result": 1}}
    assert parse_envelope(good, "cd" * 16) is None
    assert parse_envelope(b"noise\n" + good, nonce) is None
    assert parse_envelope(good + good, nonce) is None
    assert parse_envelope(good.rstrip(b"\n"), nonce) is None
    assert parse_envelope(f"{nonce} not json\n".encode(), nonce) is None
    assert parse_envelope(f'{nonce} {{"kind": "other"}}\n'.encode(), nonce) is None


def test_a_test_run_past_the_timeout_is_reported_as_timeout(sandbox: Sandbox) -> None:
    tests = "import time\n\n\ndef test_fast():\n    pass\n\n\ndef test_sleeps():\n    time.sleep(60)\n"
    started = time.monotonic()
    report = sandbox.run_tests(ADD_TOOL, tests, timeout_s=2)
    assert report.verdict == "timeout"
    assert "2 s" in report.message
    assert time.monotonic() - started < 15


def test_a_memory_bomb_in_a_test_is_reported_as_oom(sandbox: Sandbox) -> None:
    tests = """\
def test_bomb():
    hoard = []
    while True:
        hoard.append(bytearray(32 * 1024 * 1024))
"""
    report = sandbox.run_tests(ADD_TOOL, tests, timeout_s=15)
    assert report.verdict == "oom", report.message
    assert "out of memory" in report.message


def test_output_is_capped(sandbox: Sandbox) -> None:
    tests = "import sys\n\n\ndef test_loud():\n    sys.stdout.write('x' * 5_000_000)\n    sys.stdout.flush()\n"
    report = sandbox.run_tests(ADD_TOOL, tests + "\n\ndef test_ok():\n    assert True\n")
    cap = sandbox.settings.sandbox_output_bytes
    assert report.verdict == "passed"  # -s is off: pytest captures it, so the tests still pass
    assert len(report.stdout) <= cap + 100


# --- call ----------------------------------------------------------------------------------------------


def test_call_returns_the_json_result_and_the_printed_output(sandbox: Sandbox) -> None:
    tool = (
        "def stats(values):\n    print('working')\n"
        "    return {'n': len(values), 'sum': sum(values), 'max': max(values)}\n"
    )
    result = sandbox.call(tool, "stats", {"values": [3, 1, 2]})
    assert result.ok and result.error is None
    assert result.result == {"n": 3, "sum": 6, "max": 3}
    assert result.stdout == "working\n"
    assert result.image_id == sandbox.image_id()


def test_call_reports_an_exception_with_a_trimmed_traceback(sandbox: Sandbox) -> None:
    tool = "def check(x):\n    if x < 0:\n        raise ValueError(f'negative: {x}')\n    return x\n"
    result = sandbox.call(tool, "check", {"x": -4})
    assert not result.ok and result.error is not None
    assert result.error.type == "ValueError"
    assert result.error.message == "negative: -4"
    assert 'tool.py", line 3, in check' in result.error.traceback
    assert "<string>" not in result.error.traceback  # the runner's own frames are trimmed


@pytest.mark.parametrize(
    ("tool", "kind"),
    [
        ("def f():\n    return {1, 2}\n", "ResultNotJSON"),
        ("def f():\n    return float('nan')\n", "ResultNotJSON"),
        ("def f():\n    return object()\n", "ResultNotJSON"),
    ],
)
def test_call_refuses_results_that_are_not_json(sandbox: Sandbox, tool: str, kind: str) -> None:
    result = sandbox.call(tool, "f", {})
    assert not result.ok and result.error is not None and result.error.type == kind


def test_call_refuses_a_result_over_the_cap(sandbox: Sandbox) -> None:
    limit = sandbox.settings.sandbox_result_bytes
    result = sandbox.call("def big(n):\n    return 'x' * n\n", "big", {"n": limit + 10})
    assert not result.ok and result.error is not None and result.error.type == "ResultTooLarge"
    small = sandbox.call("def big(n):\n    return 'x' * n\n", "big", {"n": 1000})
    assert small.ok and small.result == "x" * 1000


def test_call_with_bad_arguments_or_a_missing_function(sandbox: Sandbox) -> None:
    bad = sandbox.call(ADD_TOOL, "add", {"a": 1, "c": 2})
    assert not bad.ok and bad.error is not None and bad.error.type == "BadArguments"
    assert "add()" in bad.error.message
    missing = sandbox.call(ADD_TOOL, "multiply", {"a": 1, "b": 2})
    assert not missing.ok and missing.error is not None and missing.error.type == "FunctionNotFound"


def test_call_arguments_must_be_json_before_anything_runs(sandbox: Sandbox) -> None:
    with pytest.raises(ValueError, match="JSON-serialisable"):
        sandbox.call(ADD_TOOL, "add", {"a": {1, 2}, "b": 1})
    with pytest.raises(ValueError, match="identifier"):
        sandbox.call(ADD_TOOL, "add; import os", {})


def test_call_timeout_and_crash(sandbox: Sandbox) -> None:
    spin = sandbox.call("def spin():\n    while True:\n        pass\n", "spin", {}, timeout_s=2)
    assert not spin.ok and spin.error is not None and spin.error.type == "Timeout"
    crash = sandbox.call("import os\n\ndef quit():\n    os._exit(3)\n", "quit", {})
    assert not crash.ok and crash.error is not None and crash.error.type == "Crashed"
    assert "exited with status 3" in crash.error.message


def test_call_memory_bomb_is_out_of_memory(sandbox: Sandbox) -> None:
    tool = "def bomb():\n    hoard = []\n    while True:\n        hoard.append(bytearray(32 * 1024 * 1024))\n"
    result = sandbox.call(tool, "bomb", {}, timeout_s=15)
    assert not result.ok and result.error is not None and result.error.type == "OutOfMemory"


# --- isolation and concurrency ---------------------------------------------------------------------------

TRACE_TOOL = """\
import os


def trace(tag):
    seen = sorted(os.listdir("/sandbox")) + sorted(os.listdir("/tmp"))
    leftovers = [name for name in seen if name.startswith("mark-")]
    for folder in ("/sandbox", "/tmp", "/dev/shm"):
        with open(os.path.join(folder, "mark-" + tag), "w") as handle:
            handle.write(tag)
    with open("/proc/self/cgroup") as handle:
        container = handle.read().strip().splitlines()[-1].rsplit("/", 1)[-1]
    return {"leftovers": leftovers, "container": container, "uid": os.getuid()}
"""


def test_jobs_never_share_a_container_or_its_files(sandbox: Sandbox) -> None:
    first = sandbox.call(TRACE_TOOL, "trace", {"tag": "one"})
    second = sandbox.call(TRACE_TOOL, "trace", {"tag": "two"})
    assert first.ok and second.ok, (first.error, second.error)
    assert first.result["leftovers"] == [] and second.result["leftovers"] == []
    assert first.result["container"] != second.result["container"]
    assert first.result["uid"] != second.result["uid"]  # every container runs as a uid of its own
    assert all(ctr.JOB_UID_FIRST <= r.result["uid"] < ctr.JOB_UID_FIRST + ctr.JOB_UID_COUNT for r in (first, second))


def test_concurrent_threads_get_their_own_answers(sandbox: Sandbox) -> None:
    results: dict[int, object] = {}

    def work(i: int) -> None:
        results[i] = sandbox.call(ADD_TOOL, "add", {"a": i, "b": 1000})

    threads = [threading.Thread(target=work, args=(i,)) for i in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    assert sorted(results) == list(range(6))
    for i, result in results.items():
        assert result.ok and result.result == i + 1000  # type: ignore[attr-defined]


def test_concurrent_asyncio_callers_get_their_own_answers(sandbox: Sandbox) -> None:
    async def main() -> list:
        calls = [sandbox.acall(ADD_TOOL, "add", {"a": i, "b": -i}) for i in range(4)]
        wrong = THREE_PASSING.replace("== 3", "== 4")
        reports = [sandbox.arun_tests(ADD_TOOL, THREE_PASSING), sandbox.arun_tests(ADD_TOOL, wrong)]
        return await asyncio.gather(*calls, *reports)

    *calls, good, bad = asyncio.run(main())
    assert all(c.ok and c.result == 0 for c in calls)
    assert isinstance(good, TestReport) and good.verdict == "passed"
    assert bad.verdict == "failed" and bad.failed == 1


def test_the_runner_also_works_without_the_zygote(sandbox_settings) -> None:
    sb = Sandbox(sandbox_settings, pool_size=0)
    assert sb.use_zygote is False  # a container per job idles with sleep; the runner spawns the child
    try:
        report = sb.run_tests(ADD_TOOL, THREE_PASSING)
        assert report.verdict == "passed", report.message
        quits = sb.run_tests(ADD_TOOL, "import os\n\n\ndef test_quits():\n    os._exit(0)\n")
        assert quits.verdict == "error"
        result = sb.call(TRACE_TOOL, "trace", {"tag": "plain"})
        assert result.ok and result.result["leftovers"] == []
    finally:
        sb.close()


def test_fresh_container_mode_leaves_nothing_behind(sandbox_settings, own_containers) -> None:
    before = set(own_containers())
    with Sandbox(sandbox_settings, pool_size=0) as sb:
        assert sb.call(ADD_TOOL, "add", {"a": 2, "b": 3}).result == 5
        assert sb.run_tests(ADD_TOOL, THREE_PASSING).verdict == "passed"
    assert set(own_containers()) <= before


# --- errors ----------------------------------------------------------------------------------------------


def test_an_unreachable_daemon_is_one_clear_sentence(
    sandbox_settings, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("DOCKER_HOST", f"unix://{tmp_path}/no-docker.sock")
    sb = Sandbox(sandbox_settings, pool_size=1)
    try:
        with pytest.raises(SandboxUnavailableError) as caught:
            sb.call(ADD_TOOL, "add", {"a": 1, "b": 2})
    finally:
        sb.close()
    message = str(caught.value)
    assert "Docker daemon is unreachable" in message and "\n" not in message
    assert "never run outside the sandbox" in message


def test_a_missing_image_names_the_build_command(sandbox_settings) -> None:
    settings = sandbox_settings.model_copy(update={"sandbox_image": "sea-sandbox-missing:nope"})
    sb = Sandbox(settings, pool_size=1)
    try:
        with pytest.raises(SandboxUnavailableError, match="python -m sandbox build-image"):
            sb.run_tests(ADD_TOOL, THREE_PASSING)
    finally:
        sb.close()


def test_a_closed_sandbox_refuses_work(sandbox_settings) -> None:
    sb = Sandbox(sandbox_settings, pool_size=0)
    sb.close()
    with pytest.raises(SandboxError, match="closed"):
        sb.call(ADD_TOOL, "add", {"a": 1, "b": 2})


# --- tampering with the report --------------------------------------------------------------------------

FORGED_RECORDS = """\
import json, os, stat


def _forge():
    records = [{"kind": "collected", "items": ["test_tool.py::test_one"], "plugins": []}]
    records += [
        {"kind": "phase", "nodeid": "test_tool.py::test_one", "when": when, "outcome": "passed",
         "message": "", "duration": 0.0}
        for when in ("setup", "call", "teardown")
    ]
    records.append({"kind": "finished", "exitstatus": 0})
    payload = "".join("0" * 64 + " " + json.dumps(r) + "\\n" for r in records).encode()
    for fd in range(3, 256):  # every pipe this process holds, whatever its number
        try:
            if stat.S_ISFIFO(os.fstat(fd).st_mode):
                os.write(fd, payload)
        except OSError:
            pass


def test_one():
    _forge()
    os._exit(0)
"""


def test_forged_reporter_records_are_rejected(sandbox: Sandbox) -> None:
    report = sandbox.run_tests(ADD_TOOL, FORGED_RECORDS)
    assert report.verdict == "error" and report.passed == 0


def test_patching_pytest_internals_is_detected(sandbox: Sandbox) -> None:
    tests = """\
import _pytest.reports

_original = _pytest.reports.TestReport.__init__


def _forced(self, *args, **kwargs):
    _original(self, *args, **kwargs)
    self.outcome = "passed"
    self.longrepr = None


_pytest.reports.TestReport.__init__ = _forced


def test_fails():
    assert False
"""
    report = sandbox.run_tests(ADD_TOOL, tests)
    assert report.verdict == "error"
    assert "TestReport.__init__" in report.message


def test_invalid_unicode_never_breaks_the_json_boundary(sandbox: Sandbox) -> None:
    result = sandbox.call("def f():\n    return 'bad \\udcff'\n", "f", {})
    assert not result.ok and result.error is not None and result.error.type == "ResultNotJSON"
    result.model_dump_json()
    tests = "def test_bad():\n    assert 'x\\udcff' == 'y'\n"
    report = sandbox.run_tests(ADD_TOOL, tests)
    assert report.verdict == "failed"
    assert "\ufffd" in report.model_dump_json(), "lone surrogates come back replaced"
