"""The EDC-compatible management API on a real node: resources, status codes, errors, limits, auth."""

from __future__ import annotations

import logging
from typing import Any

import pytest

from connector import logs
from tests.conftest import API_KEY, EDC_CONTEXT, ODRL_CONTEXT, Management

EDC = "https://w3id.org/edc/v0.0.1/ns/"


def asset_body(asset_id: str | None = "asset-1", **properties: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "@context": EDC_CONTEXT,
        "@type": "Asset",
        "properties": {"name": "Passports of model X", "contenttype": "application/json", **properties},
        "privateProperties": {"internalTag": "plant-7"},
        "dataAddress": {
            "@type": "DataAddress",
            "type": "HttpData",
            "baseUrl": "https://backend.example.com/passports",
            "proxyPath": "true",
            "authKey": "Authorization",
            "authCode": "Bearer very-secret-backend-token",
        },
    }
    if asset_id is not None:
        body["@id"] = asset_id
    return body


def policy_body(policy_id: str = "policy-1", permissions: list[Any] | None = None) -> dict[str, Any]:
    return {
        "@context": EDC_CONTEXT,
        "@type": "PolicyDefinition",
        "@id": policy_id,
        "policy": {
            "@context": ODRL_CONTEXT,
            "@type": "Set",
            "permission": permissions if permissions is not None else [{"action": "use"}],
        },
    }


def contract_body(contract_id: str = "cd-1", access: str = "policy-1", usage: str = "policy-1") -> dict[str, Any]:
    return {
        "@context": EDC_CONTEXT,
        "@type": "ContractDefinition",
        "@id": contract_id,
        "accessPolicyId": access,
        "contractPolicyId": usage,
        "assetsSelector": [{"operandLeft": EDC + "id", "operator": "=", "operandRight": "asset-1"}],
    }


async def test_asset_lifecycle(management: Management) -> None:
    status, created = await management.call("POST", "/management/v3/assets", asset_body())
    assert status == 200
    assert created["@id"] == "asset-1" and created["@type"] == "IdResponse"
    assert isinstance(created["createdAt"], int) and created["createdAt"] > 1_700_000_000_000

    status, asset = await management.call("GET", "/management/v3/assets/asset-1")
    assert status == 200
    assert asset["@id"] == "asset-1"
    assert asset["properties"]["name"] == "Passports of model X"
    assert asset["properties"]["id"] == "asset-1"
    assert asset["privateProperties"] == {"internalTag": "plant-7"}
    assert asset["dataAddress"]["type"] == "HttpData"
    assert asset["dataAddress"]["baseUrl"] == "https://backend.example.com/passports"
    assert asset["@context"]["@vocab"] == EDC

    updated = asset_body(name="Renamed")
    status, _ = await management.call("PUT", "/management/v3/assets", updated)
    assert status == 204
    status, asset = await management.call("GET", "/management/v3/assets/asset-1")
    assert asset["properties"]["name"] == "Renamed"
    assert asset["createdAt"] == created["createdAt"]

    status, _ = await management.call("DELETE", "/management/v3/assets/asset-1")
    assert status == 204
    status, problem = await management.call("GET", "/management/v3/assets/asset-1")
    assert status == 404
    assert "asset-1" in problem["detail"]


async def test_secrets_are_never_echoed_nor_logged(management: Management, caplog: pytest.LogCaptureFixture) -> None:
    logs.quiet_libraries()
    caplog.set_level(logging.DEBUG)
    await management.call("POST", "/management/v3/assets", asset_body())
    _, asset = await management.call("GET", "/management/v3/assets/asset-1")
    _, listed = await management.call("POST", "/management/v3/assets/request")
    for shown in (asset, listed):
        text = str(shown)
        assert "very-secret-backend-token" not in text
        assert "authCode" not in text and "authKey" not in text
    assert "very-secret-backend-token" not in caplog.text
    assert API_KEY not in caplog.text


async def test_id_is_generated_when_absent(management: Management) -> None:
    status, created = await management.call("POST", "/management/v3/assets", asset_body(asset_id=None))
    assert status == 200
    status, asset = await management.call("GET", f"/management/v3/assets/{created['@id']}")
    assert status == 200 and asset["@id"] == created["@id"]


