"""Catena-X policies between real nodes on loopback: the policies as Tractus-X EDC writes them, the credentials in the
shape Tractus-X's issuer issues them (VCDM 1.1 JWT, issued by the built-in issuer), asked for with Tractus-X's
scopes; catalog visibility, negotiation outcome, and a transfer that no per-request purpose stops."""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from connector.app import Node
from connector.identity import issuer
from connector.identity.signature import parse
from tests.conftest import API_KEY, EDC_CONTEXT, Management, free_port
from tests.test_catenax_policies import TX_CONTEXT, access_policy, usage_policy
from tests.test_two_nodes_catalog import _dataset_ids, _request_catalog
from tests.test_two_nodes_transfer import Backend, _pull_request, _wait
from tests.test_two_nodes_transfer import backend as backend

MEMBER_BPN = "BPNL00000003AYRE"
OTHER_BPN = "BPNL00000003AZQP"
TRACTUS_X_SCOPES = {
    "org.eclipse.tractusx.vc.type:MembershipCredential:read",
    "org.eclipse.tractusx.vc.type:DataExchangeGovernanceCredential:read",
    "org.eclipse.tractusx.vc.type:BpnCredential:read",
}


async def _provider(node_factory: Any, tmp_path: Path) -> tuple[Node, Path]:
    """Start a provider that is also the dataspace's issuer, and keeps the member's BPN in the group "gold"."""
    port = free_port()
    data_dir = tmp_path / "provider"
    issuer_did = f"did:web:127.0.0.1%3A{port}:issuer"
    identity = issuer.create_issuer(data_dir / "issuer", issuer_did)
    issuer.init_registry(data_dir / "issuer", identity.did, f"http://127.0.0.1:{port}/issuer/status")
    node = await node_factory(
        api_key=API_KEY,
        protocol_port=port,
        data_dir=data_dir,
        trusted_issuers=issuer_did,
        claims_cache_seconds=0,
        business_partner_groups=f"{MEMBER_BPN}=gold|silver,{OTHER_BPN}=",
    )
    return node, data_dir / "issuer"


def _grant(issuer_dir: Path, subject: str, bpn: str, *kinds: str) -> list[str]:
    """Issue Catena-X credentials in Tractus-X's shape (VCDM 1.1 JWT) with the built-in issuer."""
    registry = issuer.load_registry(issuer_dir)
    identity = issuer.create_issuer(issuer_dir, registry.did)
    now = datetime.now(UTC)
    validity: dict[str, Any] = {"valid_from": now, "valid_until": now + timedelta(days=1), "data_model": "vcdm1"}
    out = []
    for kind in kinds:
        if kind == "membership":
            jwt, registry = issuer.issue_membership(identity, registry, subject, bpn=bpn, **validity)
        elif kind == "bpn":
            jwt, registry = issuer.issue_bpn(identity, registry, subject, bpn, **validity)
        else:
            jwt, registry = issuer.issue_data_exchange_governance(identity, registry, subject, bpn, **validity)
        out.append(jwt)
    issuer.save_registry(issuer_dir, registry)
    return out


async def _hold(node: Node, http: aiohttp.ClientSession, credentials: list[str]) -> None:
    api = Management(http, node)
    for jwt in credentials:
        status, held = await api.call("POST", "/management/v1/credentials", {"credential": jwt})
        assert status == 200, held


