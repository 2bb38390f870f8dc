"""Scheduled sync jobs (docs/sync.md): keep a current copy of the passports partners share with this node.

A run fetches the partner's catalog, picks the job's datasets (its ids, its criteria, or every battery-passport
dataset offered to this node), gets read access to each (`DatasetAccess`), and pulls the partner's change feed
from the job's cursor. Each page is judged (new, changed, unchanged, removed, refused with the reason), sent
to the destination, and committed with the advanced cursor and the run's counts in one transaction: a run cut
short resumes from the last committed page, losing and repeating nothing. Runs of one job never overlap (the
job is leased by the node running it) and a period's run is recorded once (a unique run key), on any replica.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import re
import time
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import orjson

from connector import jsonld, vocab
from connector.domain import lifecycle as lc
from connector.domain import passport as model
from connector.domain.assets import Criterion
from connector.domain.errors import Conflict, ConnectorError, InvalidInput, NotFound, PeerError, Problem, Refused
from connector.domain.passport import catenax
from connector.domain.sync import (
    DESTINATIONS,
    MODES,
    Destination,
    JobState,
    RunState,
    SyncJob,
    SyncRun,
    interval_seconds,
)
from connector.dsp.catalog import dataset_fields, parse_dataset_offers
from connector.services.dsp_client import PeerCatalogs
from connector.services.passports import PASSPORT_SCHEMA, digest, load, now_ms, record_of
from connector.services.sync_access import DatasetAccess, Endpoint
from connector.services.sync_registry import PollPosition
from connector.store import Store, Transaction
from connector.store.passports import PassportRecord
from connector.store.sync import Cursor, SyncedPassport
from connector.transport.peer import PeerClient

log = logging.getLogger("connector.sync")

EDC = "https://w3id.org/edc/v0.0.1/ns/"
MAX_REFUSALS = 1000  # refusals a run record lists (all are counted)
MIN_INTERVAL_SECONDS = 1.0
_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
_ID_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.")


@dataclass(frozen=True, slots=True)
class SyncSettings:
    """How runs page, retry and lease."""

    page_size: int = 500
    retry_attempts: int = 4
    retry_seconds: float = 2.0
    lease_seconds: float = 60.0
    catalog_page: int = 1000


CheckSchedule = Callable[[str, str], None]  # (schedule, time zone) -> raises ValueError naming the problem


@dataclass(slots=True)
class _Tally:
    """A run's counts and timings while it goes."""

    run: SyncRun
    refusals: list[dict[str, Any]] = field(default_factory=list)
    network: float = 0.0
    store: float = 0.0
    validation: float = 0.0
    began: float = field(default_factory=time.perf_counter)
    committing: asyncio.Future[None] | None = None  # the page commit under way (shielded from cancellation)

    def snapshot(self, state: RunState | None = None, error: str | None = None, ended: bool = False) -> SyncRun:
        seconds = {
            "network": round(self.network, 4),
            "store": round(self.store, 4),
            "validation": round(self.validation, 4),
            "total": round(time.perf_counter() - self.began, 4),
        }
        self.run = replace(
            self.run,
            refusals=tuple(self.refusals[:MAX_REFUSALS]),
            seconds=seconds,
            state=state or self.run.state,
            error=error if error is not None else self.run.error,
            ended_at=now_ms() if ended else self.run.ended_at,
        )
        return self.run


class SyncFailed(Exception):
    """A run cannot go on; the message is the run's error."""


def job_json(job: SyncJob) -> dict[str, Any]:
    """Return a job as the API and the CLI show it."""
    return {
        "id": job.id,
        "partnerAddress": job.partner_address,
        "partnerId": job.partner_id,
        "datasets": list(job.datasets),
        "datasetFilter": [
            {"operandLeft": c.operand_left, "operator": c.operator, "operandRight": c.operand_right}
            for c in job.dataset_filter
        ],
        "schedule": job.schedule,
        "timeZone": job.time_zone,
        "destination": job.destination.as_json(),
        "state": job.state.value,
        "mode": job.mode,
        "createdAt": job.created_at,
        "updatedAt": job.updated_at,
    }


def run_json(run: SyncRun) -> dict[str, Any]:
    """Return a run record as the API and the CLI show it."""
    return {
        "id": run.id,
        "jobId": run.job_id,
        "runKey": run.run_key,
        "trigger": trigger_of(run.run_key),
        "state": run.state.value,
        "startedAt": run.started_at,
        "endedAt": run.ended_at,
        "new": run.new,
        "changed": run.changed,
        "unchanged": run.unchanged,
        "removed": run.removed,
        "refused": run.refused,
        "refusals": list(run.refusals),
        "bytes": run.bytes,
        "error": run.error,
        "seconds": run.seconds,
    }


EVENT_KEY = "event:"  # a run started by a Digital Twin Event: its key names the message (docs/sync.md)
MANUAL_KEY = "manual:"
MAX_RUN_KEY = 128


