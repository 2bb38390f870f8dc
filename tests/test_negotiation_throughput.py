"""Negotiation throughput without losing safety: many at once, token ids remembered with the change, inline writes.

See docs/decisions/0027-negotiation-throughput.md.
"""

from __future__ import annotations

import asyncio
import sqlite3
import uuid
from pathlib import Path
from typing import Any

import aiohttp

from connector.app import Node
from connector.store import Store
from connector.store.migrate import upgrade
from tests.conftest import API_KEY, EDC_CONTEXT, ODRL_CONTEXT, Management

DSP_CONTEXT = "https://w3id.org/dspace/2025/1/context.jsonld"
IN_FLIGHT = 50


async def _publish(provider: Node, http: aiohttp.ClientSession) -> None:
    api = Management(http, provider)
    asset = {
        "@context": EDC_CONTEXT,
        "@id": "passports-many",
        "properties": {"name": "Passports"},
        "dataAddress": {"type": "HttpData", "baseUrl": "https://backend.example.com/passports"},
    }
    assert (await api.call("POST", "/management/v3/assets", asset))[0] == 200
    for policy_id, permission in (("open", []), ("use", [{"action": "use"}])):
        body = {
            "@context": EDC_CONTEXT,
            "@id": policy_id,
            "policy": {"@context": ODRL_CONTEXT, "@type": "Set", "permission": permission},
        }
        assert (await api.call("POST", "/management/v3/policydefinitions", body))[0] == 200
    definition = {
        "@context": EDC_CONTEXT,
        "@id": "cd-many",
        "accessPolicyId": "open",
        "contractPolicyId": "use",
        "assetsSelector": [],
    }
    assert (await api.call("POST", "/management/v3/contractdefinitions", definition))[0] == 200


async def _contract_request(provider: Node, consumer: Node, http: aiohttp.ClientSession) -> dict[str, Any]:
    body = {
        "@context": EDC_CONTEXT,
        "@type": "CatalogRequest",
        "counterPartyAddress": provider.settings.dsp_base_url,
        "counterPartyId": provider.settings.effective_did,
        "protocol": "dataspace-protocol-http:2025-1",
    }
    status, catalog = await Management(http, consumer).call("POST", "/management/v3/catalog/request", body)
    assert status == 200, catalog
    offer = catalog["dcat:dataset"]["odrl:hasPolicy"]
    return {
        "@context": {**EDC_CONTEXT, "odrl": "http://www.w3.org/ns/odrl/2/"},
        "@type": "ContractRequest",
        "counterPartyAddress": provider.settings.dsp_base_url,
        "protocol": "dataspace-protocol-http:2025-1",
        "policy": {
            **offer,
            "odrl:assigner": {"@id": provider.settings.effective_participant_id},
            "odrl:target": {"@id": "passports-many"},
        },
    }


async def _all_in(api: Management, ids: set[str], state: str) -> list[dict[str, Any]]:
    """Wait until every listed negotiation is in `state` (or any is TERMINATED); return them."""
    while True:
        spec = {
            "@context": EDC_CONTEXT,
            "@type": "QuerySpec",
            "limit": len(ids) + 1,
            "filterExpression": [{"operandLeft": "id", "operator": "in", "operandRight": sorted(ids)}],
        }
        status, found = await api.call("POST", "/management/v3/contractnegotiations/request", spec)
        assert status == 200, found
        assert not [n for n in found if n["state"] == "TERMINATED"], found
        if len(found) == len(ids) and all(n["state"] == state for n in found):
            return list(found)
        await asyncio.sleep(0.1)


async def test_fifty_concurrent_negotiations_each_finalize_with_exactly_one_agreement(
    node_factory: Any, http: aiohttp.ClientSession, database_url: str
) -> None:
    provider = await node_factory(api_key=API_KEY, database_url=database_url, database_auto_migrate=True)
    consumer = await node_factory(api_key=API_KEY)
    await _publish(provider, http)
    request = await _contract_request(provider, consumer, http)
    consumer_api, provider_api = Management(http, consumer), Management(http, provider)

    async def start() -> str:
        status, created = await consumer_api.call("POST", "/management/v3/contractnegotiations", request)
        assert status == 200, created
        return str(created["@id"])

    ids = set(await asyncio.gather(*(start() for _ in range(IN_FLIGHT))))
    assert len(ids) == IN_FLIGHT
    async with asyncio.timeout(240):
        finalized = await _all_in(consumer_api, ids, "FINALIZED")
    agreement_ids = {n["contractAgreementId"] for n in finalized}
    assert len(agreement_ids) == IN_FLIGHT and None not in agreement_ids

    # The provider's side: 50 negotiations, each FINALIZED (once the consumer acknowledged the event), each with
    # its own agreement, and one stored agreement per negotiation on both sides.
    _, listed = await provider_api.call(
        "POST", "/management/v3/contractnegotiations/request", {"@context": EDC_CONTEXT, "limit": 1000}
    )
    assert len(listed) == IN_FLIGHT
    async with asyncio.timeout(60):
        provided = await _all_in(provider_api, {n["@id"] for n in listed}, "FINALIZED")
    assert {n["contractAgreementId"] for n in provided} == agreement_ids
    for api in (consumer_api, provider_api):
        status, agreements = await api.call(
            "POST", "/management/v3/contractagreements/request", {"@context": EDC_CONTEXT, "limit": 1000}
        )
        assert status == 200, agreements
        assert sorted(a["@id"] for a in agreements) == sorted(agreement_ids)
    # Nothing is left owed on either side.
    for node in (provider, consumer):
        async with node.store.transaction() as tx:
            assert await tx.outbox.claim("test", 2**62, 1000, 1000) == []


