"""Serving the two surfaces: bind, run until told to stop, drain in-flight requests.

Requests aiohttp's HTTP parser refuses (a header line over the limit, too many headers, a malformed
request line, bad chunking, TLS on a plain port) never reach the application and its middleware; aiohttp
answers them itself, in plain text that quotes part of the offending bytes (an `Authorization` header
among them), and logs that text. Here they are answered in the surface's own error body instead, with a
fixed message per kind of fault and nothing of what was sent, and logged as one line naming the kind.
"""

from __future__ import annotations

import errno
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from aiohttp import http_exceptions, web
from aiohttp.web_protocol import _ErrInfo
from aiohttp.web_request import BaseRequest

from connector.domain.errors import InvalidInput
from connector.transport.http import IN_FLIGHT, InFlight
from connector.transport.problems import problem_response

log = logging.getLogger("connector")
http_log = logging.getLogger("connector.http")

#: Builds a surface's error answer from a status and a fixed detail (never from what the client sent).
ErrorBody = Callable[[int, str], web.Response]
#: The error body a surface answers parser-level faults with; problem+json when an application sets none.
ERROR_BODY: web.AppKey[ErrorBody] = web.AppKey("error_body", ErrorBody)  # type: ignore[arg-type]

DEFAULT_MAX_HEADER_BYTES = 16_384
BROKEN_BODY = "the request body is not valid HTTP/1.1 framing (bad chunked encoding); it was not read"
MAX_HEADERS = 128


def problem_body(status: int, detail: str) -> web.Response:
    """Answer a fault outside the request pipeline as problem+json (the management surface's shape)."""
    title = {400: "Bad request", 500: "Internal error", 504: "Timeout"}.get(status, "Error")
    return problem_response(status, title, detail, None)


def parser_fault(exc: BaseException | None, max_header_bytes: int) -> str:
    """Describe, in a fixed sentence, why the HTTP parser refused a request (never quoting the request)."""
    if isinstance(exc, http_exceptions.LineTooLong):
        return f"the request line or a header field is longer than this node accepts ({max_header_bytes} bytes)"
    if isinstance(exc, http_exceptions.BadHttpMethod):
        return "the request does not begin with an HTTP method (TLS or another protocol on a plain HTTP port?)"
    if isinstance(exc, http_exceptions.InvalidURLError):
        return "the request target is not a valid URL"
    if isinstance(exc, http_exceptions.HttpProcessingError) and exc.message.startswith("Too many headers"):
        return f"the request has more header fields than this node accepts ({MAX_HEADERS})"
    return (
        "the request is not valid HTTP/1.1: a malformed request line or header, an invalid character, "
        "or bad chunked framing"
    )


class _SurfaceRequestHandler(web.RequestHandler):
    """aiohttp's connection protocol, answering what happens outside the application in the surface's shape."""

    __slots__ = ("_error_body", "_max_header_bytes")

    def __init__(self, manager: web.Server, *, error_body: ErrorBody, max_header_bytes: int, **kwargs: Any) -> None:
        super().__init__(manager, **kwargs)
        self._error_body = error_body
        self._max_header_bytes = max_header_bytes

    def data_received(self, data: bytes) -> None:
        """Feed the parser; a fault in the body of the request being handled ends that body with InvalidInput.

        aiohttp queues a fault it finds after the headers (bad chunking) as a next message and leaves the body's
        reader waiting for bytes that never come; the handler would wait out its read timeout.
        """
        current = self._current_request
        super().data_received(data)
        if (
            current is not None
            and self._messages
            and isinstance(self._messages[-1][0], _ErrInfo)
            and not current.content.is_eof()
        ):
            current.content.set_exception(InvalidInput(BROKEN_BODY))
            current.content.feed_eof()  # nothing more will be read: no lingering on it
            self.close()  # the handler's answer is the last on this connection; the queued fault is not answered

    def handle_error(
        self, request: BaseRequest, status: int = 500, exc: BaseException | None = None, message: str | None = None
    ) -> web.StreamResponse:
        """Answer a parser-level fault (or an error outside the middleware) with a fixed message; log its kind."""
        if request.writer.output_size > 0:
            raise ConnectionError("the response had begun; the connection is cut")
        if status >= 500:
            if status == 500:
                self.log_exception("unhandled error outside the request pipeline", exc_info=exc)
            detail = "the node failed to handle this request; see its log"
        else:
            detail = parser_fault(exc, self._max_header_bytes)
            # Expected on a public port (scanners, TLS on the plain port): one line, never what was sent.
            level = logging.DEBUG if isinstance(exc, http_exceptions.BadHttpMethod) else logging.INFO
            http_log.log(
                level,
                "malformed HTTP request refused",
                extra={"status": status, "fault": type(exc).__name__ if exc else "unknown", "remote": request.remote},
            )
        response = self._error_body(status, detail)
        response.force_close()
        return response


