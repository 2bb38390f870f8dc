"""Contract negotiation as EDC clients run it: two `connector serve` processes, negotiations started and watched
through the consumer's management API from this (third) process, with 16 and 50 in flight.

The provider offers one asset under an open policy; the consumer reads the offer from its catalog once, then
starts `--negotiations` negotiations (`POST /management/v3/contractnegotiations`), keeping K in flight, and one
watcher reads the ones in flight (`POST .../contractnegotiations/request`, `id in [...]`, every 25 ms) until each
is FINALIZED. CPU ms per negotiation of each node is read from /proc before and after each level.
Figures: negotiations FINALIZED per second and latency p50/p95 (start to FINALIZED seen), against a bare
aiohttp process answering the 4 DSP exchanges of a negotiation (4 sequential POSTs of about 1 KB, K in
flight) in the same run. SQLite by default; `--database-url postgresql://...` (or CONNECTOR_TEST_POSTGRES_URL)
runs both nodes on databases created on that server for the run and dropped after. Targets (issue 25), judged at
50 in flight: at least 100 negotiations/s on SQLite and more on PostgreSQL than SQLite gave in the same run,
latency p50 and p95 below 500 ms on both.

Never fails on time. Run: python bench/bench_negotiation_http.py [--quick] [--inflight 16 50] [--negotiations N]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import aiohttp
import harness
from bench_dataplane import API_KEY, call, publish_backend
from bench_dataplane_http import node_view
from harness import BareServer, NodeProcess, Result, cpu_seconds, emit, median, percentile

EDC = {"@vocab": "https://w3id.org/edc/v0.0.1/ns/"}


async def offer_of(http: aiohttp.ClientSession, provider: Any, consumer: Any) -> dict[str, Any]:
    """Return the negotiation request body for the provider's `passports` offer, read from its catalog once."""
    catalog = await call(
        http,
        consumer,
        "POST",
        "/management/v3/catalog/request",
        {
            "@context": EDC,
            "counterPartyAddress": provider.settings.dsp_base_url,
            "protocol": "dataspace-protocol-http:2025-1",
        },
    )
    datasets = catalog["dcat:dataset"]
    dataset = next(d for d in (datasets if isinstance(datasets, list) else [datasets]) if d["@id"] == "passports")
    offer = dataset["odrl:hasPolicy"]
    offer = offer[0] if isinstance(offer, list) else offer
    return {
        "@context": {**EDC, "odrl": "http://www.w3.org/ns/odrl/2/"},
        "counterPartyAddress": provider.settings.dsp_base_url,
        "protocol": "dataspace-protocol-http:2025-1",
        "policy": {
            **offer,
            "odrl:assigner": {"@id": provider.settings.effective_participant_id},
            "odrl:target": {"@id": "passports"},
        },
    }


async def negotiations(
    http: aiohttp.ClientSession, consumer: Any, body: dict[str, Any], count: int, inflight: int, poll: float
) -> tuple[list[float], float, dict[str, int]]:
    """Run `count` negotiations, `inflight` at a time; return their latencies (ms), the wall time and end states.

    One watcher reads the negotiations in flight every `poll` seconds (`POST .../contractnegotiations/request`
    with an `id in [...]` filter), as a client watching many processes does; a client polling each negotiation on
    its own every 20 ms would load the consumer with 50 x 50 reads a second and measure its own polling.
    """
    latencies: list[float] = []
    states: dict[str, int] = {}
    queue = iter(range(count))
    waiting: dict[str, asyncio.Future[str]] = {}
    done = asyncio.Event()

    async def watcher() -> None:
        while not done.is_set():
            await asyncio.sleep(poll)
            if not waiting:
                continue
            # The negotiations it waits for, by id: a read that grows with the number in flight, not with every
            # negotiation the consumer ever ran (reading them all made the watcher the consumer's largest cost).
            spec = {
                "@context": EDC,
                "@type": "QuerySpec",
                "limit": len(waiting),
                "filterExpression": [{"operandLeft": "id", "operator": "in", "operandRight": list(waiting)}],
            }
            found = await call(http, consumer, "POST", "/management/v3/contractnegotiations/request", spec)
            for negotiation in found:
                future = waiting.get(negotiation["@id"])
                if future is not None and negotiation["state"] in ("FINALIZED", "TERMINATED"):
                    future.set_result(negotiation["state"])
                    del waiting[negotiation["@id"]]

    async def one() -> None:
        started = time.perf_counter()
        created = await call(http, consumer, "POST", "/management/v3/contractnegotiations", body)
        future: asyncio.Future[str] = asyncio.get_running_loop().create_future()
        waiting[created["@id"]] = future
        try:
            async with asyncio.timeout(120):
                state = await future
        finally:
            waiting.pop(created["@id"], None)
        states[state] = states.get(state, 0) + 1
        if state == "FINALIZED":
            latencies.append((time.perf_counter() - started) * 1000)

    async def worker() -> None:
        for _ in queue:
            try:
                await one()
            except (TimeoutError, AssertionError, aiohttp.ClientError) as exc:
                states[type(exc).__name__] = states.get(type(exc).__name__, 0) + 1

    watching = asyncio.create_task(watcher())
    began = time.perf_counter()
    try:
        await asyncio.gather(*(worker() for _ in range(inflight)))
    finally:
        done.set()
        watching.cancel()
    return sorted(latencies), time.perf_counter() - began, states


