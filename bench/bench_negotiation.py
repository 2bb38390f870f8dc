"""Contract negotiation between two real nodes on loopback: sequential latency, throughput in flight, bare baseline.

Starts a provider and a consumer node in this process (`running_node`, embedded SQLite in a temporary directory,
127.0.0.1 only), publishes one asset, an open access policy, a contract policy and one contract definition, asks
for the provider's catalog once and then negotiates that offer again and again through the consumer's
management API, as an EDC client does: `POST /management/v3/contractnegotiations`, then `GET .../{id}/state`
every `--poll-ms` until FINALIZED (or TERMINATED).

Prints:
- the first negotiation (first contact: DID documents, the consumer's presentation), then the median, min and
  max of N sequential ones from the POST to the consumer reading FINALIZED, with the polls it took, when each
  state was first seen, the round trip of each DSP message as the sending node's outbox saw it, and when the
  provider's side showed FINALIZED;
- negotiations per second with `--inflight` (default 50) kept in flight, and the median and 95th percentile
  latency under that load (one watcher lists the in-flight negotiations every `--load-poll-ms`, so the clients'
  polling does not swamp the nodes: all of them share one event loop with the benchmark);
- a bare aiohttp app on 127.0.0.1 answering the four DSP exchanges of a negotiation (ContractRequestMessage,
  ContractAgreementMessage, ContractAgreementVerificationMessage, ContractNegotiationEventMessage) as four
  sequential POSTs of ~1 KB with a small JSON answer, sequentially and with the same number in flight, and the
  ratios node / bare.

`--credentials` makes the provider the dataspace's issuer and the contract policy "recyclers only": the consumer
holds a recycler role credential, the provider checks it (presentation query on first contact, then cached).
`--database-url postgresql+asyncpg://user@127.0.0.1:5432/db` creates a database per node on that server and drops
them afterwards. `--profile` prints a cProfile of 20 sequential negotiations (both nodes, this process).
Never fails on time: the numbers are informational. Bounded by counts and by `--budget` seconds per phase.

Run: python bench/bench_negotiation.py [--quick] [--negotiations N] [--load L] [--inflight K] [--budget S]
        [--poll-ms MS] [--credentials] [--database-url URL] [--profile]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
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
from collections import defaultdict
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import orjson
from harness import Result, emit  # bench/harness.py (scripts run from bench/)
from sqlalchemy import event
from sqlalchemy.engine import Engine

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from baseline import bare_server  # bench/baseline.py (scripts run from bench/)

from connector.app import Node, running_node
from connector.identity import issuer
from connector.services.dsp_client import DspClient
from connector.settings import Settings
from connector.store import Store

ROOT = Path(__file__).resolve().parents[1]
EDC = {"@vocab": "https://w3id.org/edc/v0.0.1/ns/"}
ODRL_CONTEXT = "http://www.w3.org/ns/odrl.jsonld"
BPC = "https://w3id.org/battery-passport-connector/ns/"
DSP_CONTEXT = "https://w3id.org/dspace/2025/1/context.jsonld"
API_KEY = "bench-api-key-0123456789"
ASSET = "passports-bench"
NEGOTIATIONS = "/management/v3/contractnegotiations"
TERMINAL = frozenset({"FINALIZED", "TERMINATED"})
STATES = ("REQUESTED", "AGREED", "VERIFIED", "FINALIZED")
STUCK_SECONDS = 30.0
PROFILED = 20

CONTRACT_POLICIES: dict[str, list[Any]] = {
    # Anyone may agree to use. (A purpose constraint would refuse: a negotiation carries no purpose to compare.)
    "use": [{"action": "use"}],
    # Only holders of a recycler role credential from the trusted issuer may agree.
    "recyclers": [
        {"action": "use", "constraint": [{"leftOperand": BPC + "role", "operator": "isA", "rightOperand": "recycler"}]}
    ],
}
MESSAGE_ORDER = (
    "ContractRequestMessage",
    "ContractAgreementMessage",
    "ContractAgreementVerificationMessage",
    "ContractNegotiationEventMessage",
    "ContractNegotiationTerminationMessage",
)


# Reporting.


def line(label: str, ms: list[float], extra: str = "") -> str:
    if not ms:
        return f"{label:52s} (no samples){extra}"
    med = statistics.median(ms)
    return f"{label:52s} median {med:8.2f} ms  (min {min(ms):7.2f}, max {max(ms):8.2f}, n={len(ms)}){extra}"


def single(label: str, value: float, unit: str = "ms") -> str:
    return f"{label:52s} {'':6s} {value:8.2f} {unit}"


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))
    return ordered[index]


# What each node's outbox sends, timed by message type (both nodes share the class; the type names the sender).


class DeliveryTimer:
    """Wraps DspClient.deliver for this run to time each DSP message's round trip, as the sending outbox sees it."""

    def __init__(self) -> None:
        self.samples: dict[str, list[float]] = defaultdict(list)
        self.refused: dict[str, int] = defaultdict(int)
        self._original = DspClient.deliver

    def install(self) -> None:
        original = self._original
        timer = self

        async def deliver(client: DspClient, url: str, counterparty: str, message: dict[str, Any]) -> tuple[int, Any]:
            t = time.perf_counter()
            status, body = await original(client, url, counterparty, message)
            kind = str(message.get("@type", "?"))
            timer.samples[kind].append((time.perf_counter() - t) * 1000)
            if not 200 <= status < 300:
                timer.refused[kind] += 1
            return status, body

        DspClient.deliver = deliver  # type: ignore[method-assign]

    def uninstall(self) -> None:
        DspClient.deliver = self._original  # type: ignore[method-assign]

    def reset(self) -> None:
        self.samples.clear()
        self.refused.clear()


