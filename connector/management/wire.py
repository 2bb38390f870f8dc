"""EDC Management API wire format (v3 and v4): expanded JSON-LD in, domain objects out, and back to compacted JSON-LD.

One parse/render pair per resource, shared by both versions: a body is expanded to the same JSON-LD whichever
version it came in, so every parser serves both; an answer differs only by its `Dialect` (its @context, the
prefixes of its IRIs, the form of its policies). No JSON-LD dict travels past this module.
"""

from __future__ import annotations

import re
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import policies
from connector import jsonld, vocab
from connector.domain.assets import (
    BATTERY_PASSPORT,
    DATA_ADDRESS_TYPES,
    HTTP_DATA,
    SECRET_FIELDS,
    Asset,
    ContractDefinition,
    Criterion,
    DataAddress,
    PolicyDefinition,
)
from connector.domain.errors import InvalidInput, PeerError, Problem, ProblemList
from connector.domain.negotiation import Negotiation
from connector.domain.query import DEFAULT_LIMIT, MAX_LIMIT, OPERATORS, QuerySpec, SortOrder
from connector.domain.transfer import EdrEntry, Transfer
from connector.dsp.transfer import endpoint_properties, render_destination
from connector.management import schemas
from connector.store.negotiations import Agreement

JSON = Any
EDC = vocab.EDC
DSP_PROTOCOL = "dataspace-protocol-http:2025-1"

# A v3 body without an @context is read with the EDC vocabulary, so a plain JSON body still works.
DEFAULT_INPUT_CONTEXT = {"@vocab": EDC, "edc": EDC, "odrl": vocab.ODRL}

_ID_PATTERN = re.compile(r"^[^\s]{1,512}$")

ACCESS_LEVELS = ("public", "legitimate_interest", "authority")


@dataclass(frozen=True, slots=True)
class Dialect:
    """One version of EDC's Management API: how its bodies are read and how its answers are written."""

    name: str  # v3, v4
    path: str  # the prefix of its routes
    context: JSON  # the @context of every answer
    prefixes: jsonld.Prefixes  # compact IRIs in answers' properties
    checked: bool  # bodies are checked against the v4 JSON Schemas first, and read with their own @context only
    dsp_policies: bool  # policies in DSP 2025-1 terms (permission, action "use"), not EDC's odrl: prefixed form
    profile: bool  # negotiations name their dataspace profile
    peer_documents_as_sent: bool  # a peer's catalog is answered as the peer sent it, not re-compacted


V3 = Dialect(
    "v3",
    "/management/v3",
    vocab.EDC_OUTPUT_CONTEXT,
    jsonld.EDC_PREFIXES,
    checked=False,
    dsp_policies=False,
    profile=False,
    peer_documents_as_sent=False,
)
V4 = Dialect(
    "v4",
    "/management/v4",
    [vocab.EDC_MANAGEMENT_V2_CONTEXT_URL],
    jsonld.MANAGEMENT_V2_PREFIXES,
    checked=True,
    dsp_policies=True,
    profile=True,
    peer_documents_as_sent=True,
)
DIALECTS = (V3, V4)


def expand_body(body: JSON, what: str, api: Dialect = V3) -> dict[str, JSON]:
    """Expand a management API body of type `what` (Asset, QuerySpec, ...) and return its single top node.

    v4: the body is checked against its JSON Schema first, as EDC 0.18 does. v3: a body whose @context is a
    JSON object without @vocab gets EDC's vocabulary as @vocab (as EDC does), and a body without an @context
    is read with the EDC vocabulary.
    """
    if not isinstance(body, dict):
        raise InvalidInput(f"{what}: the body must be a JSON object, got {type(body).__name__}")
    if api.checked:
        problems = ProblemList(schemas.check(body, what))
        problems.raise_if_any(f"invalid {what} (Management API {api.name})")
        return jsonld.single_node(jsonld.expand(body), what)
    return jsonld.single_node(jsonld.expand(with_edc_vocab(body), DEFAULT_INPUT_CONTEXT), what)


def with_edc_vocab(body: dict[str, JSON]) -> dict[str, JSON]:
    """Add EDC's vocabulary as @vocab when the body's @context is a JSON object without one (EDC's rule).

    Only then: a context that is a URL or an array, or a body without one, is left as it is. Clients such as
    the Tractus-X SDK send `{"edc": ..., "odrl": ...}` and rely on this for their bare terms.
    """
    context = body.get("@context")
    if isinstance(context, dict) and "@vocab" not in context:
        return {**body, "@context": {**context, "@vocab": EDC}}
    return body


