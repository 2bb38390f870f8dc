"""The data plane's caches never let a request through that the checks would refuse (docs/decisions/0028).

Verified tokens are kept by their exact bytes and a transfer's lookup for a second; each test first makes a
request that succeeds (so every cache holds the token and the transfer), then changes one thing and shows the
very next request refused, with the reason.
"""

from __future__ import annotations

import asyncio
import base64
import io
import logging
import time
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import aiohttp
import orjson
import pytest

from connector import logs
from connector.app import Node, node_key
from connector.identity.access_tokens import ACCESS_LIFETIME, LEEWAY, AccessTokenVerifier, issue_access_token
from connector.identity.keys import generate_key
from connector.services import dataplane
from tests.conftest import API_KEY, EDC_CONTEXT, Management, NodeFactory
from tests.test_two_nodes_transfer import Backend, _agreement, _wait


@pytest.fixture
async def backend() -> AsyncIterator[Backend]:
    """The provider operator's backend, on loopback."""
    server = Backend()
    await server.start()
    yield server
    await server.stop()


async def _pulled(
    provider: Node, consumer: Node, http: aiohttp.ClientSession, backend: Backend, contract: Any = None
) -> dict[str, Any]:
    """Start a pull transfer (under `contract`'s permissions, else an open policy); return its EDR and ids."""
    agreement_id = await _agreement(provider, consumer, http, backend, contract)
    consumer_api, provider_api = Management(http, consumer), Management(http, provider)
    request = {
        "@context": EDC_CONTEXT,
        "@type": "TransferRequest",
        "counterPartyAddress": provider.settings.dsp_base_url,
        "contractId": agreement_id,
        "protocol": "dataspace-protocol-http:2025-1",
        "transferType": "HttpData-PULL",
    }
    status, created = await consumer_api.call("POST", "/management/v3/transferprocesses", request)
    assert status == 200, created
    await _wait(consumer_api, f"/management/v3/transferprocesses/{created['@id']}", {"STARTED"})
    status, address = await consumer_api.call("GET", f"/management/v3/edrs/{created['@id']}/dataaddress")
    assert status == 200, address
    _, provided = await provider_api.call("POST", "/management/v3/transferprocesses/request")
    (provider_side,) = provided
    await _wait(provider_api, f"/management/v3/transferprocesses/{provider_side['@id']}", {"STARTED"})
    return {
        "endpoint": address["endpoint"] + "/BAT-1",
        "token": address["authorization"],
        "agreement_id": agreement_id,
        "provider_transfer": provider_side["@id"],
    }


async def _get(
    http: aiohttp.ClientSession, url: str, token: str, purpose: str | None = None
) -> tuple[int, dict[str, Any]]:
    headers = {"Authorization": token} | ({"X-Purpose": purpose} if purpose is not None else {})
    async with http.get(url, headers=headers) as response:
        return response.status, await response.json()


def _claims(token: str) -> dict[str, Any]:
    payload = token.split(".")[1]
    return dict(orjson.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4))))


async def test_tampered_foreign_and_wrongly_addressed_tokens_are_refused_after_the_real_one_is_cached(
    node_factory: NodeFactory, http: aiohttp.ClientSession, backend: Backend
) -> None:
    provider = await node_factory(api_key=API_KEY)
    consumer = await node_factory(api_key=API_KEY)
    pulled = await _pulled(provider, consumer, http, backend)
    url, token = pulled["endpoint"], pulled["token"]
    assert (await _get(http, url, token))[0] == 200  # the token and the transfer are cached now
    header, payload, signature = token.split(".")
    claims = _claims(token)

    # The payload changed (another transfer's id), the signature kept: refused, though the original is cached.
    forged = dict(claims, gen=claims["gen"] + 1)
    forged_payload = base64.urlsafe_b64encode(orjson.dumps(forged)).rstrip(b"=").decode()
    status, body = await _get(http, url, f"{header}.{forged_payload}.{signature}")
    assert status == 401 and "signature" in body["reason"], body
    # One character of the signature changed.
    flipped = signature[:-2] + ("A" if signature[-2] != "A" else "B") + signature[-1]
    status, body = await _get(http, url, f"{header}.{payload}.{flipped}")
    assert status == 401, body
    # The real token, with a trailing character: other bytes, so not the cached token.
    assert (await _get(http, url, token + "x"))[0] == 401
    # Signed with another key.
    stranger = issue_access_token(
        generate_key(), claims["iss"], claims["tid"], claims["agr"], claims["sub"], claims["gen"]
    )
    assert (await _get(http, url, stranger))[0] == 401
    # Signed with this node's key, but for another audience.
    key = node_key(provider.settings)
    elsewhere = issue_access_token(
        key, "did:web:elsewhere.example", claims["tid"], claims["agr"], claims["sub"], claims["gen"]
    )
    status, body = await _get(http, url, elsewhere)
    assert status == 401 and "not issued by this node" in body["reason"], body
    # A refresh token is not an access token.
    refresh = issue_access_token(
        key, claims["iss"], claims["tid"], claims["agr"], claims["sub"], claims["gen"], kind="refresh"
    )
    assert (await _get(http, url, refresh))[0] == 401
    # And the real one still works: nothing above disturbed what is cached.
    assert (await _get(http, url, token))[0] == 200


