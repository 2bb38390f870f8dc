"""VC-JWT and VP-JWT: presentations verified end to end, every refusal, claims for the policy engine."""

from __future__ import annotations

import base64
import json
from datetime import timedelta
from typing import Any

import pytest

from connector.domain.errors import PeerError
from connector.identity.credentials import (
    RefusedCredential,
    StatusEntry,
    TrustedIssuers,
    issue_credential,
    present,
    verify_presentation,
)
from connector.identity.errors import PresentationRejected, Reason
from connector.identity.resolver import StaticResolver
from connector.identity.signature import sign
from connector.identity.status import StatusListChecker, create_status_list_credential
from policies.context import EvaluationContext
from policies.passport import AccessLevelMapping
from tests.identity.conftest import NOW, Party, make_party

DAY = timedelta(days=1)


def _payload(jwt: str) -> dict[str, Any]:
    decoded: dict[str, Any] = json.loads(base64.urlsafe_b64decode(jwt.split(".")[1] + "=="))
    return decoded


def _header(jwt: str) -> dict[str, Any]:
    decoded: dict[str, Any] = json.loads(base64.urlsafe_b64decode(jwt.split(".")[0] + "=="))
    return decoded


def _vc(issuer: Party, subject: str, types: list[str], claims: dict[str, Any], **kw: Any) -> str:
    kw.setdefault("valid_from", NOW - DAY)
    kw.setdefault("valid_until", NOW + DAY)
    return issue_credential(issuer.key, issuer.did, subject, types, claims, **kw)


def _trust(issuer: Party) -> TrustedIssuers:
    return TrustedIssuers.of(
        {t: {issuer.did} for t in ("MembershipCredential", "RoleCredential", "BpnCredential", "AccessLevelCredential")}
    )


async def _verify(
    vp: str | dict[str, str], provider: Party, consumer: Party, issuer: Party, resolver: StaticResolver, **kw: Any
) -> Any:
    kw.setdefault("status_checker", None)
    trust = kw.pop("trust", _trust(issuer))
    return await verify_presentation(vp, provider.did, consumer.did, resolver, trust, now=NOW, **kw)


def test_credential_payload_shape(issuer: Party, consumer: Party) -> None:
    entry = StatusEntry("https://issuer.example/status/1", 42)
    vc = _vc(issuer, consumer.did, ["MembershipCredential"], {"holderIdentifier": "BPNL000000000001"}, status=entry)
    header, payload = _header(vc), _payload(vc)
    assert header == {"alg": "EdDSA", "kid": f"{issuer.did}#{issuer.key.kid}", "typ": "vc+jwt"}
    assert payload["@context"] == ["https://www.w3.org/ns/credentials/v2"]
    assert payload["type"] == ["VerifiableCredential", "MembershipCredential"]
    assert payload["issuer"] == issuer.did
    assert payload["credentialSubject"] == {"id": consumer.did, "holderIdentifier": "BPNL000000000001"}
    assert payload["validFrom"] == "2026-02-28T12:00:00Z" and payload["validUntil"] == "2026-03-02T12:00:00Z"
    assert payload["credentialStatus"] == {
        "id": "https://issuer.example/status/1#42",
        "type": "BitstringStatusListEntry",
        "statusPurpose": "revocation",
        "statusListIndex": "42",
        "statusListCredential": "https://issuer.example/status/1",
    }


async def test_presentation_round_trip_gives_policy_claims(
    provider: Party, consumer: Party, issuer: Party, resolver: StaticResolver
) -> None:
    vcs = [
        _vc(issuer, consumer.did, ["MembershipCredential"], {"holderIdentifier": "BPNL000000000001"}),
        _vc(issuer, consumer.did, ["RoleCredential"], {"role": ["recycler", "repairer"]}),
        _vc(issuer, consumer.did, ["BpnCredential"], {"bpn": "BPNL000000000001"}),
    ]
    vp = present(consumer.key, consumer.did, vcs, provider.did, nonce="n-1", now=NOW)
    header, payload = _header(vp), _payload(vp)
    assert header["typ"] == "vp+jwt"
    assert payload["holder"] == consumer.did and payload["aud"] == provider.did
    entry = payload["verifiableCredential"][0]
    assert entry["type"] == "EnvelopedVerifiableCredential"
    assert entry["id"] == "data:application/vc+jwt," + vcs[0]
    result = await _verify(vp, provider, consumer, issuer, resolver, nonce="n-1")
    assert result.holder == consumer.did
    assert [c.types[1] for c in result.credentials] == ["MembershipCredential", "RoleCredential", "BpnCredential"]
    assert dict(result.claims) == {
        "membership": True,
        "roles": frozenset({"recycler", "repairer"}),
        "bpn": "BPNL000000000001",
        "bpn_credential": "BPNL000000000001",
        "credential_types": frozenset({"MembershipCredential", "RoleCredential", "BpnCredential"}),
    }
    # The mapping is what the engine reads: recyclers hold the legitimate-interest level.
    ctx = EvaluationContext(participant_id=consumer.did, claims=result.claims)
    assert AccessLevelMapping().levels(ctx.claims) == {"public", "legitimate_interest"}


