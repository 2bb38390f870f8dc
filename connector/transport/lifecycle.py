"""A battery's life on the management surface (docs/lifecycle.md): successor passports, recorded changes, the
chain across nodes."""

from __future__ import annotations

from aiohttp import web

from connector.domain import lifecycle as lc
from connector.services.lifecycle import LifecycleService
from connector.transport import passports
from connector.transport.http import json_response, read_json

LIFECYCLE: web.AppKey[LifecycleService] = web.AppKey("lifecycle", LifecycleService)
SUCCESSORS = f"{passports.V1}/successors"
CHANGES = f"{passports.V1}/{{id}}/changes"
CHAIN = f"{passports.V1}/{{id}}/lifecycle"
COMPONENTS = f"{passports.V1}/{{id}}/components"


def install(app: web.Application, service: LifecycleService) -> None:
    """Give an application the lifecycle service (the public view shows the chain's public part with it)."""
    app[LIFECYCLE] = service


async def create_successor(request: web.Request) -> web.Response:
    """Store a successor passport linked to its predecessors, checked across nodes."""
    service = request.app[LIFECYCLE]
    saved = await service.create_successor(lc.parse_successor_request(await read_json(request)))
    envelope = request.app[passports.PASSPORTS].envelope(saved.record)
    return json_response({**envelope, "lifecycle": await service.public_part(saved.record)}, status=201)


async def record_change(request: web.Request) -> web.Response:
    """Record a status change, dynamic data or events as a new version."""
    service = request.app[LIFECYCLE]
    saved = await service.record_change(request.match_info["id"], lc.parse_change_request(await read_json(request)))
    envelope = request.app[passports.PASSPORTS].envelope(saved.record)
    return json_response({**envelope, "changed": saved.changed})


async def passport_lifecycle(request: web.Request) -> web.Response:
    """Follow a passport's predecessor and successor links across nodes."""
    return json_response(await request.app[LIFECYCLE].lifecycle(request.match_info["id"]))


async def add_components(request: web.Request) -> web.Response:
    """List an assembly's components (a pack's cells), each checked readable at its node."""
    refs, changed_by = lc.parse_components_request(await read_json(request))
    return json_response(await request.app[LIFECYCLE].add_components(request.match_info["id"], refs, changed_by))
