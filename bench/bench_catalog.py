"""Catalog latency on a large provider: CatalogService and the DSP endpoint, against a bare aiohttp baseline.

A provider with N battery-passport assets (default 100,000) over M battery models and D contract definitions
(default 1,000, each selecting one model under one of four access policies: open, members, recyclers, market
surveillance authorities). Prints the population time, then the median latency of the first page of 50 datasets
and of a page deep in the catalog through `CatalogService`, then through a real node's DSP endpoint
(`POST <dsp>/catalog/request` with a fresh token each time, a consumer without credentials and one holding
membership and recycler credentials), and the same page's bytes served by a bare aiohttp handler in the same run,
with the ratio. Never fails on time: the numbers are informational. The nodes here run in this process; the
out-of-process figure of the DSP page 1 (wrk against `connector serve`, a fresh token per request) is
bench_catalog_consumer.py's.

Embedded SQLite in a temporary directory by default; `--database-url postgresql+asyncpg://user@127.0.0.1:5432/db`
creates a database of its own on that server and drops it afterwards.

Run: python bench/bench_catalog.py [--quick] [--assets N] [--definitions D] [--database-url URL] [--profile]
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import io
import logging
import os
import pstats
import socket
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import orjson
from sqlalchemy import insert

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from baseline import bare_server  # bench/baseline.py (scripts run from bench/)
from harness import Result, emit  # bench/harness.py

import policies
from catalog.dsp import render_catalog
from connector import jsonld
from connector.app import Node, running_node
from connector.domain.assets import ContractDefinition, Criterion, PolicyDefinition
from connector.domain.participants import Participant
from connector.identity import issuer
from connector.services.catalog import CatalogService
from connector.services.offers import PolicyDefinitionService, effective_policy
from connector.settings import Settings
from connector.store import Store, migrate, query
from connector.store.tables import asset_properties, assets
from policies.registry import CLAIM_MEMBERSHIP, CLAIM_ROLES

EDC = "https://w3id.org/edc/v0.0.1/ns/"
BPC = "https://w3id.org/battery-passport-connector/ns/"
DSP_CONTEXT = "https://w3id.org/dspace/2025/1/context.jsonld"
PAGE = 50
BATCH = 10_000
CATEGORIES = ("EV", "LMT", "industrial", "stationary")
CHEMISTRIES = ("NMC811", "LFP", "NCA", "LMFP")
MAKERS = ("Cellforge", "Voltaris", "Nordic Cells", "Ampere Works", "Lumen Batteries")

# Access policies by definition index (j % 4); the contract policy is "open" or "recycling purpose" (j % 2).
ACCESS = ("open", "members", "recyclers", "authorities")
POLICIES: dict[str, list[Any]] = {
    # An empty policy is "use without conditions" (docs/decisions/0005).
    "open": [],
    "members": [
        {
            "action": "use",
            "constraint": [
                {
                    "leftOperand": BPC + "membership",
                    "operator": "eq",
                    "rightOperand": {"@value": "true", "@type": "xsd:boolean"},
                }
            ],
        }
    ],
    "recyclers": [
        {"action": "use", "constraint": [{"leftOperand": BPC + "role", "operator": "isA", "rightOperand": "recycler"}]}
    ],
    "authorities": [
        {
            "action": "use",
            "constraint": [
                {"leftOperand": BPC + "role", "operator": "isA", "rightOperand": "market_surveillance_authority"}
            ],
        }
    ],
    "purpose-recycling": [
        {"action": "use", "constraint": [{"leftOperand": "purpose", "operator": "eq", "rightOperand": "recycling"}]}
    ],
}
STRANGER = Participant("did:web:stranger.example", {})
RECYCLER = Participant("did:web:recycler.example", {CLAIM_MEMBERSHIP: True, CLAIM_ROLES: frozenset({"recycler"})})


@dataclass(frozen=True, slots=True)
class Shape:
    """What was populated, and how many datasets each requester can see."""

    assets: int
    definitions: int
    models: int
    visible_stranger: int
    visible_recycler: int


def permitted_selectors(shape: Shape, who: Participant) -> list[tuple[Criterion, ...]]:
    """Return the assets selectors of the definitions whose access policy lets `who` see them."""
    allowed = ("open",) if who is STRANGER else ("open", "members", "recyclers")
    return [
        (Criterion("bpc:batteryModel", "=", f"M{j % shape.models:04d}"),)
        for j in range(shape.definitions)
        if ACCESS[j % len(ACCESS)] in allowed
    ]


def model_of_asset(i: int, models: int) -> int:
    return i % models


def asset_row(i: int, models: int, now_ms: int) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Return the assets row and the asset_properties rows of passport asset i, as the asset repository writes them."""
    model = model_of_asset(i, models)
    asset_id = f"passport-{i:08d}"
    properties: dict[str, Any] = {
        EDC + "name": f"Battery passport {asset_id}",
        EDC + "contenttype": "application/json",
        EDC + "version": "1.2.0",
        BPC + "batteryModel": f"M{model:04d}",
        BPC + "category": CATEGORIES[model % len(CATEGORIES)],
        BPC + "chemistry": CHEMISTRIES[model % len(CHEMISTRIES)],
        BPC + "manufacturer": MAKERS[model % len(MAKERS)],
        BPC + "ratedCapacityKWh": 40 + (model % 60),
    }
    row = {
        "id": asset_id,
        "properties": properties,
        "private_properties": {},
        "data_address_type": "BatteryPassport",
        "data_address": {"type": "BatteryPassport", "batteryModel": f"M{model:04d}", "serial": asset_id},
        "data_address_secrets": {},
        "created_at": now_ms,
    }
    index = [
        {"asset_id": asset_id, "key": key, "private": False, "value_text": text, "value_num": number}
        for key, value in properties.items()
        for text, number in query.scalar_texts(value)
    ]
    return row, index


