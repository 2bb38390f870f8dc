"""Check a passport document against its format's official JSON schema and the node's product rules.

`check(format, document)` returns every failing JSON path with its reason, in document order, e.g.
`("performance.rated.capacity.value", 'must be a number, got string "120.6"')`; `inspect` also returns the
warnings of the one tolerance (below). Formats: `catenax-6.0`, `catenax-6.1`, `idta` (a bundle
`{"idta": {part: payload}}`), `idta.<part>` (one IDTA-02035 part payload) and `node` (only the JSON values:
the node's model checks the rest).

The schemas are the official files, shipped unchanged in `schemas/` and read by `aspects.schema_bytes`
(see SOURCES.md there). The node's rules are added to them when they are compiled, as data (`RULES`): each
constrains a schema component by its SAMM name (a share is 0-100, a mass or an energy is not negative, a
count is whole, a date names a real day, a passport id is a canonical lower-case UUID), so a rule follows
its characteristic wherever the schema uses it. The one rule a schema cannot say (a predecessor that is not
the passport itself) is checked after. The validator is jsonschema-rs (compiled, reports every error;
docs/decisions/0010). The same check runs on exports (`exports.py`).

Two node rules hold for every format's values, because a value must leave the node exactly as it came:
no NaN or infinity (JSON has none, and the store would write null) and no null (no property of these
formats takes one, and the node's JSON leaves null out).

The one tolerance: several published IDTA-02035 examples give one language text `{"de": "Muster AG"}`, or
one string, bare where the schema wants a list of them. Their meaning is clear, so in IDTA parts exactly
these two shapes are accepted as published, value unchanged, each reported as a warning (the IDTA mapping
reads these two shapes and no other).

A bundle is checked for its own keys (`passport_id`, a non-empty string, and `idta`; nothing else is
dropped unnamed) and each part it names that has a schema; which parts a bundle needs is the mapping's.
"""

from __future__ import annotations

import copy
import math
import re
from dataclasses import dataclass, field
from functools import cache
from typing import Any

import jsonschema_rs
import orjson
from jsonschema_rs import ValidationError, ValidationErrorKind

from .aspects import IDTA_PARTS, SCHEMAS, schema_bytes
from .model import canonical_id, json_type, shown

Issue = tuple[str, str]

# A real XSD dateTime, as one regular expression so that the compiled validator checks it: a real day
# (leap years included), a real time (or 24:00:00, the end of the day), an optional offset up to ±14:00.
_DAY = (
    r"(?:\d{4}-(?:(?:0[13578]|1[02])-(?:0[1-9]|[12]\d|3[01])|(?:0[469]|11)-(?:0[1-9]|[12]\d|30)"
    r"|02-(?:0[1-9]|1\d|2[0-8]))|(?:\d{2}(?:0[48]|[2468][048]|[13579][26])|(?:[02468][048]|[13579][26])00)-02-29)"
)
TIMESTAMP = (
    rf"^{_DAY}T(?:(?:[01]\d|2[0-3]):[0-5]\d:[0-5]\d(?:\.\d+)?|24:00:00(?:\.0+)?)"
    r"(?:Z|[+-](?:(?:0\d|1[0-3]):[0-5]\d|14:00))?$"
)
CANONICAL_UUID = r"^(urn:uuid:)?[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$"
# The official schemas' own timestamp pattern (unanchored: it would take a timestamp inside other text).
SAMM_TIMESTAMP = (
    r"-?([1-9][0-9]{3,}|0[0-9]{3})-(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01])T(([01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9]"
    r"(\.[0-9]+)?|(24:00:00(\.0+)?))(Z|(\+|-)((0[0-9]|1[0-3]):[0-5][0-9]|14:00))?"
)

_SHARE = {"minimum": 0, "maximum": 100}
_AMOUNT = {"minimum": 0}
_POSITIVE = {"minimum": 0, "exclusiveMinimum": True}
_TEMPERATURE = {"minimum": -273.15}
_COUNT = {"minimum": 0, "multipleOf": 1}

