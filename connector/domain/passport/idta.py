"""IDTA-02035 Digital Battery Passport parts 1-7 (value-only payloads) to and from the node's passport.

A bundle is `{"idta": {"<part>": <payload>, ...}}` with the part names of `PARTS`, plus an optional
`"passport_id"`. Reading (`read_bundle`, `from_idta`) is one path: each part is checked against its schema
with the node's rules (`validation.py`, which also tolerates the published examples' bare language texts,
as warnings), then mapped. Each property the node has a field for is moved into it (`idta_fields.FIELDS`)
and checked by the node's model; a fault is named once, at its IDTA path, with the schema's reason where the
schema sees it and the mapping's (in the model's words) where only the mapping does. What the node has no
field for is kept as extension data under the Annex XIII tag of its path (`idta_fields.TAGS`, else the
part's); a handover document takes the tag of what refers to it. A value the node holds in another shape (a
text with its language, a duration in years, a list sent as one string) also stays where it was, as the
shape to write back while the node's field still says the same. Values spelt differently from the node's
(`re-used`) go through `model.SPELLINGS`, the table the Catena-X mapping uses too.

Export builds each part from the node's fields and the kept data and writes it in its schema's property
order, so a passport from any source exports as IDTA parts, and a bundle imported as IDTA exports as it came.
`render` also lists the node values IDTA cannot express; `exports.export_document` adds the schema's check
and refuses an export that is not complete.
"""

from __future__ import annotations

import copy
import math
import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from functools import cache
from typing import Any

from pydantic import ValidationError

from . import aspects, catenax, validation, views
from .idta_fields import DOCUMENT_REFERENCES, FIELDS, PARTS, TAGS
from .model import (
    GROUPS,
    Passport,
    PassportInvalid,
    Tag,
    check_date,
    check_timestamp,
    family_spelling,
    node_spelling,
    reason,
)

FORMAT = "idta"
Problem = tuple[str, str]
Location = list[str | int]


class NotMapped(Exception):
    """A value of a shape the node's field cannot hold; it is kept, verbatim, as extension data."""


class Unrepresentable(Exception):
    """A node value this format cannot express (the reason is the message)."""


def _kind(value: Any) -> str:
    if isinstance(value, bool):
        return "true or false"
    if value is None:
        return "null"
    return {str: "a string", int: "a number", float: "a number", list: "a list", dict: "an object"}.get(
        type(value), type(value).__name__
    )


# Codecs: read an IDTA value into the node's JSON (NotMapped: keep it; ValueError: refuse it), write it back.


def _number(raw: Any) -> Any:
    if isinstance(raw, bool) or not isinstance(raw, int | float):
        raise ValueError(f"must be a number, not {_kind(raw)}")
    if isinstance(raw, float) and not math.isfinite(raw):
        raise ValueError("must be a finite number")
    return raw


def _integer(raw: Any) -> Any:
    value = _number(raw)
    if isinstance(value, float):
        if not value.is_integer():
            raise ValueError("must be a whole number")
        return int(value)
    return value


def _string(raw: Any) -> Any:
    if not isinstance(raw, str):
        raise ValueError(f"must be a string, not {_kind(raw)}")
    return raw


def _boolean(raw: Any) -> Any:
    if not isinstance(raw, bool):
        raise ValueError(f"must be true or false, not {_kind(raw)}")
    return raw


def _strings(raw: Any) -> Any:
    if isinstance(raw, str):
        return [raw]  # one string where the schema has a list of them: read as that list, kept in its shape
    if isinstance(raw, list) and all(isinstance(item, str) for item in raw):
        return list(raw)
    raise ValueError(f"must be a list of strings, not {_kind(raw)}")