def odrl(permissions: list[Any]) -> Any:
    return jsonld.expand({"@context": "http://www.w3.org/ns/odrl.jsonld", "@type": "Set", "permission": permissions})[0]


async def populate(
    url: str, n_assets: int, n_definitions: int, n_models: int, analyze: bool = False
) -> tuple[Shape, dict[str, float]]:
    """Fill an empty database: policies through the service, assets in bulk, definitions through the repository."""
    timings: dict[str, float] = {}
    t = time.perf_counter()
    await migrate.upgrade(url)
    timings["migrate"] = time.perf_counter() - t
    store = Store(url, pool_size=2)
    try:
        t = time.perf_counter()
        service = PolicyDefinitionService(store)
        for pid, rules in POLICIES.items():
            await service.create(PolicyDefinition(pid, odrl(rules), {}, 1))
        timings["policies"] = time.perf_counter() - t

        # Assets: SQLAlchemy Core on the store's tables, batched (the repository does 3 statements per asset).
        t = time.perf_counter()
        now_ms = time.time_ns() // 1_000_000
        for start in range(0, n_assets, BATCH):
            rows, index = [], []
            for i in range(start, min(start + BATCH, n_assets)):
                row, props = asset_row(i, n_models, now_ms)
                rows.append(row)
                index.extend(props)
            async with store.transaction() as tx:
                await tx.connection.execute(insert(assets), rows)
                await tx.connection.execute(insert(asset_properties), index)
        timings["assets"] = time.perf_counter() - t

        t = time.perf_counter()
        async with store.transaction() as tx:
            for j in range(n_definitions):
                selector = (Criterion("bpc:batteryModel", "=", f"M{j % n_models:04d}"),)
                await tx.contracts.add(
                    ContractDefinition(
                        f"cd-{j:05d}",
                        ACCESS[j % len(ACCESS)],
                        "open" if j % 2 == 0 else "purpose-recycling",
                        selector,
                        {},
                        1,
                    )
                )
        timings["definitions"] = time.perf_counter() - t

        if url.startswith("postgresql") or analyze:
            # A real server's autovacuum analyses the tables soon after a bulk load; do it now. The node never
            # runs ANALYZE on SQLite, so there it is only done on request (--analyze).
            t = time.perf_counter()
            async with store.transaction() as tx:
                await tx.connection.exec_driver_sql("ANALYZE")
            timings["analyze"] = time.perf_counter() - t

        # Quick consistency check: the repository reads back what the bulk insert wrote.
        async with store.read() as tx:
            sample = await tx.assets.get("passport-00000000")
            assert sample is not None and sample.properties[BPC + "batteryModel"] == "M0000"
            assert await tx.assets.count() == n_assets
    finally:
        await store.close()

    open_models = {j % n_models for j in range(n_definitions) if ACCESS[j % len(ACCESS)] == "open"}
    recycler_models = {
        j % n_models for j in range(n_definitions) if ACCESS[j % len(ACCESS)] in ("open", "members", "recyclers")
    }
    visible_stranger = sum(1 for i in range(n_assets) if model_of_asset(i, n_models) in open_models)
    visible_recycler = sum(1 for i in range(n_assets) if model_of_asset(i, n_models) in recycler_models)
    return Shape(n_assets, n_definitions, n_models, visible_stranger, visible_recycler), timings


