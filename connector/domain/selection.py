"""Which assets a criterion selects: the one definition the SQL store and in-memory checks both follow.

Property keys are full IRIs; a key written as a bare term means the EDC namespace. A property's values are
its scalar texts (a list gives one per element); a criterion holds when any of them satisfies it.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from typing import Any

from connector import vocab
from connector.domain.assets import Asset, Criterion

ID_KEYS = frozenset({"id", "@id", vocab.EDC + "id", "edc:id"})
CREATED_KEYS = frozenset({"createdAt", vocab.EDC + "createdAt", "edc:createdAt"})

_PREFIXES = (
    ("edc:", vocab.EDC),
    ("odrl:", vocab.ODRL),
    ("dct:", vocab.DCT),
    ("dcat:", vocab.DCAT),
    ("bpc:", vocab.BPC),
)


def normalise_key(key: str) -> str:
    """Expand a property key as written by a client (bare EDC term, known prefix, or full IRI)."""
    for prefix, namespace in _PREFIXES:
        if key.startswith(prefix):
            return namespace + key[len(prefix) :]
    if "://" in key or key.startswith("urn:"):
        return key
    return vocab.EDC + key


# What may follow a property key in EDC's path syntax: the property's node id or literal value, which are the
# texts a property is matched by.
_VALUE_PATHS = ("@id", "@value")


def property_path(left: str) -> str:
    """Return the property key an operandLeft names, reading EDC's quoted path syntax (`'<key>'.'@id'`).

    A dot outside quotes separates path segments, as in EDC; a left operand without quotes is one key, so
    `https://w3id.org/edc/v0.0.1/ns/id` keeps its dots. Only `@id` or `@value` may follow the key (what this node
    matches a property by); anything deeper raises ValueError naming it.
    """
    if "'" not in left:
        return left
    parts: list[str] = []
    current: list[str] = []
    quoted = False
    for ch in left:
        if ch == "'":
            quoted = not quoted
        elif ch == "." and not quoted:
            parts.append("".join(current))
            current = []
        else:
            current.append(ch)
    parts.append("".join(current))
    if quoted:
        raise ValueError(f"operandLeft {left!r} has an unclosed quote")
    key, *rest = parts
    if not key or len(rest) > 1 or (rest and rest[0] not in _VALUE_PATHS):
        raise ValueError(
            f"operandLeft {left!r}: this node matches a property by its value or its '@id' "
            f"('<key>' or '<key>'.'@id'), not by the path {'.'.join(repr(p) for p in rest) or repr(key)}"
        )
    return key


def scalar_texts(value: Any) -> list[tuple[str, float | None]]:
    """Return the indexable (text, number) pairs of a property value; lists give one pair per element."""
    if isinstance(value, list):
        return [pair for item in value for pair in scalar_texts(item)]
    if isinstance(value, bool):
        return [("true" if value else "false", None)]
    if isinstance(value, int | float):
        return [(json.dumps(value), float(value))]
    if isinstance(value, str):
        return [(value, _number_or_none(value))]
    if isinstance(value, Mapping):
        if set(value) == {"@id"} and isinstance(value["@id"], str):
            return [(value["@id"], None)]
        if "@value" in value and not isinstance(value["@value"], dict | list):
            return scalar_texts(value["@value"])
    return []


def _number_or_none(text: str) -> float | None:
    try:
        number = float(text)
    except ValueError:
        return None
    return number if number == number and abs(number) != float("inf") else None


def single_text(value: Any) -> str:
    """Return the one scalar text of a right operand; raise ValueError when it has none or several."""
    pairs = scalar_texts(value)
    if len(pairs) != 1:
        raise ValueError(f"operandRight {value!r} is not a single scalar value")
    return pairs[0][0]


def is_number(value: Any) -> bool:
    """Tell whether a right operand is compared as a number."""
    return isinstance(value, int | float) and not isinstance(value, bool)


LIKE_ESCAPE = "\\"


def like_pattern(pattern: str) -> re.Pattern[str]:
    """Translate an SQL LIKE pattern (% any run, _ one character, backslash escapes the next) to a regex."""
    parts: list[str] = []
    chars = iter(pattern)
    for ch in chars:
        if ch == LIKE_ESCAPE:
            parts.append(re.escape(next(chars, LIKE_ESCAPE)))
        elif ch == "%":
            parts.append(".*")
        elif ch == "_":
            parts.append(".")
        else:
            parts.append(re.escape(ch))
    return re.compile("^" + "".join(parts) + "$", re.DOTALL)


def _compare(op: str, left: Any, right: Any) -> bool:
    if op == "=":
        return bool(left == right)
    if op == "!=":
        return bool(left != right)
    if op == "<":
        return bool(left < right)
    if op == "<=":
        return bool(left <= right)
    if op == ">":
        return bool(left > right)
    return bool(left >= right)


def _text_holds(criterion: Criterion, text: str) -> bool:
    op, right = criterion.operator, criterion.operand_right
    if op == "in":
        items = right if isinstance(right, list) else [right]
        return text in {single_text(v) for v in items}
    if op == "like":
        return like_pattern(single_text(right)).match(text) is not None
    if op == "ilike":
        return like_pattern(single_text(right).lower()).match(text.lower()) is not None
    if op == "contains":
        return text == single_text(right)
    return _compare(op, text, single_text(right))


def holds(asset: Asset, criterion: Criterion) -> bool:
    """Tell whether one criterion holds for an asset."""
    left, op, right = criterion.operand_left, criterion.operator, criterion.operand_right
    if left in ID_KEYS:
        return _text_holds(criterion, asset.id)
    if left in CREATED_KEYS:
        if op == "in":
            return asset.created_at in (right if isinstance(right, list) else [right])
        return _compare(op, asset.created_at, right)
    key = normalise_key(left)
    values: list[tuple[str, float | None]] = []
    for props in (asset.properties, asset.private_properties):
        if key in props:
            values.extend(scalar_texts(props[key]))
    if is_number(right) and op in ("=", "<", "<=", ">", ">="):
        return any(number is not None and _compare(op, number, float(right)) for _, number in values)
    return any(_text_holds(criterion, text) for text, _ in values)


def holds_in(object_id: str, properties: Mapping[str, Any], criterion: Criterion) -> bool:
    """Tell whether a criterion on an id or a property holds for a node of expanded JSON-LD (keys are IRIs)."""
    left, op, right = criterion.operand_left, criterion.operator, criterion.operand_right
    if left in ID_KEYS:
        return _text_holds(criterion, object_id)
    values = scalar_texts(properties.get(normalise_key(left), []))
    if is_number(right) and op in ("=", "<", "<=", ">", ">="):
        return any(number is not None and _compare(op, number, float(right)) for _, number in values)
    return any(_text_holds(criterion, text) for text, _ in values)


def matches(asset: Asset, criteria: Iterable[Criterion]) -> bool:
    """Tell whether every criterion holds for an asset (no criteria: every asset matches)."""
    return all(holds(asset, c) for c in criteria)
