"""The `connector` command: serve a node, migrate its database, show its settings."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import faulthandler
import gc
import logging
import os
import sys
from collections.abc import Coroutine, Iterator, Sequence
from pathlib import Path
from typing import Any, TextIO

from connector import __version__, cli_lifecycle, logs, sync_cli
from connector.domain.errors import ConnectorError, DatabaseUnavailable
from connector.settings import Settings, SettingsError, load_settings, setting_names

EXIT_SETTINGS = 2
EXIT_FAILURE = 1
# The shells' conventions: 128 + the signal's number (SIGINT 2, SIGPIPE 13).
EXIT_INTERRUPTED = 130
EXIT_BROKEN_PIPE = 141


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="connector",
        description="The battery-passport connector: a dataspace node speaking DSP 2025-1 "
        "and the EDC Management API v3.",
        epilog="Settings come from CONNECTOR_* environment variables and the optional --config TOML file "
        "(environment wins). Settings: " + ", ".join(setting_names()),
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    serve = commands.add_parser("serve", help="start the node (protocol and management surfaces)")
    serve.add_argument(
        "--config",
        type=Path,
        metavar="FILE",
        help="TOML file with settings (keys as in the README table, lower case)",
    )

    db = commands.add_parser("db", help="database schema")
    db_commands = db.add_subparsers(dest="db_command", required=True, metavar="ACTION")
    upgrade = db_commands.add_parser("upgrade", help="migrate the database to the newest schema")
    upgrade.add_argument("--config", type=Path, metavar="FILE")
    current = db_commands.add_parser("current", help="print the database's schema revision")
    current.add_argument("--config", type=Path, metavar="FILE")

    health = commands.add_parser(
        "health",
        help="ask the running node whether it is ready (exit 0) or not (exit 1); the container's health check",
        description="GET /ready on the node's management surface (CONNECTOR_MANAGEMENT_HOST/PORT, over loopback "
        "when it binds to all interfaces): ready when the database answers and the background loops run.",
    )
    health.add_argument("--config", type=Path, metavar="FILE")
    health.add_argument("--timeout", type=float, default=3.0, help="seconds to wait for the answer (default 3)")

    save = commands.add_parser(
        "backup",
        help="write one archive with a consistent copy of the database, the node key and the data directory",
        description="Back the node up while it runs: SQLite through its online backup API, PostgreSQL with pg_dump "
        "(client tools needed), plus the node key (the data directory's or CONNECTOR_KEY_FILE) and every other file "
        "of the data directory (the issuer folder among them). The archive holds the private key: it is written "
        "mode 0600; keep it as you keep the key. Without the key a restored database's sealed secrets are lost.",
    )
    save.add_argument("--config", type=Path, metavar="FILE")
    save.add_argument(
        "--output", type=Path, metavar="FILE", help="archive to write (default connector-backup-<UTC time>.tar.gz here)"
    )
    save.add_argument(
        "--no-database", action="store_true", help="only the key and files (the database is backed up otherwise)"
    )
    load = commands.add_parser(
        "restore",
        help="restore a backup archive into a NEW data directory (and an empty PostgreSQL database)",
        description="Restore what `connector backup` wrote into CONNECTOR_DATA_DIR, which must not exist or be "
        "empty, and the database of CONNECTOR_DATABASE_URL, which must not exist (SQLite) or be empty (PostgreSQL, "
        "restored with pg_restore). Every file is checked against the archive's manifest before anything is "
        "written; nothing is ever overwritten. Then start the node (it migrates an older SQLite schema).",
    )
    load.add_argument("archive", type=Path, metavar="ARCHIVE")
    load.add_argument("--config", type=Path, metavar="FILE")

    show = commands.add_parser("settings", help="print the effective settings (secrets hidden)")
    show.add_argument("--config", type=Path, metavar="FILE")

    passports = commands.add_parser(
        "passports",
        help="battery passports stored by this node: import, export, list, show, delete",
        description="Work on the passports this node stores (the node may be running: both use the database).",
    )
    passport_commands = passports.add_subparsers(dest="passports_command", required=True, metavar="ACTION")
    bulk = passport_commands.add_parser(
        "import",
        help="import passports from a folder, a JSON Lines file or a JSON array file",
        description="Import passports (node JSON, Catena-X BatteryPass 6.x, or IDTA parts bundles; recognised per "
        "record). A folder is read recursively (*.json, *.jsonl, *.ndjson). Every record is held to the node's JSON "
        "limits (CONNECTOR_MAX_BODY_BYTES, CONNECTOR_MAX_JSON_DEPTH), as on the API. A passport id appears once "
        "in an import: a later record with the same id is refused. Each record is stored as a new version "
        "unless it is unchanged, so running an import twice stores nothing twice; an interrupted import resumes "
        "after the last committed batch. Exit status 0 when no record was refused, 1 otherwise.",
    )
    bulk.add_argument("path", type=Path, metavar="PATH")
    bulk.add_argument("--config", type=Path, metavar="FILE")
    bulk.add_argument(
        "--batch",
        type=int,
        help="records per transaction, each the checkpoint a resumed import starts after (default 2000)",
    )
    bulk.add_argument(
        "--restart", action="store_true", help="ignore an interrupted run and start from the first record"
    )
    bulk.add_argument(
        "--publish", action="store_true", help="afterwards, offer the passports as datasets per model and access level"
    )
    bulk.add_argument("--no-progress", action="store_true", help="no progress bar (it is off anyway when not a TTY)")
    bulk.add_argument(
        "--show",
        type=int,
        default=20,
        metavar="N",
        help="list at most N refusals and N records with warnings (default 20)",
    )
    bulk.add_argument(
        "--json", action="store_true", help="print the summary as JSON (as the import endpoint answers), no progress"
    )
    out = passport_commands.add_parser("export", help="print one passport as JSON (node, catenax or idta format)")
    out.add_argument("passport_id", metavar="ID")
    out.add_argument("--config", type=Path, metavar="FILE")
    out.add_argument("--format", choices=["node", "catenax", "idta"], default="node")
    listing = passport_commands.add_parser(
        "list",
        help="list stored passports, with the API's filters and paging",
        description="List passports, oldest change first, a page at a time (the API's GET /management/v1/passports). "
        "When there are more, the command to read the next page is printed on stderr.",
    )
    listing.add_argument("--config", type=Path, metavar="FILE")
    listing.add_argument("--model", metavar="MODEL_ID", help="only this battery model")
    listing.add_argument("--battery", metavar="BATTERY_ID", help="only this battery")
    listing.add_argument("--manufacturer", metavar="ID", help="only this manufacturer")
    listing.add_argument("--category", help="only this battery category")
    listing.add_argument("--changed-since", type=int, metavar="MS", help="only passports changed after this time (ms)")
    listing.add_argument("--include-deleted", action="store_true", help="deleted passports too")
    listing.add_argument("--limit", type=_positive, default=100, metavar="N", help="at most N (default 100, most 1000)")
    listing.add_argument("--cursor", help="continue after the page that printed this cursor")
    listing.add_argument("--json", action="store_true", help="print the API's JSON answer instead of a table")
    show_one = passport_commands.add_parser(
        "show",
        help="print one stored passport with its version and dates (JSON)",
        description="Print a passport "
        "as the API's GET /management/v1/passports/ID answers it, or every version with --history.",
    )
    show_one.add_argument("passport_id", metavar="ID")
    show_one.add_argument("--config", type=Path, metavar="FILE")
    show_one.add_argument("--history", action="store_true", help="every version, oldest first (deleted ones too)")
    show_one.add_argument(
        "--format", choices=["node", "catenax", "idta"], default="node", help="the passport's format (default node)"
    )
    remove = passport_commands.add_parser(
        "delete",
        help="delete passports (their history stays)",
        description="Mark passports deleted: they leave listings, views and the data plane; their history stays and "
        "storing one again brings it back. Asks first on a terminal; --yes deletes without asking.",
    )
    remove.add_argument("passport_ids", nargs="+", metavar="ID")
    remove.add_argument("--config", type=Path, metavar="FILE")
    remove.add_argument("--yes", action="store_true", help="delete without asking")

    find = passport_commands.add_parser(
        "lookup",
        help="read a partner's passport through its registry, asking the running node's management API",
        description="Ask the running node (its management API, CONNECTOR_MANAGEMENT_HOST/PORT and CONNECTOR_API_KEY, "
        "or --node) to look a battery up in a partner's Digital Twin Registry and read its passport, reusing the "
        "agreements and EDRs it holds. Prints the passport as JSON; where it came from goes to stderr.",
    )
    find.add_argument("--config", type=Path, metavar="FILE")
    find.add_argument("--partner", required=True, help="the partner's DID, BPN or DSP address")
    find.add_argument("--battery", metavar="ID", help="the battery's global asset id")
    find.add_argument(
        "--asset-id",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="a specific asset id to look the shell up by (repeatable), e.g. partInstanceId=X123",
    )
    find.add_argument(
        "--level", choices=["public", "legitimate_interest", "authority"], help="default: the best offered"
    )
    find.add_argument("--semantic-id", help="the submodel's semantic id (default: Catena-X BatteryPass 6.1.0)")
    find.add_argument("--node", metavar="URL", help="the node's management URL (default: from the settings)")
    find.add_argument("--timeout", type=float, default=120.0, help="seconds to wait for the answer (default 120)")
    find.add_argument("--json", action="store_true", help="print the whole answer (passport, source, timings)")

    cli_lifecycle.add_passport_commands(passport_commands)
    cli_lifecycle.add_notification_command(commands)

    issuer = commands.add_parser(
        "issuer",
        help="make this node a credential issuer for a dataspace (served at <public URL>/issuer/...)",
        description="Issue and revoke credentials (VC-JWT: VCDM 2.0, or VCDM 1.1 as Tractus-X's issuer writes them) "
        "for participants. The issuer's DID document and status list are served by this node's protocol surface, "
        "so the node must run for peers to verify.",
    )
    issuer_commands = issuer.add_subparsers(dest="issuer_command", required=True, metavar="ACTION")
    init = issuer_commands.add_parser("init", help="create the issuer identity (key, DID, status list)")
    init.add_argument("--config", type=Path, metavar="FILE")
    init.add_argument("--did", help="the issuer's DID (default: did:web of <public URL>/issuer)")
    grant = issuer_commands.add_parser("issue", help="issue a credential to a participant; prints the VC-JWT")
    grant.add_argument("--config", type=Path, metavar="FILE")
    grant.add_argument("--subject", required=True, help="the participant's DID")
    grant.add_argument(
        "--type",
        required=True,
        choices=["membership", "role", "bpn", "dataexchangegovernance"],
        dest="credential_type",
        help="dataexchangegovernance: the Catena-X framework credential (DataExchangeGovernanceCredential)",
    )
    grant.add_argument("--role", action="append", default=[], help="a role (repeatable), for --type role")
    grant.add_argument(
        "--bpn", help="a business-partner number, for --type bpn and dataexchangegovernance (or with membership)"
    )
    grant.add_argument("--days", type=int, default=365, help="validity in days (default 365)")
    grant.add_argument(
        "--format",
        choices=["vcdm2", "vcdm1"],
        default="vcdm2",
        dest="data_model",
        help="vcdm2: a VCDM 2.0 vc+jwt (default); vcdm1: a VCDM 1.1 JWT, the shape Tractus-X's issuer writes",
    )
    grant.add_argument(
        "--contract-version", default="1.0", help="contractVersion, for --type dataexchangegovernance (default 1.0)"
    )
    grant.add_argument("--contract-template", help="contractTemplate URL, for --type dataexchangegovernance")
    revoke = issuer_commands.add_parser("revoke", help="revoke an issued credential by its id")
    revoke.add_argument("--config", type=Path, metavar="FILE")
    revoke.add_argument("--id", required=True, dest="credential_id")
    listing = issuer_commands.add_parser("list", help="list the credentials issued")
    listing.add_argument("--config", type=Path, metavar="FILE")
    sync_cli.add_parser(commands)
    return parser


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a whole number of at least 1, not {text!r}")
    return value


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; return the exit status (130 after Ctrl-C, 141 when stdout's reader has gone)."""
    try:
        code = _main(argv)
        # Flush here, not at interpreter exit, where a closed pipe is an "Exception ignored" message.
        sys.stdout.flush()
    except BrokenPipeError:
        # `connector passports export ID | head -1`: the reader has all it wanted; end as `cat` would.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return EXIT_BROKEN_PIPE
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED
    return code


