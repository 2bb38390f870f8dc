"""The import pipeline: records made ready in worker processes are exactly those made ready in the command's
own process (same verdicts, same order, the same bytes to store), a small source uses no worker, and the
garbage collector is put back as it was after an import; a worker process does not load the store; a worker
that dies ends the preparation, and no worker outlives it."""

from __future__ import annotations

import asyncio
import gc
import multiprocessing
import os
import signal
import socket
import subprocess
import sys
import threading
from concurrent.futures.process import BrokenProcessPool
from contextlib import aclosing

import orjson
import pytest

from connector.domain.json_input import JsonLimits
from connector.domain.passport.synthetic import catenax_documents
from connector.services import passport_pipeline as pipeline
from connector.services.passport_sources import SourceRecord


def _records() -> list[SourceRecord]:
    documents = list(catenax_documents(pipeline.CHUNK + 7))  # more than one chunk
    raw = [orjson.dumps(document) for document in documents]
    broken = dict(documents[3])
    broken["performance"] = {**broken["performance"], "rated": {"capacity": {"value": "120.6"}}}
    raw[3] = orjson.dumps(broken)  # refused by the schema
    raw[5] = raw[5][:-10]  # not JSON
    raw[8] = b'{"a": 1, "a": 2}'  # a repeated key
    raw[9] = raw[2]  # the same passport again (the import refuses it; preparing it is the same)
    items = [SourceRecord(i, f"passports.jsonl:{i + 1}", raw=line) for i, line in enumerate(raw)]
    items[11] = SourceRecord(11, "passports.jsonl:12", error="the record is larger than allowed")
    items[12] = SourceRecord(12, "passports.jsonl:13", document=documents[12])  # parsed already
    return items


async def _prepared(items: list[SourceRecord], workers: int) -> list[pipeline.Prepared]:
    return [ready async for ready in pipeline.prepared(items, JsonLimits(), workers)]


async def test_workers_prepare_exactly_what_this_process_prepares() -> None:
    items = _records()
    here = await _prepared(items, 0)
    in_workers = await _prepared(items, 2)
    assert [ready.position for ready in in_workers] == list(range(len(items)))
    assert in_workers == here  # verdicts, reasons, problems, keys and the encoded JSON, byte for byte
    refused = {ready.position: ready.reason for ready in here if ready.reason is not None}
    assert sorted(refused) == [3, 5, 8, 11]
    assert "duplicate key" in str(refused[8]) and "not valid JSON" in str(refused[5])
    assert here[9].write == here[2].write and here[12].write is not None


def test_a_small_source_is_prepared_in_this_process() -> None:
    assert pipeline.workers_for(pipeline.WORKER_MIN_BYTES - 1, 2) == 0
    assert pipeline.workers_for(pipeline.WORKER_MIN_BYTES, 2) == 2
    assert pipeline.workers_for(10 * pipeline.WORKER_MIN_BYTES, 0) == 0


def test_the_collector_is_put_back_after_an_import_even_a_failed_one() -> None:
    before = gc.get_threshold()
    with pipeline.bulk_collection():
        assert gc.get_threshold()[0] == pipeline.BULK_GC_THRESHOLD
        assert gc.get_freeze_count() > 0
    assert gc.get_threshold() == before and gc.get_freeze_count() == 0
    with pytest.raises(RuntimeError), pipeline.bulk_collection():
        raise RuntimeError("the import failed")
    assert gc.get_threshold() == before and gc.get_freeze_count() == 0
    gc.freeze()  # someone else's frozen objects stay frozen
    try:
        frozen = gc.get_freeze_count()
        with pipeline.bulk_collection():
            pass
        assert gc.get_freeze_count() >= frozen
    finally:
        gc.unfreeze()


# What a worker process runs, in a fresh interpreter as `spawn` starts one: the modules it loads to prepare a
# record. The store (SQLAlchemy and every repository) cost about a second of each worker's start-up.
_WORKER = """
import sys
from connector.domain.json_input import JsonLimits
from connector.services.passport_pipeline import prepare_sent
back = prepare_sent([(0, "a.jsonl:1", sys.stdin.buffer.read(), None, None, ())], JsonLimits())
assert back[0][3] is not None, back
print(" ".join(sorted(m for m in sys.modules if m.startswith(("connector.store", "sqlalchemy", "aiosqlite")))))
"""


