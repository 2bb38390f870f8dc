"""Where bulk passport imports come from: a folder, a JSON Lines file, a JSON array file, or the body of an
import request, each read as a stream of records.

Every record is cut out of its source as bytes and parsed by the node's one JSON reader
(`connector.domain.json_input`) within the node's limits, so a record gets the same verdict whichever way it
arrives; a record the reader refuses is that record's refusal, with its reason, and the next one is read.
Every record has a position (0, 1, 2... across the whole source), so an interrupted import can start again
after the last position it committed. A source's key names the exact input (resolved path, size and
modification time of every file), so a changed file is a new import, not a resumed one.
"""

from __future__ import annotations

import codecs
import hashlib
import io
import json
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

from connector.domain.errors import InvalidInput, Problem
from connector.domain.json_input import JsonLimits, JsonRefused, parse_json, too_large

READ_CHUNK = 1024 * 1024
SUFFIXES = (".json", ".jsonl", ".ndjson")
SKIPPED = "skipped"
# How an import request wraps its records, besides a bare array: {"passports": [...]}.
WRAPPER_KEY = "passports"


class SourceError(Exception):
    """The source cannot be read at all (missing, not a supported file)."""


@dataclass(frozen=True, slots=True)
class SourceRecord:
    """One record of a source: its document, or why it could not be read, and where it came from.

    `errors` lists (path, message) pairs behind `error`; the path is None where the whole record is at fault.
    A record read with `parse=False` holds its bytes as cut out of the source (`raw`) instead of its document:
    `parsed` reads them, where the caller wants (in a worker process, for a bulk import).
    """

    position: int
    where: str
    document: Any = None
    error: str | None = None
    errors: tuple[tuple[str | None, str], ...] = ()
    raw: bytes | None = None


Where = Callable[[int], str]


def parse_record(raw: bytes, position: int, where: str, limits: JsonLimits) -> SourceRecord:
    """Parse one record's bytes with the node's JSON reader; a refusal becomes the record's error."""
    try:
        return SourceRecord(position, where, document=parse_json(raw, limits, "the record"))
    except JsonRefused as exc:
        return _refused(position, where, exc.message, tuple((p.path, p.message) for p in exc.problems))


def parsed(record: SourceRecord, limits: JsonLimits) -> SourceRecord:
    """Return a record read with `parse=False` parsed (a record without raw bytes is returned as it is)."""
    if record.raw is None:
        return record
    return parse_record(record.raw, record.position, record.where, limits)


def _record(raw: bytes, position: int, where: str, limits: JsonLimits, parse: bool) -> SourceRecord:
    return parse_record(raw, position, where, limits) if parse else SourceRecord(position, where, raw=raw)


def _refused(position: int, where: str, reason: str, errors: tuple[tuple[str | None, str], ...] = ()) -> SourceRecord:
    return SourceRecord(position, where, error=reason, errors=errors or ((None, reason),))


def _too_large(position: int, where: str, limits: JsonLimits) -> SourceRecord:
    return _refused(position, where, f"the record is {too_large(limits)}")


def _codec(head: bytes) -> str:
    """Pick the codec by byte-order mark (UTF-8, UTF-16 LE/BE); UTF-8 without one."""
    if head.startswith(codecs.BOM_UTF8):
        return "utf-8-sig"
    if head.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        return "utf-16"
    return "utf-8"


def _files(path: Path) -> list[Path]:
    if path.is_dir():
        return sorted(p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in SUFFIXES)
    if path.is_file():
        return [path]
    raise SourceError(f"{path}: no such file or folder")


