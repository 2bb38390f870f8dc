"""The life both DSP processes share, written once: a contract negotiation and a transfer process are each a
row with a state, a transition table, and at most one message of ours waiting for the peer's acknowledgement.

A `Lifecycle` holds one process type's rules as data (its table, its terminal states, which repeated messages
are acknowledged); the functions here apply them to any process:

* `advance` is the only writer of a state (the services never set one themselves);
* `repeat` tells a redelivered message (one whose effect the process already shows) from a new one, so it is
  acknowledged and changes nothing;
* `implied` applies the acknowledgement of our pending message when the peer's message could only have been
  sent after the peer received it (a message that overtakes the acknowledgement of ours);
* `waits_on_peer` and `deadline` say when a process is waiting for the peer's next move, and until when.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from enum import StrEnum
from typing import Any, Generic, Protocol, TypeVar

from connector.domain.errors import InvalidInput, Problem


class Role(StrEnum):
    """Which side of a process this node is on."""

    PROVIDER = "PROVIDER"
    CONSUMER = "CONSUMER"


def other(role: Role) -> Role:
    """Return the counterparty's role."""
    return Role.CONSUMER if role is Role.PROVIDER else Role.PROVIDER


def who(role: Role) -> str:
    """Return 'provider' or 'consumer'."""
    return "provider" if role is Role.PROVIDER else "consumer"


StateT = TypeVar("StateT", bound=StrEnum)
MessageT = TypeVar("MessageT", bound=StrEnum)


class Process(Protocol):
    """What the shared rules read of a negotiation or a transfer."""

    @property
    def id(self) -> str: ...
    @property
    def role(self) -> Role: ...
    @property
    def state(self) -> Any: ...
    @property
    def awaiting_ack(self) -> str | None: ...
    @property
    def pending(self) -> bool: ...
    @property
    def deadline_at(self) -> int | None: ...
    @property
    def version(self) -> int: ...


ProcessT = TypeVar("ProcessT", bound=Process)


@dataclass(frozen=True)
class Lifecycle(Generic[StateT, MessageT]):
    """One process type's rules, as data."""

    name: str
    # The consumer's state before the provider acknowledged its first message (not a protocol state).
    initial: StateT
    transitions: Mapping[tuple[StateT, MessageT, Role], StateT]
    terminal: frozenset[StateT]
    terminated: StateT
    termination: MessageT
    # message -> the states in which that message, from the sender that may send it, is a redelivery: the
    # process already shows its effect, so it is acknowledged and changes nothing.
    repeats: Mapping[MessageT, frozenset[StateT]]
    error: type[InvalidInput]
    messages: type[MessageT]
    # A check beyond the table, given (process, message, sender): raises the lifecycle's error to refuse.
    guard: Callable[[Any, MessageT, Role], None] | None = None
    # What entering a state does to the process besides its state, given (before, after, sender).
    entered: Callable[[Any, Any, Role], Any] | None = None
    # Messages that carry what the peer needs (a provider's start carries the tokens): never dropped as
    # superseded when the peer's message crosses them.
    carries: frozenset[tuple[MessageT, Role]] = field(default_factory=frozenset)

    def next(self, state: StateT, message: MessageT, sender: Role) -> StateT:
        """Return the state a message leads to, or raise the lifecycle's InvalidTransition naming what was refused."""
        found = self.transitions.get((state, message, sender))
        if found is None:
            detail = f"a {message.value} from the {who(sender)} is not allowed in state {state.value}"
            raise self.error(detail, [Problem(detail, "@type", message.value)])
        return found

    def allows(self, state: StateT, message: MessageT, sender: Role) -> bool:
        """Tell whether the table has this transition."""
        return (state, message, sender) in self.transitions

    def sends(self, message: MessageT, sender: Role) -> bool:
        """Tell whether `sender` ever sends `message`."""
        return any(m == message and by is sender for (_, m, by) in self.transitions)

    def protocol(self, awaiting: str | None) -> MessageT | None:
        """Return the message a process awaits the acknowledgement of, when it is one of the protocol's."""
        if awaiting is None or awaiting not in {m.value for m in self.messages}:
            return None
        return self.messages(awaiting)

    def expected(self, state: StateT, sender: Role) -> list[MessageT]:
        """Return the messages (other than a termination) that `sender` may send in `state`."""
        found = [m for (s, m, by) in self.transitions if s == state and by is sender and m != self.termination]
        return sorted(set(found), key=lambda m: m.value)

    def waits_on_peer(self, state: StateT, role: Role) -> bool:
        """Tell whether, in `state`, only the peer can move the process on (other than by terminating it)."""
        if state in self.terminal or state == self.initial:
            return False
        moves = {sender for (s, m, sender) in self.transitions if s == state and m != self.termination}
        return bool(moves) and role not in moves


