"""The passports' change sequence: every commit that changes passports takes the next number, in commit order.

A writer takes the number by incrementing the "passport_changes" revision row at the end of its changes; on
PostgreSQL that row stays locked until the writer commits, so the next writer gets the next number only after
it: numbers are handed out in commit order, and a reader that sees number n has every change numbered below n
(docs/decisions/0015-change-sequence.md). SQLite has one writer at a time, so the same holds there trivially.
The feed reads passports by (change_seq, id), deleted ones included as tombstones.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import and_, bindparam, insert, or_, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from connector.store.tables import PASSPORT_CHANGES_REVISION, passports, revisions


async def next_change(connection: AsyncConnection) -> int:
    """Take the next change number (locking the counter until this transaction ends)."""
    value = await connection.scalar(
        update(revisions)
        .where(revisions.c.name == PASSPORT_CHANGES_REVISION)
        .values(value=revisions.c.value + 1)
        .returning(revisions.c.value)
    )
    if value is None:  # a database made without the migrations (0008 inserts the row)
        await connection.execute(insert(revisions).values(name=PASSPORT_CHANGES_REVISION, value=1))
        return 1
    return int(value)


async def stamp(connection: AsyncConnection, passport_ids: Sequence[str]) -> None:
    """Mark passports as changed by this transaction (call it in the transaction that changed them)."""
    if not passport_ids:
        return
    seq = await next_change(connection)
    await connection.execute(
        update(passports).where(passports.c.id.in_(bindparam("ids", expanding=True))).values(change_seq=seq),
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
