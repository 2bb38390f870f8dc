"""How a bulk import makes store-ready passports from source records: in this process, or in a worker process.

Making a record ready (parsing it with the node's JSON reader, detecting its format, the schema check, the
mapping into the node's model, the node JSON, its digest and its encoding for the store) is nearly all of an
import's CPU; storing it is the rest. On a machine with two cores a worker process prepares records while
this process's event loop stores the ones before them (docs/decisions/0019-import-pipeline.md): raw records
go to the worker in chunks, prepared ones come back in the same order, and only a few chunks are in flight
at once, so memory stays flat with the file's length. A small input (or a request's body) is prepared here:
starting a worker costs more than it saves.

Garbage collection: an import makes many short-lived containers and almost no cycles, and the cyclic
collector's passes over the node's long-lived objects cost about a third of the import. `bulk_collection`
sets the collector aside for the duration (the start-up's objects frozen, a higher first threshold) and
puts it back as it was.
"""

from __future__ import annotations

import asyncio
import ctypes
import gc
import multiprocessing
import pickle
import queue
import signal
import socket
import struct
import threading
from collections import deque
from collections.abc import AsyncGenerator, Iterable, Iterator, Sequence
from concurrent.futures.process import BrokenProcessPool
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from functools import cache
from typing import TYPE_CHECKING, Any

from connector.domain import passport as model
from connector.domain.errors import InvalidInput, Problem
from connector.domain.json_input import JsonLimits
from connector.services.passport_reading import WriteFields, load, write_fields
from connector.services.passport_sources import SourceRecord, parsed

if TYPE_CHECKING:  # a worker process imports this module, and not the store (about a second of its start-up)
    from connector.store.engine import EncodedJSON
    from connector.store.passports import PassportWrite

# Records a worker prepares per task, and tasks in flight at most: enough to keep the workers busy while
# this process stores and commits a batch of IMPORT_BATCH (2,000 records: about a second of both workers'
# work in flight), few enough that memory does not grow with the file (each is about 2 x 14 KB a record).
CHUNK = 250
AHEAD = 8
# Records an import stores per transaction unless told (`--batch`): each is also the checkpoint a resumed
# import starts after. Every index page a batch touches is written to the write-ahead log once per batch, and
# the indexes keyed by random UUIDs (passports, versions, the ids the import took) are touched all over: at
# 500 an import of 100,000 Catena-X passports wrote 8.5 GB for a database of 2.1 GB, at 2,000 it writes 5.6 GB
# (decision 0019, ninth round).
IMPORT_BATCH = 2000
# Below this many bytes of source (about 1,200 Catena-X passports) a worker costs more to start (about half a
# second) than it saves: the records are prepared here.
WORKER_MIN_BYTES = 16 * 1024 * 1024
# A first-generation threshold for imports (Python's default is 700 allocations).
BULK_GC_THRESHOLD = 50_000
# Records an import stores between two collections of the cycles it left (a collection walks what the
# import holds, a few milliseconds: after every batch of 500 it was 2 % of the import's CPU).
GARBAGE_EVERY = 5_000
# The import command's SQLite page cache for its writes, in KiB (SQLite's default is 2,000): a batch inserts
# into indexes keyed by random UUIDs (passports, their versions, the ids the import took), whose pages outgrow
# the default cache after a few thousand passports; each miss then reads a page back from the file, and the
# importing process's CPU per passport doubled between 20,000 and 100,000 (decision 0019, eighth round).
BULK_WRITE_CACHE_KIB = 32 * 1024
# glibc's mallopt parameter for the most malloc arenas a process makes (malloc.h).
M_ARENA_MAX = -8


@dataclass(frozen=True, slots=True)
class Prepared:
    """A source record made ready: what to store (its canonical id, the write, its reading's warnings) or
    why it is refused (a reason and its problems), with the record's position and place in the source."""

    position: int
    where: str
    key: str | None = None
    write: PassportWrite | None = None
    warnings: list[tuple[str, str]] = field(default_factory=list)
    reason: str | None = None
    problems: list[Problem] = field(default_factory=list)


