"""DCP 1.0 self-issued ID tokens: issue ours, verify a peer's (signature, key relationship, audience, time, replay).

A token's claims are ``iss`` = ``sub`` = the holder's DID, ``aud`` = the verifier's DID, ``jti``, ``iat``, ``nbf``,
``exp`` and optionally ``token`` (the access token the verifier presents to the holder's Credential Service).
The header ``kid`` is a DID URL of the holder whose key must be listed under ``capabilityInvocation``.
"""

from __future__ import annotations

import heapq
import secrets
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from types import MappingProxyType
from typing import Any, Final, Literal, Protocol

from .compact import parse_token, verify_token_signature
from .did import DidDocument, key_id
from .errors import DidDocumentError, DidResolutionError, Reason, TokenRejected
from .keys import NodeKey
from .resolver import DidResolver
from .signature import MalformedJws, sign

DEFAULT_LIFETIME: Final = 300
DEFAULT_LEEWAY: Final = 30
# Bounds how long a jti must be remembered; DCP tokens live minutes.
MAX_LIFETIME: Final = 3600
KEY_RELATIONSHIP: Final = "capabilityInvocation"


def _epoch(now: datetime | float | None) -> int:
    if now is None:
        return int(time.time())
    if isinstance(now, datetime):
        if now.tzinfo is None:
            raise ValueError("now must be timezone-aware")
        return int(now.timestamp())
    return int(now)


def issue_token(
    key: NodeKey,
    own_did: str,
    audience_did: str,
    *,
    lifetime: int = DEFAULT_LIFETIME,
    access_token: str | None = None,
    now: datetime | float | None = None,
) -> str:
    """Return a signed self-issued ID token from ``own_did`` to ``audience_did``, valid for ``lifetime`` seconds."""
    if not 0 < lifetime <= MAX_LIFETIME:
        raise ValueError(f"lifetime must be between 1 and {MAX_LIFETIME} seconds, not {lifetime}")
    iat = _epoch(now)
    claims: dict[str, Any] = {
        "iss": own_did,
        "sub": own_did,
        "aud": audience_did,
        "jti": secrets.token_urlsafe(24),
        "iat": iat,
        "nbf": iat,
        "exp": iat + lifetime,
    }
    if access_token is not None:
        claims["token"] = access_token
    return sign(key, key_id(own_did, key), "JWT", claims)


class ReplayCache(Protocol):
    """Remembers token ids until their expiry."""

    async def remember(self, issuer: str, jti: str, expires_at: int, now: int) -> bool:
        """Record ``jti`` of ``issuer`` until ``expires_at`` (epoch seconds); return False if it was already seen.

        ``now`` is the verifier's clock, so ids are forgotten on the same clock their tokens are checked with.
        """
        ...


class MemoryReplayCache:
    """An in-process replay cache that forgets each jti after its token expired (one node only).

    When ``max_entries`` live ids are held, a new one is refused rather than an old one forgotten:
    forgetting a live id would let its token be replayed.
    """

    def __init__(self, max_entries: int = 1_000_000) -> None:
        self._seen: dict[tuple[str, str], int] = {}
        self._expiries: list[tuple[int, str, str]] = []
        self._max = max_entries

    def __len__(self) -> int:
        return len(self._seen)

    def _purge(self, now: float) -> None:
        while self._expiries and self._expiries[0][0] < now:
            exp, iss, jti = heapq.heappop(self._expiries)
            if self._seen.get((iss, jti)) == exp:
                del self._seen[(iss, jti)]

    async def remember(self, issuer: str, jti: str, expires_at: int, now: int) -> bool:
        """Record a jti; return False if it is still remembered."""
        return self.record(issuer, jti, expires_at, now) == "new"

    def record(self, issuer: str, jti: str, expires_at: int, now: float) -> Literal["new", "seen", "full"]:
        """Record a jti: "new" when recorded now, "seen" when still remembered, "full" when there is no room."""
        self._purge(now)
        k = (issuer, jti)
        if k in self._seen:
            return "seen"
        if len(self._seen) >= self._max:
            return "full"
        self._seen[k] = expires_at
        heapq.heappush(self._expiries, (expires_at, issuer, jti))
        return "new"


@dataclass(frozen=True, slots=True)
class VerifiedToken:
    """A token that passed every check: who sent it, its claims, and the sender's DID document."""

    participant_did: str
    claims: Mapping[str, Any]
    jti: str
    expires_at: datetime
    key_id: str
    document: DidDocument

    @property
    def access_token(self) -> str | None:
        """Return the access token for the holder's Credential Service, if the token carried one."""
        value = self.claims.get("token")
        return value if isinstance(value, str) else None


def strip_bearer(value: str | None) -> str:
    """Return the token of an Authorization header value (with or without ``Bearer``); raise if there is none."""
    if value is None:
        raise TokenRejected(Reason.MISSING, "no token was sent")
    parts = value.split(None, 1)
    if parts and parts[0].lower() == "bearer":
        parts = parts[1:]
    token = parts[0].strip() if parts else ""
    if not token:
        raise TokenRejected(Reason.MISSING, "no token was sent")
    return token