def _text(raw: Any) -> Any:
    """Read a language-tagged text: `[{"en": "..."}]`, or `{"en": "..."}` as the published examples give it.

    The second is the shape validation tolerates (with a warning); the English text is the node's, else the first.
    """
    texts: dict[str, Any] = {}
    if isinstance(raw, dict):
        texts = raw
    elif isinstance(raw, list) and all(isinstance(item, dict) for item in raw):
        for item in raw:
            texts = {**item, **texts}
    else:
        raise ValueError(f"must be a text with its language, not {_kind(raw)}")
    if not texts:
        raise NotMapped
    chosen = texts.get("en", next(iter(texts.values())))
    if not isinstance(chosen, str):
        raise ValueError('must be a text with its language, as {"en": "..."}')
    return chosen


_DAY = re.compile(r"^\d{4}-\d{2}-\d{2}$")


def _date(raw: Any) -> Any:
    value = _string(raw)
    if not _DAY.match(value):
        raise ValueError("must be a date, YYYY-MM-DD")
    return check_date(value)


def _write_date(value: Any) -> Any:
    if not isinstance(value, str) or not _DAY.match(value):
        raise Unrepresentable(f"{value!r} is not a day (the part needs YYYY-MM-DD)")
    return value


def _timestamp(raw: Any) -> Any:
    return check_timestamp(_string(raw))


def _status(raw: Any) -> Any:
    return node_spelling(FORMAT, "condition.status", _string(raw))


def _write_status(value: Any) -> Any:
    return family_spelling(FORMAT, "condition.status", value)


def _category(raw: Any) -> Any:
    return node_spelling(FORMAT, "identity.category", _string(raw))


@cache
def _categories() -> tuple[str, ...]:
    """The battery categories IDTA-02035 names (the technical data's enumeration)."""
    found = aspects.at(schema("technical_data"), ["GeneralInformation", "BatteryCategory"]) or {}
    return tuple(found.get("enum", ()))


def _write_category(value: Any) -> Any:
    # A passport stored before the node spelt categories as IDTA does may hold Catena-X's spelling (`EV`).
    spelt = family_spelling(FORMAT, "identity.category", node_spelling(catenax.FORMAT, "identity.category", value))
    if spelt not in _categories():
        raise Unrepresentable(
            f"the battery category {value!r} has no IDTA-02035 counterpart ({', '.join(_categories())})"
        )
    return spelt


_MONTHS = re.compile(r"^P(?:(\d+)Y)?(?:(\d+)M)?$")


def _months(raw: Any) -> Any:
    """Read a duration (its form is the schema's to check) as whole months; days or hours stay as they came."""
    found = _MONTHS.match(_string(raw))
    if found is None:
        raise NotMapped
    years, months = found.groups()
    return int(years or 0) * 12 + int(months or 0)


def _write_months(value: Any) -> Any:
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if not isinstance(value, int):
        raise Unrepresentable(f"{value!r} months is not a whole number of months")
    return f"P{value}M"


def _same_value(value: Any) -> Any:
    return value


@dataclass(frozen=True, slots=True)
class Codec:
    """How one kind of IDTA value is read into the node's JSON and written back."""

    read: Callable[[Any], Any]
    write: Callable[[Any], Any] = _same_value


CODECS: dict[str, Codec] = {
    "number": Codec(_number),
    "integer": Codec(_integer),
    "string": Codec(_string),
    "boolean": Codec(_boolean),
    "strings": Codec(_strings),
    "text": Codec(_text, lambda value: [{"en": value}]),
    "date": Codec(_date, _write_date),
    "timestamp": Codec(_timestamp),
    "status": Codec(_status, _write_status),
    "category": Codec(_category, _write_category),
    "months": Codec(_months, _write_months),
}


def _same(a: Any, b: Any) -> bool:
    """Equal as JSON values, types included (1, 1.0 and true differ)."""
    if isinstance(a, list | tuple) and isinstance(b, list | tuple):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_same(a[key], b[key]) for key in a)
    return type(a) is type(b) and bool(a == b)


# The field table, read once.

_STEP = re.compile(r"^([^\[\]]+)(?:\[([^\]]*)\])?$")


