"""EDC Management API v4 beside v3, on real nodes: bodies as EDC 0.18 writes them, one store, v4's refusals.

The v4 bodies are those of EDC v0.18.0's own tests (system-tests/management-api/.../TestFunctions.java and
v4/*ApiV4EndToEndTest.java), with addresses and data-address types this node serves.
"""

from __future__ import annotations

import asyncio
from typing import Any

import aiohttp
import pytest

from connector.app import Node
from tests.conftest import API_KEY, EDC_CONTEXT, ODRL_CONTEXT, Management, NodeFactory

EDC = "https://w3id.org/edc/v0.0.1/ns/"
V2 = "https://w3id.org/edc/connector/management/v2"
CONTEXT = [V2]
DSP = "dataspace-protocol-http:2025-1"


def v4_asset(
    asset_id: str = "some-asset-id", base_url: str = "https://backend.example.com/passports"
) -> dict[str, Any]:
    """EDC's TestFunctions.assetObjectWithMetadata, with an HttpData address this node's data plane serves."""
    return {
        "@context": CONTEXT,
        "@type": "Asset",
        "@id": asset_id,
        "properties": {
            "name": "some-asset-name",
            "id": asset_id,
            "description": "some description",
            "version": "0.2.1",
            "contenttype": "application/json",
        },
        "privateProperties": {"name": "some-asset-name", "id": asset_id, "description": "some description"},
        "dataAddress": {"@type": "DataAddress", "type": "HttpData", "baseUrl": base_url, "proxyPath": "true"},
        "dataplaneMetadata": {
            "@type": "DataplaneMetadata",
            "labels": ["label1", "label2"],
            "properties": {"key1": "value1", "key2": "value2"},
        },
    }


def v4_policy(policy_id: str = "some-policy-id") -> dict[str, Any]:
    """EDC's TestFunctions.policyDefinitionObject in its strict (v4) form: arrays everywhere, an inForceDate window."""
    return {
        "@context": CONTEXT,
        "@type": "PolicyDefinition",
        "@id": policy_id,
        "policy": {
            "@type": "Set",
            "permission": [
                {
                    "action": "use",
                    "constraint": [
                        {
                            "and": [
                                {
                                    "leftOperand": "inForceDate",
                                    "operator": "gteq",
                                    "rightOperand": "contractAgreement+0s",
                                },
                                {
                                    "leftOperand": "inForceDate",
                                    "operator": "lteq",
                                    "rightOperand": "contractAgreement+10000s",
                                },
                            ]
                        }
                    ],
                }
            ],
        },
        "privateProperties": {"name": "policy-definition-name", "description": "policy definition description"},
    }


def v4_contract(contract_id: str = "some-definition-id", policy_id: str = "some-policy-id") -> dict[str, Any]:
    """EDC's TestFunctions.contractDefinitionObject, selecting one asset by id."""
    return {
        "@context": CONTEXT,
        "@type": "ContractDefinition",
        "@id": contract_id,
        "accessPolicyId": policy_id,
        "contractPolicyId": policy_id,
        "assetsSelector": [
            {"@type": "Criterion", "operandLeft": EDC + "id", "operator": "=", "operandRight": "some-asset-id"}
        ],
        "privateProperties": {"name": "contract-definition-name", "description": "contract definition description"},
    }


def query(*criteria: dict[str, Any], **fields: Any) -> dict[str, Any]:
    """EDC's ManagementEndToEndTestContext.queryV2: a QuerySpec whose criteria carry "@type": "Criterion"."""
    return {
        "@context": CONTEXT,
        "@type": "QuerySpec",
        "filterExpression": [{"@type": "Criterion", **c} for c in criteria],
        **fields,
    }


