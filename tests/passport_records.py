"""Passport records for import tests: realistic ones (the shared Catena-X 6.1 example, the node's generator)
and the tricky ones every import path must judge the same way.

A record is the exact bytes a partner would send: one line of JSON Lines, one element of a JSON array, one
file, one request body. A case is one or more records with the verdict each must get and a pattern its
reason must match.
"""

from __future__ import annotations

import copy
import json
from dataclasses import dataclass
from typing import Any

from connector.domain.passport.synthetic import generate
from tests.passport import examples

# The node's default limits (CONNECTOR_MAX_BODY_BYTES, CONNECTOR_MAX_JSON_DEPTH).
MAX_BYTES = 1_048_576
MAX_DEPTH = 32


def catenax(n: int, *, upper: bool = False) -> dict[str, Any]:
    """Return the shared Catena-X 6.1 example (its generator noise made real) as passport number `n`, with its
    own id and serial number. The published file itself is refused for its into-service date."""
    document = examples.catenax("6.1.0")
    uuid = f"6a1d0000-0000-4000-8000-{n:012x}"
    document["metadata"]["passportIdentifier"] = f"urn:uuid:{uuid.upper() if upper else uuid}"
    for item in document["identification"]["identification"]["serial"]:
        if item["key"] == "partInstanceId":
            item["value"] = f"SN{n:010d}"
    return document


def catenax_id(n: int, *, upper: bool = False) -> str:
    """Return the passport id of `catenax(n)`."""
    return str(catenax(n, upper=upper)["metadata"]["passportIdentifier"])


def node(n: int) -> dict[str, Any]:
    """Return passport number `n` in the node's own JSON."""
    return generate(10_000 + n)


def node_id(n: int) -> str:
    """Return the passport id of `node(n)`."""
    return str(node(n)["identity"]["passport_id"])


def compact(document: Any) -> bytes:
    """Return a document as one line of JSON (the standard library's writer: it writes any depth)."""
    return json.dumps(document, ensure_ascii=False, separators=(",", ":")).encode()


def _deep(levels: int) -> Any:
    """Return a value that, as a member of a record, makes the record nested `levels` deep."""
    nested: Any = "leaf"
    for _ in range(levels - 1):
        nested = {"n": nested}
    return nested


def _edit(document: dict[str, Any], path: str, value: Any) -> dict[str, Any]:
    changed = copy.deepcopy(document)
    keys = path.split(".")
    target: Any = changed
    for key in keys[:-1]:
        target = target[int(key)] if isinstance(target, list) else target[key]
    target[keys[-1]] = value
    return changed


@dataclass(frozen=True)
class Record:
    """One record of a case, the verdict it must get, and (when refused) a pattern its reason must match."""

    raw: bytes
    accepted: bool
    reason: str = ""
    passport_id: str | None = None


Expected = tuple[tuple[bool, str], ...]  # (accepted, reason pattern) per record


@dataclass(frozen=True)
class Case:
    """A tricky input: its records in order, the verdict of each in one import, and the verdicts when each
    record is sent on its own (a file per import run, a POST per record), where those differ."""

    name: str
    records: tuple[Record, ...]
    # An unbalanced record cannot be an element of a JSON array: the array would end inside it.
    in_arrays: bool = True
    # A .json file holding an array is a source of records (the JSON array path), not one record.
    in_files: bool = True
    # Each record its own import (`connector passports import FILE`): a repeated id is a new version there.
    one_per_run: Expected | None = None
    # Each record its own POST: a repeated id is 409, the passport exists.
    one_per_post: Expected | None = None

    def expected(self, alone: str | None = None) -> Expected:
        """Return the verdicts in one import, or with each record alone ("file" or "post")."""
        given = {"file": self.one_per_run, "post": self.one_per_post}.get(alone or "")
        return given if given is not None else tuple((r.accepted, r.reason) for r in self.records)


def _refused(raw: bytes, reason: str, passport_id: str | None = None) -> Record:
    return Record(raw, False, reason, passport_id)


def _accepted(document: dict[str, Any], passport_id: str) -> Record:
    return Record(compact(document), True, "", passport_id)


def _nan(n: int, literal: str) -> bytes:
    raw = compact(_edit(node(n), "identity.mass_kg", 123.456))
    return raw.replace(b"123.456", literal.encode())


