"""The in-container runner: the only trusted program inside a sandbox container.

The host sends this file's source with every job (`python3 -I -S -B -c <source>`), so the image never has
to contain it. The job arrives as one JSON object on stdin; the runner answers with exactly one line on its
stdout, `<nonce> <json>`, where the nonce is the one the host put in the job. The untrusted code (pytest and
the tests, or the tool for a call) runs in a child process whose stdout and stderr are capped pipes and which
never sees the nonce or the runner's stdout. The runner makes itself non-dumpable first, so a same-uid child
cannot read its memory or file descriptors through /proc or ptrace.

Standard library only; Python 3.11 (the image's /usr/bin/python3).
"""

from __future__ import annotations

import ast
import contextlib
import json
import os
import selectors
import signal
import socket
import sys
import time

TOOL_FILE = "tool.py"
TEST_FILE = "test_tool.py"
SANDBOX_ROOT = "/sandbox"
# Records the child's reporting channel may carry, at most (a huge parametrised suite stays well below).
CHANNEL_CAP = 8 * 1024 * 1024
MESSAGE_CHARS = 2000
EXIT_GRACE_S = 0.3
ZYGOTE_SOCKET = "/tmp/.sea-zygote"
ZYGOTE_CHANNEL_FD = 3
ZYGOTE_WAIT_S = 10.0
ZYGOTE_READY = "sea-zygote-ready"

# Runs in the pytest child: streams one JSON line per collection error, collected set, test phase and the
# session's end over the fd named in SEA_REPORT_FD (popped from the environment before any test code runs).
TESTS_BOOTSTRAP = r"""
import json, os, sys
_fd = int(os.environ.pop("SEA_REPORT_FD"))
_chan = os.fdopen(_fd, "w", encoding="utf-8")


def _send(record):
    try:
        _chan.write(json.dumps(record) + "\n")
        _chan.flush()
    except Exception:
        pass


def _trim(text, limit=__LIMIT__):
    text = str(text)
    if len(text) <= limit:
        return text
    head = limit // 4
    return text[:head] + "\n[... trimmed ...]\n" + text[-(limit - head):]


def _module_of(plugin):
    if type(plugin).__name__ == "module":
        return str(plugin.__name__)
    return str(getattr(plugin, "__module__", None) or type(plugin).__module__)


class _SeaReporter:
    def pytest_collectreport(self, report):
        if report.failed:
            _send({"kind": "collect_error", "nodeid": report.nodeid, "message": _trim(report.longreprtext)})

    def pytest_collection_finish(self, session):
        foreign = sorted(
            str(name)
            for name, plugin in session.config.pluginmanager.list_name_plugin()
            if plugin is not None and not _module_of(plugin).startswith(("_pytest", "pytest", "__main__"))
        )
        _send({"kind": "collected", "items": [item.nodeid for item in session.items], "plugins": foreign})

    def pytest_runtest_logreport(self, report):
        message = ""
        if report.failed:
            message = report.longreprtext
        elif report.skipped:
            longrepr = report.longrepr
            message = longrepr[2] if isinstance(longrepr, tuple) and len(longrepr) == 3 else str(longrepr)
            if hasattr(report, "wasxfail"):
                message = "xfail: " + str(report.wasxfail or message)
        _send({
            "kind": "phase", "nodeid": report.nodeid, "when": report.when, "outcome": report.outcome,
            "message": _trim(message), "duration": float(report.duration),
        })

    def pytest_sessionfinish(self, session, exitstatus):
        _send({"kind": "finished", "exitstatus": int(exitstatus)})


import pytest

sys.exit(pytest.main(sys.argv[1:], plugins=[_SeaReporter()]))
""".replace("__LIMIT__", str(MESSAGE_CHARS))