# The node's rules, by schema component (the SAMM characteristic or trait the schema names).
RULES: dict[str, dict[str, dict[str, Any]]] = {
    "catenax": {
        "DateTrait": {"format": "date"},
        "Timestamp": {"pattern": TIMESTAMP},
        "UuidV4Trait": {"pattern": CANONICAL_UUID},
        "PercentMeasurement": _SHARE,  # state of charge, fades, efficiencies, depth of discharge, thresholds
        "QuantityValueCharacteristic": _AMOUNT,  # dimensions and mass
        "LifeValueCharacteristic": _AMOUNT,
        "VoltMeasurement": _AMOUNT,
        "KilowattHourMeasurement": _AMOUNT,
        "AmpereHourMeasurement": _AMOUNT,
        "WattMeasurement": _AMOUNT,
        "OhmMeasurement": _AMOUNT,
        "OhmsMeasurement": _AMOUNT,
        "CRateCharacteristic": _AMOUNT,
        "IntegerCharacteristic": _COUNT,  # cycles, years
        "DegreeMeasurement": _TEMPERATURE,
    },
    # IDTA-02035 gives most values a component of their own: each has the rule of the node field it moves
    # into (idta_fields.FIELDS), so a value is refused here, with its value in the reason, for every rule
    # the node's model has on it (a mass and a rated capacity above 0, as the model's fields say).
    "idta": {
        "Timestamp": {"pattern": TIMESTAMP},
        "StateOfChargeValue": _SHARE,
        "StateOfCertifiedEnergyValue": _SHARE,
        "RemainingRoundTripEnergyEfficiencyValue": _SHARE,
        "CurrentSelfDischargingRateValue": _SHARE,
        "EvolutionOfSelfDischargeEntityValue": _SHARE,
        "CapacityFadeValue": _SHARE,
        "CapacityThresholdForExhaustion": _SHARE,
        "EnergyEfficiency": _SHARE,
        "RoundTripEfficiencyAt50PercentCycleLife": _SHARE,
        "energyRoundTripEfficiencyFadeValue": _SHARE,
        "BatteryDischargingRate": _SHARE,
        "PowerFade": _SHARE,
        "AtSoC": _SHARE,
        "RenewableContent": _SHARE,
        "EnergyThroughputValue": _AMOUNT,
        "CapacityThroughputValue": _AMOUNT,
        "RemainingCapacityValue": _AMOUNT,
        "UBERemainingValue": _AMOUNT,
        "BatteryMassMeasurable": _POSITIVE,
        "WeightInKilogram": _AMOUNT,
        "RatedCapacity": _POSITIVE,
        "RatedEnergy": _AMOUNT,
        "Voltage": _AMOUNT,
        "InternalResistance": _AMOUNT,
        "ResistanceIncrease": _AMOUNT,
        "PowerCapabilityAtSoc": _AMOUNT,
        "PowerCapabilityRatio": _AMOUNT,
        "CRateLifeCycleTest": _AMOUNT,
        "ExpectedNumberOfCycles": _COUNT,
        "NumberOfFullCyclesValue": _COUNT,
        "TimeExtremeHighTemp": _AMOUNT,
        "TimeExtremeLowTemp": _AMOUNT,
        "TimeExtremeHighTempCharging": _AMOUNT,
        "TimeExtremeLowTempCharging": _AMOUNT,
        "PcfCo2eqCharacteristic": _AMOUNT,
        "QuantityOfMeasureForCalculationCharacteristic": _POSITIVE,
        "HazardousSubstanceConcentrationCharacteristic": _AMOUNT,
        "Temperature": _TEMPERATURE,
        "TemperatureRangeBoundary": _TEMPERATURE,
    },
}
# Catena-X records a resistance increase with the percentage record of state of charge and fades; an
# increase is not a share (a resistance can more than double), so it gets a record of its own.
_INCREASE = {
    "type": "object",
    "properties": {
        "value": {"type": "number", "minimum": 0},
        "time": {"$ref": "#/components/schemas/Timestamp"},
    },
    "required": ["time", "value"],
}
# Any JSON value but null (no property of these formats takes one; NaN reaches the validator as null).
_VALUE = {
    "type": ["object", "array", "string", "number", "boolean"],
    "additionalProperties": {"$ref": "#/components/schemas/NodeValue"},
    "items": {"$ref": "#/components/schemas/NodeValue"},
}
_REAL_TIMESTAMP = "a real date and time (YYYY-MM-DDThh:mm:ss, optional fraction and offset up to ±14:00)"
PATTERNS = {
    TIMESTAMP: _REAL_TIMESTAMP,
    SAMM_TIMESTAMP: _REAL_TIMESTAMP,
    CANONICAL_UUID: "a canonical lower-case UUID",
    "^BPNL[a-zA-Z0-9]{12}$": "a BPNL (BPNL and 12 letters or digits)",
    "^BPNA[a-zA-Z0-9]{12}$": "a BPNA (BPNA and 12 letters or digits)",
    r"^\d{4}-\d{2}-\d{2}$": "a real calendar date (YYYY-MM-DD)",
    r"^P(?!$)((\d+Y)?(\d+M)?(\d+D)?(T(?=\d)(\d+H)?(\d+M)?(\d+S)?)?|T(?=\d)(\d+H)?(\d+M)?(\d+S)?)$": (
        "an ISO 8601 duration (e.g. P96M)"
    ),
    r"^\d{2,7}-\d{2}-\d{1}$": "a CAS number (e.g. 7439-93-2)",
}
FORMATS = {
    "date": "a real calendar date (YYYY-MM-DD)",
    "uri": "a URI",
}
TOLERATED = "accepted as published"
BUNDLE_KEYS = ("passport_id", "idta")
_TYPE_NAMES = {"object": "an object", "array": "an array", "integer": "an integer", "null": "null"}
_PLAIN = re.compile(r"^[^.\[\]\"]+$")
_STEPS = re.compile(r'\["(?:[^"\\]|\\.)*"\]|\[\d+\]|[^.\[\]]+')
_LANGUAGE = re.compile(r"^[A-Za-z]{2,3}(-[A-Za-z0-9]{1,8})*$")


