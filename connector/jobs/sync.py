"""The sync scheduler: APScheduler 3.11 fires each active job's schedule; the jobs table says what to schedule.

An idle node reads one counter (the "sync_jobs" revision) every CONNECTOR_SYNC_POLL_SECONDS (at least 1 s) and
reloads the jobs only when it changed, so a job created, changed, paused or deleted on any replica is scheduled
everywhere within one poll. Every replica fires every period; a run records the period's key (the fire time
in UTC) under a unique index with the job's lease, so exactly one replica runs each period and runs of one job
never overlap. Interval schedules start at the job's creation time, so all replicas agree on the periods.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from apscheduler.events import EVENT_JOB_SUBMITTED, JobSubmissionEvent
from apscheduler.schedulers.asyncio import AsyncIOScheduler
from apscheduler.triggers.base import BaseTrigger
from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.interval import IntervalTrigger

from connector.domain.sync import JobState, SyncJob, interval_seconds
from connector.jobs.periodic import Periodic
from connector.services.sync import SyncService
from connector.store import Store

log = logging.getLogger("connector.sync")


def _zone(time_zone: str) -> ZoneInfo:
    try:
        return ZoneInfo(time_zone)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"time zone {time_zone!r} is unknown (use an IANA name such as Europe/Berlin)") from None


def trigger(schedule: str, time_zone: str, start: datetime | None = None) -> BaseTrigger:
    """Return the trigger of a schedule: an ISO 8601 interval (PT15M) or a five-field cron expression."""
    zone = _zone(time_zone)
    seconds = interval_seconds(schedule)
    if seconds is not None:
        if seconds <= 0:
            raise ValueError("an interval must be longer than zero")
        return IntervalTrigger(seconds=seconds, start_date=start or datetime(2000, 1, 1, tzinfo=UTC), timezone=zone)
    if len(schedule.split()) != 5:
        raise ValueError("a schedule is an ISO 8601 interval (PT15M) or a cron expression of five fields")
    try:
        return CronTrigger.from_crontab(schedule, timezone=zone)
    except ValueError as exc:
        raise ValueError(f"the cron expression is not valid: {exc}") from None


def check_schedule(schedule: str, time_zone: str) -> None:
    """Raise ValueError naming the problem when a schedule or its time zone cannot be used."""
    trigger(schedule, time_zone)


def run_key(fire_time: datetime) -> str:
    """Return the key of a schedule's period: its fire time in UTC, to the millisecond."""
    return fire_time.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


async def _noop() -> None:
    """The scheduled callable: the run itself starts from the submission event, which knows its period."""


class SyncScheduler:
    """Keeps APScheduler's jobs in step with the jobs table and starts each period's run."""

    def __init__(self, store: Store, service: SyncService, poll_seconds: float) -> None:
        self._store = store
        self._service = service
        self._revision: int | None = None
        self._scheduled: dict[str, tuple[str, str, datetime]] = {}
        self._scheduler: AsyncIOScheduler | None = None
        self._tasks: set[asyncio.Task[Any]] = set()
        self._poller = Periodic("sync-poll", max(1.0, poll_seconds), self.reload, log, at_start=True)

    async def start(self) -> None:
        """Start APScheduler and the poller."""
        self._scheduler = AsyncIOScheduler(timezone=UTC, event_loop=asyncio.get_running_loop())
        self._scheduler.add_listener(self._submitted, EVENT_JOB_SUBMITTED)
        self._scheduler.start()
        await self._poller.start()

    async def stop(self) -> None:
        """Stop scheduling; runs under way are cancelled (each resumes from its cursor later)."""
        await self._poller.stop()
        if self._scheduler is not None:
            self._scheduler.shutdown(wait=False)
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self._service.stop()

    async def reload(self) -> None:
        """Read the jobs again when any changed, and schedule the active ones."""
        async with self._store.read() as tx:
            revision = await tx.sync.jobs_revision()
            if revision == self._revision:
                return
            jobs = await tx.sync.jobs(limit=100_000)
        self._revision = revision
        self._apply([j for j in jobs if j.state is JobState.ACTIVE])

    def _apply(self, jobs: list[SyncJob]) -> None:
        assert self._scheduler is not None
        wanted = {j.id: j for j in jobs}
        for job_id in list(self._scheduled):
            if job_id not in wanted:
                self._scheduler.remove_job(job_id)
                del self._scheduled[job_id]
        for job in jobs:
            start = datetime.fromtimestamp(job.created_at / 1000, tz=UTC)
            shape = (job.schedule, job.time_zone, start)
            if self._scheduled.get(job.id) == shape:
                continue
            try:
                when = trigger(job.schedule, job.time_zone, start)
            except ValueError as exc:
                log.error("sync job has a schedule that cannot be used", extra={"job_id": job.id, "error": str(exc)})
                continue
            self._scheduler.add_job(
                _noop,
                when,
                id=job.id,
                replace_existing=True,
                coalesce=True,
                max_instances=1,
                misfire_grace_time=None,
            )
            self._scheduled[job.id] = shape

    def _submitted(self, event: JobSubmissionEvent) -> None:
        if event.job_id not in self._scheduled or not event.scheduled_run_times:
            return
        key = run_key(event.scheduled_run_times[-1])
        task = asyncio.get_running_loop().create_task(self._fire(event.job_id, key), name=f"sync-{event.job_id}")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _fire(self, job_id: str, key: str) -> None:
        try:
            await self._service.scheduled(job_id, key)
        except Exception:
            log.exception("scheduled sync run failed to start", extra={"job_id": job_id, "run_key": key})
