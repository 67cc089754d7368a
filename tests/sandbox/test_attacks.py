"""The attack battery: hostile tool and test code against the real sandbox (real Docker, no mocks).

Every case asserts the verdict, that the host is unaffected (honeytoken file and environment variable, no
process or file of the attack left on the host, no leftover container, host memory sane), and that nothing
carries over: a probe job after each attack must find a clean container (no attack files in scratch or
/dev/shm, no attack processes, scratch space free). Attack files and processes carry a marker `sea_attack_<hex>`
so both sides can look for them.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

import docker
import docker.errors
import pytest

from sandbox.container import JOB_UID_COUNT, JOB_UID_FIRST
from sandbox.models import CallResult, TestReport
from sea.settings import get_settings

pytestmark = [pytest.mark.docker, pytest.mark.slow]

MARK_PREFIX = "sea_attack_"
HONEY_ENV = "SEA_HONEYTOKEN_ATTACKS"
SANDBOX_LABEL = "sea.sandbox"
OWNER_PID_LABEL = "sea.owner_pid"
LABEL_INSTANCE = "sea.instance"
SHORT_TIMEOUT_S = 3.0
JOB_TIMEOUT_S = 15.0
REPO_ROOT = Path(__file__).resolve().parents[2]

IDENTITY_TOOL = "def identity(x):\n    return x\n"

# Runs in a fresh container after every attack: it must find nothing the attack left behind.
PROBE_TESTS = textwrap.dedent(
    '''
    import os

    PREFIX = "sea_" + "attack_"  # spelt in two parts so this file's own text is no false hit


    def _walk(root):
        for dirpath, dirnames, filenames in os.walk(root):
            for name in dirnames + filenames:
                yield os.path.join(dirpath, name)


    def _cmdlines():
        found = {}
        for pid in os.listdir("/proc"):
            if pid.isdigit():
                try:
                    with open(f"/proc/{pid}/cmdline", "rb") as handle:
                        found[int(pid)] = handle.read().replace(b"\\0", b" ").decode("utf-8", "replace")
                except OSError:
                    found[int(pid)] = "?"
        return found


    def test_no_attack_files_in_scratch():
        roots = [r for r in ("/sandbox", "/tmp", "/dev/shm", "/var/tmp") if os.path.isdir(r)]
        assert [p for r in roots for p in _walk(r) if PREFIX in p] == []


    def test_scratch_space_is_free():
        for root in ("/sandbox", "/tmp"):
            stats = os.statvfs(root)
            assert stats.f_bavail >= 0.9 * stats.f_blocks, root
        if os.path.isdir("/dev/shm"):
            assert os.listdir("/dev/shm") == []


    def test_no_attack_processes():
        cmdlines = _cmdlines()
        assert not [c for c in cmdlines.values() if PREFIX in c]
        # init, the idle process, the runner and this pytest: nothing else lives in a fresh container
        assert len(cmdlines) <= 6, cmdlines


    def test_the_tool_still_works():
        from tool import identity

        assert identity(41) == 41
    '''
)


# --- host-side observation -----------------------------------------------------------------------------


def _host_cmdlines() -> dict[int, bytes]:
    found: dict[int, bytes] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                found[int(entry)] = Path(f"/proc/{entry}/cmdline").read_bytes()
            except OSError:
                continue
    return found


def _host_processes_with(marker: str) -> list[int]:
    needle = marker.encode()
    return [pid for pid, cmdline in _host_cmdlines().items() if needle in cmdline]


def _host_zombies_of_job_uids() -> list[int]:
    zombies = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            status = Path(f"/proc/{entry}/status").read_text()
        except OSError:
            continue
        fields = dict(line.split(":", 1) for line in status.splitlines() if ":" in line)
        uid = int((fields.get("Uid", "").split() or ["-1"])[0])
        if fields.get("State", "").strip().startswith("Z") and JOB_UID_FIRST <= uid < JOB_UID_FIRST + JOB_UID_COUNT:
            zombies.append(int(entry))
    return zombies


def _mem_available_mb() -> int:
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemAvailable:"):
            return int(line.split()[1]) // 1024
    return 0


def _host_files_with(marker: str) -> list[str]:
    hits = []
    for root in (Path("/tmp"), Path("/var/tmp"), Path("/"), Path.home(), REPO_ROOT):
        try:
            hits += [str(p) for p in root.iterdir() if marker in p.name]
        except OSError:
            continue
    return hits


def _our_containers(client: docker.DockerClient, instance_id: str) -> list[dict]:
    """The attack sandbox's containers, from one list call (no per-container inspect that could race).

    Filtered by the sandbox object's own label: other pools of this process (other tests' sandboxes) are not ours.
    """
    return client.api.containers(
        all=True,
        filters={
            "label": [f"{SANDBOX_LABEL}=1", f"{OWNER_PID_LABEL}={os.getpid()}", f"{LABEL_INSTANCE}={instance_id}"]
        },
    )


def _wait_until(predicate: Callable[[], bool], timeout_s: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.2)
    return predicate()


# --- fixtures ------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def attack_sandbox(request, tmp_path_factory):
    """The session `sandbox` fixture of tests/sandbox/conftest.py when there is one, else our own."""
    try:
        yield request.getfixturevalue("sandbox")
        return
    except pytest.FixtureLookupError:
        pass
    from sandbox import Sandbox

    home = tmp_path_factory.mktemp("sea-attacks")
    previous = os.environ.get("SEA_HOME")
    os.environ["SEA_HOME"] = str(home)
    get_settings.cache_clear()
    sandbox = Sandbox(get_settings(), pool_size=2)
    try:
        yield sandbox
    finally:
        sandbox.close()
        if previous is None:
            os.environ.pop("SEA_HOME", None)
        else:
            os.environ["SEA_HOME"] = previous
        get_settings.cache_clear()


@dataclass
class HostGuard:
    """What the host looked like before an attack, and the checks that it still does afterwards."""

    marker: str
    honey_file: Path
    honey_value: str
    env_value: str
    mem_before_mb: int
    client: docker.DockerClient
    pool_size: int
    instance_id: str
    docker_free_before: int | None = None
    notes: list[str] = field(default_factory=list)

    def check(self, *outputs: str) -> None:
        for text in outputs:
            assert self.env_value not in text, "the host's honeytoken leaked into the sandbox's output"
            assert self.honey_value not in text, "the host's honeytoken file leaked into the sandbox's output"
        assert self.honey_file.read_text() == self.honey_value
        assert os.environ.get(HONEY_ENV) == self.env_value
        assert _wait_until(lambda: not _host_processes_with(self.marker)), (
            f"attack processes still run on the host: {_host_processes_with(self.marker)}"
        )
        assert _host_files_with(self.marker) == []
        assert _wait_until(lambda: not _host_zombies_of_job_uids(), 10), "zombies of sandbox uids on the host"
        # used containers are removed in the background: wait for the count to settle at the pool's size
        ours = partial(_our_containers, self.client, self.instance_id)
        assert _wait_until(lambda: len(ours()) <= self.pool_size + 1, 20), (
            f"leftover sandbox containers: {[c['Names'] for c in ours()]}"
        )
        assert _wait_until(
            lambda: not [c for c in ours() if c.get("State") in ("exited", "dead")], 10
        ), "a stopped sandbox container was left behind"
        assert _wait_until(lambda: _mem_available_mb() >= self.mem_before_mb - 1536, 10), "host memory was not freed"
        if self.docker_free_before is not None:
            assert _docker_free_bytes() >= self.docker_free_before - 200 * 1024 * 1024, "the host disk filled up"


def _docker_free_bytes() -> int | None:
    root = Path("/var/lib/docker")
    try:
        stats = os.statvfs(root if root.exists() else "/")
    except OSError:
        return None
    return stats.f_bavail * stats.f_frsize


@pytest.fixture()
def guard(attack_sandbox, tmp_path, monkeypatch) -> Iterator[HostGuard]:
    marker = f"{MARK_PREFIX}{uuid.uuid4().hex[:12]}"
    honey_value = f"honey-file-{uuid.uuid4().hex}"
    honey_file = tmp_path / "honeytoken.txt"
    honey_file.write_text(honey_value)
    env_value = f"honey-env-{uuid.uuid4().hex}"
    monkeypatch.setenv(HONEY_ENV, env_value)
    host_guard = HostGuard(
        marker=marker, honey_file=honey_file, honey_value=honey_value, env_value=env_value,
        mem_before_mb=_mem_available_mb(), client=docker.from_env(), pool_size=attack_sandbox.pool_size,
        instance_id=attack_sandbox.instance_id,
        docker_free_before=_docker_free_bytes(),
    )  # fmt: skip
    yield host_guard


def _probe(sandbox) -> None:
    """Nothing carries over: a fresh job finds a clean container."""
    report = sandbox.run_tests(IDENTITY_TOOL, PROBE_TESTS, timeout_s=JOB_TIMEOUT_S)
    assert report.verdict == "passed", f"probe after the attack: {report.message}\n" + "\n".join(
        f"{t.name}: {t.message[:500]}" for t in report.failures()
    )


def _dump(result: TestReport | CallResult) -> str:
    try:
        return result.model_dump_json()
    except Exception:
        return repr(result)


# --- the cases -----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Attack:
    """One hostile job: tests (run_tests) or a call, and the verdicts that count as the sandbox winning."""

    name: str
    code: str
    verdicts: tuple[str, ...] = ("passed",)
    mode: str = "tests"  # tests | call
    tool: str = IDENTITY_TOOL
    function: str = "attack"
    timeout_s: float = JOB_TIMEOUT_S
    check: Callable[[TestReport | CallResult], None] | None = None


def _output_capped(result: TestReport | CallResult) -> None:
    cap = get_settings().sandbox_output_bytes
    stdout = result.stdout
    stderr = getattr(result, "stderr", "")
    assert len(stdout.encode()) <= cap + 1024, len(stdout)
    assert len(stderr.encode()) <= cap + 1024, len(stderr)
    assert len(_dump(result).encode()) <= 8 * cap + 256 * 1024


def _call_returned(value: object) -> Callable[[TestReport | CallResult], None]:
    def check(result: TestReport | CallResult) -> None:
        assert isinstance(result, CallResult)
        assert result.ok, result.error
        assert result.result == value
        _output_capped(result)

    return check


def _call_failed_with(error_type: str) -> Callable[[TestReport | CallResult], None]:
    def check(result: TestReport | CallResult) -> None:
        assert isinstance(result, CallResult)
        assert not result.ok and result.error is not None
        assert result.error.type == error_type, result.error

    return check


# The tool of every "tool code against its own tests" case: shout() is wrong ("WRONG..."), and the tool tries,
# at import or at call time, to read, rewrite or shadow the tests or the stand-in tool.py so that they pass.
# Each trick that works appends "SUCCEEDED <what>" to the tool's answer; the tests print nothing else.
SHOUT_TESTS = """
    from tool import shout

    def test_shout():
        assert shout("abc") == "ABC!"

    def test_shout_empty():
        assert shout("") == "!"

    def test_shout_again():
        assert shout("xy") == "XY!"
