"""Passport lookup latency between two nodes on loopback, each its own `connector serve` process.

A provider (also the dataspace's issuer) imports N generated passports and publishes them (datasets, the embedded
Digital Twin Registry, the submodel assets); consumers hold Catena-X credentials (membership, framework agreement,
BPN) and call `POST /management/v1/passports/lookup` on their own management API:

- cold: the first lookup of a fresh consumer (first contact: DID document, catalog, two negotiations, two pull
  transfers, the registry lookup, the submodel), once per fresh consumer (--cold C consumers);
- warm: one lookup per battery (N batteries) by a consumer holding the agreements and EDRs (reused);
- baseline, in the same run: a bare data-plane GET of the same submodel (`href/$value`) with a ready EDR, from
  this process, the floor a lookup through the registry stands on.

Prints medians and 90th percentiles, and the warm lookup's median per step. Never fails on time; the targets
(cold < 1 s, warm < 100 ms) are printed beside the figures.

Run: python bench/bench_lookup.py [--batteries N] [--cold C]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import socket
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp
from harness import Result, emit  # bench/harness.py (scripts run from bench/)

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from connector.domain import passport as model
from connector.identity import issuer

API_KEY = "bench-api-key-0123456789"
PROVIDER_BPN = "BPNL00000003CRHK"
CONSUMER_BPN = "BPNL00000003AYRE"
LOOKUP = "/management/v1/passports/lookup"


def free_port() -> int:
    """Return a TCP port free on loopback now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class Process:
    """One `connector serve` process and its management URL."""

    def __init__(self, process: asyncio.subprocess.Process, management: str, did: str, dsp: str) -> None:
        self.process, self.management, self.did, self.dsp = process, management, did, dsp

    async def stop(self) -> None:
        if self.process.returncode is None:
            self.process.terminate()
            await self.process.wait()


async def start(workdir: Path, port: int, **settings: str) -> Process:
    """Start a node; wait until it answers /health."""
    management = free_port()
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("CONNECTOR_")},
        "CONNECTOR_PROTOCOL_HOST": "127.0.0.1",
        "CONNECTOR_PROTOCOL_PORT": str(port),
        "CONNECTOR_PUBLIC_URL": f"http://127.0.0.1:{port}",
        "CONNECTOR_MANAGEMENT_PORT": str(management),
        "CONNECTOR_DATA_DIR": str(workdir / "data"),
        "CONNECTOR_ALLOW_LOCAL_PEERS": "true",
        "CONNECTOR_API_KEY": API_KEY,
        "CONNECTOR_LOG_LEVEL": "INFO",  # the node's default, as in production
        **{"CONNECTOR_" + k.upper(): v for k, v in settings.items()},
    }
    os.makedirs(workdir, exist_ok=True)
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "connector.cli", "serve", cwd=workdir, env=env, stderr=asyncio.subprocess.DEVNULL
    )
    url = f"http://127.0.0.1:{management}"
    async with aiohttp.ClientSession() as http, asyncio.timeout(60):
        while True:
            try:
                async with http.get(url + "/health") as response:
                    if response.status == 200:
                        break
            except aiohttp.ClientError:
                pass
            if process.returncode is not None:
                raise RuntimeError(f"a node exited with {process.returncode} before answering /health")
            await asyncio.sleep(0.02)
    did = f"did:web:127.0.0.1%3A{port}"
    return Process(process, url, did, f"http://127.0.0.1:{port}/api/dsp/2025-1")


async def call(http: aiohttp.ClientSession, node: Process, method: str, path: str, body: Any = None) -> Any:
    async with http.request(method, node.management + path, json=body, headers={"X-Api-Key": API_KEY}) as r:
        answer = await r.json(content_type=None)
        if r.status >= 300:
            raise RuntimeError(f"{method} {path} answered {r.status}: {answer}")
        return answer


def grant(issuer_dir: Path, subject: str) -> list[str]:
    """Issue the consumer's Catena-X credentials (VCDM 1.1 JWT) with the provider's built-in issuer."""
    from datetime import UTC, datetime, timedelta

    registry = issuer.load_registry(issuer_dir)
    identity = issuer.create_issuer(issuer_dir, registry.did)
    now = datetime.now(UTC)
    validity: dict[str, Any] = {"valid_from": now, "valid_until": now + timedelta(days=1), "data_model": "vcdm1"}
    jwt1, registry = issuer.issue_membership(identity, registry, subject, bpn=CONSUMER_BPN, **validity)
    jwt2, registry = issuer.issue_bpn(identity, registry, subject, CONSUMER_BPN, **validity)
    jwt3, registry = issuer.issue_data_exchange_governance(identity, registry, subject, CONSUMER_BPN, **validity)
    issuer.save_registry(issuer_dir, registry)
    return [jwt1, jwt2, jwt3]


async def consumer(http: aiohttp.ClientSession, root: Path, name: str, issuer_dir: Path, trusted: str) -> Process:
    port = free_port()
    node = await start(root / name, port, trusted_issuers=trusted)
    for jwt in grant(issuer_dir, node.did):
        await call(http, node, "POST", "/management/v1/credentials", {"credential": jwt})
    return node