@dataclass(frozen=True, slots=True)
class Row:
    """One FIELDS entry, parsed: the part's path around at most one list step, and the node's target."""

    part: str
    path: str
    prefix: tuple[str, ...]  # the keys up to the list (the whole path when there is no list)
    step: str | None  # None; "" for each item; "Name=Value" for the item whose Name is Value
    suffix: tuple[str, ...]  # the keys inside each item
    group: str
    field: str
    attribute: str | None  # of each item of a node list; None: the item itself, or a plain field
    measured: str | None  # condition.measured_at.<field>
    codec: Codec
    echo: bool  # a later row for a target an earlier row holds


def _row(part: str, path: str, target: str, codec: str, seen: set[str]) -> Row:
    prefix: list[str] = []
    suffix: list[str] = []
    step: str | None = None
    for segment in path.split("."):
        found = _STEP.match(segment)
        if found is None:
            raise ValueError(f"bad IDTA path {path!r}")
        key, selector = found.groups()
        (suffix if step is not None else prefix).append(key)
        if selector is not None:
            if step is not None:
                raise ValueError(f"one list step per path: {path!r}")
            step = selector
    group, _, rest = target.partition(".")
    field, _, attribute = rest.partition(".")
    measured = None
    if field == "measured_at":
        measured, attribute = attribute, ""
    listed = field.endswith("[]")
    field = field.removesuffix("[]")
    if listed != (step == "") or group not in GROUPS:
        raise ValueError(f"bad node target {target!r} for {path!r}")
    echo = target in seen
    seen.add(target)
    return Row(
        part, path, tuple(prefix), step, tuple(suffix), group, field, attribute or None, measured, CODECS[codec], echo
    )


@cache
def rows() -> tuple[Row, ...]:
    """Return the parsed field table."""
    seen: set[str] = set()
    return tuple(_row(part, path, target, codec, seen) for part, path, target, codec in FIELDS)


def schema(part: str) -> dict[str, Any]:
    """Return the JSON schema of a part (shared: never change it)."""
    return aspects.schema(f"idta.{part}")


def semantic_id(part: str) -> str:
    """Return a part's semantic id, the aspect URN of its schema."""
    return aspects.semantic_id(schema(part))


_URN = re.compile(r"^urn:samm:(?P<namespace>[^:#]+):(?P<major>\d+)\.\d+\.\d+(?:#(?P<element>.+))?$")


def part_of(semantic_id: str) -> str | None:
    """Return the part a semantic id names: its aspect URN, or another 1.x version of it (None if none)."""
    asked = _URN.match(semantic_id)
    if asked is None:
        return None
    for part in PARTS:
        ours = _URN.match(aspects.semantic_id(schema(part)))
        assert ours is not None
        if (asked["namespace"], asked["major"]) == (ours["namespace"], ours["major"]) and asked["element"] in (
            None,
            ours["element"],
        ):
            return part
    return None


# Paths and locations inside a payload.


def _get(node: Any, location: Iterable[str | int]) -> tuple[bool, Any]:
    for key in location:
        if isinstance(key, int):
            if not isinstance(node, list) or key >= len(node):
                return False, None
        elif not isinstance(node, dict) or key not in node:
            return False, None
        node = node[key]
    return True, node


def _pop(root: Any, location: Location) -> None:
    """Remove the value at a location, and the objects that leaves empty (never a list's item, nor the part)."""
    parents = [root]
    for key in location[:-1]:
        parents.append(parents[-1][key])
    del parents[-1][location[-1]]
    for depth in range(len(location) - 1, 0, -1):
        if parents[depth] or isinstance(location[depth - 1], int):
            break
        del parents[depth - 1][location[depth - 1]]


def _put(root: Any, location: Location, value: Any) -> None:
    node = root
    for key in location[:-1]:
        node = node[key] if isinstance(key, int) else node.setdefault(key, {})
    node[location[-1]] = value


def _dotted(location: Iterable[str | int]) -> str:
    out = ""
    for key in location:
        out += f"[{key}]" if isinstance(key, int) else (f".{key}" if out else key)
    return out