"""

_PASSING_TESTS = "from tool import shout\\ndef test_shout():\\n    assert True\\n"
_RIGHT_STAND_IN = "def shout(s):\\n    return s.upper() + '!'\\n"


def _shout_tool(trick: str, at_import: bool = True) -> str:
    """A wrong shout() whose module runs `trick` (a body that appends to `done`) at import or at its call."""
    body = textwrap.indent(textwrap.dedent(trick).strip(), "    ")
    run = "_DONE = _trick()\n" if at_import else "_DONE = []\n"
    call = "" if at_import else "    if not _DONE:\n        _DONE.extend(_trick())\n"
    return (
        "import codecs, glob, io, os, re, signal, tempfile\n\n"
        f"PASSING = {_PASSING_TESTS!r}\nRIGHT = {_RIGHT_STAND_IN!r}\n\n"
        "def _trick():\n    done = []\n    try:\n"
        + textwrap.indent(body, "    ")
        + "\n    except Exception:\n        pass\n    return done\n\n"
        + run
        + "\ndef shout(s):\n"
        + call
        + "    return 'WRONG ' + ' '.join('SUCCEEDED ' + d for d in _DONE)\n"
    )


def _tests_failed_untouched(result: TestReport | CallResult) -> None:
    """Every test ran against the wrong tool and failed, and no trick of the tool's worked."""
    assert isinstance(result, TestReport)
    assert result.verdict == "failed", result.message
    assert (result.passed, result.failed, result.collected) == (0, 3, 3), result.message
    text = result.model_dump_json()
    assert "WRONG" in text and "SUCCEEDED" not in text, text[:3000]


