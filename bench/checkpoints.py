"""Checkpointing cost: a 10-step run per backend and durability mode, and reading a thread's history back.

    python -m bench.checkpoints [--runs 50] [--postgres-uri URI] [--json]

The graph is a chain of 10 nodes, each writing a value the size of the real graph's (a 2 kB test file, a 4 kB
test report), so the figures isolate what checkpointing adds; the real graph's steps are dominated by the
sandbox and the model. Figures: run wall time p50/p95 per durability mode (`exit` writes one checkpoint per
run, `async` writes each in the background, `sync` writes each before the next step), the per-step overhead of
`sync` over `exit`, `runs.history` (summaries of ~12 checkpoints) and `runs.list_threads` over every thread.
PostgreSQL is measured when --postgres-uri or SEA_TEST_POSTGRES_URI is set.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import statistics
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any, TypedDict

from langgraph.graph import END, START, StateGraph

from graph.checkpointing import open_checkpointer
from graph.runs import history, list_threads, thread_config
from sea.settings import Settings

STEPS = 10
MODES = ("exit", "async", "sync")


class BenchState(TypedDict, total=False):
    request: str
    step: int
    tests: str
    report: dict[str, Any]


def _node(index: int) -> Any:
    def step(state: BenchState) -> dict[str, Any]:
        return {
            "step": index,
            "tests": f"# step {index}\n" + "def test_x():\n    assert True\n" * 60,
            "report": {"verdict": "passed", "tests": [{"name": f"t{i}", "message": "x" * 100} for i in range(30)]},
        }

    step.__name__ = f"step_{index}"
    return step


def _graph(saver: Any) -> Any:
    builder = StateGraph(BenchState)
    names = [f"step_{i}" for i in range(STEPS)]
    for i, name in enumerate(names):
        builder.add_node(name, _node(i))
    builder.add_edge(START, names[0])
    for a, b in itertools.pairwise(names):
        builder.add_edge(a, b)
    builder.add_edge(names[-1], END)
    return builder.compile(checkpointer=saver)


def _percentiles(samples: list[float]) -> dict[str, float]:
    ordered = sorted(samples)
    p95 = ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]
    return {"p50_ms": round(statistics.median(ordered), 2), "p95_ms": round(p95, 2), "n": len(ordered)}


def bench_backend(settings: Settings, runs: int) -> dict[str, Any]:
    """Time runs per durability mode, then history and thread listing, on one backend."""
    out: dict[str, Any] = {}
    with open_checkpointer(settings) as saver:
        graph = _graph(saver)
        for _ in range(3):  # warm-up
            graph.invoke({"request": "warm"}, thread_config(uuid.uuid4().hex), durability="sync")
        threads: list[str] = []
        for mode in MODES:
            samples = []
            for _ in range(runs):
                thread_id = uuid.uuid4().hex
                threads.append(thread_id)
                start = time.perf_counter()
                graph.invoke({"request": "bench"}, thread_config(thread_id), durability=mode)
                samples.append((time.perf_counter() - start) * 1000)
            out[f"run_{mode}"] = _percentiles(samples)
        overhead = (out["run_sync"]["p50_ms"] - out["run_exit"]["p50_ms"]) / STEPS
        out["sync_overhead_per_step_ms_p50"] = round(overhead, 2)
        sync_threads = threads[-runs:]
        samples = []
        for thread_id in sync_threads:
            start = time.perf_counter()
            checkpoints = history(graph, thread_id)
            samples.append((time.perf_counter() - start) * 1000)
        out["history"] = _percentiles(samples) | {"checkpoints": len(checkpoints)}
        samples = []
        for _ in range(5):
            start = time.perf_counter()
            listed = list_threads(graph)
            samples.append((time.perf_counter() - start) * 1000)
        out["list_threads"] = _percentiles(samples) | {"threads": len(listed)}
    return out


def main() -> None:
    """Run the benchmark and print the figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=50, help="runs per durability mode (default 50)")
    parser.add_argument("--postgres-uri", default=os.environ.get("SEA_TEST_POSTGRES_URI"))
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args()
    results: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="bench-checkpoints-") as tmp:
        home = Path(tmp)
        results["memory"] = bench_backend(Settings(home=home, checkpointer="memory"), args.runs)
        results["sqlite"] = bench_backend(Settings(home=home, checkpointer="sqlite"), args.runs)
        if args.postgres_uri:
            results["postgres"] = bench_backend(
                Settings(home=home, checkpointer="postgres", postgres_uri=args.postgres_uri), args.runs
            )
    if args.json:
        print(json.dumps(results, indent=2))
        return
    for backend, figures in results.items():
        print(f"{backend}:")
        for mode in MODES:
            f = figures[f"run_{mode}"]
            print(f"  {STEPS}-step run, durability={mode:<5}  p50 {f['p50_ms']:8.2f} ms  p95 {f['p95_ms']:8.2f} ms")
        print(f"  sync overhead per step (p50)       {figures['sync_overhead_per_step_ms_p50']:8.2f} ms")
        h, t = figures["history"], figures["list_threads"]
        print(f"  runs.history ({h['checkpoints']} checkpoints)   p50 {h['p50_ms']:8.2f} ms  p95 {h['p95_ms']:8.2f} ms")
        print(f"  runs.list_threads ({t['threads']} threads)  p50 {t['p50_ms']:8.2f} ms  p95 {t['p95_ms']:8.2f} ms")


if __name__ == "__main__":
    main()
