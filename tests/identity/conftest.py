"""Parties of a small dataspace for identity tests: each a DID, a key and a parsed DID document."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

import pytest

from connector.identity.did import DidDocument, build_did_document, parse_did_document
from connector.identity.keys import KeyKind, NodeKey, generate_key
from connector.identity.resolver import StaticResolver

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


@dataclass(frozen=True)
class Party:
    """A participant with its key and DID document."""

    did: str
    key: NodeKey
    document: DidDocument


def make_party(name: str, kind: KeyKind = "Ed25519") -> Party:
    """Return a party ``did:web:<name>.example`` with a fresh key."""
    did = f"did:web:{name}.example"
    key = generate_key(kind)
    raw = build_did_document(
        did, key, f"https://{name}.example/api/dsp", f"https://{name}.example/api/credentials/v1/participants/x"
    )
    return Party(did, key, parse_did_document(raw, did))


@pytest.fixture
def provider() -> Party:
    return make_party("provider")


@pytest.fixture
def consumer() -> Party:
    return make_party("consumer", "P-256")


@pytest.fixture
def issuer() -> Party:
    return make_party("issuer")


@pytest.fixture
def other() -> Party:
    return make_party("other")


@pytest.fixture
def resolver(provider: Party, consumer: Party, issuer: Party, other: Party) -> StaticResolver:
    return StaticResolver([provider.document, consumer.document, issuer.document, other.document])