def trigger_of(run_key: str) -> str:
    """Return why a run started, from its key: `manual` (the API or the CLI), `event` (a Digital Twin Event about
    a passport the job holds) or `schedule` (a period's fire time)."""
    if run_key.startswith(MANUAL_KEY):
        return "manual"
    if run_key.startswith(EVENT_KEY):
        return "event"
    return "schedule"


def event_key(message_id: str) -> str:
    """Return the run key of a run a Digital Twin Event started (a message id too long is named by its hash)."""
    key = EVENT_KEY + message_id
    return key if len(key) <= MAX_RUN_KEY else EVENT_KEY + "uuid5:" + str(uuid.uuid5(uuid.NAMESPACE_URL, message_id))


def _id_forms(passport_id: str) -> list[str]:
    """Return the forms a passport id may be kept in (a UUID with or without urn:uuid:, in either case)."""
    canonical = model.canonical_id(passport_id)
    if _UUID.fullmatch(canonical) is None:
        return [passport_id]
    forms = {passport_id, canonical, canonical.upper()}
    return sorted(forms | {"urn:uuid:" + f for f in forms if not f.startswith("urn:uuid:")})


def synced_json(item: SyncedPassport) -> dict[str, Any]:
    """Return a synced passport with its source."""
    return {
        "id": item.passport_id,
        "source": {
            "jobId": item.job_id,
            "partnerId": item.partner_id,
            "datasetId": item.dataset_id,
            "accessLevel": item.access_level,
            "partnerVersion": item.partner_version,
        },
        "deleted": item.deleted,
        "syncedAt": item.synced_at,
        "digest": item.digest,
        "passport": item.data,
    }


def _strings(body: dict[str, Any], name: str, problems: list[Problem]) -> tuple[str, ...]:
    value = body.get(name, [])
    if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
        problems.append(Problem("must be a list of non-empty strings", name, value))
        return ()
    return tuple(value)


def _criteria(body: dict[str, Any], problems: list[Problem]) -> tuple[Criterion, ...]:
    value = body.get("datasetFilter", [])
    if not isinstance(value, list):
        problems.append(Problem("must be a list of criteria", "datasetFilter", value))
        return ()
    out = []
    for i, item in enumerate(value):
        if (
            not isinstance(item, dict)
            or not isinstance(item.get("operandLeft"), str)
            or not isinstance(item.get("operator"), str)
            or "operandRight" not in item
        ):
            problems.append(
                Problem("a criterion has operandLeft, operator and operandRight", f"datasetFilter[{i}]", item)
            )
            continue
        out.append(Criterion(item["operandLeft"], item["operator"], item["operandRight"]))
    return tuple(out)


def _destination(value: Any, problems: list[Problem]) -> Destination:
    if value is None:
        return Destination()
    if not isinstance(value, dict) or value.get("type", "store") not in DESTINATIONS:
        problems.append(Problem(f"destination.type must be one of {', '.join(DESTINATIONS)}", "destination", value))
        return Destination()
    kind = value.get("type", "store")
    if kind == "folder":
        path = value.get("path")
        if not isinstance(path, str) or not path:
            problems.append(Problem("a folder destination needs its path", "destination.path", path))
            return Destination()
        return Destination("folder", path=path)
    if kind == "http":
        url, headers = value.get("url"), value.get("headers", {})
        if not isinstance(url, str) or not url.startswith(("http://", "https://")):
            problems.append(Problem("an http destination needs an http(s) url", "destination.url", url))
            return Destination()
        if not isinstance(headers, dict) or not all(isinstance(v, str) for v in headers.values()):
            problems.append(Problem("headers must be an object of strings", "destination.headers", None))
            return Destination()
        return Destination("http", url=url, headers=dict(headers))
    return Destination()


