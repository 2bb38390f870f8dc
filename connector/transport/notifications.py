"""Digital Twin Event notifications over HTTP (docs/lifecycle.md): received through the data plane (a
DigitalTwinEventAPI asset's data requests are POSTed messages), and the inbox and sent messages on the management
surface."""

from __future__ import annotations

import orjson
from aiohttp import web

from connector.domain.errors import Conflict, InvalidInput, Refused
from connector.services.dataplane import Grant
from connector.services.lifecycle import parse_limit
from connector.services.notifications import NotificationService
from connector.transport.http import json_response

NOTIFICATIONS: web.AppKey[NotificationService] = web.AppKey("notifications", NotificationService)
PATH = "/management/v1/notifications"
MAX_MESSAGE_BYTES = 1024 * 1024


def install(app: web.Application, service: NotificationService) -> None:
    """Give an application (the protocol surface's data plane, the management surface) the notifications."""
    app[NOTIFICATIONS] = service


def _answer(status: int, reason: str, **extra: object) -> tuple[web.Response, str | None]:
    name = {400: "Bad Request", 403: "Forbidden", 405: "Method Not Allowed", 409: "Conflict"}.get(status, "Error")
    return json_response({"error": name, "reason": reason, **extra}, status=status), reason


async def data_plane(request: web.Request, grant: Grant) -> tuple[web.Response, str | None]:
    """Take one Digital Twin Event POSTed under an agreement: 201, 409 for a message id seen before, 400, 403."""
    if request.method != "POST":
        return _answer(405, "Digital Twin Events are sent with POST")
    raw = await request.content.read(MAX_MESSAGE_BYTES + 1)
    if len(raw) > MAX_MESSAGE_BYTES:
        return _answer(400, f"the message is larger than {MAX_MESSAGE_BYTES} bytes")
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return _answer(400, "the body is not JSON: send a Digital Twin Event {header, content}")
    try:
        received = await request.app[NOTIFICATIONS].receive(grant.transfer.counterparty_id, body)
    except Conflict as exc:
        return _answer(409, exc.message, duplicate=True)
    except Refused as exc:
        return _answer(403, exc.message)
    except InvalidInput as exc:
        errors = [{"path": p.path, "message": p.message} for p in exc.problems]
        return _answer(400, exc.message, errors=errors)
    body_out = {"messageId": received.message_id, "state": received.state, "reason": received.reason}
    return json_response(body_out, status=201), None


async def list_notifications(request: web.Request) -> web.Response:
    """List notifications received (`direction=in`, the inbox), sent (`out`) or both."""
    service = request.app[NOTIFICATIONS]
    found = await service.list(
        request.query.get("direction"), request.query.get("passportId"), parse_limit(request.query.get("limit"))
    )
    return json_response({"items": [n.as_json() for n in found]})


async def get_notification(request: web.Request) -> web.Response:
    """Return one notification (`direction` in, the default, or out)."""
    direction = request.query.get("direction", "in")
    if direction not in ("in", "out"):
        raise InvalidInput("direction must be in or out")
    found = await request.app[NOTIFICATIONS].get(request.match_info["id"], direction)
    return json_response(found.as_json())