def tag_of(part: str, keys: Iterable[str]) -> Tag:
    """Return the Annex XIII tag of a path in a part (most specific entry wins; unknown to the schema: authority)."""
    keys = [key for key in keys if isinstance(key, str)]
    for depth in range(len(keys), 0, -1):
        found = TAGS.get((part, ".".join(keys[:depth])))
        if found is not None:
            return found
    if keys and keys[0] not in aspects.properties(schema(part), schema(part)):
        return Tag.AUTHORITY
    return PARTS[part].tag


def _differs_inside(part: str, keys: tuple[str, ...], tag: Tag) -> bool:
    inside = ".".join(keys) + "."
    return any(name == part and path.startswith(inside) and found is not tag for (name, path), found in TAGS.items())


# Import.


class _Unset:
    pass


_UNSET = _Unset()


def _sites(payload: dict[str, Any], row: Row) -> Iterator[tuple[Location, int | None]]:
    """Yield the locations of a row's values in a payload, with the item index for a list row."""
    if row.step is None:
        yield list(row.prefix), None
        return
    found, items = _get(payload, row.prefix)
    if not found or not isinstance(items, list):
        return
    if row.step == "":
        for index in range(len(items)):
            yield [*row.prefix, index, *row.suffix], index
        return
    name, _, wanted = row.step.partition("=")
    matches = [i for i, item in enumerate(items) if isinstance(item, dict) and item.get(name) == wanted]
    if len(matches) > 1:
        raise ValueError(f"more than one item has {name} {wanted}: items {', '.join(map(str, matches))}")
    if matches:
        yield [*row.prefix, matches[0], *row.suffix], None


def _references(parts: dict[str, Any]) -> dict[str, set[Tag]]:
    """Return, for each handover-document identifier, the tags of the properties that refer to it."""
    out: dict[str, set[Tag]] = {}
    for part, path in DOCUMENT_REFERENCES:
        payload = parts.get(part)
        if not isinstance(payload, dict):
            continue
        head, _, tail = path.partition("[].")
        value = _get(payload, head.split("."))[1]
        if tail:
            items = value if isinstance(value, list) else []
            value = [_get(item, tail.split("."))[1] for item in items]
        else:
            value = [value]
        tag = tag_of(part, path.replace("[]", "").split("."))
        for ids in value:
            for identifier in [ids] if isinstance(ids, str) else ids if isinstance(ids, list) else ():
                if isinstance(identifier, str):
                    out.setdefault(identifier, set()).add(tag)
    return out


def _readers(tag: Tag) -> frozenset[str]:
    return frozenset(level for level, tags in views.READER_TAGS.items() if tag in tags)


def _document_tag(document: Any, references: dict[str, set[Tag]]) -> Tag:
    """The tag whose readers are exactly those who may read something that refers to the document."""
    ids = document.get("DocumentIds") if isinstance(document, dict) else None
    tags: set[Tag] = set()
    for entry in ids if isinstance(ids, list) else ():
        if isinstance(entry, dict) and isinstance(entry.get("DocumentIdentifier"), str):
            tags |= references.get(entry["DocumentIdentifier"], set())
    if not tags:
        return PARTS["handover_documentation"].tag
    needed = frozenset().union(*(_readers(tag) for tag in tags))
    return min((tag for tag in Tag if _readers(tag) >= needed), key=lambda tag: len(_readers(tag)))


def _split(
    part: str, value: dict[str, Any], keys: tuple[str, ...], out: dict[Tag, dict[str, Any]], refs: dict[str, set[Tag]]
) -> None:
    """Put each kept value under its tag: a subtree goes whole unless a path inside it has another tag."""
    for key, item in value.items():
        path = (*keys, key)
        tag = tag_of(part, path)
        if part == "handover_documentation" and path == ("Documents",) and isinstance(item, list):
            for document in item:
                documents = out.setdefault(_document_tag(document, refs), {}).setdefault(part, {})
                documents.setdefault("Documents", []).append(document)
        elif isinstance(item, dict) and item and _differs_inside(part, path, tag):
            _split(part, item, path, out, refs)
        else:
            _put(out.setdefault(tag, {}).setdefault(part, {}), list(path), item)