def parse_job(body: Any, check_schedule: CheckSchedule, job_id: str | None = None, at: int = 0) -> SyncJob:
    """Read a job from its JSON (POST or PUT body); every problem is a 400 naming its field."""
    if not isinstance(body, dict):
        raise InvalidInput("a sync job must be a JSON object")
    problems: list[Problem] = []
    given_id = body.get("id")
    if job_id is None:
        job_id = given_id if given_id is not None else "sync-" + uuid.uuid4().hex[:12]
    elif given_id is not None and given_id != job_id:
        problems.append(Problem(f"differs from the id in the path {job_id!r}", "id", given_id))
    if not isinstance(job_id, str) or not job_id or len(job_id) > 128 or not set(job_id) <= _ID_CHARS:
        problems.append(Problem("an id is 1-128 letters, digits, '-', '_' or '.'", "id", job_id))
        job_id = ""
    address = body.get("partnerAddress")
    if not isinstance(address, str) or not address.startswith(("http://", "https://")):
        problems.append(Problem("the partner's DSP address (http(s) URL) is required", "partnerAddress", address))
        address = ""
    partner_id = body.get("partnerId")
    if partner_id is not None and (not isinstance(partner_id, str) or not partner_id):
        problems.append(Problem("the partner's DID or BPN, if given, is a non-empty string", "partnerId", partner_id))
        partner_id = None
    schedule = body.get("schedule", "PT15M")
    time_zone = body.get("timeZone", "UTC")
    if not isinstance(schedule, str) or not isinstance(time_zone, str):
        problems.append(Problem("schedule and timeZone are strings", "schedule", schedule))
    else:
        seconds = interval_seconds(schedule)
        if seconds is not None and seconds < MIN_INTERVAL_SECONDS:
            problems.append(Problem(f"an interval is at least {MIN_INTERVAL_SECONDS:g} s", "schedule", schedule))
        else:
            try:
                check_schedule(schedule, time_zone)
            except ValueError as exc:
                problems.append(Problem(str(exc), "schedule", schedule))
    mode = body.get("mode", "auto")
    if mode not in MODES:
        problems.append(Problem(f"mode is one of {', '.join(MODES)}", "mode", mode))
        mode = "auto"
    state = body.get("state", JobState.ACTIVE.value)
    if state not in (JobState.ACTIVE.value, JobState.PAUSED.value):
        problems.append(Problem("state is ACTIVE or PAUSED", "state", state))
        state = JobState.ACTIVE.value
    job = SyncJob(
        id=job_id,
        partner_address=address.rstrip("/"),
        partner_id=partner_id,
        datasets=_strings(body, "datasets", problems),
        dataset_filter=_criteria(body, problems),
        schedule=schedule if isinstance(schedule, str) else "",
        time_zone=time_zone if isinstance(time_zone, str) else "",
        destination=_destination(body.get("destination"), problems),
        state=JobState(state),
        created_at=at,
        updated_at=at,
        mode=mode,
    )
    if problems:
        raise InvalidInput(f"the sync job is not valid: {problems[0].path}: {problems[0].message}", problems)
    return job


def twin_record(document: Any) -> PassportRecord:
    """Read a passport submodel a registry's twin served: a Catena-X document is read as a level's view (the
    fields present checked, the absent ones of other levels allowed); any other format is read in full."""
    if isinstance(document, dict) and catenax.is_catenax(document):
        try:
            passport = catenax.from_catenax_view(document)
        except model.PassportInvalid as exc:
            shown = "; ".join(f"{p}: {m}" for p, m in exc.errors[:5])
            raise InvalidInput(f"the passport is not valid: {shown}", [Problem(m, p) for p, m in exc.errors]) from None
        return record_of(model.Reading(passport, catenax.version(document)))
    return record_of(load(document))


def _is_passport_dataset(dataset: dict[str, Any]) -> bool:
    conforms = [
        v.get("@id", v.get("@value")) if isinstance(v, dict) else v for v in dataset.get(vocab.DCT + "conformsTo", [])
    ]
    # Not every dataset with a passportAccessLevel: a registry's submodel assets have one and serve no feed.
    return PASSPORT_SCHEMA in conforms


def passport_dataset_facts(catalog: dict[str, Any]) -> dict[str, tuple[str | None, str | None]]:
    """Return {dataset id: (battery model, access level)} of the battery-passport datasets of a peer's catalog
    (expanded as JSON-LD); a dataset that names no model or level has None there."""
    found: dict[str, tuple[str | None, str | None]] = {}
    try:
        nodes = jsonld.expand_peer_document(catalog)
    except InvalidInput as exc:
        raise PeerError(f"the partner's catalog is not valid JSON-LD: {exc.message}") from None

    def walk(node: Any, depth: int) -> None:
        if not isinstance(node, dict) or depth > 4:
            return
        if isinstance(node.get("@id"), str) and vocab.ODRL + "hasPolicy" in node and _is_passport_dataset(node):
            fields = dataset_fields(node)
            found.setdefault(node["@id"], (fields["model"], fields["access_level"]))
        for key in (vocab.DCAT + "dataset", vocab.DCAT + "catalog"):
            for child in node.get(key, []):
                walk(child, depth + 1)

    for node in nodes:
        walk(node, 0)
    return found


def passport_datasets(catalog: dict[str, Any]) -> list[str]:
    """Return the ids of the battery-passport datasets of a peer's catalog (expanded as JSON-LD)."""
    return sorted(passport_dataset_facts(catalog))


LEVEL_RANK = {"public": 0, "legitimate_interest": 1, "authority": 2}  # a higher level's view holds a lower one's


def highest_levels(
    wanted: Sequence[str], facts: dict[str, tuple[str | None, str | None]]
) -> tuple[list[str], list[str]]:
    """Split `wanted` into the datasets a run reads and those it skips: of the datasets of one battery model at
    several access levels, only the highest is read (each passport is kept once, at the best level offered);
    a dataset naming no model or no known level is always read. Returns (read, skipped), each in `wanted` order."""
    best: dict[str, tuple[int, str]] = {}
    for dataset_id in wanted:
        model_id, level = facts.get(dataset_id, (None, None))
        if model_id is None or level not in LEVEL_RANK:
            continue
        rank = LEVEL_RANK[level]
        if model_id not in best or rank > best[model_id][0]:
            best[model_id] = (rank, dataset_id)
    read: list[str] = []
    skipped: list[str] = []
    for dataset_id in wanted:
        model_id, level = facts.get(dataset_id, (None, None))
        if model_id is None or level not in LEVEL_RANK or best[model_id][1] == dataset_id:
            read.append(dataset_id)
        else:
            skipped.append(dataset_id)
    return read, skipped


