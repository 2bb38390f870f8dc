"""Access to a partner's data as consumer (services.access) between two real nodes on loopback: partners resolved by
DID, DSP address and BPN; agreements and EDRs reused while valid, never a second negotiation for the same dataset
(concurrent callers included); expiring tokens refreshed, revoked ones renewed; refusals with the provider's reason."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from connector.app import Node
from connector.domain.assets import Criterion
from connector.domain.errors import InvalidInput, PeerError, PeerTimeout, Refused
from connector.dsp.catalog import parse_dataset_offers
from connector.services.access import Access, Partner, failed_at, same_origin
from tests.conftest import API_KEY, EDC_CONTEXT, ODRL_CONTEXT, Management, NodeFactory
from tests.test_two_nodes_transfer import Backend
from tests.test_two_nodes_transfer import backend as backend

ASSET = "passports-http"


async def _publish(provider: Node, http: aiohttp.ClientSession, backend: Backend, contract: Any = None) -> None:
    """An HttpData asset on the provider, offered to anyone (under `contract` as its contract permissions)."""
    api = Management(http, provider)
    asset = {
        "@context": EDC_CONTEXT,
        "@id": ASSET,
        "properties": {"name": "Passports over HTTP"},
        "dataAddress": {
            "type": "HttpData",
            "baseUrl": backend.url + "/source/passports",
            "proxyPath": "true",
            "proxyQueryParams": "true",
            "authKey": "X-Api-Secret",
            "authCode": "backend-secret",
        },
    }
    assert (await api.call("POST", "/management/v3/assets", asset))[0] == 200
    policy = {"@context": EDC_CONTEXT, "@id": "open", "policy": {"@context": ODRL_CONTEXT, "@type": "Set"}}
    assert (await api.call("POST", "/management/v3/policydefinitions", policy))[0] == 200
    if contract is not None:
        body = {
            "@context": EDC_CONTEXT,
            "@id": "contract",
            "policy": {"@context": ODRL_CONTEXT, "@type": "Set", "permission": contract},
        }
        assert (await api.call("POST", "/management/v3/policydefinitions", body))[0] == 200
    definition = {
        "@context": EDC_CONTEXT,
        "@id": "cd-http",
        "accessPolicyId": "open",
        "contractPolicyId": "open" if contract is None else "contract",
        "assetsSelector": [],
    }
    assert (await api.call("POST", "/management/v3/contractdefinitions", definition))[0] == 200


async def _count(node: Node, what: str) -> int:
    """Count the consumer-side negotiations or transfers a node stored."""
    api = Management(aiohttp.ClientSession(), node)
    try:
        path = {"negotiations": "contractnegotiations", "transfers": "transferprocesses"}[what]
        query = {
            "@context": EDC_CONTEXT,
            "limit": 1000,
            "filterExpression": [{"operandLeft": "type", "operator": "=", "operandRight": "CONSUMER"}],
        }
        status, listed = await api.call("POST", f"/management/v3/{path}/request", query)
        assert status == 200, listed
        return len(listed)
    finally:
        await api.http.close()


def _access(node: Node) -> Access:
    assert node.access is not None
    return node.access


async def test_partners_resolve_by_did_by_dsp_address_and_by_bpn_through_a_directory_file(
    node_factory: NodeFactory, tmp_path: Path
) -> None:
    provider = await node_factory(api_key=API_KEY)
    directory = tmp_path / "bpns.json"
    directory.write_text(json.dumps({"BPNL00000003AYRE": provider.settings.effective_did}))
    consumer = await node_factory(api_key=API_KEY, bpn_directory_file=directory)
    access = _access(consumer)
    expected = Partner(provider.settings.effective_did, provider.settings.dsp_base_url)
    assert await access.partner(provider.settings.effective_did) == expected
    assert await access.partner(provider.settings.dsp_base_url) == expected
    assert await access.partner(provider.settings.effective_public_url) == expected  # the host root
    assert await access.partner(provider.settings.effective_public_url + "/api/dsp") == expected
    assert await access.partner("BPNL00000003AYRE") == Partner(expected.did, expected.address, "BPNL00000003AYRE")
    with pytest.raises(InvalidInput, match="BPNL00000003AZQP is not in"):
        await access.partner("BPNL00000003AZQP")
    with pytest.raises(InvalidInput, match="neither a DID, a BPN nor"):
        await access.partner("provider.example")
    with pytest.raises(PeerError):
        await access.partner(f"did:web:127.0.0.1%3A{consumer.protocol_port + 1}")  # nobody serves a DID there


async def test_an_agreement_and_an_edr_are_made_once_and_reused_from_memory_and_from_the_store(
    node_factory: NodeFactory, http: aiohttp.ClientSession, backend: Backend
) -> None:
    provider = await node_factory(api_key=API_KEY)
    consumer = await node_factory(api_key=API_KEY)
    await _publish(provider, http, backend)
    access = _access(consumer)
    partner = await access.partner(provider.settings.effective_did)

    by_id = Criterion("https://w3id.org/edc/v0.0.1/ns/id", "=", ASSET)
    assert [d["@id"] for d in await access.datasets(partner, (by_id,), page=(0, 10))] == [ASSET]
    assert await access.datasets(partner, (Criterion("https://w3id.org/edc/v0.0.1/ns/id", "=", "nope"),)) == []
    agreement = await access.agreement(partner, ASSET)
    assert agreement.asset_id == ASSET and agreement.provider_id == partner.did
    edr = await access.edr(partner, agreement)
    answer = await access.get(partner, agreement, "/BAT-1")
    assert answer.status == 200 and answer.body["batteryId"] == "BAT-1"
    assert (await access.agreement(partner, ASSET)).id == agreement.id
    assert await access.edr(partner, agreement) == edr

    # A new Access (a restarted node: nothing in memory) finds both in the store.
    again = Access(
        consumer.store,
        access._negotiations,
        access._transfers,
        access._edrs,
        access._catalogs,
        access._dsp,
        access._identity,
        access._peer,
        consumer.settings.effective_participant_id,
    )
    assert (await again.agreement(partner, ASSET)).id == agreement.id
    assert (await again.edr(partner, agreement)).transfer_id == edr.transfer_id
    assert await _count(consumer, "negotiations") == 1
    assert await _count(consumer, "transfers") == 1


async def test_concurrent_callers_share_one_negotiation_and_one_transfer(
    node_factory: NodeFactory, http: aiohttp.ClientSession, backend: Backend
) -> None:
    provider = await node_factory(api_key=API_KEY)
    consumer = await node_factory(api_key=API_KEY)
    await _publish(provider, http, backend)
    access = _access(consumer)
    partner = await access.partner(provider.settings.dsp_base_url)
    grants = await asyncio.gather(*(access.grant(partner, ASSET) for _ in range(8)))
    assert len({agreement.id for agreement, _ in grants}) == 1
    assert len({edr.transfer_id for _, edr in grants}) == 1
    assert await _count(consumer, "negotiations") == 1
    assert await _count(consumer, "transfers") == 1


async def test_a_negotiation_already_under_way_is_waited_for_not_doubled(
    node_factory: NodeFactory, http: aiohttp.ClientSession, backend: Backend
) -> None:
    provider = await node_factory(api_key=API_KEY)
    consumer = await node_factory(api_key=API_KEY)
    await _publish(provider, http, backend)
    access = _access(consumer)
    partner = await access.partner(provider.settings.effective_did)
    dataset = await access.dataset(partner, ASSET)
    offer_id = next(iter(parse_dataset_offers(dataset)))
    # Another caller (another replica, or a call that gave up waiting) started one through the management API.
    request = {
        "@context": {**EDC_CONTEXT, "odrl": "http://www.w3.org/ns/odrl/2/"},
        "@type": "ContractRequest",
        "counterPartyAddress": partner.address,
        "counterPartyId": partner.did,
        "protocol": "dataspace-protocol-http:2025-1",
        "policy": {"@id": offer_id, "odrl:assigner": {"@id": partner.did}, "odrl:target": {"@id": ASSET}},
    }
    status, created = await Management(http, consumer).call("POST", "/management/v3/contractnegotiations", request)
    assert status == 200, created
    agreement = await access.agreement(partner, ASSET)
    assert agreement.negotiation_id == created["@id"]
    assert await _count(consumer, "negotiations") == 1


async def test_an_expiring_token_is_refreshed_and_a_revoked_transfer_is_replaced(
    node_factory: NodeFactory, http: aiohttp.ClientSession, backend: Backend
) -> None:
    # Tokens live 10 s, less than the refresh margin: every EDR held counts as about to expire.
    provider = await node_factory(api_key=API_KEY, token_lifetime_seconds=10)
    consumer = await node_factory(api_key=API_KEY)
    await _publish(provider, http, backend)
    access = _access(consumer)
    partner = await access.partner(provider.settings.effective_did)
    agreement, first = await access.grant(partner, ASSET)
    refreshed = await access.edr(partner, agreement)
    assert refreshed.transfer_id == first.transfer_id and refreshed.authorization != first.authorization
    assert (await access.get(partner, agreement, "/BAT-2")).status == 200

    # The provider ends the transfer: its token stops working, and the next read starts another transfer.
    provider_api = Management(http, provider)
    _, provided = await provider_api.call("POST", "/management/v3/transferprocesses/request")
    status, _ = await provider_api.call(
        "POST",
        f"/management/v3/transferprocesses/{provided[0]['@id']}/terminate",
        {"@context": EDC_CONTEXT, "reason": "rotating"},
    )
    assert status == 204
    answer = await access.get(partner, agreement, "/BAT-3")
    assert answer.status == 200 and answer.body["batteryId"] == "BAT-1"  # the backend's fixed passport
    assert (await access.edr(partner, agreement)).transfer_id != first.transfer_id
    assert await _count(consumer, "negotiations") == 1
    assert await _count(consumer, "transfers") == 2


async def test_a_policy_the_consumer_does_not_satisfy_is_refused_with_the_providers_reason(
    node_factory: NodeFactory, http: aiohttp.ClientSession, backend: Backend
) -> None:
    provider = await node_factory(api_key=API_KEY)
    consumer = await node_factory(api_key=API_KEY)
    past = (datetime.now(UTC) - timedelta(days=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
    contract = [{"action": "use", "constraint": [{"leftOperand": "dateTime", "operator": "lt", "rightOperand": past}]}]
    await _publish(provider, http, backend, contract)
    access = _access(consumer)
    partner = await access.partner(provider.settings.effective_did)
    with pytest.raises(Refused, match=r"ended without an agreement: .*dateTime"):
        await access.agreement(partner, ASSET)
    # A refusal is not cached as an agreement: the next call asks again (and is refused again).
    with pytest.raises(Refused):
        await access.agreement(partner, ASSET)
    assert await _count(consumer, "negotiations") == 2


async def test_a_url_off_the_edr_endpoint_never_gets_the_token(
    node_factory: NodeFactory, http: aiohttp.ClientSession, backend: Backend
) -> None:
    provider = await node_factory(api_key=API_KEY)
    consumer = await node_factory(api_key=API_KEY)
    await _publish(provider, http, backend)
    access = _access(consumer)
    partner = await access.partner(provider.settings.effective_did)
    agreement, _ = await access.grant(partner, ASSET)
    with pytest.raises(PeerError, match="refusing to send the data plane token"):
        await access.get(partner, agreement, url=backend.url + "/source/passports/BAT-1")
    assert not any(path.endswith("/BAT-1") for _, path, _ in backend.requests)


def test_origins_and_steps() -> None:
    assert same_origin("http://a.example/api/dsp/2025-1", "http://A.example:80/other")
    assert not same_origin("http://a.example/x", "https://a.example/x")
    assert not same_origin("http://a.example:8080/x", "http://a.example/x")
    error = failed_at("catalog", PeerError("it answered 500"))
    assert isinstance(error, PeerError) and error.step == "catalog" and error.message == "catalog: it answered 500"
    assert failed_at("later", error) is error


async def test_a_negotiation_that_takes_too_long_times_out_and_the_next_call_waits_for_the_same_one(
    node_factory: NodeFactory, http: aiohttp.ClientSession, backend: Backend
) -> None:
    # The provider holds every request for its operator: nothing is agreed until approved.
    provider = await node_factory(api_key=API_KEY, negotiation_approval="manual")
    consumer = await node_factory(api_key=API_KEY, access_wait_seconds=0.5)
    await _publish(provider, http, backend)
    access = _access(consumer)
    partner = await access.partner(provider.settings.effective_did)
    with pytest.raises(PeerTimeout, match=r"was not finalized within 0\.5 s"):
        await access.agreement(partner, ASSET)
    provider_api = Management(http, provider)
    _, held = await provider_api.call("POST", "/management/v3/contractnegotiations/request")
    assert [n["state"] for n in held] == ["REQUESTED"] and held[0]["pending"] is True
    access.wait_seconds = 20.0
    waiting = asyncio.ensure_future(access.agreement(partner, ASSET))
    await asyncio.sleep(0.2)
    assert not waiting.done()
    status, _ = await provider_api.call("POST", f"/management/v3/contractnegotiations/{held[0]['@id']}/approve")
    assert status == 204
    agreement = await waiting
    assert agreement.asset_id == ASSET
    assert await _count(consumer, "negotiations") == 1


async def test_a_token_the_data_plane_refuses_is_renewed_and_the_read_retried_once(
    node_factory: NodeFactory, http: aiohttp.ClientSession, backend: Backend
) -> None:
    from dataclasses import replace

    provider = await node_factory(api_key=API_KEY)
    consumer = await node_factory(api_key=API_KEY)
    await _publish(provider, http, backend)
    access = _access(consumer)
    partner = await access.partner(provider.settings.effective_did)
    agreement, edr = await access.grant(partner, ASSET)
    # A token the provider does not accept (as if revoked without this node hearing of it yet).
    access._hold(replace(edr, authorization="Bearer not-a-token"))
    answer = await access.get(partner, agreement, "/BAT-4")
    assert answer.status == 200, answer.body
    renewed = await access.edr(partner, agreement)
    assert renewed.transfer_id == edr.transfer_id and renewed.authorization not in (
        edr.authorization,
        "Bearer not-a-token",
    )
    assert await _count(consumer, "transfers") == 1
