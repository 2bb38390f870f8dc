"""Node start-up time, memory, and management API latency against a bare aiohttp baseline in the same run.

Prints figures; never fails on time. Run: python bench/bench_node.py [--assets N]
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

import aiohttp
from baseline import bare_server  # bench/baseline.py (scripts run from bench/)

EDC = {"@vocab": "https://w3id.org/edc/v0.0.1/ns/"}


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


async def start_node(workdir: Path, wait_s: float = 60.0) -> tuple[asyncio.subprocess.Process, int, float]:
    """Start `connector serve` on ports chosen here; return it, its management port and the start-up time."""
    management = free_port()
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("CONNECTOR_")},
        "CONNECTOR_PROTOCOL_HOST": "127.0.0.1",
        "CONNECTOR_PROTOCOL_PORT": str(free_port()),
        "CONNECTOR_MANAGEMENT_PORT": str(management),
        "CONNECTOR_LOG_LEVEL": "WARNING",
    }
    started = time.perf_counter()
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "connector.cli", "serve", cwd=workdir, env=env, stderr=asyncio.subprocess.DEVNULL
    )
    async with aiohttp.ClientSession() as http, asyncio.timeout(wait_s):
        while True:
            try:
                async with http.get(f"http://127.0.0.1:{management}/health") as response:
                    if response.status == 200:
                        break
            except aiohttp.ClientError:
                pass
            if process.returncode is not None:
                raise RuntimeError(f"the node exited with {process.returncode} before answering /health")
            await asyncio.sleep(0.01)
    return process, management, time.perf_counter() - started


async def timed(http: aiohttp.ClientSession, method: str, url: str, body: object = None, n: int = 200) -> list[float]:
    samples = []
    for i in range(n):
        payload = body(i) if callable(body) else body
        t = time.perf_counter()
        async with http.request(method, url, json=payload) as response:
            await response.read()
            assert response.status < 300, await response.text()
        samples.append((time.perf_counter() - t) * 1000)
    return samples


def asset(i: int) -> dict[str, object]:
    return {
        "@context": EDC,
        "@id": f"asset-{i}",
        "properties": {"name": f"Passports {i}", "batteryModel": f"M{i % 10}", "capacity": i},
        "dataAddress": {"type": "HttpData", "baseUrl": f"https://backend.example.com/{i}"},
    }


async def main(count: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        process, port, startup = await start_node(Path(tmp))
        base = f"http://127.0.0.1:{port}/management/v3"
        try:
            idle = rss_mib(process.pid)
            async with aiohttp.ClientSession() as http:
                create = await timed(http, "POST", base + "/assets", lambda i: asset(i), n=count)
                get = await timed(http, "GET", base + "/assets/asset-7", n=count)
                spec = {
                    "@context": EDC,
                    "limit": 50,
                    "filterExpression": [{"operandLeft": "batteryModel", "operator": "=", "operandRight": "M3"}],
                }
                query = await timed(http, "POST", base + "/assets/request", spec, n=count)
                async with http.get(base + "/assets/asset-7") as response:
                    one = await response.read()
                runner, bare_port = await bare_server(one)
                try:
                    bare = await timed(http, "GET", f"http://127.0.0.1:{bare_port}/x", n=count)
                finally:
                    await runner.cleanup()
            loaded = rss_mib(process.pid)
        finally:
            process.terminate()
            await process.wait()
    med = statistics.median
    print(f"node start-up to first /health answer: {startup * 1000:.0f} ms (embedded SQLite, fresh database)")
    print(f"resident memory: {idle:.1f} MiB idle, {loaded:.1f} MiB after {count} assets and {3 * count} requests")
    print(f"POST /v3/assets            median {med(create):6.2f} ms")
    print(f"GET  /v3/assets/{{id}}       median {med(get):6.2f} ms")
    print(f"POST /v3/assets/request    median {med(query):6.2f} ms (filter on a property, {count} assets)")
    print(f"bare aiohttp, same bytes   median {med(bare):6.2f} ms")
    print(f"ratio GET asset / bare: {med(get) / med(bare):.2f}x")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--assets", type=int, default=500)
    asyncio.run(main(parser.parse_args().assets))
