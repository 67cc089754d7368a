"""The in-container runner: the only trusted program inside a sandbox container.

The host starts every container with this file's source as its main process (`python3 -I -B -c <source>
serve [--preload]`), so the image never has to contain it, and talks to it over the attached stdin and
stdout. The runner makes itself non-dumpable, optionally starts a zygote that imports pytest ahead of need,
prints a ready line, then reads one job (a length line, then JSON) and answers with exactly one line,
`<nonce> <json>`, where the nonce is the one the host put in the job. The untrusted code (pytest and the
tests, or the tool for a call) runs in a child process whose stdout and stderr are capped pipes and which
never sees the nonce or the runner's stdout: non-dumpable, the runner cannot be read or written through
/proc or ptrace by a same-uid child.

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
ZYGOTE_CHANNEL_FD = 3
ZYGOTE_READY_TIMEOUT_S = 300.0
READY_LINE = b"sea-runner-ready"
MAX_JOB_BYTES = 64 * 1024 * 1024
# The deepest nesting of lists and objects a value may have to cross the boundary (arguments and results).
MAX_JSON_DEPTH = 100
# The largest value that may cross between the test process and the tool's process in one message.
TOOL_FRAME_LIMIT = 64 * 1024 * 1024
TOOL_DIR = "tool"
LANDLOCK_MISSING = (
    "This machine's kernel does not offer Landlock (Linux 5.13 or later with landlock among its security "
    "modules), which the sandbox needs to keep tool code away from its tests; no code was run."
)

# Runs first in the tool's own process during run_tests (see TOOL_PROCESS_BOOTSTRAP): confines it with Landlock
# before any tool code is imported, so the tool can neither read nor change what the tests are made of.
# Landlock is an unprivileged Linux security module (5.13+), so it works under no-new-privileges with every
# capability dropped, and it cannot be undone.
CONFINE_BOOTSTRAP = r"""
def _sea_confine(readable):
    # From here on this process and everything it starts may read only the system's own files (/usr, /etc)
    # and `readable`, and may write, create or delete only inside a new private scratch folder, which becomes
    # its working directory and TMPDIR. Everything else is out of reach: the tests, the stand-in tool.py, the
    # job folder, the runner's files, other scratch, /proc, /sys, /dev/shm; and (Landlock ABI 6+) signals to
    # and abstract sockets of processes outside the confinement, so the test process cannot be signalled.
    # Returns the scratch folder; raises OSError where the kernel cannot confine (the job must not go on).
    import ctypes, os, struct, sys
    libc = ctypes.CDLL(None, use_errno=True)
    libc.syscall.restype = ctypes.c_long

    def syscall(*args):
        result = libc.syscall(*args)
        if result < 0:
            errno = ctypes.get_errno()
            raise OSError(errno, "Landlock: " + os.strerror(errno))
        return result

    create_ruleset, add_rule, restrict_self = 444, 445, 446  # the same numbers on every architecture
    abi = syscall(create_ruleset, None, ctypes.c_size_t(0), ctypes.c_uint32(1))  # 1: ask for the ABI
    execute, write_file, read_file, read_dir = 1 << 0, 1 << 1, 1 << 2, 1 << 3
    handled = (1 << 13) - 1  # ABI 1: execute .. make_sym
    if abi >= 2:
        handled |= 1 << 13  # refer (links and renames across folders)
    if abi >= 3:
        handled |= 1 << 14  # truncate
    if abi >= 5:
        handled |= 1 << 15  # ioctl on devices
    net = 0b11 if abi >= 4 else 0  # TCP bind and connect (there is no network anyway)
    scoped = 0b11 if abi >= 6 else 0  # abstract unix sockets, signals
    size = 8 if abi < 4 else 16 if abi < 6 else 24
    attr = ctypes.create_string_buffer(struct.pack("=QQQ", handled, net, scoped)[:size], size)
    ruleset = syscall(create_ruleset, attr, ctypes.c_size_t(size), ctypes.c_uint32(0))
    file_rights = handled & (execute | write_file | read_file | (1 << 14) | (1 << 15))
    scratch = os.path.join("/tmp", "sea-tool-" + os.urandom(8).hex())
    os.mkdir(scratch, 0o700)
    rules = [(path, execute | read_file | read_dir) for path in ("/usr", "/etc") + tuple(readable)]
    rules += [("/dev/null", read_file | write_file), ("/dev/urandom", read_file), (scratch, handled)]
    try:
        for path, access in rules:
            fd = os.open(path, os.O_PATH | os.O_CLOEXEC)
            try:
                if not os.path.isdir(path):
                    access &= file_rights
                rule = ctypes.create_string_buffer(struct.pack("=Qi", access & handled, fd), 12)
                syscall(add_rule, ctypes.c_int(ruleset), ctypes.c_int(1), rule, ctypes.c_uint32(0))
            finally:
                os.close(fd)
        if libc.prctl(38, 1, 0, 0, 0) != 0:  # PR_SET_NO_NEW_PRIVS (already set by Docker; Landlock needs it)
            raise OSError(ctypes.get_errno(), "no_new_privs could not be set")
        syscall(restrict_self, ctypes.c_int(ruleset), ctypes.c_uint32(0))
    finally:
        os.close(ruleset)
    os.chdir(scratch)
    os.environ["TMPDIR"] = scratch
    if "tempfile" in sys.modules:
        sys.modules["tempfile"].tempdir = scratch
    return scratch
