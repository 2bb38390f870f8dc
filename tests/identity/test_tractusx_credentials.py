"""Credentials and presentations shaped as Tractus-X's issuer and wallet make them (VCDM 1.1 JWT), and DCP scopes."""

from __future__ import annotations

import base64
import json
import uuid
import warnings
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from joserfc import jws
from joserfc.errors import SecurityWarning

from connector.identity import issuer as issuing
from connector.identity.credentials import (
    TrustedIssuers,
    present,
    presentations,
    verify_credential,
    verify_presentation,
)
from connector.identity.errors import PresentationRejected, Reason
from connector.identity.resolver import StaticResolver
from connector.identity.signature import REGISTRY, parse
from connector.services.identity import credential_type_of, credential_types_of, parse_business_partner_groups
from policies import EvaluationContext, Scope, evaluate
from tests.identity.conftest import NOW, Party

DAY = timedelta(days=1)
W3C_V1 = "https://www.w3.org/2018/credentials/v1"
CX_CREDENTIALS = "https://w3id.org/catenax/credentials/"


def _signed(party: Party, payload: dict[str, Any], typ: str | None = None) -> str:
    """Sign as EDC's token generation does: header alg and kid (and typ only when given)."""
    header: dict[str, Any] = {"alg": party.key.alg, "kid": f"{party.did}#{party.key.kid}"}
    if typ is not None:
        header["typ"] = typ
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="EdDSA is deprecated", category=SecurityWarning)
        return jws.serialize_compact(header, json.dumps(payload), party.key.private, registry=REGISTRY)


def _tractusx_vc(issuer: Party, holder: str, credential_type: str, subject: dict[str, Any], **extra: Any) -> str:
    """A VC-JWT as Tractus-X's IssuerService issues it (dcp-api-walkthrough 09_retrieve_credentials.md)."""
    at = int(NOW.timestamp())
    vc = {
        "@context": [W3C_V1],
        "id": str(uuid.uuid4()),
        "type": ["VerifiableCredential", credential_type],
        "issuer": issuer.did,
        "issuanceDate": (NOW - DAY).isoformat().replace("+00:00", ".57Z"),
        "expirationDate": (NOW + 365 * DAY).isoformat().replace("+00:00", ".57Z"),
        "credentialSubject": {"id": holder, **subject},
        **extra,
    }
    payload = {"sub": holder, "iss": issuer.did, "nbf": at - 86400, "iat": at - 86400, "exp": at + 365 * 86400}
    return _signed(issuer, {**payload, "jti": str(uuid.uuid4()), "vc": vc})


def _tractusx_vp(holder: Party, audience: str, credentials: list[str]) -> str:
    """A VP-JWT as Tractus-X's wallet (EDC IdentityHub's JwtPresentationGenerator) presents VCDM 1.1 credentials."""
    at = int(NOW.timestamp())
    vp = {
        "@context": [W3C_V1, "https://identity.foundation/presentation-exchange/submission/v1"],
        "type": "VerifiablePresentation",
        "verifiableCredential": credentials,
    }
    payload = {"iss": holder.did, "aud": audience, "iat": at, "nbf": at, "jti": str(uuid.uuid4()), "exp": at + 60}
    return _signed(holder, {**payload, "vp": vp})


def _trust(issuer: Party) -> TrustedIssuers:
    return TrustedIssuers.of({"*": {issuer.did}})


def _payload(jwt: str) -> dict[str, Any]:
    decoded: dict[str, Any] = json.loads(base64.urlsafe_b64decode(jwt.split(".")[1] + "=="))
    return decoded


