"""DSP 2025-1 catalog messages: CatalogRequestMessage in; Catalog, Dataset and CatalogError out."""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass
from typing import Any

import orjson

from connector.domain.errors import InvalidInput, Problem
from connector.dsp.common import check_message

DEFAULT_PAGE = 50
MAX_PAGE = 1000


@dataclass(frozen=True, slots=True)
class CatalogRequest:
    """What a requester asked for: a page of the catalog."""

    offset: int = 0
    limit: int = DEFAULT_PAGE


def parse_catalog_request(body: Any, continuation: str | None) -> CatalogRequest:
    """Read a CatalogRequestMessage; a continuation token from a Link header replaces any filter."""
    check_message(body, "CatalogRequestMessage")
    if continuation is not None:
        return parse_continuation(continuation)
    filters = body.get("filter")
    if filters is None:
        return CatalogRequest()
    if not isinstance(filters, list):
        raise InvalidInput("filter must be an array", [Problem("must be an array", "filter", filters)])
    request = CatalogRequest()
    for i, item in enumerate(filters):
        # EDC puts a QuerySpec on every catalog request; honour its paging, refuse anything else.
        if isinstance(item, dict) and item.get("@type") in (
            "QuerySpec",
            "edc:QuerySpec",
            "https://w3id.org/edc/v0.0.1/ns/QuerySpec",
        ):
            request = _query_spec_page(item, f"filter[{i}]")
            continue
        raise InvalidInput(
            f"filter[{i}] is not supported: this node understands only an EDC QuerySpec (offset, limit)",
            [Problem("unsupported filter", f"filter[{i}]", item)],
        )
    return request


def _query_spec_page(spec: dict[str, Any], path: str) -> CatalogRequest:
    offset = spec.get("offset", 0)
    limit = spec.get("limit", DEFAULT_PAGE)
    if not isinstance(offset, int) or isinstance(offset, bool) or offset < 0:
        raise InvalidInput(f"{path}.offset must be an integer >= 0", [Problem("bad offset", f"{path}.offset", offset)])
    if not isinstance(limit, int) or isinstance(limit, bool) or limit < 1:
        raise InvalidInput(f"{path}.limit must be an integer >= 1", [Problem("bad limit", f"{path}.limit", limit)])
    if spec.get("filterExpression"):
        raise InvalidInput(
            f"{path}.filterExpression is not supported on catalog requests",
            [Problem("unsupported", f"{path}.filterExpression", spec["filterExpression"])],
        )
    return CatalogRequest(offset=offset, limit=min(limit, MAX_PAGE))


def continuation_token(offset: int, limit: int) -> str:
    """Return the token a Link header carries for a page."""
    return base64.urlsafe_b64encode(orjson.dumps([offset, limit])).decode().rstrip("=")


def parse_continuation(token: str) -> CatalogRequest:
    """Read a continuation token."""
    try:
        offset, limit = orjson.loads(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
    except (binascii.Error, ValueError, TypeError):
        raise InvalidInput("continuationToken is not one this node issued") from None
    if not (isinstance(offset, int) and isinstance(limit, int) and offset >= 0 and 1 <= limit <= MAX_PAGE):
        raise InvalidInput("continuationToken is not one this node issued")
    return CatalogRequest(offset=offset, limit=limit)


def link_header(catalog_url: str, offset: int, limit: int, has_more: bool) -> str | None:
    """Return the Link header for a page: rel="next" when more follow, rel="previous" after the first page."""
    links = []
    if has_more:
        links.append(f'<{catalog_url}?continuationToken={continuation_token(offset + limit, limit)}>; rel="next"')
    if offset > 0:
        previous = max(0, offset - limit)
        links.append(f'<{catalog_url}?continuationToken={continuation_token(previous, limit)}>; rel="previous"')
    return ", ".join(links) or None
