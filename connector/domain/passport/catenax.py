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

from functools import lru_cache
from typing import Any

from pydantic import ValidationError

from . import formats, validation
from .model import (
    GROUPS,
    SPELLINGS,
    Extension,
    Passport,
    PassportInvalid,
    Tag,
    canonical_id,
    family_spelling,
    invalid,
)

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
# The node's spelling table of each moved field's Catena-X values (`node_spelling`, looked up once).
_NODE_SPELLING = {(group, name): SPELLINGS.get(f"{group}.{name}", {}).get(FORMAT) for _, group, name in MOVED}
# Where a field the node derives (not moves) comes from, for naming a fault at its Catena-X path.
_DERIVED = {
    ("identity", "battery_id"): "identification.identification.serial",
    ("identity", "predecessor_passport_ids"): "metadata.predecessor",
}
NIL_UUID = "00000000-0000-0000-0000-000000000000"


def _moved_tree() -> dict[str, Any]:
    """Return MOVED as a tree of Catena-X keys whose leaves are (path, group, field)."""
    tree: dict[str, Any] = {}
    for path, group, name in MOVED:
        *parents, leaf = path.split(".")
        node = tree
        for key in parents:
            node = node.setdefault(key, {})
        node[leaf] = (path, group, name)
    return tree


_MOVED_TREE = _moved_tree()


_SECTION_KEYS = {tuple(section.split(".")): tag for section, tag in SECTIONS.items()}


def tag_of(path: str) -> Tag:
    """Return the Annex XIII tag of a Catena-X path (most specific section wins; unknown: authority)."""
    return _tag(tuple(path.split(".")))


@lru_cache(maxsize=4096)
def _tag(keys: tuple[str, ...]) -> Tag:
    """Return the tag of a path given as its keys (a key may hold a dot: it is one key)."""
    for depth in range(len(keys), 0, -1):
        found = _SECTION_KEYS.get(keys[:depth])
        if found is not None:
            return found
    return Tag.AUTHORITY


def _split_containers() -> frozenset[str]:
    """Return the containers whose keys belong to more than one tag (a section inside differs)."""
    found = set()
    for section in SECTIONS:
        keys = section.split(".")
        for depth in range(1, len(keys)):
            container = ".".join(keys[:depth])
            if any(SECTIONS[s] is not tag_of(container) for s in SECTIONS if s.startswith(container + ".")):
                found.add(container)
    return frozenset(found)


# Split by key on the way in (each key to its tag), every key's position recorded.
SPLIT = _split_containers()
# For each split container's path ("" for the document itself), the keys in it that are split containers too.
_SPLIT_AT: dict[str, frozenset[str]] = {
    where: frozenset(c.rpartition(".")[2] for c in SPLIT if c.rpartition(".")[0] == where) for where in {"", *SPLIT}
}
_NONE: frozenset[str] = frozenset()
_EMPTY: dict[str, Any] = {}


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


def _note_and_split(
    document: dict[str, Any],
    remainder: Any,
    prefix: tuple[str, ...],
    by_tag: dict[Tag, dict[str, dict[str, int]]],
    out: dict[Tag, dict[str, Any]],
) -> None:
    """Note where every key of the document's split containers stood (per tag: container path -> key -> index)
    and distribute the remainder (the document without the moved values) over tags, in one walk.

    A subtree goes whole to its tag unless a section inside differs (a split container: walked into). The
    remainder's containers hold the document's keys in the document's order, less those taken out, so walking
    the document and taking each key's remaining value (absent: taken out) puts the same keys in the same order
    as walking the remainder on its own did.
    """
    container = ".".join(prefix)  # a split container is one of SECTIONS': no key in it has a dot
    inside = _SPLIT_AT.get(container, _NONE)
    kept_here = remainder if isinstance(remainder, dict) else _EMPTY
    for index, (key, value) in enumerate(document.items()):
        tag = _NOTED.get((container, key))
        if tag is None:
            tag = _tag((*prefix, key))
            if len(_NOTED) < _NOTED_MAX:
                _NOTED[container, key] = tag
        by_container = by_tag.get(tag)
        if by_container is None:
            by_container = by_tag[tag] = {}
        positions = by_container.get(container)
        if positions is None:
            by_container[container] = {key: index}
        else:
            positions[key] = index
        kept = kept_here.get(key, _ABSENT)
        if key in inside and isinstance(value, dict):
            _note_and_split(value, kept, (*prefix, key), by_tag, out)
        elif kept is not _ABSENT:
            node = out.get(tag)
            if node is None:
                node = out[tag] = {}
            for step in prefix:
                node = node.setdefault(step, {})
            node[key] = kept


# The tag of each (container, key) noted so far: a format's keys are few; the keys of documents from
# outside are not, so the table stops growing at a bound (the rest are looked up each time).
_NOTED: dict[tuple[str, str], Tag] = {}
_NOTED_MAX = 4096


# The mapping's plan, made once per process from MOVED's tree: for each container on the way to a moved
# value, its keys in the tree's order, each with the value's place in the node (a leaf) or the container's
# own plan, the Annex XIII tag its position is noted under and the container's path. The walk then neither
# builds paths nor looks tags up per passport.
_Step = tuple[str, "tuple[str, str, str] | None", "list[Any] | None", Tag, str]


