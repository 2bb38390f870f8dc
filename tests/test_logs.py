"""Structured logs: no log call can raise, whatever keys its `extra` holds.

A key of `extra` that names a LogRecord attribute (`message`, `created`, `args`, ...) made the standard
library raise KeyError inside the handler that logged, rolling its transaction back. The node's loggers
move such a key to `ctx_<key>` instead, and the value still reaches the JSON line.
"""

from __future__ import annotations

import io
import logging
import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import orjson
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient

from connector import logs
from connector.transport.http import request_context
from tests.conftest import REPO, NodeFactory
from tests.tck_harness import TOKEN

RESERVED = sorted(set(logging.LogRecord("", 0, "", 0, "", (), None).__dict__) | {"message", "asctime"})
LEVELS = ("debug", "info", "warning", "error", "critical", "exception")


@pytest.fixture
def json_lines() -> Iterator[io.StringIO]:
    """Capture every record of the node's loggers, at DEBUG, as the node's JSON lines."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logs.JsonFormatter())
    node_logger = logging.getLogger("connector")
    saved = node_logger.level
    node_logger.addHandler(handler)
    node_logger.setLevel(logging.DEBUG)
    try:
        yield stream
    finally:
        node_logger.removeHandler(handler)
        node_logger.setLevel(saved)


def _entries(stream: io.StringIO, msg: str) -> list[dict[str, Any]]:
    found = [orjson.loads(line) for line in stream.getvalue().splitlines()]
    return [entry for entry in found if entry["msg"] == msg]


def _values() -> dict[str, str]:
    return {key: f"value of {key}" for key in RESERVED}


async def test_every_reserved_key_at_every_level_inside_a_request(aiohttp_client: Any, json_lines: io.StringIO) -> None:
    log = logging.getLogger("connector.test-request")

    async def handler(request: web.Request) -> web.Response:
        for level in LEVELS:
            if level == "exception":
                try:
                    raise ValueError("boom")
                except ValueError:
                    log.exception("logged at %s", level, extra=_values())
            else:
                getattr(log, level)("logged at %s", level, extra=_values())
        return web.json_response({"ok": True})

    app = web.Application(middlewares=[request_context])
    app.router.add_get("/log", handler)
    client: TestClient[web.Request, web.Application] = await aiohttp_client(app)
    response = await client.get("/log")
    assert response.status == 200, await response.text()
    for level in LEVELS:
        (entry,) = _entries(json_lines, f"logged at {level}")
        assert entry["request_id"] == response.headers["X-Request-Id"]
        for key, value in _values().items():
            assert entry[f"ctx_{key}"] == value, (level, key)
        # The record's own fields are not overwritten by the caller's.
        assert entry["level"] == ("ERROR" if level == "exception" else level.upper())
        assert entry["logger"] == "connector.test-request"


def test_keys_of_the_json_line_itself_are_not_overwritten(json_lines: io.StringIO) -> None:
    logging.getLogger("connector.test-line").info(
        "line keys", extra={"ts": "t", "level": "l", "logger": "g", "request_id": "r", "msg": "m", "ctx_msg": "c"}
    )
    (entry,) = _entries(json_lines, "line keys")
    assert entry["level"] == "INFO" and entry["logger"] == "connector.test-line" and "request_id" not in entry
    assert {entry["ctx_ts"], entry["ctx_level"], entry["ctx_logger"], entry["ctx_request_id"]} == {"t", "l", "g", "r"}
    # Two values competing for one name: both kept.
    assert sorted([entry["ctx_msg"], entry["ctx_ctx_msg"]]) == ["c", "m"]


def test_a_logger_created_before_the_node_configured_logging_is_safe_too() -> None:
    script = (
        "import logging\n"
        "early = logging.getLogger('connector.early')\n"
        "from connector import logs\n"
        "logs.configure('INFO', 'json')\n"
        "early.info('early logger', extra={'message': 'm', 'created': 5, 'name': 'n'})\n"
        "logging.getLogger('connector.late').warning('late logger', extra={'args': 'a'})\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], cwd=REPO, capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stderr
    lines = [orjson.loads(line) for line in done.stderr.splitlines()]
    assert [line["msg"] for line in lines] == ["early logger", "late logger"], done.stderr
    assert lines[0]["ctx_message"] == "m" and lines[0]["ctx_created"] == 5 and lines[0]["ctx_name"] == "n"
    assert lines[0]["logger"] == "connector.early"
    assert lines[1]["ctx_args"] == "a"


async def test_a_conformance_test_node_starts_with_info_logs(
    node_factory: NodeFactory, json_lines: io.StringIO
) -> None:
    # Seeding the TCK's data logs how many items it created (`created`, a LogRecord attribute).
    await node_factory(tck_mode=True, tck_authorization=TOKEN)
    (entry,) = _entries(json_lines, "conformance test data seeded")
    assert entry["ctx_created"] > 0
