"""The federated catalog on the management surface (participants, crawls, dataset search, EDC's federated catalog
query) and, on the protocol surface, the public passport listing that crawlers read (docs/federation.md)."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from connector import jsonld, vocab
from connector.domain import federation as fed
from connector.domain.errors import InvalidInput, NotFound, Problem
from connector.management import wire
from connector.services import passports as passport_service
from connector.services.federation import FederationService, crawl_json
from connector.store.passports import PassportFilter
from connector.transport.http import json_response, no_content, read_json
from connector.transport.passports import RouteSpec

FEDERATION: web.AppKey[FederationService] = web.AppKey("federation", FederationService)
V1 = "/management/v1/federation"
EDC_QUERY = "/api/catalog/v1alpha/catalog/query"
SEARCH_QUERY = (
    "provider",
    "batteryCategory",
    "chemistry",
    "model",
    "accessLevel",
    "assetType",
    "q",
    "cursor",
    "limit",
)


def _service(request: web.Request) -> FederationService:
    service = request.app.get(FEDERATION)
    if service is None:
        raise NotFound("this node runs no federated catalog")
    return service


async def add_participant(request: web.Request) -> web.Response:
    body = await read_json(request)
    if not isinstance(body, dict):
        raise InvalidInput("the body must be a JSON object with `participant`", [Problem("not an object", "")])
    service = _service(request)
    added = await service.add(body.get("participant"))
    return json_response(service.status(added), status=201)


async def list_participants(request: web.Request) -> web.Response:
    service = _service(request)
    return json_response([service.status(p) for p in await service.participants()])


async def get_participant(request: web.Request) -> web.Response:
    service = _service(request)
    participant = await service.get(request.match_info["id"])
    crawls = await service.crawls(participant.id)
    return json_response({**service.status(participant), "crawls": [crawl_json(c) for c in crawls]})


async def delete_participant(request: web.Request) -> web.Response:
    await _service(request).remove(request.match_info["id"])
    return no_content()


async def crawl_participant(request: web.Request) -> web.Response:
    service = _service(request)
    crawl = await service.crawl_now(request.match_info["id"])
    participant = await service.get(crawl.participant_id)
    return json_response({**service.status(participant), "crawl": crawl_json(crawl)})


def _limit(request: web.Request) -> int:
    raw = request.query.get("limit")
    if raw is None:
        return fed.DEFAULT_SEARCH_LIMIT
    if not raw.isdigit() or not 1 <= int(raw) <= fed.MAX_SEARCH_LIMIT:
        raise InvalidInput(
            f"limit must be a whole number from 1 to {fed.MAX_SEARCH_LIMIT}", [Problem("out of range", "limit", raw)]
        )
    return int(raw)


def _dataset_json(found: fed.FoundDataset, participants: dict[str, dict[str, Any]]) -> dict[str, Any]:
    entry = found.entry
    participant = participants.get(found.participant_id, {})
    return {
        "id": entry.dataset_id,
        "participantId": found.participant_id,
        "provider": entry.provider,
        "dspAddress": participant.get("dspAddress"),
        "title": entry.title,
        "keywords": list(entry.keywords),
        "batteryCategory": entry.battery_category,
        "chemistry": entry.chemistry,
        "model": entry.model,
        "accessLevel": entry.access_level,
        "assetType": entry.asset_type,
        "stale": participant.get("stale"),
        "dataset": shown_document(entry.document),
    }


def shown_document(document: dict[str, Any]) -> Any:
    """Return a crawled dataset as shown: as the provider sent it (with its context), or compacted when expanded."""
    return document if "@context" in document else jsonld.compact(document)


async def search_datasets(request: web.Request) -> web.Response:
    service = _service(request)
    query = request.query
    cursor = query.get("cursor")
    participants = await service.participants()
    spec = fed.DatasetFilter(
        provider=query.get("provider") or None,
        battery_category=query.get("batteryCategory") or None,
        chemistry=query.get("chemistry") or None,
        model=query.get("model") or None,
        access_level=query.get("accessLevel") or None,
        asset_type=query.get("assetType") or None,
        text=query.get("q") or None,
        participant_ids=tuple(p.id for p in participants if p.expired_at is None),
        after=fed.decode_cursor(cursor) if cursor else None,
        limit=_limit(request),
    )
    found, following = await service.search(spec)
    shown = {p.id: service.status(p) for p in participants}
    return json_response({"datasets": [_dataset_json(f, shown) for f in found], "next": following})


async def edc_catalog_query(request: web.Request) -> web.Response:
    """EDC's federated catalog query: a QuerySpec in, a JSON array of catalogs (one per participant) out."""
    service = _service(request)
    spec = wire.parse_query_spec(await read_json(request, optional=True))
    catalogs = []
    for participant, entries in await service.catalogs(spec):
        catalogs.append(
            {
                "@id": participant.id,
                "@type": "dcat:Catalog",
                "dspace:participantId": participant.did,
                "dcat:dataset": [shown_document(e.document) for e in entries],
                "dcat:service": [{"@type": "dcat:DataService", "dcat:endpointURL": participant.address}],
                "originator": participant.address,
                "@context": {
                    "@vocab": vocab.EDC,
                    "edc": vocab.EDC,
                    "dcat": vocab.DCAT,
                    "dct": vocab.DCT,
                    "odrl": vocab.ODRL,
                    "dspace": vocab.DSPACE,
                },
            }
        )
    return json_response(catalogs)