def _ready(
    item: SourceRecord, limits: JsonLimits
) -> tuple[str | None, WriteFields | None, list[tuple[str, str]], str | None, list[Problem]]:
    """Make one source record ready (parsing its bytes first if unparsed): (canonical id, what to write, its
    reading's warnings, None, []) or (None, None, [], why it is refused, its problems)."""
    item = parsed(item, limits)
    if item.error is not None:
        return None, None, [], item.error, [Problem(m, p) for p, m in item.errors]
    try:
        reading = load(item.document)
    except InvalidInput as exc:
        return None, None, [], exc.message, list(exc.problems)
    fields = write_fields(reading)
    return model.canonical_id(fields[0]), fields, reading.warnings, None, []


def prepare(item: SourceRecord, limits: JsonLimits) -> Prepared:
    """Make one source record ready to store, or say why it is refused (parsing its bytes first if unparsed)."""
    return _received((item.position, item.where, *_ready(item, limits)))


def prepare_chunk(items: list[SourceRecord], limits: JsonLimits) -> list[Prepared]:
    """Make a chunk of records ready, in order."""
    return [prepare(item, limits) for item in items]


# Between processes records travel as plain tuples: pickling a slotted dataclass costs several times more.
_Sent = tuple[int, str, bytes | None, Any, str | None, tuple[tuple[str | None, str], ...]]
_Back = tuple[int, str, str | None, WriteFields | None, list[tuple[str, str]], str | None, list[Problem]]


def prepare_sent(sent: list[_Sent], limits: JsonLimits) -> list[_Back]:
    """Make a chunk of records ready, in order (what a worker process runs, on records as `_records_in` makes
    them)."""
    return [
        (position, where, *_ready(SourceRecord(position, where, document, error, errors, raw), limits))
        for position, where, raw, document, error, errors in sent
    ]


@cache
def _store_types() -> tuple[type[PassportWrite], type[EncodedJSON]]:
    # Imported when first needed: in the importing process, which has the store loaded already.
    from connector.store.engine import EncodedJSON
    from connector.store.passports import PassportWrite

    return PassportWrite, EncodedJSON


def _received(back: tuple[Any, ...]) -> Prepared:
    """Return a record made ready as the store takes it (its node JSON as text: bytes made here, or text as a
    worker's answer arrives, `_results_in`)."""
    position, where, key, fields, warnings, reason, problems = back
    write = None
    if fields is not None:
        write_type, encoded = _store_types()
        record_id, battery_id, model_id, manufacturer_id, category, data, digest, source_format = fields
        text = encoded(data if isinstance(data, str) else data.decode())
        write = write_type(record_id, battery_id, model_id, manufacturer_id, category, text, digest, source_format)
    return Prepared(position, where, key, write, warnings, reason, problems)


# A message on a worker's pipe: a header (the lengths of its two parts), its tuples pickled, then the bytes they
# stand for, one after the other: the records' source bytes going to the worker, their node JSON coming back.
# The bytes are written from where they are (scatter/gather) and read into a buffer the reader keeps. Pickled
# through multiprocessing's Connection, each chunk's megabytes were copied into a fresh buffer on one side and
# read into fresh ones on the other, each faulting its pages in anew, and text was decoded by pickle's slower
# path: about a tenth of the importing process's CPU (decision 0019, tenth round).
_HEADER = struct.Struct("!QQ")
_IOV_MAX = 1024  # buffers one sendmsg takes at most (Linux's IOV_MAX)


def _put_message(connection: socket.socket, meta: Any, parts: Sequence[bytes] = ()) -> None:
    """Send one message: `meta` pickled, then `parts` as they are. What pickling raises (an exception that
    cannot travel) is raised before anything is written; OSError means the other end has gone."""
    pickled = pickle.dumps(meta, protocol=pickle.HIGHEST_PROTOCOL)
    views = [memoryview(_HEADER.pack(len(pickled), sum(len(part) for part in parts))), memoryview(pickled)]
    views += [memoryview(part) for part in parts if part]
    first = 0
    while first < len(views):
        sent = connection.sendmsg(views[first : first + _IOV_MAX])
        while sent:  # past what was written (all of it, or part after a signal)
            size = views[first].nbytes
            if sent < size:
                views[first] = views[first][sent:]
                break
            sent -= size
            first += 1