async def test_the_three_tractus_x_credentials_in_a_tractus_x_presentation(
    provider: Party, consumer: Party, issuer: Party, resolver: StaticResolver
) -> None:
    vcs = [
        _tractusx_vc(issuer, consumer.did, "MembershipCredential", {"holderIdentifier": "BPNL00000003AYRE"}),
        _tractusx_vc(
            issuer,
            consumer.did,
            "DataExchangeGovernanceCredential",
            {
                "holderIdentifier": "BPNL00000003AYRE",
                "group": "UseCaseFramework",
                "useCase": "DataExchangeGovernance",
                "contractTemplate": "https://example.org/governance",
                "contractVersion": "1.0",
            },
        ),
        _tractusx_vc(
            issuer, consumer.did, "BpnCredential", {"bpn": "BPNL00000003AYRE", "holderIdentifier": "BPNL00000003AYRE"}
        ),
    ]
    vp = _tractusx_vp(consumer, provider.did, vcs)
    result = await verify_presentation(vp, provider.did, consumer.did, resolver, _trust(issuer), None, now=NOW)
    assert result.refused == ()
    assert [c.types[1] for c in result.credentials] == [
        "MembershipCredential",
        "DataExchangeGovernanceCredential",
        "BpnCredential",
    ]
    assert result.credentials[0].valid_from == NOW - DAY + timedelta(milliseconds=570)
    assert result.claims["credential_types"] == {
        "MembershipCredential",
        "DataExchangeGovernanceCredential",
        "BpnCredential",
    }
    assert result.claims["contract_versions"] == {"DataExchangeGovernanceCredential:1.0"}
    assert result.claims["bpn_credential"] == "BPNL00000003AYRE" == result.claims["bpn"]
    # These claims satisfy the Catena-X access and usage policies as Tractus-X writes them.
    cx = "https://w3id.org/catenax/2025/9/policy/"
    access = {
        "permission": [
            {
                "action": cx + "access",
                "constraint": [
                    {
                        "and": [
                            {"leftOperand": cx + "Membership", "operator": "eq", "rightOperand": "active"},
                            {
                                "leftOperand": cx + "FrameworkAgreement",
                                "operator": "eq",
                                "rightOperand": "DataExchangeGovernance:1.0",
                            },
                            {
                                "leftOperand": cx + "BusinessPartnerNumber",
                                "operator": "isAnyOf",
                                "rightOperand": ["BPNL00000003AYRE"],
                            },
                        ]
                    }
                ],
            }
        ]
    }
    context = EvaluationContext(participant_id=consumer.did, claims=result.claims)
    assert evaluate(access, "use", context, Scope.CATALOG).permitted


async def test_credential_types_given_as_catena_x_iris_are_the_bare_types(
    provider: Party, consumer: Party, issuer: Party, resolver: StaticResolver
) -> None:
    vc = _tractusx_vc(
        issuer,
        consumer.did,
        CX_CREDENTIALS + "DataExchangeGovernanceCredential",
        {CX_CREDENTIALS + "contractVersion": "1.0"},
        **{"@context": [W3C_V1, "https://w3id.org/catenax/credentials/v1.0.0"]},
    )
    trust = TrustedIssuers.of({"DataExchangeGovernanceCredential": {issuer.did}})
    vp = _tractusx_vp(consumer, provider.did, [vc])
    result = await verify_presentation(vp, provider.did, consumer.did, resolver, trust, None, now=NOW)
    assert result.refused == ()
    assert result.claims["contract_versions"] == {"DataExchangeGovernanceCredential:1.0"}


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"vc": {"@context": ["https://www.w3.org/ns/credentials/v2"]}}, Reason.MALFORMED),
        ({"iss": "did:web:other.example"}, Reason.ISSUER_MISMATCH),
        ({"sub": "did:web:other.example"}, Reason.HOLDER_MISMATCH),
        ({"exp": int((NOW - DAY).timestamp())}, Reason.EXPIRED),
        ({"vc": {"expirationDate": "2026-02-01T00:00:00Z"}}, Reason.EXPIRED),
    ],
)
async def test_a_vcdm_1_1_credential_is_checked_as_the_2_0_ones(
    provider: Party, consumer: Party, issuer: Party, resolver: StaticResolver, change: dict[str, Any], reason: Reason
) -> None:
    payload = _payload(_tractusx_vc(issuer, consumer.did, "MembershipCredential", {}))
    payload["vc"].update(change.pop("vc", {}))
    payload.update(change)
    with pytest.raises(PresentationRejected) as info:
        await verify_credential(_signed(issuer, payload), resolver, now=NOW)
    assert info.value.reason is reason, info.value.message