async def samples(fn: Callable[[], Awaitable[object]], count: int, budget: float) -> list[float]:
    """Time fn up to `count` times (at least 3) or until `budget` seconds are spent; return milliseconds."""
    out: list[float] = []
    deadline = time.perf_counter() + budget
    while len(out) < count and (len(out) < 3 or time.perf_counter() < deadline):
        t = time.perf_counter()
        await fn()
        out.append((time.perf_counter() - t) * 1000)
    return out


def line(label: str, ms: list[float], extra: str = "") -> str:
    med = statistics.median(ms)
    return f"{label:56s} median {med:8.2f} ms  (min {min(ms):7.2f}, max {max(ms):8.2f}, n={len(ms)}){extra}"


def single(label: str, value: float, unit: str = "ms") -> str:
    return f"{label:56s} {'':6s} {value:8.2f} {unit}"


async def bench_service(url: str, shape: Shape, args: argparse.Namespace) -> list[str]:
    """Measure CatalogService.catalog directly (no HTTP, no token)."""
    out: list[str] = []
    store = Store(url)
    try:
        catalog = CatalogService(store, "did:web:provider.example", "http://provider.example/api/dsp/2025-1")
        t = time.perf_counter()
        page = await catalog.catalog(STRANGER, 0, PAGE)
        cold = (time.perf_counter() - t) * 1000
        assert len(page.catalog.datasets) == min(PAGE, shape.visible_stranger), len(page.catalog.datasets)
        out.append(single("cold first call (compile definitions), no credentials", cold))

        deep_stranger = min(args.deep_offset, max(0, shape.visible_stranger - PAGE))
        deep_recycler = min(args.deep_offset, max(0, shape.visible_recycler - PAGE))
        cases: list[tuple[str, Participant, int]] = [
            ("page 1, no credentials", STRANGER, 0),
            ("page 1, member + recycler", RECYCLER, 0),
            (f"offset {deep_stranger:,}, no credentials", STRANGER, deep_stranger),
            (f"offset {deep_recycler:,}, member + recycler", RECYCLER, deep_recycler),
        ]
        for label, who, offset in cases:
            first = await catalog.catalog(who, offset, PAGE)
            assert len(first.catalog.datasets) == PAGE, (label, len(first.catalog.datasets))
            offers = sum(len(d.offers) for d in first.catalog.datasets)

            async def call(w: Participant = who, o: int = offset) -> None:
                await catalog.catalog(w, o, PAGE)

            ms = await samples(call, args.runs, args.budget)
            out.append(line(f"service {label}", ms, f"  [{offers} offers]"))

        # The same depth reached the way a DSP consumer follows rel="next" links: by key, not by offset.
        for label, who, offset in cases[2:]:
            before = await catalog.catalog(who, offset - 1, 1)
            after = before.last_key

            async def keyset(w: Participant = who, a: str | None = after) -> None:
                await catalog.catalog(w, 0, PAGE, after=a)

            ms = await samples(keyset, args.runs, args.budget)
            out.append(line(f"service {label.replace('offset', 'next link at')}", ms))

        # Where the time goes: the SQL page select alone, through the repository, with the selectors of the
        # definitions each requester may use (known from the population, not read from the service).
        for label, who, offset in cases:
            selectors = permitted_selectors(shape, who)

            async def select(s: list[tuple[Criterion, ...]] = selectors, o: int = offset) -> None:
                async with store.read() as tx:
                    await tx.assets.select_any(s, o, PAGE + 1)

            ms = await samples(select, args.runs, args.budget)
            out.append(line(f"  SQL select_any only, {label}", ms))

        # And the access policies: one evaluation per definition per request, as the service does.
        parsed = {pid: effective_policy(policies.parse_policy(odrl(rules))) for pid, rules in POLICIES.items()}
        access = [parsed[ACCESS[j % len(ACCESS)]] for j in range(shape.definitions)]
        for label, who in (("no credentials", STRANGER), ("member + recycler", RECYCLER)):
            context = policies.EvaluationContext(participant_id=who.id, claims=who.claims, now=datetime.now(UTC))

            async def evaluate_all(c: policies.EvaluationContext = context) -> None:
                for policy in access:
                    policies.evaluate(policy, "use", c, policies.Scope.CATALOG)

            ms = await samples(evaluate_all, args.runs, args.budget)
            out.append(line(f"  {shape.definitions:,} access policy evaluations, {label}", ms))

        page = await catalog.catalog(RECYCLER, 0, PAGE)

        async def render() -> None:
            orjson.dumps(render_catalog(page.catalog))

        ms = await samples(render, args.runs, args.budget)
        out.append(line("render + serialise page 1 (member + recycler)", ms))

        if args.profile:
            profiler = cProfile.Profile()
            profiler.enable()
            for _ in range(args.runs):
                await catalog.catalog(RECYCLER, 0, PAGE)
            profiler.disable()
            text = io.StringIO()
            stats = pstats.Stats(profiler, stream=text)
            stats.sort_stats("tottime").print_stats(18)
            out.append(f"\ncProfile, {args.runs} warm service calls (page 1, member + recycler), by own time:")
            out.extend(_trim_profile(text.getvalue()))
    finally:
        await store.close()
    return out


