"""HttpData-PUSH to an EDC consumer: its destination is EDC's HttpData DataAddress (`baseUrl`, `path`, `authKey` /
`authCode`, `method`, `contentType`, `header:*`, named by full EDC IRIs and without DSP's `endpoint`), between two
nodes, through the protocol surface as EDC sends it, and read by the one parser of push destinations (research §6)."""

from __future__ import annotations

import asyncio
import json
import logging
import sqlite3
import uuid
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from connector.app import Node
from connector.domain.errors import InvalidInput
from connector.dsp import transfer as dsp_transfer
from connector.dsp.transfer import EDC
from tests import dsp_schemas
from tests.conftest import API_KEY, Management, NodeFactory
from tests.test_two_nodes_transfer import Backend, _agreement, _pull_request, _wait
from tests.test_two_nodes_transfer import backend as backend

SECRET = "sink-secret-0123456789"
DSP = "https://w3id.org/dspace/2025/1/context.jsonld"


class Sink:
    """An EDC consumer's push destination and its DSP callback, on loopback: records what arrives."""

    def __init__(self) -> None:
        self.received: list[tuple[str, str, dict[str, str], bytes]] = []
        self.messages: list[dict[str, Any]] = []
        self.arrived = asyncio.Event()
        self.completed = asyncio.Event()
        self.url = ""
        self._runner: web.AppRunner | None = None

    async def start(self) -> None:
        app = web.Application()
        app.router.add_route("*", "/inbox{tail:.*}", self._inbox)
        app.router.add_post("/dsp/{tail:.*}", self._callback)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.url = f"http://127.0.0.1:{site._server.sockets[0].getsockname()[1]}"  # type: ignore[union-attr]

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    async def _inbox(self, request: web.Request) -> web.Response:
        self.received.append((request.method, request.path_qs, dict(request.headers), await request.read()))
        self.arrived.set()
        return web.Response(status=204)

    async def _callback(self, request: web.Request) -> web.Response:
        self.messages.append(await request.json())
        if sum(m.get("@type") == "TransferCompletionMessage" for m in self.messages) >= 2:
            self.completed.set()
        return web.json_response({})


@pytest.fixture
async def sink() -> AsyncIterator[Sink]:
    server = Sink()
    await server.start()
    yield server
    await server.stop()


def _stored_destinations(node: Node) -> list[str]:
    with sqlite3.connect(node.settings.effective_database_url.split("///", 1)[1]) as raw:
        return [row[0] for row in raw.execute("SELECT destination FROM transfers")]