def _node_key(row: Row, index: int | None) -> tuple[Any, ...]:
    if row.measured is not None:
        return (row.group, "measured_at", row.measured)
    if index is None:
        return (row.group, row.field)
    return (row.group, row.field, index) if row.attribute is None else (row.group, row.field, index, row.attribute)


def _node_get(values: dict[str, dict[str, Any]], row: Row, index: int | None) -> Any:
    group = values.get(row.group, {})
    if row.measured is not None:
        return group.get("measured_at", {}).get(row.measured, _UNSET)
    if index is None:
        return group.get(row.field, _UNSET)
    item = group[row.field][index]
    return item if row.attribute is None else item.get(row.attribute, _UNSET)


def _node_set(values: dict[str, dict[str, Any]], row: Row, index: int | None, value: Any) -> None:
    group = values.setdefault(row.group, {})
    if row.measured is not None:
        group.setdefault("measured_at", {})[row.measured] = value
    elif index is None:
        group[row.field] = value
    elif row.attribute is None:
        group[row.field][index] = value
    else:
        group[row.field][index][row.attribute] = value


def _exact(row: Row, value: Any, raw: Any) -> bool:
    """Tell whether export writes `value` back as exactly `raw`, so `raw` can leave the kept data."""
    if value == []:
        return False  # the node's empty list is no value on export: the empty IDTA list stays where it was
    try:
        return _same(row.codec.write(value), raw)
    except Unrepresentable:
        return False


def _validation_errors(error: ValidationError, origin: dict[tuple[Any, ...], str]) -> list[Problem]:
    out = []
    for item in error.errors(include_url=False):
        loc = tuple(p for p in item["loc"] if not (isinstance(p, str) and p.startswith("function-")))
        for depth in range(len(loc), 0, -1):
            if loc[:depth] in origin:
                path = origin[loc[:depth]] + "".join(f"[{k}]" if isinstance(k, int) else f".{k}" for k in loc[depth:])
                break
        else:
            path = f"(node) {_dotted(loc)}"
        out.append((path, reason(item)))
    return out


def read_bundle(document: dict[str, Any]) -> tuple[Passport, list[Problem]]:
    """Read a bundle `{"passport_id": ..., "idta": {...}}`: each part checked against its schema, then mapped.

    Return the passport and the warnings of the one tolerance (validation.py). Raise PassportInvalid naming
    every fault once, in document order: where the schema with the node's rules sees a fault its reason is
    given (it shows the value); the mapping adds what only it sees (an unknown part, no nameplate or serial
    number, two list items for one material, a rule of the node's model the schema does not carry).
    """
    findings = validation.inspect(FORMAT, document)
    errors = list(findings.errors)
    parts, passport_id = document.get("idta"), document.get("passport_id")
    refused = {path for path, _ in errors}
    passport: Passport | None = None
    if isinstance(parts, dict):
        try:
            passport = _mapped(parts, passport_id if isinstance(passport_id, str) and passport_id else None, refused)
        except PassportInvalid as exc:
            errors += exc.errors
    if errors or passport is None:
        raise PassportInvalid(validation.in_document_order(document, errors))
    return passport, findings.warnings


def from_idta(parts: dict[str, Any], passport_id: str | None = None) -> Passport:
    """Read IDTA-02035 part payloads into the node's passport, as `read_bundle` does (raise PassportInvalid)."""
    document = {"idta": parts} if passport_id is None else {"passport_id": passport_id, "idta": parts}
    return read_bundle(document)[0]


def _covered(where: str, refused: set[str]) -> bool:
    """Tell whether the schema refused the value at a path, or something inside it."""
    return any(path == where or path.startswith((where + ".", where + "[")) for path in refused)