def _check_id(value: JSON, problems: ProblemList, path: str = "@id") -> str | None:
    if not isinstance(value, str) or not _ID_PATTERN.match(value):
        problems.add("must be a string of 1 to 512 characters without spaces", path, value)
        return None
    return value


def _node(
    node: Mapping[str, JSON], iri: str, path: str, problems: ProblemList, required: bool
) -> dict[str, JSON] | None:
    found = jsonld.values(node, iri)
    if not found:
        if required:
            problems.add(f"{path} is required", path)
        return None
    if len(found) != 1 or not isinstance(found[0], dict) or "@value" in found[0]:
        problems.add(f"{path} must be one JSON object", path, jsonld.plain(found))
        return None
    result: dict[str, JSON] = found[0]
    return result


def _private(node: Mapping[str, JSON], problems: ProblemList) -> dict[str, JSON]:
    private = _node(node, EDC + "privateProperties", "privateProperties", problems, required=False)
    return jsonld.properties_map(private)


# Assets.


def parse_asset(node: Mapping[str, JSON], created_at: int, id_required: bool = False) -> Asset:
    """Read an Asset from its expanded form; raise InvalidInput listing every problem."""
    problems = ProblemList()
    asset_id = node.get("@id")
    if asset_id is None:
        if id_required:
            problems.add("@id is required", "@id")
    else:
        asset_id = _check_id(asset_id, problems)
    props_node = _node(node, EDC + "properties", "properties", problems, required=False)
    properties = jsonld.properties_map(props_node)
    # EDC accepts the id inside properties too; the two must agree.
    inner_id = properties.pop(EDC + "id", None)
    if inner_id is not None:
        if asset_id is None:
            asset_id = _check_id(inner_id, problems, "properties.id")
        elif inner_id != asset_id:
            problems.add("differs from @id", "properties.id", inner_id)
    private = _private(node, problems)
    address_node = _node(node, EDC + "dataAddress", "dataAddress", problems, required=True)
    address = parse_data_address(address_node, problems) if address_node is not None else None
    problems.raise_if_any("invalid asset")
    assert address is not None
    return Asset(
        id=asset_id or "",
        properties=properties,
        private_properties=private,
        data_address=address,
        created_at=created_at,
    )


def parse_data_address(
    node: Mapping[str, JSON], problems: ProblemList, path: str = "dataAddress"
) -> DataAddress | None:
    """Read a DataAddress; secrets (authCode, ...) are split off so they are never rendered."""
    fields = address_fields(node)
    address_type = fields.pop(EDC + "type", None)
    if address_type is None and node.get("@type"):
        address_type = None
    if not isinstance(address_type, str) or not address_type:
        problems.add(f"{path}.type is required (one of {', '.join(DATA_ADDRESS_TYPES)})", f"{path}.type", address_type)
        return None
    if address_type not in DATA_ADDRESS_TYPES:
        problems.add(
            f"{path}.type {address_type!r} is not supported by this node's data plane; use one of "
            f"{', '.join(DATA_ADDRESS_TYPES)}",
            f"{path}.type",
            address_type,
        )
        return None
    properties: dict[str, JSON] = {}
    secrets: dict[str, str] = {}
    for iri, value in fields.items():
        name = iri[len(EDC) :] if iri.startswith(EDC) else iri
        if name in SECRET_FIELDS:
            if not isinstance(value, str):
                problems.add("must be a string", f"{path}.{name}", None)
            else:
                secrets[name] = value
        else:
            properties[name] = value
    _check_flags(properties, problems, path)  # the document states the proxy flags for every type
    if address_type == HTTP_DATA:
        _check_http_data(properties, problems, path)
    elif address_type == BATTERY_PASSPORT:
        _check_battery_passport(properties, problems, path)
        if "baseUrl" in properties and not _is_http_url(properties["baseUrl"]):
            problems.add("baseUrl must be an http(s) URL", f"{path}.baseUrl", properties["baseUrl"])
    return DataAddress(type=address_type, properties=properties, secrets=secrets)


