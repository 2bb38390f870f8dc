"""QuerySpec and assets-selector criteria as SQL: filters run in the database, never over loaded rows."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sqlalchemy import ColumnElement, Select, and_, exists, false, func, or_, select, true
from sqlalchemy.sql.elements import KeyedColumnElement

from connector import vocab
from connector.domain import selection
from connector.domain.assets import Criterion
from connector.domain.errors import InvalidInput, Problem
from connector.domain.query import QuerySpec, SortOrder
from connector.store.tables import asset_properties, assets

ASSET_ID_KEYS = selection.ID_KEYS
ASSET_CREATED_KEYS = selection.CREATED_KEYS
normalise_key = selection.normalise_key
scalar_texts = selection.scalar_texts


def _column_condition(column: KeyedColumnElement[Any], criterion: Criterion, path: str) -> ColumnElement[bool]:
    op, right = criterion.operator, criterion.operand_right
    if op == "in":
        items = right if isinstance(right, list) else [right]
        return column.in_([_text(v) for v in items]) if items else false()
    if op in ("like", "ilike"):
        pattern = _text(right)
        escape = selection.LIKE_ESCAPE
        return column.ilike(pattern, escape=escape) if op == "ilike" else column.like(pattern, escape=escape)
    value = _text(right)
    return {
        "=": column == value,
        "!=": column != value,
        "<": column < value,
        "<=": column <= value,
        ">": column > value,
        ">=": column >= value,
        "contains": column == value,
    }[op]


def column_condition(column: KeyedColumnElement[Any], criterion: Criterion, path: str) -> ColumnElement[bool]:
    """Return the SQL condition that a text column satisfies a criterion (=, !=, <, ..., in, like, ilike)."""
    return _column_condition(column, criterion, path)


def _text(value: Any) -> str:
    pairs = scalar_texts(value)
    if len(pairs) != 1:
        raise InvalidInput(
            f"operandRight {value!r} is not a single scalar value", [Problem("not a scalar", None, value)]
        )
    return pairs[0][0]


def _property_condition(criterion: Criterion, path: str, public_only: bool = False) -> ColumnElement[bool]:
    key = normalise_key(criterion.operand_left)
    p = asset_properties
    base = and_(p.c.asset_id == assets.c.id, p.c.key == key)
    if public_only:
        base = and_(base, p.c.private == false())
    op, right = criterion.operator, criterion.operand_right
    is_number = selection.is_number(right)
    if op in ("<", "<=", ">", ">=") and is_number:
        number = float(right)
        cond = {
            "<": p.c.value_num < number,
            "<=": p.c.value_num <= number,
            ">": p.c.value_num > number,
            ">=": p.c.value_num >= number,
        }[op]
        return exists().where(base, cond)
    if op == "=" and is_number:
        return exists().where(base, p.c.value_num == float(right))
    if op == "ilike":
        return exists().where(
            base, func.lower(p.c.value_text).like(func.lower(_text(right)), escape=selection.LIKE_ESCAPE)
        )
    return exists().where(base, _column_condition(p.c.value_text, criterion, path))


def asset_condition(
    criteria: tuple[Criterion, ...] | list[Criterion], path: str = "filterExpression", public_only: bool = False
) -> ColumnElement[bool]:
    """Return the SQL condition that an asset matches every criterion (`public_only`: on its public properties)."""
    conditions: list[ColumnElement[bool]] = []
    for i, criterion in enumerate(criteria):
        where = f"{path}[{i}]"
        left = criterion.operand_left
        if left in ASSET_ID_KEYS:
            conditions.append(_column_condition(assets.c.id, criterion, where))
        elif left in ASSET_CREATED_KEYS:
            conditions.append(_numeric_column(assets.c.created_at, criterion, where))
        else:
            conditions.append(_property_condition(criterion, where, public_only))
    return and_(true(), *conditions)


def _numeric_column(column: KeyedColumnElement[Any], criterion: Criterion, path: str) -> ColumnElement[bool]:
    right = criterion.operand_right
    if criterion.operator == "in":
        items = right if isinstance(right, list) else [right]
        if not all(isinstance(v, int) and not isinstance(v, bool) for v in items):
            raise InvalidInput(
                f"{path}.operandRight must be a list of integers",
                [Problem("not integers", f"{path}.operandRight", right)],
            )
        return column.in_(items)
    if (
        not isinstance(right, int)
        or isinstance(right, bool)
        or criterion.operator not in ("=", "!=", "<", "<=", ">", ">=")
    ):
        raise InvalidInput(
            f"{path}: createdAt is compared with =, !=, <, <=, >, >= or in and an integer (epoch milliseconds)",
            [Problem("createdAt needs an integer", f"{path}.operandRight", right)],
        )
    return {
        "=": column == right,
        "!=": column != right,
        "<": column < right,
        "<=": column <= right,
        ">": column > right,
        ">=": column >= right,
    }[criterion.operator]


def apply_asset_query(statement: Select[Any], spec: QuerySpec) -> Select[Any]:
    """Apply the filter, sort and page of a QuerySpec to a select over assets."""
    statement = statement.where(asset_condition(spec.filter_expression))
    descending = spec.sort_order is SortOrder.DESC
    if spec.sort_field is None or spec.sort_field in ASSET_ID_KEYS:
        order: Any = assets.c.id
    elif spec.sort_field in ASSET_CREATED_KEYS:
        order = assets.c.created_at
    else:
        p = asset_properties
        order = (
            select(func.min(p.c.value_text))
            .where(p.c.asset_id == assets.c.id, p.c.key == normalise_key(spec.sort_field))
            .scalar_subquery()
        )
    order = order.desc() if descending else order.asc()
    secondary = assets.c.id.desc() if descending else assets.c.id.asc()
    return statement.order_by(order, secondary).offset(spec.offset).limit(spec.limit)


def apply_column_query(
    statement: Select[Any],
    spec: QuerySpec,
    columns: Mapping[str, KeyedColumnElement[Any]],
    default_sort: KeyedColumnElement[Any],
    what: str,
) -> Select[Any]:
    """Apply a QuerySpec whose fields map onto plain columns; an unknown field is an input error."""
    conditions: list[ColumnElement[bool]] = []
    for i, criterion in enumerate(spec.filter_expression):
        column = _lookup(columns, criterion.operand_left, f"filterExpression[{i}].operandLeft", what)
        if column.key == "created_at":
            conditions.append(_numeric_column(column, criterion, f"filterExpression[{i}]"))
        else:
            conditions.append(_column_condition(column, criterion, f"filterExpression[{i}]"))
    statement = statement.where(and_(true(), *conditions))
    order = default_sort if spec.sort_field is None else _lookup(columns, spec.sort_field, "sortField", what)
    if spec.sort_order is SortOrder.DESC:
        return statement.order_by(order.desc(), default_sort.desc()).offset(spec.offset).limit(spec.limit)
    return statement.order_by(order.asc(), default_sort.asc()).offset(spec.offset).limit(spec.limit)


def _lookup(
    columns: Mapping[str, KeyedColumnElement[Any]], field: str, path: str, what: str
) -> KeyedColumnElement[Any]:
    name = field.removeprefix(vocab.EDC).removeprefix("edc:")
    if name not in columns:
        raise InvalidInput(
            f"{path}: {what} cannot be filtered or sorted by {field!r}; use one of {', '.join(sorted(columns))}",
            [Problem(f"unsupported field {field!r}", path, field)],
        )
    return columns[name]


def _merge_selectors(
    selectors: list[tuple[Criterion, ...]],
) -> tuple[bool, dict[str, set[str]], set[str], list[tuple[Criterion, ...]]]:
    """Split selectors into: whether one selects everything, merged `=`/`in` text values per key, ids, the rest."""
    merged: dict[str, set[str]] = {}
    ids: set[str] = set()
    rest: list[tuple[Criterion, ...]] = []
    for selector in selectors:
        if not selector:
            return True, {}, set(), []
        first = selector[0]
        mergeable = (
            len(selector) == 1
            and first.operator in ("=", "in")
            and not selection.is_number(first.operand_right)
            and first.operand_left not in ASSET_CREATED_KEYS
        )
        if not mergeable:
            rest.append(selector)
            continue
        items = first.operand_right if isinstance(first.operand_right, list) else [first.operand_right]
        texts = {_text(v) for v in items}
        if first.operand_left in ASSET_ID_KEYS:
            ids |= texts
        else:
            merged.setdefault(normalise_key(first.operand_left), set()).update(texts)
    return False, merged, ids, rest


def any_selector(selectors: list[tuple[Criterion, ...]]) -> ColumnElement[bool]:
    """Return the condition that an asset matches at least one selector (an empty selector matches all).

    Selectors that are a single `=`/`in` on text are merged per key into one IN, so a thousand contract
    definitions that each select one battery model cost one index probe per asset, not a thousand.
    """
    everything, merged, ids, rest = _merge_selectors(selectors)
    if everything:
        return true()
    conditions = [asset_condition(selector) for selector in rest]
    p = asset_properties
    for key, values in merged.items():
        conditions.append(
            exists().where(p.c.asset_id == assets.c.id, p.c.key == key, p.c.value_text.in_(sorted(values)))
        )
    if ids:
        conditions.append(assets.c.id.in_(sorted(ids)))
    return or_(false(), *conditions)


def any_selector_set(selectors: list[tuple[Criterion, ...]]) -> ColumnElement[bool]:
    """Return the same condition as `any_selector`, for reading every matching asset at once.

    The merged `=`/`in` selectors become uncorrelated `id IN (SELECT asset_id ...)` semi-joins: each selected
    value's range of the (key, value) index is read once per statement, never once per asset.
    """
    everything, merged, ids, rest = _merge_selectors(selectors)
    if everything:
        return true()
    conditions = [asset_condition(selector) for selector in rest]
    p = asset_properties
    for key, values in merged.items():
        conditions.append(
            assets.c.id.in_(select(p.c.asset_id).where(p.c.key == key, p.c.value_text.in_(sorted(values))))
        )
    if ids:
        conditions.append(assets.c.id.in_(sorted(ids)))
    return or_(false(), *conditions)