class Source:
    """A readable import source: a file or a folder of files."""

    def __init__(self, path: Path, limits: JsonLimits | None = None) -> None:
        self.path = path
        self.limits = limits or JsonLimits()
        self.files = _files(path)
        if not self.files:
            raise SourceError(f"{path}: no .json, .jsonl or .ndjson files in it")
        digest = hashlib.sha256()
        self.size = 0  # bytes in all its files
        for file in self.files:
            stat = file.stat()
            self.size += stat.st_size
            digest.update(f"{file.resolve()}\0{stat.st_size}\0{stat.st_mtime_ns}\n".encode())
        self.key = "file:" + digest.hexdigest()

    def estimate(self) -> int | None:
        """Return the number of records when it is cheap to know (JSON Lines lines, single-document files)."""
        total = 0
        for file in self.files:
            kind = _kind(file)
            if kind == "lines":
                with file.open("rb") as handle:
                    total += _count_lines(handle)
            elif kind == "array":
                return None
            else:
                total += 1
        return total

    def records(self, start: int = 0, parse: bool = True) -> Iterator[SourceRecord]:
        """Yield every record from position `start` on (earlier ones are skipped without being parsed).

        With `parse=False` each record holds its bytes unparsed (`raw`), for `parsed` to read later.
        """
        position = 0
        for file in self.files:
            kind = _kind(file)
            name = str(file)
            # A buffer of READ_CHUNK: a record of JSON Lines (10-15 KB) is then cut out of the buffer, not put
            # together from reads of 8 KiB (half the cost of reading a line).
            with file.open("rb", buffering=READ_CHUNK) as handle:
                if kind == "lines":
                    reader = read_lines(handle, self.limits, position, start, _line_of(name), parse)
                elif kind == "array":
                    reader = read_array(handle, self.limits, position, start, _element_of(name), parse=parse)
                else:
                    reader = _single(handle, name, self.limits, position, start, parse)
                for record in reader:
                    position = record.position + 1
                    if record.position >= start:
                        yield record


def _count_lines(handle: BinaryIO) -> int:
    """Count the non-blank lines of a stream, a chunk at a time (a huge line is never held whole)."""
    total, open_line = 0, False
    while chunk := handle.read(READ_CHUNK):
        *ended, rest = chunk.split(b"\n")
        for line in ended:
            total += open_line or bool(line.strip())
            open_line = False
        open_line = open_line or bool(rest.strip())
    return total + open_line


def _line_of(name: str) -> Where:
    return lambda number: f"{name}:{number}"


def _element_of(name: str) -> Where:
    return lambda index: f"{name}[{index}]"


def body_records(raw: bytes, lines: bool, limits: JsonLimits) -> Iterator[SourceRecord]:
    """Return the records of an import request's body: JSON Lines, or a JSON array (or {"passports": [...]}).

    A body that is no array at all is refused whole (InvalidInput) before any record is read.
    """
    handle = io.BytesIO(raw)
    if lines:
        return read_lines(handle, limits, 0, 0, lambda n: f"line {n}")
    if _OPENING.match(raw.removeprefix(codecs.BOM_UTF8)) is None:
        raise InvalidInput(
            'the body must be a JSON array of passports or {"passports": [...]}',
            [Problem("expected an array", WRAPPER_KEY)],
        )
    return read_array(handle, limits, 0, 0, lambda i: f"[{i}]", wrapped=True)


_OPENING = re.compile(rb'\s*(?:\[|\{\s*"' + WRAPPER_KEY.encode() + rb'"\s*:\s*\[)')


def _kind(file: Path) -> str:
    if file.suffix.lower() in (".jsonl", ".ndjson"):
        return "lines"
    with file.open("rb") as handle:
        head = handle.read(4096)
    text = head.decode(_codec(head), errors="replace").lstrip("\ufeff \t\r\n")
    return "array" if text.startswith("[") else "single"


def _single(
    handle: BinaryIO, where: str, limits: JsonLimits, position: int, start: int, parse: bool = True
) -> Iterator[SourceRecord]:
    """Read a file holding one record."""
    if position < start:
        yield SourceRecord(position, where, error=SKIPPED)
        return
    head = handle.read(4)
    handle.seek(0)
    if _codec(head) == "utf-16":
        raw = handle.read(2 * limits.max_bytes + 3)  # UTF-16 text takes at most twice its UTF-8 bytes
        if handle.read(1):
            yield _too_large(position, where, limits)
            return
        try:
            raw = raw.decode("utf-16").encode("utf-8")
        except UnicodeError as exc:
            yield _refused(position, where, f"not valid UTF-16 text: {exc}")
            return
    else:
        raw = handle.read(limits.max_bytes + len(codecs.BOM_UTF8) + 1)
        if len(raw.removeprefix(codecs.BOM_UTF8)) > limits.max_bytes:
            yield _too_large(position, where, limits)
            return
    yield _record(raw, position, where, limits, parse)