async def test_duplicate_ids_conflict(management: Management) -> None:
    assert (await management.call("POST", "/management/v3/assets", asset_body()))[0] == 200
    status, problem = await management.call("POST", "/management/v3/assets", asset_body())
    assert status == 409
    assert problem["errors"][0]["type"] == "ObjectConflict"
    assert (await management.call("POST", "/management/v3/policydefinitions", policy_body()))[0] == 200
    assert (await management.call("POST", "/management/v3/policydefinitions", policy_body()))[0] == 409


async def test_policy_definition_round_trip(management: Management) -> None:
    permissions = [
        {
            "action": "use",
            "constraint": {
                "leftOperand": "https://w3id.org/edc/v0.0.1/ns/inForceDate",
                "operator": "gteq",
                "rightOperand": {"@value": "2026-01-01T00:00:00Z", "@type": "xsd:dateTime"},
            },
        }
    ]
    status, _ = await management.call("POST", "/management/v3/policydefinitions", policy_body(permissions=permissions))
    assert status == 200
    status, definition = await management.call("GET", "/management/v3/policydefinitions/policy-1")
    assert status == 200
    policy = definition["policy"]
    assert policy["@type"] == "odrl:Set"
    permission = policy["odrl:permission"][0]
    assert permission["odrl:action"] == {"@id": "odrl:use"}
    constraint = permission["odrl:constraint"]
    assert constraint["odrl:leftOperand"] == {"@id": "edc:inForceDate"}
    assert constraint["odrl:operator"] == {"@id": "odrl:gteq"}
    assert constraint["odrl:rightOperand"]["@value"] == "2026-01-01T00:00:00Z"
    assert policy["odrl:prohibition"] == [] and policy["odrl:obligation"] == []
    assert isinstance(definition["createdAt"], int)

    replacement = policy_body(permissions=[{"action": "use"}])
    assert (await management.call("PUT", "/management/v3/policydefinitions/policy-1", replacement))[0] == 204
    _, definition = await management.call("GET", "/management/v3/policydefinitions/policy-1")
    assert "odrl:constraint" not in definition["policy"]["odrl:permission"][0]


async def test_contract_definition_needs_existing_policies(management: Management) -> None:
    status, problem = await management.call("POST", "/management/v3/contractdefinitions", contract_body(access="nope"))
    assert status == 400
    paths = {e["path"] for e in problem["errors"]}
    assert {"accessPolicyId", "contractPolicyId"} <= paths
    assert "nope" in problem["detail"] or "policy-1" in problem["detail"]
    _, listed = await management.call("POST", "/management/v3/contractdefinitions/request")
    assert listed == []


async def test_contract_definition_lifecycle_and_referenced_policy(management: Management) -> None:
    await management.call("POST", "/management/v3/policydefinitions", policy_body())
    status, _ = await management.call("POST", "/management/v3/contractdefinitions", contract_body())
    assert status == 200
    status, definition = await management.call("GET", "/management/v3/contractdefinitions/cd-1")
    assert status == 200
    assert definition["accessPolicyId"] == "policy-1"
    assert definition["assetsSelector"] == [
        {"@type": "Criterion", "operandLeft": EDC + "id", "operator": "=", "operandRight": "asset-1"}
    ]
    status, problem = await management.call("DELETE", "/management/v3/policydefinitions/policy-1")
    assert status == 409
    assert "cd-1" in problem["detail"]
    assert (await management.call("DELETE", "/management/v3/contractdefinitions/cd-1"))[0] == 204
    assert (await management.call("DELETE", "/management/v3/policydefinitions/policy-1"))[0] == 204