def address_fields(node: Mapping[str, JSON]) -> dict[str, JSON]:
    """Return a DataAddress's fields by IRI, with those of a nested `properties` object lifted up, as EDC reads them."""
    fields = jsonld.properties_map(node)
    nested = fields.pop(EDC + "properties", None)
    if isinstance(nested, dict):
        for iri, value in nested.items():
            if not iri.startswith("@"):
                fields.setdefault(iri, value)
    return fields


def _is_http_url(value: JSON) -> bool:
    return isinstance(value, str) and re.match(schemas.DSP_ADDRESS, value) is not None


def _check_http_data(props: dict[str, JSON], problems: ProblemList, path: str) -> None:
    base_url = props.get("baseUrl")
    if not _is_http_url(base_url):
        problems.add("baseUrl is required and must be an http(s) URL", f"{path}.baseUrl", base_url)
    method = props.get("method")
    if method is not None and method not in ("GET", "POST", "PUT", "PATCH", "DELETE"):
        problems.add("method must be GET, POST, PUT, PATCH or DELETE", f"{path}.method", method)


def _check_flags(props: dict[str, JSON], problems: ProblemList, path: str) -> None:
    for flag in ("proxyPath", "proxyQueryParams", "proxyMethod", "proxyBody"):
        if flag in props:
            value = props[flag]
            if isinstance(value, bool):
                props[flag] = "true" if value else "false"
            elif value not in ("true", "false"):
                problems.add(f'{flag} must be "true" or "false"', f"{path}.{flag}", value)


def _check_battery_passport(props: dict[str, JSON], problems: ProblemList, path: str) -> None:
    level = props.get("accessLevel", "public")
    if level not in ACCESS_LEVELS:
        problems.add(f"accessLevel must be one of {', '.join(ACCESS_LEVELS)}", f"{path}.accessLevel", level)
    for name in ("batteryModel", "batteryId", "manufacturer"):
        if name in props and not isinstance(props[name], str):
            problems.add("must be a string", f"{path}.{name}", props[name])


def render_data_address(address: DataAddress, api: Dialect = V3) -> dict[str, JSON]:
    """Render a DataAddress without its secrets."""
    return {
        "@type": "DataAddress",
        "type": address.type,
        **jsonld.compact_properties(address.properties, api.prefixes),
    }


def render_asset(asset: Asset, api: Dialect = V3) -> dict[str, JSON]:
    """Render an Asset the way EDC's Management API does (secrets left out)."""
    properties = jsonld.compact_properties(asset.properties, api.prefixes)
    properties["id"] = asset.id
    return {
        "@id": asset.id,
        "@type": "Asset",
        "properties": properties,
        "privateProperties": jsonld.compact_properties(asset.private_properties, api.prefixes),
        "dataAddress": render_data_address(asset.data_address, api),
        "createdAt": asset.created_at,
        "@context": api.context,
    }


# Policy definitions.


def parse_policy_definition(node: Mapping[str, JSON], created_at: int) -> PolicyDefinition:
    """Read a PolicyDefinition; the policy is kept in expanded form for the policy engine."""
    problems = ProblemList()
    policy_id = node.get("@id")
    if policy_id is not None:
        policy_id = _check_id(policy_id, problems)
    policy_nodes = jsonld.values(node, EDC + "policy")
    if not policy_nodes:
        problems.add("policy is required (an ODRL Set; did the body use the EDC vocabulary as @context?)", "policy")
    elif len(policy_nodes) != 1 or not isinstance(policy_nodes[0], dict):
        problems.add("policy must be one JSON object", "policy")
    else:
        policy = policy_nodes[0]
        types = policy.get("@type", [])
        if vocab.ODRL + "Set" not in types and vocab.ODRL + "Policy" not in types:
            shown = [jsonld.compact_iri(t) for t in types] or None
            problems.add(
                'policy @type must be odrl:Set (give the ODRL context, e.g. "@context": '
                '"http://www.w3.org/ns/odrl.jsonld", inside policy)',
                "policy.@type",
                shown,
            )
    private = _private(node, problems)
    problems.raise_if_any("invalid policy definition")
    return PolicyDefinition(
        id=policy_id or "", policy=policy_nodes[0], private_properties=private, created_at=created_at
    )