# Runs in the call child: imports tool.py, calls the function with the JSON kwargs and writes one JSON
# object (the result or a structured error) to the fd named in SEA_RESULT_FD.
CALL_BOOTSTRAP = r"""
import json, os, sys
_fd = int(os.environ.pop("SEA_RESULT_FD"))
_chan = os.fdopen(_fd, "wb")
job_dir, function_name, kwargs_path, limit = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])


def _finish(record):
    try:
        _chan.write((record if isinstance(record, str) else json.dumps(record)).encode("utf-8"))
        _chan.close()
    finally:
        for stream in (sys.stdout, sys.stderr):
            try:
                stream.flush()
            except Exception:
                pass
        os._exit(0)  # no atexit hooks or lingering threads of the tool delay the answer


def _error(kind, message, tb=""):
    _finish({"ok": False, "error": {"type": kind, "message": str(message)[:__LIMIT__], "traceback": tb}})


def _traceback(exc):
    import traceback
    tb = exc.__traceback__
    while tb is not None and tb.tb_frame.f_code.co_filename == "<string>":
        tb = tb.tb_next  # drop this bootstrap's own frames
    text = "".join(traceback.format_exception(type(exc), exc, tb))
    return text if len(text) <= 4000 else "[... trimmed ...]\n" + text[-4000:]


with open(kwargs_path, "rb") as handle:
    kwargs = json.load(handle)
sys.path.insert(0, job_dir)
try:
    import inspect
    import tool
    fn = getattr(tool, function_name, None)
    if fn is None:
        _error("FunctionNotFound", "tool.py defines no function named %r" % function_name)
    if not callable(fn):
        _error("NotCallable", "tool.%s is a %s, not a function" % (function_name, type(fn).__name__))
    try:
        inspect.signature(fn).bind(**kwargs)
    except TypeError as exc:
        _error("BadArguments", "%s(): %s" % (function_name, exc))
    except ValueError:
        pass  # no introspectable signature: let the call itself decide
    result = fn(**kwargs)
    if inspect.iscoroutine(result):
        import asyncio
        result = asyncio.run(result)
except BaseException as exc:
    _error(type(exc).__name__, str(exc) or repr(exc), _traceback(exc))
try:
    data = json.dumps({"ok": True, "result": result}, allow_nan=False)
except BaseException as exc:
    _error("ResultNotJSON", "the result (a %s) is not JSON-serialisable: %s" % (type(result).__name__, exc))
if len(data.encode("utf-8")) > limit:
    _error("ResultTooLarge", "the JSON result is %d bytes, over the %d-byte limit" % (len(data), limit))
_finish(data)
""".replace("__LIMIT__", str(MESSAGE_CHARS))


def make_undumpable() -> bool:
    """prctl(PR_SET_DUMPABLE, 0): same-uid processes can no longer ptrace us or open /proc/<pid>/fd|mem."""
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        return libc.prctl(4, 0, 0, 0, 0) == 0
    except Exception:
        return False


def trim(text: str, limit: int = MESSAGE_CHARS) -> str:
    """Keep the head and the tail of a long text."""
    if len(text) <= limit:
        return text
    head = limit // 4
    return text[:head] + "\n[... trimmed ...]\n" + text[-(limit - head) :]


def oom_kill_count() -> int | None:
    """The memory cgroup's OOM-kill counter (cgroup v1 or v2), or None where it cannot be read."""
    for path in ("/sys/fs/cgroup/memory/memory.oom_control", "/sys/fs/cgroup/memory.events"):
        try:
            with open(path) as handle:
                for line in handle:
                    key, _, value = line.partition(" ")
                    if key == "oom_kill":
                        return int(value)
        except (OSError, ValueError):
            continue
    return None


def memory_failcnt() -> int | None:
    """How often the cgroup hit its memory limit (cgroup v1 only)."""
    try:
        with open("/sys/fs/cgroup/memory/memory.failcnt") as handle:
            return int(handle.read().strip())
    except (OSError, ValueError):
        return None


def expected_tests(test_code: str) -> list[str]:
    """Test functions pytest should collect: module-level test_* and test_* methods of Test* classes."""
    found: list[str] = []
    for node in ast.parse(test_code).body:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and node.name.startswith("test"):
            found.append(node.name)
        elif isinstance(node, ast.ClassDef) and node.name.startswith("Test"):
            for item in node.body:
                if isinstance(item, ast.FunctionDef | ast.AsyncFunctionDef) and item.name.startswith("test"):
                    found.append(f"{node.name}::{item.name}")
    return list(dict.fromkeys(found))


