"""Errors as HTTP answers: problem+json (RFC 9457) on the management surface, in one place."""

from __future__ import annotations

from typing import Any

import orjson
from aiohttp import web

from connector.domain.errors import (
    Conflict,
    ConnectorError,
    DatabaseUnavailable,
    InvalidInput,
    NotFound,
    PeerError,
    PeerTimeout,
    Refused,
    Unauthorized,
    Unprocessable,
)

PROBLEM_JSON = "application/problem+json"

_STATUS: list[tuple[type[ConnectorError], int, str]] = [
    (InvalidInput, 400, "Invalid input"),
    (Unauthorized, 401, "Unauthorized"),
    (Refused, 403, "Refused by the partner"),
    (NotFound, 404, "Not found"),
    (Conflict, 409, "Conflict"),
    (Unprocessable, 422, "Unprocessable content"),
    (PeerTimeout, 504, "Peer timed out"),
    (PeerError, 502, "Peer error"),
    (DatabaseUnavailable, 503, "Database unavailable"),
]


def status_of(error: ConnectorError) -> tuple[int, str]:
    """Return the HTTP status and title for a domain error."""
    for kind, status, title in _STATUS:
        if isinstance(error, kind):
            return status, title
    return 500, "Internal error"


def problem_response(
    status: int,
    title: str,
    detail: str,
    request_id: str | None,
    errors: list[dict[str, Any]] | None = None,
    headers: dict[str, str] | None = None,
    step: str | None = None,
) -> web.Response:
    """Build a problem+json response; `errors` lists each problem as EDC does (message, type, path, invalidValue)."""
    body: dict[str, Any] = {
        "type": "about:blank",
        "title": title,
        "status": status,
        "detail": detail,
    }
    if request_id:
        body["instance"] = f"urn:request:{request_id}"
    if step:
        body["step"] = step
    body["errors"] = (
        errors
        if errors is not None
        else [{"message": detail, "type": title.replace(" ", ""), "path": None, "invalidValue": None}]
    )
    return web.Response(status=status, body=orjson.dumps(body), content_type=PROBLEM_JSON, headers=headers)


def error_response(error: ConnectorError, request_id: str | None) -> web.Response:
    """Turn a domain error into its problem+json answer."""
    status, title = status_of(error)
    errors = [
        {"message": p.message, "type": error.type, "path": p.path, "invalidValue": _shown(p.invalid_value)}
        for p in error.problems
    ]
    headers = {"WWW-Authenticate": 'ApiKey header="X-Api-Key"'} if status == 401 else None
    return problem_response(status, title, error.message, request_id, errors, headers, error.step)


def _shown(value: Any) -> Any:
    # Echo short values only: the invalid value helps, a 10 MB blob does not.
    text = orjson.dumps(value, default=str)
    return value if len(text) <= 1024 else f"<{len(text)} bytes omitted>"
