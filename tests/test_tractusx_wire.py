"""A Tractus-X EDC 0.13 peer, scripted with its own messages and tokens, negotiates and transfers with one real node
of ours in both roles (issue 20). The shapes are in tests/data/wire/tractusx-edc-0.13 (SOURCES.md names the
Tractus-X EDC and EDC files each was read from); the peer and its checks are in tests/tractusx_peer.py."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from joserfc import jws

from connector.app import Node
from connector.identity import issuer
from tests.conftest import API_KEY, EDC_CONTEXT, Management, free_port
from tests.test_two_nodes_catenax import MEMBER_BPN, _publish
from tests.test_two_nodes_transfer import Backend, _wait
from tests.test_two_nodes_transfer import backend as backend
from tests.tractusx_peer import (
    EDC_NS,
    ODRL,
    TX_AUTH_NS,
    TX_SCOPES,
    TractusXPeer,
    edc_property,
    fixture,
    rules,
    stored_values,
)

CX = "https://w3id.org/catenax/2025/9/policy/"
# The Catena-X passport usage policy as a Tractus-X consumer's offer carries it (read in the fixture's contexts).
DPP_RULES = {
    "permission": [
        (
            ODRL + "use",
            (
                (
                    "and",
                    frozenset(
                        {
                            (CX + "FrameworkAgreement", ODRL + "eq", ("DataExchangeGovernance:1.0",)),
                            (CX + "UsagePurpose", ODRL + "isAnyOf", ("cx.circular.dpp:1",)),
                        }
                    ),
                ),
            ),
        )
    ],
    "prohibition": [],
    "obligation": [],
}


async def _issuing_node(node_factory: Any, tmp_path: Path) -> tuple[Node, Path]:
    """Start our node, which is also the dataspace's test issuer (its issuer DID is served by the node)."""
    port = free_port()
    data_dir = tmp_path / "node"
    issuer_did = f"did:web:127.0.0.1%3A{port}:issuer"
    identity = issuer.create_issuer(data_dir / "issuer", issuer_did)
    issuer.init_registry(data_dir / "issuer", identity.did, f"http://127.0.0.1:{port}/issuer/status")
    node = await node_factory(
        api_key=API_KEY,
        protocol_port=port,
        data_dir=data_dir,
        trusted_issuers=issuer_did,
        claims_cache_seconds=0,
        business_partner_groups=f"{MEMBER_BPN}=gold",
    )
    return node, data_dir / "issuer"


def _issue(issuer_dir: Path, subject: str, bpn: str) -> list[str]:
    """Issue the three Catena-X credentials in Tractus-X's form (VCDM 1.1 JWT) to `subject`."""
    registry = issuer.load_registry(issuer_dir)
    identity = issuer.create_issuer(issuer_dir, registry.did)
    now = datetime.now(UTC)
    validity: dict[str, Any] = {"valid_from": now, "valid_until": now + timedelta(days=1), "data_model": "vcdm1"}
    membership, registry = issuer.issue_membership(identity, registry, subject, bpn=bpn, **validity)
    governance, registry = issuer.issue_data_exchange_governance(identity, registry, subject, bpn, **validity)
    bpn_credential, registry = issuer.issue_bpn(identity, registry, subject, bpn, **validity)
    issuer.save_registry(issuer_dir, registry)
    return [membership, governance, bpn_credential]


@pytest.fixture
async def peer_parts(
    node_factory: Any, http: aiohttp.ClientSession, tmp_path: Path
) -> AsyncIterator[tuple[Node, TractusXPeer]]:
    """Our node (the test issuer too, holding its own Catena-X credentials) and a Tractus-X peer it trusts."""
    node, issuer_dir = await _issuing_node(node_factory, tmp_path)
    api = Management(http, node)
    for jwt in _issue(issuer_dir, node.settings.effective_did, "BPNL0000000NODE1"):
        status, held = await api.call("POST", "/management/v1/credentials", {"credential": jwt})
        assert status == 200, held
    peer = TractusXPeer(http, issuer.load_registry(issuer_dir).did)
    peer.credentials = _issue(issuer_dir, peer.did, MEMBER_BPN)
    await peer.start()
    try:
        yield node, peer
    finally:
        await peer.stop()


def _dsp(node: Node) -> str:
    return node.settings.dsp_base_url.rstrip("/")