def _request_message(consumer: Node, offer_id: str) -> dict[str, Any]:
    return {
        "@context": [DSP_CONTEXT],
        "@type": "ContractRequestMessage",
        "consumerPid": "urn:uuid:" + str(uuid.uuid4()),
        "callbackAddress": consumer.settings.dsp_base_url,
        "offer": {"@id": offer_id, "@type": "Offer", "target": "passports-many", "permission": [{"action": "use"}]},
    }


async def test_a_negotiation_messages_token_is_accepted_once_whether_the_message_changed_something_or_not(
    node_factory: Any, http: aiohttp.ClientSession, database_url: str
) -> None:
    provider = await node_factory(api_key=API_KEY, database_url=database_url, database_auto_migrate=True)
    consumer = await node_factory(api_key=API_KEY)
    await _publish(provider, http)
    base = provider.settings.dsp_base_url
    audience = provider.settings.effective_did

    async def post(path: str, body: Any, token: str) -> tuple[int, Any]:
        async with http.post(base + path, json=body, headers={"Authorization": token}) as response:
            return response.status, await response.json(content_type=None)

    # A request the provider acts on (a new negotiation): the token's id is remembered in the same transaction,
    # so the same token again is a replay, not a redelivery.
    offer_id = (await _contract_request(provider, consumer, http))["policy"]["@id"]
    message = _request_message(consumer, offer_id)
    token = consumer.identity.token_for(audience)
    status, negotiation = await post("/negotiations/request", message, token)
    assert status == 201, negotiation
    status, error = await post("/negotiations/request", message, token)
    assert status == 401 and error["@type"] == "ContractNegotiationError", error
    assert "replayed" in str(error["reason"])
    # The same message under a fresh token is a redelivery: the same negotiation, nothing new.
    status, again = await post("/negotiations/request", message, consumer.identity.token_for(audience))
    assert status == 200 and again["providerPid"] == negotiation["providerPid"]

    # A message refused (no such negotiation): nothing changes, and its token is still spent.
    pids = {"providerPid": "urn:uuid:" + str(uuid.uuid4()), "consumerPid": message["consumerPid"]}
    termination = {
        "@context": [DSP_CONTEXT],
        "@type": "ContractNegotiationTerminationMessage",
        **pids,
        "code": "x",
        "reason": [{"@value": "bye"}],
    }
    token = consumer.identity.token_for(audience)
    status, error = await post(f"/negotiations/{pids['providerPid']}/termination", termination, token)
    assert status == 404, error
    status, error = await post(f"/negotiations/{pids['providerPid']}/termination", termination, token)
    assert status == 401 and "replayed" in str(error["reason"]), error

    # An unreadable body is refused before the service: its token is spent all the same.
    token = consumer.identity.token_for(audience)
    status, error = await post("/negotiations/request", {"@type": "ContractRequestMessage"}, token)
    assert status == 400, error
    status, error = await post("/negotiations/request", message, token)
    assert status == 401 and "replayed" in str(error["reason"]), error


async def test_a_write_that_waits_for_another_connections_lock_lets_the_loop_run(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'store.db'}"
    await upgrade(url)
    store = Store(url)
    other = sqlite3.connect(tmp_path / "store.db", isolation_level=None)
    try:
        other.execute("BEGIN IMMEDIATE")  # another process's writer, say the import command
        ticks = 0
        stop = asyncio.Event()
        ticked = asyncio.Event()

        async def ticker() -> None:
            nonlocal ticks
            while not stop.is_set():
                ticks += 1
                if ticks >= 50:
                    ticked.set()
                await asyncio.sleep(0)

        async def write() -> bool:
            async with store.transaction() as tx:
                return await tx.seen_tokens.remember("did:web:x", "jti-1", 2**40)

        ticking = asyncio.create_task(ticker())
        writing = asyncio.create_task(write())
        # The writer waits on aiosqlite's thread, not on the loop: the ticker keeps running meanwhile.
        await ticked.wait()
        assert not writing.done()
        other.execute("COMMIT")
        assert await writing is True
        stop.set()
        await ticking
        # And once the lock is free, writes take it at once (inline) and see each other's rows.
        async with store.transaction() as tx:
            assert await tx.seen_tokens.remember("did:web:x", "jti-1", 2**40) is False
    finally:
        other.close()
        await store.close()


async def test_a_failed_write_transaction_rolls_back_and_leaves_the_writer_usable(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'store.db'}"
    await upgrade(url)
    store = Store(url)
    try:

        async def fail() -> None:
            async with store.transaction() as tx:
                await tx.seen_tokens.remember("did:web:x", "jti-lost", 2**40)
                raise RuntimeError("the unit fails")

        async def succeed(i: int) -> bool:
            async with store.transaction() as tx:
                return await tx.seen_tokens.remember("did:web:x", f"jti-{i}", 2**40)

        results = await asyncio.gather(fail(), *(succeed(i) for i in range(20)), return_exceptions=True)
        assert isinstance(results[0], RuntimeError)
        assert results[1:] == [True] * 20
        async with store.transaction() as tx:
            assert await tx.seen_tokens.remember("did:web:x", "jti-lost", 2**40) is True
            assert await tx.seen_tokens.remember("did:web:x", "jti-3", 2**40) is False
    finally:
        await store.close()
