"""Requests aiohttp's HTTP parser refuses are answered in each surface's own error body, echoing nothing.

Sent over a raw socket to a real node: an oversized `Authorization` header, too many headers, a malformed
request line, bad chunking and more. The answer is 400 with the DSP error shape on the protocol surface and
problem+json on the management surface, and no piece of what was sent appears in it or in the log.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import secrets
from collections.abc import Iterator

import pytest

from connector.app import Node
from connector.dsp.common import DSP_CONTEXT
from tests.conftest import API_KEY, NodeFactory

DEFAULT_LIMIT = 16_384


def _marker(size: int) -> str:
    """A token-like value whose every 12-character window is unique to this test run."""
    out = ""
    while len(out) < size:
        out += secrets.token_urlsafe(48)
    return out[:size]


def _echoed(sent: str, answer: bytes, window: int = 12) -> str | None:
    """Return a piece of `sent` (of `window` characters) found in `answer`, if any."""
    text = answer.decode("latin-1")
    for start in range(max(1, len(sent) - window + 1)):
        piece = sent[start : start + window]
        if piece in text:
            return piece
    return None


async def raw_exchange(port: int, data: bytes) -> tuple[int, dict[str, str], bytes]:
    """Send raw bytes; return the status, headers and body of the answer (read until the node closes)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(data)
        await writer.drain()
        async with asyncio.timeout(10):
            raw = await reader.read()
    finally:
        writer.close()
    head, _, body = raw.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:])}
    return int(lines[0].split(" ", 2)[1]), headers, body


def _faults(secret: str) -> dict[str, bytes]:
    """Each kind of request the parser refuses, each carrying `secret` where it goes wrong."""
    host = b"Host: 127.0.0.1\r\n"
    s = secret.encode()
    return {
        "oversized Authorization": b"GET /api/dsp/2025-1/catalog/datasets/x HTTP/1.1\r\n"
        + host
        + b"Authorization: Bearer "
        + s
        + b"\r\n\r\n",
        "oversized header name": b"GET / HTTP/1.1\r\n" + host + b"X-" + s + b": v\r\n\r\n",
        "oversized request line": b"GET /" + s + b" HTTP/1.1\r\n" + host + b"\r\n",
        "too many headers": b"GET / HTTP/1.1\r\n"
        + host
        + b"".join(b"X-H%d: %s\r\n" % (i, s[:40]) for i in range(200))
        + b"\r\n",
        "malformed request line": b"GET /\x01" + s[:40] + b" HTTP/1.1\r\n" + host + b"\r\n",
        "invalid header name": b"GET / HTTP/1.1\r\n" + host + b"Bad Header " + s[:40] + b": v\r\n\r\n",
        "NUL in a header value": b"GET / HTTP/1.1\r\n" + host + b"Authorization: Bearer \x00" + s[:40] + b"\r\n\r\n",
        "bad chunking": b"POST /api/dsp/2025-1/catalog/request HTTP/1.1\r\n"
        + host
        + b"Transfer-Encoding: chunked\r\n\r\nZZ"
        + s[:40]
        + b"\r\nabc\r\n0\r\n\r\n",
        "Content-Length with chunking": b"POST / HTTP/1.1\r\n"
        + host
        + b"Content-Length: 3\r\nTransfer-Encoding: chunked\r\nX-S: "
        + s[:40]
        + b"\r\n\r\n0\r\n\r\n",
        "TLS on the plain port": b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + s[:40] + b"\r\n\r\n",
    }