def function_key(nodeid: str) -> str:
    """`test_tool.py::TestX::test_y[3]` -> `TestX::test_y`."""
    _, _, rest = nodeid.partition("::")
    return rest.split("[", 1)[0]


def syntax_problem(code: str, filename: str) -> str | None:
    """A one-line description of a syntax error in `code`, or None."""
    try:
        ast.parse(code, filename=filename)
    except SyntaxError as exc:
        return f"{filename} does not parse: line {exc.lineno}: {exc.msg}"
    except ValueError as exc:  # e.g. NUL bytes
        return f"{filename} does not parse: {exc}"
    return None


class ChildRun:
    """A finished child process: its capped output, its channel bytes and how it ended."""

    def __init__(self) -> None:
        self.stdout = bytearray()
        self.stderr = bytearray()
        self.channel = bytearray()
        self.stdout_truncated = False
        self.stderr_truncated = False
        self.channel_truncated = False
        self.returncode: int | None = None
        self.timed_out = False
        self.oom = False
        self.elapsed_s = 0.0


class PopenChild:
    """The untrusted child as a plain subprocess (used when no zygote answers)."""

    wakeup_fd: int | None = None

    def __init__(self, code: str, args: list[str], env: dict[str, str], cwd: str, fds: tuple[int, int, int],
                 channel_env: str) -> None:
        import subprocess

        out_w, err_w, chan_w = fds
        self._subprocess = subprocess
        self.proc = subprocess.Popen(
            [sys.executable, "-I", "-B", "-c", code, *args], cwd=cwd, env=dict(env, **{channel_env: str(chan_w)}),
            stdin=subprocess.DEVNULL, stdout=out_w, stderr=err_w, pass_fds=(chan_w,), start_new_session=True,
            close_fds=True,
        )
        self.pid = self.proc.pid

    def poll(self) -> int | None:
        return self.proc.poll()

    def wait(self, timeout: float) -> int | None:
        try:
            return self.proc.wait(timeout=timeout)
        except self._subprocess.TimeoutExpired:
            return None


class ZygoteChild:
    """The untrusted child forked by the container's zygote (which has pytest and friends imported already).

    The request and the pipe ends go over a SOCK_SEQPACKET unix socket; the zygote answers with the child's
    pid and later its exit status. The zygote never sees the nonce.
    """

    def __init__(self, conn: socket.socket, code: str, args: list[str], env: dict[str, str], cwd: str,
                 fds: tuple[int, int, int], channel_env: str) -> None:
        self.conn = conn
        self.returncode: int | None = None
        request = {"code": code, "args": args, "env": dict(env, **{channel_env: str(ZYGOTE_CHANNEL_FD)}),
                   "cwd": cwd}
        socket.send_fds(conn, [json.dumps(request).encode("utf-8")], list(fds))
        self.pid = int(self._receive(None)["pid"])
        conn.setblocking(False)
        self.wakeup_fd: int | None = conn.fileno()

    def _receive(self, timeout: float | None) -> dict:
        self.conn.settimeout(timeout)
        data = self.conn.recv(65536)
        if not data:
            raise ConnectionError("the zygote hung up")
        return json.loads(data)

    def poll(self) -> int | None:
        if self.returncode is None:
            try:
                self.returncode = int(self._receive(0.0)["status"])
            except (BlockingIOError, TimeoutError):
                return None
            except (OSError, ValueError, KeyError):
                self.returncode = -signal.SIGKILL  # the zygote died (killed, or OOM): treat as a killed child
        return self.returncode

    def wait(self, timeout: float) -> int | None:
        if self.returncode is None:
            try:
                self.returncode = int(self._receive(timeout)["status"])
            except TimeoutError:
                return None
            except (OSError, ValueError, KeyError):
                self.returncode = -signal.SIGKILL
        return self.returncode


def connect_zygote(wait_s: float) -> socket.socket | None:
    """The zygote's one connection, waiting up to `wait_s` for it to finish its imports; None if absent."""
    deadline = time.monotonic() + wait_s
    while True:
        conn = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        try:
            conn.connect(ZYGOTE_SOCKET)
            return conn
        except OSError:
            conn.close()
            if time.monotonic() >= deadline:
                return None
            time.sleep(0.01)