async def test_a_tampered_vcdm_1_1_credential_is_refused_alone(
    provider: Party, consumer: Party, issuer: Party, other: Party, resolver: StaticResolver
) -> None:
    good = _tractusx_vc(issuer, consumer.did, "MembershipCredential", {})
    # Signed by another key than the issuer's: refused; the other credential still counts.
    forged = _signed(other, {**_payload(_tractusx_vc(issuer, consumer.did, "BpnCredential", {"bpn": "BPNL1"}))})
    vp = _tractusx_vp(consumer, provider.did, [good, forged])
    result = await verify_presentation(vp, provider.did, consumer.did, resolver, _trust(issuer), None, now=NOW)
    assert [r.reason for r in result.refused] == [Reason.UNKNOWN_KEY]
    assert result.claims["credential_types"] == {"MembershipCredential"}


async def test_the_node_presents_each_data_model_in_its_own_presentation(
    provider: Party, consumer: Party, issuer: Party, resolver: StaticResolver, tmp_path: Path
) -> None:
    identity = issuing.create_issuer(tmp_path, issuer.did)
    registry = issuing.IssuerRegistry(issuer.did, "https://issuer.example/status")
    v1, registry = issuing.issue_membership(
        identity, registry, consumer.did, bpn="BPNL00000003AYRE", valid_from=NOW - DAY, data_model="vcdm1"
    )
    v2, registry = issuing.issue_role(identity, registry, consumer.did, "recycler", valid_from=NOW - DAY)
    issuer_doc = StaticResolver([provider.document, consumer.document, identity_document(identity, issuer.did)])
    answers = presentations(consumer.key, consumer.did, [v1, v2], provider.did, now=NOW)
    assert [parse(p).header["typ"] for p in answers] == ["vp+jwt", "JWT"]
    assert "vp" in parse(answers[1]).payload and parse(answers[1]).payload["vp"]["verifiableCredential"] == [v1]
    claims: dict[str, object] = {}
    for answer in answers:
        # The issuer's list is not reachable here: the status is the verifier's business, not checked in this test.
        result = await verify_presentation(
            answer, provider.did, consumer.did, issuer_doc, _trust(issuer), _never_revoked, now=NOW
        )
        assert result.refused == ()
        claims.update(result.claims)
    assert claims["membership"] is True and claims["roles"] == {"recycler"}
    assert present(consumer.key, consumer.did, [], provider.did)  # an empty 2.0 presentation still signs


def identity_document(identity: issuing.IssuerIdentity, did: str) -> Any:
    from connector.identity.did import parse_did_document

    return parse_did_document(identity.did_document(), did)


async def _never_revoked(entry: Any, issuer: str) -> bool:
    return False


def test_the_issuer_writes_catena_x_credentials_in_the_tractus_x_shape(tmp_path: Path, consumer: Party) -> None:
    identity = issuing.create_issuer(tmp_path, "did:web:issuer.example")
    registry = issuing.IssuerRegistry(identity.did, "https://issuer.example/status")
    jwt, registry = issuing.issue_data_exchange_governance(
        identity, registry, consumer.did, "BPNL00000003AYRE", valid_from=NOW, data_model="vcdm1"
    )
    compact = parse(jwt)
    assert compact.header["typ"] == "JWT" and compact.header["kid"].startswith(identity.did + "#")
    payload = compact.payload
    assert payload["iss"] == identity.did and payload["sub"] == consumer.did and payload["nbf"] == int(NOW.timestamp())
    vc = payload["vc"]
    assert vc["@context"] == [W3C_V1]
    assert vc["type"] == ["VerifiableCredential", "DataExchangeGovernanceCredential"]
    assert vc["issuanceDate"] == "2026-03-01T12:00:00Z" and vc["issuer"] == identity.did
    assert vc["credentialSubject"] == {
        "id": consumer.did,
        "holderIdentifier": "BPNL00000003AYRE",
        "group": "UseCaseFramework",
        "useCase": "DataExchangeGovernance",
        "contractVersion": "1.0",
    }
    status = vc["credentialStatus"]
    assert status["type"] == "BitstringStatusListEntry" and isinstance(status["statusListIndex"], int)
    assert registry.credentials[-1].types == ("DataExchangeGovernanceCredential",)
    bpn, _ = issuing.issue_bpn(identity, registry, consumer.did, "BPNL00000003AYRE", data_model="vcdm1")
    assert parse(bpn).payload["vc"]["credentialSubject"] == {
        "id": consumer.did,
        "bpn": "BPNL00000003AYRE",
        "holderIdentifier": "BPNL00000003AYRE",
    }
    with pytest.raises(Exception, match="not a legal entity BPN"):
        issuing.issue_data_exchange_governance(identity, registry, consumer.did, "BPNS00000003AYRE")


