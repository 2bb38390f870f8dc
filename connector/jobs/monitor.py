"""The policy monitor: re-evaluates the usage policy of every running transfer on a fixed interval.

A transfer whose agreement's policy no longer holds (an expired validity period, a withdrawn credential)
is terminated with the reason; its tokens stop working at once. Replicas may all run it: a transfer is
changed under a version check, so it is terminated once.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from connector.services.transfers import TransferService

log = logging.getLogger("connector.monitor")


class PolicyMonitor:
    """Runs `TransferService.monitor_once` every `interval` seconds as an asyncio task."""

    def __init__(self, transfers: TransferService, interval: float) -> None:
        self._transfers = transfers
        self._interval = interval
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        """Start the loop."""
        self._task = asyncio.create_task(self._run(), name="policy-monitor")

    async def stop(self) -> None:
        """Stop the loop."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self._interval)
            try:
                await self._transfers.monitor_once()
            except Exception:
                log.exception("policy monitor pass failed")
