"""A peer's catalog or dataset as the management API answers it: rendered once per set of bytes the peer sent.

The consumer's re-shaping of a peer's answer is most of what its catalog request costs; the answer is a function
of the peer's bytes and the API dialect alone, so the same bytes are answered with the body rendered before, and
any changed byte (a dataset published since, another page) is rendered anew.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

import orjson
import pytest
from aiohttp import web

from connector.domain.errors import PeerError
from connector.management.wire import V3, V4, RenderedPeerDocuments
from connector.services.dsp_client import PeerDocument
from connector.transport import management
from tests.conftest import API_KEY, EDC_CONTEXT, ODRL_CONTEXT, Management

CATALOG_TYPES = ("Catalog", "dcat:Catalog")


class _Renders:
    """A render function that counts its calls (what the node would compute) and can be made to fail."""

    def __init__(self, body: bytes = b'{"rendered": 1}') -> None:
        self.calls = 0
        self.body = body
        self.fail = False

    def __call__(self) -> bytes:
        self.calls += 1
        if self.fail:
            raise PeerError("the peer's answer is not valid JSON-LD")
        return self.body


def test_the_same_bytes_are_rendered_once_per_dialect() -> None:
    kept, render = RenderedPeerDocuments(), _Renders()
    assert kept.body(V3, b'{"@type": "Catalog"}', render) == render.body
    assert kept.body(V3, b'{"@type": "Catalog"}', render) == render.body
    assert render.calls == 1
    kept.body(V4, b'{"@type": "Catalog"}', render)  # another dialect answers differently
    kept.body(V3, b'{"@type": "Catalog" }', render)  # one byte more
    assert render.calls == 3 and len(kept) == 3


def test_bytes_of_the_same_fingerprint_are_compared_whole() -> None:
    # Two pages of one length that differ in one byte the fingerprint does not sample: never one for the other.
    first = b'{"@type": "Catalog", "page": 1}' + b" " * 3000
    second = first.replace(b"1", b"2", 1)
    assert (
        len(first) == len(second) and first[:: RenderedPeerDocuments.STRIDE] == second[:: RenderedPeerDocuments.STRIDE]
    )
    kept = RenderedPeerDocuments()
    one, two = _Renders(b'{"rendered": 1}'), _Renders(b'{"rendered": 2}')
    assert kept.body(V3, first, one) == one.body
    assert kept.body(V3, second, two) == two.body  # not the first page's answer
    assert kept.body(V3, second, two) == two.body and two.calls == 1  # the second took the place
    assert kept.body(V3, first, one) == one.body and one.calls == 2
    assert len(kept) == 1


def test_a_failed_render_is_not_kept() -> None:
    kept, render = RenderedPeerDocuments(), _Renders()
    render.fail = True
    for _ in range(2):
        with pytest.raises(PeerError):
            kept.body(V3, b"{}", render)
    assert render.calls == 2 and len(kept) == 0


def test_the_least_recently_used_go_first_by_count_and_by_size() -> None:
    kept, render = RenderedPeerDocuments(entries=2, max_bytes=4_000), _Renders(b"x" * 900)
    kept.body(V3, b"a", render)
    kept.body(V3, b"b", render)
    kept.body(V3, b"a", render)  # used again: b is now the oldest
    kept.body(V3, b"c", render)
    assert len(kept) == 2 and render.calls == 3
    kept.body(V3, b"a", render)
    assert render.calls == 3  # still kept
    kept.body(V3, b"b", render)
    assert render.calls == 4  # was dropped
    by_size = RenderedPeerDocuments(entries=100, max_bytes=4_000)
    for name in (b"1", b"2", b"3", b"4", b"5"):
        by_size.body(V3, name, render)
    assert len(by_size) == 4  # 5 x 901 bytes (answer and the byte it came from) is over 4,000: the first went
    large = _Renders(b"x" * 1_000)  # with the byte it came from, over a quarter of the bytes kept at most
    by_size.body(V3, b"6", large)
    by_size.body(V3, b"6", large)
    assert large.calls == 2 and len(by_size) == 4


def _asset(asset_id: str) -> dict[str, Any]:
    return {
        "@context": EDC_CONTEXT,
        "@id": asset_id,
        "properties": {"name": f"Passports {asset_id}"},
        "dataAddress": {"@type": "DataAddress", "type": "HttpData", "baseUrl": "https://backend.example.com/p"},
    }


def _ids(catalog: dict[str, Any]) -> set[str]:
    datasets = catalog.get("dcat:dataset", [])
    return {d["@id"] for d in (datasets if isinstance(datasets, list) else [datasets])}


async def test_a_catalog_asked_again_is_the_same_answer_and_a_changed_one_is_seen(node_factory: Any, http: Any) -> None:
    provider = await node_factory(api_key=API_KEY)
    consumer = await node_factory(api_key=API_KEY)
    provider_api, consumer_api = Management(http, provider), Management(http, consumer)
    open_policy = {"@context": EDC_CONTEXT, "@id": "open", "policy": {"@context": ODRL_CONTEXT, "@type": "Set"}}
    assert (await provider_api.call("POST", "/management/v3/policydefinitions", open_policy))[0] == 200
    definition = {"@context": EDC_CONTEXT, "@id": "cd", "accessPolicyId": "open", "contractPolicyId": "open"}
    assert (await provider_api.call("POST", "/management/v3/contractdefinitions", definition))[0] == 200
    assert (await provider_api.call("POST", "/management/v3/assets", _asset("first")))[0] == 200
    request = {
        "@context": EDC_CONTEXT,
        "@type": "CatalogRequest",
        "counterPartyAddress": provider.settings.dsp_base_url,
        "counterPartyId": provider.settings.effective_did,
        "protocol": "dataspace-protocol-http:2025-1",
    }
    url = consumer.management_url + "/management/v3/catalog/request"
    bodies = []
    for _ in range(2):
        async with http.post(url, json=request, headers={"X-Api-Key": API_KEY}) as response:
            assert response.status == 200 and response.content_type == "application/json"
            bodies.append(await response.read())
    assert bodies[0] == bodies[1]
    first = orjson.loads(bodies[0])
    assert first["@type"] == "dcat:Catalog" and _ids(first) == {"first"}
    assert (await provider_api.call("POST", "/management/v3/assets", _asset("second")))[0] == 200
    status, changed = await consumer_api.call("POST", "/management/v3/catalog/request", request)
    assert status == 200 and _ids(changed) == {"first", "second"}


def test_a_peer_document_is_read_when_asked_and_refused_naming_what_is_wrong() -> None:
    good = PeerDocument(b'{"@type": "dcat:Catalog", "dcat:dataset": []}', "http://peer", "catalog", CATALOG_TYPES)
    assert good._body is None  # nothing read yet
    assert good.body == {"@type": "dcat:Catalog", "dcat:dataset": []} and good.body is good.body
    for raw, says in (
        (b'{"@type": "dcat:Catalog"', "not valid JSON"),
        (b"[1, 2]", "answered a catalog request without a JSON object"),
        (b'{"@type": "Dataset"}', "answered a catalog request with a 'Dataset'"),
    ):
        with pytest.raises(PeerError, match=says):
            _ = PeerDocument(raw, "http://peer", "catalog", CATALOG_TYPES).body


def test_bytes_answered_before_are_answered_again_without_being_read() -> None:
    # The management API keeps its renderings by the bytes' SHA-256: the same bytes were found to be a catalog
    # when first rendered, so a second answer with them is not parsed again.
    raw = b'{"@type": "dcat:Catalog", "@id": "read-once", "dcat:dataset": []}'
    first = PeerDocument(raw, "http://peer", "catalog", CATALOG_TYPES)
    answered = management._peer_document(first, V3)
    assert first._body is not None
    again = PeerDocument(raw, "http://peer", "catalog", CATALOG_TYPES)
    assert management._peer_document(again, V3).body == answered.body
    assert again._body is None


@asynccontextmanager
async def _peer_answering(catalog: Callable[[web.Request], Awaitable[web.Response]]) -> AsyncIterator[dict[str, Any]]:
    """Serve `catalog` as a peer's DSP catalog endpoint on loopback; yield the management API's request for it."""
    app = web.Application()
    app.router.add_post("/catalog/request", catalog)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    try:
        yield {
            "@context": EDC_CONTEXT,
            "@type": "CatalogRequest",
            "counterPartyAddress": f"http://127.0.0.1:{runner.addresses[0][1]}",
            "counterPartyId": "did:web:peer.example",
            "protocol": "dataspace-protocol-http:2025-1",
        }
    finally:
        await runner.cleanup()


async def test_a_catalog_answer_that_does_not_say_it_is_json_is_refused(node_factory: Any, http: Any) -> None:
    consumer = await node_factory(api_key=API_KEY)
    answers = {"content_type": "text/plain"}

    async def catalog(request: web.Request) -> web.Response:
        body = b'{"@context": "https://w3id.org/dspace/2025/1/context.jsonld", "@type": "Catalog", "dataset": []}'
        return web.Response(body=body, content_type=answers["content_type"])

    async with _peer_answering(catalog) as request:
        status, problem = await Management(http, consumer).call("POST", "/management/v3/catalog/request", request)
        assert status == 502, problem
        assert "without a JSON object" in str(problem)
        answers["content_type"] = "application/json"
        status, catalog_answer = await Management(http, consumer).call(
            "POST", "/management/v3/catalog/request", request
        )
        assert status == 200 and catalog_answer["@type"] == "dcat:Catalog"


@pytest.mark.parametrize(
    ("body", "content_type", "says"),
    [
        (b'{"@type": "CatalogError", "reason": ["not a member of this dataspace"]}', "application/json",
         "answered 403: not a member of this dataspace"),
        (b'{"@type": "CatalogError", "reason": ["cut off', "application/json", "answered 403: no reason given"),
        (b"forbidden", "text/plain", "answered 403: no reason given"),
    ],
)  # fmt: skip
async def test_a_refused_catalog_request_says_the_peers_reason_when_it_gives_one(
    node_factory: Any, http: Any, body: bytes, content_type: str, says: str
) -> None:
    consumer = await node_factory(api_key=API_KEY)

    async def catalog(request: web.Request) -> web.Response:
        return web.Response(status=403, body=body, content_type=content_type)

    async with _peer_answering(catalog) as request:
        status, problem = await Management(http, consumer).call("POST", "/management/v3/catalog/request", request)
    assert status == 502, problem
    assert says in str(problem)