def run_child(
    code: str, args: list[str], env: dict[str, str], cwd: str, channel_env: str, timeout_s: float,
    output_cap: int, channel_cap: int, zygote: socket.socket | None,
) -> ChildRun:
    """Run the untrusted child with capped pipes and a wall clock; kill its process group at the deadline."""
    run = ChildRun()
    out_r, out_w = os.pipe()
    err_r, err_w = os.pipe()
    chan_r, chan_w = os.pipe()
    oom_before = oom_kill_count()
    fail_before = memory_failcnt()
    started = time.monotonic()
    fds = (out_w, err_w, chan_w)
    try:
        if zygote is not None:
            child: PopenChild | ZygoteChild = ZygoteChild(zygote, code, args, env, cwd, fds, channel_env)
        else:
            child = PopenChild(code, args, env, cwd, fds, channel_env)
    finally:
        for fd in fds:
            os.close(fd)
    deadline = started + timeout_s
    sinks = {out_r: ("stdout", output_cap), err_r: ("stderr", output_cap), chan_r: ("channel", channel_cap)}
    selector = selectors.DefaultSelector()
    for fd in sinks:
        os.set_blocking(fd, False)
        selector.register(fd, selectors.EVENT_READ)
    if child.wakeup_fd is not None:
        selector.register(child.wakeup_fd, selectors.EVENT_READ)
    exited_at: float | None = None
    open_pipes = set(sinks)
    while open_pipes:
        now = time.monotonic()
        if exited_at is None and child.poll() is not None:
            exited_at = now
            if child.wakeup_fd is not None:
                selector.unregister(child.wakeup_fd)
        if exited_at is not None and now - exited_at > EXIT_GRACE_S:
            break  # the child is gone; whatever still holds its pipes open is an escaped grandchild
        if exited_at is None and now >= deadline:
            run.timed_out = True
            break
        wait = min(0.1, max(0.0, deadline - now))
        for key, _ in selector.select(timeout=wait):
            fd = key.fd
            if fd == child.wakeup_fd:
                continue  # the exit status arrived; child.poll() picks it up
            try:
                data = os.read(fd, 65536)
            except BlockingIOError:
                continue
            except OSError:
                data = b""
            if not data:
                selector.unregister(fd)
                open_pipes.discard(fd)
                continue
            name, cap = sinks[fd]
            buffer: bytearray = getattr(run, name)
            room = cap - len(buffer)
            if room > 0:
                buffer += data[:room]
            if len(data) > room:
                setattr(run, f"{name}_truncated", True)
    selector.close()
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(child.pid, signal.SIGKILL)
    run.returncode = child.wait(5.0)
    for fd in sinks:
        os.close(fd)
    run.elapsed_s = time.monotonic() - started
    oom_after = oom_kill_count()
    if oom_before is not None and oom_after is not None:
        run.oom = oom_after > oom_before
    else:  # no OOM counter: a SIGKILL we did not send, while the cgroup was hitting its limit
        fail_after = memory_failcnt()
        run.oom = (
            not run.timed_out and run.returncode == -signal.SIGKILL
            and fail_before is not None and fail_after is not None and fail_after > fail_before
        )
    return run


def decode(data: bytes | bytearray, truncated: bool) -> str:
    """Bytes from the child as text; invalid UTF-8 is replaced, truncation is marked."""
    text = bytes(data).decode("utf-8", errors="replace")
    return text + "\n[... output truncated ...]" if truncated else text


def describe_exit(returncode: int | None) -> str:
    """How a child process ended, in words."""
    if returncode is None:
        return "did not exit when killed"
    if returncode < 0:
        try:
            name = signal.Signals(-returncode).name
        except ValueError:
            name = f"signal {-returncode}"
        return f"was killed by {name}"
    return f"exited with status {returncode}"


def child_env(extra: dict[str, str]) -> dict[str, str]:
    """The child's whole environment: nothing of the runner's leaks in."""
    env = {
        "PATH": "/usr/local/bin:/usr/bin:/bin",
        "HOME": "/tmp",
        "TMPDIR": "/tmp",
        "LANG": "C.UTF-8",
        "PYTHONDONTWRITEBYTECODE": "1",
        "PYTHONIOENCODING": "utf-8",
    }
    env.update(extra)
    return env