async def test_a_tractus_x_consumer_negotiates_pulls_refreshes_and_completes_with_our_provider(
    peer_parts: tuple[Node, TractusXPeer], http: aiohttp.ClientSession, backend: Backend
) -> None:
    node, peer = peer_parts
    await _publish(node, http, backend)
    our_did = node.settings.effective_did
    # The DSP address, found as Tractus-X's connector discovery finds it from the protocol URL.
    dsp = await peer.discover(str(node.settings.public_url).rstrip("/") + "/api/dsp")
    assert dsp == _dsp(node)
    peer.provider_identity = our_did

    # The catalog, asked as Tractus-X asks (filter: one QuerySpec); the framework-agreement offer is visible.
    status, catalog = await peer.send(dsp + "/catalog/request", fixture("catalog-request-message.json"), our_did)
    assert status == 200, (catalog, peer.failures)
    datasets = catalog["dataset"] if isinstance(catalog["dataset"], list) else [catalog["dataset"]]
    dataset = next(d for d in datasets if d["@id"] == "passports-cx")
    offer = dataset["hasPolicy"] if isinstance(dataset["hasPolicy"], dict) else dataset["hasPolicy"][0]
    # Its VCDM 1.1 credentials gave it membership, the framework agreement and its BPN (the group "gold").
    assert sorted(d["@id"] for d in datasets) == ["passports-bpn", "passports-cx", "passports-gold", "passports-open"]
    # What a Tractus-X consumer takes from a catalog: the provider's id, the offer id, a pull distribution.
    assert catalog["participantId"] == our_did
    distributions = dataset["distribution"] if isinstance(dataset["distribution"], list) else [dataset["distribution"]]
    assert "HttpData-PULL" in {d["format"] for d in distributions}
    # Our node asked the peer's credential service with Tractus-X's scopes, as the peer's wallet expects.
    assert peer.presentation_queries and set(TX_SCOPES) <= set(peer.presentation_queries[-1][1])

    # ContractRequestMessage: the offer compacted with Tractus-X's contexts (bare Catena-X operands).
    consumer_pid = str(uuid.uuid4())
    request = fixture(
        "contract-request-message.json",
        messageId=str(uuid.uuid4()),
        consumerPid=consumer_pid,
        callbackAddress=peer.dsp_url,
        offerId=offer["@id"],
        providerId=our_did,
        assetId="passports-cx",
    )
    peer.expected_offer = rules(request, "offer")
    assert peer.expected_offer == DPP_RULES
    status, ack = await peer.send(dsp + "/negotiations/request", request, our_did)
    assert status in (200, 201), ack
    assert ack["@type"] == "ContractNegotiation" and ack["consumerPid"] == consumer_pid
    provider_pid = ack["providerPid"]

    # Our agreement reaches the peer's callback and passes Tractus-X's checks (assigner, timestamp, same rules).
    agreement_message = await peer.wait_for("ContractAgreementMessage")
    assert agreement_message["consumerPid"] == consumer_pid and agreement_message["providerPid"] == provider_pid
    agreement = agreement_message["agreement"]
    assert agreement["assignee"] == peer.did and agreement["target"] == "passports-cx"
    verification = fixture(
        "contract-agreement-verification-message.json",
        messageId=str(uuid.uuid4()),
        providerPid=provider_pid,
        consumerPid=consumer_pid,
    )
    status, body = await peer.send(f"{dsp}/negotiations/{provider_pid}/agreement/verification", verification, our_did)
    assert status == 200, body
    event = await peer.wait_for("ContractNegotiationEventMessage")
    assert event["eventType"] in ("FINALIZED", "dspace:FINALIZED")
    api = Management(http, node)
    await _wait(api, f"/management/v3/contractnegotiations/{provider_pid}", {"FINALIZED"})

    # TransferRequestMessage, HttpData-PULL, with the callbackAddress form.
    transfer_pid = str(uuid.uuid4())
    transfer_request = fixture(
        "transfer-request-message.json",
        messageId=str(uuid.uuid4()),
        consumerPid=transfer_pid,
        agreementId=agreement["@id"],
        callbackAddress=peer.dsp_url,
    )
    status, ack = await peer.send(dsp + "/transfers/request", transfer_request, our_did)
    assert status in (200, 201), ack
    start = await peer.wait_for("TransferStartMessage")
    assert start["consumerPid"] == transfer_pid
    provider_transfer = start["providerPid"]

    # The EDR as a Tractus-X consumer stores it: a DataAddress of the endpoint properties by name, read with
    # EDC's DataAddress rules, and the Tractus-X refresh handler's exact property names.
    address = start["dataAddress"]
    assert address["endpointType"] == "https://w3id.org/idsa/v4.1/HTTP"
    properties = {p["name"]: p["value"] for p in address["endpointProperties"]}
    endpoint = edc_property(properties, "endpoint")
    authorization = edc_property(properties, "authorization")
    assert endpoint and authorization
    assert properties[EDC_NS + "authorization"] == authorization  # what TokenRefreshHandlerImpl reads
    assert properties[TX_AUTH_NS + "refreshEndpoint"] == endpoint + "/token"
    assert properties[TX_AUTH_NS + "refreshAudience"] == our_did
    assert properties[TX_AUTH_NS + "refreshToken"]
    assert int(properties[TX_AUTH_NS + "expiresIn"]) > 0  # EndpointDataReferenceLock reads it as a number
    assert properties.get(EDC_NS + "endpointType", address["endpointType"]) == address["endpointType"]

    # Pull as a Tractus-X consumer does: the token as the Authorization header, as it is.
    async with http.get(endpoint + "/BAT-1", headers={"Authorization": authorization}) as response:
        assert response.status == 200, await response.text()
        assert (await response.json())["batteryId"] == "BAT-1"

    # Refresh as TokenRefreshHandlerImpl does: query and form, a self-issued token for refreshAudience with the
    # access token in `token`; the new access token pulls.
    proof = _refresh_proof(peer, properties[TX_AUTH_NS + "refreshAudience"], authorization)
    form = {"grant_type": "refresh_token", "refresh_token": properties[TX_AUTH_NS + "refreshToken"]}
    async with http.post(
        properties[TX_AUTH_NS + "refreshEndpoint"], params=form, data=form, headers={"Authorization": "Bearer " + proof}
    ) as response:
        assert response.status == 200, await response.text()
        refreshed = await response.json()
    async with http.get(endpoint + "/BAT-2", headers={"Authorization": refreshed["access_token"]}) as response:
        assert response.status == 200, await response.text()

    # Completion, as the consumer sends it; the process ends COMPLETED on our side and the token dies.
    completion = fixture(
        "transfer-completion-message.json",
        messageId=str(uuid.uuid4()),
        providerPid=provider_transfer,
        consumerPid=transfer_pid,
    )
    status, body = await peer.send(f"{dsp}/transfers/{provider_transfer}/completion", completion, our_did)
    assert status == 200, body
    _, provided = await api.call("GET", f"/management/v3/transferprocesses/{provider_transfer}")
    assert provided["state"] == "COMPLETED", provided
    async with http.get(endpoint + "/BAT-1", headers={"Authorization": refreshed["access_token"]}) as response:
        assert response.status in (401, 403), await response.text()
    assert not peer.failures, peer.failures


