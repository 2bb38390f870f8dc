"""A consumer's request path never leaves the dataset's baseUrl, whatever its encoding (issue 18 §2).

A hostile consumer holds a valid token of a pull transfer of an HttpData asset whose backend receives the
asset's secret. Requests are sent un-normalised over a raw socket (as `curl --path-as-is` does), and a
backend on loopback records every path it is called on, so "never forwarded" is checked where it matters.
"""

from __future__ import annotations

import asyncio
import json
import posixpath
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import unquote

import aiohttp
import pytest
from aiohttp import web
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from connector.app import Node
from tests.conftest import API_KEY, NodeFactory
from tests.test_two_nodes_transfer import _started_pull

BASE_PATH = "/source/passports"
SECRET = "backend-secret"


class RecordingBackend:
    """The operator's backend: answers under BASE_PATH, and records every request it gets, wherever it goes."""

    def __init__(self) -> None:
        self.seen: list[tuple[str, dict[str, str]]] = []  # (raw path and query, headers)
        self.url = ""
        self._runner: web.AppRunner | None = None

    async def start(self) -> None:
        app = web.Application()
        app.router.add_route("*", "/{anything:.*}", self._any)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.url = f"http://127.0.0.1:{self._runner.addresses[0][1]}"

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    async def _any(self, request: web.Request) -> web.Response:
        self.seen.append((request.raw_path, dict(request.headers)))
        if not request.raw_path.startswith(BASE_PATH):
            return web.json_response({"error": "the admin API"}, status=200)  # what an attacker hopes to reach
        return web.json_response(
            {"batteryId": "BAT-1", "path": request.path, "query": [[k, v] for k, v in request.query.items()]}
        )


@pytest.fixture
async def recording_backend() -> AsyncIterator[RecordingBackend]:
    server = RecordingBackend()
    await server.start()
    yield server
    await server.stop()


