"""The pruner: keeps the access log and the token replay cache bounded, on a fixed interval.

It runs a pass when the node starts (a node that was down catches up) and then every `interval` seconds.
Replicas may all run it: each pass deletes in small batches, and on PostgreSQL replicas skip the rows
another one is deleting.
"""

from __future__ import annotations

import logging

from connector.jobs.periodic import Periodic
from connector.services.retention import RetentionService

log = logging.getLogger("connector.retention")


class Pruner(Periodic):
    """Runs `RetentionService.prune_once` at start and every `interval` seconds."""

    def __init__(self, retention: RetentionService, interval: float) -> None:
        self._retention = retention
        super().__init__("pruner", interval, self.prune_once, log, at_start=True)

    async def prune_once(self) -> None:
        """Prune once, logging what went."""
        pruned = await self._retention.prune_once()
        if pruned.access_log or pruned.replay_cache:
            log.info(
                "pruned",
                extra={"access_log_entries": pruned.access_log, "replay_cache_entries": pruned.replay_cache},
            )
