"""The data plane: requests per second for a 4 KB passport with a valid token, and MB/s for a 100 MB proxied asset.

Starts a provider and a consumer node in this process (`running_node`, embedded SQLite in a temporary directory,
127.0.0.1 only) on uvloop, as `connector run` does (`--asyncio` for the standard loop), and an operator backend
(bare aiohttp) serving a 4 KB JSON passport and a 100 MB body. Every transfer is set up as an EDC client does
it: catalog request, contract negotiation and HttpData-PULL transfer through the consumer's management API,
then the endpoint and token from `/management/v3/edrs/{id}/dataaddress`.

Phases, each with `--inflight` requests kept in flight (default 32) for `--seconds`, and each compared with a
bare aiohttp handler returning the same bytes (baseline.py) measured right after it in the same run:
1. a stored passport (its public view, about 4 KB), GET <endpoint>/<passport id>: token, transfer state,
   agreement and usage policy checked on every request, access logged; the same passport every time, so
   after the first request it comes from the node's short-lived cache (one database read a second);
2. `--distinct` stored passports (default 20,000) read in random order, so most requests miss that cache
   and read the database (SQLite);
3. a proxied HttpData asset (4 KB from the operator's backend, streamed through);
and MB/s of one GET of a `--big-mb` MiB asset through the data plane and straight from the backend.
Client and servers share one event loop (as every benchmark here does); figures are informational and never
fail on time.

Run: python bench/bench_dataplane.py [--seconds S] [--inflight K] [--big-mb N] [--distinct N] [--asyncio]
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import random
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import aiohttp
import orjson
from aiohttp import web
from harness import Result, emit  # bench/harness.py (scripts run from bench/)

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from baseline import bare_server  # bench/baseline.py (scripts run from bench/)

from connector.app import Node, running_node
from connector.domain.passport import generate
from connector.domain.passport.synthetic import MODELS
from connector.settings import Settings

EDC = {"@vocab": "https://w3id.org/edc/v0.0.1/ns/"}
ODRL_CONTEXT = "http://www.w3.org/ns/odrl.jsonld"
API_KEY = "bench-api-key-0123456789"
PASSPORT = orjson.dumps({"batteryId": "BAT-0001", "chemistry": "LFP", "padding": "x" * 3950})
CHUNK = b"\0" * (1024 * 1024)


async def backend(big_mb: int) -> tuple[web.AppRunner, str]:
    """The operator's backend: /passport (4 KB JSON) and /big (big_mb MiB, streamed)."""

    async def passport(request: web.Request) -> web.Response:
        return web.Response(body=PASSPORT, content_type="application/json")

    async def big(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "application/octet-stream"})
        response.content_length = big_mb * len(CHUNK)
        await response.prepare(request)
        for _ in range(big_mb):
            await response.write(CHUNK)
        await response.write_eof()
        return response

    app = web.Application()
    app.router.add_get("/data/passport", passport)
    app.router.add_get("/data/big", big)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    return runner, f"http://127.0.0.1:{runner.addresses[0][1]}"


def settings(directory: Path) -> Settings:
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
    )


async def call(http: aiohttp.ClientSession, node: Node, method: str, path: str, body: Any = None) -> Any:
    async with http.request(method, node.management_url + path, json=body, headers={"X-Api-Key": API_KEY}) as response:
        text = await response.text()
        assert response.status < 300, f"{path}: {response.status} {text}"
        return orjson.loads(text) if text else None


async def wait(http: aiohttp.ClientSession, node: Node, path: str, state: str) -> dict[str, Any]:
    async with asyncio.timeout(30):
        while True:
            found = await call(http, node, "GET", path)
            if found["state"] == state:
                return dict(found)
            assert found["state"] not in ("TERMINATED", "COMPLETED"), found
            await asyncio.sleep(0.02)