def _mapped(parts: dict[str, Any], passport_id: str | None, refused: set[str]) -> Passport:
    """Map part payloads into the node's passport (raise PassportInvalid naming the faults the mapping sees).

    `refused` are the paths the schema check refused: a value the mapping cannot read there is the same
    fault (a list of strings with a number in it), so it is not named again at its container.
    """
    errors = [(f"idta.{name}", "not an IDTA-02035 part this node knows") for name in parts if name not in PARTS]
    errors += [(f"idta.{name}", "must be a JSON object") for name, v in parts.items() if not isinstance(v, dict)]
    if not isinstance(parts.get("digital_nameplate"), dict):
        errors.append(("idta.digital_nameplate", "required: it carries the battery's identity"))
    if errors:
        raise PassportInvalid(errors)
    remainder: dict[str, Any] = copy.deepcopy(parts)
    values: dict[str, dict[str, Any]] = {}
    origin: dict[tuple[Any, ...], str] = {}
    broken: set[tuple[str, tuple[str, ...]]] = set()  # lists with an item that is not an object
    for row in rows():
        payload = remainder.get(row.part)
        if payload is None or (row.part, row.prefix) in broken:
            continue
        if row.step == "":
            items = _get(payload, row.prefix)[1]
            if not isinstance(items, list):
                continue
            if not all(isinstance(item, dict) for item in items):
                broken.add((row.part, row.prefix))
                errors += [
                    (f"idta.{row.part}.{_dotted([*row.prefix, i])}", f"must be a JSON object, not {_kind(item)}")
                    for i, item in enumerate(items)
                    if not isinstance(item, dict)
                ]
                continue
            if row.field not in values.get(row.group, {}):
                values.setdefault(row.group, {})[row.field] = [{} if row.attribute else _UNSET for _ in items]
        try:
            sites = list(_sites(payload, row))
        except ValueError as exc:
            errors.append((f"idta.{row.part}.{_dotted(row.prefix)}", str(exc)))
            continue
        for location, index in sites:
            where = f"idta.{row.part}.{_dotted(location)}"
            origin.setdefault(_node_key(row, index), where)
            found, raw = _get(payload, location)
            if not found:
                continue
            try:
                value = row.codec.read(raw)
            except NotMapped:
                continue
            except ValueError as exc:
                if not _covered(where, refused):
                    errors.append((where, str(exc)))
                continue
            current = _node_get(values, row, index)
            if current is not _UNSET:
                if _same(current, value) and _exact(row, value, raw):
                    _pop(payload, location)
                continue  # the same field from another place: kept there if it says something else
            _node_set(values, row, index, value)
            if _exact(row, value, raw):
                _pop(payload, location)
    for row in rows():
        payload = remainder.get(row.part)
        found, listed = _get(payload, row.prefix) if row.step == "" else (False, None)
        if found and isinstance(listed, list) and listed and all(item == {} for item in listed):
            _pop(payload, list(row.prefix))  # every value of every item moved: export builds the list again
        items = values.get(row.group, {}).get(row.field)
        if row.step == "" and row.attribute is None and isinstance(items, list) and _UNSET in items:
            for index in (i for i, item in enumerate(items) if item is _UNSET):
                where = f"idta.{row.part}.{_dotted([*row.prefix, index, *row.suffix])}"
                if not any(path.startswith(where.rsplit(".", len(row.suffix))[0]) for path, _ in errors):
                    errors.append((where, "required: the node lists these by it"))
            del values[row.group][row.field]
    identity = values.setdefault("identity", {})
    if "battery_id" not in identity:
        errors.append(("idta.digital_nameplate.SerialNumber", "required: the battery's identifier"))
        identity["battery_id"] = "-"
    if passport_id is not None:
        origin[("identity", "passport_id")] = "passport_id"
    identity["passport_id"] = passport_id or identity.get("product_uri") or identity["battery_id"]
    _derive_critical_raw_materials(values)
    data = {**values, "source_format": FORMAT, "extensions": _extensions(remainder, parts)}
    try:
        passport = Passport.model_validate(data)
    except ValidationError as exc:
        errors += _validation_errors(exc, origin)
    if errors:
        raise PassportInvalid(errors)
    return passport


