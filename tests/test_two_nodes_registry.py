"""The embedded Digital Twin Registry between real nodes on loopback, used as a Catena-X consumer uses a DTR: find the
DTR asset in the provider's catalog by its dct:type, negotiate it under the Catena-X policies, call the registry
through the data plane (list, by id, lookups), then negotiate the submodel asset a descriptor names and read its
href and href/$value. Who sees which specific asset ids follows the Tractus-X rule for the consumer's BPN."""

from __future__ import annotations

import asyncio
import base64
import json
from pathlib import Path
from typing import Any

import aiohttp

from connector.app import Node
from connector.domain import passport as model
from connector.domain import registry as wire
from connector.identity import issuer
from connector.services.passports import LEVELS
from tests.conftest import API_KEY, EDC_CONTEXT, Management, NodeFactory, free_port
from tests.test_registry_wire import assert_metamodel, assert_valid
from tests.test_two_nodes_catenax import MEMBER_BPN, OTHER_BPN, _grant, _hold
from tests.test_two_nodes_transfer import _pull_request, _wait

PROVIDER_BPN = "BPNL00000003CRHK"
V1 = "/management/v1/passports"
DTR_FILTER = {
    "operandLeft": "'http://purl.org/dc/terms/type'.'@id'",
    "operator": "=",
    "operandRight": "https://w3id.org/catenax/taxonomy#DigitalTwinRegistry",
}


class Dataspace:
    """A provider (also the dataspace's issuer) with passports published, and consumers holding Catena-X credentials."""

    def __init__(self, provider: Node, member: Node, other: Node, documents: list[dict[str, Any]]) -> None:
        self.provider, self.member, self.other, self.documents = provider, member, other, documents


async def _dataspace(
    node_factory: NodeFactory, http: aiohttp.ClientSession, tmp_path: Path, count: int = 5, **provider_settings: Any
) -> Dataspace:
    port = free_port()
    data_dir = tmp_path / "provider"
    issuer_did = f"did:web:127.0.0.1%3A{port}:issuer"
    identity = issuer.create_issuer(data_dir / "issuer", issuer_did)
    issuer.init_registry(data_dir / "issuer", identity.did, f"http://127.0.0.1:{port}/issuer/status")
    member = await node_factory(api_key=API_KEY, trusted_issuers=issuer_did)
    other = await node_factory(api_key=API_KEY, trusted_issuers=issuer_did)
    directory = tmp_path / "bpn-directory.json"
    directory.write_text(
        json.dumps({MEMBER_BPN: member.settings.effective_did, OTHER_BPN: other.settings.effective_did})
    )
    settings: dict[str, Any] = {
        "registry_readers": MEMBER_BPN,
        "registry_settle_seconds": 0,
        **provider_settings,
    }
    provider = await node_factory(
        api_key=API_KEY,
        protocol_port=port,
        data_dir=data_dir,
        trusted_issuers=issuer_did,
        claims_cache_seconds=0,
        bpn=PROVIDER_BPN,
        bpn_directory_file=directory,
        **settings,
    )
    for consumer, bpn in ((member, MEMBER_BPN), (other, OTHER_BPN)):
        await _hold(
            consumer,
            http,
            _grant(data_dir / "issuer", consumer.settings.effective_did, bpn, "membership", "deg", "bpn"),
        )
    documents = [model.generate(i) for i in range(count)]
    api = Management(http, provider)
    assert (await api.call("POST", f"{V1}/import", documents))[1]["new"] == count
    status, published = await api.call("POST", f"{V1}/publish", {})
    assert status == 200, published
    return Dataspace(provider, member, other, documents)


async def _catalog(consumer: Node, provider: Node, http: aiohttp.ClientSession, *criteria: Any) -> list[dict[str, Any]]:
    body = {
        "@context": EDC_CONTEXT,
        "@type": "CatalogRequest",
        "counterPartyAddress": provider.settings.dsp_base_url,
        "counterPartyId": provider.settings.effective_did,
        "protocol": "dataspace-protocol-http:2025-1",
        "querySpec": {"filterExpression": list(criteria)},
    }
    status, catalog = await Management(http, consumer).call("POST", "/management/v3/catalog/request", body)
    assert status == 200, catalog
    datasets = catalog.get("dcat:dataset", [])
    return datasets if isinstance(datasets, list) else [datasets]


