"""The lean compact JWS check of self-issued tokens (decision 0031): each refusal, and agreement with joserfc."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest

from connector.identity.compact import MAX_HEADER_BYTES, parse_token, verify_token_signature
from connector.identity.signature import MalformedJws, parse, sign, verify
from tests.identity.conftest import Party, make_party


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def _enc(value: Any) -> str:
    return _b64(json.dumps(value).encode())


def _key(party: Party) -> Any:
    return party.document.keys[next(iter(party.document.keys))].key


def _signed(party: Party, claims: dict[str, Any] | None = None) -> str:
    return sign(party.key, f"{party.did}#{party.key.kid}", "JWT", claims or {"iss": party.did, "jti": "j"})


@pytest.mark.parametrize("kind", ["Ed25519", "P-256"])
def test_a_valid_token_verifies_with_its_key_only(kind: Any) -> None:
    signer, stranger = make_party("signer", kind), make_party("stranger", kind)
    token = parse_token(_signed(signer))
    assert token.payload == {"iss": signer.did, "jti": "j"}
    assert token.header["alg"] == ("EdDSA" if kind == "Ed25519" else "ES256")
    assert verify_token_signature(token, _key(signer))
    assert not verify_token_signature(token, _key(stranger))


@pytest.mark.parametrize("kind", ["Ed25519", "P-256"])
def test_a_changed_payload_or_signature_does_not_verify(kind: Any) -> None:
    signer = make_party("signer", kind)
    h, p, s = _signed(signer).split(".")
    assert not verify_token_signature(
        parse_token(f"{h}.{_enc({'iss': 'did:web:mallory', 'jti': 'j'})}.{s}"), _key(signer)
    )
    raw = bytearray(base64.urlsafe_b64decode(s + "=="))
    raw[5] ^= 1
    assert not verify_token_signature(parse_token(f"{h}.{p}.{_b64(bytes(raw))}"), _key(signer))
    # Too short or too long a signature is refused before the curve is asked.
    assert not verify_token_signature(parse_token(f"{h}.{p}.{_b64(bytes(raw[:63]))}"), _key(signer))
    assert not verify_token_signature(parse_token(f"{h}.{p}.{_b64(bytes(raw) + b'x')}"), _key(signer))


def test_the_key_must_fit_the_algorithm() -> None:
    ed, ec = make_party("ed"), make_party("ec", "P-256")
    h, p, s = _signed(ec).split(".")
    # An ES256 token checked with an Ed25519 key, and an EdDSA header over an ES256 signature.
    assert not verify_token_signature(parse_token(f"{h}.{p}.{s}"), _key(ed))
    relabelled = _enc({"alg": "EdDSA", "kid": "k", "typ": "JWT"})
    assert not verify_token_signature(parse_token(f"{relabelled}.{p}.{s}"), _key(ec))


HEADER = _enc({"alg": "EdDSA", "typ": "JWT"})
PAYLOAD = _enc({"iss": "did:web:a"})
SIG = _b64(b"\x00" * 64)
NAN = _b64(b'{"a": NaN}')  # not JSON (Python's json reads it)


@pytest.mark.parametrize(
    ("value", "algorithm"),
    [
        ("abc", False),
        ("a.b", False),
        ("a.b.c.d", False),
        (f"{HEADER}.{PAYLOAD}.{SIG}=", False),  # padding is not base64url
        (f"{HEADER}=.{PAYLOAD}.{SIG}", False),
        (f"{HEADER}.{PAYLOAD}+.{SIG}", False),  # the standard alphabet's characters
        (f"{HEADER}.{PAYLOAD}.{SIG[:-2]}/A", False),
        (f"{HEADER}.{PAYLOAD} .{SIG}", False),  # whitespace (a lenient decoder skips it)
        (f"{HEADER}.{PAYLOAD}é.{SIG}", False),  # not ASCII
        (f"{HEADER}.{PAYLOAD}A.{SIG}", False),  # an impossible base64 length
        (f"{_b64(b'not json')}.{PAYLOAD}.{SIG}", False),
        (f"{_enc(['alg', 'EdDSA'])}.{PAYLOAD}.{SIG}", False),  # header not an object
        (f"{HEADER}.{_b64(b'not json')}.{SIG}", False),
        (f"{HEADER}.{_enc([1, 2])}.{SIG}", False),  # payload not an object
        (f"{HEADER}.{NAN}.{SIG}", False),
        (f"{_enc({'alg': 'EdDSA', 'crit': ['exp']})}.{PAYLOAD}.{SIG}", False),
        (f"{_enc({'alg': 'EdDSA', 'kid': 'k' * MAX_HEADER_BYTES})}.{PAYLOAD}.{SIG}", False),
        ("x" * 600_000, False),
        (f"{_enc({'typ': 'JWT'})}.{PAYLOAD}.{SIG}", True),  # no algorithm
        (f"{_enc({'alg': 'none'})}.{PAYLOAD}.", True),
        (f"{_enc({'alg': 'HS256'})}.{PAYLOAD}.{SIG}", True),
        (f"{_enc({'alg': 'RS256'})}.{PAYLOAD}.{SIG}", True),
        (f"{_enc({'alg': 'ES384'})}.{PAYLOAD}.{SIG}", True),
        (f"{_enc({'alg': ['EdDSA']})}.{PAYLOAD}.{SIG}", True),
        (f"{_enc({'alg': 'eddsa'})}.{PAYLOAD}.{SIG}", True),
    ],
)
def test_every_malformed_value_is_refused_with_its_reason(value: str, algorithm: bool) -> None:
    with pytest.raises(MalformedJws) as info:
        parse_token(value)
    assert info.value.algorithm is algorithm, str(info.value)


@pytest.mark.parametrize("kind", ["Ed25519", "P-256"])
def test_it_agrees_with_joserfc_on_valid_and_tampered_tokens(kind: Any) -> None:
    """Every token either path accepts the other accepts too (joserfc stays the signing and reference path)."""
    signer, stranger = make_party("signer", kind), make_party("stranger", kind)
    good = _signed(signer, {"iss": signer.did, "jti": "j", "n": "ü" * 40})
    h, p, s = good.split(".")
    variants = [good, f"{h}.{_enc({'iss': 'x'})}.{s}", f"{h}.{p}.{s[:-4]}AAAA", _signed(stranger)]
    for value in variants:
        for key in (_key(signer), _key(stranger)):
            lean = verify_token_signature(parse_token(value), key)
            assert lean is verify(parse(value), key), value


def test_a_small_order_key_verifies_nothing() -> None:
    # The identity point as public key with R = identity and S = 0 satisfies [S]B = R + [k]A for every message.
    # OpenSSL's Ed25519 check (under `cryptography` and joserfc) accepts it; libsodium, which both of the node's
    # checks use (decision 0033), refuses small-order keys.
    from joserfc.jwk import OKPKey

    identity = bytes([1]) + bytes(31)
    key = OKPKey.import_key({"kty": "OKP", "crv": "Ed25519", "x": _b64(identity)})
    signed = f"{_enc({'alg': 'EdDSA', 'typ': 'JWT'})}.{_enc({'iss': 'did:web:mallory', 'jti': 'j'})}"
    forgery = identity + bytes(32)
    key.public_key.verify(forgery, signed.encode())  # OpenSSL: no InvalidSignature
    key.public_key.verify(forgery, b"any other message")
    assert not verify_token_signature(parse_token(f"{signed}.{_b64(forgery)}"), key)
    assert not verify(parse(f"{signed}.{_b64(forgery)}"), key)


def test_the_node_signs_the_same_bytes_as_openssl() -> None:
    # libsodium signs Ed25519 for `sign`; RFC 8032 signatures are deterministic, so OpenSSL's are the same bytes.
    party = make_party("signer")
    value = _signed(party, {"iss": party.did, "n": "ü" * 40})
    h, p, s = value.split(".")
    private = party.key.private.private_key
    assert _b64(private.sign(f"{h}.{p}".encode())) == s


@pytest.mark.parametrize(
    "claims",
    [
        {"iss": "did:web:a", "n": "ü€😀" * 3, "list": [1, True, None, {"x": "y"}], "exp": 1_800_000_000},
        {"iss": "did:web:a", "big": 2**70, "neg": -(2**65)},  # beyond orjson's 64-bit integers
        {"iss": "did:web:a", 7: "a key that is not a string"},  # orjson refuses; written as the standard library does
    ],
)
def test_signed_claims_are_compact_json_in_their_order_and_read_back_equal(claims: dict[Any, Any]) -> None:
    party = make_party("signer")
    _, payload, _ = _signed(party, claims).split(".")
    raw = base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4))
    assert raw == json.dumps(claims, separators=(",", ":"), ensure_ascii=False).encode()
    assert json.loads(raw) == {str(k): v for k, v in claims.items()}