def _plan(tree: dict[str, Any], where: str = "") -> list[_Step]:
    steps: list[_Step] = []
    for key, inner in tree.items():
        tag = _tag((*where.split("."), key) if where else (key,))
        if isinstance(inner, tuple):
            steps.append((key, inner, None, tag, where))
        else:
            steps.append((key, None, _plan(inner, f"{where}.{key}" if where else key), tag, where))
    return steps


_MOVED_PLAN = _plan(_MOVED_TREE)
_ABSENT = object()
_CONTAINERS = (dict, list)


def _take(
    document: dict[str, Any],
    plan: list[_Step],
    by_tag: dict[Tag, dict[str, dict[str, int]]],
    taken: list[tuple[Any, Any]],
) -> dict[str, Any]:
    """Take the values at the plan's leaves out of the document; return what remains.

    Only the containers on the way to a taken value are copied (the document is not changed); one the
    taking leaves empty is left out. A value that is absent, null, an object or a list is not taken (the
    schema check names it). The positions of what is taken out are noted in `by_tag` (as `_note_and_split`
    notes them), so export can put each value back where it was.
    """
    out: dict[str, Any] | None = None
    keys: list[str] | None = None
    for key, leaf, inner, tag, where in plan:
        value = document.get(key, _ABSENT)  # one look-up, not `in` and then `[]`
        if value is _ABSENT:
            continue
        if inner is None:
            if value is None or isinstance(value, _CONTAINERS):
                continue
            taken.append((leaf, value))
            out = dict(document) if out is None else out
            del out[key]
        elif isinstance(value, dict):
            kept = _take(value, inner, by_tag, taken)
            if kept is value:
                continue
            out = dict(document) if out is None else out
            if kept:
                out[key] = kept
                continue
            del out[key]
        else:
            continue
        if keys is None:
            keys = list(document)
        by_container = by_tag.get(tag)
        if by_container is None:
            by_container = by_tag[tag] = {}
        positions = by_container.get(where)
        if positions is None:
            by_container[where] = {key: keys.index(key)}
        else:
            positions[key] = keys.index(key)
    return document if out is None else out


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


def from_catenax_view(document: dict[str, Any]) -> Passport:
    """Map a Catena-X BatteryPass document that is one access level's view (a partner serves only the fields of the
    level it grants, so the schema's required fields of other levels may be absent) into the node's passport; the
    fields present are checked by the node's model (raise PassportInvalid naming every fault)."""
    return _read(document, version(document))


def _read(document: dict[str, Any], fmt: str) -> Passport:
    taken: list[tuple[Any, Any]] = []
    noted: dict[Tag, dict[str, dict[str, int]]] = {}
    remainder = _take(document, _MOVED_PLAN, noted, taken)
    by_tag: dict[Tag, dict[str, dict[str, int]]] = {}
    parts: dict[Tag, dict[str, Any]] = {}
    _note_and_split(document, remainder, (), by_tag, parts)
    # The taken keys' positions go after the split containers' (the order JSON stored is as it always was): each
    # dict gets its keys in the order the taking noted them, as if it had noted them into `by_tag` itself.
    for tag, containers in noted.items():
        mine = by_tag.get(tag)
        if mine is None:
            by_tag[tag] = containers
            continue
        for where, positions in containers.items():
            existing = mine.get(where)
            if existing is None:
                mine[where] = positions
            else:
                existing.update(positions)
    groups: dict[str, dict[str, Any]] = {}
    for (_, group, name), value in taken:
        table = _NODE_SPELLING[group, name]
        groups.setdefault(group, {})[name] = table.get(value, value) if table and isinstance(value, str) else value
    identity = groups.setdefault("identity", {})
    passport_id = identity.get("passport_id")
    identity["battery_id"] = _battery_id(document, passport_id if isinstance(passport_id, str) else "-")
    predecessor = _get(document, "metadata.predecessor")[1]
    if isinstance(predecessor, str) and predecessor and canonical_id(predecessor) != NIL_UUID:
        identity["predecessor_passport_ids"] = [predecessor]
    # The extensions are made here, of the types they are declared with (str keys, a Tag, int positions), so
    # they are built without validation; the passport's validation takes them as they are (about 20 us).
    extensions = [
        Extension.model_construct(format=FORMAT, tag=tag, data=parts.get(tag, {}), order=by_tag.get(tag))
        for tag in Tag
        if tag in parts or tag in by_tag
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
    """Put each recorded key back at its position (the export's containers are its own, changed in place)."""
    for container, positions in orders.items():
        found, node = (True, out) if not container else _get(out, container)
        if found and isinstance(node, dict) and len(node) > 1:
            keys = list(node)
            ordered = _in_order(keys, positions)
            if ordered != keys:
                items = {key: node[key] for key in ordered}
                node.clear()
                node.update(items)


def _in_order(keys: list[str], positions: dict[str, int]) -> list[str]:
    """Return the keys in their recorded order.

    In a split container every key has a position (a view may hold only some: they sort). Elsewhere only
    the taken-out keys have one: they go back to it, the others keep their order in the free places.
    """
    if all(key in positions for key in keys):
        return sorted(keys, key=positions.__getitem__)
    placed: list[str | None] = [None] * len(keys)
    late: list[str] = []
    for key in sorted((k for k in keys if k in positions), key=positions.__getitem__):
        if positions[key] < len(keys) and placed[positions[key]] is None:
            placed[positions[key]] = key
        else:
            late.append(key)
    rest = iter([k for k in keys if k not in positions] + late)
    return [key if key is not None else next(rest) for key in placed]


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
                _put(out, path, family_spelling(FORMAT, f"{group_name}.{name}", value))
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