def render_policy_definition(definition: PolicyDefinition, api: Dialect = V3) -> dict[str, JSON]:
    """Render a PolicyDefinition as EDC does: v3 with odrl: prefixed ODRL terms, v4 in DSP terms."""
    policy = _dsp_policy(definition.policy) if api.dsp_policies else None
    if policy is None:
        policy = jsonld.compact(definition.policy)
        for key in ("odrl:permission", "odrl:prohibition", "odrl:obligation"):
            value = policy.get(key, [])
            policy[key] = value if isinstance(value, list) else [value]
    return {
        "@id": definition.id,
        "@type": "PolicyDefinition",
        "createdAt": definition.created_at,
        "policy": policy,
        "privateProperties": jsonld.compact_properties(definition.private_properties, api.prefixes),
        "@context": api.context,
    }


def _dsp_policy(expanded: Mapping[str, JSON]) -> dict[str, JSON] | None:
    """Render a stored (expanded) policy in DSP 2025-1 terms, as v4 shows policies; None if it cannot be read."""
    try:
        return policies.render_dsp(policies.parse_policy(dict(expanded)))
    except policies.PolicyError:
        return None


# Contract definitions.


def parse_contract_definition(node: Mapping[str, JSON], created_at: int) -> ContractDefinition:
    """Read a ContractDefinition; policy ids are checked against the store by the service."""
    problems = ProblemList()
    definition_id = node.get("@id")
    if definition_id is not None:
        definition_id = _check_id(definition_id, problems)
    raw: list[Problem] = []
    access = jsonld.string(node, EDC + "accessPolicyId", "accessPolicyId", raw)
    contract = jsonld.string(node, EDC + "contractPolicyId", "contractPolicyId", raw)
    problems.items.extend(raw)
    selector = parse_criteria(jsonld.values(node, EDC + "assetsSelector"), "assetsSelector", problems)
    private = _private(node, problems)
    problems.raise_if_any("invalid contract definition")
    return ContractDefinition(
        id=definition_id or "",
        access_policy_id=access or "",
        contract_policy_id=contract or "",
        assets_selector=tuple(selector),
        private_properties=private,
        created_at=created_at,
    )


def render_contract_definition(definition: ContractDefinition, api: Dialect = V3) -> dict[str, JSON]:
    """Render a ContractDefinition as EDC does."""
    return {
        "@id": definition.id,
        "@type": "ContractDefinition",
        "accessPolicyId": definition.access_policy_id,
        "contractPolicyId": definition.contract_policy_id,
        "assetsSelector": [render_criterion(c) for c in definition.assets_selector],
        "privateProperties": jsonld.compact_properties(definition.private_properties, api.prefixes),
        "createdAt": definition.created_at,
        "@context": api.context,
    }


def render_criterion(criterion: Criterion) -> dict[str, JSON]:
    """Render one Criterion."""
    return {
        "@type": "Criterion",
        "operandLeft": criterion.operand_left,
        "operator": criterion.operator,
        "operandRight": criterion.operand_right,
    }


def parse_criteria(nodes: list[JSON], path: str, problems: ProblemList) -> list[Criterion]:
    """Read a list of Criterion nodes (assetsSelector, filterExpression)."""
    criteria: list[Criterion] = []
    for i, node in enumerate(nodes):
        where = f"{path}[{i}]"
        if not isinstance(node, dict) or "@value" in node:
            problems.add("must be a Criterion object", where, jsonld.plain(node))
            continue
        raw: list[Problem] = []
        left = jsonld.string(node, EDC + "operandLeft", f"{where}.operandLeft", raw)
        operator = jsonld.string(node, EDC + "operator", f"{where}.operator", raw)
        problems.items.extend(raw)
        right_values = jsonld.values(node, EDC + "operandRight")
        if not right_values:
            problems.add(f"{where}.operandRight is required", f"{where}.operandRight")
            continue
        right = [jsonld.plain(v) for v in right_values] if len(right_values) > 1 else jsonld.plain(right_values[0])
        if operator is not None and operator.lower() not in OPERATORS:
            problems.add(f"operator {operator!r} is not one of {', '.join(OPERATORS)}", f"{where}.operator", operator)
            continue
        if operator is not None and operator.lower() == "in" and not isinstance(right, list):
            right = [right]
        if left is not None and operator is not None:
            criteria.append(Criterion(left, operator.lower(), right))
    return criteria


# QuerySpec.