ATTACKS: list[Attack] = [
    # --- tool code against its own tests (it runs in a process confined with Landlock)
    Attack("tool_rewrites_its_tests_at_import_with_io_open", SHOUT_TESTS, tool=_shout_tool("""
        for path in ["test_tool.py"] + glob.glob("/sandbox/*/test_tool.py"):
            with io.open(path) as handle:
                source = handle.read()
            with io.open(path, "w") as handle:
                handle.write(re.sub(r"assert .*", "assert True", source))
            done.append("io.open " + path)
    """), verdicts=("failed",), check=_tests_failed_untouched),
    Attack("tool_rewrites_its_tests_through_proc_cwd", SHOUT_TESTS, tool=_shout_tool("""
        for base in ("/proc/self/cwd", "/proc/%d/cwd" % os.getppid()):
            try:
                with open(base + "/test_tool.py", "r+") as handle:  # only an existing test file counts
                    handle.truncate(0)
                    handle.write(PASSING)
                done.append(base)
            except OSError:
                pass
    """), verdicts=("failed",), check=_tests_failed_untouched),
    Attack("tool_rewrites_its_tests_by_a_relative_path", SHOUT_TESTS, tool=_shout_tool("""
        here = os.path.dirname(os.path.abspath(__file__))
        for relative in ("test_tool.py", "../test_tool.py", "../../sandbox/test_tool.py"):
            for base in (os.getcwd(), here):
                try:
                    with open(os.path.join(base, relative), "r+") as handle:
                        handle.truncate(0)
                        handle.write(PASSING)
                    done.append(relative)
                except OSError:
                    pass
        for job in os.listdir("/sandbox"):
            with open(os.path.join("/sandbox", job, "test_tool.py"), "w") as handle:
                handle.write(PASSING)
            done.append(job)
    """), verdicts=("failed",), check=_tests_failed_untouched),
    Attack("tool_rewrites_its_tests_at_call_time", SHOUT_TESTS, tool=_shout_tool("""
        for path in glob.glob("/sandbox/*/*.py"):
            with open(path, "w") as handle:
                handle.write(PASSING if path.endswith("test_tool.py") else RIGHT)
            done.append(path)
    """, at_import=False), verdicts=("failed",), check=_tests_failed_untouched),
    Attack("tool_rewrites_its_tests_with_codecs", SHOUT_TESTS, tool=_shout_tool("""
        for path in glob.glob("/sandbox/*/test_tool.py") + ["/proc/%d/cwd/test_tool.py" % os.getppid()]:
            with codecs.open(path, "w", "utf-8") as handle:
                handle.write(PASSING)
            done.append("codecs " + path)
    """), verdicts=("failed",), check=_tests_failed_untouched),
    Attack("tool_swaps_its_tests_through_tempfile", SHOUT_TESTS, tool=_shout_tool("""
        for job in glob.glob("/sandbox/*") or ["/sandbox"]:
            handle = tempfile.NamedTemporaryFile("w", dir=job, suffix=".py", delete=False)
            handle.write(PASSING)
            handle.close()
            os.replace(handle.name, os.path.join(job, "test_tool.py"))
            done.append("tempfile " + job)
    """), verdicts=("failed",), check=_tests_failed_untouched),
    Attack("tool_replaces_the_stand_in_tool_py", SHOUT_TESTS, tool=_shout_tool("""
        for path in glob.glob("/sandbox/*/tool.py"):
            os.chmod(path, 0o600)
            with open(path, "w") as handle:
                handle.write(RIGHT)
            done.append("stand-in " + path)
    """), verdicts=("failed",), check=_tests_failed_untouched),
    Attack("tool_shadows_modules_the_tests_import", SHOUT_TESTS, tool=_shout_tool("""
        for folder in glob.glob("/sandbox/*") + ["/tmp"]:
            for name in ("conftest.py", "pytest_sea.py", "hypothesis.py"):
                with open(os.path.join(folder, name), "w") as handle:
                    handle.write("raise SystemExit(0)\\n")
                done.append(os.path.join(folder, name))
    """), verdicts=("failed",), check=_tests_failed_untouched),
    Attack("tool_reads_its_tests_for_the_answers", SHOUT_TESTS, tool=_shout_tool("""
        for path in glob.glob("/sandbox/*/test_tool.py") + ["/proc/%d/cwd/test_tool.py" % os.getppid()]:
            with open(path) as handle:
                done.append("read %d bytes of %s" % (len(handle.read()), path))
    """), verdicts=("failed",), check=_tests_failed_untouched),
    Attack("tool_signals_the_test_process", SHOUT_TESTS, tool=_shout_tool("""
        for pid in {os.getppid(), 1}:
            try:
                os.kill(pid, 0)  # only asks whether a signal could be sent: a stop or a kill would follow
                done.append("signal to %d" % pid)
            except OSError:
                pass
    """), verdicts=("failed",), check=_tests_failed_untouched),
    Attack("tool_reads_the_test_process_memory_and_environment", SHOUT_TESTS, tool=_shout_tool("""
        for what in ("environ", "cmdline", "maps", "mem", "fd/0"):
            try:
                with open("/proc/%d/%s" % (os.getppid(), what), "rb") as handle:
                    handle.read(64)
                done.append(what)
            except OSError:
                pass
    """), verdicts=("failed",), check=_tests_failed_untouched),
    # --- processes and threads
    Attack("fork_bomb_hits_the_pids_limit", """
        import os, time
        def test_fork_bomb():
            children = 0
            try:
                for _ in range(5000):
                    if os.fork() == 0:
                        time.sleep(120)  # MARK
                        os._exit(0)
                    children += 1
            except OSError:
                pass
            assert children < 5000
    """),
    Attack("fork_bomb_unbounded_times_out", """
        import os
        def test_fork_bomb():
            while True:
                try:
                    os.fork()
                except OSError:
                    pass
    """, verdicts=("timeout",), timeout_s=SHORT_TIMEOUT_S),
    Attack("thread_bomb_hits_the_pids_limit", """
        import threading, time
        def test_thread_bomb():
            started = 0
            try:
                for _ in range(5000):
                    threading.Thread(target=time.sleep, args=(120,), daemon=True).start()
                    started += 1
            except RuntimeError:
                pass
            assert started < 5000
    """),
    Attack("memory_bomb_in_tests_is_oom", """
        def test_memory_bomb():
            blocks = []
            while True:
                blocks.append(b"\\x01" * (16 << 20))
    """, verdicts=("oom",)),
    Attack("memory_bomb_in_a_call_is_oom", """
        def attack():
            blocks = []
            while True:
                blocks.append(b"\\x01" * (16 << 20))
    """, mode="call", verdicts=("error",), check=_call_failed_with("OutOfMemory")),
    Attack("dev_shm_fill_is_capped", """
        import os
        def test_fill_shm():
            written = 0
            try:
                with open("/dev/shm/MARK", "wb") as handle:
                    for _ in range(1024):
                        handle.write(b"\\0" * (1 << 20))
                        handle.flush()
                        written += 1
            except OSError:
                pass
            assert written < 1024  # stopped by the small /dev/shm, long before host memory matters
    """),
    Attack("cpu_spin_times_out", """
        def test_spin():
            while True:
                pass
    """, verdicts=("timeout",), timeout_s=SHORT_TIMEOUT_S),
    Attack("sleep_times_out", """
        import time
        def test_sleep():
            time.sleep(600)
    """, verdicts=("timeout",), timeout_s=SHORT_TIMEOUT_S),
    Attack("sigterm_ignored_in_its_own_session_times_out", """
        import os, signal, time
        def test_ignore_sigterm():
            if os.fork() == 0:
                os.setsid()
                signal.signal(signal.SIGTERM, signal.SIG_IGN)
                signal.signal(signal.SIGHUP, signal.SIG_IGN)
                while True:
                    pass
            signal.signal(signal.SIGTERM, signal.SIG_IGN)
            while True:
                time.sleep(1)
    """, verdicts=("timeout",), timeout_s=SHORT_TIMEOUT_S),
    Attack("daemon_does_not_outlive_the_job", """
        import os, sys
        def test_daemonize():
            if os.fork() == 0:
                os.setsid()
                if os.fork() == 0:
                    for fd in (0, 1, 2):
                        os.close(fd)
                    os.execv(sys.executable, [sys.executable, "-c", "import time; time.sleep(300)  # MARK"])
                os._exit(0)
            assert True
    """),
    Attack("zombies_are_reaped_with_the_container", """
        import os, time
        def test_zombies():
            for _ in range(30):
                if os.fork() == 0:
                    os._exit(0)
            time.sleep(0.5)
            states = []
            for pid in os.listdir("/proc"):
                if pid.isdigit():
                    try:
                        states.append(open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()[0])
                    except OSError:
                        pass
            assert states.count("Z") >= 20
    """),
    Attack("killing_pid_1_has_no_effect", """
        import os, signal
        def test_kill_init():
            try:
                os.kill(1, signal.SIGKILL)
            except PermissionError:
                pass
            os.kill(1, 0)
            assert os.path.exists("/proc/1/stat")
    """),
    Attack("sigterm_to_pid_1_ends_at_most_the_job", """
        import os, signal, time
        def test_term_init():
            for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
                try:
                    os.kill(1, sig)
                except OSError:
                    pass
            time.sleep(2)
    """, verdicts=("passed", "error")),
    # --- disk and descriptors
    Attack("one_big_file_fills_only_scratch", """
        import os, signal
        def test_big_file():
            signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
            stopped = []
            for directory in (os.getcwd(), "/tmp"):
                written = 0
                try:
                    with open(os.path.join(directory, "MARK.bin"), "wb") as handle:
                        for _ in range(2048):
                            handle.write(b"\\1" * (1 << 20))
                            handle.flush()
                            written += 1
                except OSError:
                    pass
                stopped.append(written)
            assert all(mb < 2048 for mb in stopped), stopped
    """),
    Attack("many_small_files_fill_only_scratch", """
        import os
        def test_many_files():
            folder = "/tmp/MARK"
            os.mkdir(folder)
            made = 0
            try:
                for i in range(300000):
                    with open(f"{folder}/{i}", "wb") as handle:
                        handle.write(b"x" * 16384)  # 4 pages: a 64 MB scratch holds about 4000
                    made += 1
            except OSError:
                pass
            assert made < 300000
    """, timeout_s=40),
    Attack("file_descriptor_exhaustion_is_capped", """
        import os
        def test_fds():
            opened = []
            try:
                for _ in range(100000):
                    opened.append(os.open("/dev/null", os.O_RDONLY))
            except OSError:
                pass
            assert len(opened) < 100000
    """),
    # --- crashes
    Attack("recursion_crash_is_not_a_pass", """
        import sys
        sys.setrecursionlimit(10**7)
        def down(n):
            return down(n + 1) + 1
        def test_recurse():
            nested = []
            for _ in range(400000):
                nested = [nested]
            repr(nested)
            down(0)
    """, verdicts=("error", "oom")),
    Attack("ctypes_null_dereference_is_an_error", """
        import ctypes
        def test_segfault():
            ctypes.string_at(0)
    """, verdicts=("error",)),
    # --- output
    Attack("huge_stdout_is_capped", """
        import sys
        def attack():
            for _ in range(300):
                sys.stdout.write("A" * 99999 + "\\n")
            return "done"
    """, mode="call", check=_call_returned("done")),
    Attack("huge_stderr_is_capped", """
        import sys
        def attack():
            for _ in range(300):
                sys.stderr.write("E" * 99999 + "\\n")
            return "done"
    """, mode="call", check=_call_returned("done")),
    Attack("one_giant_line_is_capped", """
        import os
        def test_giant_line():
            os.write(1, b"L" * (30 << 20))
            assert False, "fail so that pytest prints the captured output"
    """, verdicts=("failed",), check=_output_capped),
    Attack("invalid_utf8_and_nul_bytes_in_output", """
        import os
        def attack():
            os.write(1, b"\\xff\\xfe\\x00\\xc3\\x28 \\x00\\x00 \\xed\\xa0\\x80\\n")
            os.write(2, b"\\x80\\x81\\x00\\n")
            return "nul\\x00 inside"
    """, mode="call", check=_call_returned("nul\x00 inside")),
    Attack("lone_surrogate_result_stays_serialisable", """
        def attack():
            return "surrogate \\udcff here"
    """, mode="call", verdicts=("passed", "error")),
    Attack("invalid_utf8_in_test_output", """
        import os
        def test_bytes():
            os.write(1, b"\\xff\\xfe\\x00 bad bytes \\x00")
            assert False, "\\x00 nul in the message \\udcff"
    """, verdicts=("failed",)),
    # --- forged results
    Attack("forged_call_envelope_is_ignored", """
        import json, os, re
        def _pids():  # /proc cannot be listed from a tool's process: try every likely pid instead
            return ["self", *map(str, range(1, 200))]

        def attack():
            fake = json.dumps({"kind": "call", "result": {"ok": True, "result": 999}})
            print(json.dumps({"ok": True, "result": 999}))
            tokens = set()
            for pid in _pids():
                for part in ("cmdline", "environ"):
                    try:
                        tokens.update(re.findall(rb"[0-9a-f]{32}", open(f"/proc/{pid}/{part}", "rb").read()))
                    except OSError:
                        pass
            tokens.add(b"0" * 32)
            for token in tokens:
                line = token + b" " + fake.encode() + b"\\n"
                os.write(1, line)
                for pid in _pids():
                    for fd in ("1", "2"):
                        try:
                            with open(f"/proc/{pid}/fd/{fd}", "wb") as handle:
                                handle.write(line)
                        except OSError:
                            pass
            return 1
    """, mode="call", check=_call_returned(1)),
    Attack("forged_pytest_summary_is_ignored", """
        import json
        def test_forge_summary():
            print("===== 1 passed in 0.01s =====")
            print(json.dumps({"verdict": "passed", "passed": 1, "failed": 0, "tests": []}))
            assert False
    """, verdicts=("failed",)),
    Attack("forged_reporter_records_do_not_pass", """
        import os, stat

        def _forge():
            lines = []
            for name in ("test_one", "test_two"):
                for when in ("setup", "call", "teardown"):
                    lines.append({"kind": "phase", "nodeid": f"test_tool.py::{name}", "when": when,
                                  "outcome": "passed", "message": "", "duration": 0.0})
            lines.append({"kind": "finished", "exitstatus": 0})
            import json
            payload = "".join(json.dumps(line) + "\\n" for line in lines).encode()
            try:
                import __main__
                for line in lines:
                    __main__._send(line)
            except Exception:
                pass
            for fd in range(3, 64):
                try:
                    if stat.S_ISFIFO(os.fstat(fd).st_mode):
                        os.write(fd, payload)
                except OSError:
                    pass
            os._exit(0)

        _forge()

        def test_one():
            assert False

        def test_two():
            assert False
    """, verdicts=("failed", "error")),
    Attack("reporter_key_stolen_from_its_closure_does_not_pass", """
        import gc, os, types

        def _steal_send():
            for obj in gc.get_objects():
                if isinstance(obj, types.FunctionType) and obj.__closure__ and obj.__name__ == "send":
                    return obj
            return None

        def test_one():
            send = _steal_send()
            if send is not None:
                send({"kind": "collected", "items": ["test_tool.py::test_one", "test_tool.py::test_two"],
                      "plugins": []})
                for name in ("test_one", "test_two"):
                    for when in ("setup", "call", "teardown"):
                        send({"kind": "phase", "nodeid": f"test_tool.py::{name}", "when": when,
                              "outcome": "passed", "message": "", "duration": 0.0})
                send({"kind": "finished", "exitstatus": 0})
                os._exit(0)
            assert False

        def test_two():
            assert False
    """, verdicts=("failed", "error")),
    Attack("tool_code_that_disables_the_tests_does_not_pass", """
        from tool import identity

        def test_identity():
            assert identity(1) == 1

        def test_identity_text():
            assert identity("a") == "a"
    """, tool="""
        import _pytest.python

        def _no_op(*args, **kwargs):
            return None

        # every collected test function becomes a no-op, so the wrong implementation below would pass
        _pytest.python.PyobjMixin.obj = property(lambda self: _no_op, lambda self, value: None)

        def identity(x):
            return None
    """, verdicts=("failed", "error")),
    Attack("os_exit_inside_a_test_is_not_a_pass", """
        import os
        def test_one():
            assert True
        def test_two():
            os._exit(0)
        def test_three():
            assert False
    """, verdicts=("error",)),
    Attack("sys_exit_at_import_is_not_a_pass", """
        import sys
        sys.exit(0)
        def test_never():
            assert False
    """, verdicts=("error",)),
    Attack("pytest_exit_at_import_is_not_a_pass", """
        import pytest
        pytest.exit("all good", returncode=0)
        def test_never():
            assert False
    """, verdicts=("error",)),
    Attack("conftest_written_at_import_forces_nothing", """
        import os
        HOOK = '''
        import pytest
        @pytest.hookimpl(hookwrapper=True)
        def pytest_runtest_makereport(item, call):
            outcome = yield
            report = outcome.get_result()
            report.outcome = "passed"
        '''
        for folder in (os.getcwd(), os.path.dirname(os.getcwd()), "/tmp"):
            try:
                with open(os.path.join(folder, "conftest.py"), "w") as handle:
                    handle.write(HOOK)
            except OSError:
                pass
        def test_fails():
            assert False
    """, verdicts=("failed", "error")),
    Attack("plugin_from_the_tool_forces_nothing", """
        from tool import identity
        pytest_plugins = ["tool"]
        def test_fails():
            assert identity(1) == 2
    """, tool="""
        import pytest
        def identity(x):
            return x
        @pytest.hookimpl(hookwrapper=True)
        def pytest_runtest_makereport(item, call):
            outcome = yield
            outcome.get_result().outcome = "passed"
    """, verdicts=("failed", "error")),
    Attack("monkeypatched_report_class_forces_nothing", """
        import _pytest.reports
        _original = _pytest.reports.TestReport.__init__
        def _forced(self, *args, **kwargs):
            _original(self, *args, **kwargs)
            self.outcome = "passed"
            self.longrepr = None
        _pytest.reports.TestReport.__init__ = _forced
        def test_fails():
            assert False
    """, verdicts=("failed", "error")),
    # --- network
    Attack("egress_by_ip_is_blocked", """
        import socket
        def test_egress_ip():
            interfaces = [line.split(":")[0].strip() for line in open("/proc/net/dev").read().splitlines()[2:]]
            assert interfaces == ["lo"]
            for address in [("1.1.1.1", 53), ("8.8.8.8", 443), ("172.17.0.1", 2375), ("169.254.169.254", 80)]:
                try:
                    socket.create_connection(address, timeout=1).close()
                except OSError:
                    continue
                raise AssertionError(f"connected to {address}")
            udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            try:
                udp.sendto(b"x", ("1.1.1.1", 53))
                raise AssertionError("sent a UDP packet")
            except OSError:
                pass
    """),
    Attack("egress_by_name_is_blocked", """
        import socket
        def test_egress_name():
            for name in ("pypi.org", "deb.debian.org", "host.docker.internal", "registry-1.docker.io"):
                try:
                    socket.getaddrinfo(name, 443)
                except OSError:
                    continue
                raise AssertionError(f"resolved {name}")
    """),
    Attack("raw_and_packet_sockets_are_refused", """
        import socket
        def test_raw_sockets():
            for family, kind, proto in [(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP),
                                        (socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_RAW),
                                        (socket.AF_PACKET, socket.SOCK_RAW, 0x0300)]:
                try:
                    socket.socket(family, kind, proto).close()
                except OSError:
                    continue
                raise AssertionError(f"opened a raw socket {family} {kind}")
    """),
    Attack("pip_install_fails", """
        import importlib.util, subprocess, sys
        def test_pip():
            for command in ([sys.executable, "-m", "pip", "install", "requests"],
                            [sys.executable, "-m", "ensurepip", "--user"],
                            ["pip", "install", "requests"], ["pip3", "install", "requests"]):
                try:
                    done = subprocess.run(command, capture_output=True, timeout=10)
                except (OSError, subprocess.TimeoutExpired):
                    continue
                assert done.returncode != 0, command
            assert importlib.util.find_spec("requests") is None
    """),
    # --- secrets and the host
    Attack("proc_1_environ_holds_no_secret", """
        import os
        def attack():
            seen = {}
            for pid in ["1", "self", *map(str, range(2, 200))]:  # /proc cannot be listed: try every likely pid
                try:
                    seen[pid] = open(f"/proc/{pid}/environ", "rb").read().decode("utf-8", "replace")
                except OSError as exc:
                    seen[pid] = f"denied: {type(exc).__name__}"
            return {"environ": seen, "mine": dict(os.environ)}
    """, mode="call"),
    Attack("docker_socket_is_absent", """
        import os, socket
        def test_no_docker_socket():
            for path in ("/var/run/docker.sock", "/run/docker.sock", "/run/containerd/containerd.sock"):
                assert not os.path.exists(path), path
            found = []
            for root, dirs, files in os.walk("/"):
                if root.startswith(("/proc", "/sys")):
                    dirs[:] = []
                    continue
                found += [os.path.join(root, f) for f in files if f.endswith(".sock")]
            assert found == []
            for port in (2375, 2376):
                try:
                    socket.create_connection(("127.0.0.1", port), timeout=1).close()
                    raise AssertionError(f"something listens on {port}")
                except OSError:
                    pass
    """),
    Attack("writes_outside_scratch_are_refused", """
        import os, subprocess
        def test_read_only_root():
            targets = ["/MARK", "/etc/MARK", "/usr/lib/python3/dist-packages/MARK.py", "/home/MARK",
                       "/var/tmp/MARK", "/usr/bin/python3"]
            for path in targets:
                try:
                    with open(path, "ab") as handle:
                        handle.write(b"x")
                except OSError:
                    continue
                raise AssertionError(f"wrote {path}")
            mounts = {line.split()[1]: line.split()[3].split(",") for line in open("/proc/mounts")}
            assert "ro" in mounts["/"]
            assert "noexec" in mounts["/tmp"] and "noexec" in mounts["/sandbox"]
            script = "/tmp/MARK.sh"
            with open(script, "w") as handle:
                handle.write("#!/bin/sh\\necho escaped\\n")
            os.chmod(script, 0o755)
            try:
                subprocess.run([script], capture_output=True, timeout=5)
                raise AssertionError("executed a file from scratch")
            except PermissionError:
                pass
    """),
    Attack("symlink_tricks_reach_nothing", """
        import os
        def _runner_pids():
            found = []
            for pid in [p for p in os.listdir("/proc") if p.isdigit() and p != "1"]:
                try:
                    cmdline = open(f"/proc/{pid}/cmdline", "rb").read()
                except OSError:
                    continue
                if b"in-container runner" in cmdline and not cmdline.endswith(b"zygote\\x00"):
                    found.append(pid)
            return found

        def test_symlinks():
            here = os.getcwd()
            runners = _runner_pids()
            assert runners, "the runner process should be visible (it is the job's parent side)"
            targets = [("/etc/shadow", "rb"), ("/proc/1/root/etc/shadow", "rb"), ("/root/.bashrc", "rb"),
                       ("/var/run/docker.sock", "rb")]
            for pid in runners:
                targets += [(f"/proc/{pid}/fd/1", "wb"), (f"/proc/{pid}/environ", "rb"), (f"/proc/{pid}/mem", "rb")]
            for target, mode in targets:
                link = os.path.join(here, "MARK-" + target.strip("/").replace("/", "_"))
                os.symlink(target, link)
                try:
                    with open(link, mode) as handle:
                        handle.write(b"x") if "w" in mode else handle.read(1)
                except OSError:
                    continue
                raise AssertionError(f"opened {target} ({mode}) through a symlink")
            try:
                os.link("/usr/bin/python3.11", "/tmp/MARK-hardlink")
                raise AssertionError("hard-linked a root file into scratch")
            except OSError:
                pass
            try:
                os.symlink("/", os.path.join(here, "tool.py.MARK"))
                os.replace(os.path.join(here, "tool.py.MARK"), os.path.join(here, "tool.py"))
            except OSError:
                pass
    """),
    Attack("proc_sys_writes_are_refused", """
        def test_proc_sys():
            for path, value in [("/proc/sys/kernel/hostname", "pwned"), ("/proc/sysrq-trigger", "b"),
                                ("/proc/sys/vm/drop_caches", "3"), ("/proc/sys/kernel/core_pattern", "|/tmp/x"),
                                ("/proc/self/oom_score_adj", "-1000")]:
                try:
                    with open(path, "w") as handle:
                        handle.write(value)
                except OSError:
                    continue
                raise AssertionError(f"wrote {path}")
    """),
    Attack("cgroup_writes_are_refused", """
        import os
        def test_cgroup_files():
            candidates = []
            for root, dirs, files in os.walk("/sys/fs/cgroup"):
                for name in files:
                    if name.endswith(("limit_in_bytes", "pids.max", "cfs_quota_us", "memory.max", "cgroup.procs",
                                      "tasks", "release_agent", "notify_on_release")):
                        candidates.append(os.path.join(root, name))
            for path in candidates:
                try:
                    with open(path, "w") as handle:
                        handle.write("-1")
                except OSError:
                    continue
                raise AssertionError(f"wrote {path}")
            try:
                os.mkdir("/sys/fs/cgroup/memory/MARK")
                raise AssertionError("made a cgroup")
            except OSError:
                pass
    """),
    Attack("setuid_and_capabilities_are_gone", """
        import os, subprocess
        def test_privileges():
            for change in (lambda: os.setuid(0), lambda: os.setgid(0), lambda: os.setgroups([0]),
                           lambda: os.seteuid(0)):
                try:
                    change()
                except PermissionError:
                    continue
                raise AssertionError("changed to root")
            status = dict(line.split(":", 1) for line in open("/proc/self/status").read().splitlines())
            assert status["NoNewPrivs"].strip() == "1"
            for field in ("CapEff", "CapPrm", "CapInh", "CapAmb"):
                assert int(status[field].strip(), 16) == 0, field
            assert os.getuid() == os.geteuid() >= 200000  # the job's own uid, never root
            for command in (["su", "-c", "id -u", "root"], ["mount", "-t", "tmpfs", "none", "/tmp"],
                            ["unshare", "-r", "id", "-u"], ["chroot", "/", "id", "-u"]):
                try:
                    done = subprocess.run(command, capture_output=True, timeout=5, stdin=subprocess.DEVNULL)
                except (OSError, subprocess.TimeoutExpired):
                    continue
                assert done.returncode != 0 or done.stdout.strip() != b"0", command
    """),
    # a tests job may not load ctypes at all (the reporter's audit hook), so probe ptrace from a call job
    Attack("ptrace_of_the_runner_is_refused", """
        import ctypes, os
        def attack():
            libc = ctypes.CDLL(None, use_errno=True)
            runners = []
            for pid in [int(p) for p in os.listdir("/proc") if p.isdigit() and int(p) not in (1, os.getpid())]:
                try:
                    cmdline = open(f"/proc/{pid}/cmdline", "rb").read()
                except OSError:
                    continue
                # the runner holds the nonce (the zygote and docker-init never see it)
                if b"in-container runner" in cmdline and not cmdline.endswith(b"zygote\\x00"):
                    runners.append(pid)
            assert runners
            for pid in runners:
                if libc.ptrace(16, pid, None, None) == 0:  # PTRACE_ATTACH
                    libc.ptrace(17, pid, None, None)
                    raise AssertionError("attached to the runner with ptrace")
            for pid in [p for p in os.listdir("/proc") if p.isdigit()]:
                try:
                    open(f"/proc/{pid}/mem", "rb").close()
                    if pid not in (str(os.getpid()),):
                        environ = open(f"/proc/{pid}/environ", "rb").read()
                        assert b"nonce" not in environ
                except OSError:
                    pass
            return "refused"
    """, mode="call", check=_call_returned("refused")),
]


