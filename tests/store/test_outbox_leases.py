"""Outbox leases: workers claiming at the same time never get the same message (SQLite and PostgreSQL)."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import AsyncIterator

import pytest

from connector.store import Store, migrate
from connector.store.negotiations import OutboxItem


@pytest.fixture
async def stores(database_url: str) -> AsyncIterator[list[Store]]:
    """Two stores on one database: two replicas of a node."""
    await migrate.upgrade(database_url)
    opened = [Store(database_url, pool_size=4), Store(database_url, pool_size=4)]
    try:
        yield opened
    finally:
        for store in opened:
            await store.close()


def _item(i: int) -> OutboxItem:
    return OutboxItem(
        f"m{i:03d}", f"n{i % 7}", "ContractRequestMessage", "http://peer/x", {"i": i}, "did:web:peer", 0, 0
    )


async def test_concurrent_claims_never_share_a_message(stores: list[Store]) -> None:
    async with stores[0].transaction() as tx:
        for i in range(120):
            await tx.outbox.add(_item(i), now=1)
    claimed: Counter[str] = Counter()

    async def worker(store: Store, owner: str) -> None:
        while True:
            async with store.transaction() as tx:
                got = await tx.outbox.claim(owner, now=1000, lease_ms=60_000, limit=7)
            if not got:
                return
            claimed.update(item.id for item in got)
            await asyncio.sleep(0)

    await asyncio.gather(*(worker(stores[i % 2], f"worker-{i}") for i in range(6)))
    assert len(claimed) == 120
    assert set(claimed.values()) == {1}, [k for k, v in claimed.items() if v > 1]


async def test_an_expired_lease_is_claimed_again_and_only_its_holder_may_finish(stores: list[Store]) -> None:
    first, second = stores
    async with first.transaction() as tx:
        await tx.outbox.add(_item(1), now=1)
        [item] = await tx.outbox.claim("a", now=1000, lease_ms=100, limit=10)
    async with second.transaction() as tx:
        assert await tx.outbox.claim("b", now=1050, lease_ms=100, limit=10) == []
        [again] = await tx.outbox.claim("b", now=1200, lease_ms=100, limit=10)
    assert again.id == item.id
    async with first.transaction() as tx:
        assert await tx.outbox.done(item.id, "a") is False, "a worker whose lease expired must not finish the message"
    async with second.transaction() as tx:
        assert await tx.outbox.done(item.id, "b") is True