def _duplicate_key(n: int) -> bytes:
    raw = compact(catenax(n))
    # `"status":"draft"` appears once in the example's metadata; a second, different status follows it.
    assert raw.count(b'"status":"draft"') == 1
    return raw.replace(b'"status":"draft"', b'"status":"draft","status":"expired"')


def _latin1(n: int) -> bytes:
    raw = compact(_edit(node(n), "identity.manufacturer_name", "Cellules Fran\u00e7aises"))
    return raw.replace("\u00e7".encode(), b"\xe7")  # the Latin-1 byte for c-cedilla, not UTF-8


def cases() -> list[Case]:
    """Return every tricky case (records are numbered so that no two cases share a passport id)."""
    size_pad = "x" * (17 * 1024 * 1024)
    return [
        Case("a valid node passport", (_accepted(node(1), node_id(1)),)),
        Case("a valid Catena-X 6.1 passport", (_accepted(catenax(2), catenax_id(2)),)),
        Case(
            "malformed JSON (a missing colon)",
            (_refused(compact(node(3)).replace(b'"identity":', b'"identity"', 1), r"not valid JSON", node_id(3)),),
        ),
        Case(
            "malformed JSON (a record cut short)",
            (_refused(compact(node(4))[:-40], r"not valid JSON", node_id(4)),),
            in_arrays=False,
        ),
        Case("NaN", (_refused(_nan(5, "NaN"), r"NaN is not a JSON number", node_id(5)),)),
        Case("Infinity", (_refused(_nan(6, "Infinity"), r"Infinity is not a JSON number", node_id(6)),)),
        Case(
            "-Infinity",
            (_refused(_nan(7, "-Infinity"), r"-Infinity is not a JSON number", node_id(7)),),
        ),
        Case(
            "a duplicate JSON key",
            (_refused(_duplicate_key(8), r'duplicate key "status" at metadata\.status', catenax_id(8)),),
        ),
        Case(
            "a duplicate top-level key",
            (
                _refused(
                    compact(node(9))[:-1] + b',"identity":' + compact(node(109)["identity"]) + b"}",
                    r'duplicate key "identity" at identity\b',
                    node_id(9),
                ),
            ),
        ),
        Case(
            "nesting 251 levels deep",
            (
                _refused(
                    compact({**catenax(10), "extra": _deep(251)}),
                    rf"nested deeper than {MAX_DEPTH} levels",
                    catenax_id(10),
                ),
            ),
        ),
        Case(
            "nesting 260 levels deep (deeper than the node could store)",
            (
                _refused(
                    compact({**catenax(23), "extra": _deep(260)}),
                    rf"nested deeper than {MAX_DEPTH} levels",
                    catenax_id(23),
                ),
            ),
        ),
        Case(
            "nesting one level too deep",
            (
                _refused(
                    compact({**catenax(11), "extra": _deep(MAX_DEPTH + 1)}),
                    rf"nested deeper than {MAX_DEPTH} levels",
                    catenax_id(11),
                ),
            ),
        ),
        Case(
            "nesting exactly at the limit",
            (_accepted({**catenax(12), "extra": _deep(MAX_DEPTH)}, catenax_id(12)),),
        ),
        Case(
            "a 17 MiB record",
            (
                _refused(
                    compact({**catenax(13), "extra": size_pad}),
                    rf"larger than {MAX_BYTES:,} bytes",
                    catenax_id(13),
                ),
            ),
        ),
        Case("not UTF-8 (a Latin-1 byte)", (_refused(_latin1(14), r"not valid UTF-8", node_id(14)),)),
        Case(
            "a lone surrogate escape",
            (
                _refused(
                    compact(_edit(node(15), "identity.manufacturer_name", "X")).replace(b'"X"', b'"\\ud800"'),
                    r"not valid JSON: .*surrogate",
                    node_id(15),
                ),
            ),
        ),
        Case(
            "a control character in a string",
            (
                _refused(
                    compact(_edit(node(16), "identity.manufacturer_name", "X")).replace(b'"X"', b'"a\x01b"'),
                    r"not valid JSON",
                    node_id(16),
                ),
            ),
        ),
        Case(
            "content after the record",
            (_refused(compact(node(17)) + b' {"more": 1}', r"not valid JSON", node_id(17)),),
        ),
        Case("a number, not an object", (_refused(b"42", r"must be a JSON object"),)),
        Case("a string, not an object", (_refused(b'"a passport"', r"must be a JSON object"),)),
        Case("null, not an object", (_refused(b"null", r"must be a JSON object"),)),
        Case(
            "an array, not an object",
            (_refused(compact([node(18)]), r"must be a JSON object", node_id(18)),),
            in_files=False,
        ),
        Case(
            "a node passport with two invalid fields",
            (
                _refused(
                    compact(_edit(_edit(node(19), "identity.mass_kg", -5), "circularity.recycled_cobalt_pct", 112)),
                    r"identity\.mass_kg.*circularity\.recycled_cobalt_pct",
                    node_id(19),
                ),
            ),
        ),
        Case(
            "the same id twice in one import",
            (
                _accepted(node(20), node_id(20)),
                _refused(
                    compact(_edit(node(20), "identity.mass_kg", 999.5)),
                    rf"passport id '{node_id(20)}' appeared already",
                    node_id(20),
                ),
            ),
            one_per_run=((True, ""), (True, "")),  # the second import stores a second version
            one_per_post=((True, ""), (False, rf"passport '{node_id(20)}' exists")),
        ),
        Case(
            "the same id again after other records",
            (
                _accepted(catenax(21), catenax_id(21)),
                _accepted(node(121), node_id(121)),
                _accepted(node(122), node_id(122)),
                _refused(compact(catenax(21)), rf"passport id '{catenax_id(21)}' appeared already", catenax_id(21)),
            ),
            one_per_run=((True, ""),) * 4,  # the last import finds it unchanged
            one_per_post=((True, ""),) * 3 + ((False, rf"passport '{catenax_id(21)}' exists"),),
        ),
        Case(
            "the same UUID in lower and upper case",
            (
                _accepted(catenax(22), catenax_id(22)),
                # The schema's canonical-id rule refuses it before the duplicate check could, on every path
                # (alone too: it never becomes a second passport).
                _refused(
                    compact(catenax(22, upper=True)),
                    r"metadata\.passportIdentifier: must be a canonical lower-case UUID",
                    catenax_id(22, upper=True),
                ),
            ),
        ),
        # What only the format's schema or the node's product rules refuse.
        Case(
            "an upper-case UUID",
            (
                _refused(
                    compact(catenax(30, upper=True)),
                    r"metadata\.passportIdentifier: must be a canonical lower-case UUID",
                    catenax_id(30, upper=True),
                ),
            ),
        ),
        Case(
            "a number sent as a string",
            (
                _refused(
                    compact(_edit(catenax(31), "characteristics.physicalDimension.length.value", "20.0")),
                    r'characteristics\.physicalDimension\.length\.value: must be a number, got string "20\.0"',
                    catenax_id(31),
                ),
            ),
        ),
        Case(
            "a status outside its enum",
            (
                _refused(
                    compact(_edit(catenax(32), "metadata.status", "finished")),
                    r'metadata\.status: must be one of "draft", "approved", "invalid", "expired", got "finished"',
                    catenax_id(32),
                ),
            ),
        ),
        Case(
            "a malformed date",
            (
                _refused(
                    compact(_edit(catenax(33), "metadata.issueDate", "2000-13-45")),
                    r'metadata\.issueDate: must be a real calendar date \(YYYY-MM-DD\), got "2000-13-45"',
                    catenax_id(33),
                ),
            ),
        ),
        Case(
            "a malformed BPNL",
            (
                _refused(
                    compact(_edit(catenax(34), "metadata.economicOperatorId", "BPNX-not-a-bpn")),
                    r'metadata\.economicOperatorId: must be a BPNL .*, got "BPNX-not-a-bpn"',
                    catenax_id(34),
                ),
            ),
        ),
        Case(
            "a negative mass",
            (
                _refused(
                    compact(_edit(catenax(35), "characteristics.physicalDimension.weight.value", -20.0)),
                    r"characteristics\.physicalDimension\.weight\.value: must be at least 0, got -20\.0",
                    catenax_id(35),
                ),
            ),
        ),
        Case(
            "a recycled share of 112 %",
            (
                _refused(
                    compact(_edit(catenax(36), "materials.active.nickel.recycled", 112.0)),
                    r"materials\.active\.nickel\.recycled: must be at most 100, got 112\.0",
                    catenax_id(36),
                ),
            ),
        ),
        Case(
            "a predecessor that is the passport itself",
            (
                _refused(
                    compact(_edit(catenax(37), "metadata.predecessor", catenax_id(37))),
                    r"metadata\.predecessor: must not be the passport itself",
                    catenax_id(37),
                ),
            ),
        ),
    ]