def run_tests(job: dict, job_dir: str, private_dir: str, zygote: socket.socket | None) -> dict:
    """Run pytest on test_tool.py in a child and build the TestReport as a dict."""
    tool_code: str = job["tool_code"]
    test_code: str = job["test_code"]
    timeout_s = float(job["timeout_s"])
    report: dict = {"verdict": "error", "tests": [], "expected_tests": []}
    for code, filename in ((tool_code, TOOL_FILE), (test_code, TEST_FILE)):
        problem = syntax_problem(code, filename)
        if problem:
            report["message"] = problem
            return report
    expected = expected_tests(test_code)
    report["expected_tests"] = expected
    if not expected:
        report["message"] = (
            f"{TEST_FILE} defines no test functions (module-level test_* functions or test_* methods of "
            "Test* classes)."
        )
        return report
    write_file(os.path.join(job_dir, TOOL_FILE), tool_code)
    test_path = os.path.join(job_dir, TEST_FILE)
    write_file(test_path, test_code)
    ini_path = os.path.join(private_dir, "pytest.ini")
    write_file(ini_path, "[pytest]\npython_files = test_*.py\npython_classes = Test*\npython_functions = test*\n")
    args = [
        test_path, "-c", ini_path, f"--rootdir={job_dir}", "-p", "no:cacheprovider", "--noconftest",
        "-q", "--no-header", "--color=no", "-p", "no:pastebin", "-p", "no:nose", "-p", "no:doctest",
        "-p", "no:junitxml",
    ]
    env = child_env({"PYTEST_DISABLE_PLUGIN_AUTOLOAD": "1", "PYTEST_ADDOPTS": ""})
    run = run_child(
        TESTS_BOOTSTRAP, args, env, job_dir, "SEA_REPORT_FD", timeout_s, int(job["output_bytes"]), CHANNEL_CAP,
        zygote,
    )
    report["stdout"] = decode(run.stdout, run.stdout_truncated)
    report["stderr"] = decode(run.stderr, run.stderr_truncated)
    report.update(judge_tests(run, expected, timeout_s, int(job.get("memory_mb", 0))))
    return report


def parse_records(channel: bytes | bytearray) -> list[dict]:
    """The reporter's JSON lines; a torn last line (a killed child) is dropped."""
    records = []
    for line in bytes(channel).split(b"\n"):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except ValueError:
            continue
        if isinstance(record, dict):
            records.append(record)
    return records