def parse_query_spec(body: JSON, api: Dialect = V3) -> QuerySpec:
    """Read an optional QuerySpec body (no body means the defaults; in v3 an empty object does too)."""
    if body is None or (body == {} and not api.checked):
        return QuerySpec()
    node = expand_body(body, "QuerySpec", api)
    problems = ProblemList()
    offset = _int(node, "offset", 0, problems, minimum=0, maximum=schemas.MAX_OFFSET)
    limit = _int(node, "limit", DEFAULT_LIMIT, problems, minimum=1, maximum=MAX_LIMIT)
    raw: list[Problem] = []
    sort_field = jsonld.string(node, EDC + "sortField", "sortField", raw, required=False)
    order_text = jsonld.string(node, EDC + "sortOrder", "sortOrder", raw, required=False) or "ASC"
    problems.items.extend(raw)
    if order_text.upper() not in ("ASC", "DESC"):
        problems.add("sortOrder must be ASC or DESC", "sortOrder", order_text)
        order_text = "ASC"
    criteria = parse_criteria(jsonld.values(node, EDC + "filterExpression"), "filterExpression", problems)
    problems.raise_if_any("invalid QuerySpec")
    return QuerySpec(
        offset=offset,
        limit=limit,
        sort_field=sort_field,
        sort_order=SortOrder(order_text.upper()),
        filter_expression=tuple(criteria),
    )


def _int(node: Mapping[str, JSON], name: str, default: int, problems: ProblemList, minimum: int, maximum: int) -> int:
    found = jsonld.values(node, EDC + name)
    if not found:
        return default
    value = jsonld.plain(found[0])
    if (isinstance(value, str) and value.isdigit()) or (isinstance(value, float) and value.is_integer()):
        value = int(value)
    if not isinstance(value, int) or isinstance(value, bool) or not minimum <= value <= maximum:
        problems.add(f"{name} must be an integer from {minimum} to {maximum}", name, value)
        return default
    return value


def id_response(object_id: str, created_at: int, api: Dialect = V3) -> dict[str, JSON]:
    """Render EDC's IdResponse."""
    return {
        "@type": "IdResponse",
        "@id": object_id,
        "createdAt": created_at,
        "@context": api.context,
    }


# Requests for peers' catalogs.


@dataclass(frozen=True, slots=True)
class PeerCatalogRequest:
    """A CatalogRequest (or a dataset request) of the management API."""

    address: str
    counterparty_id: str | None
    protocol: str | None
    page: tuple[int, int] | None
    dataset_id: str | None = None
    protocol_field: str = "protocol"  # or profile, whichever named it
    # The querySpec's filterExpression, passed to the provider as it was written (the provider evaluates it).
    criteria: tuple[Criterion, ...] = ()


def parse_peer_catalog_request(node: Mapping[str, JSON], dataset: bool = False) -> PeerCatalogRequest:
    """Read EDC's CatalogRequest (counterPartyAddress, counterPartyId, protocol, querySpec) or DatasetRequest."""
    problems = ProblemList()
    raw: list[Problem] = []
    address = jsonld.string(node, EDC + "counterPartyAddress", "counterPartyAddress", raw)
    counterparty = jsonld.string(node, EDC + "counterPartyId", "counterPartyId", raw, required=False)
    protocol, protocol_field = _protocol(node, raw)
    problems.items.extend(raw)
    if address is not None and not re.match(schemas.DSP_ADDRESS, address):
        problems.add(
            "counterPartyAddress must be the peer's DSP base URL (http or https)", "counterPartyAddress", address
        )
    dataset_id = None
    if dataset:
        dataset_id = node.get("@id")
        if not isinstance(dataset_id, str) or not dataset_id:
            problems.add("@id (the dataset id) is required", "@id", dataset_id)
    page = None
    criteria: list[Criterion] = []
    spec_nodes = jsonld.values(node, EDC + "querySpec")
    if spec_nodes and isinstance(spec_nodes[0], dict):
        offset = _int(spec_nodes[0], "offset", 0, problems, minimum=0, maximum=schemas.MAX_PEER_OFFSET)
        limit = _int(spec_nodes[0], "limit", DEFAULT_LIMIT, problems, minimum=1, maximum=MAX_LIMIT)
        page = (offset, limit)
        criteria = parse_criteria(
            jsonld.values(spec_nodes[0], EDC + "filterExpression"), "querySpec.filterExpression", problems
        )
    problems.raise_if_any("invalid catalog request")
    assert address is not None
    return PeerCatalogRequest(
        address.rstrip("/"), counterparty, protocol, page, dataset_id, protocol_field, tuple(criteria)
    )


