"""The rules both DSP processes share (connector.domain.process), over both tables."""

from __future__ import annotations

import itertools
from dataclasses import replace

import pytest

from connector.domain import process
from connector.domain.negotiation import NEGOTIATION, Message, Negotiation, NegotiationState
from connector.domain.process import Role
from connector.domain.transfer import (
    TRANSFER,
    InvalidTransferTransition,
    Transfer,
    TransferMessage,
    TransferState,
    advance_transfer,
)

N, NM, T, TM, P, C = NegotiationState, Message, TransferState, TransferMessage, Role.PROVIDER, Role.CONSUMER


def _negotiation(state: NegotiationState, role: Role, awaiting: Message | None = None) -> Negotiation:
    value = awaiting.value if awaiting else None
    return Negotiation("n", role, state, "p", "c", "did:web:peer", "http://peer", {}, "asset", awaiting_ack=value)


def _transfer(state: TransferState, role: Role, awaiting: TransferMessage | None = None) -> Transfer:
    value = awaiting.value if awaiting else None
    return Transfer(
        "t", role, state, "p", "c", "did:web:peer", "http://peer", "agr", "asset", "HttpData-PULL", awaiting_ack=value
    )


# Written out from the state diagrams, independently of the tables: where only the peer can move on.
WAITING_NEGOTIATION = {(N.REQUESTED, C), (N.ACCEPTED, C), (N.VERIFIED, C), (N.OFFERED, P), (N.AGREED, P)}
WAITING_TRANSFER = {(T.REQUESTED, C)}


@pytest.mark.parametrize(("state", "role"), list(itertools.product(N, Role)))
def test_which_negotiation_states_wait_on_the_peer(state: NegotiationState, role: Role) -> None:
    assert NEGOTIATION.waits_on_peer(state, role) is ((state, role) in WAITING_NEGOTIATION)


@pytest.mark.parametrize(("state", "role"), list(itertools.product(T, Role)))
def test_which_transfer_states_wait_on_the_peer(state: TransferState, role: Role) -> None:
    assert TRANSFER.waits_on_peer(state, role) is ((state, role) in WAITING_TRANSFER)


def test_a_start_that_overtakes_the_request_acknowledgement_implies_the_request_arrived() -> None:
    waiting = _transfer(T.INITIAL, C, TM.REQUEST)
    moved, delivered = process.implied(TRANSFER, waiting, TM.START, P)
    assert delivered is TM.REQUEST and moved.state is T.REQUESTED and moved.awaiting_ack is None
    assert TRANSFER.next(moved.state, TM.START, P) is T.STARTED


def test_a_verification_implies_the_agreement_arrived() -> None:
    waiting = _negotiation(N.REQUESTED, P, NM.AGREEMENT)
    moved, delivered = process.implied(NEGOTIATION, waiting, NM.VERIFICATION, C)
    assert delivered is NM.AGREEMENT and moved.state is N.AGREED


def test_nothing_is_implied_by_a_message_the_state_allows_or_a_message_that_does_not_follow() -> None:
    requested = _negotiation(N.REQUESTED, C, NM.REQUEST)
    assert process.implied(NEGOTIATION, requested, NM.AGREEMENT, P) == (requested, None)
    offered = _negotiation(N.OFFERED, P, NM.OFFER)
    assert process.implied(NEGOTIATION, offered, NM.FINALIZED, C) == (offered, None)
    idle = _negotiation(N.REQUESTED, P)
    assert process.implied(NEGOTIATION, idle, NM.VERIFICATION, C) == (idle, None)


def test_crossing_resumes_end_where_both_lead() -> None:
    resuming = _transfer(T.SUSPENDED, C, TM.START)
    moved, ours = process.crossing(TRANSFER, resuming, TM.START, P)
    assert ours is TM.START and moved.state is T.STARTED and moved.awaiting_ack is None
    assert process.crossing(TRANSFER, _transfer(T.SUSPENDED, C), TM.START, P)[1] is None