def read_lines(
    handle: BinaryIO, limits: JsonLimits, position: int, start: int, where: Where, parse: bool = True
) -> Iterator[SourceRecord]:
    """Read JSON Lines, one record per non-blank line; a line longer than a record may be is skipped unread."""
    cap = limits.max_bytes + len(codecs.BOM_UTF8) + 2  # the longest line a record may fill, with "\r\n"
    number = 0
    while True:
        line = handle.readline(cap)
        if not line:
            return
        number += 1
        oversize = len(line) == cap and not line.endswith(b"\n")
        if oversize:
            while True:  # skip to the end of the line without holding it
                rest = handle.readline(READ_CHUNK)
                if not rest or rest.endswith(b"\n"):
                    break
        elif not line.strip():
            continue
        if position < start:
            yield SourceRecord(position, where(number), error=SKIPPED)
        elif oversize:
            yield _too_large(position, where(number), limits)
        else:
            yield _record(line.rstrip(b"\r\n"), position, where(number), limits, parse)
        position += 1


# A JSON array, streamed: each element is cut out as text and parsed on its own.

_DECODER = json.JSONDecoder()
_WHITESPACE = re.compile(r"[ \t\r\n]*+")
_OUTSIDE_STRING = re.compile(r'[^"\[\]{},]*+')
_INSIDE_STRING = re.compile(r'[^"\\]*+')
_WRAPPER_OPENING = re.compile(r'\{[ \t\r\n]*"' + WRAPPER_KEY + r'"[ \t\r\n]*:[ \t\r\n]*')


class _Extent:
    """Find where an array element ends (the first `,` or `]` outside strings and brackets), fed in pieces.

    Only the element's extent is found here, not whether it is valid JSON: a broken element still ends at
    the next separator, so the elements after it are read.
    """

    def __init__(self) -> None:
        self.depth = 0
        self.in_string = False
        self.escaped = False

    def feed(self, text: str, pos: int) -> int | None:
        """Scan `text` from `pos`; return the index of the separator ending the element, or None (read on)."""
        end = len(text)
        while pos < end:
            if self.in_string:
                if self.escaped:
                    self.escaped = False
                    pos += 1
                    continue
                pos = _INSIDE_STRING.match(text, pos).end()  # type: ignore[union-attr]
                if pos == end:
                    break
                if text[pos] == '"':
                    self.in_string = False
                else:
                    self.escaped = True
                pos += 1
                continue
            pos = _OUTSIDE_STRING.match(text, pos).end()  # type: ignore[union-attr]
            if pos == end:
                break
            char = text[pos]
            if char == '"':
                self.in_string = True
            elif char in "[{":
                self.depth += 1
            elif self.depth == 0 and char in ",]":
                return pos
            elif char in "]}" and self.depth > 0:
                self.depth -= 1
            pos += 1
        return None


class _Text:
    """A text buffer over a binary stream, decoded as it is read."""

    def __init__(self, handle: BinaryIO) -> None:
        head = handle.read(4)
        handle.seek(0)
        codec = _codec(head)
        # UTF-8 bytes that are not UTF-8 stay as they are (surrogate escapes), so that a bad byte is the error
        # of the one element holding it, found by the JSON reader when the element is encoded back.
        self._reader = codecs.getreader(codec)(handle, "strict" if codec == "utf-16" else "surrogateescape")
        self.buffer = ""
        self.pos = 0
        self.ended = False

    def more(self) -> bool:
        """Read another chunk into the buffer; return False at the end of the stream."""
        if self.ended:
            return False
        chunk = self._reader.read(READ_CHUNK)
        if not chunk:
            self.ended = True
            return False
        if self.pos > len(self.buffer) // 2:
            self.buffer, self.pos = self.buffer[self.pos :], 0
        self.buffer += chunk
        return True

    def drop(self) -> None:
        """Forget everything read so far (when skipping an element too large to hold)."""
        self.buffer, self.pos = "", 0

    def skip_whitespace(self) -> str:
        """Move past whitespace; return the next character ("" at the end of the stream)."""
        while True:
            self.pos = _WHITESPACE.match(self.buffer, self.pos).end()  # type: ignore[union-attr]
            if self.pos < len(self.buffer):
                return self.buffer[self.pos]
            if not self.more():
                return ""


