"""A serving node's log lines are written in batches (no write per line), and none is lost when it stops.

`BufferedStreamHandler` keeps INFO and DEBUG lines up to CONNECTOR_LOG_FLUSH_SECONDS, writes a WARNING or worse at
once with every line before it, and writes what it keeps when it is flushed or closed, which the interpreter's exit
does (decision 0028, docs/operations.md).
"""

from __future__ import annotations

import asyncio
import io
import json
import logging
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import aiohttp
import orjson
import pytest

from connector import logs
from tests.conftest import REPO


class _CountingStream(io.StringIO):
    """A stream that counts its writes (each would be a system call on stderr)."""

    def __init__(self) -> None:
        super().__init__()
        self.writes = 0

    def write(self, text: str) -> int:
        self.writes += 1
        return super().write(text)


@pytest.fixture
def buffered() -> Iterator[tuple[logging.Logger, logs.BufferedStreamHandler, _CountingStream]]:
    """A logger writing through a buffered handler whose timer never comes during a test (an hour)."""
    stream = _CountingStream()
    handler = logs.BufferedStreamHandler(stream, flush_seconds=3600, max_bytes=4096)
    handler.setFormatter(logs.JsonFormatter())
    logger = logging.getLogger("connector.test-buffered")
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    logger.propagate = False
    try:
        yield logger, handler, stream
    finally:
        logger.removeHandler(handler)
        logger.propagate = True
        handler.close()


def _messages(text: str) -> list[str]:
    return [orjson.loads(line)["msg"] for line in text.splitlines()]


def test_info_lines_are_kept_and_a_warning_writes_them_first_in_one_write(
    buffered: tuple[logging.Logger, logs.BufferedStreamHandler, _CountingStream],
) -> None:
    logger, _, stream = buffered
    for n in range(5):
        logger.info("line %d", n)
    logger.debug("debug line")
    assert stream.getvalue() == "" and stream.writes == 0
    logger.warning("a warning")
    assert _messages(stream.getvalue()) == [*(f"line {n}" for n in range(5)), "debug line", "a warning"]
    assert stream.writes == 1


def test_an_error_is_written_at_once(
    buffered: tuple[logging.Logger, logs.BufferedStreamHandler, _CountingStream],
) -> None:
    logger, _, stream = buffered
    try:
        raise ValueError("boom")
    except ValueError:
        logger.exception("it failed")
    (entry,) = [orjson.loads(line) for line in stream.getvalue().splitlines()]
    assert entry["level"] == "ERROR" and "ValueError: boom" in entry["exc"]


def test_more_than_max_bytes_kept_are_written_without_waiting(
    buffered: tuple[logging.Logger, logs.BufferedStreamHandler, _CountingStream],
) -> None:
    logger, _, stream = buffered
    n = 0
    while stream.writes == 0:
        logger.info("filler %d %s", n, "x" * 200)
        n += 1
        assert n < 100, "4 KiB of lines were never written"
    # Every line logged so far was written, in order; none is kept twice.
    assert _messages(stream.getvalue()) == [f"filler {i} {'x' * 200}" for i in range(n)]


def test_flush_and_close_write_what_is_kept(
    buffered: tuple[logging.Logger, logs.BufferedStreamHandler, _CountingStream],
) -> None:
    logger, handler, stream = buffered
    logger.info("before flush")
    handler.flush()
    assert _messages(stream.getvalue()) == ["before flush"]
    logger.info("before close")
    handler.close()
    assert _messages(stream.getvalue()) == ["before flush", "before close"]


def test_the_timer_writes_kept_lines_without_another_log_call() -> None:
    stream = _CountingStream()
    handler = logs.BufferedStreamHandler(stream, flush_seconds=0.05)
    handler.setFormatter(logs.JsonFormatter())
    logger = logging.getLogger("connector.test-buffered-timer")
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    logger.propagate = False
    try:
        logger.info("waits for the timer")
        deadline = time.monotonic() + 30  # a liveness bound for a loaded machine, not a measurement
        while not stream.getvalue() and time.monotonic() < deadline:
            time.sleep(0.01)
        assert _messages(stream.getvalue()) == ["waits for the timer"]
    finally:
        logger.removeHandler(handler)
        logger.propagate = True
        handler.close()


def test_configure_buffers_only_when_asked_and_closes_the_handler_it_replaces() -> None:
    root = logging.getLogger()
    saved_handlers, saved_level = root.handlers[:], root.level
    try:
        logs.configure("INFO", "json", flush_seconds=0.1)
        (first,) = root.handlers
        assert isinstance(first, logs.BufferedStreamHandler)
        logs.configure("INFO", "json")
        (plain,) = root.handlers
        assert type(plain) is logging.StreamHandler
        first._writer.join(timeout=30)
        assert not first._writer.is_alive()  # the replaced handler's timer ended
    finally:
        root.handlers[:] = saved_handlers
        root.setLevel(saved_level)


@pytest.mark.parametrize(
    ("ending", "code"),
    [("pass", 0), ("sys.exit(3)", 3), ("raise RuntimeError('unhandled')", 1)],
    ids=["returns", "sys-exit", "unhandled-error"],
)
def test_every_kept_line_is_written_when_the_process_exits(ending: str, code: int) -> None:
    script = (
        "import logging, sys\n"
        "from connector import logs\n"
        "logs.configure('INFO', 'json', flush_seconds=3600)\n"
        "for n in range(100):\n"
        "    logging.getLogger('connector.exit').info('line %d', n)\n"
        f"{ending}\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], cwd=REPO, capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == code, done.stderr
    lines = [line for line in done.stderr.splitlines() if line.startswith("{")]
    assert _messages("\n".join(lines)) == [f"line {n}" for n in range(100)]


async def test_a_serving_node_stopped_by_sigterm_writes_every_access_line(tmp_path: Path) -> None:
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "CONNECTOR_PROTOCOL_HOST": "127.0.0.1",
        "CONNECTOR_PROTOCOL_PORT": "0",
        "CONNECTOR_MANAGEMENT_PORT": "0",
        # Longer than the test takes from its last request to SIGTERM: what is kept is written by the stop.
        "CONNECTOR_LOG_FLUSH_SECONDS": "5",
    }
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "connector.cli", "serve", cwd=tmp_path, env=env, stderr=asyncio.subprocess.PIPE
    )
    assert process.stderr is not None
    try:
        async with asyncio.timeout(120):
            while True:
                line = (await process.stderr.readline()).decode()
                assert line, "the node exited before it started"
                if '"node started"' in line:
                    protocol = int(json.loads(line)["protocol"].rsplit(":", 1)[1])
                    break
        async with aiohttp.ClientSession() as http:
            for n in range(20):
                headers = {"X-Request-Id": f"buffered-{n}"}
                async with http.get(f"http://127.0.0.1:{protocol}/public/p{n}", headers=headers) as response:
                    assert response.status == 401  # no token: refused, and logged like any request
    finally:
        process.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(process.wait(), 60) == 0
    logged = [orjson.loads(line) for line in (await process.stderr.read()).decode().splitlines() if line[:1] == "{"]
    access = [entry["request_id"] for entry in logged if entry["msg"].startswith("GET /public/p")]
    assert access == [f"buffered-{n}" for n in range(20)]
    assert logged[-1]["msg"] == "node stopped"
