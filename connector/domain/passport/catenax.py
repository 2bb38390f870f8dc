"""Catena-X BatteryPass 6.0.0 / 6.1.0 to and from the node's passport, losing nothing.

Scalar values at fixed paths are *moved* into the node's groups (checked there: units, ranges, dates);
a value that fails the node's check stays where it was, verbatim. Everything not moved is kept as
extension data, split by the Annex XIII point its section belongs to (`SECTIONS`, most specific path
wins; an unknown section is treated as authority-only). Export puts the moved values back into the kept
remainder, so `to_catenax(from_catenax(doc)) == doc`.
"""

from __future__ import annotations

import copy
from typing import Any

from pydantic import ValidationError

from .model import GROUPS, Extension, Passport, PassportInvalid, Tag, invalid

ASPECT_6_0 = "urn:samm:io.catenax.battery.battery_pass:6.0.0#BatteryPass"
ASPECT_6_1 = "urn:samm:io.catenax.battery.battery_pass:6.1.0#BatteryPass"
FORMAT = "catenax"

P, LM, A, LB = Tag.PUBLIC, Tag.LEGITIMATE_INTEREST_MODEL, Tag.AUTHORITY, Tag.LEGITIMATE_INTEREST_BATTERY

# Catena-X section -> Annex XIII point (the battery-passport study's attribute table, §1.3-1.4).
SECTIONS: dict[str, Tag] = {
    "specVersion": P,
    "metadata": P,
    "characteristics": P,
    "commercial": P,
    "sources": P,
    "identification": P,
    "sustainability": P,
    "sustainability.status": LB,  # battery status, Annex XIII 4(c)
    "operation": P,
    "operation.intoServiceDate": LB,  # Annex VII part B
    "performance": P,
    "performance.rated": P,  # rated values, Annex XIII 1(g)-(p)
    "performance.dynamic": LB,  # state of health and use, Annex XIII point 4
    "materials": P,
    "materials.active": P,  # recycled content, Art. 8
    "materials.hazardous": P,  # Annex XIII 1(b)
    "materials.composition": LM,  # detailed composition, Annex XIII 2(a)
    "safety": P,
    "safety.usableExtinguishAgent": P,
    "safety.meaningOfLabels": P,
    "safety.dismantling": LM,  # Annex XIII 2(c)
    "safety.removalFromAppliance": LM,
    "safety.safetyMeasures": LM,  # Annex XIII 2(d)
    "safety.safeDischarging": LM,
    "handling": LM,  # part numbers and spare parts, Annex XIII 2(b)
    "conformity": P,
    "conformity.resultOfTestReport": A,  # Annex XIII point 3
}