def _protocol(node: Mapping[str, JSON], problems: list[Problem]) -> tuple[str | None, str]:
    """Return the protocol a request names, and the field that named it (v4 may name it `profile`)."""
    protocol = jsonld.string(node, EDC + "protocol", "protocol", problems, required=False)
    if protocol is not None or not jsonld.values(node, EDC + "profile"):
        return protocol, "protocol"
    return jsonld.string(node, EDC + "profile", "profile", problems, required=False), "profile"


def render_peer_document(document: JSON, api: Dialect = V3) -> dict[str, JSON]:
    """Answer a peer's DSP catalog or dataset: v3 re-compacted EDC style (dcat:dataset, ...), v4 as the peer sent it."""
    try:
        # v4 answers the document as sent, once it reads as JSON-LD; v3 re-shapes it (one pass by term tables).
        nodes = jsonld.reshape_peer_document(document, jsonld.CATALOG_PREFIXES)
    except InvalidInput as exc:
        raise PeerError(f"the peer's answer is not valid JSON-LD: {exc.message}") from None
    nodes = [n for n in nodes if isinstance(n, dict)]
    if len(nodes) != 1:
        raise PeerError(f"the peer's answer holds {len(nodes)} JSON-LD nodes, expected one")
    if api.peer_documents_as_sent and isinstance(document, dict):
        return document
    compacted: dict[str, JSON] = nodes[0]
    compacted["@context"] = jsonld.output_context(jsonld.CATALOG_PREFIXES)
    return compacted


class RenderedPeerDocuments:
    """The answers rendered from peers' documents, kept by what the peer sent: the dialect and its very bytes.

    A rendered answer is a function of the bytes of the peer's answer and the dialect alone (render_peer_document
    reads nothing else), so the same bytes give the same answer: a catalog page asked again while nothing in it
    changed (a client refreshing, a crawler's next round; the provider keeps the page and sends the same bytes)
    is not re-shaped, which is most of what the consumer's catalog request costs. An answer is found by a
    fingerprint of the bytes (their length and every STRIDE-th byte, under a microsecond) and taken only when the
    bytes it was rendered from are equal to these, compared whole (about a microsecond for a 50 KB page, where
    their SHA-256 took 30): any changed byte misses, and bytes of the same fingerprint take the place of the ones
    before. At most `entries` answers and `max_bytes` of their bodies and the bytes they came from are kept, the
    least recently used go first; an answer larger than a quarter of `max_bytes` is not kept. Failures (not
    JSON-LD, not one node) are never kept: they raise each time."""

    STRIDE = 1021  # a prime: the sampled positions do not line up with a page's repeated structure

    def __init__(self, entries: int = 64, max_bytes: int = 16 * 1024 * 1024) -> None:
        self._entries = entries
        self._max_bytes = max_bytes
        self._kept: OrderedDict[tuple[str, int, bytes], tuple[bytes, bytes]] = OrderedDict()
        self._bytes = 0

    def __len__(self) -> int:
        return len(self._kept)

    def body(self, api: Dialect, raw: bytes, render: Callable[[], bytes]) -> bytes:
        """Return the answer's body for the peer's bytes `raw` in `api`: kept, or `render()`ed and kept."""
        key = (api.name, len(raw), raw[:: self.STRIDE])
        found = self._kept.get(key)
        if found is not None and found[0] == raw:
            self._kept.move_to_end(key)
            return found[1]
        body = render()
        if len(body) + len(raw) <= self._max_bytes // 4:
            if found is not None:  # other bytes of the same fingerprint: these take their place
                self._bytes -= len(found[0]) + len(found[1])
            self._kept[key] = (raw, body)
            self._kept.move_to_end(key)
            self._bytes += len(raw) + len(body)
            while len(self._kept) > self._entries or self._bytes > self._max_bytes:
                _, (dropped_raw, dropped) = self._kept.popitem(last=False)
                self._bytes -= len(dropped_raw) + len(dropped)
        return body


# Contract negotiations and agreements.


@dataclass(frozen=True, slots=True)
class ContractRequest:
    """EDC's ContractRequest: whom to ask, and the offer (DSP form) as the provider's catalog showed it."""

    address: str
    counterparty_id: str | None
    protocol: str | None
    offer: dict[str, JSON]
    protocol_field: str = "protocol"