class DatabaseTimer:
    """Times Store.transaction and Store.read for this run (the wait to begin: pool and lock; time held) and
    counts the SQL statements every engine executes, timing each (a SQLite writer's BEGIN IMMEDIATE is its lock wait).
    """

    def __init__(self) -> None:
        self.waits: dict[str, list[float]] = defaultdict(list)
        self.held: dict[str, list[float]] = defaultdict(list)
        self.statements: dict[str, list[float]] = defaultdict(list)
        self._originals = (Store.transaction, Store.read)

    def install(self) -> None:
        for name, original in zip(("transaction", "read"), self._originals, strict=True):
            setattr(Store, name, self._timed(name, original))
        event.listen(Engine, "before_cursor_execute", self._before)
        event.listen(Engine, "after_cursor_execute", self._after)

    def _timed(self, kind: str, original: Callable[[Store], Any]) -> Callable[[Store], Any]:
        timer = self

        @contextlib.asynccontextmanager
        async def timed(store: Store) -> AsyncIterator[Any]:
            t = time.perf_counter()
            async with original(store) as tx:
                begun = time.perf_counter()
                timer.waits[kind].append((begun - t) * 1000)
                yield tx
            timer.held[kind].append((time.perf_counter() - begun) * 1000)

        return timed

    def _before(self, connection: Any, _cursor: Any, _statement: str, *_: Any) -> None:
        connection.info.setdefault("bench_started", []).append(time.perf_counter())

    def _after(self, connection: Any, _cursor: Any, statement: str, *_: Any) -> None:
        started = connection.info.get("bench_started")
        if started:
            self.statements[_statement_kind(statement)].append((time.perf_counter() - started.pop()) * 1000)

    def uninstall(self) -> None:
        Store.transaction, Store.read = self._originals  # type: ignore[method-assign]
        event.remove(Engine, "before_cursor_execute", self._before)
        event.remove(Engine, "after_cursor_execute", self._after)

    def reset(self) -> None:
        self.waits.clear()
        self.held.clear()
        self.statements.clear()


def _statement_kind(sql: str) -> str:
    """Return e.g. 'SELECT negotiations', 'INSERT outbox', 'BEGIN IMMEDIATE' for a SQL statement."""
    words = sql.replace("(", " ").replace(",", " ").split()
    if not words:
        return "?"
    head = words[0].upper()
    upper = [w.upper() for w in words]
    table = {"INSERT": "INTO", "DELETE": "FROM", "SELECT": "FROM", "UPDATE": "UPDATE"}.get(head)
    if table is not None and table in upper and upper.index(table) + 1 < len(words):
        return f"{head} {words[upper.index(table) + 1].strip(chr(34))}"
    return " ".join(words[:2]).upper()


# The nodes.


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def node_settings(data_dir: Path, port: int, database_url: str | None, **extra: Any) -> Settings:
    values: dict[str, Any] = {
        "protocol_host": "127.0.0.1",
        "protocol_port": port,
        "public_url": f"http://127.0.0.1:{port}",
        "management_host": "127.0.0.1",
        "management_port": 0,
        "data_dir": data_dir,
        "api_key": API_KEY,
        "log_level": "WARNING",
        "shutdown_timeout": 2.0,
        "allow_local_peers": True,
        **extra,
    }
    if database_url is not None:
        values["database_url"] = database_url
        values["database_auto_migrate"] = True
    return Settings(**values)


class Api:
    """A node's management API, as a script uses it."""

    def __init__(self, http: aiohttp.ClientSession, node: Node) -> None:
        self.http = http
        self.base = node.management_url
        self.headers = {"X-Api-Key": API_KEY, "Content-Type": "application/json"}

    async def call(self, method: str, path: str, body: Any = None) -> tuple[int, Any]:
        data = orjson.dumps(body) if body is not None else None
        async with self.http.request(method, self.base + path, data=data, headers=self.headers) as response:
            raw = await response.read()
            return response.status, orjson.loads(raw) if raw else None


