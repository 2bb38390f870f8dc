"""The one inbound pipeline every DSP endpoint shares: authenticate, read, one service call, answer.

Any domain error becomes the DSP error body of the endpoint's family (CatalogError,
ContractNegotiationError, TransferError) with the status EDC uses, never a problem+json or a stack trace.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

from aiohttp import web

from connector.domain.errors import ConnectorError, Unauthorized
from connector.domain.participants import Participant, TokenUse
from connector.dsp.common import render_error
from connector.transport.http import json_response, read_json
from connector.transport.problems import status_of

log = logging.getLogger("connector.dsp")


class Authenticator(Protocol):
    """Turns the Authorization header of a DSP request into a verified participant."""

    async def authenticate(self, authorization: str | None, read: bool = False, record: bool = True) -> Participant:
        """Return the verified participant; raise Unauthorized (or PeerError) otherwise.

        `read`: the request changes nothing, so the token's replay check may stay in memory (decision 0025).
        With `record=False` the token's id comes back unrecorded (`Participant.unrecorded`) for the service to
        remember in the transaction that acts on the message (decision 0027).
        """
        ...

    async def record(self, use: TokenUse | None) -> None:
        """Remember a token id `authenticate(record=False)` handed out; raise Unauthorized if it was seen before."""
        ...


AUTHENTICATOR: web.AppKey[Authenticator] = web.AppKey("authenticator", Authenticator)

Call = Callable[[Participant, Any], Awaitable[web.StreamResponse]]


async def handle(
    request: web.Request,
    error_type: str,
    call: Call,
    body: bool = True,
    read: bool = False,
    service_records_token: bool = False,
) -> web.StreamResponse:
    """Run one DSP request through the shared pipeline (`read`: one that changes nothing).

    `service_records_token`: the call remembers the token's id itself, with the change the message causes.
    """
    message: Any = None
    participant: Participant | None = None
    try:
        participant = await request.app[AUTHENTICATOR].authenticate(
            request.headers.get("Authorization"), read=read, record=not service_records_token
        )
        message = await read_json(request) if body else None
        return await call(participant, message)
    except ConnectorError as refused:
        error = refused
        if participant is not None and participant.unrecorded is not None and not _replayed(error):
            # The service's transaction rolled back with the token's id in it: a token is accepted once, whatever
            # became of its message, so the id is remembered on its own (a replay found now is the error instead).
            try:
                await request.app[AUTHENTICATOR].record(participant.unrecorded)
            except ConnectorError as replayed:
                error = replayed
        status, _ = status_of(error)
        if status >= 500:
            log.error("DSP request failed", extra={"path": request.path, "error": error.message})
        elif isinstance(error, Unauthorized):
            # The reason names the failed check; refusal messages never carry the token itself.
            reason = getattr(error, "reason", None)
            log.warning(
                "DSP request refused",
                extra={
                    "path": request.path,
                    "reason": str(reason) if reason else "unauthorized",
                    "detail": error.message,
                },
            )
        pids = {}
        if error_type != "CatalogError":
            # The schemas require both pids on negotiation and transfer errors: echo what the message named.
            for name in ("providerPid", "consumerPid"):
                value = message.get(name) if isinstance(message, dict) else None
                pids[name] = value if isinstance(value, str) and len(value) <= 256 else ""
        # The summary first, then each problem with where it is (never just "missing").
        reasons = [error.message] + [
            f"{p.path}: {p.message}" for p in error.problems if p.path and p.message != error.message
        ]
        return json_response(render_error(error_type, status, reasons, **pids), status=status)


def _replayed(error: ConnectorError) -> bool:
    return getattr(error, "reason", None) == "replayed"


def unreadable_request(status: int, detail: str) -> web.Response:
    """Answer a request the HTTP parser refused, in the DSP error shape.

    The endpoint was not read, so the body takes the one DSP error type that names no process (CatalogError).
    """
    return json_response(render_error("CatalogError", status, [detail]), status=status)


def dsp_json(body: dict[str, Any], status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
    """Answer a DSP message."""
    return json_response(body, status=status, headers=headers)
