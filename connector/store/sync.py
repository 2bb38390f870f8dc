"""Sync jobs, their runs, cursors and the partners' passports they keep (docs/sync.md)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import bindparam, delete, insert, or_, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.engine import RowMapping
from sqlalchemy.ext.asyncio import AsyncConnection

from connector.domain.assets import Criterion
from connector.domain.sync import Destination, JobState, RunState, SyncJob, SyncRun
from connector.store.repositories import bump_revision, read_revision
from connector.store.sealing import PLAIN, Sealer
from connector.store.tables import SYNC_JOBS_REVISION, sync_cursors, sync_jobs, sync_runs, synced_passports


@dataclass(frozen=True, slots=True)
class SyncedPassport:
    """A partner's passport as a job last read it, with its source."""

    job_id: str
    passport_id: str
    partner_id: str
    dataset_id: str
    access_level: str
    partner_version: int
    digest: str
    data: dict[str, Any] | None
    deleted: bool
    synced_at: int


@dataclass(frozen=True, slots=True)
class Cursor:
    """How far a job got in one dataset, and the transfer it reads the dataset through."""

    dataset_id: str
    position: str | None
    transfer_id: str | None


def _job(row: RowMapping, sealer: Sealer) -> SyncJob:
    dest = dict(row["destination"])
    headers = {k: sealer.open(v, f"sync/{row['id']}/headers/{k}") for k, v in (dest.get("headers") or {}).items()}
    return SyncJob(
        id=row["id"],
        partner_address=row["partner_address"],
        partner_id=row["partner_id"],
        datasets=tuple(row["datasets"]),
        dataset_filter=tuple(
            Criterion(c["operandLeft"], c["operator"], c["operandRight"]) for c in row["dataset_filter"]
        ),
        schedule=row["schedule"],
        time_zone=row["time_zone"],
        destination=Destination(dest.get("type", "store"), dest.get("path"), dest.get("url"), headers),
        state=JobState(row["state"]),
        created_at=int(row["created_at"]),
        updated_at=int(row["updated_at"]),
        mode=row["mode"],
    )


def _job_row(job: SyncJob, sealer: Sealer) -> dict[str, Any]:
    dest = job.destination.as_json(shown=False)
    if job.destination.headers:
        dest["headers"] = {k: sealer.seal(v, f"sync/{job.id}/headers/{k}") for k, v in job.destination.headers.items()}
    return {
        "partner_address": job.partner_address,
        "partner_id": job.partner_id,
        "datasets": list(job.datasets),
        "dataset_filter": [
            {"operandLeft": c.operand_left, "operator": c.operator, "operandRight": c.operand_right}
            for c in job.dataset_filter
        ],
        "schedule": job.schedule,
        "time_zone": job.time_zone,
        "destination": dest,
        "state": job.state.value,
        "mode": job.mode,
        "updated_at": job.updated_at,
    }


def _run(row: RowMapping) -> SyncRun:
    return SyncRun(
        id=row["id"],
        job_id=row["job_id"],
        run_key=row["run_key"],
        state=RunState(row["state"]),
        started_at=int(row["started_at"]),
        ended_at=int(row["ended_at"]) if row["ended_at"] is not None else None,
        new=int(row["new"]),
        changed=int(row["changed"]),
        unchanged=int(row["unchanged"]),
        removed=int(row["removed"]),
        refused=int(row["refused"]),
        refusals=tuple(row["refusals"]),
        bytes=int(row["bytes"]),
        error=row["error"],
        seconds=dict(row["seconds"]),
    )


