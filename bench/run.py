"""Run every benchmark, collect their result lines and rewrite the README's Performance table (`make bench`).

Each benchmark runs in its own process from bench/; its result lines go to a fresh results folder. A benchmark
that crashes is reported and the others still run (the table shows what was measured); none fails on time.
Run: python bench/run.py [--quick] [--only NAME...] [--no-readme]
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import time

from harness import BENCH, RESULTS, load_average, load_tool

# (script, arguments for `make bench`, arguments for `--quick`): sizes chosen so the whole run takes about
# 12-18 minutes on a loaded 2-core machine.
BENCHMARKS: list[tuple[str, list[str], list[str]]] = [
    ("bench_node.py", [], ["--quick"]),
    ("bench_catalog_consumer.py", [], ["--quick"]),
    ("bench_catalog.py", [], ["--quick"]),
    ("bench_negotiation_http.py", [], ["--quick"]),
    ("bench_negotiation.py", [], ["--quick"]),
    ("bench_dataplane_http.py", [], ["--quick"]),
    (
        "bench_dataplane.py",
        ["--distinct", "2000", "--big-mb", "20"],
        ["--seconds", "1", "--distinct", "0", "--big-mb", "5"],
    ),
    ("bench_policies.py", [], ["--rounds", "3"]),
    ("bench_identity.py", [], ["--rounds", "3", "--tokens", "1000"]),
    # The size issue 19 names: 100,000 realistic Catena-X passports (100-200 s with its tenth-size runs).
    ("bench_passports.py", [], ["--count", "2000", "--repeat", "1", "--views", "2000"]),
    ("bench_sync.py", ["--count", "20000"], ["--count", "2000"]),
    ("bench_lookup.py", [], ["--batteries", "10", "--cold", "1"]),
    ("bench_federation.py", [], ["--participants", "10", "--datasets", "1000", "--rounds", "5"]),
    ("bench_registry.py", [], ["--count", "2000", "--repeat", "3"]),
]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="small sizes for development")
    parser.add_argument("--only", nargs="*", default=[], help="benchmark names to run (e.g. bench_node)")
    parser.add_argument("--no-readme", action="store_true", help="do not rewrite the README's table")
    args = parser.parse_args()
    shutil.rmtree(RESULTS, ignore_errors=True)
    RESULTS.mkdir(parents=True)
    print(f"bench: load generator {load_tool()}; {os.cpu_count()} cores, load {load_average()}", flush=True)
    failed = []
    started = time.perf_counter()
    for script, full, quick in BENCHMARKS:
        if args.only and script.removesuffix(".py") not in args.only and script not in args.only:
            continue
        command = [sys.executable, script, *(quick if args.quick else full)]
        print(f"== {' '.join(command[1:])} (load {load_average()})", flush=True)
        begun = time.perf_counter()
        done = subprocess.run(command, cwd=BENCH, env={**os.environ, "BENCH_RESULTS": str(RESULTS)}, check=False)
        print(f"== {script}: {time.perf_counter() - begun:.0f} s, exit {done.returncode}", flush=True)
        if done.returncode != 0:
            failed.append(script)
    print(f"bench: all benchmarks took {time.perf_counter() - started:.0f} s", flush=True)
    if not args.no_readme:
        how = "`make bench BENCH_ARGS=--quick` (small sizes, for development)" if args.quick else "`make bench`"
        note = f"Written by {how}; the sizes are in each figure's name."
        if args.only:
            note += f" Only {', '.join(args.only)} ran."
        command = [sys.executable, "readme_table.py", "--results", str(RESULTS), "--note", note]
        subprocess.run(command, cwd=BENCH, check=False)
    if failed:
        print(f"bench: these benchmarks crashed (not a timing failure): {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
