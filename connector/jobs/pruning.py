"""The pruner: keeps the access log and the token replay cache bounded, on a fixed interval.

It runs a pass when the node starts (a node that was down catches up) and then every `interval` seconds.
Replicas may all run it: each pass deletes in small batches, and on PostgreSQL replicas skip the rows
another one is deleting.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from connector.services.retention import RetentionService

log = logging.getLogger("connector.retention")


class Pruner:
    """Runs `RetentionService.prune_once` at start and every `interval` seconds as an asyncio task."""

    def __init__(self, retention: RetentionService, interval: float) -> None:
        self._retention = retention
        self._interval = interval
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        """Start the loop."""
        self._task = asyncio.create_task(self._run(), name="pruner")

    async def stop(self) -> None:
        """Stop the loop (a batch under way is rolled back)."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _run(self) -> None:
        while True:
            try:
                pruned = await self._retention.prune_once()
            except Exception:
                log.exception("pruning pass failed")
            else:
                if pruned.access_log or pruned.replay_cache:
                    log.info(
                        "pruned",
                        extra={"access_log_entries": pruned.access_log, "replay_cache_entries": pruned.replay_cache},
                    )
            await asyncio.sleep(self._interval)