class _Reader:
    """Reads messages from a socket into one buffer it keeps (made larger when a message needs it)."""

    def __init__(self, connection: socket.socket) -> None:
        self._connection = connection
        self._buffer = bytearray(_HEADER.size)

    def read(self) -> tuple[Any, memoryview]:
        """Return the next message's tuples and a view of its bytes, valid until the next read. Raises EOFError
        when the other end has gone, also in the middle of a message."""
        pickled_size, parts_size = _HEADER.unpack(self._exactly(_HEADER.size))
        view = self._exactly(pickled_size + parts_size)
        # The pipe is a socket pair only this process and its own worker hold: no one else can write to it.
        return pickle.loads(view[:pickled_size]), view[pickled_size:]  # noqa: S301

    def _exactly(self, size: int) -> memoryview:
        if len(self._buffer) < size:
            self._buffer = bytearray(size)
        view = memoryview(self._buffer)[:size]
        done = 0
        while done < size:
            got = self._connection.recv_into(view[done:], size - done)
            if not got:
                raise EOFError("the other end of the pipe has gone")
            done += got
        return view


def _records_out(chunk: list[SourceRecord]) -> tuple[list[Any], list[bytes]]:
    """Return a chunk of records as tuples (a record's bytes as their length, -1 for none) and those bytes."""
    tuples: list[Any] = []
    parts: list[bytes] = []
    for item in chunk:
        raw = item.raw
        size = -1 if raw is None else len(raw)
        tuples.append((item.position, item.where, size, item.document, item.error, item.errors))
        if raw is not None:
            parts.append(raw)
    return tuples, parts


def _records_in(tuples: list[Any], data: memoryview) -> list[_Sent]:
    sent: list[_Sent] = []
    offset = 0
    for position, where, size, document, error, errors in tuples:
        raw = None
        if size >= 0:
            raw = bytes(data[offset : offset + size])
            offset += size
        sent.append((position, where, raw, document, error, errors))
    return sent


def _results_out(backs: list[_Back]) -> tuple[list[Any], list[bytes]]:
    """Return a chunk's results as tuples (a node JSON as its length) and those encodings."""
    tuples: list[Any] = []
    parts: list[bytes] = []
    for position, where, key, fields, warnings, reason, problems in backs:
        if fields is not None:
            parts.append(fields[5])
            fields = (*fields[:5], len(fields[5]), *fields[6:])  # type: ignore[assignment]
        tuples.append((position, where, key, fields, warnings, reason, problems))
    return tuples, parts


def _results_in(tuples: list[Any], data: memoryview) -> list[tuple[Any, ...]]:
    backs: list[tuple[Any, ...]] = []
    offset = 0
    for position, where, key, fields, warnings, reason, problems in tuples:
        if fields is not None:
            size = fields[5]
            fields = (*fields[:5], str(data[offset : offset + size], "utf-8"), *fields[6:])
            offset += size
        backs.append((position, where, key, fields, warnings, reason, problems))
    return backs


def _worker_started() -> None:
    # Ctrl-C reaches the whole process group: the importing process decides what it means (roll back the
    # batch under way, say where to resume); a worker killed by it would only add a traceback.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    gc.freeze()
    gc.set_threshold(BULK_GC_THRESHOLD, *gc.get_threshold()[1:])


@contextmanager
def bulk_collection() -> Iterator[None]:
    """Run a bulk import with the cyclic collector set aside (the objects alive frozen, a higher threshold).

    Freezing and thawing take constant time (no collection is forced: an import request stays quick). Objects
    someone froze before stay frozen: the objects are thawed only if nothing was frozen when the import began.
    """
    threshold = gc.get_threshold()
    frozen_before = gc.get_freeze_count()
    gc.freeze()
    gc.set_threshold(BULK_GC_THRESHOLD, *threshold[1:])
    try:
        yield
    finally:
        gc.set_threshold(*threshold)
        if not frozen_before:
            gc.unfreeze()