"""


def landlock_abi() -> int:
    """The kernel's Landlock ABI version, or 0 where Landlock is missing or disabled."""
    import ctypes

    libc = ctypes.CDLL(None, use_errno=True)
    libc.syscall.restype = ctypes.c_long
    return max(0, int(libc.syscall(444, None, ctypes.c_size_t(0), ctypes.c_uint32(1))))


# Runs first in the pytest child (see TESTS_BOOTSTRAP): forks the tool's own process and installs the channel
# the generated tool.py talks to it through.
TOOL_PROCESS_BOOTSTRAP = r"""import sys


# The tool runs in a process of its own, forked here before the reporter's key or any test code exists in
# this one, and made unable to reach into it (this process is non-dumpable). The tests import a generated
# tool.py whose functions send their arguments over a socket and get the result or the exception back, as
# JSON with type tags; nothing is unpickled. So tool code can neither patch pytest nor reach the reporter.

class _Unsupported(TypeError):
    pass


_BIG_INT = 1 << 63


def _enc(value, depth=0):
    if depth > 200:
        raise _Unsupported("a value nested too deeply")
    if value is None or value is True or value is False:
        return value
    if isinstance(value, int):
        value = int(value)
        return value if -_BIG_INT < value < _BIG_INT else {"$i": format(value, "x")}
    if isinstance(value, float):
        return float(value)
    if isinstance(value, str):
        return str.__str__(value)
    inner = depth + 1
    if isinstance(value, list):
        return [_enc(item, inner) for item in value]
    if isinstance(value, tuple):
        return {"$t": [_enc(item, inner) for item in value]}
    if isinstance(value, dict):
        return {"$d": [[_enc(k, inner), _enc(v, inner)] for k, v in value.items()]}
    if isinstance(value, frozenset):
        return {"$fs": [_enc(item, inner) for item in value]}
    if isinstance(value, set):
        return {"$s": [_enc(item, inner) for item in value]}
    if isinstance(value, (bytes, bytearray)):
        import base64
        return {"$ba" if isinstance(value, bytearray) else "$b": base64.b64encode(bytes(value)).decode("ascii")}
    if isinstance(value, complex):
        return {"$c": [value.real, value.imag]}
    import datetime, decimal, fractions
    if isinstance(value, decimal.Decimal):
        return {"$dec": str(value)}
    if isinstance(value, fractions.Fraction):
        return {"$fr": [_enc(value.numerator), _enc(value.denominator)]}
    if isinstance(value, datetime.datetime):
        return {"$dt": value.isoformat()}
    if isinstance(value, datetime.date):
        return {"$date": value.isoformat()}
    if isinstance(value, datetime.time):
        return {"$time": value.isoformat()}
    if isinstance(value, datetime.timedelta):
        return {"$td": [value.days, value.seconds, value.microseconds]}
    raise _Unsupported("a " + type(value).__name__)


def _dec(value):
    if isinstance(value, list):
        return [_dec(item) for item in value]
    if not isinstance(value, dict):
        return value
    if len(value) != 1:
        raise ValueError("a malformed value came through the tool's socket")
    ((tag, body),) = value.items()
    if tag == "$t":
        return tuple(_dec(item) for item in body)
    if tag == "$d":
        return {_dec(k): _dec(v) for k, v in body}
    if tag == "$s":
        return {_dec(item) for item in body}
    if tag == "$fs":
        return frozenset(_dec(item) for item in body)
    if tag == "$i":
        return int(body, 16)
    if tag in ("$b", "$ba"):
        import base64
        data = base64.b64decode(body)
        return bytearray(data) if tag == "$ba" else data
    if tag == "$c":
        return complex(body[0], body[1])
    import datetime, decimal, fractions
    if tag == "$dec":
        return decimal.Decimal(body)
    if tag == "$fr":
        return fractions.Fraction(_dec(body[0]), _dec(body[1]))
    if tag == "$dt":
        return datetime.datetime.fromisoformat(body)
    if tag == "$date":
        return datetime.date.fromisoformat(body)
    if tag == "$time":
        return datetime.time.fromisoformat(body)
    if tag == "$td":
        return datetime.timedelta(days=body[0], seconds=body[1], microseconds=body[2])
    raise ValueError("a malformed value came through the tool's socket")


def _frame_send(sock, message):
    import json
    data = json.dumps(message, ensure_ascii=True).encode("ascii")
    sock.sendall(len(data).to_bytes(4, "big") + data)


def _frame_recv(sock, limit=__FRAME_LIMIT__):
    import json

    def exact(size):
        data = bytearray()
        while len(data) < size:
            part = sock.recv(min(size - len(data), 1 << 20))
            if not part:
                return None
            data += part
        return bytes(data)

    header = exact(4)
    if header is None:
        return None
    size = int.from_bytes(header, "big")
    if size > limit:
        raise ValueError("a value of %d bytes came through the tool's socket, over the %d-byte limit" % (size, limit))
    body = exact(size)
    return None if body is None else json.loads(body)


def _exception_record(exc):
    import traceback
    kind = type(exc)
    try:
        message = str(exc)
    except BaseException:
        message = "<unprintable %s>" % kind.__name__
    try:
        args = _enc(tuple(exc.args))
    except BaseException:
        args = None
    try:
        text = "".join(traceback.format_exception(kind, exc, exc.__traceback__.tb_next if exc.__traceback__ else None))
    except BaseException:
        text = ""
    return {
        "type": str(kind.__name__), "module": str(kind.__module__), "message": message[:__MESSAGE__],
        "mro": [str(c.__name__) for c in kind.__mro__ if c.__module__ == "builtins"], "args": args,
        "traceback": text[-4000:],
    }


_MUTABLE = (list, dict, set, bytearray)


def _tool_answer(module, request):
    import inspect
    op, name = request.get("op"), str(request.get("name", ""))
    if op == "getattr":
        if not hasattr(module, name):
            return {"missing": True}
        value = getattr(module, name)
        if isinstance(value, type) and issubclass(value, BaseException):
            return {"exception": [str(c.__name__) for c in value.__mro__ if c.__module__ == "builtins"],
                    "doc": str(value.__doc__ or "")}
        if callable(value) and not isinstance(value, type):
            return {"function": True, "doc": str(getattr(value, "__doc__", "") or "")}
        try:
            return {"value": _enc(value)}
        except Exception:
            return {"unsupported": type(value).__name__}
    function = getattr(module, name, None)
    if not callable(function):
        return {"raise": _exception_record(AttributeError("tool.py has no function named %r" % name))}
    args = [_dec(item) for item in request["args"]]
    kwargs = {str(k): _dec(v) for k, v in request["kwargs"].items()}
    answer = {}
    try:
        result = function(*args, **kwargs)
        if inspect.iscoroutine(result):
            import asyncio
            result = asyncio.run(result)
    except BaseException as exc:
        answer["raise"] = _exception_record(exc)
    else:
        same = [i for i, arg in enumerate(args) if arg is result and isinstance(arg, _MUTABLE)]
        if same:
            answer["same_as"] = same[0]
        try:
            answer["return"] = _enc(result)
        except Exception as exc:
            answer["raise"] = _exception_record(TypeError(
                "tool.%s returned %s, which cannot be passed back to the tests: in the sandbox the tool runs in "
                "a process of its own and returns JSON-like values, tuples, sets, bytes, numbers and dates"
                % (name, exc if isinstance(exc, _Unsupported) else "a " + type(result).__name__)))
    after = {}  # arguments the tool changed in place, so the tests see the change
    for key, arg, sent in [("a%d" % i, a, s) for i, (a, s) in enumerate(zip(args, request["args"]))] + [
            ("k" + k, kwargs[k], request["kwargs"][k]) for k in kwargs]:
        if isinstance(arg, _MUTABLE):
            try:
                now = _enc(arg)
            except Exception:
                continue
            if now != sent:
                after[key] = now
    if after:
        answer["after"] = after
    return answer


def _serve_tool(sock, tool_dir):
    import os
    try:
        sys.path.insert(0, tool_dir)
        try:
            import tool
        except BaseException as exc:
            _frame_send(sock, {"import_error": _exception_record(exc)})
            return
        _frame_send(sock, {"ready": True})
        while True:
            request = _frame_recv(sock)
            if request is None:
                return
            answer = _tool_answer(tool, request)
            _flush()  # what the tool printed reaches the report even if this process is killed later
            _frame_send(sock, answer)
    except BaseException:
        pass
    finally:
        _flush()
        os._exit(0)


def _flush():
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except BaseException:
            pass


def _start_tool_process():
    import os, socket
    report_fd, tool_dir = int(sys.argv[1]), sys.argv.pop(2)  # argv: report fd, tool folder, pytest's args
    import ctypes
    if ctypes.CDLL(None).prctl(4, 0, 0, 0, 0) != 0:  # PR_SET_DUMPABLE 0: the tool process cannot ptrace us
        raise SystemExit("the test process could not make itself non-dumpable")
    ours, theirs = socket.socketpair()
    pid = os.fork()
    if pid == 0:
        ours.close()
        null = os.open(os.devnull, os.O_RDWR)
        os.dup2(null, 0)  # the reporter's key is still waiting on stdin: not for the tool
        os.close(null)
        os.close(report_fd)
        try:
            _sea_confine([tool_dir])
        except BaseException as exc:
            failure = RuntimeError("the sandbox could not confine the tool's process: %s" % exc)
            _frame_send(theirs, {"import_error": _exception_record(failure)})
            os._exit(0)
        _serve_tool(theirs, tool_dir)
    theirs.close()
    return ours


def _install_tool_channel(sock):
    import builtins, threading, types
    lock = threading.Lock()
    dead = []

    def request(message):
        with lock:
            if dead:
                raise RuntimeError(dead[0])
            try:
                if message is not None:
                    _frame_send(sock, message)
                answer = _frame_recv(sock)
            except (OSError, ValueError) as exc:
                answer, reason = None, str(exc)
            else:
                reason = ""
            if answer is None:
                dead.append("The tool's process has ended (it crashed, was killed, ran out of memory or exited)"
                            + (": " + reason if reason else "") + "; no later call can run.")
                raise RuntimeError(dead[0])
            return answer

    def builtin_exception(name):
        found = getattr(builtins, name, None)
        return found if isinstance(found, type) and issubclass(found, BaseException) else None

    def exception_class(name, bases, namespace, module="tool", doc=""):
        base = None
        for base_name in bases:
            local = namespace.get(base_name)
            if isinstance(local, type) and issubclass(local, BaseException):
                base = local
                break
            base = builtin_exception(base_name)
            if base is not None:
                break
        if base is None:
            return None
        return type(name, (base,), {"__module__": module, "__doc__": doc})

    def rebuild(namespace, info):
        name, module = str(info.get("type")), str(info.get("module"))
        message = str(info.get("message", ""))
        local = namespace.get(name)
        cls = None
        if module == "tool" and isinstance(local, type) and issubclass(local, BaseException):
            cls = local
        elif module == "builtins":
            cls = builtin_exception(name)
        if cls is None:
            cls = exception_class(name, list(info.get("mro") or []), {}, module) or Exception
        args = None
        if isinstance(cls, type) and issubclass(cls, (SystemExit, KeyboardInterrupt, GeneratorExit)):
            cls, message = RuntimeError, "the tool raised %s(%s)" % (name, message)
        else:
            try:
                args = _dec(info["args"]) if info.get("args") is not None else None
            except Exception:
                args = None
        try:
            exc = cls(*args) if isinstance(args, tuple) else cls(message)
        except Exception:
            exc = RuntimeError("the tool raised %s: %s" % (name, message))
        if info.get("traceback"):
            exc.add_note("Raised in the sandboxed tool process:\n" + str(info["traceback"]).rstrip())
        return exc

    def write_back(original, new):
        if isinstance(original, list) and isinstance(new, list):
            original[:] = new
        elif isinstance(original, dict) and isinstance(new, dict):
            original.clear()
            original.update(new)
        elif isinstance(original, set) and isinstance(new, (set, frozenset)):
            original.clear()
            original.update(new)
        elif isinstance(original, bytearray) and isinstance(new, (bytes, bytearray)):
            original[:] = new

    def call(namespace, name, args, kwargs):
        try:
            message = {"op": "call", "name": name, "args": [_enc(a) for a in args],
                       "kwargs": {str(k): _enc(v) for k, v in kwargs.items()}}
        except _Unsupported as exc:
            raise TypeError(
                "tool.%s() was given %s, which cannot reach the tool: in the sandbox it runs in a process of its "
                "own and takes JSON-like values, tuples, sets, bytes, numbers and dates" % (name, exc)) from None
        answer = request(message)
        for key, new in (answer.get("after") or {}).items():
            original = args[int(key[1:])] if key.startswith("a") else kwargs.get(key[1:])
            write_back(original, _dec(new))
        if "raise" in answer:
            raise rebuild(namespace, answer["raise"])
        if "same_as" in answer:
            return args[int(answer["same_as"])]
        return _dec(answer.get("return"))

    def function(namespace, name, doc):
        def tool_function(*args, **kwargs):
            return call(namespace, name, args, kwargs)
        tool_function.__name__ = tool_function.__qualname__ = name
        tool_function.__doc__ = doc or None
        tool_function.__module__ = "tool"
        return tool_function

    def bind(namespace, functions, classes):
        '''Called by the generated tool.py: its functions and exception classes, and a module __getattr__
        for everything else (constants come across by value).'''
        hello = request(None)
        if "import_error" in hello:
            info = hello["import_error"]
            raise ImportError("tool.py failed to import in the sandboxed tool process: %s: %s\n%s" % (
                info.get("type"), info.get("message"), info.get("traceback", "")))
        for name, bases, doc in classes:
            made = exception_class(name, bases, namespace, doc=doc)
            if made is not None:
                namespace[name] = made
        for name, doc in functions.items():
            namespace[name] = function(namespace, name, doc)

        def module_getattr(name):
            if name.startswith("__") and name.endswith("__"):
                raise AttributeError(name)
            answer = request({"op": "getattr", "name": name})
            if answer.get("missing"):
                raise AttributeError("module 'tool' has no attribute %r" % name)
            if "function" in answer:
                value = function(namespace, name, answer.get("doc", ""))
            elif "exception" in answer:
                value = exception_class(name, answer["exception"], {}, doc=answer.get("doc", ""))
            elif "value" in answer:
                return _dec(answer["value"])
            else:
                raise ImportError(
                    "tool.%s is a %s, which the tests cannot use: in the sandbox the tool runs in a process of its "
                    "own, and only its functions, exception classes and plain constants reach the tests"
                    % (name, answer.get("unsupported")))
            namespace[name] = value
            return value

        namespace["__getattr__"] = module_getattr

    channel = types.ModuleType("_sea_tool_channel")
    channel.bind = bind
    sys.modules["_sea_tool_channel"] = channel


_install_tool_channel(_start_tool_process())
""".replace("__FRAME_LIMIT__", str(TOOL_FRAME_LIMIT)).replace("__MESSAGE__", str(MESSAGE_CHARS))

