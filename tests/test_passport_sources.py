"""The import sources: records cut out of JSON arrays and JSON Lines exactly, whatever the read chunk size;
an oversize or broken record is that record's refusal and the next one is read; resuming skips records."""

from __future__ import annotations

import codecs
import io
import json
import random
from pathlib import Path
from typing import Any

import pytest

from connector.domain.json_input import JsonLimits
from connector.services import passport_sources
from connector.services.passport_sources import Source, body_records, read_array, read_lines

LIMITS = JsonLimits(max_bytes=2000, max_depth=8)


def _verdicts(records: Any) -> list[tuple[int, str, Any]]:
    return [(r.position, r.where, r.document if r.error is None else f"refused: {r.error}") for r in records]


def _array(raw: bytes, **kwargs: Any) -> list[tuple[int, str, Any]]:
    return _verdicts(read_array(io.BytesIO(raw), LIMITS, 0, 0, lambda i: f"[{i}]", **kwargs))


def _elements(rng: random.Random) -> list[bytes]:
    """Return array elements as text: valid ones, broken ones, oversize ones, with tricky strings."""
    pool = [
        json.dumps({"s": 'a "quoted" ] }, [ {', "n": [1, 2.5, None]}),
        json.dumps({"back": "\\\\", "slash": "\\"}),
        json.dumps("a string with , and ]"),
        "12345",
        "true",
        '{"broken": 1,}',
        '{"nan": NaN}',
        '{"deep": ' + "[" * 12 + "]" * 12 + "}",
        json.dumps({"big": "x" * 5000}),
        json.dumps({"big but broken": "y" * 5000})[:-1] + ",}",
        json.dumps({"unicode": "\u00e9\u2603\U0001f50b"}, ensure_ascii=False),
    ]
    return [rng.choice(pool).encode() for _ in range(40)]


@pytest.mark.parametrize("chunk", [1, 3, 7, 64, 4096, 1024 * 1024])
def test_array_elements_are_the_same_whatever_the_chunk_size(chunk: int, monkeypatch: pytest.MonkeyPatch) -> None:
    rng = random.Random(3)
    elements = _elements(rng)
    raw = b"[\n" + b" ,\n ".join(elements) + b"\n]\n"
    expected = [_verdicts([passport_sources.parse_record(e, i, f"[{i}]", LIMITS)])[0] for i, e in enumerate(elements)]
    expected = [
        (
            p,
            w,
            "refused: the record is larger than 2,000 bytes, the most this node reads at once (CONNECTOR_MAX_BODY_BYTES)",
        )
        if len(elements[p]) > LIMITS.max_bytes
        else (p, w, v)
        for p, w, v in expected
    ]
    monkeypatch.setattr(passport_sources, "READ_CHUNK", chunk)
    assert _array(raw) == expected


