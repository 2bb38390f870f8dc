"""Transfer processes (DSP 2025-1): states, messages, and the one transition table.

As for negotiations, the shared rules are in `connector.domain.process`, `advance()` is the only writer of a
transfer's state, and a state is reached when the counterparty has acknowledged the message leading to it.
INITIAL is the consumer's state before the provider has acknowledged its request.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from enum import StrEnum
from typing import Any

from connector.domain import process
from connector.domain.errors import InvalidInput
from connector.domain.process import Lifecycle, Role


class TransferState(StrEnum):
    """The protocol's states (and INITIAL, before the first acknowledgement)."""

    INITIAL = "INITIAL"
    REQUESTED = "REQUESTED"
    STARTED = "STARTED"
    SUSPENDED = "SUSPENDED"
    COMPLETED = "COMPLETED"
    TERMINATED = "TERMINATED"


TRANSFER_TERMINAL = frozenset({TransferState.COMPLETED, TransferState.TERMINATED})


class TransferMessage(StrEnum):
    """The transfer messages."""

    REQUEST = "TransferRequestMessage"
    START = "TransferStartMessage"
    SUSPENSION = "TransferSuspensionMessage"
    COMPLETION = "TransferCompletionMessage"
    TERMINATION = "TransferTerminationMessage"


# The path suffix each message is posted to, under /transfers/{pid}.
SUFFIX = {
    TransferMessage.START: "/start",
    TransferMessage.SUSPENSION: "/suspension",
    TransferMessage.COMPLETION: "/completion",
    TransferMessage.TERMINATION: "/termination",
}

S, M, P, C = TransferState, TransferMessage, Role.PROVIDER, Role.CONSUMER

# (state, message, sender) -> next state; DSP 2025-1 §6.2. Only the provider makes the first start; either side
# resumes a suspended transfer (the one that suspended it: see `may_resume`), completes, suspends or
# terminates. A start that overtakes the acknowledgement of the consumer's request is not a transition from
# INITIAL: it implies the request arrived (`process.implied`).
TRANSFER_TRANSITIONS: dict[tuple[TransferState, TransferMessage, Role], TransferState] = {
    (S.INITIAL, M.REQUEST, C): S.REQUESTED,
    (S.REQUESTED, M.START, P): S.STARTED,
    **{(S.SUSPENDED, M.START, sender): S.STARTED for sender in (P, C)},
    **{(S.STARTED, M.COMPLETION, sender): S.COMPLETED for sender in (P, C)},
    **{(S.STARTED, M.SUSPENSION, sender): S.SUSPENDED for sender in (P, C)},
    **{
        (state, M.TERMINATION, sender): S.TERMINATED
        for state in (S.INITIAL, S.REQUESTED, S.STARTED, S.SUSPENDED)
        for sender in (P, C)
    },
}


class InvalidTransferTransition(InvalidInput):
    """A message the transfer's state does not allow (400 with a TransferError)."""

    type = "InvalidTransition"


@dataclass(frozen=True, slots=True)
class Transfer:
    """One transfer process as this node keeps it. `id` is this node's pid for it."""

    id: str
    role: Role
    state: TransferState
    provider_pid: str | None
    consumer_pid: str | None
    counterparty_id: str
    counterparty_address: str
    agreement_id: str
    asset_id: str
    transfer_type: str
    # Consumer, push: where the provider pushes to (DSP DataAddress). Provider, push: the same, as received.
    destination: dict[str, Any] | None = None
    # Consumer, pull: the endpoint data reference the provider sent in its start message.
    data_address: dict[str, Any] | None = None
    error_detail: str | None = None
    awaiting_ack: str | None = None
    # Provider: data-plane tokens of an earlier generation are revoked (it grows on every start and resume).
    token_generation: int = 0
    # Who suspended the transfer (only that side may resume it); None unless SUSPENDED.
    suspended_by: Role | None = None
    # When the transfer gives up waiting for the peer's next move (epoch ms; None when not waiting on it).
    deadline_at: int | None = None
    created_at: int = 0
    updated_at: int = 0
    version: int = 0

    @property
    def peer_pid(self) -> str | None:
        """Return the counterparty's pid for this transfer."""
        return self.consumer_pid if self.role is Role.PROVIDER else self.provider_pid

    @property
    def pending(self) -> bool:
        """Transfers are never held for the operator."""
        return False


@dataclass(frozen=True, slots=True)
class EdrEntry:
    """An endpoint data reference this node holds as consumer: a started pull transfer, and its negotiation."""

    transfer: Transfer
    negotiation_id: str | None


def next_transfer_state(transfer: Transfer, message: TransferMessage, sender: Role) -> TransferState:
    """Return the state a message leads to, or raise InvalidTransferTransition naming what was refused."""
    found = TRANSFER.next(transfer.state, message, sender)
    _may_resume(transfer, message, sender)
    return found


def may_resume(transfer: Transfer, sender: Role) -> bool:
    """Tell whether `sender` may resume the suspended transfer: the side that suspended it (either, if unknown)."""
    return transfer.suspended_by is None or transfer.suspended_by is sender


def _may_resume(transfer: Transfer, message: TransferMessage, sender: Role) -> None:
    if message is M.START and transfer.state is S.SUSPENDED and not may_resume(transfer, sender):
        suspender = process.who(transfer.suspended_by or process.other(sender))
        detail = f"the transfer process was suspended by the {suspender}; only the {suspender} can resume it"
        raise InvalidTransferTransition(detail)


def _suspender(before: Transfer, after: Transfer, sender: Role) -> Transfer:
    """Remember who suspended a transfer (only that side may resume it); forget it once it moves on."""
    if after.state is S.SUSPENDED:
        return replace(after, suspended_by=sender)
    return replace(after, suspended_by=None) if after.suspended_by is not None else after


TRANSFER: Lifecycle[TransferState, TransferMessage] = Lifecycle(
    name="transfer process",
    initial=S.INITIAL,
    transitions=TRANSFER_TRANSITIONS,
    terminal=TRANSFER_TERMINAL,
    terminated=S.TERMINATED,
    termination=M.TERMINATION,
    # A start repeated while STARTED is a redelivery (the provider did not see our acknowledgement) or the
    # provider's fresh tokens after a resume; either way it is acknowledged. Starts after COMPLETED or
    # TERMINATED stay errors, as the conformance kit requires.
    repeats={
        M.START: frozenset({S.STARTED}),
        M.SUSPENSION: frozenset({S.SUSPENDED}),
        M.COMPLETION: frozenset({S.COMPLETED}),
        M.TERMINATION: frozenset({S.TERMINATED}),
    },
    error=InvalidTransferTransition,
    messages=TransferMessage,
    guard=lambda transfer, message, sender: _may_resume(transfer, message, sender),
    entered=lambda before, after, sender: _suspender(before, after, sender),
    carries=frozenset({(M.START, P)}),
)


def advance_transfer(transfer: Transfer, message: TransferMessage, sender: Role, now: int, **changes: Any) -> Transfer:
    """Return the transfer after a message (sent and acknowledged, or received), with other changes."""
    return process.advance(TRANSFER, transfer, message, sender, now, **changes)
