"""Peak memory (RSS high-water mark) of one request: library searches and the two CLIs, each in a fresh process.

    python -m bench.request_memory [--json] [--skip-graph]

A temporary SEA_HOME gets a small library (tools written through the store and indexed; no sandbox). Then:

- library cases: a child process opens the library, runs a short warm-up search, and reports its RSS
  high-water mark before and after one search with the request (`added_mb` is the difference: what that
  request cost on top of an open library);
- CLI cases: `python -m tools_library search REQUEST` and `python -m graph ask REQUEST --model scripted:demo`
  run as child processes; `peak_mb` is the whole process's high-water mark (os.wait4), next to the same
  command with a short request. (This process loads no model, so a child's mark, which starts at its
  parent's size, is the child's own.)

Requests: words (`words`, pseudo-words the typo fixer must look at) or one word of random letters (`word`), of
the longest length accepted (Settings.max_request_chars) and of 40,000 letters (refused at the default limit;
also run with the limit raised to 50,000, so that the typo fixer's own bound is measured).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import string
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
_TOOLS = [
    ("reverse_string", "text: str", "str", "Reverse the characters of a string."),
    ("count_vowels", "text: str", "int", "Count the vowels (a, e, i, o, u) in a text."),
    ("celsius_to_fahrenheit", "celsius: float", "float", "Convert a temperature from Celsius to Fahrenheit."),
    ("is_prime", "n: int", "bool", "Tell whether a whole number is a prime number."),
    ("median", "values: list[float]", "float", "The median (middle value) of a list of numbers."),
    ("days_between", "start_date: str, end_date: str", "int", "Number of days between two ISO dates."),
]


def request_text(kind: str, chars: int, seed: int = 0) -> str:
    """A request of exactly `chars` characters: pseudo-words (`words`) or one random-letter word (`word`)."""
    rng = random.Random(seed)
    if kind == "word":
        return "".join(rng.choice(string.ascii_lowercase) for _ in range(chars))
    parts: list[str] = []
    length = 0
    while length < chars:
        word = "".join(rng.choice(string.ascii_lowercase) for _ in range(rng.randint(4, 12)))
        parts.append(word)
        length += len(word) + 1
    return " ".join(parts)[:chars].strip().ljust(chars, "x")


def _high_water_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def _prepare_home(home: Path) -> None:
    """A library of a few tools, written through the store and indexed (no sandbox involved)."""
    from sea.settings import Settings
    from tools_library.library import ToolLibrary
    from tools_library.models import Provenance, ToolDraft

    library = ToolLibrary.open(Settings(home=home))
    for name, params, returns, description in _TOOLS:
        library.store.add_version(
            ToolDraft(
                name=name, signature=f"def {name}({params}) -> {returns}", description=description,
                code=f"def {name}({params}) -> {returns}:\n    raise NotImplementedError\n",
                tests=f"from tool import {name}\n\n\ndef test_it():\n    assert callable({name})\n",
                verification={"verdict": "passed"}, provenance=Provenance(request="bench", source="benchmark"),
            )
        )
    library.sync_index()
    library.close()


def child_search(kind: str, chars: int) -> dict[str, Any]:
    """In this process: open the library, warm up, search once with the request; RSS before and after."""
    from sea.settings import get_settings
    from tools_library.library import ToolLibrary

    library = ToolLibrary.open(get_settings())
    library.search("reverse a string")
    before = _high_water_mb()
    request = request_text(kind, chars)
    start = time.perf_counter()
    try:
        outcome = f"{len(library.search(request))} hits"
    except Exception as exc:  # a refusal is a result here
        outcome = f"refused: {exc}"
    seconds = time.perf_counter() - start
    after = _high_water_mb()
    return {"before_mb": round(before, 1), "after_mb": round(after, 1), "added_mb": round(after - before, 1),
            "seconds": round(seconds, 3), "outcome": outcome}


def _run_child(argv: list[str], env: dict[str, str], timeout: float) -> tuple[int, str, str, float, float]:
    """Run a command; return its exit code, stdout, stderr, peak RSS (MiB, os.wait4) and wall time."""
    start = time.perf_counter()
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        process = subprocess.Popen(argv, cwd=ROOT, env=env, stdout=out, stderr=err, text=True)
        deadline = time.monotonic() + timeout
        while True:
            pid, status, usage = os.wait4(process.pid, os.WNOHANG)
            if pid:
                break
            if time.monotonic() > deadline:
                process.kill()
                pid, status, usage = os.wait4(process.pid, 0)
                break
            time.sleep(0.05)
        process.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        return (process.returncode, out.read(), err.read(), usage.ru_maxrss / 1024,
                time.perf_counter() - start)


def run(skip_graph: bool = False, timeout: float = 600) -> dict[str, Any]:
    """Every case, each in a fresh process; returns the figures."""
    from sea.settings import Settings

    limit = Settings().max_request_chars
    results: dict[str, Any] = {"max_request_chars": limit, "library": [], "cli": []}
    with tempfile.TemporaryDirectory(prefix="sea-bench-request-") as tmp:
        home = Path(tmp) / "home"
        env = {**os.environ, "SEA_HOME": str(home)}
        # In a child too: a child's high-water mark starts at its parent's size (fork/vfork before exec), so
        # this process stays small and loads no model.
        code, _, err, _, _ = _run_child([sys.executable, "-m", "bench.request_memory", "--prepare"], env, timeout)
        if code != 0:
            raise RuntimeError(f"preparing the library failed: {err.strip()[-500:]}")
        cases = [("words", limit, None), ("word", limit, None), ("word", 40_000, None), ("word", 40_000, 50_000)]
        for kind, chars, raised in cases:
            case_env = {**env, **({"SEA_MAX_REQUEST_CHARS": str(raised)} if raised else {})}
            code, out, err, peak, _ = _run_child(
                [sys.executable, "-m", "bench.request_memory", "--child", kind, str(chars)], case_env, timeout
            )
            figures = json.loads(out) if code == 0 else {"error": err.strip().splitlines()[-1:]}
            results["library"].append({"request": f"{chars} chars of {kind}", "limit": raised or limit,
                                       "process_peak_mb": round(peak, 1), **figures})
        commands = [("tools_library search", [sys.executable, "-m", "tools_library", "search"])]
        if not skip_graph:
            commands.append(("graph ask", [sys.executable, "-m", "graph", "ask"]))
        for label, command in commands:
            extra = ["--model", "scripted:demo"] if label == "graph ask" else []
            for kind, chars in (("words", 20), ("words", limit), ("word", limit), ("word", limit + 1)):
                code, out, err, peak, seconds = _run_child([*command, request_text(kind, chars), *extra], env, timeout)
                last = (err.strip().splitlines() or [""])[-1]
                results["cli"].append({"command": label, "request": f"{chars} chars of {kind}", "exit": code,
                                       "peak_mb": round(peak, 1), "seconds": round(seconds, 2),
                                       "stderr_last_line": last[:200]})
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.request_memory", description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--skip-graph", action="store_true", help="leave out `python -m graph ask`")
    parser.add_argument("--child", nargs=2, metavar=("KIND", "CHARS"), help=argparse.SUPPRESS)
    parser.add_argument("--prepare", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.prepare:
        from sea.settings import get_settings

        _prepare_home(get_settings().home)
        return 0
    if args.child:
        print(json.dumps(child_search(args.child[0], int(args.child[1]))))
        return 0
    result = run(skip_graph=args.skip_graph)
    if args.json:
        print(json.dumps(result, indent=2))
        return 0
    print(f"peak memory per request (max_request_chars {result['max_request_chars']:,})")
    print("library.search in an open library (RSS high-water before / after / added, whole process peak):")
    for row in result["library"]:
        if "error" in row:
            print(f"  {row['request']:<24} limit {row['limit']:>6}: failed: {row['error']}")
            continue
        print(f"  {row['request']:<24} limit {row['limit']:>6}: {row['before_mb']:>7.1f} / {row['after_mb']:>7.1f} / "
              f"+{row['added_mb']:>6.1f} MiB, peak {row['process_peak_mb']:>7.1f} MiB, {row['seconds']:>7.3f} s  "
              f"{row['outcome'][:90]}")
    print("CLI processes (whole process peak):")
    for row in result["cli"]:
        print(f"  {row['command']:<21} {row['request']:<24} exit {row['exit']}  peak {row['peak_mb']:>7.1f} MiB  "
              f"{row['seconds']:>6.2f} s  {row['stderr_last_line'][:100]}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
