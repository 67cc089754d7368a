"""The tool runs in a process of its own during `run_tests` (real Docker, real image).

The tests import a stand-in tool.py whose functions pass their arguments to the tool's process and return
its result or raise its exception, so tool code can never reach pytest or the reporter in the test process.
These tests check both halves: hostile tool code cannot make wrong code pass, and ordinary tests see the
tool as if they had imported it (exceptions, mutation, identity, constants, the usual value types).
"""

from __future__ import annotations

import textwrap

import pytest

from sandbox import Sandbox
from sandbox.models import TestReport
from sandbox.runner import tool_stand_in

pytestmark = [pytest.mark.docker]


def _run(sandbox: Sandbox, tool: str, tests: str) -> TestReport:
    return sandbox.run_tests(textwrap.dedent(tool), textwrap.dedent(tests), timeout_s=30)


WRONG_IDENTITY_TESTS = """
    from tool import identity

    def test_number():
        assert identity(1) == 1

    def test_text():
        assert identity("a") == "a"
"""


def test_tool_code_stealing_the_reporter_key_cannot_pass_wrong_code(sandbox: Sandbox) -> None:
    report = _run(sandbox, """
        import gc, os, types

        def _forge():
            # what worked when the tool shared the test process: find the reporter's `send` and report passes
            for obj in gc.get_objects():
                if isinstance(obj, types.FunctionType) and obj.__closure__ and obj.__name__ == "send":
                    for name in ("test_number", "test_text"):
                        for when in ("setup", "call", "teardown"):
                            obj({"kind": "phase", "nodeid": f"test_tool.py::{name}", "when": when,
                                 "outcome": "passed", "message": "", "duration": 0.0})
                    obj({"kind": "finished", "exitstatus": 0})
                    os._exit(0)
            return "found nothing"

        FOUND = _forge()

        def identity(x):
            return None
    """, WRONG_IDENTITY_TESTS)
    assert report.verdict == "failed", report.message
    assert report.failed == 2


def test_tool_code_cannot_reach_the_test_process(sandbox: Sandbox) -> None:
    report = _run(sandbox, """
        import os

        def probe():
            parent = os.getppid()
            seen = {}
            for what in ("mem", "environ", "fd"):
                try:
                    if what == "fd":
                        os.listdir(f"/proc/{parent}/fd")
                    else:
                        with open(f"/proc/{parent}/{what}", "rb") as handle:
                            handle.read(1)
                    seen[what] = "open"
                except OSError as exc:
                    seen[what] = type(exc).__name__
            writable = []
            for fd in range(3, 256):  # the reporter's pipe must not be among this process's descriptors
                try:
                    os.fstat(fd)
                    writable.append(fd)
                except OSError:
                    pass
            return {"proc": seen, "fds": writable, "stdin": os.read(0, 64)}
    """, """
        from tool import probe

        def test_probe():
            found = probe()
            assert found["proc"] == {"mem": "PermissionError", "environ": "PermissionError",
                                     "fd": "PermissionError"}, found
            assert found["stdin"] == b"", "the reporter's key was readable on the tool's stdin"
            assert all(fd < 8 for fd in found["fds"]), found["fds"]
    """)
    assert report.verdict == "passed", report.message + "\n" + "\n".join(t.message for t in report.tests)


def test_tool_code_patching_pytest_changes_nothing(sandbox: Sandbox) -> None:
    report = _run(sandbox, """
        import _pytest.python, _pytest.reports

        _pytest.python.PyobjMixin.obj = property(lambda self: (lambda *a, **k: None), lambda self, value: None)
        _pytest.reports.BaseReport.failed = property(lambda self: False)

        def identity(x):
            return None
    """, WRONG_IDENTITY_TESTS)
    assert report.verdict == "failed", report.message
    assert report.failed == 2


