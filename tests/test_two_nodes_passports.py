"""A recycler's node pulls battery passports from a maker's node through the data plane, under a
legitimate-interest agreement, and receives the fields of that level and no authority-only field."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import aiohttp

from connector.domain import passport as model
from tests.conftest import API_KEY, EDC_CONTEXT, Management, NodeFactory
from tests.test_two_nodes_catalog import _grant_role, _provider
from tests.test_two_nodes_transfer import _pull_request, _wait, _wait_for_end

V1 = "/management/v1/passports"


async def _negotiate(consumer_api: Management, provider: Any, dataset_id: str) -> str:
    body = {
        "@context": EDC_CONTEXT,
        "@type": "CatalogRequest",
        "counterPartyAddress": provider.settings.dsp_base_url,
        "counterPartyId": provider.settings.effective_did,
        "protocol": "dataspace-protocol-http:2025-1",
    }
    status, catalog = await consumer_api.call("POST", "/management/v3/catalog/request", body)
    assert status == 200, catalog
    datasets = catalog["dcat:dataset"]
    datasets = datasets if isinstance(datasets, list) else [datasets]
    dataset = next(d for d in datasets if d["@id"] == dataset_id)
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
            "odrl:target": {"@id": dataset_id},
        },
    }
    status, created = await consumer_api.call("POST", "/management/v3/contractnegotiations", request)
    assert status == 200, created
    negotiation = await _wait(consumer_api, f"/management/v3/contractnegotiations/{created['@id']}", {"FINALIZED"})
    return str(negotiation["contractAgreementId"])


async def _pull(consumer_api: Management, provider: Any, agreement_id: str) -> tuple[str, str]:
    request = _pull_request(provider, agreement_id)
    async with asyncio.timeout(20):
        while True:  # the provider finalizes once our verification is acknowledged
            status, created = await consumer_api.call("POST", "/management/v3/transferprocesses", request)
            assert status == 200, created
            done = await _wait_for_end(consumer_api, created["@id"], ("STARTED", "TERMINATED"))
            if done["state"] == "STARTED":
                break
            await asyncio.sleep(0.2)
    status, address = await consumer_api.call("GET", f"/management/v3/edrs/{created['@id']}/dataaddress")
    assert status == 200, address
    return str(address["endpoint"]), str(address["authorization"])


async def test_a_legitimate_interest_consumer_pulls_exactly_its_level(
    node_factory: NodeFactory, http: aiohttp.ClientSession, tmp_path: Path
) -> None:
    from connector.identity import issuer

    maker, issuer_dir = await _provider(node_factory, tmp_path)
    maker_api = Management(http, maker)
    documents = [model.generate(i) for i in range(15)]
    assert (await maker_api.call("POST", f"{V1}/import", documents))[1]["new"] == 15
    assert (await maker_api.call("POST", f"{V1}/publish", {}))[0] == 200
    model_id = model.parse_passport(documents[0]).model_id
    of_model = [model.parse_passport(d) for d in documents if d["identity"]["model_id"] == model_id]

    recycler = await node_factory(api_key=API_KEY, trusted_issuers=issuer.load_registry(issuer_dir).did)
    recycler_api = Management(http, recycler)
    jwt, _ = _grant_role(issuer_dir, recycler.settings.effective_did, "recycler")
    assert (await recycler_api.call("POST", "/management/v1/credentials", {"credential": jwt}))[0] == 200

    agreement = await _negotiate(recycler_api, maker, f"passports-{model_id}-legitimate-interest")
    endpoint, token = await _pull(recycler_api, maker, agreement)

    async with http.get(endpoint + "?limit=2", headers={"Authorization": token}) as response:
        assert response.status == 200, await response.text()
        first = await response.json()
    assert first["accessLevel"] == "legitimate_interest" and len(first["passports"]) == 2 and first["next"]
    async with http.get(endpoint + f"?limit=100&cursor={first['next']}", headers={"Authorization": token}) as response:
        rest = await response.json()
    got = first["passports"] + rest["passports"]
    assert sorted(p["identity"]["passport_id"] for p in got) == sorted(p.passport_id for p in of_model)
    for view in got:
        assert "condition" in view and "dismantling" in view  # Annex XIII points 4 and 2
        assert "test_reports" not in view  # point 3: authorities only

    one = of_model[0]
    async with http.get(f"{endpoint}/{one.passport_id}", headers={"Authorization": token}) as response:
        assert response.status == 200
        assert await response.json() == model.view(one, {"legitimate_interest"})
    other_model = next(model.parse_passport(d) for d in documents if d["identity"]["model_id"] != model_id)
    async with http.get(f"{endpoint}/{other_model.passport_id}", headers={"Authorization": token}) as response:
        assert response.status == 404  # not in this dataset
    async with http.get(f"{endpoint}?format=catenax&limit=1", headers={"Authorization": token}) as response:
        assert response.status == 200
    async with http.post(endpoint, headers={"Authorization": token}) as response:
        assert response.status == 405

    # The authority dataset is not for a recycler: its negotiation is refused.
    body = {
        "@context": EDC_CONTEXT,
        "@type": "CatalogRequest",
        "counterPartyAddress": maker.settings.dsp_base_url,
        "counterPartyId": maker.settings.effective_did,
        "protocol": "dataspace-protocol-http:2025-1",
    }
    _status, catalog = await recycler_api.call("POST", "/management/v3/catalog/request", body)
    datasets = catalog["dcat:dataset"] if isinstance(catalog["dcat:dataset"], list) else [catalog["dcat:dataset"]]
    assert not any(d["@id"].endswith("-authority") for d in datasets)