@dataclass(frozen=True, slots=True)
class Findings:
    """What a check found: errors refuse the document, warnings do not."""

    errors: list[Issue] = field(default_factory=list)
    warnings: list[Issue] = field(default_factory=list)


def check(fmt: str, document: Any) -> list[Issue]:
    """Return every (JSON path, reason) at which the document fails its format's schema and the node's rules."""
    return inspect(fmt, document).errors


def inspect(fmt: str, document: Any) -> Findings:
    """Return the errors and the warnings of a document in a format (see the module's docstring)."""
    if not isinstance(document, dict):
        return Findings([("(passport)", f"must be a JSON object, got {json_type(document)}")])
    if fmt == "node":
        return Findings(_not_json(document, ()))
    if fmt != "idta" and fmt not in SCHEMAS:
        raise ValueError(f"no schema for the format {fmt!r}")
    try:
        if fmt == "idta":
            return _bundle(document)
        if fmt.startswith("idta."):
            return _part(fmt, document)
        errors = _schema_errors(fmt, document) + _catenax_rules(document)
    except _NotJson as exc:
        return Findings(exc.issues)
    return Findings(in_document_order(document, errors))


def in_document_order(document: Any, issues: list[Issue]) -> list[Issue]:
    """Return the issues once per path, in the order their paths appear in the document."""
    seen: dict[str, str] = {}
    for path, reason in issues:
        seen.setdefault(path, reason)
    return sorted(seen.items(), key=lambda item: _position(document, item[0]))


def idta_part_of(document: dict[str, Any]) -> str | None:
    """Return the IDTA-02035 part a lone payload is (its top level: every required property, no other)."""
    for part in IDTA_PARTS:
        schema = _compiled(f"idta.{part}").schema
        if set(schema.get("required", ())) <= document.keys() <= schema.get("properties", {}).keys():
            return part
    return None


# --- compiling -------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Compiled:
    validator: jsonschema_rs.Draft4Validator
    schema: dict[str, Any]  # the official schema with the node's rules, to resolve an error's schema path


