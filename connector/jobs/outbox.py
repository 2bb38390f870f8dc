"""The outbox dispatcher: delivers the messages the node owes its peers, durably and once.

It wakes at once when a service records a message (so latency is not bound to a polling interval) and
otherwise polls for work other replicas left or retries that came due. Each message is claimed by lease,
so several replicas on one PostgreSQL never send the same message twice at the same time; the lease is
short (so a crashed node's work is taken over within seconds) and renewed while a message is being sent (so
a slow push is never sent twice). A failure is retried with exponential backoff; a peer's 4xx refusal or
the last failed attempt ends the process with the reason.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Protocol

from connector.domain.errors import PeerError
from connector.services.negotiations import NegotiationService, now_ms
from connector.services.notifications import EVENT_MESSAGE
from connector.services.transfers import PUSH_JOB
from connector.store import Store
from connector.store.negotiations import OutboxItem

log = logging.getLogger("connector.outbox")

# A peer's answer that will never change on retry (EDC's 409 means "locked, retry").
_RETRYABLE_STATUS = frozenset({408, 409, 425, 429})


@dataclass(frozen=True, slots=True)
class OutboxSettings:
    """How the dispatcher retries."""

    max_attempts: int = 7
    retry_base_seconds: float = 1.0
    poll_seconds: float = 2.0
    lease_seconds: float = 10.0
    batch: int = 20
    max_in_flight: int = 64
    # Conformance test mode only: the TCK answers 404 until it is ready for the message.
    retry_not_found: bool = False


Send = Callable[[str, str, dict[str, Any]], Awaitable[tuple[int, Any]]]
Push = Callable[[OutboxItem], Awaitable[tuple[int, Any]]]


class Handler(Protocol):
    """What a process service does with delivery results."""

    async def on_delivered(self, item: OutboxItem, answer: Any, owner: str) -> None: ...

    async def on_undeliverable(self, item: OutboxItem, error: str, owner: str) -> None: ...


class OutboxDispatcher:
    """Sends owed messages; one per node process, as an asyncio task."""

    def __init__(
        self,
        store: Store,
        negotiations: NegotiationService,
        send: Send,
        settings: OutboxSettings,
        transfers: Handler | None = None,
        push: Push | None = None,
        notifications: Handler | None = None,
        notify: Push | None = None,
    ) -> None:
        self._store = store
        self._negotiations = negotiations
        self._transfers = transfers
        self._push = push
        self._notifications = notifications
        self._notify = notify
        self._send = send
        self._settings = settings
        self._owner = uuid.uuid4().hex
        self._wakeup = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._inflight: set[asyncio.Task[None]] = set()
        # Ids of the messages this dispatcher is sending (their leases are renewed).
        self._working: set[str] = set()
        self._renewer: asyncio.Task[None] | None = None

    def wake(self) -> None:
        """Ask the dispatcher to look for work now."""
        self._wakeup.set()

    @property
    def running(self) -> bool:
        """Tell whether the loop's task runs (started and not ended)."""
        return self._task is not None and not self._task.done()

    async def start(self) -> None:
        """Start the dispatching loop."""
        self._task = asyncio.create_task(self._run(), name="outbox-dispatcher")
        self._renewer = asyncio.create_task(self._renew(), name="outbox-lease-renewal")

    async def stop(self) -> None:
        """Stop the loop and wait for messages being sent (their leases expire if the node dies instead)."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        await self.drain()  # leases are renewed meanwhile, so a long push is not taken over halfway
        if self._renewer is not None:
            self._renewer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._renewer

    async def renew_once(self) -> None:
        """Extend the leases of the messages being sent."""
        working = sorted(self._working)
        if working:
            async with self._store.transaction() as tx:
                await tx.outbox.renew(working, self._owner, now_ms() + int(self._settings.lease_seconds * 1000))

    async def _renew(self) -> None:
        while True:
            await asyncio.sleep(self._settings.lease_seconds / 3)
            try:
                await self.renew_once()
            except Exception:
                log.exception("outbox lease renewal failed")

    async def _run(self) -> None:
        while True:
            # Cleared before the pass, so a wake that arrives during it is not lost.
            self._wakeup.clear()
            try:
                claimed = await self.run_once()
            except Exception:
                log.exception("outbox pass failed")
                claimed = 0
            if claimed:
                continue
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self._settings.poll_seconds):
                    await self._wakeup.wait()

    async def run_once(self) -> int:
        """Claim due messages and start sending them; return how many were claimed.

        Sends run concurrently up to a cap; a slow peer holds one slot, not the whole batch.
        """
        room = self._settings.max_in_flight - len(self._inflight)
        if room <= 0:
            await asyncio.wait(list(self._inflight), return_when=asyncio.FIRST_COMPLETED)
            return 1
        async with self._store.transaction() as tx:
            items = await tx.outbox.claim(
                self._owner, now_ms(), int(self._settings.lease_seconds * 1000), min(room, self._settings.batch)
            )
        for item in items:
            task = asyncio.create_task(self._deliver(item))
            self._inflight.add(task)
            task.add_done_callback(self._inflight.discard)
        return len(items)

    async def drain(self) -> None:
        """Wait until every claimed message has been handled (tests, shutdown)."""
        while self._inflight:
            await asyncio.gather(*list(self._inflight), return_exceptions=True)

    async def _deliver(self, item: OutboxItem) -> None:
        self._working.add(item.id)
        try:
            await self._deliver_leased(item)
        finally:
            self._working.discard(item.id)

    async def _deliver_leased(self, item: OutboxItem) -> None:
        attempt = item.attempts + 1
        handler: Handler = self._negotiations
        if item.message.startswith("Transfer") or item.message == PUSH_JOB:
            assert self._transfers is not None
            handler = self._transfers
        elif item.message == EVENT_MESSAGE:
            assert self._notifications is not None
            handler = self._notifications
        if item.unreadable:
            reason = "its stored message does not open with this node's key (was the key file replaced?)"
            await handler.on_undeliverable(item, reason, self._owner)
            return
        try:
            if item.message == PUSH_JOB:
                assert self._push is not None
                status, body = await self._push(item)
            elif item.message == EVENT_MESSAGE:
                assert self._notify is not None
                status, body = await self._notify(item)
            else:
                status, body = await self._send(item.url, item.counterparty, item.payload)
        except PeerError as exc:
            status, body, error = 0, None, exc.message
        else:
            error = f"answered {status}: {_reason(body)}"
        if 200 <= status < 300:
            await handler.on_delivered(item, body, self._owner)
            return
        permanent = (
            400 <= status < 500
            and status not in _RETRYABLE_STATUS
            and not (status == 404 and self._settings.retry_not_found)
        )
        if permanent or attempt >= self._settings.max_attempts:
            if not permanent:
                error = f"{error} (after {attempt} attempts)"
            await handler.on_undeliverable(item, error, self._owner)
            return
        delay_ms = int(self._settings.retry_base_seconds * 1000 * 2 ** (attempt - 1))
        log.info(
            "delivery failed, retrying", extra={"url": item.url, "attempt": attempt, "error": error, "in_ms": delay_ms}
        )
        async with self._store.transaction() as tx:
            await tx.outbox.retry(item.id, self._owner, attempt, now_ms() + delay_ms, error)


def _reason(body: Any) -> str:
    if isinstance(body, dict):
        reason = body.get("reason")
        if isinstance(reason, list) and reason:
            return "; ".join(str(r) for r in reason[:3])
        for key in ("detail", "message"):
            if isinstance(body.get(key), str):
                return str(body[key])
    return "no reason given"
