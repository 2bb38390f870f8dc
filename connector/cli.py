"""The `connector` command: serve a node, migrate its database, show its settings."""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Coroutine, Sequence
from pathlib import Path
from typing import Any

from connector import __version__, logs
from connector.domain.errors import ConnectorError
from connector.settings import Settings, SettingsError, load_settings, setting_names

EXIT_SETTINGS = 2
EXIT_FAILURE = 1


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

    show = commands.add_parser("settings", help="print the effective settings (secrets hidden)")
    show.add_argument("--config", type=Path, metavar="FILE")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; return the exit status."""
    args = _parser().parse_args(argv)
    try:
        settings = load_settings(args.config)
    except SettingsError as exc:
        print(f"connector: invalid setting: {exc}", file=sys.stderr)
        return EXIT_SETTINGS
    logs.configure(settings.log_level, settings.log_format)
    if args.command == "serve":
        return _run(_serve(settings))
    if args.command == "db":
        return _run(_db(settings, args.db_command))
    if args.command == "settings":
        _print_settings(settings)
        return 0
    return EXIT_FAILURE


def _run(coroutine: Coroutine[Any, Any, int]) -> int:
    try:
        import uvloop

        with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
            return runner.run(coroutine)
    except ImportError:
        return asyncio.run(coroutine)


async def _serve(settings: Settings) -> int:
    from connector.app import SchemaOutOfDate, serve_until_stopped
    from connector.identity.errors import KeyFileError
    from connector.transport.server import BindError

    try:
        await serve_until_stopped(settings)
    except (BindError, SchemaOutOfDate, KeyFileError) as exc:
        print(f"connector: {exc}", file=sys.stderr)
        return EXIT_FAILURE
    except ConnectorError as exc:
        print(f"connector: cannot start: {exc.message}", file=sys.stderr)
        return EXIT_FAILURE
    except OSError as exc:
        print(f"connector: cannot start: {exc}", file=sys.stderr)
        return EXIT_FAILURE
    return 0


async def _db(settings: Settings, action: str) -> int:
    from connector.store import migrate

    url = settings.effective_database_url
    try:
        if action == "upgrade":
            revision = await migrate.upgrade(url)
            print(f"database at revision {revision}")
        else:
            print(await migrate.current(url) or "none")
    except OSError as exc:
        print(f"connector: cannot reach the database: {exc}", file=sys.stderr)
        return EXIT_FAILURE
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