@pytest.mark.parametrize(
    ("state", "message", "repeat"),
    [
        (T.STARTED, TM.START, True),
        (T.SUSPENDED, TM.SUSPENSION, True),
        (T.TERMINATED, TM.TERMINATION, True),
        (T.COMPLETED, TM.START, False),  # the conformance kit: anything after COMPLETED is an error
        (T.TERMINATED, TM.START, False),
        (T.REQUESTED, TM.START, False),
    ],
)
def test_redeliveries_of_transfer_messages(state: TransferState, message: TransferMessage, repeat: bool) -> None:
    assert process.repeat(TRANSFER, _transfer(state, C), message, P) is repeat


def test_a_node_never_takes_its_own_message_for_a_redelivery() -> None:
    assert process.repeat(TRANSFER, _transfer(T.STARTED, P), TM.START, P) is False
    assert process.repeat(NEGOTIATION, _negotiation(N.FINALIZED, C), NM.FINALIZED, P) is True
    assert process.repeat(NEGOTIATION, _negotiation(N.FINALIZED, C), NM.TERMINATION, P) is False


def test_deadline_is_set_once_while_waiting_and_cleared_otherwise() -> None:
    waiting = _transfer(T.REQUESTED, C)
    stamped = process.deadline(TRANSFER, waiting, now=1000, limit_ms=500)
    assert stamped.deadline_at == 1500
    assert process.deadline(TRANSFER, stamped, now=1400, limit_ms=500).deadline_at == 1500
    owing = replace(stamped, awaiting_ack=TM.TERMINATION.value)
    assert process.deadline(TRANSFER, owing, now=1400, limit_ms=500).deadline_at is None
    assert process.deadline(TRANSFER, waiting, now=1000, limit_ms=0).deadline_at is None
    held = replace(_negotiation(N.REQUESTED, C), pending=True)
    assert process.deadline(NEGOTIATION, held, now=1000, limit_ms=500).deadline_at is None


def test_a_new_state_waits_afresh() -> None:
    stamped = replace(_transfer(T.REQUESTED, C), deadline_at=1500)
    assert advance_transfer(stamped, TM.START, P, 1200).deadline_at is None


def test_only_the_side_that_suspended_may_resume() -> None:
    started = _transfer(T.STARTED, P)
    suspended = advance_transfer(started, TM.SUSPENSION, C, 1)
    assert suspended.suspended_by is C
    with pytest.raises(InvalidTransferTransition, match="suspended by the consumer; only the consumer can resume it"):
        advance_transfer(suspended, TM.START, P, 2)
    resumed = advance_transfer(suspended, TM.START, C, 2)
    assert resumed.state is T.STARTED and resumed.suspended_by is None


def test_a_crossed_provider_start_stays_owed_since_it_carries_the_tokens() -> None:
    resuming = _transfer(T.SUSPENDED, P, TM.START)
    moved, ours = process.crossing(TRANSFER, resuming, TM.START, C)
    assert ours is TM.START and moved.state is T.STARTED and moved.awaiting_ack == TM.START.value


def test_glare_is_two_messages_leading_to_different_states() -> None:
    completing = _transfer(T.STARTED, P, TM.COMPLETION)
    assert process.glare(TRANSFER, completing, TM.SUSPENSION, C)
    assert not process.glare(TRANSFER, completing, TM.COMPLETION, C)  # a crossing, not glare
    assert not process.glare(TRANSFER, completing, TM.TERMINATION, C)  # a termination always wins
    assert not process.glare(TRANSFER, _transfer(T.STARTED, P), TM.SUSPENSION, C)


def test_a_message_its_sender_never_sends_is_no_redelivery() -> None:
    assert process.repeat(NEGOTIATION, _negotiation(N.AGREED, P), NM.AGREEMENT, C) is False
    assert process.repeat(NEGOTIATION, _negotiation(N.AGREED, C), NM.AGREEMENT, P) is True
