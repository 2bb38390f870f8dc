"""The twelve ODRL 2.2 operators over typed values.

Each function takes the resolved left value and the compiled right value and returns ``True``/``False``, or
a string explaining why the values cannot be compared (type mismatch, multi-valued left operand). A string
result is never read as satisfied: the engine treats it as an evaluation error (deny for permissions).

Set semantics (documented in docs/policies.md): the left value is a set (a scalar counts as a one-element
set) and the right operand is the set of its values.

* ``isAnyOf``: the sets intersect. ``isNoneOf``: they do not.
* ``isAllOf`` and ``hasPart``: every right value is among the left values.
* ``isPartOf``: every left value is among the right values.
* ``isA``: the left value equals the right value, or (multi-valued left) contains it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Final

from .values import BOOL, DATE, DT, DUR, KIND_OF, NUM, STR, DateInterval, describe

Result = bool | str
ScalarOp = Callable[[object, object], Result]
SetOp = Callable[[frozenset[object], frozenset[object]], bool]

COLLECTIONS: Final = (frozenset, set, list, tuple)
_EQ_KINDS: Final = frozenset({STR, BOOL, NUM, DT, DUR})


def _mismatch(left: object, lk: str | None, right: object, rk: str | None) -> str:
    if type(left) in COLLECTIONS:
        return "left operand is multi-valued: use isAnyOf, isAllOf, isNoneOf, hasPart or isPartOf"
    return f"type mismatch: {lk or type(left).__name__} {describe(left)!r} vs {rk or type(right).__name__}"


def order(left: object, right: object) -> int | str:
    """Compare two values: -1, 0 or 1, or a reason string when they are not comparable."""
    lk = KIND_OF.get(type(left))
    rk = KIND_OF.get(type(right))
    if lk == rk:
        if lk == DATE:
            assert isinstance(left, DateInterval) and isinstance(right, DateInterval)
            a, b = left.day, right.day
            return -1 if a < b else (1 if a > b else 0)
        if lk in (NUM, DT, DUR):
            try:
                return -1 if left < right else (1 if left > right else 0)  # type: ignore[operator]
            except TypeError as exc:
                return f"values are not comparable: {exc}"
        return f"ordering is not defined for {lk or type(left).__name__} values"
    if lk == DT and rk == DATE:
        assert isinstance(right, DateInterval)
        return -1 if left < right.start else (0 if left < right.end else 1)  # type: ignore[operator]
    return _mismatch(left, lk, right, rk)


def eq(left: object, right: object) -> Result:
    """ODRL ``eq``."""
    lk = KIND_OF.get(type(left))
    rk = KIND_OF.get(type(right))
    if lk == rk and lk in _EQ_KINDS:
        if lk == DT:
            try:
                return bool(left == right)
            except TypeError as exc:
                return f"values are not comparable: {exc}"
        return bool(left == right)
    if rk == DATE and lk in (DT, DATE):
        o = order(left, right)
        return o if isinstance(o, str) else o == 0
    return _mismatch(left, lk, right, rk)


def neq(left: object, right: object) -> Result:
    """ODRL ``neq`` (a type mismatch stays an error, never 'not equal')."""
    r = eq(left, right)
    return r if isinstance(r, str) else not r


def _ordered(test: Callable[[int], bool]) -> ScalarOp:
    def op(left: object, right: object) -> Result:
        o = order(left, right)
        return o if isinstance(o, str) else test(o)

    return op


lt: Final = _ordered(lambda o: o < 0)
lteq: Final = _ordered(lambda o: o <= 0)
gt: Final = _ordered(lambda o: o > 0)
gteq: Final = _ordered(lambda o: o >= 0)


def is_a(left: object, right: object) -> Result:
    """ODRL ``isA``: equality, or membership when the left operand is multi-valued."""
    if type(left) in COLLECTIONS:
        return right in left  # type: ignore[operator]
    return eq(left, right)


SCALAR: Final[dict[str, ScalarOp]] = {
    "eq": eq,
    "neq": neq,
    "lt": lt,
    "lteq": lteq,
    "gt": gt,
    "gteq": gteq,
    "isA": is_a,
}

SET: Final[dict[str, SetOp]] = {
    "isAnyOf": lambda left, right: not left.isdisjoint(right),
    "isNoneOf": lambda left, right: left.isdisjoint(right),
    "isAllOf": lambda left, right: right <= left,
    "hasPart": lambda left, right: right <= left,
    "isPartOf": lambda left, right: left <= right,
}


def as_set(left: object) -> frozenset[object]:
    """View a left value as a set of values."""
    t = type(left)
    if t is frozenset:
        return left  # type: ignore[return-value]
    if t in COLLECTIONS:
        return frozenset(left)  # type: ignore[call-overload,no-any-return]
    return frozenset((left,))
