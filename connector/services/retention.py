"""Retention: what the node keeps of the records that grow with traffic, and the pass that prunes the rest.

The data-plane access log keeps `access_log_days` days (0: for ever); the token replay cache keeps each
token id until its token has expired (then a replay is refused as expired anyway). A pass deletes in
batches of `batch` rows, one short transaction each, and yields to other work between them.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from connector.store import Store, Transaction

DAY_MS = 86_400_000
DEFAULT_BATCH = 1000


@dataclass(frozen=True, slots=True)
class Pruned:
    """How many rows one pass deleted from each table."""

    access_log: int
    replay_cache: int


class RetentionService:
    """Prunes the access log past its retention and the replay cache past each token's expiry."""

    def __init__(
        self,
        store: Store,
        access_log_days: int,
        batch: int = DEFAULT_BATCH,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if batch < 1:
            raise ValueError("batch must be at least 1")
        self._store = store
        self._access_log_days = access_log_days
        self._batch = batch
        self._clock = clock

    async def prune_once(self) -> Pruned:
        """Run one pass over both tables; return how many rows it deleted."""
        now = self._clock()
        access_log = 0
        if self._access_log_days > 0:
            before_ms = int(now * 1000) - self._access_log_days * DAY_MS
            access_log = await self._in_batches(lambda tx: tx.retention.prune_access_log(before_ms, self._batch))
        now_s = int(now)
        replay_cache = await self._in_batches(lambda tx: tx.retention.prune_seen_tokens(now_s, self._batch))
        return Pruned(access_log, replay_cache)

    async def _in_batches(self, step: Callable[[Transaction], Awaitable[int]]) -> int:
        total = 0
        while True:
            async with self._store.transaction() as tx:
                deleted = await step(tx)
            total += deleted
            if deleted < self._batch:
                return total
            # Let the requests waiting for the write connection (or SQLite's write lock) go first.
            await asyncio.sleep(0)