# Runs in the pytest child: streams one signed JSON line per collection error, collected set, test phase and
# the session's end over a pipe. The pipe's fd (its first argument) is moved to a random high
# number and the HMAC key arrives on stdin, both before any test code runs and both kept only in a closure,
# so test code that writes blindly to every pipe cannot forge a record. The reporter also refuses pytest
# internals that were patched, and plugins that were not ours, to stop tests that rewrite their own reports.
TESTS_BOOTSTRAP = r"""
import sys


def _install_introspection_guard(fd, key):
    # An audit hook (it cannot be removed) that ends the process at the first attempt to reach the reporter
    # through the interpreter's back doors: the garbage collector's object lists, other threads' frames, trace
    # and profile hooks, ctypes (raw memory) and /proc/<pid>/mem. It sends a signed `tampered` record first,
    # so the verdict says why; everything it needs is bound now, before any test code can patch it.
    import hashlib, hmac, json, os
    exit_now, write, new_mac, dumps, sha256 = os._exit, os.write, hmac.new, json.dumps, hashlib.sha256
    blocked = frozenset({
        "gc.get_objects", "gc.get_referrers", "gc.get_referents", "sys._current_frames",
        "sys.settrace", "sys.setprofile", "sys.addaudithook",
    })

    def guard(event, args):
        if event in blocked or event.startswith("ctypes."):
            what = event
        elif event == "open" and args and "/mem" in str(args[0]) and str(args[0]).startswith("/proc"):
            what = "open " + str(args[0])
        else:
            return
        data = dumps({"kind": "tampered", "what": "the test process used " + what}).encode()
        try:
            write(fd, new_mac(key, data, sha256).hexdigest().encode() + b" " + data + b"\n")
        finally:
            exit_now(70)

    sys.addaudithook(guard)


def _make_reporter():
    import hashlib, hmac, json, os, random
    import _pytest.python, _pytest.reports, _pytest.runner

    key = os.read(0, 64)
    null = os.open(os.devnull, os.O_RDONLY)
    os.dup2(null, 0)
    os.close(null)
    fd = int(sys.argv.pop(1))
    import fcntl
    high = fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, random.randint(96, 200))
    os.close(fd)
    guarded = [
        (_pytest.reports.TestReport, "__init__"), (_pytest.reports.TestReport, "from_item_and_call"),
        (_pytest.reports.BaseReport, "passed"), (_pytest.reports.BaseReport, "failed"),
        (_pytest.runner, "call_and_report"), (_pytest.runner, "runtestprotocol"),
        (_pytest.runner, "call_runtest_hook"), (_pytest.runner, "pytest_runtest_makereport"),
        (_pytest.runner.CallInfo, "from_call"), (_pytest.python.Function, "runtest"),
        (_pytest.python, "pytest_pyfunc_call"),
    ]
    snapshot = [(owner, name, vars(owner).get(name)) for owner, name in guarded]
    _install_introspection_guard(high, key)

    def send(record):
        data = json.dumps(record).encode("utf-8", "replace")
        mac = hmac.new(key, data, hashlib.sha256).hexdigest().encode()
        try:
            os.write(high, mac + b" " + data + b"\n")
        except OSError:
            pass

    def trim(text, limit=__LIMIT__):
        text = str(text)
        if len(text) <= limit:
            return text
        head = limit // 4
        return text[:head] + "\n[... trimmed ...]\n" + text[-(limit - head):]

    def module_of(plugin):
        if type(plugin).__name__ == "module":
            return str(plugin.__name__)
        return str(getattr(plugin, "__module__", None) or type(plugin).__module__)

    def foreign_plugins(config):
        return sorted(
            str(name)
            for name, plugin in config.pluginmanager.list_name_plugin()
            if plugin is not None and not module_of(plugin).startswith(("_pytest", "pytest", "__main__"))
        )

    def check(config):
        patched = [f"{getattr(o, '__name__', o)}.{n}" for o, n, v in snapshot if vars(o).get(n) is not v]
        if patched:
            send({"kind": "tampered", "what": "patched pytest internals: " + ", ".join(patched)})
        plugins = foreign_plugins(config)
        if plugins:
            send({"kind": "tampered", "what": "registered pytest plugins: " + ", ".join(plugins)})

    class SeaReporter:
        def pytest_collectreport(self, report):
            if report.failed:
                send({"kind": "collect_error", "nodeid": report.nodeid, "message": trim(report.longreprtext)})

        def pytest_collection_finish(self, session):
            check(session.config)
            send({"kind": "collected", "items": [item.nodeid for item in session.items],
                  "plugins": foreign_plugins(session.config)})

        def pytest_runtest_logreport(self, report):
            check(report_config[0])
            message = ""
            if report.failed:
                message = report.longreprtext
            elif report.skipped:
                longrepr = report.longrepr
                message = longrepr[2] if isinstance(longrepr, tuple) and len(longrepr) == 3 else str(longrepr)
                if hasattr(report, "wasxfail"):
                    message = "xfail: " + str(report.wasxfail or message)
            send({
                "kind": "phase", "nodeid": report.nodeid, "when": report.when, "outcome": report.outcome,
                "message": trim(message), "duration": float(report.duration),
            })

        def pytest_configure(self, config):
            report_config[0] = config

        def pytest_sessionfinish(self, session, exitstatus):
            check(session.config)
            send({"kind": "finished", "exitstatus": int(exitstatus)})

    report_config = [None]
    return SeaReporter()


import pytest

_reporter = _make_reporter()  # takes the report fd off argv first
sys.exit(pytest.main(sys.argv[1:], plugins=[_reporter]))
""".replace("__LIMIT__", str(MESSAGE_CHARS)).replace("__DEPTH__", str(MAX_JSON_DEPTH))
TESTS_BOOTSTRAP = CONFINE_BOOTSTRAP + TOOL_PROCESS_BOOTSTRAP + TESTS_BOOTSTRAP

