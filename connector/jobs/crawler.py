"""The federated catalog's crawler: every period, each participant's crawl of that period, once across replicas.

The run key of a scheduled crawl names the participant and the period, and the store takes it once; a replica that
finds it taken skips that participant (connector/services/federation.py). Expired entries are dropped on each pass.
"""

from __future__ import annotations

import logging

from connector.jobs.periodic import Periodic
from connector.services.federation import FederationService

log = logging.getLogger("connector.federation")


class Crawler:
    """Runs the scheduled crawls (a pass every tenth of the period, so a new period is noticed soon)."""

    def __init__(self, federation: FederationService) -> None:
        self._federation = federation
        interval = federation.config.interval_seconds
        self._loop = (
            Periodic(
                "federation-crawler",
                max(1.0, interval / 10),
                federation.crawl_due,
                log,
                # At start only when a participants file names some (a node started without participants does no
                # database work it might be stopped in the middle of); the rest are crawled at the first pass.
                at_start=federation.config.participants_file is not None,
                prepare=federation.load_file,
            )
            if interval > 0
            else None
        )

    async def start(self) -> None:
        """Read the participants file and start the loop (none when scheduled crawls are off)."""
        if self._loop is not None:
            await self._loop.start()
        else:
            await self._federation.load_file()

    async def stop(self) -> None:
        """Stop the loop."""
        if self._loop is not None:
            await self._loop.stop()