def read_array(
    handle: BinaryIO,
    limits: JsonLimits,
    position: int,
    start: int,
    where: Where,
    wrapped: bool = False,
    parse: bool = True,
) -> Iterator[SourceRecord]:
    """Stream the elements of a top-level JSON array (or of {"passports": [...]} when `wrapped`)."""
    text = _Text(handle)
    index = 0
    try:
        if wrapped and text.skip_whitespace() == "{":
            opening = _WRAPPER_OPENING.match(text.buffer, text.pos)
            if opening is None:
                raise InvalidInput(f'the body must be a JSON array of passports or {{"{WRAPPER_KEY}": [...]}}')
            text.pos = opening.end()
        if text.skip_whitespace() != "[":
            yield _refused(position, where(index), "expected a JSON array")
            return
        text.pos += 1
        if text.skip_whitespace() == "]":
            text.pos += 1
        else:
            while True:
                item, separator = _element(text, limits)
                if position < start:
                    yield SourceRecord(position, where(index), error=SKIPPED)
                elif item is None:
                    yield _too_large(position, where(index), limits)
                else:
                    yield _record(item.encode("utf-8", "surrogateescape"), position, where(index), limits, parse)
                position += 1
                index += 1
                if separator == "":
                    yield _refused(position, where(index), "the array is not closed: the input ends inside it")
                    return
                text.pos += 1
                if separator == "]":
                    break
        if wrapped and text.skip_whitespace() == "}":
            text.pos += 1
        if text.skip_whitespace() != "":
            yield _refused(position, where(index), "unexpected content after the JSON array")
    except UnicodeDecodeError as exc:
        yield _refused(position, where(index), f"not valid UTF-16 text: {exc}")


def _element(text: _Text, limits: JsonLimits) -> tuple[str | None, str]:
    """Cut the next element out of the buffer; return it (None when too large) and its separator.

    The buffer keeps everything from `text.pos` (the element's first character) while the element is read,
    so offsets from it stay valid when another chunk is read.
    """
    text.skip_whitespace()
    # The standard library's C decoder finds where a well-formed element ends far faster than a scan here.
    while True:
        try:
            _, end = _DECODER.raw_decode(text.buffer, text.pos)
        except (ValueError, RecursionError):
            break
        after = _WHITESPACE.match(text.buffer, end).end()  # type: ignore[union-attr]
        if after == len(text.buffer):
            if text.more():
                continue  # a number at the end of the buffer may go on in the next chunk
            return _take(text, end, after), ""
        if text.buffer[after] in ",]":
            return _take(text, end, after), text.buffer[after]
        break  # what follows is no separator: it belongs to this (broken) element
    # A broken, very deep, incomplete or oversize element: find its extent, holding at most a record's worth.
    extent = _Extent()
    scanned = 0  # offset from text.pos
    while True:
        found = extent.feed(text.buffer, text.pos + scanned)
        if found is not None:
            if found - text.pos > limits.max_bytes:
                text.pos = found
                return None, text.buffer[found]
            return _take(text, found, found), text.buffer[found]
        if len(text.buffer) - text.pos > limits.max_bytes:
            return None, _skip(text, extent)
        scanned = len(text.buffer) - text.pos
        if not text.more():
            return _take(text, len(text.buffer), len(text.buffer)), ""


def _take(text: _Text, end: int, after: int) -> str:
    """Return the element from `text.pos` to `end` (trailing whitespace left out) and move to `after`."""
    item = text.buffer[text.pos : end].rstrip(" \t\r\n")
    text.pos = after
    return item


def _skip(text: _Text, extent: _Extent) -> str:
    """Read past the rest of an element too large to hold, forgetting it as it goes; return its separator."""
    while True:
        text.drop()
        if not text.more():
            return ""
        found = extent.feed(text.buffer, 0)
        if found is not None:
            text.pos = found
            return text.buffer[found]
