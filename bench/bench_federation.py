"""The federated catalog at scale: a crawler node crawls P simulated participants with D datasets each.

One simulated DSP server (its own process, so the crawler's memory is its own) answers for every participant under
its own path: the version document, catalog pages of 1000 datasets with `Link: rel="next"` continuation, and a
public passport listing. The crawler is a real node (embedded SQLite) that reads the participants from its
participants file and crawls them at start, with its concurrency bound. Prints:

- crawl: the time until every participant has a good entry, datasets per second, the node's resident memory
  (before, after, and the process's peak);
- search: median and 95th percentile latency of `GET /management/v1/federation/datasets` (through HTTP, as a
  client sees it) for each kind of filter, over the whole store;
- EDC's federated catalog query for one page of catalogs, and Insights over the crawled public views.

Never fails on time; the target (search in tens of milliseconds) is printed beside the figures.

Run: python bench/bench_federation.py [--participants 100] [--datasets 10000] [--passports 50]
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import os
import resource
import socket
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any
from urllib.parse import quote

import aiohttp
import orjson
from aiohttp import web
from harness import Result, emit  # bench/harness.py (scripts run from bench/)

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from connector.app import running_node
from connector.domain.passport.synthetic import generate
from connector.services.passports import render
from connector.settings import Settings

API_KEY = "bench-api-key-0123456789"
PAGE = 1000
DSP_CONTEXT = "https://w3id.org/dspace/2025/1/context.jsonld"
EDC = "https://w3id.org/edc/v0.0.1/ns/"
BPC = "https://w3id.org/battery-passport-connector/ns/"
CHEMISTRIES = ("LFP", "NMC 811", "NCA", "LMO")
CATEGORIES = ("ev", "lmt", "industrial", "stationary")
LEVELS = ("public", "legitimate_interest", "authority")
DTR = "https://w3id.org/catenax/taxonomy#DigitalTwinRegistry"


def free_port() -> int:
    """Return a TCP port free on loopback now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def rss_mb() -> float:
    """Return this process's resident memory now, in MB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def _dataset(p: int, j: int) -> dict[str, Any]:
    model = f"P{p}-M{j % 50}"
    node: dict[str, Any] = {
        "@id": f"p{p}-ds-{j:06d}",
        "@type": "Dataset",
        "hasPolicy": [{"@id": f"p{p}-offer-{j}", "@type": "Offer", "permission": [{"action": "use"}]}],
        "distribution": [
            {
                "@type": "Distribution",
                "format": "HttpData-PULL",
                "accessService": {"@id": "svc", "@type": "DataService", "endpointURL": "http://x"},
            }
        ],
        EDC + "name": f"Battery passports of model {model}, {LEVELS[j % 3].replace('_', ' ')} view",
        BPC + "batteryModel": model,
        BPC + "chemistry": CHEMISTRIES[j % 4],
        BPC + "batteryCategory": CATEGORIES[(j // 4) % 4],
        EDC + "passportAccessLevel": LEVELS[j % 3],
        "http://www.w3.org/ns/dcat#keyword": ["battery passport", model],
    }
    if j == 0:
        node["http://purl.org/dc/terms/type"] = {"@id": DTR}
    return node


def serve_simulation(port: int, participants: int, datasets: int, passports: int, ready: Any) -> None:
    """Run the simulated participants' server (in its own process) until it is terminated."""
    views = [orjson.dumps(render(generate(i, seed=1), ())) for i in range(passports)]

    async def version(request: web.Request) -> web.Response:
        p = request.match_info["p"]
        return web.json_response(
            {
                "protocolVersions": [
                    {"version": "2025-1", "path": f"/p{p}/api/dsp/2025-1", "serviceId": f"did:web:sim-{p}"}
                ]
            }
        )

    async def catalog(request: web.Request) -> web.Response:
        p = int(request.match_info["p"])
        start = int(request.query.get("continuationToken", "0"))
        end = min(datasets, start + PAGE)
        body = {
            "@context": [DSP_CONTEXT],
            "@id": f"catalog-{p}",
            "@type": "Catalog",
            "participantId": f"did:web:sim-{p}",
            "dataset": [_dataset(p, j) for j in range(start, end)],
        }
        headers = {}
        if end < datasets:
            headers["Link"] = f'<{request.url.with_query(continuationToken=str(end))}>; rel="next"'
        return web.Response(body=orjson.dumps(body), content_type="application/json", headers=headers)

    async def listing(request: web.Request) -> web.Response:
        p = request.match_info["p"]
        items = [orjson.loads(v) for v in views]
        for i, item in enumerate(items):
            item["identity"]["passport_id"] = f"urn:uuid:sim-{p}-{i}"
            item["identity"]["manufacturer_id"] = f"BPNL{int(p):012d}"
        return web.Response(body=orjson.dumps({"passports": items, "next": None}), content_type="application/json")

    app = web.Application()
    app.router.add_get("/p{p}/api/dsp/.well-known/dspace-version", version)
    app.router.add_post("/p{p}/api/dsp/2025-1/catalog/request", catalog)
    app.router.add_get("/p{p}/passports", listing)

    async def main() -> None:
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", port).start()
        ready.set()
        await asyncio.Event().wait()

    asyncio.run(main())


