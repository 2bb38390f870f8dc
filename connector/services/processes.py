"""The process engine: the life negotiations and transfers share, run against the store, written once.

Both services hand their table (`connector.domain.process.Lifecycle`) and a few hooks to a `ProcessEngine`, and
go through it for what every DSP process does the same way:

* receiving a peer's message (`arrive`): the process is the peer's own, the pids match, a redelivery is
  acknowledged without change, a message that overtook the acknowledgement of ours implies it (and the
  message of ours it implies is not sent again), and what the table refuses is refused before anything else;
* the peer's acknowledgement of ours (`acknowledged`), including one that comes after the process moved on;
* giving up on a message the peer refused or that could not be delivered (`give_up`): the process ends at once
  with the reason and the peer is told, so both sides end in the same state;
* deadlines (`expire_overdue`): a process that waits for the peer's next move ends when the peer does not
  make it in time, with the reason, and the peer is told;
* saving (`save`): the deadline is set or cleared, and the service's `settle` hook runs in the same
  transaction (a negotiation stores its agreement there, whatever order messages arrived in).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from typing import Any, Generic, Protocol, TypeVar

from connector.domain import process as rules
from connector.domain.errors import Conflict, InvalidInput, NotFound
from connector.domain.participants import Participant
from connector.domain.process import Lifecycle, Process, Role
from connector.store import Store, Transaction
from connector.store.negotiations import OutboxItem

log = logging.getLogger("connector.process")


class _Row(Process, Protocol):
    @property
    def counterparty_id(self) -> str: ...
    @property
    def peer_pid(self) -> str | None: ...
    @property
    def error_detail(self) -> str | None: ...


P = TypeVar("P", bound=_Row)


class Pids(Protocol):
    """The two pids a DSP message names."""

    @property
    def provider_pid(self) -> str: ...
    @property
    def consumer_pid(self) -> str: ...


class Repository(Protocol[P]):
    """What the engine needs of a process repository."""

    async def get(self, process_id: str, for_update: bool = False) -> P | None: ...
    async def add(self, process: P) -> None: ...
    async def save(self, process: P) -> None: ...
    async def overdue(self, now: int, limit: int) -> list[P]: ...
    async def unstamped(self, limit: int, after: str = "") -> list[P]: ...


@dataclass(frozen=True, slots=True)
class Arrival(Generic[P]):
    """A peer's message, checked against the process it is for."""

    process: P
    sender: Role
    # The process already reflects the message: acknowledge it and change nothing.
    repeat: bool = False
    # The process changed on the way (our crossing message counts as delivered): save it.
    changed: bool = False