@cache
def _compiled(fmt: str) -> _Compiled:
    schema = orjson.loads(schema_bytes(fmt))
    components: dict[str, Any] = schema.setdefault("components", {}).setdefault("schemas", {})
    family = "idta" if fmt.startswith("idta.") else "catenax"
    if family == "catenax" and "ResistanceIncreaseCharacteristic" in components:
        components["ResistanceIncreaseRecord"] = copy.deepcopy(_INCREASE)
        increase = components["ResistanceIncreaseCharacteristic"]["properties"]
        for name in increase:
            increase[name] = {**increase[name], "$ref": "#/components/schemas/ResistanceIncreaseRecord"}
    for name, rule in RULES[family].items():
        if name in components and rule:
            components[name] = _constrained(components[name], rule)
    components["NodeValue"] = copy.deepcopy(_VALUE)
    for node in _schema_nodes(schema):
        if node.get("type") != "object" or "additionalProperties" in node:
            continue
        if str(node.get("x-samm-aspect-model-urn", "")).endswith("#MultiLanguageText"):
            node["additionalProperties"] = {"type": "string"}  # {"<language>": "<text>"}
        else:
            node["additionalProperties"] = {"$ref": "#/components/schemas/NodeValue"}
    validator = jsonschema_rs.Draft4Validator(schema, validate_formats=True)
    return _Compiled(validator, schema)


def _schema_nodes(node: Any) -> list[dict[str, Any]]:
    """Return a schema node and every schema inside it (by keyword: never a property that is named "type")."""
    if not isinstance(node, dict):
        return []
    found = [node]
    for keyword in ("properties", "schemas"):
        for inner in node.get(keyword, {}).values():
            found += _schema_nodes(inner)
    for keyword in ("items", "additionalProperties", "components"):
        found += _schema_nodes(node.get(keyword))
    for keyword in ("allOf", "anyOf", "oneOf"):
        for inner in node.get(keyword, []):
            found += _schema_nodes(inner)
    return found


def _constrained(component: dict[str, Any], rule: dict[str, Any]) -> dict[str, Any]:
    """Add a rule to a component: merged where it names new keywords, else both must hold."""
    if rule.keys() & component.keys():
        return {"allOf": [component, rule]}
    return {**component, **rule}


# --- checking --------------------------------------------------------------------------------------------


def _errors(compiled: _Compiled, document: Any) -> list[ValidationError]:
    """Return the validator's errors; a document that is no JSON (a key that is not a string) is one."""
    try:
        # Nearly every document is valid: the yes-or-no check is the cheaper pass over it, and the errors
        # are gathered (a second pass) only for a document that has some.
        if compiled.validator.is_valid(document):
            return []
        return list(compiled.validator.iter_errors(document))
    except ValueError:
        raise _NotJson(_not_json(document, ())) from None


class _NotJson(Exception):
    def __init__(self, issues: list[Issue]) -> None:
        self.issues = issues or [("(passport)", "must be JSON: objects, arrays, strings, numbers, booleans")]


def _not_json(value: Any, location: tuple[Any, ...]) -> list[Issue]:
    """Return where a Python value is no JSON: a key that is not a string, NaN, infinity, another type."""
    if isinstance(value, dict):
        issues = []
        for key, item in value.items():
            if not isinstance(key, str):
                issues.append((_path(location), f"a key must be a string, got {json_type(key)} {shown(key)}"))
            else:
                issues += _not_json(item, (*location, key))
        return issues
    if isinstance(value, list | tuple):
        return [issue for i, item in enumerate(value) for issue in _not_json(item, (*location, i))]
    if isinstance(value, float) and not math.isfinite(value):
        return [(_path(location), f"must be a finite number, got {shown(value)}")]
    if value is None or isinstance(value, str | int | float):
        return []
    return [(_path(location), f"must be a JSON value, got {type(value).__name__}")]


def _schema_errors(fmt: str, document: Any) -> list[Issue]:
    issues = []
    for error in _errors(_compiled(fmt), document):
        location, value = _locate(document, error)
        issues.append((_path(location, error.kind), _reason(value, error)))
    return issues


def _catenax_rules(document: dict[str, Any]) -> list[Issue]:
    metadata = document.get("metadata")
    if not isinstance(metadata, dict):
        return []
    own, predecessor = metadata.get("passportIdentifier"), metadata.get("predecessor")
    if isinstance(own, str) and isinstance(predecessor, str) and canonical_id(own) == canonical_id(predecessor):
        return [("metadata.predecessor", "must not be the passport itself (metadata.passportIdentifier)")]
    return []