def test_a_worker_prepares_records_without_loading_the_store() -> None:
    record = orjson.dumps(next(iter(catenax_documents(1))))
    done = subprocess.run([sys.executable, "-c", _WORKER], input=record, capture_output=True, check=False, timeout=120)
    assert done.returncode == 0, done.stderr.decode()
    assert done.stdout.decode().split() == []


def _import_workers() -> list[multiprocessing.process.BaseProcess]:
    return [child for child in multiprocessing.active_children() if child.name.startswith("import-worker")]


def _many() -> list[SourceRecord]:
    """Twelve chunks: more than are ever in flight, so chunks still go to a worker after it is killed."""
    documents = catenax_documents(12 * pipeline.CHUNK)
    return [SourceRecord(i, f"passports.jsonl:{i + 1}", raw=orjson.dumps(d)) for i, d in enumerate(documents)]


@pytest.mark.parametrize("workers", [1, 2])
async def test_a_worker_killed_ends_the_preparation_with_broken_process_pool(workers: int) -> None:
    items = _many()
    got = 0
    with pytest.raises(BrokenProcessPool):
        async with asyncio.timeout(120), aclosing(pipeline.prepared(items, JsonLimits(), workers)) as ready:
            async for _ in ready:
                if got == 0:
                    started = _import_workers()
                    assert len(started) == workers
                    os.kill(started[0].pid, signal.SIGKILL)  # type: ignore[arg-type]
                got += 1
    assert got < len(items)
    assert not _import_workers(), "the other worker is ended, and all are waited for"


async def test_leaving_early_ends_the_workers_at_once() -> None:
    async with aclosing(pipeline.prepared(_many(), JsonLimits(), 2)) as ready:
        async for _ in ready:
            assert len(_import_workers()) == 2
            break
    assert not _import_workers()


# How many malloc arenas (heaps) this process has, as glibc's malloc_info reports them (printed as a number).
_COUNT_ARENAS = """
import ctypes, os, tempfile
def arenas():
    libc = ctypes.CDLL(None)
    libc.fopen.restype = ctypes.c_void_p
    libc.fopen.argtypes = [ctypes.c_char_p, ctypes.c_char_p]
    libc.malloc_info.argtypes = [ctypes.c_int, ctypes.c_void_p]
    libc.fclose.argtypes = [ctypes.c_void_p]
    fd, path = tempfile.mkstemp()
    os.close(fd)
    stream = libc.fopen(path.encode(), b"w")
    libc.malloc_info(0, stream)
    libc.fclose(stream)
    with open(path) as f:
        text = f.read()
    os.unlink(path)
    return text.count("<heap nr=")
"""

_THREADS_ALLOCATE = (
    _COUNT_ARENAS
    + """
import sys, threading
from connector.services.passport_pipeline import one_malloc_arena
if sys.argv[1] == "one":
    assert one_malloc_arena()
def work():
    kept = [bytes(20_000) + bytes([i % 256]) for i in range(200)]  # allocated on this thread
    del kept
threads = [threading.Thread(target=work) for _ in range(4)]
for thread in threads:
    thread.start()
for thread in threads:
    thread.join()
print(arenas())
"""
)

_IMPORT_THEN_COUNT = (
    _COUNT_ARENAS
    + """
import sys, orjson
from connector.cli import main
from connector.domain.passport.synthetic import catenax_documents
if __name__ == "__main__":  # the import's workers are spawned: they import this module again
    with open(sys.argv[1], "wb") as out:
        for document in catenax_documents(int(sys.argv[2])):
            out.write(orjson.dumps(document) + b"\\n")
    code = main(["passports", "import", sys.argv[1], "--no-progress"])
    print(code, arenas())
"""
)

_glibc = pytest.mark.skipif(os.confstr("CS_GNU_LIBC_VERSION") is None, reason="malloc arenas are glibc's")


