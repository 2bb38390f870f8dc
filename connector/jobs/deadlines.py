"""The deadline watch: ends negotiations and transfers whose peer did not make its next move in time.

A process that waits for the peer (a consumer for the agreement, a provider for the verification, a consumer
for the start) has a deadline (`CONNECTOR_PEER_DEADLINE_SECONDS`); past it, the process terminates with the
reason and the peer is told. Replicas may all run it: a process is ended under a version check, once.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Sequence
from typing import Any

from connector.services.processes import ProcessEngine
from connector.store import Store

log = logging.getLogger("connector.deadlines")


class DeadlineWatch:
    """Looks for overdue processes a few times per deadline (at most every 30 s) as an asyncio task."""

    def __init__(
        self, store: Store, engines: Sequence[ProcessEngine[Any]], deadline_seconds: float, wake: Callable[[], None]
    ) -> None:
        self._store = store
        self._engines = engines
        self._interval = min(30.0, max(0.05, deadline_seconds / 10))
        self._enabled = deadline_seconds > 0
        self._wake = wake
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        """Start the loop (none when deadlines are off)."""
        if self._enabled:
            self._task = asyncio.create_task(self._run(), name="deadline-watch")

    async def stop(self) -> None:
        """Stop the loop."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def run_once(self) -> int:
        """End every overdue process; return how many ended."""
        ended = 0
        for engine in self._engines:
            while True:
                batch = await engine.expire_overdue(self._store)
                ended += len(batch)
                if len(batch) < 100:
                    break
        if ended:
            self._wake()  # their terminations are owed
        return ended

    async def _run(self) -> None:
        try:
            for engine in self._engines:
                await engine.stamp_waiting(self._store)
        except Exception:
            log.exception("stamping deadlines failed")
        while True:
            await asyncio.sleep(self._interval)
            try:
                await self.run_once()
            except Exception:
                log.exception("deadline pass failed")