def advance(
    life: Lifecycle[Any, Any], process: ProcessT, message: Any, sender: Role, now: int, **changes: Any
) -> ProcessT:
    """Return the process after a message (ours acknowledged, or the peer's received), with other changes."""
    state = life.next(process.state, message, sender)
    if life.guard is not None:
        life.guard(process, message, sender)
    moved: dict[str, Any] = {"state": state, "updated_at": now, "version": process.version + 1}
    if state != process.state:
        moved["deadline_at"] = None  # a new state waits afresh (see `deadline`)
    return _entered(life, process, replace(process, **{**moved, **changes}), sender)  # type: ignore[type-var]


def _entered(life: Lifecycle[Any, Any], before: ProcessT, after: ProcessT, sender: Role) -> ProcessT:
    if life.entered is None or before.state == after.state:
        return after
    result: ProcessT = life.entered(before, after, sender)
    return result


def terminate(life: Lifecycle[Any, Any], process: ProcessT, now: int, **changes: Any) -> ProcessT:
    """Return the process ended at once (this node gave up on it), whatever its state."""
    ended: dict[str, Any] = {
        "state": life.terminated,
        "awaiting_ack": None,
        "deadline_at": None,
        "updated_at": now,
        "version": process.version + 1,
    }
    return replace(process, **{**ended, **changes})  # type: ignore[type-var]


def repeat(life: Lifecycle[Any, Any], process: Process, message: Any, sender: Role) -> bool:
    """Tell whether a message from `sender` is a redelivery the process already reflects (acknowledge it)."""
    if process.role is sender or not life.sends(message, sender):
        return False
    return process.state in life.repeats.get(message, frozenset())


def implied(life: Lifecycle[Any, Any], process: ProcessT, message: Any, sender: Role) -> tuple[ProcessT, Any | None]:
    """Apply our pending message's acknowledgement when the peer's message shows the peer received it.

    Returns the process (moved on when so) and the message of ours that is now known to be delivered (its
    outbox row is then moot), or None.
    """
    pending = life.protocol(process.awaiting_ack)
    if pending is None or life.allows(process.state, message, sender):
        return process, None
    reached = life.transitions.get((process.state, pending, process.role))
    if reached is None or not life.allows(reached, message, sender):
        return process, None
    changes: dict[str, Any] = {"state": reached, "awaiting_ack": None}
    if reached != process.state:
        changes["deadline_at"] = None
    moved = _entered(life, process, replace(process, **changes), process.role)  # type: ignore[type-var]
    return moved, pending


def crossing(life: Lifecycle[Any, Any], process: ProcessT, message: Any, sender: Role) -> tuple[ProcessT, Any | None]:
    """Apply our pending message when the peer's message leads where ours does (both sides resumed at once,
    or the peer's answer to ours overtook the acknowledgement): the process is where both messages lead, and the
    peer's message is then a repeat. Returns the process and our message, or (process, None) when not so; our
    message stays owed (and awaited) when the peer needs what it carries (`Lifecycle.carries`)."""
    pending = life.protocol(process.awaiting_ack)
    if pending is None:
        return process, None
    ours = life.transitions.get((process.state, pending, process.role))
    theirs = life.transitions.get((process.state, message, sender))
    if ours is None or ours != theirs or ours in life.terminal:
        return process, None
    # Ours stays owed when the peer needs what it carries (the provider's fresh tokens after a resume).
    keep = (pending, process.role) in life.carries
    changes: dict[str, Any] = {"state": ours, "awaiting_ack": process.awaiting_ack if keep else None}
    if ours != process.state:
        changes["deadline_at"] = None
    moved = _entered(life, process, replace(process, **changes), sender)  # type: ignore[type-var]
    return moved, pending


def glare(life: Lifecycle[Any, Any], process: Process, message: Any, sender: Role) -> bool:
    """Tell whether the peer's message and our pending one cross and lead to different states (a completion
    against a suspension, say): then the provider's message wins, and the consumer's is dropped."""
    pending = life.protocol(process.awaiting_ack)
    if pending is None or pending == life.termination or message == life.termination:
        return False
    ours = life.transitions.get((process.state, pending, process.role))
    theirs = life.transitions.get((process.state, message, sender))
    return ours is not None and theirs is not None and ours != theirs


def waiting(life: Lifecycle[Any, Any], process: Process) -> bool:
    """Tell whether the process waits for the peer: nothing of ours is owed, the operator holds nothing, and
    only the peer can move it on."""
    return process.awaiting_ack is None and not process.pending and life.waits_on_peer(process.state, process.role)


def deadline(life: Lifecycle[Any, Any], process: ProcessT, now: int, limit_ms: int) -> ProcessT:
    """Return the process with its deadline for the peer's next move set (kept when already set) or cleared."""
    if limit_ms <= 0 or not waiting(life, process):
        return process if process.deadline_at is None else replace(process, deadline_at=None)  # type: ignore[type-var]
    if process.deadline_at is not None:
        return process
    return replace(process, deadline_at=now + limit_ms)  # type: ignore[type-var]
