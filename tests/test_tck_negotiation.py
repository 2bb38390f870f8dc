"""The DSP TCK's contract-negotiation cases (CN:01-01 … CN:03-04 and CN_C:01-01 … CN_C:03-06), reproduced.

A real node runs in conformance test mode; `tests/tck_harness.py` plays the TCK over HTTP on loopback.
Each test follows the sequence of its TCK case (eclipse-dataspacetck/dsp-tck, classes
ContractNegotiationProvider0*Test and ContractNegotiationConsumer0*Test). Where the TCK is lenient this
suite is stricter: 400 (not any 4xx) for invalid transitions with a schema-valid ContractNegotiationError
body, every CUT message schema-valid, and no CUT message the case does not expect.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest

from tests.conftest import NodeFactory
from tests.tck_harness import (
    TOKEN,
    Tck,
    agreement_message,
    contract_request,
    counter_request,
    event,
    negotiation,
    offer_message,
    pid,
    termination,
    verification,
)


@pytest.fixture
async def tck(node_factory: NodeFactory, http: aiohttp.ClientSession) -> AsyncIterator[Tck]:
    node = await node_factory(tck_mode=True, tck_authorization=TOKEN, outbox_retry_seconds=0.2)
    harness = Tck(
        http,
        dsp_url=node.protocol_url + "/api/dsp/2025-1",
        trigger_url=node.protocol_url + "/tck/negotiations/requests",
        agent_id=node.settings.effective_participant_id,
        management_url=node.management_url,
    )
    await harness.start()
    try:
        yield harness
        harness.verify()
    finally:
        await harness.stop()


# CUT = provider (the TCK sends the initial ContractRequestMessage).


async def _request(tck: Tck, dataset: str, consumer_pid: str) -> str:
    body = await tck.send_dsp(
        "/negotiations/request", contract_request(consumer_pid, f"CD123:{dataset}:456", dataset, tck.callback)
    )
    assert body["@type"] == "ContractNegotiation" and body["consumerPid"] == consumer_pid
    assert body["state"] == "REQUESTED"
    return str(body["providerPid"])


def _at(consumer_pid: str, suffix: str = "") -> str:
    return f"/negotiations/{consumer_pid}{suffix}"


async def _provider_state(tck: Tck, provider_pid: str) -> str:
    return await tck.state(f"{tck.dsp_url}/negotiations/{provider_pid}")


async def test_cn_01_01_offer_then_consumer_terminates(tck: Tck) -> None:
    c = pid()
    offered = tck.expect("POST", _at(c, "/offers"))
    p = await _request(tck, "ACN0101", c)
    offer = await tck.received(offered, "ContractOfferMessage")
    assert offer["providerPid"] == p and offer["offer"]["target"] == "ACN0101"
    await tck.send_dsp(f"/negotiations/{p}/termination", termination(p, c))
    assert await _provider_state(tck, p) == "TERMINATED"


async def test_cn_01_02_counter_offer_then_provider_terminates(tck: Tck) -> None:
    c = pid()
    offered = tck.expect("POST", _at(c, "/offers"))
    p = await _request(tck, "ACN0102", c)
    await tck.received(offered, "ContractOfferMessage")
    terminated = tck.expect("POST", _at(c, "/termination"))
    await tck.send_dsp(f"/negotiations/{p}/request", counter_request(p, c, "CD123:ACN0102:456", "ACN0102"))
    await tck.received(terminated, "ContractNegotiationTerminationMessage")
    assert await _provider_state(tck, p) == "TERMINATED"


async def test_cn_01_03_offer_accepted_agreed_verified_finalized(tck: Tck) -> None:
    c = pid()
    offered = tck.expect("POST", _at(c, "/offers"))
    p = await _request(tck, "ACN0103", c)
    await tck.received(offered, "ContractOfferMessage")
    agreed = tck.expect("POST", _at(c, "/agreement"))
    await tck.send_dsp(f"/negotiations/{p}/events", event(p, c, "ACCEPTED"))
    agreement = await tck.received(agreed, "ContractAgreementMessage")
    assert agreement["agreement"]["assignee"] == "TCK_PARTICIPANT"
    assert agreement["agreement"]["assigner"] == tck.agent_id
    finalized = tck.expect("POST", _at(c, "/events"))
    await tck.send_dsp(f"/negotiations/{p}/agreement/verification", verification(p, c))
    assert (await tck.received(finalized, "ContractNegotiationEventMessage"))["eventType"] == "FINALIZED"
    assert await _provider_state(tck, p) == "FINALIZED"


async def test_cn_01_04_agreement_verified_finalized(tck: Tck) -> None:
    c = pid()
    agreed = tck.expect("POST", _at(c, "/agreement"))
    p = await _request(tck, "ACN0104", c)
    await tck.received(agreed, "ContractAgreementMessage")
    finalized = tck.expect("POST", _at(c, "/events"))
    await tck.send_dsp(f"/negotiations/{p}/agreement/verification", verification(p, c))
    assert (await tck.received(finalized, "ContractNegotiationEventMessage"))["eventType"] == "FINALIZED"
    assert await _provider_state(tck, p) == "FINALIZED"


async def test_cn_02_01_provider_terminates_the_request(tck: Tck) -> None:
    c = pid()
    terminated = tck.expect("POST", _at(c, "/termination"))
    p = await _request(tck, "ACN0201", c)
    await tck.received(terminated, "ContractNegotiationTerminationMessage")
    assert await _provider_state(tck, p) == "TERMINATED"


async def test_cn_02_02_consumer_terminates_while_requested(tck: Tck) -> None:
    c = pid()
    p = await _request(tck, "ACN0202", c)
    assert await _provider_state(tck, p) == "REQUESTED"
    await tck.send_dsp(f"/negotiations/{p}/termination", termination(p, c))
    assert await _provider_state(tck, p) == "TERMINATED"


async def test_cn_02_03_consumer_terminates_while_agreed(tck: Tck) -> None:
    c = pid()
    agreed = tck.expect("POST", _at(c, "/agreement"))
    p = await _request(tck, "ACN0203", c)
    await tck.received(agreed, "ContractAgreementMessage")
    await tck.send_dsp(f"/negotiations/{p}/termination", termination(p, c))
    assert await _provider_state(tck, p) == "TERMINATED"


async def test_cn_02_04_consumer_terminates_while_offered(tck: Tck) -> None:
    c = pid()
    offered = tck.expect("POST", _at(c, "/offers"))
    p = await _request(tck, "ACN0204", c)
    await tck.received(offered, "ContractOfferMessage")
    await tck.send_dsp(f"/negotiations/{p}/termination", termination(p, c))
    assert await _provider_state(tck, p) == "TERMINATED"


async def test_cn_02_05_provider_offers_then_terminates(tck: Tck) -> None:
    c = pid()
    offered = tck.expect("POST", _at(c, "/offers"))
    p = await _request(tck, "ACN0205", c)
    await tck.received(offered, "ContractOfferMessage")
    # As the TCK: the handler for the follow-up is registered only once the offer was seen.
    terminated = tck.expect("POST", _at(c, "/termination"))
    await tck.received(terminated, "ContractNegotiationTerminationMessage")
    assert await _provider_state(tck, p) == "TERMINATED"


async def test_cn_02_06_provider_terminates_while_accepted(tck: Tck) -> None:
    c = pid()
    offered = tck.expect("POST", _at(c, "/offers"))
    p = await _request(tck, "ACN0206", c)
    await tck.received(offered, "ContractOfferMessage")
    terminated = tck.expect("POST", _at(c, "/termination"))
    await tck.send_dsp(f"/negotiations/{p}/events", event(p, c, "ACCEPTED"))
    await tck.received(terminated, "ContractNegotiationTerminationMessage")
    assert await _provider_state(tck, p) == "TERMINATED"


async def test_cn_02_07_provider_terminates_while_verified(tck: Tck) -> None:
    c = pid()
    agreed = tck.expect("POST", _at(c, "/agreement"))
    p = await _request(tck, "ACN0207", c)
    await tck.received(agreed, "ContractAgreementMessage")
    terminated = tck.expect("POST", _at(c, "/termination"))
    await tck.send_dsp(f"/negotiations/{p}/agreement/verification", verification(p, c))
    await tck.received(terminated, "ContractNegotiationTerminationMessage")
    assert await _provider_state(tck, p) == "TERMINATED"


async def test_cn_03_01_termination_after_finalized_is_refused(tck: Tck) -> None:
    c = pid()
    agreed = tck.expect("POST", _at(c, "/agreement"))
    p = await _request(tck, "ACN0301", c)
    await tck.received(agreed, "ContractAgreementMessage")
    finalized = tck.expect("POST", _at(c, "/events"))
    await tck.send_dsp(f"/negotiations/{p}/agreement/verification", verification(p, c))
    await tck.received(finalized, "ContractNegotiationEventMessage")
    assert await _provider_state(tck, p) == "FINALIZED"
    await tck.send_dsp(f"/negotiations/{p}/termination", termination(p, c), expect="4xx")
    assert await _provider_state(tck, p) == "FINALIZED"


async def test_cn_03_02_verification_while_offered_is_refused(tck: Tck) -> None:
    c = pid()
    offered = tck.expect("POST", _at(c, "/offers"))
    p = await _request(tck, "ACN0302", c)
    await tck.received(offered, "ContractOfferMessage")
    await tck.send_dsp(f"/negotiations/{p}/agreement/verification", verification(p, c), expect="4xx")
    assert await _provider_state(tck, p) == "OFFERED"


async def test_cn_03_03_verification_while_accepted_is_refused(tck: Tck) -> None:
    c = pid()
    offered = tck.expect("POST", _at(c, "/offers"))
    p = await _request(tck, "ACN0303", c)
    await tck.received(offered, "ContractOfferMessage")
    await tck.send_dsp(f"/negotiations/{p}/events", event(p, c, "ACCEPTED"))
    await tck.send_dsp(f"/negotiations/{p}/agreement/verification", verification(p, c), expect="4xx")
    assert await _provider_state(tck, p) == "ACCEPTED"


async def test_cn_03_04_second_counter_offer_while_requested_is_refused(tck: Tck) -> None:
    c = pid()
    offered = tck.expect("POST", _at(c, "/offers"))
    p = await _request(tck, "ACN0304", c)
    await tck.received(offered, "ContractOfferMessage")
    await tck.send_dsp(f"/negotiations/{p}/request", counter_request(p, c, "CD123:ACN0304:456", "ACN0304"))
    assert await _provider_state(tck, p) == "REQUESTED"
    await tck.send_dsp(
        f"/negotiations/{p}/request", counter_request(p, c, "CD123:ACN0304:456", "ACN0304"), expect="4xx"
    )
    assert await _provider_state(tck, p) == "REQUESTED"


# CUT = consumer (the TCK triggers it, then plays provider).


class _Consumer:
    """One negotiation the CUT started as consumer: the TCK's pid, the CUT's pid and callback address."""

    def __init__(self, tck: Tck, dataset: str, provider_pid: str, request: dict[str, Any]) -> None:
        self.tck = tck
        self.dataset = dataset
        self.p = provider_pid
        self.c = str(request["consumerPid"])
        self.callback = str(request["callbackAddress"]).rstrip("/")

    def at(self, suffix: str = "") -> str:
        """A path on the TCK's side (where the CUT sends)."""
        return f"/negotiations/{self.p}{suffix}"

    async def send(self, suffix: str, message: dict[str, Any], expect: str = "2xx") -> None:
        """Send to the CUT's callback for this negotiation."""
        await self.tck.send(f"{self.callback}/negotiations/{self.c}{suffix}", message, expect)

    async def offer(self, expect: str = "2xx") -> None:
        await self.send(
            "/offers", offer_message(self.p, self.c, "offer" + self.dataset, self.dataset, self.tck.agent_id), expect
        )

    async def agreement(self, expect: str = "2xx") -> None:
        message = agreement_message(self.p, self.c, self.dataset, self.tck.agent_id, self.tck.callback)
        await self.send("/agreement", message, expect)

    async def event(self, kind: str, expect: str = "2xx") -> None:
        await self.send("/events", event(self.p, self.c, kind), expect)

    async def terminate(self) -> None:
        await self.send("/termination", termination(self.p, self.c))

    async def state(self) -> str:
        return await self.tck.state(f"{self.callback}/negotiations/{self.c}")


