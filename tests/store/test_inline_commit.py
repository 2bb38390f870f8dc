"""The SQLite writer commits on the loop's thread; its WAL is checkpointed on a connection of its own (decision 0027)."""

from __future__ import annotations

import asyncio
import sqlite3
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from connector.store import Store, engine, migrate


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[Store]:
    url = f"sqlite+aiosqlite:///{tmp_path / 'store.db'}"
    await migrate.upgrade(url)
    opened = Store(url, pool_size=2)
    try:
        yield opened
    finally:
        await opened.close()


async def _writer(store: Store) -> engine.InlineWriteSqlite:
    async with store.transaction() as tx:
        raw = await tx.connection.get_raw_connection()
        driver = raw.driver_connection
    assert isinstance(driver, engine.InlineWriteSqlite)
    return driver


def _main_file_tokens(database: Path) -> int:
    """Count the seen tokens in the database file itself, ignoring its WAL (what a checkpoint has copied)."""
    with sqlite3.connect(f"file:{database}?mode=ro&immutable=1", uri=True) as connection:
        return int(connection.execute("SELECT count(*) FROM seen_tokens").fetchone()[0])


async def test_the_writer_does_not_checkpoint_its_commits_itself(store: Store) -> None:
    writer = await _writer(store)
    assert writer.checkpointer is not None
    async with store.transaction() as tx:
        mode = (await tx.connection.exec_driver_sql("PRAGMA wal_autocheckpoint")).scalar()
        journal = (await tx.connection.exec_driver_sql("PRAGMA journal_mode")).scalar()
    assert (mode, journal) == (0, "wal")


async def test_commits_are_checkpointed_into_the_database_file_off_the_writer(store: Store, tmp_path: Path) -> None:
    database = tmp_path / "store.db"
    writer = await _writer(store)
    assert writer.checkpointer is not None
    await asyncio.sleep(engine.CHECKPOINT_EVERY_SECONDS)  # the next commit finds a checkpoint due
    before = writer.checkpointer.completed
    for _ in range(5):
        async with store.transaction() as tx:
            assert await tx.seen_tokens.remember("did:p", uuid.uuid4().hex, 10**12)
    async with asyncio.timeout(10):
        await writer.checkpointer.settled()
    assert writer.checkpointer.completed > before
    # Committed in the WAL by the writer, copied into the database file by the checkpoint's own connection
    # (the first commits at least: the checkpoint started after the first of the five).
    assert _main_file_tokens(database) >= 1
    async with store.read() as tx:
        assert (await tx.connection.exec_driver_sql("SELECT count(*) FROM seen_tokens")).scalar() == 5


async def test_a_commit_survives_the_process_without_a_checkpoint(tmp_path: Path) -> None:
    """A commit is durable in the WAL alone: another connection reads it before any checkpoint (and after close)."""
    url = f"sqlite+aiosqlite:///{tmp_path / 'store.db'}"
    await migrate.upgrade(url)
    store = Store(url, pool_size=1)
    try:
        async with store.transaction() as tx:
            assert await tx.seen_tokens.remember("did:p", "jti-durable", 10**12)
        with sqlite3.connect(tmp_path / "store.db") as other:
            assert other.execute("SELECT count(*) FROM seen_tokens WHERE jti = 'jti-durable'").fetchone()[0] == 1
    finally:
        await store.close()
    with sqlite3.connect(tmp_path / "store.db") as other:
        assert other.execute("SELECT count(*) FROM seen_tokens WHERE jti = 'jti-durable'").fetchone()[0] == 1