# (Catena-X path, node group, node field): scalar values moved into the node's groups.
MOVED: tuple[tuple[str, str, str], ...] = (
    ("metadata.passportIdentifier", "identity", "passport_id"),
    ("identification.identification.type.manufacturerPartId", "identity", "model_id"),
    ("operation.manufacturer.manufacturer", "identity", "manufacturer_id"),
    ("operation.manufacturer.manufacturingDate", "identity", "manufacturing_date"),
    ("identification.category", "identity", "category"),
    ("identification.chemistry", "identity", "chemistry"),
    ("performance.rated.capacity.value", "performance", "rated_capacity_ah"),
    ("performance.rated.capacity.thresholdExhaustion", "performance", "capacity_threshold_exhaustion_pct"),
    ("performance.rated.energy.value", "performance", "certified_usable_energy_kwh"),
    ("performance.rated.voltage.min", "performance", "voltage_min_v"),
    ("performance.rated.voltage.nominal", "performance", "voltage_nominal_v"),
    ("performance.rated.voltage.max", "performance", "voltage_max_v"),
    ("performance.rated.power.value", "performance", "original_power_w"),
    ("performance.rated.lifetime.cycleLifeTesting.cycles", "performance", "expected_lifetime_cycles"),
    ("performance.rated.temperature.lower", "performance", "idle_temperature_min_c"),
    ("performance.rated.temperature.upper", "performance", "idle_temperature_max_c"),
    ("performance.rated.roundTripEfficiency.initial", "performance", "initial_round_trip_efficiency_pct"),
    ("performance.rated.roundTripEfficiency.50PercentLife", "performance", "round_trip_efficiency_50pct_life_pct"),
    ("performance.rated.resistance.pack", "performance", "internal_resistance_pack_ohm"),
    ("materials.active.cobalt.recycled", "circularity", "recycled_cobalt_pct"),
    ("materials.active.lithium.recycled", "circularity", "recycled_lithium_pct"),
    ("materials.active.nickel.recycled", "circularity", "recycled_nickel_pct"),
    ("materials.active.lead.recycled", "circularity", "recycled_lead_pct"),
    ("conformity.declarationOfConformityId", "labels", "declaration_of_conformity_id"),
    ("sustainability.status", "condition", "status"),
    ("operation.intoServiceDate", "condition", "put_into_service"),
    ("performance.dynamic.stateOfCharge.value", "condition", "state_of_charge_pct"),
    ("performance.dynamic.energy.soce.value", "condition", "state_of_certified_energy_pct"),
    ("performance.dynamic.energy.remaining.value", "condition", "remaining_energy_kwh"),
    ("performance.dynamic.capacity.capacity.value", "condition", "remaining_capacity_ah"),
    ("performance.dynamic.capacity.fade.value", "condition", "capacity_fade_pct"),
    ("performance.dynamic.power.fade.value", "condition", "power_fade_pct"),
    ("performance.dynamic.fullCycles.value", "condition", "full_cycles"),
)
_FIELD_PATH = {(group, name): path for path, group, name in MOVED}


def is_catenax(document: dict[str, Any]) -> bool:
    """Tell a Catena-X BatteryPass document by its spec version or its shape."""
    spec = document.get("specVersion")
    if isinstance(spec, str) and "battery_pass:6." in spec:
        return True
    metadata = document.get("metadata")
    return isinstance(metadata, dict) and "passportIdentifier" in metadata and "identification" in document


def version(document: dict[str, Any]) -> str:
    """Return "catenax-6.1" or "catenax-6.0" (6.0 documents carry no specVersion)."""
    spec = document.get("specVersion")
    return "catenax-6.1" if isinstance(spec, str) and "6.1" in spec else "catenax-6.0"


def _get(document: dict[str, Any], path: str) -> tuple[bool, Any]:
    node: Any = document
    for key in path.split("."):
        if not isinstance(node, dict) or key not in node:
            return False, None
        node = node[key]
    return True, node


def _pop(document: dict[str, Any], path: str) -> None:
    keys = path.split(".")
    parents = [document]
    for key in keys[:-1]:
        parents.append(parents[-1][key])
    del parents[-1][keys[-1]]
    for depth in range(len(keys) - 1, 0, -1):  # drop containers the move left empty
        if parents[depth]:
            break
        del parents[depth - 1][keys[depth - 1]]


def _put(document: dict[str, Any], path: str, value: Any) -> None:
    keys = path.split(".")
    node = document
    for key in keys[:-1]:
        node = node.setdefault(key, {})
    node[keys[-1]] = value


def tag_of(path: str) -> Tag:
    """Return the Annex XIII tag of a Catena-X path (most specific section wins; unknown: authority)."""
    keys = path.split(".")
    for depth in range(len(keys), 0, -1):
        found = SECTIONS.get(".".join(keys[:depth]))
        if found is not None:
            return found
    return Tag.AUTHORITY


def _split(remainder: dict[str, Any], prefix: str, out: dict[Tag, dict[str, Any]]) -> None:
    """Distribute the remainder over tags: a subtree goes whole to its tag unless a more specific section differs."""
    for key, value in remainder.items():
        path = f"{prefix}.{key}" if prefix else key
        inner = [s for s in SECTIONS if s.startswith(path + ".")]
        if isinstance(value, dict) and any(SECTIONS[s] is not tag_of(path) for s in inner):
            _split(value, path, out)
        else:
            _put(out.setdefault(tag_of(path), {}), path, value)


