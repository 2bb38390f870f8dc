"""Stored battery passports: current versions, their history, and bulk-import checkpoints."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import orjson
from sqlalchemy import and_, bindparam, func, insert, or_, select, update
from sqlalchemy.engine import RowMapping
from sqlalchemy.ext.asyncio import AsyncConnection

from connector.domain.passport_digest import DIGEST_SCHEME, digest_of
from connector.store import changes as change_feed
from connector.store.engine import EncodedJSON, encode_json
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
class PassportWrite:
    """A passport to store with its node JSON encoded already: what a bulk import's worker process hands
    over (`services.passports.write_of_reading`), so the storing process neither decodes nor encodes the data again."""

    id: str
    battery_id: str
    model_id: str | None
    manufacturer_id: str | None
    category: str | None
    data: EncodedJSON
    digest: str
    source_format: str


# The digest's scheme (DIGEST_SCHEME, digest_of) is in connector.domain.passport_digest, which a bulk import's
# worker processes import without the store.


def digest(data: Any) -> str:
    """Return the content digest of a passport's node JSON (see DIGEST_SCHEME)."""
    return digest_of(orjson.dumps(data))


def sorted_digest(data: Any) -> str:
    """Return the digest of the former scheme: SHA-256 (hexadecimal) of the sorted-key encoding."""
    return hashlib.sha256(orjson.dumps(data, option=orjson.OPT_SORT_KEYS)).hexdigest()


def same_content(stored: str, record: PassportRecord | PassportWrite) -> bool:
    """Tell whether a stored digest is that of a record's content (a stored digest of the former scheme
    is compared with the record's digest in that scheme, computed only then)."""
    if stored == record.digest or stored.startswith(DIGEST_SCHEME):
        return stored == record.digest
    data = orjson.loads(record.data.text) if isinstance(record, PassportWrite) else record.data
    return stored == sorted_digest(data)


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
    changed_by: str | None = None  # who recorded it (docs/lifecycle.md); None for versions stored before
    changes: list[str] | None = None  # what it changed, one line per field


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


# A current row with its data, read from the version row that holds it.
_CURRENT = select(*passports.c, passport_versions.c.data).select_from(
    passports.join(
        passport_versions,
        and_(
            passport_versions.c.passport_id == passports.c.id, passport_versions.c.version == passports.c.data_version
        ),
    )
)


def _current_columns(record: PassportRecord | PassportWrite, version: int, now: int) -> dict[str, Any]:
    """Return a current row's columns for a record stored as `version` (its data is in the version row)."""
    return {
        "battery_id": record.battery_id,
        "model_id": record.model_id,
        "manufacturer_id": record.manufacturer_id,
        "category": record.category,
        "version": version,
        "data_version": version,
        "digest": record.digest,
        "source_format": record.source_format,
        "updated_at": now,
        "deleted_at": None,
    }


def _columns(record: PassportRecord | PassportWrite) -> tuple[str, str | None, str | None, str | None]:
    return record.battery_id, record.model_id, record.manufacturer_id, record.category


def _json_text(record: PassportRecord | PassportWrite) -> str:
    return record.data.text if isinstance(record, PassportWrite) else encode_json(record.data).text


# put_many's statements on SQLite, as SQLAlchemy would write them for the tables (tables.py).
_SQLITE_INSERT_CURRENT = (
    "INSERT INTO passports (id, battery_id, model_id, manufacturer_id, category, version, data_version, digest,"
    " source_format, created_at, updated_at, deleted_at) VALUES (?, ?, ?, ?, ?, 1, 1, ?, ?, ?, ?, NULL)"
)
_SQLITE_UPDATE_CURRENT = (
    "UPDATE passports SET battery_id = ?, model_id = ?, manufacturer_id = ?, category = ?, version = ?,"
    " data_version = ?, digest = ?, source_format = ?, updated_at = ?, deleted_at = NULL WHERE id = ?"
)
_SQLITE_INSERT_VERSION = (
    "INSERT INTO passport_versions (passport_id, version, data, digest, source_format, recorded_at, deleted)"
    " VALUES (?, ?, ?, ?, ?, ?, 0)"
)