def _run_python(code: str, *args: str, env: dict[str, str] | None = None) -> str:
    done = subprocess.run(
        [sys.executable, "-c", code, *args], capture_output=True, text=True, check=False, timeout=300, env=env
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout.strip().splitlines()[-1]


@_glibc
def test_one_malloc_arena_serves_every_thread() -> None:
    # Without it, glibc gives threads arenas of their own (the measure sees them); with it, one serves all.
    assert int(_run_python(_THREADS_ALLOCATE, "default")) > 1
    assert int(_run_python(_THREADS_ALLOCATE, "one")) == 1


@_glibc
def test_the_import_command_runs_on_one_malloc_arena(tmp_path) -> None:  # type: ignore[no-untyped-def]
    # A source large enough for worker processes (so the threads that talk to them run too): the command's
    # process ends the import with the one arena it began with (decision 0019: its peak memory stays flat).
    count = pipeline.WORKER_MIN_BYTES // 12_000 + 100  # ~13.7 KB a passport: above the worker threshold
    env = {**os.environ, "CONNECTOR_DATA_DIR": str(tmp_path / "data"), "CONNECTOR_IMPORT_WORKERS": "1"}
    source = tmp_path / "passports.jsonl"
    code, arenas = _run_python(_IMPORT_THEN_COUNT, str(source), str(count), env=env).split()
    assert source.stat().st_size >= pipeline.WORKER_MIN_BYTES
    assert (code, arenas) == ("0", "1")


# The worker's pipe: messages of tuples and bytes (decision 0019, tenth round).


class _Trickling:
    """A real socket whose writes take at most `most` bytes a call, as a write a signal interrupts does."""

    def __init__(self, connection: socket.socket, most: int) -> None:
        self._connection, self._most = connection, most
        self.calls = 0

    def sendmsg(self, buffers: list[memoryview]) -> int:
        self.calls += 1
        taken: list[memoryview] = []
        room = self._most
        for buffer in buffers:
            if room <= 0:
                break
            taken.append(buffer[:room])
            room -= len(taken[-1])
        return self._connection.sendmsg(taken)


def _exchange(messages: list[tuple[object, list[bytes]]], most: int | None = None) -> list[tuple[object, bytes]]:
    """Send messages through a socket pair from a thread (trickled, with `most`); return what the reader read."""
    here, there = socket.socketpair()
    writer = there if most is None else _Trickling(there, most)

    def send() -> None:
        for meta, parts in messages:
            pipeline._put_message(writer, meta, parts)  # type: ignore[arg-type]
        there.close()

    thread = threading.Thread(target=send, daemon=True)
    thread.start()
    here.settimeout(60)  # a writer that lost its place never ends its message: the read fails, not hangs
    reader = pipeline._Reader(here)
    got = []
    try:
        for _ in messages:
            meta, data = reader.read()
            got.append((meta, bytes(data)))  # copied before the next read reuses the buffer
        with pytest.raises(EOFError):
            reader.read()
    finally:
        here.close()
        thread.join(60)
    return got


def test_messages_arrive_whole_and_in_order_however_the_writes_are_cut() -> None:
    big = [os.urandom(300_000), b"", os.urandom(70_001), b"x"]
    messages = [(("first", 1), big), (None, []), ({"n": [1, 2]}, [os.urandom(5)] * 3), (("large", 2), big * 4)]
    expected = [(meta, b"".join(parts)) for meta, parts in messages]
    assert _exchange(messages) == expected
    assert _exchange(messages, most=4093) == expected  # every buffer cut mid-way, many times


def test_a_pipe_that_ends_mid_message_is_the_end_of_the_worker() -> None:
    here, there = socket.socketpair()
    there.sendall(pipeline._HEADER.pack(10, 5) + b"12345")  # promised 15 bytes, sent 5
    there.close()
    with pytest.raises(EOFError):
        pipeline._Reader(here).read()
    here.close()


def test_records_and_results_travel_as_they_are() -> None:
    items = _records()
    tuples, parts = pipeline._records_out(items)
    sent = pipeline._records_in(tuples, memoryview(b"".join(parts)))
    assert sent == [(i.position, i.where, i.raw, i.document, i.error, i.errors) for i in items]
    backs = pipeline.prepare_sent(sent, JsonLimits())
    tuples, parts = pipeline._results_out(backs)
    arrived = pipeline._results_in(tuples, memoryview(b"".join(parts)))
    assert [pipeline._received(back) for back in arrived] == [pipeline._received(back) for back in backs]
    assert sum(back[3] is not None for back in arrived) == len(parts) > 0