def _refresh_proof(peer: TractusXPeer, audience: str, access_token: str) -> str:
    """The self-issued token TokenRefreshHandlerImpl has its STS sign: iss = sub = own DID, aud, `token`."""
    now = int(time.time())
    shape = fixture(
        "self-issued-id-token.json",
        did=peer.did,
        audience=audience,
        accessToken=access_token,
        now=now,
        expiry=now + 300,
        uuid=str(uuid.uuid4()),
    )
    return str(jws.serialize_compact(shape["header"], json.dumps(shape["claims"]), peer.key, algorithms=["ES256"]))


async def test_a_tractus_x_consumer_terminates_a_transfer_and_the_token_stops(
    peer_parts: tuple[Node, TractusXPeer], http: aiohttp.ClientSession, backend: Backend
) -> None:
    node, peer = peer_parts
    await _publish(node, http, backend)
    our_did, dsp = node.settings.effective_did, _dsp(node)
    peer.provider_identity = our_did
    status, catalog = await peer.send(dsp + "/catalog/request", fixture("catalog-request-message.json"), our_did)
    assert status == 200, catalog
    datasets = catalog["dataset"] if isinstance(catalog["dataset"], list) else [catalog["dataset"]]
    policies = next(d for d in datasets if d["@id"] == "passports-cx")["hasPolicy"]
    offer = policies if isinstance(policies, dict) else policies[0]
    consumer_pid = str(uuid.uuid4())
    request = fixture(
        "contract-request-message.json",
        messageId=str(uuid.uuid4()),
        consumerPid=consumer_pid,
        callbackAddress=peer.dsp_url,
        offerId=offer["@id"],
        providerId=our_did,
        assetId="passports-cx",
    )
    peer.expected_offer = rules(request, "offer")
    status, ack = await peer.send(dsp + "/negotiations/request", request, our_did)
    assert status in (200, 201), ack
    agreement = (await peer.wait_for("ContractAgreementMessage"))["agreement"]
    verification = fixture(
        "contract-agreement-verification-message.json",
        messageId=str(uuid.uuid4()),
        providerPid=ack["providerPid"],
        consumerPid=consumer_pid,
    )
    assert (await peer.send(f"{dsp}/negotiations/{ack['providerPid']}/agreement/verification", verification, our_did))[
        0
    ] == 200
    await peer.wait_for("ContractNegotiationEventMessage")
    transfer_pid = str(uuid.uuid4())
    transfer_request = fixture(
        "transfer-request-message.json",
        messageId=str(uuid.uuid4()),
        consumerPid=transfer_pid,
        agreementId=agreement["@id"],
        callbackAddress=peer.dsp_url,
    )
    assert (await peer.send(dsp + "/transfers/request", transfer_request, our_did))[0] in (200, 201)
    start = await peer.wait_for("TransferStartMessage")
    properties = {p["name"]: p["value"] for p in start["dataAddress"]["endpointProperties"]}
    endpoint, authorization = edc_property(properties, "endpoint"), edc_property(properties, "authorization")
    termination = fixture(
        "transfer-termination-message.json",
        messageId=str(uuid.uuid4()),
        providerPid=start["providerPid"],
        consumerPid=transfer_pid,
        code="Terminated",
        reason="the consumer's operator ended the transfer",
    )
    status, body = await peer.send(f"{dsp}/transfers/{start['providerPid']}/termination", termination, our_did)
    assert status == 200, body
    _, provided = await Management(http, node).call("GET", f"/management/v3/transferprocesses/{start['providerPid']}")
    assert provided["state"] == "TERMINATED", provided
    assert "the consumer's operator ended the transfer" in (provided.get("errorDetail") or "")
    async with http.get(endpoint + "/BAT-1", headers={"Authorization": authorization}) as response:
        assert response.status in (401, 403), await response.text()
    assert not peer.failures, peer.failures