# Runs in the call child: imports tool.py, calls the function with the JSON kwargs and writes one JSON
# object (the result or a structured error) to the fd named by its first argument.
CALL_BOOTSTRAP = r"""
import json, os, sys
_fd = int(sys.argv.pop(1))
_chan = os.fdopen(_fd, "wb")
job_dir, function_name, kwargs_path, limit = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])


def _finish(record):
    try:
        _chan.write(record if isinstance(record, bytes) else json.dumps(record).encode("utf-8", "replace"))
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
def _too_deep(value, limit=__DEPTH__):
    stack = [(value, 0)]  # counted without recursion: the result may nest far deeper than the stack allows
    while stack:
        item, depth = stack.pop()
        if isinstance(item, (list, tuple, dict)):
            if depth >= limit:
                return True
            stack.extend((child, depth + 1) for child in (item.values() if isinstance(item, dict) else item))
    return False


if _too_deep(result):
    _error("ResultNotJSON", "The result nests more than __DEPTH__ levels of lists and objects, the most the sandbox "
           "accepts.")
try:
    data = json.dumps({"ok": True, "result": result}, allow_nan=False, ensure_ascii=False).encode("utf-8")
except BaseException as exc:  # including strings that are not valid Unicode (lone surrogates)
    _error("ResultNotJSON", "the result (a %s) is not JSON-serialisable: %s" % (type(result).__name__, exc))
if len(data) > limit:
    _error("ResultTooLarge", "the JSON result is %d bytes, over the %d-byte limit" % (len(data), limit))
_finish(data)
""".replace("__LIMIT__", str(MESSAGE_CHARS)).replace("__DEPTH__", str(MAX_JSON_DEPTH))


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

    def __init__(self, code: str, args: list[str], env: dict[str, str], cwd: str, fds: tuple[int, int, int, int],
) -> None:
        import subprocess

        out_w, err_w, chan_w, stdin_r = fds
        self._subprocess = subprocess
        self.proc = subprocess.Popen(
            [sys.executable, "-I", "-B", "-c", code, str(chan_w), *args], cwd=cwd, env=env,
            stdin=stdin_r, stdout=out_w, stderr=err_w, pass_fds=(chan_w,), start_new_session=True,
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
                 fds: tuple[int, int, int, int]) -> None:
        self.conn = conn
        self.returncode: int | None = None
        request = {"code": code, "args": [str(ZYGOTE_CHANNEL_FD), *args], "env": env, "cwd": cwd}
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


