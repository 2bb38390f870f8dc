"""The fault test: 100 negotiations and 50 transfers between two node processes, each node killed with SIGKILL at
random moments and restarted, while the work goes on.

At the end both sides agree on the state of every process, every FINALIZED negotiation has exactly one agreement
on both sides, and nothing was acted on twice (one provider process per consumer process, one agreement per
negotiation). The random seed is printed with every failure; set CONNECTOR_FAULT_SEED to replay one.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import signal
import sqlite3
import sys
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import pytest

import policies
from catalog.offers import offer_id
from connector import jsonld
from connector.services.offers import effective_policy
from tests.conftest import API_KEY, EDC_CONTEXT, ODRL_CONTEXT, free_port

NEGOTIATIONS = 100
TRANSFERS = 50
MIN_KILLS = 8
USE = [{"action": "use"}]
TERMINAL = {"FINALIZED", "TERMINATED", "COMPLETED"}


@dataclass
class NodeProcess:
    """One node as its operator runs it (`connector serve`), which the test kills and restarts."""

    name: str
    data_dir: Path
    port: int = field(default_factory=free_port)
    admin: int = field(default_factory=free_port)
    process: asyncio.subprocess.Process | None = None
    kills: int = 0

    @property
    def did(self) -> str:
        return f"did:web:127.0.0.1%3A{self.port}"

    @property
    def dsp(self) -> str:
        return f"http://127.0.0.1:{self.port}/api/dsp/2025-1"

    @property
    def management(self) -> str:
        return f"http://127.0.0.1:{self.admin}/management"

    @property
    def database(self) -> Path:
        return self.data_dir / "connector.db"

    async def start(self, http: aiohttp.ClientSession) -> None:
        env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "CONNECTOR_DATA_DIR": str(self.data_dir),
            "CONNECTOR_PROTOCOL_HOST": "127.0.0.1",
            "CONNECTOR_PROTOCOL_PORT": str(self.port),
            "CONNECTOR_PUBLIC_URL": f"http://127.0.0.1:{self.port}",
            "CONNECTOR_MANAGEMENT_PORT": str(self.admin),
            "CONNECTOR_API_KEY": API_KEY,
            "CONNECTOR_ALLOW_LOCAL_PEERS": "true",
            "CONNECTOR_OUTBOX_RETRY_SECONDS": "0.05",
            "CONNECTOR_OUTBOX_MAX_ATTEMPTS": "100",
            "CONNECTOR_OUTBOX_LEASE_SECONDS": "1",
            "CONNECTOR_LOG_LEVEL": "WARNING",
        }
        log = (self.data_dir.parent / f"{self.name}.log").open("ab")
        self.process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "connector.cli", "serve", env=env, stdout=log, stderr=log
        )
        log.close()
        async with asyncio.timeout(60):
            while True:
                with contextlib.suppress(aiohttp.ClientError):
                    async with http.get(f"http://127.0.0.1:{self.admin}/ready") as response:
                        if response.status == 200:
                            return
                assert self.process.returncode is None, f"{self.name} exited with {self.process.returncode}"
                await asyncio.sleep(0.05)

    async def kill(self) -> None:
        if self.process is not None and self.process.returncode is None:
            self.process.send_signal(signal.SIGKILL)
            await self.process.wait()
            self.kills += 1

    async def stop(self) -> None:
        if self.process is not None and self.process.returncode is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                async with asyncio.timeout(20):
                    await self.process.wait()
            except TimeoutError:
                await self.kill()

    def rows(self, sql: str) -> list[sqlite3.Row]:
        with contextlib.closing(sqlite3.connect(self.database, timeout=10)) as connection:
            connection.row_factory = sqlite3.Row
            return connection.execute(sql).fetchall()


class Api:
    """A management client that retries while its node is down (the operator's script would)."""

    def __init__(self, http: aiohttp.ClientSession, node: NodeProcess) -> None:
        self.http = http
        self.node = node

    async def call(self, method: str, path: str, body: Any = None, ok: tuple[int, ...] = (200, 204)) -> Any:
        async with asyncio.timeout(120):
            while True:
                try:
                    async with self.http.request(
                        method, self.node.management + path, json=body, headers={"X-Api-Key": API_KEY}
                    ) as response:
                        answer = await response.json(content_type=None) if response.status != 204 else None
                        if response.status in ok:
                            return answer
                        if response.status not in (409, 503) and response.status < 500:
                            return answer  # a refusal the caller looks at
                except (aiohttp.ClientError, TimeoutError):
                    pass
                await asyncio.sleep(0.1)


@pytest.fixture
async def nodes(tmp_path: Path, http: aiohttp.ClientSession) -> AsyncIterator[tuple[NodeProcess, NodeProcess]]:
    provider = NodeProcess("provider", tmp_path / "provider")
    consumer = NodeProcess("consumer", tmp_path / "consumer")
    try:
        await provider.start(http)
        await consumer.start(http)
        yield provider, consumer
    finally:
        await asyncio.gather(provider.stop(), consumer.stop())


async def _publish(api: Api) -> str:
    asset = {
        "@context": EDC_CONTEXT,
        "@id": "passports-x",
        "properties": {"name": "X"},
        "dataAddress": {"type": "HttpData", "baseUrl": "http://127.0.0.1:9/passports"},
    }
    await api.call("POST", "/v3/assets", asset)
    body = {
        "@context": EDC_CONTEXT,
        "@id": "use",
        "policy": {"@context": ODRL_CONTEXT, "@type": "Set", "permission": USE},
    }
    await api.call("POST", "/v3/policydefinitions", body)
    definition = {
        "@context": EDC_CONTEXT,
        "@id": "cd-x",
        "accessPolicyId": "use",
        "contractPolicyId": "use",
        "assetsSelector": [],
    }
    await api.call("POST", "/v3/contractdefinitions", definition)
    contract = effective_policy(
        policies.parse_policy(jsonld.expand({"@context": ODRL_CONTEXT, "@type": "Set", "permission": USE})[0])
    )
    return offer_id("cd-x", "passports-x", contract)


async def _chaos(
    rng: random.Random, http: aiohttp.ClientSession, both: tuple[NodeProcess, NodeProcess], stop: asyncio.Event
) -> None:
    """Kill one node or the other at random moments, and bring it back."""
    while not stop.is_set():
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(rng.uniform(0.2, 1.0)):
                await stop.wait()
        if stop.is_set():
            return
        victim = rng.choice(both)
        await victim.kill()
        await asyncio.sleep(rng.uniform(0.0, 0.5))
        await victim.start(http)


async def _quiet(provider: NodeProcess, consumer: NodeProcess, seed: int) -> None:
    """Wait until every process on both sides has ended and nothing is owed any more."""
    deadline = time.monotonic() + 240
    while True:
        busy = [
            f"{node.name}: {table} {row['id']} {row['state']} awaiting {row['awaiting_ack']}"
            for node in (provider, consumer)
            for table in ("negotiations", "transfers")
            for row in node.rows(f"SELECT id, state, awaiting_ack FROM {table}")
            if row["state"] not in TERMINAL
        ]
        owed = [
            f"{node.name}: {row['message']}"
            for node in (provider, consumer)
            for row in node.rows("SELECT message FROM outbox")
        ]
        if not busy and not owed:
            return
        assert time.monotonic() < deadline, f"seed {seed}: still busy after 240 s: {busy[:10]} owed {owed[:10]}"
        await asyncio.sleep(0.5)


async def test_two_nodes_killed_at_random_agree_on_every_process(
    nodes: tuple[NodeProcess, NodeProcess], http: aiohttp.ClientSession
) -> None:
    provider, consumer = nodes
    seed = int(os.environ.get("CONNECTOR_FAULT_SEED") or random.SystemRandom().randrange(2**32))
    rng = random.Random(seed)
    offer = await _publish(Api(http, provider))
    consumer_api = Api(http, consumer)
    stop = asyncio.Event()
    chaos = asyncio.create_task(_chaos(rng, http, nodes, stop))
    try:
        request = {
            "@context": EDC_CONTEXT,
            "@type": "ContractRequest",
            "counterPartyAddress": provider.dsp,
            "counterPartyId": provider.did,
            "protocol": "dataspace-protocol-http:2025-1",
            "policy": {
                "@context": ODRL_CONTEXT,
                "@type": "Offer",
                "@id": offer,
                "assigner": provider.did,
                "target": "passports-x",
                "permission": USE,
            },
        }
        for _ in range(NEGOTIATIONS // 5):
            await asyncio.gather(*(consumer_api.call("POST", "/v3/contractnegotiations", request) for _ in range(5)))
            await asyncio.sleep(rng.uniform(0.05, 0.4))

        # Transfers on agreements as they are finalized (the nodes keep dying meanwhile).
        started: list[str] = []
        async with asyncio.timeout(240):
            while len(started) < TRANSFERS:
                agreements = [
                    row["agreement_id"]
                    for row in consumer.rows(
                        "SELECT agreement_id FROM negotiations WHERE state = 'FINALIZED' ORDER BY id"
                    )
                ]
                used = {row["agreement_id"] for row in consumer.rows("SELECT agreement_id FROM transfers")}
                for agreement in [a for a in agreements if a not in used][: min(5, TRANSFERS - len(started))]:
                    body = {
                        "@context": EDC_CONTEXT,
                        "@type": "TransferRequest",
                        "counterPartyAddress": provider.dsp,
                        "contractId": agreement,
                        "protocol": "dataspace-protocol-http:2025-1",
                        "transferType": "HttpData-PULL",
                    }
                    created = await consumer_api.call("POST", "/v3/transferprocesses", body)
                    if created and "@id" in created:
                        started.append(created["@id"])
                await asyncio.sleep(rng.uniform(0.05, 0.4))
                settled = consumer.rows(
                    "SELECT count(*) AS n FROM negotiations WHERE state IN ('FINALIZED', 'TERMINATED')"
                )
                if settled[0]["n"] >= NEGOTIATIONS and not [a for a in agreements if a not in used]:
                    break  # fewer agreements than transfers wanted: the other negotiations terminated
                await asyncio.sleep(0.2)

        # Complete each transfer once it has started on the consumer's side: every one the consumer holds,
        # not only those whose id came back (a POST whose answer was lost to a kill is sent again, so the
        # first transfer exists with an id the test never saw).
        open_ = {row["id"] for row in consumer.rows("SELECT id FROM transfers WHERE role = 'CONSUMER'")}
        async with asyncio.timeout(240):
            while open_:
                rows = consumer.rows("SELECT id, state, awaiting_ack FROM transfers")
                for row in rows:
                    if row["id"] in open_ and row["state"] in TERMINAL:
                        open_.discard(row["id"])
                    elif row["id"] in open_ and row["state"] == "STARTED" and row["awaiting_ack"] is None:
                        await consumer_api.call("POST", f"/v3/transferprocesses/{row['id']}/complete")
                await asyncio.sleep(0.2)
        # Enough kills to mean something, however fast the work went.
        async with asyncio.timeout(120):
            while True:
                if provider.kills + consumer.kills >= MIN_KILLS:
                    break
                await asyncio.sleep(0.1)
    finally:
        stop.set()
        await chaos
    for node in nodes:
        if node.process is None or node.process.returncode is not None:
            await node.start(http)
    await _quiet(provider, consumer, seed)
    _check_agreement(provider, consumer, seed, len(started))


def _check_agreement(provider: NodeProcess, consumer: NodeProcess, seed: int, transfers: int) -> None:
    where = f"seed {seed}, {provider.kills} provider and {consumer.kills} consumer kills"
    assert provider.kills + consumer.kills >= MIN_KILLS, f"{where}: too few kills to mean anything"
    for table in ("negotiations", "transfers"):
        ours = {row["id"]: row for row in consumer.rows(f"SELECT * FROM {table} WHERE role = 'CONSUMER'")}
        theirs: dict[str, sqlite3.Row] = {}
        for row in provider.rows(f"SELECT * FROM {table} WHERE role = 'PROVIDER'"):
            assert row["consumer_pid"] not in theirs, f"{where}: two provider {table} for {row['consumer_pid']}"
            theirs[row["consumer_pid"]] = row
        assert set(theirs) <= set(ours), f"{where}: provider {table} without a consumer side"
        for pid, mine in ours.items():
            peer = theirs.get(pid)
            if peer is None:
                # The provider never heard of it: the consumer gave up before its request arrived.
                assert mine["state"] == "TERMINATED" and mine["provider_pid"] is None, (
                    f"{where}: {table} {pid} {dict(mine)}"
                )
                continue
            assert mine["provider_pid"] == peer["id"], f"{where}: {table} {pid} pids differ"
            assert mine["state"] == peer["state"], (
                f"{where}: {table} {pid} is {mine['state']} here and {peer['state']} at the provider: "
                f"{mine['error_detail']!r} / {peer['error_detail']!r}"
            )
    for node in (provider, consumer):
        finalized = node.rows("SELECT id, agreement_id FROM negotiations WHERE state = 'FINALIZED'")
        agreements = node.rows("SELECT id, negotiation_id FROM agreements")
        by_negotiation: dict[str, list[str]] = {}
        for row in agreements:
            by_negotiation.setdefault(row["negotiation_id"], []).append(row["id"])
        for row in finalized:
            assert by_negotiation.get(row["id"]) == [row["agreement_id"]], (
                f"{where}: {node.name}'s FINALIZED negotiation {row['id']} has agreements {by_negotiation.get(row['id'])}"
            )
    finalized = consumer.rows("SELECT count(*) AS n FROM negotiations WHERE state = 'FINALIZED'")[0]["n"]
    counts = {
        f"{node.name} {table}": dict(node.rows(f"SELECT state, count(*) FROM {table} GROUP BY state"))
        for node in (provider, consumer)
        for table in ("negotiations", "transfers")
    }
    print(f"fault test: {where}: {counts}")
    assert finalized >= NEGOTIATIONS // 2, f"{where}: only {finalized} of {NEGOTIATIONS} negotiations finalized"
    assert transfers >= TRANSFERS // 2, f"{where}: only {transfers} transfers started"
