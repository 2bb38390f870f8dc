"""Bounded growth: the data-plane access log and the token replay cache are pruned on a schedule.

Access-log entries older than CONNECTOR_ACCESS_LOG_RETENTION_DAYS go, recent ones stay; a token id goes once
its token has expired, and an unexpired token is still refused when replayed. Pruning deletes in batches
(one short transaction each) and replicas pruning one PostgreSQL database at the same time split the work.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest
from sqlalchemy import func, select

from connector.app import Node
from connector.identity.errors import Reason, TokenRejected
from connector.services.retention import DAY_MS, RetentionService
from connector.store import Store, migrate
from connector.store.tables import data_access, seen_tokens
from connector.store.transfers import Access
from tests.conftest import NodeFactory

NOW = 1_800_000_000.0  # a fixed clock: epoch seconds


@pytest.fixture
async def store(database_url: str) -> AsyncIterator[Store]:
    await migrate.upgrade(database_url)
    opened = Store(database_url)
    try:
        yield opened
    finally:
        await opened.close()


def _access(at_ms: int, path: str) -> Access:
    return Access(at_ms, None, None, "did:web:consumer.example", "asset-1", "GET", path, 200, 10)


async def _paths(store: Store) -> list[str]:
    async with store.read() as tx:
        rows = await tx.connection.execute(select(data_access.c.path).order_by(data_access.c.path))
        return [str(r[0]) for r in rows]


async def _token_ids(store: Store) -> list[str]:
    async with store.read() as tx:
        rows = await tx.connection.execute(select(seen_tokens.c.jti).order_by(seen_tokens.c.jti))
        return [str(r[0]) for r in rows]


async def _fill(store: Store, old: int, recent: int) -> None:
    now_ms = int(NOW * 1000)
    async with store.transaction() as tx:
        await tx.access_log.add_many(
            [_access(now_ms - 31 * DAY_MS - i, f"/old/{i:04d}") for i in range(old)]
            + [_access(now_ms - 29 * DAY_MS + i, f"/recent/{i:04d}") for i in range(recent)]
        )
        for i in range(old):
            assert await tx.seen_tokens.remember("did:web:peer.example", f"expired-{i:04d}", int(NOW) - 1 - i)
        for i in range(recent):
            assert await tx.seen_tokens.remember("did:web:peer.example", f"live-{i:04d}", int(NOW) + 60 + i)


async def test_entries_past_retention_go_and_recent_ones_stay(store: Store) -> None:
    await _fill(store, old=25, recent=5)
    pruned = await RetentionService(store, access_log_days=30, batch=7, clock=lambda: NOW).prune_once()
    # 25 rows in batches of 7: four transactions for each table, none holding the write lock for long.
    assert (pruned.access_log, pruned.replay_cache) == (25, 25)
    assert await _paths(store) == [f"/recent/{i:04d}" for i in range(5)]
    assert await _token_ids(store) == [f"live-{i:04d}" for i in range(5)]
    # Replay protection holds for the tokens that have not expired.
    async with store.transaction() as tx:
        assert not await tx.seen_tokens.remember("did:web:peer.example", "live-0000", int(NOW) + 60)
    # A second pass finds nothing more.
    again = await RetentionService(store, access_log_days=30, batch=7, clock=lambda: NOW).prune_once()
    assert (again.access_log, again.replay_cache) == (0, 0)


async def test_retention_zero_keeps_the_access_log(store: Store) -> None:
    await _fill(store, old=3, recent=1)
    pruned = await RetentionService(store, access_log_days=0, clock=lambda: NOW).prune_once()
    assert (pruned.access_log, pruned.replay_cache) == (0, 3)
    assert len(await _paths(store)) == 4


async def test_replicas_pruning_at_once_split_the_rows(database_url: str) -> None:
    await migrate.upgrade(database_url)
    replicas = [Store(database_url), Store(database_url)]
    try:
        await _fill(replicas[0], old=200, recent=10)
        passes = await asyncio.gather(
            *(RetentionService(r, access_log_days=30, batch=20, clock=lambda: NOW).prune_once() for r in replicas)
        )
        assert sum(p.access_log for p in passes) == 200
        assert sum(p.replay_cache for p in passes) == 200
        assert await _paths(replicas[1]) == [f"/recent/{i:04d}" for i in range(10)]
        assert len(await _token_ids(replicas[1])) == 10
    finally:
        for replica in replicas:
            await replica.close()


async def _count(node: Node, table: Any) -> int:
    async with node.store.read() as tx:
        return int((await tx.connection.execute(select(func.count()).select_from(table))).scalar_one())


async def test_a_running_node_prunes_on_its_schedule_and_still_refuses_replays(node_factory: NodeFactory) -> None:
    provider: Node = await node_factory(access_log_retention_days=1, prune_interval_seconds=0.1)
    consumer: Node = await node_factory()
    # A token the provider accepted: its id is kept while the token lives.
    token = consumer.identity.token_for(provider.settings.effective_did)
    await provider.identity.verify_self_issued(token)
    now_ms = int(time.time() * 1000)
    async with provider.store.transaction() as tx:
        await tx.access_log.add_many([_access(now_ms - 2 * DAY_MS, "/old"), _access(now_ms, "/recent")])
        await tx.seen_tokens.remember("did:web:gone.example", "expired", int(time.time()) - 10)
    async with asyncio.timeout(30):
        # The pruner runs every 0.1 s here: wait for its effect, not for a time.
        while True:
            if await _count(provider, data_access) == 1 and "expired" not in await _token_ids(provider.store):
                break
            await asyncio.sleep(0.05)
    assert await _paths(provider.store) == ["/recent"]
    with pytest.raises(TokenRejected) as refused:
        await provider.identity.verify_self_issued(token)
    assert refused.value.reason is Reason.REPLAYED
