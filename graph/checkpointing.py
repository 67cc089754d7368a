"""Checkpoint savers from Settings: SQLite under SEA_HOME (default), PostgreSQL, or in memory.

Scripts, the CLI and the app use `open_checkpointer()` (sync savers); `langgraph dev` / Studio loads
`studio_checkpointer` through `langgraph.json`'s `checkpointer.path` and gets the async saver on the same
SQLite file or PostgreSQL database, so a thread started in one is visible in the other.
"""

from __future__ import annotations

import sqlite3
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from typing import Any

from langgraph.checkpoint.base import BaseCheckpointSaver
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.checkpoint.sqlite import SqliteSaver

from sea.settings import Settings, get_settings

SQLITE_BUSY_TIMEOUT_S = 30.0


class CheckpointerConfigError(ValueError):
    """The checkpointer settings are unusable; the message is one sentence for the user."""


def _require_postgres_uri(settings: Settings) -> str:
    if not settings.postgres_uri:
        raise CheckpointerConfigError(
            "SEA_CHECKPOINTER=postgres needs SEA_POSTGRES_URI, e.g. postgresql://user:pass@localhost:5432/sea."
        )
    return settings.postgres_uri


def sqlite_connection(settings: Settings) -> sqlite3.Connection:
    """A WAL-mode connection to the checkpoint file, shareable between threads (the saver locks)."""
    settings.ensure_home()
    conn = sqlite3.connect(
        settings.checkpoints_path, check_same_thread=False, timeout=SQLITE_BUSY_TIMEOUT_S
    )
    conn.execute("PRAGMA journal_mode=WAL")
    return conn


def _postgres_connection(uri: str) -> Any:
    import psycopg
    from psycopg.rows import dict_row

    try:
        return psycopg.Connection.connect(uri, autocommit=True, prepare_threshold=0, row_factory=dict_row)
    except psycopg.OperationalError as exc:
        first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise CheckpointerConfigError(f"Cannot connect to PostgreSQL for checkpoints: {first_line}") from exc


def make_checkpointer(settings: Settings | None = None) -> BaseCheckpointSaver:
    """A ready-to-use sync saver for the configured backend; it lives as long as the process.

    Prefer `open_checkpointer()` where the caller has a natural end (CLI commands, tests).
    """
    settings = settings or get_settings()
    if settings.checkpointer == "memory":
        return InMemorySaver()
    if settings.checkpointer == "postgres":
        from langgraph.checkpoint.postgres import PostgresSaver

        saver = PostgresSaver(_postgres_connection(_require_postgres_uri(settings)))
        saver.setup()
        return saver
    saver = SqliteSaver(sqlite_connection(settings))
    saver.setup()
    return saver


def close_checkpointer(saver: BaseCheckpointSaver) -> None:
    """Close the connection behind a saver made by `make_checkpointer` (no-op for memory)."""
    conn = getattr(saver, "conn", None)
    if conn is not None:
        conn.close()


@contextmanager
def open_checkpointer(settings: Settings | None = None) -> Iterator[BaseCheckpointSaver]:
    """Yield the configured sync saver and close its connection afterwards."""
    saver = make_checkpointer(settings)
    try:
        yield saver
    finally:
        close_checkpointer(saver)


@asynccontextmanager
async def studio_checkpointer() -> AsyncIterator[BaseCheckpointSaver]:
    """The async saver `langgraph dev` uses (langgraph.json `checkpointer.path`), from the same Settings.

    The server calls only the async methods (aget_tuple, aput, aput_writes, alist), so this yields
    `AsyncSqliteSaver` / `AsyncPostgresSaver` on the same storage the sync savers use.
    """
    settings = get_settings()
    if settings.checkpointer == "memory":
        yield InMemorySaver()
        return
    if settings.checkpointer == "postgres":
        from langgraph.checkpoint.postgres.aio import AsyncPostgresSaver

        async with AsyncPostgresSaver.from_conn_string(_require_postgres_uri(settings)) as saver:
            await saver.setup()
            yield saver
        return
    import aiosqlite
    from langgraph.checkpoint.sqlite.aio import AsyncSqliteSaver

    settings.ensure_home()
    async with aiosqlite.connect(settings.checkpoints_path, timeout=SQLITE_BUSY_TIMEOUT_S) as conn:
        saver = AsyncSqliteSaver(conn)
        await saver.setup()
        yield saver