def _bundle(document: dict[str, Any]) -> Findings:
    """Check a bundle's parts against their schemas (the mapping names a part it does not know)."""
    errors: list[Issue] = [
        (_path((key,)), f"not part of an IDTA bundle (its keys are {', '.join(BUNDLE_KEYS)})")
        if isinstance(key, str)
        else ("(passport)", f"a key must be a string, got {json_type(key)} {shown(key)}")
        for key in document
        if key not in BUNDLE_KEYS
    ]
    passport_id = document.get("passport_id", "-")
    if not isinstance(passport_id, str) or not passport_id:
        errors.append(("passport_id", f"must be a passport id (a non-empty string), got {shown(passport_id)}"))
    parts = document.get("idta")
    if not isinstance(parts, dict):
        return Findings([("idta", "must be a JSON object of IDTA-02035 part payloads"), *errors])
    warnings: list[Issue] = []
    for name, payload in parts.items():
        if name in IDTA_PARTS and isinstance(payload, dict):
            try:
                found = _part(f"idta.{name}", payload)
            except _NotJson as exc:
                found = Findings(exc.issues)
            errors += _prefixed(f"idta.{name}", found.errors)
            warnings += _prefixed(f"idta.{name}", found.warnings)
    return Findings(in_document_order(document, errors), in_document_order(document, warnings))


def _part(fmt: str, payload: dict[str, Any]) -> Findings:
    """Check one IDTA part payload; the two published bare-list shapes are warnings, not errors."""
    compiled = _compiled(fmt)
    found = [(*_locate(payload, e), e) for e in _errors(compiled, payload)]
    bare = {loc: shape for loc, value, e in found if (shape := _bare_shape(compiled, value, e))}
    if bare:  # check again with each bare value in a list: what still fails is an error
        wrapped = copy.deepcopy(payload)
        for location in bare:
            _replace(wrapped, location, [_at(payload, location)])
        found = [(*_locate(wrapped, e), e) for e in _errors(compiled, wrapped)]
    issues = [(_path(loc, e.kind), _reason(value, e)) for loc, value, e in found if not _under_any(loc, bare)]
    warnings: list[Issue] = []
    for location, shape in bare.items():
        value = _at(payload, location)
        if any(_under_any(loc, {location: shape}) for loc, _, _ in found):
            issues.append((_path(location), f"must be an array, got {json_type(value)} {shown(value)}"))
        else:
            warnings.append(
                (_path(location), f"one {shape} given bare where the schema wants a list of them; {TOLERATED}")
            )
    return Findings(in_document_order(payload, issues), in_document_order(payload, warnings))


def _prefixed(prefix: str, issues: list[Issue]) -> list[Issue]:
    return [
        (prefix if p == "(passport)" else prefix + p if p.startswith("[") else f"{prefix}.{p}", r) for p, r in issues
    ]


def _bare_shape(compiled: _Compiled, value: Any, error: ValidationError) -> str | None:
    """Return "language text" or "string" if the error is one such value where its list is wanted."""
    if error.kind.name != "type" or error.kind.as_dict().get("types") != ["array"]:
        return None
    wanted = _resolve(compiled.schema, list(error.schema_path)[:-1])
    items = _deref(compiled.schema, wanted.get("items", {})) if isinstance(wanted, dict) else {}
    if isinstance(value, str) and items.get("type") == "string":
        return "string"
    language_text = str(items.get("x-samm-aspect-model-urn", "")).endswith("#MultiLanguageText")
    texts = (
        isinstance(value, dict) and value and all(_LANGUAGE.match(k) and isinstance(v, str) for k, v in value.items())
    )
    if language_text and texts:
        return "language text"
    return None


# --- reasons and paths -----------------------------------------------------------------------------------