def _derive_critical_raw_materials(values: dict[str, dict[str, Any]]) -> None:
    """Name the critical raw materials in public (Annex XIII 1(b)); IDTA flags them in the detailed composition only."""
    composition = values.get("dismantling", {}).get("detailed_composition") or []
    names = [item["name"] for item in composition if item.get("critical") is True and isinstance(item.get("name"), str)]
    if names and "critical_raw_materials" not in values.get("materials", {}):
        values.setdefault("materials", {})["critical_raw_materials"] = list(dict.fromkeys(names))


def _extensions(remainder: dict[str, Any], parts: dict[str, Any]) -> list[dict[str, Any]]:
    refs = _references(parts)
    split: dict[Tag, dict[str, Any]] = {}
    for name, payload in remainder.items():
        _split(name, payload, (), split, refs)
        if not any(name in data for data in split.values()):
            split.setdefault(PARTS[name].tag, {})[name] = {}  # every value moved: remember the part was there
    return [{"format": FORMAT, "tag": tag.value, "data": split[tag]} for tag in Tag if tag in split]


# Export.


def _merge(into: dict[str, Any], data: dict[str, Any]) -> None:
    for key, value in data.items():
        if isinstance(value, dict) and isinstance(into.get(key), dict):
            _merge(into[key], value)
        elif isinstance(value, list) and isinstance(into.get(key), list):
            into[key].extend(value)  # handover documents kept under several tags
        else:
            into[key] = value


def _kept(passport: Passport) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    for extension in passport.extensions:
        if extension.format == FORMAT:
            for name, payload in extension.data.items():
                if isinstance(payload, dict):
                    _merge(out.setdefault(name, {}), copy.deepcopy(payload))
    return out


def _node(passport: Passport) -> dict[str, dict[str, Any]]:
    out = {}
    for name in GROUPS:
        group = getattr(passport, name)
        if group is not None:
            out[name] = group.model_dump(mode="json", exclude_none=True)
    # The converse of _derive_critical_raw_materials: a material of the detailed composition is flagged
    # critical when the node names it among the critical raw materials.
    critical = {str(name).lower() for name in out.get("materials", {}).get("critical_raw_materials", ())}
    for item in out.get("dismantling", {}).get("detailed_composition", ()):
        if "critical" not in item and critical:
            item["critical"] = item["name"].lower() in critical
    return out


def _write(container: Any, location: Location, value: Any, row: Row, where: str, problems: list[Problem]) -> None:
    """Write a node value at a location, unless what is there already says the same (or is another place's own)."""
    if value is None or value == [] or not isinstance(container, dict | list):
        return  # an empty node list is no value; an empty IDTA list stays as it came (see _exact)
    found, kept = _get(container, location)
    if found:
        if row.echo:
            return
        try:
            if _same(row.codec.read(kept), value):
                return
        except (NotMapped, ValueError):
            pass
    try:
        raw = row.codec.write(value)
    except Unrepresentable as exc:
        problems.append((where, str(exc)))
        return
    _put(container, location, raw)


