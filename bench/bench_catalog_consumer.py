"""The catalog as EDC clients read it: a consumer's /management/v3/catalog/request against a large provider.

Two `connector serve` processes (provider with N passport assets, default 100,000, and D contract definitions,
default 1,000, loaded in bulk; a consumer without credentials, which sees the open quarter of them) and the load
generator in a third process (wrk, or the harness's own). Figures, medians of several rounds, each printed and
written as a result line (bench/harness.py):
- catalog page 1 (50 datasets) through the consumer: latency p50 and throughput, against a bare aiohttp process
  serving the same page's bytes (a cached bare page of the same size) in the same run;
- the deep page (the last page by QuerySpec offset/limit) against page 1.
The consumer path includes the provider's DSP endpoint (a fresh self-issued token, its verification and the
presentation query, the catalog computed for the requester) and the consumer's re-shaping of the answer.

Never fails on time. Run: python bench/bench_catalog_consumer.py [--quick] [--assets N] [--rounds K]
"""

from __future__ import annotations

import argparse
import json
import sys
import urllib.request

import harness
from bench_node import EDC, bulk_load
from harness import BareServer, NodeProcess, Result, emit, median

PAGE = 50


def request_body(provider: NodeProcess, offset: int) -> bytes:
    """Return an EDC v3 CatalogRequest for the provider's page at `offset`."""
    return json.dumps(
        {
            "@context": {"@vocab": EDC},
            "@type": "CatalogRequest",
            "counterPartyAddress": provider.dsp,
            "protocol": "dataspace-protocol-http:2025-1",
            "querySpec": {"offset": offset, "limit": PAGE},
        }
    ).encode()


def fetch(url: str, body: bytes) -> bytes:
    """POST a body once and return the answer's bytes."""
    request = urllib.request.Request(url, data=body, headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=120) as response:
        return bytes(response.read())


def count_datasets(raw: bytes) -> int:
    """Return how many datasets a v3 catalog answer holds."""
    found = json.loads(raw).get("dcat:dataset", [])
    return len(found) if isinstance(found, list) else 1


def main(args: argparse.Namespace) -> None:
    with harness.temp_dir("bench-catalog-consumer-") as tmp:
        seconds, shape = bulk_load(tmp / "provider", args.assets, args.definitions)
        visible = shape.visible_stranger
        print(
            f"bulk load: {args.assets:,} assets, {args.definitions:,} contract definitions in {seconds:.1f} s; "
            f"the consumer sees {visible:,} datasets"
        )
        provider = NodeProcess(tmp / "provider")
        consumer = NodeProcess(tmp / "consumer")
        with provider, consumer:
            url = consumer.management + "/management/v3/catalog/request"
            first = request_body(provider, 0)
            last_offset = max(0, (visible - 1) // PAGE * PAGE)
            deep = request_body(provider, last_offset)
            page_one = fetch(url, first)
            deep_page = fetch(url, deep)
            print(
                f"page 1: {count_datasets(page_one)} datasets, {len(page_one):,} bytes; last page (offset "
                f"{last_offset:,}): {count_datasets(deep_page)} datasets"
            )
            runs: dict[str, list[harness.Load]] = {"page 1": [], "deep": [], "bare": []}
            with BareServer(page_one) as bare:
                for _ in range(args.rounds):
                    for name, target, body in (("page 1", url, first), ("deep", url, deep), ("bare", bare.url, first)):
                        measured = harness.load(
                            target, seconds=args.seconds, connections=args.connections, method="POST", body=body
                        )
                        runs[name].append(measured)
                        print(f"  {name:7s} {measured.describe()} (load {harness.load_average()})", flush=True)
    tool = runs["page 1"][0].tool
    p50 = {name: median([r.p50_ms for r in found]) for name, found in runs.items()}
    rate = {name: median([r.requests_per_s for r in found]) for name, found in runs.items()}
    errors = sum(r.errors for found in runs.values() for r in found)
    if errors:
        print(f"errors (non-2xx answers or failed connections) over all runs: {errors}")
    size = f"{args.assets:,} assets, {args.definitions:,} definitions"
    emit(
        Result(
            f"catalog page 1 via consumer v3 catalog/request, p50 ({size})",
            p50["page 1"],
            "ms",
            p50["bare"],
            "bare aiohttp, same page bytes",
            tool=tool,
            rounds=args.rounds,
            notes=f"{args.connections} connections",
        )
    )
    emit(
        Result(
            f"catalog throughput via consumer v3 catalog/request ({size})",
            rate["page 1"],
            "req/s",
            rate["bare"],
            "bare aiohttp, same page bytes",
            tool=tool,
            rounds=args.rounds,
        )
    )
    emit(
        Result(
            f"catalog deep page (offset {last_offset:,}) via consumer, p50",
            p50["deep"],
            "ms",
            p50["page 1"],
            "page 1 in the same run",
            tool=tool,
            rounds=args.rounds,
        )
    )


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--assets", type=int, default=100_000)
    parser.add_argument("--definitions", type=int, default=1_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=10.0, help="length of one load generator run")
    parser.add_argument("--connections", type=int, default=8)
    parser.add_argument("--quick", action="store_true", help="small sizes for development")
    args = parser.parse_args()
    if args.quick:
        args.assets, args.definitions, args.rounds, args.seconds = 2_000, 50, 1, 3.0
    return args


if __name__ == "__main__":
    sys.exit(main(parse_args()))