async def publish(api: Api, contract_policy: str) -> None:
    asset = {
        "@context": EDC,
        "@id": ASSET,
        "properties": {"name": "Battery passports (bench)", BPC + "batteryModel": "M1"},
        "dataAddress": {"type": "BatteryPassport", "batteryModel": "M1"},
    }
    calls: list[tuple[str, dict[str, Any]]] = [("/management/v3/assets", asset)]
    for policy_id, permissions in (("open", []), (contract_policy, CONTRACT_POLICIES[contract_policy])):
        body = {
            "@context": EDC,
            "@id": policy_id,
            "policy": {"@context": ODRL_CONTEXT, "@type": "Set", "permission": permissions},
        }
        calls.append(("/management/v3/policydefinitions", body))
    definition = {
        "@context": EDC,
        "@id": "cd-bench",
        "accessPolicyId": "open",
        "contractPolicyId": contract_policy,
        "assetsSelector": [],
    }
    calls.append(("/management/v3/contractdefinitions", definition))
    for path, body in calls:
        status, answer = await api.call("POST", path, body)
        assert status == 200, (path, status, answer)


async def contract_request(consumer: Api, provider: Node) -> dict[str, Any]:
    """Ask the provider's catalog once; return the ContractRequest body that copies its offer back."""
    body = {
        "@context": EDC,
        "@type": "CatalogRequest",
        "counterPartyAddress": provider.settings.dsp_base_url,
        "counterPartyId": provider.settings.effective_did,
        "protocol": "dataspace-protocol-http:2025-1",
    }
    status, catalog = await consumer.call("POST", "/management/v3/catalog/request", body)
    assert status == 200, catalog
    datasets = catalog["dcat:dataset"]
    dataset = datasets[0] if isinstance(datasets, list) else datasets
    offers = dataset["odrl:hasPolicy"]
    offer = offers[0] if isinstance(offers, list) else offers
    policy = {
        **offer,
        "odrl:assigner": {"@id": provider.settings.effective_participant_id},
        "odrl:target": {"@id": ASSET},
    }
    return {
        "@context": {**EDC, "odrl": "http://www.w3.org/ns/odrl/2/"},
        "@type": "ContractRequest",
        "counterPartyAddress": provider.settings.dsp_base_url,
        "protocol": "dataspace-protocol-http:2025-1",
        "policy": policy,
    }


async def give_recycler_role(issuer_dir: Path, holder: Node) -> None:
    registry = issuer.load_registry(issuer_dir)
    identity = issuer.create_issuer(issuer_dir, registry.did)
    now = datetime.now(UTC)
    jwt, registry = issuer.issue_role(
        identity,
        registry,
        holder.settings.effective_did,
        "recycler",
        valid_from=now,
        valid_until=now + timedelta(days=1),
    )
    issuer.save_registry(issuer_dir, registry)
    await holder.identity.import_credential(jwt)


# One negotiation, polled by its state.


@dataclass(slots=True)
class Run:
    """One negotiation as the client saw it (milliseconds from just before the POST)."""

    id: str = ""
    state: str = "?"
    total: float = float("nan")
    post: float = float("nan")
    polls: int = 0
    seen: dict[str, float] = field(default_factory=dict)
    error: str | None = None


async def negotiate(api: Api, request: dict[str, Any], poll_s: float) -> Run:
    run = Run()
    t0 = time.perf_counter()
    status, created = await api.call("POST", NEGOTIATIONS, request)
    run.post = (time.perf_counter() - t0) * 1000
    if status != 200:
        run.state, run.error = f"HTTP {status}", str(created)[:200]
        return run
    run.id = str(created["@id"])
    deadline = t0 + STUCK_SECONDS
    while True:
        _, answer = await api.call("GET", f"{NEGOTIATIONS}/{run.id}/state")
        run.polls += 1
        now = time.perf_counter()
        state = str(answer.get("state")) if isinstance(answer, dict) else "?"
        run.seen.setdefault(state, (now - t0) * 1000)
        if state in TERMINAL or now > deadline:
            run.state = state if state in TERMINAL else f"stuck in {state}"
            run.total = (now - t0) * 1000
            if state != "FINALIZED":
                _, negotiation = await api.call("GET", f"{NEGOTIATIONS}/{run.id}")
                run.error = str(negotiation.get("errorDetail") if isinstance(negotiation, dict) else negotiation)
            return run
        await asyncio.sleep(poll_s)


