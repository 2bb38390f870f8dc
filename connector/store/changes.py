"""The passports' change sequence: a position per change, and no commit ever lands behind a cursor a reader holds.

A writer stamps the passports it changed with a position (`passports.change_seq`); the feed reads them in
(change_seq, id) order after a cursor, deleted ones included as tombstones. The position cannot be the writer's
clock, nor a plain sequence: both are taken before the commit, and a transaction that commits late would land
behind a cursor a reader already moved past. So (docs/decisions/0017-change-sequence.md):

- PostgreSQL: the position is the writing transaction's id (`pg_current_xact_id()`, 64 bits, never wraps), and a
  reader reads only positions below its snapshot's `xmin`, the oldest transaction still running: everything
  below it has committed or rolled back, and every transaction that commits later has an id at or above it.
  Writers never wait for each other; a transaction left open holds the feed back (it lags, it loses nothing).
- SQLite: one writer at a time, so a counter (the "passport_changes" revision) taken in the writer's
  transaction is in commit order by itself.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import and_, bindparam, insert, literal_column, or_, select, update
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.sql.elements import ColumnClause

from connector.store.tables import PASSPORT_CHANGES_REVISION, passports, revisions

_TRANSACTION_ID: ColumnClause[Any] = literal_column("pg_current_xact_id()::text::bigint")
# Every transaction with an id below this one has ended (the statement's snapshot; no id is taken for it).
_SETTLED: ColumnClause[Any] = literal_column("pg_snapshot_xmin(pg_current_snapshot())::text::bigint")


async def next_change(connection: AsyncConnection) -> int:
    """Take the next value of the counter (SQLite, whose one writer makes it commit-ordered)."""
    value = await connection.scalar(
        update(revisions)
        .where(revisions.c.name == PASSPORT_CHANGES_REVISION)
        .values(value=revisions.c.value + 1)
        .returning(revisions.c.value)
    )
    if value is None:  # a database made without the migrations (0009 inserts the row)
        await connection.execute(insert(revisions).values(name=PASSPORT_CHANGES_REVISION, value=1))
        return 1
    return int(value)


async def stamp(connection: AsyncConnection, passport_ids: Sequence[str]) -> None:
    """Mark passports as changed by this transaction (call it in the transaction that changed them)."""
    if not passport_ids:
        return
    position: Any = _TRANSACTION_ID if connection.dialect.name == "postgresql" else await next_change(connection)
    await connection.execute(
        update(passports).where(passports.c.id.in_(bindparam("ids", expanding=True))).values(change_seq=position),
        {"ids": list(passport_ids)},
    )


@dataclass(frozen=True, slots=True)
class Change:
    """One entry of the feed: the passport's current state (a tombstone when deleted)."""

    seq: int
    passport_id: str
    version: int
    deleted: bool
    data: dict[str, Any] | None
    digest: str


async def changes(
    connection: AsyncConnection,
    after: tuple[int, str] | None,
    limit: int,
    model_id: str | None = None,
    battery_id: str | None = None,
    manufacturer_id: str | None = None,
) -> list[Change]:
    """Return the passports changed after a (change_seq, id) position, in that order, at most `limit`."""
    query = select(
        passports.c.change_seq,
        passports.c.id,
        passports.c.version,
        passports.c.deleted_at,
        passports.c.data,
        passports.c.digest,
    )
    if connection.dialect.name == "postgresql":
        query = query.where(passports.c.change_seq < _SETTLED)  # nothing still in flight can land behind the cursor
    for column, value in (
        (passports.c.model_id, model_id),
        (passports.c.battery_id, battery_id),
        (passports.c.manufacturer_id, manufacturer_id),
    ):
        if value is not None:
            query = query.where(column == value)
    if after is not None:
        seq, last_id = after
        query = query.where(
            or_(passports.c.change_seq > seq, and_(passports.c.change_seq == seq, passports.c.id > last_id))
        )
    query = query.order_by(passports.c.change_seq, passports.c.id).limit(limit)
    return [
        Change(
            seq=int(r.change_seq),
            passport_id=r.id,
            version=int(r.version),
            deleted=r.deleted_at is not None,
            data=None if r.deleted_at is not None else dict(r.data),
            digest=r.digest,
        )
        for r in await connection.execute(query)
    ]