async def _triggered(tck: Tck, dataset: str) -> _Consumer:
    provider_pid = pid()
    requested = tck.expect(
        "POST",
        "/negotiations/request",
        respond=lambda body: (200, negotiation(provider_pid, body["consumerPid"], "REQUESTED")),
    )
    await tck.trigger(dataset)
    request = await tck.received(requested, "ContractRequestMessage")
    assert request["offer"]["@id"] == "offer" + dataset and request["offer"]["target"] == dataset
    assert "providerPid" not in request
    return _Consumer(tck, dataset, provider_pid, request)


async def test_cn_c_01_01_accepted_verified_finalized(tck: Tck) -> None:
    n = await _triggered(tck, "ACNC0101")
    accepted = tck.expect("POST", n.at("/events"))
    await n.offer()
    assert (await tck.received(accepted, "ContractNegotiationEventMessage"))["eventType"] == "ACCEPTED"
    verified = tck.expect("POST", n.at("/agreement/verification"))
    await n.agreement()
    await tck.received(verified, "ContractAgreementVerificationMessage")
    await n.event("FINALIZED")
    assert await n.state() == "FINALIZED"


async def test_cn_c_01_02_consumer_counter_offers(tck: Tck) -> None:
    n = await _triggered(tck, "ACNC0102")
    countered = tck.expect("POST", n.at("/request"))
    await n.offer()
    counter = await tck.received(countered, "ContractRequestMessage")
    assert counter["providerPid"] == n.p and counter["consumerPid"] == n.c and "callbackAddress" not in counter
    await n.terminate()
    assert await n.state() == "TERMINATED"


