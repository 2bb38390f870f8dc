"""The migrations create exactly the tables the code describes, on SQLite and on PostgreSQL."""

from __future__ import annotations

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