async def test_enveloped_presentation_object_is_accepted(
    provider: Party, consumer: Party, issuer: Party, resolver: StaticResolver
) -> None:
    vp = present(consumer.key, consumer.did, [], provider.did, now=NOW)
    wrapped = {"id": "data:application/vp+jwt," + vp, "type": "EnvelopedVerifiablePresentation"}
    assert (await _verify(wrapped, provider, consumer, issuer, resolver)).claims == {}


async def _reject(
    vp: str, provider: Party, consumer: Party, issuer: Party, resolver: StaticResolver, reason: Reason, **kw: Any
) -> PresentationRejected:
    with pytest.raises(PresentationRejected) as info:
        await _verify(vp, provider, consumer, issuer, resolver, **kw)
    assert info.value.reason is reason, info.value.message
    for jwt_part in vp.split("."):
        assert jwt_part not in info.value.message
    return info.value


async def _refuse(
    vp: str, provider: Party, consumer: Party, issuer: Party, resolver: StaticResolver, reason: Reason, **kw: Any
) -> tuple[RefusedCredential, Any]:
    """Verify a presentation with one bad credential: it is left out (with the reason), the presentation holds."""
    result = await _verify(vp, provider, consumer, issuer, resolver, **kw)
    (refused,) = result.refused
    assert refused.reason is reason, refused.message
    for jwt_part in vp.split("."):
        assert jwt_part not in refused.message and jwt_part not in refused.credential
    return refused, result


async def test_untrusted_issuer(
    provider: Party, consumer: Party, issuer: Party, other: Party, resolver: StaticResolver
) -> None:
    vc = _vc(other, consumer.did, ["MembershipCredential"], {}, credential_id="urn:uuid:forged")
    vp = present(consumer.key, consumer.did, [vc], provider.did, now=NOW)
    err, result = await _refuse(vp, provider, consumer, issuer, resolver, Reason.UNTRUSTED_ISSUER)
    assert "urn:uuid:forged" in err.credential and "MembershipCredential" in err.message
    assert vc.split(".")[2] not in err.message
    assert result.credentials == () and result.claims == {}


async def test_issuer_trusted_for_another_type_only(
    provider: Party, consumer: Party, issuer: Party, other: Party, resolver: StaticResolver
) -> None:
    vc = _vc(other, consumer.did, ["RoleCredential"], {"role": "notified_body"})
    vp = present(consumer.key, consumer.did, [vc], provider.did, now=NOW)
    trust = TrustedIssuers.of({"MembershipCredential": {other.did}, "RoleCredential": {issuer.did}})
    _, result = await _refuse(vp, provider, consumer, issuer, resolver, Reason.UNTRUSTED_ISSUER, trust=trust)
    assert "roles" not in result.claims
    wildcard = TrustedIssuers.of({"*": {other.did}})
    assert (await _verify(vp, provider, consumer, issuer, resolver, trust=wildcard)).claims["roles"] == {
        "notified_body"
    }


@pytest.mark.parametrize(
    ("window", "reason"),
    [
        ({"valid_from": NOW - 3 * DAY, "valid_until": NOW - DAY}, Reason.EXPIRED),
        ({"valid_from": NOW + DAY, "valid_until": NOW + 2 * DAY}, Reason.NOT_YET_VALID),
    ],
)
async def test_credential_outside_validity(
    window: dict[str, Any], reason: Reason, provider: Party, consumer: Party, issuer: Party, resolver: StaticResolver
) -> None:
    vp = present(
        consumer.key,
        consumer.did,
        [_vc(issuer, consumer.did, ["MembershipCredential"], {}, **window)],
        provider.did,
        now=NOW,
    )
    err, result = await _refuse(vp, provider, consumer, issuer, resolver, reason)
    assert err.credential.startswith("#0") and "membership" not in result.claims


