"""Catena-X BatteryPass 6.0.0 / 6.1.0 to and from the node's passport, losing and changing nothing.

A document is checked first (`validation.check`: the official schema and the node's rules) and refused
whole, naming every failing path, when anything fails: nothing is kept aside. Scalar values at fixed paths
are then *moved* into the node's groups (`MOVED`), where the node's model checks them once more (a rated
capacity above 0), a fault reported at its Catena-X path. Everything not moved is kept as extension data,
split by the Annex XIII point its section belongs to (`SECTIONS`, most specific path wins; an unknown
section is treated as authority-only). Each extension also records where its keys stood in the containers
the mapping takes apart (`order`), so export gives back the same values in the same key order:
`orjson.dumps(to_catenax(from_catenax(doc))) == orjson.dumps(doc)`.

Reading copies only the containers on the way to a moved value: the passport shares every other subtree
with the document (so a document must not be changed after it was read), and the document itself is left
as it was.
"""

from __future__ import annotations

from typing import Any

from pydantic import ValidationError

from . import formats, validation
from .model import GROUPS, Extension, Passport, PassportInvalid, Tag, canonical_id, invalid

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
# Where a field the node derives (not moves) comes from, for naming a fault at its Catena-X path.
_DERIVED = {
    ("identity", "battery_id"): "identification.identification.serial",
    ("identity", "predecessor_passport_ids"): "metadata.predecessor",
}
# Values spelt differently by Catena-X and the node (Catena-X path -> Catena-X value -> node value).
SPELLING: dict[str, dict[str, str]] = {"sustainability.status": {"re-used": "reused"}}
_SPOKEN = {path: {node: cx for cx, node in table.items()} for path, table in SPELLING.items()}
NIL_UUID = "00000000-0000-0000-0000-000000000000"


def _prefixes(path: str) -> list[str]:
    keys = path.split(".")
    return [".".join(keys[:depth]) for depth in range(1, len(keys))]


# Containers whose keys belong to more than one tag: every key's position is recorded.
SPLIT = ("", *sorted({p for section in SECTIONS for p in _prefixes(section)}))


def is_catenax(document: dict[str, Any]) -> bool:
    """Tell a Catena-X BatteryPass document (6.0.0 or 6.1.0) from its aspect URN or its shape."""
    try:
        return formats.detect(document).startswith("catenax")
    except PassportInvalid:
        return False


def version(document: dict[str, Any]) -> str:
    """Return "catenax-6.1" or "catenax-6.0" (raise PassportInvalid for a document that is neither)."""
    fmt = formats.detect(document)
    if not fmt.startswith("catenax"):
        raise PassportInvalid([("(passport)", f"not a Catena-X BatteryPass document (it reads as {fmt})")])
    return fmt


def _get(document: dict[str, Any], path: str) -> tuple[bool, Any]:
    node: Any = document
    for key in path.split("."):
        if not isinstance(node, dict) or key not in node:
            return False, None
        node = node[key]
    return True, node


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


class _Order:
    """Where keys stood in the document's containers, per tag: container path -> key -> index."""

    def __init__(self, document: dict[str, Any]) -> None:
        self.document = document
        self.by_tag: dict[Tag, dict[str, dict[str, int]]] = {}

    def note(self, container: str, key: str, index: int) -> None:
        path = f"{container}.{key}" if container else key
        self.by_tag.setdefault(tag_of(path), {}).setdefault(container, {})[key] = index

    def note_split(self) -> None:
        for container in SPLIT:
            found, node = (True, self.document) if not container else _get(self.document, container)
            if found and isinstance(node, dict):
                for index, key in enumerate(node):
                    self.note(container, key, index)


def _without(document: dict[str, Any], paths: list[str], order: _Order) -> dict[str, Any]:
    """Return the document without the values at `paths`, copying only the containers on their way.

    A container the removals leave empty is left out too. The positions of what is removed are noted in
    `order`, so export can put each value back where it was.
    """
    out = dict(document)
    copies: dict[str, dict[str, Any]] = {"": out}
    for path in paths:
        keys = path.split(".")
        node, originals, where = out, [document], ""
        for key in keys[:-1]:
            inner = f"{where}.{key}" if where else key
            if inner not in copies:
                copies[inner] = node[key] = dict(node[key])
            originals.append(originals[-1][key])
            node, where = copies[inner], inner
        order.note(where, keys[-1], list(originals[-1]).index(keys[-1]))
        del node[keys[-1]]
        for depth in range(len(keys) - 1, 0, -1):  # drop the containers the move left empty
            container = ".".join(keys[:depth])
            if copies[container]:
                break
            parent = ".".join(keys[: depth - 1])
            order.note(parent, keys[depth - 1], list(originals[depth - 1]).index(keys[depth - 1]))
            del copies[parent][keys[depth - 1]]
    return out


def _battery_id(document: dict[str, Any], passport_id: str) -> str:
    serials = _get(document, "identification.identification.serial")[1]
    if isinstance(serials, list):
        for item in serials:
            if isinstance(item, dict) and item.get("key") == "partInstanceId" and item.get("value"):
                return str(item["value"])
    dmc = _get(document, "identification.idDmc")[1]
    return str(dmc) if isinstance(dmc, str) and dmc else passport_id


