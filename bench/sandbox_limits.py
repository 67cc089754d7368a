"""Concurrent sandbox jobs held under SEA_SANDBOX_MAX_JOBS: containers and host memory while many callers run
memory-hungry calls at once.

    python -m bench.sandbox_limits [--calls 20] [--mb 200] [--hold 2] [--max-jobs 4] [--pool-size 2] [--json]

`--calls` threads each call a tool that fills `--mb` MB and holds it for `--hold` s, all at once, on one
`Sandbox` with `--max-jobs` job slots. While they run, the engine is sampled every 0.1 s: the sandbox's
containers (by its instance label), how many are running, how many are *executing* a job (memory above
three quarters of `--mb`), the memory of all of them together (their cgroups' usage), and the host's
MemAvailable. `--max-jobs` at or above `--calls` is the behaviour before the cap (every caller got a container
at once). Every call must return its own tag; wrong answers are counted and printed.
"""

from __future__ import annotations

import argparse
import json
import sys
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import docker

from sandbox import Sandbox
from sandbox.container import LABEL_INSTANCE, connect
from sea.settings import get_settings

HOLD_TOOL = """\
import time


def hold(mb, seconds, tag):
    block = bytearray(mb * 1024 * 1024)
    for i in range(0, len(block), 4096):  # touch every page, so the memory is really used
        block[i] = 1
    time.sleep(seconds)
    return {"tag": tag, "held_mb": len(block) // (1024 * 1024)}
"""

CGROUP_MEMORY_FILES = (  # cgroup v1 (cgroupfs, systemd), cgroup v2 (cgroupfs, systemd)
    "/sys/fs/cgroup/memory/docker/{id}/memory.usage_in_bytes",
    "/sys/fs/cgroup/memory/system.slice/docker-{id}.scope/memory.usage_in_bytes",
    "/sys/fs/cgroup/docker/{id}/memory.current",
    "/sys/fs/cgroup/system.slice/docker-{id}.scope/memory.current",
)


def container_memory_bytes(api: docker.APIClient, container_id: str) -> int:
    """A container's memory use as the engine's cgroup counts it (cgroup file; else the engine's stats)."""
    for pattern in CGROUP_MEMORY_FILES:
        try:
            return int(Path(pattern.format(id=container_id)).read_text())
        except (OSError, ValueError):
            continue
    try:
        stats = api.stats(container_id, stream=False)
    except docker.errors.APIError:
        return 0
    return int((stats.get("memory_stats") or {}).get("usage") or 0)


def mem_available_bytes() -> int:
    """The host's MemAvailable."""
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemAvailable:"):
            return int(line.split()[1]) * 1024
    return 0


@dataclass
class Peaks:
    """The most the sampler saw at once."""

    samples: int = 0
    alive: int = 0  # the instance's containers in any state
    running: int = 0
    executing: int = 0  # running and using more than the threshold
    containers_mb: float = 0.0  # all the instance's containers together
    host_drop_mb: float = 0.0  # MemAvailable below its value before the calls
    timeline: list[tuple[float, int, int]] = field(default_factory=list)  # (t, running, executing)


class EngineSampler:
    """Samples one sandbox's containers from the engine in a thread, until stopped."""

    def __init__(self, instance_id: str, executing_bytes: int, period_s: float = 0.1) -> None:
        self.api = connect()
        self.instance_id = instance_id
        self.executing_bytes = executing_bytes
        self.period_s = period_s
        self.peaks = Peaks()
        self._host_before = mem_available_bytes()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="engine-sampler", daemon=True)
        self._started = time.monotonic()

    def __enter__(self) -> EngineSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stop.set()
        self._thread.join(30)

    def sample(self) -> None:
        """One look at the engine."""
        found = self.api.containers(all=True, filters={"label": f"{LABEL_INSTANCE}={self.instance_id}"})
        running = [info for info in found if info.get("State") == "running"]
        memory = [container_memory_bytes(self.api, str(info["Id"])) for info in running]
        executing = sum(1 for used in memory if used > self.executing_bytes)
        peaks = self.peaks
        peaks.samples += 1
        peaks.alive = max(peaks.alive, len(found))
        peaks.running = max(peaks.running, len(running))
        peaks.executing = max(peaks.executing, executing)
        peaks.containers_mb = max(peaks.containers_mb, sum(memory) / 2**20)
        peaks.host_drop_mb = max(peaks.host_drop_mb, (self._host_before - mem_available_bytes()) / 2**20)
        peaks.timeline.append((round(time.monotonic() - self._started, 2), len(running), executing))

    def _loop(self) -> None:
        while not self._stop.is_set():
            self.sample()
            self._stop.wait(self.period_s)


