"""The protocol surface: DSP under /api/dsp, the data plane under /public, and /.well-known documents."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import orjson
from aiohttp import web

from catalog.dsp import render_catalog, render_dataset
from catalog.info import CatalogInfo
from catalog.model import Catalog
from connector.domain.errors import ConnectorError, InvalidInput, Problem, Unauthorized
from connector.domain.negotiation import Message
from connector.domain.participants import Participant
from connector.domain.transfer import SUFFIX, TransferMessage
from connector.dsp.catalog import link_header, parse_catalog_request
from connector.dsp.negotiation import parse_contract_request, render_negotiation
from connector.dsp.transfer import parse_transfer_request, render_transfer
from connector.identity.did import did_web_to_url
from connector.services.catalog import CatalogService
from connector.services.identity import NodeIdentity
from connector.services.negotiations import NegotiationService
from connector.services.tck import TCK_PARTICIPANT
from connector.services.transfers import TransferService
from connector.transport.dsp import AUTHENTICATOR, Authenticator, dsp_json, handle, unreadable_request
from connector.transport.http import MAX_BODY, MAX_DEPTH, json_response, read_json, request_context
from connector.transport.problems import status_of
from connector.transport.server import ERROR_BODY

DSP_ROOT = "/api/dsp"
DSP_VERSION = "2025-1"
DSP_BASE = f"{DSP_ROOT}/{DSP_VERSION}"

PARTICIPANT_ID: web.AppKey[str] = web.AppKey("participant_id", str)


@dataclass(frozen=True, slots=True)
class ProtocolServices:
    """What the protocol routes call."""

    participant_id: str
    dsp_url: str
    authenticator: Authenticator
    catalog: CatalogService
    identity: NodeIdentity
    catalog_info: CatalogInfo
    negotiations: NegotiationService
    transfers: TransferService
    tck_mode: bool = False


SERVICES: web.AppKey[ProtocolServices] = web.AppKey("protocol_services", ProtocolServices)


def version_document(path: str, participant_id: str) -> dict[str, object]:
    """Return the DSP VersionResponse for a root; `path` is the 2025-1 base relative to that root."""
    entry: dict[str, object] = {
        "version": DSP_VERSION,
        "path": path,
        "binding": "HTTPS",
        "serviceId": participant_id,
    }
    if participant_id.startswith("did:web:"):
        entry["identifierType"] = "did:web"
    return {"protocolVersions": [entry]}


async def dspace_version_at_host_root(request: web.Request) -> web.Response:
    return json_response(version_document(DSP_BASE, request.app[PARTICIPANT_ID]))


async def dspace_version_at_dsp_root(request: web.Request) -> web.Response:
    # EDC looks for the document under its protocol base, and reads `path` relative to it.
    return json_response(version_document(f"/{DSP_VERSION}", request.app[PARTICIPANT_ID]))


async def catalog_request(request: web.Request) -> web.StreamResponse:
    services = request.app[SERVICES]

    async def call(participant: Participant, message: Any) -> web.StreamResponse:
        wanted = parse_catalog_request(message, request.query.get("continuationToken"))
        if wanted.after is None:
            page = await services.catalog.catalog(participant, wanted.offset, wanted.limit, where=wanted.filter)
        else:
            page = await services.catalog.catalog(participant, 0, wanted.limit, after=wanted.after, where=wanted.filter)
        link = link_header(f"{services.dsp_url}/catalog/request", wanted, page.has_more, page.last_key)
        # A page its selection keeps is rendered and serialised once for every requester it serves.
        body = page.rendered("dsp-json", _catalog_bytes)
        return web.Response(body=body, content_type="application/json", headers={"Link": link} if link else None)

    return await handle(request, "CatalogError", call, read=True)


def _catalog_bytes(catalog: Catalog) -> bytes:
    return orjson.dumps(render_catalog(catalog))


async def dataset_request(request: web.Request) -> web.StreamResponse:
    services = request.app[SERVICES]

    async def call(participant: Participant, _: Any) -> web.StreamResponse:
        dataset = await services.catalog.dataset(participant, request.match_info["id"])
        return dsp_json(render_dataset(dataset, standalone=True))

    return await handle(request, "CatalogError", call, body=False, read=True)


async def did_document(request: web.Request) -> web.Response:
    return json_response(request.app[SERVICES].identity.document, headers={"Cache-Control": "max-age=300"})


async def presentation_query(request: web.Request) -> web.Response:
    """The DCP resolution API of this node's credential service."""
    identity = request.app[SERVICES].identity
    try:
        body = await read_json(request)
        return json_response(await identity.presentation_query(request.headers.get("Authorization"), body))
    except ConnectorError as error:
        status, title = status_of(error)
        return json_response(
            {"type": "Error", "status": status, "title": title, "detail": error.message}, status=status
        )


