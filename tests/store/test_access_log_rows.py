"""The data plane's audit rows are written as queued (plain tuples), the same on SQLite and PostgreSQL.

On SQLite `AccessLogRepository.add_rows` hands the tuples to one executemany of the statement SQLAlchemy would
write (decision 0028); what is read back must be what `add_many` of the same entries stores: every field, None
where there is none, a path longer than the log keeps cut to its limit.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from connector.domain.query import QuerySpec
from connector.store import Store, migrate
from connector.store.transfers import MAX_LOGGED_PATH, Access


@pytest.fixture
async def store(database_url: str) -> AsyncIterator[Store]:
    await migrate.upgrade(database_url)
    opened = Store(database_url)
    try:
        yield opened
    finally:
        await opened.close()


ROWS = [
    (1_800_000_000_000, "tp-1", "agr-1", "did:web:consumer.example", "asset-1", "GET", "/public/p1", 200, 3977, None),
    (1_800_000_000_001, None, None, None, None, "POST", "/public/" + "é" * 3000, 401, 0, "no token: send ..."),
    (1_800_000_000_002, "tp-2", "agr-2", "did:web:c2", "asset-2", "HEAD", "/public/p'\"\\\n", 403, 0, "ending"),
]


async def _read_back(store: Store) -> list[Access]:
    async with store.read() as tx:
        found = await tx.access_log.query(QuerySpec(limit=100))
    return sorted(found, key=lambda access: access.at)


async def test_rows_read_back_as_the_entries_they_are(store: Store) -> None:
    async with store.transaction() as tx:
        await tx.access_log.add_rows(ROWS)
        await tx.access_log.add_rows([])
    found = await _read_back(store)
    expected = [Access(*row) for row in ROWS]
    expected[1] = Access(*ROWS[1][:6], ROWS[1][6][:MAX_LOGGED_PATH], *ROWS[1][7:])  # type: ignore[misc]
    assert found == expected
    assert len(found[1].path) == MAX_LOGGED_PATH


async def test_add_many_stores_what_add_rows_stores(store: Store) -> None:
    async with store.transaction() as tx:
        await tx.access_log.add_many([Access(*row) for row in ROWS])
    by_entries = await _read_back(store)
    async with store.transaction() as tx:
        await tx.access_log.add_rows([(at + 10, *rest) for at, *rest in ROWS])  # type: ignore[misc]
    by_rows = (await _read_back(store))[len(ROWS) :]
    assert [(a.transfer_id, a.path, a.status, a.bytes, a.reason) for a in by_entries] == [
        (a.transfer_id, a.path, a.status, a.bytes, a.reason) for a in by_rows
    ]