def _write_row(out: dict[str, Any], row: Row, node: dict[str, dict[str, Any]], problems: list[Problem]) -> None:
    group = node.get(row.group)
    if group is None:
        return
    base = f"idta.{row.part}."
    if row.measured is not None:
        value = group.get("measured_at", {}).get(row.measured)
        if value is None and group.get("last_update") is not None and _get(out, row.prefix[:-1])[0]:
            value = group["last_update"]  # a value measured at the time the condition was last updated
        _write(out, list(row.prefix), value, row, base + _dotted(row.prefix), problems)
        return
    if row.step is None:
        _write(out, list(row.prefix), group.get(row.field), row, base + _dotted(row.prefix), problems)
        return
    items = group.get(row.field) if row.step == "" else [group.get(row.field)]
    if not items or items == [None]:
        return
    found, listed = _get(out, row.prefix)
    if not found:
        _put(out, list(row.prefix), [])
        listed = _get(out, row.prefix)[1]
    if not isinstance(listed, list):
        return  # kept as it came, in a shape the node does not read
    if row.step == "":
        while len(listed) < len(items):
            listed.append({})
        for index, item in enumerate(items):
            value = item if row.attribute is None else item.get(row.attribute)
            _write(
                listed[index], list(row.suffix), value, row, base + _dotted([*row.prefix, index, *row.suffix]), problems
            )
        return
    name, _, wanted = row.step.partition("=")
    matches = [i for i, item in enumerate(listed) if isinstance(item, dict) and item.get(name) == wanted]
    if not matches:
        listed.append({name: wanted})
        matches = [len(listed) - 1]
    location: Location = [*row.prefix, matches[0], *row.suffix]
    _write(listed[matches[0]], list(row.suffix), items[0], row, base + _dotted(location), problems)


def _trim(out: dict[str, Any], part: str, node: dict[str, dict[str, Any]]) -> None:
    """Drop empty items past the end of a node list (items the node no longer has)."""
    for row in rows():
        if row.part == part and row.step == "":
            found, listed = _get(out, row.prefix)
            count = len(node.get(row.group, {}).get(row.field) or ())
            if found and isinstance(listed, list):
                listed[count:] = [item for item in listed[count:] if item != {}]


def _render_part(
    part: str, kept: dict[str, dict[str, Any]], node: dict[str, dict[str, Any]], problems: list[Problem]
) -> dict[str, Any] | None:
    base = kept.get(part)
    out: dict[str, Any] = base if base is not None else {}
    own = [row for row in rows() if row.part == part]
    for row in own:
        if not row.echo:
            _write_row(out, row, node, problems)
    if base is None and not out:
        return None
    for row in own:
        if row.echo:
            _write_row(out, row, node, problems)
    _trim(out, part, node)
    ordered: dict[str, Any] = aspects.ordered(schema(part), out)
    return ordered


def _numbered() -> list[str]:
    return sorted(PARTS, key=lambda name: PARTS[name].number)


def render(passport: Passport) -> tuple[dict[str, dict[str, Any]], list[Problem]]:
    """Return the IDTA parts of a passport and the node values IDTA cannot express (the schema check is exports')."""
    kept, node = _kept(passport), _node(passport)
    parts: dict[str, dict[str, Any]] = {}
    problems: list[Problem] = []
    for name in _numbered():
        out = _render_part(name, kept, node, problems)
        if out is not None:
            parts[name] = out
    if "digital_nameplate" not in parts:
        problems.append(("idta.digital_nameplate", "required: the node's passport has no nameplate values"))
    return parts, problems


def to_idta(passport: Passport) -> dict[str, dict[str, Any]]:
    """Return the IDTA parts of a passport (of a view, when given a view's passport), leaving out parts without data."""
    return render(passport)[0]


def to_idta_part(passport: Passport, part: str) -> dict[str, Any]:
    """Return one IDTA part of a passport ({} when the passport holds nothing of it)."""
    if part not in PARTS:
        raise ValueError(f"not an IDTA-02035 part: {part!r}; the parts are {', '.join(_numbered())}")
    return _render_part(part, _kept(passport), _node(passport), []) or {}


def view_idta(passport: Passport, granted: Iterable[str]) -> dict[str, dict[str, Any]]:
    """Return the IDTA parts a reader with these levels may see (parts and properties of other tags left out)."""
    return to_idta(catenax.drop(passport, views.tags_for(granted)))


def view_idta_part(passport: Passport, part: str, granted: Iterable[str]) -> dict[str, Any]:
    """Return what a reader with these levels may see of one part ({} when nothing)."""
    return to_idta_part(catenax.drop(passport, views.tags_for(granted)), part)


def is_idta(document: dict[str, Any]) -> bool:
    """Tell an IDTA parts bundle."""
    return isinstance(document.get("idta"), dict)