async def test_cn_c_01_03_consumer_terminates_the_offer(tck: Tck) -> None:
    n = await _triggered(tck, "ACNC0103")
    terminated = tck.expect("POST", n.at("/termination"))
    await n.offer()
    await tck.received(terminated, "ContractNegotiationTerminationMessage")
    assert await n.state() == "TERMINATED"


async def test_cn_c_01_04_agreement_while_requested(tck: Tck) -> None:
    n = await _triggered(tck, "ACNC0104")
    verified = tck.expect("POST", n.at("/agreement/verification"))
    await n.agreement()
    await tck.received(verified, "ContractAgreementVerificationMessage")
    await n.event("FINALIZED")
    assert await n.state() == "FINALIZED"


async def test_cn_c_02_01_provider_terminates_while_requested(tck: Tck) -> None:
    n = await _triggered(tck, "ACNC0201")
    await n.terminate()
    assert await n.state() == "TERMINATED"


async def test_cn_c_02_02_consumer_terminates_after_its_request(tck: Tck) -> None:
    n = await _triggered(tck, "ACNC0202")
    # As the TCK: registered only after the request was seen (the CUT must not send it at once).
    terminated = tck.expect("POST", n.at("/termination"))
    await tck.received(terminated, "ContractNegotiationTerminationMessage")
    assert await n.state() == "TERMINATED"


