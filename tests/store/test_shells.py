"""The registry's shell reads on every store (SQLite and PostgreSQL): the current passports in (created_at, id)
order, narrowed by creation window, keyset cursor and identifying columns, deleted ones left out."""

from __future__ import annotations

from dataclasses import replace

import pytest

from connector.domain import passport as model
from connector.services.passports import load, record_of
from connector.services.registry import RegistryService
from connector.store import Store, migrate
from connector.store.registry import ShellFilter


async def test_shells_are_the_current_passports_oldest_first(store: Store) -> None:
    records = [record_of(load(model.generate(i))) for i in range(6)]
    async with store.transaction() as tx:
        await tx.passports.put_many(records[:3], 1000)  # one time for a batch: ties are ordered by id
        await tx.passports.put_many(records[3:], 2000)
        await tx.passports.delete(records[4].id, 3000)
        # An update keeps the creation time.
        changed = model.generate(0)
        changed["identity"] = {**changed["identity"], "manufacturer_name": "Renamed GmbH"}
        assert await tx.passports.put_many([record_of(load(changed))], 4000) == ["updated"]
    async with store.read() as tx:
        every = await tx.shells.page(ShellFilter(limit=100))
        first = sorted(r.id for r in records[:3])
        assert [s.passport_id for s in every] == first + sorted(r.id for r in (records[3], records[5]))
        assert [s.created_at for s in every] == [1000, 1000, 1000, 2000, 2000]
        after = every[1]
        rest = await tx.shells.page(ShellFilter(after=(after.created_at, after.passport_id), limit=100))
        assert [s.passport_id for s in rest] == [s.passport_id for s in every[2:]]
        assert [s.passport_id for s in await tx.shells.page(ShellFilter(created_after=1000))] == [
            s.passport_id for s in every[3:]
        ]
        assert await tx.shells.page(ShellFilter(created_until=999)) == []
        assert len(await tx.shells.page(ShellFilter(created_after=0, created_until=1000))) == 3
        one = records[5]
        assert [s.passport_id for s in await tx.shells.page(ShellFilter(battery_id=one.battery_id))] == [one.id]
        by_model = await tx.shells.page(ShellFilter(model_id=one.model_id, limit=100))
        assert one.id in [s.passport_id for s in by_model]
        assert all(s.model_id == one.model_id for s in by_model)
        assert await tx.shells.get(records[4].id) is None
        found = await tx.shells.get(one.id)
        assert found is not None and (found.battery_id, found.created_at) == (one.battery_id, 2000)
        assert len(await tx.shells.page(ShellFilter(limit=2))) == 2


async def _poll(service: RegistryService, after: str) -> list[str]:
    listed = await service.list_shells(None, created_after=after)
    return [shell["id"] for shell in listed["result"]]


@pytest.mark.parametrize("settle_ms", [0, 1000])
async def test_a_created_after_poll_never_steps_past_a_late_commit(postgres_url: str, settle_ms: int) -> None:
    """Two writers (PostgreSQL): a batch that took its time first commits after a later one. Polling from the last
    createdAt seen misses the first batch without the settle horizon, and sees both in order with it."""
    from connector.domain.registry import PUBLIC_READABLE, timestamp
    from connector.services.registry import RegistryConfig

    await migrate.upgrade(postgres_url)
    store = Store(postgres_url, pool_size=4)
    clock = [2500]
    config = RegistryConfig("https://p.example/public", "https://p.example/dsp", None, (PUBLIC_READABLE,))
    service = RegistryService(store, replace(config, settle_ms=settle_ms), clock=lambda: clock[0])
    early, late = (record_of(load(model.generate(i))) for i in (1, 2))
    seen: list[str] = []
    try:
        async with store.transaction() as slow:
            await slow.passports.put_many([early], 1000)  # its time is taken, its commit comes later
            async with store.transaction() as fast:
                await fast.passports.put_many([late], 2000)
            polled = await _poll(service, timestamp(0))
            seen += polled
            last = 2000 if polled else 0
        clock[0] = 3500
        seen += await _poll(service, timestamp(last))
    finally:
        await store.close()
    if settle_ms == 0:
        assert seen == [late.id]  # the early batch is never seen: the bug the horizon prevents
    else:
        assert seen == [early.id, late.id]