async def publish_backend(http: aiohttp.ClientSession, provider: Node, source: str) -> None:
    """Offer the operator's backend as an HttpData asset `passports` to everyone."""
    await call(
        http,
        provider,
        "POST",
        "/management/v3/assets",
        {
            "@context": EDC,
            "@id": "passports",
            "properties": {"name": "bench"},
            "dataAddress": {"type": "HttpData", "baseUrl": source + "/data", "proxyPath": "true"},
        },
    )
    await call(
        http,
        provider,
        "POST",
        "/management/v3/policydefinitions",
        {
            "@context": EDC,
            "@id": "open",
            "policy": {"@context": ODRL_CONTEXT, "@type": "Set"},
        },
    )
    await call(
        http,
        provider,
        "POST",
        "/management/v3/contractdefinitions",
        {
            "@context": EDC,
            "@id": "cd",
            "accessPolicyId": "open",
            "contractPolicyId": "open",
            "assetsSelector": [
                {"operandLeft": "https://w3id.org/edc/v0.0.1/ns/id", "operator": "=", "operandRight": "passports"}
            ],
        },
    )


def stored_passport() -> dict[str, Any]:
    """A generated passport whose public view is about 4 KB (32 hazardous substances listed)."""
    document = generate(0)
    document["materials"]["hazardous_substances"] = [
        {"name": f"substance {k}", "cas": "21324-40-3", "location": "electrolyte"} for k in range(32)
    ]
    return document


async def publish_stored(http: aiohttp.ClientSession, provider: Node, distinct: int) -> tuple[str, str, list[str]]:
    """Store one 4 KB passport and `distinct` generated ones of the same model, publish the passport datasets.

    Returns (the public dataset of that model, the 4 KB passport's id, the ids of the generated ones).
    """
    document = stored_passport()
    created = await call(http, provider, "POST", "/management/v1/passports", document)
    model_id = created["modelId"]
    others: list[str] = []
    step = len(MODELS)  # generate(i) takes model i % len(MODELS): keep to the 4 KB passport's model
    for first in range(1, distinct + 1, 300):  # about 0.8 MB a request (the body limit is 1 MiB)
        batch = [generate(i * step) for i in range(first, min(first + 300, distinct + 1))]
        summary = await call(http, provider, "POST", "/management/v1/passports/import", batch)
        assert summary["new"] + summary["unchanged"] == len(batch), summary
        others += [d["identity"]["passport_id"] for d in batch]
    assert all(generate(i * step)["identity"]["model_id"] == model_id for i in (1, 2))
    await call(http, provider, "POST", "/management/v1/passports/publish", {})
    return f"passports-{model_id}-public", str(created["id"]), others


async def negotiate(http: aiohttp.ClientSession, provider: Node, consumer: Node, dataset_id: str) -> str:
    """Negotiate the offer of one dataset from the provider's catalog; return the agreement id."""
    catalog = await call(
        http,
        consumer,
        "POST",
        "/management/v3/catalog/request",
        {
            "@context": EDC,
            "counterPartyAddress": provider.settings.dsp_base_url,
            "counterPartyId": provider.settings.effective_did,
            "protocol": "dataspace-protocol-http:2025-1",
        },
    )
    datasets = catalog["dcat:dataset"]
    dataset = next(d for d in (datasets if isinstance(datasets, list) else [datasets]) if d["@id"] == dataset_id)
    offer = dataset["odrl:hasPolicy"]
    offer = offer[0] if isinstance(offer, list) else offer
    created = await call(
        http,
        consumer,
        "POST",
        "/management/v3/contractnegotiations",
        {
            "@context": {**EDC, "odrl": "http://www.w3.org/ns/odrl/2/"},
            "counterPartyAddress": provider.settings.dsp_base_url,
            "protocol": "dataspace-protocol-http:2025-1",
            "policy": {
                **offer,
                "odrl:assigner": {"@id": provider.settings.effective_participant_id},
                "odrl:target": {"@id": dataset_id},
            },
        },
    )
    negotiation = await wait(http, consumer, f"/management/v3/contractnegotiations/{created['@id']}", "FINALIZED")
    await asyncio.sleep(0.2)  # the provider finalizes when our event is acknowledged
    return str(negotiation["contractAgreementId"])