def judge_tests(run: ChildRun, expected: list[str], timeout_s: float, memory_mb: int) -> dict:
    """Turn the reporter's records and the child's fate into per-test results, totals and a verdict."""
    records = parse_records(run.channel)
    collected: list[str] | None = None
    foreign_plugins: list[str] = []
    collect_errors: list[dict] = []
    phases: dict[str, list[dict]] = {}
    finished: int | None = None
    for record in records:
        kind = record.get("kind")
        if kind == "collected":
            collected = [str(item) for item in record.get("items", [])]
            foreign_plugins = [str(p) for p in record.get("plugins", [])]
        elif kind == "collect_error":
            collect_errors.append(record)
        elif kind == "phase":
            phases.setdefault(str(record.get("nodeid")), []).append(record)
        elif kind == "finished":
            finished = int(record.get("exitstatus", -1))
    order = list(collected or [])
    order += [nodeid for nodeid in phases if nodeid not in order]
    tests = []
    incomplete: list[str] = []
    for nodeid in order:
        result = aggregate(nodeid, phases.get(nodeid, []))
        if result is None:
            incomplete.append(nodeid)
        else:
            tests.append(result)
    counts = {name: sum(1 for t in tests if t["outcome"] == name) for name in ("passed", "failed", "error")}
    counts["skipped"] = sum(1 for t in tests if t["outcome"] == "skipped")
    out: dict = {
        "tests": tests, "passed": counts["passed"], "failed": counts["failed"], "errors": counts["error"],
        "skipped": counts["skipped"], "collected": len(collected or []),
    }
    reported_keys = {function_key(t["name"]) for t in tests}
    missing = [name for name in expected if name not in reported_keys]
    not_passed = [t["name"] for t in tests if t["outcome"] in ("failed", "error")]
    skipped = [t["name"] for t in tests if t["outcome"] == "skipped"]
    so_far = f" ({counts['passed']} passed before that)" if tests else ""

    def verdict(name: str, message: str) -> dict:
        return dict(out, verdict=name, message=message)

    if run.timed_out:
        return verdict("timeout", f"The tests did not finish within {timeout_s:g} s and were killed{so_far}.")
    if run.oom:
        limit = f" ({memory_mb} MB)" if memory_mb else ""
        return verdict("oom", f"The test process ran out of memory{limit} and was killed{so_far}.")
    if collect_errors:
        first = collect_errors[0]
        return verdict("error", f"Collecting the tests failed: {trim(str(first.get('message', '')), 1500)}")
    if foreign_plugins:
        return verdict(
            "error", f"The test file registered pytest plugins ({', '.join(foreign_plugins)}), which is not allowed."
        )
    if finished is None:
        return verdict(
            "error",
            f"The pytest session did not finish: the test process {describe_exit(run.returncode)} before "
            f"reporting the end of the session (os._exit, sys.exit or a crash in the test file?){so_far}.",
        )
    if run.returncode is None or run.returncode < 0:
        return verdict("error", f"The test process {describe_exit(run.returncode)} after the session ended.")
    if missing or incomplete:
        names = ", ".join((missing + incomplete)[:10])
        return verdict(
            "error", f"Test functions found in the source were not collected or not run to completion: {names}."
        )
    if not_passed:
        return verdict(
            "failed", f"{len(not_passed)} of {len(tests)} tests failed: {', '.join(not_passed[:10])}."
        )
    if skipped:
        return verdict(
            "failed",
            f"{len(skipped)} of {len(tests)} tests were skipped or xfailed, which does not count as passing: "
            f"{', '.join(skipped[:10])}.",
        )
    if finished != 0 or run.returncode != 0:
        return verdict(
            "error", f"pytest exited with status {run.returncode} (session status {finished}) "
            "although no test failed."
        )
    return verdict("passed", f"All {len(tests)} tests passed.")


def aggregate(nodeid: str, reports: list[dict]) -> dict | None:
    """One test's phases (setup, call, teardown) as one TestCaseResult dict; None if it never completed."""
    by_when = {str(r.get("when")): r for r in reports}
    duration_ms = round(sum(float(r.get("duration", 0.0)) for r in reports) * 1000.0, 3)
    setup, call, teardown = by_when.get("setup"), by_when.get("call"), by_when.get("teardown")

    def result(outcome: str, message: str = "") -> dict:
        return {"name": nodeid, "outcome": outcome, "message": message, "duration_ms": duration_ms}

    if setup and setup.get("outcome") == "failed":
        return result("error", str(setup.get("message", "")))
    if setup and setup.get("outcome") == "skipped":
        return result("skipped", str(setup.get("message", "")))
    if call is None:
        return None
    if call.get("outcome") == "failed":
        return result("failed", str(call.get("message", "")))
    if call.get("outcome") == "skipped":
        return result("skipped", str(call.get("message", "")))
    if teardown is None:
        return None
    if teardown.get("outcome") == "failed":
        return result("error", str(teardown.get("message", "")))
    return result("passed")