async def bare_exchanges(http: aiohttp.ClientSession, url: str, count: int, inflight: int) -> tuple[list[float], float]:
    """Do `count` times 4 sequential 1 KB POSTs to the bare process, `inflight` at a time; return latencies, wall."""
    payload = b'{"@context": "https://w3id.org/dspace/2025/1/context.jsonld", "pad": "' + b"x" * 950 + b'"}'
    latencies: list[float] = []
    queue = iter(range(count))

    async def worker() -> None:
        for _ in queue:
            started = time.perf_counter()
            for _ in range(4):
                async with http.post(url, data=payload, headers={"Content-Type": "application/json"}) as r:
                    await r.read()
            latencies.append((time.perf_counter() - started) * 1000)

    began = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(inflight)))
    return sorted(latencies), time.perf_counter() - began


async def create_databases(base: str, names: list[str]) -> None:
    import asyncpg  # the PostgreSQL driver the node uses

    connection = await asyncpg.connect(base.replace("postgresql+asyncpg://", "postgresql://"))
    try:
        for name in names:
            await connection.execute(f'CREATE DATABASE "{name}"')
    finally:
        await connection.close()


async def drop_databases(base: str, names: list[str]) -> None:
    import asyncpg

    connection = await asyncpg.connect(base.replace("postgresql+asyncpg://", "postgresql://"))
    try:
        for name in names:
            await connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await connection.close()


def database_url(base: str, name: str) -> str:
    """Return the URL of database `name` on the server of `base`."""
    return base.rsplit("/", 1)[0] + "/" + name