async def pull(http: aiohttp.ClientSession, provider: Node, consumer: Node, agreement_id: str) -> dict[str, Any]:
    """Start a pull transfer under an agreement; return the EDR data address as an EDC client reads it."""
    transfer = await call(
        http,
        consumer,
        "POST",
        "/management/v3/transferprocesses",
        {
            "@context": EDC,
            "counterPartyAddress": provider.settings.dsp_base_url,
            "contractId": agreement_id,
            "protocol": "dataspace-protocol-http:2025-1",
            "transferType": "HttpData-PULL",
        },
    )
    await wait(http, consumer, f"/management/v3/transferprocesses/{transfer['@id']}", "STARTED")
    return dict(await call(http, consumer, "GET", f"/management/v3/edrs/{transfer['@id']}/dataaddress"))


async def load(
    http: aiohttp.ClientSession,
    url: str | Callable[[], str],
    headers: dict[str, str],
    seconds: float,
    inflight: int,
    size: int | None,
) -> tuple[float, float, int]:
    """Keep `inflight` GETs going for `seconds`; return (requests/s, median latency ms, requests).

    `url` may be a function giving each request's URL; `size` None accepts any body length.
    """
    latencies: list[float] = []
    deadline = time.perf_counter() + seconds
    next_url = url if callable(url) else (lambda: url)

    async def worker() -> None:
        while time.perf_counter() < deadline:
            started = time.perf_counter()
            async with http.get(next_url(), headers=headers) as response:
                body = await response.read()
                assert response.status == 200 and size in (None, len(body)), (response.status, body[:200])
            latencies.append(time.perf_counter() - started)

    began = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(inflight)))
    elapsed = time.perf_counter() - began
    return len(latencies) / elapsed, statistics.median(latencies) * 1000, len(latencies)


async def throughput(http: aiohttp.ClientSession, url: str, headers: dict[str, str], size: int) -> float:
    started = time.perf_counter()
    received = 0
    async with http.get(url, headers=headers) as response:
        assert response.status == 200, response.status
        async for chunk in response.content.iter_chunked(1024 * 1024):
            received += len(chunk)
    assert received == size, (received, size)
    return size / (time.perf_counter() - started) / 1e6


async def bare(http: aiohttp.ClientSession, body: bytes, args: argparse.Namespace) -> tuple[float, float, int]:
    """Load a bare aiohttp app returning `body` (after a warm-up)."""
    runner, port = await bare_server(body)
    url = f"http://127.0.0.1:{port}/passport"
    try:
        await load(http, url, {}, 0.5, args.inflight, len(body))
        return await load(http, url, {}, args.seconds, args.inflight, len(body))
    finally:
        await runner.cleanup()


async def compare(
    http: aiohttp.ClientSession, url: str, headers: dict[str, str], body: bytes, args: argparse.Namespace
) -> tuple[tuple[float, float, int], tuple[float, float, int]]:
    """Load the node's URL (answering `body`), then a bare aiohttp app returning the same bytes."""
    await load(http, url, headers, 0.5, args.inflight, len(body))
    node = await load(http, url, headers, args.seconds, args.inflight, len(body))
    return node, await bare(http, body, args)


def report(title: str, node: tuple[float, float, int], bare: tuple[float, float, int]) -> None:
    print(title)
    print(f"  node  /public with token   {node[0]:10.0f} req/s   median {node[1]:7.2f} ms   n={node[2]}")
    print(f"  bare aiohttp, same bytes   {bare[0]:10.0f} req/s   median {bare[1]:7.2f} ms   n={bare[2]}")
    print(f"  ratio node / bare          {node[0] / bare[0]:10.2f}   (target >= 0.5)")