def parse_contract_request(node: Mapping[str, JSON]) -> ContractRequest:
    """Read a ContractRequest; the policy must be the offer (its @id, target and assigner as in the catalog)."""
    problems = ProblemList()
    raw: list[Problem] = []
    address = jsonld.string(node, EDC + "counterPartyAddress", "counterPartyAddress", raw)
    counterparty = jsonld.string(node, EDC + "counterPartyId", "counterPartyId", raw, required=False)
    protocol, protocol_field = _protocol(node, raw)
    problems.items.extend(raw)
    policy_nodes = jsonld.values(node, EDC + "policy")
    offer: dict[str, JSON] = {}
    if len(policy_nodes) != 1 or not isinstance(policy_nodes[0], dict):
        problems.add("policy (the offer from the provider's catalog) is required", "policy")
    else:
        try:
            parsed = policies.parse_policy(policy_nodes[0])
        except policies.PolicyError as exc:
            problems.add(exc.message, f"policy.{exc.path}" if exc.path else "policy")
        else:
            if not parsed.uid:
                problems.add("policy.@id (the offer id) is required", "policy.@id")
            if not parsed.target:
                problems.add("policy.target (the dataset id) is required", "policy.target")
            offer = {k: v for k, v in policies.render_dsp(parsed).items() if k != "@context"}
            offer["@id"] = parsed.uid
            offer["@type"] = "Offer"
            if parsed.target:
                offer["target"] = parsed.target
            if parsed.assigner:
                offer["assigner"] = parsed.assigner
                counterparty = counterparty or parsed.assigner
    problems.raise_if_any("invalid contract request")
    assert address is not None
    return ContractRequest(address.rstrip("/"), counterparty, protocol, offer, protocol_field)


def render_negotiation(negotiation: Negotiation, api: Dialect = V3) -> dict[str, JSON]:
    """Render a ContractNegotiation the way EDC's Management API does."""
    body: dict[str, JSON] = {
        "@type": "ContractNegotiation",
        "@id": negotiation.id,
        "type": negotiation.role.value,
        "protocol": DSP_PROTOCOL,
        "state": negotiation.state.value,
        "counterPartyId": negotiation.counterparty_id,
        "counterPartyAddress": negotiation.counterparty_address,
        "callbackAddresses": [],
        "assetId": negotiation.asset_id,
        "pending": negotiation.pending,
        "createdAt": negotiation.created_at,
        "@context": api.context,
    }
    if api.profile:
        body["profile"] = DSP_PROTOCOL  # EDC 0.18 names the dataspace profile, which is the protocol here
    if negotiation.agreement_id and negotiation.state.value in ("AGREED", "VERIFIED", "FINALIZED"):
        body["contractAgreementId"] = negotiation.agreement_id
    if negotiation.error_detail:
        body["errorDetail"] = negotiation.error_detail
    return body


def render_agreement(agreement: Agreement, api: Dialect = V3) -> dict[str, JSON]:
    """Render a ContractAgreement the way EDC's Management API does (v3: odrl: prefixes; v4: DSP terms)."""
    try:
        parsed = policies.parse_policy({k: v for k, v in agreement.policy.items() if k != "timestamp"})
        policy = policies.render_dsp(parsed) if api.dsp_policies else policies.render_edc(parsed, with_context=False)
    except policies.PolicyError:
        policy = dict(agreement.policy)
    return {
        "@type": "ContractAgreement",
        "@id": agreement.id,
        "assetId": agreement.asset_id,
        "providerId": agreement.provider_id,
        "consumerId": agreement.consumer_id,
        "contractSigningDate": agreement.signed_at // 1000,
        "policy": policy,
        "@context": api.context,
    }


def parse_terminate(body: JSON, what: str = "TerminateNegotiation", api: Dialect = V3) -> str:
    """Read a TerminateNegotiation, TerminateTransfer or SuspendTransfer command; return the reason."""
    node = expand_body(body if isinstance(body, dict) else {}, what, api)
    raw: list[Problem] = []
    reason = jsonld.string(node, EDC + "reason", "reason", raw)
    if raw or reason is None:
        raise InvalidInput(f"reason is required ({what})", raw or [Problem("missing", "reason")])
    return reason


