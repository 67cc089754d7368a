"""Whole-graph runs with a scripted model: model calls per path, and wall time (so the time is the graph, the
library and the sandbox, not a model).

    python -m bench.graph_runs [--runs 10] [--json]

Each path is run `--runs` times in one temporary SEA_HOME (seeded once, not timed), with a scripted model that
answers each kind of call from a queue and counts the calls:
- reuse: "What is 15 percent of 300?" → retrieve, decide (the route, the tool and its arguments), execute (one
  sandbox call), respond;
- synthesis: "Reverse the string 'hello world'" with no tool fitting → decide, spec (with the request's
  arguments), write_tests, red phase (a sandbox test run against the stub), implement, verify (a second test
  run), register (a new name each run), execute, respond;
- chat: "Hi there! What can you do for me?" → decide answers from the library listing, respond;
- decline: "What's the weather in Chicago tomorrow?" → decide declines, respond;
- clarify: "Convert the temperature to Fahrenheit" → decide asks, the run pauses (interrupt), resumed with "25":
  decide (with the answer and the arguments), execute, respond. Timed over both invocations;
- chain: "What is 20 percent of the number of words in '...'?" → decide (the plan), then per step next_step,
  decide (tool + arguments), execute; then respond explains the chain.
Printed: model calls per run (each run's count; they are all equal when nothing needs repair), the kinds of call
of one run, and wall time p50/p95/max in ms.
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
    from langgraph.types import Command

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
    )
    from sea.settings import get_settings

    get_settings.cache_clear()
    resources.get_library()  # seeding is set-up, not measured
    app = build_graph(InMemorySaver())
    n = args.runs
    question = "Which temperature, in degrees Celsius?"
    scripts: dict[str, tuple[str, dict[str, list[Any]], Any]] = {
        "reuse": (
            "What is 15 percent of 300?",
            {
                "TurnDecision": [
                    TurnDecision(route="compute", tool="calculate_percentage", reason="percentages",
                                 arguments_json='{"value": 300, "percent": 15}')
                ] * n,
                "text": ["45"] * n,
            },
            None,
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
                "text": ["dlrow olleh"] * n,
            },
            None,
        ),
        "chat": (
            "Hi there! What can you do for me?",
            {"TurnDecision": [TurnDecision(route="chat", reason="a greeting", reply="Hello! I compute.")] * n},
            None,
        ),
        "decline": (
            "What's the weather going to be like in Chicago tomorrow afternoon?",
            {"TurnDecision": [TurnDecision(route="decline", reason="live data", reply="No live data here.")] * n},
            None,
        ),
        "clarify": (
            "Convert the temperature to Fahrenheit",
            {
                "TurnDecision": [
                    TurnDecision(route="clarify", reason="no temperature", reply=question),
                    TurnDecision(route="compute", tool="celsius_to_fahrenheit", reason="given",
                                 arguments_json='{"celsius": 25}'),
                ] * n,
                "text": ["77"] * n,
            },
            "25",
        ),
        "chain": (
            "What is 20 percent of the number of words in 'the quick brown fox jumps'?",
            {
                "TurnDecision": [
                    TurnDecision(route="chain", reason="two computations",
                                 steps=["Count the words in 'the quick brown fox jumps'",
                                        "What is 20 percent of the result of step 1?"]),
                    TurnDecision(route="compute", tool="word_count", reason="words",
                                 arguments_json='{"text": "the quick brown fox jumps"}'),
                    TurnDecision(route="compute", tool="calculate_percentage", reason="percent",
                                 arguments_json='{"value": 5, "percent": 20}'),
                ] * n,
                "text": ["1.0"] * n,
            },
            None,
        ),
    }  # fmt: skip
    figures: dict[str, dict[str, Any]] = {}
    for path, (request, by_kind, answer) in scripts.items():
        model = ScriptedChatModel(by_kind=by_kind)
        model_id = register_scripted(f"bench-{path}", model)
        durations: list[float] = []
        calls: list[int] = []
        kinds: list[str] = []
        for _ in range(n):
            config = {"configurable": {"thread_id": uuid.uuid4().hex}}
            before = len(model.calls)
            started = time.perf_counter()
            out = app.invoke({"request": request}, config, context=Context(model=model_id))
            if answer is not None:
                out = app.invoke(Command(resume=answer), config, context=Context(model=model_id))
            durations.append((time.perf_counter() - started) * 1000)
            if out.get("outcome") not in ("answered", "replied", "declined"):
                raise SystemExit(f"{path} run failed: {out.get('failure')}")
            calls.append(out["usage"]["calls"])
            kinds = kinds or [c.kind for c in model.calls[before:]]
        figures[path] = {
            "runs": n,
            "calls": sorted(set(calls)),
            "kinds": kinds,
            "p50_ms": round(statistics.median(durations), 1),
            "p95_ms": round(_percentile(durations, 0.95), 1),
            "max_ms": round(max(durations), 1),
        }
    if args.json:
        print(json.dumps(figures))
    else:
        for path, f in figures.items():
            print(
                f"{path:10s} runs={f['runs']:<3d} calls={','.join(map(str, f['calls'])):<4s} "
                f"p50={f['p50_ms']:8.1f} ms  p95={f['p95_ms']:8.1f} ms  max={f['max_ms']:8.1f} ms  "
                f"({' → '.join(f['kinds'])})"
            )


if __name__ == "__main__":
    main()