def _int_claim(claims: Mapping[str, Any], name: str, required: bool) -> int | None:
    value = claims.get(name)
    if value is None:
        if required:
            raise TokenRejected(Reason.MALFORMED, f"claim {name!r} is missing")
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TokenRejected(Reason.MALFORMED, f"claim {name!r} is not a number")
    return int(value)


def _audiences(claims: Mapping[str, Any]) -> list[str]:
    aud = claims.get("aud")
    if isinstance(aud, str):
        return [aud]
    if isinstance(aud, list) and all(isinstance(a, str) for a in aud):
        return aud
    raise TokenRejected(Reason.MALFORMED, "claim 'aud' is missing or not a string (list)")


async def verify_token(
    token: str | None,
    expected_audience: str,
    resolver: DidResolver,
    replay_cache: ReplayCache,
    *,
    now: datetime | float | None = None,
    leeway: int = DEFAULT_LEEWAY,
    max_lifetime: int = MAX_LIFETIME,
) -> VerifiedToken:
    """Verify a self-issued ID token (optionally prefixed ``Bearer``); raise TokenRejected naming the failed check."""
    value = strip_bearer(token)
    try:
        compact = parse_token(value)
    except MalformedJws as exc:
        reason = Reason.ALGORITHM if exc.algorithm else Reason.MALFORMED
        raise TokenRejected(reason, f"not a usable JWS: {exc}") from None
    header, claims = compact.header, compact.payload
    typ = header.get("typ")
    if typ is not None and str(typ).upper() != "JWT":
        raise TokenRejected(Reason.WRONG_TYPE, f"header typ {str(typ)[:40]!r} is not JWT")
    iss, sub = claims.get("iss"), claims.get("sub")
    if not isinstance(iss, str) or not iss:
        raise TokenRejected(Reason.MALFORMED, "claim 'iss' is missing")
    if sub != iss:
        raise TokenRejected(Reason.ISSUER_MISMATCH, "claims 'iss' and 'sub' differ (a self-issued token has both)")
    kid = header.get("kid")
    if kid is not None and not isinstance(kid, str):
        raise TokenRejected(Reason.MALFORMED, "header 'kid' is not a string")
    if kid is not None and ":" in kid.split("#", 1)[0] and kid.split("#", 1)[0] != iss:
        raise TokenRejected(Reason.UNKNOWN_KEY, f"key {kid[:120]!r} does not belong to the issuer {iss[:100]}")
    try:
        document = await resolver(iss)
    except (DidResolutionError, DidDocumentError) as exc:
        raise TokenRejected(Reason.UNRESOLVABLE, f"DID document of the issuer cannot be used: {exc.message}") from None
    if document.id != iss:
        raise TokenRejected(Reason.UNRESOLVABLE, f"resolver returned the document of {document.id[:100]}, not {iss}")
    vkey = document.key(kid, KEY_RELATIONSHIP)
    if vkey is None:
        shown = "(no kid)" if kid is None else repr(kid[:120])
        raise TokenRejected(Reason.UNKNOWN_KEY, f"key {shown} is not listed in {KEY_RELATIONSHIP} of {iss[:100]}")
    if not verify_token_signature(compact, vkey.key):
        raise TokenRejected(Reason.BAD_SIGNATURE, f"signature does not verify with key {vkey.id[:120]}")
    if expected_audience not in _audiences(claims):
        raise TokenRejected(Reason.WRONG_AUDIENCE, f"token is not addressed to {expected_audience}")
    at = _epoch(now)
    exp = _int_claim(claims, "exp", True)
    iat = _int_claim(claims, "iat", True)
    nbf = _int_claim(claims, "nbf", False)
    assert exp is not None and iat is not None
    if exp + leeway < at:
        raise TokenRejected(Reason.EXPIRED, f"token expired {at - exp} s ago")
    if iat - leeway > at or (nbf is not None and nbf - leeway > at):
        raise TokenRejected(Reason.NOT_YET_VALID, "token is issued in the future (iat/nbf after now)")
    if exp - iat > max_lifetime:
        raise TokenRejected(Reason.LIFETIME, f"token lifetime {exp - iat} s exceeds {max_lifetime} s")
    jti = claims.get("jti")
    if not isinstance(jti, str) or not jti or len(jti) > 256:
        raise TokenRejected(Reason.MALFORMED, "claim 'jti' is missing or invalid")
    if not await replay_cache.remember(iss, jti, exp + leeway, at):
        raise TokenRejected(Reason.REPLAYED, "token id (jti) was already used")
    return VerifiedToken(iss, MappingProxyType(dict(claims)), jti, datetime.fromtimestamp(exp, UTC), vkey.id, document)