def _quantiles(samples: list[float]) -> str:
    ordered = sorted(samples)
    p95 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.95))]
    return f"median {statistics.median(ordered) * 1000:7.1f} ms   p95 {p95 * 1000:7.1f} ms"


async def run(participants: int, datasets: int, passports: int, rounds: int) -> None:
    port = free_port()
    ready = multiprocessing.get_context("spawn").Event()
    server = multiprocessing.get_context("spawn").Process(
        target=serve_simulation, args=(port, participants, datasets, passports, ready), daemon=True
    )
    server.start()
    ready.wait(60)
    with tempfile.TemporaryDirectory() as tmp:
        listing = Path(tmp) / "participants.txt"
        listing.write_text(
            "".join(f"http://127.0.0.1:{port}/p{p}/api/dsp/2025-1\n" for p in range(participants)), "utf-8"
        )
        settings = Settings(
            protocol_host="127.0.0.1",
            protocol_port=free_port(),
            management_port=0,
            data_dir=Path(tmp) / "data",
            log_format="text",
            log_level="WARNING",
            allow_local_peers=True,
            api_key=API_KEY,
            federation_participants_file=listing,
            federation_crawl_interval_seconds=604_800,
            federation_crawl_timeout_seconds=3600,
            federation_max_datasets=max(100_000, datasets),
            insights_min_batteries=10,
            insights_min_operators=3,
        )
        before = rss_mb()
        started = time.perf_counter()
        async with running_node(settings) as node, aiohttp.ClientSession(headers={"X-Api-Key": API_KEY}) as http:
            base = node.management_url + "/management/v1/federation"
            while True:
                async with http.get(base + "/participants") as response:
                    listed = await response.json()
                done = [p for p in listed if p["lastAttemptAt"]]
                if len(done) == participants:
                    break
                await asyncio.sleep(0.5)
            crawl_seconds = time.perf_counter() - started
            failed = [p for p in listed if p["lastError"]]
            total = sum(p["datasets"] for p in listed)
            after = rss_mb()
            peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
            print(f"participants {participants}, datasets each {datasets}, public passports each {passports}")
            print(
                f"crawl: {crawl_seconds:8.1f} s for {total} datasets ({total / crawl_seconds:,.0f} datasets/s), "
                f"{len(failed)} failed{(': ' + failed[0]['lastError']) if failed else ''}"
            )
            print(f"memory (node process): {before:.0f} MB before, {after:.0f} MB after, peak {peak:.0f} MB")
            emit(Result(f"federated crawl, {participants} participants", total / crawl_seconds, "datasets/s"))

            did = quote(f"did:web:sim-{participants // 2}", safe="")
            queries = {
                "no filter, first page": "limit=50",
                "provider": f"provider={did}&limit=50",
                "chemistry": "chemistry=LFP&limit=50",
                "model (rare)": f"model=P{participants - 1}-M7&limit=50",
                "chemistry + category + level": (
                    "chemistry=NCA&batteryCategory=stationary&accessLevel=authority&limit=50"
                ),
                "asset type DTR": "assetType=DigitalTwinRegistry&limit=50",
                "free text (common)": "q=battery+passport&limit=50",
                "free text (rare)": f"q=p{participants - 1}-m7&limit=50",
                "free text (no match)": "q=sodium-ion&limit=50",
                "free text (prefix, common)": "q=passp&limit=50",
                "free text (prefix, one letter)": "q=b&limit=50",
                "free text (prefix, rare)": f"q=p{participants - 1}-m&limit=50",
            }
            print("search (GET /management/v1/federation/datasets; target: tens of ms):")
            for label, query in queries.items():
                samples = []
                found = 0
                for _ in range(rounds):
                    t = time.perf_counter()
                    async with http.get(f"{base}/datasets?{query}") as response:
                        body = await response.json()
                    samples.append(time.perf_counter() - t)
                    found = len(body["datasets"])
                print(f"  {label:34s} {_quantiles(samples)}   ({found} on the page)")
            samples = []  # keyset paging: the following pages of one search
            async with http.get(f"{base}/datasets?chemistry=LFP&limit=50") as response:
                cursor = (await response.json())["next"]
            for _ in range(rounds):
                t = time.perf_counter()
                async with http.get(f"{base}/datasets?chemistry=LFP&limit=50&cursor={cursor}") as response:
                    body = await response.json()
                samples.append(time.perf_counter() - t)
                cursor = body["next"] or cursor
            print(f"  {'chemistry, following pages':34s} {_quantiles(samples)}")
            t = time.perf_counter()
            async with http.post(
                node.management_url + "/api/catalog/v1alpha/catalog/query", json={"@type": "QuerySpec", "limit": 2}
            ) as response:
                catalogs = await response.json()
            print(
                f"EDC federated catalog query, 2 catalogs: {(time.perf_counter() - t) * 1000:.0f} ms "
                f"({sum(len(c['dcat:dataset']) for c in catalogs)} datasets)"
            )
            filtered = {
                "@type": "QuerySpec",
                "limit": 2,
                "filterExpression": [
                    {"operandLeft": "dct:type", "operator": "=", "operandRight": "DigitalTwinRegistry"},
                    {"operandLeft": "name", "operator": "like", "operandRight": "%"},
                ],
            }
            t = time.perf_counter()
            async with http.post(node.management_url + "/api/catalog/v1alpha/catalog/query", json=filtered) as response:
                catalogs = await response.json()
            print(
                f"EDC federated catalog query, dct:type DTR + name like (read from the datasets), 2 catalogs: "
                f"{(time.perf_counter() - t) * 1000:.0f} ms ({sum(len(c['dcat:dataset']) for c in catalogs)} datasets)"
            )
            t = time.perf_counter()
            async with http.get(node.protocol_url + "/insights", headers={"Accept": "application/json"}) as response:
                insights = await response.json()
            print(
                f"Insights over {insights['batteries']} public passports: {(time.perf_counter() - t) * 1000:.0f} ms "
                "(first computation; then cached)"
            )
    server.terminate()
    server.join(10)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--participants", type=int, default=100)
    parser.add_argument("--datasets", type=int, default=10_000)
    parser.add_argument("--passports", type=int, default=50)
    parser.add_argument("--rounds", type=int, default=30)
    args = parser.parse_args()
    asyncio.run(run(args.participants, args.datasets, args.passports, args.rounds))


if __name__ == "__main__":
    os.environ.setdefault("PYTHONHASHSEED", "0")
    main()
