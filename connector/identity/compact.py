"""The per-request check of a self-issued ID token's compact JWS, without joserfc (decisions 0031, 0033).

Every DSP request carries a fresh token, so its JWS is parsed and verified on every request. joserfc's generic
layers (registry, header model, algorithm objects) cost about a third as much again as the signature check
itself; this module does the same checks once each, with nothing between them and `cryptography`:
- the value is at most MAX_COMPACT_BYTES, three base64url parts (the URL-safe alphabet only, no padding), the
  header at most MAX_HEADER_BYTES;
- header and payload are JSON objects; the header names an algorithm of the allow-list (EdDSA/Ed25519, ES256)
  and no `crit` parameters;
- the key's type and curve fit the algorithm (OKP Ed25519, EC P-256) and the signature over the ASCII
  `header.payload` verifies (Ed25519: RFC 8032, 64 bytes, by libsodium, which takes half the time OpenSSL does
  (decision 0033); ES256: 64 bytes r||s, RFC 7518 3.4).
Key import and the parsing of every other JWS the node verifies (credentials, presentations, access tokens)
stay on joserfc (`signature.py`, whose Ed25519 checks and signatures are libsodium's too); the tests check that
each value this module accepts `signature.verify` accepts, and each refusal.
"""

from __future__ import annotations

import binascii
import re
from dataclasses import dataclass
from typing import Any, Final

import orjson
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ec import ECDSA, EllipticCurvePublicKey
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature
from cryptography.hazmat.primitives.hashes import SHA256
from joserfc.jwk import ECKey, OKPKey
from nacl.bindings import crypto_sign_open
from nacl.exceptions import BadSignatureError

from .signature import KEY_FOR_ALG, MAX_COMPACT_BYTES, REGISTRY, MalformedJws, check_header

MAX_HEADER_BYTES: Final[int] = REGISTRY.max_header_length  # as joserfc is told (did:web key ids are long)
_BASE64URL: Final = re.compile(rb"[A-Za-z0-9_-]*")
_TO_STANDARD: Final = bytes.maketrans(b"-_", b"+/")


@dataclass(frozen=True, slots=True)
class Token:
    """A parsed, not yet verified, compact JWS: its header, its JSON payload, what was signed and the signature."""

    header: dict[str, Any]
    payload: dict[str, Any]
    signing_input: bytes
    signature: bytes


def _decode(part: bytes, what: str) -> bytes:
    if _BASE64URL.fullmatch(part) is None:
        raise MalformedJws(f"cannot be decoded (the {what} is not base64url)")
    if len(part) % 4 == 1:
        raise MalformedJws(f"cannot be decoded (the {what} has an impossible length)")
    try:
        return binascii.a2b_base64(part.translate(_TO_STANDARD) + b"=" * (-len(part) % 4), strict_mode=True)
    except binascii.Error:
        raise MalformedJws(f"cannot be decoded (the {what} is not base64url)") from None


def _object(raw: bytes, what: str) -> dict[str, Any]:
    try:
        value = orjson.loads(raw)
    except orjson.JSONDecodeError:
        raise MalformedJws(f"{what} is not JSON") from None
    if not isinstance(value, dict):
        raise MalformedJws(f"{what} is not a JSON object")
    return value


def parse_token(value: str) -> Token:
    """Split and decode a compact JWS without verifying it; raise MalformedJws naming the problem."""
    if len(value) > MAX_COMPACT_BYTES:
        raise MalformedJws(f"longer than {MAX_COMPACT_BYTES} bytes")
    try:
        raw = value.encode("ascii")
    except UnicodeError:
        raise MalformedJws("cannot be decoded (not ASCII)") from None
    parts = raw.split(b".")
    if len(parts) != 3:
        raise MalformedJws("not a compact JWS (three dot-separated parts)")
    header_part, payload_part, signature_part = parts
    if len(header_part) > MAX_HEADER_BYTES:
        raise MalformedJws(f"cannot be decoded (header longer than {MAX_HEADER_BYTES} bytes)")
    header = _object(_decode(header_part, "header"), "header")
    check_header(header)
    payload = _object(_decode(payload_part, "payload"), "payload")
    signature = _decode(signature_part, "signature")
    return Token(header, payload, header_part + b"." + payload_part, signature)


def verify_token_signature(token: Token, key: OKPKey | ECKey) -> bool:
    """Tell whether the signature of ``token`` is valid for ``key`` (the key type must fit the header's alg)."""
    kty, crv = KEY_FOR_ALG[token.header["alg"]]
    if key.key_type != kty or key.curve_name != crv:
        return False
    public = key.public_key
    try:
        if isinstance(public, Ed25519PublicKey):
            if len(token.signature) != 64:
                return False
            # libsodium refuses what OpenSSL refuses (S not below the group order, a key off the curve) and
            # also small-order and non-canonical keys and R: never a signature an honest signer makes.
            crypto_sign_open(token.signature + token.signing_input, public.public_bytes_raw())
            return True
        if isinstance(public, EllipticCurvePublicKey):
            if len(token.signature) != 64:
                return False
            r = int.from_bytes(token.signature[:32], "big")
            s = int.from_bytes(token.signature[32:], "big")
            public.verify(encode_dss_signature(r, s), token.signing_input, ECDSA(SHA256()))
            return True
    except (InvalidSignature, BadSignatureError):
        return False
    return False