def one_malloc_arena() -> bool:
    """Make glibc's malloc serve every thread of this process from one arena; return whether it could.

    An import's threads (the database's, the ones talking to the workers) each get an arena of their own by
    default, and most of what they allocate (the prepared records, SQLite's copies of what is written) is
    freed on another thread and lives for a different time than what is beside it: the arenas fragment and
    the importing process's peak memory grew with the file (168 MB at 10,000 passports, 178 MB at 100,000).
    With one arena it stays flat (about 153 MB at both), for about 5 % more CPU in this process, none more
    in wall time (the workers set the pace). Call it before the threads start: arenas made already stay.
    Elsewhere (musl, macOS: no mallopt) it does nothing and returns False."""
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    return bool(mallopt(M_ARENA_MAX, 1))


def workers_for(source_bytes: int, workers: int) -> int:
    """Return how many worker processes an import of `source_bytes` uses (none for a small source)."""
    return workers if source_bytes >= WORKER_MIN_BYTES else 0


def collect_garbage() -> None:
    """Collect what cycles an import left (every GARBAGE_EVERY records): with the objects alive when it began
    frozen, a full collection walks only what the import holds, a few milliseconds; without it the cycles
    the collector was set aside for would pile up with the file's length."""
    gc.collect()


def _chunks(records: Iterable[SourceRecord], size: int) -> Iterator[list[SourceRecord]]:
    chunk: list[SourceRecord] = []
    for item in records:
        chunk.append(item)
        if len(chunk) >= size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


class _Worker:
    """One worker process and the pipe only it and this process hold (a socket pair, both ways).

    Nothing else holds the worker's end, so when the worker dies, however it dies (killed in the middle of
    sending a chunk back, or while a chunk is on its way to it), this process reads the end of the pipe and
    the chunks it held fail with BrokenProcessPool. (concurrent.futures.ProcessPoolExecutor shares one
    result pipe between all its workers: a worker killed while writing a chunk back left half a message
    there, the executor's thread waited forever for the rest, and the import hung: decision 0019.)

    A thread sends it the chunks (a chunk is larger than a pipe holds; the worker reads the next one when
    it has sent the last back) and a thread receives what it sends back and hands it to the event loop."""

    def __init__(self, context: Any, limits: JsonLimits, loop: asyncio.AbstractEventLoop, number: int) -> None:
        self._loop = loop
        here, there = socket.socketpair()
        self.process = context.Process(target=_serve, args=(there, limits), name=f"import-worker-{number}", daemon=True)
        try:
            self.process.start()
        finally:
            there.close()  # the worker has its own copy now: the only one
        self._connection = here
        self._reader = _Reader(here)
        self.waiting: deque[asyncio.Future[list[tuple[Any, ...]]]] = deque()  # the chunks it holds, in order
        self.dead = False
        self._closing = False
        self._outbox: queue.SimpleQueue[list[SourceRecord] | None] = queue.SimpleQueue()
        self._sender = threading.Thread(target=self._send, name=f"{self.process.name}-send", daemon=True)
        self._receiver = threading.Thread(target=self._receive, name=f"{self.process.name}-receive", daemon=True)
        self._sender.start()
        self._receiver.start()

    def submit(self, chunk: list[SourceRecord]) -> asyncio.Future[list[tuple[Any, ...]]]:
        future: asyncio.Future[list[tuple[Any, ...]]] = self._loop.create_future()
        self.waiting.append(future)
        self._outbox.put(chunk)
        return future

    def _send(self) -> None:
        while (chunk := self._outbox.get()) is not None:
            try:
                _put_message(self._connection, *_records_out(chunk))
            except OSError:  # the worker has gone: its receiving thread reads the end of the pipe and says so
                return
        with suppress(OSError):
            _put_message(self._connection, None)  # the worker ends once it has sent back what it held

    def _receive(self) -> None:
        while True:
            try:
                (done, value), data = self._reader.read()
            except (EOFError, OSError):  # the worker has ended: at the end of a message or in the middle of one
                self._tell(self._ended)
                return
            except Exception as exc:  # an answer this process cannot unpickle (an exception of an odd kind)
                done, value = False, RuntimeError(f"a worker's answer could not be read: {exc!r}")
            else:
                if done:
                    value = _results_in(value, data)  # the text made here, before the buffer is read into again
            self._tell(self._deliver, (done, value))

    def _tell(self, callback: Any, *args: Any) -> None:
        with suppress(RuntimeError):  # the event loop is closed: nobody waits for anything any more
            self._loop.call_soon_threadsafe(callback, *args)

    def _deliver(self, reply: tuple[bool, Any]) -> None:
        future = self.waiting.popleft()
        if future.cancelled():
            return
        done, value = reply
        if done:
            future.set_result(value)
        else:
            future.set_exception(value)

    def _ended(self) -> None:
        self.dead = True
        if self._closing and not self.waiting:
            return
        while self.waiting:
            future = self.waiting.popleft()
            if not future.done():
                future.set_exception(BrokenProcessPool("a worker process ended unexpectedly"))

    def close(self, wait: bool) -> None:
        """End the worker: once it has sent back what it holds (`wait`), else at once (SIGKILL); then its
        threads, which end with the worker (its end of the pipe closes), and this process's end of the pipe."""
        self._closing = True
        if not wait and self.process.is_alive():
            self.process.kill()
        self._outbox.put(None)
        self.process.join()
        self._sender.join()
        self._receiver.join()
        self._connection.close()