class _SurfaceServer(web.Server):
    def __init__(self, handler: Any, *, error_body: ErrorBody, max_header_bytes: int, **kwargs: Any) -> None:
        super().__init__(handler, **kwargs)
        self._surface = {"error_body": error_body, "max_header_bytes": max_header_bytes}

    def __call__(self) -> web.RequestHandler:
        return _SurfaceRequestHandler(self, loop=self._loop, **self._surface, **self._kwargs)  # type: ignore[arg-type]


class _SurfaceRunner(web.AppRunner):
    """An AppRunner whose connections answer parser-level faults with the application's ERROR_BODY."""

    def __init__(self, app: web.Application, *, max_header_bytes: int, **kwargs: Any) -> None:
        super().__init__(
            app, max_line_size=max_header_bytes, max_field_size=max_header_bytes, max_headers=MAX_HEADERS, **kwargs
        )
        self._max_header_bytes = max_header_bytes

    async def _make_server(self) -> web.Server:
        made = await super()._make_server()  # starts the application and freezes it, as AppRunner does
        return _SurfaceServer(
            made.request_handler,
            request_factory=made.request_factory,
            handler_cancellation=made.handler_cancellation,
            loop=made._loop,
            error_body=self.app.get(ERROR_BODY, problem_body),
            max_header_bytes=self._max_header_bytes,
            **made._kwargs,
        )


class BindError(Exception):
    """A surface could not bind its address."""


@dataclass(slots=True)
class Served:
    """One running surface: its runner and the port it actually bound (useful with port 0)."""

    runner: web.AppRunner
    port: int
    in_flight: InFlight
    shutdown_timeout: float


async def serve(
    app: web.Application,
    host: str,
    port: int,
    shutdown_timeout: float,
    what: str,
    max_header_bytes: int = DEFAULT_MAX_HEADER_BYTES,
) -> Served:
    """Start serving an application; raise BindError with one clear line when the address is taken."""
    in_flight = InFlight()
    app[IN_FLIGHT] = in_flight
    runner = _SurfaceRunner(
        app, handle_signals=False, access_log=None, shutdown_timeout=shutdown_timeout, max_header_bytes=max_header_bytes
    )
    await runner.setup()
    site = web.TCPSite(runner, host, port, reuse_address=True)
    try:
        await site.start()
    except OSError as exc:
        await runner.cleanup()
        reason = "address already in use" if exc.errno == errno.EADDRINUSE else exc.strerror or str(exc)
        raise BindError(f"cannot bind the {what} surface to {host}:{port}: {reason}") from None
    addresses = runner.addresses
    bound = addresses[0][1] if addresses else port
    return Served(runner=runner, port=int(bound), in_flight=in_flight, shutdown_timeout=shutdown_timeout)


async def stop(served: Served) -> None:
    """Stop accepting connections, let in-flight requests finish (up to the shutdown timeout), clean up."""
    # aiohttp's own shutdown stops reading from connections at once, which cuts off a request whose
    # body is still arriving; so stop listening first and wait for our own in-flight count instead.
    for site in list(served.runner.sites):
        await site.stop()
    served.in_flight.draining = True
    if not await served.in_flight.wait_idle(served.shutdown_timeout):
        log.warning("requests still in flight after the shutdown timeout", extra={"count": served.in_flight.count})
    await served.runner.cleanup()