async def _negotiate_v3(api: Management, peer: TractusXPeer, offer: dict[str, Any], path: str) -> dict[str, Any]:
    body = {
        "@context": {**EDC_CONTEXT, "odrl": ODRL},
        "@type": "ContractRequest",
        "counterPartyAddress": peer.dsp_url,
        "counterPartyId": peer.did,
        "protocol": "dataspace-protocol-http:2025-1",
        "policy": {**offer, "odrl:assigner": {"@id": peer.did}, "odrl:target": {"@id": "tx-passports"}},
    }
    status, created = await api.call("POST", path, body)
    assert status == 200, created
    return dict(created)


async def _finalized(api: Management, negotiation_id: str, peer: TractusXPeer) -> dict[str, Any]:
    async with asyncio.timeout(20):
        while True:
            assert not peer.failures, peer.failures
            _, negotiation = await api.call("GET", f"/management/v3/contractnegotiations/{negotiation_id}")
            assert negotiation["state"] != "TERMINATED", negotiation.get("errorDetail")
            if negotiation["state"] == "FINALIZED":
                return dict(negotiation)
            await asyncio.sleep(0.05)


async def test_our_consumer_negotiates_and_pulls_from_a_tractus_x_provider_with_v3_and_the_edr_api(
    peer_parts: tuple[Node, TractusXPeer], http: aiohttp.ClientSession
) -> None:
    node, peer = peer_parts
    request = fixture(
        "contract-request-message.json",
        messageId="m",
        consumerPid="c",
        callbackAddress="http://x",
        offerId="o",
        providerId="p",
        assetId="a",
    )
    offer_rules = {k: request["offer"][k] for k in ("permission", "prohibition", "obligation")}
    offer_id = "dHgtcGFzc3BvcnRz:dHgtcGFzc3BvcnRz:" + uuid.uuid4().hex
    peer.publish(offer_id, "tx-passports", offer_rules)
    api = Management(http, node)

    # The catalog through our management API: the Tractus-X provider's catalog, read in its contexts.
    status, catalog = await api.call(
        "POST",
        "/management/v3/catalog/request",
        {
            "@context": EDC_CONTEXT,
            "@type": "CatalogRequest",
            "counterPartyAddress": peer.dsp_url,
            "counterPartyId": peer.did,
            "protocol": "dataspace-protocol-http:2025-1",
        },
    )
    assert status == 200, catalog
    dataset = catalog["dcat:dataset"]
    assert dataset["@id"] == "tx-passports", dataset
    offer = dataset["odrl:hasPolicy"]
    assert offer["@id"] == offer_id
    assert CX + "FrameworkAgreement" in str(offer) or "cx-policy:FrameworkAgreement" in str(offer), offer
    # The provider asked our credential service with Tractus-X's scopes, and our presentation passed its checks.
    assert not peer.failures, peer.failures

    # v3 contract negotiation: the agreement (Tractus-X's contexts, bare operands) is accepted and verified.
    created = await _negotiate_v3(api, peer, offer, "/management/v3/contractnegotiations")
    negotiation = await _finalized(api, created["@id"], peer)
    verification = await peer.wait_for("ContractAgreementVerificationMessage")
    assert verification["consumerPid"] == negotiation["@id"] or verification["consumerPid"]
    agreement_id = negotiation["contractAgreementId"]

    # v3 transfer: our TransferRequestMessage, the provider's TransferStartMessage with its EDR, our pull.
    status, transfer = await api.call(
        "POST",
        "/management/v3/transferprocesses",
        {
            "@context": EDC_CONTEXT,
            "@type": "TransferRequest",
            "counterPartyAddress": peer.dsp_url,
            "contractId": agreement_id,
            "protocol": "dataspace-protocol-http:2025-1",
            "transferType": "HttpData-PULL",
        },
    )
    assert status == 200, transfer
    await _wait(api, f"/management/v3/transferprocesses/{transfer['@id']}", {"STARTED"})
    status, address = await api.call("GET", f"/management/v3/edrs/{transfer['@id']}/dataaddress?auto_refresh=false")
    assert status == 200, address
    assert address["endpoint"] == peer.public_url
    async with http.get(address["endpoint"] + "/BAT-7", headers={"Authorization": address["authorization"]}) as r:
        assert r.status == 200, await r.text()
        assert (await r.json())["from"] == "tractus-x provider"

    # Our node refreshes with the Tractus-X refresh token grant against the provider's refresh endpoint.
    status, refreshed = await api.call("POST", f"/management/v3/edrs/{transfer['@id']}/refresh")
    assert status == 200, refreshed
    await peer.wait_for("refresh")
    assert refreshed["authorization"] != address["authorization"]
    async with http.get(address["endpoint"] + "/BAT-8", headers={"Authorization": refreshed["authorization"]}) as r:
        assert r.status == 200, await r.text()

    # Our side terminates: the provider gets a TransferTerminationMessage it can read, with its pids.
    status, body = await api.call(
        "POST",
        f"/management/v3/transferprocesses/{transfer['@id']}/terminate",
        {"@context": EDC_CONTEXT, "@type": "TerminateTransfer", "reason": "the recycler has what it needed"},
    )
    assert status in (200, 204), body
    ended = await peer.wait_for("TransferTerminationMessage")
    assert ended["providerPid"] in peer.transfers
    assert "the recycler has what it needed" in str(ended.get("reason"))

    # The EDR API: negotiate and start the pull in one call against the same provider.
    created = await _negotiate_v3(api, peer, offer, "/management/v3/edrs")
    await _finalized(api, created["@id"], peer)
    async with asyncio.timeout(20):
        while True:
            status, entries = await api.call(
                "POST",
                "/management/v3/edrs/request",
                {
                    "@context": EDC_CONTEXT,
                    "@type": "QuerySpec",
                    "filterExpression": [
                        {"operandLeft": "contractNegotiationId", "operator": "=", "operandRight": created["@id"]}
                    ],
                },
            )
            assert status == 200, entries
            if entries:
                break
            await asyncio.sleep(0.05)
    # As in Tractus-X EDC, an entry is listed once the provider has sent its EDR: its data address is there.
    status, address = await api.call("GET", f"/management/v3/edrs/{entries[0]['transferProcessId']}/dataaddress")
    assert status == 200, address
    async with http.get(address["endpoint"] + "/BAT-9", headers={"Authorization": address["authorization"]}) as r:
        assert r.status == 200, await r.text()
    assert len(peer.received["TransferRequestMessage"]) == 2
    assert not peer.failures, peer.failures