def _reason(value: Any, error: ValidationError) -> str:
    kind, details = error.kind.name, error.kind.as_dict()
    if kind == "type":
        if isinstance(value, float) and not math.isfinite(value):
            return f"must be a finite number, got {shown(value)}"
        if value is None:
            return "must not be null (leave the property out)"
        wanted = " or ".join(_TYPE_NAMES.get(t, f"a {t}") for t in details["types"])
        return f"must be {wanted}, got {json_type(value)} {shown(value)}"
    if kind == "required":
        return "required"
    if kind == "enum":
        return f"must be one of {', '.join(shown(o) for o in details['options'])}, got {shown(value)}"
    if kind == "pattern":
        wanted = PATTERNS.get(details["pattern"], f"text matching {details['pattern']}")
        return f"must be {wanted}, got {shown(value)}"
    if kind == "format":
        return f"must be {FORMATS.get(details['format'], details['format'])}, got {shown(value)}"
    if kind == "minimum":
        return f"must be at least {_limit(details['limit'])}, got {shown(value)}"
    if kind == "exclusiveMinimum":
        return f"must be greater than {_limit(details['limit'])}, got {shown(value)}"
    if kind == "maximum":
        return f"must be at most {_limit(details['limit'])}, got {shown(value)}"
    if kind == "multipleOf" and details.get("multiple_of") == 1:
        return f"must be a whole number, got {shown(value)}"
    if kind == "maxLength":
        return f"must be at most {details['limit']} characters, got {len(value) if isinstance(value, str) else '?'}"
    if kind == "minItems":
        return f"must have at least {details['limit']} item(s), got {len(value) if isinstance(value, list) else '?'}"
    if kind == "minLength":
        return f"must be at least {details['limit']} characters, got {len(value) if isinstance(value, str) else '?'}"
    return str(error.message)


def _path(location: list[Any] | tuple[Any, ...], kind: ValidationErrorKind | None = None) -> str:
    """Render a location as a JSON path: `a.b[0].c`, a key that is not a plain name as `["a.b"]`."""
    parts = list(location)
    if kind is not None and kind.name == "required":
        parts.append(kind.as_dict()["property"])
    out = ""
    for part in parts:
        if isinstance(part, int):
            out += f"[{part}]"
        elif _PLAIN.match(part):
            out += f".{part}" if out else part
        else:
            out += f"[{orjson.dumps(part).decode()}]"
    return out or "(passport)"


def _locate(document: Any, error: ValidationError) -> tuple[tuple[Any, ...], Any]:
    """Return where an error is in the document and the value there.

    The validator's path turns a key "0" into the number 0 and leaves out an empty key; this walks the
    document to give the key as it is. The value is the document's (NaN reaches the validator as null).
    """
    node: Any = document
    location: list[Any] = []
    steps = list(error.instance_path)
    for step in steps:
        while isinstance(node, dict) and str(step) not in node and "" in node:
            node, location = node[""], [*location, ""]
        if isinstance(node, list) and isinstance(step, int) and step < len(node):
            node, location = node[step], [*location, step]
        elif isinstance(node, dict) and str(step) in node:
            node, location = node[str(step)], [*location, str(step)]
        else:
            return tuple(location), error.instance
    if error.kind.name != "required":
        while isinstance(node, dict) and "" in node and node != error.instance:
            node, location = node[""], [*location, ""]
    return tuple(location), node


def _position(document: Any, path: str) -> tuple[int, ...]:
    """Return where a path is in the document: the index of each step (missing steps sort last)."""
    out: list[int] = []
    node = document
    for step in _STEPS.findall(path):
        if step.startswith("[") and step[1:-1].isdigit():
            index = int(step[1:-1])
            out.append(index)
            node = node[index] if isinstance(node, list) and index < len(node) else None
            continue
        key = orjson.loads(step[1:-1]) if step.startswith('["') else step
        if isinstance(node, dict) and key in node:
            out.append(list(node).index(key))
            node = node[key]
        else:
            out.append(1 << 30)
            node = None
    return tuple(out)


def _at(document: Any, location: tuple[Any, ...]) -> Any:
    node = document
    for step in location:
        node = node[step]
    return node


def _replace(document: Any, location: tuple[Any, ...], value: Any) -> None:
    _at(document, location[:-1])[location[-1]] = value


def _under_any(location: tuple[Any, ...], places: dict[tuple[Any, ...], str]) -> bool:
    return any(location[: len(place)] == place for place in places)


def _resolve(schema: dict[str, Any], path: list[Any]) -> Any:
    node: Any = schema
    for step in path:
        node = node[step]
    return _deref(schema, node)


def _deref(schema: dict[str, Any], node: Any) -> Any:
    while isinstance(node, dict) and isinstance(node.get("$ref"), str) and node["$ref"].startswith("#/"):
        node = _resolve(schema, node["$ref"][2:].split("/"))
    return node


def _limit(value: Any) -> str:
    return str(int(value)) if isinstance(value, float) and value.is_integer() else str(value)
