"""A transaction that finds no free connection in time is refused as a busy database (503), never an internal error."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from connector.domain.errors import DatabaseUnavailable
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