async def issuer_document(request: web.Request) -> web.Response:
    document = request.app[SERVICES].identity.issuer_document()
    if document is None:
        raise web.HTTPNotFound(reason="this node is not an issuer")
    return json_response(document, headers={"Cache-Control": "max-age=300"})


async def issuer_status_list(request: web.Request) -> web.Response:
    status_list = request.app[SERVICES].identity.status_list()
    if status_list is None:
        raise web.HTTPNotFound(reason="this node is not an issuer")
    return web.Response(text=status_list, content_type="application/vc+jwt", headers={"Cache-Control": "max-age=60"})


NEGOTIATION_ERROR = "ContractNegotiationError"


async def negotiation_request(request: web.Request) -> web.StreamResponse:
    services = request.app[SERVICES]

    async def call(participant: Participant, message: Any) -> web.StreamResponse:
        negotiation, created = await services.negotiations.on_request(participant, parse_contract_request(message))
        return dsp_json(render_negotiation(negotiation), status=201 if created else 200)

    return await handle(request, NEGOTIATION_ERROR, call, service_records_token=True)


async def negotiation_get(request: web.Request) -> web.StreamResponse:
    services = request.app[SERVICES]

    async def call(participant: Participant, _: Any) -> web.StreamResponse:
        negotiation = await services.negotiations.for_peer(participant, request.match_info["pid"])
        return dsp_json(render_negotiation(negotiation))

    return await handle(request, NEGOTIATION_ERROR, call, body=False, read=True)


def _negotiation_message(message: Message) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
    async def route(request: web.Request) -> web.StreamResponse:
        services = request.app[SERVICES]

        async def call(participant: Participant, body: Any) -> web.StreamResponse:
            negotiation = await services.negotiations.receive(participant, request.match_info["pid"], message, body)
            return dsp_json(render_negotiation(negotiation))

        return await handle(request, NEGOTIATION_ERROR, call, service_records_token=True)

    return route


async def negotiation_counter_offer(request: web.Request) -> web.StreamResponse:
    services = request.app[SERVICES]

    async def call(participant: Participant, message: Any) -> web.StreamResponse:
        wanted = parse_contract_request(message)
        if wanted.provider_pid != request.match_info["pid"]:
            raise InvalidInput("providerPid in the body differs from the URL")
        negotiation, _ = await services.negotiations.on_request(participant, wanted)
        return dsp_json(render_negotiation(negotiation))

    return await handle(request, NEGOTIATION_ERROR, call, service_records_token=True)


async def negotiation_offers(request: web.Request) -> web.StreamResponse:
    services = request.app[SERVICES]

    async def call(participant: Participant, message: Any) -> web.StreamResponse:
        negotiation, created = await services.negotiations.on_initial_offer(participant, message)
        return dsp_json(render_negotiation(negotiation), status=201 if created else 200)

    return await handle(request, NEGOTIATION_ERROR, call)


def _trigger_fields(participant: Participant, body: Any, names: tuple[str, ...]) -> dict[str, str]:
    """Check a TCK trigger call: the TCK's header, every field a non-empty string, an http(s) address."""
    if participant.id != TCK_PARTICIPANT:
        raise Unauthorized("only the TCK (its configured Authorization header) may use the trigger endpoint")
    fields = {}
    for name in names:
        value = body.get(name) if isinstance(body, dict) else None
        if not isinstance(value, str) or not value:
            raise InvalidInput(f"{name} is required", [Problem("missing", name, value)])
        fields[name] = value
    if not fields["connectorAddress"].startswith(("http://", "https://")):
        raise InvalidInput("connectorAddress must be an http(s) URL")
    return fields


