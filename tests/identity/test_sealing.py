"""Secrets at rest: sealed with a key derived from the node key, bound to where they are stored."""

from __future__ import annotations

import pytest

from connector.identity.keys import generate_key
from connector.identity.sealing import PREFIX, SealedValueError, SecretSealer


def test_a_sealed_value_opens_only_where_it_was_stored_and_only_with_the_node_key() -> None:
    sealer = SecretSealer.for_node(generate_key("Ed25519"))
    sealed = sealer.seal("eyJ-token", "transfers/t1/data_address/authorization")
    assert sealed.startswith(PREFIX) and "eyJ-token" not in sealed
    assert sealed != sealer.seal("eyJ-token", "transfers/t1/data_address/authorization")  # a fresh nonce each time
    assert sealer.open(sealed, "transfers/t1/data_address/authorization") == "eyJ-token"
    # A value that merely looks sealed (a peer can send anything) is sealed like any other.
    assert sealer.open(sealer.seal(sealed, "elsewhere"), "elsewhere") == sealed
    with pytest.raises(SealedValueError, match="key file"):
        sealer.open(sealed, "transfers/t2/data_address/authorization")  # copied into another row
    with pytest.raises(SealedValueError):
        SecretSealer.for_node(generate_key("P-256")).open(sealed, "transfers/t1/data_address/authorization")
    tampered = sealed[:-2] + ("A" if sealed[-2] != "A" else "B") + sealed[-1]
    with pytest.raises(SealedValueError):
        sealer.open(tampered, "transfers/t1/data_address/authorization")


def test_a_value_stored_before_sealing_reads_as_it_is() -> None:
    sealer = SecretSealer.for_node(generate_key("Ed25519"))
    assert sealer.open("plain-token", "transfers/t1/data_address/authorization") == "plain-token"


def test_the_same_node_key_gives_the_same_sealing_key() -> None:
    key = generate_key("P-256")
    sealed = SecretSealer.for_node(key).seal("secret", "w")
    assert SecretSealer.for_node(key).open(sealed, "w") == "secret"