def run_call(job: dict, job_dir: str, private_dir: str, zygote: socket.socket | None) -> dict:
    """Call one function of tool.py in a child; the CallResult as a dict."""
    tool_code: str = job["tool_code"]
    timeout_s = float(job["timeout_s"])
    result_cap = int(job["result_bytes"])
    problem = syntax_problem(tool_code, TOOL_FILE)
    if problem:
        return {"ok": False, "error": {"type": "SyntaxError", "message": problem, "traceback": ""}}
    write_file(os.path.join(job_dir, TOOL_FILE), tool_code)
    kwargs_path = os.path.join(private_dir, "kwargs.json")
    write_file(kwargs_path, json.dumps(job["kwargs"]))
    args = [job_dir, str(job["function"]), kwargs_path, str(result_cap)]
    run = run_child(
        CALL_BOOTSTRAP, args, child_env({}), job_dir, "SEA_RESULT_FD", timeout_s, int(job["output_bytes"]),
        result_cap + 16384, zygote,
    )
    out: dict = {
        "stdout": decode(run.stdout, run.stdout_truncated),
        "stderr": decode(run.stderr, run.stderr_truncated),
    }

    def error(kind: str, message: str) -> dict:
        return dict(out, ok=False, error={"type": kind, "message": message, "traceback": ""})

    if run.timed_out:
        return error("Timeout", f"The call did not return within {timeout_s:g} s and was killed.")
    if run.oom:
        memory = int(job.get("memory_mb", 0))
        limit = f" ({memory} MB)" if memory else ""
        return error("OutOfMemory", f"The call ran out of memory{limit} and was killed.")
    if run.channel_truncated:
        return error("ResultTooLarge", f"The result is over the {result_cap}-byte limit.")
    if not run.channel:
        return error(
            "Crashed", f"The tool's process {describe_exit(run.returncode)} before returning a result."
        )
    try:
        answer = json.loads(bytes(run.channel))
    except ValueError:
        return error("Crashed", "The tool's process returned a malformed result.")
    if not isinstance(answer, dict) or not isinstance(answer.get("ok"), bool):
        return error("Crashed", "The tool's process returned a malformed result.")
    if answer["ok"]:
        return dict(out, ok=True, result=answer.get("result"))
    err = answer.get("error") if isinstance(answer.get("error"), dict) else {}
    return dict(
        out, ok=False,
        error={
            "type": str(err.get("type", "Error"))[:200],
            "message": str(err.get("message", ""))[:MESSAGE_CHARS],
            "traceback": str(err.get("traceback", ""))[:5000],
        },
    )


def write_file(path: str, text: str) -> None:
    """Write a UTF-8 file only this uid can read."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(text)


def emit(nonce: str, body: dict) -> None:
    """The runner's one line of output: the envelope the host checks."""
    line = nonce + " " + json.dumps(body, ensure_ascii=True) + "\n"
    sys.stdout.buffer.write(line.encode("ascii"))
    sys.stdout.buffer.flush()


def main() -> int:
    """Read the job from stdin, run it, print the envelope."""
    undumpable = make_undumpable()
    raw = sys.stdin.buffer.read()
    devnull = os.open(os.devnull, os.O_RDONLY)
    os.dup2(devnull, 0)
    os.close(devnull)
    os.umask(0o077)
    job = json.loads(raw)
    nonce = str(job["nonce"])
    del raw
    try:
        if not undumpable:
            emit(nonce, {"kind": "runner_error", "message": "The runner could not make itself non-dumpable."})
            return 1
        job_name = str(job["job"])
        if not job_name.replace("-", "").isalnum():
            raise ValueError(f"bad job name {job_name!r}")
        job_dir = os.path.join(SANDBOX_ROOT, job_name)
        os.mkdir(job_dir, 0o700)
        private_dir = os.path.join("/tmp", f"sea-runner-{job_name}")
        os.mkdir(private_dir, 0o700)
        zygote = connect_zygote(ZYGOTE_WAIT_S) if job.get("zygote") else None
        if job["mode"] == "tests":
            emit(nonce, {"kind": "tests", "report": run_tests(job, job_dir, private_dir, zygote)})
        elif job["mode"] == "call":
            emit(nonce, {"kind": "call", "result": run_call(job, job_dir, private_dir, zygote)})
        else:
            raise ValueError(f"unknown mode {job['mode']!r}")
    except Exception as exc:  # the runner's own failure, reported through the envelope
        import traceback

        emit(nonce, {"kind": "runner_error", "message": trim(f"{exc!r}\n{traceback.format_exc()}")})
        return 1
    return 0


# Imported by the zygote before any job arrives, so a job's child starts with them loaded.
WARM_MODULES = (
    "pytest", "hypothesis", "hypothesis.strategies", "inspect", "asyncio", "traceback", "json", "unittest",
    "dataclasses", "decimal", "fractions", "statistics", "datetime", "re", "typing", "collections",
)


