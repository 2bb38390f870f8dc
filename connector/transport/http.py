"""Shared HTTP plumbing for both surfaces: request ids, access logs, error answers, bounded JSON bodies."""

from __future__ import annotations

import asyncio
import hmac
import itertools
import logging
import re
import secrets
import time
from collections.abc import Awaitable, Callable
from typing import Any

import orjson
from aiohttp import web

from connector.domain.errors import ConnectorError, InvalidInput, Unauthorized
from connector.domain.json_input import JsonLimits, parse_json, too_large
from connector.logs import AccessLine, request_id
from connector.transport.problems import error_response, problem_response

log = logging.getLogger("connector.http")

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

BODY_READ_TIMEOUT = 30.0
MAX_BODY: web.AppKey[int] = web.AppKey("max_body", int)
MAX_DEPTH: web.AppKey[int] = web.AppKey("max_depth", int)
API_KEY: web.AppKey[str | None] = web.AppKey("api_key", str)
OPEN_PATHS: web.AppKey[frozenset[str]] = web.AppKey("open_paths", frozenset)


class InFlight:
    """Counts requests being handled, so a stopping node can wait for them to finish."""

    def __init__(self) -> None:
        self.count = 0
        self.draining = False
        self._idle = asyncio.Event()
        self._idle.set()

    def enter(self) -> None:
        """Record a request starting."""
        self.count += 1
        self._idle.clear()

    def leave(self) -> None:
        """Record a request finishing."""
        self.count -= 1
        if self.count == 0:
            self._idle.set()

    async def wait_idle(self, within: float) -> bool:
        """Wait until no request is in flight; return False if `within` seconds passed first."""
        try:
            async with asyncio.timeout(within):
                await self._idle.wait()
        except TimeoutError:
            return False
        return True


IN_FLIGHT: web.AppKey[InFlight] = web.AppKey("in_flight", InFlight)

_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")
# Request ids made here: a random prefix per process and a counter (unique without a random draw per request).
_ID_PREFIX = secrets.token_hex(10)
_ID_COUNTER = itertools.count(1)
_ACCESS = AccessLine(log, "request_context")  # the one line per request


@web.middleware
async def request_context(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Give every request an id (the caller's X-Request-Id when sane), log one access line, answer every error."""
    given = request.headers.get("X-Request-Id", "")
    rid = given if given and _REQUEST_ID.match(given) else f"{_ID_PREFIX}{next(_ID_COUNTER):012x}"
    token = request_id.set(rid)
    started = time.perf_counter()
    status = 500
    in_flight = request.app.get(IN_FLIGHT)
    if in_flight is not None:
        in_flight.enter()
    try:
        try:
            response = await handler(request)
        except ConnectorError as exc:
            response = error_response(exc, rid)
        except web.HTTPException as exc:
            response = _http_exception(exc, rid, request.app.get(MAX_BODY))
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("unhandled error", extra={"method": request.method, "path": request.path})
            response = problem_response(
                500,
                "Internal error",
                f"the node failed to handle this request; see its log for request id {rid}",
                rid,
            )
        status = response.status
        response.headers["X-Request-Id"] = rid
        if in_flight is not None and in_flight.draining:
            response.force_close()
        return response
    finally:
        if in_flight is not None:
            in_flight.leave()
        _ACCESS.log(request.method, request.path, status, round((time.perf_counter() - started) * 1000, 2))
        request_id.reset(token)


def _http_exception(exc: web.HTTPException, rid: str, limit: int | None) -> web.Response:
    if exc.status == 413:
        detail = f"the request body is {too_large(JsonLimits(limit)) if limit else 'larger than this node accepts'}"
        return problem_response(413, "Payload too large", detail, rid)
    if exc.status == 405:
        allowed = exc.headers.get("Allow", "")
        return problem_response(
            405, "Method not allowed", f"{exc.reason}; allowed: {allowed}", rid, headers={"Allow": allowed}
        )
    if exc.status == 404:
        return problem_response(404, "Not found", f"no such endpoint: {exc.reason}", rid)
    if exc.status < 400:
        return web.Response(status=exc.status, headers=exc.headers)
    return problem_response(exc.status, exc.reason, exc.text or exc.reason, rid)


@web.middleware
async def api_key_check(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Require the management API key (X-Api-Key) on every path but the open ones."""
    expected = request.app[API_KEY]
    if expected is not None and request.path not in request.app[OPEN_PATHS]:
        given = request.headers.get("X-Api-Key", "")
        if not hmac.compare_digest(given.encode(), expected.encode()):
            raise Unauthorized("missing or wrong X-Api-Key header" if given else "the X-Api-Key header is required")
    return await handler(request)


def json_limits(request: web.Request) -> JsonLimits:
    """Return the limits every JSON document this application reads is held to (the node's settings)."""
    return JsonLimits(request.app[MAX_BODY], request.app[MAX_DEPTH])


async def read_body(request: web.Request) -> bytes:
    """Read a request body within the size and time limits (413 when it is larger than the node takes)."""
    limit = request.app[MAX_BODY]
    if request.content_length is not None and request.content_length > limit:
        raise web.HTTPRequestEntityTooLarge(max_size=limit, actual_size=request.content_length)
    try:
        async with asyncio.timeout(BODY_READ_TIMEOUT):
            return await request.read()
    except TimeoutError:
        raise InvalidInput(f"the request body did not arrive within {BODY_READ_TIMEOUT:.0f} s") from None


async def read_json(request: web.Request, optional: bool = False) -> Any:
    """Read a JSON body with the node's one JSON reader, within its limits; raise InvalidInput naming the problem."""
    raw = await read_body(request)
    if not raw.strip():
        if optional:
            return None
        raise InvalidInput("a JSON body is required")
    content_type = request.content_type
    if content_type not in (
        "application/json",
        "application/ld+json",
        "application/octet-stream",
    ) and not content_type.endswith("+json"):
        raise InvalidInput(f"the body must be JSON (Content-Type application/json), not {content_type!r}")
    return parse_json(raw, json_limits(request), "the body")


def json_response(data: Any, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
    """Answer with a JSON body serialised by orjson."""
    return web.Response(body=orjson.dumps(data), status=status, content_type="application/json", headers=headers)


def no_content() -> web.Response:
    """Answer 204 with no body."""
    return web.Response(status=204)
