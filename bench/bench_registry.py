"""The embedded Digital Twin Registry: how fast shells are listed, paged, found and looked up from the store.

Stores `--count` generated passports (default 20,000) on a fresh SQLite database in a temporary directory, then
times, through `RegistryService` (what the data plane calls), each `--repeat` times (median):
- a first page of 100 shell descriptors (each with its 8 submodel descriptors of 3 endpoints),
- paging through every shell with limit 1000 (shells per second),
- one shell by its base64url id,
- a lookup by partInstanceId + digitalTwinType (the Catena-X consumer's call),
- a createdAfter poll that selects the last batch stored (500 shells).
Figures are informational and never fail on time.

Run: python bench/bench_registry.py [--count N] [--repeat N]
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from harness import Result, emit  # bench/harness.py (scripts run from bench/)

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from connector.domain import passport as model
from connector.domain import registry as wire


async def _timed(repeat: int, call: Callable[[], Awaitable[Any]]) -> float:
    times = []
    for _ in range(repeat):
        began = time.perf_counter()
        await call()
        times.append(time.perf_counter() - began)
    return statistics.median(times)


async def run(count: int, repeat: int) -> None:
    """Store the passports, then time the registry's reads."""
    from connector.services.passports import load, record_of
    from connector.services.registry import RegistryConfig, RegistryService
    from connector.store import Store, migrate

    with tempfile.TemporaryDirectory() as folder:
        url = f"sqlite+aiosqlite:///{folder}/bench.db"
        await migrate.upgrade(url)
        store = Store(url, pool_size=2)
        records = [record_of(load(model.generate(i))) for i in range(count)]
        began = time.perf_counter()
        base = int(time.time() * 1000) - count  # one creation time per batch of 500, all in the past
        for start in range(0, count, 500):
            async with store.transaction() as tx:
                await tx.passports.put_many(records[start : start + 500], base + start)
        print(f"stored {count} passports in {time.perf_counter() - began:.1f} s")
        member = "BPNL00000003AYRE"
        config = RegistryConfig(
            "https://provider.example/public",
            "https://provider.example/api/dsp/2025-1",
            "BPNL00000003CRHK",
            (member,),
            settle_ms=0,
        )
        service = RegistryService(store, config)
        middle = records[count // 2]
        del records  # what a node holds is the store, not every passport in memory (and collections would scan them)
        gc.collect()
        encoded = wire.encode_id(middle.id)
        links = [("partInstanceId", middle.battery_id), ("digitalTwinType", "PartInstance")]
        found = await service.lookup(member, links)
        assert found["result"] == [middle.id], found

        async def page_through() -> None:
            cursor = None
            seen = 0
            while True:
                page = await service.list_shells(member, limit="1000", cursor=cursor)
                seen += len(page["result"])
                cursor = page["paging_metadata"].get("cursor")
                if not cursor:
                    break
            assert seen == count, seen

        last_batch = (count - 1) // 500 * 500
        before_last = wire.timestamp(base + last_batch - 500) if last_batch else None
        first = await _timed(repeat, lambda: service.list_shells(member, limit="100"))
        every = await _timed(max(1, repeat // 3), page_through)
        one = await _timed(repeat, lambda: service.shell(member, encoded))
        lookup = await _timed(repeat, lambda: service.lookup(member, links))
        print(f"first page of 100 shells: {first * 1000:.1f} ms")
        print(f"every shell, pages of 1000: {every:.2f} s ({count / every:,.0f} shells/s)")
        print(f"one shell by id: {one * 1000:.2f} ms")
        print(f"lookup by partInstanceId: {lookup * 1000:.2f} ms")
        emit(Result(f"registry lookup by partInstanceId ({count:,} shells)", lookup * 1000, "ms", rounds=repeat))
        if before_last is not None:
            polled = await service.list_shells(member, limit="1000", created_after=before_last)
            assert len(polled["result"]) == count - last_batch, len(polled["result"])
            poll = await _timed(repeat, lambda: service.list_shells(member, limit="1000", created_after=before_last))
            print(f"createdAfter poll (the last {count - last_batch} created): {poll * 1000:.1f} ms")
        await store.close()


def main() -> None:
    """Parse the arguments and run."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=20_000)
    parser.add_argument("--repeat", type=int, default=9)
    args = parser.parse_args()
    asyncio.run(run(args.count, args.repeat))


if __name__ == "__main__":
    main()
