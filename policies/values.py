"""Typed values: XSD literal parsing and the value kinds the operators compare.

Design choices (documented in docs/policies.md):

* IRIs and strings compare by their string form, because compacted policies routinely carry IRIs as plain
  strings (``"rightOperand": "BPNL000..."``) and the requester's values come from claims as strings.
* A dateTime without a time zone is read as UTC. ``xsd:date`` is an interval (the whole day, UTC unless the
  lexical form carries a zone), so ``dateTime lt 2018-01-01`` means "before that day starts".
* ``xsd:duration`` with years or months is refused: they have no fixed length, so comparing them with an
  elapsed time would need a calendar anchor the engine does not guess.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta, timezone
from decimal import Decimal, InvalidOperation
from typing import Final

from .model import Ref, Value
from .vocab import XSD

NUM: Final = "number"
BOOL: Final = "boolean"
STR: Final = "string"
DT: Final = "dateTime"
DATE: Final = "date"
DUR: Final = "duration"
ORDERED_KINDS: Final = frozenset({NUM, DT, DATE, DUR})


@dataclass(frozen=True, slots=True)
class DateInterval:
    """An ``xsd:date``: the half-open interval ``[start, end)`` of one day."""

    day: date
    start: datetime
    end: datetime

    def __str__(self) -> str:
        return self.day.isoformat()


KIND_OF: Final[Mapping[type, str]] = {
    int: NUM,
    float: NUM,
    Decimal: NUM,
    bool: BOOL,
    str: STR,
    datetime: DT,
    DateInterval: DATE,
    timedelta: DUR,
}

_INT_TYPES: Final = frozenset(
    {
        "integer",
        "int",
        "long",
        "short",
        "byte",
        "nonnegativeinteger",
        "positiveinteger",
        "nonpositiveinteger",
        "negativeinteger",
        "unsignedlong",
        "unsignedint",
        "unsignedshort",
        "unsignedbyte",
    }
)
_STR_TYPES: Final = frozenset({"string", "anyuri", "normalizedstring", "token", "language", "nmtoken", "name"})

_DURATION_RE: Final = re.compile(
    r"^(?P<sign>-)?P(?:(?P<y>\d+)Y)?(?:(?P<mo>\d+)M)?(?:(?P<w>\d+)W)?(?:(?P<d>\d+)D)?"
    r"(?:T(?:(?P<h>\d+)H)?(?:(?P<mi>\d+)M)?(?:(?P<s>\d+(?:\.\d+)?)S)?)?$"
)
_DATE_RE: Final = re.compile(r"^(-?\d{4,})-(\d{2})-(\d{2})(Z|[+-]\d{2}:\d{2})?$")


def parse_datetime(text: str) -> datetime:
    """Parse an ``xsd:dateTime``; a value without a zone is taken as UTC."""
    s = text.strip()
    if "T" not in s:
        raise ValueError(f"{text!r} is not an xsd:dateTime (no 'T')")
    try:
        value = datetime.fromisoformat(s)
    except ValueError:
        raise ValueError(f"{text!r} is not a valid xsd:dateTime") from None
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value


def parse_date(text: str) -> DateInterval:
    """Parse an ``xsd:date`` into the interval of that day."""
    m = _DATE_RE.match(text.strip())
    if m is None:
        raise ValueError(f"{text!r} is not a valid xsd:date")
    try:
        day = date(int(m.group(1)), int(m.group(2)), int(m.group(3)))
    except ValueError:
        raise ValueError(f"{text!r} is not a valid xsd:date") from None
    tz_text = m.group(4)
    tz: timezone = UTC
    if tz_text and tz_text != "Z":
        sign = -1 if tz_text[0] == "-" else 1
        tz = timezone(sign * timedelta(hours=int(tz_text[1:3]), minutes=int(tz_text[4:6])))
    start = datetime.combine(day, time(0), tz)
    return DateInterval(day, start, start + timedelta(days=1))


def parse_duration(text: str) -> timedelta:
    """Parse an ``xsd:duration`` made of weeks, days, hours, minutes and seconds."""
    m = _DURATION_RE.match(text.strip())
    if m is None or text.strip() in ("P", "-P") or text.strip().endswith("T"):
        raise ValueError(f"{text!r} is not a valid xsd:duration")
    if m.group("y") or m.group("mo"):
        raise ValueError(f"{text!r}: durations with years or months have no fixed length; use days (e.g. P30D)")
    delta = timedelta(
        weeks=int(m.group("w") or 0),
        days=int(m.group("d") or 0),
        hours=int(m.group("h") or 0),
        minutes=int(m.group("mi") or 0),
        seconds=float(m.group("s") or 0),
    )
    return -delta if m.group("sign") else delta


def format_duration(delta: timedelta) -> str:
    """Format a timedelta as an ``xsd:duration`` (days and seconds)."""
    sign = "-" if delta < timedelta(0) else ""
    delta = abs(delta)
    secs = delta.seconds + delta.microseconds / 1_000_000
    out = f"{sign}P{delta.days}D" if delta.days else f"{sign}P"
    if secs or not delta.days:
        out += f"T{secs:g}S"
    return out


def _number(text: str) -> int | Decimal:
    s = text.strip()
    try:
        return int(s)
    except ValueError:
        pass
    try:
        d = Decimal(s)
    except InvalidOperation:
        raise ValueError(f"{text!r} is not a number") from None
    if not d.is_finite():
        raise ValueError(f"{text!r} is not a finite number")
    return d


def _from_string(text: str, hint: str | None) -> object:
    if hint == DT:
        try:
            return parse_datetime(text) if "T" in text else parse_date(text)
        except ValueError:
            raise ValueError(f"{text!r} is not a valid xsd:dateTime or xsd:date") from None
    if hint == DUR:
        return parse_duration(text)
    if hint == NUM:
        return _number(text)
    return text


def typed(value: Value, hint: str | None = None) -> object:
    """Turn a policy value into the Python value operators compare; raise ``ValueError`` when invalid.

    ``hint`` is the value kind the left operand declares; it is only used for untyped strings (compacted
    policies often write ``"rightOperand": "2025-01-01T00:00:00Z"`` without a datatype).
    """
    if isinstance(value, Ref):
        return value.iri
    raw = value.value
    dt = value.datatype
    if dt is None:
        if isinstance(raw, str):
            return _from_string(raw, hint)
        if isinstance(raw, float) and raw != raw:  # NaN never compares
            raise ValueError("NaN is not a comparable number")
        return raw
    if not dt.startswith(XSD):
        raise ValueError(f"unsupported datatype <{dt}>")
    name = dt[len(XSD) :].lower()
    text = raw if isinstance(raw, str) else str(raw).lower() if isinstance(raw, bool) else str(raw)
    if name in _INT_TYPES:
        try:
            return int(text.strip())
        except ValueError:
            raise ValueError(f"{text!r} is not a valid xsd:{name}") from None
    if name == "decimal":
        return _number(text)
    if name in ("double", "float"):
        try:
            f = float(text)
        except ValueError:
            raise ValueError(f"{text!r} is not a valid xsd:{name}") from None
        if f != f:
            raise ValueError("NaN is not a comparable number")
        return f
    if name == "boolean":
        if text in ("true", "1"):
            return True
        if text in ("false", "0"):
            return False
        raise ValueError(f"{text!r} is not a valid xsd:boolean")
    if name in ("datetime", "datetimestamp"):
        return parse_datetime(text)
    if name == "date":
        return parse_date(text)
    if name in ("duration", "daytimeduration"):
        return parse_duration(text)
    if name in _STR_TYPES:
        return text
    raise ValueError(f"unsupported datatype xsd:{dt[len(XSD) :]}")


def describe(value: object) -> object:
    """Return a JSON-friendly rendering of a typed value for explanations."""
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, DateInterval):
        return str(value)
    if isinstance(value, timedelta):
        return format_duration(value)
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, frozenset | set):
        return sorted((describe(v) for v in value), key=repr)
    if isinstance(value, list | tuple):
        return [describe(v) for v in value]
    return value


def literal_key(value: Value) -> tuple[str, str]:
    """Return a normalized ``(lexical, datatype)`` pair used by the canonical form."""
    if isinstance(value, Ref):
        return (value.iri, "@id")
    raw, dt = value.value, value.datatype
    if dt is None:
        if isinstance(raw, bool):
            return ("true" if raw else "false", XSD + "boolean")
        if isinstance(raw, int):
            return (str(raw), XSD + "integer")
        if isinstance(raw, float):
            return (repr(raw), XSD + "double")
        return (raw, XSD + "string")
    try:
        v = typed(value)
    except ValueError:
        return (str(raw), dt)
    if isinstance(v, bool):
        return ("true" if v else "false", dt)
    if isinstance(v, int):
        return (str(v), XSD + "integer") if dt[len(XSD) :].lower() in _INT_TYPES else (str(v), dt)
    if isinstance(v, Decimal):
        return (format(v.normalize(), "f"), dt)
    if isinstance(v, datetime):
        return (v.astimezone(UTC).isoformat(), XSD + "dateTime")
    if isinstance(v, timedelta):
        return (format_duration(v), XSD + "duration")
    if isinstance(v, str) and dt[len(XSD) :].lower() == "string":
        return (v, XSD + "string")
    return (str(raw), dt)