@pytest.mark.parametrize(
    "scope",
    [
        "org.eclipse.tractusx.vc.type:MembershipCredential:read",
        "org.eclipse.dspace.dcp.vc.type:MembershipCredential:read",
        "org.eclipse.edc.vc.type:MembershipCredential:read",
        "ORG.ECLIPSE.TRACTUSX.VC.TYPE:MembershipCredential:*",
        "org.eclipse.dspace.dcp.vc.type:MembershipCredential:all",
        "org.eclipse.dspace.dcp.vc.type:MembershipCredential",
        "org.eclipse.tractusx.vc.type:https://w3id.org/catenax/credentials/MembershipCredential:read".replace(
            "https://w3id.org/catenax/credentials/", ""
        ),
    ],
)
def test_the_scopes_tractus_x_and_edc_send_are_read(scope: str) -> None:
    assert credential_types_of([scope]) == {"MembershipCredential"}


@pytest.mark.parametrize(
    ("scope", "fragment"),
    [
        ("com.example.vc.type:MembershipCredential:read", "the alias must be one of"),
        ("org.eclipse.tractusx.vc.type:MembershipCredential:write", "the operation must be one of"),
        ("MembershipCredential", "is not <alias>:<credential type>:<operation>"),
        ("org.eclipse.tractusx.vc.type::read", "is not <alias>"),
    ],
)
def test_a_scope_that_cannot_be_read_is_named(scope: str, fragment: str) -> None:
    with pytest.raises(ValueError, match="scope") as info:
        credential_type_of(scope)
    assert fragment in str(info.value)


def test_business_partner_groups_setting() -> None:
    assert parse_business_partner_groups("BPNL00000003AYRE=gold|silver, BPNL00000003AZQP=, BPNL00000003AYRE=x") == {
        "BPNL00000003AYRE": frozenset({"gold", "silver", "x"}),
        "BPNL00000003AZQP": frozenset(),
    }
    with pytest.raises(ValueError, match="BPN=group"):
        parse_business_partner_groups("gold")


def test_the_issuer_command_issues_the_framework_credential(tmp_path: Path) -> None:
    import os
    import subprocess
    import sys

    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "CONNECTOR_DATA_DIR": str(tmp_path / "data")}

    def connector(*args: str) -> subprocess.CompletedProcess[str]:
        command = [sys.executable, "-m", "connector.cli", "issuer", *args]
        return subprocess.run(command, env=env, cwd=tmp_path, capture_output=True, text=True, timeout=60, check=False)

    assert connector("init").returncode == 0
    subject = "did:web:consumer.example"
    done = connector(
        "issue",
        "--subject",
        subject,
        "--type",
        "dataexchangegovernance",
        "--bpn",
        "BPNL00000003AYRE",
        "--format",
        "vcdm1",
    )
    assert done.returncode == 0, done.stderr
    vc = parse(done.stdout.strip()).payload["vc"]
    assert vc["type"] == ["VerifiableCredential", "DataExchangeGovernanceCredential"]
    assert vc["credentialSubject"]["contractVersion"] == "1.0"
    missing = connector("issue", "--subject", subject, "--type", "dataexchangegovernance")
    assert missing.returncode != 0 and "needs --bpn" in missing.stderr
