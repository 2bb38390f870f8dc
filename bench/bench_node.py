"""Node start-up to ready and resident memory, each node in its own process, against in-run baselines.

Figures (each a median of several rounds, printed and written as a result line, see bench/harness.py):
- start-up to the first 200 from /ready of `connector serve` on a fresh data directory, and on the first start
  right after a bulk load of N assets (default 100,000) and 1,000 contract definitions, against the start-up of
  a bare aiohttp process (the interpreter and aiohttp alone) in the same run; target under 2 s;
- resident memory idle (after start) against the bare aiohttp process's; target under 150 MB;
- resident memory of the provider after R catalog requests (default 10,000, or as many as --max-seconds allow)
  made the way EDC clients make them:
  `POST /management/v3/catalog/request` on a consumer node, which asks the provider over DSP (page of 50 of the
  bulk-loaded catalog), driven by the load generator; with that path's throughput.

Never fails on time. Run: python bench/bench_node.py [--quick] [--assets N] [--rounds K] [--requests R]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import harness
from harness import BareServer, NodeProcess, Result, emit, median

MIB_PER_MB = 1_000_000 / 1_048_576
EDC = "https://w3id.org/edc/v0.0.1/ns/"


def bulk_load(data_dir: Path, assets: int, definitions: int) -> tuple[float, Any]:
    """Fill a data directory's SQLite database as a bulk import leaves it; return the seconds and its shape.

    The shape (bench_catalog.Shape) says how many datasets a consumer without credentials sees.
    """
    from bench_catalog import populate  # the catalog benchmark's realistic passport assets and definitions

    data_dir.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    url = f"sqlite+aiosqlite:///{data_dir / 'connector.db'}"
    shape, _ = asyncio.run(populate(url, assets, definitions, min(1000, assets)))
    return time.perf_counter() - started, shape


def bare_start() -> tuple[float, float]:
    """Start a bare aiohttp process and return its seconds to first answer and its resident memory in MiB."""
    started = time.perf_counter()
    with BareServer(b"{}") as bare:
        seconds = time.perf_counter() - started
        assert bare.process is not None
        return seconds, harness.rss_mib(bare.process.pid)


def catalog_request(provider: NodeProcess) -> bytes:
    """Return the body of a consumer's EDC v3 catalog request for the provider's first page of 50."""
    return json.dumps(
        {
            "@context": {"@vocab": EDC},
            "@type": "CatalogRequest",
            "counterPartyAddress": provider.dsp,
            "protocol": "dataspace-protocol-http:2025-1",
            "querySpec": {"offset": 0, "limit": 50},
        }
    ).encode()


def main(args: argparse.Namespace) -> None:
    rounds = args.rounds
    with harness.temp_dir("bench-node-") as tmp:
        fresh, fresh_cpu, bare, bare_rss, idle = [], [], [], [], []
        for i in range(rounds):
            bare_s, rss = bare_start()
            bare.append(bare_s)
            bare_rss.append(rss)
            node = NodeProcess(tmp / f"fresh-{i}")
            fresh.append(node.start())
            fresh_cpu.append(node.ready_cpu_seconds)
            time.sleep(1)
            idle.append(node.rss_mib())
            node.stop()
        print(f"fresh start-ups: {', '.join(f'{s:.2f}' for s in fresh)} s; bare: {', '.join(f'{s:.2f}' for s in bare)}")
        emit(
            Result(
                "start-up to ready, fresh data directory",
                median(fresh),
                "s",
                median(bare),
                "bare aiohttp process start",
                "< 2 s",
                median(fresh) < 2,
                "harness, process start to /ready",
                rounds,
            )
        )
        emit(
            Result(
                "resident memory idle",
                median(idle) / MIB_PER_MB,
                "MB",
                median(bare_rss) / MIB_PER_MB,
                "bare aiohttp process",
                "< 150 MB",
                median(idle) / MIB_PER_MB < 150,
                "/proc VmRSS",
                rounds,
            )
        )

        loaded = tmp / "loaded"
        seconds, _ = bulk_load(loaded, args.assets, args.definitions)
        print(f"bulk load of {args.assets:,} assets and {args.definitions:,} contract definitions: {seconds:.1f} s")
        after, after_cpu, again = [], [], []
        for i in range(rounds):
            copy = tmp / f"bulk-{i}"
            shutil.copytree(loaded, copy)
            subprocess.run(["sync"], check=False)
            node = NodeProcess(copy)
            after.append(node.start())
            after_cpu.append(node.ready_cpu_seconds)
            node.stop()
            node = NodeProcess(copy)
            again.append(node.start())
            node.stop()
            shutil.rmtree(copy)
        print(f"first start-ups after the bulk load: {', '.join(f'{s:.2f}' for s in after)} s")
        print(f"second start-ups after the bulk load: {', '.join(f'{s:.2f}' for s in again)} s")
        emit(
            Result(
                f"start-up to ready, first start after a bulk load of {args.assets:,} assets",
                median(after),
                "s",
                median(bare),
                "bare aiohttp process start",
                "< 2 s",
                median(after) < 2,
                "harness, process start to /ready",
                rounds,
            )
        )

        # CPU time to ready: what the start-up costs, much less disturbed by a loaded machine than wall time.
        for label, values in (
            ("fresh data directory", fresh_cpu),
            (f"after a bulk load of {args.assets:,}", after_cpu),
        ):
            emit(Result(f"start-up CPU time to ready, {label}", median(values), "s", tool="/proc stat", rounds=rounds))

        provider = NodeProcess(loaded, log=tmp / "provider.log")
        consumer = NodeProcess(tmp / "consumer", log=tmp / "consumer.log")
        with provider, consumer:
            url = consumer.management + "/management/v3/catalog/request"
            body = catalog_request(provider)
            answer = harness.post_json(url, json.loads(body))
            datasets = answer.get("dcat:dataset") or answer.get("dataset") or []
            print(f"consumer catalog request: {len(datasets) if isinstance(datasets, list) else 1} datasets on page 1")
            made, loads = 0, []
            deadline = time.monotonic() + args.max_seconds
            while made < args.requests and time.monotonic() < deadline:
                done = harness.load(url, seconds=args.seconds, connections=8, method="POST", body=body)
                made += done.requests
                loads.append(done)
            rss_after = provider.rss_mib()
        print(f"provider after {made:,} catalog requests: {rss_after:.1f} MiB; last load: {loads[-1].describe()}")
        emit(
            Result(
                f"resident memory after {made:,} catalog requests (provider, {args.assets:,} assets)",
                rss_after / MIB_PER_MB,
                "MB",
                median(idle) / MIB_PER_MB,
                "the node idle",
                tool=loads[-1].tool,
                rounds=len(loads),
            )
        )


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--assets", type=int, default=100_000)
    parser.add_argument("--definitions", type=int, default=1_000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--requests", type=int, default=10_000)
    parser.add_argument("--seconds", type=float, default=10.0, help="length of one load generator run")
    parser.add_argument(
        "--max-seconds",
        type=float,
        default=180.0,
        help="stop the catalog requests after this long even if fewer than --requests were made (the figure says "
        "how many were)",
    )
    parser.add_argument("--quick", action="store_true", help="small sizes for development")
    args = parser.parse_args()
    if args.quick:
        args.assets, args.definitions, args.rounds, args.requests, args.seconds = 2_000, 50, 2, 100, 2.0
    return args


if __name__ == "__main__":
    sys.exit(main(parse_args()))
