"""The one reader of JSON the node takes in: request bodies on both surfaces and every imported passport record.

One set of limits for all of them (`JsonLimits`, from CONNECTOR_MAX_BODY_BYTES and CONNECTOR_MAX_JSON_DEPTH):
a document is at most `max_bytes` long and nested at most `max_depth` levels, is valid UTF-8 (one leading
byte-order mark is ignored), holds no NaN or Infinity, and no object in it repeats a key (RFC 8259 leaves a
repeated key's meaning open; I-JSON, RFC 7493, forbids it). A document that breaks a rule raises
`JsonRefused`, whose message names the rule and, for a repeated key, its path.

Speed matters (imports read thousands of records a second), so the checks cost one orjson parse and one
orjson serialisation: the indented serialisation shows the nesting depth as indentation, and its colons,
compared with the input's, tell whether a repeated key was dropped by the parse (see `_maybe_repeated`).
Only then is the document parsed again, slowly, to name the key.
"""

from __future__ import annotations

import codecs
import json
import re
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import orjson

from connector.domain.errors import InvalidInput, Problem

# The defaults of CONNECTOR_MAX_BODY_BYTES and CONNECTOR_MAX_JSON_DEPTH (a test holds them equal).
DEFAULT_MAX_BYTES = 1_048_576
DEFAULT_MAX_DEPTH = 32


@dataclass(frozen=True, slots=True)
class JsonLimits:
    """How large and how deep a JSON document the node reads may be."""

    max_bytes: int = DEFAULT_MAX_BYTES
    max_depth: int = DEFAULT_MAX_DEPTH


class JsonRefused(InvalidInput):
    """A JSON document the node does not read; the message says which rule it breaks."""


def too_large(limits: JsonLimits) -> str:
    """Return the reason a document larger than the limit is refused (without the subject: `is ...`)."""
    return f"larger than {limits.max_bytes:,} bytes, the most this node reads at once (CONNECTOR_MAX_BODY_BYTES)"


def too_deep(limits: JsonLimits) -> str:
    """Return the reason a document nested deeper than the limit is refused."""
    return f"nested deeper than {limits.max_depth} levels (CONNECTOR_MAX_JSON_DEPTH)"


def parse_json(raw: bytes, limits: JsonLimits, subject: str = "the JSON document") -> Any:
    """Parse one JSON document within the limits; raise JsonRefused naming what is wrong."""
    if raw.startswith(codecs.BOM_UTF8):
        raw = raw[len(codecs.BOM_UTF8) :]
    if len(raw) > limits.max_bytes:
        raise JsonRefused(f"{subject} is {too_large(limits)}")
    try:
        value = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise JsonRefused(_not_json(raw, exc, limits)) from None
    try:
        indented = orjson.dumps(value, option=orjson.OPT_INDENT_2)
    except orjson.JSONEncodeError:  # deeper than orjson writes, so far deeper than any limit
        raise JsonRefused(too_deep(limits)) from None
    if _indented(limits.max_depth) in indented and _deeper_than(limits.max_depth).search(indented) is not None:
        raise JsonRefused(too_deep(limits))
    if _maybe_repeated(raw, indented):
        repeated = _repeated_key(raw)
        if repeated is not None:
            path, key = repeated
            message = f'duplicate key "{key}" at {path}: a key appears once in a JSON object'
            raise JsonRefused(message, [Problem(message, path)])
    return value


@lru_cache(maxsize=8)
def _indented(depth: int) -> bytes:
    # A container nested deeper than `depth` opens on a line indented 2*depth spaces (below): where no line
    # is indented that far, as in nearly every document, the pattern need not be searched for (a plain
    # substring search costs a fraction of the pattern's).
    return b"\n" + b" " * (2 * depth)


@lru_cache(maxsize=8)
def _deeper_than(depth: int) -> re.Pattern[bytes]:
    # In orjson's indented output every member of a container at nesting level d starts a line indented 2*d
    # spaces (strings never hold a raw line break), so a container at level depth + 1 opens on a line
    # indented 2*depth spaces: `[`, `{`, or a key and then one of them.
    return re.compile(rb'\n {%d}(?:"(?:[^"\\\n]|\\.)*+": )?[\[{]' % (2 * depth))


def _maybe_repeated(raw: bytes, indented: bytes) -> bool:
    """Tell whether the parse may have dropped a repeated key (False means it surely did not)."""
    # Every key has one colon after it, and strings hold the others. The output holds the parsed keys and the
    # parsed strings, so it has as many colons as the input unless a member was dropped, or an escaped colon
    # (\u003a) in the input became a plain one: only then is the document read again.
    # The escaped colon is looked for only in a document with a backslash at all: a search for one byte is a
    # fraction of a search for the five (about 10 us over a 14 KB record), and most records hold no escape.
    return raw.count(b":") != indented.count(b":") or (b"\\" in raw and b"\\u003" in raw)


def _repeated_key(raw: bytes) -> tuple[str, str] | None:
    """Return (path, key) of the first repeated key of a document known to be valid JSON, or None."""
    found: list[tuple[dict[str, Any], str]] = []

    def pairs(items: list[tuple[str, Any]]) -> dict[str, Any]:
        members = dict(items)
        if len(members) != len(items) and not found:
            seen: set[str] = set()
            for key, _ in items:
                if key in seen:
                    found.append((members, key))
                    break
                seen.add(key)
        return members

    document = json.loads(raw, object_pairs_hook=pairs)
    if not found:
        return None
    holder, key = found[0]
    prefix = _path_to(document, holder)
    return (f"{prefix}.{key}" if prefix else key), key


def _path_to(value: Any, target: dict[str, Any]) -> str:
    """Return the path (`a.b[2].c`) of the object `target` inside `value`; empty for the top level."""
    stack: list[tuple[Any, str]] = [(value, "")]
    while stack:
        item, path = stack.pop()
        if item is target:
            return path
        if isinstance(item, dict):
            stack.extend((child, f"{path}.{key}" if path else key) for key, child in item.items())
        elif isinstance(item, list):
            stack.extend((child, f"{path}[{index}]") for index, child in enumerate(item))
    return ""


_CONSTANTS = (b"-Infinity", b"Infinity", b"NaN")


def _not_json(raw: bytes, exc: orjson.JSONDecodeError, limits: JsonLimits) -> str:
    """Say why orjson refused a document, in words that name the rule."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as bad:
        return f"not valid UTF-8: byte 0x{raw[bad.start]:02x} at offset {bad.start} ({bad.reason})"
    if "depth limit exceeded" in exc.msg:
        return too_deep(limits)
    where = f"line {exc.lineno} column {exc.colno}"
    for start in (exc.pos - 1, exc.pos):  # orjson points at a minus sign or past it
        ahead = text[max(start, 0) : exc.pos + 9].encode()
        for constant in _CONSTANTS:
            if ahead.startswith(constant):
                return f"not valid JSON: {constant.decode()} is not a JSON number ({where})"
    return f"not valid JSON: {exc.msg} ({where})"