def run_child(
    code: str, args: list[str], env: dict[str, str], cwd: str, timeout_s: float,
    output_cap: int, channel_cap: int, zygote: socket.socket | None, stdin_data: bytes = b"",
) -> ChildRun:
    """Run the untrusted child with capped pipes and a wall clock; kill its process group at the deadline."""
    run = ChildRun()
    out_r, out_w = os.pipe()
    err_r, err_w = os.pipe()
    chan_r, chan_w = os.pipe()
    oom_before = oom_kill_count()
    fail_before = memory_failcnt()
    started = time.monotonic()
    stdin_r, stdin_w = os.pipe()
    os.write(stdin_w, stdin_data)  # a few bytes: they fit in the pipe's buffer
    os.close(stdin_w)
    fds = (out_w, err_w, chan_w, stdin_r)
    try:
        child: PopenChild | ZygoteChild | None = None
        if zygote is not None:
            try:
                child = ZygoteChild(zygote, code, args, env, cwd, fds)
            except (OSError, ValueError, KeyError):
                child = None  # the zygote is gone: a plain interpreter does the same job, only slower
        if child is None:
            child = PopenChild(code, args, env, cwd, fds)
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
    # The tests import a stand-in tool.py; the real one is imported only by the tool's own process.
    write_file(os.path.join(job_dir, TOOL_FILE), tool_stand_in(tool_code))
    tool_dir = os.path.join(private_dir, TOOL_DIR)
    os.mkdir(tool_dir, 0o700)
    write_file(os.path.join(tool_dir, TOOL_FILE), tool_code)
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
    key = os.urandom(32)  # signs the reporter's records; reaches the child on its stdin only
    run = run_child(
        TESTS_BOOTSTRAP, [tool_dir, *args], env, job_dir, timeout_s, int(job["output_bytes"]), CHANNEL_CAP,
        zygote, stdin_data=key,
    )
    report["stdout"] = decode(run.stdout, run.stdout_truncated)
    report["stderr"] = decode(run.stderr, run.stderr_truncated)
    report.update(judge_tests(run, expected, timeout_s, int(job.get("memory_mb", 0)), key))
    return report


