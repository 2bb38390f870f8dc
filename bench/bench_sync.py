"""Sync jobs: the first full sync of N passports between two nodes, then a run with 1 % of them changed.

Two nodes run in this process on loopback, each on its own SQLite database in a temporary directory. The provider
imports `--count` generated passports of one battery model (default 100,000) and publishes the public-level
dataset; the consumer creates a sync job on it and runs it by hand twice: the full sync (every passport new), then,
after the provider changed `--changed` percent of them (default 1 %), the incremental run. For each run it prints
passports per second, the run's bytes, and where the consumer's time went as the run record says: the network
(waiting for the partner's answers: the provider's own work of reading and rendering its views is in there, since
it runs in the same process), the store (the consumer's reads and commits) and validation (reading each passport
with the node's model). It also prints the incremental run's cost as a share of the full run's (the issue's target:
under 5 %). Figures are informational and never fail on time.

Run: python bench/bench_sync.py [--count N] [--changed PERCENT] [--page N]
"""

from __future__ import annotations

import argparse
import asyncio
import copy
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp
import orjson
from harness import Result, emit  # bench/harness.py (scripts run from bench/)

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from connector.app import Node, running_node
from connector.domain import passport as model
from connector.services.passport_sources import SourceRecord
from connector.services.passports import PassportService
from connector.settings import Settings

API_KEY = "bench-api-key-0123456789"


def settings(directory: Path, **extra: Any) -> Settings:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    return Settings(
        protocol_host="127.0.0.1",
        protocol_port=port,
        public_url=f"http://127.0.0.1:{port}",
        management_port=0,
        data_dir=directory,
        api_key=API_KEY,
        allow_local_peers=True,
        log_level="WARNING",
        **extra,
    )


async def call(http: aiohttp.ClientSession, node: Node, method: str, path: str, body: Any = None) -> Any:
    async with http.request(method, node.management_url + path, json=body, headers={"X-Api-Key": API_KEY}) as response:
        text = await response.text()
        assert response.status < 300, f"{path}: {response.status} {text[:500]}"
        return orjson.loads(text) if text else None


def documents(count: int) -> list[dict[str, Any]]:
    made = [model.generate(i) for i in range(count)]
    model_id = made[0]["identity"]["model_id"]
    for document in made:
        document["identity"]["model_id"] = model_id
    return made


async def load(provider: Node, items: list[dict[str, Any]]) -> float:
    service = PassportService(provider.store, provider.settings.effective_public_url)
    began = time.perf_counter()
    summary = await service.import_records(SourceRecord(i, f"#{i}", d) for i, d in enumerate(items))
    assert summary.refused == 0, summary.refusals[:3]
    return time.perf_counter() - began


def show(name: str, run: dict[str, Any]) -> None:
    seconds = run["seconds"]
    total = seconds["total"] or 1e-9
    read = run["new"] + run["changed"] + run["unchanged"] + run["removed"]
    print(
        f"{name}: {run['state']}, {run['new']:,} new, {run['changed']:,} changed, {run['unchanged']:,} unchanged, "
        f"{run['removed']:,} removed, {run['refused']:,} refused; {run['bytes'] / 1e6:,.1f} MB in {total:.2f} s "
        f"= {read / total:,.0f} passports/s"
    )
    print(
        "  time: "
        + ", ".join(
            f"{part} {seconds[part]:.2f} s ({seconds[part] / total:.0%})" for part in ("network", "store", "validation")
        )
        + f", other {max(0.0, total - seconds['network'] - seconds['store'] - seconds['validation']):.2f} s"
    )


async def main(count: int, changed_percent: float, page: int) -> None:
    with tempfile.TemporaryDirectory(prefix="bench-sync-") as tmp:
        root = Path(tmp)
        async with (
            running_node(settings(root / "provider")) as provider,
            running_node(settings(root / "consumer", sync_page_size=page)) as consumer,
            aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=3600)) as http,
        ):
            began = time.perf_counter()
            items = documents(count)
            print(f"{count:,} passports generated in {time.perf_counter() - began:.1f} s")
            took = await load(provider, items)
            print(f"provider import: {took:.1f} s ({count / took:,.0f}/s)")
            await call(http, provider, "POST", "/management/v1/passports/publish", {"levels": ["public"]})
            job = {
                "id": "bench",
                "partnerAddress": provider.settings.dsp_base_url,
                "partnerId": provider.settings.effective_did,
                "schedule": "P1D",
            }
            await call(http, consumer, "POST", "/management/v1/sync/jobs", job)
            full = await call(http, consumer, "POST", "/management/v1/sync/jobs/bench/run?wait=true")
            show("full sync", full)
            step = max(1, round(100 / changed_percent))
            changed = []
            for document in items[::step]:
                again = copy.deepcopy(document)
                again["identity"]["mass_kg"] = round(again["identity"]["mass_kg"] + 1.5, 1)
                changed.append(again)
            took = await load(provider, changed)
            print(f"provider: {len(changed):,} passports changed in {took:.2f} s")
            incremental = await call(http, consumer, "POST", "/management/v1/sync/jobs/bench/run?wait=true")
            show(f"{changed_percent:g} % changed", incremental)
            idle = await call(http, consumer, "POST", "/management/v1/sync/jobs/bench/run?wait=true")
            show("nothing changed", idle)
            share = incremental["seconds"]["total"] / max(full["seconds"]["total"], 1e-9)
            rate = (full["new"] + full["changed"] + full["unchanged"]) / max(full["seconds"]["total"], 1e-9)
            emit(Result(f"sync, full run of {count:,} passports", rate, "passports/s", tool="in-process (two nodes)"))
            print(f"the {changed_percent:g} % run cost {share:.2%} of the full run (target: under 5 %)")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=100_000)
    parser.add_argument("--changed", type=float, default=1.0, help="percent of the passports changed")
    parser.add_argument("--page", type=int, default=500, help="CONNECTOR_SYNC_PAGE_SIZE of the consumer")
    args = parser.parse_args()
    asyncio.run(main(args.count, args.changed, args.page))