class _Records(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        text = record.getMessage() + " " + " ".join(f"{k}={v}" for k, v in record.__dict__.items())
        if record.exc_info and record.exc_info[1] is not None:
            text += " " + repr(record.exc_info[1]) + str(record.exc_info[1])
        self.lines.append(text)


@pytest.fixture
def log_records() -> Iterator[_Records]:
    handler = _Records()
    root = logging.getLogger()
    previous = root.level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    yield handler
    root.removeHandler(handler)
    root.setLevel(previous)


def _check_dsp_error(body: bytes) -> str:
    answer = json.loads(body)
    assert answer["@context"] == [DSP_CONTEXT] and answer["@type"] == "CatalogError", answer
    assert answer["code"] == "400" and isinstance(answer["reason"], list) and len(answer["reason"]) == 1
    return str(answer["reason"][0])


def _check_problem(body: bytes) -> str:
    answer = json.loads(body)
    assert answer["status"] == 400 and answer["title"] == "Bad request" and answer["type"] == "about:blank"
    return str(answer["detail"])


async def test_parser_faults_get_the_surfaces_error_body_and_echo_nothing(node: Node, log_records: _Records) -> None:
    secret = _marker(DEFAULT_LIMIT + 2000)
    surfaces = [
        (node.protocol_port, "application/json", _check_dsp_error),
        (node.management_port, "application/problem+json", _check_problem),
    ]
    for port, content_type, check in surfaces:
        for fault, data in _faults(secret).items():
            status, headers, body = await raw_exchange(port, data)
            assert status == 400, (fault, port, body[:200])
            assert headers["content-type"].startswith(content_type), (fault, headers)
            detail = check(body)
            assert detail, fault
            if "oversized" in fault:
                assert f"({DEFAULT_LIMIT} bytes)" in detail, (fault, detail)
            assert (piece := _echoed(secret, body)) is None, f"{fault}: the answer echoes {piece!r}"
    logged = "\n".join(log_records.lines)
    assert "malformed HTTP request refused" in logged
    assert (piece := _echoed(secret, logged.encode("latin-1", "replace"))) is None, f"the log holds {piece!r}"


async def test_a_header_below_the_limit_is_read_and_one_above_is_refused(
    node_factory: NodeFactory,
) -> None:
    node = await node_factory(api_key=API_KEY, max_header_bytes=20_000)
    large = "Bearer " + _marker(19_000)  # a self-issued token embedding a presentation of a dozen credentials
    request = (
        f"GET /api/dsp/2025-1/catalog/datasets/x HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: {large}\r\n"
        "Connection: close\r\n\r\n"
    ).encode()
    status, _, body = await raw_exchange(node.protocol_port, request)
    assert status == 401, body[:300]  # read, and refused by DSP authentication, not by the parser
    assert _echoed(large[7:], body) is None
    management = (
        f"GET /management/v3/assets HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Api-Key: {API_KEY}\r\nX-Large: {large}\r\n"
        "Connection: close\r\n\r\n"
    ).encode()
    status, _, body = await raw_exchange(node.management_port, management)
    assert status != 400, body[:300]

    too_large = "Bearer " + _marker(21_000)
    request = f"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: {too_large}\r\n\r\n".encode()
    status, _, body = await raw_exchange(node.protocol_port, request)
    assert status == 400 and "20000 bytes" in _check_dsp_error(body)
    assert _echoed(too_large[7:], body) is None


async def test_the_default_limit_admits_a_token_past_aiohttps_8_kib(node: Node) -> None:
    token = "Bearer " + _marker(12_000)  # a DCP token with an embedded presentation of five credentials
    request = (
        f"GET /api/dsp/2025-1/catalog/datasets/x HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: {token}\r\n"
        "Connection: close\r\n\r\n"
    ).encode()
    status, _, body = await raw_exchange(node.protocol_port, request)
    assert status == 401, body[:300]


async def raw_exchange_in_two(port: int, head: bytes, rest: bytes) -> bytes:
    """Send the head of a request, then (in a later segment) the rest; return all the node answers."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(head)
        await writer.drain()
        await asyncio.sleep(0.2)  # the handler is running, reading the body, when the rest arrives
        writer.write(rest)
        await writer.drain()
        async with asyncio.timeout(10):
            return await reader.read()
    finally:
        writer.close()


async def test_bad_chunking_after_the_headers_ends_the_body_being_read(node_factory: NodeFactory) -> None:
    """aiohttp leaves a handler reading a broken chunked body waiting for ever; it gets a 400 at once instead."""
    provider = await node_factory(api_key=API_KEY)
    consumer = await node_factory(api_key=API_KEY)
    secret = _marker(40)
    broken = b'5\r\n{"a":\r\nZZ' + secret.encode() + b"\r\n"
    chunked = "Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"
    management = f"POST /management/v3/assets HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Api-Key: {API_KEY}\r\n{chunked}"
    token = consumer.identity.token_for(provider.settings.effective_did)
    dsp = f"POST /api/dsp/2025-1/catalog/request HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: {token}\r\n{chunked}"
    for port, head, content_type in [
        (provider.management_port, management, "application/problem+json"),
        (provider.protocol_port, dsp, "application/json"),
    ]:
        answer = await raw_exchange_in_two(port, head.encode(), broken)
        assert len(re.findall(rb"(?:^|\n)HTTP/1\.[01] \d{3} ", answer)) == 1, answer  # one answer, then closed
        head_part, _, body = answer.partition(b"\r\n\r\n")
        assert head_part.split(b" ")[1] == b"400", answer
        assert f"content-type: {content_type}".encode() in head_part.lower(), answer
        assert b"chunked" in body and _echoed(secret, body, window=8) is None, body
        json.loads(body)
