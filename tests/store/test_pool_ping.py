"""PostgreSQL connections: one the server closed while it sat in the pool is replaced before use; reads run without BEGIN.

The pool pings a connection only when it has been idle for `engine.IDLE_PING_SECONDS` (a connection in steady
use is not pinged before every transaction: on asyncpg that ping is three round trips). The tests set that
threshold to zero, close the pooled connection from the server's side (what a PostgreSQL restart, an idle
timeout or a firewall does) and start a transaction.
"""

from __future__ import annotations

import asyncio

import asyncpg
import pytest
from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError

from connector.domain.errors import DatabaseUnavailable
from connector.store import Store, engine

pytestmark = pytest.mark.postgres


async def _close_from_the_server(url: str) -> int:
    """Terminate every other session on the database of `url`; return how many were closed."""
    parsed = make_url(url)
    admin = await asyncpg.connect(parsed.set(drivername="postgresql").render_as_string(hide_password=False))
    try:
        closed = await admin.fetch(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid()",
            parsed.database,
        )
    finally:
        await admin.close()
    return len(closed)


async def _count(store: Store) -> int:
    async with store.transaction() as tx:
        return int((await tx.connection.execute(text("SELECT 1"))).scalar_one())


async def test_an_idle_connection_closed_by_the_server_is_replaced_before_use(
    postgres_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(engine, "IDLE_PING_SECONDS", 0.0)
    store = Store(postgres_url, pool_size=1)
    try:
        assert await _count(store) == 1
        assert await _close_from_the_server(postgres_url) == 1  # the pooled connection, idle in the pool
        assert await _count(store) == 1  # its ping failed: the pool opened a new one for this transaction
        async with store.read() as tx:
            assert (await tx.connection.execute(text("SELECT 2"))).scalar_one() == 2
    finally:
        await store.close()


async def test_a_connection_in_steady_use_is_not_pinged(postgres_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    # The other side of the threshold: a connection back from a transaction a moment ago is handed out as it is.
    # Closed from the server in that moment, its transaction fails once (as with any connection dying in use),
    # and the pool replaces it for the next one.
    monkeypatch.setattr(engine, "IDLE_PING_SECONDS", 3600.0)
    store = Store(postgres_url, pool_size=1)
    try:
        assert await _count(store) == 1
        assert await _close_from_the_server(postgres_url) == 1
        with pytest.raises((DBAPIError, DatabaseUnavailable)):
            await _count(store)
        assert await _count(store) == 1
    finally:
        await store.close()


async def test_a_read_on_postgresql_runs_without_a_transaction(postgres_url: str) -> None:
    # No BEGIN and COMMIT around a read (two round trips): each statement is its own transaction, as each
    # statement of a READ COMMITTED transaction takes its own snapshot anyway. now() is the start of the
    # transaction: inside one it stays the same from statement to statement.
    store = Store(postgres_url, pool_size=1)
    try:
        async with store.read() as tx:
            first = (await tx.connection.execute(text("SELECT now()"))).scalar_one()
            await asyncio.sleep(0.01)
            second = (await tx.connection.execute(text("SELECT now()"))).scalar_one()
        assert second > first
        async with store.transaction() as tx:  # a write transaction is one transaction, as before
            first = (await tx.connection.execute(text("SELECT now()"))).scalar_one()
            await asyncio.sleep(0.01)
            second = (await tx.connection.execute(text("SELECT now()"))).scalar_one()
        assert second == first
        assert [name for name, _ in store.pools()] == ["main"]
    finally:
        await store.close()