async def test_query_spec_filters_sorts_and_pages(management: Management) -> None:
    for i, model in enumerate(["X", "Y", "X", "Z", "X"]):
        body = asset_body(f"a{i}", batteryModel=model, capacity=10 * i)
        assert (await management.call("POST", "/management/v3/assets", body))[0] == 200

    async def ids(spec: dict[str, Any] | None) -> list[str]:
        status, found = await management.call("POST", "/management/v3/assets/request", spec)
        assert status == 200, found
        return [a["@id"] for a in found]

    assert await ids(None) == ["a0", "a1", "a2", "a3", "a4"]
    spec = {
        "@context": EDC_CONTEXT,
        "filterExpression": [{"operandLeft": "batteryModel", "operator": "=", "operandRight": "X"}],
    }
    assert await ids(spec) == ["a0", "a2", "a4"]
    spec = {
        "@context": EDC_CONTEXT,
        "offset": 1,
        "limit": 1,
        "sortOrder": "DESC",
        "filterExpression": spec["filterExpression"],
    }
    assert await ids(spec) == ["a2"]
    spec = {
        "@context": EDC_CONTEXT,
        "filterExpression": [{"operandLeft": "capacity", "operator": ">=", "operandRight": 20}],
    }
    assert await ids(spec) == ["a2", "a3", "a4"]
    spec = {
        "@context": EDC_CONTEXT,
        "filterExpression": [{"operandLeft": EDC + "id", "operator": "in", "operandRight": ["a1", "a3"]}],
    }
    assert await ids(spec) == ["a1", "a3"]
    spec = {
        "@context": EDC_CONTEXT,
        "filterExpression": [{"operandLeft": "name", "operator": "like", "operandRight": "Passports%"}],
    }
    assert len(await ids(spec)) == 5
    # No @context: read with the EDC vocabulary, as EDC's generated clients send it.
    assert await ids({"@type": "QuerySpec", "offset": 0, "limit": 2}) == ["a0", "a1"]
    spec = {"sortField": "createdAt", "sortOrder": "DESC", "limit": 1}
    assert len(await ids(spec)) == 1


@pytest.mark.parametrize(
    ("spec", "path"),
    [
        ({"limit": 0}, "limit"),
        ({"offset": -1}, "offset"),
        ({"limit": "many"}, "limit"),
        ({"sortOrder": "SIDEWAYS"}, "sortOrder"),
        (
            {"filterExpression": [{"operandLeft": "x", "operator": "~", "operandRight": 1}]},
            "filterExpression[0].operator",
        ),
        ({"filterExpression": [{"operator": "=", "operandRight": 1}]}, "filterExpression[0].operandLeft"),
    ],
)
async def test_invalid_query_spec_names_the_field(management: Management, spec: dict[str, Any], path: str) -> None:
    status, problem = await management.call("POST", "/management/v3/assets/request", spec)
    assert status == 400
    assert path in [e["path"] for e in problem["errors"]], problem


async def test_unknown_filter_field_on_definitions_is_refused(management: Management) -> None:
    spec = {"filterExpression": [{"operandLeft": "colour", "operator": "=", "operandRight": "red"}]}
    status, problem = await management.call("POST", "/management/v3/contractdefinitions/request", spec)
    assert status == 400
    assert "colour" in problem["detail"] and "accessPolicyId" in problem["detail"]


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        ({"@context": EDC_CONTEXT, "@id": "a", "properties": {}}, "dataAddress"),
        ({"@context": EDC_CONTEXT, "@id": "a", "dataAddress": "HttpData"}, "dataAddress"),
        ({"@context": EDC_CONTEXT, "@id": "a", "dataAddress": {"type": "HttpData"}}, "baseUrl"),
        ({"@context": EDC_CONTEXT, "@id": "a", "dataAddress": {"type": "Ftp", "baseUrl": "ftp://x"}}, "Ftp"),
        (
            {
                "@context": EDC_CONTEXT,
                "@id": "has space",
                "dataAddress": {"type": "HttpData", "baseUrl": "http://x"},
            },
            "@id",
        ),
        (
            {"@context": EDC_CONTEXT, "@id": 7, "dataAddress": {"type": "HttpData", "baseUrl": "http://x"}},
            "@id",
        ),
        (
            {
                "@context": EDC_CONTEXT,
                "@id": "a",
                "dataAddress": {"type": "HttpData", "baseUrl": "http://x", "proxyPath": "maybe"},
            },
            "proxyPath",
        ),
        (
            {
                "@context": EDC_CONTEXT,
                "@id": "a",
                "dataAddress": {"type": "BatteryPassport", "accessLevel": "secret"},
            },
            "accessLevel",
        ),
        (
            {
                "@context": EDC_CONTEXT,
                "@id": "a",
                "dataAddress": {"type": "BatteryPassport", "proxyPath": "__not_in_enum__"},
            },
            "proxyPath",
        ),
        ({"@context": "https://evil.example.com/context.jsonld", "@id": "a"}, "evil.example.com"),
        (["not", "an", "object"], "JSON object"),
    ],
)
async def test_invalid_asset_is_refused_with_a_reason(management: Management, body: Any, fragment: str) -> None:
    status, problem = await management.call("POST", "/management/v3/assets", body)
    assert status == 400, problem
    assert problem["status"] == 400 and problem["title"]
    assert fragment in str(problem), problem
    _, listed = await management.call("POST", "/management/v3/assets/request")
    assert listed == []


