"""The negotiation transition table, checked over every (state, message, sender) combination."""

from __future__ import annotations

import itertools

import pytest

from connector.domain.negotiation import (
    TERMINAL,
    TRANSITIONS,
    InvalidTransition,
    Message,
    Negotiation,
    NegotiationState,
    Role,
    advance,
)

S, M, P, C = NegotiationState, Message, Role.PROVIDER, Role.CONSUMER

# The normative diagram of DSP 2025-1, written out independently of the table under test.
EXPECTED = {
    (S.INITIAL, M.REQUEST, C): S.REQUESTED,
    (S.REQUESTED, M.OFFER, P): S.OFFERED,
    (S.REQUESTED, M.AGREEMENT, P): S.AGREED,
    (S.OFFERED, M.REQUEST, C): S.REQUESTED,
    (S.OFFERED, M.ACCEPTED, C): S.ACCEPTED,
    (S.ACCEPTED, M.AGREEMENT, P): S.AGREED,
    (S.AGREED, M.VERIFICATION, C): S.VERIFIED,
    (S.VERIFIED, M.FINALIZED, P): S.FINALIZED,
}


def _negotiation(state: NegotiationState) -> Negotiation:
    return Negotiation("n", Role.PROVIDER, state, "p", "c", "did:web:peer", "http://peer", {}, "asset")


@pytest.mark.parametrize(("state", "message", "sender"), list(itertools.product(S, M, Role)))
def test_every_combination(state: NegotiationState, message: Message, sender: Role) -> None:
    if message is M.TERMINATION:
        expected = None if state in TERMINAL else S.TERMINATED
    else:
        expected = EXPECTED.get((state, message, sender))
    if expected is None:
        with pytest.raises(InvalidTransition) as caught:
            advance(_negotiation(state), message, sender, 1)
        assert state.value in caught.value.message and message.value in caught.value.message
    else:
        moved = advance(_negotiation(state), message, sender, 1)
        assert moved.state is expected and moved.version == 1 and moved.updated_at == 1


def test_table_has_nothing_else() -> None:
    terminations = {k for k in TRANSITIONS if k[1] is M.TERMINATION}
    assert {k: v for k, v in TRANSITIONS.items() if k not in terminations} == EXPECTED
    assert {state for state, _, _ in terminations} == set(S) - TERMINAL


@pytest.mark.parametrize(
    ("state", "message", "sender"),
    [
        # The TCK's negative cases (dsp-tck.md): each must be a 4xx other than 404.
        (S.OFFERED, M.VERIFICATION, C),
        (S.ACCEPTED, M.VERIFICATION, C),
        (S.REQUESTED, M.REQUEST, C),
        (S.OFFERED, M.AGREEMENT, P),
        (S.OFFERED, M.FINALIZED, P),
        (S.REQUESTED, M.FINALIZED, P),
        (S.ACCEPTED, M.FINALIZED, P),
        (S.AGREED, M.FINALIZED, P),
        (S.ACCEPTED, M.OFFER, P),
        (S.FINALIZED, M.TERMINATION, C),
        (S.VERIFIED, M.ACCEPTED, P),
        (S.AGREED, M.FINALIZED, C),
    ],
)
def test_protocol_errors_are_invalid_transitions(state: NegotiationState, message: Message, sender: Role) -> None:
    with pytest.raises(InvalidTransition):
        advance(_negotiation(state), message, sender, 1)
