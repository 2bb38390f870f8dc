"""Two replicas of a consumer on one PostgreSQL database run one job's schedule: one run per period, none twice.

Both replicas schedule the job (APScheduler in each), both fire every period at the same instant, and each
tries to record the period's run under the job's lease; the unique run key lets exactly one of them run it.
"""

from __future__ import annotations

import asyncio
import itertools
from datetime import datetime
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from sqlalchemy import event

from connector.app import Node
from connector.identity.keys import KEY_FILE_NAME
from connector.store import migrate
from tests.conftest import API_KEY, Management, NodeFactory, free_port
from tests.test_sync_jobs import JOBS, job_body, provider_with_passports

PERIOD_SECONDS = 2
PERIODS = 4


def _at(key: str) -> float:
    return datetime.fromisoformat(key.replace("Z", "+00:00")).timestamp()


@pytest.mark.postgres
async def test_two_replicas_run_each_period_once(
    node_factory: NodeFactory, http: aiohttp.ClientSession, postgres_url: str, tmp_path: Path
) -> None:
    provider, _, _ = await provider_with_passports(node_factory, http, 4)
    port = free_port()
    shared: dict[str, Any] = {
        "api_key": API_KEY,
        "database_url": postgres_url,
        "public_url": f"http://127.0.0.1:{port}",
        "sync_poll_seconds": 1,
    }
    await migrate.upgrade(postgres_url)
    first: Node = await node_factory(protocol_port=port, data_dir=tmp_path / "replica1", **shared)
    second: Node = await node_factory(key_file=tmp_path / "replica1" / KEY_FILE_NAME, **shared)
    assert first.settings.effective_did == second.settings.effective_did
    api = Management(http, first)
    status, job = await api.call("POST", JOBS, job_body(provider, id="shared", schedule=f"PT{PERIOD_SECONDS}S"))
    assert status == 201, job
    runs: list[dict[str, Any]] = []
    async with asyncio.timeout(60):
        while len([r for r in runs if r["state"] != "RUNNING"]) < PERIODS:
            await asyncio.sleep(0.25)
            runs = (await Management(http, second).call("GET", f"{JOBS}/shared/runs?limit=1000"))[1]
    await api.call("POST", f"{JOBS}/shared/pause")
    await asyncio.sleep(1.5)
    runs = (await api.call("GET", f"{JOBS}/shared/runs?limit=1000"))[1]
    keys = sorted(r["runKey"] for r in runs)
    assert len(keys) == len(set(keys))
    # Every period from the first to the last has its run: none skipped, none twice.
    gaps = [round(_at(b) - _at(a), 3) for a, b in itertools.pairwise(keys)]
    assert gaps and all(g == PERIOD_SECONDS for g in gaps), gaps
    assert all(r["state"] == "SUCCEEDED" for r in runs), runs
    ordered = sorted(runs, key=lambda r: r["startedAt"])
    for before, after in itertools.pairwise(ordered):
        assert after["startedAt"] >= before["endedAt"]  # runs of one job never overlap
    assert ordered[0]["new"] == 4 and sum(r["new"] for r in runs) == 4


async def test_an_idle_node_polls_the_jobs_at_most_once_a_second(node_factory: NodeFactory) -> None:
    node: Node = await node_factory(sync_poll_seconds=1)
    polls: list[float] = []

    def count(_conn: Any, _cursor: Any, statement: str, parameters: Any, _context: Any, _many: bool) -> None:
        if "revisions" in statement and "sync_jobs" in str(parameters):
            polls.append(asyncio.get_running_loop().time())

    engine = node.store._read.sync_engine  # counting what the node asks its database
    event.listen(engine, "before_cursor_execute", count)
    try:
        await asyncio.sleep(3.5)
    finally:
        event.remove(engine, "before_cursor_execute", count)
    assert 2 <= len(polls) <= 4, polls
    assert all(b - a >= 0.9 for a, b in itertools.pairwise(polls)), polls