async def test_policy_definition_without_odrl_context_is_explained(management: Management) -> None:
    body = {
        "@context": EDC_CONTEXT,
        "@id": "p",
        "policy": {"@type": "Set", "permission": [{"action": "use"}]},
    }
    status, problem = await management.call("POST", "/management/v3/policydefinitions", body)
    assert status == 400
    assert "odrl:Set" in problem["detail"] and "ODRL context" in problem["detail"]


async def test_broken_json_is_refused(management: Management) -> None:
    status, problem = await management.call("POST", "/management/v3/assets", raw=b'{"@id": "a", ')
    assert status == 400
    assert "not valid JSON" in problem["detail"]


async def test_wrong_content_type_is_refused(management: Management) -> None:
    status, problem = await management.call(
        "POST",
        "/management/v3/assets",
        raw=b"@id=a",
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert status == 415
    assert "Content-Type" in problem["detail"]


async def test_ten_megabyte_body_is_refused_before_it_is_read(management: Management) -> None:
    huge = b'{"@id": "a", "properties": {"blob": "' + b"x" * (10 * 1024 * 1024) + b'"}}'
    status, problem = await management.call("POST", "/management/v3/assets", raw=huge)
    assert status == 413
    assert "larger" in problem["detail"]
    _, listed = await management.call("POST", "/management/v3/assets/request")
    assert listed == []


async def test_oversized_chunked_body_is_refused(management: Management) -> None:
    async def chunks() -> Any:
        yield b'{"@id": "a", "properties": {"blob": "'
        for _ in range(40):
            yield b"x" * 262_144
        yield b'"}}'

    headers = {**management.headers, "Content-Type": "application/json"}
    async with management.http.post(
        management.base + "/management/v3/assets", data=chunks(), headers=headers
    ) as response:
        assert response.status == 413
        assert response.content_type == "application/problem+json"


async def test_deep_nesting_is_refused(management: Management) -> None:
    nested: Any = "leaf"
    for _ in range(200):
        nested = {"n": nested}
    body = asset_body()
    body["properties"]["deep"] = nested
    status, problem = await management.call("POST", "/management/v3/assets", body)
    assert status == 400
    assert "nested deeper" in problem["detail"]


async def test_failed_update_keeps_the_stored_object(management: Management) -> None:
    await management.call("POST", "/management/v3/assets", asset_body())
    broken = asset_body()
    broken["dataAddress"] = {"type": "HttpData"}
    assert (await management.call("PUT", "/management/v3/assets", broken))[0] == 400
    _, asset = await management.call("GET", "/management/v3/assets/asset-1")
    assert asset["dataAddress"]["baseUrl"] == "https://backend.example.com/passports"
    status, _ = await management.call("PUT", "/management/v3/assets", asset_body("missing"))
    assert status == 404


async def test_api_key_is_required(management: Management) -> None:
    anonymous = Management(management.http, type("N", (), {"management_url": management.base})(), api_key=None)  # type: ignore[arg-type]
    status, problem = await anonymous.call("GET", "/management/v3/assets/x")
    assert status == 401
    assert "X-Api-Key" in problem["detail"]
    wrong = Management(
        management.http, type("N", (), {"management_url": management.base})(), api_key="wrong-key-wrong-key"
    )  # type: ignore[arg-type]
    assert (await wrong.call("POST", "/management/v3/assets/request"))[0] == 401
    assert (await anonymous.call("GET", "/health"))[0] == 200
    assert (await anonymous.call("GET", "/management/openapi.json"))[0] == 200


async def test_errors_are_problem_json_with_request_id(management: Management) -> None:
    async with management.http.get(
        management.base + "/management/v3/nothing-here",
        headers={**management.headers, "X-Request-Id": "trace-42"},
    ) as response:
        assert response.status == 404
        assert response.content_type == "application/problem+json"
        assert response.headers["X-Request-Id"] == "trace-42"
        body = await response.json(content_type=None)
        assert body["instance"] == "urn:request:trace-42"
    async with management.http.patch(management.base + "/management/v3/assets", headers=management.headers) as response:
        assert response.status == 405
        assert response.content_type == "application/problem+json"


async def test_health_and_readiness(management: Management) -> None:
    assert await management.call("GET", "/health") == (200, {"status": "UP"})
    assert await management.call("GET", "/ready") == (200, {"status": "READY"})


@pytest.mark.parametrize(
    ("constraint", "path", "fragment"),
    [
        ({"leftOperand": "colour", "operator": "eq", "rightOperand": "red"}, "leftOperand", "unknown left operand"),
        ({"leftOperand": "purpose", "operator": "sameAs", "rightOperand": "x"}, "operator", "unknown operator"),
        (
            {"leftOperand": "dateTime", "operator": "lt", "rightOperandReference": "https://example.com/x"},
            "rightOperandReference",
            "rightOperandReference",
        ),
    ],
)
async def test_policy_the_engine_cannot_evaluate_is_refused(
    management: Management, constraint: dict[str, Any], path: str, fragment: str
) -> None:
    body = policy_body(permissions=[{"action": "use", "constraint": [constraint]}])
    status, problem = await management.call("POST", "/management/v3/policydefinitions", body)
    assert status == 400, problem
    assert problem["errors"][0]["path"] == f"policy.permission[0].constraint[0].{path}"
    assert fragment in problem["detail"]
    assert (await management.call("GET", "/management/v3/policydefinitions/policy-1"))[0] == 404


async def test_unknown_action_is_refused_and_known_operands_accepted(management: Management) -> None:
    status, problem = await management.call(
        "POST", "/management/v3/policydefinitions", policy_body(permissions=[{"action": "fly"}])
    )
    assert status == 400 and problem["errors"][0]["path"] == "policy.permission[0].action"
    accepted = [
        {
            "action": "use",
            "constraint": {
                "or": [
                    {"leftOperand": "purpose", "operator": "eq", "rightOperand": "recycling"},
                    {
                        "leftOperand": "https://w3id.org/catenax/policy/Membership",
                        "operator": "eq",
                        "rightOperand": "active",
                    },
                ]
            },
        }
    ]
    assert (await management.call("POST", "/management/v3/policydefinitions", policy_body(permissions=accepted)))[
        0
    ] == 200
    empty = policy_body("empty", permissions=[])
    assert (await management.call("POST", "/management/v3/policydefinitions", empty))[0] == 200


# EDC's @vocab rule: a v3 body whose @context is a JSON object without @vocab is read with EDC's vocabulary.

# The asset the Tractus-X SDK (0.8.x, BaseConnectorProviderService.create_asset) sends for a Digital Twin Registry.
TRACTUSX_SDK_ASSET = {
    "@context": {
        "edc": "https://w3id.org/edc/v0.0.1/ns/",
        "cx-common": "https://w3id.org/catenax/ontology/common#",
        "cx-taxo": "https://w3id.org/catenax/taxonomy#",
        "dct": "http://purl.org/dc/terms/",
    },
    "@type": "Asset",
    "@id": "digital-twin-registry",
    "properties": {
        "dct:type": {"@id": "https://w3id.org/catenax/taxonomy#DigitalTwinRegistry"},
        "cx-common:version": "3.0",
    },
    "privateProperties": {},
    "dataAddress": {
        "@type": "DataAddress",
        "type": "HttpData",
        "baseUrl": "https://dtr.example.com/api/v3",
        "proxyQueryParams": "false",
        "proxyPath": "true",
        "proxyMethod": "true",
        "proxyBody": "false",
    },
}


async def test_object_context_without_vocab_is_read_with_edcs_vocabulary(management: Management) -> None:
    status, created = await management.call("POST", "/management/v3/assets", TRACTUSX_SDK_ASSET)
    assert status == 200, created
    status, asset = await management.call("GET", "/management/v3/assets/digital-twin-registry")
    assert status == 200, asset
    assert asset["properties"]["http://purl.org/dc/terms/type"] == {
        "@id": "https://w3id.org/catenax/taxonomy#DigitalTwinRegistry"
    }
    assert asset["properties"]["https://w3id.org/catenax/ontology/common#version"] == "3.0"
    assert asset["dataAddress"]["baseUrl"] == "https://dtr.example.com/api/v3"
    assert asset["dataAddress"]["proxyMethod"] == "true"


async def test_vocab_is_added_only_to_an_object_context(management: Management) -> None:
    # An array or a URL as @context gets no vocabulary: EDC then finds no fields, and neither does this node.
    for context in ([{"edc": EDC}], ODRL_CONTEXT):
        body = {**TRACTUSX_SDK_ASSET, "@context": context}
        status, problem = await management.call("POST", "/management/v3/assets", body)
        assert status == 400, problem
        assert [e["path"] for e in problem["errors"]] == ["dataAddress"]
    # A context object that names its own @vocab keeps it.
    mine = {**TRACTUSX_SDK_ASSET, "@context": {"@vocab": "https://example.com/ns/"}}
    status, problem = await management.call("POST", "/management/v3/assets", mine)
    assert status == 400 and [e["path"] for e in problem["errors"]] == ["dataAddress"]


async def test_tractusx_sdk_catalog_request_reaches_the_provider(node_factory: Any, http: Any) -> None:
    provider = await node_factory(api_key=API_KEY)
    consumer = await node_factory(api_key=API_KEY)
    provider_api, consumer_api = Management(http, provider), Management(http, consumer)
    assert (await provider_api.call("POST", "/management/v3/assets", TRACTUSX_SDK_ASSET))[0] == 200
    open_policy = {"@context": EDC_CONTEXT, "@id": "open", "policy": {"@context": ODRL_CONTEXT, "@type": "Set"}}
    assert (await provider_api.call("POST", "/management/v3/policydefinitions", open_policy))[0] == 200
    definition = {"@context": EDC_CONTEXT, "@id": "cd", "accessPolicyId": "open", "contractPolicyId": "open"}
    assert (await provider_api.call("POST", "/management/v3/contractdefinitions", definition))[0] == 200
    # As the SDK's ConnectorConsumerService sends it (research: captured against an echo server).
    body = {
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
        "querySpec": {
            "@context": {"@vocab": "https://w3id.org/edc/v0.0.1/ns/"},
            "@type": "QuerySpec",
            "filterExpression": [
                {
                    "operandLeft": "'http://purl.org/dc/terms/type'.'@id'",
                    "operator": "=",
                    "operandRight": "https://w3id.org/catenax/taxonomy#DigitalTwinRegistry",
                }
            ],
        },
    }
    status, catalog = await consumer_api.call("POST", "/management/v3/catalog/request", body)
    assert status == 200, catalog
    dataset = catalog["dcat:dataset"]
    assert dataset["@id"] == "digital-twin-registry"
    assert dataset["dct:type"] == {"@id": "https://w3id.org/catenax/taxonomy#DigitalTwinRegistry"}


async def test_a_battery_passport_address_with_a_base_url_needs_an_http_url(management: Management) -> None:
    body = asset_body()
    body["dataAddress"] = {"type": "BatteryPassport", "accessLevel": "public", "baseUrl": "\u000fnot a URL"}
    status, problem = await management.call("POST", "/management/v3/assets", body)
    assert status == 400, problem
    assert [e["path"] for e in problem["errors"]] == ["dataAddress.baseUrl"]
    body["dataAddress"] = {"type": "BatteryPassport", "accessLevel": "public"}
    assert (await management.call("POST", "/management/v3/assets", body))[0] == 200