# A bulk import's lookups of a batch's ids on SQLite, written out as SQLAlchemy writes them (an IN list of one
# parameter an id): SQLAlchemy renders the list's parameters again at every execution, which cost more than the
# lookup. `_sqlite_in` puts in the list of `n` parameters.
_SQLITE_DIGESTS = "SELECT id, digest, version, deleted_at FROM passports WHERE id IN ({})"
_SQLITE_TAKEN = "SELECT passport_id, position, place FROM passport_import_ids WHERE source = ? AND passport_id IN ({})"


def _sqlite_in(statement: str, n: int) -> str:
    return statement.format(", ".join("?" * n))


class PassportRepository:
    """Passports and their versions; every write adds a version row in the same transaction, which holds the
    version's data (the current row points at it: the data is written once)."""

    def __init__(self, connection: AsyncConnection) -> None:
        self._c = connection

    async def get(self, passport_id: str, include_deleted: bool = False) -> PassportRecord | None:
        """Return the current version of a passport (None when absent or deleted, unless asked for)."""
        query = _CURRENT.where(passports.c.id == passport_id)
        if not include_deleted:
            query = query.where(passports.c.deleted_at.is_(None))
        row = (await self._c.execute(query)).mappings().first()
        return _record(row) if row is not None else None

    async def digests(self, ids: Sequence[str]) -> dict[str, tuple[str, int, bool]]:
        """Return {id: (digest, version, deleted)} for the ids that exist (deleted ones included)."""
        if not ids:
            return {}
        if self._c.dialect.name == "sqlite":
            found = await self._c.exec_driver_sql(_sqlite_in(_SQLITE_DIGESTS, len(ids)), tuple(ids))
            return {r["id"]: (r["digest"], int(r["version"]), r["deleted_at"] is not None) for r in found.mappings()}
        rows = await self._c.execute(
            select(passports.c.id, passports.c.digest, passports.c.version, passports.c.deleted_at).where(
                passports.c.id.in_(list(ids))
            )
        )
        return {r.id: (r.digest, int(r.version), r.deleted_at is not None) for r in rows}

    async def put_many(
        self,
        records: Sequence[PassportRecord | PassportWrite],
        now: int,
        changed_by: str | None = None,
        changes: Sequence[str] | None = None,
    ) -> list[str]:
        """Store each record as a new version unless its content is unchanged; return each outcome.

        `changed_by` and `changes` (who recorded the versions, what they change: docs/lifecycle.md) go on every
        version stored; a bulk import gives neither, and its path is untouched by them.

        Outcomes: "created", "updated" (also for a deleted passport stored again) or "unchanged". Two records
        with the same id in one call are refused (ValueError): one of them would silently not be stored.
        """
        ids = [r.id for r in records]
        if len(set(ids)) != len(ids):
            repeated = sorted({i for i in ids if ids.count(i) > 1})
            raise ValueError(f"put_many got the same passport id more than once: {repeated[:3]}")
        existing = await self.digests(ids)
        outcomes: list[str] = []
        created: list[PassportRecord | PassportWrite] = []
        updated: list[tuple[PassportRecord | PassportWrite, int]] = []
        versions: list[tuple[PassportRecord | PassportWrite, int]] = []
        for record in records:
            found = existing.get(record.id)
            if found is not None and not found[2] and same_content(found[0], record):
                outcomes.append("unchanged")
                continue
            version = (found[1] if found else 0) + 1
            if found is None:
                created.append(record)
                outcomes.append("created")
            else:
                updated.append((record, version))
                outcomes.append("updated")
            versions.append((record, version))
        if self._c.dialect.name == "sqlite":
            await self._put_sqlite(created, updated, versions, now)
            if versions:
                await change_feed.stamp(self._c, [r.id for r, _ in versions])  # the change feed's sequence
            await self._attribute(versions, changed_by, changes)
            return outcomes
        # Stored once, in the version row (a PassportWrite comes encoded).
        if created:
            await self._c.execute(
                insert(passports),
                [{"id": r.id, "created_at": now, **_current_columns(r, 1, now)} for r in created],
            )
        if updated:
            await self._c.execute(
                update(passports).where(passports.c.id == bindparam("_id")),
                [{"_id": r.id, **_current_columns(r, version, now)} for r, version in updated],
            )
        if versions:
            await self._c.execute(
                insert(passport_versions),
                [
                    {
                        "passport_id": r.id,
                        "version": version,
                        "data": r.data if isinstance(r, PassportWrite) else encode_json(r.data),
                        "digest": r.digest,
                        "source_format": r.source_format,
                        "recorded_at": now,
                        "deleted": False,
                    }
                    for r, version in versions
                ],
            )
        if versions:
            await change_feed.stamp(self._c, [r.id for r, _ in versions])  # the change feed's sequence
        await self._attribute(versions, changed_by, changes)
        return outcomes

    async def _attribute(
        self,
        versions: list[tuple[PassportRecord | PassportWrite, int]],
        changed_by: str | None,
        changes: Sequence[str] | None,
    ) -> None:
        """Record who stored versions and what they changed (a lifecycle write: one or a few rows)."""
        if changed_by is None and changes is None:
            return
        for record, version in versions:
            await self._c.execute(
                update(passport_versions)
                .where(passport_versions.c.passport_id == record.id, passport_versions.c.version == version)
                .values(changed_by=changed_by, changes=list(changes) if changes is not None else None)
            )

    async def _put_sqlite(
        self,
        created: list[PassportRecord | PassportWrite],
        updated: list[tuple[PassportRecord | PassportWrite, int]],
        versions: list[tuple[PassportRecord | PassportWrite, int]],
        now: int,
    ) -> None:
        """Write a batch on SQLite as one executemany per statement, its rows as plain tuples: SQLAlchemy's
        per-row parameter processing was a third of storing a passport (the statements are the same)."""
        if created:
            await self._c.exec_driver_sql(
                _SQLITE_INSERT_CURRENT,
                [
                    (r.id, r.battery_id, r.model_id, r.manufacturer_id, r.category, r.digest, r.source_format, now, now)
                    for r in created
                ],
            )
        if updated:
            await self._c.exec_driver_sql(
                _SQLITE_UPDATE_CURRENT,
                [(*_columns(r), n, n, r.digest, r.source_format, now, r.id) for r, n in updated],
            )
        if versions:
            await self._c.exec_driver_sql(
                _SQLITE_INSERT_VERSION,
                [(r.id, v, _json_text(r), r.digest, r.source_format, now) for r, v in versions],
            )

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
        await change_feed.stamp(self._c, [passport_id])  # the change feed's sequence
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
                changed_by=r["changed_by"],
                changes=list(r["changes"]) if r["changes"] is not None else None,
            )
            for r in rows.mappings()
        ]

    async def page(self, spec: PassportFilter) -> list[PassportRecord]:
        """Return passports matching a filter in (updated_at, id) order, at most `spec.limit`."""
        query = _CURRENT
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

    async def model_facts(self, model_id: str) -> tuple[str | None, str | None]:
        """Return the category and chemistry of one current passport of a model (what its datasets announce)."""
        rows = await self._c.execute(
            _CURRENT.with_only_columns(passports.c.category, passport_versions.c.data)
            .where(passports.c.model_id == model_id, passports.c.deleted_at.is_(None))
            .order_by(passports.c.id)
            .limit(1)
        )
        row = rows.first()
        if row is None:
            return None, None
        identity = row.data.get("identity") if isinstance(row.data, dict) else None
        chemistry = identity.get("chemistry") if isinstance(identity, dict) else None
        return row.category, chemistry if isinstance(chemistry, str) else None

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
        if self._c.dialect.name == "sqlite":
            found = await self._c.exec_driver_sql(_sqlite_in(_SQLITE_TAKEN, len(passport_ids)), (source, *passport_ids))
            return {
                r["passport_id"]: TakenId(r["passport_id"], int(r["position"]), r["place"]) for r in found.mappings()
            }
        rows = await self._c.execute(
            select(passport_import_ids).where(
                passport_import_ids.c.source == source, passport_import_ids.c.passport_id.in_(list(passport_ids))
            )
        )
        return {r.passport_id: TakenId(r.passport_id, int(r.position), r.place) for r in rows}

    async def take_ids(self, source: str, taken: Sequence[TakenId]) -> None:
        """Record the ids the import from `source` has taken (in the transaction that stores their records)."""
        if taken and self._c.dialect.name == "sqlite":
            await self._c.exec_driver_sql(
                "INSERT INTO passport_import_ids (source, passport_id, position, place) VALUES (?, ?, ?, ?)",
                [(source, t.passport_id, t.position, t.place) for t in taken],
            )
        elif taken:
            await self._c.execute(
                insert(passport_import_ids),
                [
                    {"source": source, "passport_id": t.passport_id, "position": t.position, "place": t.place}
                    for t in taken
                ],
            )
