"""Hot-path statements run straight on SQLite's or asyncpg's connection, compiled by SQLAlchemy once (decisions
0027 and 0032).

A negotiation step makes about 25 statements on each node, and SQLAlchemy's execution of one (its execution
context, events, parameter and result processing, the greenlet hand-over of the async layer) costs about
140 us of CPU where SQLite's own work is about 5 us. On SQLite every statement of a transaction already runs
on the event loop's thread (`engine.InlineSqlite`, `engine.InlineWriteSqlite`), so a constant statement can be
run on the `sqlite3` connection directly: SQLAlchemy compiles it once per dialect and set of parameter names
(the same SQL it would send), and its own bind and result processors convert the values (JSON through orjson,
booleans), so what is stored and read back is what SQLAlchemy would store and read.

A statement goes the direct way only inside a transaction SQLAlchemy has begun on an inline SQLite connection
(a writer only once it holds the write lock), and only when nothing in it needs SQLAlchemy at execution time
(defaults computed per row, expanding or literal parameters, RETURNING). Anything else (a statement outside a
transaction) takes SQLAlchemy's path. A statement that fails on the direct path is run again through
SQLAlchemy: a failed SQLite statement changes nothing, and SQLAlchemy then raises its own error for it
(IntegrityError, OperationalError) exactly as before.

On PostgreSQL the same statements run on the asyncpg connection under SQLAlchemy's adapter once the adapter has
begun its transaction (the first statement of a transaction takes SQLAlchemy's path, which sends BEGIN), or at
once in a read's autocommit: 137 -> 50 us of CPU a statement. There a failed statement aborts the transaction
and cannot be run again: its error goes through the adapter's translation and SQLAlchemy's `DBAPIError.instance`,
so callers get the exception class SQLAlchemy would raise (IntegrityError for a unique violation), and a lost
connection is invalidated, as SQLAlchemy does.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy.engine import Dialect
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.sql import Executable

from connector.store.engine import WRITER_YIELD_EVERY, InlineSqlite, InlineWriteSqlite


@dataclass(frozen=True, slots=True)
class _Prepared:
    sql: str
    # The parameter names in the order of the SQL's `?`, each with SQLAlchemy's bind processor (or None).
    binds: tuple[tuple[str, Callable[[Any], Any] | None], ...]
    # The result columns' names, each with SQLAlchemy's result processor (or None); empty for a statement
    # that returns no rows.
    columns: tuple[tuple[str, Callable[[Any], Any] | None], ...]

    def values(self, parameters: Mapping[str, Any]) -> list[Any]:
        """Return the statement's parameter values in the SQL's order, each through its bind processor."""
        return [parameters[name] if process is None else process(parameters[name]) for name, process in self.binds]


# (dialect, statement, parameter names) -> the statement prepared, or None where it must take SQLAlchemy's path.
# Keyed by identity: the statements are module-level constants, kept alive here with their entry.
_PREPARED: dict[tuple[int, int, tuple[str, ...]], tuple[Executable, _Prepared | None]] = {}


def _prepare(dialect: Dialect, statement: Executable, names: tuple[str, ...]) -> _Prepared | None:
    compiled: Any = statement.compile(dialect=dialect, column_keys=list(names))  # type: ignore[attr-defined]
    if (
        not compiled.positional
        or compiled.insert_prefetch
        or compiled.update_prefetch
        or compiled.literal_execute_params
        or compiled.post_compile_params
        or compiled.escaped_bind_names
        or compiled.effective_returning
        or compiled.positiontup is None
    ):
        return None
    processors = compiled._bind_processors
    binds = tuple((name, processors.get(name)) for name in compiled.positiontup)
    if any(name not in names for name, _ in binds):
        return None  # a parameter the caller does not give (SQLAlchemy would fill in a default)
    columns = tuple(
        (entry.keyname, entry.type._cached_result_processor(dialect, None)) for entry in compiled._result_columns
    )
    return _Prepared(compiled.string, binds, columns)


def _prepared(dialect: Dialect, statement: Executable, parameters: Mapping[str, Any]) -> _Prepared | None:
    names = tuple(sorted(parameters))
    key = (id(dialect), id(statement), names)
    found = _PREPARED.get(key)
    if found is None:
        found = (statement, _prepare(dialect, statement, names))
        _PREPARED[key] = found
    return found[1]


def _inline(connection: AsyncConnection) -> tuple[InlineSqlite, sqlite3.Connection] | None:
    """Return the inline SQLite connection under `connection` if a statement may run on it at once, else None."""
    if connection.dialect.name != "sqlite":
        return None
    sync = connection.sync_connection
    if sync is None or not sync.in_transaction() or sync.invalidated:
        return None
    driver = getattr(sync.connection.dbapi_connection, "_connection", None)
    if not isinstance(driver, InlineSqlite) or driver._connection is None or driver.worker_busy:
        return None  # a call still running on aiosqlite's thread: SQLAlchemy's path waits for it
    raw = driver._connection
    if not raw.in_transaction:
        return None  # a writer's statement outside BEGIN IMMEDIATE may wait for the lock: aiosqlite's thread
    return driver, raw


async def _run(
    connection: AsyncConnection, statement: Executable, parameters: Mapping[str, Any]
) -> tuple[sqlite3.Cursor, _Prepared] | None:
    inline = _inline(connection)
    if inline is None:
        return None
    prepared = _prepared(connection.dialect, statement, parameters)
    if prepared is None:
        return None
    driver, raw = inline
    if isinstance(driver, InlineWriteSqlite):
        # As the writer's own inline statements: let the loop run once every so many in a row.
        driver._inline_run += 1
        if driver._inline_run >= WRITER_YIELD_EVERY:
            driver._inline_run = 0
            await asyncio.sleep(0)
    values = prepared.values(parameters)
    try:
        return raw.execute(prepared.sql, values), prepared
    except sqlite3.Error:
        return None  # SQLAlchemy runs it again and raises its own error for it


def _asyncpg(connection: AsyncConnection) -> Any:
    """Return the asyncpg connection under `connection` if a statement may run on it directly, else None.

    It may when SQLAlchemy's asyncpg adapter has begun its transaction (a statement run before it would run
    outside the transaction) or the connection is in autocommit (the store's reads, decision 0032).
    """
    if connection.dialect.name != "postgresql" or connection.dialect.driver != "asyncpg":
        return None
    sync = connection.sync_connection
    if sync is None or sync.invalidated:
        return None
    adapter = sync.connection.dbapi_connection
    if getattr(adapter, "isolation_level", None) != "autocommit" and getattr(adapter, "_transaction", None) is None:
        return None  # the transaction's first statement: SQLAlchemy's adapter sends BEGIN with it
    return adapter


async def _on_postgres(
    connection: AsyncConnection, statement: Executable, parameters: Mapping[str, Any], rows: bool
) -> tuple[Any, _Prepared] | None:
    """Run a statement on asyncpg directly; return (its rows, or its status line, and how it was prepared).

    None where it must take SQLAlchemy's path. An error is raised as SQLAlchemy raises it (IntegrityError for a
    unique violation, and so on, with the connection invalidated when it was lost), since on PostgreSQL a failed
    statement aborts the transaction and cannot be run again.
    """
    adapter = _asyncpg(connection)
    if adapter is None:
        return None
    prepared = _prepared(connection.dialect, statement, parameters)
    if prepared is None:
        return None
    values = prepared.values(parameters)
    raw = adapter._connection
    try:
        try:
            # asyncpg prepares each statement once per connection (its own statement cache).
            found = await (raw.fetch(prepared.sql, *values) if rows else raw.execute(prepared.sql, *values))
        except Exception as exc:
            adapter._handle_exception(exc)  # raises the adapter's DB-API error for it
            raise
    except adapter.dbapi.Error as error:
        invalidated = connection.dialect.is_disconnect(error, adapter, None)
        if invalidated:
            await connection.invalidate(error)
        raise DBAPIError.instance(
            prepared.sql, values, error, adapter.dbapi.Error, connection_invalidated=invalidated
        ) from None
    return found, prepared


def _count(status: str) -> int:
    """Return the row count of asyncpg's status line ("UPDATE 1", "INSERT 0 1", "DELETE 3")."""
    last = status.rpartition(" ")[2]
    return int(last) if last.isdigit() else 0