async def provider_finalized(provider: Api, consumer: Api, run: Run, t0: float) -> float | None:
    """Return ms from t0 until the provider's side of the run shows FINALIZED (found by its agreement id)."""
    _, negotiation = await consumer.call("GET", f"{NEGOTIATIONS}/{run.id}")
    agreement = negotiation.get("contractAgreementId") if isinstance(negotiation, dict) else None
    if not agreement:
        return None
    spec = {
        "@context": EDC,
        "@type": "QuerySpec",
        "filterExpression": [{"operandLeft": "contractAgreementId", "operator": "=", "operandRight": agreement}],
    }
    deadline = time.perf_counter() + 5
    while time.perf_counter() < deadline:
        _, found = await provider.call("POST", NEGOTIATIONS + "/request", spec)
        if found and found[0].get("state") == "FINALIZED":
            return (time.perf_counter() - t0) * 1000
        await asyncio.sleep(0.001)
    return None


async def sequential(
    consumer: Api, provider: Api, request: dict[str, Any], count: int, budget: float, poll_s: float
) -> tuple[list[Run], list[float]]:
    """Negotiate `count` times one after another (at least 3, at most `budget` seconds)."""
    runs: list[Run] = []
    provider_ms: list[float] = []
    deadline = time.perf_counter() + budget
    while len(runs) < count and (len(runs) < 3 or time.perf_counter() < deadline):
        t0 = time.perf_counter()
        run = await negotiate(consumer, request, poll_s)
        runs.append(run)
        if run.state == "FINALIZED":
            # The provider finalizes when the consumer acknowledges the FINALIZED event, just after the
            # consumer's state changed; one GET for the agreement id, then the provider's list filtered by it.
            at = await provider_finalized(provider, consumer, run, t0)
            if at is not None:
                provider_ms.append(at)
    return runs, provider_ms


# Many in flight, one watcher.


@dataclass(slots=True)
class Load:
    latencies: list[float]
    states: dict[str, int]
    errors: list[str]
    wall: float
    watcher_calls: int
    watcher_ms: list[float]


async def in_flight(
    consumer: Api, request: dict[str, Any], total: int, inflight: int, budget: float, poll_s: float
) -> Load:
    """Keep `inflight` negotiations running until `total` started or `budget` seconds passed; wait for them all."""
    pending: dict[str, tuple[asyncio.Future[str], float]] = {}
    latencies: list[float] = []
    states: dict[str, int] = defaultdict(int)
    errors: list[str] = []
    watcher_ms: list[float] = []
    started = 0
    calls = 0
    stop = asyncio.Event()

    async def watcher() -> None:
        nonlocal calls
        while not stop.is_set():
            if pending:
                ids = list(pending)
                spec = {
                    "@context": EDC,
                    "@type": "QuerySpec",
                    "limit": len(ids) + 1,
                    "filterExpression": [{"operandLeft": "id", "operator": "in", "operandRight": ids}],
                }
                t = time.perf_counter()
                status, found = await consumer.call("POST", NEGOTIATIONS + "/request", spec)
                watcher_ms.append((time.perf_counter() - t) * 1000)
                calls += 1
                if status == 200:
                    for negotiation in found:
                        entry = pending.get(negotiation["@id"])
                        if entry is not None and negotiation["state"] in TERMINAL and not entry[0].done():
                            if negotiation.get("errorDetail"):
                                errors.append(str(negotiation["errorDetail"])[:200])
                            entry[0].set_result(negotiation["state"])
            await asyncio.sleep(poll_s)

    async def worker(deadline: float) -> None:
        nonlocal started
        loop = asyncio.get_running_loop()
        while started < total and time.perf_counter() < deadline:
            started += 1
            t0 = time.perf_counter()
            status, created = await consumer.call("POST", NEGOTIATIONS, request)
            if status != 200:
                states[f"HTTP {status}"] += 1
                errors.append(str(created)[:200])
                continue
            future: asyncio.Future[str] = loop.create_future()
            pending[created["@id"]] = (future, t0)
            try:
                async with asyncio.timeout(STUCK_SECONDS):
                    state = await future
            except TimeoutError:
                state = "stuck"
            finally:
                del pending[created["@id"]]
            states[state] += 1
            if state == "FINALIZED":
                latencies.append((time.perf_counter() - t0) * 1000)

    watching = asyncio.create_task(watcher())
    t = time.perf_counter()
    try:
        await asyncio.gather(*(worker(t + budget) for _ in range(inflight)))
    finally:
        stop.set()
        await watching
    return Load(latencies, dict(states), errors, time.perf_counter() - t, calls, watcher_ms)


# The baseline: the same number of exchanges against a bare aiohttp app.


