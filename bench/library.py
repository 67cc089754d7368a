"""Tool-library storage figures: register, get, record_usage, open and reindex, in a temporary SEA_HOME.

    python -m bench.library [--tools 200] [--json]

Registration here skips the sandbox (drafts carry a passing report, as the graph's do): it measures the
library's own cost (fsynced files under the lock, the twin check, the index upsert with one embedding).
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

from sea.settings import Settings
from tools_library.library import ToolLibrary
from tools_library.models import Provenance, ToolDraft

_WORDS = ["alpha", "bravo", "delta", "echo", "golf", "hotel", "india", "kilo", "lima", "oscar", "romeo", "tango"]


def _draft(i: int) -> ToolDraft:
    name = f"tool_{_WORDS[i % len(_WORDS)]}_{i}"
    # Same types for many tools (the twin check parses every active tool's signature), own parameter names.
    params = ", ".join(f"{_WORDS[(i + j) % len(_WORDS)]}_{i}: int" for j in range(i % 4 + 1))
    return ToolDraft(
        name=name,
        signature=f"def {name}({params}) -> int",
        description=f"Compute the {_WORDS[i % len(_WORDS)]} score number {i} of some integers.",
        code=f"def {name}({params}) -> int:\n    return {i}\n",
        tests=f"from tool import {name}\n\n\ndef test_it():\n    assert callable({name})\n",
        verification={"verdict": "passed"},
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
    """Build a library of `tools` tools and time its operations."""
    with tempfile.TemporaryDirectory(prefix="sea-bench-library-") as tmp:
        settings = Settings(home=Path(tmp))
        lib = ToolLibrary.open(settings)
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
        lib.close()
        open_ms = [_timed(lambda: ToolLibrary.open(settings).close()) for _ in range(5)]
        again = ToolLibrary.open(settings)
        reindex_ms = _timed(again.reindex)
        again.close()
    return {
        "tools": tools,
        "cpus": os.cpu_count(),
        "register_new_tool": _percentiles(register),
        "register_replay_same_content": _percentiles(replay),
        "register_new_version": _percentiles(new_version),
        "store_add_version_files_only": _percentiles(files_only),
        "get_active_version": _percentiles(get),
        "record_usage": _percentiles(usage),
        "open_in_sync": _percentiles(open_ms),
        "reindex_ms": round(reindex_ms, 1),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.library", description=__doc__.splitlines()[0])
    parser.add_argument("--tools", type=int, default=200)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    if args.tools < 1:
        print("error: --tools must be at least 1", file=sys.stderr)
        return 2
    result = run(args.tools)
    if args.json:
        print(json.dumps(result, indent=2))
        return 0
    print(f"tool library, {result['tools']} tools, {result['cpus']} CPUs")
    for key, value in result.items():
        if isinstance(value, dict):
            print(f"  {key:<30} p50 {value['p50_ms']:>8.2f} ms   p95 {value['p95_ms']:>8.2f} ms   n={value['n']}")
    print(f"  {'reindex (all tools)':<30} {result['reindex_ms']:>12.1f} ms")
    return 0


if __name__ == "__main__":
    sys.exit(main())