def zygote_main() -> int:
    """The pool container's main process: import the heavy modules, then fork exactly one job's child.

    It accepts one connection (the runner's), forks the requested child with the pipe ends it was sent,
    reports the child's pid and exit status, and then idles until the container is removed.
    """
    import builtins
    import gc
    import importlib
    import types

    make_undumpable()
    for name in WARM_MODULES:
        with contextlib.suppress(Exception):
            importlib.import_module(name)
    with contextlib.suppress(Exception):
        from _pytest.config import default_plugins

        for name in default_plugins:
            with contextlib.suppress(Exception):
                importlib.import_module(f"_pytest.{name}")
    gc.collect()
    gc.freeze()  # what is loaded now stays shared with the child (copy-on-write friendly)
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    with contextlib.suppress(FileNotFoundError):
        os.unlink(ZYGOTE_SOCKET)
    listener.bind(ZYGOTE_SOCKET)
    listener.listen(1)
    sys.stdout.write(ZYGOTE_READY + "\n")  # the host waits for this before it counts the container as warm
    sys.stdout.flush()
    conn, _ = listener.accept()
    listener.close()  # one job per container: nobody else may ever connect
    with contextlib.suppress(OSError):
        os.unlink(ZYGOTE_SOCKET)
    try:
        message, fds, _, _ = socket.recv_fds(conn, 1 << 20, 3)
        request = json.loads(message) if message else None
    except (OSError, ValueError):
        request, fds = None, []
    if request is not None and len(fds) == 3:
        pid = os.fork()
        if pid == 0:
            conn.close()
            zygote_child(request, fds, builtins, types)
        for fd in fds:
            os.close(fd)
        with contextlib.suppress(OSError):
            conn.send(json.dumps({"pid": pid}).encode())
            _, status = os.waitpid(pid, 0)
            conn.send(json.dumps({"status": os.waitstatus_to_exitcode(status)}).encode())
    else:
        for fd in fds:
            os.close(fd)
    conn.close()
    while True:  # the container lives on until the host removes it
        signal.pause()


def zygote_child(request: dict, fds: list[int], builtins: object, types: object) -> None:
    """In the forked child: become a fresh process for the untrusted code, run it like `python -c`, exit."""
    code = 1
    try:
        os.setsid()
        with contextlib.suppress(Exception):
            import ctypes

            ctypes.CDLL(None).prctl(4, 1, 0, 0, 0)  # dumpable again: the child is an ordinary process
        out_w, err_w, chan_w = fds
        null = os.open(os.devnull, os.O_RDONLY)
        os.dup2(null, 0)
        os.dup2(out_w, 1)
        os.dup2(err_w, 2)
        os.dup2(chan_w, ZYGOTE_CHANNEL_FD)
        os.closerange(ZYGOTE_CHANNEL_FD + 1, os.sysconf("SC_OPEN_MAX"))
        os.chdir(request["cwd"])
        os.environ.clear()
        os.environ.update(request["env"])
        sys.argv = ["-c", *request["args"]]
        import random

        random.seed()  # every job's child must not share the zygote's random state
        main_module = types.ModuleType("__main__")  # type: ignore[attr-defined]
        main_module.__dict__["__builtins__"] = builtins
        sys.modules["__main__"] = main_module
        exec(compile(request["code"], "<string>", "exec"), main_module.__dict__)
        code = 0
    except SystemExit as exc:
        if exc.code is None:
            code = 0
        elif isinstance(exc.code, int):
            code = int(exc.code)
        else:
            with contextlib.suppress(Exception):
                print(exc.code, file=sys.stderr)
            code = 1
    except BaseException:
        with contextlib.suppress(Exception):
            import traceback

            traceback.print_exc()
        code = 1
    finally:
        for stream in (sys.stdout, sys.stderr):
            with contextlib.suppress(Exception):
                stream.flush()
        os._exit(code & 0xFF)


if __name__ == "__main__":
    sys.exit(zygote_main() if sys.argv[1:] == ["zygote"] else main())