async def test_a_cached_token_is_refused_the_moment_it_expires(
    node_factory: NodeFactory, http: aiohttp.ClientSession, backend: Backend
) -> None:
    provider = await node_factory(api_key=API_KEY)
    consumer = await node_factory(api_key=API_KEY)
    pulled = await _pulled(provider, consumer, http, backend)
    claims = _claims(pulled["token"])
    # A token of this transfer that expires (with the leeway) about a second from now.
    issued_at = time.time() - ACCESS_LIFETIME - LEEWAY + 1.5
    short = issue_access_token(
        node_key(provider.settings),
        claims["iss"],
        claims["tid"],
        claims["agr"],
        claims["sub"],
        claims["gen"],
        now=issued_at,
    )
    status, body = await _get(http, pulled["endpoint"], short)
    assert status == 200, body  # verified and cached
    expiry = int(issued_at) + ACCESS_LIFETIME + LEEWAY
    await asyncio.sleep(max(0.0, expiry + 0.05 - time.time()))  # past the expiry and its leeway
    status, body = await _get(http, pulled["endpoint"], short)
    assert status == 401 and "expired" in body["reason"], body


def test_the_verifier_decides_expiry_on_every_call_for_a_cached_token() -> None:
    key, did = generate_key(), "did:web:provider.example"
    verifier = AccessTokenVerifier(key, did)
    token = issue_access_token(key, did, "t-1", "a-1", "did:web:consumer.example", 1, now=1_000_000)
    assert verifier.verify(token, now=1_000_000).transfer_id == "t-1"  # cached from here on
    assert verifier.verify(token, now=1_000_000 + ACCESS_LIFETIME + LEEWAY).transfer_id == "t-1"
    with pytest.raises(Exception, match="expired"):
        verifier.verify(token, now=1_000_000 + ACCESS_LIFETIME + LEEWAY + 1)
    with pytest.raises(Exception, match="refresh token is needed"):
        verifier.verify(token, kind="refresh", now=1_000_000)


@pytest.mark.parametrize("how", ["terminate", "suspend"])
async def test_a_transfer_ended_by_the_provider_refuses_the_very_next_request(
    how: str, node_factory: NodeFactory, http: aiohttp.ClientSession, backend: Backend
) -> None:
    provider = await node_factory(api_key=API_KEY)
    consumer = await node_factory(api_key=API_KEY)
    pulled = await _pulled(provider, consumer, http, backend)
    url, token = pulled["endpoint"], pulled["token"]
    for _ in range(3):
        assert (await _get(http, url, token))[0] == 200  # cached, and within the lookup's second
    provider_api = Management(http, provider)
    body = {"@context": EDC_CONTEXT, "@type": "TerminateTransfer" if how == "terminate" else "SuspendTransfer"}
    body["reason"] = f"{how}d by the operator"
    status, answer = await provider_api.call(
        "POST", f"/management/v3/transferprocesses/{pulled['provider_transfer']}/{how}", body
    )
    assert status == 204, answer
    status, refused = await _get(http, url, token)
    assert status == 403, refused
    assert f"{how}d by the operator" in refused["reason"] or "ending" in refused["reason"], refused


