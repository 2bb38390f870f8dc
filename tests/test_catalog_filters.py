"""A catalog request's querySpec.filterExpression, from a consumer's management API to a provider's DSP catalog.

The consumer passes the filter in the CatalogRequestMessage as EDC does (its QuerySpec, in EDC's terms); the
provider applies it to its datasets' public properties and ids, keeps paging, and refuses (naming it) only
what it cannot evaluate.
"""

from __future__ import annotations

from typing import Any

import aiohttp

from connector.app import Node
from tests import dsp_schemas
from tests.conftest import API_KEY, EDC_CONTEXT, ODRL_CONTEXT, Management, NodeFactory

DTR_TYPE = "https://w3id.org/catenax/taxonomy#DigitalTwinRegistry"
DSP_CONTEXT = "https://w3id.org/dspace/2025/1/context.jsonld"


async def _publish(provider: Node, http: aiohttp.ClientSession) -> None:
    """Two registries and three other datasets, offered to anyone; one private property that must stay private."""
    api = Management(http, provider)
    sdk_context = {
        "edc": "https://w3id.org/edc/v0.0.1/ns/",
        "cx-common": "https://w3id.org/catenax/ontology/common#",
        "cx-taxo": "https://w3id.org/catenax/taxonomy#",
        "dct": "http://purl.org/dc/terms/",
    }
    for asset_id, kind in (
        ("dtr-1", DTR_TYPE),
        ("dtr-2", DTR_TYPE),
        ("sub-1", "https://w3id.org/catenax/taxonomy#Submodel"),
    ):
        # As the Tractus-X SDK creates them: a context without @vocab, dct:type as a node reference.
        body = {
            "@context": sdk_context,
            "@id": asset_id,
            "properties": {"dct:type": {"@id": kind}, "cx-common:version": "3.0"},
            "privateProperties": {},
            "dataAddress": {"type": "HttpData", "baseUrl": "https://backend.example/" + asset_id},
        }
        status, answer = await api.call("POST", "/management/v3/assets", body)
        assert status == 200, answer
    for asset_id in ("plain-1", "plain-2"):
        body = {
            "@context": EDC_CONTEXT,
            "@id": asset_id,
            "properties": {"name": asset_id},
            "privateProperties": {"secretLabel": "internal"},
            "dataAddress": {"type": "HttpData", "baseUrl": "https://backend.example/" + asset_id},
        }
        assert (await api.call("POST", "/management/v3/assets", body))[0] == 200
    policy = {"@context": EDC_CONTEXT, "@id": "open", "policy": {"@context": ODRL_CONTEXT, "@type": "Set"}}
    assert (await api.call("POST", "/management/v3/policydefinitions", policy))[0] == 200
    definition = {
        "@context": EDC_CONTEXT,
        "@id": "cd-all",
        "accessPolicyId": "open",
        "contractPolicyId": "open",
        "assetsSelector": [],
    }
    assert (await api.call("POST", "/management/v3/contractdefinitions", definition))[0] == 200


def _ids(catalog: dict[str, Any]) -> list[str]:
    datasets = catalog.get("dcat:dataset", catalog.get("dataset", []))
    return sorted(d["@id"] for d in (datasets if isinstance(datasets, list) else [datasets]))


def _sdk_catalog_request(provider: Node, **spec: Any) -> dict[str, Any]:
    """The Tractus-X SDK's catalog request (research §8), `dct` mistyped as https as the SDK has it."""
    return {
        "@context": {
            "edc": "https://w3id.org/edc/v0.0.1/ns/",
            "odrl": "http://www.w3.org/ns/odrl/2/",
            "dct": "https://purl.org/dc/terms/",
        },
        "@type": "CatalogRequest",
        "counterPartyAddress": provider.settings.dsp_base_url,
        "counterPartyId": provider.settings.effective_did,
        "protocol": "dataspace-protocol-http:2025-1",
        "additionalScopes": [],
        "querySpec": {"@context": {"@vocab": "https://w3id.org/edc/v0.0.1/ns/"}, "@type": "QuerySpec", **spec},
    }


