"""BitstringStatusList: encoding, decoding, bit order, limits, and the status list credential."""

from __future__ import annotations

import base64
import gzip
from datetime import timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from connector.identity.credentials import StatusEntry
from connector.identity.errors import StatusListError
from connector.identity.resolver import StaticResolver
from connector.identity.signature import parse
from connector.identity.status import (
    MIN_SIZE,
    bit_is_set,
    create_status_list_credential,
    decode_status_list,
    encode_status_list,
    is_revoked,
)
from tests.identity.conftest import NOW, Party


@settings(max_examples=50, deadline=None)
@given(st.sets(st.integers(0, MIN_SIZE - 1), max_size=64), st.integers(0, MIN_SIZE - 1))
def test_status_list_round_trip(revoked: set[int], probe: int) -> None:
    bits = decode_status_list(encode_status_list(revoked))
    assert len(bits) * 8 == MIN_SIZE
    for index in revoked:
        assert bit_is_set(bits, index)
    assert bit_is_set(bits, probe) == (probe in revoked)


def test_index_zero_is_the_leftmost_bit() -> None:
    encoded = encode_status_list({0, 9})
    assert encoded.startswith("u") and "=" not in encoded
    raw = gzip.decompress(base64.urlsafe_b64decode(encoded[1:] + "=="))
    assert raw[:2] == bytes([0b1000_0000, 0b0100_0000])


@pytest.mark.parametrize(
    ("encoded", "message"),
    [
        ("H4sIAAAAAAAA", "multibase"),
        ("u!!!", "base64url"),
        ("u" + base64.urlsafe_b64encode(b"not gzip").decode(), "GZIP"),
        ("u" + base64.urlsafe_b64encode(gzip.compress(bytes(20 * 1024 * 1024))).decode().rstrip("="), "expands"),
        ("u" + base64.urlsafe_b64encode(gzip.compress(bytes(100))[:20]).decode().rstrip("="), "truncated"),
    ],
)
def test_bad_encoded_lists_are_refused(encoded: str, message: str) -> None:
    with pytest.raises(StatusListError, match=message):
        decode_status_list(encoded)


def test_out_of_range_index_and_small_list_are_refused() -> None:
    with pytest.raises(StatusListError, match="outside the list"):
        bit_is_set(decode_status_list(encode_status_list(set())), MIN_SIZE)
    with pytest.raises(ValueError, match="at least"):
        encode_status_list(set(), size=1024)
    with pytest.raises(ValueError, match="outside"):
        encode_status_list({MIN_SIZE})


async def test_status_list_credential(issuer: Party, other: Party, resolver: StaticResolver) -> None:
    url = "https://issuer.example/status/1"
    jwt = create_status_list_credential(issuer.key, issuer.did, url, {3}, valid_from=NOW - timedelta(hours=1))
    payload = parse(jwt).payload
    assert payload["id"] == url
    assert payload["type"] == ["VerifiableCredential", "BitstringStatusListCredential"]
    assert payload["credentialSubject"]["type"] == "BitstringStatusList"
    assert payload["credentialSubject"]["statusPurpose"] == "revocation"
    assert await is_revoked(jwt, StatusEntry(url, 3), resolver, issuer.did, now=NOW)
    assert not await is_revoked(jwt, StatusEntry(url, 4), resolver, issuer.did, now=NOW)
    with pytest.raises(StatusListError, match="not by the credential's issuer"):
        await is_revoked(jwt, StatusEntry(url, 3), resolver, other.did, now=NOW)
    with pytest.raises(StatusListError, match="not the URL"):
        await is_revoked(jwt, StatusEntry("https://issuer.example/status/2", 3), resolver, issuer.did, now=NOW)
    with pytest.raises(StatusListError, match="not 'suspension'"):
        await is_revoked(jwt, StatusEntry(url, 3, "suspension"), resolver, issuer.did, now=NOW)