async def raw_get(port: int, target: str, authorization: str) -> tuple[int, dict[str, str], bytes]:
    """Send one GET with the request target exactly as given (no client normalisation); return the answer."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(
            f"GET {target} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nAuthorization: {authorization}\r\n"
            "Connection: close\r\n\r\n".encode("latin-1")
        )
        await writer.drain()
        async with asyncio.timeout(20):
            raw = await reader.read()
    finally:
        writer.close()
    head, _, body = raw.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split(" ", 2)[1])
    headers = {k.lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:])}
    if headers.get("transfer-encoding") == "chunked":
        body = _unchunk(body)
    return status, headers, body


def _unchunk(data: bytes) -> bytes:
    out = b""
    while data:
        size_line, _, data = data.partition(b"\r\n")
        size = int(size_line.split(b";")[0], 16)
        if size == 0:
            break
        out, data = out + data[:size], data[size + 2 :]
    return out


def below_base(raw_path_qs: str) -> bool:
    """Tell whether a path the backend got stays below BASE_PATH however a server reads it.

    Read raw, decoded once and twice, with backslashes as slashes and `;` parameters dropped, then with
    dot segments resolved: every reading must stay below the base.
    """
    path = raw_path_qs.split("?", 1)[0]
    readings = {path, unquote(path), unquote(unquote(path))}
    for reading in readings:
        slashed = reading.replace("\\", "/")
        no_params = "/".join(segment.split(";", 1)[0] for segment in slashed.split("/"))
        for candidate in (slashed, no_params):
            resolved = posixpath.normpath(candidate)
            if not (resolved == BASE_PATH or resolved.startswith(BASE_PATH + "/")):
                return False
    return True


async def _pull(
    node_factory: NodeFactory, http: aiohttp.ClientSession, backend: RecordingBackend
) -> tuple[Node, dict[str, Any]]:
    provider = await node_factory(api_key=API_KEY)
    consumer = await node_factory(api_key=API_KEY)
    _, address = await _started_pull(provider, consumer, http, backend)  # type: ignore[arg-type]
    return provider, address


# Each of these tried to reach <backend>/admin (or above the base) with the asset's secret.
TRAVERSALS = [
    "..%2F..%2Fadmin",
    "../../admin",
    "BAT-1/../../../admin",
    "%2e%2e/%2e%2e/admin",
    "%2E%2e/%2e%2E/admin",
    "%2e%2e%2f%2e%2e%2fadmin",
    ".%2e/.%2e/admin",
    "%252e%252e/%252e%252e/admin",
    "%252e%252e%252f%252e%252e%252fadmin",
    "..%5C..%5Cadmin",
    "..%5c..%5cadmin",
    "..\\..\\admin",
    "..;/..;/admin",
    "..%3B/..%3B/admin",
    "BAT-1;x=1/../../admin",
    "%00/../../admin",
    "BAT-1%00.json",
    "%c0%ae%c0%ae/%c0%ae%c0%ae/admin",
    "%ef%bc%8e%ef%bc%8e/%ef%bc%8e%ef%bc%8e/admin",
    "..%ef%bc%8f..%ef%bc%8fadmin",
    "/../admin",
    "/%2e%2e/admin",
    "%2fadmin",
    ".",
    "..",
    "%2e",
]


async def test_traversal_forms_get_400_with_the_data_planes_body_and_never_reach_the_backend(
    node_factory: NodeFactory, http: aiohttp.ClientSession, recording_backend: RecordingBackend
) -> None:
    provider, address = await _pull(node_factory, http, recording_backend)
    port, token = provider.protocol_port, address["authorization"]
    for tail in TRAVERSALS:
        before = len(recording_backend.seen)
        status, headers, body = await raw_get(port, f"/public/{tail}", token)
        assert status == 400, (tail, status, body[:300])
        assert headers["content-type"].startswith("application/json"), tail
        answer = json.loads(body)
        assert answer["error"] == "Bad Request" and "leave" in answer["reason"], (tail, answer)
        assert SECRET.encode() not in body and recording_backend.url.encode() not in body, tail
        assert BASE_PATH.encode() not in body, tail  # nothing of the dataset's address is echoed
        assert len(recording_backend.seen) == before, f"{tail!r} reached the backend: {recording_backend.seen[-1]}"

    # Ordinary sub-paths and queries still go through, below the base, re-encoded as sent.
    for tail, path in [
        ("BAT-1", f"{BASE_PATH}/BAT-1"),
        ("BAT-1/", f"{BASE_PATH}/BAT-1/"),
        ("models/M-7/BAT-1", f"{BASE_PATH}/models/M-7/BAT-1"),
        ("urn:uuid:1234", f"{BASE_PATH}/urn:uuid:1234"),
        ("a%20b", f"{BASE_PATH}/a b"),
        ("..a..", f"{BASE_PATH}/..a.."),
        ("v1.2", f"{BASE_PATH}/v1.2"),
        ("%C3%A9", f"{BASE_PATH}/\u00e9"),
    ]:
        status, _, body = await raw_get(port, f"/public/{tail}", token)
        assert status == 200, (tail, body[:300])
        assert json.loads(body)["path"] == path
    _, headers = recording_backend.seen[-1]
    assert headers["X-Api-Secret"] == SECRET

    # The query reaches the backend as the consumer's parameters, not re-read: an encoded '&' or '#' stays a value.
    status, _, body = await raw_get(port, "/public/BAT-1?x=%26admin%3Dtrue&y=%23frag&z=1+2", token)
    assert status == 200, body
    assert json.loads(body)["query"] == [["x", "&admin=true"], ["y", "#frag"], ["z", "1 2"]]
    status, _, body = await raw_get(port, "/public/BAT-1?x=a%00b", token)
    assert status == 400 and "control character" in json.loads(body)["reason"]

    # The mount point itself must be written plainly: an encoded /public is not a way around the check.
    status, _, body = await raw_get(port, "/p%75blic/..%2F..%2Fadmin", token)
    assert status in (400, 404), body
    assert all(below_base(path) for path, _ in recording_backend.seen), recording_backend.seen


_PIECES = st.sampled_from(
    [
        "..",
        ".",
        "%2e",
        "%2E",
        "%2e%2e",
        ".%2e",
        "%2f",
        "%2F",
        "%5c",
        "%5C",
        "\\",
        "/",
        "//",
        ";",
        "%3b",
        ";x=1",
        "%25",
        "%252e",
        "%252f",
        "%25252e",
        "%00",
        "%0a",
        "%c0%ae",
        "%ef%bc%8e",
        "%ef%bc%8f",
        "%e2%80%a4",
        "a",
        "BAT-1",
        "admin",
        "~",
        "%7e",
        "%41",
        "%zz",
        "%",
        ":",
        "@",
        "!",
    ]
)
TAILS = st.lists(_PIECES, min_size=1, max_size=8).map("".join)


async def test_no_encoding_of_a_sub_path_reaches_the_backend_outside_the_base(
    node_factory: NodeFactory, http: aiohttp.ClientSession, recording_backend: RecordingBackend
) -> None:
    provider, address = await _pull(node_factory, http, recording_backend)
    port, token = provider.protocol_port, address["authorization"]
    loop = asyncio.get_running_loop()
    statuses: set[int] = set()

    @settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(tail=TAILS)
    def each(tail: str) -> None:
        before = len(recording_backend.seen)
        future = asyncio.run_coroutine_threadsafe(raw_get(port, f"/public/{tail}", token), loop)
        status, _, body = future.result(timeout=30)
        statuses.add(status)
        assert status in (200, 400), (tail, status, body[:300])
        assert SECRET.encode() not in body
        for path, _ in recording_backend.seen[before:]:
            assert below_base(path), f"/public/{tail} made the provider call {path}"
        if status == 400:
            assert len(recording_backend.seen) == before, tail

    # The servers run on this loop; the examples run in a thread and send through it.
    await asyncio.to_thread(each)
    assert statuses == {200, 400}  # both kinds were tried
    assert all(below_base(path) for path, _ in recording_backend.seen)
