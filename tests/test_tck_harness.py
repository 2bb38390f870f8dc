"""The TCK harness's own contract: whatever goes wrong inside its callback server reaches the test at once.

A failure inside a server handler (a schema check, a test's `respond` callback, even pytest.skip or
pytest.fail) happens in aiohttp's task, not the test's. The harness records it and hands it to the test
that waits, instead of leaving the test to wait out the TCK's budget and time out with no reason.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest

from tests import tck_harness
from tests.tck_harness import Tck, negotiation, offer_message, pid

# Generous on purpose: a harness that does not surface a failure would wait this long and then time out,
# and the tests below would fail on the TimeoutError rather than on any clock.
BUDGET = 60.0


@pytest.fixture
async def harness(http: aiohttp.ClientSession, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Tck]:
    monkeypatch.setattr(tck_harness, "WAIT", BUDGET)
    tck = Tck(http, dsp_url="http://127.0.0.1:9", trigger_url="http://127.0.0.1:9", agent_id="did:web:cut")
    await tck.start()
    try:
        yield tck
    finally:
        await tck.stop()


def _offer(consumer_pid: str) -> dict[str, Any]:
    return offer_message(pid(), consumer_pid, "offer-1", "dataset-1", "did:web:cut")


async def _post(http: aiohttp.ClientSession, url: str, **kwargs: Any) -> int:
    async with http.post(url, **kwargs) as response:
        await response.read()
        return response.status


async def test_a_valid_message_is_received(harness: Tck, http: aiohttp.ClientSession) -> None:
    c = pid()
    future = harness.expect("POST", f"/negotiations/{c}/offers")
    assert await _post(http, f"{harness.callback}/negotiations/{c}/offers", json=_offer(c)) == 200
    body = await harness.received(future, "ContractOfferMessage")
    assert body["consumerPid"] == c
    harness.verify()


async def test_a_message_of_an_unknown_type_fails_the_wait_at_once(harness: Tck, http: aiohttp.ClientSession) -> None:
    c = pid()
    future = harness.expect("POST", f"/negotiations/{c}/offers")
    message = {**_offer(c), "@type": "NoSuchMessage"}
    assert await _post(http, f"{harness.callback}/negotiations/{c}/offers", json=message) == 400
    with pytest.raises(AssertionError, match=rf"POST /negotiations/{c}/offers.*NoSuchMessage"):
        await harness.received(future, "ContractOfferMessage")


async def test_a_body_that_is_not_json_fails_the_wait_at_once(harness: Tck, http: aiohttp.ClientSession) -> None:
    c = pid()
    future = harness.expect("POST", f"/negotiations/{c}/offers")
    headers = {"Content-Type": "application/json"}
    assert await _post(http, f"{harness.callback}/negotiations/{c}/offers", data=b"{not json", headers=headers) == 400
    with pytest.raises(AssertionError, match=rf"POST /negotiations/{c}/offers.*JSON"):
        await harness.received(future, "ContractOfferMessage")


async def test_a_skip_inside_a_handler_fails_the_test_instead_of_hanging_it(
    harness: Tck, http: aiohttp.ClientSession
) -> None:
    c = pid()

    def respond(body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        pytest.skip("a fixture file is missing")

    future = harness.expect("POST", f"/negotiations/{c}/offers", respond)
    assert await _post(http, f"{harness.callback}/negotiations/{c}/offers", json=_offer(c)) == 400
    # A skip raised in aiohttp's task must not turn the test into a skip either: it is a failure.
    with pytest.raises(AssertionError, match=r"pytest\.skip or pytest\.fail inside a server handler"):
        await harness.received(future, "ContractOfferMessage")


async def test_a_failure_in_one_handler_stops_the_wait_for_another_message(
    harness: Tck, http: aiohttp.ClientSession
) -> None:
    c = pid()

    def respond(body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        raise AssertionError("the offer names the wrong dataset")

    harness.expect("POST", f"/negotiations/{c}/offers", respond)
    agreed = harness.expect("POST", f"/negotiations/{c}/agreement")
    assert await _post(http, f"{harness.callback}/negotiations/{c}/offers", json=_offer(c)) == 400
    with pytest.raises(AssertionError, match="the offer names the wrong dataset"):
        await harness.received(agreed, "ContractAgreementMessage")


async def test_a_failure_nobody_waits_for_still_fails_the_case(harness: Tck, http: aiohttp.ClientSession) -> None:
    c = pid()

    def respond(body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        raise RuntimeError("respond broke")

    harness.expect("POST", f"/negotiations/{c}/offers", respond)
    assert await _post(http, f"{harness.callback}/negotiations/{c}/offers", json=_offer(c)) == 400
    with pytest.raises(AssertionError, match="respond broke"):
        harness.verify()


async def test_an_unexpected_message_fails_the_case(harness: Tck, http: aiohttp.ClientSession) -> None:
    url = f"{harness.callback}/negotiations/{uuid.uuid4()}/offers"
    assert await _post(http, url, json=negotiation("p", "c", "REQUESTED")) == 404
    with pytest.raises(AssertionError, match="does not expect"):
        harness.verify()