async def test_every_v4_resource_with_edcs_own_bodies(management: Management) -> None:
    status, created = await management.call("POST", "/management/v4/assets", v4_asset())
    assert status == 200, created
    assert created == {
        "@context": CONTEXT,
        "@type": "IdResponse",
        "@id": "some-asset-id",
        "createdAt": created["createdAt"],
    }
    status, asset = await management.call("GET", "/management/v4/assets/some-asset-id")
    assert status == 200, asset
    assert asset["@context"] == CONTEXT and asset["@type"] == "Asset"
    assert asset["properties"]["name"] == "some-asset-name" and asset["properties"]["id"] == "some-asset-id"
    assert asset["privateProperties"]["description"] == "some description"
    assert asset["dataAddress"] == {
        "@type": "DataAddress",
        "type": "HttpData",
        "baseUrl": "https://backend.example.com/passports",
        "proxyPath": "true",
    }

    status, created = await management.call("POST", "/management/v4/policydefinitions", v4_policy())
    assert status == 200, created
    status, definition = await management.call("GET", "/management/v4/policydefinitions/some-policy-id")
    assert status == 200, definition
    assert definition["@context"] == CONTEXT and definition["@type"] == "PolicyDefinition"
    policy = definition["policy"]
    # DSP terms under the v2 context, constraints as arrays: the shape v4 accepts, so it can be sent back.
    assert policy["@type"] == "Set"
    (permission,) = policy["permission"]
    assert permission["action"] == "use"
    (logical,) = permission["constraint"]
    assert [c["operator"] for c in logical["and"]] == ["gteq", "lteq"]
    assert logical["and"][0]["leftOperand"] == EDC + "inForceDate"
    replaced = v4_policy()
    replaced["policy"] = {**definition["policy"], "permission": [{"action": "use"}]}
    assert (await management.call("PUT", "/management/v4/policydefinitions/some-policy-id", replaced))[0] == 204

    status, created = await management.call("POST", "/management/v4/contractdefinitions", v4_contract())
    assert status == 200, created
    status, contract = await management.call("GET", "/management/v4/contractdefinitions/some-definition-id")
    assert status == 200, contract
    assert contract["@context"] == CONTEXT
    assert contract["assetsSelector"] == [
        {"@type": "Criterion", "operandLeft": EDC + "id", "operator": "=", "operandRight": "some-asset-id"}
    ]
    assert contract["privateProperties"]["name"] == "contract-definition-name"

    # Queries filter on plain field names, as EDC's v4 tests do; every answer carries the v2 context.
    status, found = await management.call(
        "POST",
        "/management/v4/assets/request",
        query({"operandLeft": "id", "operator": "=", "operandRight": "some-asset-id"}),
    )
    assert status == 200, found
    assert [a["@id"] for a in found] == ["some-asset-id"] and found[0]["@context"] == CONTEXT
    status, found = await management.call(
        "POST",
        "/management/v4/policydefinitions/request",
        query({"operandLeft": "id", "operator": "in", "operandRight": ["some-policy-id", "other"]}, limit=10, offset=0),
    )
    assert status == 200 and [p["@id"] for p in found] == ["some-policy-id"]
    status, found = await management.call(
        "POST", "/management/v4/contractdefinitions/request", query(sortField="createdAt", sortOrder="DESC")
    )
    assert status == 200 and [c["@id"] for c in found] == ["some-definition-id"]

    # Updating an asset (EDC's updateAsset test body, with the data address this node needs).
    update = v4_asset()
    update["properties"] = {"some-new-property": "some-new-value"}
    assert (await management.call("PUT", "/management/v4/assets", update))[0] == 204
    _, asset = await management.call("GET", "/management/v4/assets/some-asset-id")
    assert asset["properties"] == {"some-new-property": "some-new-value", "id": "some-asset-id"}

    assert (await management.call("DELETE", "/management/v4/contractdefinitions/some-definition-id"))[0] == 204
    assert (await management.call("DELETE", "/management/v4/policydefinitions/some-policy-id"))[0] == 204
    assert (await management.call("DELETE", "/management/v4/assets/some-asset-id"))[0] == 204
    status, problem = await management.call("GET", "/management/v4/assets/some-asset-id")
    assert status == 404 and "some-asset-id" in problem["detail"]