def tool_stand_in(tool_code: str) -> str:
    """The tool.py the tests import: its top-level functions and exception classes, found with `ast`, each a
    stand-in that asks the tool's own process (TOOL_PROCESS_BOOTSTRAP); other names are fetched on use."""
    functions: dict[str, str] = {}
    classes: list[tuple[str, list[str], str]] = []
    for node in ast.parse(tool_code).body:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            functions[node.name] = ast.get_docstring(node) or ""
        elif isinstance(node, ast.ClassDef):
            bases = [b.id if isinstance(b, ast.Name) else b.attr if isinstance(b, ast.Attribute) else "" for b in
                     node.bases]
            classes.append((node.name, bases, ast.get_docstring(node) or ""))
    return (
        '"""tool.py as the tests see it: the tool itself runs in a process of its own (sea sandbox)."""\n'
        "import _sea_tool_channel\n\n"
        f"_sea_tool_channel.bind(globals(), {functions!r}, {classes!r})\n"
        "del _sea_tool_channel\n"
    )


def parse_records(channel: bytes | bytearray, key: bytes | None) -> tuple[list[dict], int]:
    """The reporter's JSON lines whose HMAC checks out, and how many lines did not (forgeries, or a line
    torn by a kill)."""
    import hashlib
    import hmac

    records = []
    rejected = 0
    for line in bytes(channel).split(b"\n"):
        if not line.strip():
            continue
        mac, _, data = line.partition(b" ")
        if key is not None:
            expected = hmac.new(key, data, hashlib.sha256).hexdigest().encode()
            if not hmac.compare_digest(mac, expected):
                rejected += 1
                continue
        try:
            record = json.loads(data)
        except ValueError:
            rejected += 1
            continue
        if isinstance(record, dict):
            records.append(record)
    return records, rejected


