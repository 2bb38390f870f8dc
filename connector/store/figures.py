"""What the node's metrics read from the database at scrape time: a few grouped counts on indexed columns.

Each scrape runs these on one read connection; on a store of a million processes they stay cheap because
`state` is indexed and the outbox holds only messages still to be sent.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from sqlalchemy import func, select
from sqlalchemy.pool import QueuePool

from . import Store, tables


@dataclass(frozen=True, slots=True)
class PoolUse:
    """One connection pool: its size, the connections lent out and those held idle."""

    name: str
    size: int
    checked_out: int
    idle: int
    overflow: int


@dataclass(frozen=True, slots=True)
class StoreFigures:
    """Counts for the metrics: processes by (role, state), the outbox, agreements."""

    negotiations: dict[tuple[str, str], int] = field(default_factory=dict)
    transfers: dict[tuple[str, str], int] = field(default_factory=dict)
    outbox_messages: int = 0
    outbox_retrying: int = 0
    outbox_attempts: int = 0
    outbox_oldest_ms: int | None = None
    agreements: int = 0


async def figures(store: Store) -> StoreFigures:
    """Read the counts in one read transaction."""
    async with store.read() as tx:
        connection = tx.connection
        negotiations = {
            (str(role), str(state)): int(count)
            for role, state, count in await connection.execute(
                select(tables.negotiations.c.role, tables.negotiations.c.state, func.count()).group_by(
                    tables.negotiations.c.role, tables.negotiations.c.state
                )
            )
        }
        transfers = {
            (str(role), str(state)): int(count)
            for role, state, count in await connection.execute(
                select(tables.transfers.c.role, tables.transfers.c.state, func.count()).group_by(
                    tables.transfers.c.role, tables.transfers.c.state
                )
            )
        }
        outbox = tables.outbox.c
        row = (
            await connection.execute(
                select(
                    func.count(),
                    func.count().filter(outbox.attempts > 0),
                    func.coalesce(func.sum(outbox.attempts), 0),
                    func.min(outbox.created_at),
                )
            )
        ).one()
        agreements = (await connection.execute(select(func.count()).select_from(tables.agreements))).scalar_one()
    return StoreFigures(
        negotiations=negotiations,
        transfers=transfers,
        outbox_messages=int(row[0]),
        outbox_retrying=int(row[1]),
        outbox_attempts=int(row[2]),
        outbox_oldest_ms=int(row[3]) if row[3] is not None else None,
        agreements=int(agreements),
    )


def pool_use(store: Store) -> list[PoolUse]:
    """Return the use of each of the store's connection pools (SQLite has a writer's and a readers')."""
    found = []
    for name, pool in store.pools():
        if isinstance(pool, QueuePool):
            found.append(PoolUse(name, pool.size(), pool.checkedout(), pool.checkedin(), max(pool.overflow(), 0)))
        else:  # a pool without a fixed size (SQLite's in-memory or null pools): what it lends out
            checked_out = int(pool.checkedout()) if hasattr(pool, "checkedout") else 0
            found.append(PoolUse(name, 0, checked_out, 0, 0))
    return found