async def tck_negotiation_trigger(request: web.Request) -> web.StreamResponse:
    """Conformance test mode: the TCK makes this node start a negotiation as consumer."""
    services = request.app[SERVICES]

    async def call(participant: Participant, body: Any) -> web.StreamResponse:
        fields = _trigger_fields(participant, body, ("providerId", "offerId", "datasetId", "connectorAddress"))
        offer = {
            "@id": fields["offerId"],
            "@type": "Offer",
            "target": fields["datasetId"],
            "assigner": fields["providerId"],
            "permission": [{"action": "use"}],
        }
        negotiation = await services.negotiations.start(fields["connectorAddress"], fields["providerId"], offer)
        return json_response({"@id": negotiation.id, "consumerPid": negotiation.consumer_pid}, status=200)

    return await handle(request, NEGOTIATION_ERROR, call)


TRANSFER_ERROR = "TransferError"


async def tck_transfer_trigger(request: web.Request) -> web.StreamResponse:
    """Conformance test mode: the TCK makes this node start a transfer as consumer (of an agreement it names)."""
    services = request.app[SERVICES]

    async def call(participant: Participant, body: Any) -> web.StreamResponse:
        fields = _trigger_fields(participant, body, ("providerId", "agreementId", "format", "connectorAddress"))
        # The TCK's agreements (ATPC...) exist only on its side: this node does not hold them.
        transfer = await services.transfers.start(
            fields["connectorAddress"],
            fields["agreementId"],
            fields["format"],
            None,
            counterparty_id=fields["providerId"],
            check_agreement=False,
        )
        return json_response({"@id": transfer.id, "consumerPid": transfer.consumer_pid}, status=200)

    return await handle(request, TRANSFER_ERROR, call)


async def transfer_request(request: web.Request) -> web.StreamResponse:
    services = request.app[SERVICES]

    async def call(participant: Participant, message: Any) -> web.StreamResponse:
        transfer, created = await services.transfers.on_request(participant, parse_transfer_request(message))
        return dsp_json(render_transfer(transfer), status=201 if created else 200)

    return await handle(request, TRANSFER_ERROR, call)


async def transfer_get(request: web.Request) -> web.StreamResponse:
    services = request.app[SERVICES]

    async def call(participant: Participant, _: Any) -> web.StreamResponse:
        return dsp_json(render_transfer(await services.transfers.for_peer(participant, request.match_info["pid"])))

    return await handle(request, TRANSFER_ERROR, call, body=False, read=True)


def _transfer_message(message: TransferMessage) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
    async def route(request: web.Request) -> web.StreamResponse:
        services = request.app[SERVICES]

        async def call(participant: Participant, body: Any) -> web.StreamResponse:
            transfer = await services.transfers.receive(participant, request.match_info["pid"], message, body)
            return dsp_json(render_transfer(transfer))

        return await handle(request, TRANSFER_ERROR, call)

    return route


PUBLIC_PAGE = 100
PUBLIC_CACHE_SECONDS = 30.0
ANONYMOUS = Participant("urn:anonymous")
_public_cache: web.AppKey[dict[tuple[str, int], tuple[float, bytes, str, str | None]]] = web.AppKey(
    "public_cache", dict
)


