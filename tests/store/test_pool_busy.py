"""A transaction that finds no free connection in time is refused as a busy database (503), never an internal error."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from connector.domain.errors import DatabaseUnavailable
from connector.services.passport_pipeline import BULK_WRITE_CACHE_KIB
from connector.store import Store
from connector.transport.problems import status_of


async def test_a_writer_that_waits_past_the_pool_timeout_is_told_the_database_is_busy(tmp_path: Path) -> None:
    store = Store(f"sqlite+aiosqlite:///{tmp_path / 'node.db'}", pool_timeout=0.2)
    try:
        holding = asyncio.Event()
        release = asyncio.Event()

        async def hold() -> None:
            async with store.transaction():
                holding.set()
                await release.wait()

        holder = asyncio.create_task(hold())
        await holding.wait()
        with pytest.raises(DatabaseUnavailable) as caught:
            async with store.transaction():
                pass
        assert caught.value.timed_out
        assert "no connection came free within 0.2 s" in caught.value.message
        assert status_of(caught.value) == (503, "Database unavailable")
        release.set()
        await holder
        async with store.transaction():  # the writer is free again: the refused wait left nothing behind
            pass
    finally:
        await store.close()


async def test_a_reader_that_waits_past_the_pool_timeout_is_told_the_database_is_busy(tmp_path: Path) -> None:
    store = Store(f"sqlite+aiosqlite:///{tmp_path / 'node.db'}", pool_size=1, pool_timeout=0.2)
    try:
        async with store.read():
            with pytest.raises(DatabaseUnavailable, match="busier than its pool"):
                async with store.read():
                    pass
        async with store.read():
            pass
    finally:
        await store.close()


async def test_a_store_for_bulk_writes_gives_its_write_connection_the_page_cache_asked_for(tmp_path: Path) -> None:
    # `connector passports import` asks for a larger cache (passport_pipeline.BULK_WRITE_CACHE_KIB); the node's
    # readers, and every connection of a store that asks for nothing, keep SQLite's default (2,000 KiB).
    url = f"sqlite+aiosqlite:///{tmp_path / 'node.db'}"
    bulk, plain = Store(url, write_cache_kib=BULK_WRITE_CACHE_KIB), Store(url)
    try:
        for store, writes, reads in ((bulk, -BULK_WRITE_CACHE_KIB, -2000), (plain, -2000, -2000)):
            async with store._write.connect() as connection:
                assert (await connection.exec_driver_sql("PRAGMA cache_size")).scalar() == writes
            async with store._read.connect() as connection:
                assert (await connection.exec_driver_sql("PRAGMA cache_size")).scalar() == reads
    finally:
        await bulk.close()
        await plain.close()