def _trim_profile(text: str) -> list[str]:
    lines = text.splitlines()
    start = next((i for i, x in enumerate(lines) if x.lstrip().startswith("ncalls")), 0)
    root = str(Path(__file__).resolve().parents[1]) + "/"
    return [x.replace(root, "") for x in lines[start:] if x.strip()]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def node_settings(data_dir: Path, port: int, database_url: str | None = None, **extra: Any) -> Settings:
    values: dict[str, Any] = {
        "protocol_host": "127.0.0.1",
        "protocol_port": port,
        "public_url": f"http://127.0.0.1:{port}",
        "management_port": 0,
        "data_dir": data_dir,
        "log_level": "WARNING",
        "shutdown_timeout": 2.0,
        "allow_local_peers": True,
        **extra,
    }
    if database_url is not None:
        values["database_url"] = database_url
        values["database_auto_migrate"] = False
    return Settings(**values)


async def bench_http(url: str, shape: Shape, tmp: Path, args: argparse.Namespace) -> list[str]:
    """Measure POST <dsp>/catalog/request on a real node, and the same bytes from a bare aiohttp handler."""
    out: list[str] = []
    port = free_port()
    provider_dir = tmp / "provider"
    issuer_dir = provider_dir / "issuer"
    issuer_did = f"did:web:127.0.0.1%3A{port}:issuer"
    issuer.create_issuer(issuer_dir, issuer_did)
    issuer.init_registry(issuer_dir, issuer_did, f"http://127.0.0.1:{port}/issuer/status")
    provider_settings = node_settings(provider_dir, port, url, trusted_issuers=issuer_did)
    stranger_settings = node_settings(tmp / "stranger", free_port())
    recycler_settings = node_settings(tmp / "recycler", free_port(), trusted_issuers=issuer_did)
    message = {"@context": [DSP_CONTEXT], "@type": "CatalogRequestMessage"}

    def paged(offset: int) -> dict[str, Any]:
        return {**message, "filter": [{"@type": "QuerySpec", "offset": offset, "limit": PAGE}]}

    t = time.perf_counter()
    async with (
        running_node(provider_settings) as provider,
        running_node(stranger_settings) as stranger,
        running_node(recycler_settings) as recycler,
        aiohttp.ClientSession() as http,
    ):
        out.append(single("three nodes started (provider, two consumers)", time.perf_counter() - t, "s"))
        await _give_credentials(issuer_dir, recycler)
        endpoint = provider.settings.dsp_base_url + "/catalog/request"
        audience = provider.settings.effective_did

        async def ask(consumer: Node, body: dict[str, Any]) -> bytes:
            headers = {"Authorization": consumer.identity.token_for(audience)}
            async with http.post(endpoint, json=body, headers=headers) as response:
                raw = await response.read()
                assert response.status == 200, raw[:300]
                return raw

        async def timed(
            consumer: Node, target: str, body: dict[str, Any] | None = None, status: int = 200
        ) -> list[float]:
            """POST body (GET without one) to target, `--requests` times or for `--budget` seconds at most."""
            out_ms: list[float] = []
            deadline = time.perf_counter() + args.budget
            while len(out_ms) < args.requests and (len(out_ms) < 3 or time.perf_counter() < deadline):
                # The token is the consumer's work; mint it outside the timed section.
                headers = {"Authorization": consumer.identity.token_for(audience)}
                t = time.perf_counter()
                async with http.request("POST" if body else "GET", target, json=body, headers=headers) as response:
                    await response.read()
                    assert response.status == status, response.status
                out_ms.append((time.perf_counter() - t) * 1000)
            return out_ms

        for name, consumer in (("no credentials", stranger), ("member + recycler", recycler)):
            t = time.perf_counter()
            await ask(consumer, message)
            first = (time.perf_counter() - t) * 1000
            out.append(single(f"first DSP request, {name} (DID, claims)", first))

        page_bytes = await ask(stranger, message)
        datasets = orjson.loads(page_bytes).get("dataset", [])
        assert len(datasets) == PAGE, len(datasets)
        node_stranger = await timed(stranger, endpoint, message)
        out.append(line("DSP page 1, no credentials", node_stranger, f"  [{len(page_bytes):,} bytes]"))
        recycler_bytes = await ask(recycler, message)
        node_recycler = await timed(recycler, endpoint, message)
        out.append(line("DSP page 1, member + recycler", node_recycler, f"  [{len(recycler_bytes):,} bytes]"))
        deep = min(args.deep_offset, max(0, shape.visible_stranger - PAGE))
        node_deep = await timed(stranger, endpoint, paged(deep))
        out.append(line(f"DSP offset {deep:,}, no credentials", node_deep))

        unknown = provider.settings.dsp_base_url + "/catalog/datasets/none"
        node_floor = await timed(stranger, unknown, status=404)
        out.append(line("DSP unknown dataset (token, replay, policies, 404)", node_floor))

        runner, bare_port = await bare_server(page_bytes)
        try:
            bare_url = f"http://127.0.0.1:{bare_port}/api/dsp/2025-1/catalog/request"
            bare = await timed(stranger, bare_url, message)
            async with http.post(bare_url, json=message) as response:
                got = await response.read()
            assert got == page_bytes
        finally:
            await runner.cleanup()
        out.append(line("bare aiohttp, same page bytes", bare, f"  [{len(page_bytes):,} bytes]"))
        base = statistics.median(bare)
        out.append(single("ratio node / bare, page 1, no credentials", statistics.median(node_stranger) / base, "x"))
        out.append(single("ratio node / bare, page 1, member + recycler", statistics.median(node_recycler) / base, "x"))
        how = "in-process nodes, sequential (the token minted outside the timing)"
        size = f"{shape.assets:,} assets, {shape.definitions:,} definitions"
        for label, samples in (("no credentials", node_stranger), ("member + recycler", node_recycler)):
            emit(
                Result(
                    f"catalog page 1 at the provider's DSP endpoint, {label} ({size})",
                    statistics.median(samples),
                    "ms",
                    base,
                    "bare aiohttp, same page bytes",
                    tool=how,
                    rounds=len(samples),
                )
            )
        emit(
            Result(
                f"catalog deep page at the DSP endpoint (offset {deep:,}), no credentials",
                statistics.median(node_deep),
                "ms",
                statistics.median(node_stranger),
                "page 1 in the same run",
                tool=how,
                rounds=len(node_deep),
            )
        )
    return out


