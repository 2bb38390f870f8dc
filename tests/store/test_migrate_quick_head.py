"""A node starting on a database already at the newest revision does not load Alembic (docs/decisions/0029)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from connector.store import migrate


def test_the_newest_revision_named_by_the_files_is_alembics_head() -> None:
    assert migrate.quick_head() == migrate.head()


async def test_a_database_behind_is_still_migrated(database_url: str) -> None:
    """Upgrading a database one revision behind the newest goes through Alembic and reaches the newest."""
    revisions = sorted(p.name.split("_", 1)[0] for p in (migrate.MIGRATIONS / "versions").glob("0*.py"))
    assert await migrate.upgrade(database_url, revisions[-2]) == revisions[-2]
    assert await migrate.current(database_url) == revisions[-2]
    assert await migrate.upgrade(database_url) == migrate.head()
    assert await migrate.current(database_url) == migrate.head()


def test_upgrading_a_database_at_the_newest_revision_does_not_import_alembic(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'connector.db'}"
    script = (
        "import asyncio, sys\n"
        "from connector.store import migrate\n"
        f"print(asyncio.run(migrate.upgrade({url!r})), 'alembic' in sys.modules)\n"
    )
    first = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    assert first.stdout.split() == [migrate.head(), "True"], first.stderr  # an empty database needs Alembic
    again = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    assert again.stdout.split() == [migrate.head(), "False"], again.stderr
