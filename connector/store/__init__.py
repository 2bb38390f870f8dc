"""The store: SQLAlchemy 2 async on SQLite (default) or PostgreSQL; the only package that speaks SQL."""

from __future__ import annotations

import sqlite3
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import make_url, text
from sqlalchemy.exc import TimeoutError as PoolTimeout
from sqlalchemy.ext.asyncio import AsyncConnection

from connector.store import changes
from connector.store.engine import (
    DEFAULT_CONNECT_TIMEOUT,
    DEFAULT_POOL_TIMEOUT,
    SQLITE_READ_BUSY_TIMEOUT_MS,
    busy,
    create_engines,
    reaching,
)
from connector.store.federation import FederationRepository
from connector.store.lifecycle import LifecycleRepository
from connector.store.negotiations import AgreementRepository, NegotiationRepository, OutboxRepository
from connector.store.passports import PassportRepository
from connector.store.registry import ShellRepository
from connector.store.repositories import (
    AssetRepository,
    ContractDefinitionRepository,
    HeldCredentialRepository,
    PolicyDefinitionRepository,
    SeenTokenRepository,
    forget_assets_changed,
    read_revisions,
    seal_assets_revision,
)
from connector.store.retention import RetentionRepository
from connector.store.sealing import PLAIN, Sealer
from connector.store.sync import SyncRepository
from connector.store.transfers import AccessLogRepository, TransferRepository, UsageRepository


@dataclass(slots=True)
class Transaction:
    """One unit of work: repositories bound to one database transaction."""

    connection: AsyncConnection
    assets: AssetRepository
    policies: PolicyDefinitionRepository
    contracts: ContractDefinitionRepository
    seen_tokens: SeenTokenRepository
    credentials: HeldCredentialRepository
    negotiations: NegotiationRepository
    agreements: AgreementRepository
    outbox: OutboxRepository
    transfers: TransferRepository
    access_log: AccessLogRepository
    passports: PassportRepository
    usage: UsageRepository
    retention: RetentionRepository
    sync: SyncRepository
    shells: ShellRepository
    lifecycle: LifecycleRepository
    federation: FederationRepository
    # Called once the transaction has committed (a cache forgetting what it changed, say).
    after_commit: list[Callable[[], None]] = field(default_factory=list)


