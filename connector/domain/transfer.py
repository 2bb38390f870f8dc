"""Transfer processes (DSP 2025-1): states, messages, and the one transition table.

As for negotiations, `advance()` is the only writer of a transfer's state, and a state is reached when the
counterparty has acknowledged the message leading to it. INITIAL is the consumer's state before the
provider has acknowledged its request.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from enum import StrEnum
from typing import Any

from connector.domain.errors import InvalidInput, Problem
from connector.domain.negotiation import Role


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
# resumes a suspended transfer, completes, suspends or terminates. A start may overtake the request's
# acknowledgement, hence INITIAL -> STARTED.
TRANSFER_TRANSITIONS: dict[tuple[TransferState, TransferMessage, Role], TransferState] = {
    (S.INITIAL, M.REQUEST, C): S.REQUESTED,
    (S.INITIAL, M.START, P): S.STARTED,
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
    # Provider: data-plane tokens of an earlier generation are revoked (it grows on every start by the provider).
    token_generation: int = 0
    created_at: int = 0
    updated_at: int = 0
    version: int = 0

    @property
    def peer_pid(self) -> str | None:
        """Return the counterparty's pid for this transfer."""
        return self.consumer_pid if self.role is Role.PROVIDER else self.provider_pid


def next_transfer_state(transfer: Transfer, message: TransferMessage, sender: Role) -> TransferState:
    """Return the state a message leads to, or raise InvalidTransferTransition naming what was refused."""
    found = TRANSFER_TRANSITIONS.get((transfer.state, message, sender))
    if found is None:
        who = "provider" if sender is Role.PROVIDER else "consumer"
        detail = f"a {message.value} from the {who} is not allowed in state {transfer.state.value}"
        raise InvalidTransferTransition(detail, [Problem(detail, "@type", message.value)])
    return found


def advance_transfer(transfer: Transfer, message: TransferMessage, sender: Role, now: int, **changes: Any) -> Transfer:
    """Return the transfer after a message (sent and acknowledged, or received), with other changes."""
    state = next_transfer_state(transfer, message, sender)
    return replace(transfer, state=state, updated_at=now, version=transfer.version + 1, **changes)
