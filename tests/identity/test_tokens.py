"""DCP self-issued ID tokens: issue, verify, and every refusal."""

from __future__ import annotations

import base64
import json
import warnings
from typing import Any

import pytest
from joserfc import jws
from joserfc.errors import JoseError, SecurityWarning

from connector.identity.did import build_did_document, parse_did_document
from connector.identity.errors import Reason, TokenRejected
from connector.identity.keys import KeyKind, generate_key
from connector.identity.resolver import CachingResolver, StaticResolver
from connector.identity.signature import REGISTRY, sign
from connector.identity.tokens import MemoryReplayCache, issue_token, verify_token
from tests.identity.conftest import NOW, Party

T0 = NOW.timestamp()


async def _verify(token: str | None, provider: Party, resolver: StaticResolver, **kw: Any) -> Any:
    return await verify_token(token, provider.did, resolver, kw.pop("cache", MemoryReplayCache()), now=T0, **kw)


async def test_token_round_trip_with_and_without_bearer(
    provider: Party, consumer: Party, resolver: StaticResolver
) -> None:
    token = issue_token(consumer.key, consumer.did, provider.did, access_token="cs-access", now=T0)
    header = json.loads(base64.urlsafe_b64decode(token.split(".")[0] + "=="))
    assert header == {"alg": "ES256", "kid": f"{consumer.did}#{consumer.key.kid}", "typ": "JWT"}
    verified = await _verify("Bearer " + token, provider, resolver)
    assert verified.participant_did == consumer.did
    assert verified.access_token == "cs-access"
    assert verified.claims["iss"] == verified.claims["sub"] == consumer.did
    assert verified.claims["exp"] - verified.claims["iat"] == 300
    assert verified.document.credential_service_url is not None
    again = issue_token(consumer.key, consumer.did, provider.did, now=T0)
    assert (await _verify(again, provider, resolver)).access_token is None


async def test_eddsa_token_header_says_eddsa(provider: Party, consumer: Party, resolver: StaticResolver) -> None:
    token = issue_token(provider.key, provider.did, consumer.did, now=T0)
    assert json.loads(base64.urlsafe_b64decode(token.split(".")[0] + "=="))["alg"] == "EdDSA"
    assert (await verify_token(token, consumer.did, resolver, MemoryReplayCache(), now=T0)).participant_did


@pytest.mark.parametrize("value", [None, "", "Bearer ", "   "])
async def test_no_token(value: str | None, provider: Party, resolver: StaticResolver) -> None:
    with pytest.raises(TokenRejected) as info:
        await _verify(value, provider, resolver)
    assert info.value.reason is Reason.MISSING


def _tamper(token: str) -> str:
    h, p, s = token.split(".")
    claims = json.loads(base64.urlsafe_b64decode(p + "=="))
    claims["exp"] += 3600
    p2 = base64.urlsafe_b64encode(json.dumps(claims).encode()).rstrip(b"=").decode()
    return f"{h}.{p2}.{s}"


async def _reject(token: str, provider: Party, resolver: StaticResolver, reason: Reason, **kw: Any) -> str:
    with pytest.raises(TokenRejected) as info:
        await _verify(token, provider, resolver, **kw)
    assert info.value.reason is reason, info.value.message
    # The refusal names the check but never echoes the token (it is a bearer credential).
    assert token not in info.value.message
    assert all(len(part) < 8 or part not in info.value.message for part in token.split("."))
    return info.value.message


async def test_bad_signature(provider: Party, consumer: Party, resolver: StaticResolver) -> None:
    token = _tamper(issue_token(consumer.key, consumer.did, provider.did, now=T0))
    assert "signature" in await _reject(token, provider, resolver, Reason.BAD_SIGNATURE)


async def test_wrong_audience(provider: Party, consumer: Party, other: Party, resolver: StaticResolver) -> None:
    token = issue_token(consumer.key, consumer.did, other.did, now=T0)
    assert provider.did in await _reject(token, provider, resolver, Reason.WRONG_AUDIENCE)


async def test_expired(provider: Party, consumer: Party, resolver: StaticResolver) -> None:
    token = issue_token(consumer.key, consumer.did, provider.did, now=T0 - 400)
    await _reject(token, provider, resolver, Reason.EXPIRED)
    # Within the leeway it is still accepted.
    token = issue_token(consumer.key, consumer.did, provider.did, now=T0 - 310)
    await _verify(token, provider, resolver)


