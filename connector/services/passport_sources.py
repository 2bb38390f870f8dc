"""Where bulk passport imports come from: a folder, a JSON Lines file or a JSON array, read as a stream.

Every record has a position (0, 1, 2... across the whole source), so an interrupted import can start
again after the last position it committed. A source's key names the exact input (resolved path, size
and modification time of every file), so a changed file is a new import, not a resumed one.
"""

from __future__ import annotations

import codecs
import hashlib
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

MAX_RECORD_BYTES = 16 * 1024 * 1024
READ_CHUNK = 1024 * 1024
SUFFIXES = (".json", ".jsonl", ".ndjson")


class SourceError(Exception):
    """The source cannot be read at all (missing, not a supported file)."""


@dataclass(frozen=True, slots=True)
class SourceRecord:
    """One record of a source: its document, or why it could not be read, and where it came from."""

    position: int
    where: str
    document: Any = None
    error: str | None = None


def _decode_prefix(raw: bytes) -> str:
    """Pick the codec by byte-order mark (UTF-8, UTF-16 LE/BE); UTF-8 without one."""
    if raw.startswith(codecs.BOM_UTF8):
        return "utf-8-sig"
    if raw.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        return "utf-16"
    return "utf-8"


def _files(path: Path) -> list[Path]:
    if path.is_dir():
        return sorted(p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in SUFFIXES)
    if path.is_file():
        return [path]
    raise SourceError(f"{path}: no such file or folder")


class Source:
    """A readable import source."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.files = _files(path)
        if not self.files:
            raise SourceError(f"{path}: no .json, .jsonl or .ndjson files in it")
        digest = hashlib.sha256()
        for file in self.files:
            stat = file.stat()
            digest.update(f"{file.resolve()}\0{stat.st_size}\0{stat.st_mtime_ns}\n".encode())
        self.key = "file:" + digest.hexdigest()

    def estimate(self) -> int | None:
        """Return the number of records when it is cheap to know (JSON Lines lines, single-document files)."""
        total = 0
        for file in self.files:
            kind = _kind(file)
            if kind == "lines":
                with file.open("rb") as handle:
                    total += sum(1 for line in handle if line.strip())
            elif kind == "array":
                return None
            else:
                total += 1
        return total

    def records(self, start: int = 0) -> Iterator[SourceRecord]:
        """Yield every record from position `start` on (earlier ones are skipped without being decoded)."""
        position = 0
        for file in self.files:
            kind = _kind(file)
            if kind == "lines":
                reader = _lines(file, position, start)
            elif kind == "array":
                reader = _array(file, position, start)
            else:
                reader = _single(file, position, start)
            for record in reader:
                position = record.position + 1
                if record.position >= start:
                    yield record


def _kind(file: Path) -> str:
    if file.suffix.lower() in (".jsonl", ".ndjson"):
        return "lines"
    with file.open("rb") as handle:
        head = handle.read(4096)
    text = head.decode(_decode_prefix(head), errors="replace").lstrip("\ufeff \t\r\n")
    return "array" if text.startswith("[") else "single"


def _parse(text: str | bytes, position: int, where: str) -> SourceRecord:
    try:
        return SourceRecord(position, where, document=json.loads(text))
    except (ValueError, RecursionError) as exc:
        return SourceRecord(position, where, error=f"not JSON: {exc}")


def _single(file: Path, position: int, start: int) -> Iterator[SourceRecord]:
    if position < start:
        yield SourceRecord(position, str(file), error="skipped")
        return
    size = file.stat().st_size
    if size > MAX_RECORD_BYTES:
        yield SourceRecord(
            position, str(file), error=f"the file is {size} bytes; a record may have at most {MAX_RECORD_BYTES}"
        )
        return
    raw = file.read_bytes()
    try:
        text = raw.decode(_decode_prefix(raw))
    except UnicodeDecodeError as exc:
        yield SourceRecord(position, str(file), error=f"not UTF-8 or UTF-16 text: {exc}")
        return
    yield _parse(text, position, str(file))


def _lines(file: Path, position: int, start: int) -> Iterator[SourceRecord]:
    with file.open("rb") as handle:
        number = 0
        for raw in handle:
            number += 1
            if not raw.strip():
                continue
            where = f"{file}:{number}"
            if position < start:
                yield SourceRecord(position, where, error="skipped")
            elif len(raw) > MAX_RECORD_BYTES:
                yield SourceRecord(position, where, error=f"the line has more than {MAX_RECORD_BYTES} bytes")
            else:
                # Bytes go to the parser whole: bad encoding is that record's error, not the import's end.
                yield _parse(raw.removeprefix(codecs.BOM_UTF8) if number == 1 else raw, position, where)
            position += 1


def _array(file: Path, position: int, start: int) -> Iterator[SourceRecord]:
    """Stream the elements of a top-level JSON array without holding the whole file."""
    decoder = json.JSONDecoder()
    with file.open("rb") as handle:
        head = handle.read(4)
        codec = _decode_prefix(head)
        handle.seek(0)
        reader = codecs.getreader(codec)(handle)
        buffer = reader.read(READ_CHUNK).lstrip("\ufeff \t\r\n")
        if not buffer.startswith("["):
            yield SourceRecord(position, str(file), error="expected a JSON array")
            return
        buffer = buffer[1:]
        index = 0
        while True:
            buffer = buffer.lstrip(" \t\r\n,")
            while not buffer or (buffer[0] != "]" and len(buffer) < READ_CHUNK):
                more = reader.read(READ_CHUNK)
                if not more:
                    break
                buffer = (buffer + more).lstrip(" \t\r\n,")
            if not buffer:
                yield SourceRecord(position, f"{file}[{index}]", error="the array is not closed")
                return
            if buffer[0] == "]":
                return
            while True:
                try:
                    document, end = decoder.raw_decode(buffer)
                    if end < len(buffer):
                        break
                    more = reader.read(READ_CHUNK)  # a value ending at the buffer's end may go on
                    if not more:
                        break
                    buffer += more
                    continue
                except ValueError as exc:
                    more = reader.read(READ_CHUNK)
                    if not more or len(buffer) > MAX_RECORD_BYTES:
                        yield SourceRecord(position, f"{file}[{index}]", error=f"not JSON: {exc}")
                        return
                    buffer += more
            where = f"{file}[{index}]"
            yield (
                SourceRecord(position, where, document=document)
                if position >= start
                else SourceRecord(position, where, error="skipped")
            )
            buffer = buffer[end:]
            position += 1
            index += 1