async def _publish(provider: Node, http: aiohttp.ClientSession, backend: Backend) -> None:
    """Three assets under Catena-X access policies, all with the passport usage policy (CX-0160) as contract."""
    api = Management(http, provider)
    for asset_id in ("passports-cx", "passports-bpn", "passports-gold", "passports-open"):
        asset = {
            "@context": EDC_CONTEXT,
            "@id": asset_id,
            "properties": {"name": asset_id},
            "dataAddress": {
                "type": "HttpData",
                "baseUrl": backend.url + "/source/passports",
                "proxyPath": "true",
                "authKey": "X-Api-Secret",
                "authCode": "backend-secret",
            },
        }
        assert (await api.call("POST", "/management/v3/assets", asset))[0] == 200
    bpn_access = {
        "@context": TX_CONTEXT,
        "@type": "PolicyDefinition",
        "@id": "bpn-access",
        "policy": {
            "@type": "Set",
            "permission": [
                {
                    "action": "access",
                    "constraint": {
                        "leftOperand": "BusinessPartnerNumber",
                        "operator": "isAnyOf",
                        "rightOperand": [MEMBER_BPN],
                    },
                }
            ],
        },
    }
    gold_access = access_policy(
        "gold-access", {"leftOperand": "BusinessPartnerGroup", "operator": "isAnyOf", "rightOperand": ["gold"]}
    )
    open_access = {"@context": TX_CONTEXT, "@type": "PolicyDefinition", "@id": "open", "policy": {"@type": "Set"}}
    for body in (access_policy(), usage_policy(), bpn_access, gold_access, open_access):
        status, answer = await api.call("POST", "/management/v3/policydefinitions", body)
        assert status == 200, answer
    for cd, access, asset_id in (
        ("cd-cx", "membership-deg", "passports-cx"),
        ("cd-bpn", "bpn-access", "passports-bpn"),
        ("cd-gold", "gold-access", "passports-gold"),
        ("cd-open", "open", "passports-open"),
    ):
        definition = {
            "@context": EDC_CONTEXT,
            "@id": cd,
            "accessPolicyId": access,
            "contractPolicyId": "dpp-usage",
            "assetsSelector": [
                {"operandLeft": "https://w3id.org/edc/v0.0.1/ns/id", "operator": "=", "operandRight": asset_id}
            ],
        }
        assert (await api.call("POST", "/management/v3/contractdefinitions", definition))[0] == 200


async def _negotiate(consumer: Node, provider: Node, http: aiohttp.ClientSession, asset_id: str) -> dict[str, Any]:
    """Negotiate the offer of one dataset as an EDC client does; return the negotiation once it has ended."""
    api = Management(http, consumer)
    status, catalog = await _request_catalog(api, provider)
    assert status == 200, catalog
    datasets = catalog["dcat:dataset"] if isinstance(catalog["dcat:dataset"], list) else [catalog["dcat:dataset"]]
    offer = next(d for d in datasets if d["@id"] == asset_id)["odrl:hasPolicy"]
    request = {
        "@context": {**EDC_CONTEXT, "odrl": "http://www.w3.org/ns/odrl/2/"},
        "@type": "ContractRequest",
        "counterPartyAddress": provider.settings.dsp_base_url,
        "protocol": "dataspace-protocol-http:2025-1",
        "policy": {
            **offer,
            "odrl:assigner": {"@id": provider.settings.effective_participant_id},
            "odrl:target": {"@id": asset_id},
        },
    }
    status, created = await api.call("POST", "/management/v3/contractnegotiations", request)
    assert status == 200, created
    async with asyncio.timeout(20):
        while True:
            _, negotiation = await api.call("GET", f"/management/v3/contractnegotiations/{created['@id']}")
            if negotiation["state"] in ("FINALIZED", "TERMINATED"):
                return dict(negotiation)
            await asyncio.sleep(0.05)


