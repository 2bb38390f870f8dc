"""Operators and typed values: unit tests plus hypothesis properties."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from policies import LiteralValue, Ref
from policies.operators import SCALAR, SET, as_set, eq, gt, gteq, is_a, lt, lteq, neq
from policies.values import DateInterval, parse_date, parse_datetime, parse_duration, typed
from policies.vocab import XSD

NOW = datetime(2025, 6, 1, 12, 0, tzinfo=UTC)
numbers = st.one_of(
    st.integers(-(10**12), 10**12),
    st.floats(allow_nan=False, allow_infinity=False, width=64),
    st.decimals(allow_nan=False, allow_infinity=False, places=3),
)
aware = st.datetimes(timezones=st.just(UTC))


@given(numbers, numbers)
def test_number_ordering_matches_python(a: object, b: object) -> None:
    assert lt(a, b) is (a < b)  # type: ignore[operator]
    assert lteq(a, b) is (a <= b)  # type: ignore[operator]
    assert gt(a, b) is (a > b)  # type: ignore[operator]
    assert gteq(a, b) is (a >= b)  # type: ignore[operator]
    assert eq(a, b) is (a == b)
    assert neq(a, b) is (a != b)


@given(aware, aware)
def test_datetime_ordering(a: datetime, b: datetime) -> None:
    assert lt(a, b) is (a < b)
    assert gteq(a, b) is (a >= b)
    assert eq(a, b) is (a == b)


@given(st.text(max_size=5), st.text(max_size=5))
def test_strings_equality_only(a: str, b: str) -> None:
    assert eq(a, b) is (a == b)
    assert neq(a, b) is (a != b)
    assert isinstance(lt(a, b), str)  # ordering strings is refused, not guessed


@given(
    st.frozensets(st.sampled_from("abcdef")),
    st.frozensets(st.sampled_from("abcdef"), min_size=1),
)
def test_set_operators_match_set_algebra(left: frozenset[str], right: frozenset[str]) -> None:
    assert SET["isAnyOf"](as_set(left), right) is bool(left & right)
    assert SET["isNoneOf"](as_set(left), right) is (not left & right)
    assert SET["isAllOf"](as_set(left), right) is right.issubset(left)
    assert SET["hasPart"](as_set(left), right) is right.issubset(left)
    assert SET["isPartOf"](as_set(left), right) is left.issubset(right)


def test_scalar_left_in_set_operators() -> None:
    assert SET["isAnyOf"](as_set("a"), frozenset({"a", "b"}))
    assert not SET["isAnyOf"](as_set("c"), frozenset({"a", "b"}))
    assert SET["isPartOf"](as_set("a"), frozenset({"a", "b"}))
    assert not SET["isAllOf"](as_set("a"), frozenset({"a", "b"}))
    assert SET["isNoneOf"](as_set("c"), frozenset({"a", "b"}))


def test_is_a() -> None:
    assert is_a(frozenset({"repairer", "recycler"}), "recycler") is True
    assert is_a(frozenset({"repairer"}), "recycler") is False
    assert is_a("x", "x") is True


@pytest.mark.parametrize("op", ["eq", "neq", "lt", "lteq", "gt", "gteq"])
def test_type_mismatch_is_an_error_string_not_a_verdict(op: str) -> None:
    res = SCALAR[op](5, "5")
    assert isinstance(res, str) and "mismatch" in res
    res = SCALAR[op](NOW, 5)
    assert isinstance(res, str)


def test_multi_valued_left_with_scalar_operator_is_an_error() -> None:
    res = eq(frozenset({"a"}), "a")
    assert isinstance(res, str) and "multi-valued" in res


def test_date_is_an_interval() -> None:
    day = parse_date("2018-01-01")
    assert lt(datetime(2017, 12, 31, 23, 59, tzinfo=UTC), day) is True
    assert lt(datetime(2018, 1, 1, 0, 0, tzinfo=UTC), day) is False
    assert eq(datetime(2018, 1, 1, 13, 0, tzinfo=UTC), day) is True
    assert lteq(datetime(2018, 1, 1, 23, 59, tzinfo=UTC), day) is True
    assert gt(datetime(2018, 1, 1, 23, 59, tzinfo=UTC), day) is False
    assert gt(datetime(2018, 1, 2, 0, 0, tzinfo=UTC), day) is True
    assert gteq(datetime(2018, 1, 1, 0, 0, tzinfo=UTC), day) is True
    plus2 = parse_date("2018-01-01+02:00")
    assert plus2.start == datetime(2017, 12, 31, 22, 0, tzinfo=UTC)
    assert lt(parse_date("2018-01-01"), parse_date("2018-01-02")) is True


def test_time_zones_compare_as_instants() -> None:
    a = datetime(2025, 1, 1, 12, 0, tzinfo=timezone(timedelta(hours=2)))
    b = datetime(2025, 1, 1, 10, 0, tzinfo=UTC)
    assert eq(a, b) is True
    assert parse_datetime("2025-01-01T12:00:00") == datetime(2025, 1, 1, 12, 0, tzinfo=UTC)  # naive -> UTC
    assert parse_datetime("2023-12-31T06:00Z") == datetime(2023, 12, 31, 6, 0, tzinfo=UTC)


def test_durations() -> None:
    assert parse_duration("P30D") == timedelta(days=30)
    assert parse_duration("PT1H30M") == timedelta(hours=1, minutes=30)
    assert parse_duration("P1W") == timedelta(weeks=1)
    assert parse_duration("-PT5S") == -timedelta(seconds=5)
    for bad in ("P1Y", "P2M", "P", "PT", "30D", "P1DT"):
        with pytest.raises(ValueError):
            parse_duration(bad)
    assert lt(timedelta(days=29), parse_duration("P30D")) is True


@pytest.mark.parametrize(
    ("value", "hint", "expected"),
    [
        (LiteralValue("5", XSD + "integer"), None, 5),
        (LiteralValue("5.50", XSD + "decimal"), None, Decimal("5.50")),
        (LiteralValue("2.5", XSD + "double"), None, 2.5),
        (LiteralValue("true", XSD + "boolean"), None, True),
        (LiteralValue("0", XSD + "boolean"), None, False),
        (LiteralValue("x", XSD + "string"), None, "x"),
        (LiteralValue("2025-01-01T00:00:00Z", XSD + "dateTime"), None, datetime(2025, 1, 1, tzinfo=UTC)),
        (LiteralValue("2025-01-01T00:00:00Z", XSD + "datetime"), None, datetime(2025, 1, 1, tzinfo=UTC)),
        (LiteralValue("P1D", XSD + "duration"), None, timedelta(days=1)),
        (LiteralValue("2025-01-01T00:00:00Z"), "dateTime", datetime(2025, 1, 1, tzinfo=UTC)),
        (LiteralValue("7"), "number", 7),
        (LiteralValue("7.5"), "number", Decimal("7.5")),
        (LiteralValue("P2D"), "duration", timedelta(days=2)),
        (LiteralValue("x"), "string", "x"),
        (LiteralValue(3), None, 3),
        (Ref("http://x/y"), None, "http://x/y"),
    ],
)
def test_typed_values(value: LiteralValue | Ref, hint: str | None, expected: object) -> None:
    got = typed(value, hint)
    assert got == expected and type(got) is type(expected)


@pytest.mark.parametrize(
    ("value", "hint"),
    [
        (LiteralValue("x", XSD + "integer"), None),
        (LiteralValue("x", XSD + "dateTime"), None),
        (LiteralValue("2025-13-01", XSD + "date"), None),
        (LiteralValue("maybe", XSD + "boolean"), None),
        (LiteralValue("1", "http://example.com/myType"), None),
        (LiteralValue("1", XSD + "hexBinary"), None),
        (LiteralValue("soon"), "dateTime"),
        (LiteralValue("NaN"), "number"),
        (LiteralValue(float("nan")), None),
    ],
)
def test_invalid_values_raise(value: LiteralValue, hint: str | None) -> None:
    with pytest.raises(ValueError):
        typed(value, hint)


def test_date_interval_str() -> None:
    d = parse_date("2024-02-29")
    assert isinstance(d, DateInterval) and str(d) == "2024-02-29"
    assert d.end - d.start == timedelta(days=1)
