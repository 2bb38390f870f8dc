"""The data plane as consumers call it: a 4 KB stored passport read with a valid EDR token, from another process.

Two `connector serve` processes (provider and consumer); the consumer negotiates the passport dataset and starts
an HttpData-PULL transfer through its management API, exactly as an EDC client does, and reads the EDR. Then the
load generator (wrk, or the harness's own, in its own process) reads the passport at the provider's `/public`
endpoint with the token, the same bytes from a bare aiohttp process, and the same bytes from a plain asyncio
protocol (no HTTP library: the floor of what the kernel and the event loop cost a request), alternately for
several rounds. Prints requests/s, MB/s and the CPU time a request costs the serving process (user and system
time from /proc over each run, divided by the requests answered; decision 0029), medians, with the ratio to the
bare server, and the node's and the bare app's CPU a request against the floor's; writes them as result lines.
bench_dataplane.py's figures come from a client in the node's own event loop, which caps the baseline.

Never fails on time. Run: python bench/bench_dataplane_http.py [--quick] [--rounds K] [--seconds S]
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from functools import partial
from types import SimpleNamespace
from typing import Any

import aiohttp
import harness
from bench_dataplane import API_KEY, call, negotiate, publish_stored, pull
from harness import BareServer, NodeProcess, Result, cpu_per_request, emit, median


async def node_view(http: aiohttp.ClientSession, node: NodeProcess) -> Any:
    """Return what bench_dataplane's helpers read of a node (its URLs and identity), from its management API."""
    view = SimpleNamespace(management_url=node.management)
    identity = await call(http, view, "GET", "/management/v1/identity")  # type: ignore[arg-type]
    did = identity.get("did") or identity.get("id")
    view.settings = SimpleNamespace(dsp_base_url=node.dsp, effective_did=did, effective_participant_id=did)
    return view


async def prepare(provider: NodeProcess, consumer: NodeProcess) -> tuple[str, dict[str, str], bytes]:
    """Store and publish the 4 KB passport, negotiate, pull; return its URL, the token header and its bytes."""
    async with aiohttp.ClientSession() as http:
        p, c = await node_view(http, provider), await node_view(http, consumer)
        dataset, passport_id, _ = await publish_stored(http, p, 0)
        address = await pull(http, p, c, await negotiate(http, p, c, dataset))
        url = f"{address['endpoint']}/{passport_id}"
        auth = {"Authorization": address["authorization"]}
        async with http.get(url, headers=auth) as response:
            body = await response.read()
            assert response.status == 200, body[:300]
    return url, auth, body


def main(args: argparse.Namespace) -> None:
    env = {"CONNECTOR_API_KEY": API_KEY}
    with harness.temp_dir("bench-dataplane-") as tmp:
        provider = NodeProcess(tmp / "provider", env=env)
        consumer = NodeProcess(tmp / "consumer", env=env)
        with provider, consumer:
            url, auth, body = asyncio.run(prepare(provider, consumer))
            print(f"stored passport {len(body):,} bytes at {url}")
            node_runs, bare_runs = [], []
            node_cpu: list[float] = []
            bare_cpu: list[float] = []
            floor_cpu: list[float] = []
            with BareServer(body) as bare, BareServer(body, floor=True) as floor:
                harness.load(url, seconds=1, connections=args.connections, headers=auth)  # warm-up
                for _ in range(args.rounds):
                    found, cpu = cpu_per_request(
                        [provider.pid],
                        partial(harness.load, url, seconds=args.seconds, connections=args.connections, headers=auth),
                    )
                    node_runs.append(found)
                    node_cpu.append(cpu)
                    found, cpu = cpu_per_request(
                        [bare.pid],
                        partial(
                            harness.load, bare.url + "/passport", seconds=args.seconds, connections=args.connections
                        ),
                    )
                    bare_runs.append(found)
                    bare_cpu.append(cpu)
                    found, cpu = cpu_per_request(
                        [floor.pid],
                        partial(
                            harness.load, floor.url + "/passport", seconds=args.seconds, connections=args.connections
                        ),
                    )
                    floor_cpu.append(cpu)
                    print(
                        f"  node {node_runs[-1].describe()}, {node_cpu[-1]:,.0f} µs CPU a request\n"
                        f"  bare {bare_runs[-1].describe()}, {bare_cpu[-1]:,.0f} µs CPU a request\n"
                        f"  floor {found.describe()}, {floor_cpu[-1]:,.1f} µs CPU a request",
                        flush=True,
                    )
    errors = sum(r.errors for r in node_runs)
    if errors:
        print(f"the node answered {errors} requests with an error (or failed them)")
    tool = node_runs[0].tool
    rate, bare_rate = median([r.requests_per_s for r in node_runs]), median([r.requests_per_s for r in bare_runs])
    mbs, bare_mbs = median([r.bytes_per_s for r in node_runs]) / 1e6, median([r.bytes_per_s for r in bare_runs]) / 1e6
    label = f"stored passport ({len(body):,} bytes) with a valid token, {args.connections} connections"
    emit(
        Result(
            f"data-plane requests/s, {label}",
            rate,
            "req/s",
            bare_rate,
            "bare aiohttp process, same bytes",
            ">= 0.5x bare",
            rate / bare_rate >= 0.5,
            tool,
            args.rounds,
            round_values=[r.requests_per_s for r in node_runs],
            baseline_rounds=[r.requests_per_s for r in bare_runs],
        )
    )
    emit(
        Result(
            f"data-plane CPU a request, {label}",
            median(node_cpu),
            "µs",
            median(bare_cpu),
            "bare aiohttp process, same bytes",
            tool=tool,
            rounds=args.rounds,
            round_values=node_cpu,
            baseline_rounds=bare_cpu,
            notes="user and system time of the node's process over the run",
        )
    )
    floor_name = "plain asyncio protocol, no HTTP library, same bytes"
    emit(
        Result(
            f"data-plane CPU a request against the HTTP floor, {label}",
            median(node_cpu),
            "µs",
            median(floor_cpu),
            floor_name,
            tool=tool,
            rounds=args.rounds,
            round_values=node_cpu,
            baseline_rounds=floor_cpu,
            notes="what a request costs beyond the kernel's and the event loop's share",
        )
    )
    emit(
        Result(
            "bare aiohttp CPU a request against the HTTP floor, same bytes",
            median(bare_cpu),
            "µs",
            median(floor_cpu),
            floor_name,
            tool=tool,
            rounds=args.rounds,
            round_values=bare_cpu,
            baseline_rounds=floor_cpu,
            notes="aiohttp's own share of the bare baseline",
        )
    )
    emit(
        Result(
            f"data-plane MB/s, {label}",
            mbs,
            "MB/s",
            bare_mbs,
            "bare aiohttp process, same bytes",
            tool=tool,
            rounds=args.rounds,
        )
    )


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--seconds", type=float, default=5.0, help="length of one load generator run")
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--quick", action="store_true", help="small sizes for development")
    args = parser.parse_args()
    if args.quick:
        args.rounds, args.seconds = 1, 2.0
    return args


if __name__ == "__main__":
    sys.exit(main(parse_args()))
