"""A short-lived, bounded cache of things read from the database, with one read in flight per key.

The data plane checks every request against the database's view of a transfer, and serves passports
from it; under load the same few rows are read thousands of times a second. `Recent` keeps each value for
a few seconds, and when a value expires while many requests want it, one of them reads it and the others
wait for that read instead of all going to the database at once. The owner forgets a key the moment it
writes it; writes by another process are seen once the kept value expires.
"""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Hashable
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


class Recent(Generic[K, V]):
    """Values kept `seconds` after they were read, at most `size` of them (the oldest go first)."""

    def __init__(self, seconds: float, size: int = 10_000) -> None:
        self.seconds = seconds
        self._size = size
        self._kept: OrderedDict[K, tuple[float, V]] = OrderedDict()
        self._reading: dict[K, asyncio.Future[V]] = {}

    def __len__(self) -> int:
        return len(self._kept)

    def forget(self, key: K) -> None:
        """Drop a key's value; a read already under way for it is not kept either."""
        self._kept.pop(key, None)
        self._reading.pop(key, None)

    def clear(self) -> None:
        """Drop every value."""
        self._kept.clear()
        self._reading.clear()

    def peek(self, key: K) -> V | None:
        """Return the key's kept value if it is still fresh, else None (without reading or waiting)."""
        hit = self._kept.get(key)
        if hit is not None and hit[0] > time.monotonic():
            return hit[1]
        return None

    async def get(self, key: K, read: Callable[[], Awaitable[V]]) -> V:
        """Return the key's kept value, or read it (once, however many callers ask at the same time)."""
        while True:
            hit = self._kept.get(key)
            if hit is not None and hit[0] > time.monotonic():
                return hit[1]
            pending = self._reading.get(key)
            if pending is None:
                return await self._read(key, read)
            try:
                return await asyncio.shield(pending)
            except _Abandoned:
                continue  # the caller reading it was cancelled: read it ourselves

    async def _read(self, key: K, read: Callable[[], Awaitable[V]]) -> V:
        future: asyncio.Future[V] = asyncio.get_running_loop().create_future()
        self._reading[key] = future
        try:
            value = await read()
        except BaseException as exc:
            if self._reading.get(key) is future:
                del self._reading[key]
            future.set_exception(exc if isinstance(exc, Exception) else _Abandoned())
            future.exception()  # the waiters (if any) raise it; an unobserved failure is not worth a warning
            raise
        if self._reading.get(key) is future:
            del self._reading[key]
            if self.seconds > 0:
                self._kept[key] = (time.monotonic() + self.seconds, value)
                self._kept.move_to_end(key)
                while len(self._kept) > self._size:
                    self._kept.popitem(last=False)
        future.set_result(value)
        return value


class _Abandoned(Exception):
    """The read a caller was waiting for was cancelled."""
