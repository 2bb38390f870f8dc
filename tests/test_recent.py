"""The short-lived read cache: one read per key however many ask at once, expiry, forgetting, failures."""

from __future__ import annotations

import asyncio

import pytest

from connector.services.recent import Recent


class Reader:
    """Counts reads; each read waits for `gate` (when set) and returns the read's number."""

    def __init__(self) -> None:
        self.reads = 0
        self.gate: asyncio.Event | None = None
        self.fail: Exception | None = None

    async def __call__(self) -> int:
        self.reads += 1
        number = self.reads
        if self.gate is not None:
            await self.gate.wait()
        if self.fail is not None:
            raise self.fail
        return number


async def test_many_callers_at_once_share_one_read() -> None:
    recent: Recent[str, int] = Recent(60)
    reader = Reader()
    reader.gate = asyncio.Event()
    callers = [asyncio.create_task(recent.get("t", reader)) for _ in range(50)]
    await asyncio.sleep(0)
    reader.gate.set()
    assert await asyncio.gather(*callers) == [1] * 50
    assert reader.reads == 1
    assert await recent.get("t", reader) == 1 and reader.reads == 1  # kept


async def test_a_value_expires() -> None:
    recent: Recent[str, int] = Recent(0.05)
    reader = Reader()
    assert await recent.get("t", reader) == 1
    await asyncio.sleep(0.08)
    assert await recent.get("t", reader) == 2


async def test_zero_seconds_keeps_nothing() -> None:
    recent: Recent[str, int] = Recent(0)
    reader = Reader()
    assert [await recent.get("t", reader) for _ in range(3)] == [1, 2, 3]
    assert len(recent) == 0


async def test_forget_drops_the_value_and_a_read_under_way() -> None:
    recent: Recent[str, int] = Recent(60)
    reader = Reader()
    assert await recent.get("t", reader) == 1
    recent.forget("t")
    reader.gate = asyncio.Event()
    early = asyncio.create_task(recent.get("t", reader))  # read 2 starts before the owner writes again
    await asyncio.sleep(0)
    recent.forget("t")  # the owner wrote: read 2 may have seen the old row
    reader.gate.set()
    assert await early == 2
    assert await recent.get("t", reader) == 3  # read 2 was not kept


async def test_a_failed_read_reaches_every_waiter_and_is_not_kept() -> None:
    recent: Recent[str, int] = Recent(60)
    reader = Reader()
    reader.gate, reader.fail = asyncio.Event(), LookupError("database down")
    callers = [asyncio.create_task(recent.get("t", reader)) for _ in range(3)]
    await asyncio.sleep(0)
    reader.gate.set()
    results = await asyncio.gather(*callers, return_exceptions=True)
    assert all(isinstance(r, LookupError) for r in results) and reader.reads == 1
    reader.fail, reader.gate = None, None
    assert await recent.get("t", reader) == 2


async def test_when_the_reading_caller_is_cancelled_a_waiter_reads_itself() -> None:
    recent: Recent[str, int] = Recent(60)
    reader = Reader()
    reader.gate = asyncio.Event()
    first = asyncio.create_task(recent.get("t", reader))
    await asyncio.sleep(0)
    second = asyncio.create_task(recent.get("t", reader))
    await asyncio.sleep(0)
    first.cancel()
    with pytest.raises(asyncio.CancelledError):
        await first
    reader.gate.set()
    assert await second == 2  # not cancelled with the first caller: it read again
    assert reader.reads == 2


async def test_the_oldest_values_go_first_past_the_size() -> None:
    recent: Recent[int, int] = Recent(60, size=3)
    reader = Reader()
    for key in range(5):
        await recent.get(key, reader)
    assert len(recent) == 3
    assert await recent.get(4, reader) == 5  # kept
    assert await recent.get(0, reader) == 6  # dropped: read again