async def lookup(http: aiohttp.ClientSession, node: Process, partner: str, battery: str) -> tuple[float, Any]:
    started = time.perf_counter()
    answer = await call(http, node, "POST", LOOKUP, {"partner": partner, "batteryId": battery})
    return (time.perf_counter() - started) * 1000, answer


def summary(name: str, values: list[float], target: str = "") -> None:
    ordered = sorted(values)
    p90 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.9))]
    line = f"{name:<44} median {statistics.median(ordered):8.1f} ms   p90 {p90:8.1f} ms   n={len(ordered)}"
    print(line + (f"   (target {target})" if target else ""))


async def main(batteries: int, cold_runs: int) -> None:
    with tempfile.TemporaryDirectory(prefix="bench-lookup-") as tmp:
        root = Path(tmp)
        port = free_port()
        issuer_did = f"did:web:127.0.0.1%3A{port}:issuer"
        issuer_dir = root / "provider" / "data" / "issuer"
        identity = issuer.create_issuer(issuer_dir, issuer_did)
        issuer.init_registry(issuer_dir, identity.did, f"http://127.0.0.1:{port}/issuer/status")
        nodes: list[Process] = []
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=120)) as http:
            try:
                provider = await start(
                    root / "provider",
                    port,
                    trusted_issuers=issuer_did,
                    bpn=PROVIDER_BPN,
                    registry_settle_seconds="0",
                )
                nodes.append(provider)
                documents = [model.generate(i) for i in range(batteries)]
                await call(http, provider, "POST", "/management/v1/passports/import", documents)
                await call(http, provider, "POST", "/management/v1/passports/publish", {})
                ids = [model.parse_passport(d).battery_id for d in documents]

                cold: list[float] = []
                cold_steps: dict[str, list[float]] = {}
                for i in range(cold_runs):
                    fresh = await consumer(http, root, f"cold-{i}", issuer_dir, issuer_did)
                    nodes.append(fresh)
                    ms, answer = await lookup(http, fresh, provider.did, ids[i % len(ids)])
                    cold.append(ms)
                    for step, value in answer["elapsedMs"].items():
                        cold_steps.setdefault(step, []).append(value)
                    await fresh.stop()

                warm_node = await consumer(http, root, "warm", issuer_dir, issuer_did)
                nodes.append(warm_node)
                _, first = await lookup(http, warm_node, provider.did, ids[0])  # first contact, not counted
                warm: list[float] = []
                warm_steps: dict[str, list[float]] = {}
                hrefs: dict[str, str] = {}
                for battery in ids:
                    ms, answer = await lookup(http, warm_node, provider.did, battery)
                    warm.append(ms)
                    hrefs[battery] = answer["source"]["href"]
                    for step, value in answer["elapsedMs"].items():
                        warm_steps.setdefault(step, []).append(value)
                negotiations = await call(http, warm_node, "POST", "/management/v3/contractnegotiations/request")

                # Baseline: the same submodel read straight from the data plane with the ready EDR.
                edrs = await call(http, warm_node, "POST", "/management/v3/edrs/request")
                submodel = next(e for e in edrs if e["assetId"] == first["source"]["asset"])
                address = await call(
                    http, warm_node, "GET", f"/management/v3/edrs/{submodel['transferProcessId']}/dataaddress"
                )
                bare: list[float] = []
                for battery in ids:
                    started = time.perf_counter()
                    async with http.get(
                        hrefs[battery] + "/$value", headers={"Authorization": address["authorization"]}
                    ) as r:
                        await r.read()
                        assert r.status == 200, r.status
                    bare.append((time.perf_counter() - started) * 1000)
            finally:
                for node in nodes:
                    await node.stop()

    print(f"passport lookup, two `connector serve` processes on loopback, {batteries} batteries, SQLite")
    summary(f"cold lookup (first contact, {cold_runs} fresh consumers)", cold, "< 1000 ms")
    summary("warm lookup (agreements and EDRs reused)", warm, "< 100 ms")
    summary("baseline: bare data-plane GET with a ready EDR", bare)
    print(f"negotiations the warm consumer made for {batteries + 1} lookups: {len(negotiations)}")
    med = statistics.median
    emit(
        Result(
            "catalog to first passport byte between two nodes (cold lookup: catalog, negotiation, transfer, read)",
            med(cold),
            "ms",
            med(bare),
            "data-plane GET with a ready EDR",
            "< 300 ms",
            med(cold) < 300,
            "two connector serve processes",
            len(cold),
        )
    )
    emit(
        Result(
            "passport lookup, warm (agreement and EDR reused)",
            med(warm),
            "ms",
            med(bare),
            "data-plane GET with a ready EDR",
            "< 100 ms",
            med(warm) < 100,
            "two connector serve processes",
            len(warm),
        )
    )
    print("median per step (ms):   " + "  ".join(f"{s}" for s in warm_steps))
    print("  cold:                 " + "  ".join(f"{statistics.median(v):.1f}" for v in cold_steps.values()))
    print("  warm:                 " + "  ".join(f"{statistics.median(v):.1f}" for v in warm_steps.values()))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[0])
    parser.add_argument("--batteries", type=int, default=50, help="batteries looked up warm (default 50)")
    parser.add_argument("--cold", type=int, default=3, help="fresh consumers for the cold figure (default 3)")
    options = parser.parse_args()
    asyncio.run(main(options.batteries, options.cold))