class Store:
    """The node's database: opens transactions and hands out repositories."""

    def __init__(
        self,
        url: str,
        pool_size: int = 10,
        connect_args: dict[str, Any] | None = None,
        sealer: Sealer = PLAIN,
        connect_timeout: float = DEFAULT_CONNECT_TIMEOUT,
        pool_timeout: float = DEFAULT_POOL_TIMEOUT,
        write_cache_kib: int | None = None,
    ) -> None:
        self.url = url
        self.connect_timeout = connect_timeout
        self.pool_timeout = pool_timeout
        self._sealer = sealer
        self._write, self._read = create_engines(
            url, pool_size, connect_args, connect_timeout, pool_timeout, write_cache_kib
        )
        self._one_pool = self._read is self._write
        if self._one_pool:
            # PostgreSQL: a read runs its statements in autocommit, without BEGIN and COMMIT (two round trips a
            # read). At the store's isolation level (READ COMMITTED) every statement takes its own snapshot
            # inside a transaction too, so a read sees exactly what it saw before (docs/decisions/0032).
            self._read = self._write.execution_options(isolation_level="AUTOCOMMIT")
        # A SQLite file's change counters are read on a connection of the store's own (revisions()).
        parsed = make_url(url)
        plain_file = parsed.get_backend_name() == "sqlite" and not parsed.query and not connect_args
        self._counters_file = parsed.database if plain_file and parsed.database not in (None, "", ":memory:") else None
        self._counters: sqlite3.Connection | None = None
        # The counters last read on that connection, by names, with the database's data_version then.
        self._counters_read: dict[tuple[str, ...], tuple[int, tuple[int, ...]]] = {}

    def reaching(self) -> AbstractAsyncContextManager[None]:
        """Return a context in which a database that cannot be used raises DatabaseUnavailable naming it."""
        return reaching(self.url, self.connect_timeout)

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[Transaction]:
        """Open a write transaction: committed when the block ends, rolled back on any error.

        No connection free within the pool timeout (an overloaded node) raises DatabaseUnavailable, a 503 that
        says so, instead of SQLAlchemy's TimeoutError reaching a caller as an internal error.
        """
        try:
            connection = await self._write.connect()
        except PoolTimeout:
            raise busy(self.url, self.pool_timeout) from None
        try:
            async with connection.begin():
                tx = _bind(connection, self._sealer)
                try:
                    yield tx
                    await changes.seal(connection)  # the change feed's number, taken right before the commit
                    await seal_assets_revision(connection)  # the catalog's position maps are stale from this commit
                finally:
                    changes.forget(connection)
                    forget_assets_changed(connection)
        finally:
            await connection.close()
        for callback in tx.after_commit:
            callback()

    @asynccontextmanager
    async def read(self) -> AsyncIterator[Transaction]:
        """Open a read-only transaction (DatabaseUnavailable when no connection comes free in time, as above)."""
        try:
            connection = await self._read.connect()
        except PoolTimeout:
            raise busy(self.url, self.pool_timeout) from None
        try:
            async with connection.begin():
                yield _bind(connection, self._sealer)
        finally:
            await connection.close()

    async def revisions(self, names: tuple[str, ...]) -> tuple[int, ...]:
        """Return change counters (0 for a missing one) read by one statement that starts now, in no transaction.

        On a SQLite file the statement runs at once on the calling thread, on a read-only connection the store
        keeps for it: in WAL mode it never waits for a writer and sees every commit made before it started, in
        microseconds instead of a pooled read transaction's few hundred (a catalog request reads the counters
        every time, docs/decisions/0025). There `PRAGMA data_version` comes first: it changes whenever another
        connection commits, so while it has not changed since these counters were read, they are the answer and
        no table is read. Elsewhere, or should that connection fail, it is a pooled read.
        """
        if self._counters_file is not None:
            try:
                connection = self._counters or self._open_counters()
                version = connection.execute("PRAGMA data_version").fetchone()[0]
                kept = self._counters_read.get(names)
                if kept is not None and kept[0] == version:
                    return kept[1]
                # A commit between the two statements leaves these counters newer than `version`: the next call
                # sees another version and reads again, never an older value.
                rows = connection.execute(_counters_sql(len(names)), names).fetchall()
            except sqlite3.Error:
                self._close_counters()  # the pooled read below reports what is wrong, as every read does
            else:
                found = {name: int(value) for name, value in rows}
                answer = tuple(found.get(name, 0) for name in names)
                if len(self._counters_read) < 64 or names in self._counters_read:
                    self._counters_read[names] = (int(version), answer)
                return answer
        async with self.read() as tx:
            return await read_revisions(tx.connection, names)

    def _open_counters(self) -> sqlite3.Connection:
        assert self._counters_file is not None
        uri = Path(self._counters_file).resolve().as_uri() + "?mode=rw"  # never creates a database
        connection = sqlite3.connect(uri, uri=True, isolation_level=None, check_same_thread=False)
        try:
            connection.execute(f"PRAGMA busy_timeout={SQLITE_READ_BUSY_TIMEOUT_MS}")
            connection.execute("PRAGMA query_only=ON")
        except sqlite3.Error:
            connection.close()
            raise
        self._counters = connection
        return connection

    def _close_counters(self) -> None:
        self._counters_read.clear()  # a data_version is of one connection
        if self._counters is not None:
            self._counters.close()
            self._counters = None

    async def ping(self) -> None:
        """Run a trivial query; raise if the database cannot be reached."""
        async with self._read.connect() as connection:
            await connection.execute(text("SELECT 1"))

    async def optimize(self) -> None:
        """Let the database refresh its query-planner statistics (SQLite's PRAGMA optimize, PostgreSQL's ANALYZE)."""
        async with self._write.connect() as connection:
            if connection.dialect.name == "sqlite":
                await connection.exec_driver_sql("PRAGMA optimize=0x10002")
            else:
                await connection.exec_driver_sql("ANALYZE")
            await connection.commit()

    def pools(self) -> list[tuple[str, Any]]:
        """Return the connection pools by name: SQLite's writer's and readers', or PostgreSQL's one."""
        if self._one_pool:
            return [("main", self._write.sync_engine.pool)]
        return [("write", self._write.sync_engine.pool), ("read", self._read.sync_engine.pool)]

    async def close(self) -> None:
        """Close every pooled connection."""
        self._close_counters()
        await self._write.dispose()
        if not self._one_pool:
            await self._read.dispose()


_COUNTERS_SQL: dict[int, str] = {}


def _counters_sql(count: int) -> str:
    found = _COUNTERS_SQL.get(count)
    if found is None:
        marks = ", ".join("?" * count)  # placeholders only: the names are bound parameters
        found = _COUNTERS_SQL[count] = f"SELECT name, value FROM revisions WHERE name IN ({marks})"  # noqa: S608
    return found


def _bind(connection: AsyncConnection, sealer: Sealer = PLAIN) -> Transaction:
    return Transaction(
        connection=connection,
        assets=AssetRepository(connection, sealer),
        policies=PolicyDefinitionRepository(connection),
        contracts=ContractDefinitionRepository(connection),
        seen_tokens=SeenTokenRepository(connection),
        credentials=HeldCredentialRepository(connection),
        negotiations=NegotiationRepository(connection),
        agreements=AgreementRepository(connection),
        outbox=OutboxRepository(connection, sealer),
        transfers=TransferRepository(connection, sealer),
        access_log=AccessLogRepository(connection),
        passports=PassportRepository(connection),
        usage=UsageRepository(connection),
        retention=RetentionRepository(connection),
        sync=SyncRepository(connection, sealer),
        shells=ShellRepository(connection),
        lifecycle=LifecycleRepository(connection),
        federation=FederationRepository(connection),
    )
