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
from connector.domain import selection
from connector.domain.assets import Criterion
from connector.domain.errors import InvalidInput, PeerError, Problem
from connector.domain.query import OPERATORS
from connector.dsp.common import DSP_CONTEXT, check_message

DEFAULT_PAGE = 50
MAX_PAGE = 1000


@dataclass(frozen=True, slots=True)
class CatalogRequest:
    """What a requester asked for: a page of the catalog, of the datasets its filter selects."""

    offset: int = 0
    limit: int = DEFAULT_PAGE
    # Keyset paging: the page starts after this id; `offset` then counts the datasets before the page.
    after: str | None = None
    # EDC's QuerySpec filterExpression, on the datasets' (assets') public properties and ids; keys are full IRIs.
    filter: tuple[Criterion, ...] = ()


_QUERY_SPEC_TYPES = ("QuerySpec", "edc:QuerySpec", vocab.EDC + "QuerySpec")


def parse_catalog_request(body: Any, continuation: str | None) -> CatalogRequest:
    """Read a CatalogRequestMessage; a continuation token from a Link header replaces any filter.

    The one filter understood is EDC's: a QuerySpec (offset, limit, filterExpression) in its own terms, bare (as
    EDC sends them, with its context), `edc:` prefixed or as full IRIs. Anything else, and any criterion this node
    cannot evaluate, is refused naming it.
    """
    check_message(body, "CatalogRequestMessage")
    if continuation is not None:
        return parse_continuation(continuation)
    filters = body.get("filter")
    if filters is None:
        return CatalogRequest()
    if isinstance(filters, dict):
        filters = [filters]  # a one-item @set written as its item
    if not isinstance(filters, list):
        raise InvalidInput("filter must be an array", [Problem("must be an array", "filter", filters)])
    request = CatalogRequest()
    for i, item in enumerate(filters):
        # EDC puts a QuerySpec on every catalog request: honour its paging and its filter expression.
        if isinstance(item, dict) and item.get("@type") in _QUERY_SPEC_TYPES:
            request = _query_spec(item, f"filter[{i}]")
            continue
        raise InvalidInput(
            f"filter[{i}] is not supported: this node understands only an EDC QuerySpec "
            "(offset, limit, filterExpression)",
            [Problem("unsupported filter", f"filter[{i}]", item)],
        )
    return request


def _field(node: dict[str, Any], name: str) -> Any:
    """Return an EDC term's value however it is written: bare, edc: prefixed or as its IRI."""
    for key in (name, "edc:" + name, vocab.EDC + name):
        if key in node:
            value = node[key]
            return value["@value"] if isinstance(value, dict) and set(value) <= {"@value", "@type"} else value
    return None


def _query_spec(spec: dict[str, Any], path: str) -> CatalogRequest:
    offset = _field(spec, "offset")
    limit = _field(spec, "limit")
    offset = 0 if offset is None else offset
    limit = DEFAULT_PAGE if limit is None else limit
    if not isinstance(offset, int) or isinstance(offset, bool) or offset < 0:
        raise InvalidInput(f"{path}.offset must be an integer >= 0", [Problem("bad offset", f"{path}.offset", offset)])
    if not isinstance(limit, int) or isinstance(limit, bool) or limit < 1:
        raise InvalidInput(f"{path}.limit must be an integer >= 1", [Problem("bad limit", f"{path}.limit", limit)])
    expression = _field(spec, "filterExpression")
    if expression is None:
        expression = []
    elif isinstance(expression, dict):
        expression = [expression]
    if not isinstance(expression, list):
        raise InvalidInput(
            f"{path}.filterExpression must be an array of Criterion",
            [Problem("must be an array", f"{path}.filterExpression", expression)],
        )
    problems: list[Problem] = []
    criteria = tuple(
        c
        for j, item in enumerate(expression)
        if (c := _criterion(item, f"{path}.filterExpression[{j}]", problems)) is not None
    )
    if problems:
        raise InvalidInput(f"{problems[0].path}: {problems[0].message}", problems)
    # Sorting is not read: a catalog is in dataset id order, which its keyset paging needs (EDC ignores it too).
    return CatalogRequest(offset=offset, limit=min(limit, MAX_PAGE), filter=criteria)


