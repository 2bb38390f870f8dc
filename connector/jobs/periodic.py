"""One way to run a background pass on a fixed interval, shared by the node's periodic jobs.

A pass that fails is logged with its traceback and the next one runs on time: a job never dies of one bad
pass. `stop` cancels the task (a pass under way is rolled back by its transaction).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable


class Periodic:
    """Runs `run_once` every `interval` seconds (first right at start when `at_start`) as an asyncio task."""

    def __init__(
        self,
        name: str,
        interval: float,
        run_once: Callable[[], Awaitable[object]],
        log: logging.Logger,
        at_start: bool = False,
        prepare: Callable[[], Awaitable[object]] | None = None,
    ) -> None:
        self.name = name
        self.interval = interval
        self._run_once = run_once
        self._log = log
        self._at_start = at_start
        self._prepare = prepare
        self._task: asyncio.Task[None] | None = None

    @property
    def running(self) -> bool:
        """Tell whether the loop's task runs (started and not ended)."""
        return self._task is not None and not self._task.done()

    async def start(self) -> None:
        """Start the loop."""
        self._task = asyncio.create_task(self._run(), name=self.name)

    async def stop(self) -> None:
        """Stop the loop."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _pass(self, what: Callable[[], Awaitable[object]]) -> None:
        try:
            await what()
        except Exception:
            self._log.exception(f"{self.name} pass failed")

    async def _run(self) -> None:
        if self._prepare is not None:
            await self._pass(self._prepare)
        if self._at_start:
            await self._pass(self._run_once)
        while True:
            await asyncio.sleep(self.interval)
            await self._pass(self._run_once)