async def run(
    args: argparse.Namespace, tmp: Path, env: dict[str, dict[str, str]], sqlite_rates: dict[int, float] | None = None
) -> dict[int, float]:
    """Run every in-flight level on one store; return negotiations FINALIZED/s by level.

    `sqlite_rates`: the SQLite run's rates, given to the PostgreSQL run, which is judged against them.
    """
    rates: dict[int, float] = {}
    provider = NodeProcess(tmp / "provider", env={"CONNECTOR_API_KEY": API_KEY, **env["provider"]})
    consumer = NodeProcess(tmp / "consumer", env={"CONNECTOR_API_KEY": API_KEY, **env["consumer"]})
    store = "PostgreSQL" if env["provider"] else "SQLite"
    with provider, consumer, BareServer(b'{"@type": "ContractNegotiation", "state": "REQUESTED"}') as bare:
        connector = aiohttp.TCPConnector(limit=max(args.inflight) * 2)
        async with aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=300)) as http:
            p, c = await node_view(http, provider), await node_view(http, consumer)
            await publish_backend(http, p, "http://127.0.0.1:9/never-called")
            body = await offer_of(http, p, c)
            await negotiations(http, c, body, 2, 1, args.poll)  # warm-up
            for inflight in args.inflight:
                count = max(args.negotiations, inflight)
                pids = (provider.process.pid, consumer.process.pid)  # type: ignore[union-attr]
                cpu_before = [cpu_seconds(pid) for pid in pids]
                latencies, wall, states = await negotiations(http, c, body, count, inflight, args.poll)
                cpu_ms = [
                    (cpu_seconds(pid) - before) * 1000 / count for pid, before in zip(pids, cpu_before, strict=True)
                ]
                bare_latencies, bare_wall = await bare_exchanges(http, bare.url + "/negotiations", count, inflight)
                rate, bare_rate = len(latencies) / wall, len(bare_latencies) / bare_wall
                rates[inflight] = rate
                print(
                    f"{store}, {inflight} in flight: {rate:.1f} negotiations FINALIZED/s ({states}), p50 "
                    f"{median(latencies):.0f} ms, p95 {percentile(latencies, 95):.0f} ms; bare 4 exchanges "
                    f"{bare_rate:,.0f}/s; CPU ms/negotiation provider {cpu_ms[0]:.1f}, consumer {cpu_ms[1]:.1f} "
                    f"(load {harness.load_average()})",
                    flush=True,
                )
                how = "two connector serve processes, aiohttp client in a third"
                label = "bare aiohttp process, the 4 DSP exchanges"
                # Issue 25's targets at 50 in flight: at least 100/s on SQLite and more on PostgreSQL than SQLite
                # did in this run, latency under load below 500 ms on both.
                judged = inflight == 50
                if store == "SQLite":
                    rate_target, rate_met = ">= 100/s", rate >= 100
                else:
                    floor = (sqlite_rates or {}).get(inflight)
                    rate_target = f"> SQLite's {floor:.0f}/s in this run" if floor else ""
                    rate_met = rate > floor if floor else False
                    judged = judged and floor is not None
                emit(
                    Result(
                        f"negotiations FINALIZED/s, {inflight} in flight ({store})",
                        rate,
                        "/s",
                        bare_rate,
                        label,
                        target=rate_target if judged else "",
                        met=rate_met if judged else None,
                        tool=how,
                        notes=str(states),
                    )
                )
                emit(
                    Result(
                        f"negotiation latency p50, {inflight} in flight ({store})",
                        median(latencies),
                        "ms",
                        median(bare_latencies),
                        label,
                        target="< 500 ms" if judged else "",
                        met=median(latencies) < 500 if judged else None,
                        tool=how,
                    )
                )
                emit(
                    Result(
                        f"negotiation latency p95, {inflight} in flight ({store})",
                        percentile(latencies, 95),
                        "ms",
                        percentile(bare_latencies, 95),
                        label,
                        target="< 500 ms" if judged else "",
                        met=percentile(latencies, 95) < 500 if judged else None,
                        tool=how,
                    )
                )
    return rates


def main(args: argparse.Namespace) -> None:
    with harness.temp_dir("bench-negotiation-") as tmp:
        sqlite_rates = asyncio.run(run(args, tmp, {"provider": {}, "consumer": {}}))
        if args.database_url:
            base = args.database_url
            names = [f"bench_{role}_{uuid.uuid4().hex[:8]}" for role in ("provider", "consumer")]
            asyncio.run(create_databases(base, names))
            try:
                env = {
                    role: {
                        "CONNECTOR_DATABASE_URL": database_url(base, name),
                        "CONNECTOR_DATABASE_AUTO_MIGRATE": "true",
                    }
                    for role, name in zip(("provider", "consumer"), names, strict=True)
                }
                asyncio.run(run(args, tmp / "pg", env, sqlite_rates))
            finally:
                asyncio.run(drop_databases(base, names))


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--inflight", type=int, nargs="+", default=[16, 50])
    parser.add_argument("--negotiations", type=int, default=300, help="negotiations per in-flight level")
    parser.add_argument("--poll", type=float, default=0.025, help="seconds between the watcher's reads")
    parser.add_argument(
        "--database-url",
        default=os.environ.get("CONNECTOR_TEST_POSTGRES_URL"),
        help="a PostgreSQL server to run a second time on (default: CONNECTOR_TEST_POSTGRES_URL)",
    )
    parser.add_argument("--quick", action="store_true", help="small sizes for development")
    args = parser.parse_args()
    if args.quick:
        args.negotiations, args.inflight = 20, [4, 16]
    return args


if __name__ == "__main__":
    sys.exit(main(parse_args()))
