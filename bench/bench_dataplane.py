"""The data plane: requests per second for a 4 KB passport with a valid token, and MB/s for a 100 MB proxied asset.

Starts a provider and a consumer node in this process (`running_node`, embedded SQLite in a temporary directory,
127.0.0.1 only) and an operator backend (bare aiohttp) serving a 4 KB JSON passport and a 100 MB body. The
provider offers the backend as an HttpData asset (proxyPath); the consumer negotiates it and starts an
HttpData-PULL transfer through the management API, then reads the endpoint and token from
`/management/v3/edrs/{id}/dataaddress`, as an EDC client does.

Prints, with `--inflight` requests kept in flight (default 32) for `--seconds` per phase:
- requests/s and median latency of GET <endpoint>/passport with the token (token, transfer state, agreement and
  usage policy checked on every request, access logged, the body streamed from the backend);
- the same for a bare aiohttp handler returning the same bytes (baseline.py), measured in the same run, and
  the ratio node / bare;
- MB/s of one GET of the 100 MB asset through the data plane, and of the same body straight from the backend.
Client and servers share one event loop (as every benchmark here does); figures are informational and never
fail on time.

Run: python bench/bench_dataplane.py [--seconds S] [--inflight K] [--big-mb N]
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp
import orjson
from aiohttp import web

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from baseline import bare_server  # bench/baseline.py (scripts run from bench/)

from connector.app import Node, running_node
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


async def edr(http: aiohttp.ClientSession, provider: Node, consumer: Node, source: str) -> dict[str, Any]:
    """Publish the backend, negotiate it, start a pull transfer; return the EDR data address."""
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
            "assetsSelector": [],
        },
    )
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
    offer = catalog["dcat:dataset"]["odrl:hasPolicy"]
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
                "odrl:target": {"@id": "passports"},
            },
        },
    )
    negotiation = await wait(http, consumer, f"/management/v3/contractnegotiations/{created['@id']}", "FINALIZED")
    await asyncio.sleep(0.2)  # the provider finalizes when our event is acknowledged
    transfer = await call(
        http,
        consumer,
        "POST",
        "/management/v3/transferprocesses",
        {
            "@context": EDC,
            "counterPartyAddress": provider.settings.dsp_base_url,
            "contractId": negotiation["contractAgreementId"],
            "protocol": "dataspace-protocol-http:2025-1",
            "transferType": "HttpData-PULL",
        },
    )
    await wait(http, consumer, f"/management/v3/transferprocesses/{transfer['@id']}", "STARTED")
    return dict(await call(http, consumer, "GET", f"/management/v3/edrs/{transfer['@id']}/dataaddress"))


async def load(
    http: aiohttp.ClientSession, url: str, headers: dict[str, str], seconds: float, inflight: int
) -> tuple[float, float, int]:
    """Keep `inflight` GETs going for `seconds`; return (requests/s, median latency ms, requests)."""
    latencies: list[float] = []
    deadline = time.perf_counter() + seconds

    async def worker() -> None:
        while time.perf_counter() < deadline:
            started = time.perf_counter()
            async with http.get(url, headers=headers) as response:
                body = await response.read()
                assert response.status == 200 and len(body) == len(PASSPORT), (response.status, body[:200])
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


async def main(args: argparse.Namespace) -> None:
    logging.basicConfig(level=logging.WARNING)
    source_runner, source = await backend(args.big_mb)
    bare_runner, bare_port = await bare_server(PASSPORT)
    connector = aiohttp.TCPConnector(limit=args.inflight * 2)
    with tempfile.TemporaryDirectory() as tmp:
        async with (
            running_node(settings(Path(tmp) / "provider")) as provider,
            running_node(settings(Path(tmp) / "consumer")) as consumer,
            aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=600)) as http,
        ):
            address = await edr(http, provider, consumer, source)
            auth = {"Authorization": address["authorization"]}
            endpoint = address["endpoint"]
            await load(http, endpoint + "/passport", auth, 0.5, args.inflight)  # warm up
            await load(http, f"http://127.0.0.1:{bare_port}/passport", {}, 0.5, args.inflight)
            node_rps, node_ms, node_n = await load(http, endpoint + "/passport", auth, args.seconds, args.inflight)
            bare_rps, bare_ms, bare_n = await load(
                http, f"http://127.0.0.1:{bare_port}/passport", {}, args.seconds, args.inflight
            )
            size = args.big_mb * len(CHUNK)
            node_mbs = await throughput(http, endpoint + "/big", auth, size)
            direct_mbs = await throughput(http, source + "/data/big", {}, size)
    await bare_runner.cleanup()
    await source_runner.cleanup()
    print(f"data plane, 4 KB passport, {args.inflight} in flight, {args.seconds:g} s per phase")
    print(f"  node  /public with token   {node_rps:10.0f} req/s   median {node_ms:7.2f} ms   n={node_n}")
    print(f"  bare aiohttp, same bytes   {bare_rps:10.0f} req/s   median {bare_ms:7.2f} ms   n={bare_n}")
    print(f"  ratio node / bare          {node_rps / bare_rps:10.2f}   (target >= 0.5)")
    print(f"proxied asset, {args.big_mb} MiB")
    print(f"  through the data plane     {node_mbs:10.1f} MB/s")
    print(f"  straight from the backend  {direct_mbs:10.1f} MB/s   ratio {node_mbs / direct_mbs:.2f}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--inflight", type=int, default=32)
    parser.add_argument("--big-mb", type=int, default=100)
    asyncio.run(main(parser.parse_args()))