def test_the_provider_reads_a_tractus_x_offer_in_the_contexts_it_was_compacted_with() -> None:
    from connector import jsonld
    from connector.dsp.negotiation import parse_contract_request
    from connector.services.offers import same_rules
    from tests.test_catenax_policies import TX_CONTEXT, usage_policy

    values = {
        "messageId": "m",
        "consumerPid": "c",
        "callbackAddress": "https://consumer.example/api/v1/dsp/2025-1",
        "offerId": "o",
        "providerId": "did:web:provider.example",
        "assetId": "passports-cx",
    }
    published = jsonld.expand({"@context": TX_CONTEXT, **usage_policy()["policy"]})[0]
    request = parse_contract_request(fixture("contract-request-message.json", **values))
    assert same_rules(request.rules, published)
    # Read without its contexts, `FrameworkAgreement` is not Catena-X's operand: the offer would seem altered.
    assert not same_rules(request.offer, published)
    # An offer really altered (another purpose) is still refused.
    altered = fixture("contract-request-message.json", **values)
    altered["offer"]["permission"]["constraint"]["and"][1]["rightOperand"] = "cx.core.industrycore:1"
    assert not same_rules(parse_contract_request(altered).rules, published)


async def test_a_tractus_x_consumer_agrees_to_an_offer_with_several_values_as_edc_writes_them(
    peer_parts: tuple[Node, TractusXPeer], http: aiohttp.ClientSession, backend: Backend
) -> None:
    """EDC 0.17 sends back a right operand of several values as the Java rendering of what it stored."""
    from tests.test_catenax_policies import FRAMEWORK, TX_CONTEXT, usage_policy

    node, peer = peer_parts
    api = Management(http, node)
    purposes = ["cx.circular.dpp:1", "cx.core.industrycore:1"]
    asset = {
        "@context": EDC_CONTEXT,
        "@id": "passports-two",
        "properties": {"name": "passports-two"},
        "dataAddress": {"type": "HttpData", "baseUrl": backend.url + "/source/passports"},
    }
    assert (await api.call("POST", "/management/v3/assets", asset))[0] == 200
    purpose = {"leftOperand": "UsagePurpose", "operator": "isAnyOf", "rightOperand": purposes}
    open_access = {
        "@context": TX_CONTEXT,
        "@type": "PolicyDefinition",
        "@id": "open-access",
        "policy": {"@type": "Set"},
    }
    for body in (usage_policy("two-purposes", FRAMEWORK, purpose), open_access):
        status, answer = await api.call("POST", "/management/v3/policydefinitions", body)
        assert status == 200, answer
    definition = {
        "@context": EDC_CONTEXT,
        "@id": "cd-two",
        "accessPolicyId": "open-access",
        "contractPolicyId": "two-purposes",
        "assetsSelector": [{"operandLeft": EDC_NS + "id", "operator": "=", "operandRight": "passports-two"}],
    }
    assert (await api.call("POST", "/management/v3/contractdefinitions", definition))[0] == 200
    our_did, dsp = node.settings.effective_did, _dsp(node)
    peer.provider_identity = our_did
    status, catalog = await peer.send(dsp + "/catalog/request", fixture("catalog-request-message.json"), our_did)
    assert status == 200, catalog
    datasets = catalog["dataset"] if isinstance(catalog["dataset"], list) else [catalog["dataset"]]
    offered = next(d for d in datasets if d["@id"] == "passports-two")["hasPolicy"]
    offer = offered if isinstance(offered, dict) else offered[0]
    request = fixture(
        "contract-request-message.json",
        messageId=str(uuid.uuid4()),
        consumerPid=str(uuid.uuid4()),
        callbackAddress=peer.dsp_url,
        offerId=offer["@id"],
        providerId=our_did,
        assetId="passports-two",
    )
    request["offer"]["permission"]["constraint"]["and"][1]["rightOperand"] = stored_values(purposes)
    peer.expected_offer = rules(request, "offer")
    status, ack = await peer.send(dsp + "/negotiations/request", request, our_did)
    assert status in (200, 201), ack
    agreement = (await peer.wait_for("ContractAgreementMessage"))["agreement"]
    assert agreement["target"] == "passports-two"
    # The same request with another purpose in the list is still refused as altered.
    request["consumerPid"] = str(uuid.uuid4())
    request["offer"]["permission"]["constraint"]["and"][1]["rightOperand"] = stored_values(
        ["cx.circular.dpp:1", "cx.quality.notifications:1"]
    )
    status, ack = await peer.send(dsp + "/negotiations/request", request, our_did)
    assert status in (200, 201), ack
    terminated = await peer.wait_for("ContractNegotiationTerminationMessage")
    assert terminated["consumerPid"] == request["consumerPid"]
    assert "altered" in str(terminated["reason"])


