"""The life both DSP processes share, under the conditions that broke it: messages that overtake an
acknowledgement, messages repeated after a crash, a peer that never answers, a slow peer, a peer that refuses.

The node under test runs in conformance test mode (seeded agreements, the TCK's static token), and its peer is a
scripted DSP server on loopback whose handlers can act before they answer, which the TCK harness cannot.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from connector.app import Node
from connector.domain.query import QuerySpec
from tests.conftest import API_KEY, EDC_CONTEXT, Management, NodeFactory
from tests.tck_harness import (
    TCK_PARTICIPANT,
    TOKEN,
    agreement_message,
    contract_request,
    negotiation,
    pid,
    transfer_process,
    transfer_request,
    transfer_start,
    verification,
)
from tests.test_two_nodes_transfer import Backend, _started_pull, _wait

Handler = Callable[[dict[str, Any]], Awaitable[tuple[int, dict[str, Any]]]]


@dataclass
class Peer:
    """A scripted DSP peer: handlers by (method, path pattern), every call recorded."""

    http: aiohttp.ClientSession
    routes: list[tuple[str, re.Pattern[str], Handler]] = field(default_factory=list)
    calls: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    url: str = ""
    _runner: web.AppRunner | None = None

    async def start(self) -> None:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.url = f"http://127.0.0.1:{site._server.sockets[0].getsockname()[1]}"  # type: ignore[union-attr]

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    def on(self, method: str, path: str, handler: Handler) -> None:
        self.routes.insert(0, (method, re.compile(path), handler))

    async def _handle(self, request: web.Request) -> web.Response:
        body = await request.json() if request.can_read_body else {}
        path = request.path.rstrip("/")
        self.calls.append((path, body))
        for method, pattern, handler in self.routes:
            if method == request.method and pattern.fullmatch(path):
                status, answer = await handler(body)
                return web.json_response(answer, status=status)
        return web.json_response({"error": "not scripted"}, status=404)

    def count(self, pattern: str) -> int:
        return sum(1 for path, _ in self.calls if re.fullmatch(pattern, path))

    async def wait_for(self, pattern: str, times: int = 1) -> dict[str, Any]:
        """Wait (up to 15 s) until `pattern` was called `times` times; return the last body."""
        async with asyncio.timeout(15):
            while True:
                if self.count(pattern) >= times:
                    break
                await asyncio.sleep(0.02)
        return [body for path, body in self.calls if re.fullmatch(pattern, path)][-1]

    async def post(self, url: str, message: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        async with self.http.post(url, json=message, headers={"Authorization": TOKEN}) as response:
            return response.status, await response.json(content_type=None)


@pytest.fixture
async def peer(http: aiohttp.ClientSession) -> AsyncIterator[Peer]:
    scripted = Peer(http)
    await scripted.start()
    yield scripted
    await scripted.stop()


@pytest.fixture
async def source() -> AsyncIterator[Backend]:
    """The provider operator's backend (HttpData source)."""
    server = Backend()
    await server.start()
    yield server
    await server.stop()


async def _cut(node_factory: NodeFactory, **settings: Any) -> Node:
    values = {"outbox_retry_seconds": 0.2, **settings}
    return await node_factory(tck_mode=True, tck_authorization=TOKEN, **values)


