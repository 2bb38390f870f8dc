"""The passports' change feed never skips a change committed late, on SQLite and on PostgreSQL.

With the writer's clock (or a plain sequence) as the cursor, a transaction that took its time before committing
could commit an earlier position after a reader had moved past it. Here a first writer holds its change open, a
second writer changes another passport meanwhile (and commits, on PostgreSQL; SQLite's one writer waits), a reader
reads the feed, and only then does the first commit: continuing from its cursor, the reader gets the first
writer's change too (its number is taken at its commit, after the cursor the reader holds).
"""

from __future__ import annotations

import asyncio

from connector.domain import passport as model
from connector.services.passport_feed import PassportFeed
from connector.services.passports import load, record_of
from connector.store import Store, migrate


def _record(i: int) -> object:
    return record_of(load(model.generate(i)))


async def test_a_change_committed_late_is_not_skipped(database_url: str) -> None:
    await migrate.upgrade(database_url)
    store = Store(database_url, pool_size=4)
    feed = PassportFeed(store)
    try:
        a, b = _record(1), _record(2)
        first_open = asyncio.Event()
        release = asyncio.Event()

        async def slow_writer() -> None:
            async with store.transaction() as tx:
                await tx.passports.put_many([a], 1000)  # type: ignore[list-item]
                first_open.set()
                await release.wait()

        async def quick_writer() -> None:
            async with store.transaction() as tx:
                await tx.passports.put_many([b], 2000)  # type: ignore[list-item]

        slow = asyncio.create_task(slow_writer())
        await first_open.wait()
        quick = asyncio.create_task(quick_writer())
        await asyncio.sleep(0.3)  # the quick writer's chance to commit first
        early = await feed.page(None)
        release.set()
        await asyncio.gather(slow, quick)
        late = await feed.page(early.cursor)
        seen = [e.passport_id for e in early.entries + late.entries]
        assert sorted(seen) == sorted([a.id, b.id]), (early, late)  # type: ignore[attr-defined]
        assert len(seen) == 2
        # A deletion is a tombstone after the cursor.
        async with store.transaction() as tx:
            assert await tx.passports.delete(a.id, 3000)  # type: ignore[attr-defined]
        tomb = await feed.page(late.cursor)
        assert [(e.passport_id, e.deleted, e.data) for e in tomb.entries] == [(a.id, True, None)]  # type: ignore[attr-defined]
        assert (await feed.page(tomb.cursor)).entries == []
    finally:
        await store.close()
