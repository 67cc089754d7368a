"""Every search sees every tool committed before it began, with writers in other processes.

Real processes on one SEA_HOME: WRITERS writer processes register tools (and new versions) through
`ToolLibrary.register`, which runs each tool's tests in the real sandbox, while a reader process that keeps
the library open searches in a loop. Every tool whose registration returned before a search started must be
among that search's hits, at that version or a newer one. The reader also registers a tool of its own first,
which must stay in its own results. This file is also the child program (`python THIS_FILE reader|writer ...`).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
WRITERS = 3
TOOLS_PER_WRITER = 8
NEW_VERSION_AFTER = {3: 0, 6: 1}  # after registering tool j, add a version 2 of tool NEW_VERSION_AFTER[j]
QUERIES = ["reverse a string", "add a number to a value", "writer 1 tool 5", "the tool of the reader", "prime?"]


def _draft(name: str, offset: int, description: str, version: int = 1) -> Any:
    from library_helpers import make_draft

    parameter = f"value_{name}"  # parameter names of their own: no tool is another's twin
    return make_draft(
        name, params=f"{parameter}: int", returns="int", body=f"return {parameter} + {offset}",
        description=f"{description} (version {version}).",
        tests=(
            f"from tool import {name}\n\n\ndef test_adds_its_offset():\n"
            f"    assert {name}(1) == {1 + offset}\n"
        ),
    )


def _log(path: Path, record: dict[str, Any]) -> None:
    with path.open("a", encoding="utf-8") as handle:
        handle.write(json.dumps(record) + "\n")


def child(role: str, number: int, log: Path, go: Path, stop: Path) -> None:
    """The body of a reader or writer process."""
    from sea.settings import get_settings
    from tools_library.library import ToolLibrary

    library = ToolLibrary.open(get_settings())
    try:
        if role == "reader":
            own = library.register(_draft("reader_own_tool", 100, "The tool of the reader: add one hundred"))
            _log(log, {"commit": own.name, "version": own.version, "t": time.monotonic_ns()})
        library.search("warm up")
        Path(f"{log}.ready").touch()
        while not go.exists():
            time.sleep(0.01)
        if role == "writer":
            for j in range(TOOLS_PER_WRITER):
                name = f"w{number}_tool_{j}"
                manifest = library.register(_draft(name, j, f"Writer {number} tool {j}: add {j} to a number"))
                _log(log, {"commit": manifest.name, "version": manifest.version, "t": time.monotonic_ns()})
                if j in NEW_VERSION_AFTER:
                    old = f"w{number}_tool_{NEW_VERSION_AFTER[j]}"
                    manifest = library.register(
                        _draft(old, NEW_VERSION_AFTER[j] + 1000, f"Writer {number} tool revised", version=2)
                    )
                    _log(log, {"commit": manifest.name, "version": manifest.version, "t": time.monotonic_ns()})
            return
        searches = 0

        def search() -> None:
            nonlocal searches
            started = time.monotonic_ns()
            hits = library.search(QUERIES[searches % len(QUERIES)], k=50)
            _log(log, {"search": searches, "t": started, "found": {h.name: h.version for h in hits}})
            searches += 1

        while not stop.exists():
            search()
        for _ in range(3):  # the writers are done: a few last searches, which must find every tool
            search()
    finally:
        library.close(close_sandbox=True)


def _records(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()] if path.exists() else []


@pytest.mark.docker
@pytest.mark.slow
def test_every_search_sees_every_tool_committed_before_it_began(tmp_path: Path) -> None:
    from library_helpers import docker_ready

    reason = docker_ready()
    if reason:
        pytest.skip(reason)
    home, logs = tmp_path / "home", tmp_path / "logs"
    logs.mkdir()
    go, stop = tmp_path / "go", tmp_path / "stop"
    env = {**os.environ, "SEA_HOME": str(home), "SEA_SANDBOX_POOL_SIZE": "1", "PYTHONPATH": os.pathsep.join(
        [str(HERE), str(ROOT), os.environ.get("PYTHONPATH", "")])}

    def start(role: str, number: int) -> tuple[subprocess.Popen[bytes], Path]:
        log = logs / f"{role}{number}.jsonl"
        errors = (logs / f"{role}{number}.stderr").open("wb")
        process = subprocess.Popen(
            [sys.executable, __file__, role, str(number), str(log), str(go), str(stop)],
            cwd=ROOT, env=env, stdout=errors, stderr=subprocess.STDOUT,
        )
        return process, log

    reader, reader_log = start("reader", 0)
    # The reader opens the library first: it then keeps it open (and its index in memory) throughout.
    deadline = time.monotonic() + 300
    while not Path(f"{reader_log}.ready").exists():
        assert reader.poll() is None, (logs / "reader0.stderr").read_text()[-3000:]
        assert time.monotonic() < deadline, "the reader did not start"
        time.sleep(0.1)
    writers = [start("writer", i) for i in range(WRITERS)]
    for process, log in writers:
        while not Path(f"{log}.ready").exists():
            assert process.poll() is None, Path(str(log).replace(".jsonl", ".stderr")).read_text()[-3000:]
            assert time.monotonic() < deadline, "a writer did not start"
            time.sleep(0.1)
    go.touch()
    try:
        for process, log in writers:
            assert process.wait(timeout=900) == 0, Path(str(log).replace(".jsonl", ".stderr")).read_text()[-3000:]
        stop.touch()
        assert reader.wait(timeout=300) == 0, (logs / "reader0.stderr").read_text()[-3000:]
    finally:
        for process, _ in [*writers, (reader, reader_log)]:
            if process.poll() is None:
                process.kill()

    commits = [r for path in logs.glob("*.jsonl") for r in _records(path) if "commit" in r]
    searches = [r for r in _records(reader_log) if "search" in r]
    assert len(commits) == 1 + WRITERS * (TOOLS_PER_WRITER + len(NEW_VERSION_AFTER))
    checks, misses = 0, []
    for search in searches:
        for commit in commits:
            if commit["t"] < search["t"]:
                checks += 1
                found = search["found"].get(commit["commit"])
                if found is None or found < commit["version"]:
                    late_ms = (search["t"] - commit["t"]) / 1e6
                    misses.append(f"search {search['search']} missed {commit['commit']} v{commit['version']} "
                                  f"committed {late_ms:.0f} ms before it began (found {found})")
    during = [s for s in searches if min(c["t"] for c in commits if c["commit"] != "reader_own_tool") < s["t"]
              < max(c["t"] for c in commits)]
    summary = (f"{len(searches)} searches ({len(during)} while writers committed), {len(commits)} commits by "
               f"{WRITERS + 1} processes, {checks} tool checks, {len(misses)} misses")
    print(f"\nmultiprocess search: {summary}")
    assert during, f"no search ran while the writers committed: {summary}"
    assert not misses, f"{summary}; first misses: {misses[:10]}"


if __name__ == "__main__":
    child(sys.argv[1], int(sys.argv[2]), Path(sys.argv[3]), Path(sys.argv[4]), Path(sys.argv[5]))