async def test_credential_of_another_holder(
    provider: Party, consumer: Party, issuer: Party, other: Party, resolver: StaticResolver
) -> None:
    vc = _vc(issuer, other.did, ["MembershipCredential"], {})  # other's credential, presented by consumer
    vp = present(consumer.key, consumer.did, [vc], provider.did, now=NOW)
    err, result = await _refuse(vp, provider, consumer, issuer, resolver, Reason.HOLDER_MISMATCH)
    assert other.did in err.message and result.claims == {}


async def test_presentation_by_another_holder_than_the_token_subject(
    provider: Party, consumer: Party, issuer: Party, other: Party, resolver: StaticResolver
) -> None:
    vp = present(other.key, other.did, [_vc(issuer, other.did, ["MembershipCredential"], {})], provider.did, now=NOW)
    await _reject(vp, provider, consumer, issuer, resolver, Reason.HOLDER_MISMATCH)


async def test_vp_signed_by_a_key_not_in_the_holder_document(
    provider: Party, consumer: Party, issuer: Party, other: Party, resolver: StaticResolver
) -> None:
    payload = _payload(present(consumer.key, consumer.did, [], provider.did, now=NOW))
    forged = sign(other.key, f"{consumer.did}#{other.key.kid}", "vp+jwt", payload)
    await _reject(forged, provider, consumer, issuer, resolver, Reason.UNKNOWN_KEY)
    # Claiming the holder's real kid but signing with another key: the signature fails.
    forged = sign(other.key, f"{consumer.did}#{consumer.key.kid}", "vp+jwt", payload)
    await _reject(forged, provider, consumer, issuer, resolver, Reason.BAD_SIGNATURE)


async def test_vc_with_bad_signature(
    provider: Party, consumer: Party, issuer: Party, other: Party, resolver: StaticResolver
) -> None:
    payload = _payload(_vc(issuer, consumer.did, ["MembershipCredential"], {}))
    forged = sign(other.key, f"{issuer.did}#{issuer.key.kid}", "vc+jwt", payload)
    vp = present(consumer.key, consumer.did, [forged], provider.did, now=NOW)
    _, result = await _refuse(vp, provider, consumer, issuer, resolver, Reason.BAD_SIGNATURE)
    assert result.claims == {}


async def test_wrong_audience_expiry_and_nonce(
    provider: Party, consumer: Party, issuer: Party, other: Party, resolver: StaticResolver
) -> None:
    await _reject(
        present(consumer.key, consumer.did, [], other.did, now=NOW),
        provider,
        consumer,
        issuer,
        resolver,
        Reason.WRONG_AUDIENCE,
    )
    old = present(consumer.key, consumer.did, [], provider.did, now=NOW - timedelta(hours=1))
    await _reject(old, provider, consumer, issuer, resolver, Reason.EXPIRED)
    vp = present(consumer.key, consumer.did, [], provider.did, nonce="a", now=NOW)
    await _reject(vp, provider, consumer, issuer, resolver, Reason.NONCE, nonce="b")


async def test_revoked_credential(provider: Party, consumer: Party, issuer: Party, resolver: StaticResolver) -> None:
    url = "https://issuer.example/status/1"
    lists = {url: create_status_list_credential(issuer.key, issuer.did, url, {7}, valid_from=NOW - DAY)}

    async def fetch(u: str) -> str:
        return lists[u]

    checker = StatusListChecker(fetch, resolver)
    good = _vc(issuer, consumer.did, ["MembershipCredential"], {}, status=StatusEntry(url, 8))
    bad = _vc(issuer, consumer.did, ["RoleCredential"], {"role": "recycler"}, status=StatusEntry(url, 7))
    vp = present(consumer.key, consumer.did, [good], provider.did, now=NOW)
    assert (await _verify(vp, provider, consumer, issuer, resolver, status_checker=checker)).claims["membership"]
    vp = present(consumer.key, consumer.did, [good, bad], provider.did, now=NOW)
    # The revoked credential takes its own claims away, not the holder's other ones.
    err, result = await _refuse(vp, provider, consumer, issuer, resolver, Reason.REVOKED, status_checker=checker)
    assert err.credential.startswith("#1") and "RoleCredential" in err.credential
    assert dict(result.claims) == {"membership": True, "credential_types": frozenset({"MembershipCredential"})}
    # Without a checker a credential with a status entry is refused, never accepted unchecked.
    result = await _verify(vp, provider, consumer, issuer, resolver)
    assert [r.reason for r in result.refused] == [Reason.STATUS_UNCHECKED, Reason.STATUS_UNCHECKED]
    assert result.claims == {}


