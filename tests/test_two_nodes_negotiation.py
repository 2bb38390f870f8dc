"""Contract negotiation between real nodes on loopback, through the management API as an EDC client does it."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import aiohttp

from connector.app import Node
from tests import dsp_schemas
from tests.conftest import API_KEY, EDC_CONTEXT, ODRL_CONTEXT, Management
from tests.test_two_nodes_catalog import _grant_role, _provider

BPC = "https://w3id.org/battery-passport-connector/ns/"
DSP_CONTEXT = "https://w3id.org/dspace/2025/1/context.jsonld"
RECYCLER_ROLE = [
    {"action": "use", "constraint": [{"leftOperand": BPC + "role", "operator": "isA", "rightOperand": "recycler"}]}
]


PURPOSE = [{"action": "use", "constraint": [{"leftOperand": "purpose", "operator": "eq", "rightOperand": "recycling"}]}]


async def _publish(management: Management, contract_policy: str = "recyclers") -> None:
    """Publish one asset that everyone may see, under the named contract policy (recyclers, open or purpose)."""
    asset = {
        "@context": EDC_CONTEXT,
        "@id": "passports-x",
        "properties": {"name": "Passports X"},
        "dataAddress": {"type": "BatteryPassport"},
    }
    assert (await management.call("POST", "/management/v3/assets", asset))[0] == 200
    for policy_id, permissions in (("open", []), ("recyclers", RECYCLER_ROLE), ("purpose", PURPOSE)):
        body = {
            "@context": EDC_CONTEXT,
            "@id": policy_id,
            "policy": {"@context": ODRL_CONTEXT, "@type": "Set", "permission": permissions},
        }
        assert (await management.call("POST", "/management/v3/policydefinitions", body))[0] == 200
    definition = {
        "@context": EDC_CONTEXT,
        "@id": "cd-x",
        "accessPolicyId": "open",
        "contractPolicyId": contract_policy,
        "assetsSelector": [],
    }
    assert (await management.call("POST", "/management/v3/contractdefinitions", definition))[0] == 200


async def _negotiate(client: Management, provider: Node) -> str:
    body = {
        "@context": EDC_CONTEXT,
        "@type": "CatalogRequest",
        "counterPartyAddress": provider.settings.dsp_base_url,
        "counterPartyId": provider.settings.effective_did,
        "protocol": "dataspace-protocol-http:2025-1",
    }
    status, catalog = await client.call("POST", "/management/v3/catalog/request", body)
    assert status == 200, catalog
    offer = catalog["dcat:dataset"]["odrl:hasPolicy"]
    # What EDC users do: copy the offer back, adding the provider as assigner and the dataset as target.
    policy = {
        **offer,
        "odrl:assigner": {"@id": provider.settings.effective_participant_id},
        "odrl:target": {"@id": "passports-x"},
    }
    request = {
        "@context": {**EDC_CONTEXT, "odrl": "http://www.w3.org/ns/odrl/2/"},
        "@type": "ContractRequest",
        "counterPartyAddress": provider.settings.dsp_base_url,
        "protocol": "dataspace-protocol-http:2025-1",
        "policy": policy,
    }
    status, created = await client.call("POST", "/management/v3/contractnegotiations", request)
    assert status == 200, created
    return str(created["@id"])


async def _wait_for(client: Management, negotiation_id: str, states: set[str]) -> dict[str, Any]:
    async with asyncio.timeout(20):
        while True:
            status, negotiation = await client.call("GET", f"/management/v3/contractnegotiations/{negotiation_id}")
            assert status == 200, negotiation
            if negotiation["state"] in states:
                return negotiation
            await asyncio.sleep(0.05)


async def test_holder_of_the_role_agrees_and_others_are_refused_with_a_reason(
    node_factory: Any, http: aiohttp.ClientSession, tmp_path: Path
) -> None:
    provider, issuer_dir = await _provider(node_factory, tmp_path)
    provider_api = Management(http, provider)
    await _publish(provider_api)
    from connector.identity import issuer

    trusted = issuer.load_registry(issuer_dir).did
    recycler = await node_factory(api_key=API_KEY, trusted_issuers=trusted)
    stranger = await node_factory(api_key=API_KEY, trusted_issuers=trusted)
    recycler_api, stranger_api = Management(http, recycler), Management(http, stranger)
    jwt, _ = _grant_role(issuer_dir, recycler.settings.effective_did, "recycler")
    assert (await recycler_api.call("POST", "/management/v1/credentials", {"credential": jwt}))[0] == 200

    agreed_id = await _negotiate(recycler_api, provider)
    refused_id = await _negotiate(stranger_api, provider)

    agreed = await _wait_for(recycler_api, agreed_id, {"FINALIZED", "TERMINATED"})
    assert agreed["state"] == "FINALIZED", agreed
    assert agreed["type"] == "CONSUMER" and agreed["assetId"] == "passports-x"
    status, state = await recycler_api.call("GET", f"/management/v3/contractnegotiations/{agreed_id}/state")
    assert state["state"] == "FINALIZED"
    status, agreement = await recycler_api.call("GET", f"/management/v3/contractnegotiations/{agreed_id}/agreement")
    assert status == 200, agreement
    assert agreement["assetId"] == "passports-x"
    assert agreement["providerId"] == provider.settings.effective_participant_id
    assert agreement["consumerId"] == recycler.settings.effective_participant_id
    constraint = agreement["policy"]["odrl:permission"][0]["odrl:constraint"][0]
    assert constraint["odrl:rightOperand"] == "recycler"

    refused = await _wait_for(stranger_api, refused_id, {"FINALIZED", "TERMINATED"})
    assert refused["state"] == "TERMINATED", refused
    assert "contract policy is not satisfied" in refused["errorDetail"] and "role" in refused["errorDetail"]
    assert "contractAgreementId" not in refused

    # The provider sees both: one FINALIZED with the same agreement, one TERMINATED with the same reason.
    async with asyncio.timeout(20):
        while True:
            _, listed = await provider_api.call("POST", "/management/v3/contractnegotiations/request")
            states = sorted(n["state"] for n in listed)
            if states == ["FINALIZED", "TERMINATED"]:
                break
            await asyncio.sleep(0.05)
    finalized = next(n for n in listed if n["state"] == "FINALIZED")
    assert finalized["type"] == "PROVIDER" and finalized["counterPartyId"] == recycler.settings.effective_did
    assert finalized["contractAgreementId"] == agreement["@id"]
    terminated = next(n for n in listed if n["state"] == "TERMINATED")
    assert "contract policy is not satisfied" in terminated["errorDetail"]
    status, agreements = await provider_api.call("POST", "/management/v3/contractagreements/request")
    assert [a["@id"] for a in agreements] == [agreement["@id"]]
    status, negotiation = await provider_api.call(
        "GET", f"/management/v3/contractagreements/{agreement['@id']}/negotiation"
    )
    assert negotiation["@id"] == finalized["@id"]


async def test_protocol_rules_redelivery_and_errors(
    node_factory: Any, http: aiohttp.ClientSession, tmp_path: Path
) -> None:
    provider, _ = await _provider(node_factory, tmp_path)
    await _publish(Management(http, provider))
    consumer = await node_factory(api_key=API_KEY)
    base = provider.settings.dsp_base_url

    def auth() -> dict[str, str]:
        return {"Authorization": consumer.identity.token_for(provider.settings.effective_did)}

    async def post(path: str, body: Any) -> tuple[int, Any]:
        async with http.post(base + path, json=body, headers=auth()) as response:
            return response.status, await response.json(content_type=None)

    request = {
        "@context": [DSP_CONTEXT],
        "@type": "ContractRequestMessage",
        "consumerPid": "urn:uuid:consumer-1",
        # A callback nobody answers: the provider's messages back will fail, which is fine here.
        "callbackAddress": "http://127.0.0.1:9/api/dsp/2025-1",
        "offer": {
            "@id": "not-an-offer-of-this-node",
            "@type": "Offer",
            "target": "passports-x",
            "permission": [{"action": "use"}],
        },
    }
    dsp_schemas.validate(request, "negotiation/contract-request-message-schema.json")
    # An offer the provider does not know is refused at once (DSP: "MUST return an error"; EDC answers 404),
    # and no negotiation is opened for it.
    status, unknown = await post("/negotiations/request", request)
    assert status == 404 and unknown["@type"] == "ContractNegotiationError", unknown
    assert "not-an-offer-of-this-node" in " ".join(unknown["reason"])
    status, listed = await Management(http, provider).call("POST", "/management/v3/contractnegotiations/request")
    assert status == 200 and listed == []

    # A real offer, whose contract policy this consumer does not satisfy: the negotiation opens, and the
    # provider owes its termination (to a callback nobody answers).
    status, catalog = await post("/catalog/request", {"@context": [DSP_CONTEXT], "@type": "CatalogRequestMessage"})
    assert status == 200, catalog
    datasets = catalog["dataset"] if isinstance(catalog["dataset"], list) else [catalog["dataset"]]
    policies_ = datasets[0]["hasPolicy"]
    request["offer"]["@id"] = (policies_ if isinstance(policies_, list) else [policies_])[0]["@id"]
    status, first = await post("/negotiations/request", request)
    assert status == 201, first
    dsp_schemas.validate(first, "negotiation/contract-negotiation-schema.json")
    assert first["state"] == "REQUESTED" and first["consumerPid"] == "urn:uuid:consumer-1"
    status, again = await post("/negotiations/request", request)
    assert status == 200 and again["providerPid"] == first["providerPid"], (
        "a redelivered request is the same negotiation"
    )

    pids = {"providerPid": first["providerPid"], "consumerPid": "urn:uuid:consumer-1"}
    verification = {"@context": [DSP_CONTEXT], "@type": "ContractAgreementVerificationMessage", **pids}
    status, error = await post(f"/negotiations/{first['providerPid']}/agreement/verification", verification)
    assert status == 400 and error["@type"] == "ContractNegotiationError"
    assert "not allowed in state REQUESTED" in " ".join(error["reason"])
    status, error = await post(
        "/negotiations/urn:uuid:unknown/agreement/verification", {**verification, "providerPid": "urn:uuid:unknown"}
    )
    assert status == 404
    async with http.get(base + f"/negotiations/{first['providerPid']}", headers=auth()) as response:
        assert response.status == 200
        assert (await response.json())["providerPid"] == first["providerPid"]
    async with http.get(base + f"/negotiations/{first['providerPid']}") as response:
        assert response.status == 401
    bad = {**request, "callbackAddress": None, "consumerPid": "urn:uuid:consumer-2"}
    status, error = await post("/negotiations/request", bad)
    assert status == 400 and "callbackAddress" in " ".join(error["reason"])


async def test_unreachable_provider_ends_in_terminated_with_the_reason(
    node_factory: Any, http: aiohttp.ClientSession
) -> None:
    consumer = await node_factory(api_key=API_KEY, outbox_max_attempts=2, outbox_retry_seconds=0.05)
    client = Management(http, consumer)
    request = {
        "@context": {**EDC_CONTEXT, "odrl": "http://www.w3.org/ns/odrl/2/"},
        "@type": "ContractRequest",
        "counterPartyAddress": "http://127.0.0.1:9/api/dsp/2025-1",
        "counterPartyId": "did:web:nobody.example",
        "protocol": "dataspace-protocol-http:2025-1",
        "policy": {
            "@id": "offer-1",
            "@type": "odrl:Offer",
            "odrl:target": {"@id": "x"},
            "odrl:assigner": {"@id": "did:web:nobody.example"},
            "odrl:permission": {"odrl:action": {"@id": "odrl:use"}},
        },
    }
    status, created = await client.call("POST", "/management/v3/contractnegotiations", request)
    assert status == 200, created
    negotiation = await _wait_for(client, created["@id"], {"TERMINATED"})
    assert "could not be delivered" in negotiation["errorDetail"] and "after 2 attempts" in negotiation["errorDetail"]


async def test_manual_approval_holds_the_agreement_until_the_operator_approves(
    node_factory: Any, http: aiohttp.ClientSession, tmp_path: Path
) -> None:
    from tests.conftest import free_port

    port = free_port()
    provider = await node_factory(
        api_key=API_KEY, protocol_port=port, negotiation_approval="manual", data_dir=tmp_path / "p"
    )
    provider_api = Management(http, provider)
    # An open contract policy, so only the operator's decision counts.
    await _publish(provider_api, contract_policy="open")
    consumer = await node_factory(api_key=API_KEY)
    consumer_api = Management(http, consumer)
    negotiation_id = await _negotiate(consumer_api, provider)

    async with asyncio.timeout(10):
        while True:
            _, listed = await provider_api.call("POST", "/management/v3/contractnegotiations/request")
            if listed:
                break
            await asyncio.sleep(0.05)
    held = listed[0]
    assert held["state"] == "REQUESTED" and held["pending"] is True
    await asyncio.sleep(0.3)
    _, waiting = await consumer_api.call("GET", f"/management/v3/contractnegotiations/{negotiation_id}")
    assert waiting["state"] in ("INITIAL", "REQUESTED")

    assert (await provider_api.call("POST", f"/management/v3/contractnegotiations/{held['@id']}/approve"))[0] == 204
    finished = await _wait_for(consumer_api, negotiation_id, {"FINALIZED", "TERMINATED"})
    assert finished["state"] == "FINALIZED", finished
    status, problem = await provider_api.call("POST", f"/management/v3/contractnegotiations/{held['@id']}/approve")
    assert status == 400 and "not waiting for approval" in problem["detail"]


async def test_consumer_holds_a_different_counter_offer_and_accepts_an_equal_one(
    node_factory: Any, http: aiohttp.ClientSession, tmp_path: Path
) -> None:
    from tests.conftest import free_port

    provider = await node_factory(
        api_key=API_KEY, protocol_port=free_port(), negotiation_approval="manual", data_dir=tmp_path / "p"
    )
    provider_api = Management(http, provider)
    # An open contract policy, so only the operator's decision counts.
    await _publish(provider_api, contract_policy="open")
    consumer = await node_factory(api_key=API_KEY)
    consumer_api = Management(http, consumer)

    async def offer_to_consumer(negotiation_id: str, permission: list[Any]) -> tuple[int, Any]:
        """The provider's counter-offer, signed with the provider node's own identity."""
        negotiation = await _wait_for(consumer_api, negotiation_id, {"REQUESTED"})
        _, listed = await provider_api.call("POST", "/management/v3/contractnegotiations/request")
        provider_pid = next(
            n["@id"]
            for n in listed
            if n["state"] == "REQUESTED" and n["counterPartyId"] == consumer.settings.effective_did
        )
        message = {
            "@context": [DSP_CONTEXT],
            "@type": "ContractOfferMessage",
            "providerPid": provider_pid,
            "consumerPid": negotiation["@id"],
            "offer": {"@id": "counter-1", "@type": "Offer", "target": "passports-x", "permission": permission},
        }
        dsp_schemas.validate(message, "negotiation/contract-offer-message-schema.json")
        url = f"{consumer.settings.dsp_base_url}/negotiations/{negotiation['@id']}/offers"
        headers = {"Authorization": provider.identity.token_for(consumer.settings.effective_did)}
        async with http.post(url, json=message, headers=headers) as response:
            return response.status, await response.json(content_type=None)

    # A counter-offer with other terms waits for the consumer's operator.
    held_id = await _negotiate(consumer_api, provider)
    purpose = [
        {"action": "use", "constraint": [{"leftOperand": "purpose", "operator": "eq", "rightOperand": "recycling"}]}
    ]
    status, answer = await offer_to_consumer(held_id, purpose)
    assert status == 200 and answer["state"] == "OFFERED", answer
    _, held = await consumer_api.call("GET", f"/management/v3/contractnegotiations/{held_id}")
    assert held["state"] == "OFFERED" and held["pending"] is True
    terminate = {"@context": EDC_CONTEXT, "@type": "TerminateNegotiation", "reason": "those terms do not suit us"}
    assert (await consumer_api.call("POST", f"/management/v3/contractnegotiations/{held_id}/terminate", terminate))[
        0
    ] == 204
    ended = await _wait_for(consumer_api, held_id, {"TERMINATED"})
    assert "those terms do not suit us" in ended["errorDetail"]
    async with asyncio.timeout(10):
        while True:
            _, listed = await provider_api.call("POST", "/management/v3/contractnegotiations/request")
            mine = [n for n in listed if n["state"] == "TERMINATED"]
            if mine:
                break
            await asyncio.sleep(0.05)
    assert "those terms do not suit us" in mine[0]["errorDetail"]

    # A counter-offer equal to the request is accepted at once; this provider never offered, so it refuses
    # the acceptance, and the consumer ends the negotiation with the provider's reason.
    accepted_id = await _negotiate(consumer_api, provider)
    status, answer = await offer_to_consumer(accepted_id, [{"action": "use"}])
    assert status == 200
    ended = await _wait_for(consumer_api, accepted_id, {"TERMINATED", "ACCEPTED"})
    assert ended["state"] == "TERMINATED"
    assert "answered 400" in ended["errorDetail"] and "not allowed in state REQUESTED" in ended["errorDetail"]


async def test_a_purpose_constraint_is_agreed_and_carried_into_the_agreement(
    node_factory: Any, http: aiohttp.ClientSession, tmp_path: Path
) -> None:
    from tests.conftest import free_port

    provider = await node_factory(api_key=API_KEY, protocol_port=free_port(), data_dir=tmp_path / "p")
    provider_api = Management(http, provider)
    await _publish(provider_api, contract_policy="purpose")
    consumer = await node_factory(api_key=API_KEY)
    consumer_api = Management(http, consumer)
    negotiation_id = await _negotiate(consumer_api, provider)
    done = await _wait_for(consumer_api, negotiation_id, {"FINALIZED", "TERMINATED"})
    assert done["state"] == "FINALIZED", done
    _, agreement = await consumer_api.call("GET", f"/management/v3/contractnegotiations/{negotiation_id}/agreement")
    assert "recycling" in str(agreement["policy"])