def _serve(connection: socket.socket, limits: JsonLimits) -> None:
    """What a worker process runs: prepare each chunk that comes down its pipe, in turn, and send it back."""
    _worker_started()
    reader = _Reader(connection)
    while True:
        try:
            tuples, data = reader.read()
        except (EOFError, OSError):  # the importing process has gone
            return
        if tuples is None:
            return
        parts: list[bytes] = []
        try:
            results, parts = _results_out(prepare_sent(_records_in(tuples, data), limits))
            reply: tuple[bool, Any] = (True, results)
        except Exception as exc:  # a fault in preparing: raised in the importing process instead
            reply = (False, exc)
        try:
            try:
                _put_message(connection, reply, parts)
            except (pickle.PicklingError, TypeError, AttributeError) as exc:  # an exception that cannot travel
                _put_message(connection, (False, RuntimeError(f"{type(reply[1]).__name__}: {reply[1]} ({exc})")))
        except OSError:  # the importing process has gone (killed): nobody to send it to
            return


def _pick(workers: list[_Worker]) -> _Worker:
    """The worker holding the fewest chunks (the first of those): raises BrokenProcessPool if one has died."""
    if any(worker.dead for worker in workers):
        raise BrokenProcessPool("a worker process ended unexpectedly")
    return min(workers, key=lambda worker: len(worker.waiting))


async def prepared(
    records: Iterable[SourceRecord], limits: JsonLimits, workers: int = 0
) -> AsyncGenerator[Prepared, None]:
    """Yield each record made ready, in order: in this process (`workers` 0), else in worker processes.

    Records may come parsed or unparsed (`Source.records(parse=False)`: then the worker also parses them).
    At most AHEAD chunks of CHUNK records are in flight, each to the worker holding the fewest. A worker
    that dies ends it with BrokenProcessPool. Leaving the loop early (an error, a cancellation) ends the
    workers at once, without waiting for the chunks they hold.
    """
    if workers < 1:
        for item in records:
            yield prepare(item, limits)
        return
    loop = asyncio.get_running_loop()
    # spawn: a worker is a fresh interpreter, never a fork of this process (whose database threads a fork
    # would copy mid-flight). Like every spawned process it imports the main module again: a script that
    # imports with workers must guard its start with `if __name__ == "__main__":` (the command does).
    context = multiprocessing.get_context("spawn")
    pool: list[_Worker] = []
    in_flight: deque[asyncio.Future[list[tuple[Any, ...]]]] = deque()
    finished = False
    try:
        for number in range(workers):
            pool.append(_Worker(context, limits, loop, number))
        for chunk in _chunks(records, CHUNK):
            in_flight.append(_pick(pool).submit(chunk))
            if len(in_flight) >= AHEAD:
                for back in await in_flight.popleft():
                    yield _received(back)
        while in_flight:
            for back in await in_flight.popleft():
                yield _received(back)
        finished = True
    finally:
        for future in in_flight:
            if not future.cancel() and not future.cancelled():
                future.exception()  # the first failure was raised; the others are not news
        # Done: the workers are idle and end at once (waited for, so their CPU time is this process's
        # children's). Left early: they are killed, the chunks they hold not waited for.
        for worker in pool:
            worker.close(wait=finished)
