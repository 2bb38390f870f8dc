"""Contract negotiation (DSP 2025-1): states, messages, roles, and the one transition table.

The rules every process shares (redeliveries, messages that overtake an acknowledgement, deadlines) are in
`connector.domain.process`; this module gives them the negotiation's table as data. `advance()` is the only
writer of a negotiation's state. A state is reached when the counterparty has acknowledged the message that
leads to it; until then the message waits in the outbox and the state stays where it was. INITIAL is the
consumer's state before the provider has acknowledged its request (the protocol has no state for it).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from connector.domain import process
from connector.domain.errors import InvalidInput
from connector.domain.process import Lifecycle, Role

__all__ = ["Role"]


class NegotiationState(StrEnum):
    """The protocol's states (and INITIAL, before the first acknowledgement)."""

    INITIAL = "INITIAL"
    REQUESTED = "REQUESTED"
    OFFERED = "OFFERED"
    ACCEPTED = "ACCEPTED"
    AGREED = "AGREED"
    VERIFIED = "VERIFIED"
    FINALIZED = "FINALIZED"
    TERMINATED = "TERMINATED"


TERMINAL = frozenset({NegotiationState.FINALIZED, NegotiationState.TERMINATED})


class Message(StrEnum):
    """The negotiation messages (events split by type)."""

    REQUEST = "ContractRequestMessage"
    OFFER = "ContractOfferMessage"
    ACCEPTED = "ContractNegotiationEventMessage:ACCEPTED"
    AGREEMENT = "ContractAgreementMessage"
    VERIFICATION = "ContractAgreementVerificationMessage"
    FINALIZED = "ContractNegotiationEventMessage:FINALIZED"
    TERMINATION = "ContractNegotiationTerminationMessage"


S, M, P, C = NegotiationState, Message, Role.PROVIDER, Role.CONSUMER

# (state, message, sender) -> next state; from the normative state diagram of DSP 2025-1.
# Terminations are accepted from either side in every non-terminal state (the text allows it; EDC does it).
# A provider's message that overtakes the acknowledgement of the consumer's request is not a transition from
# INITIAL: it implies the request arrived (`process.implied`).
TRANSITIONS: dict[tuple[NegotiationState, Message, Role], NegotiationState] = {
    (S.INITIAL, M.REQUEST, C): S.REQUESTED,
    (S.REQUESTED, M.OFFER, P): S.OFFERED,
    (S.REQUESTED, M.AGREEMENT, P): S.AGREED,
    (S.OFFERED, M.REQUEST, C): S.REQUESTED,
    (S.OFFERED, M.ACCEPTED, C): S.ACCEPTED,
    (S.ACCEPTED, M.AGREEMENT, P): S.AGREED,
    (S.AGREED, M.VERIFICATION, C): S.VERIFIED,
    (S.VERIFIED, M.FINALIZED, P): S.FINALIZED,
    **{
        (state, M.TERMINATION, sender): S.TERMINATED
        for state in (S.INITIAL, S.REQUESTED, S.OFFERED, S.ACCEPTED, S.AGREED, S.VERIFIED)
        for sender in (P, C)
    },
}


class InvalidTransition(InvalidInput):
    """A message that the negotiation's state does not allow (400 with a ContractNegotiationError)."""

    type = "InvalidTransition"


NEGOTIATION: Lifecycle[NegotiationState, Message] = Lifecycle(
    name="contract negotiation",
    initial=S.INITIAL,
    transitions=TRANSITIONS,
    terminal=TERMINAL,
    terminated=S.TERMINATED,
    termination=M.TERMINATION,
    # A redelivered message whose effect the negotiation already shows (the sender did not see our
    # acknowledgement, say after a crash) is acknowledged again. A repeated offer or request is not: the
    # conformance kit requires them refused once the negotiation has moved on.
    repeats={
        M.ACCEPTED: frozenset({S.ACCEPTED, S.AGREED, S.VERIFIED, S.FINALIZED}),
        M.AGREEMENT: frozenset({S.AGREED, S.VERIFIED, S.FINALIZED}),
        M.VERIFICATION: frozenset({S.VERIFIED, S.FINALIZED}),
        M.FINALIZED: frozenset({S.FINALIZED}),
        M.TERMINATION: frozenset({S.TERMINATED}),
    },
    error=InvalidTransition,
    messages=Message,
)


@dataclass(frozen=True, slots=True)
class Negotiation:
    """One contract negotiation as this node keeps it. `id` is this node's pid for it."""

    id: str
    role: Role
    state: NegotiationState
    provider_pid: str | None
    consumer_pid: str | None
    counterparty_id: str
    counterparty_address: str
    offer: dict[str, Any]
    asset_id: str | None
    definition_id: str | None = None
    agreement: dict[str, Any] | None = None
    agreement_id: str | None = None
    error_detail: str | None = None
    awaiting_ack: str | None = None
    # The provider decided to agree, and the operator holds the agreement back until approving it.
    pending: bool = False
    # When the negotiation gives up waiting for the peer's next move (epoch ms; None when not waiting on it).
    deadline_at: int | None = None
    # Consumer: start an HttpData-PULL transfer under the agreement once finalized (the EDR API's one call);
    # cleared when the transfer is opened, in the same transaction.
    pull_when_finalized: bool = False
    created_at: int = 0
    updated_at: int = 0
    version: int = 0

    @property
    def peer_pid(self) -> str | None:
        """Return the counterparty's pid for this negotiation."""
        return self.consumer_pid if self.role is Role.PROVIDER else self.provider_pid


def next_state(negotiation: Negotiation, message: Message, sender: Role) -> NegotiationState:
    """Return the state a message leads to, or raise InvalidTransition naming what was refused."""
    return NEGOTIATION.next(negotiation.state, message, sender)


def advance(negotiation: Negotiation, message: Message, sender: Role, now: int, **changes: Any) -> Negotiation:
    """Return the negotiation after a message (sent and acknowledged, or received), with other changes."""
    return process.advance(NEGOTIATION, negotiation, message, sender, now, **changes)
