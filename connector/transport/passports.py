"""Passports over HTTP: the plain-JSON passports API (management surface), the public view per battery
(protocol surface, no authentication, what a QR code points to), and the data plane's passport answers.
"""

from __future__ import annotations

import html
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import orjson
from aiohttp import web

from connector.domain.errors import InvalidInput, Problem
from connector.services import passports as service
from connector.services.passport_sources import body_records
from connector.store.passports import PassportFilter, PassportRecord
from connector.transport import passport_feed
from connector.transport.http import json_limits, json_response, no_content, read_body, read_json

PASSPORTS: web.AppKey[service.PassportService] = web.AppKey("passports", service.PassportService)
# The chain's public part of a passport, shown in its public view (services.lifecycle), when the node has one.
PublicChain = Callable[[PassportRecord], Awaitable[dict[str, Any] | None]]
PUBLIC_CHAIN: web.AppKey[PublicChain] = web.AppKey("public_chain", PublicChain)  # type: ignore[arg-type]

V1 = "/management/v1/passports"
# The JSON Lines media types an import takes besides JSON (the management surface refuses other bodies).
JSON_LINES = ("application/x-ndjson", "application/jsonl", "application/json-lines")


def _int(
    request: web.Request, name: str, default: int | None = None, low: int = 0, high: int | None = None
) -> int | None:
    raw = request.query.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        value = low - 1
    if value < low or (high is not None and value > high):
        # As the OpenAPI document says (minimum, maximum): refused, never clamped in silence.
        bounds = f"of at least {low}" if high is None else f"from {low} to {high}"
        raise InvalidInput(f"{name} must be an integer {bounds}", [Problem("invalid", name, raw)])
    return value


def _bool(request: web.Request, name: str) -> bool:
    raw = request.query.get(name, "false").lower()
    if raw not in ("true", "false", "1", "0"):
        raise InvalidInput(f"{name} must be true or false", [Problem("invalid", name, raw)])
    return raw in ("true", "1")


def _choice(request: web.Request, name: str, allowed: tuple[str, ...], default: str) -> str:
    value = request.query.get(name, default)
    if value not in allowed:
        raise InvalidInput(f"{name} must be one of {', '.join(allowed)}", [Problem("invalid", name, value)])
    return value


def filter_from(
    request: web.Request,
    *,
    model_id: str | None = None,
    battery_id: str | None = None,
    manufacturer_id: str | None = None,
    allow_deleted: bool = False,
) -> PassportFilter:
    """Read listing parameters (batteryId, modelId, manufacturerId, category, changedSince, cursor, limit,
    includeDeleted); the keyword arguments are fixed by a dataset and win over the query."""
    cursor = request.query.get("cursor")
    return PassportFilter(
        battery_id=battery_id or request.query.get("batteryId") or None,
        model_id=model_id or request.query.get("modelId") or None,
        manufacturer_id=manufacturer_id or request.query.get("manufacturerId") or None,
        category=request.query.get("category") or None,
        changed_since=_int(request, "changedSince"),
        after=service.decode_cursor(cursor) if cursor else None,
        include_deleted=allow_deleted and _bool(request, "includeDeleted"),
        limit=_int(request, "limit", service.DEFAULT_LIMIT, low=1, high=service.MAX_LIMIT) or service.DEFAULT_LIMIT,
    )


def _passports(request: web.Request) -> service.PassportService:
    return request.app[PASSPORTS]


# The management API.


def _saved(passports: service.PassportService, saved: service.Saved) -> dict[str, Any]:
    return {**passports.envelope(saved.record), "warnings": service.warnings_json(saved.warnings)}


async def create_passport(request: web.Request) -> web.Response:
    passports = _passports(request)
    saved = await passports.create(await read_json(request))
    return json_response(_saved(passports, saved), status=201)


async def list_passports(request: web.Request) -> web.Response:
    passports = _passports(request)
    page, following = await passports.list(filter_from(request, allow_deleted=True))
    return json_response({"items": [passports.envelope(r) for r in page], "next": following})


async def get_passport(request: web.Request) -> web.Response:
    passports = _passports(request)
    return json_response(passports.envelope(await passports.get(request.match_info["id"])))


async def update_passport(request: web.Request) -> web.Response:
    passports = _passports(request)
    saved = await passports.update(request.match_info["id"], await read_json(request))
    return json_response(_saved(passports, saved))


async def delete_passport(request: web.Request) -> web.Response:
    await _passports(request).delete(request.match_info["id"])
    return no_content()


