"""Battery passports: import throughput through the CLI, and view rendering per second.

1. Writes `--count` generated passports (default 100,000, about 3 KB each) as JSON Lines, then runs
   `connector passports import FILE` (a subprocess, embedded SQLite in a temporary directory) and reports
   passports per second, then runs it again (every record unchanged: the digest comparison path).
2. Renders views in this process from stored node JSON: the public and legitimate-interest views in the
   node's shape (what the public URL and the data plane serve), and the Catena-X shape of the Catena-X
   example's public view; reports views per second, against `json.dumps` of the same passport as baseline.
Figures are informational and never fail on time.

Run: python bench/bench_passports.py [--count N] [--views N]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import orjson

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from connector.domain import passport as model


def _import(count: int, workdir: Path) -> None:
    source = workdir / "passports.jsonl"
    started = time.perf_counter()
    with source.open("wb") as out:
        for i in range(count):
            out.write(orjson.dumps(model.generate(i)) + b"\n")
    size_mb = source.stat().st_size / 1e6
    print(f"generated {count:,} passports ({size_mb:,.0f} MB JSON Lines) in {time.perf_counter() - started:.1f} s")
    env = {**os.environ, "CONNECTOR_DATA_DIR": str(workdir / "node"), "CONNECTOR_LOG_LEVEL": "WARNING"}
    for label in ("first import", "second import (all unchanged)"):
        started = time.perf_counter()
        done = subprocess.run(
            [sys.executable, "-m", "connector.cli", "passports", "import", str(source), "--no-progress"],
            env=env,
            capture_output=True,
            text=True,
            check=False,
        )
        seconds = time.perf_counter() - started
        print(f"{label}: {count / seconds:,.0f} passports/s ({seconds:.1f} s wall, exit {done.returncode})")
        print("   " + done.stdout.strip().splitlines()[0] if done.stdout else done.stderr[-500:])


def _rate(label: str, count: int, work: object, baseline: float | None = None) -> float:
    started = time.perf_counter()
    for _ in range(count):
        work()  # type: ignore[operator]
    rate = count / (time.perf_counter() - started)
    ratio = f" ({rate / baseline:.2f}x json.dumps)" if baseline else ""
    print(f"{label}: {rate:,.0f}/s{ratio}")
    return rate


def _views(count: int) -> None:
    stored = model.parse_passport(model.generate(7)).to_json()
    base = _rate("baseline: json.dumps of the whole passport", count, lambda: json.dumps(stored))
    _rate("public view, node JSON, serialised", count, lambda: orjson.dumps(model.view_json(stored, {"public"})), base)
    _rate(
        "legitimate-interest view, node JSON, serialised",
        count,
        lambda: orjson.dumps(model.view_json(stored, {"legitimate_interest"})),
        base,
    )
    _rate("validate stored node JSON (parse_passport)", count // 4, lambda: model.parse_passport(stored), base)
    example = Path(__file__).resolve().parents[1] / "tests/data/passports/catenax-sldt"
    path = example / "io.catenax.battery.battery_pass/6.1.0/gen/BatteryPass.json"
    if path.exists():
        document = json.loads(path.read_text())
        document["operation"]["intoServiceDate"] = "2024-02-29"  # the published value names no day: refused
        catenax = model.load_document(document)
        _rate(
            "Catena-X public view of the Catena-X example", count // 4, lambda: model.view_catenax(catenax, {"public"})
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=100_000, help="passports to import (default 100000)")
    parser.add_argument("--views", type=int, default=20_000, help="views to render per measure (default 20000)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as directory:
        _import(args.count, Path(directory))
    _views(args.views)


if __name__ == "__main__":
    main()