async def _edr(consumer: Node, provider: Node, http: aiohttp.ClientSession, dataset: dict[str, Any]) -> tuple[str, str]:
    """Negotiate a dataset's offer and start a pull; return the EDR's endpoint and token."""
    api = Management(http, consumer)
    offer = dataset["odrl:hasPolicy"]
    offer = offer[0] if isinstance(offer, list) else offer
    request = {
        "@context": {**EDC_CONTEXT, "odrl": "http://www.w3.org/ns/odrl/2/"},
        "@type": "ContractRequest",
        "counterPartyAddress": provider.settings.dsp_base_url,
        "protocol": "dataspace-protocol-http:2025-1",
        "policy": {
            **offer,
            "odrl:assigner": {"@id": provider.settings.effective_participant_id},
            "odrl:target": {"@id": dataset["@id"]},
        },
    }
    status, created = await api.call("POST", "/management/v3/contractnegotiations", request)
    assert status == 200, created
    negotiation = await _wait(api, f"/management/v3/contractnegotiations/{created['@id']}", {"FINALIZED", "TERMINATED"})
    assert negotiation["state"] == "FINALIZED", negotiation
    async with asyncio.timeout(20):
        while True:  # the provider finalizes once our verification is acknowledged
            status, started = await api.call(
                "POST", "/management/v3/transferprocesses", _pull_request(provider, negotiation["contractAgreementId"])
            )
            assert status == 200, started
            done = await _wait(api, f"/management/v3/transferprocesses/{started['@id']}", {"STARTED", "TERMINATED"})
            if done["state"] == "STARTED":
                break
            await asyncio.sleep(0.2)
    status, address = await api.call("GET", f"/management/v3/edrs/{started['@id']}/dataaddress")
    assert status == 200, address
    return str(address["endpoint"]), str(address["authorization"])


async def _get(http: aiohttp.ClientSession, url: str, token: str, **params: Any) -> tuple[int, Any]:
    async with http.get(url, headers={"Authorization": token}, params=params or None) as response:
        return response.status, await response.json()


async def _post(http: aiohttp.ClientSession, url: str, token: str, body: Any, **params: Any) -> tuple[int, Any]:
    async with http.post(url, headers={"Authorization": token}, json=body, params=params or None) as response:
        return response.status, await response.json()


def _b64(value: str) -> str:
    return base64.urlsafe_b64encode(value.encode()).decode().rstrip("=")


async def _registry(space: Dataspace, http: aiohttp.ClientSession, consumer: Node) -> tuple[str, str]:
    (dtr,) = await _catalog(consumer, space.provider, http, DTR_FILTER)
    assert dtr["@id"] == wire.DTR_ASSET_ID
    return await _edr(consumer, space.provider, http, dtr)