async def passport_history(request: web.Request) -> web.Response:
    passport_id = request.match_info["id"]
    versions = await _passports(request).history(passport_id)
    return json_response({"id": passport_id, "versions": [service.version_json(v) for v in versions]})


async def export_passport(request: web.Request) -> web.Response:
    fmt = _choice(request, "format", service.FORMATS, "node")
    record = await _passports(request).get(request.match_info["id"])
    return json_response(service.export(record.data, fmt))


async def view_passport(request: web.Request) -> web.Response:
    level = _choice(request, "level", service.LEVELS, "public")
    fmt = _choice(request, "format", ("node", "catenax"), "node")
    record = await _passports(request).get(request.match_info["id"])
    return json_response(service.render(record.data, {level}, fmt))


async def import_passports(request: web.Request) -> web.Response:
    """Import a JSON array (or {"passports": [...]}) or JSON Lines (Content-Type application/x-ndjson)."""
    raw = await read_body(request)  # the surface's guard took only JSON or JSON Lines (415 otherwise)
    records = body_records(raw, request.content_type in JSON_LINES, json_limits(request))
    summary = await _passports(request).import_records(records)
    return json_response(summary.as_json())


async def publish_passports(request: web.Request) -> web.Response:
    body = await read_json(request, optional=True) or {}
    if not isinstance(body, dict):
        raise InvalidInput("the body must be a JSON object")
    models = body.get("models")
    levels = body.get("levels", list(service.LEVELS))
    for name, value in (("models", models), ("levels", levels)):
        if value is not None and (not isinstance(value, list) or not all(isinstance(v, str) and v for v in value)):
            raise InvalidInput(f"{name} must be a list of strings", [Problem("invalid", name, value)])
    done = await _passports(request).publish(models, levels)
    return json_response(
        {"assets": done.assets, "policyDefinitions": done.policies, "contractDefinitions": done.contract_definitions}
    )


@dataclass(frozen=True, slots=True)
class RouteSpec:
    """A passports route and what the OpenAPI document says of it."""

    method: str
    path: str
    handler: Any
    summary: str
    request: str | None
    response: str | None
    status: int = 200
    query: tuple[str, ...] = ()
    body_types: tuple[str, ...] = ()


LIST_QUERY = ("batteryId", "modelId", "manufacturerId", "category", "changedSince", "cursor", "limit", "includeDeleted")

ROUTES: tuple[RouteSpec, ...] = (
    RouteSpec(
        "POST",
        V1,
        create_passport,
        "Store a new passport (node JSON, Catena-X BatteryPass 6.x or IDTA parts)",
        "PassportInput",
        "SavedPassport",
        201,
    ),
    RouteSpec(
        "GET",
        V1,
        list_passports,
        "List passports (filters, changed-since, keyset paging)",
        None,
        "PassportList",
        query=LIST_QUERY,
    ),
    RouteSpec(
        "POST",
        f"{V1}/import",
        import_passports,
        "Import many passports (JSON array or JSON Lines)",
        "PassportImport",
        "ImportSummary",
        body_types=JSON_LINES,
    ),
    RouteSpec(
        "POST",
        f"{V1}/publish",
        publish_passports,
        "Offer the stored passports as datasets per model and access level",
        "PublishInput",
        "Published",
    ),
    RouteSpec("GET", f"{V1}/{{id}}", get_passport, "Get a passport's current version", None, "StoredPassport"),
    RouteSpec(
        "PUT", f"{V1}/{{id}}", update_passport, "Store a new version of a passport", "PassportInput", "SavedPassport"
    ),
    RouteSpec("DELETE", f"{V1}/{{id}}", delete_passport, "Delete a passport (its history stays)", None, None, 204),
    RouteSpec("GET", f"{V1}/{{id}}/history", passport_history, "Every version of a passport", None, "PassportHistory"),
    RouteSpec(
        "GET",
        f"{V1}/{{id}}/export",
        export_passport,
        "A passport in a format: node, catenax or idta",
        None,
        "PassportDocument",
        query=("format",),
    ),
    RouteSpec(
        "GET",
        f"{V1}/{{id}}/view",
        view_passport,
        "What a reader of one access level sees",
        None,
        "PassportDocument",
        query=("level", "format:view"),
    ),
)


# The public view (protocol surface): anyone, no negotiation, as Art. 77(2)(a) requires.