def _main(argv: Sequence[str] | None) -> int:
    args = _parser().parse_args(argv)
    # A crash in native code (SQLite, uvloop, a compiled parser) writes every thread's Python stack to stderr
    # before the process dies, instead of nothing: the one trace there is of such a crash (docs/operations.md).
    # (A stderr that is no file, as under some embedders, has nothing to write it to: it stays off.)
    if not faulthandler.is_enabled():
        with contextlib.suppress(OSError, ValueError, RuntimeError, AttributeError):
            faulthandler.enable(all_threads=True)
    try:
        settings = load_settings(args.config)
    except SettingsError as exc:
        print(f"connector: invalid setting: {exc}", file=sys.stderr)
        return EXIT_SETTINGS
    # A serving node writes its lines in batches (decision 0028); a one-shot command line by line, in order with
    # what it prints.
    logs.configure(
        settings.log_level, settings.log_format, settings.log_flush_seconds if args.command == "serve" else 0.0
    )
    if args.command == "serve":
        # Start-up makes ~130,000 objects that live as long as the process; the collector would walk them some
        # 300 times while they are made (0.17-0.25 s of a 2 s start). It stays off until the node is up, then
        # `serve_until_stopped` freezes them and turns it on (decision 0029, "Start-up").
        gc.disable()
        try:
            return _run(_serve(settings))
        finally:
            gc.enable()
    if args.command == "db":
        return _run(_db(settings, args.db_command))
    if args.command == "settings":
        _print_settings(settings)
        return 0
    if args.command == "health":
        return _health(settings, args.timeout)
    if args.command in ("backup", "restore"):
        return _run(_backup_or_restore(settings, args))
    if args.command == "passports" and args.passports_command == "lookup":
        return _lookup(settings, args)
    if args.command == "notifications" or (
        args.command == "passports" and args.passports_command in cli_lifecycle.COMMANDS
    ):
        return cli_lifecycle.run(settings, args)
    if args.command == "passports":
        if args.passports_command == "import":
            from connector.services.passport_pipeline import one_malloc_arena

            one_malloc_arena()  # before any thread starts: the import's peak memory stays flat (decision 0019)
        return _run(_passports(settings, args))
    if args.command == "sync":
        return sync_cli.main(settings, args)
    if args.command == "issuer":
        try:
            return _issuer(settings, args)
        except ConnectorError as exc:
            print(f"connector: {exc.message}", file=sys.stderr)
            return EXIT_FAILURE
    return EXIT_FAILURE