async def _ack(body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    return 200, transfer_process(body.get("providerPid", ""), body.get("consumerPid", ""), "STARTED")


async def _trigger_transfer(http: aiohttp.ClientSession, node: Node, agreement: str, provider: str) -> None:
    body = {
        "providerId": TCK_PARTICIPANT,
        "agreementId": agreement,
        "format": "HttpData-PULL",
        "connectorAddress": provider,
    }
    url = node.protocol_url + "/tck/transfers/requests"
    async with http.post(url, json=body, headers={"Authorization": TOKEN}) as response:
        assert response.status < 300, await response.text()


async def _transfer(node: Node, transfer_id: str) -> Any:
    async with node.store.read() as tx:
        return await tx.transfers.get(transfer_id)


async def _until(check: Callable[[], Awaitable[bool]], budget: float = 15.0) -> None:
    async with asyncio.timeout(budget):
        while True:
            if await check():
                return
            await asyncio.sleep(0.02)


# Consumer side: the node asks, the scripted peer provides.


async def test_a_start_that_overtakes_the_request_acknowledgement_implies_it(
    node_factory: NodeFactory, http: aiohttp.ClientSession, peer: Peer
) -> None:
    node = await _cut(node_factory)
    provider_pid = pid()
    started: dict[str, int] = {}

    async def start_before_answering(body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        # The provider starts the transfer before its answer to the request is on its way.
        callback = str(body["callbackAddress"]).rstrip("/")
        message = transfer_start(provider_pid, body["consumerPid"])
        status, _ = await peer.post(f"{callback}/transfers/{body['consumerPid']}/start", message)
        started["status"] = status
        return 201, transfer_process(provider_pid, body["consumerPid"], "REQUESTED")

    peer.on("POST", "/transfers/request", start_before_answering)
    peer.on("POST", f"/transfers/{provider_pid}/completion", _ack)
    await _trigger_transfer(http, node, "ATPC0101", peer.url)
    request = await peer.wait_for("/transfers/request")
    consumer_pid = request["consumerPid"]

    async def start_answered() -> bool:  # the peer saw the request before its handler's start came back
        return "status" in started

    await _until(start_answered)
    assert started["status"] == 200

    async def settled() -> bool:
        transfer = await _transfer(node, consumer_pid)
        return bool(transfer.state == "STARTED" and transfer.awaiting_ack is None)

    await _until(settled)
    async with node.store.read() as tx:
        assert await tx.outbox.pending(consumer_pid) == [], "the request must not be sent again"
    # Not "waiting for the peer": the operator can complete it.
    status, body = await Management(http, node, api_key=None).call(
        "POST", f"/management/v3/transferprocesses/{consumer_pid}/complete"
    )
    assert status == 204, body
    await peer.wait_for(f"/transfers/{provider_pid}/completion")
    await _until(lambda: _state_is(node, consumer_pid, "COMPLETED"))
    assert peer.count("/transfers/request") == 1


async def _state_is(node: Node, transfer_id: str, state: str) -> bool:
    return bool((await _transfer(node, transfer_id)).state == state)


async def test_a_repeated_start_is_acknowledged_and_keeps_the_newest_tokens(
    node_factory: NodeFactory, http: aiohttp.ClientSession, peer: Peer
) -> None:
    node = await _cut(node_factory)
    provider_pid = pid()

    async def answer(body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        return 201, transfer_process(provider_pid, body["consumerPid"], "REQUESTED")

    peer.on("POST", "/transfers/request", answer)
    await _trigger_transfer(http, node, "ATPC0102", peer.url)
    request = await peer.wait_for("/transfers/request")
    consumer_pid, callback = request["consumerPid"], str(request["callbackAddress"]).rstrip("/")
    await _until(lambda: _awaits(node, consumer_pid, None))
    first = _start_with_token(provider_pid, consumer_pid, "the-first-token")
    assert (await peer.post(f"{callback}/transfers/{consumer_pid}/start", first))[0] == 200
    # The provider crashed before it saw our acknowledgement, and starts again (with new tokens, say).
    again = _start_with_token(provider_pid, consumer_pid, "the-newer-token")
    status, body = await peer.post(f"{callback}/transfers/{consumer_pid}/start", again)
    assert status == 200, body
    transfer = await _transfer(node, consumer_pid)
    assert transfer.state == "STARTED"
    values = [p["value"] for p in transfer.data_address["endpointProperties"]]
    assert "the-newer-token" in values


def _start_with_token(provider_pid: str, consumer_pid: str, token: str) -> dict[str, Any]:
    message = transfer_start(provider_pid, consumer_pid)
    message["dataAddress"]["endpointProperties"] = [
        {"@type": "EndpointProperty", "name": "authorization", "value": token},
        {"@type": "EndpointProperty", "name": "authType", "value": "bearer"},
    ]
    return message


async def _awaits(node: Node, transfer_id: str, message: str | None) -> bool:
    transfer = await _transfer(node, transfer_id)
    return transfer is not None and transfer.awaiting_ack == message


async def test_a_consumer_waiting_for_a_start_terminates_at_its_deadline_and_tells_the_provider(
    node_factory: NodeFactory, http: aiohttp.ClientSession, peer: Peer
) -> None:
    node = await _cut(node_factory, peer_deadline_seconds=1)
    provider_pid = pid()

    async def answer(body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        return 201, transfer_process(provider_pid, body["consumerPid"], "REQUESTED")

    peer.on("POST", "/transfers/request", answer)
    peer.on("POST", f"/transfers/{provider_pid}/termination", _ack)
    await _trigger_transfer(http, node, "ATPC0103", peer.url)
    consumer_pid = (await peer.wait_for("/transfers/request"))["consumerPid"]
    termination = await peer.wait_for(f"/transfers/{provider_pid}/termination")
    assert termination["@type"] == "TransferTerminationMessage" and termination["code"] == "deadline"
    transfer = await _transfer(node, consumer_pid)
    assert transfer.state == "TERMINATED"
    assert "no TransferStartMessage from the provider within 1 s in state REQUESTED" in transfer.error_detail


async def test_a_consumer_waiting_for_an_agreement_terminates_at_its_deadline(
    node_factory: NodeFactory, http: aiohttp.ClientSession, peer: Peer
) -> None:
    node = await _cut(node_factory, peer_deadline_seconds=1)
    provider_pid = pid()

    async def answer(body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        return 201, negotiation(provider_pid, body["consumerPid"], "REQUESTED")

    async def ack(body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        return 200, negotiation(provider_pid, body["consumerPid"], "TERMINATED")

    peer.on("POST", "/negotiations/request", answer)
    peer.on("POST", f"/negotiations/{provider_pid}/termination", ack)
    body = {
        "providerId": TCK_PARTICIPANT,
        "offerId": "offerACNC0101",
        "datasetId": "ACNC0101",
        "connectorAddress": peer.url,
    }
    async with http.post(
        node.protocol_url + "/tck/negotiations/requests", json=body, headers={"Authorization": TOKEN}
    ) as r:
        assert r.status < 300
    consumer_pid = (await peer.wait_for("/negotiations/request"))["consumerPid"]
    await peer.wait_for(f"/negotiations/{provider_pid}/termination")
    async with node.store.read() as tx:
        ended = await tx.negotiations.get(consumer_pid)
    assert ended.state == "TERMINATED"
    assert "no ContractAgreementMessage or ContractOfferMessage from the provider within 1 s" in ended.error_detail


# Provider side: the scripted peer consumes.


async def test_the_agreement_is_stored_when_the_verification_implies_its_delivery(
    node_factory: NodeFactory, peer: Peer
) -> None:
    node = await _cut(node_factory)
    consumer_pid = pid()

    async def lost(body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        # The agreement arrives, but its acknowledgement never reaches the provider (killed meanwhile, say).
        return 500, {"error": "connection reset"}

    async def finalized(body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        return 200, negotiation(body["providerPid"], consumer_pid, "FINALIZED")

    peer.on("POST", f"/negotiations/{consumer_pid}/agreement", lost)
    peer.on("POST", f"/negotiations/{consumer_pid}/events", finalized)
    request = contract_request(consumer_pid, "CD123:ACN0104:456", "ACN0104", peer.url)
    status, created = await peer.post(node.protocol_url + "/api/dsp/2025-1/negotiations/request", request)
    assert status == 201, created
    provider_pid = created["providerPid"]
    agreement = (await peer.wait_for(f"/negotiations/{consumer_pid}/agreement"))["agreement"]
    status, body = await peer.post(
        node.protocol_url + f"/api/dsp/2025-1/negotiations/{provider_pid}/agreement/verification",
        verification(provider_pid, consumer_pid),
    )
    assert status == 200, body
    await peer.wait_for(f"/negotiations/{consumer_pid}/events")
    async with node.store.read() as tx:
        ended = await tx.negotiations.get(provider_pid)
        stored = await tx.agreements.get(agreement["@id"])
    assert ended.state == "FINALIZED" and ended.agreement_id == agreement["@id"]
    assert stored is not None and stored.negotiation_id == provider_pid, "FINALIZED without its agreement"
    async with node.store.read() as tx:
        assert await tx.outbox.pending(provider_pid) == [], "the agreement the consumer verified is not sent again"


async def test_a_redelivered_agreement_is_acknowledged_after_the_consumer_verified(
    node_factory: NodeFactory, http: aiohttp.ClientSession, peer: Peer
) -> None:
    node = await _cut(node_factory)
    provider_pid = pid()

    async def answer(body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        return 201, negotiation(provider_pid, body["consumerPid"], "REQUESTED")

    async def verified(body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        return 200, negotiation(provider_pid, body["consumerPid"], "VERIFIED")

    peer.on("POST", "/negotiations/request", answer)
    peer.on("POST", f"/negotiations/{provider_pid}/agreement/verification", verified)
    body = {
        "providerId": TCK_PARTICIPANT,
        "offerId": "offerACNC0104",
        "datasetId": "ACNC0104",
        "connectorAddress": peer.url,
    }
    async with http.post(
        node.protocol_url + "/tck/negotiations/requests", json=body, headers={"Authorization": TOKEN}
    ) as r:
        assert r.status < 300
    request = await peer.wait_for("/negotiations/request")
    consumer_pid, callback = request["consumerPid"], str(request["callbackAddress"]).rstrip("/")
    message = agreement_message(
        provider_pid, consumer_pid, "ACNC0104", node.settings.effective_participant_id, peer.url
    )
    url = f"{callback}/negotiations/{consumer_pid}/agreement"
    assert (await peer.post(url, message))[0] == 200
    await peer.wait_for(f"/negotiations/{provider_pid}/agreement/verification")
    # The provider did not see our acknowledgement and sends the same agreement again: acknowledged.
    status, again = await peer.post(url, message)
    assert status == 200, again
    other = {**message, "agreement": {**message["agreement"], "@id": "urn:uuid:another-agreement"}}
    status, refused = await peer.post(url, other)
    assert status == 400 and "already has agreement" in " ".join(refused["reason"])


async def test_a_refused_start_ends_the_transfer_and_tells_the_consumer(node_factory: NodeFactory, peer: Peer) -> None:
    node = await _cut(node_factory)
    consumer_pid = pid()

    async def refuse(body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        return 400, {"@type": "TransferError", "reason": ["not expected in this state"]}

    peer.on("POST", f"/transfers/{consumer_pid}/start", refuse)
    peer.on("POST", f"/transfers/{consumer_pid}/termination", _ack)
    request = transfer_request(consumer_pid, "ATP0204", peer.url)
    status, created = await peer.post(node.protocol_url + "/api/dsp/2025-1/transfers/request", request)
    assert status == 201, created
    termination = await peer.wait_for(f"/transfers/{consumer_pid}/termination")
    assert "answered 400" in " ".join(termination["reason"])
    transfer = await _transfer(node, created["providerPid"])
    assert transfer.state == "TERMINATED" and "not expected in this state" in transfer.error_detail


async def test_outbox_payloads_are_sealed_at_rest(node_factory: NodeFactory, peer: Peer) -> None:
    node = await _cut(node_factory)
    consumer_pid = pid()
    held = asyncio.Event()

    async def unavailable(body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        held.set()
        return 503, {"error": "try later"}

    peer.on("POST", f"/transfers/{consumer_pid}/start", unavailable)
    request = transfer_request(consumer_pid, "ATP0202", peer.url)
    assert (await peer.post(node.protocol_url + "/api/dsp/2025-1/transfers/request", request))[0] == 201
    start = await peer.wait_for(f"/transfers/{consumer_pid}/start")
    await held.wait()
    token = next(p["value"] for p in start["dataAddress"]["endpointProperties"] if p["name"] == "authorization")
    database = (node.settings.data_dir / "connector.db").read_bytes()
    for suffix in ("-wal", "-shm"):
        extra = node.settings.data_dir / f"connector.db{suffix}"
        if extra.exists():
            database += extra.read_bytes()
    assert token.encode() not in database and token.split(".")[1].encode() not in database


async def test_a_slow_peer_keeps_the_lease_and_gets_each_message_once(node_factory: NodeFactory, peer: Peer) -> None:
    node = await _cut(node_factory, outbox_lease_seconds=1)
    consumer_pid = pid()

    async def slow(body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        await asyncio.sleep(3.5)  # longer than three leases
        return await _ack(body)

    peer.on("POST", f"/transfers/{consumer_pid}/start", slow)
    request = transfer_request(consumer_pid, "ATP0203", peer.url)
    status, created = await peer.post(node.protocol_url + "/api/dsp/2025-1/transfers/request", request)
    assert status == 201
    await _until(lambda: _state_is(node, created["providerPid"], "STARTED"), budget=20)
    await asyncio.sleep(1.5)
    assert peer.count(f"/transfers/{consumer_pid}/start") == 1


# Two real nodes: suspending and resuming a pull transfer.


async def test_a_resume_issues_fresh_tokens_and_only_the_side_that_suspended_may_resume(
    node_factory: NodeFactory, http: aiohttp.ClientSession, source: Backend
) -> None:
    provider = await node_factory(api_key=API_KEY)
    consumer = await node_factory(api_key=API_KEY)
    transfer_id, address = await _started_pull(provider, consumer, http, source)
    consumer_api, provider_api = Management(http, consumer), Management(http, provider)
    endpoint = address["endpoint"] + "/BAT-1"
    _, provided = await provider_api.call("POST", "/management/v3/transferprocesses/request")
    provider_id = provided[0]["@id"]

    async def status_with(token: str) -> int:
        async with http.get(endpoint, headers={"Authorization": token}) as response:
            return response.status

    async def edr_token() -> str:
        _, fresh = await consumer_api.call("GET", f"/management/v3/edrs/{transfer_id}/dataaddress")
        return str(fresh["authorization"])

    async def command(api: Management, process_id: str, verb: str) -> tuple[int, Any]:
        body = {"@context": EDC_CONTEXT, "@type": "SuspendTransfer", "reason": "maintenance"}
        return await api.call("POST", f"/management/v3/transferprocesses/{process_id}/{verb}", body)

    first = address["authorization"]
    assert await status_with(first) == 200

    # The provider suspends: the consumer may not resume it.
    assert (await command(provider_api, provider_id, "suspend"))[0] == 204
    await _wait(consumer_api, f"/management/v3/transferprocesses/{transfer_id}", {"SUSPENDED"})
    assert await status_with(first) == 403
    status, refused = await command(consumer_api, transfer_id, "resume")
    assert status == 400, refused
    assert "suspended by the provider; only the provider can resume it" in str(refused), refused

    # The provider resumes: new tokens; those of before the suspension stay dead.
    assert (await command(provider_api, provider_id, "resume"))[0] == 204
    await _wait(consumer_api, f"/management/v3/transferprocesses/{transfer_id}", {"STARTED"})
    second = await edr_token()
    assert second != first and await status_with(second) == 200 and await status_with(first) == 403

    # The consumer suspends and resumes: the provider answers its resume with fresh tokens.
    assert (await command(consumer_api, transfer_id, "suspend"))[0] == 204
    await _wait(provider_api, f"/management/v3/transferprocesses/{provider_id}", {"SUSPENDED"})
    assert (await command(consumer_api, transfer_id, "resume"))[0] == 204
    await _wait(provider_api, f"/management/v3/transferprocesses/{provider_id}", {"STARTED"})
    async with asyncio.timeout(10):
        while True:
            third = await edr_token()
            if third != second:
                break
            await asyncio.sleep(0.05)
    assert await status_with(third) == 200
    assert await status_with(second) == 403, "a token issued before the suspension works again after a resume"


# What a review of the engine found: each rule with the scenario that broke it.


async def _provider_transfer(node: Node, peer: Peer, agreement: str) -> tuple[str, str, dict[str, Any]]:
    """Open a transfer on the node as provider; return (consumer pid, provider pid, the start it sent)."""
    consumer_pid = pid()
    peer.on("POST", f"/transfers/{consumer_pid}/start", _ack)
    request = transfer_request(consumer_pid, agreement, peer.url)
    status, created = await peer.post(node.protocol_url + "/api/dsp/2025-1/transfers/request", request)
    assert status == 201, created
    start = await peer.wait_for(f"/transfers/{consumer_pid}/start")
    await _until(lambda: _awaits(node, created["providerPid"], None))
    return consumer_pid, created["providerPid"], start


def _message(kind: str, provider_pid: str, consumer_pid: str) -> dict[str, Any]:
    from tests.tck_harness import transfer_message

    return transfer_message(kind, provider_pid, consumer_pid)


async def _unavailable(body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    return 503, {"error": "try again later"}


async def test_a_termination_on_its_way_cannot_be_undone_by_the_consumer(
    node_factory: NodeFactory, http: aiohttp.ClientSession, peer: Peer
) -> None:
    node = await _cut(node_factory, outbox_retry_seconds=1)
    consumer_pid, provider_pid, start = await _provider_transfer(node, peer, "ATP0201")
    peer.on("POST", f"/transfers/{consumer_pid}/termination", _unavailable)
    body = {"@context": EDC_CONTEXT, "@type": "TerminateTransfer", "reason": "contract ended"}
    api = Management(http, node, api_key=None)
    assert (await api.call("POST", f"/management/v3/transferprocesses/{provider_pid}/terminate", body))[0] == 204
    await peer.wait_for(f"/transfers/{consumer_pid}/termination")
    base = node.protocol_url + f"/api/dsp/2025-1/transfers/{provider_pid}"
    status, refused = await peer.post(
        base + "/suspension", _message("TransferSuspensionMessage", provider_pid, consumer_pid)
    )
    assert status == 400 and "terminating" in " ".join(refused["reason"]), refused
    peer.on("POST", f"/transfers/{consumer_pid}/termination", _ack)
    await _until(lambda: _state_is(node, provider_pid, "TERMINATED"))
    token = next(p["value"] for p in start["dataAddress"]["endpointProperties"] if p["name"] == "authorization")
    async with http.get(node.protocol_url + "/public/x", headers={"Authorization": token}) as response:
        assert response.status == 403


async def test_the_side_that_did_not_suspend_cannot_resume_over_the_protocol(
    node_factory: NodeFactory, http: aiohttp.ClientSession, peer: Peer
) -> None:
    node = await _cut(node_factory)
    consumer_pid, provider_pid, _ = await _provider_transfer(node, peer, "ATP0202")
    peer.on("POST", f"/transfers/{consumer_pid}/suspension", _ack)
    body = {"@context": EDC_CONTEXT, "@type": "SuspendTransfer", "reason": "maintenance"}
    api = Management(http, node, api_key=None)
    assert (await api.call("POST", f"/management/v3/transferprocesses/{provider_pid}/suspend", body))[0] == 204
    await _until(lambda: _state_is(node, provider_pid, "SUSPENDED"))
    assert (await _transfer(node, provider_pid)).suspended_by == "PROVIDER"
    url = node.protocol_url + f"/api/dsp/2025-1/transfers/{provider_pid}/start"
    status, refused = await peer.post(url, transfer_start(provider_pid, consumer_pid, with_address=False))
    assert status == 400 and "suspended by the provider" in " ".join(refused["reason"]), refused
    assert (await _transfer(node, provider_pid)).state == "SUSPENDED"


async def test_a_suspension_makes_a_pending_start_moot(node_factory: NodeFactory, peer: Peer) -> None:
    node = await _cut(node_factory, outbox_retry_seconds=1)
    consumer_pid, provider_pid, _ = await _provider_transfer(node, peer, "ATP0203")
    base = node.protocol_url + f"/api/dsp/2025-1/transfers/{provider_pid}"
    suspension = _message("TransferSuspensionMessage", provider_pid, consumer_pid)
    assert (await peer.post(base + "/suspension", suspension))[0] == 200
    # The consumer resumes; the provider owes it fresh tokens, which do not get through at first.
    peer.on("POST", f"/transfers/{consumer_pid}/start", _unavailable)
    assert (await peer.post(base + "/start", transfer_start(provider_pid, consumer_pid, with_address=False)))[0] == 200
    await peer.wait_for(f"/transfers/{consumer_pid}/start", times=2)
    # Then the consumer suspends again: the start the provider owed from STARTED is moot.
    assert (await peer.post(base + "/suspension", suspension))[0] == 200
    transfer = await _transfer(node, provider_pid)
    assert transfer.state == "SUSPENDED" and transfer.awaiting_ack is None
    async with node.store.read() as tx:
        assert await tx.outbox.pending(provider_pid) == []


async def test_crossing_completion_and_suspension_end_alike(
    node_factory: NodeFactory, http: aiohttp.ClientSession, peer: Peer
) -> None:
    node = await _cut(node_factory, outbox_retry_seconds=0.5)
    consumer_pid, provider_pid, _ = await _provider_transfer(node, peer, "ATP0204")
    peer.on("POST", f"/transfers/{consumer_pid}/completion", _unavailable)
    api = Management(http, node, api_key=None)
    assert (await api.call("POST", f"/management/v3/transferprocesses/{provider_pid}/complete"))[0] == 204
    await peer.wait_for(f"/transfers/{consumer_pid}/completion")
    # The consumer suspends while the provider's completion is on its way: the provider's message wins.
    suspension = _message("TransferSuspensionMessage", provider_pid, consumer_pid)
    url = node.protocol_url + f"/api/dsp/2025-1/transfers/{provider_pid}/suspension"
    status, refused = await peer.post(url, suspension)
    assert status == 409, refused
    peer.on("POST", f"/transfers/{consumer_pid}/completion", _ack)
    await _until(lambda: _state_is(node, provider_pid, "COMPLETED"))


async def test_a_consumer_transfer_the_provider_never_acknowledged_can_be_terminated(
    node_factory: NodeFactory, http: aiohttp.ClientSession
) -> None:
    node = await _cut(node_factory)
    await _trigger_transfer(http, node, "ATPC0301", "http://127.0.0.1:9")
    api = Management(http, node, api_key=None)
    status, listed = await api.call("POST", "/management/v3/transferprocesses/request")
    assert status == 200 and len(listed) == 1 and listed[0]["state"] == "INITIAL"
    body = {"@context": EDC_CONTEXT, "@type": "TerminateTransfer", "reason": "wrong provider"}
    status, answer = await api.call("POST", f"/management/v3/transferprocesses/{listed[0]['@id']}/terminate", body)
    assert status == 204, answer
    assert (await _transfer(node, listed[0]["@id"])).state == "TERMINATED"


async def test_a_request_handled_twice_at_once_opens_one_negotiation(node_factory: NodeFactory, peer: Peer) -> None:
    node = await _cut(node_factory)
    consumer_pid = pid()
    request = contract_request(consumer_pid, "CD123:ACN0202:456", "ACN0202", peer.url)
    url = node.protocol_url + "/api/dsp/2025-1/negotiations/request"
    answers = await asyncio.gather(*(peer.post(url, request) for _ in range(6)))
    assert all(status in (200, 201) for status, _ in answers), answers
    assert len({body["providerPid"] for _, body in answers}) == 1
    async with node.store.read() as tx:
        rows = await tx.negotiations.query(QuerySpec(limit=50))
    assert [n.consumer_pid for n in rows].count(consumer_pid) == 1


async def test_a_failed_message_the_process_no_longer_awaits_changes_nothing(node_factory: NodeFactory) -> None:
    node = await _cut(node_factory)
    from connector.domain.negotiation import Message as N
    from connector.domain.negotiation import Negotiation, NegotiationState, Role
    from connector.services.negotiations import NegotiationService

    service = NegotiationService(node.store, None, "did:web:me", "http://me", lambda: None)  # type: ignore[arg-type]
    live = Negotiation(
        "urn:uuid:n-1",
        Role.PROVIDER,
        NegotiationState.ACCEPTED,
        "urn:uuid:n-1",
        "c-1",
        "did:web:peer",
        "http://peer",
        {},
        "a",
    )
    async with node.store.transaction() as tx:
        await tx.negotiations.add(live)
        await tx.outbox.owe(live.id, N.OFFER.value, "http://peer/negotiations/c-1/offers", {}, "did:web:peer", 0)
        (item,) = await tx.outbox.claim("owner-1", 10, 60_000, 5)
    # The offer's retry failed after the consumer's acceptance had implied it arrived.
    await service.on_undeliverable(item, "answered 400: not in this state", "owner-1")
    async with node.store.read() as tx:
        assert (await tx.negotiations.get(live.id)).state == NegotiationState.ACCEPTED


async def test_a_transfer_request_implies_the_consumer_received_the_finalized_event(
    node_factory: NodeFactory, peer: Peer
) -> None:
    node = await _cut(node_factory, outbox_retry_seconds=1)
    consumer_pid = pid()

    async def agreed(body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        return 200, negotiation(body["providerPid"], consumer_pid, "AGREED")

    peer.on("POST", f"/negotiations/{consumer_pid}/agreement", agreed)
    peer.on("POST", f"/negotiations/{consumer_pid}/events", _unavailable)  # the event's answer gets lost
    request = contract_request(consumer_pid, "CD123:ACN0104:456", "ACN0104", peer.url)
    status, created = await peer.post(node.protocol_url + "/api/dsp/2025-1/negotiations/request", request)
    assert status == 201, created
    provider_pid = created["providerPid"]
    agreement = (await peer.wait_for(f"/negotiations/{consumer_pid}/agreement"))["agreement"]
    url = node.protocol_url + f"/api/dsp/2025-1/negotiations/{provider_pid}/agreement/verification"
    assert (await peer.post(url, verification(provider_pid, consumer_pid)))[0] == 200
    await peer.wait_for(f"/negotiations/{consumer_pid}/events")
    transfer_pid = pid()
    peer.on("POST", f"/transfers/{transfer_pid}/start", _ack)
    status, body = await peer.post(
        node.protocol_url + "/api/dsp/2025-1/transfers/request",
        transfer_request(transfer_pid, agreement["@id"], peer.url),
    )
    assert status == 201, body
    async with node.store.read() as tx:
        finalized = await tx.negotiations.get(provider_pid)
        owed = await tx.outbox.pending(provider_pid)
    assert finalized.state == "FINALIZED" and owed == []


async def test_processes_waiting_when_deadlines_are_switched_on_get_one(
    tmp_path: Any, http: aiohttp.ClientSession, peer: Peer
) -> None:
    from connector.app import running_node
    from tests.conftest import make_settings

    provider_pid = pid()

    async def answer(body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        return 201, transfer_process(provider_pid, body["consumerPid"], "REQUESTED")

    peer.on("POST", "/transfers/request", answer)
    peer.on("POST", f"/transfers/{provider_pid}/termination", _ack)
    common = {"tck_mode": True, "tck_authorization": TOKEN, "outbox_retry_seconds": 0.2, "data_dir": tmp_path / "data"}
    async with running_node(make_settings(tmp_path, peer_deadline_seconds=0, **common)) as node:
        await _trigger_transfer(http, node, "ATPC0102", peer.url)
        consumer_pid = (await peer.wait_for("/transfers/request"))["consumerPid"]
        await _until(lambda: _awaits(node, consumer_pid, None))
        assert (await _transfer(node, consumer_pid)).deadline_at is None
    async with running_node(make_settings(tmp_path, peer_deadline_seconds=1, **common)) as node:
        await peer.wait_for(f"/transfers/{provider_pid}/termination")
        assert (await _transfer(node, consumer_pid)).state == "TERMINATED"


async def test_a_request_redelivered_after_its_offer_was_withdrawn_gets_its_negotiation(
    node_factory: NodeFactory, peer: Peer, http: aiohttp.ClientSession
) -> None:
    node = await _cut(node_factory)
    consumer_pid = pid()
    request = contract_request(consumer_pid, "CD123:ACN0202:456", "ACN0202", peer.url)
    url = node.protocol_url + "/api/dsp/2025-1/negotiations/request"
    status, first = await peer.post(url, request)
    assert status == 201, first
    api = Management(http, node)
    status, body = await api.call("DELETE", "/management/v3/contractdefinitions/CD123")
    assert status == 204, body
    # A new request for the withdrawn offer is refused; the redelivery of the first is answered with its negotiation.
    assert (await peer.post(url, contract_request(pid(), "CD123:ACN0202:456", "ACN0202", peer.url)))[0] == 404
    status, again = await peer.post(url, request)
    assert status in (200, 201), again
    assert again["providerPid"] == first["providerPid"]