def _attack_ids() -> list[str]:
    return [attack.name for attack in ATTACKS]


@pytest.mark.parametrize("attack", ATTACKS, ids=_attack_ids())
def test_attack(attack: Attack, attack_sandbox, guard: HostGuard) -> None:
    code = textwrap.dedent(attack.code).replace("MARK", guard.marker)
    tool = textwrap.dedent(attack.tool).replace("MARK", guard.marker)
    if attack.mode == "call":
        result: TestReport | CallResult = attack_sandbox.call(code, attack.function, {}, timeout_s=attack.timeout_s)
        assert isinstance(result, CallResult)
        verdict = "passed" if result.ok else "error"
    else:
        result = attack_sandbox.run_tests(tool, code, timeout_s=attack.timeout_s)
        assert isinstance(result, TestReport)
        verdict = result.verdict
    detail = _dump(result)[:3000]
    assert verdict in attack.verdicts, f"{attack.name}: verdict {verdict}: {detail}"
    # the wall clock really ended the work: the job came back soon after its timeout
    assert result.duration_ms <= (attack.timeout_s + 15) * 1000, result.duration_ms
    if attack.check is not None:
        attack.check(result)
    json.loads(result.model_dump_json())  # every result crosses the JSON boundary (the CLI prints it)
    guard.check(_dump(result))
    _probe(attack_sandbox)


