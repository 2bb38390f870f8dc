"""The catalog as EDC clients read it: a consumer's /management/v3/catalog/request against a large provider.

Two `connector serve` processes (provider with N passport assets, default 100,000, and D contract definitions,
default 1,000, loaded in bulk; a consumer without credentials, which sees the open quarter of them) and the load
generator in a third process (wrk, or the harness's own). Figures, medians of several rounds, each printed and
written as a result line (bench/harness.py):
- catalog page 1 (50 datasets) through the consumer: latency p50 and throughput, against a bare aiohttp process
  serving the same page's bytes (a cached bare page of the same size) in the same run;
- the deep page (the last page by QuerySpec offset/limit) against page 1;
- page 1 asked of the provider's DSP endpoint directly (`POST <dsp>/catalog/request`, each request with a fresh
  self-issued token of the consumer, minted beforehand with its key, as the consumer would send it): latency p50
  and throughput against the bare process, and the consumer's figures against these (issue 25 items 1 and 3);
- the CPU time a request costs the serving processes (user and system time from /proc over each run, divided by
  the requests answered): the provider for the direct DSP call, the consumer and the provider together for the
  consumer's path, the bare process for its baseline: what a request costs each side, which no rate shows (it
  moves with the machine's moment as the rates do; decision 0029), and the same for a plain asyncio protocol
  serving the direct page's bytes (no HTTP library: the floor of what the kernel and the event loop cost a
  request), against which the provider's and the bare process's CPU a request are set.
The consumer path includes the provider's DSP endpoint (a fresh self-issued token, its verification and the
presentation query, the catalog computed for the requester) and the consumer's re-shaping of the answer.

Never fails on time. Run: python bench/bench_catalog_consumer.py [--quick] [--assets N] [--rounds K]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import urllib.request
from functools import partial

import harness
from bench_node import EDC, bulk_load
from harness import BareServer, NodeProcess, Result, cpu_per_request, emit, median

PAGE = 50
DSP_CONTEXT = "https://w3id.org/dspace/2025/1/context.jsonld"
# Tokens minted per direct DSP run, per second of the run (more than the node answers: a run that used them all
# would go on with replayed tokens, whose cheap refusals count as errors and flatter the CPU a request; with
# 2,500 a run at 3,300 requests/s did). About 80 µs of this process's CPU each.
TOKENS_PER_SECOND = 6_000


def dsp_request_body(offset: int) -> bytes:
    """Return the DSP CatalogRequestMessage the consumer sends for the provider's page at `offset`."""
    spec = {"@type": "QuerySpec", "offset": offset, "limit": PAGE, "sortOrder": "ASC", "filterExpression": []}
    message = {"@context": [DSP_CONTEXT, EDC_DSPACE_CONTEXT], "@type": "CatalogRequestMessage", "filter": [spec]}
    return json.dumps(message).encode()


EDC_DSPACE_CONTEXT = "https://w3id.org/edc/dspace/v0.0.1"


def did_of(node: NodeProcess) -> str:
    """Return a node's DID, read from the DID document it serves."""
    with urllib.request.urlopen(node.protocol + "/.well-known/did.json", timeout=30) as response:
        return str(json.loads(response.read())["id"])


def mint(consumer: NodeProcess, audience: str, count: int) -> list[str]:
    """Return `count` Authorization values the consumer would send to `audience` (its key, as it mints them)."""
    from connector.identity.keys import load_key
    from connector.identity.tokens import issue_token

    key = load_key((consumer.data_dir / "node-key.jwk").read_bytes(), "the consumer's key")
    own = did_of(consumer)
    out = []
    for _ in range(count):
        access = issue_token(key, own, audience, lifetime=600)
        out.append("Bearer " + issue_token(key, own, audience, lifetime=600, access_token=access))
    return out


def request_body(provider: NodeProcess, offset: int) -> bytes:
    """Return an EDC v3 CatalogRequest for the provider's page at `offset`.

    It names the provider by its DID in `counterPartyId`, as EDC and Tractus-X clients do (EDC addresses the
    token by it); without it the consumer asks the provider's `/.well-known/dspace-version` first, every time.
    """
    return json.dumps(
        {
            "@context": {"@vocab": EDC},
            "@type": "CatalogRequest",
            "counterPartyAddress": provider.dsp,
            "counterPartyId": did_of(provider),
            "protocol": "dataspace-protocol-http:2025-1",
            "querySpec": {"offset": offset, "limit": PAGE},
        }
    ).encode()


def fetch(url: str, body: bytes) -> bytes:
    """POST a body once and return the answer's bytes."""
    request = urllib.request.Request(url, data=body, headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=120) as response:
        return bytes(response.read())