def _criterion(item: Any, path: str, problems: list[Problem]) -> Criterion | None:
    """Read one Criterion of a catalog filter, recording why when this node cannot evaluate it."""
    if not isinstance(item, dict):
        problems.append(Problem("must be a Criterion object", path, item))
        return None
    left, operator, right = _field(item, "operandLeft"), _field(item, "operator"), _field(item, "operandRight")
    if not isinstance(left, str) or not left:
        problems.append(Problem("operandLeft must be a property key (a string)", f"{path}.operandLeft", left))
        return None
    try:
        key = selection.property_path(left)
    except ValueError as exc:
        problems.append(Problem(str(exc), f"{path}.operandLeft", left))
        return None
    if not isinstance(operator, str) or operator.lower() not in OPERATORS:
        problems.append(Problem(f"operator must be one of {', '.join(OPERATORS)}", f"{path}.operator", operator))
        return None
    operator = operator.lower()
    if right is None:
        problems.append(Problem("operandRight is required", f"{path}.operandRight"))
        return None
    if operator == "in" and not isinstance(right, list):
        right = [right]
    problem = _unevaluable(key, operator, right)
    if problem is not None:
        problems.append(Problem(problem, f"{path}.operandRight", right))
        return None
    return Criterion(key, operator, right)


def _unevaluable(key: str, operator: str, right: Any) -> str | None:
    """Say why a criterion's right operand cannot be compared with a dataset's property, or None when it can."""
    items = right if isinstance(right, list) else [right]
    if key in selection.CREATED_KEYS:
        if operator in ("like", "ilike", "contains") or not all(selection.is_number(v) for v in items):
            return "createdAt is compared with =, !=, <, <=, >, >= or in and integers (epoch milliseconds)"
        return None
    if operator != "in" and isinstance(right, list):
        return f"operator {operator!r} compares with one value, not a list (use 'in')"
    for value in items:
        try:
            selection.single_text(value)
        except ValueError:
            return f"{value!r} is not a single value (a string, a number, a boolean or an {{'@id'}})"
    return None


def render_catalog_request(page: tuple[int, int] | None, criteria: tuple[Criterion, ...] = ()) -> dict[str, Any]:
    """Render a CatalogRequestMessage; a page or criteria travel in the filter as EDC's QuerySpec, as EDC sends it."""
    if page is None and not criteria:
        return {"@context": [DSP_CONTEXT], "@type": "CatalogRequestMessage"}
    offset, limit = page if page is not None else (0, DEFAULT_PAGE)
    spec = {
        "@type": "QuerySpec",
        "offset": offset,
        "limit": limit,
        "sortOrder": "ASC",
        "filterExpression": [
            {
                "@type": "Criterion",
                "operandLeft": c.operand_left,
                "operator": c.operator,
                "operandRight": c.operand_right,
            }
            for c in criteria
        ],
    }
    # EDC's context defines the QuerySpec terms; an EDC provider holds it, and this node reads the terms bare.
    return {
        "@context": [DSP_CONTEXT, vocab.EDC_DSPACE_CONTEXT_URL],
        "@type": "CatalogRequestMessage",
        "filter": [spec],
    }


def continuation_token(position: int, limit: int, after: str | None, criteria: tuple[Criterion, ...] = ()) -> str:
    """Return the token a Link header carries for a page (the filter included, so every page is of the same)."""
    state: list[Any] = [position, limit, after]
    if criteria:
        state.append([[c.operand_left, c.operator, c.operand_right] for c in criteria])
    return base64.urlsafe_b64encode(orjson.dumps(state)).decode().rstrip("=")