async def execute(connection: AsyncConnection, statement: Executable, parameters: Mapping[str, Any]) -> int:
    """Run a statement that returns no rows; return its row count."""
    ran = await _run(connection, statement, parameters)
    if ran is not None:
        return int(ran[0].rowcount)
    direct = await _on_postgres(connection, statement, parameters, rows=False)
    if direct is not None:
        return _count(direct[0])
    return int((await connection.execute(statement, dict(parameters))).rowcount)


def _mapping(prepared: _Prepared, row: tuple[Any, ...]) -> dict[str, Any]:
    return {
        name: value if process is None else process(value)
        for (name, process), value in zip(prepared.columns, row, strict=True)
    }


async def first(
    connection: AsyncConnection, statement: Executable, parameters: Mapping[str, Any]
) -> Mapping[Any, Any] | None:
    """Return the first row of a query as a mapping of column names (None when there is none)."""
    ran = await _run(connection, statement, parameters)
    if ran is None:
        direct = await _on_postgres(connection, statement, parameters, rows=True)
        if direct is not None:
            found, prepared = direct
            return _mapping(prepared, tuple(found[0])) if found else None
        return (await connection.execute(statement, dict(parameters))).mappings().first()
    cursor, prepared = ran
    try:
        row = cursor.fetchone()
    finally:
        cursor.close()
    return None if row is None else _mapping(prepared, row)


async def scalars(connection: AsyncConnection, statement: Executable, parameters: Mapping[str, Any]) -> list[Any]:
    """Return the first column of every row of a query."""
    ran = await _run(connection, statement, parameters)
    if ran is None:
        direct = await _on_postgres(connection, statement, parameters, rows=True)
        if direct is not None:
            found, prepared = direct
            _, process = prepared.columns[0]
            return [row[0] if process is None else process(row[0]) for row in found]
        return list((await connection.execute(statement, dict(parameters))).scalars())
    cursor, prepared = ran
    _, process = prepared.columns[0]
    return [row[0] if process is None else process(row[0]) for row in cursor.fetchall()]
