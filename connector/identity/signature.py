"""Compact JWS signing and parsing on joserfc, restricted to EdDSA (Ed25519) and ES256."""

from __future__ import annotations

import json
import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

from joserfc import jws
from joserfc.errors import JoseError, SecurityWarning
from joserfc.jwk import ECKey, OKPKey
from joserfc.jws import JWSRegistry

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
    """Sign ``payload`` as a compact JWS with header alg, kid and typ."""
    header = {"alg": key.alg, "kid": kid, "typ": typ}
    body = json.dumps(payload, separators=(",", ":"), ensure_ascii=False)
    with warnings.catch_warnings():
        # We emit "EdDSA" on purpose (interop); joserfc flags it as deprecated by RFC 9864.
        warnings.filterwarnings("ignore", message="EdDSA is deprecated", category=SecurityWarning)
        return jws.serialize_compact(header, body, key.private, registry=REGISTRY)


@dataclass(frozen=True, slots=True)
class Compact:
    """A parsed, not yet verified, compact JWS: its header, its JSON payload and the signed object."""

    header: Mapping[str, Any]
    payload: Mapping[str, Any]
    signed: Any  # joserfc CompactSignature


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
    return Compact(header, payload, signed)


def verify(compact: Compact, key: OKPKey | ECKey) -> bool:
    """Tell whether the signature of ``compact`` is valid for ``key`` (key type must fit the header alg)."""
    kty, crv = KEY_FOR_ALG[compact.header["alg"]]
    if key.key_type != kty or key.curve_name != crv:
        return False
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="EdDSA is deprecated", category=SecurityWarning)
        try:
            return bool(jws.validate_compact(compact.signed, key, registry=REGISTRY))
        except (JoseError, ValueError):
            return False