async def test_an_unreachable_status_list_refuses_only_the_credentials_that_name_it(
    provider: Party, consumer: Party, issuer: Party, resolver: StaticResolver
) -> None:
    async def fetch(url: str) -> str:
        raise PeerError(f"{url} could not be reached: connection refused")

    checker = StatusListChecker(fetch, resolver)
    listed = _vc(issuer, consumer.did, ["RoleCredential"], {"role": "recycler"}, status=StatusEntry("https://s/1", 3))
    unlisted = _vc(issuer, consumer.did, ["MembershipCredential"], {})
    vp = present(consumer.key, consumer.did, [listed, unlisted], provider.did, now=NOW)
    err, result = await _refuse(
        vp, provider, consumer, issuer, resolver, Reason.STATUS_UNCHECKED, status_checker=checker
    )
    assert "could not be reached" in err.message and "RoleCredential" in err.credential
    assert dict(result.claims) == {"membership": True, "credential_types": frozenset({"MembershipCredential"})}


async def test_status_list_by_another_issuer_is_not_trusted(
    provider: Party, consumer: Party, issuer: Party, other: Party, resolver: StaticResolver
) -> None:
    url = "https://issuer.example/status/1"

    async def fetch(u: str) -> str:
        return create_status_list_credential(other.key, other.did, url, set(), valid_from=NOW - DAY)

    vc = _vc(issuer, consumer.did, ["MembershipCredential"], {}, status=StatusEntry(url, 1))
    vp = present(consumer.key, consumer.did, [vc], provider.did, now=NOW)
    checker = StatusListChecker(fetch, resolver)
    await _refuse(vp, provider, consumer, issuer, resolver, Reason.STATUS_UNCHECKED, status_checker=checker)


async def test_conflicting_bpns_are_refused(
    provider: Party, consumer: Party, issuer: Party, resolver: StaticResolver
) -> None:
    vcs = [
        _vc(issuer, consumer.did, ["BpnCredential"], {"bpn": "BPNL000000000001"}),
        _vc(issuer, consumer.did, ["MembershipCredential"], {"holderIdentifier": "BPNL000000000002"}),
    ]
    vp = present(consumer.key, consumer.did, vcs, provider.did, now=NOW)
    await _reject(vp, provider, consumer, issuer, resolver, Reason.CONFLICT)


async def test_access_level_and_framework_claims(provider: Party, consumer: Party, issuer: Party) -> None:
    resolver = StaticResolver([provider.document, consumer.document, issuer.document])
    vcs = [
        _vc(issuer, consumer.did, ["AccessLevelCredential"], {"accessLevel": "authority"}),
        _vc(
            issuer,
            consumer.did,
            ["DataExchangeGovernanceCredential"],
            {"useCase": "DataExchangeGovernance", "contractVersion": "1.0"},
        ),
    ]
    trust = TrustedIssuers.of({"AccessLevelCredential": {issuer.did}, "DataExchangeGovernanceCredential": {issuer.did}})
    vp = present(consumer.key, consumer.did, vcs, provider.did, now=NOW)
    result = await _verify(vp, provider, consumer, issuer, resolver, trust=trust)
    assert result.claims == {
        "access_level": frozenset({"authority"}),
        "framework_agreements": frozenset({"DataExchangeGovernance", "DataExchangeGovernance:1.0"}),
        "credential_types": frozenset({"AccessLevelCredential", "DataExchangeGovernanceCredential"}),
        "contract_versions": frozenset({"DataExchangeGovernanceCredential:1.0"}),
    }


async def test_p256_issuer(provider: Party, consumer: Party) -> None:
    issuer = make_party("issuer", "P-256")
    resolver = StaticResolver([provider.document, consumer.document, issuer.document])
    vp = present(
        consumer.key, consumer.did, [_vc(issuer, consumer.did, ["MembershipCredential"], {})], provider.did, now=NOW
    )
    assert (await _verify(vp, provider, consumer, issuer, resolver)).claims == {
        "membership": True,
        "credential_types": frozenset({"MembershipCredential"}),
    }