async def test_catena_x_policies_decide_catalog_negotiation_and_transfer(
    node_factory: Any, http: aiohttp.ClientSession, tmp_path: Path, backend: Backend, caplog: pytest.LogCaptureFixture
) -> None:
    provider, issuer_dir = await _provider(node_factory, tmp_path)
    await _publish(provider, http, backend)
    trusted = issuer.load_registry(issuer_dir).did
    member = await node_factory(api_key=API_KEY, trusted_issuers=trusted)
    other = await node_factory(api_key=API_KEY, trusted_issuers=trusted)
    undersigned = await node_factory(api_key=API_KEY, trusted_issuers=trusted)
    stranger = await node_factory(api_key=API_KEY)
    member_credentials = _grant(issuer_dir, member.settings.effective_did, MEMBER_BPN, "membership", "deg", "bpn")
    # The issuer writes them as Tractus-X's does: a VCDM 1.1 JWT, bare types, only the W3C base context.
    vc = parse(member_credentials[1]).payload["vc"]
    assert vc["type"] == ["VerifiableCredential", "DataExchangeGovernanceCredential"]
    assert vc["@context"] == ["https://www.w3.org/2018/credentials/v1"]
    await _hold(member, http, member_credentials)
    await _hold(other, http, _grant(issuer_dir, other.settings.effective_did, OTHER_BPN, "membership", "deg", "bpn"))
    # A member that has not signed the Data Exchange Governance.
    await _hold(undersigned, http, _grant(issuer_dir, undersigned.settings.effective_did, OTHER_BPN, "membership"))

    caplog.set_level(logging.INFO, logger="connector.identity")
    seen = {}
    for name, consumer in (("member", member), ("other", other), ("undersigned", undersigned), ("stranger", stranger)):
        status, catalog = await _request_catalog(Management(http, consumer), provider)
        assert status == 200, catalog
        seen[name] = _dataset_ids(catalog)
    assert seen == {
        "member": ["passports-bpn", "passports-cx", "passports-gold", "passports-open"],
        # Another BPN than the one the BPN policy lists, and in no group of this provider.
        "other": ["passports-cx", "passports-open"],
        "undersigned": ["passports-open"],  # Membership alone does not satisfy the framework agreement
        "stranger": ["passports-open"],
    }
    # The provider asked each consumer's credential service with Tractus-X's scopes.
    asked = [r for r in caplog.records if r.getMessage() == "presentation query answered"]
    assert asked and all(set(r.scopes) >= TRACTUS_X_SCOPES for r in asked)  # type: ignore[attr-defined]
    assert {r.verifier for r in asked} == {provider.settings.effective_did}  # type: ignore[attr-defined]
    answered = {r.participant: r.credentials for r in asked}  # type: ignore[attr-defined]
    assert answered[member.settings.effective_did] == 3 and answered[stranger.settings.effective_did] == 0

    # Negotiation: the usage policy needs the framework agreement (the purpose is a commitment, nothing to check).
    agreed = await _negotiate(member, provider, http, "passports-cx")
    assert agreed["state"] == "FINALIZED", agreed
    refused = await _negotiate(undersigned, provider, http, "passports-open")
    assert refused["state"] == "TERMINATED"
    assert "cx-policy:FrameworkAgreement eq 'DataExchangeGovernance:1.0' not satisfied" in refused["errorDetail"]

    # Transfer under the agreement: started, and its data served without any purpose declared per request.
    member_api = Management(http, member)
    _, agreement = await member_api.call("GET", f"/management/v3/contractnegotiations/{agreed['@id']}/agreement")
    assert "https://w3id.org/catenax/2025/9/policy/UsagePurpose" in str(agreement["policy"])
    provider_api = Management(http, provider)
    _, listed = await provider_api.call("POST", "/management/v3/contractnegotiations/request")
    for negotiation in listed:
        if negotiation.get("contractAgreementId") == agreed["contractAgreementId"]:
            await _wait(provider_api, f"/management/v3/contractnegotiations/{negotiation['@id']}", {"FINALIZED"})
    status, created = await member_api.call(
        "POST", "/management/v3/transferprocesses", _pull_request(provider, agreed["contractAgreementId"])
    )
    assert status == 200, created
    await _wait(member_api, f"/management/v3/transferprocesses/{created['@id']}", {"STARTED"})
    _, address = await member_api.call("GET", f"/management/v3/edrs/{created['@id']}/dataaddress")
    for _ in range(2):
        async with http.get(address["endpoint"] + "/BAT-1", headers={"Authorization": address["authorization"]}) as r:
            assert r.status == 200, await r.text()
            assert (await r.json())["batteryId"] == "BAT-1"
    _, provided = await provider_api.call("POST", "/management/v3/transferprocesses/request")
    # The consumer may pull before the provider has recorded the start's acknowledgement: wait for it (a
    # termination fails the wait).
    assert len(provided) == 1
    await _wait(provider_api, f"/management/v3/transferprocesses/{provided[0]['@id']}", {"STARTED"})


async def test_an_agreed_usage_purpose_of_the_older_namespace_stops_no_transfer(
    node_factory: Any, http: aiohttp.ClientSession, backend: Backend
) -> None:
    """Tractus-X consumers declare no purpose per request: the agreed purpose is their commitment, not a check."""
    from tests.test_two_nodes_transfer import _started_pull

    purpose = [
        {
            "action": "use",
            "constraint": [
                {
                    "leftOperand": "https://w3id.org/catenax/policy/UsagePurpose",
                    "operator": "isAnyOf",
                    "rightOperand": ["cx.circular.dpp:1"],
                }
            ],
        }
    ]
    provider = await node_factory(api_key=API_KEY)
    consumer = await node_factory(api_key=API_KEY)
    transfer_id, address = await _started_pull(provider, consumer, http, backend, contract=purpose)
    async with http.get(address["endpoint"] + "/BAT-1", headers={"Authorization": address["authorization"]}) as r:
        assert r.status == 200, await r.text()
    provider_api = Management(http, provider)
    _, provided = await provider_api.call("POST", "/management/v3/transferprocesses/request")
    assert len(provided) == 1  # and it stays STARTED: the wait fails on a termination
    await _wait(provider_api, f"/management/v3/transferprocesses/{provided[0]['@id']}", {"STARTED"})
    assert transfer_id
