"""Data-plane tokens: signed by this node, bound to a transfer, short-lived, of one kind."""

from __future__ import annotations

import time

import pytest

from connector.identity.access_tokens import AccessDenied, AccessTokenVerifier, issue_access_token
from connector.identity.keys import generate_key

DID = "did:web:127.0.0.1%3A9000"


def test_a_valid_token_names_its_transfer_and_expires() -> None:
    key = generate_key()
    verifier = AccessTokenVerifier(key, DID)
    token = issue_access_token(key, DID, "tp-1", "agr-1", "did:web:consumer", 3, lifetime=60)
    claims = verifier.verify(token)
    assert (claims.transfer_id, claims.agreement_id, claims.consumer_id, claims.generation) == (
        "tp-1",
        "agr-1",
        "did:web:consumer",
        3,
    )
    with pytest.raises(AccessDenied, match="expired"):
        verifier.verify(token, now=time.time() + 120)


def test_refresh_tokens_are_not_access_tokens_and_vice_versa() -> None:
    key = generate_key()
    verifier = AccessTokenVerifier(key, DID)
    refresh = issue_access_token(key, DID, "tp-1", "agr-1", "c", 1, kind="refresh")
    with pytest.raises(AccessDenied, match="refresh token cannot be used"):
        verifier.verify(refresh)
    assert verifier.verify(refresh, kind="refresh").kind == "refresh"


def test_tokens_of_another_key_or_node_or_garbage_are_refused() -> None:
    key = generate_key()
    verifier = AccessTokenVerifier(key, DID)
    with pytest.raises(AccessDenied, match="signature"):
        verifier.verify(issue_access_token(generate_key(), DID, "tp", "agr", "c", 1))
    with pytest.raises(AccessDenied, match="not issued by this node"):
        verifier.verify(issue_access_token(key, "did:web:other", "tp", "agr", "c", 1))
    with pytest.raises(AccessDenied, match="malformed"):
        verifier.verify("not.a.jwt")