def _battery_id(document: dict[str, Any], passport_id: str) -> str:
    serials = _get(document, "identification.identification.serial")[1]
    if isinstance(serials, list):
        for item in serials:
            if isinstance(item, dict) and item.get("key") == "partInstanceId" and item.get("value"):
                return str(item["value"])
    dmc = _get(document, "identification.idDmc")[1]
    return str(dmc) if isinstance(dmc, str) and dmc else passport_id


def from_catenax(document: dict[str, Any]) -> Passport:
    """Map a Catena-X BatteryPass 6.x document into the node's passport (raise PassportInvalid if unusable)."""
    found, passport_id = _get(document, "metadata.passportIdentifier")
    if not found or not isinstance(passport_id, str) or not passport_id:
        raise PassportInvalid([("metadata.passportIdentifier", "required: the passport's unique identifier")])
    remainder = copy.deepcopy(document)
    groups: dict[str, dict[str, Any]] = {}
    for path, group, name in MOVED:
        present, value = _get(document, path)
        if not present or isinstance(value, dict | list) or value is None:
            continue
        candidate = {**groups.get(group, {}), name: value}
        if group == "identity":
            candidate.setdefault("passport_id", passport_id)
            candidate.setdefault("battery_id", "-")
        try:
            GROUPS[group].model_validate(candidate)
        except ValidationError:
            continue  # not valid for the node: kept verbatim in the extension data, where it was
        groups.setdefault(group, {})[name] = value
        _pop(remainder, path)
    identity = groups.setdefault("identity", {})
    identity["battery_id"] = _battery_id(document, passport_id)
    predecessor = _get(document, "metadata.predecessor")[1]
    if isinstance(predecessor, str) and predecessor and set(predecessor) - set("urn:uid0-"):
        identity["predecessor_passport_ids"] = [predecessor]
    parts: dict[Tag, dict[str, Any]] = {}
    _split(remainder, "", parts)
    fmt = version(document)
    data = {
        **groups,
        "source_format": fmt,
        "extensions": [{"format": FORMAT, "tag": tag.value, "data": parts[tag]} for tag in Tag if tag in parts],
    }
    try:
        return Passport.model_validate(data)
    except ValidationError as exc:
        raise invalid(exc) from None


def _merge(into: dict[str, Any], data: dict[str, Any]) -> None:
    for key, value in data.items():
        if isinstance(value, dict) and isinstance(into.get(key), dict):
            _merge(into[key], value)
        else:
            into[key] = copy.deepcopy(value)


def to_catenax(passport: Passport) -> dict[str, Any]:
    """Render a passport (or a view's subset of one) as a Catena-X BatteryPass document."""
    out: dict[str, Any] = {}
    for extension in passport.extensions:
        if extension.format == FORMAT:
            _merge(out, extension.data)
    for group_name in GROUPS:
        group = getattr(passport, group_name)
        if group is None:
            continue
        for name, value in group.model_dump(mode="json", exclude_none=True).items():
            path = _FIELD_PATH.get((group_name, name))
            if path is not None:
                _put(out, path, value)
    if passport.source_format != "catenax-6.0" and "specVersion" not in out:
        out["specVersion"] = "urn:io.catenax.battery.battery_pass:6.1.0"
    return out


def drop(passport: Passport, allowed: frozenset[Tag]) -> Passport:
    """Return the passport without the groups and extension data of tags not allowed."""
    changes: dict[str, Any] = {
        name: None for name, group in GROUPS.items() if group.tag not in allowed and name != "identity"
    }
    changes["extensions"] = tuple(e for e in passport.extensions if e.tag in allowed)
    return passport.model_copy(update=changes)


__all__ = ["ASPECT_6_0", "ASPECT_6_1", "Extension", "from_catenax", "is_catenax", "to_catenax"]