def _page(view: dict[str, Any], record: PassportRecord) -> str:
    rows = []

    def walk(prefix: str, value: Any) -> None:
        if isinstance(value, dict):
            for key, item in value.items():
                walk(f"{prefix}.{key}" if prefix else str(key), item)
        elif isinstance(value, list) and value and any(isinstance(v, dict | list) for v in value):
            for i, item in enumerate(value):
                walk(f"{prefix}[{i}]", item)
        else:
            shown = ", ".join(map(str, value)) if isinstance(value, list) else value
            rows.append(f"<tr><th>{html.escape(prefix)}</th><td>{html.escape(str(shown))}</td></tr>")

    walk("", view)
    title = html.escape(f"Battery passport {record.battery_id}")
    return (
        f'<!doctype html><html lang="en"><head><meta charset="utf-8"><title>{title}</title>'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        "<style>body{font-family:sans-serif;margin:1em}th{text-align:left;padding-right:1em;vertical-align:top;"
        "font-weight:normal;color:#555}td{font-family:monospace}</style></head><body>"
        f"<h1>{title}</h1><p>Public information (EU Battery Regulation 2023/1542, Annex XIII point 1), "
        f"version {record.version}.</p><table>{''.join(rows)}</table></body></html>"
    )


async def public_passport(request: web.Request) -> web.StreamResponse:
    """Serve the public view of one passport: JSON, or a readable page for browsers."""
    passports = _passports(request)
    fmt = _choice(request, "format", ("node", "catenax"), "node")
    record = await passports.current(request.match_info["id"])
    if record is None:
        reason = f"no passport {request.match_info['id']!r}"
        return json_response({"error": "Not Found", "reason": reason}, status=404)
    chain = request.app.get(PUBLIC_CHAIN)
    part = await chain(record) if chain is not None else None
    # The chain's part changes without a new version (a successor reported): the tag tells it apart.
    marker = f"-{len(part.get('successors', ()))}" if part else ""
    etag = f'"{record.digest[:32]}-{record.version}{marker}"'
    if request.headers.get("If-None-Match") == etag:
        return web.Response(status=304, headers={"ETag": etag})
    headers = {"ETag": etag, "Cache-Control": "public, max-age=60", "Vary": "Accept"}
    accept = request.headers.get("Accept", "")
    if "text/html" in accept and "application/json" not in accept.split(",")[0]:
        shown = service.render(record.data, (), fmt)
        page = _page({**shown, "lifecycle": part} if part else shown, record)
        return web.Response(text=page, content_type="text/html", headers=headers)
    body = passports.view_bytes(record, "public", fmt)
    if part is not None and fmt == "node":
        # The chain's public part (docs/lifecycle.md): links to predecessors and successors, with their nodes.
        body = orjson.dumps({**orjson.loads(body), "lifecycle": part})
    return web.Response(body=body, content_type="application/json", headers=headers)


# The data plane: a BatteryPassport dataset is a collection (a model, a battery, a manufacturer, or all),
# served as the view of the access level its data address names.


async def data_plane(request: web.Request, address: dict[str, Any], tail: str) -> tuple[web.Response, str | None]:
    """Answer a data-plane request on a BatteryPassport dataset; return the response and a refusal reason."""
    if request.method not in ("GET", "HEAD"):
        return json_response({"error": "Method Not Allowed", "reason": "passports are read with GET"}, status=405), (
            "method not allowed"
        )
    passports = _passports(request)
    level = str(address.get("accessLevel", "public"))
    fmt = _choice(request, "format", ("node", "catenax"), "node")
    fixed_model = address.get("batteryModel")
    fixed_battery = address.get("batteryId")
    fixed_maker = address.get("manufacturer")
    if not tail and passport_feed.wants_feed(request):
        return await passport_feed.answer(request, address, level, fmt), None
    if tail:
        record = await passports.current(tail)
        if record is None or any(
            want is not None and have != want
            for want, have in (
                (fixed_model, record.model_id),
                (fixed_battery, record.battery_id),
                (fixed_maker, record.manufacturer_id),
            )
        ):
            reason = f"no passport {tail!r} in this dataset"
            return json_response({"error": "Not Found", "reason": reason}, status=404), reason
        return web.Response(body=passports.view_bytes(record, level, fmt), content_type="application/json"), None
    spec = filter_from(
        request,
        model_id=fixed_model if isinstance(fixed_model, str) else None,
        battery_id=fixed_battery if isinstance(fixed_battery, str) else None,
        manufacturer_id=fixed_maker if isinstance(fixed_maker, str) else None,
    )
    page, following = await passports.list(spec)
    body = {
        "passports": [service.render(r.data, {level}, fmt) for r in page],
        "next": following,
        "accessLevel": level,
    }
    return json_response(body), None


def add_public_routes(app: web.Application, passports: service.PassportService) -> None:
    """Mount the public passport view on the protocol application."""
    app[PASSPORTS] = passports
    app.router.add_get("/passports/{id}", public_passport)