async def test_a_consumer_finds_a_battery_in_the_registry_and_reads_its_submodel(
    node_factory: NodeFactory, http: aiohttp.ClientSession, tmp_path: Path
) -> None:
    space = await _dataspace(node_factory, http, tmp_path)
    (dtr,) = await _catalog(space.member, space.provider, http, DTR_FILTER)
    assert dtr["dct:type"] == {"@id": "https://w3id.org/catenax/taxonomy#DigitalTwinRegistry"}
    assert dtr["https://w3id.org/catenax/ontology/common#version"] == "3.0"
    assert "https://w3id.org/catenax/2025/9/policy/FrameworkAgreement" in json.dumps(dtr["odrl:hasPolicy"])
    endpoint, token = await _edr(space.member, space.provider, http, dtr)

    # List: every passport is a shell, with the specific asset ids the member's BPN may see.
    status, listed = await _get(http, endpoint + "/shell-descriptors", token)
    assert status == 200, listed
    passports = {model.parse_passport(d).passport_id: model.parse_passport(d) for d in space.documents}
    assert sorted(s["id"] for s in listed["result"]) == sorted(passports)
    assert listed["paging_metadata"] == {}
    assert_valid("GetAssetAdministrationShellDescriptorsResult", listed)
    for listed_shell in listed["result"]:
        assert_metamodel(listed_shell)
    one = passports[listed["result"][0]["id"]]
    shell = listed["result"][0]
    names = {i["name"]: i["value"] for i in shell["specificAssetIds"]}
    assert names["partInstanceId"] == one.battery_id
    assert names["digitalTwinType"] == "PartInstance" and names["manufacturerId"] == PROVIDER_BPN
    assert shell["globalAssetId"] == one.battery_id
    for item in shell["specificAssetIds"]:
        assert item["externalSubjectId"]["keys"] == [{"type": "GlobalReference", "value": MEMBER_BPN}]

    # By id (base64url), its submodel descriptors, one of them.
    status, by_id = await _get(http, f"{endpoint}/shell-descriptors/{_b64(one.passport_id)}", token)
    assert status == 200 and by_id == shell
    status, submodels = await _get(
        http, f"{endpoint}/shell-descriptors/{_b64(one.passport_id)}/submodel-descriptors", token
    )
    assert status == 200 and submodels["result"] == shell["submodelDescriptors"]
    assert_valid("GetSubmodelDescriptorsResult", submodels)
    battery_pass = next(
        d
        for d in shell["submodelDescriptors"]
        if d["semanticId"]["keys"][0]["value"].endswith("battery_pass:6.1.0#BatteryPass")
    )
    status, single = await _get(
        http,
        f"{endpoint}/shell-descriptors/{_b64(one.passport_id)}/submodel-descriptors/{_b64(battery_pass['id'])}",
        token,
    )
    assert status == 200 and single == battery_pass
    assert_valid("SubmodelDescriptor", single)

    # Lookups by partInstanceId: POST (a list of links) and the GET form (base64url SpecificAssetId JSON).
    links = [{"name": "partInstanceId", "value": one.battery_id}, {"name": "digitalTwinType", "value": "PartInstance"}]
    status, found = await _post(http, endpoint + "/lookup/shellsByAssetLink", token, links)
    assert status == 200, found
    assert found == {"paging_metadata": {}, "result": [one.passport_id]}
    status, found = await _get(
        http,
        endpoint + "/lookup/shells",
        token,
        assetIds=_b64(json.dumps({"name": "partInstanceId", "value": one.battery_id})),
    )
    assert status == 200 and found["result"] == [one.passport_id]
    status, links_of = await _get(http, f"{endpoint}/lookup/shells/{_b64(one.passport_id)}", token)
    assert status == 200 and links_of == shell["specificAssetIds"]
    status, none = await _post(
        http, endpoint + "/lookup/shellsByAssetLink", token, [{"name": "partInstanceId", "value": "nope"}]
    )
    assert status == 200 and none["result"] == []

    # The submodel: negotiate the asset its first endpoint names, then read href and href/$value.
    endpoint_info = battery_pass["endpoints"][0]
    assert endpoint_info["interface"] == "SUBMODEL-3.0"
    protocol = endpoint_info["protocolInformation"]
    assert protocol["subprotocol"] == "DSP"
    body = wire.parse_subprotocol_body(protocol["subprotocolBody"])
    assert body["dspEndpoint"] == space.provider.settings.dsp_base_url
    id_filter = {"operandLeft": "https://w3id.org/edc/v0.0.1/ns/id", "operator": "=", "operandRight": body["id"]}
    (submodel_dataset,) = await _catalog(space.member, space.provider, http, id_filter)
    sub_endpoint, sub_token = await _edr(space.member, space.provider, http, submodel_dataset)
    assert protocol["href"].startswith(sub_endpoint + "/")
    status, payload = await _get(http, protocol["href"], sub_token)
    assert status == 200, payload
    assert payload == model.view_catenax(one, {"public"})
    status, value = await _get(http, protocol["href"] + "/$value", sub_token)
    assert status == 200 and value == payload
    # The token of the submodel asset reads that part only; the registry's token reads no submodel.
    other_part = next(d for d in shell["submodelDescriptors"] if d is not battery_pass)
    status, refused = await _get(http, other_part["endpoints"][0]["protocolInformation"]["href"], sub_token)
    assert status == 404 and refused["messages"][0]["messageType"] == "Error"
    status, refused = await _get(http, protocol["href"], token)
    assert status == 404


