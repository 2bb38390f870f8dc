"""The transfer transition table, checked over every (state, message, sender) combination."""

from __future__ import annotations

import itertools

import pytest

from connector.domain.negotiation import Role
from connector.domain.transfer import (
    TRANSFER_TERMINAL,
    TRANSFER_TRANSITIONS,
    InvalidTransferTransition,
    Transfer,
    TransferMessage,
    TransferState,
    advance_transfer,
)

S, M, P, C = TransferState, TransferMessage, Role.PROVIDER, Role.CONSUMER

# DSP 2025-1 §6.2, written out independently of the table under test (INITIAL is the consumer's state before
# the provider acknowledged its request; a start that overtakes that acknowledgement implies it, which
# tests/test_process_rules.py covers).
EXPECTED = {
    (S.INITIAL, M.REQUEST, C): S.REQUESTED,
    (S.REQUESTED, M.START, P): S.STARTED,
    (S.SUSPENDED, M.START, P): S.STARTED,
    (S.SUSPENDED, M.START, C): S.STARTED,
    (S.STARTED, M.COMPLETION, P): S.COMPLETED,
    (S.STARTED, M.COMPLETION, C): S.COMPLETED,
    (S.STARTED, M.SUSPENSION, P): S.SUSPENDED,
    (S.STARTED, M.SUSPENSION, C): S.SUSPENDED,
}


def _transfer(state: TransferState) -> Transfer:
    return Transfer("t", Role.PROVIDER, state, "p", "c", "did:web:peer", "http://peer", "agr", "asset", "HttpData-PULL")


@pytest.mark.parametrize(("state", "message", "sender"), list(itertools.product(S, M, Role)))
def test_every_combination(state: TransferState, message: TransferMessage, sender: Role) -> None:
    if message is M.TERMINATION:
        expected = None if state in TRANSFER_TERMINAL else S.TERMINATED
    else:
        expected = EXPECTED.get((state, message, sender))
    if expected is None:
        with pytest.raises(InvalidTransferTransition) as caught:
            advance_transfer(_transfer(state), message, sender, 1)
        assert state.value in caught.value.message and message.value in caught.value.message
    else:
        moved = advance_transfer(_transfer(state), message, sender, 1)
        assert moved.state is expected and moved.version == 1 and moved.updated_at == 1


def test_table_has_nothing_else() -> None:
    terminations = {k for k in TRANSFER_TRANSITIONS if k[1] is M.TERMINATION}
    assert {k: v for k, v in TRANSFER_TRANSITIONS.items() if k not in terminations} == EXPECTED
    assert {state for state, _, _ in terminations} == set(S) - TRANSFER_TERMINAL