def run(calls: int, mb: int, hold_s: float, max_jobs: int, pool_size: int) -> dict[str, Any]:
    """`calls` concurrent hold calls on one sandbox; the peaks seen and the answers."""
    settings = get_settings().model_copy(
        update={"sandbox_max_jobs": max_jobs, "sandbox_acquire_timeout_s": 600.0, "sandbox_timeout_s": 120.0}
    )
    sandbox = Sandbox(settings, pool_size=pool_size)
    answers: dict[int, Any] = {}
    try:
        sandbox.warm_up(timeout_s=120)
        time.sleep(1.0)  # let the pool settle before the baseline
        with EngineSampler(sandbox.instance_id, executing_bytes=int(mb * 0.75 * 2**20)) as sampler:

            def one(tag: int) -> None:
                try:
                    answers[tag] = sandbox.call(HOLD_TOOL, "hold", {"mb": mb, "seconds": hold_s, "tag": tag})
                except Exception as exc:  # counted as a wrong answer
                    answers[tag] = exc

            started = time.monotonic()
            threads = [threading.Thread(target=one, args=(tag,)) for tag in range(calls)]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
            wall_s = time.monotonic() - started
        right = sum(
            1 for tag, answer in answers.items()
            if not isinstance(answer, Exception) and answer.ok and answer.result["tag"] == tag
            and answer.result["held_mb"] == mb
        )  # fmt: skip
        wrong = [str(a if isinstance(a, Exception) else a.error) for a in answers.values()
                 if isinstance(a, Exception) or not a.ok]
        peaks = sampler.peaks
        return {
            "calls": calls, "mb": mb, "hold_s": hold_s, "max_jobs": max_jobs, "pool_size": pool_size,
            "right": right, "wrong": wrong[:5], "wall_s": round(wall_s, 1), "slot_peak": sandbox.job_slots.peak,
            "peaks": {k: v for k, v in asdict(peaks).items() if k != "timeline"},
        }  # fmt: skip
    finally:
        sandbox.close()


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark and print its figures."""
    parser = argparse.ArgumentParser(prog="python -m bench.sandbox_limits", description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=20, help="concurrent callers (default 20)")
    parser.add_argument("--mb", type=int, default=200, help="MB each call fills and holds (default 200)")
    parser.add_argument("--hold", type=float, default=2.0, help="seconds each call holds it (default 2)")
    parser.add_argument("--max-jobs", type=int, default=None, help="job slots (default SEA_SANDBOX_MAX_JOBS)")
    parser.add_argument("--pool-size", type=int, default=None, help="warm pool size (default SEA_SANDBOX_POOL_SIZE)")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args(argv)
    settings = get_settings()
    max_jobs = settings.sandbox_max_jobs if args.max_jobs is None else args.max_jobs
    pool_size = settings.sandbox_pool_size if args.pool_size is None else args.pool_size
    result = run(args.calls, args.mb, args.hold, max_jobs, pool_size)
    if args.json:
        print(json.dumps(result))
    else:
        p = result["peaks"]
        print(f"{result['calls']} concurrent calls holding {result['mb']} MB for {result['hold_s']:g} s; "
              f"max_jobs {result['max_jobs']}, pool size {result['pool_size']}")
        print(f"  right answers         {result['right']}/{result['calls']}  (wrong: {result['wrong'] or 'none'})")
        print(f"  wall clock            {result['wall_s']} s")
        print(f"  job slots held, peak  {result['slot_peak']}")
        print(f"  containers, peak      {p['alive']} alive, {p['running']} running, {p['executing']} executing"
              f"  ({p['samples']} samples)")
        print(f"  memory, peak          {p['containers_mb']:.0f} MB in the containers, "
              f"host MemAvailable down {p['host_drop_mb']:.0f} MB")
    return 0 if result["right"] == result["calls"] else 1


if __name__ == "__main__":
    sys.exit(main())
