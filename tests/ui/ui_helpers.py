"""Helpers shared by the UI tests: where the app is, and pointing SEA_HOME at a temporary folder."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from graph import resources
from sea.settings import get_settings

ROOT = Path(__file__).resolve().parents[2]
APP = ROOT / "ui" / "app.py"
KEEP = ("SEA_SANDBOX_IMAGE", "SEA_TEST_POSTGRES_URI")


def point_at(home: Path, **env: str) -> dict[str, str]:
    """Make `home` the data directory with only `env` as further SEA_* settings; returns what to restore."""
    saved = {k: v for k, v in os.environ.items() if k.startswith("SEA_")}
    for key in saved:
        if key not in KEEP:
            os.environ.pop(key)
    os.environ["SEA_HOME"] = str(home)
    os.environ.update(env)
    get_settings.cache_clear()
    resources.reset()
    return saved


def restore(saved: dict[str, str]) -> None:
    """Undo `point_at`."""
    resources.reset()
    for key in [k for k in os.environ if k.startswith("SEA_")]:
        os.environ.pop(key)
    os.environ.update(saved)
    get_settings.cache_clear()


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def streamlit_app(log: Path, env: dict[str, str], *extra: str, timeout_s: float = 90) -> Iterator[int]:
    """`streamlit run ui/app.py` from the project folder (so its config applies) on a free port, with exactly
    `env`; yields the port once the server answers its health check, and stops it (its own session) by pid."""
    port = free_port()
    with log.open("wb") as out:
        server = subprocess.Popen(
            [sys.executable, "-m", "streamlit", "run", "ui/app.py", "--server.port", str(port), *extra],
            cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
    try:
        deadline = time.monotonic() + timeout_s
        while True:
            if server.poll() is not None:
                pytest.fail(f"streamlit exited with {server.returncode}: {log.read_text()[-2000:]}")
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/_stcore/health", timeout=2) as response:
                    if response.status == 200:
                        break
            except OSError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"streamlit did not answer within {timeout_s:g} s: {log.read_text()[-2000:]}")
            time.sleep(0.3)
        yield port
    finally:
        os.killpg(server.pid, signal.SIGTERM)  # its own session: the server and nothing else
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
            server.wait(timeout=10)
