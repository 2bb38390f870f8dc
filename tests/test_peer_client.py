"""The peer client keeps its limits against real misbehaving servers on loopback."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator

import pytest
from aiohttp import web
from aiohttp.abc import AbstractResolver, ResolveResult

from connector.domain.addresses import is_public_address
from connector.domain.errors import PeerError, PeerTimeout
from connector.transport.peer import PeerClient, PeerLimits, _PublicOnlyResolver


async def _slow(request: web.Request) -> web.Response:
    await asyncio.sleep(5)
    return web.json_response({})


async def _big(request: web.Request) -> web.StreamResponse:
    response = web.StreamResponse(headers={"Content-Type": "application/json"})
    await response.prepare(request)
    for _ in range(64):
        await response.write(b" " * 65536)
    await response.write_eof()
    return response


async def _redirect(request: web.Request) -> web.Response:
    raise web.HTTPFound("http://169.254.169.254/latest/meta-data/")


async def _json(request: web.Request) -> web.Response:
    return web.json_response({"echo": await request.json() if request.can_read_body else None})


async def _garbage(request: web.Request) -> web.Response:
    return web.Response(body=b"{not json", content_type="application/json")


@pytest.fixture
async def peer_url() -> AsyncIterator[str]:
    app = web.Application()
    app.router.add_get("/slow", _slow)
    app.router.add_get("/big", _big)
    app.router.add_get("/redirect", _redirect)
    app.router.add_post("/json", _json)
    app.router.add_get("/garbage", _garbage)
    runner = web.AppRunner(app, handle_signals=False)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    yield f"http://127.0.0.1:{runner.addresses[0][1]}"
    await runner.cleanup()


@pytest.fixture
async def local_client() -> AsyncIterator[PeerClient]:
    client = PeerClient(PeerLimits(timeout=1.0, max_body_bytes=1024 * 1024, allow_local=True))
    yield client
    await client.close()


async def test_json_round_trip(peer_url: str, local_client: PeerClient) -> None:
    answer = await local_client.request("POST", peer_url + "/json", json={"a": 1})
    assert answer.ok and answer.body == {"echo": {"a": 1}}


async def test_slow_peer_times_out(peer_url: str, local_client: PeerClient) -> None:
    with pytest.raises(PeerTimeout, match="did not answer within 1 s"):
        await local_client.request("GET", peer_url + "/slow")


async def test_oversized_answer_is_cut_off(peer_url: str, local_client: PeerClient) -> None:
    with pytest.raises(PeerError, match="more than 1048576 bytes"):
        await local_client.request("GET", peer_url + "/big")


async def test_redirects_are_not_followed(peer_url: str, local_client: PeerClient) -> None:
    with pytest.raises(PeerError, match="redirects are not followed"):
        await local_client.request("GET", peer_url + "/redirect")


async def test_invalid_json_is_reported(peer_url: str, local_client: PeerClient) -> None:
    with pytest.raises(PeerError, match="not valid JSON"):
        await local_client.request("GET", peer_url + "/garbage")


async def test_unreachable_peer_is_reported(local_client: PeerClient) -> None:
    with pytest.raises(PeerError, match="cannot connect"):
        await local_client.request("GET", "http://127.0.0.1:9/nothing")


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:8282/x",
        "http://10.1.2.3/x",
        "http://[::1]/x",
        "http://169.254.169.254/latest/meta-data/",
        "http://localhost:8282/x",
        "http://api.localhost/x",
        # IPv6 transition forms and special IPv4 ranges around the metadata service and the node itself.
        "http://[64:ff9b::a9fe:a9fe]/latest/meta-data/",
        "http://[2002:a9fe:a9fe::1]/latest/meta-data/",
        "http://[::a9fe:a9fe]/latest/meta-data/",
        "http://[::ffff:169.254.169.254]/latest/meta-data/",
        "http://[::ffff:a9fe:a9fe]/latest/meta-data/",
        "http://[2001:0:4136:e378:8000:63bf:3fff:fdd2]/x",
        "http://[64:ff9b::7f00:1]:8282/x",
        "http://[fe80::1%25eth0]/x",
        "http://192.0.0.8/x",
        "http://198.18.0.1/x",
        "http://0.0.0.0:8282/x",
        "ftp://example.com/x",
        "https://user:pw@example.com/x",
    ],
)
async def test_non_public_targets_are_refused_without_sending(url: str) -> None:
    client = PeerClient(PeerLimits())
    try:
        with pytest.raises(PeerError, match="refusing to contact"):
            await client.request("GET", url)
    finally:
        await client.close()


async def test_names_resolving_to_private_addresses_are_refused() -> None:
    resolver = _PublicOnlyResolver()
    try:
        with pytest.raises(PeerError, match=r"non-public address 127\.0\.0\.1"):
            await resolver.resolve("localhost", 80)
    finally:
        await resolver.close()


class _Answers(AbstractResolver):
    """A name server that answers every name with the given addresses (real DNS cannot be told what to say)."""

    def __init__(self, *addresses: str) -> None:
        self._addresses = addresses

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        return [
            ResolveResult(
                hostname=host,
                host=a,
                port=port,
                family=socket.AF_INET6 if ":" in a else socket.AF_INET,
                proto=0,
                flags=0,
            )
            for a in self._addresses
        ]

    async def close(self) -> None:
        pass


@pytest.mark.parametrize(
    "addresses",
    [("64:ff9b::a9fe:a9fe",), ("2002:a9fe:a9fe::1",), ("::ffff:169.254.169.254",), ("8.8.8.8", "192.0.0.8")],
)
async def test_a_name_resolving_to_a_transition_form_of_a_private_address_is_refused(
    addresses: tuple[str, ...],
) -> None:
    resolver = _PublicOnlyResolver()
    resolver._inner = _Answers(*addresses)  # type: ignore[assignment]
    with pytest.raises(PeerError, match="non-public address"):
        await resolver.resolve("peer.example.com", 443)
    resolver._inner = _Answers("8.8.8.8", "2001:4860:4860::8888")  # type: ignore[assignment]
    assert [r["host"] for r in await resolver.resolve("peer.example.com", 443)] == ["8.8.8.8", "2001:4860:4860::8888"]


@pytest.mark.parametrize(
    ("address", "public"),
    [
        ("8.8.8.8", True),
        ("2001:4860:4860::8888", True),
        ("192.168.1.1", False),
        ("::ffff:10.0.0.1", False),
        ("224.0.0.1", False),
        ("100.64.0.1", False),
    ],
)
def test_public_address_classification(address: str, public: bool) -> None:
    assert is_public_address(address) is public


async def _sink(read_pause: float, stall_after: int | None) -> tuple[web.AppRunner, str, list[int]]:
    """A push destination reading 1 MiB at a time with a pause between reads (stalling after N MiB if asked)."""
    received: list[int] = []

    async def take(request: web.Request) -> web.Response:
        total = 0
        while True:
            try:
                chunk = await request.content.readexactly(1024 * 1024)
            except asyncio.IncompleteReadError as short:
                chunk = short.partial
            if not chunk:
                break
            total += len(chunk)
            received.append(total)
            if stall_after is not None and total >= stall_after * 1024 * 1024:
                await asyncio.sleep(30)
            await asyncio.sleep(read_pause)
        return web.json_response({"received": total})

    app = web.Application(client_max_size=1024**3)
    app.router.add_post("/sink", take)
    runner = web.AppRunner(app, handle_signals=False, shutdown_timeout=0.2)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    return runner, f"http://127.0.0.1:{runner.addresses[0][1]}/sink", received


async def _body(mib: int) -> AsyncIterator[bytes]:
    for _ in range(mib * 16):
        yield bytes(65536)


async def test_a_push_longer_than_the_timeout_goes_through_while_it_progresses(local_client: PeerClient) -> None:
    runner, url, _ = await _sink(read_pause=0.05, stall_after=None)  # about 20 MiB/s: 40 MiB take 2 s
    try:
        answer = await local_client.request("POST", url, data=_body(40), idle=1.0, max_body_bytes=1024)
        assert answer.ok and answer.body == {"received": 40 * 1024 * 1024}
        with pytest.raises(PeerTimeout, match="did not answer within 1 s"):  # a whole-request limit would cut it
            await local_client.request("POST", url, data=_body(40), max_body_bytes=1024)
    finally:
        await runner.cleanup()


async def test_a_push_that_stops_moving_fails_after_the_idle_budget(local_client: PeerClient) -> None:
    runner, url, received = await _sink(read_pause=0.0, stall_after=2)
    try:
        with pytest.raises(PeerTimeout, match="took no data and sent no answer for 1 s"):
            await local_client.request("POST", url, data=_body(200), idle=1.0, max_body_bytes=1024)
        assert received and received[-1] < 200 * 1024 * 1024
    finally:
        await runner.cleanup()
