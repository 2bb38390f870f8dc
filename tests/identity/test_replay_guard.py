"""Replay protection of reads and state-changing requests (decision 0025), on SQLite and PostgreSQL.

A read's token id is refused again at once by the process that took it, and reaches the database (for the other
replicas) with the next flush; a state-changing request's id is in the database before it goes on. A full memory
never lets a replay through.
"""

from __future__ import annotations

import asyncio
import time

from sqlalchemy import select

from connector.services.identity import ReplayGuard
from connector.store import Store
from connector.store.tables import seen_tokens

PEER = "did:web:peer.example"


async def _stored(store: Store) -> list[str]:
    async with store.read() as tx:
        return sorted((await tx.connection.execute(select(seen_tokens.c.jti))).scalars())


async def test_a_read_is_refused_again_at_once_and_reaches_the_database_with_the_flush(store: Store) -> None:
    now = int(time.time())
    guard = ReplayGuard(store, flush_seconds=3600)
    replica = ReplayGuard(store, flush_seconds=3600)
    assert await guard.reads.remember(PEER, "r1", now + 60, now)
    assert not await guard.reads.remember(PEER, "r1", now + 60, now)  # the same process refuses the replay
    assert not await guard.writes.remember(PEER, "r1", now + 60, now)  # also as a state-changing request
    assert await _stored(store) == []  # answering the read wrote nothing
    await guard.flush()
    assert await _stored(store) == ["r1"]
    # Another replica refuses it for a state-changing request from then on. Its reads look at its own memory
    # only: there the token could be read with once more (the documented rule, decision 0025).
    assert not await replica.writes.remember(PEER, "r1", now + 60, now)
    third = ReplayGuard(store, flush_seconds=3600)
    assert await third.reads.remember(PEER, "r1", now + 60, now)
    for closing in (guard, replica, third):
        await closing.close()


async def test_a_state_changing_requests_id_is_in_the_database_before_it_goes_on(store: Store) -> None:
    now = int(time.time())
    guard = ReplayGuard(store, flush_seconds=3600)
    replica = ReplayGuard(store, flush_seconds=3600)
    assert await guard.writes.remember(PEER, "w1", now + 60, now)
    assert await _stored(store) == ["w1"]
    assert not await guard.reads.remember(PEER, "w1", now + 60, now)  # a read with a used token: refused
    assert not await replica.writes.remember(PEER, "w1", now + 60, now)
    # Another issuer's token with the same id is another token.
    assert await guard.writes.remember("did:web:other.example", "w1", now + 60, now)
    await guard.close()
    await replica.close()


async def test_a_full_memory_sends_ids_to_the_database_and_still_refuses_every_replay(store: Store) -> None:
    now = int(time.time())
    guard = ReplayGuard(store, max_entries=2, flush_seconds=3600)
    assert await guard.reads.remember(PEER, "a", now + 60, now)
    assert await guard.reads.remember(PEER, "b", now + 60, now)
    assert await guard.reads.remember(PEER, "c", now + 90, now)  # no room: recorded in the database at once
    assert "c" in await _stored(store)
    for jti in ("a", "b", "c"):
        assert not await guard.reads.remember(PEER, jti, now + 60, now), jti
        assert not await guard.writes.remember(PEER, jti, now + 60, now), jti
    # While an id lives only in the database, new reads are checked there too; a replay of one is refused.
    assert await guard.reads.remember(PEER, "d", now + 60, now)
    assert not await guard.reads.remember(PEER, "d", now + 60, now)
    await guard.close()
    assert set(await _stored(store)) >= {"a", "b", "c"}


async def test_reads_in_the_database_are_written_before_the_answer(store: Store) -> None:
    now = int(time.time())
    guard = ReplayGuard(store, reads_in_database=True)
    assert await guard.reads.remember(PEER, "x", now + 60, now)
    assert await _stored(store) == ["x"]
    assert not await ReplayGuard(store, reads_in_database=True).reads.remember(PEER, "x", now + 60, now)
    assert not await ReplayGuard(store, flush_seconds=3600).writes.remember(PEER, "x", now + 60, now)
    await guard.close()


async def test_the_flush_runs_by_itself_and_at_close(store: Store) -> None:
    now = int(time.time())
    guard = ReplayGuard(store, flush_seconds=3600)
    for i in range(5):
        assert await guard.reads.remember(PEER, f"t{i}", now + 60, now)
    await guard.close()  # a graceful stop writes what is pending
    assert await _stored(store) == [f"t{i}" for i in range(5)]
    later = ReplayGuard(store, flush_seconds=0.01)
    assert await later.reads.remember(PEER, "u", now + 60, now)
    async with asyncio.timeout(30):
        # Wait for the scheduled flush's effect, not for a time.
        while True:
            if await _stored(store) == [*(f"t{i}" for i in range(5)), "u"]:
                break
            await asyncio.sleep(0.05)
    await later.close()
