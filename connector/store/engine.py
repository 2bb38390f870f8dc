"""Database engines: SQLite (WAL, busy timeout, immediate write transactions) or PostgreSQL (asyncpg).

On SQLite, reads run on the event loop's thread (see InlineSqlite and docs/decisions/0004-sqlite-inline-reads.md);
writes keep aiosqlite's worker thread, since a write may wait for another process's write lock.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

import aiosqlite
import orjson
from sqlalchemy import event
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

SQLITE_BUSY_TIMEOUT_MS = 5000
# Reads run on the event loop's thread: a reader that finds the database busy (WAL recovery after a crash,
# an outside tool's checkpoint; never an ordinary writer) waits this long at most, not the writers' 5 s.
SQLITE_READ_BUSY_TIMEOUT_MS = 250


def _to_json(value: Any) -> str:
    return orjson.dumps(value, option=orjson.OPT_NON_STR_KEYS).decode()


# JSON columns through orjson (the standard library's decoder was the largest single cost of reading a passport).
_JSON: dict[str, Any] = {"json_serializer": _to_json, "json_deserializer": orjson.loads}


def create_engines(
    url: str, pool_size: int = 10, connect_args: dict[str, Any] | None = None
) -> tuple[AsyncEngine, AsyncEngine]:
    """Return (write engine, read engine). On PostgreSQL both are the same engine."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        database = parsed.database or ""
        if database and database != ":memory:":
            Path(database).parent.mkdir(parents=True, exist_ok=True)
        # SQLite has one writer at a time: one write connection per process makes writers queue fairly in
        # asyncio instead of sleeping in SQLite's busy handler (which stalled writers for seconds under load).
        write = create_async_engine(url, pool_size=1, max_overflow=0, **_JSON)
        read = create_async_engine(
            url,
            pool_size=pool_size,
            max_overflow=0,
            async_creator=partial(_inline_connection, database or ":memory:"),
            **_JSON,
        )
        _configure_sqlite(write, immediate=True, busy_ms=SQLITE_BUSY_TIMEOUT_MS)
        _configure_sqlite(read, immediate=False, busy_ms=SQLITE_READ_BUSY_TIMEOUT_MS)
        return write, read
    engine = create_async_engine(
        url,
        pool_size=pool_size,
        max_overflow=pool_size,
        pool_pre_ping=True,
        connect_args=connect_args or {},
        **_JSON,
    )
    return engine, engine


def _configure_sqlite(engine: AsyncEngine, immediate: bool, busy_ms: int) -> None:
    sync_engine = engine.sync_engine

    @event.listens_for(sync_engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Let SQLAlchemy, not the driver, decide when transactions begin.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute(f"PRAGMA busy_timeout={busy_ms}")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA synchronous=NORMAL")
        # LIKE is case-sensitive on PostgreSQL; make SQLite agree (ilike is the case-insensitive one).
        cursor.execute("PRAGMA case_sensitive_like=ON")
        cursor.close()

    @event.listens_for(sync_engine, "begin")
    def _on_begin(connection: Any) -> None:
        # Writers take the lock up front so a read-then-write never fails on lock upgrade.
        connection.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")


class InlineSqlite(aiosqlite.Connection):
    """aiosqlite's connection with each statement run at once on the calling (event loop) thread.

    aiosqlite hands every call to a worker thread and back: a read transaction through SQLAlchemy makes nine
    such trips (about 0.2 ms each on a small machine, and each takes the GIL back and forth), where the
    SQLite work itself is a few microseconds. Readers in WAL mode do not wait for writers, so running reads
    inline blocks the loop only for the statement's own work. Connecting, closing and SQLAlchemy's
    isolation-level switch still go through the worker thread, which otherwise sleeps.
    """

    async def _execute(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        if not self._running or not self._connection:
            raise ValueError("Connection closed")
        return fn(*args, **kwargs)


async def _inline_connection(database: str) -> InlineSqlite:
    connect = partial(sqlite3.connect, database, check_same_thread=False, timeout=SQLITE_READ_BUSY_TIMEOUT_MS / 1000)
    connection = InlineSqlite(connect, 64)
    connection._thread.daemon = True  # as SQLAlchemy makes aiosqlite's own: a forgotten connection never holds up exit
    await connection
    return connection