class SyncRepository:
    """Jobs, runs, cursors and synced passports."""

    def __init__(self, connection: AsyncConnection, sealer: Sealer = PLAIN) -> None:
        self._c = connection
        self._sealer = sealer

    # Jobs.

    async def add_job(self, job: SyncJob) -> bool:
        """Store a new job; return False when its id is taken."""
        if await self._c.scalar(select(sync_jobs.c.id).where(sync_jobs.c.id == job.id)) is not None:
            return False
        await self._c.execute(
            insert(sync_jobs).values(id=job.id, created_at=job.created_at, **_job_row(job, self._sealer))
        )
        await bump_revision(self._c, SYNC_JOBS_REVISION)
        return True

    async def save_job(self, job: SyncJob) -> bool:
        """Replace a job's settings; return False when there is no such job."""
        done = await self._c.execute(
            update(sync_jobs).where(sync_jobs.c.id == job.id).values(**_job_row(job, self._sealer))
        )
        await bump_revision(self._c, SYNC_JOBS_REVISION)
        return bool(done.rowcount)

    async def delete_job(self, job_id: str) -> bool:
        """Delete a job with its runs, cursors and synced passports; return False when there is none."""
        for table in (synced_passports, sync_cursors, sync_runs):
            await self._c.execute(delete(table).where(table.c.job_id == job_id))
        done = await self._c.execute(delete(sync_jobs).where(sync_jobs.c.id == job_id))
        await bump_revision(self._c, SYNC_JOBS_REVISION)
        return bool(done.rowcount)

    async def get_job(self, job_id: str) -> SyncJob | None:
        """Return one job."""
        row = (await self._c.execute(select(sync_jobs).where(sync_jobs.c.id == job_id))).mappings().first()
        return _job(row, self._sealer) if row is not None else None

    async def jobs(self, limit: int = 1000, offset: int = 0) -> list[SyncJob]:
        """Return jobs by id."""
        rows = await self._c.execute(select(sync_jobs).order_by(sync_jobs.c.id).limit(limit).offset(offset))
        return [_job(r, self._sealer) for r in rows.mappings()]

    async def jobs_revision(self) -> int:
        """Return the counter bumped by every change of a job (what the scheduler polls)."""
        return await read_revision(self._c, SYNC_JOBS_REVISION)

    async def lease(self, job_id: str, owner: str, now: int, until: int, renew: bool = False) -> bool:
        """Take a job's lease (free or run out), or with `renew` extend one `owner` holds; False when that fails.

        Taking it never succeeds while it is held, by this owner too: a node's second run of a job waits as well.
        """
        held = sync_jobs.c.lease_owner == owner
        free = or_(sync_jobs.c.lease_owner.is_(None), sync_jobs.c.lease_until < now)
        done = await self._c.execute(
            update(sync_jobs)
            .where(sync_jobs.c.id == job_id, held if renew else free)
            .values(lease_owner=owner, lease_until=until)
        )
        return bool(done.rowcount)

    async def release(self, job_id: str, owner: str) -> None:
        """Give a job's lease back."""
        await self._c.execute(
            update(sync_jobs)
            .where(sync_jobs.c.id == job_id, sync_jobs.c.lease_owner == owner)
            .values(lease_owner=None, lease_until=None)
        )

    # Runs.

    async def add_run(self, run: SyncRun) -> bool:
        """Record a run; return False when the job has a run with that key already (another replica's)."""
        values: dict[str, Any] = {
            "id": run.id,
            "job_id": run.job_id,
            "run_key": run.run_key,
            "state": run.state.value,
            "started_at": run.started_at,
            "ended_at": run.ended_at,
            "new": 0,
            "changed": 0,
            "unchanged": 0,
            "removed": 0,
            "refused": 0,
            "refusals": [],
            "bytes": 0,
            "error": run.error,
            "seconds": dict(run.seconds),
        }
        dialect = pg_insert if self._c.dialect.name == "postgresql" else sqlite_insert
        statement = dialect(sync_runs).values(**values).on_conflict_do_nothing(index_elements=["job_id", "run_key"])
        done = await self._c.execute(statement)
        return bool(done.rowcount)

    async def save_run(self, run: SyncRun) -> None:
        """Write a run's state and counts."""
        await self._c.execute(
            update(sync_runs)
            .where(sync_runs.c.id == run.id)
            .values(
                state=run.state.value,
                ended_at=run.ended_at,
                new=run.new,
                changed=run.changed,
                unchanged=run.unchanged,
                removed=run.removed,
                refused=run.refused,
                refusals=list(run.refusals),
                bytes=run.bytes,
                error=run.error,
                seconds=dict(run.seconds),
            )
        )

    async def get_run(self, run_id: str) -> SyncRun | None:
        """Return one run."""
        row = (await self._c.execute(select(sync_runs).where(sync_runs.c.id == run_id))).mappings().first()
        return _run(row) if row is not None else None

    async def runs(self, job_id: str, limit: int = 50, offset: int = 0) -> list[SyncRun]:
        """Return a job's runs, newest first."""
        rows = await self._c.execute(
            select(sync_runs)
            .where(sync_runs.c.job_id == job_id)
            .order_by(sync_runs.c.started_at.desc(), sync_runs.c.id.desc())
            .limit(limit)
            .offset(offset)
        )
        return [_run(r) for r in rows.mappings()]

    async def running(self, job_id: str) -> list[SyncRun]:
        """Return a job's runs still marked RUNNING."""
        rows = await self._c.execute(
            select(sync_runs).where(sync_runs.c.job_id == job_id, sync_runs.c.state == RunState.RUNNING.value)
        )
        return [_run(r) for r in rows.mappings()]

    # Cursors.

    async def cursors(self, job_id: str) -> dict[str, Cursor]:
        """Return a job's cursor per dataset."""
        rows = await self._c.execute(select(sync_cursors).where(sync_cursors.c.job_id == job_id))
        return {r.dataset_id: Cursor(r.dataset_id, r.position, r.transfer_id) for r in rows}

    async def save_cursor(self, job_id: str, cursor: Cursor, now: int) -> None:
        """Record how far a job got in a dataset (in the transaction that stored what it read up to there)."""
        values = {"position": cursor.position, "transfer_id": cursor.transfer_id, "updated_at": now}
        done = await self._c.execute(
            update(sync_cursors)
            .where(sync_cursors.c.job_id == job_id, sync_cursors.c.dataset_id == cursor.dataset_id)
            .values(**values)
        )
        if not done.rowcount:
            await self._c.execute(insert(sync_cursors).values(job_id=job_id, dataset_id=cursor.dataset_id, **values))

    # Synced passports.

    async def known(self, job_id: str, passport_ids: Sequence[str]) -> dict[str, tuple[str, bool]]:
        """Return {passport id: (digest, deleted)} of the passports a job holds among `passport_ids`."""
        if not passport_ids:
            return {}
        rows = await self._c.execute(
            select(synced_passports.c.passport_id, synced_passports.c.digest, synced_passports.c.deleted).where(
                synced_passports.c.job_id == job_id,
                synced_passports.c.passport_id.in_(bindparam("ids", expanding=True)),
            ),
            {"ids": list(passport_ids)},
        )
        return {r.passport_id: (r.digest, bool(r.deleted)) for r in rows}

    async def holding(self, partner_id: str, passport_ids: Sequence[str]) -> list[str]:
        """Return the ids of the jobs holding a copy (not deleted) of any of `passport_ids` from `partner_id`."""
        if not passport_ids:
            return []
        rows = await self._c.execute(
            select(synced_passports.c.job_id)
            .where(
                synced_passports.c.passport_id.in_(bindparam("ids", expanding=True)),
                synced_passports.c.partner_id == partner_id,
                synced_passports.c.deleted.is_(False),
            )
            .distinct()
            .order_by(synced_passports.c.job_id),
            {"ids": list(passport_ids)},
        )
        return [r.job_id for r in rows]

    async def put_synced(self, items: Sequence[SyncedPassport], existing: set[str]) -> None:
        """Store synced passports (`existing`: the ids the job holds already, updated in place)."""
        fresh = [i for i in items if i.passport_id not in existing]
        if fresh:
            await self._c.execute(insert(synced_passports), [_synced_row(i) for i in fresh])
        held = [_synced_row(i) for i in items if i.passport_id in existing]
        if held:
            # One statement for the page (executemany), not one round trip per passport.
            statement = (
                update(synced_passports)
                .where(
                    synced_passports.c.job_id == bindparam("key_job"),
                    synced_passports.c.passport_id == bindparam("key_passport"),
                )
                .values({name: bindparam(name) for name in _UPDATED})
            )
            await self._c.execute(
                statement,
                [
                    {"key_job": r["job_id"], "key_passport": r["passport_id"], **{n: r[n] for n in _UPDATED}}
                    for r in held
                ],
            )

    async def synced(
        self, job_id: str, limit: int = 100, after: str = "", include_deleted: bool = False
    ) -> list[SyncedPassport]:
        """Return a job's synced passports by id, after `after`."""
        query = select(synced_passports).where(
            synced_passports.c.job_id == job_id, synced_passports.c.passport_id > after
        )
        if not include_deleted:
            query = query.where(synced_passports.c.deleted.is_(False))
        rows = await self._c.execute(query.order_by(synced_passports.c.passport_id).limit(limit))
        return [
            SyncedPassport(
                job_id=r["job_id"],
                passport_id=r["passport_id"],
                partner_id=r["partner_id"],
                dataset_id=r["dataset_id"],
                access_level=r["access_level"],
                partner_version=int(r["partner_version"]),
                digest=r["digest"],
                data=dict(r["data"]) if r["data"] is not None else None,
                deleted=bool(r["deleted"]),
                synced_at=int(r["synced_at"]),
            )
            for r in rows.mappings()
        ]

    async def synced_views(
        self, after: tuple[str, str] | None, limit: int = 2000
    ) -> list[tuple[str, str, str, dict[str, Any]]]:
        """Return (passport id, job id, partner id, data) of every job's live copies, by (passport id, job id)."""
        query = select(
            synced_passports.c.passport_id,
            synced_passports.c.job_id,
            synced_passports.c.partner_id,
            synced_passports.c.data,
        ).where(synced_passports.c.deleted.is_(False), synced_passports.c.data.is_not(None))
        if after is not None:
            query = query.where(
                or_(
                    synced_passports.c.passport_id > after[0],
                    (synced_passports.c.passport_id == after[0]) & (synced_passports.c.job_id > after[1]),
                )
            )
        rows = await self._c.execute(
            query.order_by(synced_passports.c.passport_id, synced_passports.c.job_id).limit(limit)
        )
        return [(r.passport_id, r.job_id, r.partner_id, r.data) for r in rows if isinstance(r.data, dict)]


_UPDATED = ("partner_id", "dataset_id", "access_level", "partner_version", "digest", "data", "deleted", "synced_at")


def _synced_row(item: SyncedPassport) -> dict[str, Any]:
    return {
        "job_id": item.job_id,
        "passport_id": item.passport_id,
        "partner_id": item.partner_id,
        "dataset_id": item.dataset_id,
        "access_level": item.access_level,
        "partner_version": item.partner_version,
        "digest": item.digest,
        "data": item.data,
        "deleted": item.deleted,
        "synced_at": item.synced_at,
    }