async def test_specific_asset_ids_are_visible_only_to_the_bpns_named(
    node_factory: NodeFactory, http: aiohttp.ClientSession, tmp_path: Path
) -> None:
    space = await _dataspace(node_factory, http, tmp_path, count=2)
    one = model.parse_passport(space.documents[0])
    member_endpoint, member_token = await _registry(space, http, space.member)
    other_endpoint, other_token = await _registry(space, http, space.other)
    link = [{"name": "partInstanceId", "value": one.battery_id}]

    status, seen = await _get(http, member_endpoint + "/shell-descriptors", member_token)
    assert status == 200 and len(seen["result"]) == 2
    status, unseen = await _get(http, other_endpoint + "/shell-descriptors", other_token)
    assert status == 200 and unseen["result"] == []  # its BPN is named on no specific asset id
    status, missing = await _get(http, f"{other_endpoint}/shell-descriptors/{_b64(one.passport_id)}", other_token)
    assert status == 404 and missing["messages"][0]["code"] == "404"
    assert_valid("Result", missing)
    assert (await _post(http, other_endpoint + "/lookup/shellsByAssetLink", other_token, link))[1]["result"] == []
    found = await _post(http, member_endpoint + "/lookup/shellsByAssetLink", member_token, link)
    assert found[1]["result"] == [one.passport_id]


async def test_public_readable_ids_show_the_allowed_names_without_the_global_asset_id(
    node_factory: NodeFactory, http: aiohttp.ClientSession, tmp_path: Path
) -> None:
    space = await _dataspace(
        node_factory,
        http,
        tmp_path,
        count=2,
        registry_readers="PUBLIC_READABLE",
        registry_public_names="manufacturerPartId",
    )
    one = model.parse_passport(space.documents[0])
    endpoint, token = await _registry(space, http, space.other)
    status, shell = await _get(http, f"{endpoint}/shell-descriptors/{_b64(one.passport_id)}", token)
    assert status == 200, shell
    assert [i["name"] for i in shell["specificAssetIds"]] == ["manufacturerPartId"]
    assert "globalAssetId" not in shell and "idShort" not in shell and shell["submodelDescriptors"]
    # Only what it may see can be looked up.
    by_model = [{"name": "manufacturerPartId", "value": one.model_id}]
    found = await _post(http, endpoint + "/lookup/shellsByAssetLink", token, by_model)
    assert one.passport_id in found[1]["result"]
    by_serial = [{"name": "partInstanceId", "value": one.battery_id}]
    assert (await _post(http, endpoint + "/lookup/shellsByAssetLink", token, by_serial))[1]["result"] == []


