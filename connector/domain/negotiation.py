"""Contract negotiation (DSP 2025-1): states, messages, roles, and the one transition table.

`advance()` is the only writer of a negotiation's state. A state is reached when the counterparty has
acknowledged the message that leads to it; until then the message waits in the outbox and the state
stays where it was. INITIAL is the consumer's state before the provider has acknowledged its request
(the protocol has no state for it).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from enum import StrEnum
from typing import Any

from connector.domain.errors import InvalidInput, Problem


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


class Role(StrEnum):
    """Which side of the negotiation this node is on."""

    PROVIDER = "PROVIDER"
    CONSUMER = "CONSUMER"


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
TRANSITIONS: dict[tuple[NegotiationState, Message, Role], NegotiationState] = {
    (S.INITIAL, M.REQUEST, C): S.REQUESTED,
    (S.INITIAL, M.OFFER, P): S.OFFERED,
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
    created_at: int = 0
    updated_at: int = 0
    version: int = 0

    @property
    def peer_pid(self) -> str | None:
        """Return the counterparty's pid for this negotiation."""
        return self.consumer_pid if self.role is Role.PROVIDER else self.provider_pid


def next_state(negotiation: Negotiation, message: Message, sender: Role) -> NegotiationState:
    """Return the state a message leads to, or raise InvalidTransition naming what was refused."""
    found = TRANSITIONS.get((negotiation.state, message, sender))
    if found is None:
        who = "provider" if sender is Role.PROVIDER else "consumer"
        detail = f"a {message.value} from the {who} is not allowed in state {negotiation.state.value}"
        raise InvalidTransition(detail, [Problem(detail, "@type", message.value)])
    return found


def advance(negotiation: Negotiation, message: Message, sender: Role, now: int, **changes: Any) -> Negotiation:
    """Return the negotiation after a message (sent and acknowledged, or received), with other changes."""
    state = next_state(negotiation, message, sender)
    return replace(negotiation, state=state, updated_at=now, version=negotiation.version + 1, **changes)
