"""Database engines: SQLite (WAL, busy timeout, immediate write transactions) or PostgreSQL (asyncpg)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

SQLITE_BUSY_TIMEOUT_MS = 5000


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
        write = create_async_engine(url, pool_size=1, max_overflow=0)
        read = create_async_engine(url, pool_size=pool_size, max_overflow=0)
        _configure_sqlite(write, immediate=True)
        _configure_sqlite(read, immediate=False)
        return write, read
    engine = create_async_engine(
        url,
        pool_size=pool_size,
        max_overflow=pool_size,
        pool_pre_ping=True,
        connect_args=connect_args or {},
    )
    return engine, engine


def _configure_sqlite(engine: AsyncEngine, immediate: bool) -> None:
    sync_engine = engine.sync_engine

    @event.listens_for(sync_engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Let SQLAlchemy, not the driver, decide when transactions begin.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA synchronous=NORMAL")
        # LIKE is case-sensitive on PostgreSQL; make SQLite agree (ilike is the case-insensitive one).
        cursor.execute("PRAGMA case_sensitive_like=ON")
        cursor.close()

    @event.listens_for(sync_engine, "begin")
    def _on_begin(connection: Any) -> None:
        # Writers take the lock up front so a read-then-write never fails on lock upgrade.
        connection.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")