@pytest.fixture
def json_lines() -> Iterator[io.StringIO]:
    """The node's log records as its JSON lines, at INFO."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logs.JsonFormatter())
    node_logger = logging.getLogger("connector")
    saved = node_logger.level
    node_logger.addHandler(handler)
    node_logger.setLevel(logging.INFO)
    try:
        yield stream
    finally:
        node_logger.removeHandler(handler)
        node_logger.setLevel(saved)


async def test_each_data_request_logs_one_access_line_with_its_fields(
    node_factory: NodeFactory, http: aiohttp.ClientSession, backend: Backend, json_lines: io.StringIO
) -> None:
    provider = await node_factory(api_key=API_KEY)
    consumer = await node_factory(api_key=API_KEY)
    pulled = await _pulled(provider, consumer, http, backend)
    async with http.get(pulled["endpoint"], headers={"Authorization": pulled["token"], "X-Request-Id": "dp-1"}) as r:
        assert r.status == 200
    async with http.get(pulled["endpoint"] + '"x', headers={"X-Request-Id": "dp-2"}) as r:
        assert r.status == 401
    lines = [orjson.loads(line) for line in json_lines.getvalue().splitlines()]
    access = [
        line for line in lines if line.get("request_id") in ("dp-1", "dp-2") and line["logger"] == "connector.http"
    ]
    assert [(line["request_id"], line["status"]) for line in access] == [("dp-1", 200), ("dp-2", 401)], access
    path = "/public/BAT-1"
    assert [line["msg"] for line in access] == [f"GET {path} 200", f'GET {path}"x 401']
    for line in access:
        assert list(line) == ["ts", "level", "logger", "msg", "request_id", "status", "duration_ms"]
        assert line["level"] == "INFO" and isinstance(line["duration_ms"], float)


def test_the_access_line_is_the_line_the_general_path_writes() -> None:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logs.JsonFormatter())
    logger = logging.getLogger("connector.test-access-line")
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    logger.propagate = False
    line = logs.AccessLine(logger, "test")
    try:
        for rid in ("r-1", None):
            token = logs.request_id.set(rid)
            try:
                for path, status, took in (
                    ('/public/a "b"\\c\u00e9\n\t', 200, 0.35),
                    ("/x", 404, 1234.5),
                    ("/", 500, 0.0),
                ):
                    line.log("GET", path, status, took)
                    logger.info("%s %s %s", "GET", path, status, extra={"status": status, "duration_ms": took})
            finally:
                logs.request_id.reset(token)
        # A filter that adds a field makes the line go the general way, with that field.
        logger.addFilter(lambda record: setattr(record, "tenant", "t-1") or True)
        line.log("GET", "/y", 200, 1.0)
        logger.info("%s %s %s", "GET", "/y", 200, extra={"status": 200, "duration_ms": 1.0})
    finally:
        logger.removeHandler(handler)
        logger.filters.clear()
    written = stream.getvalue().splitlines()
    assert len(written) == 14
    for fast, general in zip(written[::2], written[1::2], strict=True):
        # Byte for byte, but for the milliseconds of the time stamp (two records, two instants).
        assert orjson.loads(fast).keys() == orjson.loads(general).keys()
        assert fast[fast.index('"level"') :] == general[general.index('"level"') :], (fast, general)
    assert orjson.loads(written[-2])["tenant"] == "t-1"


@pytest.fixture
def decisions(monkeypatch: pytest.MonkeyPatch) -> list[str | None]:
    """The purpose of every usage decision the data plane evaluates (the real one, counted)."""
    made: list[str | None] = []
    real = dataplane.usage_decision

    def counted(*args: Any, **kwargs: Any) -> Any:
        made.append(kwargs.get("purpose"))
        return real(*args, **kwargs)

    monkeypatch.setattr(dataplane, "usage_decision", counted)
    return made


PURPOSE = [{"action": "use", "constraint": [{"leftOperand": "purpose", "operator": "eq", "rightOperand": "recycling"}]}]


async def test_a_decision_that_depends_on_the_purpose_alone_is_kept_per_declared_purpose(
    node_factory: NodeFactory, http: aiohttp.ClientSession, backend: Backend, decisions: list[str | None]
) -> None:
    provider = await node_factory(api_key=API_KEY)
    consumer = await node_factory(api_key=API_KEY)
    pulled = await _pulled(provider, consumer, http, backend, PURPOSE)
    url, token = pulled["endpoint"], pulled["token"]
    decisions.clear()
    verdicts = []
    for purpose in ("recycling", "repair", None, "recycling", "repair", None, "recycling"):
        status, body = await _get(http, url, token, purpose)
        verdicts.append(status)
        if status == 403:
            assert "usage policy is not satisfied" in body["reason"], body
    assert verdicts == [200, 403, 403, 200, 403, 403, 200]
    # Within the transfer lookup's second, each declared purpose was decided once and its verdict reused.
    assert sorted(decisions, key=str) == sorted(["recycling", "repair", None], key=str), decisions


async def test_a_decision_that_depends_on_the_clock_is_made_on_every_request(
    node_factory: NodeFactory, http: aiohttp.ClientSession, backend: Backend, decisions: list[str | None]
) -> None:
    provider = await node_factory(api_key=API_KEY)
    consumer = await node_factory(api_key=API_KEY)
    until = (datetime.now(UTC) + timedelta(days=1)).isoformat()
    contract = [{"action": "use", "constraint": [{"leftOperand": "dateTime", "operator": "lt", "rightOperand": until}]}]
    pulled = await _pulled(provider, consumer, http, backend, contract)
    decisions.clear()
    for _ in range(4):
        assert (await _get(http, pulled["endpoint"], pulled["token"]))[0] == 200
    assert decisions == [None] * 4


async def test_an_open_policy_is_decided_once_while_the_transfer_lookup_is_kept(
    node_factory: NodeFactory, http: aiohttp.ClientSession, backend: Backend, decisions: list[str | None]
) -> None:
    provider = await node_factory(api_key=API_KEY)
    consumer = await node_factory(api_key=API_KEY)
    pulled = await _pulled(provider, consumer, http, backend)
    decisions.clear()
    for _ in range(4):
        assert (await _get(http, pulled["endpoint"], pulled["token"]))[0] == 200
    # One decision (two should the lookup's second have ended between the requests): never one per request.
    assert 1 <= len(decisions) <= 2, decisions