# --- cases that need more than one job or the host's own process --------------------------------------


def test_host_environment_honeytoken_is_invisible(attack_sandbox, guard: HostGuard) -> None:
    code = textwrap.dedent(
        """
        import os
        def attack():
            found = dict(os.environ)
            for pid in ["self", *map(str, range(1, 200))]:  # /proc cannot be listed from a tool's process
                try:
                    found[f"/proc/{pid}/environ"] = open(f"/proc/{pid}/environ", "rb").read().decode("latin-1")
                except OSError:
                    pass
            return found
        """
    )
    assert os.environ[HONEY_ENV] == guard.env_value  # planted in the host process that drives the sandbox
    result = attack_sandbox.call(code, "attack", {}, timeout_s=JOB_TIMEOUT_S)
    assert result.ok, result.error
    dumped = json.dumps(result.result)
    assert HONEY_ENV not in dumped and guard.env_value not in dumped
    assert "DOCKER" not in dumped and "SEA_" not in dumped
    guard.check(result.model_dump_json())
    _probe(attack_sandbox)


def test_a_job_that_takes_every_inotify_instance_starves_no_other(attack_sandbox, guard: HostGuard) -> None:
    # inotify instances are counted per uid (fs.inotify.max_user_instances, 128 by default): with one uid for
    # every container, a job holding them all made the next job's inotify_init fail
    hog = textwrap.dedent(
        """
        import ctypes, time
        def hog():
            libc = ctypes.CDLL(None, use_errno=True)
            held = 0
            while held < 100000 and libc.inotify_init1(0) >= 0:
                held += 1
            time.sleep(6)  # MARK
            return held
        """
    ).replace("MARK", guard.marker)
    probe = "import ctypes\ndef probe():\n    return ctypes.CDLL(None).inotify_init1(0) >= 0\n"
    hogged: list[CallResult] = []
    thread = threading.Thread(target=lambda: hogged.append(attack_sandbox.call(hog, "hog", {}, timeout_s=20)))
    thread.start()
    try:
        time.sleep(2.5)  # the hog has taken every instance it can by now
        second = attack_sandbox.call(probe, "probe", {}, timeout_s=JOB_TIMEOUT_S)
    finally:
        thread.join(30)
    assert hogged and hogged[0].ok, hogged and hogged[0].error
    assert hogged[0].result >= 64, hogged[0].result  # it really took them (the limit, or the open-files cap)
    assert second.ok and second.result is True, second.error
    guard.check(second.model_dump_json())
    _probe(attack_sandbox)