async def test_a_consumers_filter_expression_selects_the_providers_datasets(
    node_factory: NodeFactory, http: aiohttp.ClientSession
) -> None:
    provider = await node_factory(api_key=API_KEY)
    consumer = await node_factory(api_key=API_KEY)
    await _publish(provider, http)
    api = Management(http, consumer)
    by_type = {"operandLeft": "'http://purl.org/dc/terms/type'.'@id'", "operator": "=", "operandRight": DTR_TYPE}
    status, catalog = await api.call(
        "POST", "/management/v3/catalog/request", _sdk_catalog_request(provider, filterExpression=[by_type])
    )
    assert status == 200, catalog
    assert _ids(catalog) == ["dtr-1", "dtr-2"]

    # The same filter written as a plain key, and one on the id (EDC's asset id property), and v4's Criterion.
    for criterion, expected in (
        (
            {"operandLeft": "http://purl.org/dc/terms/type", "operator": "=", "operandRight": DTR_TYPE},
            ["dtr-1", "dtr-2"],
        ),
        (
            {"operandLeft": "https://w3id.org/edc/v0.0.1/ns/id", "operator": "in", "operandRight": ["sub-1", "x"]},
            ["sub-1"],
        ),
        (
            {"operandLeft": "https://w3id.org/catenax/ontology/common#version", "operator": "=", "operandRight": "3.0"},
            ["dtr-1", "dtr-2", "sub-1"],
        ),
        ({"operandLeft": "name", "operator": "like", "operandRight": "plain-%"}, ["plain-1", "plain-2"]),
    ):
        status, catalog = await api.call(
            "POST", "/management/v3/catalog/request", _sdk_catalog_request(provider, filterExpression=[criterion])
        )
        assert status == 200, catalog
        assert _ids(catalog) == expected, criterion
    v4 = {
        "@context": ["https://w3id.org/edc/connector/management/v2"],
        "@type": "CatalogRequest",
        "counterPartyAddress": provider.settings.dsp_base_url,
        "counterPartyId": provider.settings.effective_did,
        "protocol": "dataspace-protocol-http:2025-1",
        "querySpec": {"@type": "QuerySpec", "filterExpression": [{"@type": "Criterion", **by_type}]},
    }
    status, catalog = await api.call("POST", "/management/v4/catalog/request", v4)
    assert status == 200, catalog
    assert _ids(catalog) == ["dtr-1", "dtr-2"]

    # A private property is never matched: a filter must not tell a consumer what the provider keeps private.
    private = {"operandLeft": "secretLabel", "operator": "=", "operandRight": "internal"}
    status, catalog = await api.call(
        "POST", "/management/v3/catalog/request", _sdk_catalog_request(provider, filterExpression=[private])
    )
    assert status == 200 and _ids(catalog) == [], catalog


async def test_the_filter_keeps_paging_and_refuses_what_cannot_be_evaluated(
    node_factory: NodeFactory, http: aiohttp.ClientSession
) -> None:
    provider = await node_factory(api_key=API_KEY)
    consumer = await node_factory(api_key=API_KEY)
    await _publish(provider, http)
    url = provider.settings.dsp_base_url + "/catalog/request"

    async def ask(body: Any, target: str = url) -> tuple[int, Any, str | None]:
        headers = {"Authorization": consumer.identity.token_for(provider.settings.effective_did)}
        async with http.post(target, json=body, headers=headers) as response:
            return response.status, await response.json(content_type=None), response.headers.get("Link")

    # What an EDC consumer sends: the QuerySpec in EDC's terms, EDC's own context beside the DSP one.
    by_type = {"@type": "Criterion", "operandLeft": "'http://purl.org/dc/terms/type'.'@id'", "operator": "="}
    spec = {"@type": "QuerySpec", "offset": 0, "limit": 1, "sortOrder": "ASC"}
    message = {
        "@context": [DSP_CONTEXT, "https://w3id.org/edc/dspace/v0.0.1"],
        "@type": "CatalogRequestMessage",
        "filter": [{**spec, "filterExpression": [{**by_type, "operandRight": DTR_TYPE}]}],
    }
    status, first, link = await ask(message)
    assert status == 200, first
    dsp_schemas.validate(first, "catalog/catalog-schema.json")
    assert [d["@id"] for d in first["dataset"]] == ["dtr-1"]
    assert link is not None and 'rel="next"' in link
    # The next page is of the same filter: the token carries it.
    status, second, link = await ask(
        {"@context": [DSP_CONTEXT], "@type": "CatalogRequestMessage"}, link.split(";")[0].strip("<> ")
    )
    assert status == 200 and [d["@id"] for d in second["dataset"]] == ["dtr-2"], second
    assert link is not None and 'rel="next"' not in link

    # The terms may also come edc:-prefixed or as full IRIs.
    edc = "https://w3id.org/edc/v0.0.1/ns/"
    expanded = {
        "@type": edc + "QuerySpec",
        edc + "filterExpression": [
            {edc + "operandLeft": edc + "id", edc + "operator": "=", edc + "operandRight": "plain-2"}
        ],
    }
    status, found, _ = await ask({**message, "filter": [expanded]})
    assert status == 200 and [d["@id"] for d in found["dataset"]] == ["plain-2"], found

    for criterion, names in (
        ({**by_type, "operandLeft": "'http://purl.org/dc/terms/type'.'deeper'.'x'", "operandRight": "y"}, "'deeper'"),
        ({**by_type, "operator": "matches", "operandRight": "y"}, "operator must be one of"),
        ({**by_type, "operandRight": {"nested": {"object": 1}}}, "is not a single value"),
        ({**by_type, "operandRight": ["a", "b"]}, "use 'in'"),
        ({"operandLeft": "createdAt", "operator": "=", "operandRight": "yesterday"}, "createdAt is compared"),
        ({"operator": "=", "operandRight": "x"}, "operandLeft must be"),
    ):
        status, error, _ = await ask({**message, "filter": [{**spec, "filterExpression": [criterion]}]})
        assert status == 400, (criterion, error)
        assert error["@type"] == "CatalogError"
        dsp_schemas.validate(error, "catalog/catalog-error-schema.json")
        text = " ".join(error["reason"])
        assert "filter[0].filterExpression[0]" in text and names in text, text
