"""Schema migrations with Alembic, run programmatically (`connector db upgrade`, or at start on SQLite).

Alembic is imported only when a database is behind: a node starting on a database already at the newest
revision reads that revision with one query and compares it with the newest revision named in the migration
files, which costs a fraction of importing Alembic and loading every migration script (docs/decisions/0029).
"""

from __future__ import annotations

import re
import sys
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import text
from sqlalchemy.engine import Connection

from connector.store.engine import DEFAULT_CONNECT_TIMEOUT, create_engines, probe, reaching

if TYPE_CHECKING:
    from alembic.config import Config

MIGRATIONS = Path(__file__).with_name("migrations")
_REVISION = re.compile(r"""^revision\s*=\s*['"]([^'"]+)['"]""", re.MULTILINE)
_DOWN_REVISION = re.compile(r"""^down_revision\s*=\s*(?:None|['"]([^'"]+)['"])""", re.MULTILINE)


def _load_alembic() -> None:
    """Import Alembic without Pygments.

    Alembic loads Mako (the template engine of `alembic revision`), and Mako, when Pygments happens to be
    installed (a tool of the test and documentation environment, not something the node depends on), imports
    Pygments' lexers to colour its error pages: about 0.1 s of a fresh node's start for pages the node never
    renders. Pygments is kept out while Alembic is first imported, so Mako takes its plain pages; it can be
    imported as usual afterwards.
    """
    if "alembic.util" in sys.modules or "pygments" in sys.modules:
        return
    sys.modules["pygments"] = None  # type: ignore[assignment]  # import of pygments halted: ImportError
    try:
        import alembic.util  # noqa: F401
    finally:
        if "pygments" in sys.modules and sys.modules["pygments"] is None:
            del sys.modules["pygments"]


def _config(connection: Connection) -> Config:
    _load_alembic()
    from alembic.config import Config

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
            newest = quick_head() if revision == "head" else None
            if newest is not None and await connection.run_sync(_current) == newest:
                return newest
            _load_alembic()
            from alembic import command

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
    _load_alembic()
    from alembic.config import Config
    from alembic.script import ScriptDirectory

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    found = ScriptDirectory.from_config(config).get_current_head()
    assert found is not None
    return found


@cache
def quick_head() -> str | None:
    """Return the newest revision as the migration files name it, without Alembic; None when that is unclear.

    Unclear (more than one head, a file without the two assignments): the caller asks Alembic instead.
    """
    revisions: set[str] = set()
    parents: set[str] = set()
    for path in (MIGRATIONS / "versions").glob("*.py"):
        source = path.read_text()
        found = _REVISION.search(source)
        if found is None:
            if path.name == "__init__.py":
                continue
            return None
        down = _DOWN_REVISION.search(source)
        if down is None:
            return None
        revisions.add(found.group(1))
        if down.group(1):
            parents.add(down.group(1))
    heads = revisions - parents
    return heads.pop() if len(heads) == 1 else None


def _current(connection: Connection) -> str | None:
    """Return the revision in alembic_version (None when the table is absent or empty), as Alembic reads it."""
    if not connection.dialect.has_table(connection, "alembic_version"):
        return None
    rows = connection.execute(text("SELECT version_num FROM alembic_version")).scalars().all()
    if len(rows) > 1:
        raise RuntimeError(f"the database has several schema revisions ({', '.join(rows)}); expected one")
    return rows[0] if rows else None