async def test_issued_in_the_future(provider: Party, consumer: Party, resolver: StaticResolver) -> None:
    token = issue_token(consumer.key, consumer.did, provider.did, now=T0 + 120)
    await _reject(token, provider, resolver, Reason.NOT_YET_VALID)


async def test_lifetime_too_long(provider: Party, consumer: Party, resolver: StaticResolver) -> None:
    kid = f"{consumer.did}#{consumer.key.kid}"
    claims = {"iss": consumer.did, "sub": consumer.did, "aud": provider.did, "jti": "j", "iat": T0, "exp": T0 + 86400}
    await _reject(sign(consumer.key, kid, "JWT", claims), provider, resolver, Reason.LIFETIME)


async def test_replayed_jti(provider: Party, consumer: Party, resolver: StaticResolver) -> None:
    cache = MemoryReplayCache()
    token = issue_token(consumer.key, consumer.did, provider.did, now=T0)
    await _verify(token, provider, resolver, cache=cache)
    assert "already used" in await _reject(token, provider, resolver, Reason.REPLAYED, cache=cache)


async def test_replay_cache_forgets_after_expiry() -> None:
    cache = MemoryReplayCache()
    assert await cache.remember("did:web:a", "j1", 1100, 1000)
    assert not await cache.remember("did:web:a", "j1", 1100, 1100)
    assert await cache.remember("did:web:b", "j1", 1100, 1000)  # jtis are per issuer
    assert await cache.remember("did:web:c", "j2", 1200, 1101)
    assert len(cache) == 1
    assert await cache.remember("did:web:a", "j1", 1300, 1101)


async def test_full_replay_cache_refuses_rather_than_forgets() -> None:
    cache = MemoryReplayCache(max_entries=1)
    assert await cache.remember("did:web:a", "j1", 100, 0)
    assert not await cache.remember("did:web:a", "j2", 100, 0)


async def test_kid_of_another_did(provider: Party, consumer: Party, other: Party, resolver: StaticResolver) -> None:
    # Signed by other's key and naming it: the key does not belong to the claimed issuer.
    claims = {"iss": consumer.did, "sub": consumer.did, "aud": provider.did, "jti": "j", "iat": T0, "exp": T0 + 60}
    token = sign(other.key, f"{other.did}#{other.key.kid}", "JWT", claims)
    await _reject(token, provider, resolver, Reason.UNKNOWN_KEY)
    # Same, with a relative kid: it is looked up in the issuer's document, where it is absent.
    token = sign(other.key, f"#{other.key.kid}", "JWT", claims)
    await _reject(token, provider, resolver, Reason.UNKNOWN_KEY)


async def test_key_not_in_capability_invocation(provider: Party, consumer: Party) -> None:
    raw = build_did_document(consumer.did, consumer.key, "https://consumer.example/dsp")
    raw["capabilityInvocation"] = []
    resolver = StaticResolver([provider.document, parse_did_document(raw, consumer.did)])
    token = issue_token(consumer.key, consumer.did, provider.did, now=T0)
    assert "capabilityInvocation" in await _reject(token, provider, resolver, Reason.UNKNOWN_KEY)


async def test_iss_differs_from_sub(provider: Party, consumer: Party, other: Party, resolver: StaticResolver) -> None:
    claims = {"iss": consumer.did, "sub": other.did, "aud": provider.did, "jti": "j", "iat": T0, "exp": T0 + 60}
    token = sign(consumer.key, f"{consumer.did}#{consumer.key.kid}", "JWT", claims)
    await _reject(token, provider, resolver, Reason.ISSUER_MISMATCH)


async def test_unknown_did(provider: Party, resolver: StaticResolver) -> None:
    from tests.identity.conftest import make_party

    stranger = make_party("stranger")
    token = issue_token(stranger.key, stranger.did, provider.did, now=T0)
    await _reject(token, provider, resolver, Reason.UNRESOLVABLE)