def judge_tests(run: ChildRun, expected: list[str], timeout_s: float, memory_mb: int, key: bytes) -> dict:
    """Turn the reporter's records and the child's fate into per-test results, totals and a verdict."""
    records, rejected = parse_records(run.channel, key)
    tampered = [str(r.get("what", "")) for r in records if r.get("kind") == "tampered"]
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
    # Every expected test must be in pytest's own collected set and have a complete report.
    collected_keys = {function_key(nodeid) for nodeid in collected or []}
    reported_keys = {function_key(t["name"]) for t in tests}
    missing = [name for name in expected if name not in reported_keys or name not in collected_keys]
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
    if tampered:
        return verdict("error", f"The test code tampered with pytest ({tampered[0]}), so no result is trusted.")
    if rejected and finished is not None:
        return verdict("error", f"{rejected} forged or damaged report records arrived, so no result is trusted.")
    if collected is None:
        return verdict(
            "error",
            f"pytest never reported what it collected: the test process {describe_exit(run.returncode)} "
            "during collection, or the report channel was tampered with.",
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
        CALL_BOOTSTRAP, args, child_env({}), job_dir, timeout_s, int(job["output_bytes"]),
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
    except (ValueError, RecursionError):
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


def elapsed_ms(since: float) -> float:
    """Milliseconds since a monotonic instant (the runner's own share of a job, for diagnostics)."""
    return round((time.monotonic() - since) * 1000.0, 1)


def emit(nonce: str, body: dict) -> None:
    """The runner's one line of output: the envelope the host checks."""
    line = nonce + " " + json.dumps(body, ensure_ascii=True) + "\n"
    sys.stdout.buffer.write(line.encode("ascii"))
    sys.stdout.buffer.flush()


def read_job() -> bytes:
    """The job from stdin: one line with its length in bytes, then the JSON itself."""
    stdin = sys.stdin.buffer
    header = stdin.readline(32)
    size = int(header.strip() or b"-1")
    if not 0 <= size <= MAX_JOB_BYTES:
        raise ValueError(f"bad job length {header!r}")
    data = stdin.read(size)
    if len(data) != size:
        raise ValueError("the job ended early")
    return data


def main(argv: list[str]) -> int:
    """Start (with a zygote if asked), say ready, read one job from stdin, run it, print the envelope."""
    undumpable = make_undumpable()
    # The zygote imports pytest before we say ready, so the pool only hands out containers that are warm.
    zygote = Zygote().wait_ready(ZYGOTE_READY_TIMEOUT_S) if "--preload" in argv else None
    sys.stdout.buffer.write(READY_LINE + b"\n")
    sys.stdout.buffer.flush()
    raw = read_job()
    received = time.monotonic()
    devnull = os.open(os.devnull, os.O_RDONLY)
    os.dup2(devnull, 0)  # nothing more is read from the host
    os.close(devnull)
    os.umask(0o077)
    job = json.loads(raw)
    nonce = str(job["nonce"])
    del raw
    try:
        if not undumpable:
            emit(nonce, {"kind": "runner_error", "message": "The runner could not make itself non-dumpable."})
            return 1
        if landlock_abi() < 1:
            emit(nonce, {"kind": "runner_error", "message": LANDLOCK_MISSING})
            return 1
        job_name = str(job["job"])
        if not job_name.replace("-", "").isalnum():
            raise ValueError(f"bad job name {job_name!r}")
        job_dir = os.path.join(SANDBOX_ROOT, job_name)
        os.mkdir(job_dir, 0o700)
        private_dir = os.path.join("/tmp", f"sea-runner-{job_name}")
        os.mkdir(private_dir, 0o700)
        if job["mode"] == "tests":
            report = run_tests(job, job_dir, private_dir, zygote)
            emit(nonce, {"kind": "tests", "report": report, "runner_ms": elapsed_ms(received)})
        elif job["mode"] == "call":
            result = run_call(job, job_dir, private_dir, zygote)
            emit(nonce, {"kind": "call", "result": result, "runner_ms": elapsed_ms(received)})
        else:
            raise ValueError(f"unknown mode {job['mode']!r}")
    except Exception as exc:  # the runner's own failure, reported through the envelope
        import traceback

        emit(nonce, {"kind": "runner_error", "message": trim(f"{exc!r}\n{traceback.format_exc()}")})
        return 1
    return 0


# Imported by the zygote before any job arrives, so a job's child starts with them loaded (plus pytest's
# built-in plugins). Not hypothesis: it would add about a third to every container's start-up cost for the
# few test files that use it.
WARM_MODULES = ("pytest", "inspect", "json", "traceback")


def own_source() -> str:
    """This program's source, as the host passed it after `-c` (to start the zygote from the same text)."""
    with open("/proc/self/cmdline", "rb") as handle:
        argv = handle.read().split(b"\0")
    return argv[argv.index(b"-c") + 1].decode("utf-8")


class Zygote:
    """The zygote: a fresh interpreter running this same source with `<fd> zygote` as its arguments, stdio on
    /dev/null (it never holds the container's stdin or stdout), started before any job (and so any nonce)
    exists. It says "ready" over a SOCK_SEQPACKET pair once its imports are done."""

    def __init__(self) -> None:
        import subprocess

        self.sock: socket.socket | None = None
        self.ready = False
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        try:
            self.proc: subprocess.Popen[bytes] | None = subprocess.Popen(
                [sys.executable, "-I", "-B", "-c", own_source(), str(theirs.fileno()), "zygote"],
                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                pass_fds=(theirs.fileno(),), close_fds=True,
            )
        except (OSError, ValueError):
            self.proc = None
            ours.close()
        else:
            self.sock = ours
        finally:
            theirs.close()

    def wait_ready(self, timeout_s: float) -> socket.socket | None:
        """Our end of the pair once the zygote is ready (waiting up to `timeout_s`); None if it is not, in
        which case it is killed so its imports stop competing with the job."""
        if self.sock is not None and not self.ready:
            self.sock.settimeout(max(0.0, timeout_s))
            try:
                self.ready = self.sock.recv(64) == b"ready"
            except OSError:
                self.ready = False
            self.sock.settimeout(None)
        if self.ready:
            return self.sock
        if self.proc is not None:
            with contextlib.suppress(OSError):
                self.proc.kill()
        return None


def zygote_main(conn: socket.socket) -> None:
    """The zygote: import the heavy modules, then fork exactly one job's child and report how it ended.

    It never holds the container's stdin or stdout (only /dev/null), so neither it nor the child it forks can
    read the job or write to the host."""
    import builtins
    import gc
    import importlib
    import types

    make_undumpable()  # the jobs' children it forks make themselves dumpable again
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
    conn.send(b"ready")
    try:
        message, fds, _, _ = socket.recv_fds(conn, 1 << 20, 4)
        request = json.loads(message) if message else None
    except (OSError, ValueError):
        return
    if request is None or len(fds) != 4:
        return
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


def zygote_child(request: dict, fds: list[int], builtins: object, types: object) -> None:
    """In the forked child: become a fresh process for the untrusted code, run it like `python -c`, exit."""
    code = 1
    try:
        os.setsid()
        with contextlib.suppress(Exception):
            import ctypes

            ctypes.CDLL(None).prctl(4, 1, 0, 0, 0)  # dumpable again: the child is an ordinary process
        out_w, err_w, chan_w, stdin_r = fds
        os.dup2(stdin_r, 0)
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
    if sys.argv[-1:] == ["zygote"]:
        zygote_main(socket.socket(fileno=int(sys.argv[-2])))
        sys.exit(0)
    sys.exit(main(sys.argv[1:]))