def test_an_oversize_element_is_skipped_without_being_held(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(passport_sources, "READ_CHUNK", 100)
    huge = b'{"a": "' + b"z" * 50_000 + b'", "b": [' + b"[1]," * 5000 + b"0]}"
    got = _array(b"[1, " + huge + b", 2]")
    assert [g[2] for g in got] == [1, got[1][2], 2]
    assert got[1][2].startswith("refused: the record is larger than 2,000 bytes")


def test_the_structure_around_the_elements() -> None:
    assert _array(b"  [ ]  ") == []
    assert _array(b"[1, 2") == [
        (0, "[0]", 1),
        (1, "[1]", 2),
        (2, "[2]", "refused: the array is not closed: the input ends inside it"),
    ]
    assert _array(b"[1] x")[-1] == (1, "[1]", "refused: unexpected content after the JSON array")
    assert _array(b'[{"a": 1} {"b": 2}, 3]')[0][2].startswith("refused: not valid JSON: unexpected content")
    assert _array(b'{"passports": [1, 2]}', wrapped=True) == [(0, "[0]", 1), (1, "[1]", 2)]
    assert _array(codecs.BOM_UTF8 + b"[1]") == [(0, "[0]", 1)]
    assert _array('[{"\u00e9": "\u2603"}]'.encode("utf-16")) == [(0, "[0]", {"\u00e9": "\u2603"})]
    assert _array(b'[{"a": "\xff"}, 2]') == [
        (0, "[0]", "refused: not valid UTF-8: byte 0xff at offset 7 (invalid start byte)"),
        (1, "[1]", 2),
    ]


def test_a_body_that_is_no_array_is_refused_whole() -> None:
    from connector.domain.errors import InvalidInput

    for body in (b'{"other": []}', b"42", b'"x"', b""):
        with pytest.raises(InvalidInput, match="must be a JSON array"):
            body_records(body, False, LIMITS)


def test_json_lines_skip_an_oversize_line_without_holding_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(passport_sources, "READ_CHUNK", 16)
    raw = b'{"a": 1}\r\n\n   \n' + b'{"x": "' + b"x" * 10_000 + b'"}\n' + b'{"b": 2}\n' + b"y" * 3000
    got = _verdicts(read_lines(io.BytesIO(raw), LIMITS, 0, 0, lambda n: f"line {n}"))
    too_large = (
        "refused: the record is larger than 2,000 bytes, the most this node reads at once (CONNECTOR_MAX_BODY_BYTES)"
    )
    assert got == [(0, "line 1", {"a": 1}), (1, "line 4", too_large), (2, "line 5", {"b": 2}), (3, "line 6", too_large)]


def test_a_line_exactly_at_the_limit_is_read() -> None:
    record = b'{"a":"' + b"x" * (LIMITS.max_bytes - 8) + b'"}'
    for ending in (b"\n", b"\r\n", b""):
        got = _verdicts(read_lines(io.BytesIO(codecs.BOM_UTF8 + record + ending), LIMITS, 0, 0, str))
        assert got == [(0, "1", {"a": "x" * (LIMITS.max_bytes - 8)})]


def test_resuming_skips_records_without_reading_them(tmp_path: Path) -> None:
    folder = tmp_path / "in"
    folder.mkdir()
    (folder / "a.jsonl").write_bytes(b'{"n": 0}\n{"n": 1}\n')
    (folder / "b.json").write_bytes(b'[{"n": 2}, {"n": NaN}, {"n": 4}]')
    (folder / "c.json").write_bytes('{"n": 5}'.encode("utf-16"))
    source = Source(folder, LIMITS)
    every = [(r.position, r.document) for r in source.records()]
    assert every == [(0, {"n": 0}), (1, {"n": 1}), (2, {"n": 2}), (3, None), (4, {"n": 4}), (5, {"n": 5})]
    assert [(r.position, r.where) for r in source.records(3)] == [
        (3, f"{folder / 'b.json'}[1]"),
        (4, f"{folder / 'b.json'}[2]"),
        (5, str(folder / "c.json")),
    ]
    assert source.estimate() is None  # a JSON array's length is not known before reading it


def test_a_single_file_larger_than_a_record_is_refused_unread(tmp_path: Path) -> None:
    path = tmp_path / "big.json"
    path.write_bytes(b'{"a": "' + b"x" * 10_000 + b'"}')
    (record,) = Source(path, LIMITS).records()
    assert record.error is not None and record.error.startswith("the record is larger than 2,000 bytes")


@pytest.mark.parametrize("chunk", [1, 5, 1024 * 1024])
def test_the_estimate_counts_non_blank_lines_a_chunk_at_a_time(
    tmp_path: Path, chunk: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(passport_sources, "READ_CHUNK", chunk)
    path = tmp_path / "p.jsonl"
    path.write_bytes(b'{"a": 1}\n\n  \n{"b": 2}\r\n' + b"x" * 100 + b"\n \n{}")
    assert Source(path, LIMITS).estimate() == 4