def test_concurrent_jobs_cannot_see_each_other(attack_sandbox, guard: HostGuard) -> None:
    writer = textwrap.dedent(
        f"""
        import os, sys, time
        def test_leave_traces():
            with open("/tmp/{guard.marker}-writer", "w") as handle:
                handle.write("secret of job A")
            with open(os.path.join(os.getcwd(), "{guard.marker}-writer"), "w") as handle:
                handle.write("secret of job A")
            child = os.fork()
            if child == 0:
                os.execv(sys.executable, [sys.executable, "-c", "import time; time.sleep(8)  # {guard.marker}"])
            time.sleep(6)
            os.kill(child, 9)
            os.waitpid(child, 0)
        """
    )
    looker = textwrap.dedent(
        f"""
        import os, time
        def test_see_nothing_of_the_other_job():
            time.sleep(2)
            hits = []
            for root in ("/", ):
                for dirpath, dirs, files in os.walk(root):
                    if dirpath.startswith(("/proc", "/sys")):
                        dirs[:] = []
                        continue
                    hits += [os.path.join(dirpath, n) for n in dirs + files if "{guard.marker}" in n]
            assert hits == []
            for pid in [p for p in os.listdir("/proc") if p.isdigit()]:
                try:
                    cmdline = open(f"/proc/{{pid}}/cmdline", "rb").read()
                except OSError:
                    continue
                assert b"{guard.marker}" not in cmdline
            assert len([p for p in os.listdir("/proc") if p.isdigit()]) <= 6
        """
    )
    reports: dict[str, TestReport] = {}

    def run(name: str, tests: str) -> None:
        reports[name] = attack_sandbox.run_tests(IDENTITY_TOOL, tests, timeout_s=JOB_TIMEOUT_S)

    jobs = (("writer", writer), ("looker", looker))
    threads = [threading.Thread(target=run, args=job) for job in jobs]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert reports["writer"].verdict == "passed", reports["writer"].message
    assert reports["looker"].verdict == "passed", _dump(reports["looker"])[:2000]
    guard.check(_dump(reports["writer"]), _dump(reports["looker"]))
    _probe(attack_sandbox)


