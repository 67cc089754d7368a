"""`python -m sandbox ...`: run tests, call a tool, build the image, sweep leftovers. Prints one JSON object.

Exit codes: 0 when the sandbox itself worked (whatever the verdict), 1 when the sandbox could not run
(Docker unreachable, image missing, pool exhausted, build failed), 2 for bad input.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

from sandbox.errors import SandboxError, SandboxUnavailableError
from sandbox.models import MAX_JSON_DEPTH, json_depth
from sea.settings import get_settings

if TYPE_CHECKING:
    from sandbox.service import Sandbox

EXIT_OK = 0
EXIT_SANDBOX = 1
EXIT_BAD_INPUT = 2


class BadInput(Exception):
    """A user mistake on the command line: one sentence, exit code 2."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:  # argparse would print usage text and exit 2 on stderr
        raise BadInput(f"{message} (see `python -m sandbox --help`)")


def build_parser() -> argparse.ArgumentParser:
    """The CLI's arguments."""
    parser = _Parser(prog="python -m sandbox", description="Run code in the hardened Docker sandbox.")
    commands = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    run_tests = commands.add_parser("run-tests", help="run test_tool.py against tool.py with pytest")
    run_tests.add_argument("--code", required=True, type=Path, help="the tool's source file")
    run_tests.add_argument("--tests", required=True, type=Path, help="the tests' source file")
    run_tests.add_argument("--timeout", type=float, default=None, help="wall clock in seconds")

    call = commands.add_parser("call", help="call one function of tool.py with JSON keyword arguments")
    call.add_argument("--code", required=True, type=Path, help="the tool's source file")
    call.add_argument("--function", required=True, help="the function to call")
    call.add_argument("--args", default="{}", help='keyword arguments as a JSON object, e.g. \'{"x": 1}\'')
    call.add_argument("--timeout", type=float, default=None, help="wall clock in seconds")

    janitor = commands.add_parser("janitor", help="remove leftover sandbox containers of dead processes")
    janitor.add_argument("--all", action="store_true", help="remove every sandbox container, even live ones")

    build = commands.add_parser("build-image", help="build the sandbox image if it is missing or outdated")
    build.add_argument("--force", action="store_true", help="rebuild even if the image is current")
    return parser


def _read_source(path: Path, what: str) -> str:
    from sandbox.service import MAX_SOURCE_BYTES

    try:
        size = path.stat().st_size
        if size > MAX_SOURCE_BYTES and path.is_file():  # refused before it is read into memory
            raise BadInput(
                f"The {what} file {path} is {size / 2**20:.1f} MiB, over the sandbox's limit of "
                f"{MAX_SOURCE_BYTES // 2**20} MiB per source file."
            )
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise BadInput(f"The {what} file {path} does not exist.") from None
    except IsADirectoryError:
        raise BadInput(f"The {what} file {path} is a directory.") from None
    except UnicodeDecodeError:
        raise BadInput(f"The {what} file {path} is not UTF-8 text.") from None
    except OSError as exc:
        raise BadInput(f"The {what} file {path} cannot be read: {exc.strerror}.") from None
    if "\x00" in text:
        line = text.count("\n", 0, text.index("\x00")) + 1
        raise BadInput(
            f"The {what} file {path} contains a NUL byte (line {line}), which Python source cannot contain."
        )
    return text


def _timeout(value: float | None) -> float | None:
    if value is not None and not 0 < value <= 3600:
        raise BadInput(f"--timeout must be between 0 and 3600 seconds, not {value:g}.")
    return value


def _parse_kwargs(text: str) -> dict[str, Any]:
    too_deep = BadInput(
        f"--args nests more than {MAX_JSON_DEPTH} levels of lists and objects, the most the sandbox accepts."
    )
    try:
        kwargs = json.loads(text)
    except RecursionError:
        raise too_deep from None
    except ValueError as exc:
        raise BadInput(f"--args is not valid JSON: {exc}.") from None
    if not isinstance(kwargs, dict):
        raise BadInput("--args must be a JSON object of keyword arguments, e.g. '{\"x\": 1}'.")
    if json_depth(kwargs) > MAX_JSON_DEPTH:
        raise too_deep
    return kwargs