async def public_catalog(request: web.Request) -> web.Response:
    """The public part of the catalog (what anyone may see) as DCAT-AP 3, by content negotiation."""
    # rdflib is loaded on the first request for the RDF catalog, not at start (it costs ~17 MiB).
    from catalog.rdf import build_graph, negotiate, serialize

    services = request.app[SERVICES]
    fmt = negotiate(request.headers.get("Accept"))
    if fmt is None:
        raise web.HTTPNotAcceptable(
            reason="the catalog is served as text/turtle, application/ld+json or application/rdf+xml"
        )
    try:
        page = int(request.query.get("page", "1"))
    except ValueError:
        page = 0
    if page < 1:
        raise web.HTTPBadRequest(reason="page must be a positive integer")
    cache = request.app[_public_cache]
    cached = cache.get((fmt, page))
    if cached is None or cached[0] < time.monotonic():
        found = await services.catalog.catalog(ANONYMOUS, (page - 1) * PUBLIC_PAGE, PUBLIC_PAGE)
        url = f"{services.catalog_info.catalog_url}"
        links = []
        if found.has_more:
            links.append(f'<{url}?page={page + 1}>; rel="next"')
        if page > 1:
            links.append(f'<{url}?page={page - 1}>; rel="previous"')
        # Building and serialising RDF is CPU work: keep it off the event loop.
        body, content_type = await asyncio.to_thread(
            lambda: serialize(build_graph(found.catalog, services.catalog_info), fmt)
        )
        cached = (time.monotonic() + PUBLIC_CACHE_SECONDS, body, content_type, ", ".join(links) or None)
        cache[(fmt, page)] = cached
    _, body, content_type, link = cached
    headers = {"Vary": "Accept", "Cache-Control": f"max-age={int(PUBLIC_CACHE_SECONDS)}"}
    if link:
        headers["Link"] = link
    return web.Response(body=body, headers={**headers, "Content-Type": content_type})


def create_app(services: ProtocolServices, max_body: int, max_depth: int) -> web.Application:
    """Build the protocol application."""
    app = web.Application(middlewares=[request_context], client_max_size=max_body)
    app[PARTICIPANT_ID] = services.participant_id
    app[SERVICES] = services
    app[AUTHENTICATOR] = services.authenticator
    app[ERROR_BODY] = unreadable_request  # what the HTTP parser refuses is answered as DSP errors are
    app[MAX_BODY] = max_body
    app[MAX_DEPTH] = max_depth
    app.router.add_get("/.well-known/dspace-version", dspace_version_at_host_root)
    app.router.add_get(f"{DSP_ROOT}/.well-known/dspace-version", dspace_version_at_dsp_root)
    app[_public_cache] = {}
    app.router.add_get("/catalog", public_catalog)
    app.router.add_get("/.well-known/did.json", did_document)
    # A did:web with a path (public URL below a prefix) is served at <path>/did.json.
    own_path = urlsplit(did_web_to_url(services.identity.did, allow_http_loopback=True)).path
    if own_path != "/.well-known/did.json":
        app.router.add_get(own_path, did_document)
    app.router.add_post("/api/credentials/presentations/query", presentation_query)
    app.router.add_get("/issuer/did.json", issuer_document)
    app.router.add_get("/issuer/status", issuer_status_list)
    app.router.add_post(f"{DSP_BASE}/catalog/request", catalog_request)
    app.router.add_post(f"{DSP_BASE}/negotiations/request", negotiation_request)
    app.router.add_post(f"{DSP_BASE}/negotiations/offers", negotiation_offers)
    app.router.add_get(f"{DSP_BASE}/negotiations/{{pid}}", negotiation_get)
    app.router.add_post(f"{DSP_BASE}/negotiations/{{pid}}/request", negotiation_counter_offer)
    app.router.add_post(f"{DSP_BASE}/negotiations/{{pid}}/offers", _negotiation_message(Message.OFFER))
    app.router.add_post(f"{DSP_BASE}/negotiations/{{pid}}/events", _negotiation_message(Message.FINALIZED))
    app.router.add_post(f"{DSP_BASE}/negotiations/{{pid}}/agreement", _negotiation_message(Message.AGREEMENT))
    app.router.add_post(
        f"{DSP_BASE}/negotiations/{{pid}}/agreement/verification", _negotiation_message(Message.VERIFICATION)
    )
    app.router.add_post(f"{DSP_BASE}/negotiations/{{pid}}/termination", _negotiation_message(Message.TERMINATION))
    app.router.add_get(f"{DSP_BASE}/catalog/datasets/{{id}}", dataset_request)
    app.router.add_post(f"{DSP_BASE}/transfers/request", transfer_request)
    app.router.add_get(f"{DSP_BASE}/transfers/{{pid}}", transfer_get)
    for message, suffix in SUFFIX.items():
        app.router.add_post(f"{DSP_BASE}/transfers/{{pid}}{suffix}", _transfer_message(message))
    if services.tck_mode:
        app.router.add_post("/tck/negotiations/requests", tck_negotiation_trigger)
        app.router.add_post("/tck/transfers/requests", tck_transfer_trigger)
    return app
