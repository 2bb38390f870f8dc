"""The JSON Schemas of EDC Management API v4 bodies: checked before JSON-LD expansion, shown in the OpenAPI document.

EDC 0.18 checks every v4 body against a JSON Schema before it expands it (its `management-api-schema-validator`,
`schema/management/v4/*.json`, with the DSP 2025-1 contract schema for policies). These schemas state the same
rules, written for the resources this node serves; the OpenAPI document shows exactly these, so what is
documented is what is enforced. A refusal names each failing field (`check`).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from functools import cache
from typing import Any

import jsonschema_rs

from connector import jsonld, vocab
from connector.domain import query
from connector.domain.errors import Problem

JSON = Any

CONTEXT_URL = vocab.EDC_MANAGEMENT_V2_CONTEXT_URL
PREFIX = "V4"  # component names in the OpenAPI document: V4Asset, V4QuerySpec, ...
# The QuerySpec's bounds, in both versions: the ones management.wire enforces.
MAX_LIMIT = query.MAX_LIMIT
MAX_OFFSET = 10**12
MAX_PEER_OFFSET = 10**9  # a CatalogRequest's querySpec: the page asked of the peer

OPERATORS = (
    "eq",
    "gt",
    "gteq",
    "lteq",
    "hasPart",
    "isA",
    "isAllOf",
    "isAnyOf",
    "isNoneOf",
    "isPartOf",
    "lt",
    "term-lteq",
    "neq",
)


def ref(name: str) -> dict[str, str]:
    """Return a reference to one of these schemas (by its name without the V4 prefix)."""
    return {"$ref": f"#/components/schemas/{PREFIX}{name}"}


_STRING = {"type": "string"}
# What management.wire requires of a counterPartyAddress (an http or https URL with a host).
DSP_ADDRESS = r"^https?://[^\s/]+"
_ID = {"type": "string", "minLength": 1}

# Exactly one of `protocol` and `profile` (EDC 0.18 names the dataspace profile; here both mean the DSP version).
_PROTOCOL_OR_PROFILE = {
    "description": (
        "give exactly one of protocol and profile (dataspace-protocol-http:2025-1, the dataspace profile "
        "this node speaks)"
    ),
    "oneOf": [
        {"required": ["protocol"], "not": {"required": ["profile"]}},
        {"required": ["profile"], "not": {"required": ["protocol"]}},
    ],
}


def _query_spec(root: bool) -> dict[str, JSON]:
    properties: dict[str, JSON] = {
        "@type": {"const": "QuerySpec"},
        "offset": {"type": "integer", "minimum": 0, "maximum": MAX_OFFSET if root else MAX_PEER_OFFSET},
        "limit": {"type": "integer", "minimum": 1, "maximum": MAX_LIMIT},
        "sortField": _ID,
        "sortOrder": {"enum": ["ASC", "DESC"]},
        "filterExpression": {"type": "array", "items": ref("Criterion")},
    }
    required = ["@type"]
    if root:
        properties = {"@context": ref("Context"), **properties}
        required = ["@context", "@type"]
    return {"type": "object", "required": required, "properties": properties}


def _rule(kind: str) -> dict[str, JSON]:
    return {
        "type": "object",
        "description": f"an ODRL {kind}: action (a string such as use) and optional constraints",
        "required": ["action"],
        "properties": {
            "action": {"type": "string", "description": "use, or an IRI"},
            "constraint": {"type": "array", "items": ref("Constraint")},
        },
    }


def _rules() -> dict[str, JSON]:
    return {
        "permission": {"type": "array", "items": ref("Permission"), "minItems": 1},
        "prohibition": {"type": "array", "items": ref("Prohibition"), "minItems": 1},
        "obligation": {"type": "array", "items": ref("Duty"), "minItems": 1},
    }


_FLAG = {"enum": ["true", "false", True, False]}

# A data address as this node reads it, in both versions (the v3 document shows it too). EDC checks no data
# address against a schema; the node refuses a type its data plane does not serve, and names the field.
DATA_ADDRESS: dict[str, JSON] = {
    "type": "object",
    "required": ["type"],
    "description": (
        "HttpData: baseUrl (required, http or https), proxyPath, proxyQueryParams, proxyMethod, proxyBody "
        "('true'/'false'), method, authKey and authCode (secrets: stored apart and never returned). "
        "BatteryPassport: passports stored by this node; accessLevel (public, legitimate_interest, authority), "
        "batteryModel, batteryId, manufacturer. The fields of a nested properties object are read as if they "
        "were given beside type, as EDC reads them."
    ),
    "properties": {
        "@type": {"const": "DataAddress"},
        "type": {"enum": ["HttpData", "BatteryPassport"]},
        "baseUrl": {"type": "string", "format": "uri"},
        "proxyPath": _FLAG,
        "proxyQueryParams": _FLAG,
        "proxyMethod": _FLAG,
        "proxyBody": _FLAG,
        "authKey": {"type": "string", "writeOnly": True},
        "authCode": {"type": "string", "writeOnly": True},
        "accessLevel": {"enum": ["public", "legitimate_interest", "authority"]},
    },
}

_REASON_BODY = {
    "@context": ref("Context"),
    "reason": {"type": "string", "minLength": 1, "description": "told to the peer"},
}

SCHEMAS: dict[str, JSON] = {
    "Context": {
        "type": "array",
        # The node never fetches a context: one it does not hold is refused, so the schema names those it holds.
        "items": {"enum": jsonld.known_context_urls()},
        "contains": {"const": CONTEXT_URL},
        "description": f"an array of context URLs this node holds that contains {CONTEXT_URL}",
    },
    "Criterion": {
        "type": "object",
        "required": ["@type", "operandLeft", "operator", "operandRight"],
        "properties": {
            "@type": {"const": "Criterion"},
            "operandLeft": {"type": "string", "minLength": 1, "examples": ["id", "https://w3id.org/edc/v0.0.1/ns/id"]},
            "operator": {"enum": ["=", "!=", "<", "<=", ">", ">=", "in", "like", "ilike", "contains"]},
            "operandRight": {"type": ["string", "number", "boolean", "object", "array"]},
        },
    },
    "QuerySpec": _query_spec(root=True),
    "EmbeddedQuerySpec": _query_spec(root=False),
    "DataAddress": DATA_ADDRESS,
    "DataplaneMetadata": {
        "type": "object",
        "description": "labels and profiles that select a data plane; this node has one, so they are not used",
        "required": ["@type"],
        "properties": {
            "@type": {"const": "DataplaneMetadata"},
            "labels": {"type": "array", "items": _STRING},
            "properties": {"type": "object"},
            "profiles": {"type": "array", "items": _STRING},
        },
    },
    "Asset": {
        "type": "object",
        "required": ["@context", "@type", "properties"],
        "properties": {
            "@context": ref("Context"),
            "@type": {"const": "Asset"},
            "@id": _ID,
            "properties": {
                "type": "object",
                "description": "public: shown in the catalog (keys in the EDC vocabulary unless prefixed)",
                "properties": {"conformsTo": _STRING},
            },
            "privateProperties": {"type": "object", "description": "never sent to peers; usable in selectors"},
            "dataAddress": {**ref("DataAddress"), "description": "where the data is (required by this node)"},
            "dataplaneMetadata": ref("DataplaneMetadata"),
        },
    },
    "Constraint": {
        "type": "object",
        "description": (
            "a constraint: logical (one of and, or, xone, andSequence: an array of constraints) or atomic "
            "(leftOperand, operator, rightOperand)"
        ),
        "oneOf": [ref("LogicalConstraint"), ref("AtomicConstraint")],
    },
    "LogicalConstraint": {
        "type": "object",
        "description": "give exactly one of and, or, xone, andSequence",
        "properties": {
            name: {"type": "array", "items": ref("Constraint")} for name in ("and", "or", "xone", "andSequence")
        },
        "oneOf": [{"required": [name]} for name in ("and", "or", "xone", "andSequence")],
    },
    "AtomicConstraint": {
        "type": "object",
        "required": ["leftOperand", "operator", "rightOperand"],
        "properties": {
            "leftOperand": {"type": "string", "examples": ["inForceDate"]},
            "operator": {"enum": list(OPERATORS)},
            "rightOperand": {
                "description": "must be a string, an object or an array",
                "oneOf": [{"type": "string"}, {"type": "object"}, {"type": "array"}],
            },
        },
    },
    "Permission": _rule("permission"),
    "Prohibition": _rule("prohibition"),
    "Duty": _rule("duty"),
    "Policy": {
        "type": "object",
        "required": ["@type"],
        "properties": {
            "@type": {"const": "Set"},
            "profile": {"oneOf": [{"type": "array", "items": _STRING}, _STRING]},
            **_rules(),
        },
    },
    "PolicyDefinition": {
        "type": "object",
        "required": ["@context", "@type", "policy"],
        "properties": {
            "@context": ref("Context"),
            "@type": {"const": "PolicyDefinition"},
            "@id": _ID,
            "policy": {**ref("Policy"), "description": 'an ODRL Set in DSP terms; {"@type": "Set"} allows use'},
            "privateProperties": {"type": "object"},
        },
    },
    "ContractDefinition": {
        "type": "object",
        "required": ["@context", "@type", "accessPolicyId", "contractPolicyId"],
        "properties": {
            "@context": ref("Context"),
            "@type": {"const": "ContractDefinition"},
            "@id": _ID,
            "accessPolicyId": _ID,
            "contractPolicyId": _ID,
            "assetsSelector": {"type": "array", "items": ref("Criterion")},
            "privateProperties": {"type": "object"},
        },
    },
    "CatalogRequest": {
        "type": "object",
        "required": ["@context", "@type", "counterPartyAddress", "counterPartyId"],
        "properties": {
            "@context": ref("Context"),
            "@type": {"const": "CatalogRequest"},
            "counterPartyAddress": {
                "type": "string",
                "pattern": DSP_ADDRESS,
                "description": "the peer's DSP base URL, e.g. .../api/dsp/2025-1",
            },
            "counterPartyId": {"type": "string", "minLength": 1, "description": "the peer's DID"},
            "protocol": _ID,
            "profile": _ID,
            "additionalScopes": {"type": "array", "items": _STRING},
            "querySpec": ref("EmbeddedQuerySpec"),
        },
        "allOf": [_PROTOCOL_OR_PROFILE],
    },
    "DatasetRequest": {
        "type": "object",
        "required": ["@context", "@type", "@id", "counterPartyAddress", "counterPartyId"],
        "properties": {
            "@context": ref("Context"),
            "@type": {"const": "DatasetRequest"},
            "@id": {"type": "string", "minLength": 1, "description": "the dataset id"},
            "counterPartyAddress": {"type": "string", "pattern": DSP_ADDRESS},
            "counterPartyId": _ID,
            "protocol": _ID,
            "profile": _ID,
        },
        "allOf": [_PROTOCOL_OR_PROFILE],
    },
    "CallbackAddress": {
        "type": "object",
        "required": ["@type", "transactional", "uri", "events"],
        "properties": {
            "@type": {"const": "CallbackAddress"},
            "transactional": {"type": "boolean"},
            "uri": _STRING,
            "events": {"type": "array", "items": _STRING},
            "authKey": _STRING,
            "authCodeId": _STRING,
        },
    },
    "Offer": {
        "type": "object",
        "description": "the offer from the provider's catalog",
        "required": ["@id", "@type", "assigner", "target"],
        "properties": {
            "@id": {"type": "string", "minLength": 1, "description": "the offer id"},
            "@type": {"const": "Offer"},
            "assigner": {"type": "string", "description": "the provider's id"},
            "target": {"type": "string", "description": "the dataset id"},
            "profile": {"oneOf": [{"type": "array", "items": _STRING}, _STRING]},
            **_rules(),
        },
        "allOf": [
            {
                "description": "an offer needs at least one rule: a non-empty permission or prohibition",
                "anyOf": [{"required": ["permission"]}, {"required": ["prohibition"]}],
            }
        ],
    },
    "ContractRequest": {
        "type": "object",
        "required": ["@context", "@type", "counterPartyAddress", "policy"],
        "properties": {
            "@context": ref("Context"),
            "@type": {"const": "ContractRequest"},
            "counterPartyAddress": {
                "type": "string",
                "pattern": DSP_ADDRESS,
                "description": "the provider's DSP base URL",
            },
            "protocol": _ID,
            "profile": _ID,
            "policy": ref("Offer"),
            "callbackAddresses": {"type": "array", "items": ref("CallbackAddress")},
        },
        "allOf": [_PROTOCOL_OR_PROFILE],
    },
    "TransferRequest": {
        "type": "object",
        "required": ["@context", "@type", "counterPartyAddress", "contractId", "transferType"],
        "properties": {
            "@context": ref("Context"),
            "@type": {"const": "TransferRequest"},
            "counterPartyAddress": {
                "type": "string",
                "pattern": DSP_ADDRESS,
                "description": "the provider's DSP base URL",
            },
            "contractId": {"type": "string", "minLength": 1, "description": "the agreement id"},
            "transferType": {"type": "string", "minLength": 1, "examples": ["HttpData-PULL", "HttpData-PUSH"]},
            "protocol": _ID,
            "profile": _ID,
            "dataDestination": {
                "type": "object",
                "description": 'for HttpData-PUSH: {"@type": "DataAddress", "type": "HttpData", "baseUrl": ...}',
            },
            "privateProperties": {"type": "object"},
            "callbackAddresses": {"type": "array", "items": ref("CallbackAddress")},
            "dataplaneMetadata": ref("DataplaneMetadata"),
        },
        "allOf": [_PROTOCOL_OR_PROFILE],
    },
    "TerminateNegotiation": {
        "type": "object",
        "required": ["@context", "@type", "reason"],
        "properties": {"@type": {"const": "TerminateNegotiation"}, **_REASON_BODY},
    },
    "TerminateTransfer": {
        "type": "object",
        "required": ["@context", "@type", "reason"],
        "properties": {"@type": {"const": "TerminateTransfer"}, **_REASON_BODY},
    },
    "SuspendTransfer": {
        "type": "object",
        "required": ["@context", "@type", "reason"],
        "properties": {"@type": {"const": "SuspendTransfer"}, **_REASON_BODY},
    },
}


def components() -> dict[str, JSON]:
    """Return the schemas under their OpenAPI component names (V4Asset, ...)."""
    return {PREFIX + name: schema for name, schema in SCHEMAS.items()}


@cache
def _validator(name: str) -> jsonschema_rs.Draft202012Validator:
    document = {"$ref": f"#/components/schemas/{PREFIX}{name}", "components": {"schemas": components()}}
    return jsonschema_rs.Draft202012Validator(document)


def check(body: JSON, name: str) -> list[Problem]:
    """Check a v4 body against the schema of its resource; return one problem per failing field."""
    if name not in SCHEMAS:
        raise KeyError(f"no v4 schema {name!r}")
    try:
        errors = list(_validator(name).iter_errors(body))
    except ValueError:  # not JSON (cannot happen for a parsed body; kept so nothing escapes as a 500)
        return [Problem("the body must be JSON", None)]
    return [problem for error in errors for problem in _problems(error)]


@cache
def _value_validator(schema: str) -> jsonschema_rs.Draft202012Validator:
    return jsonschema_rs.Draft202012Validator(json.loads(schema))


def check_value(value: JSON, schema: dict[str, JSON], name: str) -> list[Problem]:
    """Check one named value (a query parameter) against its documented schema; return one problem per rule broken."""
    holder = {"type": "object", "properties": {name: schema}}
    errors = _value_validator(json.dumps(holder, sort_keys=True)).iter_errors({name: value})
    return [problem for error in errors for problem in _problems(error)]


def _problems(error: jsonschema_rs.ValidationError) -> Iterator[Problem]:
    kind = error.kind.name
    details = error.kind.as_dict()
    where = list(error.instance_path)
    if kind in ("anyOf", "oneOf"):
        # Report the branch that got furthest into the value (an atomic constraint with a bad operator),
        # else the rule as a whole (the description of the schema that holds it).
        branches = [list(branch) for branch in details.get("context", [])]
        deeper = [b for b in branches if any(len(e.instance_path) > len(where) for e in b)]
        if deeper:
            best = max(deeper, key=lambda b: max(len(e.instance_path) for e in b))
            for inner in best:
                yield from _problems(inner)
            return
    if kind == "required":
        prop = details["property"]
        path = _path([*where, prop])
        hint = _description(_property_schema(error.schema_path, prop))
        yield Problem(f"{path} is required" + (f" ({hint})" if hint else ""), path)
        return
    path = _path(where)
    value = error.instance if where else None  # the whole body is not echoed
    if kind == "const":
        yield Problem(f"{path} must be {_shown(details['expected_value'])}", path, value)
    elif kind == "type":
        wanted = " or ".join(_TYPE_NAMES.get(t, t) for t in details["types"])
        yield Problem(f"{path} must be {wanted}, got {_json_type(value)}", path, value)
    elif kind == "enum":
        options = ", ".join(_shown(o) for o in details["options"])
        yield Problem(f"{path} must be one of {options}", path, value)
    elif kind == "minItems":
        yield Problem(f"{path} must have at least {details['limit']} item(s)", path, value)
    elif kind == "minLength":
        yield Problem(f"{path} must not be empty", path, value)
    elif kind == "minimum":
        yield Problem(f"{path} must be at least {details['limit']}", path, value)
    elif kind == "maximum":
        yield Problem(f"{path} must be at most {details['limit']}", path, value)
    elif kind == "maxLength":
        yield Problem(f"{path} must be at most {details['limit']} characters long", path, value)
    elif kind == "contains":
        rule = _description(_schema_at(list(error.schema_path)[:-1]))
        yield Problem(f"{path} must be {rule}", path, value)
    else:
        rule = _description(_schema_at(list(error.schema_path)[:-1])) or str(error.message)
        if not where:
            yield Problem(rule[0].upper() + rule[1:], None)
        else:
            yield Problem(f"{path} {rule}" if rule.startswith("must ") else f"{path}: {rule}", path, value)


_TYPE_NAMES = {
    "string": "a string",
    "array": "an array",
    "object": "a JSON object",
    "integer": "an integer",
    "number": "a number",
    "boolean": "true or false",
}
_PLAIN = re.compile(r"^[@A-Za-z_][A-Za-z0-9_]*$")


def _path(parts: list[Any]) -> str:
    """Render a location as `filterExpression[0].@type`."""
    out = ""
    for part in parts:
        if isinstance(part, int):
            out += f"[{part}]"
        elif _PLAIN.match(part):
            out += f".{part}" if out else part
        else:
            out += f'["{part}"]'
    return out or "(body)"


def _json_type(value: JSON) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    for kind, name in ((str, "a string"), (int, "a number"), (float, "a number"), (list, "an array")):
        if isinstance(value, kind):
            return name
    return "a JSON object"


def _shown(value: JSON) -> str:
    return f'"{value}"' if isinstance(value, str) else repr(value)


def _schema_at(path: list[Any]) -> JSON:
    node: JSON = {"components": {"schemas": components()}}
    for step in path:
        try:
            node = node[step]
        except (KeyError, IndexError, TypeError):
            return None
    return node


def _resolve(schema: JSON) -> JSON:
    while isinstance(schema, dict) and "$ref" in schema and "description" not in schema:
        schema = _schema_at(schema["$ref"].removeprefix("#/").split("/"))
    return schema


def _property_schema(schema_path: Any, prop: str) -> JSON:
    holder = _schema_at(list(schema_path)[:-1])
    if not isinstance(holder, dict):
        return None
    return _resolve(holder.get("properties", {}).get(prop))


def _description(schema: JSON) -> str | None:
    if isinstance(schema, dict) and isinstance(schema.get("description"), str):
        return str(schema["description"])
    return None
