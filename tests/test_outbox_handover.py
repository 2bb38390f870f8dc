"""A message owed while the dispatcher runs is written leased to it and handed over, not claimed (decision 0027)."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import AsyncIterator
from typing import Any

import pytest

from connector.jobs.outbox import OutboxDispatcher, OutboxSettings
from connector.logs import request_id
from connector.services.negotiations import now_ms
from connector.store import Store, migrate
from connector.store.negotiations import OutboxItem


@pytest.fixture
async def store(database_url: str) -> AsyncIterator[Store]:
    await migrate.upgrade(database_url)
    opened = Store(database_url, pool_size=4)
    try:
        yield opened
    finally:
        await opened.close()


class Recorder:
    """The negotiation service's side of delivery: the message is forgotten by its lease holder, as there."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.delivered: list[str] = []
        self.finished: list[bool] = []

    async def on_delivered(self, item: OutboxItem, answer: Any, owner: str) -> None:
        async with self.store.transaction() as tx:
            self.finished.append(await tx.outbox.done(item.id, owner))
        self.delivered.append(item.id)

    async def on_undeliverable(self, item: OutboxItem, error: str, owner: str) -> None:
        raise AssertionError(f"{item.id} undeliverable: {error}")


def _dispatcher(store: Store, recorder: Recorder, send: Any, in_flight: int = 64) -> OutboxDispatcher:
    # Polling once an hour: a message sent during the test was handed over, never found by a pass.
    settings = OutboxSettings(poll_seconds=3600, lease_seconds=30, max_in_flight=in_flight)
    return OutboxDispatcher(store, recorder, send, settings)  # type: ignore[arg-type]


async def _owe(store: Store, dispatcher: OutboxDispatcher, n: int, now: int) -> list[OutboxItem]:
    lease = dispatcher.lease(now)
    assert lease is not None
    async with store.transaction() as tx:
        items = [
            await tx.outbox.owe(
                f"n{i}", "ContractRequestMessage", "http://peer/x", {"i": i}, "did:web:peer", now, 0, lease
            )
            for i in range(n)
        ]
    return items


async def test_a_message_written_leased_is_sent_once_by_its_holder_without_a_claim(store: Store) -> None:
    recorder = Recorder(store)
    sent: Counter[int] = Counter()
    seen_requests: set[str | None] = set()

    async def send(url: str, counterparty: str, payload: dict[str, Any]) -> tuple[int, Any]:
        sent[payload["i"]] += 1
        seen_requests.add(request_id.get())
        return 200, {}

    dispatcher = _dispatcher(store, recorder, send)
    assert dispatcher.lease(1) is None, "a dispatcher not running takes nothing: its messages are claimed"
    await dispatcher.start()
    try:
        now = now_ms()
        items = await _owe(store, dispatcher, 3, now=now)
        async with store.transaction() as tx:
            # Leased to the dispatcher: another worker (a replica) does not get them while the lease holds.
            assert await tx.outbox.claim("replica", now=now + 1, lease_ms=1000, limit=10) == []
        token = request_id.set("the-request-that-owed-them")
        try:
            for item in items:
                dispatcher.take(item)
        finally:
            request_id.reset(token)
        async with asyncio.timeout(30):
            await dispatcher.drain()
    finally:
        await dispatcher.stop()
    assert sent == Counter({0: 1, 1: 1, 2: 1})
    assert seen_requests == {None}, "a message handed over is sent in the dispatcher's context, not the request's"
    assert recorder.finished == [True, True, True], "the holder of the lease written with the row finishes it"
    async with store.read() as tx:
        assert await tx.outbox.pending("n0") == []


async def test_a_message_leased_to_a_dispatcher_that_died_is_claimed_once_its_lease_expires(store: Store) -> None:
    async def send(url: str, counterparty: str, payload: dict[str, Any]) -> tuple[int, Any]:
        return 200, {}

    dead = _dispatcher(store, Recorder(store), send)
    await dead.start()
    now = now_ms()
    [item] = await _owe(store, dead, 1, now=now)
    await dead.stop()  # died between the commit and the hand-over: the row stays, leased to it
    dead.take(item)  # a hand-over to a stopped dispatcher sends nothing
    async with store.transaction() as tx:
        assert await tx.outbox.claim("next", now=now + 29_999, lease_ms=1000, limit=10) == []
        [again] = await tx.outbox.claim("next", now=now + 30_001, lease_ms=1000, limit=10)
    assert again.id == item.id and again.payload == {"i": 0}


async def test_handed_over_messages_beyond_the_cap_wait_their_turn_with_their_leases_renewed(store: Store) -> None:
    recorder = Recorder(store)
    release = asyncio.Event()
    sending = 0
    most = 0

    async def send(url: str, counterparty: str, payload: dict[str, Any]) -> tuple[int, Any]:
        nonlocal sending, most
        sending += 1
        most = max(most, sending)
        await release.wait()
        sending -= 1
        return 200, {}

    dispatcher = _dispatcher(store, recorder, send, in_flight=1)
    await dispatcher.start()
    try:
        now = now_ms()
        items = await _owe(store, dispatcher, 3, now=now)
        for item in items:
            dispatcher.take(item)
        await asyncio.sleep(0.05)
        await dispatcher.renew_once()
        async with store.transaction() as tx:
            # The queued ones' leases were renewed (from the renewal's time), not left at their writing's.
            assert await tx.outbox.claim("replica", now=now + 30_001, lease_ms=1000, limit=10) == []
        release.set()
        async with asyncio.timeout(30):
            await dispatcher.drain()
    finally:
        await dispatcher.stop()
    assert most == 1
    assert sorted(recorder.delivered) == sorted(item.id for item in items)
