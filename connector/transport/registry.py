"""The embedded Digital Twin Registry and the passports' submodels, served by the data plane (docs/registry.md).

A DigitalTwinRegistry asset's data requests are the AAS registry and discovery read APIs below the EDR's
endpoint (`/public/shell-descriptors`, `/public/lookup/shellsByAssetLink`, ...), answered for the BPN of the
agreement's consumer, with AAS `Result` error bodies. A PassportSubmodel asset's are a descriptor's `href`
(`/public/submodels/<base64url passport id>/<part>`) and its value-only form (`.../$value`).
"""

from __future__ import annotations

from typing import Any

import orjson
from aiohttp import web

from connector.domain import registry as wire
from connector.domain.assets import DIGITAL_TWIN_REGISTRY, PASSPORT_SUBMODEL
from connector.domain.errors import ConnectorError, InvalidInput, NotFound
from connector.services.dataplane import Grant
from connector.services.registry import RegistryService, now_ms, submodel_value
from connector.transport import passports
from connector.transport.http import json_response

REGISTRY: web.AppKey[RegistryService] = web.AppKey("registry", RegistryService)
TYPES = (DIGITAL_TWIN_REGISTRY, PASSPORT_SUBMODEL)
MAX_LOOKUP_BYTES = 4 * 1024 * 1024  # 10,000 links of a few hundred bytes each, with room

# The profiles served (AAS Part 2 service specification profiles CX-0002 requires).
PROFILES = [
    "https://admin-shell.io/aas/API/3/0/AssetAdministrationShellRegistryServiceSpecification/SSP-002",
    "https://admin-shell.io/aas/API/3/1/DiscoveryServiceSpecification/SSP-002",
]


def install(app: web.Application, service: RegistryService) -> None:
    """Give the data plane the registry."""
    app[REGISTRY] = service


def _failure(status: int, text: str) -> tuple[web.Response, str]:
    return json_response(wire.result(status, text, now_ms()), status=status), text


async def data_plane(request: web.Request, grant: Grant, tail: str) -> tuple[web.Response, str | None]:
    """Answer a data request on a registry or submodel asset; return the response and a refusal reason."""
    try:
        if grant.asset.data_address.type == DIGITAL_TWIN_REGISTRY:
            return await _registry(request, grant, tail.strip("/")), None
        return await _submodel(request, grant.asset.data_address.properties, tail)
    except NotFound as exc:
        return _failure(404, exc.message)
    except _MethodNotAllowed as exc:
        return _failure(405, exc.message)
    except ConnectorError as exc:
        return _failure(400, exc.message)


async def _registry(request: web.Request, grant: Grant, tail: str) -> web.Response:
    service = request.app[REGISTRY]
    steps = tail.split("/") if tail else []
    query = request.query
    if steps == ["lookup", "shellsByAssetLink"]:
        _method(request, "POST")
        bpn = await service.requester_bpn(grant.transfer.counterparty_id)
        links = wire.parse_asset_links(await _json(request))
        found = await service.lookup(bpn, links, limit=query.get("limit"), cursor=query.get("cursor"))
        return json_response(found)
    _method(request, "GET", "HEAD")
    bpn = await service.requester_bpn(grant.transfer.counterparty_id)
    if steps == ["description"]:
        return json_response({"profiles": PROFILES})
    if steps == ["lookup", "shells"]:
        links = wire.parse_asset_ids(query.getall("assetIds", []))
        found = await service.lookup(
            bpn, links, limit=query.get("limit"), cursor=query.get("cursor"), created_after=query.get("createdAfter")
        )
        return json_response(found)
    if len(steps) == 3 and steps[:2] == ["lookup", "shells"]:
        return json_response((await service.shell(bpn, steps[2]))["specificAssetIds"])
    if steps == ["shell-descriptors"]:
        listed = await service.list_shells(
            bpn,
            limit=query.get("limit"),
            cursor=query.get("cursor"),
            asset_kind=query.get("assetKind"),
            asset_type=query.get("assetType"),
            created_after=query.get("createdAfter"),
        )
        return json_response(listed)
    if len(steps) == 2 and steps[0] == "shell-descriptors":
        return json_response(await service.shell(bpn, steps[1]))
    if len(steps) == 3 and steps[0] == "shell-descriptors" and steps[2] == "submodel-descriptors":
        return json_response(await service.submodels(bpn, steps[1], query.get("limit"), query.get("cursor")))
    if len(steps) == 4 and steps[0] == "shell-descriptors" and steps[2] == "submodel-descriptors":
        return json_response(await service.submodel(bpn, steps[1], steps[3]))
    raise NotFound(
        f"the registry has no resource /{tail}: it serves /shell-descriptors, /lookup/shells, "
        "/lookup/shellsByAssetLink and /description"
    )


class _MethodNotAllowed(ConnectorError):
    """A method the resource does not take (405)."""


def _method(request: web.Request, *allowed: str) -> None:
    if request.method not in allowed:
        raise _MethodNotAllowed(f"{request.method} is not allowed here; use {' or '.join(allowed)}")


async def _json(request: web.Request) -> Any:
    raw = await request.content.read(MAX_LOOKUP_BYTES + 1)
    if len(raw) > MAX_LOOKUP_BYTES:
        raise InvalidInput(f"the body is larger than a lookup needs ({MAX_LOOKUP_BYTES} bytes)")
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError:
        raise InvalidInput("the body is not JSON: send a JSON array of {name, value} asset links") from None


async def _submodel(request: web.Request, address: dict[str, Any], tail: str) -> tuple[web.Response, str | None]:
    if request.method not in ("GET", "HEAD"):
        raise _MethodNotAllowed("submodels are read with GET")
    found = wire.parse_submodel_path(tail)
    if found is None or found[1] != address.get("part"):
        raise NotFound(
            f"no submodel at /{tail} in this dataset: read submodels/<base64url passport id>/{address.get('part')}"
            " (or .../$value), the href of its descriptor"
        )
    passport_id, part, _value_only = found
    record = await request.app[passports.PASSPORTS].current(passport_id)
    if record is None:
        raise NotFound(f"no passport {passport_id!r}")
    # A Catena-X aspect's payload is its value: href and href/$value answer the same JSON (docs/registry.md).
    value = submodel_value(record.data, part, str(address.get("accessLevel", "public")))
    return web.Response(body=orjson.dumps(value), content_type="application/json"), None
