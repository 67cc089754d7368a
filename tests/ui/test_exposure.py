"""The real app (`streamlit run ui/app.py`, the project's .streamlit/config.toml) listens on the loopback
interface only, shows viewers no developer options, and is exposed only when asked to explicitly."""

from __future__ import annotations

import asyncio
import os
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from tests.ui.ui_helpers import streamlit_app

LISTEN = "0A"  # TCP state in /proc/net/tcp


def listening_addresses(port: int) -> set[str]:
    """The local addresses with a listening TCP socket on `port` (IPv4 and IPv6), from the kernel's tables."""
    found: set[str] = set()
    for table, width in (("/proc/net/tcp", 8), ("/proc/net/tcp6", 32)):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            address, _, port_hex = fields[1].partition(":")
            if fields[3] != LISTEN or int(port_hex, 16) != port:
                continue
            raw = bytes.fromhex(address)
            if width == 8:
                found.add(socket.inet_ntop(socket.AF_INET, raw[::-1]))
            else:  # four little-endian 32-bit words
                words = b"".join(raw[i : i + 4][::-1] for i in range(0, 16, 4))
                found.add(socket.inet_ntop(socket.AF_INET6, words))
    return found


@contextmanager
def running_app(tmp_path: Path, *extra: str) -> Iterator[tuple[int, Path]]:
    """`streamlit run ui/app.py` from the project folder (so its config applies), on a free port; stopped by pid."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SEA_", "STREAMLIT_"))}
    env["SEA_HOME"] = str(tmp_path / "sea-home")
    log = tmp_path / "streamlit.log"
    with streamlit_app(log, env, *extra) as port:
        yield port, log


def toolbar_mode(port: int) -> str:
    """The toolbar mode the server sends a browser in its first session message (over its real websocket)."""
    import websockets
    from streamlit.proto.BackMsg_pb2 import BackMsg
    from streamlit.proto.ForwardMsg_pb2 import ForwardMsg
    from streamlit.proto.NewSession_pb2 import Config

    async def ask() -> str:
        url = f"ws://127.0.0.1:{port}/_stcore/stream"
        async with websockets.connect(url, subprotocols=["streamlit"], origin=f"http://127.0.0.1:{port}") as ws:
            back = BackMsg()
            back.rerun_script.query_string = ""
            await ws.send(back.SerializeToString())
            for _ in range(200):
                msg = ForwardMsg()
                msg.ParseFromString(await asyncio.wait_for(ws.recv(), 60))
                if msg.WhichOneof("type") == "new_session":
                    return str(Config.ToolbarMode.Name(msg.new_session.config.toolbar_mode))
        raise AssertionError("the server sent no new_session message")

    return asyncio.run(ask())


@pytest.mark.slow
def test_the_app_listens_on_loopback_only_and_hides_developer_options(tmp_path: Path) -> None:
    with running_app(tmp_path) as (port, log):
        assert listening_addresses(port) == {"127.0.0.1"}
        assert toolbar_mode(port) == "VIEWER"  # no deploy button, rerun or clear-cache for viewers
        text = log.read_text()
    assert "Network URL" not in text and "External URL" not in text, text
    assert f"URL: http://127.0.0.1:{port}" in text


@pytest.mark.slow
def test_exposing_the_app_is_an_explicit_setting(tmp_path: Path) -> None:
    with running_app(tmp_path, "--server.address", "0.0.0.0") as (port, log):
        assert listening_addresses(port) == {"0.0.0.0"}
        text = log.read_text()
    assert "Network URL" in text