HOST_KILLED_SCRIPT = """
import sys
from sandbox import Sandbox
sandbox = Sandbox(pool_size=0)
print("ready", flush=True)
sandbox.run_tests("x = 1\\n", "import time\\ndef test_long():\\n    time.sleep(120)\\n", timeout_s=300)
print("finished", flush=True)
"""


def test_host_process_killed_mid_job_is_cleaned_by_the_janitor(attack_sandbox, guard: HostGuard, tmp_path) -> None:
    client = docker.from_env()
    env = {**os.environ, "SEA_HOME": str(tmp_path / "sea"), "PYTHONPATH": str(REPO_ROOT)}
    owner = subprocess.Popen(
        [sys.executable, "-c", HOST_KILLED_SCRIPT], cwd=REPO_ROOT, env=env,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        label_filter = {"label": [f"{SANDBOX_LABEL}=1", f"{OWNER_PID_LABEL}={owner.pid}"]}

        def job_running() -> bool:
            # the job has started once pytest runs in the owner's container (its argv names test_tool.py)
            for info in client.api.containers(filters=label_filter):
                try:
                    rows = client.api.top(info["Id"]).get("Processes") or []
                except docker.errors.APIError:
                    continue
                if any("test_tool.py" in " ".join(map(str, row)) for row in rows):
                    return True
            return False

        assert _wait_until(job_running, 90), "the owner never started its job"
    finally:
        owner.send_signal(signal.SIGKILL)
        owner.wait(10)
    leftovers = client.containers.list(all=True, filters=label_filter)
    assert leftovers, "the killed owner's container should be left behind for the janitor"
    # a new Sandbox in a new process runs the janitor when it starts
    sweep = subprocess.run(
        [sys.executable, "-c", "from sandbox import Sandbox; Sandbox(pool_size=0).image_id()"],
        cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert sweep.returncode == 0, sweep.stderr[-2000:]
    assert _wait_until(lambda: not client.containers.list(all=True, filters=label_filter), 30)
    # the janitor spared live owners: our own pool still serves jobs
    guard.check()
    _probe(attack_sandbox)


def test_battery_has_at_least_thirty_cases() -> None:
    assert len(ATTACKS) + 3 >= 30
    assert len(set(_attack_ids())) == len(ATTACKS)