def _one_shot_sandbox() -> Sandbox:
    """A sandbox without a warm pool: a one-job command would only pay for containers it never uses."""
    from sandbox.service import Sandbox

    return Sandbox(get_settings(), pool_size=0)


def cmd_run_tests(args: argparse.Namespace) -> tuple[dict[str, Any], int]:
    """Run the tests; the TestReport as JSON."""
    tool_code = _read_source(args.code, "code")
    test_code = _read_source(args.tests, "tests")
    timeout = _timeout(args.timeout)
    try:
        with _one_shot_sandbox() as sandbox:
            report = sandbox.run_tests(tool_code, test_code, timeout_s=timeout)
    except ValueError as exc:  # the API's own checks of its input (sizes, NUL bytes)
        raise BadInput(f"{str(exc).rstrip('.')}.") from None
    return report.model_dump(mode="json"), EXIT_OK


def cmd_call(args: argparse.Namespace) -> tuple[dict[str, Any], int]:
    """Call the function; `{"ok": true, "result": ...}` or `{"ok": false, "error": {...}}`."""
    tool_code = _read_source(args.code, "code")
    if not args.function.isidentifier():
        raise BadInput(f"--function must be a Python function name, not {args.function!r}.")
    kwargs = _parse_kwargs(args.args)
    timeout = _timeout(args.timeout)
    try:
        with _one_shot_sandbox() as sandbox:
            result = sandbox.call(tool_code, args.function, kwargs, timeout_s=timeout)
    except ValueError as exc:
        raise BadInput(f"{str(exc).rstrip('.')}.") from None
    return result.model_dump(mode="json", exclude_none=True), EXIT_OK


def cmd_janitor(args: argparse.Namespace) -> tuple[dict[str, Any], int]:
    """Remove leftover containers; how many."""
    from sandbox.container import connect, janitor

    removed = janitor(connect(), include_live=args.all)
    return {"ok": True, "removed": removed}, EXIT_OK


def cmd_build_image(args: argparse.Namespace) -> tuple[dict[str, Any], int]:
    """Build (or find) the image; its tag and id. Progress goes to stderr, the JSON to stdout."""
    from sandbox.image import ensure_image  # the image engineer's module; imported only when needed

    settings = get_settings()

    def progress(message: str) -> None:
        print(message, file=sys.stderr, flush=True)

    image_id = ensure_image(settings, force=args.force, progress=progress)
    return {"ok": True, "image": settings.sandbox_image, "image_id": image_id}, EXIT_OK


COMMANDS = {
    "run-tests": cmd_run_tests,
    "call": cmd_call,
    "janitor": cmd_janitor,
    "build-image": cmd_build_image,
}


def _failure(kind: str, message: str) -> dict[str, Any]:
    return {"ok": False, "error": {"type": kind, "message": message}}


def main(argv: list[str] | None = None) -> int:
    """Run one command and print its JSON; returns the exit code."""
    try:
        args = build_parser().parse_args(argv)
        body, code = COMMANDS[args.command](args)
    except BadInput as exc:
        body, code = _failure("BadInput", str(exc)), EXIT_BAD_INPUT
    except SandboxUnavailableError as exc:
        body, code = _failure("SandboxUnavailable", str(exc)), EXIT_SANDBOX
    except SandboxError as exc:
        body, code = _failure("SandboxError", str(exc)), EXIT_SANDBOX
    except KeyboardInterrupt:
        body, code = _failure("Interrupted", "Interrupted."), 130
    print(json.dumps(body, ensure_ascii=False))
    return code


if __name__ == "__main__":
    sys.exit(main())
