"""The passport lookup on the management surface: one call reads a partner's passport (docs/lookup.md)."""

from __future__ import annotations

from aiohttp import web

from connector.domain.errors import NotFound
from connector.services.lookup import PassportLookup, parse_lookup_request
from connector.transport.http import json_response, read_json

LOOKUP: web.AppKey[PassportLookup] = web.AppKey("lookup", PassportLookup)
PATH = "/management/v1/passports/lookup"


async def lookup_passport(request: web.Request) -> web.Response:
    service = request.app.get(LOOKUP)
    if service is None:
        raise NotFound("this node does not look passports up")
    wanted = parse_lookup_request(await read_json(request))
    found = await service.lookup(wanted)
    return json_response(found.render())
