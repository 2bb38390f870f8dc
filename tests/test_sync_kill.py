"""A consumer killed (SIGKILL) in the middle of a sync run loses and duplicates nothing once restarted.

The consumer runs as its operator runs it (`connector serve`), on SQLite and on PostgreSQL; each page of the partner's change feed is
committed with the job's cursor and the run's counts, so the run after the restart starts where the killed one
stopped: together they count every passport once as new, and none as unchanged (no page was read twice).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
from pathlib import Path
from typing import Any

import aiohttp

from connector.store import migrate
from tests.conftest import API_KEY, NodeFactory, free_port
from tests.test_sync_jobs import JOBS, job_body, provider_with_passports

PASSPORTS = 1500


class Consumer:
    """`connector serve` in a subprocess, killed and restarted by the test."""

    def __init__(self, data_dir: Path, database_url: str) -> None:
        self.data_dir = data_dir
        self.database_url = database_url
        self.port = free_port()
        self.admin = free_port()
        self.process: asyncio.subprocess.Process | None = None

    async def start(self, http: aiohttp.ClientSession) -> None:
        env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "CONNECTOR_DATA_DIR": str(self.data_dir),
            "CONNECTOR_DATABASE_URL": self.database_url,
            "CONNECTOR_PROTOCOL_HOST": "127.0.0.1",
            "CONNECTOR_PROTOCOL_PORT": str(self.port),
            "CONNECTOR_PUBLIC_URL": f"http://127.0.0.1:{self.port}",
            "CONNECTOR_MANAGEMENT_PORT": str(self.admin),
            "CONNECTOR_API_KEY": API_KEY,
            "CONNECTOR_ALLOW_LOCAL_PEERS": "true",
            "CONNECTOR_SYNC_PAGE_SIZE": "10",
            "CONNECTOR_SYNC_LEASE_SECONDS": "1",
            "CONNECTOR_LOG_LEVEL": "WARNING",
        }
        log = (self.data_dir.parent / "consumer.log").open("ab")
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
                assert self.process.returncode is None, f"the consumer exited with {self.process.returncode}"
                await asyncio.sleep(0.05)

    async def call(self, http: aiohttp.ClientSession, method: str, path: str, body: Any = None) -> tuple[int, Any]:
        url = f"http://127.0.0.1:{self.admin}{path}"
        async with http.request(method, url, json=body, headers={"X-Api-Key": API_KEY}) as response:
            return response.status, await response.json() if response.content_length != 0 else None

    async def kill(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        await self.process.wait()

    async def stop(self) -> None:
        if self.process is not None and self.process.returncode is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                async with asyncio.timeout(20):
                    await self.process.wait()
            except TimeoutError:
                await self.kill()


async def test_a_run_killed_midway_resumes_from_its_cursor(
    node_factory: NodeFactory, http: aiohttp.ClientSession, tmp_path: Path, database_url: str
) -> None:
    provider, _, _ = await provider_with_passports(node_factory, http, PASSPORTS)
    await migrate.upgrade(database_url)
    consumer = Consumer(tmp_path / "consumer", database_url)
    await consumer.start(http)
    try:
        status, job = await consumer.call(http, "POST", JOBS, job_body(provider, id="kill"))
        assert status == 201, job
        status, started = await consumer.call(http, "POST", f"{JOBS}/kill/run")
        assert status == 202 and started["state"] == "RUNNING", started
        async with asyncio.timeout(60):
            while True:
                _, runs = await consumer.call(http, "GET", f"{JOBS}/kill/runs")
                if runs[0]["new"] >= 100:
                    break
                await asyncio.sleep(0.01)
        await consumer.kill()
        await consumer.start(http)
        _, runs = await consumer.call(http, "GET", f"{JOBS}/kill/runs")
        cut = runs[0]
        assert cut["state"] == "RUNNING" and 100 <= cut["new"] < PASSPORTS, cut  # as committed when killed
        async with asyncio.timeout(60):
            while True:  # its lease (1 s) runs out first
                status, resumed = await consumer.call(http, "POST", f"{JOBS}/kill/run?wait=true")
                if status == 200:
                    break
                assert status == 409, resumed
                await asyncio.sleep(0.2)
        assert resumed["state"] == "SUCCEEDED", resumed
        _, runs = await consumer.call(http, "GET", f"{JOBS}/kill/runs")
        killed = next(r for r in runs if r["id"] == cut["id"])
        assert killed["state"] == "FAILED" and "interrupted" in killed["error"]
        assert killed["new"] + resumed["new"] == PASSPORTS, (killed, resumed)
        assert resumed["unchanged"] == 0 and resumed["refused"] == 0
        items: list[Any] = []
        cursor = ""
        while True:
            _, page = await consumer.call(http, "GET", f"{JOBS}/kill/passports?limit=1000&cursor={cursor}")
            items += page["items"]
            if not page["next"]:
                break
            cursor = page["next"]
        assert len(items) == PASSPORTS and len({i["id"] for i in items}) == PASSPORTS
    finally:
        await consumer.stop()


async def test_a_graceful_stop_ends_the_run_and_gives_the_lease_back(
    node_factory: NodeFactory, http: aiohttp.ClientSession, tmp_path: Path
) -> None:
    from connector.app import running_node
    from tests.conftest import Management, make_settings

    provider, _, _ = await provider_with_passports(node_factory, http, 600)
    settings = make_settings(tmp_path / "consumer", api_key=API_KEY, sync_page_size=10)  # lease: the default 60 s
    async with running_node(settings) as consumer:
        api = Management(http, consumer)
        assert (await api.call("POST", JOBS, job_body(provider, id="stop")))[0] == 201
        assert (await api.call("POST", f"{JOBS}/stop/run"))[0] == 202
        async with asyncio.timeout(60):
            while True:
                if (await api.call("GET", f"{JOBS}/stop/runs"))[1][0]["new"] >= 50:
                    break
                await asyncio.sleep(0.01)
    async with running_node(settings) as consumer:
        api = Management(http, consumer)
        stopped = (await api.call("GET", f"{JOBS}/stop/runs"))[1][0]
        assert stopped["state"] == "FAILED" and stopped["error"].startswith("stopped"), stopped
        status, resumed = await api.call("POST", f"{JOBS}/stop/run?wait=true")  # no lease to wait out
        assert status == 200 and resumed["state"] == "SUCCEEDED", resumed
        assert stopped["new"] + resumed["new"] == 600 and resumed["unchanged"] == 0