def dsp_like_bodies() -> list[bytes]:
    """Four ~1 KB JSON bodies shaped like the four messages of a negotiation."""
    pids = {"consumerPid": "urn:uuid:" + str(uuid.uuid4()), "providerPid": "urn:uuid:" + str(uuid.uuid4())}
    rules = CONTRACT_POLICIES["recyclers"]
    bodies: list[dict[str, Any]] = [
        {
            "@context": [DSP_CONTEXT],
            "@type": "ContractRequestMessage",
            "consumerPid": pids["consumerPid"],
            "callbackAddress": "http://127.0.0.1:1/api/dsp/2025-1",
            "offer": {"@id": "urn:uuid:" + str(uuid.uuid4()), "@type": "Offer", "target": ASSET, "permission": rules},
        },
        {
            "@context": [DSP_CONTEXT],
            "@type": "ContractAgreementMessage",
            **pids,
            "callbackAddress": "http://127.0.0.1:1/api/dsp/2025-1",
            "agreement": {
                "@id": "urn:uuid:" + str(uuid.uuid4()),
                "@type": "Agreement",
                "target": ASSET,
                "assigner": "did:web:127.0.0.1%3A1",
                "assignee": "did:web:127.0.0.1%3A2",
                "timestamp": "2026-01-01T00:00:00Z",
                "permission": rules,
            },
        },
        {"@context": [DSP_CONTEXT], "@type": "ContractAgreementVerificationMessage", **pids},
        {"@context": [DSP_CONTEXT], "@type": "ContractNegotiationEventMessage", **pids, "eventType": "FINALIZED"},
    ]
    # Pad each to ~1 KB (a node's messages also carry a ~900-byte Authorization header, sent here as well).
    return [orjson.dumps({**b, "padding": "x" * max(0, 1024 - len(orjson.dumps(b)))}) for b in bodies]


async def bare_exchanges(http: aiohttp.ClientSession, url: str, bodies: list[bytes], token: str) -> None:
    headers = {"Content-Type": "application/json", "Authorization": token}
    for body in bodies:
        async with http.post(url, data=body, headers=headers) as response:
            await response.read()
            assert response.status == 200


async def bare_sequential(
    http: aiohttp.ClientSession, url: str, bodies: list[bytes], token: str, count: int, budget: float
) -> list[float]:
    out: list[float] = []
    deadline = time.perf_counter() + budget
    while len(out) < count and (len(out) < 3 or time.perf_counter() < deadline):
        t = time.perf_counter()
        await bare_exchanges(http, url, bodies, token)
        out.append((time.perf_counter() - t) * 1000)
    return out


async def bare_in_flight(
    http: aiohttp.ClientSession, url: str, bodies: list[bytes], token: str, total: int, inflight: int, budget: float
) -> tuple[list[float], float]:
    latencies: list[float] = []
    started = 0

    async def worker(deadline: float) -> None:
        nonlocal started
        while started < total and time.perf_counter() < deadline:
            started += 1
            t = time.perf_counter()
            await bare_exchanges(http, url, bodies, token)
            latencies.append((time.perf_counter() - t) * 1000)

    t = time.perf_counter()
    await asyncio.gather(*(worker(t + budget) for _ in range(inflight)))
    return latencies, time.perf_counter() - t


# Profile.


async def profile(run: Callable[[], Awaitable[object]], count: int) -> list[str]:
    profiler = cProfile.Profile()
    profiler.enable()
    for _ in range(count):
        await run()
    profiler.disable()
    root = str(ROOT) + "/"
    out: list[str] = []
    for title, sort, restriction, limit in (
        ("by cumulative time, connector/ and policies/ only", "cumulative", r"/(connector|policies)/", 28),
        ("by own time, everything", "tottime", None, 18),
    ):
        text = io.StringIO()
        stats = pstats.Stats(profiler, stream=text)
        stats.sort_stats(sort)
        if restriction is None:
            stats.print_stats(limit)
        else:
            stats.print_stats(restriction, limit)
        lines = text.getvalue().splitlines()
        start = next((i for i, x in enumerate(lines) if x.lstrip().startswith("ncalls")), 0)
        out.append(f"\ncProfile of {count} sequential negotiations (both nodes and the client), {title}:")
        out.extend(x.replace(root, "") for x in lines[start:] if x.strip())
    out.append(f"\ncProfile of {count} sequential negotiations, own time by package (wall clock, per negotiation):")
    stats = pstats.Stats(profiler)
    groups: dict[str, list[float]] = defaultdict(lambda: [0.0, 0.0])
    for (filename, _, name), (_, calls, own, _, _) in stats.stats.items():  # type: ignore[attr-defined]
        group = _package(filename, name)
        groups[group][0] += own
        groups[group][1] += calls
    busy = sum(own for group, (own, _) in groups.items() if group != "idle (epoll wait)")
    for group, (own, calls) in sorted(groups.items(), key=lambda kv: -kv[1][0])[:14]:
        share = "" if group.startswith("idle") else f" {own / busy:4.0%} of busy"
        out.append(f"  {group:40s} {own * 1000 / count:8.2f} ms {share:14s} {calls / count:9,.0f} calls")
    out.append("(coroutines are counted once per resumption; database work runs in aiosqlite threads, not seen here)")
    return out