async def test_both_versions_share_one_store(management: Management) -> None:
    v3_asset = {
        "@context": EDC_CONTEXT,
        "@id": "asset-v3",
        "properties": {"name": "Made with v3", "dct:type": {"@id": "https://w3id.org/catenax/taxonomy#Battery"}},
        "dataAddress": {"type": "HttpData", "baseUrl": "https://backend.example.com/a"},
    }
    v3_asset["@context"] = {**EDC_CONTEXT, "dct": "http://purl.org/dc/terms/"}
    assert (await management.call("POST", "/management/v3/assets", v3_asset))[0] == 200
    status, seen = await management.call("GET", "/management/v4/assets/asset-v3")
    assert status == 200, seen
    assert seen["@context"] == CONTEXT
    # IRIs come back with the prefixes the v2 context defines (dct:), EDC's own terms bare.
    assert seen["properties"]["name"] == "Made with v3"
    assert seen["properties"]["dct:type"] == {"@id": "https://w3id.org/catenax/taxonomy#Battery"}

    assert (await management.call("POST", "/management/v4/assets", v4_asset("asset-v4")))[0] == 200
    status, seen = await management.call("GET", "/management/v3/assets/asset-v4")
    assert status == 200, seen
    assert seen["@context"]["@vocab"] == EDC and seen["properties"]["name"] == "some-asset-name"
    assert seen["dataAddress"]["baseUrl"] == "https://backend.example.com/passports"

    # A policy made with v4 reads as EDC v3 writes policies (odrl: prefixes), and the reverse.
    assert (await management.call("POST", "/management/v4/policydefinitions", v4_policy("p4")))[0] == 200
    _, in_v3 = await management.call("GET", "/management/v3/policydefinitions/p4")
    assert in_v3["policy"]["@type"] == "odrl:Set"
    assert in_v3["policy"]["odrl:permission"][0]["odrl:action"] == {"@id": "odrl:use"}
    v3_policy = {
        "@context": EDC_CONTEXT,
        "@id": "p3",
        "policy": {"@context": ODRL_CONTEXT, "@type": "Set", "permission": [{"action": "use"}]},
    }
    assert (await management.call("POST", "/management/v3/policydefinitions", v3_policy))[0] == 200
    _, in_v4 = await management.call("GET", "/management/v4/policydefinitions/p3")
    assert in_v4["policy"] == {"@type": "Set", "permission": [{"action": "use"}]}

    # The lists are the same objects, whichever version asks.
    _, listed_v3 = await management.call("POST", "/management/v3/assets/request")
    _, listed_v4 = await management.call("POST", "/management/v4/assets/request")
    assert sorted(a["@id"] for a in listed_v3) == sorted(a["@id"] for a in listed_v4) == ["asset-v3", "asset-v4"]


def _errors(problem: dict[str, Any]) -> list[tuple[str | None, str]]:
    return [(e["path"], e["message"]) for e in problem["errors"]]


@pytest.mark.parametrize(
    ("path", "body", "where", "says"),
    [
        ("/management/v4/assets", {**v4_asset(), "@context": None}, "@context", "must be an array"),
        ("/management/v4/assets", {k: v for k, v in v4_asset().items() if k != "@context"}, "@context", V2),
        ("/management/v4/assets", {**v4_asset(), "@context": {"@vocab": EDC}}, "@context", "must be an array"),
        ("/management/v4/assets", {**v4_asset(), "@context": V2}, "@context", "must be an array"),
        ("/management/v4/assets", {**v4_asset(), "@context": [ODRL_CONTEXT]}, "@context", V2),
        ("/management/v4/assets", {**v4_asset(), "@type": "CatalogAsset"}, "@type", '"Asset"'),
        ("/management/v4/assets", {k: v for k, v in v4_asset().items() if k != "@type"}, "@type", "required"),
        (
            "/management/v4/assets/request",
            {
                "@context": CONTEXT,
                "@type": "QuerySpec",
                "filterExpression": [{"operandLeft": "id", "operator": "=", "operandRight": "x"}],
            },
            "filterExpression[0].@type",
            "required",
        ),
        (
            "/management/v4/contractdefinitions",
            {**v4_contract(), "assetsSelector": [{"operandLeft": "id", "operator": "=", "operandRight": "x"}]},
            "assetsSelector[0].@type",
            "required",
        ),
        (
            "/management/v4/policydefinitions",
            {**v4_policy(), "policy": {"@type": "Set", "permission": []}},
            "policy.permission",
            "at least 1",
        ),
        (
            "/management/v4/policydefinitions",
            {**v4_policy(), "policy": {"@type": "Set", "permission": [{"action": "use", "constraint": {"and": []}}]}},
            "policy.permission[0].constraint",
            "must be an array",
        ),
        (
            "/management/v4/policydefinitions",
            {
                **v4_policy(),
                "policy": {
                    "@type": "Set",
                    "permission": [
                        {
                            "action": "use",
                            "constraint": [{"leftOperand": "inForceDate", "operator": "gte", "rightOperand": "x"}],
                        }
                    ],
                },
            },
            "policy.permission[0].constraint[0].operator",
            '"gteq"',
        ),
        ("/management/v4/policydefinitions", {**v4_policy(), "policy": {"@type": "odrl:Set"}}, "policy.@type", '"Set"'),
    ],
)
async def test_v4_refuses_what_edc_0_18_refuses_naming_the_field(
    management: Management, path: str, body: dict[str, Any], where: str, says: str
) -> None:
    status, problem = await management.call("POST", path, body)
    assert status == 400, problem
    assert any(p == where and says in m for p, m in _errors(problem)), problem["errors"]
    assert problem["title"] == "Invalid input" and where in problem["detail"]


