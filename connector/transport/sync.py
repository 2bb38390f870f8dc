"""Sync jobs on the management API: `/management/v1/sync/jobs` (docs/sync.md)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from aiohttp import web

from connector.domain.errors import InvalidInput, Problem
from connector.domain.sync import JobState
from connector.services import sync as service
from connector.transport.http import json_response, no_content, read_json

SYNC: web.AppKey[service.SyncService] = web.AppKey("sync", service.SyncService)

JOBS = "/management/v1/sync/jobs"


def _sync(request: web.Request) -> service.SyncService:
    return request.app[SYNC]


def _int(request: web.Request, name: str, default: int, low: int, high: int) -> int:
    raw = request.query.get(name)
    if raw is None or raw == "":
        return default
    if not raw.isdigit() or not low <= int(raw) <= high:
        raise InvalidInput(f"{name} must be an integer from {low} to {high}", [Problem("invalid", name, raw[:50])])
    return int(raw)


def _bool(request: web.Request, name: str) -> bool:
    raw = request.query.get(name, "false").lower()
    if raw not in ("true", "false", "1", "0"):
        raise InvalidInput(f"{name} must be true or false", [Problem("invalid", name, raw[:50])])
    return raw in ("true", "1")


async def create_job(request: web.Request) -> web.Response:
    job = await _sync(request).create(await read_json(request))
    return json_response(service.job_json(job), status=201)


async def list_jobs(request: web.Request) -> web.Response:
    jobs = await _sync(request).jobs(_int(request, "limit", 1000, 1, 1000), _int(request, "offset", 0, 0, 10**9))
    return json_response([service.job_json(j) for j in jobs])


async def get_job(request: web.Request) -> web.Response:
    return json_response(service.job_json(await _sync(request).get(request.match_info["id"])))


async def update_job(request: web.Request) -> web.Response:
    job = await _sync(request).update(request.match_info["id"], await read_json(request))
    return json_response(service.job_json(job))


async def delete_job(request: web.Request) -> web.Response:
    await _sync(request).delete(request.match_info["id"])
    return no_content()


async def run_job(request: web.Request) -> web.Response:
    run = await _sync(request).run_now(request.match_info["id"], wait=_bool(request, "wait"))
    return json_response(service.run_json(run), status=200 if run.ended_at is not None else 202)


async def pause_job(request: web.Request) -> web.Response:
    return json_response(service.job_json(await _sync(request).set_state(request.match_info["id"], JobState.PAUSED)))


async def resume_job(request: web.Request) -> web.Response:
    return json_response(service.job_json(await _sync(request).set_state(request.match_info["id"], JobState.ACTIVE)))


async def job_runs(request: web.Request) -> web.Response:
    runs = await _sync(request).runs(
        request.match_info["id"], _int(request, "limit", 50, 1, 1000), _int(request, "offset", 0, 0, 10**9)
    )
    return json_response([service.run_json(r) for r in runs])


async def job_passports(request: web.Request) -> web.Response:
    limit = _int(request, "limit", 100, 1, 1000)
    items = await _sync(request).synced(
        request.match_info["id"], limit + 1, request.query.get("cursor", ""), _bool(request, "includeDeleted")
    )
    following = items[limit - 1].passport_id if len(items) > limit else None
    return json_response({"items": [service.synced_json(i) for i in items[:limit]], "next": following})


@dataclass(frozen=True, slots=True)
class RouteSpec:
    """A sync route and what the OpenAPI document says of it."""

    method: str
    path: str
    handler: Any
    summary: str
    request: str | None
    response: str | None
    status: int = 200
    query: tuple[str, ...] = ()
    statuses: tuple[tuple[int, str], ...] = ()  # other answers of success, as Route's


ROUTES: tuple[RouteSpec, ...] = (
    RouteSpec("POST", JOBS, create_job, "Create a sync job", "SyncJobInput", "SyncJob", 201),
    RouteSpec("GET", JOBS, list_jobs, "List sync jobs", None, "SyncJobList", query=("limit", "offset")),
    RouteSpec("GET", f"{JOBS}/{{id}}", get_job, "Get a sync job", None, "SyncJob"),
    RouteSpec("PUT", f"{JOBS}/{{id}}", update_job, "Change a sync job (its cursors stay)", "SyncJobInput", "SyncJob"),
    RouteSpec("DELETE", f"{JOBS}/{{id}}", delete_job, "Delete a sync job, its runs and its passports", None, None, 204),
    RouteSpec(
        "POST",
        f"{JOBS}/{{id}}/run",
        run_job,
        "Run a sync job now; answers the run (202 while it runs, 200 at its end with wait=true)",
        None,
        "SyncRun",
        query=("wait",),
        statuses=(
            (200, "OK: the run has ended (wait=true); its record"),
            (202, "Accepted: the run goes on; its record as it started (without wait=true)"),
        ),
    ),
    RouteSpec("POST", f"{JOBS}/{{id}}/pause", pause_job, "Stop scheduling a sync job", None, "SyncJob"),
    RouteSpec("POST", f"{JOBS}/{{id}}/resume", resume_job, "Schedule a paused sync job again", None, "SyncJob"),
    RouteSpec(
        "GET",
        f"{JOBS}/{{id}}/runs",
        job_runs,
        "A sync job's runs, newest first",
        None,
        "SyncRunList",
        query=("limit", "offset"),
    ),
    RouteSpec(
        "GET",
        f"{JOBS}/{{id}}/passports",
        job_passports,
        "The partner's passports a sync job keeps, with their source",
        None,
        "SyncedPassportList",
        query=("limit", "cursor", "includeDeleted"),
    ),
)