async def test_cn_c_02_03_consumer_terminates_while_agreed(tck: Tck) -> None:
    n = await _triggered(tck, "ACNC0203")
    terminated = tck.expect("POST", n.at("/termination"))
    await n.agreement()
    await tck.received(terminated, "ContractNegotiationTerminationMessage")
    assert await n.state() == "TERMINATED"


async def test_cn_c_02_04_provider_terminates_while_offered(tck: Tck) -> None:
    n = await _triggered(tck, "ACNC0204")
    await n.offer()
    assert await n.state() == "OFFERED"
    await n.terminate()
    assert await n.state() == "TERMINATED"


async def test_cn_c_02_05_provider_terminates_while_accepted(tck: Tck) -> None:
    n = await _triggered(tck, "ACNC0205")
    accepted = tck.expect("POST", n.at("/events"))
    await n.offer()
    await tck.received(accepted, "ContractNegotiationEventMessage")
    await n.terminate()
    assert await n.state() == "TERMINATED"


async def test_cn_c_02_06_provider_terminates_while_verified(tck: Tck) -> None:
    n = await _triggered(tck, "ACNC0206")
    verified = tck.expect("POST", n.at("/agreement/verification"))
    await n.agreement()
    await tck.received(verified, "ContractAgreementVerificationMessage")
    await n.terminate()
    assert await n.state() == "TERMINATED"


async def test_cn_c_03_01_finalized_while_requested_is_refused(tck: Tck) -> None:
    n = await _triggered(tck, "ACNC0301")
    await n.event("FINALIZED", expect="4xx")
    assert await n.state() == "REQUESTED"


async def test_cn_c_03_02_agreement_while_offered_is_refused(tck: Tck) -> None:
    n = await _triggered(tck, "ACNC0302")
    await n.offer()
    assert await n.state() == "OFFERED"
    await n.agreement(expect="4xx")
    assert await n.state() == "OFFERED"