def fetch_with(url: str, body: bytes, authorization: str) -> bytes:
    """POST a body once with an Authorization header and return the answer's bytes."""
    headers = {"Content-Type": "application/json", "Authorization": authorization}
    request = urllib.request.Request(url, data=body, headers=headers)
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
            dsp_url = provider.protocol + "/api/dsp/2025-1/catalog/request"
            dsp_body = dsp_request_body(0)
            audience = did_of(provider)
            direct_page = fetch_with(dsp_url, dsp_body, mint(consumer, audience, 1)[0])
            print(f"direct DSP page 1: {len(direct_page):,} bytes")
            runs: dict[str, list[harness.Load]] = {
                "page 1": [],
                "deep": [],
                "bare": [],
                "dsp": [],
                "dsp bare": [],
                "dsp floor": [],
            }
            cpu_us: dict[str, list[float]] = {name: [] for name in runs}
            count = int(args.seconds * TOKENS_PER_SECOND) + 1000
            with (
                BareServer(page_one) as bare,
                BareServer(direct_page) as dsp_bare,
                BareServer(direct_page, floor=True) as dsp_floor,
            ):
                for _ in range(args.rounds):
                    t = time.process_time()
                    tokens = mint(consumer, audience, count)
                    print(f"  minted {count:,} tokens in {time.process_time() - t:.1f} s of CPU", flush=True)
                    cases: tuple[tuple[str, str, bytes, list[str]], ...] = (
                        ("page 1", url, first, []),
                        ("deep", url, deep, []),
                        ("bare", bare.url, first, []),
                        ("dsp", dsp_url, dsp_body, tokens),
                        ("dsp bare", dsp_bare.url + "/api/dsp/2025-1/catalog/request", dsp_body, tokens),
                        ("dsp floor", dsp_floor.url + "/api/dsp/2025-1/catalog/request", dsp_body, tokens),
                    )
                    serving = {
                        "page 1": [consumer.pid, provider.pid],
                        "deep": [consumer.pid, provider.pid],
                        "bare": [bare.pid],
                        "dsp": [provider.pid],
                        "dsp bare": [dsp_bare.pid],
                        "dsp floor": [dsp_floor.pid],
                    }
                    for name, target, body, authorizations in cases:
                        measured, used = cpu_per_request(
                            serving[name],
                            partial(
                                harness.load,
                                target,
                                seconds=args.seconds,
                                connections=args.connections,
                                method="POST",
                                body=body,
                                authorizations=authorizations,
                            ),
                        )
                        runs[name].append(measured)
                        cpu_us[name].append(used)
                        print(
                            f"  {name:8s} {measured.describe()}, {cpu_us[name][-1]:,.0f} µs CPU a request "
                            f"(load {harness.load_average()})",
                            flush=True,
                        )
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
            f"catalog page 1 at the provider's DSP endpoint, p50 ({size})",
            p50["dsp"],
            "ms",
            p50["dsp bare"],
            "bare aiohttp, same page bytes",
            target="<= 3x",
            met=p50["dsp"] <= 3 * p50["dsp bare"],
            round_values=[r.p50_ms for r in runs["dsp"]],
            baseline_rounds=[r.p50_ms for r in runs["dsp bare"]],
            tool=tool,
            rounds=args.rounds,
            notes=f"{args.connections} connections, a fresh token per request",
        )
    )
    emit(
        Result(
            f"catalog throughput at the provider's DSP endpoint ({size})",
            rate["dsp"],
            "req/s",
            rate["dsp bare"],
            "bare aiohttp, same page bytes",
            target=">= 1/3 of bare",
            met=rate["dsp"] * 3 >= rate["dsp bare"],
            round_values=[r.requests_per_s for r in runs["dsp"]],
            baseline_rounds=[r.requests_per_s for r in runs["dsp bare"]],
            tool=tool,
            rounds=args.rounds,
        )
    )
    emit(
        Result(
            f"catalog page 1 via consumer v3 catalog/request against the direct DSP call, p50 ({size})",
            p50["page 1"],
            "ms",
            p50["dsp"],
            "the provider's DSP endpoint, same run",
            target="<= 1.3x",
            met=p50["page 1"] <= 1.3 * p50["dsp"],
            round_values=[r.p50_ms for r in runs["page 1"]],
            baseline_rounds=[r.p50_ms for r in runs["dsp"]],
            tool=tool,
            rounds=args.rounds,
        )
    )
    cpu = {name: median(found) for name, found in cpu_us.items()}
    emit(
        Result(
            f"catalog CPU a request at the provider's DSP endpoint ({size})",
            cpu["dsp"],
            "µs",
            cpu["dsp bare"],
            "bare aiohttp process, same page bytes",
            round_values=cpu_us["dsp"],
            baseline_rounds=cpu_us["dsp bare"],
            tool=tool,
            rounds=args.rounds,
            notes="user and system time of the serving process over the run, a fresh token per request",
        )
    )
    floor_name = "plain asyncio protocol, no HTTP library, same page bytes"
    emit(
        Result(
            f"catalog CPU a request at the provider's DSP endpoint against the HTTP floor ({size})",
            cpu["dsp"],
            "µs",
            cpu["dsp floor"],
            floor_name,
            round_values=cpu_us["dsp"],
            baseline_rounds=cpu_us["dsp floor"],
            tool=tool,
            rounds=args.rounds,
            notes="what a request costs beyond the kernel's and the event loop's share",
        )
    )
    emit(
        Result(
            f"bare aiohttp CPU a request against the HTTP floor, the DSP page's bytes ({len(direct_page):,} bytes)",
            cpu["dsp bare"],
            "µs",
            cpu["dsp floor"],
            floor_name,
            round_values=cpu_us["dsp bare"],
            baseline_rounds=cpu_us["dsp floor"],
            tool=tool,
            rounds=args.rounds,
            notes="aiohttp's own share of the bare baseline, a POST with a DSP catalog request",
        )
    )
    emit(
        Result(
            f"catalog CPU a request via consumer v3 catalog/request, both nodes ({size})",
            cpu["page 1"],
            "µs",
            cpu["dsp"],
            "the provider alone for the direct DSP call",
            round_values=cpu_us["page 1"],
            baseline_rounds=cpu_us["dsp"],
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