def parse_continuation(token: str) -> CatalogRequest:
    """Read a continuation token."""
    try:
        position, limit, after, *rest = orjson.loads(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
    except (binascii.Error, ValueError, TypeError):
        raise InvalidInput("continuationToken is not one this node issued") from None
    valid = isinstance(position, int) and isinstance(limit, int) and position >= 0 and 1 <= limit <= MAX_PAGE
    if not valid or not (after is None or isinstance(after, str)) or len(rest) > 1:
        raise InvalidInput("continuationToken is not one this node issued")
    criteria: tuple[Criterion, ...] = ()
    if rest:
        problems: list[Problem] = []
        items = rest[0] if isinstance(rest[0], list) else None
        if items is None or not all(isinstance(c, list) and len(c) == 3 for c in items):
            raise InvalidInput("continuationToken is not one this node issued")
        found = [
            _criterion({"operandLeft": c[0], "operator": c[1], "operandRight": c[2]}, "continuationToken", problems)
            for c in items
        ]
        if problems:
            raise InvalidInput("continuationToken is not one this node issued", problems)
        criteria = tuple(c for c in found if c is not None)
    return CatalogRequest(offset=position, limit=limit, after=after, filter=criteria)


def link_header(catalog_url: str, wanted: CatalogRequest, has_more: bool, last_key: str | None) -> str | None:
    """Return the Link header for a page: rel="next" (by key) when more follow, rel="previous" after the first."""
    links = []
    if has_more and last_key is not None:
        token = continuation_token(wanted.offset + wanted.limit, wanted.limit, last_key, wanted.filter)
        links.append(f'<{catalog_url}?continuationToken={token}>; rel="next"')
    if wanted.offset > 0:
        token = continuation_token(max(0, wanted.offset - wanted.limit), wanted.limit, None, wanted.filter)
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


# A peer's catalog read whole, for the federated catalog (connector/services/federation.py).

_CATEGORY_KEYS = (vocab.BPC + "batteryCategory", vocab.BPC + "category")
_CHEMISTRY_KEYS = (vocab.BPC + "chemistry", vocab.BPC + "batteryChemistry")
_TITLE_KEYS = (vocab.DCT + "title", vocab.EDC + "name")
_LEVEL_KEYS = (vocab.EDC + "passportAccessLevel", vocab.BPC + "passportAccessLevel")


@dataclass(frozen=True, slots=True)
class CatalogEntries:
    """The datasets of one catalog page (nested catalogs included), with the participant named for each."""

    participant: str | None
    datasets: list[tuple[str | None, dict[str, Any]]]  # (the participant of the (nested) catalog, the dataset node)


def _first_text(node: dict[str, Any], keys: tuple[str, ...]) -> str | None:
    for key in keys:
        for value in jsonld.values(node, key):
            found = jsonld.plain(value)
            if isinstance(found, str | int | float) and not isinstance(found, bool) and str(found):
                return str(found)
            if isinstance(value, dict) and isinstance(value.get("@id"), str):
                return str(value["@id"])
    return None


def _participant_of(node: dict[str, Any], inherited: str | None) -> str | None:
    found = _first_text(node, (vocab.DSPACE + "participantId",))
    return found or inherited


def _catalog_datasets(
    node: dict[str, Any], participant: str | None, depth: int = 0
) -> Iterator[tuple[str | None, dict[str, Any]]]:
    participant = _participant_of(node, participant)
    if vocab.DCAT + "Dataset" in node.get("@type", []) or vocab.ODRL + "hasPolicy" in node:
        yield participant, node
    for child in jsonld.values(node, vocab.DCAT + "dataset"):
        if isinstance(child, dict):
            yield from _catalog_datasets(child, participant, depth + 1)
    if depth < 3:
        for child in jsonld.values(node, vocab.DCAT + "catalog"):
            if isinstance(child, dict):
                yield from _catalog_datasets(child, participant, depth + 1)


# A page in the plain compacted form of DSP 2025-1 (as this node and EDC write it: the DSP context, datasets with
# `@id`, `@type`, `hasPolicy`, `distribution` and properties named by IRIs or the context's prefixes) is read
# without a JSON-LD expansion, which costs about half a millisecond per dataset; any other page is expanded.
# tests/test_federation_rules.py checks that both readings index the same fields.
_PLAIN_CONTEXTS = frozenset({DSP_CONTEXT, vocab.EDC_DSPACE_CONTEXT_URL})
_PREFIXES = {"dct:": vocab.DCT, "dcat:": vocab.DCAT, "odrl:": vocab.ODRL, "dspace:": vocab.DSPACE, "xsd:": vocab.XSD}
_DATASET_TERMS = frozenset({"@id", "@type", "hasPolicy", "distribution"})
_CATALOG_TERMS = frozenset({"@context", "@id", "@type", "participantId", "dataset", "catalog", "service"})
_CATALOG_IRIS = frozenset({vocab.DCAT + "dataset", vocab.DCAT + "catalog", vocab.DSPACE + "participantId"})


def _plain_key(key: str) -> str | None:
    """Return the IRI a property key names in the plain form (an absolute IRI or a prefixed name), else None."""
    if key.startswith(("http://", "https://")):
        return key
    for prefix, iri in _PREFIXES.items():
        if key.startswith(prefix):
            return iri + key[len(prefix) :]
    return None


def _items(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [] if value is None else [value]


def _plain_text(values: list[Any]) -> str | None:
    for value in values:
        if isinstance(value, dict):
            if set(value) == {"@value"}:
                value = value["@value"]
            elif isinstance(value.get("@id"), str) and set(value) == {"@id"}:
                return str(value["@id"])
            else:
                continue
        if isinstance(value, str | int | float) and not isinstance(value, bool) and str(value):
            return str(value)
    return None


def _plain_fields(properties: dict[str, list[Any]]) -> dict[str, Any]:
    def first(keys: tuple[str, ...]) -> str | None:
        for key in keys:
            found = _plain_text(properties.get(key, []))
            if found is not None:
                return found
        return None

    keywords = []
    for value in properties.get(vocab.DCAT + "keyword", []):
        if isinstance(value, dict) and set(value) == {"@value"}:
            value = value["@value"]
        if isinstance(value, str) and value:
            keywords.append(value)
    return {
        "title": first(_TITLE_KEYS),
        "keywords": tuple(keywords[:50]),
        "battery_category": first(_CATEGORY_KEYS),
        "chemistry": first(_CHEMISTRY_KEYS),
        "model": first((vocab.BPC + "batteryModel",)),
        "access_level": first(_LEVEL_KEYS),
        "asset_type": first((vocab.DCT + "type",)),
    }


@dataclass(frozen=True, slots=True)
class PlainDataset:
    """A dataset read from a page in the plain form: the node as sent (with the page's context) and its fields."""

    id: str
    document: dict[str, Any]
    fields: dict[str, Any]


def _plain_catalog(
    node: Any, context: list[str], participant: str | None, depth: int, out: list[tuple[str | None, PlainDataset]]
) -> bool:
    if not isinstance(node, dict) or (depth > 0 and "@context" in node):
        return False
    for key in node:
        if key not in _CATALOG_TERMS and (_plain_key(key) is None or _plain_key(key) in _CATALOG_IRIS):
            return False
    found = node.get("participantId")
    participant = found if isinstance(found, str) and found else participant
    for dataset in _items(node.get("dataset")):
        if not isinstance(dataset, dict) or not isinstance(dataset.get("@id"), str):
            return False
        properties: dict[str, list[Any]] = {}
        for key, value in dataset.items():
            if key in _DATASET_TERMS:
                continue
            iri = _plain_key(key)
            if iri is None:
                return False
            properties.setdefault(iri, []).extend(_items(value))
        out.append(
            (participant, PlainDataset(dataset["@id"], {"@context": context, **dataset}, _plain_fields(properties)))
        )
    for child in _items(node.get("catalog")):
        if depth >= 3 or not _plain_catalog(child, context, participant, depth + 1, out):
            return False
    return True


def parse_plain_catalog(document: Any) -> tuple[str | None, list[tuple[str | None, PlainDataset]]] | None:
    """Read a Catalog page in the plain compacted DSP 2025-1 form; None when it is in another form."""
    if not isinstance(document, dict) or document.get("@type") not in ("Catalog", "dcat:Catalog"):
        return None
    context = document.get("@context")
    contexts = [context] if isinstance(context, str) else context
    if (
        not isinstance(contexts, list)
        or not all(isinstance(c, str) for c in contexts)
        or DSP_CONTEXT not in contexts
        or not set(contexts) <= _PLAIN_CONTEXTS
    ):
        return None
    out: list[tuple[str | None, PlainDataset]] = []
    if not _plain_catalog(document, [DSP_CONTEXT], None, 0, out):
        return None
    participant = document.get("participantId")
    return (participant if isinstance(participant, str) else None), out


def parse_catalog_entries(document: Any) -> CatalogEntries:
    """Read a peer's Catalog page: its participant and every dataset node in it, nested catalogs included."""
    try:
        nodes = [n for n in jsonld.expand_peer_document(document) if isinstance(n, dict)]
    except InvalidInput as exc:
        raise PeerError(f"the peer's catalog is not valid JSON-LD: {exc.message}") from None
    participant = None
    found: list[tuple[str | None, dict[str, Any]]] = []
    for node in nodes:
        participant = participant or _participant_of(node, None)
        found.extend(_catalog_datasets(node, None))
    return CatalogEntries(participant, found)


def dataset_fields(node: dict[str, Any]) -> dict[str, Any]:
    """Return what the federated catalog indexes of a dataset node: title, keywords, model, level, type, ..."""
    keywords = []
    for value in jsonld.values(node, vocab.DCAT + "keyword"):
        plain = jsonld.plain(value)
        if isinstance(plain, str) and plain:
            keywords.append(plain)
    return {
        "title": _first_text(node, _TITLE_KEYS),
        "keywords": tuple(keywords[:50]),
        "battery_category": _first_text(node, _CATEGORY_KEYS),
        "chemistry": _first_text(node, _CHEMISTRY_KEYS),
        "model": _first_text(node, (vocab.BPC + "batteryModel",)),
        "access_level": _first_text(node, _LEVEL_KEYS),
        "asset_type": _first_text(node, (vocab.DCT + "type",)),
    }


def next_page(link: str | None) -> str | None:
    """Return the URL of a Link header's rel="next", if any."""
    for part in (link or "").split(","):
        url, _, params = part.strip().partition(";")
        if 'rel="next"' in params.replace(" ", "") or "rel=next" in params.replace(" ", ""):
            return url.strip().removeprefix("<").removesuffix(">")
    return None