def _package(filename: str, name: str) -> str:
    """Name what a profiled function belongs to: a package of this project, a library, or the interpreter."""
    if "epoll" in name and "poll" in name:
        return "idle (epoll wait)"
    if filename == "~":
        return "builtins (C functions)"
    parts = Path(filename).parts
    for marker in ("site-packages", "dist-packages"):
        if marker in parts:
            return parts[parts.index(marker) + 1].split(".")[0]
    with contextlib.suppress(ValueError):
        return Path(filename).relative_to(ROOT).parts[0] + "/ (this project)"
    return "python stdlib: " + (parts[-2] if parts[-2].startswith("asyncio") else Path(filename).stem)


# PostgreSQL databases of the run.


async def create_database(base_url: str, label: str) -> tuple[str, str]:
    import asyncpg

    name = f"bpc_bench_{label}_{uuid.uuid4().hex[:10]}"
    connection = await asyncpg.connect(base_url.replace("postgresql+asyncpg://", "postgresql://"))
    try:
        await connection.execute(f'CREATE DATABASE "{name}" TEMPLATE template0')
    finally:
        await connection.close()
    url = base_url.rpartition("/")[0] + "/" + name
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


# The run.


def describe_runs(label: str, runs: list[Run]) -> list[str]:
    done = [r for r in runs if r.state == "FINALIZED"]
    out = [line(label, [r.total for r in done])]
    others = [r for r in runs if r.state != "FINALIZED"]
    if others:
        out.append(f"  NOT FINALIZED: {len(others)} of {len(runs)}: {others[0].state} {others[0].error or ''}")
    if done:
        out.append(line("  POST /contractnegotiations answered", [r.post for r in done]))
        polls = [r.polls for r in done]
        out.append(
            f"  {'state polls per negotiation':50s} median {statistics.median(polls):8.1f}     "
            f"(min {min(polls)}, max {max(polls)})"
        )
        for state in STATES:
            seen = [r.seen[state] for r in done if state in r.seen]
            out.append(line(f"  first seen {state}", seen, f"  [seen in {len(seen)} of {len(done)}]"))
    return out


class Cpu:
    """CPU time spent during a phase: the event loop's thread (both nodes and the client) and the whole process."""

    def __init__(self) -> None:
        self.loop = time.thread_time()
        self.process = time.process_time()
        self.wall = time.perf_counter()

    def report(self, label: str, count: int) -> str:
        loop = time.thread_time() - self.loop
        process = time.process_time() - self.process
        wall = time.perf_counter() - self.wall
        per = max(count, 1)
        return (
            f"  {'CPU per ' + label:50s} {loop * 1000 / per:8.2f} ms event loop thread, "
            f"{process * 1000 / per:.2f} ms process (loop busy {loop / wall:.0%} of {wall:.1f} s wall)"
        )


def describe_database(timer: DatabaseTimer, negotiations: int) -> list[str]:
    out = []
    for kind, label in (("transaction", "write transactions"), ("read", "read transactions")):
        waits, held = timer.waits.get(kind, []), timer.held.get(kind, [])
        if not waits:
            continue
        per = f"  [{len(waits) / max(negotiations, 1):.1f} per negotiation, both nodes and the client's reads]"
        out.append(line(f"  {label}: wait to begin (pool, lock)", waits, per))
        out.append(line(f"  {label}: held (begin to commit)", held, f"  p99 {percentile(held, 0.99):.1f} ms"))
    statements = timer.statements
    if statements:
        total = sum(len(v) for v in statements.values())
        per_negotiation = total / max(negotiations, 1)
        out.append(f"  SQL statements: {per_negotiation:.1f} per negotiation; the most frequent, each timed:")
        for kind, ms in sorted(statements.items(), key=lambda kv: -len(kv[1]))[:10]:
            per = f"  [{len(ms) / max(negotiations, 1):.1f} per negotiation]"
            out.append(line(f"    {kind}", ms, per))
    return out


def describe_deliveries(timer: DeliveryTimer, negotiations: int) -> list[str]:
    out = []
    for kind in sorted(timer.samples, key=lambda k: MESSAGE_ORDER.index(k) if k in MESSAGE_ORDER else 99):
        samples = timer.samples[kind]
        extra = f"  [{len(samples) / max(negotiations, 1):.2f} per negotiation"
        extra += f", {timer.refused[kind]} refused]" if timer.refused.get(kind) else "]"
        out.append(line(f"  outbox round trip {kind.removeprefix('Contract')}", samples, extra))
    return out


