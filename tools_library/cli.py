"""`python -m tools_library`: list, show, search, version and pack the tool library from a shell.

Exit codes: 0 success, 1 a failure of the machine (sandbox unavailable, tests failing, busy library),
2 bad input (unknown tool or version, bad name, refused pack). Errors are one line on stderr.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Callable, Sequence
from typing import Any

from sea.settings import get_settings
from tools_library.library import InvalidToolError, ToolLibrary
from tools_library.models import ToolManifest, ToolNameError, validate_tool_name
from tools_library.packs import PackError, PackReport
from tools_library.store import ToolLibraryError, ToolNotFoundError

log = logging.getLogger("tools_library.cli")

# Commands that only read files: they skip loading the embedding model and checking the index.
_READ_ONLY = {"list", "show", "versions", "diff", "export"}


def _positive_int(text: str) -> int:
    """A version number: a whole number from 1."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a version number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not a version number (versions start at 1)")
    return value


def _count(text: str) -> int:
    """A number of hits: a whole number from 1."""
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of hits (a whole number from 1)")
    return value


class _Parser(argparse.ArgumentParser):
    """argparse with one-line errors (no usage block) and exit code 2."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(2, f"error: {message} (see `{self.prog} --help`).\n")


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of `python -m tools_library` (its subcommands' parsers share its class)."""
    parser = _Parser(prog="python -m tools_library", description="Manage the tool library.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def command(name: str, help_text: str, json_flag: bool = True) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=help_text, description=help_text)
        if json_flag:
            p.add_argument("--json", action="store_true", help="print JSON for scripts")
        return p

    p = command("list", "List the tools (their active versions).")
    p.add_argument("--all", action="store_true", help="include retired tools")
    p = command("show", "Show a tool: card, provenance, verification, usage, code and tests.")
    p.add_argument("name")
    p.add_argument("--version", type=_positive_int, help="a version (default: the active one)")
    p.add_argument("--verify", action="store_true", help="run its tests against its code in the sandbox")
    p = command("search", "Search the active tools (hybrid dense + BM25).")
    p.add_argument("query")
    p.add_argument("-k", type=_count, default=None, help="number of hits (default SEA_RETRIEVE_K)")
    p = command("versions", "List every version of a tool.")
    p.add_argument("name")
    p = command("rollback", "Make a stored version the active one (also un-retires).")
    p.add_argument("name")
    p.add_argument("version", type=_positive_int)
    p = command("retire", "Take a tool out of search; rollback brings it back.")
    p.add_argument("name")
    p = command("diff", "Unified diff of two versions (signature, description, code, tests).", json_flag=False)
    p.add_argument("name")
    p.add_argument("a", type=_positive_int)
    p.add_argument("b", type=_positive_int)
    p = command("export", "Write tools (default: all active) to a pack file.")
    p.add_argument("file")
    p.add_argument("names", nargs="*", metavar="NAME")
    p = command("import", "Import a pack: every tool is re-verified in the sandbox first.")
    p.add_argument("file")
    command("reindex", "Rebuild the search index from the files.")
    command("seed", "Install the starter tools, each verified in the sandbox.")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command; return the exit code."""
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    for handler in logging.getLogger().handlers:  # bm25s sets its own logger to DEBUG when imported
        handler.setLevel(logging.WARNING)
    args = build_parser().parse_args(argv)
    try:
        from sandbox import SandboxError
    except ImportError:  # the sandbox package is optional for read-only commands
        SandboxError = ()  # type: ignore[assignment]
    try:
        # Bad names fail fast, before the embedding model and the index are loaded.
        for name in [getattr(args, "name", None), *(getattr(args, "names", None) or [])]:
            if name is not None:
                validate_tool_name(name)
        if args.command == "search":  # an over-long query, too, is refused before anything heavy is loaded
            from tools_library.retrieval import request_too_long

            if refusal := request_too_long(args.query, get_settings().max_request_chars):
                return _fail(refusal, 2)
        library = ToolLibrary.open(sync_index=args.command not in _READ_ONLY)
        try:
            return _COMMANDS[args.command](library, args)
        finally:
            library.close(close_sandbox=True)  # stop the warm containers a command may have started
    except (ToolNameError, ToolNotFoundError, PackError, InvalidToolError) as exc:
        return _fail(str(exc), 2)
    except ToolLibraryError as exc:
        return _fail(str(exc), 1)
    except SandboxError as exc:  # type: ignore[misc]
        return _fail(str(exc), 1)
    except KeyboardInterrupt:
        return _fail("interrupted", 130)
    except Exception as exc:  # a user sees one line; the traceback goes to the debug log
        log.debug("unexpected failure", exc_info=True)
        return _fail(f"{type(exc).__name__}: {exc}", 1)


def _fail(message: str, code: int) -> int:
    print(f"error: {message}", file=sys.stderr)
    return code


def _print_json(value: Any) -> None:
    print(json.dumps(value, indent=2, default=str))


def _summary(m: ToolManifest) -> dict[str, Any]:
    return {
        "name": m.name,
        "version": m.version,
        "status": m.status,
        "signature": m.signature,
        "description": m.description,
        "usage": m.usage.model_dump(mode="json"),
    }


def _cmd_list(lib: ToolLibrary, args: argparse.Namespace) -> int:
    tools = lib.list_tools(include_retired=args.all)
    if args.json:
        _print_json([_summary(m) for m in tools])
        return 0
    if not tools:
        print("The library is empty. `python -m tools_library seed` installs the starter tools.")
        return 0
    width = max(len(m.name) for m in tools)
    for m in tools:
        flag = "" if m.status == "active" else "  [retired]"
        print(f"{m.name:<{width}}  v{m.version:<3} {m.signature}{flag}")
    return 0


def _cmd_show(lib: ToolLibrary, args: argparse.Namespace) -> int:
    manifest = lib.store.read(args.name, args.version)
    report = lib.verify(args.name, manifest.version) if args.verify else None
    folder = lib.store.version_path(manifest.name, manifest.version)
    if args.json:
        data = manifest.model_dump(mode="json")
        data["folder"] = str(folder)
        if report is not None:
            data["verify"] = report.model_dump(mode="json")
        _print_json(data)
    else:
        versions = lib.store.version_numbers(manifest.name)
        state = "active" if manifest.status == "active" else "RETIRED (rollback brings it back)"
        if not manifest.current:
            state = "not the active version"
        prov = manifest.provenance
        ver = manifest.verification
        print(f"{manifest.name}  v{manifest.version} of {len(versions)}  {state}")
        print(manifest.signature)
        print(manifest.description)
        print(f"source: {prov.source}   model: {prov.model_id or '-'}   created: {prov.created_at:%Y-%m-%d %H:%M} UTC")
        print(f"request: {prov.request}")
        print(f"sandbox image: {prov.sandbox_image_id or '-'}   code sha256: {prov.code_sha256[:16]}…")
        by = "the library's own sandbox run" if ver.get("verified_by") == "library" else "a report from the caller"
        print(f"verification: {ver.get('verdict', '-')} ({ver.get('passed', 0)} passed, {ver.get('failed', 0)} failed)"
              f" by {by} at registration")
        usage = manifest.usage
        last = f"{usage.last_used:%Y-%m-%d %H:%M} UTC" if usage.last_used else "never"
        print(f"usage: {usage.calls} calls, {usage.failures} failures, last used {last}")
        print(f"folder: {folder}   (pytest there runs its tests)")
        print(f"--- tool.py ---\n{manifest.code.rstrip()}\n--- test_tool.py ---\n{manifest.tests.rstrip()}")
        if report is not None:
            print(f"verify in sandbox: {report.verdict} ({report.passed} passed, {report.failed} failed, "
                  f"{report.errors} errors) {report.message}".rstrip())
    return 0 if report is None or report.verdict == "passed" else 1


def _cmd_search(lib: ToolLibrary, args: argparse.Namespace) -> int:
    from tools_library.retrieval import SearchQueryError

    try:
        hits = lib.search(args.query, k=args.k)
    except SearchQueryError as exc:  # empty, over SEA_MAX_REQUEST_CHARS, or a bad k: bad input
        return _fail(str(exc), 2)
    decision = lib.reuse_decision(hits)
    if args.json:
        _print_json({"hits": [h.model_dump(mode="json") for h in hits], "decision": decision.model_dump(mode="json")})
        return 0
    if not hits:
        print("No tools match.")
    for hit in hits:
        print(f"{hit.rank}. {hit.name}  v{hit.version}  score {hit.score:.3f}  {hit.signature}")
    choice = decision.choice or "none (create a tool)"
    print(f"reuse: {choice}  confidence {decision.confidence:.2f}  above floor: {decision.above_floor}")
    return 0


def _cmd_versions(lib: ToolLibrary, args: argparse.Namespace) -> int:
    versions = lib.versions(args.name)
    if args.json:
        _print_json([{**_summary(m), "current": m.current, "created_at": m.provenance.created_at.isoformat(),
                      "source": m.provenance.source} for m in versions])
        return 0
    for m in versions:
        mark = "*" if m.current else " "
        status = " (retired)" if m.current and m.status == "retired" else ""
        print(f"{mark} v{m.version:<3} {m.provenance.created_at:%Y-%m-%d %H:%M}  {m.provenance.source:<11} "
              f"{m.signature}{status}")
    return 0


def _cmd_rollback(lib: ToolLibrary, args: argparse.Namespace) -> int:
    manifest = lib.rollback(args.name, args.version)
    if args.json:
        _print_json(_summary(manifest))
    else:
        print(f"{manifest.name} is now at version {manifest.version}.")
    return 0


def _cmd_retire(lib: ToolLibrary, args: argparse.Namespace) -> int:
    manifest = lib.retire(args.name)
    if args.json:
        _print_json(_summary(manifest))
    else:
        print(f"{manifest.name} is retired (rollback {manifest.name} {manifest.version} brings it back).")
    return 0


def _cmd_diff(lib: ToolLibrary, args: argparse.Namespace) -> int:
    text = lib.diff(args.name, args.a, args.b)
    print(text.rstrip() if text else f"Versions {args.a} and {args.b} of {args.name} are identical.")
    return 0


def _cmd_export(lib: ToolLibrary, args: argparse.Namespace) -> int:
    manifests = lib.export_pack(args.file, args.names or None)
    if args.json:
        _print_json({"file": args.file, "tools": [{"name": m.name, "version": m.version} for m in manifests]})
    else:
        print(f"Exported {len(manifests)} tool(s) to {args.file}: " + ", ".join(f"{m.name} v{m.version}"
                                                                            for m in manifests))
    return 0


def _print_report(report: PackReport, as_json: bool) -> int:
    if as_json:
        _print_json(report.model_dump(mode="json"))
    else:
        for r in report.results:
            version = f" v{r.version}" if r.version else ""
            reason = f": {r.reason}" if r.reason else ""
            print(f"{r.outcome:<9} {r.name}{version}{reason}")
    return 1 if report.refused else 0


def _cmd_import(lib: ToolLibrary, args: argparse.Namespace) -> int:
    return _print_report(lib.import_pack(args.file), args.json)


def _cmd_seed(lib: ToolLibrary, args: argparse.Namespace) -> int:
    return _print_report(lib.seed(), args.json)


def _cmd_reindex(lib: ToolLibrary, args: argparse.Namespace) -> int:
    count = lib.reindex()
    if args.json:
        _print_json({"indexed": count})
    else:
        print(f"Index rebuilt: {count} active tool(s).")
    return 0


_COMMANDS: dict[str, Callable[[ToolLibrary, argparse.Namespace], int]] = {
    "list": _cmd_list,
    "show": _cmd_show,
    "search": _cmd_search,
    "versions": _cmd_versions,
    "rollback": _cmd_rollback,
    "retire": _cmd_retire,
    "diff": _cmd_diff,
    "export": _cmd_export,
    "import": _cmd_import,
    "reindex": _cmd_reindex,
    "seed": _cmd_seed,
}