def _lookup(settings: Settings, args: argparse.Namespace) -> int:
    """Ask the running node for a partner's passport; print it, and where it came from on stderr."""
    import json
    import urllib.error
    import urllib.request

    body: dict[str, Any] = {"partner": args.partner}
    if args.battery:
        body["batteryId"] = args.battery
    links = []
    for item in args.asset_id:
        name, sep, value = item.partition("=")
        if not sep or not name or not value:
            print(f"connector: --asset-id {item!r} is not NAME=VALUE", file=sys.stderr)
            return EXIT_FAILURE
        links.append({"name": name, "value": value})
    if links:
        body["specificAssetIds"] = links
    if not args.battery and not links:
        print("connector: give --battery or --asset-id", file=sys.stderr)
        return EXIT_FAILURE
    if args.level:
        body["level"] = args.level
    if args.semantic_id:
        body["semanticId"] = args.semantic_id
    base = (args.node or _management_base(settings)).rstrip("/")
    headers = {"Content-Type": "application/json", "Accept": "application/json"}
    if settings.api_key is not None:
        headers["X-Api-Key"] = settings.api_key.get_secret_value()
    request = urllib.request.Request(  # noqa: S310 (the operator's own node, http or https)
        base + "/management/v1/passports/lookup", data=json.dumps(body).encode(), headers=headers, method="POST"
    )
    try:
        with urllib.request.urlopen(request, timeout=args.timeout) as response:  # noqa: S310
            answer = json.loads(response.read())
    except urllib.error.HTTPError as exc:
        raw = exc.read()
        try:
            problem = json.loads(raw)
        except ValueError:
            problem = {"detail": raw[:300].decode(errors="replace")}
        step = f" at step {problem['step']}" if isinstance(problem, dict) and problem.get("step") else ""
        detail = problem.get("detail") if isinstance(problem, dict) else None
        print(f"connector: the lookup failed{step} ({exc.code}): {detail or exc.reason}", file=sys.stderr)
        return EXIT_FAILURE
    except (urllib.error.URLError, TimeoutError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        print(
            f"connector: cannot reach the node at {base} ({reason}); is it running (connector serve)?", file=sys.stderr
        )
        return EXIT_FAILURE
    if args.json:
        _print_json(answer)
        return 0
    _print_json(answer["passport"])
    source = answer["source"]
    print(
        f"from {source['partner']}: asset {source['asset']}, agreement {source['agreement']}, "
        f"level {source['level'] or 'unknown'}, in {sum(answer['elapsedMs'].values()):.0f} ms",
        file=sys.stderr,
    )
    return 0


async def _backup_or_restore(settings: Settings, args: argparse.Namespace) -> int:
    import time

    from connector.store import backup, migrate

    plan = backup.Plan(settings.data_dir, settings.effective_database_url, settings.key_file)
    try:
        if args.command == "backup":
            output = args.output or Path(time.strftime("connector-backup-%Y%m%dT%H%M%SZ.tar.gz", time.gmtime()))
            done = backup.backup(plan, output, database=not args.no_database)
            revision = f", schema {done.schema_revision}" if done.schema_revision else ""
            print(f"backed up the {done.database} database{revision}, the node key and {done.files} files to {output}")
            print("the archive holds the node's private key: keep it as safe as the key", file=sys.stderr)
            return 0
        empty: bool | None = None
        if not settings.is_sqlite:
            url = settings.effective_database_url
            empty = await migrate.current(url, connect_timeout=settings.database_connect_timeout) is None
        done = backup.restore(plan, args.archive, postgres_empty=empty)
    except backup.BackupError as exc:
        print(f"connector: {exc}", file=sys.stderr)
        return EXIT_FAILURE
    print(f"restored {args.archive} into {settings.data_dir} ({done.database} database, {done.files} files)")
    print("next: connector serve (with the same CONNECTOR_PUBLIC_URL, so the node keeps its DID)", file=sys.stderr)
    return 0


def _management_base(settings: Settings) -> str:
    host = settings.management_host
    host = "127.0.0.1" if host in ("0.0.0.0", "") else f"[{host}]" if ":" in host else host  # noqa: S104
    return f"http://{host}:{settings.management_port}"


def _health(settings: Settings, timeout: float) -> int:
    """Print the node's readiness in one line; 0 when /ready answers 200, 1 otherwise (or unreachable)."""
    import json
    import urllib.error
    import urllib.request

    url = _management_base(settings) + "/ready"
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:  # noqa: S310 (the node's own loopback URL)
            print(f"ready: {url} answered {response.status}")
            return 0
    except urllib.error.HTTPError as exc:
        try:
            detail = json.loads(exc.read()).get("detail")
        except ValueError:
            detail = None
        print(f"not ready: {url} answered {exc.code}: {detail or exc.reason}", file=sys.stderr)
    except (urllib.error.URLError, TimeoutError, OSError) as exc:
        print(f"not ready: {url} cannot be reached ({getattr(exc, 'reason', exc)})", file=sys.stderr)
    return EXIT_FAILURE


def _issuer(settings: Settings, args: argparse.Namespace) -> int:
    from datetime import UTC, datetime, timedelta

    from connector.identity import issuer
    from connector.identity.errors import KeyFileError
    from connector.settings import did_web_from_url

    directory = settings.issuer_dir
    if args.issuer_command == "init":
        did = args.did or did_web_from_url(settings.effective_public_url + "/issuer")
        try:
            identity = issuer.create_issuer(directory, did)
        except KeyFileError as exc:
            print(f"connector: {exc}", file=sys.stderr)
            return EXIT_FAILURE
        registry = issuer.init_registry(directory, identity.did, settings.effective_public_url + "/issuer/status")
        print(f"issuer DID: {registry.did}")
        print(f"status list: {registry.status_list_url}")
        print(f"trust it on every node with CONNECTOR_TRUSTED_ISSUERS={registry.did}")
        return 0
    if not (directory / issuer.REGISTRY_FILE_NAME).exists():
        print("connector: this node is not an issuer yet; run `connector issuer init` first", file=sys.stderr)
        return EXIT_FAILURE
    registry = issuer.load_registry(directory)
    if args.issuer_command == "list":
        for item in registry.credentials:
            state = "revoked" if item.revoked else "valid"
            print(f"{item.id}\t{','.join(item.types)}\t{item.subject}\t{item.valid_until or '-'}\t{state}")
        return 0
    if args.issuer_command == "revoke":
        found = registry.find(args.credential_id)
        if found is None:
            print(f"connector: no credential {args.credential_id!r} was issued here", file=sys.stderr)
            return EXIT_FAILURE
        issuer.save_registry(directory, registry.revoke(found.index))
        print(f"revoked {found.id}; peers see it at their next status list fetch")
        return 0
    identity = issuer.create_issuer(directory, registry.did)
    start = datetime.now(UTC)
    until = start + timedelta(days=args.days)
    model = args.data_model
    if args.credential_type == "membership":
        jwt, registry = issuer.issue_membership(
            identity, registry, args.subject, bpn=args.bpn, valid_from=start, valid_until=until, data_model=model
        )
    elif args.credential_type == "role":
        if not args.role:
            print("connector: --type role needs at least one --role", file=sys.stderr)
            return EXIT_FAILURE
        jwt, registry = issuer.issue_role(
            identity, registry, args.subject, args.role, valid_from=start, valid_until=until, data_model=model
        )
    elif args.credential_type == "bpn":
        if not args.bpn:
            print("connector: --type bpn needs --bpn", file=sys.stderr)
            return EXIT_FAILURE
        jwt, registry = issuer.issue_bpn(
            identity, registry, args.subject, args.bpn, valid_from=start, valid_until=until, data_model=model
        )
    else:
        if not args.bpn:
            print("connector: --type dataexchangegovernance needs --bpn (the holder's BPNL)", file=sys.stderr)
            return EXIT_FAILURE
        jwt, registry = issuer.issue_data_exchange_governance(
            identity,
            registry,
            args.subject,
            args.bpn,
            version=args.contract_version,
            contract_template=args.contract_template,
            valid_from=start,
            valid_until=until,
            data_model=model,
        )
    issuer.save_registry(directory, registry)
    print(jwt)
    return 0


class ProgressBar:
    """A one-line progress bar on stderr: done/total, percent, records per second, time left.

    It is drawn on a terminal only, and log lines never run into it: while it is shown (`around_logs`), the
    handlers writing to its stream write through it, and it clears its line before a log line and draws
    itself again after.
    """

    def __init__(self, total: int | None, enabled: bool, stream: TextIO | None = None, width: int = 30) -> None:
        self.total = total
        self.enabled = enabled
        self.stream = stream or sys.stderr
        self.width = width
        self._line = ""
        self._shown = False

    def __call__(self, summary: Any) -> None:
        """Redraw the bar for an import summary."""
        if not self.enabled:
            return
        done = summary.position
        rate = (done - summary.resumed_from) / summary.seconds if summary.seconds > 0 else 0.0
        if self.total:
            share = min(done / self.total, 1.0)
            filled = int(share * self.width)
            left = (self.total - done) / rate if rate > 0 else 0.0
            line = (
                f"[{'#' * filled}{'.' * (self.width - filled)}] {done:,}/{self.total:,} {share:5.1%} "
                f"{rate:,.0f}/s, {left:,.0f} s left, {summary.refused:,} refused"
            )
        else:
            line = f"{done:,} records, {rate:,.0f}/s, {summary.refused:,} refused"
        self._draw(line)

    def _draw(self, line: str) -> None:
        self.stream.write("\r" + line.ljust(len(self._line) if self._shown else 0))
        self.stream.flush()
        self._line, self._shown = line, True

    def clear(self) -> None:
        """Blank the bar's line, leaving the cursor at its start."""
        if self._shown:
            self.stream.write("\r" + " " * len(self._line) + "\r")
            self._shown = False

    def redraw(self) -> None:
        """Draw the bar again after something else was written."""
        if self.enabled and self._line and not self._shown:
            self._draw(self._line)

    @contextlib.contextmanager
    def around_logs(self) -> Iterator[None]:
        """While the bar is shown, route the log handlers that write to its stream through it."""
        if not self.enabled:
            yield
            return
        routed = [
            handler
            for handler in logging.getLogger().handlers
            if isinstance(handler, logging.StreamHandler) and handler.stream is self.stream
        ]
        through = _AroundBar(self)
        for handler in routed:
            handler.setStream(through)
        try:
            yield
        finally:
            for handler in routed:
                handler.setStream(self.stream)

    def close(self) -> None:
        """End the bar's line."""
        if self.enabled and self._shown:
            self.stream.write("\n")
            self.stream.flush()
            self._shown = False


class _AroundBar:
    """The stream log handlers write to while a progress bar is shown: the bar steps aside for each line."""

    def __init__(self, bar: ProgressBar) -> None:
        self._bar = bar

    def write(self, text: str) -> int:
        """Write log text on a clean line, then put the bar back."""
        self._bar.clear()
        written = self._bar.stream.write(text)
        if text.endswith("\n"):
            self._bar.redraw()
        return written

    def flush(self) -> None:
        """Flush the bar's stream."""
        self._bar.stream.flush()


async def _passports(settings: Settings, args: argparse.Namespace) -> int:
    from connector.app import SchemaOutOfDate, check_schema
    from connector.services.passport_sources import SourceError
    from connector.store import Store, migrate

    url, timeout = settings.effective_database_url, settings.database_connect_timeout
    if settings.auto_migrate:
        await migrate.upgrade(url, connect_timeout=timeout)
    try:
        await check_schema(settings)
    except SchemaOutOfDate as exc:
        print(f"connector: {exc}", file=sys.stderr)
        return EXIT_FAILURE
    from connector.services.passport_pipeline import BULK_WRITE_CACHE_KIB

    cache = BULK_WRITE_CACHE_KIB if args.passports_command == "import" else None
    store = Store(url, pool_size=2, connect_timeout=timeout, write_cache_kib=cache)
    try:
        async with store.reaching():
            return await _passports_command(store, settings, args)
    except SourceError as exc:
        print(f"connector: {exc}", file=sys.stderr)
        return EXIT_FAILURE
    except DatabaseUnavailable:
        raise
    except ConnectorError as exc:
        print(f"connector: {exc.message}", file=sys.stderr)
        return EXIT_FAILURE
    finally:
        await store.close()


async def _passports_command(store: Any, settings: Settings, args: argparse.Namespace) -> int:
    from connector.services import registry
    from connector.services.passports import PassportService

    service = PassportService(store, settings.effective_public_url)
    service.publish_hooks.append(registry.publish)
    command = args.passports_command
    if command == "export":
        return await _export(service, args)
    if command == "list":
        return await _list(service, args)
    if command == "show":
        return await _show(service, args)
    if command == "delete":
        return await _delete(service, args)
    return await _import(service, settings, args)


def _print_json(data: Any) -> None:
    import orjson

    print(orjson.dumps(data, option=orjson.OPT_INDENT_2).decode())


async def _export(service: Any, args: argparse.Namespace) -> int:
    from connector.services.passports import export

    record = await service.get(args.passport_id)
    _print_json(export(record.data, args.format))
    return 0


async def _list(service: Any, args: argparse.Namespace) -> int:
    from datetime import UTC, datetime

    from connector.services.passports import decode_cursor
    from connector.store.passports import PassportFilter

    spec = PassportFilter(
        battery_id=args.battery,
        model_id=args.model,
        manufacturer_id=args.manufacturer,
        category=args.category,
        changed_since=args.changed_since,
        after=decode_cursor(args.cursor) if args.cursor else None,
        include_deleted=args.include_deleted,
        limit=args.limit,
    )
    page, following = await service.list(spec)
    if args.json:
        _print_json({"items": [service.envelope(r) for r in page], "next": following})
        return 0
    print("id\tversion\tmodel\tbattery\tupdated\tdeleted")
    for record in page:
        updated = datetime.fromtimestamp(record.updated_at / 1000, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        deleted = "deleted" if record.deleted_at is not None else "-"
        print(f"{record.id}\t{record.version}\t{record.model_id or '-'}\t{record.battery_id}\t{updated}\t{deleted}")
    if following is not None:
        print(f"more: add --cursor {following} for the next page", file=sys.stderr)
    return 0


async def _show(service: Any, args: argparse.Namespace) -> int:
    from connector.services.passports import export, version_json

    def shown(data: Any) -> Any:
        return export(data, args.format) if data is not None and args.format != "node" else data

    if args.history:
        versions = await service.history(args.passport_id)
        items = [{**version_json(v), "passport": shown(v.data)} for v in versions]
        _print_json({"id": args.passport_id, "versions": items})
        return 0
    record = await service.get(args.passport_id)
    _print_json({**service.envelope(record), "passport": shown(record.data)})
    return 0


async def _delete(service: Any, args: argparse.Namespace) -> int:
    from connector.domain.errors import NotFound

    if not args.yes:
        if not sys.stdin.isatty():
            print("connector: add --yes to delete without being asked", file=sys.stderr)
            return EXIT_SETTINGS
        names = ", ".join(args.passport_ids)
        print(f"delete {names} (the history stays)? [y/N] ", end="", file=sys.stderr, flush=True)
        if sys.stdin.readline().strip().lower() not in ("y", "yes"):
            print("nothing deleted", file=sys.stderr)
            return EXIT_FAILURE
    failed = 0
    for passport_id in args.passport_ids:
        try:
            await service.delete(passport_id)
        except NotFound as exc:
            print(f"connector: {exc.message}", file=sys.stderr)
            failed += 1
        else:
            print(f"deleted {passport_id} (its history stays)")
    return EXIT_FAILURE if failed else 0


async def _import(service: Any, settings: Settings, args: argparse.Namespace) -> int:
    from concurrent.futures.process import BrokenProcessPool

    from connector.domain.json_input import JsonLimits
    from connector.services.passport_pipeline import IMPORT_BATCH, workers_for
    from connector.services.passport_sources import Source

    batch = IMPORT_BATCH if args.batch is None else args.batch
    if batch < 1:
        print("connector: --batch must be at least 1", file=sys.stderr)
        return EXIT_SETTINGS
    source = Source(args.path, JsonLimits(settings.max_body_bytes, settings.max_json_depth))
    if args.restart:
        await service.forget_import(source.key)
    start = await service.resume_position(source.key)
    if start:
        print(f"resuming an interrupted import of {args.path} after record {start:,}", file=sys.stderr)
    shown = sys.stderr.isatty() and not args.no_progress and not args.json
    bar = ProgressBar(source.estimate() if shown else None, shown)
    committed: dict[str, int] = {}

    def progress(summary: Any) -> None:
        # Called after each batch has committed: what a rerun will not import again.
        committed.update(
            position=summary.position,
            new=summary.new,
            changed=summary.changed,
            unchanged=summary.unchanged,
            refused=summary.refused,
        )
        bar(summary)

    try:
        with bar.around_logs():
            summary = await service.import_records(
                source.records(start, parse=False),
                source=source.key,
                batch=batch,
                progress=progress,
                start=start,
                limits=source.limits,
                workers=workers_for(source.size, settings.import_workers),
            )
    except asyncio.CancelledError:  # Ctrl-C: asyncio cancels the command; the batch under way is rolled back
        bar.close()
        await _interrupted(service, source.key, committed)
        return EXIT_INTERRUPTED
    except BrokenProcessPool:  # a worker was killed (out of memory, a signal): the batch under way is rolled back
        bar.close()
        await _interrupted(service, source.key, committed, "a worker process ended unexpectedly")
        print("hint: CONNECTOR_IMPORT_WORKERS=0 imports without worker processes", file=sys.stderr)
        return EXIT_FAILURE
    bar.close()
    if args.json:
        _print_json(summary.as_json())
    else:
        _print_summary(summary, start, args.show)
    if args.publish:
        published = await service.publish()
        print(
            f"published {len(published.assets)} new datasets, {len(published.contract_definitions)} new "
            "contract definitions",
            file=sys.stderr if args.json else sys.stdout,
        )
    return 0 if summary.refused == 0 else EXIT_FAILURE


def _print_summary(summary: Any, start: int, show: int) -> None:
    rate = (summary.position - start) / summary.seconds if summary.seconds > 0 else 0.0
    resumed = f" (resumed after record {summary.resumed_from:,})" if summary.resumed_from else ""
    print(
        f"{summary.read:,} read{resumed}: {summary.new:,} new, {summary.changed:,} changed, "
        f"{summary.unchanged:,} unchanged, {summary.refused:,} refused, in {summary.seconds:.1f} s "
        f"({rate:,.0f} records/s)"
    )
    shown = summary.refusals[: max(show, 0)]
    for refusal in shown:
        print(f"refused {refusal['where']}: {refusal['reason']}")
        errors = [e for e in refusal["errors"] if e["path"] is not None]
        if len(errors) > 1 or (errors and errors[0]["message"] != refusal["reason"]):
            for error in errors:
                print(f"  {error['path']}: {error['message']}")
    hidden = summary.refused - len(shown)
    if hidden > 0:
        earlier = " (with those read before the interruption, listed by that run)" if summary.resumed_from else ""
        print(f"... and {hidden:,} more refusals{earlier}")
    # Stored, but their reading tolerated something (an IDTA list given bare): said, so it can be fixed at source.
    warned = summary.warnings[: max(show, 0)]
    for record in warned:
        count = len(record["warnings"])
        print(f"warned {record['where']}: imported with {count} warning{'s' if count != 1 else ''}")
        for warning in record["warnings"]:
            print(f"  {warning['path']}: {warning['message']}")
    more = len(summary.warnings) - len(warned)
    if more > 0:
        print(f"... and {more:,} more record{'s' if more != 1 else ''} with warnings")


async def _interrupted(service: Any, source_key: str, committed: dict[str, int], why: str = "") -> None:
    try:
        async with asyncio.timeout(2):
            position = await service.resume_position(source_key)
    except (TimeoutError, ConnectorError):
        position = committed.get("position", 0)
    counts = ""
    if committed.get("position") == position:
        counts = (
            f" ({committed['new']:,} new, {committed['changed']:,} changed, {committed['unchanged']:,} unchanged, "
            f"{committed['refused']:,} refused so far)"
        )
    print(
        f"connector: import interrupted after record {position:,}{counts}{f' ({why})' if why else ''}; it is "
        "saved up to there: run the same command again to resume (--restart starts over)",
        file=sys.stderr,
    )


def _run(coroutine: Coroutine[Any, Any, int]) -> int:
    try:
        return _run_loop(coroutine)
    except DatabaseUnavailable as exc:
        print(f"connector: {exc.message}", file=sys.stderr)
        hint = "check CONNECTOR_DATABASE_URL"
        if exc.timed_out:
            hint += ", or allow a slow database more time with CONNECTOR_DATABASE_CONNECT_TIMEOUT"
        print(f"hint: {hint}", file=sys.stderr)
        return EXIT_FAILURE


def _run_loop(coroutine: Coroutine[Any, Any, int]) -> int:
    try:
        import uvloop
    except ImportError:
        return asyncio.run(coroutine)
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        return runner.run(coroutine)


async def _serve(settings: Settings) -> int:
    from connector.app import SchemaOutOfDate, serve_until_stopped
    from connector.identity.errors import KeyFileError
    from connector.transport.server import BindError

    def say(text: str) -> None:
        logs.flush()  # the log lines kept so far come first, as they happened
        print(text, file=sys.stderr, flush=True)

    def started(node: Any) -> None:
        # For a person at a terminal (or reading a text log): where the node is and what to do next.
        # JSON logs carry the same in the "node started" line, and get no free-form text between their lines.
        if sys.stderr.isatty() or settings.log_format == "text":
            say(startup_banner(node))

    try:
        await serve_until_stopped(settings, started)
    except (BindError, SchemaOutOfDate, KeyFileError) as exc:
        say(f"connector: {exc}")
        return EXIT_FAILURE
    except DatabaseUnavailable:
        logs.flush()
        raise
    except ConnectorError as exc:
        say(f"connector: cannot start: {exc.message}")
        return EXIT_FAILURE
    except OSError as exc:
        say(f"connector: cannot start: {exc}")
        return EXIT_FAILURE
    return 0


def startup_banner(node: Any) -> str:
    """Return the lines a started node prints for its operator: its addresses, its data and the next step."""
    settings: Settings = node.settings
    host = settings.protocol_host
    loopback = host == "localhost" or host.startswith("127.") or host in ("::1", "[::1]")
    reach = "reachable from this machine only" if loopback else "reachable from other hosts"
    key = " (API key required)" if settings.api_key is not None else " (loopback only, no API key)"
    header = " -H 'X-Api-Key: ...'" if settings.api_key is not None else ""
    database = "SQLite in " + str(settings.data_dir) if settings.is_sqlite else "PostgreSQL"
    return "\n".join(
        [
            f"connector: node ready, participant {settings.effective_participant_id}",
            f"  protocol surface    {node.protocol_url} (bound to {settings.protocol_host}: {reach})",
            f"  public URL          {settings.effective_public_url} (told to partners; DID {settings.effective_did})",
            f"  management surface  {node.management_url}{key}",
            f"  data                {database}; node key and issuer in {settings.data_dir}",
            f"next: curl{header} {node.management_url}/health   then README.md, 'A first asset, policy and "
            "contract definition'",
        ]
    )


async def _db(settings: Settings, action: str) -> int:
    from connector.store import migrate

    url, timeout = settings.effective_database_url, settings.database_connect_timeout
    if action == "upgrade":
        revision = await migrate.upgrade(url, connect_timeout=timeout)
        print(f"database at revision {revision}")
    else:
        print(await migrate.current(url, connect_timeout=timeout) or "none")
    return 0


def _print_settings(settings: Settings) -> None:
    for name in Settings.model_fields:
        value = getattr(settings, name)
        if name == "api_key":
            value = "(set)" if value is not None else "(unset)"
        print(f"CONNECTOR_{name.upper()}={'' if value is None else value}")
    print(f"# participant id: {settings.effective_participant_id}")
    print(f"# public URL: {settings.effective_public_url}")
    print(f"# database: {settings.effective_database_url.split('://', 1)[0]}")


if __name__ == "__main__":
    sys.exit(main())