async def main(args: argparse.Namespace) -> None:
    started = time.perf_counter()
    poll_s = args.poll_ms / 1000
    contract_policy = "recyclers" if args.credentials else "use"
    timer = DeliveryTimer()
    timer.install()
    database = DatabaseTimer()
    database.install()
    created: list[str] = []
    try:
        with tempfile.TemporaryDirectory(prefix="bench-negotiation-") as tmp_name:
            tmp = Path(tmp_name)
            urls: dict[str, str | None] = {"provider": None, "consumer": None}
            if args.database_url:
                for who in urls:
                    url, name = await create_database(args.database_url, who)
                    urls[who] = url
                    created.append(name)
                backend = "PostgreSQL (a database per node, created for this run and dropped after)"
            else:
                backend = "embedded SQLite (temporary directory)"
            port = free_port()
            extra_provider: dict[str, Any] = {}
            extra_consumer: dict[str, Any] = {}
            issuer_dir = tmp / "provider" / "issuer"
            if args.credentials:
                issuer_did = f"did:web:127.0.0.1%3A{port}:issuer"
                issuer.create_issuer(issuer_dir, issuer_did)
                issuer.init_registry(issuer_dir, issuer_did, f"http://127.0.0.1:{port}/issuer/status")
                extra_provider["trusted_issuers"] = issuer_did
                extra_consumer["trusted_issuers"] = issuer_did
            provider_settings = node_settings(tmp / "provider", port, urls["provider"], **extra_provider)
            consumer_settings = node_settings(tmp / "consumer", free_port(), urls["consumer"], **extra_consumer)
            t = time.perf_counter()
            async with (
                running_node(provider_settings) as provider_node,
                running_node(consumer_settings) as consumer_node,
                aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=60)) as http,
            ):
                startup = time.perf_counter() - t
                provider, consumer = Api(http, provider_node), Api(http, consumer_node)
                await publish(provider, contract_policy)
                if args.credentials:
                    await give_recycler_role(issuer_dir, consumer_node)
                what = "recycler role credential required" if args.credentials else "permission to use, open access"
                print(f"two nodes in one process, {backend}; contract policy: {what}")
                print(single("both nodes started", startup * 1000))
                t = time.perf_counter()
                request = await contract_request(consumer, provider_node)
                print(single("catalog request (first contact, done once)", (time.perf_counter() - t) * 1000))
                first = await negotiate(consumer, request, poll_s)
                print(single(f"first negotiation ({first.state})", first.total))
                if first.state != "FINALIZED":
                    print(f"  the first negotiation did not finalize: {first.error or first.state}; stopping")
                    return

                print(f"\nsequential, polling GET .../state every {args.poll_ms:g} ms (POST to consumer FINALIZED):")
                timer.reset()
                database.reset()
                cpu = Cpu()
                runs, provider_ms = await sequential(
                    consumer, provider, request, args.negotiations, args.budget, poll_s
                )
                cpu_line = cpu.report("negotiation (with its polls)", len(runs))
                for text in describe_runs("negotiation, consumer reads FINALIZED", runs):
                    print(text)
                print(line("  provider's side FINALIZED (from the POST)", provider_ms))
                print(cpu_line)
                print(
                    "  each DSP message, from its POST by the sender's outbox to the peer's answer (the peer's work):"
                )
                for text in describe_deliveries(timer, len(runs)):
                    print(text)
                for text in describe_database(database, len(runs)):
                    print(text)
                seq_median = statistics.median([r.total for r in runs if r.state == "FINALIZED"] or [float("nan")])

                print(
                    f"\n{args.inflight} in flight, up to {args.load} negotiations or {args.budget:g} s; one watcher "
                    f"lists them every {args.load_poll_ms:g} ms:"
                )
                timer.reset()
                database.reset()
                cpu = Cpu()
                load = await in_flight(
                    consumer, request, args.load, args.inflight, args.budget, args.load_poll_ms / 1000
                )
                cpu_line = cpu.report("negotiation (with the watcher)", len(load.latencies))
                finished = load.latencies
                rate = len(finished) / load.wall if load.wall else 0.0
                print(single(f"negotiations FINALIZED per second ({len(finished)} in {load.wall:.1f} s)", rate, "/s"))
                if finished:
                    print(line("latency under load", finished, f"  p95 {percentile(finished, 0.95):.1f} ms"))
                    slow = sum(1 for x in finished if x > 1000)
                    if slow:
                        print(f"  {slow} negotiations took more than 1 s")
                not_done = {k: v for k, v in load.states.items() if k != "FINALIZED"}
                if not_done:
                    print(f"  NOT FINALIZED: {not_done}; first reason: {load.errors[0] if load.errors else '-'}")
                print(line("  watcher list call", load.watcher_ms, f"  [{load.watcher_calls} calls]"))
                print(cpu_line)
                for text in describe_deliveries(timer, len(finished)):
                    print(text)
                for text in describe_database(database, len(finished)):
                    print(text)

                print("\nbaseline: bare aiohttp on 127.0.0.1, 4 sequential POSTs of ~1 KB (the 4 DSP exchanges):")
                bodies = dsp_like_bodies()
                token = consumer_node.identity.token_for(provider_node.settings.effective_did)
                answer = orjson.dumps({"@context": [DSP_CONTEXT], "@type": "ContractNegotiation", "state": "REQUESTED"})
                runner, bare_port = await bare_server(answer)
                try:
                    url = f"http://127.0.0.1:{bare_port}/api/dsp/2025-1/negotiations/x"
                    bare = await bare_sequential(http, url, bodies, token, args.negotiations, args.budget)
                    cpu = Cpu()
                    bare_load, bare_wall = await bare_in_flight(
                        http, url, bodies, token, args.load, args.inflight, args.budget
                    )
                    bare_cpu = cpu.report("4 exchanges, in flight", len(bare_load))
                finally:
                    await runner.cleanup()
                print(line("4 exchanges, sequential", bare))
                bare_rate = len(bare_load) / bare_wall if bare_wall else float("nan")
                print(single(f"4 exchanges per second, {args.inflight} in flight", bare_rate, "/s"))
                print(line("  latency under load", bare_load, f"  p95 {percentile(bare_load, 0.95):.1f} ms"))
                print(bare_cpu)
                print(single("ratio node / bare, sequential median", seq_median / statistics.median(bare), "x"))
                how = "both nodes in this process (issue 25: slower than two processes)"
                emit(
                    Result(
                        f"negotiations FINALIZED/s, {args.inflight} in flight",
                        rate,
                        "/s",
                        bare_rate,
                        "bare aiohttp, the 4 DSP exchanges",
                        tool=how,
                    )
                )
                if finished:
                    emit(
                        Result(
                            f"negotiation latency p50 under load, {args.inflight} in flight",
                            statistics.median(finished),
                            "ms",
                            statistics.median(bare_load) if bare_load else None,
                            "bare aiohttp, the 4 DSP exchanges",
                            tool=how,
                            notes=f"p95 {percentile(finished, 0.95):.1f} ms",
                        )
                    )
                    emit(
                        Result(
                            f"negotiation latency p95 under load, {args.inflight} in flight",
                            percentile(finished, 0.95),
                            "ms",
                            percentile(bare_load, 0.95) if bare_load else None,
                            "bare aiohttp, the 4 DSP exchanges",
                            tool=how,
                        )
                    )
                if rate:
                    print(single("ratio bare / node, throughput", bare_rate / rate, "x"))
                print(
                    f"target: sequential median well under 100 ms: {seq_median:.1f} ms "
                    f"({'met' if seq_median < 100 else 'NOT met'})"
                )

                if args.profile:
                    for text in await profile(lambda: negotiate(consumer, request, poll_s), PROFILED):
                        print(text)
    finally:
        timer.uninstall()
        database.uninstall()
        for name in created:
            with contextlib.suppress(Exception):
                await drop_database(str(args.database_url), name)
    print(f"\ntotal run time {time.perf_counter() - started:.0f} s")


