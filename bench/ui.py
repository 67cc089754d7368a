"""What reopening a conversation costs the Streamlit app: rebuilding a thread's turns from its checkpoints, and a
whole page run (AppTest) that draws them.

    .venv/bin/python -m bench.ui --turns 5 --reps 30

A temporary SEA_HOME (seeded library, real sandbox, SQLite checkpoints) gets one thread of `--turns` real demo
turns ("What is 15 percent of 300?", scripted:demo); then `ui.runner.load_turns` and a full AppTest page run
with `?thread=` are each timed `--reps` times. Prints p50/p95.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
import uuid
from pathlib import Path


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def _line(name: str, values: list[float]) -> str:
    return (
        f"{name:<48} p50 {statistics.median(values) * 1000:8.1f} ms   p95 {_percentile(values, 0.95) * 1000:8.1f} ms"
        f"   n {len(values)}"
    )


def main() -> None:
    """Run the benchmark and print its figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--turns", type=int, default=5, help="turns in the thread (default 5)")
    parser.add_argument("--reps", type=int, default=30, help="timed repetitions (default 30)")
    args = parser.parse_args()

    home = Path(tempfile.mkdtemp(prefix="sea-bench-ui-"))
    for key in [k for k in os.environ if k.startswith("SEA_") and k != "SEA_SANDBOX_IMAGE"]:
        os.environ.pop(key)
    os.environ.update(SEA_HOME=str(home), SEA_MODEL="scripted:demo")

    from streamlit.testing.v1 import AppTest

    from graph import resources
    from graph.checkpointing import close_checkpointer
    from ui import runner

    resources.get_library()  # seeds the starter tools (not timed)
    graph, saver = runner.open_graph()
    thread_id = str(uuid.uuid4())
    started = time.perf_counter()
    for _ in range(args.turns):
        turn = runner.run_turn(graph, thread_id, {"request": "What is 15 percent of 300?"}, model="scripted:demo",
                               request="What is 15 percent of 300?")
        if turn.error or "45" not in turn.answer:
            raise SystemExit(f"a demo turn failed: {turn.error or turn.answer}")
    print(f"set-up: {args.turns} demo turns in {time.perf_counter() - started:.1f} s (SEA_HOME {home})")
    rows, _ = runner.checkpoint_rows(graph, thread_id)
    print(f"thread {thread_id}: {len(rows)} checkpoints")

    load: list[float] = []
    for _ in range(args.reps):
        t0 = time.perf_counter()
        turns = runner.load_turns(graph, thread_id)
        load.append(time.perf_counter() - t0)
    assert len(turns) == args.turns
    close_checkpointer(saver)

    app = Path(__file__).resolve().parents[1] / "ui" / "app.py"
    page: list[float] = []
    for _ in range(args.reps):
        at = AppTest.from_file(str(app), default_timeout=120)
        at.query_params["thread"] = thread_id
        t0 = time.perf_counter()
        at.run()
        page.append(time.perf_counter() - t0)
        if at.exception or len(at.status) < 4 * args.turns:
            raise SystemExit(f"the page did not draw the thread: {at.exception}")
    print(_line(f"load_turns ({args.turns} turns, {len(rows)} checkpoints)", load))
    print(_line(f"page run reopening the thread (AppTest, {args.turns} turns)", page))


if __name__ == "__main__":
    main()
