"""DSP 2025-1 catalog messages: CatalogRequestMessage in; Catalog, Dataset and CatalogError out; and, on the
consumer side, the offers of a peer's Catalog or Dataset."""

from __future__ import annotations

import base64
import binascii
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import orjson

import policies
from connector import jsonld, vocab
from connector.domain.errors import InvalidInput, PeerError, Problem
from connector.dsp.common import check_message

DEFAULT_PAGE = 50
MAX_PAGE = 1000


@dataclass(frozen=True, slots=True)
class CatalogRequest:
    """What a requester asked for: a page of the catalog."""

    offset: int = 0
    limit: int = DEFAULT_PAGE
    # Keyset paging: the page starts after this id; `offset` then counts the datasets before the page.
    after: str | None = None


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


def continuation_token(position: int, limit: int, after: str | None) -> str:
    """Return the token a Link header carries for a page."""
    return base64.urlsafe_b64encode(orjson.dumps([position, limit, after])).decode().rstrip("=")


def parse_continuation(token: str) -> CatalogRequest:
    """Read a continuation token."""
    try:
        position, limit, after = orjson.loads(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
    except (binascii.Error, ValueError, TypeError):
        raise InvalidInput("continuationToken is not one this node issued") from None
    valid = isinstance(position, int) and isinstance(limit, int) and position >= 0 and 1 <= limit <= MAX_PAGE
    if not valid or not (after is None or isinstance(after, str)):
        raise InvalidInput("continuationToken is not one this node issued")
    return CatalogRequest(offset=position, limit=limit, after=after)


def link_header(catalog_url: str, wanted: CatalogRequest, has_more: bool, last_key: str | None) -> str | None:
    """Return the Link header for a page: rel="next" (by key) when more follow, rel="previous" after the first."""
    links = []
    if has_more and last_key is not None:
        token = continuation_token(wanted.offset + wanted.limit, wanted.limit, last_key)
        links.append(f'<{catalog_url}?continuationToken={token}>; rel="next"')
    if wanted.offset > 0:
        token = continuation_token(max(0, wanted.offset - wanted.limit), wanted.limit, None)
        links.append(f'<{catalog_url}?continuationToken={token}>; rel="previous"')
    return ", ".join(links) or None


# A peer's catalog (consumer side).


def _datasets(node: dict[str, Any], depth: int = 0) -> Iterator[dict[str, Any]]:
    """Yield the dataset nodes of an expanded Catalog or Dataset, nested catalogs included."""
    if vocab.DCAT + "Dataset" in node.get("@type", []) or vocab.ODRL + "hasPolicy" in node:
        yield node
    for child in jsonld.values(node, vocab.DCAT + "dataset"):
        if isinstance(child, dict):
            yield from _datasets(child, depth + 1)
    if depth < 3:
        for child in jsonld.values(node, vocab.DCAT + "catalog"):
            if isinstance(child, dict):
                yield from _datasets(child, depth + 1)


def parse_dataset_offers(document: Any) -> dict[str, dict[str, Any]]:
    """Return the offers of a peer's Catalog or Dataset by offer id, each in DSP form with its dataset as target.

    The document is read as JSON-LD (with the contexts this node holds), so the same offer compacted with another
    context, or with one-item arrays written as a single value (as Tractus-X EDC writes them), reads the same.
    """
    try:
        nodes = [n for n in jsonld.expand_peer_document(document) if isinstance(n, dict)]
    except InvalidInput as exc:
        raise PeerError(f"the peer's catalog is not valid JSON-LD: {exc.message}") from None
    offers: dict[str, dict[str, Any]] = {}
    for node in nodes:
        for dataset in _datasets(node):
            dataset_id = dataset.get("@id")
            for item in jsonld.values(dataset, vocab.ODRL + "hasPolicy"):
                if not isinstance(item, dict) or not isinstance(item.get("@id"), str):
                    continue
                try:
                    parsed = policies.parse_policy(item)
                except policies.PolicyError:
                    continue  # an offer this node cannot read is never one it agrees to
                offer = {k: v for k, v in policies.render_dsp(parsed).items() if k != "@context"}
                offer["@type"] = "Offer"
                if isinstance(dataset_id, str):
                    offer["target"] = dataset_id
                offers[item["@id"]] = offer
    return offers
