"""A published EDC Management API v3 client (edc-client on PyPI) works against this node unchanged."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from connector.app import Node
from connector.identity import issuer
from tests.conftest import API_KEY, Management, NodeFactory
from tests.test_two_nodes_transfer import Backend
from tests.test_two_nodes_transfer import backend as backend

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


def _negotiate_and_transfer(consumer_url: str, provider: Node, asset_id: str) -> tuple[int, Any]:
    """Run edc-client's composite flow (catalog, negotiation, pull, data) from the consumer, as its README shows."""
    from edc_client.connector import Connector, Counterparty

    consumer = Connector("samples", consumer_url, "consumer-id", "http://127.0.0.1:1/protocol", api_key=API_KEY)
    counterparty = Counterparty(provider.settings.effective_participant_id, provider.settings.dsp_base_url)
    # Polled often so the test is quick; the timeout is the client's own way to say it never finished.
    response = consumer.negotiate_and_transfer(counterparty, asset_id, poll_interval=0.05, poll_timeout=60)
    return response.status, json.loads(response.data)


def _publish_with_edc_client(management_url: str, backend_url: str) -> None:
    """The provider side as edc-client writes it: an HttpData asset, an empty (permissive) policy, a contract."""
    from edc_client.connector import Connector

    # The backend wants a secret header; edc-client passes extra dataAddress fields through `asset_auth`.
    provider = Connector(
        "samples",
        management_url,
        "provider-id",
        "http://127.0.0.1:1/protocol",
        api_key=API_KEY,
        asset_auth={"authKey": "X-Api-Secret", "authCode": "backend-secret"},
    )
    provider.create_asset("asset-1", backend_url + "/source/passports")
    provider.create_policy("permissive")
    provider.create_contract_definition("cd-1", "permissive", "permissive")


@pytest.mark.filterwarnings("ignore:.* is deprecated:DeprecationWarning")
async def test_edc_client_negotiates_and_transfers_between_two_nodes_under_empty_policies(
    node_factory: NodeFactory, backend: Backend
) -> None:
    provider = await node_factory(api_key=API_KEY)
    consumer = await node_factory(api_key=API_KEY)
    await asyncio.to_thread(_publish_with_edc_client, provider.management_url + "/management", backend.url)
    status, data = await asyncio.to_thread(
        _negotiate_and_transfer, consumer.management_url + "/management", provider, "asset-1"
    )
    assert status == 200
    assert data["batteryId"] == "BAT-1"


@pytest.mark.filterwarnings("ignore:.* is deprecated:DeprecationWarning")
async def test_edc_client_negotiates_and_transfers_under_the_catena_x_policies(
    node_factory: NodeFactory, http: aiohttp.ClientSession, tmp_path: Path, backend: Backend
) -> None:
    """The Tractus-X access and usage policies, the credentials from the built-in issuer, edc-client's bare offer."""
    from tests.test_two_nodes_catenax import MEMBER_BPN, _grant, _hold, _provider, _publish

    provider, issuer_dir = await _provider(node_factory, tmp_path)
    await _publish(provider, http, backend)
    member = await node_factory(api_key=API_KEY, trusted_issuers=issuer.load_registry(issuer_dir).did)
    await _hold(member, http, _grant(issuer_dir, member.settings.effective_did, MEMBER_BPN, "membership", "deg", "bpn"))
    status, data = await asyncio.to_thread(
        _negotiate_and_transfer, member.management_url + "/management", provider, "passports-cx"
    )
    assert status == 200
    assert data["batteryId"] == "BAT-1"
    # The consumer agreed to the offer as the provider published it: the usage purpose is in its agreement.
    _, agreements = await Management(http, member).call("POST", "/management/v3/contractagreements/request")
    assert [a["assetId"] for a in agreements] == ["passports-cx"]
    assert "https://w3id.org/catenax/2025/9/policy/UsagePurpose" in json.dumps(agreements[0]["policy"])


def _start_push(consumer_url: str, provider: Node, agreement_id: str, sink: str) -> str:
    """edc-client's start_push; return the error its typed answer raises (None when it raises none)."""
    import pydantic
    from edc_client.connector import Connector, Counterparty

    consumer = Connector("samples", consumer_url, "consumer-id", "http://127.0.0.1:1/protocol", api_key=API_KEY)
    counterparty = Counterparty(provider.settings.effective_participant_id, provider.settings.dsp_base_url)
    try:
        consumer.start_push(counterparty, agreement_id, sink)
    except pydantic.ValidationError as exc:
        return str(exc)
    return ""


@pytest.mark.filterwarnings("ignore:.* is deprecated:DeprecationWarning")
async def test_edc_client_start_push_starts_the_transfer_and_then_trips_on_edcs_v3_context(
    node_factory: NodeFactory, http: aiohttp.ClientSession, backend: Backend
) -> None:
    """v3 answers keep EDC's own @context (an object); edc-client's typed IdResponse wants a list of strings.

    The transfer is started before the client reads the answer, so the push goes ahead; the client's error is its
    own, and it raises it against EDC itself too (docs/management-api.md, "edc-client").
    """
    provider = await node_factory(api_key=API_KEY)
    consumer = await node_factory(api_key=API_KEY)
    await asyncio.to_thread(_publish_with_edc_client, provider.management_url + "/management", backend.url)
    await asyncio.to_thread(_negotiate_and_transfer, consumer.management_url + "/management", provider, "asset-1")
    api = Management(http, consumer)
    _, agreements = await api.call("POST", "/management/v3/contractagreements/request")
    error = await asyncio.to_thread(
        _start_push, consumer.management_url + "/management", provider, agreements[0]["@id"], backend.url + "/sink"
    )
    assert "@context" in error and "list" in error.lower(), error
    _, transfers = await api.call("POST", "/management/v3/transferprocesses/request")
    assert sorted(t["transferType"] for t in transfers) == ["HttpData-PULL", "HttpData-PUSH"]
    # The answer is EDC's v3 IdResponse, object context and all.
    status, created = await api.call(
        "POST",
        "/management/v3/transferprocesses",
        {
            "@context": {"@vocab": "https://w3id.org/edc/v0.0.1/ns/"},
            "@type": "TransferRequestDto",
            "counterPartyAddress": provider.settings.dsp_base_url,
            "contractId": agreements[0]["@id"],
            "protocol": "dataspace-protocol-http:2025-1",
            "transferType": "HttpData-PULL",
        },
    )
    assert status == 200 and isinstance(created["@context"], dict) and created["@context"]["@vocab"], created
