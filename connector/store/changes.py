"""The passports' change sequence: a number per commit, handed out in commit order, so no commit lands behind a cursor.

A writer notes the passports it changed (`stamp`, in the writer's transaction); when that transaction commits, the
store takes the next number of the "passport_changes" counter and writes it into `passports.change_seq` of each
(`seal`, the last statements before the commit). The counter's row stays locked from that increment until the
commit right after it, so the next writer gets the next number only once this one committed: a reader that sees
number n sees every change numbered below it (docs/decisions/0017-change-sequence.md). Writers wait for each other
only for that last step, never while their transactions are open. The feed reads passports by (change_seq, id),
deleted ones included as tombstones.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import and_, bindparam, insert, or_, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from connector.store.tables import PASSPORT_CHANGES_REVISION, passport_versions, passports, revisions

_PENDING = "passport_changes_pending"  # in the connection's info: the passport ids this transaction changed
# `seal`'s update on SQLite, as SQLAlchemy writes it, its list of ids' parameters put in by `seal`.
_SQLITE_SEAL = "UPDATE passports SET change_seq = ? WHERE passports.id IN ({})"


async def next_change(connection: AsyncConnection) -> int:
    """Take the next number of the counter (its row locked until this transaction ends)."""
    value = await connection.scalar(
        update(revisions)
        .where(revisions.c.name == PASSPORT_CHANGES_REVISION)
        .values(value=revisions.c.value + 1)
        .returning(revisions.c.value)
    )
    if value is None:  # a database made without the migrations (0012 inserts the row)
        await connection.execute(insert(revisions).values(name=PASSPORT_CHANGES_REVISION, value=1))
        return 1
    return int(value)


async def stamp(connection: AsyncConnection, passport_ids: Iterable[str]) -> None:
    """Note passports this transaction changed; their number is written when it commits (`seal`)."""
    connection.info.setdefault(_PENDING, set()).update(passport_ids)


async def seal(connection: AsyncConnection) -> None:
    """Give the passports this transaction changed the next number (call it right before the commit)."""
    ids = connection.info.pop(_PENDING, None)
    if not ids:
        return
    seq = await next_change(connection)
    if connection.dialect.name == "sqlite":
        # The statement SQLAlchemy writes, with the ids' parameters put in once (it renders a bulk import's
        # 500 of them again at every execution, which cost more than the update).
        await connection.exec_driver_sql(_SQLITE_SEAL.format(", ".join("?" * len(ids))), (seq, *sorted(ids)))
        return
    await connection.execute(
        update(passports).where(passports.c.id.in_(bindparam("ids", expanding=True))).values(change_seq=seq),
        {"ids": sorted(ids)},
    )


def forget(connection: AsyncConnection) -> None:
    """Drop what a transaction noted (it rolled back; the pooled connection is used again).

    It never raises: on a connection a cancellation left invalid, reading its info does, and that error would
    replace the cancellation (a loop being stopped would go on). Such a connection is discarded with its info.
    """
    with contextlib.suppress(Exception):
        connection.info.pop(_PENDING, None)


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
        passport_versions.c.data,
        passports.c.digest,
    ).select_from(
        # The data-once layout: a passport's current data is its version `data_version`'s (store/passports.py).
        passports.outerjoin(
            passport_versions,
            and_(
                passport_versions.c.passport_id == passports.c.id,
                passport_versions.c.version == passports.c.data_version,
            ),
        )
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
            data=None if r.deleted_at is not None or r.data is None else dict(r.data),
            digest=r.digest,
        )
        for r in await connection.execute(query)
    ]
