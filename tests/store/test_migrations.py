"""The migrations create exactly the tables the code describes, on SQLite and on PostgreSQL."""

from __future__ import annotations

import subprocess
import sys

from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

from connector.store import migrate
from connector.store.engine import create_engines
from connector.store.tables import metadata


async def test_migrated_schema_matches_the_tables(database_url: str) -> None:
    await migrate.upgrade(database_url)
    write, read = create_engines(database_url, pool_size=1)
    try:
        async with write.connect() as connection:
            differences = await connection.run_sync(
                lambda sync: compare_metadata(MigrationContext.configure(sync, opts={"compare_type": True}), metadata)
            )
    finally:
        await write.dispose()
        if read is not write:
            await read.dispose()
    assert differences == [], differences


async def test_upgrade_is_idempotent(database_url: str) -> None:
    first = await migrate.upgrade(database_url)
    assert first == migrate.head()
    assert await migrate.upgrade(database_url) == migrate.head()


async def test_passport_data_moves_into_the_version_rows_and_back(database_url: str) -> None:
    """0009 stores each version's data once (in its version row); passports stored before keep their data."""
    import sqlalchemy as sa
    from alembic import command

    from connector.store import Store
    from connector.store.passports import PassportRecord
    from connector.store.tables import Json

    await migrate.upgrade(database_url, "0008")
    old = sa.table(
        "passports",
        *(sa.column(name) for name in ("id", "battery_id", "model_id", "manufacturer_id", "category", "version")),
        sa.column("data", Json),
        *(sa.column(name) for name in ("digest", "source_format", "created_at", "updated_at", "deleted_at")),
    )
    versions = sa.table(
        "passport_versions",
        *(sa.column(name) for name in ("passport_id", "version", "digest", "source_format", "recorded_at")),
        sa.column("data", Json),
        sa.column("deleted", sa.Boolean),
    )
    first, second = {"identity": {"passport_id": "a", "n": 1}}, {"identity": {"passport_id": "a", "n": 2}}
    gone = {"identity": {"passport_id": "b", "n": 1}}
    common = {"model_id": "m", "manufacturer_id": None, "category": None, "source_format": "node", "created_at": 1}
    write, read = create_engines(database_url, pool_size=1)
    try:
        async with write.begin() as connection:
            await connection.execute(
                sa.insert(old),
                [
                    {"id": "a", "battery_id": "A", "version": 2, "data": second, "digest": "d2", **common,
                     "updated_at": 2, "deleted_at": None},
                    {"id": "b", "battery_id": "B", "version": 2, "data": gone, "digest": "d1", **common,
                     "updated_at": 2, "deleted_at": 2},
                ],
            )  # fmt: skip
            await connection.execute(
                sa.insert(versions),
                [
                    {**row, "source_format": "node", "recorded_at": 1}
                    for row in (
                        {"passport_id": "a", "version": 1, "data": first, "digest": "d1", "deleted": False},
                        {"passport_id": "a", "version": 2, "data": second, "digest": "d2", "deleted": False},
                        {"passport_id": "b", "version": 1, "data": gone, "digest": "d1", "deleted": False},
                        {"passport_id": "b", "version": 2, "data": None, "digest": "d1", "deleted": True},
                    )
                ],
            )
    finally:
        await write.dispose()
        if read is not write:
            await read.dispose()

    assert await migrate.upgrade(database_url) == migrate.head()
    store = Store(database_url, pool_size=1)
    try:
        async with store.read() as tx:
            current = await tx.passports.get("a")
            deleted = await tx.passports.get("b", include_deleted=True)
            assert await tx.passports.get("b") is None
            history = await tx.passports.history("a")
        assert current is not None and (current.version, current.data) == (2, second)
        assert deleted is not None and (deleted.version, deleted.data, deleted.deleted_at) == (2, gone, 2)
        assert [(v.version, v.data) for v in history] == [(1, first), (2, second)]
        again = {"identity": {"passport_id": "b", "n": 3}}
        async with store.transaction() as tx:
            record = PassportRecord("b", "B", "m", None, None, again, "d3", "node")
            assert await tx.passports.put_many([record], 3) == ["updated"]
        async with store.read() as tx:
            stored = await tx.passports.get("b")
        assert stored is not None and (stored.version, stored.data) == (3, again)
    finally:
        await store.close()

    # Downgrading copies the current data back into the passports rows.
    write, read = create_engines(database_url, pool_size=1)
    try:
        async with write.begin() as connection:
            await connection.run_sync(lambda sync: command.downgrade(migrate._config(sync), "0008"))
            rows = (await connection.execute(sa.select(old.c.id, old.c.version, old.c.data).order_by(old.c.id))).all()
    finally:
        await write.dispose()
        if read is not write:
            await read.dispose()
    assert [tuple(row) for row in rows] == [("a", 2, second), ("b", 3, again)]


def test_alembic_is_loaded_without_pygments_and_pygments_still_imports_afterwards() -> None:
    # Mako (under Alembic) would import Pygments' lexers to colour error pages the node never renders.
    code = (
        "import sys\n"
        "from connector.store import migrate\n"
        "migrate.head()\n"
        "print('alembic.util' in sys.modules, 'pygments' in sys.modules)\n"
        "import pygments\n"
        "print(pygments.__name__)\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    assert result.stdout.split() == ["True", "False", "pygments"]
