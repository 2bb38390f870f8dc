"""A new SQLite database gets 8 KiB pages; one made before keeps its own (decision 0027, fifth round)."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from connector.store import Store, migrate


def _page_size(path: Path) -> int:
    with sqlite3.connect(path) as connection:
        return int(connection.execute("PRAGMA page_size").fetchone()[0])


async def _use(database: Path) -> bool:
    """Migrate the database and store a row through the node's store; return whether a second write saw it."""
    url = f"sqlite+aiosqlite:///{database}"
    await migrate.upgrade(url)
    store = Store(url)
    try:
        async with store.transaction() as tx:
            await tx.seen_tokens.remember("did:web:peer", "jti-1", 10**12)
        async with store.transaction() as tx:
            return not await tx.seen_tokens.remember("did:web:peer", "jti-1", 10**12)
    finally:
        await store.close()


async def test_a_new_database_is_made_with_8_kib_pages_in_wal_mode(tmp_path: Path) -> None:
    database = tmp_path / "node.db"
    assert await _use(database)
    assert _page_size(database) == 8192
    with sqlite3.connect(database) as connection:
        assert connection.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


async def test_a_database_made_with_other_pages_keeps_them_and_its_rows(tmp_path: Path) -> None:
    database = tmp_path / "node.db"
    with sqlite3.connect(database, isolation_level=None) as connection:  # as an earlier release made it
        connection.execute("PRAGMA page_size=16384")
        connection.execute("PRAGMA journal_mode=WAL")
    assert await _use(database)
    assert _page_size(database) == 16384