async def test_cn_c_03_03_finalized_while_offered_is_refused(tck: Tck) -> None:
    n = await _triggered(tck, "ACNC0303")
    await n.offer()
    await n.event("FINALIZED", expect="4xx")
    assert await n.state() == "OFFERED"


async def test_cn_c_03_04_finalized_while_accepted_is_refused(tck: Tck) -> None:
    n = await _triggered(tck, "ACNC0304")
    accepted = tck.expect("POST", n.at("/events"))
    await n.offer()
    await tck.received(accepted, "ContractNegotiationEventMessage")
    await n.event("FINALIZED", expect="4xx")
    assert await n.state() == "ACCEPTED"


async def test_cn_c_03_05_offer_while_accepted_is_refused(tck: Tck) -> None:
    n = await _triggered(tck, "ACNC0305")
    accepted = tck.expect("POST", n.at("/events"))
    await n.offer()
    await tck.received(accepted, "ContractNegotiationEventMessage")
    await n.offer(expect="4xx")
    assert await n.state() == "ACCEPTED"


async def test_cn_c_03_06_finalized_while_agreed_is_refused(tck: Tck) -> None:
    n = await _triggered(tck, "ACNC0306")
    accepted = tck.expect("POST", n.at("/events"))
    await n.offer()
    await tck.received(accepted, "ContractNegotiationEventMessage")
    await n.agreement()
    await n.event("FINALIZED", expect="4xx")
    assert await n.state() == "AGREED"


# Beyond the TCK.


async def test_an_offer_a_provider_initiates_waits_for_the_operator(tck: Tck) -> None:
    p = pid()
    message = {
        "@context": ["https://w3id.org/dspace/2025/1/context.jsonld"],
        "@type": "ContractOfferMessage",
        "providerPid": p,
        "callbackAddress": tck.callback,
        "offer": {"@id": "offer-1", "@type": "Offer", "target": "dataset-1", "permission": [{"action": "use"}]},
    }
    opened = await tck.send_dsp("/negotiations/offers", message)
    assert opened["state"] == "OFFERED" and opened["providerPid"] == p
    c = opened["consumerPid"]
    # Redelivered: the same negotiation, nothing new.
    assert (await tck.send_dsp("/negotiations/offers", message))["consumerPid"] == c
    async with tck.http.get(f"{tck.management_url}/management/v3/contractnegotiations/{c}") as response:
        shown = await response.json()
        assert shown["state"] == "OFFERED" and shown["type"] == "CONSUMER"
    accepted = tck.expect("POST", f"/negotiations/{p}/events")
    async with tck.http.post(f"{tck.management_url}/management/v3/contractnegotiations/{c}/approve") as response:
        assert response.status == 204, await response.text()
    assert (await tck.received(accepted, "ContractNegotiationEventMessage"))["eventType"] == "ACCEPTED"
    # Without a callbackAddress an offer cannot open a negotiation.
    del message["callbackAddress"]
    refused = await tck.send_dsp("/negotiations/offers", message, expect="4xx")
    assert "callbackAddress" in str(refused["reason"])


# Beyond the TCK: what test mode must not open up.


async def test_trigger_refuses_callers_without_the_tck_header(tck: Tck) -> None:
    body = {"providerId": "x", "offerId": "o", "datasetId": "d", "connectorAddress": tck.callback}
    async with tck.http.post(tck.trigger_url, json=body) as response:
        assert response.status == 401
        assert (await response.json())["@type"] == "ContractNegotiationError"
    async with tck.http.post(tck.trigger_url, json={"providerId": "x"}, headers={"Authorization": TOKEN}) as response:
        assert response.status == 400
        assert "offerId is required" in str(await response.json())


async def test_trigger_endpoint_is_absent_outside_test_mode(
    node_factory: NodeFactory, http: aiohttp.ClientSession
) -> None:
    node = await node_factory()
    async with http.post(node.protocol_url + "/tck/negotiations/requests", json={}) as response:
        assert response.status == 404
    # And the TCK's offer ids are not understood: only offers this node issued resolve.
    message = contract_request(pid(), "CD123:ACN0101:456", "ACN0101", "http://127.0.0.1:9/cb")
    async with http.post(
        node.protocol_url + "/api/dsp/2025-1/negotiations/request", json=message, headers={"Authorization": TOKEN}
    ) as response:
        assert response.status == 401