async def test_a_consumer_with_an_edc_shaped_destination_gets_the_push_with_its_auth_header(
    node_factory: NodeFactory,
    http: aiohttp.ClientSession,
    backend: Backend,
    sink: Sink,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    provider = await node_factory(api_key=API_KEY)
    consumer = await node_factory(api_key=API_KEY)
    agreement_id = await _agreement(provider, consumer, http, backend)
    consumer_api = Management(http, consumer)
    request = {
        **_pull_request(provider, agreement_id),
        "transferType": "HttpData-PUSH",
        "dataDestination": {
            "type": "HttpData",
            "baseUrl": sink.url + "/inbox",
            "path": "/batteries/BAT-1",
            "method": "PUT",
            "authKey": "X-Sink-Key",
            "authCode": SECRET,
            "contentType": "application/json",
            "header:X-Tenant": "tenant-" + SECRET,
        },
    }
    status, created = await consumer_api.call("POST", "/management/v3/transferprocesses", request)
    assert status == 200, created
    await _wait(consumer_api, f"/management/v3/transferprocesses/{created['@id']}", {"COMPLETED"})

    [(method, path, headers, body)] = sink.received
    assert (method, path) == ("PUT", "/inbox/batteries/BAT-1")
    assert headers["X-Sink-Key"] == SECRET and "Authorization" not in headers
    assert headers["X-Tenant"] == "tenant-" + SECRET
    assert headers["Content-Type"] == "application/json" and json.loads(body)["batteryId"] == "BAT-1"
    assert headers["X-Agreement-Id"] == agreement_id

    # The consumer sent its destination as EDC does (EDC providers read nothing else), and both nodes keep the
    # authCode sealed at rest.
    [stored] = [json.loads(d) for d in _stored_destinations(provider)]
    assert stored["endpointType"] == "HttpData"
    names = {p["name"] for p in stored["endpointProperties"]}
    assert {EDC + "baseUrl", EDC + "path", EDC + "method", EDC + "authKey", EDC + "authCode"} <= names
    for node in (provider, consumer):
        [raw] = _stored_destinations(node)
        assert SECRET not in raw and "sealed:v1:" in raw
    # And never logs it.
    assert not [r for r in caplog.records if SECRET in json.dumps(r.__dict__, default=str)]


def _edc_request(agreement_id: str, callback: str, properties: list[tuple[str, str]]) -> dict[str, Any]:
    """A TransferRequestMessage exactly as an EDC 0.18 / Tractus-X 0.13 consumer sends a push request."""
    return {
        "@context": [DSP, "https://w3id.org/edc/dspace/v0.0.1"],
        "@type": "TransferRequestMessage",
        "consumerPid": f"urn:uuid:{uuid.uuid4()}",
        "agreementId": agreement_id,
        "format": "HttpData-PUSH",
        "callbackAddress": callback,
        "dataAddress": {
            "@type": "DataAddress",
            "endpointType": "HttpData",
            "endpointProperties": [
                {"@type": "EndpointProperty", "name": name, "value": value} for name, value in properties
            ],
        },
    }


async def test_the_provider_pushes_to_an_edc_consumer_as_edc_sends_the_request(
    node_factory: NodeFactory, http: aiohttp.ClientSession, backend: Backend, sink: Sink
) -> None:
    provider = await node_factory(api_key=API_KEY)
    consumer = await node_factory(api_key=API_KEY)
    agreement_id = await _agreement(provider, consumer, http, backend)
    url = provider.settings.dsp_base_url + "/transfers/request"

    async def send(message: dict[str, Any]) -> tuple[int, Any]:
        token = consumer.identity.token_for(provider.settings.effective_did)
        async with http.post(url, json=message, headers={"Authorization": token}) as response:
            return response.status, await response.json()

    with_auth = [
        (EDC + "baseUrl", sink.url + "/inbox"),
        (EDC + "authKey", "X-Sink-Key"),
        (EDC + "authCode", SECRET),
    ]
    status, answer = await send(_edc_request(agreement_id, sink.url + "/dsp", with_auth))
    assert status == 201, answer
    dsp_schemas.validate(answer, "transfer/transfer-process-schema.json")
    async with asyncio.timeout(20):
        await sink.arrived.wait()
    [(method, path, headers, body)] = sink.received
    assert (method, path) == ("POST", "/inbox")  # EDC's default method, the baseUrl as it is
    assert headers["X-Sink-Key"] == SECRET and json.loads(body)["batteryId"] == "BAT-1"

    # Only a baseUrl (what edc-client's start_push sends): accepted, pushed without a credential.
    sink.arrived.clear()
    status, answer = await send(_edc_request(agreement_id, sink.url + "/dsp", [(EDC + "baseUrl", sink.url + "/inbox")]))
    assert status == 201, answer
    async with asyncio.timeout(20):
        await sink.arrived.wait()
    assert "X-Sink-Key" not in sink.received[-1][2]
    async with asyncio.timeout(20):
        await sink.completed.wait()  # both transfers completed, as EDC expects after a push


@pytest.mark.parametrize(
    ("properties", "named"),
    [
        ([(EDC + "authKey", "X-Sink-Key")], "needs an endpoint (DSP) or a baseUrl endpoint property (EDC HttpData)"),
        ([(EDC + "baseUrl", "http://127.0.0.1:9/inbox"), (EDC + "authKey", "X-Sink-Key")], "authKey needs authCode"),
        ([(EDC + "baseUrl", "ftp://127.0.0.1/inbox")], "baseUrl must be an http(s) URL"),
        ([(EDC + "baseUrl", "http://127.0.0.1:9/inbox"), (EDC + "method", "GET")], "method must be one of POST"),
        (
            [
                (EDC + "baseUrl", "http://127.0.0.1:9/inbox"),
                (EDC + "authKey", "X-Sink-Key"),
                (EDC + "authCode", SECRET + "\r\nX-Injected: yes"),
            ],
            "authCode must not hold control characters",
        ),
    ],
    ids=["no-url", "key-without-code", "not-http", "method", "header-injection"],
)
async def test_push_destinations_the_provider_cannot_use_are_refused_naming_the_property(
    node_factory: NodeFactory,
    http: aiohttp.ClientSession,
    backend: Backend,
    properties: list[tuple[str, str]],
    named: str,
) -> None:
    provider = await node_factory(api_key=API_KEY)
    consumer = await node_factory(api_key=API_KEY)
    agreement_id = await _agreement(provider, consumer, http, backend)
    token = consumer.identity.token_for(provider.settings.effective_did)
    message = _edc_request(agreement_id, "http://127.0.0.1:9/dsp", properties)
    async with http.post(
        provider.settings.dsp_base_url + "/transfers/request", json=message, headers={"Authorization": token}
    ) as response:
        assert response.status == 400
        body = await response.json()
    dsp_schemas.validate(body, "transfer/transfer-error-schema.json")
    assert named in body["reason"][0]
    assert SECRET not in json.dumps(body)  # the credential is never echoed


# The one parser of push destinations.


def test_the_dsp_form_and_the_edc_form_are_read_alike() -> None:
    dsp_form = {
        "@type": "DataAddress",
        "endpointType": "https://w3id.org/idsa/v4.1/HTTP",
        "endpoint": "https://consumer.example/inbox",
        "endpointProperties": [
            {"@type": "EndpointProperty", "name": "authorization", "value": "TOKEN"},
            {"@type": "EndpointProperty", "name": "authType", "value": "bearer"},
        ],
    }
    target = dsp_transfer.parse_push_destination(dsp_form)
    assert (target.url, target.method, dict(target.headers)) == (
        "https://consumer.example/inbox",
        "POST",
        {"Authorization": "Bearer TOKEN"},
    )
    edc_form = {
        "@type": "DataAddress",
        "endpointType": "HttpData",
        "endpointProperties": [
            {"@type": "EndpointProperty", "name": EDC + "baseUrl", "value": "https://consumer.example/inbox/"},
            {"@type": "EndpointProperty", "name": EDC + "path", "value": "/a b/c"},
            {"@type": "EndpointProperty", "name": EDC + "authKey", "value": "X-Api-Key"},
            {"@type": "EndpointProperty", "name": EDC + "authCode", "value": "k"},
            {"@type": "EndpointProperty", "name": "header:X-Tenant", "value": "t1"},
            {"@type": "EndpointProperty", "name": "header:Content-Type", "value": "text/plain"},  # EDC ignores it
            {"@type": "EndpointProperty", "name": EDC + "method", "value": "patch"},
        ],
    }
    target = dsp_transfer.parse_push_destination(edc_form)
    assert (target.url, target.method) == ("https://consumer.example/inbox/a%20b/c", "PATCH")
    assert dict(target.headers) == {"X-Api-Key": "k", "X-Tenant": "t1"}
    assert "k" not in repr(target)


def test_a_management_destination_is_rendered_as_edc_sends_it() -> None:
    rendered = dsp_transfer.render_destination(
        {"type": "HttpData", "baseUrl": "https://consumer.example/inbox", "authKey": "X-Api-Key", "authCode": "k"}
    )
    assert rendered == {
        "@type": "DataAddress",
        "endpointType": "HttpData",
        "endpoint": "https://consumer.example/inbox",
        "endpointProperties": [
            {"@type": "EndpointProperty", "name": EDC + "baseUrl", "value": "https://consumer.example/inbox"},
            {"@type": "EndpointProperty", "name": EDC + "authKey", "value": "X-Api-Key"},
            {"@type": "EndpointProperty", "name": EDC + "authCode", "value": "k"},
        ],
    }
    dsp_schemas.validate(rendered, "transfer/data-address-schema.json")
    with pytest.raises(InvalidInput) as refused:
        dsp_transfer.render_destination(
            {"type": "HttpData", "baseUrl": "https://consumer.example/inbox", "authKey": "X-Api-Key"}
        )
    assert refused.value.problems[0].path == "dataDestination.authCode"
