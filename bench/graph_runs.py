"""Whole-graph run time with a scripted model (so the figures are the graph, the library and the sandbox).

    python -m bench.graph_runs [--runs 10] [--json]

Two paths, each run `--runs` times in one temporary SEA_HOME (seeded once, not timed):
- reuse: "What is 15 percent of 300?" → retrieve, decide, execute (one sandbox call), respond;
- synthesis: "Reverse the string 'hello world'" with the model told no tool fits → spec, write_tests, red phase
  (a sandbox test run against the stub), implement, verify (a second test run), register (a new name each run;
  the library may answer that it twins an earlier one, and the graph then uses that), execute, respond.
Printed: wall time per run, p50/p95/max in ms.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time
import uuid
from typing import Any

from langgraph.checkpoint.memory import InMemorySaver


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()

    os.environ["SEA_HOME"] = tempfile.mkdtemp(prefix="sea-bench-graph-")
    from graph import resources
    from graph.builder import build_graph
    from graph.context import Context
    from graph.schemas import Implementation, TestSuite, TurnDecision
    from graph.scripted import (
        REVERSE_STRING_CODE,
        REVERSE_STRING_SPEC,
        REVERSE_STRING_TESTS,
        ScriptedChatModel,
        register_scripted,
        tool_call,
    )
    from sea.settings import get_settings

    get_settings.cache_clear()
    resources.get_library()  # seeding is set-up, not measured
    app = build_graph(InMemorySaver())
    n = args.runs
    scripts: dict[str, tuple[str, dict[str, list[Any]]]] = {
        "reuse": (
            "What is 15 percent of 300?",
            {
                "TurnDecision": [TurnDecision(route="compute", tool="calculate_percentage", reason="percentages")] * n,
                "ToolArguments": [tool_call("ToolArguments", {"value": 300, "percent": 15})] * n,
                "text": ["45"] * n,
            },
        ),
        "synthesis": (
            "Reverse the string 'hello world'",
            {
                "TurnDecision": [TurnDecision(route="compute", tool=None, reason="none fits")] * n,
                # A new name each run: the spec step refuses names already in the library.
                "ToolSpec": [REVERSE_STRING_SPEC.model_copy(update={"name": f"reverse_{i}"}) for i in range(n)],
                "TestSuite": [
                    TestSuite(tests=REVERSE_STRING_TESTS.replace("reverse_string", f"reverse_{i}")) for i in range(n)
                ],
                "Implementation": [
                    Implementation(code=REVERSE_STRING_CODE.replace("reverse_string", f"reverse_{i}")) for i in range(n)
                ],
                "ToolArguments": [tool_call("ToolArguments", {"text": "hello world"})] * n,
                "text": ["dlrow olleh"] * n,
            },
        ),
    }
    figures: dict[str, dict[str, float]] = {}
    for path, (request, by_kind) in scripts.items():
        model_id = register_scripted(f"bench-{path}", ScriptedChatModel(by_kind=by_kind))
        durations: list[float] = []
        for _ in range(n):
            config = {"configurable": {"thread_id": uuid.uuid4().hex}}
            started = time.perf_counter()
            out = app.invoke({"request": request}, config, context=Context(model=model_id))
            durations.append((time.perf_counter() - started) * 1000)
            if out.get("outcome") != "answered":
                raise SystemExit(f"{path} run failed: {out.get('failure')}")
        figures[path] = {
            "runs": n,
            "p50_ms": round(statistics.median(durations), 1),
            "p95_ms": round(_percentile(durations, 0.95), 1),
            "max_ms": round(max(durations), 1),
        }
    if args.json:
        print(json.dumps(figures))
    else:
        for path, f in figures.items():
            print(
                f"{path:10s} runs={f['runs']:<3d} p50={f['p50_ms']:8.1f} ms  "
                f"p95={f['p95_ms']:8.1f} ms  max={f['max_ms']:8.1f} ms"
            )


if __name__ == "__main__":
    main()