def test_edc_renderings_of_several_values_are_read_and_nothing_else() -> None:
    from connector.services.offers import edc_list_values

    assert edc_list_values(stored_values(["BPNL00000000AAAA", "BPNL00000000BBBB"])) == [
        "BPNL00000000AAAA",
        "BPNL00000000BBBB",
    ]
    assert edc_list_values('[{"@value":"gold"},{"@value":"silver"}]') == ["gold", "silver"]
    for text in ("gold", "[gold]", '["gold"]', "[{@value={chars=a, string=b, valueType=STRING}}]", "[1, 2]", "[]"):
        assert edc_list_values(text) is None, text


async def test_our_consumer_reads_a_tractus_x_providers_terminations(
    peer_parts: tuple[Node, TractusXPeer], http: aiohttp.ClientSession
) -> None:
    node, peer = peer_parts
    request = fixture(
        "contract-request-message.json",
        messageId="m",
        consumerPid="c",
        callbackAddress="http://x",
        offerId="o",
        providerId="p",
        assetId="a",
    )
    offer_id = "dHgtcGFzc3BvcnRz:dHgtcGFzc3BvcnRz:" + uuid.uuid4().hex
    peer.publish(
        offer_id, "tx-passports", {k: request["offer"][k] for k in ("permission", "prohibition", "obligation")}
    )
    api = Management(http, node)

    # A negotiation the provider refuses: TERMINATED, with the provider's reason.
    peer.refuse_with = "Policy in scope contract.negotiation not fulfilled"
    created = await _negotiate_v3(
        api, peer, _catalog_offer(await _peer_catalog(api, peer)), "/management/v3/contractnegotiations"
    )
    async with asyncio.timeout(20):
        while True:
            _, negotiation = await api.call("GET", f"/management/v3/contractnegotiations/{created['@id']}")
            if negotiation["state"] == "TERMINATED":
                break
            await asyncio.sleep(0.05)
    assert "Policy in scope contract.negotiation not fulfilled" in negotiation["errorDetail"]

    # A started transfer the provider terminates: TERMINATED, with the provider's reason.
    peer.refuse_with = None
    created = await _negotiate_v3(
        api, peer, _catalog_offer(await _peer_catalog(api, peer)), "/management/v3/contractnegotiations"
    )
    negotiation = await _finalized(api, created["@id"], peer)
    status, transfer = await api.call(
        "POST",
        "/management/v3/transferprocesses",
        {
            "@context": EDC_CONTEXT,
            "@type": "TransferRequest",
            "counterPartyAddress": peer.dsp_url,
            "contractId": negotiation["contractAgreementId"],
            "protocol": "dataspace-protocol-http:2025-1",
            "transferType": "HttpData-PULL",
        },
    )
    assert status == 200, transfer
    await _wait(api, f"/management/v3/transferprocesses/{transfer['@id']}", {"STARTED"})
    (provider_pid,) = list(peer.transfers)
    await peer.terminate_transfer(provider_pid, "the agreement was retired")
    async with asyncio.timeout(20):
        while True:
            _, current = await api.call("GET", f"/management/v3/transferprocesses/{transfer['@id']}")
            if current["state"] == "TERMINATED":
                break
            await asyncio.sleep(0.05)
    assert "the agreement was retired" in current["errorDetail"]
    assert not peer.failures, peer.failures


async def _peer_catalog(api: Management, peer: TractusXPeer) -> dict[str, Any]:
    status, catalog = await api.call(
        "POST",
        "/management/v3/catalog/request",
        {
            "@context": EDC_CONTEXT,
            "@type": "CatalogRequest",
            "counterPartyAddress": peer.dsp_url,
            "counterPartyId": peer.did,
            "protocol": "dataspace-protocol-http:2025-1",
        },
    )
    assert status == 200, catalog
    return dict(catalog)


def _catalog_offer(catalog: dict[str, Any]) -> dict[str, Any]:
    return dict(catalog["dcat:dataset"]["odrl:hasPolicy"])
