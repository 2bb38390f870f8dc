"""Two processes of one node on one PostgreSQL database negotiate without sending any message twice.

The replicas share the database, the key and the public URL (as behind a load balancer); negotiations are
started through both management APIs, and a counting proxy in front of the provider sees every message
the replicas send. Each message owed is claimed by lease, so each arrives exactly once.
"""

from __future__ import annotations

import asyncio
import collections
import os
import signal
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web

import policies
from catalog.offers import offer_id
from connector import jsonld
from connector.services.offers import effective_policy
from connector.store import migrate
from tests.conftest import API_KEY, EDC_CONTEXT, ODRL_CONTEXT, Management, NodeFactory, free_port

pytestmark = pytest.mark.postgres

USE = [{"action": "use"}]
NEGOTIATIONS = 40


async def _replica(
    data_dir: Path, port: int, admin: int, public_port: int, database: str, key_file: Path | None
) -> asyncio.subprocess.Process:
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "CONNECTOR_DATA_DIR": str(data_dir),
        "CONNECTOR_DATABASE_URL": database,
        "CONNECTOR_PROTOCOL_HOST": "127.0.0.1",
        "CONNECTOR_PROTOCOL_PORT": str(port),
        "CONNECTOR_PUBLIC_URL": f"http://127.0.0.1:{public_port}",
        "CONNECTOR_MANAGEMENT_PORT": str(admin),
        "CONNECTOR_API_KEY": API_KEY,
        "CONNECTOR_ALLOW_LOCAL_PEERS": "true",
    }
    if key_file is not None:
        env["CONNECTOR_KEY_FILE"] = str(key_file)
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "connector.cli", "serve", env=env, stderr=asyncio.subprocess.DEVNULL
    )
    async with aiohttp.ClientSession() as http, asyncio.timeout(60):
        while True:
            assert process.returncode is None, "the replica exited while starting"
            try:
                async with http.get(f"http://127.0.0.1:{admin}/ready") as response:
                    if response.status == 200:
                        return process
            except aiohttp.ClientError:
                pass
            await asyncio.sleep(0.05)


class CountingProxy:
    """Forwards DSP requests to the provider and counts each (message type, consumerPid)."""

    def __init__(self, target: str) -> None:
        self.target = target
        self.seen: collections.Counter[tuple[str, str]] = collections.Counter()
        self.url = ""
        self._runner: web.AppRunner | None = None
        self._http: aiohttp.ClientSession | None = None

    async def start(self) -> None:
        self._http = aiohttp.ClientSession()
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._forward)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.url = f"http://127.0.0.1:{site._server.sockets[0].getsockname()[1]}"  # type: ignore[union-attr]

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
        if self._http is not None:
            await self._http.close()

    async def _forward(self, request: web.Request) -> web.Response:
        assert self._http is not None
        body = await request.read()
        if body:
            message = await request.json()
            self.seen[(str(message.get("@type")), str(message.get("consumerPid")))] += 1
        headers = {k: v for k, v in request.headers.items() if k in ("Authorization", "Content-Type")}
        async with self._http.request(
            request.method, self.target + request.path_qs, data=body or None, headers=headers
        ) as answer:
            return web.Response(body=await answer.read(), status=answer.status, content_type=answer.content_type)


@pytest.fixture
async def proxy_to(http: aiohttp.ClientSession) -> AsyncIterator[Any]:
    proxies: list[CountingProxy] = []

    async def start(target: str) -> CountingProxy:
        proxy = CountingProxy(target)
        await proxy.start()
        proxies.append(proxy)
        return proxy

    yield start
    for proxy in proxies:
        await proxy.stop()