def parse_args() -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--negotiations", type=int, default=50, help="sequential negotiations (default 50)")
    ap.add_argument("--load", type=int, default=500, help="negotiations of the throughput run (default 500)")
    ap.add_argument("--inflight", type=int, default=50, help="negotiations kept in flight (default 50)")
    ap.add_argument("--quick", action="store_true", help="20 sequential, 100 under load, 20 s budget")
    ap.add_argument("--budget", type=float, default=60.0, help="seconds at most per phase (default 60)")
    ap.add_argument("--poll-ms", type=float, default=2.0, help="sleep between state polls, sequential (default 2)")
    ap.add_argument("--load-poll-ms", type=float, default=5.0, help="sleep between watcher lists (default 5)")
    ap.add_argument("--credentials", action="store_true", help="recyclers-only contract policy, consumer holds a VC")
    ap.add_argument("--database-url", help="PostgreSQL server URL (postgresql+asyncpg://...); default SQLite")
    ap.add_argument("--profile", action="store_true", help=f"cProfile {PROFILED} sequential negotiations")
    args = ap.parse_args()
    if args.quick:
        args.negotiations, args.load, args.budget = (
            min(args.negotiations, 20),
            min(args.load, 100),
            min(args.budget, 20),
        )
    if args.negotiations < 1 or args.load < 1 or args.inflight < 1:
        ap.error("--negotiations, --load and --inflight must be at least 1")
    return args


if __name__ == "__main__":
    # Settings read CONNECTOR_* variables; this run's nodes are described by the arguments alone.
    for key in [k for k in os.environ if k.startswith("CONNECTOR_")]:
        del os.environ[key]
    logging.basicConfig(level=logging.WARNING)
    asyncio.run(main(parse_args()))
