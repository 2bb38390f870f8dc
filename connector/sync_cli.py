"""`connector sync add|list|run|pause|resume|history`: sync jobs, through the running node's management API.

A run needs the node (its protocol surface receives the partner's negotiation and transfer messages), so the
commands ask it over its management API (CONNECTOR_MANAGEMENT_HOST/PORT and CONNECTOR_API_KEY, or --node).
`run` waits in the foreground with a progress line on a terminal; `--detach` only starts it.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

from connector.settings import Settings

EXIT_FAILURE = 1
JOBS = "/management/v1/sync/jobs"


def add_parser(commands: Any) -> None:
    """Add the `sync` command and its actions to the CLI."""
    sync = commands.add_parser(
        "sync",
        help="scheduled sync jobs: keep a copy of partners' passports (asks the running node)",
        description="Create, list, run, pause and resume sync jobs and show their runs, through the running node's "
        "management API (docs/sync.md).",
    )
    actions = sync.add_subparsers(dest="sync_command", required=True, metavar="ACTION")

    def common(parser: argparse.ArgumentParser) -> None:
        parser.add_argument("--config", type=Path, metavar="FILE")
        parser.add_argument("--node", metavar="URL", help="the node's management URL (default: from the settings)")
        parser.add_argument("--json", action="store_true", help="print the API's JSON")

    add = actions.add_parser("add", help="create a sync job")
    common(add)
    add.add_argument("--id", help="the job's id (made up when left out)")
    add.add_argument("--partner", required=True, metavar="DSP_URL", help="the partner's DSP address")
    add.add_argument("--partner-id", metavar="DID_OR_BPN", help="the partner's DID or BPN")
    add.add_argument("--dataset", action="append", default=[], metavar="ID", help="a dataset id (repeatable)")
    add.add_argument("--schedule", default="PT15M", help="an ISO 8601 interval (PT15M) or a cron expression")
    add.add_argument("--time-zone", default="UTC", help="the cron expression's time zone (IANA name)")
    add.add_argument("--folder", metavar="PATH", help="write JSON Lines files there instead of the store")
    add.add_argument("--url", metavar="URL", help="POST each page there instead of the store")
    add.add_argument("--paused", action="store_true", help="create it paused")
    listing = actions.add_parser("list", help="list the sync jobs")
    common(listing)
    for name, text in (
        ("run", "run a job now (waits for its end, with progress)"),
        ("pause", "stop scheduling a job"),
        ("resume", "schedule a paused job again"),
        ("history", "show a job's runs, newest first"),
    ):
        action = actions.add_parser(name, help=text)
        common(action)
        action.add_argument("job_id", metavar="JOB")
        if name == "run":
            action.add_argument("--detach", action="store_true", help="start the run and return")
        if name == "history":
            action.add_argument("--limit", type=int, default=20)


class _Failed(Exception):
    """The node answered with an error or could not be reached; the message says which."""


def _call(settings: Settings, args: argparse.Namespace, method: str, path: str, body: Any = None) -> Any:
    host = settings.management_host
    host = "127.0.0.1" if host in ("0.0.0.0", "") else f"[{host}]" if ":" in host else host  # noqa: S104
    base = (args.node or f"http://{host}:{settings.management_port}").rstrip("/")
    headers = {"Accept": "application/json"}
    if settings.api_key is not None:
        headers["X-Api-Key"] = settings.api_key.get_secret_value()
    data = None
    if body is not None:
        data = json.dumps(body).encode()
        headers["Content-Type"] = "application/json"
    request = urllib.request.Request(base + path, data=data, headers=headers, method=method)  # noqa: S310
    try:
        with urllib.request.urlopen(request, timeout=60) as response:  # noqa: S310 (the operator's own node)
            raw = response.read()
    except urllib.error.HTTPError as exc:
        raw = exc.read()
        try:
            problem = json.loads(raw)
        except ValueError:
            problem = {}
        detail = problem.get("detail") if isinstance(problem, dict) else None
        raise _Failed(f"{exc.code}: {detail or exc.reason}") from None
    except (urllib.error.URLError, TimeoutError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise _Failed(f"cannot reach the node at {base} ({reason}); is it running (connector serve)?") from None
    return json.loads(raw) if raw else None


def _counts(run: dict[str, Any]) -> str:
    return (
        f"{run['new']} new, {run['changed']} changed, {run['unchanged']} unchanged, {run['removed']} removed, "
        f"{run['refused']} refused, {run['bytes']:,} bytes"
    )


def _run_line(run: dict[str, Any]) -> str:
    took = f", {(run['endedAt'] - run['startedAt']) / 1000:.1f} s" if run.get("endedAt") else ""
    error = f": {run['error']}" if run.get("error") else ""
    return f"{run['runKey']} {run['state']}{took}: {_counts(run)}{error}"


def main(settings: Settings, args: argparse.Namespace) -> int:
    """Run one `connector sync` action; return the exit status."""
    try:
        return _action(settings, args)
    except _Failed as exc:
        print(f"connector: {exc}", file=sys.stderr)
        return EXIT_FAILURE


def _action(settings: Settings, args: argparse.Namespace) -> int:
    command = args.sync_command
    if command == "add":
        body: dict[str, Any] = {"partnerAddress": args.partner, "schedule": args.schedule, "timeZone": args.time_zone}
        for key, value in (("id", args.id), ("partnerId", args.partner_id)):
            if value:
                body[key] = value
        if args.dataset:
            body["datasets"] = args.dataset
        if args.folder and args.url:
            raise _Failed("give --folder or --url, not both")
        if args.folder:
            body["destination"] = {"type": "folder", "path": args.folder}
        elif args.url:
            body["destination"] = {"type": "http", "url": args.url}
        if args.paused:
            body["state"] = "PAUSED"
        job = _call(settings, args, "POST", JOBS, body)
        print(json.dumps(job, indent=2) if args.json else f"sync job {job['id']} created ({job['state']})")
        return 0
    if command == "list":
        jobs = _call(settings, args, "GET", JOBS)
        if args.json:
            print(json.dumps(jobs, indent=2))
        for job in [] if args.json else jobs:
            print(f"{job['id']}\t{job['state']}\t{job['schedule']} {job['timeZone']}\t{job['partnerAddress']}")
        return 0
    job_path = f"{JOBS}/{urllib.parse.quote(args.job_id, safe='')}"
    if command in ("pause", "resume"):
        job = _call(settings, args, "POST", f"{job_path}/{command}")
        print(json.dumps(job, indent=2) if args.json else f"sync job {job['id']} is {job['state']}")
        return 0
    if command == "history":
        runs = _call(settings, args, "GET", f"{job_path}/runs?limit={max(1, args.limit)}")
        if args.json:
            print(json.dumps(runs, indent=2))
        for run in [] if args.json else runs:
            print(_run_line(run))
        return 0
    run = _call(settings, args, "POST", f"{job_path}/run")
    if not args.detach:
        run = _follow(settings, args, job_path, run)
    print(json.dumps(run, indent=2) if args.json else _run_line(run))
    return 0 if run["state"] != "FAILED" else EXIT_FAILURE


def _follow(settings: Settings, args: argparse.Namespace, job_path: str, run: dict[str, Any]) -> dict[str, Any]:
    """Wait for a run's end, drawing its counts on one line of a terminal."""
    shown = sys.stderr.isatty()
    began = time.monotonic()
    width = 0
    while run["state"] == "RUNNING":
        time.sleep(0.5)
        runs = _call(settings, args, "GET", f"{job_path}/runs?limit=5")
        run = next((r for r in runs if r["id"] == run["id"]), run)
        if shown:
            done = run["new"] + run["changed"] + run["unchanged"] + run["removed"] + run["refused"]
            rate = done / max(time.monotonic() - began, 0.001)
            line = f"{done:,} passports read ({rate:,.0f}/s): {_counts(run)}"
            sys.stderr.write("\r" + line.ljust(width))
            sys.stderr.flush()
            width = len(line)
    if shown and width:
        sys.stderr.write("\n")
    return run