def from_catenax(document: dict[str, Any], fmt: str | None = None) -> Passport:
    """Map a Catena-X BatteryPass 6.x document into the node's passport (raise PassportInvalid naming every fault)."""
    fmt = fmt or version(document)
    errors = validation.check(fmt, document)
    try:
        passport = _read(document, fmt)
    except PassportInvalid as exc:
        errors = validation.in_document_order(document, errors + exc.errors)
    if errors:
        raise PassportInvalid(errors)
    return passport


def _read(document: dict[str, Any], fmt: str) -> Passport:
    groups: dict[str, dict[str, Any]] = {}
    moved: list[str] = []
    for path, group, name in MOVED:
        present, value = _get(document, path)
        if not present or value is None or isinstance(value, dict | list):
            continue  # absent, or not a value (the schema check names it)
        if isinstance(value, str) and path in SPELLING:
            value = SPELLING[path].get(value, value)
        groups.setdefault(group, {})[name] = value
        moved.append(path)
    identity = groups.setdefault("identity", {})
    passport_id = identity.get("passport_id")
    identity["battery_id"] = _battery_id(document, passport_id if isinstance(passport_id, str) else "-")
    predecessor = _get(document, "metadata.predecessor")[1]
    if isinstance(predecessor, str) and predecessor and canonical_id(predecessor) != NIL_UUID:
        identity["predecessor_passport_ids"] = [predecessor]
    order = _Order(document)
    order.note_split()
    remainder = _without(document, moved, order)
    parts: dict[Tag, dict[str, Any]] = {}
    _split(remainder, "", parts)
    extensions = [
        {"format": FORMAT, "tag": tag.value, "data": parts.get(tag, {}), "order": order.by_tag.get(tag)}
        for tag in Tag
        if tag in parts or tag in order.by_tag
    ]
    data = {**groups, "source_format": fmt, "extensions": extensions}
    try:
        return Passport.model_validate(data)
    except ValidationError as exc:
        raise PassportInvalid([(_catenax_path(path), message) for path, message in invalid(exc).errors]) from None


def _catenax_path(node_path: str) -> str:
    """Return the Catena-X path a fault in the node's groups came from (moved or derived values)."""
    group, _, name = node_path.partition(".")
    name = name.split(".")[0].split("[")[0]
    return _FIELD_PATH.get((group, name)) or _DERIVED.get((group, name)) or node_path


def _merge(into: dict[str, Any], data: dict[str, Any]) -> None:
    """Merge extension data into the export, in fresh containers (the passport's own are never changed)."""
    for key, value in data.items():
        if isinstance(value, dict):
            inner = into.get(key)
            if not isinstance(inner, dict):
                inner = into[key] = {}
            _merge(inner, value)
        else:
            into[key] = value


def _reorder(out: dict[str, Any], orders: dict[str, dict[str, int]]) -> None:
    """Put each recorded key back at its position; keys not recorded keep their order in the free places."""
    for container, positions in orders.items():
        found, node = (True, out) if not container else _get(out, container)
        if not found or not isinstance(node, dict) or len(node) < 2:
            continue
        keys = list(node)
        if all(key in positions for key in keys):  # a split container, whole or in a view
            ordered = sorted(keys, key=positions.__getitem__)
            if ordered != keys:
                items = {key: node[key] for key in ordered}
                node.clear()
                node.update(items)
            continue
        placed: list[str | None] = [None] * len(keys)
        late: list[str] = []
        for key in sorted((k for k in keys if k in positions), key=positions.__getitem__):
            index = positions[key]
            if index < len(keys) and placed[index] is None:
                placed[index] = key
            else:
                late.append(key)
        rest = iter([k for k in keys if k not in positions] + late)
        ordered = [key if key is not None else next(rest) for key in placed]
        if ordered != keys:
            items = {key: node[key] for key in ordered}
            node.clear()
            node.update(items)


def to_catenax(passport: Passport) -> dict[str, Any]:
    """Render a passport (or a view's subset of one) as a Catena-X BatteryPass document."""
    out: dict[str, Any] = {}
    orders: dict[str, dict[str, int]] = {}
    for extension in passport.extensions:
        if extension.format == FORMAT:
            _merge(out, extension.data)
            for container, positions in (extension.order or {}).items():
                orders.setdefault(container, {}).update(positions)
    for group_name in GROUPS:
        group = getattr(passport, group_name)
        if group is None:
            continue
        for name, value in group.model_dump(mode="json", exclude_none=True).items():
            path = _FIELD_PATH.get((group_name, name))
            if path is not None:
                _put(out, path, _SPOKEN.get(path, {}).get(value, value) if isinstance(value, str) else value)
    if passport.source_format != "catenax-6.0" and "specVersion" not in out:
        out["specVersion"] = "urn:io.catenax.battery.battery_pass:6.1.0"
    _reorder(out, orders)
    return out


def drop(passport: Passport, allowed: frozenset[Tag]) -> Passport:
    """Return the passport without the groups and extension data of tags not allowed."""
    changes: dict[str, Any] = {
        name: None for name, group in GROUPS.items() if group.tag not in allowed and name != "identity"
    }
    changes["extensions"] = tuple(e for e in passport.extensions if e.tag in allowed)
    return passport.model_copy(update=changes)


__all__ = ["ASPECT_6_0", "ASPECT_6_1", "Extension", "from_catenax", "is_catenax", "to_catenax"]
