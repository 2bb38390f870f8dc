"""The lifecycle repository on every store: links kept per passport, notifications remembered once per message id."""

from __future__ import annotations

import asyncio

from connector.domain.lifecycle import Lifecycle, Link, Notification
from connector.store import Store


def _note(message_id: str, direction: str = "in", passport_id: str = "p1", at: int = 1) -> Notification:
    return Notification(
        message_id, direction, "did:web:x", "ctx", passport_id, {"header": {}}, "received", None, at, at
    )


async def test_a_lifecycle_row_is_stored_replaced_and_read_back(store: Store) -> None:
    row = Lifecycle("p1", (Link("p0", "did:web:a", "http://a/api/dsp", "BPNL000000000AAA", 5),), (), None, {}, 10)
    async with store.transaction() as tx:
        assert await tx.lifecycle.get("p1") is None
        await tx.lifecycle.put(row)
    superseded = Lifecycle("p1", row.predecessors, (Link("p2", "did:web:b"),), 20, {"partOf": []}, 20)
    async with store.transaction() as tx:
        await tx.lifecycle.put(superseded)
    async with store.read() as tx:
        assert await tx.lifecycle.get("p1") == superseded
        assert await tx.lifecycle.successors_of(["p1", "p9"]) == {"p1": ["p2"]}


async def test_a_message_id_is_recorded_once_per_direction_even_when_two_writers_race(store: Store) -> None:
    async def record(item: Notification) -> bool:
        async with store.transaction() as tx:
            return await tx.lifecycle.add_notification(item)

    outcomes = await asyncio.gather(*(record(_note("m1")) for _ in range(4)))
    assert sorted(outcomes) == [False, False, False, True]
    assert await record(_note("m1", "out")) is True  # the same id sent is another row
    async with store.transaction() as tx:
        await tx.lifecycle.set_state("m1", "out", "failed", "x" * 3000, 7)
    async with store.read() as tx:
        sent = await tx.lifecycle.notification("m1", "out")
        assert sent is not None and sent.state == "failed" and sent.reason == "x" * 2000 and sent.updated_at == 7
        assert sorted(n.direction for n in await tx.lifecycle.notifications(passport_id="p1")) == ["in", "out"]
        assert [n.message_id for n in await tx.lifecycle.notifications("in")] == ["m1"]
        assert await tx.lifecycle.notifications(passport_id="other") == []