async def _give_credentials(issuer_dir: Path, holder: Node) -> None:
    """Issue membership and recycler role credentials to a node, which holds them (imports check them)."""
    registry = issuer.load_registry(issuer_dir)
    identity = issuer.create_issuer(issuer_dir, registry.did)
    now = datetime.now(UTC)
    until = now + timedelta(days=1)
    did = holder.settings.effective_did
    membership, registry = issuer.issue_membership(identity, registry, did, valid_from=now, valid_until=until)
    role, registry = issuer.issue_role(identity, registry, did, "recycler", valid_from=now, valid_until=until)
    issuer.save_registry(issuer_dir, registry)
    for jwt in (membership, role):
        await holder.identity.import_credential(jwt)


async def create_database(base_url: str) -> tuple[str, str]:
    """Create a fresh PostgreSQL database beside the one named in base_url; return (its URL, its name)."""
    import asyncpg

    name = f"bpc_bench_{uuid.uuid4().hex[:12]}"
    dsn = base_url.replace("postgresql+asyncpg://", "postgresql://")
    connection = await asyncpg.connect(dsn)
    try:
        await connection.execute(f'CREATE DATABASE "{name}" TEMPLATE template0')
    finally:
        await connection.close()
    head = base_url.rpartition("/")[0]
    url = head + "/" + name
    if not url.startswith("postgresql+asyncpg://"):
        url = "postgresql+asyncpg://" + url.split("://", 1)[1]
    return url, name