async def test_paging_created_after_and_changes_are_seen_at_once(
    node_factory: NodeFactory, http: aiohttp.ClientSession, tmp_path: Path
) -> None:
    space = await _dataspace(node_factory, http, tmp_path, count=5)
    endpoint, token = await _registry(space, http, space.member)
    seen: list[str] = []
    cursor: str | None = None
    pages = 0
    while True:
        params: dict[str, Any] = {"limit": 2, **({"cursor": cursor} if cursor else {})}
        status, page = await _get(http, endpoint + "/shell-descriptors", token, **params)
        assert status == 200, page
        assert len(page["result"]) <= 2
        seen += [s["id"] for s in page["result"]]
        pages += 1
        cursor = page["paging_metadata"].get("cursor")
        if not cursor:
            break
    assert pages == 3 and len(seen) == len(set(seen)) == 5

    created = sorted(s["createdAt"] for s in (await _get(http, endpoint + "/shell-descriptors", token))[1]["result"])
    status, none = await _get(http, endpoint + "/shell-descriptors", token, createdAfter=created[-1])
    assert status == 200 and none["result"] == []
    status, bad = await _get(http, endpoint + "/shell-descriptors", token, createdAfter="yesterday")
    assert status == 400 and "createdAfter" in bad["messages"][0]["text"]
    status, bad = await _get(http, endpoint + "/shell-descriptors", token, cursor="not-a-cursor")
    assert status == 400
    status, bad = await _get(http, endpoint + "/lookup/shells", token, assetIds="{ invalid }")
    assert status == 400 and bad["messages"][0]["text"] == wire.BAD_BASE64

    status, bad = await _get(http, endpoint + "/shell-descriptors", token, limit=0)
    assert status == 400 and "limit" in bad["messages"][0]["text"]
    status, bad = await _get(http, endpoint + "/shell-descriptors/%%%", token)
    assert status == 400 and "aasIdentifier" in bad["messages"][0]["text"]
    status, bad = await _get(http, endpoint + "/no-such-resource", token)
    assert status == 404 and "/shell-descriptors" in bad["messages"][0]["text"]
    status, bad = await _get(http, endpoint + "/lookup/shellsByAssetLink", token)
    assert status == 405
    async with http.post(
        endpoint + "/lookup/shellsByAssetLink", headers={"Authorization": token}, data=b"{not json"
    ) as response:
        assert response.status == 400 and "not JSON" in (await response.json())["messages"][0]["text"]
    status, bad = await _post(http, endpoint + "/lookup/shellsByAssetLink", token, {"name": "partInstanceId"})
    assert status == 400 and "JSON array" in bad["messages"][0]["text"]
    assert_valid("Result", bad)

    # A new passport is a new shell, after the last createdAfter; a deleted one is gone from the registry.
    api = Management(http, space.provider)
    fresh = model.generate(99)
    assert (await api.call("POST", V1, fresh))[0] == 201
    status, new = await _get(http, endpoint + "/shell-descriptors", token, createdAfter=created[-1])
    assert [s["id"] for s in new["result"]] == [model.parse_passport(fresh).passport_id]
    gone = seen[0]
    assert (await api.call("DELETE", f"{V1}/{gone}"))[0] == 204
    status, _ = await _get(http, f"{endpoint}/shell-descriptors/{_b64(gone)}", token)
    assert status == 404
    listed = (await _get(http, endpoint + "/shell-descriptors", token))[1]["result"]
    assert gone not in [s["id"] for s in listed] and len(listed) == 5


async def test_a_created_after_poll_waits_for_the_settle_time(
    node_factory: NodeFactory, http: aiohttp.ClientSession, tmp_path: Path
) -> None:
    space = await _dataspace(node_factory, http, tmp_path, count=1, registry_settle_seconds=3600)
    endpoint, token = await _registry(space, http, space.member)
    status, listed = await _get(http, endpoint + "/shell-descriptors", token)
    assert status == 200 and len(listed["result"]) == 1  # a plain listing shows everything committed
    status, polled = await _get(http, endpoint + "/shell-descriptors", token, createdAfter="2000-01-01T00:00:00Z")
    assert status == 200 and polled["result"] == []  # created less than the settle time ago


async def test_publishing_twice_makes_the_registry_once(
    node_factory: NodeFactory, http: aiohttp.ClientSession, tmp_path: Path
) -> None:
    space = await _dataspace(node_factory, http, tmp_path, count=1)
    api = Management(http, space.provider)
    status, again = await api.call("POST", f"{V1}/publish", {})
    assert status == 200 and again == {"assets": [], "policyDefinitions": [], "contractDefinitions": []}
    status, assets = await api.call("POST", "/management/v3/assets/request", {"@context": EDC_CONTEXT, "limit": 1000})
    ids = [a["@id"] for a in assets]
    assert ids.count(wire.DTR_ASSET_ID) == 1
    assert sum(1 for i in ids if i.startswith("passport-submodel-")) == len(wire.PARTS) * len(LEVELS)