def _offer_request(**policy: Any) -> dict[str, Any]:
    """EDC's TestFunctions.contractRequestObject (strict), with a real address and this node's protocol."""
    return {
        "@context": CONTEXT,
        "@type": "ContractRequest",
        "counterPartyAddress": "http://127.0.0.1:9/api/dsp/2025-1",
        "protocol": DSP,
        "callbackAddresses": [
            {"@type": "CallbackAddress", "transactional": True, "uri": "http://test.local/", "events": ["event"]}
        ],
        "policy": {"@type": "Offer", "@id": "id", "assigner": "provider", "target": "assetId", **policy},
    }


async def test_v4_offers_need_a_rule_and_requests_one_protocol(management: Management) -> None:
    status, problem = await management.call("POST", "/management/v4/contractnegotiations", _offer_request())
    assert status == 400
    assert ("policy", "policy: an offer needs at least one rule: a non-empty permission or prohibition") in _errors(
        problem
    )
    # edc-client's bare offer (only @id, assigner and target) is v3-only, as in EDC.
    status, problem = await management.call(
        "POST", "/management/v4/contractnegotiations", _offer_request(permission=[])
    )
    assert status == 400 and ("policy.permission", "policy.permission must have at least 1 item(s)") in _errors(problem)
    both = {**_offer_request(permission=[{"action": "use"}]), "profile": DSP}
    status, problem = await management.call("POST", "/management/v4/contractnegotiations", both)
    assert status == 400 and any("exactly one of protocol and profile" in m for _, m in _errors(problem))
    callback = _offer_request(permission=[{"action": "use"}])
    callback["callbackAddresses"] = [{"transactional": False, "uri": "http://cb/", "events": []}]
    status, problem = await management.call("POST", "/management/v4/contractnegotiations", callback)
    assert status == 400 and ("callbackAddresses[0].@type", "callbackAddresses[0].@type is required") in _errors(
        problem
    )
    wrong = {**_offer_request(permission=[{"action": "use"}])}
    del wrong["protocol"]
    wrong["profile"] = "dataspace-protocol-http:2024-1"
    status, problem = await management.call("POST", "/management/v4/contractnegotiations", wrong)
    assert status == 400 and [p for p, _ in _errors(problem)] == ["profile"], problem


async def test_v4_has_no_edr_api_and_v3_keeps_it(management: Management) -> None:
    status, _ = await management.call("POST", "/management/v4/edrs/request", query())
    assert status == 404
    status, found = await management.call("POST", "/management/v3/edrs/request")
    assert status == 200 and found == []


async def _wait(api: Management, path: str, states: set[str]) -> dict[str, Any]:
    async with asyncio.timeout(20):
        while True:
            status, body = await api.call("GET", path)
            assert status == 200, body
            if body["state"] in states:
                return dict(body)
            if body["state"] in ("TERMINATED", "FINALIZED", "COMPLETED"):
                raise AssertionError(f"{path} ended {body['state']}: {body.get('errorDetail')}")
            await asyncio.sleep(0.05)


async def test_two_nodes_negotiate_and_transfer_through_v4(
    node_factory: NodeFactory, http: aiohttp.ClientSession
) -> None:
    from tests.test_two_nodes_transfer import Backend

    backend = Backend()
    await backend.start()
    try:
        await _negotiate_and_pull(
            await node_factory(api_key=API_KEY), await node_factory(api_key=API_KEY), http, backend
        )
    finally:
        await backend.stop()


