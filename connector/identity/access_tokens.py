"""Data-plane access tokens: short-lived JWTs this node signs for a consumer, bound to one transfer.

Claims: ``iss`` and ``aud`` = this node's DID (only this node accepts them), ``sub`` = the consumer's id,
``tid`` = the transfer process id, ``agr`` = the agreement id, ``gen`` = the transfer's token generation
(a token of an earlier generation is revoked), ``kind`` = "access" or "refresh", ``iat``, ``exp``, ``jti``.
The signature and the time are checked here; whether the transfer still allows access is the data
plane's check, made on every request against the database.
"""

from __future__ import annotations

import secrets
import time
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any, Final

from .did import key_id
from .keys import NodeKey
from .signature import MalformedJws, parse, sign, verify

ACCESS_LIFETIME: Final = 300
REFRESH_LIFETIME: Final = 86_400
LEEWAY: Final = 5


class AccessDenied(Exception):
    """A data-plane token was refused; the message says why (never the token)."""


@dataclass(frozen=True, slots=True)
class AccessClaims:
    """What a verified data-plane token grants."""

    transfer_id: str
    agreement_id: str
    consumer_id: str
    generation: int
    kind: str
    expires_at: int


def issue_access_token(
    key: NodeKey,
    did: str,
    transfer_id: str,
    agreement_id: str,
    consumer_id: str,
    generation: int,
    *,
    kind: str = "access",
    lifetime: int = ACCESS_LIFETIME,
    now: float | None = None,
) -> str:
    """Sign a data-plane token for one transfer."""
    iat = int(now if now is not None else time.time())
    claims: dict[str, Any] = {
        "iss": did,
        "aud": did,
        "sub": consumer_id,
        "tid": transfer_id,
        "agr": agreement_id,
        "gen": generation,
        "kind": kind,
        "jti": secrets.token_urlsafe(16),
        "iat": iat,
        "exp": iat + lifetime,
    }
    return sign(key, key_id(did, key), "at+jwt", claims)


class AccessTokenVerifier:
    """Verifies data-plane tokens, remembering good signatures until the token expires (a bounded cache)."""

    def __init__(self, key: NodeKey, did: str, max_cached: int = 10_000) -> None:
        self._key = key
        self._did = did
        self._cache: OrderedDict[str, AccessClaims] = OrderedDict()
        self._max = max_cached

    def verify(
        self, token: str, kind: str = "access", now: float | None = None, allow_expired: bool = False
    ) -> AccessClaims:
        """Return the claims of a valid token of this kind; raise AccessDenied naming the failed check.

        `allow_expired` accepts an expired token whose signature is ours (a refresh names the access token it
        replaces, which has usually expired).
        """
        at = now if now is not None else time.time()
        claims = self._cache.get(token)
        if claims is None:
            claims = self._check(token)
            self._cache[token] = claims
            if len(self._cache) > self._max:
                self._cache.popitem(last=False)
        if claims.expires_at + LEEWAY < at and not allow_expired:
            self._cache.pop(token, None)
            raise AccessDenied("the token has expired")
        if claims.kind != kind:
            raise AccessDenied(f"a {claims.kind} token cannot be used here (a {kind} token is needed)")
        return claims

    def _check(self, token: str) -> AccessClaims:
        try:
            compact = parse(token)
        except MalformedJws as exc:
            raise AccessDenied(f"the token is malformed: {exc}") from None
        if not verify(compact, self._key.private):
            raise AccessDenied("the token's signature is not this node's")
        payload = compact.payload
        if payload.get("iss") != self._did or payload.get("aud") != self._did:
            raise AccessDenied("the token was not issued by this node for its data plane")
        try:
            return AccessClaims(
                transfer_id=str(payload["tid"]),
                agreement_id=str(payload["agr"]),
                consumer_id=str(payload["sub"]),
                generation=int(payload["gen"]),
                kind=str(payload.get("kind", "access")),
                expires_at=int(payload["exp"]),
            )
        except (KeyError, TypeError, ValueError):
            raise AccessDenied("the token lacks the claims of a data-plane token") from None
