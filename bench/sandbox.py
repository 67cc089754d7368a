"""Sandbox latency and throughput: a fresh container per job (pool_size=0) against the warm pool.

    python -m bench.sandbox [--jobs 50] [--concurrency 4] [--pool-size N] [--rounds 2] [--json]

For each mode it times `call` and `run_tests` (a tool with 5 tests) over `--jobs` jobs each, back to back,
then the throughput of `run_tests` with `--concurrency` callers, in `--rounds` rounds alternating fresh and
pool (each round `--jobs` jobs on a new sandbox, warmed up untimed). "pool-ready" times the same jobs on the
pool but waits (untimed) for the pool to be full before each job: the latency an agent sees when it pauses
between jobs, as it does while the model thinks. Every job must pass; failures are counted and printed.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import threading
import time
from collections.abc import Callable
from typing import Any

from sandbox import Sandbox, SandboxError
from sea.settings import get_settings

TOOL_CODE = '''
def word_stats(text: str) -> dict:
    """Count words, characters and the longest word of a text."""
    words = text.split()
    return {
        "words": len(words),
        "chars": len(text),
        "longest": max(words, key=len) if words else "",
    }
'''

TEST_CODE = '''
from tool import word_stats


def test_empty():
    assert word_stats("") == {"words": 0, "chars": 0, "longest": ""}


def test_one_word():
    assert word_stats("hello")["words"] == 1


def test_longest():
    assert word_stats("a bbb cc")["longest"] == "bbb"


def test_chars_count_spaces():
    assert word_stats("a b")["chars"] == 3


def test_many_spaces():
    assert word_stats("  a   b  ")["words"] == 2
'''

CALL_KWARGS = {"text": "the quick brown fox jumps over the lazy dog"}
EXPECTED_CALL = {"words": 9, "chars": 43, "longest": "quick"}

TARGET_CALL_P50_MS = 150.0
TARGET_TESTS_P50_MS = 500.0
TARGET_SPEEDUP = 5.0


def percentile(values: list[float], q: float) -> float:
    """The q-th percentile (0..100) by linear interpolation; NaN for no values."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    position = (len(ordered) - 1) * q / 100.0
    low = int(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def summarise(latencies_ms: list[float], errors: list[str]) -> dict[str, Any]:
    """p50, p95, mean, min, max of a list of latencies, with the error count and the first errors."""
    return {
        "n": len(latencies_ms),
        "p50_ms": round(percentile(latencies_ms, 50), 1),
        "p95_ms": round(percentile(latencies_ms, 95), 1),
        "mean_ms": round(statistics.fmean(latencies_ms), 1) if latencies_ms else float("nan"),
        "min_ms": round(min(latencies_ms), 1) if latencies_ms else float("nan"),
        "max_ms": round(max(latencies_ms), 1) if latencies_ms else float("nan"),
        "errors": len(errors),
        "first_errors": errors[:3],
    }


def job_call(sandbox: Sandbox) -> str | None:
    """One call job; None if it answered correctly, else what went wrong."""
    result = sandbox.call(TOOL_CODE, "word_stats", CALL_KWARGS)
    if not result.ok:
        error = result.error
        return f"call failed: {error.type}: {error.message[:200]}" if error else "call failed"
    return None if result.result == EXPECTED_CALL else f"call returned {result.result!r}"


def job_tests(sandbox: Sandbox) -> str | None:
    """One run_tests job with 5 tests; None if all 5 passed, else what went wrong."""
    report = sandbox.run_tests(TOOL_CODE, TEST_CODE)
    if report.verdict != "passed" or report.passed != 5:
        return f"run_tests gave {report.verdict} ({report.passed} passed): {report.message[:200]}"
    return None


def timed(job: Callable[[Sandbox], str | None], sandbox: Sandbox) -> tuple[float, str | None]:
    started = time.perf_counter()
    try:
        problem = job(sandbox)
    except SandboxError as exc:
        problem = f"{type(exc).__name__}: {exc}"
    return (time.perf_counter() - started) * 1000.0, problem


def sequential(
    sandbox: Sandbox, job: Callable[[Sandbox], str | None], jobs: int, wait_for_pool: bool
) -> dict[str, Any]:
    """`jobs` jobs one after another; with `wait_for_pool`, the pool is refilled (untimed) before each."""
    latencies: list[float] = []
    errors: list[str] = []
    for _ in range(jobs):
        if wait_for_pool:
            sandbox.warm_up(timeout_s=60)
        elapsed, problem = timed(job, sandbox)
        if problem:
            errors.append(problem)
        else:
            latencies.append(elapsed)
    return summarise(latencies, errors)


def throughput(sandbox: Sandbox, job: Callable[[Sandbox], str | None], jobs: int, callers: int) -> dict[str, Any]:
    """`jobs` jobs shared by `callers` threads; jobs per second over the wall clock, and the latencies."""
    remaining = [jobs]
    lock = threading.Lock()
    latencies: list[float] = []
    errors: list[str] = []

    def worker() -> None:
        while True:
            with lock:
                if remaining[0] <= 0:
                    return
                remaining[0] -= 1
            elapsed, problem = timed(job, sandbox)
            with lock:
                if problem:
                    errors.append(problem)
                else:
                    latencies.append(elapsed)

    threads = [threading.Thread(target=worker, name=f"bench-caller-{i}") for i in range(callers)]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    wall_s = time.perf_counter() - started
    out = summarise(latencies, errors)
    out.update({"callers": callers, "wall_s": round(wall_s, 2), "jobs_per_s": round(len(latencies) / wall_s, 2)})
    return out


def load_average() -> list[float]:
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except OSError:
        return []


def run(
    jobs: int, callers: int, pool_size: int, progress: Callable[[str], None], rounds: int = 2
) -> dict[str, Any]:
    """The whole benchmark; returns the figures as a dict."""
    settings = get_settings()
    results: dict[str, Any] = {
        "jobs": jobs, "callers": callers, "pool_size": pool_size, "cpus": os.cpu_count(), "rounds": rounds,
        "load_before": load_average(), "sandbox_cpus": settings.sandbox_cpus,
        "sandbox_memory_mb": settings.sandbox_memory_mb, "latency": {}, "throughput": {},
    }  # fmt: skip
    for mode, size in (("fresh", 0), ("pool", pool_size)):
        with Sandbox(settings, pool_size=size) as sandbox:
            results["image_id"] = sandbox.image_id()
            sandbox.warm_up(timeout_s=120)
            timed(job_call, sandbox)  # one untimed job: imports, connections
            variants = [(mode, False)] + ([("pool-ready", True)] if size else [])
            for label, wait in variants:
                for name, job in (("call", job_call), ("run_tests", job_tests)):
                    progress(f"{label:>10} {name:<9} x{jobs} ...")
                    results["latency"][f"{label}/{name}"] = sequential(sandbox, job, jobs, wait)
            pool = sandbox._pool
            if pool is not None:  # how the pool made its containers for the latency rows
                results["pool_starts"] = {
                    "warm": pool.warm_total, "plain": pool.plain_total, "plain_on_demand": pool.on_demand_total,
                    "parallel_starts": pool.parallel_starts,
                }
    # Throughput in alternating rounds (fresh, pool, fresh, pool, ...), each on a new sandbox warmed up untimed,
    # so that a change in the machine's other load during the run hits both modes alike.
    rounds_out: dict[str, list[dict[str, Any]]] = {"fresh": [], "pool": []}
    for round_no in range(rounds):
        for mode, size in (("fresh", 0), ("pool", pool_size)):
            with Sandbox(settings, pool_size=size) as sandbox:
                sandbox.warm_up(timeout_s=120)
                timed(job_call, sandbox)
                sandbox.warm_up(timeout_s=120)
                progress(f"{mode:>10} throughput round {round_no + 1}/{rounds}, {callers} callers x{jobs} ...")
                rounds_out[mode].append(throughput(sandbox, job_tests, jobs, callers))
    for mode, runs in rounds_out.items():
        done = sum(r["n"] for r in runs)
        wall = sum(r["wall_s"] for r in runs)
        results["throughput"][mode] = {
            "n": done, "wall_s": round(wall, 2), "jobs_per_s": round(done / wall, 2) if wall else 0.0,
            "rounds_jobs_per_s": [r["jobs_per_s"] for r in runs], "errors": sum(r["errors"] for r in runs),
            "p50_ms_rounds": [r["p50_ms"] for r in runs], "p95_ms_rounds": [r["p95_ms"] for r in runs],
            "first_errors": [e for r in runs for e in r["first_errors"]][:3],
        }
    results["load_after"] = load_average()
    lat = results["latency"]

    def ratio(a: float, b: float) -> float:
        return round(a / b, 2) if b else float("nan")

    results["ratios"] = {
        "call_p50_fresh_over_pool": ratio(lat["fresh/call"]["p50_ms"], lat["pool/call"]["p50_ms"]),
        "tests_p50_fresh_over_pool": ratio(lat["fresh/run_tests"]["p50_ms"], lat["pool/run_tests"]["p50_ms"]),
        "call_p50_fresh_over_pool_ready": ratio(lat["fresh/call"]["p50_ms"], lat["pool-ready/call"]["p50_ms"]),
        "tests_p50_fresh_over_pool_ready": ratio(
            lat["fresh/run_tests"]["p50_ms"], lat["pool-ready/run_tests"]["p50_ms"]
        ),
        "throughput_pool_over_fresh": ratio(
            results["throughput"]["pool"]["jobs_per_s"], results["throughput"]["fresh"]["jobs_per_s"]
        ),
    }
    best_call = min(lat["pool/call"]["p50_ms"], lat["pool-ready/call"]["p50_ms"])
    best_tests = min(lat["pool/run_tests"]["p50_ms"], lat["pool-ready/run_tests"]["p50_ms"])
    results["targets"] = {
        f"pool call p50 <= {TARGET_CALL_P50_MS:g} ms (back to back)": lat["pool/call"]["p50_ms"] <= TARGET_CALL_P50_MS,
        f"pool call p50 <= {TARGET_CALL_P50_MS:g} ms (pool ready)": best_call <= TARGET_CALL_P50_MS,
        f"pool run_tests p50 <= {TARGET_TESTS_P50_MS:g} ms (back to back)": (
            lat["pool/run_tests"]["p50_ms"] <= TARGET_TESTS_P50_MS
        ),
        f"pool run_tests p50 <= {TARGET_TESTS_P50_MS:g} ms (pool ready)": best_tests <= TARGET_TESTS_P50_MS,
        "pool never slower than fresh: back-to-back p50, call and run_tests": (
            lat["pool/call"]["p50_ms"] <= lat["fresh/call"]["p50_ms"]
            and lat["pool/run_tests"]["p50_ms"] <= lat["fresh/run_tests"]["p50_ms"]
        ),
        f"pool never slower than fresh: throughput with {callers} callers": (
            results["throughput"]["pool"]["jobs_per_s"] >= results["throughput"]["fresh"]["jobs_per_s"]
        ),
        f"pool >= {TARGET_SPEEDUP:g}x faster than fresh (p50, back to back)": min(
            results["ratios"]["call_p50_fresh_over_pool"], results["ratios"]["tests_p50_fresh_over_pool"]
        ) >= TARGET_SPEEDUP,
    }
    return results


def render(results: dict[str, Any]) -> str:
    """The figures as a plain-text table."""
    lines = [
        f"jobs per row: {results['jobs']}   pool size: {results['pool_size']}   host cpus: {results['cpus']}   "
        f"load average before/after: {results['load_before']} / {results['load_after']}",
        "",
        f"{'mode':<11}{'op':<11}{'n':>4}{'p50 ms':>10}{'p95 ms':>10}{'mean ms':>10}{'max ms':>10}{'errors':>8}",
    ]
    for key, row in results["latency"].items():
        mode, op = key.split("/")
        lines.append(
            f"{mode:<11}{op:<11}{row['n']:>4}{row['p50_ms']:>10.1f}{row['p95_ms']:>10.1f}{row['mean_ms']:>10.1f}"
            f"{row['max_ms']:>10.1f}{row['errors']:>8}"
        )
    lines.append("")
    lines.append(
        f"throughput, run_tests with {results['callers']} concurrent callers, {results['rounds']} alternating rounds:"
    )
    for mode, row in results["throughput"].items():
        lines.append(
            f"  {mode:<6} {row['jobs_per_s']:>6.2f} jobs/s   ({row['n']} jobs in {row['wall_s']} s; rounds "
            f"{row['rounds_jobs_per_s']} jobs/s, p50 {row['p50_ms_rounds']} ms, p95 {row['p95_ms_rounds']} ms, "
            f"errors {row['errors']})"
        )
    if results.get("pool_starts"):
        lines.append("pool containers started: " + ", ".join(f"{k} {v}" for k, v in results["pool_starts"].items()))
    lines.append("")
    lines.append("ratios: " + ", ".join(f"{k} = {v}" for k, v in results["ratios"].items()))
    lines.append("targets:")
    lines += [f"  [{'met' if ok else 'NOT met'}] {name}" for name, ok in results["targets"].items()]
    errors = [e for row in [*results["latency"].values(), *results["throughput"].values()] for e in row["first_errors"]]
    if errors:
        lines.append("first errors: " + " | ".join(errors[:5]))
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point."""
    parser = argparse.ArgumentParser(prog="python -m bench.sandbox", description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=50, help="jobs per measured row (default 50)")
    parser.add_argument("--concurrency", type=int, default=4, help="concurrent callers for throughput (default 4)")
    parser.add_argument("--pool-size", type=int, default=None, help="warm pool size (default SEA_SANDBOX_POOL_SIZE)")
    parser.add_argument("--rounds", type=int, default=2, help="alternating throughput rounds per mode (default 2)")
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of the table")
    args = parser.parse_args(argv)
    if args.jobs < 1 or args.concurrency < 1 or args.rounds < 1:
        parser.error("--jobs, --concurrency and --rounds must be at least 1")
    pool_size = get_settings().sandbox_pool_size if args.pool_size is None else args.pool_size
    if pool_size < 1:
        parser.error("--pool-size must be at least 1 (the fresh mode is always measured with pool size 0)")

    def progress(line: str) -> None:
        print(line, file=sys.stderr, flush=True)

    try:
        results = run(args.jobs, args.concurrency, pool_size, progress, args.rounds)
    except SandboxError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(json.dumps(results, indent=2) if args.json else render(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