async def _negotiate_and_pull(provider: Node, consumer: Node, http: aiohttp.ClientSession, backend: Any) -> None:
    provider_api, consumer_api = Management(http, provider), Management(http, consumer)
    asset = v4_asset(base_url=backend.url + "/source/passports")
    asset["dataAddress"].update({"authKey": "X-Api-Secret", "authCode": "backend-secret"})
    assert (await provider_api.call("POST", "/management/v4/assets", asset))[0] == 200
    open_policy = {"@context": CONTEXT, "@type": "PolicyDefinition", "@id": "open", "policy": {"@type": "Set"}}
    assert (await provider_api.call("POST", "/management/v4/policydefinitions", open_policy))[0] == 200
    use = {**open_policy, "@id": "use", "policy": {"@type": "Set", "permission": [{"action": "use"}]}}
    assert (await provider_api.call("POST", "/management/v4/policydefinitions", use))[0] == 200
    contract = {**v4_contract(), "accessPolicyId": "open", "contractPolicyId": "use"}
    assert (await provider_api.call("POST", "/management/v4/contractdefinitions", contract))[0] == 200

    # research §4: the catalog request of EDC's v4 tests, with a QuerySpec whose criteria are typed.
    catalog_request = {
        "@context": CONTEXT,
        "@type": "CatalogRequest",
        "counterPartyAddress": provider.settings.dsp_base_url,
        "counterPartyId": provider.settings.effective_did,
        "protocol": DSP,
        "querySpec": {"@type": "QuerySpec", "limit": 10},
    }
    status, catalog = await consumer_api.call("POST", "/management/v4/catalog/request", catalog_request)
    assert status == 200, catalog
    # v4 answers the provider's DSP catalog as it came (EDC does so too).
    assert catalog["@type"] == "Catalog" and catalog["@context"] == ["https://w3id.org/dspace/2025/1/context.jsonld"]
    datasets = catalog["dataset"] if isinstance(catalog["dataset"], list) else [catalog["dataset"]]
    (dataset,) = [d for d in datasets if d["@id"] == "some-asset-id"]
    offer = dataset["hasPolicy"][0] if isinstance(dataset["hasPolicy"], list) else dataset["hasPolicy"]

    dataset_request = {
        "@context": CONTEXT,
        "@type": "DatasetRequest",
        "@id": "some-asset-id",
        "counterPartyAddress": provider.settings.dsp_base_url,
        "counterPartyId": provider.settings.effective_did,
        "profile": DSP,
    }
    status, found = await consumer_api.call("POST", "/management/v4/catalog/dataset/request", dataset_request)
    assert status == 200 and found["@id"] == "some-asset-id", found

    # The v4 ContractRequest: the offer in DSP terms with assigner and target; no counterPartyId (v4 dropped it).
    request = {
        "@context": CONTEXT,
        "@type": "ContractRequest",
        "counterPartyAddress": provider.settings.dsp_base_url,
        "protocol": DSP,
        "callbackAddresses": [{"@type": "CallbackAddress", "transactional": False, "uri": "http://cb/", "events": []}],
        "policy": {
            "@type": "Offer",
            "@id": offer["@id"],
            "assigner": provider.settings.effective_participant_id,
            "target": "some-asset-id",
            "permission": offer["permission"],
        },
    }
    status, created = await consumer_api.call("POST", "/management/v4/contractnegotiations", request)
    assert status == 200, created
    assert created["@context"] == CONTEXT and created["@type"] == "IdResponse"
    negotiation = await _wait(consumer_api, f"/management/v4/contractnegotiations/{created['@id']}", {"FINALIZED"})
    assert negotiation["@context"] == CONTEXT and negotiation["@type"] == "ContractNegotiation"
    assert negotiation["profile"] == DSP and negotiation["protocol"] == DSP and negotiation["type"] == "CONSUMER"
    status, state = await consumer_api.call("GET", f"/management/v4/contractnegotiations/{created['@id']}/state")
    assert state == {"@type": "NegotiationState", "state": "FINALIZED", "@context": CONTEXT}
    agreement_id = negotiation["contractAgreementId"]
    status, agreement = await consumer_api.call("GET", f"/management/v4/contractagreements/{agreement_id}")
    assert status == 200, agreement
    assert agreement["@context"] == CONTEXT and agreement["policy"]["@type"] == "Agreement"
    assert agreement["policy"]["permission"] == [{"action": "use"}]
    status, listed = await consumer_api.call(
        "POST",
        "/management/v4/contractagreements/request",
        query({"operandLeft": "id", "operator": "=", "operandRight": agreement_id}),
    )
    assert status == 200 and [a["@id"] for a in listed] == [agreement_id]
    _, via_agreement = await consumer_api.call("GET", f"/management/v4/contractagreements/{agreement_id}/negotiation")
    assert via_agreement["@id"] == created["@id"]

    # The provider finalizes once our event is acknowledged: wait for it before transferring.
    _, provided = await provider_api.call("POST", "/management/v4/contractnegotiations/request", query())
    await _wait(provider_api, f"/management/v4/contractnegotiations/{provided[0]['@id']}", {"FINALIZED"})

    transfer = {
        "@context": CONTEXT,
        "@type": "TransferRequest",
        "counterPartyAddress": provider.settings.dsp_base_url,
        "contractId": agreement_id,
        "transferType": "HttpData-PULL",
        "protocol": DSP,
        "callbackAddresses": [{"@type": "CallbackAddress", "transactional": False, "uri": "http://cb/", "events": []}],
        "dataplaneMetadata": {"@type": "DataplaneMetadata", "labels": ["label"], "properties": {"key": "value"}},
    }
    status, started = await consumer_api.call("POST", "/management/v4/transferprocesses", transfer)
    assert status == 200, started
    process = await _wait(consumer_api, f"/management/v4/transferprocesses/{started['@id']}", {"STARTED"})
    assert process["@context"] == CONTEXT and process["@type"] == "TransferProcess"
    _, state = await consumer_api.call("GET", f"/management/v4/transferprocesses/{started['@id']}/state")
    assert state == {"@type": "TransferState", "state": "STARTED", "@context": CONTEXT}
    status, listed = await consumer_api.call(
        "POST",
        "/management/v4/transferprocesses/request",
        query({"operandLeft": "state", "operator": "=", "operandRight": "STARTED"}, limit=100, offset=0),
    )
    assert status == 200 and [t["@id"] for t in listed] == [started["@id"]]

    # v4 has no EDR API: the endpoint and token come from v3's, and the data from the provider's data plane.
    status, address = await consumer_api.call("GET", f"/management/v3/edrs/{started['@id']}/dataaddress")
    assert status == 200, address
    async with http.get(address["endpoint"] + "/BAT-1", headers={"Authorization": address["authorization"]}) as got:
        assert got.status == 200, await got.text()
        assert (await got.json())["batteryId"] == "BAT-1"

    suspend = {"@context": CONTEXT, "@type": "SuspendTransfer", "reason": "maintenance"}
    status, problem = await consumer_api.call(
        "POST", f"/management/v4/transferprocesses/{started['@id']}/suspend", {**suspend, "@type": "TerminateTransfer"}
    )
    assert status == 400 and ("@type", '@type must be "SuspendTransfer"') in _errors(problem)
    assert (await consumer_api.call("POST", f"/management/v4/transferprocesses/{started['@id']}/suspend", suspend))[
        0
    ] == 204
    terminate = {"@context": CONTEXT, "@type": "TerminateTransfer", "reason": "done"}
    path = f"/management/v4/transferprocesses/{started['@id']}/terminate"
    assert (await consumer_api.call("POST", path, terminate))[0] == 204