@dataclass(frozen=True, slots=True)
class TransferRequest:
    """A management TransferRequest: which agreement, with which provider, how."""

    address: str
    agreement_id: str
    transfer_type: str
    protocol: str | None
    counterparty_id: str | None
    destination: dict[str, JSON] | None
    protocol_field: str = "protocol"


def parse_transfer_request(node: Mapping[str, JSON]) -> TransferRequest:
    """Read an EDC TransferRequest (counterPartyAddress, contractId, protocol, transferType, dataDestination)."""
    problems = ProblemList()
    raw: list[Problem] = []
    address = jsonld.string(node, EDC + "counterPartyAddress", "counterPartyAddress", raw)
    contract = jsonld.string(node, EDC + "contractId", "contractId", raw)
    transfer_type = jsonld.string(node, EDC + "transferType", "transferType", raw)
    protocol, protocol_field = _protocol(node, raw)
    counterparty = jsonld.string(node, EDC + "counterPartyId", "counterPartyId", raw, required=False)
    problems.items.extend(raw)
    destination: dict[str, JSON] | None = None
    nodes = jsonld.values(node, EDC + "dataDestination")
    if nodes:
        if len(nodes) != 1 or not isinstance(nodes[0], dict):
            problems.add("dataDestination must be one object", "dataDestination")
        else:
            fields = address_fields(nodes[0])
            plain = {(k[len(EDC) :] if k.startswith(EDC) else k): v for k, v in fields.items()}
            endpoint = plain.get("baseUrl") or plain.get("endpoint")
            if not isinstance(endpoint, str) or not endpoint.startswith(("http://", "https://")):
                problems.add(
                    "dataDestination.baseUrl must be an http(s) URL (in v4 give it beside type: the keys of a "
                    "nested properties object are only read with the edc: prefix)",
                    "dataDestination.baseUrl",
                    endpoint,
                )
            else:
                try:
                    destination = render_destination(plain)
                except InvalidInput as exc:
                    problems.items.extend(exc.problems)
    problems.raise_if_any("invalid transfer request")
    assert address is not None and contract is not None and transfer_type is not None
    return TransferRequest(
        address.rstrip("/"), contract, transfer_type, protocol, counterparty, destination, protocol_field
    )


def render_transfer(transfer: Transfer, api: Dialect = V3) -> dict[str, JSON]:
    """Render a TransferProcess the way EDC's Management API does."""
    body: dict[str, JSON] = {
        "@type": "TransferProcess",
        "@id": transfer.id,
        "type": transfer.role.value,
        "protocol": DSP_PROTOCOL,
        "state": transfer.state.value,
        "stateTimestamp": transfer.updated_at,
        "contractId": transfer.agreement_id,
        "assetId": transfer.asset_id,
        "transferType": transfer.transfer_type,
        "counterPartyId": transfer.counterparty_id,
        "counterPartyAddress": transfer.counterparty_address,
        "correlationId": transfer.peer_pid,
        "callbackAddresses": [],
        "createdAt": transfer.created_at,
        "@context": api.context,
    }
    if transfer.error_detail:
        body["errorDetail"] = transfer.error_detail
    return body


def render_edr_entry(entry: EdrEntry) -> dict[str, JSON]:
    """Render an EndpointDataReferenceEntry (one per started pull transfer of this consumer)."""
    transfer = entry.transfer
    return {
        "@type": "EndpointDataReferenceEntry",
        "@id": transfer.id,
        "transferProcessId": transfer.id,
        "agreementId": transfer.agreement_id,
        "contractNegotiationId": entry.negotiation_id,
        "assetId": transfer.asset_id,
        "providerId": transfer.counterparty_id,
        "createdAt": transfer.created_at,
        "@context": vocab.EDC_OUTPUT_CONTEXT,
    }


def render_edr_address(transfer: Transfer) -> dict[str, JSON]:
    """Render the endpoint data reference the provider sent, as EDC's EDR data address (flat properties)."""
    address = transfer.data_address or {}
    props = endpoint_properties(address)
    body: dict[str, JSON] = {
        "@type": "DataAddress",
        "type": str(address.get("endpointType", "https://w3id.org/idsa/v4.1/HTTP")),
        "endpointType": str(address.get("endpointType", "https://w3id.org/idsa/v4.1/HTTP")),
        **{k: v for k, v in props.items()},
        "@context": vocab.EDC_OUTPUT_CONTEXT,
    }
    return body
