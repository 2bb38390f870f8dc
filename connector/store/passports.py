"""Stored battery passports: current versions, their history, and bulk-import checkpoints."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import and_, func, insert, or_, select, update
from sqlalchemy.engine import RowMapping
from sqlalchemy.ext.asyncio import AsyncConnection

from connector.store import changes
from connector.store.engine import encode_json
from connector.store.tables import passport_import_ids, passport_imports, passport_versions, passports


@dataclass(frozen=True, slots=True)
class PassportRecord:
    """One passport as the store keeps it: the node's JSON plus the columns queries filter on."""

    id: str
    battery_id: str
    model_id: str | None
    manufacturer_id: str | None
    category: str | None
    data: dict[str, Any]
    digest: str
    source_format: str
    version: int = 0
    created_at: int = 0
    updated_at: int = 0
    deleted_at: int | None = None


@dataclass(frozen=True, slots=True)
class PassportVersion:
    """One entry of a passport's history."""

    passport_id: str
    version: int
    data: dict[str, Any] | None
    digest: str
    source_format: str
    recorded_at: int
    deleted: bool


@dataclass(frozen=True, slots=True)
class PassportFilter:
    """What a listing asks for; every field narrows it. `after` is the (updated_at, id) keyset cursor."""

    battery_id: str | None = None
    model_id: str | None = None
    manufacturer_id: str | None = None
    category: str | None = None
    changed_since: int | None = None
    after: tuple[int, str] | None = None
    include_deleted: bool = False
    limit: int = 100


@dataclass(frozen=True, slots=True)
class Checkpoint:
    """How far an import from one source got, and what it counted up to there."""

    source: str
    position: int
    new: int
    changed: int
    unchanged: int
    refused: int


@dataclass(frozen=True, slots=True)
class TakenId:
    """A passport id an import under way has taken, and the record that took it."""

    passport_id: str
    position: int
    place: str


def _record(row: RowMapping) -> PassportRecord:
    return PassportRecord(
        id=row["id"],
        battery_id=row["battery_id"],
        model_id=row["model_id"],
        manufacturer_id=row["manufacturer_id"],
        category=row["category"],
        data=dict(row["data"]),
        digest=row["digest"],
        source_format=row["source_format"],
        version=int(row["version"]),
        created_at=int(row["created_at"]),
        updated_at=int(row["updated_at"]),
        deleted_at=int(row["deleted_at"]) if row["deleted_at"] is not None else None,
    )