def _unsigned(alg: str, claims: dict[str, Any]) -> str:
    def enc(d: dict[str, Any]) -> str:
        return base64.urlsafe_b64encode(json.dumps(d).encode()).rstrip(b"=").decode()

    return f"{enc({'alg': alg, 'typ': 'JWT'})}.{enc(claims)}.c2ln"


@pytest.mark.parametrize("alg", ["none", "HS256", "RS256", "ES384"])
async def test_disallowed_algorithms(alg: str, provider: Party, consumer: Party, resolver: StaticResolver) -> None:
    claims = {"iss": consumer.did, "sub": consumer.did, "aud": provider.did, "jti": "j", "iat": T0, "exp": T0 + 60}
    await _reject(_unsigned(alg, claims), provider, resolver, Reason.ALGORITHM)


@pytest.mark.parametrize("garbage", ["abc", "a.b.c", "a.b", "x" * 600_000])
async def test_garbage(garbage: str, provider: Party, resolver: StaticResolver) -> None:
    await _reject(garbage, provider, resolver, Reason.MALFORMED)


async def test_caching_resolver_fetches_once_and_parses(provider: Party, consumer: Party) -> None:
    calls: list[str] = []
    raw = build_did_document(consumer.did, consumer.key, "https://consumer.example/dsp")

    async def fetch(did: str) -> dict[str, Any]:
        calls.append(did)
        return raw

    resolver = CachingResolver(fetch)
    for _ in range(3):
        token = issue_token(consumer.key, consumer.did, provider.did, now=T0)
        await verify_token(token, provider.did, resolver, MemoryReplayCache(), now=T0)
    assert calls == [consumer.did]


async def test_a_token_of_a_peer_whose_document_names_keys_only_as_verification_methods(
    provider: Party, consumer: Party
) -> None:
    """EDC IdentityHub's documents (Tractus-X EDC) list no relationship: the kid's verification method verifies."""
    raw = build_did_document(consumer.did, consumer.key, "https://consumer.example/dsp")
    for rel in ("authentication", "assertionMethod", "capabilityInvocation"):
        raw[rel] = []
    resolver = StaticResolver([provider.document, parse_did_document(raw, consumer.did)])
    token = issue_token(consumer.key, consumer.did, provider.did, now=T0)
    assert (await _verify(token, provider, resolver)).participant_did == consumer.did
    # Another key's signature under that kid still fails.
    claims = {"iss": consumer.did, "sub": consumer.did, "aud": provider.did, "jti": "j2", "iat": T0, "exp": T0 + 60}
    forged = sign(provider.key, f"{consumer.did}#{consumer.key.kid}", "JWT", claims)
    await _reject(forged, provider, resolver, Reason.BAD_SIGNATURE)


@pytest.mark.parametrize("kind", ["Ed25519", "P-256"])
def test_the_node_signs_the_compact_jws_joserfc_writes_and_verifies(kind: KeyKind) -> None:
    # `sign` uses `cryptography` directly; joserfc must read its output as its own: the same bytes for Ed25519
    # (deterministic signatures), a signature joserfc verifies for ES256 (random ones, r||s of 64 bytes).
    key = generate_key(kind)
    payload = {"iss": "did:web:a.example", "aud": "did:web:b.example", "name": "Zürich", "n": [1, 2.5, None, True]}
    ours = sign(key, "did:web:a.example#k1", "JWT", payload)
    header = {"alg": key.alg, "kid": "did:web:a.example#k1", "typ": "JWT"}
    body = json.dumps(payload, separators=(",", ":"), ensure_ascii=False)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SecurityWarning)  # joserfc flags "EdDSA" (RFC 9864), which peers expect
        if kind == "Ed25519":
            assert ours == jws.serialize_compact(header, body, key.private, registry=REGISTRY)
        read = jws.deserialize_compact(ours, key.private, registry=REGISTRY)
    assert read.headers() == header
    assert json.loads(read.payload) == payload
    assert len(base64.urlsafe_b64decode(ours.rsplit(".", 1)[1] + "==")) == 64
    tampered = ours.rsplit(".", 1)[0] + "." + base64.urlsafe_b64encode(b"\0" * 64).rstrip(b"=").decode()
    with warnings.catch_warnings(), pytest.raises(JoseError):
        warnings.simplefilter("ignore", SecurityWarning)
        jws.deserialize_compact(tampered, key.private, registry=REGISTRY)