async def test_two_replicas_on_one_postgres_send_each_message_once(
    node_factory: NodeFactory, http: aiohttp.ClientSession, tmp_path: Path, postgres_url: str, proxy_to: Any
) -> None:
    await migrate.upgrade(postgres_url)
    provider = await node_factory(api_key=API_KEY)
    provider_api = Management(http, provider)
    provider_did = provider.settings.effective_did
    for path, body in (
        ("assets", {"@context": EDC_CONTEXT, "@id": "passports-r", "dataAddress": {"type": "BatteryPassport"}}),
        (
            "policydefinitions",
            {
                "@context": EDC_CONTEXT,
                "@id": "use",
                "policy": {"@context": ODRL_CONTEXT, "@type": "Set", "permission": USE},
            },
        ),
        (
            "contractdefinitions",
            {
                "@context": EDC_CONTEXT,
                "@id": "cd-r",
                "accessPolicyId": "use",
                "contractPolicyId": "use",
                "assetsSelector": [],
            },
        ),
    ):
        status, answer = await provider_api.call("POST", f"/management/v3/{path}", body)
        assert status == 200, answer
    contract = effective_policy(
        policies.parse_policy(jsonld.expand({"@context": ODRL_CONTEXT, "@type": "Set", "permission": USE})[0])
    )
    proxy = await proxy_to(provider.protocol_url)

    port_a, admin_a, port_b, admin_b = free_port(), free_port(), free_port(), free_port()
    replicas = [await _replica(tmp_path / "a", port_a, admin_a, port_a, postgres_url, None)]
    try:
        replicas.append(
            await _replica(tmp_path / "b", port_b, admin_b, port_a, postgres_url, tmp_path / "a" / "node-key.jwk")
        )
        apis = [
            Management(http, type("N", (), {"management_url": f"http://127.0.0.1:{admin}"})())  # type: ignore[arg-type]
            for admin in (admin_a, admin_b)
        ]
        request = {
            "@context": EDC_CONTEXT,
            "@type": "ContractRequest",
            "counterPartyAddress": proxy.url + "/api/dsp/2025-1",
            "counterPartyId": provider_did,
            "protocol": "dataspace-protocol-http:2025-1",
            "policy": {
                "@context": ODRL_CONTEXT,
                "@type": "Offer",
                "@id": offer_id("cd-r", "passports-r", contract),
                "assigner": provider_did,
                "target": "passports-r",
                "permission": USE,
            },
        }
        started = await asyncio.gather(
            *(apis[i % 2].call("POST", "/management/v3/contractnegotiations", request) for i in range(NEGOTIATIONS))
        )
        assert all(status == 200 for status, _ in started), started
        query = {"@context": EDC_CONTEXT, "@type": "QuerySpec", "limit": 1000}
        async with asyncio.timeout(60):
            while True:
                _, listed = await apis[1].call("POST", "/management/v3/contractnegotiations/request", query)
                if len(listed) == NEGOTIATIONS and all(n["state"] in ("FINALIZED", "TERMINATED") for n in listed):
                    break
                await asyncio.sleep(0.1)
        assert {n["state"] for n in listed} == {"FINALIZED"}, [n.get("errorDetail") for n in listed]
        consumer_pids = {n["@id"] for n in listed}
        for kind in ("ContractRequestMessage", "ContractAgreementVerificationMessage"):
            sent = {pid: count for (seen, pid), count in proxy.seen.items() if seen == kind}
            assert set(sent) == consumer_pids, kind
            assert set(sent.values()) == {1}, f"{kind} sent more than once: {sent}"
        # The provider finalizes when the consumer acknowledges its event, a moment after the consumer.
        async with asyncio.timeout(30):
            while True:
                _, provided = await provider_api.call("POST", "/management/v3/contractnegotiations/request", query)
                if all(n["state"] in ("FINALIZED", "TERMINATED") for n in provided):
                    break
                await asyncio.sleep(0.1)
        assert len(provided) == NEGOTIATIONS and {n["state"] for n in provided} == {"FINALIZED"}
    finally:
        for replica in replicas:
            replica.send_signal(signal.SIGTERM)
        for replica in replicas:
            await asyncio.wait_for(replica.wait(), 30)
