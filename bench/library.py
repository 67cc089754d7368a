"""Tool-library figures: register, get, record_usage, open and reindex, and the cost of verifying at
registration, in a temporary SEA_HOME with the real sandbox.

    python -m bench.library [--tools 200] [--verify-runs 30] [--only storage|verify] [--json]

`register` runs every new version's tests in the sandbox itself, twice side by side (against a stub raising
NotImplementedError, and against the code), so the storage figures include two sandbox runs per new tool or
version (the default pool, SEA_SANDBOX_POOL_SIZE). The verification figures time `register` of a new tool into
a library of 50 tools with the pool ready (the settings' pool, default 2 warm containers, refilled untimed
before each run), with no pool (fresh containers, as SEA_SANDBOX_POOL_SIZE=0 or a drained pool pays), and one
sandbox run alone, so the library's own share is the difference.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from sandbox import Sandbox
from sea.settings import Settings
from tools_library.library import ToolLibrary
from tools_library.models import Provenance, ToolDraft

_WORDS = ["alpha", "bravo", "delta", "echo", "golf", "hotel", "india", "kilo", "lima", "oscar", "romeo", "tango"]


def _draft(i: int) -> ToolDraft:
    name = f"tool_{_WORDS[i % len(_WORDS)]}_{i}"
    # Same types for many tools (the twin check parses every active tool's signature), own parameter names.
    names = [f"{_WORDS[(i + j) % len(_WORDS)]}_{i}" for j in range(i % 4 + 1)]
    params = ", ".join(f"{n}: int" for n in names)
    args = ", ".join("1" for _ in names)
    # Four tests, as a synthesized tool has: the sandbox run is a realistic one.
    tests = f"from tool import {name}\n" + "".join(
        f"\n\ndef test_{k}():\n    assert {name}({args}) == {i}\n" for k in range(4)
    )
    return ToolDraft(
        name=name,
        signature=f"def {name}({params}) -> int",
        description=f"Compute the {_WORDS[i % len(_WORDS)]} score number {i} of some integers.",
        code=f"def {name}({params}) -> int:\n    return {i}\n",
        tests=tests,
        provenance=Provenance(request=f"bench {i}", source="benchmark"),
    )


def _percentiles(samples_ms: list[float]) -> dict[str, float]:
    ordered = sorted(samples_ms)
    return {
        "p50_ms": round(statistics.median(ordered), 2),
        "p95_ms": round(ordered[min(len(ordered) - 1, int(0.95 * len(ordered)))], 2),
        "n": len(ordered),
    }


def _timed(action: Callable[[], object]) -> float:
    start = time.perf_counter()
    action()
    return (time.perf_counter() - start) * 1000


def run(tools: int) -> dict[str, object]:
    """Build a library of `tools` tools (each verified in the sandbox as it is registered) and time its
    operations."""
    with tempfile.TemporaryDirectory(prefix="sea-bench-library-") as tmp:
        settings = Settings(home=Path(tmp))
        sandbox = Sandbox(settings)
        sandbox.warm_up(timeout_s=120)
        lib = ToolLibrary.open(settings, sandbox)
        drafts = [_draft(i) for i in range(tools)]
        register = [_timed(lambda d=d: lib.register(d)) for d in drafts]
        replay = [_timed(lambda d=d: lib.register(d)) for d in drafts[:50]]
        new_version = [
            _timed(lambda d=d: lib.register(d.model_copy(update={"code": d.code + "# v2\n"}))) for d in drafts[:50]
        ]
        files_only = [
            _timed(lambda d=d: lib.store.add_version(d.model_copy(update={"code": d.code + "# v3\n"})))
            for d in drafts[:50]
        ]
        get = [_timed(lambda d=d: lib.get(d.name)) for d in drafts]
        usage = [_timed(lambda d=d: lib.record_usage(d.name, 1, ok=True)) for d in drafts[:100]]
        lib.close(close_sandbox=True)
        open_ms = [_timed(lambda: ToolLibrary.open(settings).close()) for _ in range(5)]
        again = ToolLibrary.open(settings)
        reindex_ms = _timed(again.reindex)
        again.close()
    return {
        "tools": tools,
        "cpus": os.cpu_count(),
        "pool_size": settings.sandbox_pool_size,
        "register_new_tool": _percentiles(register),
        "register_replay_same_content": _percentiles(replay),
        "register_new_version": _percentiles(new_version),
        "store_add_version_files_only": _percentiles(files_only),
        "get_active_version": _percentiles(get),
        "record_usage": _percentiles(usage),
        "open_in_sync": _percentiles(open_ms),
        "reindex_ms": round(reindex_ms, 1),
    }


def run_verification(runs: int, library_tools: int = 50) -> dict[str, object]:
    """Time `register` of new tools (each verified in the sandbox) with the pool ready and with no pool."""
    with tempfile.TemporaryDirectory(prefix="sea-bench-verify-") as tmp:
        settings = Settings(home=Path(tmp))
        base = ToolLibrary.open(settings, sync_index=False)
        for i in range(library_tools):  # the library the new tools join (files only, untimed)
            base.store.add_version(_draft(i))
        base.sync_index()
        base.close()
        first = library_tools
        ready_drafts = [_draft(i) for i in range(first, first + runs)]
        alone_drafts = [_draft(i) for i in range(first + runs, first + 2 * runs)]
        fresh_drafts = [_draft(i) for i in range(first + 2 * runs, first + 3 * runs)]
        result: dict[str, object] = {"runs": runs, "library_tools": library_tools, "cpus": os.cpu_count()}

        # The settings' pool (default 2): register runs the tests against a stub and against the code side by
        # side, so with the pool ready both runs find a warm container.
        result["pool_size"] = settings.sandbox_pool_size
        with Sandbox(settings) as sandbox:
            lib = ToolLibrary.open(settings, sandbox)
            ready, alone = [], []
            for draft, probe in zip(ready_drafts, alone_drafts, strict=True):
                sandbox.warm_up(timeout_s=120)  # a warm container is waiting (untimed)
                ready.append(_timed(lambda d=draft: lib.register(d)))
                sandbox.warm_up(timeout_s=120)
                alone.append(_timed(lambda d=probe: _passed(sandbox.run_tests(d.code, d.tests))))
            lib.close()
        result["register_new_tool_pool_ready"] = _percentiles(ready)
        result["sandbox_run_tests_alone_pool_ready"] = _percentiles(alone)

        with Sandbox(settings, pool_size=0) as sandbox:
            lib = ToolLibrary.open(settings, sandbox)
            sandbox.warm_up(timeout_s=120)  # Docker client and image checked; no container is kept
            fresh = [_timed(lambda d=d: lib.register(d)) for d in fresh_drafts]
            replay_draft = ready_drafts[0]  # registered above: the same content again, no sandbox run
            replay = [_timed(lambda: lib.register(replay_draft)) for _ in range(runs)]
            lib.close()
        result["register_new_tool_no_pool"] = _percentiles(fresh)
        result["register_same_content_again"] = _percentiles(replay)
        return result


def _passed(report: object) -> None:
    if getattr(report, "verdict", None) != "passed":
        raise RuntimeError(f"the benchmark tool did not pass in the sandbox: {report!r}")


def _print(title: str, result: dict[str, object]) -> None:
    print(title)
    for key, value in result.items():
        if isinstance(value, dict):
            print(f"  {key:<36} p50 {value['p50_ms']:>8.2f} ms   p95 {value['p95_ms']:>8.2f} ms   n={value['n']}")
    if "reindex_ms" in result:
        print(f"  {'reindex (all tools)':<36} {result['reindex_ms']:>12.1f} ms")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.library", description=__doc__.splitlines()[0])
    parser.add_argument("--tools", type=int, default=200)
    parser.add_argument("--verify-runs", type=int, default=30, help="registrations per verification mode")
    parser.add_argument("--only", choices=("storage", "verify"), help="run one part only")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    if args.tools < 1 or args.verify_runs < 1:
        print("error: --tools and --verify-runs must be at least 1", file=sys.stderr)
        return 2
    results: dict[str, dict[str, object]] = {}
    if args.only in (None, "verify"):
        results["verification"] = run_verification(args.verify_runs)
    if args.only in (None, "storage"):
        results["storage"] = run(args.tools)
    if args.json:
        print(json.dumps(results, indent=2))
        return 0
    if "verification" in results:
        v = results["verification"]
        _print(f"verifying at registration: {v['runs']} runs per mode, a library of {v['library_tools']} tools, "
               f"{v['cpus']} CPUs", v)
    if "storage" in results:
        r = results["storage"]
        _print(f"tool library, {r['tools']} tools, {r['cpus']} CPUs, sandbox pool {r['pool_size']}", r)
    return 0


if __name__ == "__main__":
    sys.exit(main())
