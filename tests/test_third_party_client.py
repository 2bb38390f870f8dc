"""A published EDC Management API v3 client (edc-client on PyPI) works against this node unchanged."""

from __future__ import annotations

import asyncio
import json

import pytest

from connector.app import Node
from tests.conftest import API_KEY

edc_client = pytest.importorskip("edc_client", reason="edc-client is a test dependency: pip install -e '.[test]'")


def _script(management_url: str) -> dict[str, object]:
    from edc_client.connector import Connector

    # As its README shows: the management URL includes /management; the client appends /v3/...
    provider = Connector("samples", management_url, "provider-id", "http://127.0.0.1:1/protocol", api_key=API_KEY)
    created = {
        "asset": provider.create_asset("asset-1", "https://backend.example.com/data"),
        "policy": provider.create_policy("policy-1"),
        "contract": provider.create_contract_definition("cd-1", "policy-1", "policy-1"),
    }
    assets = edc_client.AssetV3Api(provider.client)
    policies = edc_client.PolicyDefinitionV3Api(provider.client)
    contracts = edc_client.ContractDefinitionV3Api(provider.client)
    query = edc_client.QuerySpec.from_dict({"@type": "QuerySpec", "offset": 0, "limit": 50})
    return {
        "created": created,
        "asset": assets.get_asset_v3("asset-1"),
        "asset_raw": json.loads(assets.get_asset_v3_without_preload_content("asset-1").data),
        "policy": policies.get_policy_definition_v3("policy-1"),
        "contract": contracts.get_contract_definition_v3("cd-1"),
        "listed_assets": [a.id for a in assets.request_assets_v3(query_spec=query)],
        "listed_policies": [p.id for p in policies.query_policy_definitions_v3(query_spec=query)],
        "listed_contracts": [c.id for c in contracts.query_contract_definitions_v3(query_spec=query)],
        "wrapper_list": provider.list_assets(),
    }


# The client marks every v3 call deprecated (EDC moves to v4); v3 is what this node serves.
@pytest.mark.filterwarnings("ignore:.* is deprecated:DeprecationWarning")
async def test_edc_client_creates_and_reads_back(node: Node) -> None:
    result = await asyncio.to_thread(_script, node.management_url + "/management")
    created = result["created"]
    assert isinstance(created, dict)
    assert created["asset"]["@id"] == "asset-1"
    assert created["policy"]["@id"] == "policy-1"
    assert created["contract"]["@id"] == "cd-1"
    assert result["asset"].id == "asset-1"  # type: ignore[attr-defined]
    assert result["asset_raw"]["dataAddress"]["baseUrl"] == "https://backend.example.com/data"  # type: ignore[index]
    assert result["policy"].id == "policy-1"  # type: ignore[attr-defined]
    assert result["contract"].id == "cd-1"  # type: ignore[attr-defined]
    assert result["listed_assets"] == ["asset-1"]
    assert result["listed_policies"] == ["policy-1"]
    assert result["listed_contracts"] == ["cd-1"]
    assert [a["@id"] for a in result["wrapper_list"]] == ["asset-1"]  # type: ignore[union-attr]