class PassportRepository:
    """Passports and their versions; every write adds a version row in the same transaction."""

    def __init__(self, connection: AsyncConnection) -> None:
        self._c = connection

    async def get(self, passport_id: str, include_deleted: bool = False) -> PassportRecord | None:
        """Return the current version of a passport (None when absent or deleted, unless asked for)."""
        query = select(passports).where(passports.c.id == passport_id)
        if not include_deleted:
            query = query.where(passports.c.deleted_at.is_(None))
        row = (await self._c.execute(query)).mappings().first()
        return _record(row) if row is not None else None

    async def digests(self, ids: Sequence[str]) -> dict[str, tuple[str, int, bool]]:
        """Return {id: (digest, version, deleted)} for the ids that exist (deleted ones included)."""
        if not ids:
            return {}
        rows = await self._c.execute(
            select(passports.c.id, passports.c.digest, passports.c.version, passports.c.deleted_at).where(
                passports.c.id.in_(list(ids))
            )
        )
        return {r.id: (r.digest, int(r.version), r.deleted_at is not None) for r in rows}

    async def put_many(self, records: Sequence[PassportRecord], now: int) -> list[str]:
        """Store each record as a new version unless its content is unchanged; return each outcome.

        Outcomes: "created", "updated" (also for a deleted passport stored again) or "unchanged". Two records
        with the same id in one call are refused (ValueError): one of them would silently not be stored.
        """
        ids = [r.id for r in records]
        if len(set(ids)) != len(ids):
            repeated = sorted({i for i in ids if ids.count(i) > 1})
            raise ValueError(f"put_many got the same passport id more than once: {repeated[:3]}")
        existing = await self.digests(ids)
        outcomes: list[str] = []
        new_rows: list[dict[str, Any]] = []
        versions: list[dict[str, Any]] = []
        for record in records:
            found = existing.get(record.id)
            if found is not None and found[0] == record.digest and not found[2]:
                outcomes.append("unchanged")
                continue
            version = (found[1] if found else 0) + 1
            data = encode_json(record.data)  # once for both rows, not once per row
            columns = {
                "battery_id": record.battery_id,
                "model_id": record.model_id,
                "manufacturer_id": record.manufacturer_id,
                "category": record.category,
                "version": version,
                "data": data,
                "digest": record.digest,
                "source_format": record.source_format,
                "updated_at": now,
                "deleted_at": None,
            }
            if found is None:
                new_rows.append({"id": record.id, "created_at": now, **columns})
                outcomes.append("created")
            else:
                await self._c.execute(update(passports).where(passports.c.id == record.id).values(**columns))
                outcomes.append("updated")
            versions.append(
                {
                    "passport_id": record.id,
                    "version": version,
                    "data": data,
                    "digest": record.digest,
                    "source_format": record.source_format,
                    "recorded_at": now,
                    "deleted": False,
                }
            )
        if new_rows:
            await self._c.execute(insert(passports), new_rows)
        if versions:
            await self._c.execute(insert(passport_versions), versions)
            await changes.stamp(self._c, [v["passport_id"] for v in versions])  # the change feed's sequence
        return outcomes

    async def delete(self, passport_id: str, now: int) -> bool:
        """Mark a passport deleted (its history stays); return False when there is none to delete."""
        current = await self.get(passport_id)
        if current is None:
            return False
        version = current.version + 1
        await self._c.execute(
            update(passports)
            .where(passports.c.id == passport_id)
            .values(deleted_at=now, updated_at=now, version=version)
        )
        await self._c.execute(
            insert(passport_versions).values(
                passport_id=passport_id,
                version=version,
                data=None,
                digest=current.digest,
                source_format=current.source_format,
                recorded_at=now,
                deleted=True,
            )
        )
        await changes.stamp(self._c, [passport_id])  # the change feed's sequence
        return True

    async def history(self, passport_id: str) -> list[PassportVersion]:
        """Return every version of a passport, oldest first."""
        rows = await self._c.execute(
            select(passport_versions)
            .where(passport_versions.c.passport_id == passport_id)
            .order_by(passport_versions.c.version)
        )
        return [
            PassportVersion(
                passport_id=r["passport_id"],
                version=int(r["version"]),
                data=dict(r["data"]) if r["data"] is not None else None,
                digest=r["digest"],
                source_format=r["source_format"],
                recorded_at=int(r["recorded_at"]),
                deleted=bool(r["deleted"]),
            )
            for r in rows.mappings()
        ]

    async def page(self, spec: PassportFilter) -> list[PassportRecord]:
        """Return passports matching a filter in (updated_at, id) order, at most `spec.limit`."""
        query = select(passports)
        if not spec.include_deleted:
            query = query.where(passports.c.deleted_at.is_(None))
        for column, value in (
            (passports.c.battery_id, spec.battery_id),
            (passports.c.model_id, spec.model_id),
            (passports.c.manufacturer_id, spec.manufacturer_id),
            (passports.c.category, spec.category),
        ):
            if value is not None:
                query = query.where(column == value)
        if spec.changed_since is not None:
            query = query.where(passports.c.updated_at > spec.changed_since)
        if spec.after is not None:
            at, last_id = spec.after
            query = query.where(
                or_(passports.c.updated_at > at, and_(passports.c.updated_at == at, passports.c.id > last_id))
            )
        query = query.order_by(passports.c.updated_at, passports.c.id).limit(spec.limit)
        return [_record(r) for r in (await self._c.execute(query)).mappings()]

    async def model_ids(self) -> list[str]:
        """Return the battery models of the stored passports."""
        rows = await self._c.execute(
            select(passports.c.model_id)
            .where(passports.c.deleted_at.is_(None), passports.c.model_id.is_not(None))
            .distinct()
            .order_by(passports.c.model_id)
        )
        return [r.model_id for r in rows]

    async def count(self, include_deleted: bool = False) -> int:
        """Return how many passports are stored."""
        query = select(func.count()).select_from(passports)
        if not include_deleted:
            query = query.where(passports.c.deleted_at.is_(None))
        return int((await self._c.execute(query)).scalar_one())

    async def checkpoint(self, source: str) -> Checkpoint | None:
        """Return how far an import from `source` got, if it was interrupted."""
        row = (
            (await self._c.execute(select(passport_imports).where(passport_imports.c.source == source)))
            .mappings()
            .first()
        )
        if row is None:
            return None
        return Checkpoint(
            row["source"],
            int(row["position"]),
            int(row["new"]),
            int(row["changed"]),
            int(row["unchanged"]),
            int(row["refused"]),
        )

    async def save_checkpoint(self, checkpoint: Checkpoint, now: int) -> None:
        """Record how far an import got (in the same transaction as the records it stored)."""
        values = {
            "position": checkpoint.position,
            "new": checkpoint.new,
            "changed": checkpoint.changed,
            "unchanged": checkpoint.unchanged,
            "refused": checkpoint.refused,
            "updated_at": now,
        }
        done = await self._c.execute(
            update(passport_imports).where(passport_imports.c.source == checkpoint.source).values(**values)
        )
        if done.rowcount == 0:
            await self._c.execute(insert(passport_imports).values(source=checkpoint.source, **values))

    async def forget_checkpoint(self, source: str) -> None:
        """Drop an import's checkpoint and the ids it had taken, once it finished or is started over."""
        await self._c.execute(passport_imports.delete().where(passport_imports.c.source == source))
        await self._c.execute(passport_import_ids.delete().where(passport_import_ids.c.source == source))

    async def taken_ids(self, source: str, passport_ids: Sequence[str]) -> dict[str, TakenId]:
        """Return which of `passport_ids` the import from `source` has taken already, and by which record."""
        if not passport_ids:
            return {}
        rows = await self._c.execute(
            select(passport_import_ids).where(
                passport_import_ids.c.source == source, passport_import_ids.c.passport_id.in_(list(passport_ids))
            )
        )
        return {r.passport_id: TakenId(r.passport_id, int(r.position), r.place) for r in rows}

    async def take_ids(self, source: str, taken: Sequence[TakenId]) -> None:
        """Record the ids the import from `source` has taken (in the transaction that stores their records)."""
        if taken:
            await self._c.execute(
                insert(passport_import_ids),
                [
                    {"source": source, "passport_id": t.passport_id, "position": t.position, "place": t.place}
                    for t in taken
                ],
            )