async def main(args: argparse.Namespace) -> None:
    logging.basicConfig(level=logging.WARNING)
    source_runner, source = await backend(args.big_mb)
    connector = aiohttp.TCPConnector(limit=args.inflight * 2)
    with tempfile.TemporaryDirectory() as tmp:
        async with (
            running_node(settings(Path(tmp) / "provider")) as provider,
            running_node(settings(Path(tmp) / "consumer")) as consumer,
            aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=600)) as http,
        ):
            dataset, passport_id, others = await publish_stored(http, provider, args.distinct)
            stored_address = await pull(http, provider, consumer, await negotiate(http, provider, consumer, dataset))
            stored_url = f"{stored_address['endpoint']}/{passport_id}"
            stored_auth = {"Authorization": stored_address["authorization"]}
            async with http.get(stored_url, headers=stored_auth) as response:
                assert response.status == 200, await response.text()
                stored_body = await response.read()
            stored = await compare(http, stored_url, stored_auth, stored_body, args)
            cold = (0.0, 0.0, 0), (1.0, 0.0, 0)
            if others:
                endpoint, pick = stored_address["endpoint"], random.Random(7).choice

                def any_passport() -> str:
                    return f"{endpoint}/{pick(others)}"

                await load(http, any_passport, stored_auth, 0.5, args.inflight, None)
                cold_node = await load(http, any_passport, stored_auth, args.seconds, args.inflight, None)
                async with http.get(f"{endpoint}/{others[0]}", headers=stored_auth) as response:
                    cold = cold_node, await bare(http, await response.read(), args)

            await publish_backend(http, provider, source)
            address = await pull(http, provider, consumer, await negotiate(http, provider, consumer, "passports"))
            auth = {"Authorization": address["authorization"]}
            proxied = await compare(http, address["endpoint"] + "/passport", auth, PASSPORT, args)
            size = args.big_mb * len(CHUNK)
            node_mbs = await throughput(http, address["endpoint"] + "/big", auth, size)
            direct_mbs = await throughput(http, source + "/data/big", {}, size)
    await source_runner.cleanup()
    loop = "asyncio" if args.asyncio else "uvloop"
    print(f"data plane on {loop}, {args.inflight} requests in flight, {args.seconds:g} s per phase")
    report(f"stored passport, the same one ({len(stored_body)} bytes, public view)", *stored)
    how = "client in the node's event loop (issue 25: flatters the ratio)"
    node, bare_figures = stored
    emit(
        Result(
            f"data-plane requests/s, stored passport ({len(stored_body):,} bytes) with a valid token",
            node[0],
            "req/s",
            bare_figures[0],
            "bare aiohttp, same bytes",
            tool=how,
        )
    )
    emit(
        Result(
            "data-plane MB/s, stored passport with a valid token",
            node[0] * len(stored_body) / 1e6,
            "MB/s",
            bare_figures[0] * len(stored_body) / 1e6,
            "bare aiohttp, same bytes",
            tool=how,
        )
    )
    if others:
        report(f"stored passports, {len(others)} in random order (mostly read from the database)", *cold)
    report(f"proxied HttpData asset ({len(PASSPORT)} bytes from the operator's backend)", *proxied)
    print(f"proxied asset, {args.big_mb} MiB")
    print(f"  through the data plane     {node_mbs:10.1f} MB/s")
    print(f"  straight from the backend  {direct_mbs:10.1f} MB/s   ratio {node_mbs / direct_mbs:.2f}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--inflight", type=int, default=32)
    parser.add_argument("--big-mb", type=int, default=100)
    parser.add_argument("--distinct", type=int, default=20_000, help="stored passports read in random order (0: skip)")
    parser.add_argument("--asyncio", action="store_true", help="run on the standard asyncio loop, not uvloop")
    arguments = parser.parse_args()
    if arguments.asyncio:
        asyncio.run(main(arguments))
    else:
        import uvloop

        uvloop.run(main(arguments))