class SyncService:
    """Sync jobs: their settings, their runs, and the passports they keep."""

    def __init__(
        self,
        store: Store,
        catalogs: PeerCatalogs,
        access: DatasetAccess,
        peer: PeerClient,
        check_schedule: CheckSchedule,
        settings: SyncSettings | None = None,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self._store = store
        self._catalogs = catalogs
        self._access = access
        self._peer = peer
        self._check_schedule = check_schedule
        self.settings = settings or SyncSettings()
        self._sleep = sleep
        self.owner = uuid.uuid4().hex
        self._tasks: set[asyncio.Task[Any]] = set()
        # Called with the run after every committed page (the CLI's progress bar, tests).
        self.progress: list[Callable[[SyncRun], None]] = []

    # Jobs.

    async def create(self, body: Any) -> SyncJob:
        """Store a new job (409 when its id is taken)."""
        job = parse_job(body, self._check_schedule, at=now_ms())
        async with self._store.transaction() as tx:
            if not await tx.sync.add_job(job):
                raise Conflict(f"a sync job {job.id!r} exists already")
        return job

    async def update(self, job_id: str, body: Any) -> SyncJob:
        """Replace a job's settings (its cursors and synced passports stay)."""
        current = await self.get(job_id)
        job = replace(parse_job(body, self._check_schedule, job_id=job_id, at=now_ms()), created_at=current.created_at)
        async with self._store.transaction() as tx:
            if not await tx.sync.save_job(job):
                raise NotFound(f"no sync job {job_id!r}")
        return job

    async def get(self, job_id: str) -> SyncJob:
        """Return one job (404 when there is none)."""
        async with self._store.read() as tx:
            job = await tx.sync.get_job(job_id)
        if job is None:
            raise NotFound(f"no sync job {job_id!r}")
        return job

    async def jobs(self, limit: int = 1000, offset: int = 0) -> list[SyncJob]:
        """Return the jobs by id."""
        async with self._store.read() as tx:
            return await tx.sync.jobs(limit, offset)

    async def delete(self, job_id: str) -> None:
        """Delete a job with its runs, cursors and synced passports."""
        async with self._store.transaction() as tx:
            if not await tx.sync.delete_job(job_id):
                raise NotFound(f"no sync job {job_id!r}")

    async def set_state(self, job_id: str, state: JobState) -> SyncJob:
        """Pause or resume a job's schedule."""
        job = replace(await self.get(job_id), state=state, updated_at=now_ms())
        async with self._store.transaction() as tx:
            await tx.sync.save_job(job)
        return job

    async def runs(self, job_id: str, limit: int = 50, offset: int = 0) -> list[SyncRun]:
        """Return a job's runs, newest first."""
        await self.get(job_id)
        async with self._store.read() as tx:
            return await tx.sync.runs(job_id, limit, offset)

    async def run(self, run_id: str) -> SyncRun:
        """Return one run record."""
        async with self._store.read() as tx:
            found = await tx.sync.get_run(run_id)
        if found is None:
            raise NotFound(f"no sync run {run_id!r}")
        return found

    async def synced(
        self, job_id: str, limit: int = 100, after: str = "", include_deleted: bool = False
    ) -> list[SyncedPassport]:
        """Return the passports a job keeps, by id."""
        await self.get(job_id)
        async with self._store.read() as tx:
            return await tx.sync.synced(job_id, limit, after, include_deleted)

    # Runs.

    async def run_now(self, job_id: str, wait: bool = False) -> SyncRun:
        """Start a run of a job now (409 while one is going); return its record, at its end with `wait`."""
        await self.get(job_id)
        started = await self.begin(job_id, MANUAL_KEY + uuid.uuid4().hex)
        if started is None:
            raise Conflict(f"sync job {job_id!r} has a run going; runs of one job never overlap")
        task = asyncio.create_task(self.perform(started), name=f"sync-{job_id}")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        if wait:
            return await asyncio.shield(task)
        return started

    async def on_event(self, tx: Transaction, event: lc.Event, sender: str) -> tuple[str, str | None] | None:
        """A received Digital Twin Event's applier (in its receiving transaction): the active jobs holding a copy
        of its passport from its sender run right after that transaction commits, in the background, so the
        event's answer never waits for them. None when no job holds it."""
        ids = [event.passport_id]
        for link in (event.successor, event.assembly):
            if link is not None:
                ids.append(link.passport_id)
        forms = sorted({form for pid in ids for form in _id_forms(pid)})
        held = await tx.sync.holding(sender, forms)
        active = [j for j in held if (job := await tx.sync.get_job(j)) is not None and job.state is JobState.ACTIVE]
        if not active:
            if held:
                return "received", f"sync job(s) {', '.join(held)} hold {event.passport_id} but are paused"
            return None
        key = event_key(event.message_id)
        tx.after_commit.append(functools.partial(self._start, active, key))
        return "received", f"sync job(s) {', '.join(active)} run now"

    def _start(self, job_ids: Sequence[str], run_key: str) -> None:
        """Start a run of each job in the background (after an event's commit); a job with a run going, or paused
        since, is skipped (logged)."""
        for job_id in job_ids:
            task = asyncio.create_task(self._triggered(job_id, run_key), name=f"sync-{job_id}")
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _triggered(self, job_id: str, run_key: str) -> SyncRun | None:
        try:
            started = await self.begin(job_id, run_key, scheduled=True)
            if started is None:
                log.info(
                    "a sync run an event asked for was skipped: a run of the job is going, or it is paused",
                    extra={"job_id": job_id, "run_key": run_key},
                )
                return None
            return await self.perform(started)
        except Exception:
            log.exception("a sync run an event asked for failed to start", extra={"job_id": job_id})
            return None

    async def scheduled(self, job_id: str, run_key: str) -> SyncRun | None:
        """Run a job for a period of its schedule, unless that period's run exists (another replica's) or
        a run of the job is going; return the ended run, or None when this node did not run it."""
        started = await self.begin(job_id, run_key, scheduled=True)
        if started is None:
            return None
        return await self.perform(started)

    async def begin(self, job_id: str, run_key: str, scheduled: bool = False) -> SyncRun | None:
        """Lease the job and record its run under `run_key`, in one transaction; None when either is taken.

        A run still marked RUNNING when the lease is taken was cut short (its node stopped): it is ended
        FAILED, and this run resumes from the cursor it committed.
        """
        at = now_ms()
        run = SyncRun(
            id="urn:uuid:" + str(uuid.uuid4()), job_id=job_id, run_key=run_key, state=RunState.RUNNING, started_at=at
        )
        try:
            async with self._store.transaction() as tx:
                job = await tx.sync.get_job(job_id)
                if job is None or (scheduled and job.state is JobState.PAUSED):
                    return None
                if not await tx.sync.lease(job_id, self.owner, at, at + int(self.settings.lease_seconds * 1000)):
                    return None
                for cut in await tx.sync.running(job_id):
                    await tx.sync.save_run(
                        replace(
                            cut,
                            state=RunState.FAILED,
                            ended_at=at,
                            error="interrupted: the node running it stopped; the next run resumed from its cursor",
                        )
                    )
                if not await tx.sync.add_run(run):
                    raise _Taken  # rolls the lease back too
        except _Taken:
            return None
        return run

    async def perform(self, run: SyncRun) -> SyncRun:
        """Carry out a recorded run; return it ended (SUCCEEDED, or FAILED with the reason)."""
        tally = _Tally(run)
        renewer = asyncio.create_task(self._keep_lease(run.job_id), name=f"sync-lease-{run.job_id}")
        try:
            job = await self.get(run.job_id)
            await self._sync(job, tally)
        except (SyncFailed, ConnectorError) as exc:
            message = exc.message if isinstance(exc, ConnectorError) else str(exc)
            log.warning("sync run failed", extra={"job_id": run.job_id, "run_id": run.id, "error": message})
            ended = await self._end(tally, RunState.FAILED, message)
        except asyncio.CancelledError:
            # The node is stopping: say so and give the lease back; the next run resumes from the cursor.
            renewer.cancel()
            if tally.committing is not None:
                with contextlib.suppress(Exception):
                    await tally.committing  # a page's commit under way ends first
            with contextlib.suppress(Exception):
                await self._end(
                    tally, RunState.FAILED, "stopped: the node shut down; the next run resumes from its cursor"
                )
            raise
        except Exception as exc:
            log.exception("sync run failed", extra={"job_id": run.job_id, "run_id": run.id})
            ended = await self._end(tally, RunState.FAILED, f"{type(exc).__name__}: {exc}")
        else:
            ended = await self._end(tally, RunState.SUCCEEDED, None)
        finally:
            renewer.cancel()
        for listener in self.progress:
            listener(ended)
        log.info("sync run ended", extra={"job_id": run.job_id, "run_id": run.id, "state": ended.state.value})
        return ended

    async def _end(self, tally: _Tally, state: RunState, error: str | None) -> SyncRun:
        """Record a run's end and give the job's lease back.

        A run that failed (or was stopped) keeps the counts its committed pages recorded, read back from the
        database: a page whose commit was cut short may or may not have committed, and the record must say what
        the store holds.
        """
        ended = tally.snapshot(state, error=error, ended=True)
        async with self._store.transaction() as tx:
            if state is not RunState.SUCCEEDED:
                committed = await tx.sync.get_run(ended.id)
                if committed is not None:
                    ended = replace(committed, state=state, error=error, ended_at=ended.ended_at, seconds=ended.seconds)
            await tx.sync.save_run(ended)
            await tx.sync.release(ended.job_id, self.owner)
        return ended

    async def _keep_lease(self, job_id: str) -> None:
        """Renew the job's lease while a call to the partner takes long (pages renew it too)."""
        while True:
            await asyncio.sleep(self.settings.lease_seconds / 3)
            try:
                async with self._store.transaction() as tx:
                    at = now_ms()
                    await tx.sync.lease(
                        job_id, self.owner, at, at + int(self.settings.lease_seconds * 1000), renew=True
                    )
            except Exception:
                log.exception("renewing a sync job's lease failed", extra={"job_id": job_id})

    async def stop(self) -> None:
        """Cancel runs going on in the background (each resumes from its cursor later)."""
        for task in list(self._tasks):
            task.cancel()
        for task in list(self._tasks):
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task

    async def _retrying(self, what: str, call: Callable[[], Awaitable[Any]]) -> Any:
        """Call a partner, retrying failures with exponential backoff; the last failure ends the run."""
        attempts = max(1, self.settings.retry_attempts)
        for attempt in range(1, attempts + 1):
            try:
                return await call()
            except PeerError as exc:
                if attempt == attempts:
                    raise SyncFailed(f"{what}: {exc.message} (after {attempts} attempts)") from None
                delay = self.settings.retry_seconds * 2 ** (attempt - 1)
                log.info("sync: partner failed, retrying", extra={"what": what, "attempt": attempt, "in_s": delay})
                await self._sleep(delay)
        raise AssertionError("unreachable")

    async def _sync(self, job: SyncJob, tally: _Tally) -> None:
        began = time.perf_counter()
        counterparty, address = await self._retrying(
            "resolving the partner", lambda: self._access.partner(job.partner_address, job.partner_id)
        )
        catalog = await self._retrying(
            "fetching the partner's catalog",
            lambda: self._catalogs.catalog(
                address, counterparty, None, (0, self.settings.catalog_page), job.dataset_filter
            ),
        )
        tally.network += time.perf_counter() - began
        offers = parse_dataset_offers(catalog)
        by_dataset: dict[str, dict[str, Any]] = {}
        for offer_id in sorted(offers):
            offer = {**offers[offer_id], "@id": offer_id}
            by_dataset.setdefault(str(offer.get("target")), offer)
        facts = passport_dataset_facts(catalog)
        if job.mode == "registry" or (job.mode == "auto" and not job.datasets and not facts):
            await self._registry_sync(job, counterparty, address, tally)
            return
        if job.datasets:
            missing = [d for d in job.datasets if d not in by_dataset]
            if missing:
                raise SyncFailed(
                    f"the partner does not offer this node the dataset(s) {', '.join(missing[:5])} "
                    f"(it offers {', '.join(sorted(by_dataset)[:5]) or 'none'})"
                )
            wanted = list(job.datasets)
        else:
            wanted = [d for d in sorted(facts) if d in by_dataset]
            if not wanted:
                raise SyncFailed("the partner offers this node no battery-passport dataset")
        # One model offered at two levels: read it at the higher one only, so each passport is kept once and a
        # run with nothing changed counts nothing changed (the two views would overwrite each other's copy).
        wanted, skipped = highest_levels(wanted, facts)
        if skipped:
            log.info("sync: lower access levels skipped", extra={"job_id": job.id, "datasets": skipped})
        async with self._store.read() as tx:
            cursors = await tx.sync.cursors(job.id)
        for dataset_id in wanted:
            offer_id = str(by_dataset[dataset_id]["@id"])
            await self._dataset(job, counterparty, address, dataset_id, offer_id, cursors.get(dataset_id), tally)

    async def _dataset(
        self,
        job: SyncJob,
        counterparty: str,
        address: str,
        dataset_id: str,
        offer_id: str,
        cursor: Cursor | None,
        tally: _Tally,
    ) -> None:
        position = cursor.position if cursor else None
        began = time.perf_counter()
        endpoint: Endpoint = await self._retrying(
            f"getting access to dataset {dataset_id!r}",
            lambda: self._access.open(counterparty, address, dataset_id, offer_id),
        )
        tally.network += time.perf_counter() - began
        while True:
            began = time.perf_counter()
            page, size, endpoint = await self._fetch(endpoint, position, dataset_id)
            tally.network += time.perf_counter() - began
            entries = page.get("changes")
            if not isinstance(entries, list):
                raise SyncFailed(f"the partner's change feed of {dataset_id!r} answered without a changes list")
            level = str(page.get("accessLevel") or "public")
            following = page.get("cursor")
            if entries and not isinstance(following, str):
                raise SyncFailed(f"the partner's change feed of {dataset_id!r} answered without a cursor")
            await self._page(
                job, counterparty, dataset_id, level, entries, position, following, endpoint.transfer_id, size, tally
            )
            position = following if isinstance(following, str) else position
            if not page.get("more") or not entries:
                break

    async def _registry_sync(self, job: SyncJob, counterparty: str, address: str, tally: _Tally) -> None:
        """CX-0160's bulk mode: poll the partner's registry by createdAfter and read each new twin's passport."""
        reader = self._access.registry(counterparty, address)
        began = time.perf_counter()
        dataset_id = await self._retrying("getting access to the partner's registry", reader.open)
        tally.network += time.perf_counter() - began
        async with self._store.read() as tx:
            cursor = (await tx.sync.cursors(job.id)).get(dataset_id)
        position = PollPosition.decode(cursor.position if cursor else None)
        while True:
            began = time.perf_counter()
            shells, following, size = await self._retrying(
                "polling the partner's registry", functools.partial(reader.page, position, self.settings.page_size)
            )
            entries: list[dict[str, Any]] = []
            validating = 0.0
            for shell in shells:
                try:
                    twin, read = await self._retrying(
                        "reading a twin's passport", functools.partial(reader.read, shell)
                    )
                except (NotFound, Refused) as exc:
                    entries.append({"id": shell.get("id"), "refusal": f"shell {shell.get('id')!r}: {exc.message}"})
                    continue
                size += read
                began_validation = time.perf_counter()
                try:
                    record = twin_record(twin.document)
                except InvalidInput as exc:
                    entries.append({"id": shell.get("id"), "refusal": f"shell {shell.get('id')!r}: {exc.message}"})
                    continue
                finally:
                    validating += time.perf_counter() - began_validation
                entries.append(
                    {
                        "id": record.id,
                        "version": 0,
                        "deleted": False,
                        "passport": record.data,
                        "accessLevel": twin.level,
                    }
                )
            tally.network += time.perf_counter() - began - validating
            tally.validation += validating
            after = position.after_page(shells, following)
            await self._page(
                job, counterparty, dataset_id, "public", entries, position.encode(), after.encode(), None, size, tally
            )
            position = after
            if following is None or not shells:
                break

    async def _fetch(
        self, endpoint: Endpoint, position: str | None, dataset_id: str
    ) -> tuple[dict[str, Any], int, Endpoint]:
        query = {"feed": "changes", "limit": str(self.settings.page_size)}
        if position:
            query["since"] = position
        refreshed = False
        holder = [endpoint]

        async def once() -> Any:
            return await self._peer.request(
                "GET", f"{holder[0].url}?{urlencode(query)}", headers={"Authorization": holder[0].token}
            )

        while True:
            answer = await self._retrying(f"reading the change feed of {dataset_id!r}", once)
            if answer.status in (401, 403) and not refreshed:
                refreshed = True
                holder[0] = await self._retrying("renewing the access token", lambda: self._access.renew(holder[0]))
                continue
            if answer.status >= 500:
                raise SyncFailed(f"the partner's data plane answered {answer.status} for {dataset_id!r}")
            if not answer.ok or not isinstance(answer.body, dict):
                reason = answer.body.get("reason") if isinstance(answer.body, dict) else None
                raise SyncFailed(
                    f"the partner's data plane refused the change feed of {dataset_id!r} ({answer.status})"
                    + (f": {str(reason)[:300]}" if reason else "")
                )
            return answer.body, len(answer.raw), holder[0]

    async def _page(
        self,
        job: SyncJob,
        counterparty: str,
        dataset_id: str,
        level: str,
        entries: Sequence[Any],
        start: str | None,
        following: Any,
        transfer_id: str | None,
        size: int,
        tally: _Tally,
    ) -> None:
        began = time.perf_counter()
        refusals_before = len(tally.refusals)
        ids = [str(e.get("id")) for e in entries if isinstance(e, dict)]
        async with self._store.read() as tx:
            known = await tx.sync.known(job.id, ids)
        tally.store += time.perf_counter() - began
        began = time.perf_counter()
        at = now_ms()
        items: list[SyncedPassport] = []
        seen: set[str] = set()
        counts = {"new": 0, "changed": 0, "unchanged": 0, "removed": 0, "refused": 0}
        for entry in entries:
            passport_id = entry.get("id") if isinstance(entry, dict) else None
            if isinstance(entry, dict) and isinstance(entry.get("refusal"), str):  # judged before (a registry's twin)
                counts["refused"] += 1
                tally.refusals.append({"id": passport_id, "dataset": dataset_id, "reason": entry["refusal"]})
                continue
            if not isinstance(passport_id, str) or not passport_id or passport_id in seen:
                counts["refused"] += 1
                tally.refusals.append({"id": passport_id, "dataset": dataset_id, "reason": "an entry without a new id"})
                continue
            seen.add(passport_id)
            version = entry.get("version") if isinstance(entry.get("version"), int) else 0
            held = known.get(passport_id)
            if entry.get("deleted") is True:
                if held is not None and not held[1]:
                    counts["removed"] += 1
                    items.append(
                        SyncedPassport(
                            job.id, passport_id, counterparty, dataset_id, level, version, held[0], None, True, at
                        )
                    )
                elif held is not None:
                    counts["unchanged"] += 1  # held as deleted already
                # A tombstone of a passport the job never held (deleted before its first run) changes nothing.
                continue
            try:
                reading = load(entry.get("passport"))
            except InvalidInput as exc:
                counts["refused"] += 1
                tally.refusals.append({"id": passport_id, "dataset": dataset_id, "reason": exc.message})
                continue
            if reading.passport.passport_id != passport_id:
                counts["refused"] += 1
                tally.refusals.append(
                    {"id": passport_id, "dataset": dataset_id, "reason": "the passport's id differs from the entry's"}
                )
                continue
            data = entry["passport"]
            content = digest(data)
            if held is not None and held[0] == content and not held[1]:
                counts["unchanged"] += 1
                continue
            counts["changed" if held is not None and not held[1] else "new"] += 1
            stored = data if job.destination.type == "store" else None
            read_at = str(entry.get("accessLevel") or level)
            items.append(
                SyncedPassport(
                    job.id, passport_id, counterparty, dataset_id, read_at, version, content, stored, False, at
                )
            )
        tally.validation += time.perf_counter() - began
        if items and job.destination.type != "store":
            began = time.perf_counter()
            await self._deliver(job, dataset_id, level, counterparty, start, items, entries)
            tally.network += time.perf_counter() - began
        began = time.perf_counter()
        run = tally.run
        tally.run = replace(
            run,
            new=run.new + counts["new"],
            changed=run.changed + counts["changed"],
            unchanged=run.unchanged + counts["unchanged"],
            removed=run.removed + counts["removed"],
            refused=run.refused + counts["refused"],
            bytes=run.bytes + size,
        )
        snapshot = tally.snapshot()
        position = following if isinstance(following, str) else start

        async def commit() -> None:
            async with self._store.transaction() as tx:
                await tx.sync.put_synced(items, {i for i in known if i in {x.passport_id for x in items}})
                await tx.sync.save_cursor(job.id, Cursor(dataset_id, position, transfer_id), at)
                await tx.sync.save_run(snapshot)
                await _renew(tx, job.id, self.owner, at, self.settings.lease_seconds)

        # A commit is never cut in the middle (a cancelled driver call can leave the connection, and on SQLite
        # its write lock, behind): a stopping node lets it finish, then records the run's end (see perform).
        tally.committing = asyncio.ensure_future(commit())
        try:
            await asyncio.shield(tally.committing)
        except BaseException:
            # Not committed (a failure, or the node stopping): the run's record keeps only what was.
            tally.run = run
            del tally.refusals[refusals_before:]
            raise
        tally.store += time.perf_counter() - began
        for listener in self.progress:
            listener(snapshot)

    async def _deliver(
        self,
        job: SyncJob,
        dataset_id: str,
        level: str,
        counterparty: str,
        start: str | None,
        items: Sequence[SyncedPassport],
        entries: Sequence[Any],
    ) -> None:
        """Send a page's new, changed and removed passports to a folder or an HTTP destination.

        A page is named by where it starts, so a page sent again after a crash (before its cursor was committed)
        replaces the file, or carries the same Idempotency-Key, and is not kept twice.
        """
        sent = {i.passport_id for i in items}
        lines = [
            {
                "id": e["id"],
                "partnerId": counterparty,
                "datasetId": dataset_id,
                "accessLevel": level,
                "partnerVersion": e.get("version"),
                "deleted": e.get("deleted") is True,
                "passport": e.get("passport"),
            }
            for e in entries
            if isinstance(e, dict) and e.get("id") in sent
        ]
        key = f"{job.id}:{dataset_id}:{start or 'start'}"
        destination = job.destination
        if destination.type == "folder":
            assert destination.path is not None
            folder = Path(destination.path) / job.id
            name = uuid.uuid5(uuid.NAMESPACE_URL, key).hex + ".jsonl"
            body = b"".join(orjson.dumps(line) + b"\n" for line in lines)

            def write() -> None:
                folder.mkdir(parents=True, exist_ok=True)
                temporary = folder / (name + ".part")
                temporary.write_bytes(body)
                temporary.replace(folder / name)

            try:
                await asyncio.to_thread(write)
            except OSError as exc:
                raise SyncFailed(
                    f"the destination folder {destination.path!r} cannot be written: {exc.strerror}"
                ) from None
            return
        assert destination.url is not None
        headers = {**destination.headers, "Idempotency-Key": key, "Content-Type": "application/json"}
        document = {"jobId": job.id, "datasetId": dataset_id, "partnerId": counterparty, "passports": lines}

        async def post() -> Any:
            return await self._peer.request("POST", str(destination.url), data=orjson.dumps(document), headers=headers)

        answer = await self._retrying("delivering to the destination", post)
        if not answer.ok:
            raise SyncFailed(f"the destination {destination.url!r} answered {answer.status}")


class _Taken(Exception):
    """The period's run exists already (recorded by another replica)."""


async def _renew(tx: Transaction, job_id: str, owner: str, at: int, lease_seconds: float) -> None:
    if not await tx.sync.lease(job_id, owner, at, at + int(lease_seconds * 1000), renew=True):
        # Another node took the job over (this one stalled past its lease): its page is not committed here.
        raise SyncFailed("the job's lease was lost to another node; this run's last page was not committed")