async def drop_database(base_url: str, name: str) -> None:
    import asyncpg

    connection = await asyncpg.connect(base_url.replace("postgresql+asyncpg://", "postgresql://"))
    try:
        await connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await connection.close()


async def main(args: argparse.Namespace) -> None:
    started = time.perf_counter()
    models = args.models or min(args.definitions, args.assets)
    with tempfile.TemporaryDirectory(prefix="bench-catalog-") as tmp_name:
        tmp = Path(tmp_name)
        created: str | None = None
        if args.database_url:
            url, created = await create_database(args.database_url)
            backend = "PostgreSQL (database created for this run, dropped after)"
        else:
            url = f"sqlite+aiosqlite:///{(tmp / 'provider' / 'connector.db').as_posix()}"
            backend = "embedded SQLite (temporary directory" + (", ANALYZE run)" if args.analyze else ")")
        try:
            t = time.perf_counter()
            shape, timings = await populate(url, args.assets, args.definitions, models, args.analyze)
            populated = time.perf_counter() - t
            print(
                f"provider: {shape.assets:,} assets, {shape.definitions:,} contract definitions over "
                f"{shape.models:,} battery models, {len(POLICIES)} policies; {backend}"
            )
            print(
                f"visible datasets: {shape.visible_stranger:,} without credentials (open definitions), "
                f"{shape.visible_recycler:,} for a member + recycler"
            )
            parts = ", ".join(f"{k} {v:.1f} s" for k, v in timings.items())
            print(f"population: {populated:.1f} s ({parts}; {shape.assets / timings['assets']:,.0f} assets/s)")
            print()
            print(f"catalog service, page of {PAGE} (CatalogService.catalog, warm unless said):")
            for text in await bench_service(url, shape, args):
                print(text)
            print()
            print(f"DSP catalog endpoint over loopback HTTP, page of {PAGE}, fresh token per request:")
            for text in await bench_http(url, shape, tmp, args):
                print(text)
        finally:
            if created is not None and args.database_url:
                await drop_database(args.database_url, created)
    print(f"\ntotal run time {time.perf_counter() - started:.0f} s")


def parse_args() -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--assets", type=int, default=100_000, help="passport assets (default 100,000)")
    ap.add_argument("--definitions", type=int, default=1_000, help="contract definitions (default 1,000)")
    ap.add_argument("--models", type=int, default=0, help="battery models (default: one per definition)")
    ap.add_argument("--quick", action="store_true", help="10,000 assets and 100 definitions")
    ap.add_argument("--runs", type=int, default=30, help="service calls per measurement (default 30)")
    ap.add_argument("--requests", type=int, default=50, help="HTTP requests per measurement (default 50)")
    ap.add_argument("--budget", type=float, default=8.0, help="seconds at most per measurement (default 8)")
    ap.add_argument("--deep-offset", type=int, default=10_000, help="offset of the deep page (default 10,000)")
    ap.add_argument("--database-url", help="PostgreSQL server URL (postgresql+asyncpg://...); default SQLite")
    ap.add_argument("--profile", action="store_true", help="print a cProfile of warm service calls")
    ap.add_argument("--analyze", action="store_true", help="run ANALYZE after populating SQLite (the node never does)")
    args = ap.parse_args()
    if args.quick:
        args.assets, args.definitions = 10_000, 100
    if args.assets < PAGE or args.definitions < len(ACCESS):
        ap.error(f"need at least {PAGE} assets and {len(ACCESS)} definitions")
    return args


if __name__ == "__main__":
    # Settings read CONNECTOR_* variables; this run's nodes are described by the arguments alone.
    for key in [k for k in os.environ if k.startswith("CONNECTOR_")]:
        del os.environ[key]
    logging.basicConfig(level=logging.WARNING)
    asyncio.run(main(parse_args()))
