"""The node's one JSON reader: the limits at their exact boundaries, every rule's reason, and agreement with a
plain parse on generated documents (so the fast checks neither miss a repeated key nor invent one)."""

from __future__ import annotations

import json
import random
from typing import Any

import pytest

from connector.domain.json_input import JsonLimits, JsonRefused, parse_json

LIMITS = JsonLimits(max_bytes=4096, max_depth=6)


def refusal(raw: bytes, limits: JsonLimits = LIMITS) -> JsonRefused:
    with pytest.raises(JsonRefused) as caught:
        parse_json(raw, limits)
    return caught.value


def _depth(value: Any) -> int:
    if isinstance(value, dict):
        return 1 + max((_depth(v) for v in value.values()), default=0)
    if isinstance(value, list):
        return 1 + max((_depth(v) for v in value), default=0)
    return 0


def test_the_size_limit_is_exact_and_a_byte_order_mark_does_not_count() -> None:
    fits = b'{"a":"' + b"x" * (LIMITS.max_bytes - 8) + b'"}'
    assert len(fits) == LIMITS.max_bytes
    assert parse_json(fits, LIMITS) == {"a": "x" * (LIMITS.max_bytes - 8)}
    assert parse_json(b"\xef\xbb\xbf" + fits, LIMITS)["a"]
    assert "larger than 4,096 bytes" in refusal(fits + b" ").message
    assert "CONNECTOR_MAX_BODY_BYTES" in refusal(fits + b" ").message


@pytest.mark.parametrize(
    ("raw", "deep"),
    [
        (b"[[[[[[1]]]]]]", False),
        (b"[[[[[[[1]]]]]]]", True),
        (b"[[[[[[]]]]]]", False),
        (b"[[[[[[[]]]]]]]", True),  # an empty container counts as a level
        (b'{"a":{"b":{"c":{"d":{"e":{"f":1}}}}}}', False),
        (b'{"a":{"b":{"c":{"d":{"e":{"f":{}}}}}}}', True),
        (b'{"a":[{"b":[{"c":[1,2,3]}]}]}', False),
        (b'{"a":[{"b":[{"c":[1,2,{}]}]}]}', True),
        (b'{"k\\"ey": [[[[[{}]]]]]}', True),  # a key with an escaped quote
        (b'["[[[[[[[[", {"{{{{": "]]]]"}]', False),  # brackets inside strings are no nesting
    ],
)
def test_the_depth_limit_is_exact(raw: bytes, deep: bool) -> None:
    assert (_depth(json.loads(raw)) > LIMITS.max_depth) == deep
    if deep:
        assert refusal(raw).message == "nested deeper than 6 levels (CONNECTOR_MAX_JSON_DEPTH)"
    else:
        assert parse_json(raw, LIMITS) == json.loads(raw)


def test_depths_past_what_json_writers_handle_are_refused() -> None:
    for levels in (255, 300, 5000, 100_000):
        raw = b"[" * levels + b"]" * levels
        assert "nested deeper than 200 levels" in refusal(raw, JsonLimits(10**7, 200)).message


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        (b'{"a": NaN}', "not valid JSON: NaN is not a JSON number (line 1 column 7)"),
        (b'{"a": Infinity}', "not valid JSON: Infinity is not a JSON number (line 1 column 7)"),
        (b'{"a": [1, -Infinity]}', "not valid JSON: -Infinity is not a JSON number"),
        (b'{"a": "\xff"}', "not valid UTF-8: byte 0xff at offset 7 (invalid start byte)"),
        (b'{"a": "caf\xc3"}', "not valid UTF-8: byte 0xc3 at offset 10"),
        (b'{"a": "\\ud800"}', "not valid JSON: no low surrogate in string"),
        (b'{"a": 1,}', "not valid JSON: trailing comma is not allowed"),
        (b'{"a": 1} {"b": 2}', "not valid JSON: unexpected content after document"),
        (b"", "not valid JSON"),
    ],
)
def test_each_rule_says_what_is_wrong(raw: bytes, reason: str) -> None:
    assert refusal(raw).message.startswith(reason)


@pytest.mark.parametrize(
    ("raw", "path"),
    [
        (b'{"a": 1, "a": 1}', "a"),
        (b'{"x": {"t": "12:00", "t": "13:00"}}', "x.t"),  # colons in the values
        (b'{"x": [{"ok": 1}, {"b": {"c": 1, "c": 2}}]}', "x[1].b.c"),
        (b'{"u": "\\u003a", "u": 2}', "u"),  # an escaped colon: the slow path decides
        (b'{"a": {"b": 1}, "a": {"b": 1}}', "a"),
    ],
)
def test_a_repeated_key_is_refused_naming_its_path(raw: bytes, path: str) -> None:
    refused = refusal(raw)
    key = path.rsplit(".", 1)[-1].split("[")[0]
    assert refused.message == f'duplicate key "{key}" at {path}: a key appears once in a JSON object'
    assert [p.path for p in refused.problems] == [path]


def test_escaped_colons_and_colons_in_strings_are_no_repeated_keys() -> None:
    raw = b'{"urn:a": "urn:x:y", "b": "\\u003a\\u003A", "c\\u003a": [":", "::"]}'
    assert parse_json(raw, LIMITS) == json.loads(raw)


def _document(rng: random.Random, depth: int) -> Any:
    kind = rng.random()
    if depth <= 0 or kind < 0.3:
        return rng.choice([1, -2.5, "urn:uuid:0:1", 'a\\b"c', "\u00e9:\u2603", True, None, "", 10**20])
    if kind < 0.6:
        return [_document(rng, depth - 1) for _ in range(rng.randint(0, 4))]
    return {
        rng.choice(["k", "a:b", "x", "\u00fc", "ns:key", 'q"uote']) + str(i): _document(rng, depth - 1)
        for i in range(rng.randint(0, 4))
    }


def _repeat_a_key(raw: str, rng: random.Random) -> str | None:
    """Insert a copy of one member right after it, as a hand-edited file would repeat it."""
    document = json.loads(raw)
    objects = []

    def walk(value: Any) -> None:
        if isinstance(value, dict):
            if value:
                objects.append(value)
            for item in value.values():
                walk(item)
        elif isinstance(value, list):
            for item in value:
                walk(item)

    walk(document)
    if not objects:
        return None
    target = rng.choice(objects)
    key = rng.choice(list(target))
    target[key + "\u0000marker"] = None
    text = json.dumps(document, ensure_ascii=rng.random() < 0.5)
    marker = json.dumps(key + "\u0000marker", ensure_ascii=False)
    if marker not in text:
        marker = json.dumps(key + "\u0000marker")
    return text.replace(marker, json.dumps(key))


def test_generated_documents_agree_with_a_plain_parse() -> None:
    rng = random.Random(7)
    limits = JsonLimits(max_bytes=1_000_000, max_depth=5)
    for _ in range(600):
        value = _document(rng, rng.randint(0, 7))
        raw = json.dumps(value, ensure_ascii=rng.random() < 0.5, indent=rng.choice([None, 1])).encode()
        if _depth(value) > limits.max_depth:
            assert "nested deeper" in refusal(raw, limits).message
            continue
        assert parse_json(raw, limits) == json.loads(raw)
        repeated = _repeat_a_key(raw.decode(), rng)
        if repeated is not None:
            assert "duplicate key" in refusal(repeated.encode(), limits).message, repeated


def test_the_default_limits_are_the_settings_defaults() -> None:
    from connector.settings import Settings

    fields = Settings.model_fields
    assert JsonLimits() == JsonLimits(fields["max_body_bytes"].default, fields["max_json_depth"].default)