def test_the_tests_see_the_tool_as_if_imported(sandbox: Sandbox) -> None:
    report = _run(sandbox, '''
        import datetime
        from decimal import Decimal
        from fractions import Fraction

        LIMIT = 10
        NAMES = ("a", "b")

        class InvalidInput(ValueError):
            """Raised for negative input."""

        def check(x):
            """Return x if it is positive."""
            if x < 0:
                raise InvalidInput(f"negative: {x}")
            if x == 0:
                raise KeyError("zero")
            return x

        def append_to(items, value):
            items.append(value)
            return items

        def everything(x):
            print("printed by the tool")
            return (x, {x: [x]}, {1, 2}, frozenset({3}), b"ab", bytearray(b"c"), datetime.date(2024, 1, 2),
                    datetime.datetime(2024, 1, 2, 3, 4, 5), datetime.timedelta(days=1, seconds=2), 1.5 + 2j,
                    10**40, -(10**40), Decimal("1.10"), Fraction(1, 3), float("inf"), -0.0, "\\u00e9\\ud800")

        def numbers():
            yield 1

        async def later(x):
            return x + 1

        def _private(x):
            return -x
    ''', '''
        import datetime, math
        from decimal import Decimal
        from fractions import Fraction

        import pytest

        import tool
        from tool import InvalidInput, LIMIT, _private, append_to, check, everything, later

        def test_exceptions_keep_their_type_and_message():
            with pytest.raises(InvalidInput, match="negative: -1") as info:
                check(-1)
            assert isinstance(info.value, ValueError)
            assert "Raised in the sandboxed tool process" in "".join(info.value.__notes__)
            with pytest.raises(KeyError) as missing:
                check(0)
            assert str(missing.value) == "'zero'"
            assert check.__doc__ == "Return x if it is positive." and check.__name__ == "check"

        def test_changes_to_arguments_and_identity_come_back():
            items = [1]
            assert append_to(items, 2) is items
            assert items == [1, 2]

        def test_values_of_the_usual_types_cross_intact():
            out = everything(3)
            assert out[:-3] == (3, {3: [3]}, {1, 2}, frozenset({3}), b"ab", bytearray(b"c"),
                                datetime.date(2024, 1, 2), datetime.datetime(2024, 1, 2, 3, 4, 5),
                                datetime.timedelta(days=1, seconds=2), 1.5 + 2j, 10**40, -(10**40),
                                Decimal("1.10"), Fraction(1, 3))
            assert math.isinf(out[-3]) and math.copysign(1.0, out[-2]) == -1.0 and out[-1] == "\\u00e9\\ud800"
            assert type(out[5]) is bytearray and type(out[3]) is frozenset

        def test_constants_private_names_and_coroutines():
            assert LIMIT == 10 and tool.NAMES == ("a", "b")
            assert _private(2) == -2
            assert later(1) == 2

        def test_what_cannot_cross_is_a_clear_type_error():
            with pytest.raises(TypeError, match="generator"):
                tool.numbers()
            with pytest.raises(TypeError, match="function"):
                append_to(lambda: 1, 2)
            with pytest.raises(AttributeError):
                tool.no_such_name
    ''')
    assert report.verdict == "passed", report.message + "\n" + "\n".join(t.message for t in report.tests)
    assert report.passed == 5
    assert "printed by the tool" in report.stdout


def test_a_tool_that_fails_to_import_is_a_collection_error(sandbox: Sandbox) -> None:
    report = _run(sandbox, """
        import no_such_module_anywhere

        def identity(x):
            return x
    """, WRONG_IDENTITY_TESTS)
    assert report.verdict == "error"
    assert "failed to import in the sandboxed tool process" in report.message
    assert "no_such_module_anywhere" in report.message


def test_a_crashing_tool_fails_its_tests_without_passing_the_rest(sandbox: Sandbox) -> None:
    report = _run(sandbox, """
        import os

        def identity(x):
            if x == "crash":
                os._exit(0)
            return x
    """, """
        from tool import identity

        def test_crash():
            assert identity("crash") == "crash"

        def test_after():
            assert identity(1) == 1
    """)
    assert report.verdict == "failed"
    assert report.failed == 2
    assert all("tool's process has ended" in t.message for t in report.tests)


def test_the_stand_in_lists_functions_and_exception_classes() -> None:
    text = tool_stand_in('class Oops(ValueError):\n    """Bad."""\n\ndef f(x):\n    """Doc."""\n    return x\n\n'
                         'async def g():\n    pass\n\nX = 1\n')
    assert "{'f': 'Doc.', 'g': ''}" in text
    assert "[('Oops', ['ValueError'], 'Bad.')]" in text
    compile(text, "tool.py", "exec")
