"""Compact JWS signing and checking: EdDSA (Ed25519) on libsodium, ES256 on `cryptography` and joserfc."""

from __future__ import annotations

import base64
import json
import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

import orjson
from cryptography.hazmat.primitives.asymmetric.ec import ECDSA, EllipticCurvePrivateKey
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
from cryptography.hazmat.primitives.hashes import SHA256
from joserfc import jws
from joserfc.errors import JoseError, SecurityWarning
from joserfc.jwk import ECKey, OKPKey
from joserfc.jws import JWSRegistry
from nacl.bindings import crypto_sign, crypto_sign_open
from nacl.exceptions import BadSignatureError

from .keys import NodeKey

# "Ed25519" is RFC 9864's name for EdDSA over Ed25519; peers may send either. Never "none", HS* or RS*.
ALLOWED_ALGORITHMS: Final = frozenset({"EdDSA", "Ed25519", "ES256"})
KEY_FOR_ALG: Final = {"EdDSA": ("OKP", "Ed25519"), "Ed25519": ("OKP", "Ed25519"), "ES256": ("EC", "P-256")}
MAX_COMPACT_BYTES: Final = 512 * 1024


def _registry() -> JWSRegistry:
    reg = JWSRegistry(algorithms=sorted(ALLOWED_ALGORITHMS), strict_check_header=False)
    # joserfc's defaults (512-byte header, 128 kB payload) are too small for did:web kids and presentations
    # carrying several credentials; the total stays bounded by MAX_COMPACT_BYTES.
    reg.max_header_length = 4096
    reg.max_payload_length = MAX_COMPACT_BYTES
    return reg


REGISTRY: Final = _registry()


def sign(key: NodeKey, kid: str, typ: str, payload: Mapping[str, Any]) -> str:
    """Sign ``payload`` as a compact JWS with header alg, kid and typ.

    Signed directly, Ed25519 with libsodium and ES256 with `cryptography` (every outgoing DSP message
    carries two fresh tokens, and joserfc's registry and header model cost about as much as the Ed25519
    signature itself): the same compact JWS
    joserfc writes (for Ed25519, deterministic, the very same bytes; ES256 as r||s, RFC 7518 3.4), as the
    tests check. The node's key is one of the two kinds `keys` makes, so its algorithm is on the allow-list.
    """
    header = {"alg": key.alg, "kid": kid, "typ": typ}
    signing_input = _base64url(_compact_json(header)) + b"." + _base64url(_compact_json(payload))
    private = key.private.private_key
    if isinstance(private, Ed25519PrivateKey):
        # libsodium: the same deterministic RFC 8032 signature as OpenSSL's, in two thirds of the time (0033)
        signature = crypto_sign(signing_input, key.ed25519_secret)[:64]
    elif isinstance(private, EllipticCurvePrivateKey) and key.alg == "ES256":
        r, s = decode_dss_signature(private.sign(signing_input, ECDSA(SHA256())))
        signature = r.to_bytes(32, "big") + s.to_bytes(32, "big")
    else:  # pragma: no cover - keys.py makes no other kind
        raise ValueError(f"the node's key ({key.kind}, {key.alg}) cannot sign a JWS here")
    return (signing_input + b"." + _base64url(signature)).decode("ascii")


def _compact_json(value: Mapping[str, Any]) -> bytes:
    """Return `value` as compact UTF-8 JSON, keys in their order: orjson's bytes, the standard library's for what
    orjson refuses (integers beyond 64 bits, keys that are not strings). The two agree on every value orjson
    writes except a float's exponent form ("1e-05" against "1e-5"), which is the same number either way."""
    try:
        return orjson.dumps(value)
    except TypeError:
        return json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode()


def _base64url(data: bytes) -> bytes:
    return base64.urlsafe_b64encode(data).rstrip(b"=")


@dataclass(frozen=True, slots=True)
class Compact:
    """A parsed, not yet verified, compact JWS: its header, its JSON payload and the signed object."""

    header: Mapping[str, Any]
    payload: Mapping[str, Any]
    signed: Any  # joserfc CompactSignature
    signing_input: bytes  # the ASCII `header.payload`
    signature: bytes  # decoded


class MalformedJws(ValueError):
    """The value is not a compact JWS with a JSON object payload and an allowed algorithm."""

    def __init__(self, message: str, *, algorithm: bool = False) -> None:
        super().__init__(message)
        self.algorithm = algorithm  # true when the algorithm was the problem (a distinct refusal reason)


def check_header(header: dict[str, Any]) -> None:
    """Refuse a JWS header whose algorithm is not on the allow-list or that names critical parameters (the
    checks every parser makes before any key is touched)."""
    alg = header.get("alg")
    if not isinstance(alg, str) or alg not in ALLOWED_ALGORITHMS:
        raise MalformedJws(f"algorithm {str(alg)[:20]!r} is not allowed (allowed: EdDSA, ES256)", algorithm=True)
    if "crit" in header:
        raise MalformedJws("critical header parameters are not supported")


def parse(value: str) -> Compact:
    """Split and decode a compact JWS without verifying it; raise MalformedJws naming the problem."""
    if len(value) > MAX_COMPACT_BYTES:
        raise MalformedJws(f"longer than {MAX_COMPACT_BYTES} bytes")
    if value.count(".") != 2:
        raise MalformedJws("not a compact JWS (three dot-separated parts)")
    try:
        signed = jws.extract_compact(value.encode("ascii"), registry=REGISTRY)
    except (JoseError, ValueError, TypeError, UnicodeError) as exc:
        raise MalformedJws(f"cannot be decoded ({type(exc).__name__})") from None
    header = signed.headers()
    check_header(header)
    try:
        payload = json.loads(signed.payload)
    except (ValueError, UnicodeError):
        raise MalformedJws("payload is not JSON") from None
    if not isinstance(payload, dict):
        raise MalformedJws("payload is not a JSON object")
    head, body, signature = value.encode("ascii").split(b".")
    try:
        raw_signature = base64.urlsafe_b64decode(signature + b"=" * (-len(signature) % 4))
    except ValueError:  # pragma: no cover - joserfc has decoded it above
        raise MalformedJws("cannot be decoded (the signature is not base64url)") from None
    return Compact(header, payload, signed, head + b"." + body, raw_signature)


def verify(compact: Compact, key: OKPKey | ECKey) -> bool:
    """Tell whether the signature of ``compact`` is valid for ``key`` (key type must fit the header alg)."""
    kty, crv = KEY_FOR_ALG[compact.header["alg"]]
    if key.key_type != kty or key.curve_name != crv:
        return False
    if kty == "OKP":
        # libsodium, as for self-issued tokens (decision 0033): half OpenSSL's time, and it refuses small-order
        # keys, under which OpenSSL (and so joserfc) takes one "signature" for every message.
        public = key.public_key
        if not isinstance(public, Ed25519PublicKey) or len(compact.signature) != 64:
            return False
        try:
            crypto_sign_open(compact.signature + compact.signing_input, public.public_bytes_raw())
        except BadSignatureError:
            return False
        return True
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="EdDSA is deprecated", category=SecurityWarning)
        try:
            return bool(jws.validate_compact(compact.signed, key, registry=REGISTRY))
        except (JoseError, ValueError):
            return False
