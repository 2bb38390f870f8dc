"""Schema migrations with Alembic, run programmatically (`connector db upgrade`, or at start on SQLite)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy.engine import Connection

from connector.store.engine import DEFAULT_CONNECT_TIMEOUT, create_engines, probe, reaching

MIGRATIONS = Path(__file__).with_name("migrations")


def _config(connection: Connection) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes["connection"] = connection
    return config


async def upgrade(
    url: str,
    revision: str = "head",
    connect_args: dict[str, Any] | None = None,
    connect_timeout: float = DEFAULT_CONNECT_TIMEOUT,
) -> str | None:
    """Upgrade the database at `url` to `revision`; return the revision it is at afterwards.

    Raise DatabaseUnavailable (naming the database and why) when it cannot be reached within `connect_timeout`.
    """
    write, read = create_engines(url, pool_size=1, connect_args=connect_args, connect_timeout=connect_timeout)
    try:
        await probe(read, url, connect_timeout)
        async with reaching(url, connect_timeout), write.begin() as connection:
            await connection.run_sync(lambda sync: command.upgrade(_config(sync), revision))
            return await connection.run_sync(_current)
    finally:
        await write.dispose()
        if read is not write:
            await read.dispose()


async def current(
    url: str, connect_args: dict[str, Any] | None = None, connect_timeout: float = DEFAULT_CONNECT_TIMEOUT
) -> str | None:
    """Return the revision the database is at (None when never migrated); DatabaseUnavailable as `upgrade`."""
    write, read = create_engines(url, pool_size=1, connect_args=connect_args, connect_timeout=connect_timeout)
    try:
        await probe(read, url, connect_timeout)
        async with reaching(url, connect_timeout), read.connect() as connection:
            return await connection.run_sync(_current)
    finally:
        await write.dispose()
        if read is not write:
            await read.dispose()


def head() -> str:
    """Return the newest revision the code knows."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    found = ScriptDirectory.from_config(config).get_current_head()
    assert found is not None
    return found


def _current(connection: Connection) -> str | None:
    return MigrationContext.configure(connection).get_current_revision()