class ProcessEngine(Generic[P]):
    """Runs the shared rules for one process type."""

    def __init__(
        self,
        life: Lifecycle[Any, Any],
        repository: Callable[[Transaction], Repository[P]],
        owe_termination: Callable[[Transaction, P, str, str], Awaitable[P]],
        now: Callable[[], int],
        settle: Callable[[Transaction, P], Awaitable[P]] | None = None,
        deadline_seconds: float = 0,
    ) -> None:
        self.life = life
        self._repository = repository
        self._owe_termination = owe_termination
        self._settle = settle
        self._now = now
        self.deadline_ms = int(deadline_seconds * 1000)

    # Saving.

    async def save(self, tx: Transaction, process: P, new: bool = False) -> P:
        """Store a process with its deadline set or cleared, after the service's settle hook."""
        process = rules.deadline(self.life, process, self._now(), self.deadline_ms)
        if self._settle is not None:
            process = await self._settle(tx, process)
        repository = self._repository(tx)
        if new:
            await repository.add(process)
        else:
            await repository.save(process)
        return process

    # Receiving.

    async def arrive(self, tx: Transaction, participant: Participant, pid: str, pids: Pids, message: Any) -> Arrival[P]:
        """Load the process a peer's message is for (locked) and check the message against it."""
        found = await self._repository(tx).get(pid, for_update=True)
        if found is None or found.counterparty_id != participant.id:
            # Never say whether another participant's process exists.
            raise NotFound(f"no {self.life.name} {pid!r} with {participant.id}")
        named_pid = pids.provider_pid if found.role is Role.PROVIDER else pids.consumer_pid
        if named_pid != pid:
            raise InvalidInput(f"the message names {self.life.name} {named_pid!r}, the URL {pid!r}")
        sender = rules.other(found.role)
        if rules.repeat(self.life, found, message, sender):
            return Arrival(found, sender, repeat=True)
        crossed, ours = rules.crossing(self.life, found, message, sender)
        if ours is not None:
            if (ours, found.role) not in self.life.carries:
                await tx.outbox.forget(crossed.id, ours.value)
            return Arrival(_replace(crossed, version=crossed.version + 1), sender, repeat=True, changed=True)
        moved, delivered = rules.implied(self.life, found, message, sender)
        if delivered is not None:
            # The peer received our message: it must not be sent again.
            await tx.outbox.forget(moved.id, delivered.value)
        if rules.glare(self.life, moved, message, sender) and moved.role is Role.PROVIDER:
            # Both sides moved at once, to different states: the provider's message wins; the consumer
            # retries its own (409) and, once ours has arrived, finds it moot.
            raise Conflict(
                f"the {self.life.name} crosses this node's {moved.awaiting_ack}, which is on its way; "
                "retry once it has arrived"
            )
        self.life.next(moved.state, message, sender)  # refuses what the state does not allow, before anything else
        if moved.awaiting_ack == self.life.termination.value and message != self.life.termination:
            # This node is ending the process: nothing the peer sends meanwhile revives it.
            raise self.life.error(
                f"this node is terminating the {self.life.name} (its termination is on its way); "
                f"a {message.value} changes nothing"
            )
        if self.life.guard is not None:
            self.life.guard(moved, message, sender)
        if moved.awaiting_ack is not None and message != self.life.termination:
            # The peer moved the process on: what this node owed from the earlier state is moot.
            await tx.outbox.forget(moved.id, moved.awaiting_ack)
            moved = _replace(moved, awaiting_ack=None)
        return Arrival(moved, sender)

    # Delivery results.

    async def pending_for(self, tx: Transaction, item: OutboxItem, owner: str) -> P | None:
        """Forget a delivered message; return its process (locked) if it still waits for that acknowledgement."""
        # The process row is locked before the outbox row, in the same order as receiving does (no deadlock).
        found = await self._repository(tx).get(item.negotiation_id, for_update=True)
        if not await tx.outbox.done(item.id, owner):
            return None  # another dispatcher took the message over meanwhile
        if found is None or found.awaiting_ack != item.message:
            return None  # the peer's next message already implied this acknowledgement
        return found

    async def acknowledged(self, tx: Transaction, process: P, message: Any, **changes: Any) -> P | None:
        """Return the process advanced by the acknowledgement of our message, or None when it came too late.

        A late acknowledgement (the process moved on meanwhile, by the peer's messages) clears what the process
        waited for, so it never stays "waiting for the peer" on a message that has lost its meaning.
        """
        try:
            return rules.advance(self.life, process, message, process.role, self._now(), **changes)
        except self.life.error:
            log.info("late acknowledgement", extra={"process": process.id, "acknowledged": str(message)})
            cleared = _replace(process, awaiting_ack=None, version=process.version + 1)
            await self.save(tx, cleared)
            return None

    async def give_up(self, store: Store, item: OutboxItem, detail: str, owner: str, code: str = "error") -> P | None:
        """End a process whose message the peer refused or could not be reached for, and tell the peer why.

        The process ends at once (its tokens stop, nothing more is sent for it) and a termination is owed to the
        peer, so a peer that refused a message because it sees the process differently ends in the same state.
        """
        async with store.transaction() as tx:
            found = await self._repository(tx).get(item.negotiation_id, for_update=True)
            if not await tx.outbox.done(item.id, owner):
                return None  # another dispatcher took the message over meanwhile
            if found is None or found.state in self.life.terminal or found.awaiting_ack != item.message:
                return None  # the process no longer waits for this message: its failure changes nothing
            if item.message == self.life.termination.value and found.error_detail:
                detail = f"{found.error_detail} (and the termination could not be delivered: {detail})"
            ended = await self._end(tx, found, detail, tell=item.message != self.life.termination.value, code=code)
        log.warning(f"{self.life.name} terminated", extra={"process": ended.id, "reason": detail})
        return ended

    async def _end(self, tx: Transaction, process: P, detail: str, tell: bool, code: str = "error") -> P:
        await tx.outbox.drop_for(process.id)
        ended = rules.terminate(self.life, process, self._now(), error_detail=detail)
        if tell and process.peer_pid is not None:
            # Owed, but not waited for: the process has ended here whatever the peer answers.
            ended = _replace(await self._owe_termination(tx, ended, code, detail), awaiting_ack=None)
        return await self.save(tx, ended)

    # Deadlines.

    async def stamp_waiting(self, store: Store, batch: int = 500) -> int:
        """Give a deadline to every process that waits on its peer without one (deadlines were off when it
        started waiting, say); return how many got one."""
        if self.deadline_ms <= 0:
            return 0
        stamped, after = 0, ""
        while True:
            async with store.read() as tx:
                candidates = await self._repository(tx).unstamped(batch, after)
            for candidate in candidates:
                if not rules.waiting(self.life, candidate):
                    continue
                async with store.transaction() as tx:
                    found = await self._repository(tx).get(candidate.id, for_update=True)
                    if found is None or found.deadline_at is not None or not rules.waiting(self.life, found):
                        continue
                    await self.save(tx, _replace(found, version=found.version + 1))
                    stamped += 1
            if len(candidates) < batch:
                return stamped
            after = candidates[-1].id

    async def expire_overdue(self, store: Store, batch: int = 100) -> list[P]:
        """End the processes whose peer did not make its next move before their deadline; return them."""
        now = self._now()
        async with store.read() as tx:
            overdue = await self._repository(tx).overdue(now, batch)
        ended: list[P] = []
        for candidate in overdue:
            async with store.transaction() as tx:
                found = await self._repository(tx).get(candidate.id, for_update=True)
                if found is None or found.deadline_at is None or found.deadline_at > now:
                    continue  # it moved on meanwhile
                if not rules.waiting(self.life, found):
                    await self.save(tx, _replace(found, version=found.version + 1))  # clears a stale deadline
                    continue
                expected = " or ".join(m.value for m in self.life.expected(found.state, rules.other(found.role)))
                detail = (
                    f"no {expected} from the {rules.who(rules.other(found.role))} within "
                    f"{self.deadline_ms / 1000:g} s in state {found.state.value} "
                    "(CONNECTOR_PEER_DEADLINE_SECONDS)"
                )
                ended.append(await self._end(tx, found, detail, tell=True, code="deadline"))
            log.warning(f"{self.life.name} terminated", extra={"process": candidate.id, "reason": "deadline passed"})
        return ended


def _replace(process: P, **changes: Any) -> P:
    return replace(process, **changes)  # type: ignore[type-var]