ROUTES: tuple[RouteSpec, ...] = (
    RouteSpec(
        "POST",
        f"{V1}/participants",
        add_participant,
        "Crawl a participant (by DID, BPN or DSP address)",
        "FederationParticipantInput",
        "FederationParticipant",
        201,
    ),
    RouteSpec(
        "GET",
        f"{V1}/participants",
        list_participants,
        "List the crawled participants with their crawl status",
        None,
        "FederationParticipantList",
    ),
    RouteSpec(
        "GET",
        f"{V1}/participants/{{id}}",
        get_participant,
        "A participant's crawl status and latest crawls",
        None,
        "FederationParticipant",
    ),
    RouteSpec(
        "DELETE",
        f"{V1}/participants/{{id}}",
        delete_participant,
        "Stop crawling a participant and drop its entry",
        None,
        None,
        204,
    ),
    RouteSpec(
        "POST",
        f"{V1}/participants/{{id}}/crawl",
        crawl_participant,
        "Crawl a participant now",
        None,
        "FederationParticipant",
    ),
    RouteSpec(
        "GET",
        f"{V1}/datasets",
        search_datasets,
        "Search the crawled datasets (filters, free text, keyset paging)",
        None,
        "FederationDatasetList",
        query=SEARCH_QUERY,
    ),
    RouteSpec(
        "POST",
        EDC_QUERY,
        edc_catalog_query,
        "EDC federated catalog query: the crawled catalogs, with the datasets the filterExpression selects",
        "QuerySpec",
        "FederatedCatalogs",
    ),
)


# The protocol surface: the public views of this node's passports, page by page (what crawlers read for Insights).

PUBLIC_PASSPORTS: web.AppKey[passport_service.PassportService] = web.AppKey(
    "public_passports", passport_service.PassportService
)


async def public_passports(request: web.Request) -> web.Response:
    """List the public views of the stored passports, by keyset pages (`cursor`, `limit` up to 1000)."""
    service = request.app[PUBLIC_PASSPORTS]
    cursor = request.query.get("cursor")
    raw = request.query.get("limit", "100")
    if not raw.isdigit() or not 1 <= int(raw) <= 1000:
        return json_response({"error": "Bad Request", "reason": "limit must be a whole number from 1 to 1000"}, 400)
    try:
        after = passport_service.decode_cursor(cursor) if cursor else None
    except InvalidInput as exc:
        return json_response({"error": "Bad Request", "reason": exc.message}, 400)
    page, following = await service.list(PassportFilter(after=after, limit=int(raw)))
    body = {"passports": [passport_service.render(r.data, ()) for r in page], "next": following}
    return json_response(body, headers={"Cache-Control": "public, max-age=60"})


def add_public_routes(app: web.Application, passports: passport_service.PassportService) -> None:
    """Mount the public passport listing on the protocol application."""
    app[PUBLIC_PASSPORTS] = passports
    app.router.add_get("/passports", public_passports)