async def test_a_nested_properties_object_of_a_data_address_is_read_as_edc_reads_it(management: Management) -> None:
    # EDC lifts the fields of a DataAddress's "properties" object up (JsonObjectToDataAddressTransformer).
    nested = {"@type": "DataAddress", "type": "HttpData", "properties": {"baseUrl": "https://backend.example.com/n"}}
    v3 = {"@context": EDC_CONTEXT, "@id": "n3", "dataAddress": nested}
    assert (await management.call("POST", "/management/v3/assets", v3))[0] == 200
    assert (await management.call("POST", "/management/v4/assets", {**v4_asset("n4"), "dataAddress": nested}))[0] == 200
    for path in ("/management/v4/assets/n4", "/management/v3/assets/n3"):
        _, asset = await management.call("GET", path)
        assert asset["dataAddress"]["baseUrl"] == "https://backend.example.com/n"

    # In a v4 TransferRequest the keys of a nested properties object have no term (EDC's context gives them
    # none either): the refusal says where baseUrl belongs.
    transfer = {
        "@context": CONTEXT,
        "@type": "TransferRequest",
        "counterPartyAddress": "http://127.0.0.1:9/api/dsp/2025-1",
        "contractId": "agreement-1",
        "transferType": "HttpData-PUSH",
        "protocol": DSP,
        "dataDestination": nested,
    }
    status, problem = await management.call("POST", "/management/v4/transferprocesses", transfer)
    assert status == 400, problem
    ((where, message),) = _errors(problem)
    assert where == "dataDestination.baseUrl" and "beside type" in message
