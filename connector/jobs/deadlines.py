"""The deadline watch: ends negotiations and transfers whose peer did not make its next move in time.

A process that waits for the peer (a consumer for the agreement, a provider for the verification, a consumer
for the start) has a deadline (`CONNECTOR_PEER_DEADLINE_SECONDS`); past it, the process terminates with the
reason and the peer is told. When it starts, the watch gives a deadline to processes already waiting without
one (deadlines were off when they began to wait). Replicas may all run it: a process is ended under a
version check, once.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import Any

from connector.jobs.periodic import Periodic
from connector.services.processes import ProcessEngine
from connector.store import Store

log = logging.getLogger("connector.deadlines")


class DeadlineWatch(Periodic):
    """Looks for overdue processes a few times per deadline (at most every 30 s)."""

    def __init__(
        self, store: Store, engines: Sequence[ProcessEngine[Any]], deadline_seconds: float, wake: Callable[[], None]
    ) -> None:
        self._store = store
        self._engines = engines
        self._enabled = deadline_seconds > 0
        self._wake = wake
        interval = min(30.0, max(0.05, deadline_seconds / 10))
        super().__init__("deadline-watch", interval, self.run_once, log, prepare=self.stamp_waiting)

    async def start(self) -> None:
        """Start the loop (none when deadlines are off)."""
        if self._enabled:
            await super().start()

    async def stamp_waiting(self) -> int:
        """Give a deadline to every process waiting on its peer without one; return how many got one."""
        return sum([await engine.stamp_waiting(self._store) for engine in self._engines])

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
