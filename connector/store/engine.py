"""Database engines: SQLite (WAL, busy timeout, immediate write transactions) or PostgreSQL (asyncpg).

On SQLite, reads run on the event loop's thread (see InlineSqlite and docs/decisions/0006-sqlite-inline-reads.md);
so do a write transaction's statements (InlineWriteSqlite): only a BEGIN that must wait for another process's
write lock and the commit (which may checkpoint, with fsyncs) keep aiosqlite's worker thread. Every transaction's
BEGIN runs on the SQLite connection itself (`_begin_inline`), and a negotiation's hot statements too (`direct`).
The two threads never use one connection at once, even after a caller was cancelled (`_WorkerQueue`).

A database that cannot be used is reported as DatabaseUnavailable, one line naming the database (driver,
host, port, name; never the password) and why: `reaching` translates the drivers' errors, and `probe`
opens the first connection within the connect timeout (also asyncpg's own connect timeout).
"""

from __future__ import annotations

import asyncio
import socket
import sqlite3
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import aiosqlite
import orjson
from sqlalchemy import event
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError, DataError, DBAPIError, DisconnectionError, IntegrityError, ProgrammingError
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from connector.domain.errors import DatabaseUnavailable

SQLITE_BUSY_TIMEOUT_MS = 5000
# Reads run on the event loop's thread: a reader that finds the database busy (WAL recovery after a crash,
# an outside tool's checkpoint; never an ordinary writer) waits this long at most, not the writers' 5 s.
SQLITE_READ_BUSY_TIMEOUT_MS = 250
DEFAULT_CONNECT_TIMEOUT = 5.0
POSTGRES_PORT = 5432
# A pooled PostgreSQL connection idle longer than this is checked (pinged) before a transaction gets it.
IDLE_PING_SECONDS = 10.0


@dataclass(frozen=True, slots=True)
class EncodedJSON:
    """A JSON column's value encoded already, stored as it is: one encoding for several rows."""

    text: str


def encode_json(value: Any) -> EncodedJSON:
    """Encode a value for JSON columns once (a passport's data goes to its row and to its version's)."""
    return EncodedJSON(_encode(value))


def _encode(value: Any) -> str:
    return orjson.dumps(value, option=orjson.OPT_NON_STR_KEYS).decode()


def _to_json(value: Any) -> str:
    return value.text if type(value) is EncodedJSON else _encode(value)


# JSON columns through orjson (the standard library's decoder was the largest single cost of reading a passport).
_JSON: dict[str, Any] = {"json_serializer": _to_json, "json_deserializer": orjson.loads}


def describe(url: str) -> str:
    """Name a database for a person: driver, host, port and name (or the SQLite file), never a password."""
    try:
        parsed = make_url(url)
    except ArgumentError:
        return "(an unreadable database URL)"
    if parsed.get_backend_name() == "sqlite":
        return f"{parsed.drivername}:///{parsed.database or ':memory:'}"
    # The query is left out: it may carry a password (?password=...) or other connection secrets.
    user = f"{parsed.username}@" if parsed.username else ""
    return f"{parsed.drivername}://{user}{_endpoint(parsed)}/{parsed.database or ''}"


def _endpoint(parsed: URL) -> str:
    return f"{parsed.host or 'localhost'}:{parsed.port or POSTGRES_PORT}"


def _reason(exc: BaseException, url: str, timeout: float) -> str:
    parsed = make_url(url)
    if isinstance(exc, TimeoutError):
        return f"no answer within {timeout:g} s (is it a database server, and reachable?)"
    if isinstance(exc, socket.gaierror):
        return f"host {parsed.host!r} not found ({exc.strerror})"
    if isinstance(exc, ConnectionRefusedError) or "Connect call failed" in str(exc):
        return f"connection refused (nothing listens on {_endpoint(parsed)})"
    if isinstance(exc, DBAPIError):
        driver_error = exc.orig if exc.orig is not None else exc
        text = (str(driver_error).strip().splitlines() or [""])[0]
        if text == "file is not a database":
            return "the file is not a SQLite database (corrupt, or another kind of file)"
        if text == "unable to open database file":
            return "the file cannot be opened (a directory stands in its place, or it is not readable)"
        return text or type(driver_error).__name__
    if isinstance(exc, OSError):
        where = f" ({exc.filename})" if exc.filename else ""
        return f"{exc.strerror or str(exc) or type(exc).__name__}{where}"
    return str(exc) or type(exc).__name__


def unavailable(url: str, exc: BaseException, timeout: float) -> DatabaseUnavailable:
    """Return the DatabaseUnavailable that says which database failed and why."""
    return DatabaseUnavailable(
        f"database {describe(url)}: {_reason(exc, url, timeout)}", timed_out=isinstance(exc, TimeoutError)
    )


# Errors of the node's own SQL (a bug, not a database that cannot be used) keep their traceback.
_OWN_ERRORS = (IntegrityError, ProgrammingError, DataError)


def _is_database_failure(exc: BaseException) -> bool:
    if isinstance(exc, DBAPIError):
        return not isinstance(exc, _OWN_ERRORS)
    if isinstance(exc, BrokenPipeError):
        return False  # a pipe of the process (stdout's reader has gone), not the database's socket
    # What asyncpg raises when it cannot connect: refused, reset, unknown host, no answer, or an OSError
    # gathering several of those (one per address of the host).
    return isinstance(exc, ConnectionError | TimeoutError | socket.gaierror) or (
        type(exc) is OSError and exc.errno is None
    )


@asynccontextmanager
async def reaching(url: str, connect_timeout: float = DEFAULT_CONNECT_TIMEOUT) -> AsyncIterator[None]:
    """Turn a failure to reach, open or read the database inside the block into DatabaseUnavailable."""
    try:
        yield
    except (OSError, DBAPIError) as exc:
        if not _is_database_failure(exc):
            raise
        raise unavailable(url, exc, connect_timeout) from None


async def probe(engine: AsyncEngine, url: str, connect_timeout: float = DEFAULT_CONNECT_TIMEOUT) -> None:
    """Open a connection and read the schema within the timeout; raise DatabaseUnavailable naming the database."""
    statement = "SELECT count(*) FROM sqlite_master" if engine.dialect.name == "sqlite" else "SELECT 1"
    async with reaching(url, connect_timeout):
        try:
            async with asyncio.timeout(connect_timeout), engine.connect() as connection:
                # SQLite opens any file lazily: reading the schema is what finds a corrupt one.
                await connection.exec_driver_sql(statement)
        except TimeoutError as exc:
            raise unavailable(url, exc, connect_timeout) from None


# How long a transaction waits for a pooled connection (SQLAlchemy's default) before the store says it is busy.
DEFAULT_POOL_TIMEOUT = 30.0


def busy(url: str, waited: float) -> DatabaseUnavailable:
    """Return the error of a transaction that found no free connection in time (an overload, not an outage)."""
    return DatabaseUnavailable(
        f"database {describe(url)}: no connection came free within {waited:g} s; the node is busier than its "
        "pool (CONNECTOR_DATABASE_POOL_SIZE) and its one SQLite writer serve. Try again later",
        timed_out=True,
    )


def create_engines(
    url: str,
    pool_size: int = 10,
    connect_args: dict[str, Any] | None = None,
    connect_timeout: float = DEFAULT_CONNECT_TIMEOUT,
    pool_timeout: float = DEFAULT_POOL_TIMEOUT,
    write_cache_kib: int | None = None,
) -> tuple[AsyncEngine, AsyncEngine]:
    """Return (write engine, read engine). On PostgreSQL both are the same engine.

    `pool_timeout`: how long a transaction waits for a free connection before Store reports the database busy.
    `write_cache_kib`: on SQLite, the write connection's page cache (SQLite's default is 2,000 KiB), for a
    process that writes in bulk (`connector passports import`, decision 0019).
    """
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        database = parsed.database or ""
        if database and database != ":memory:":
            try:
                Path(database).parent.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise DatabaseUnavailable(
                    f"database {describe(url)}: its directory cannot be made ({exc.strerror}: {exc.filename})"
                ) from None
        # SQLite has one writer at a time: one write connection per process makes writers queue fairly in
        # asyncio instead of sleeping in SQLite's busy handler (which stalled writers for seconds under load).
        write = create_async_engine(
            url,
            pool_size=1,
            max_overflow=0,
            pool_timeout=pool_timeout,
            async_creator=partial(_inline_writer, database or ":memory:"),
            **_JSON,
        )
        read = create_async_engine(
            url,
            pool_size=pool_size,
            max_overflow=0,
            pool_timeout=pool_timeout,
            async_creator=partial(_inline_connection, database or ":memory:"),
            **_JSON,
        )
        _configure_sqlite(write, immediate=True, busy_ms=SQLITE_BUSY_TIMEOUT_MS, cache_kib=write_cache_kib)
        _configure_sqlite(read, immediate=False, busy_ms=SQLITE_READ_BUSY_TIMEOUT_MS)
        return write, read
    engine = create_async_engine(
        url,
        pool_size=pool_size,
        # No overflow: connections beyond the pool's size were closed as soon as they came back, so a node
        # busier than its pool opened a connection (TLS attempt, authentication, type introspection, a cold
        # statement cache) for a third of its negotiations; and more connections only made the server's
        # backends contend for the same cores (docs/decisions/0032-postgresql-pool.md).
        max_overflow=0,
        pool_timeout=pool_timeout,
        # asyncpg's own connect timeout is 60 s; a silent server should not hold a start-up that long.
        connect_args={"timeout": connect_timeout, **(connect_args or {})},
        **_JSON,
    )
    _ping_when_idle(engine)
    return engine, engine


def _ping_when_idle(engine: AsyncEngine) -> None:
    """Check a pooled PostgreSQL connection before use only when it has been idle for IDLE_PING_SECONDS.

    SQLAlchemy's `pool_pre_ping` checks every checkout, and on asyncpg its ping is three round trips (BEGIN, an
    empty query, ROLLBACK): 7.7 % of a provider's CPU in a negotiation benchmark, before each of a negotiation
    step's transactions. A connection in steady use has just proved itself; one that sat idle may have been
    closed by the server, a restart or a firewall, and gets the ping. One that fails it is replaced at once (the
    pool's DisconnectionError), so a transaction never starts on it. A connection that dies while in use fails
    its statement as before; SQLAlchemy then invalidates every connection of the pool opened before.
    """
    sync_engine = engine.sync_engine
    dialect = sync_engine.dialect

    @event.listens_for(sync_engine, "checkin")
    def _on_checkin(_dbapi_connection: Any, record: Any) -> None:
        record.info["returned"] = time.monotonic()

    @event.listens_for(sync_engine, "checkout")
    def _on_checkout(dbapi_connection: Any, record: Any, _proxy: Any) -> None:
        returned = record.info.get("returned")
        if returned is None or time.monotonic() - returned < IDLE_PING_SECONDS:
            return  # just opened, or back from a transaction a moment ago
        try:
            dialect.do_ping(dbapi_connection)
        except Exception as exc:
            raise DisconnectionError(f"an idle connection failed its ping: {exc}") from exc


def _configure_sqlite(engine: AsyncEngine, immediate: bool, busy_ms: int, cache_kib: int | None = None) -> None:
    sync_engine = engine.sync_engine

    @event.listens_for(sync_engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Let SQLAlchemy, not the driver, decide when transactions begin.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        # 8 KiB pages for a new database (an existing one keeps its own; decision 0027, fifth round). A commit
        # writes every page it changed to the WAL, whole, and a checkpoint writes it again: with 16 KiB pages a
        # negotiation wrote about 1 MB a node for a few hundred bytes of rows; 8 KiB halves that, while a
        # passport's JSON (10-17 KB) spans two or three pages and an import of 100,000 runs at the same rate.
        cursor.execute("PRAGMA page_size=8192")
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute(f"PRAGMA busy_timeout={busy_ms}")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA synchronous=NORMAL")
        # LIKE is case-sensitive on PostgreSQL; make SQLite agree (ilike is the case-insensitive one).
        cursor.execute("PRAGMA case_sensitive_like=ON")
        if cache_kib is not None:
            cursor.execute(f"PRAGMA cache_size=-{int(cache_kib)}")  # negative: KiB, not pages
        cursor.close()

    begin = "BEGIN IMMEDIATE" if immediate else "BEGIN"

    @event.listens_for(sync_engine, "begin")
    def _on_begin(connection: Any) -> None:
        # Writers take the lock up front so a read-then-write never fails on lock upgrade.
        if not _begin_inline(connection, begin):
            connection.exec_driver_sql(begin)


class _WorkerQueue:
    """aiosqlite's queue to a connection's worker thread, counting the calls handed over and the calls ended.

    The worker thread takes its calls from aiosqlite's own queue (it holds that object); this stands in front of
    it as the connection's `_tx`, so that every call handed to the thread (aiosqlite's, and SQLAlchemy's
    isolation-level switch, which uses the queue directly) is counted when it ends, however its caller stopped
    waiting. A task cancelled while its statement or commit runs on the thread stops waiting, but the thread
    goes on with the call; until it ends, nothing else may touch the `sqlite3` connection.
    """

    __slots__ = ("_queue", "ended", "handed")

    def __init__(self, queue: Any) -> None:
        self._queue = queue
        self.handed = 0
        self.ended = 0

    def put_nowait(self, item: tuple[Any, Callable[[], Any]]) -> None:
        future, function = item

        def call() -> Any:
            try:
                return function()
            finally:
                self.ended += 1  # only the worker thread writes `ended`

        self.handed += 1
        self._queue.put_nowait((future, call))

    @property
    def busy(self) -> bool:
        """Whether the worker thread has a call in hand or queued."""
        return self.handed != self.ended


class InlineSqlite(aiosqlite.Connection):
    """aiosqlite's connection with each statement run at once on the calling (event loop) thread.

    aiosqlite hands every call to a worker thread and back: a read transaction through SQLAlchemy makes nine
    such trips (about 0.2 ms each on a small machine, and each takes the GIL back and forth), where the
    SQLite work itself is a few microseconds. Readers in WAL mode do not wait for writers, so running reads
    inline blocks the loop only for the statement's own work. Connecting, closing and SQLAlchemy's
    isolation-level switch still go through the worker thread, which otherwise sleeps.

    One `sqlite3` connection is never used by two threads at once: a call on the loop's thread first waits
    until the worker thread has ended what it was handed (`_worker_idle`), and closing is queued behind it on
    that thread. A caller cancelled while its call runs on the worker thread leaves that call running there;
    closing the connection beside it (as SQLAlchemy does with a connection whose task was cancelled) crashed
    the interpreter in CPython's sqlite3 module, which reads the closed connection's handle when the
    statement ends (decision 0006, "One thread at a time").
    """

    def __init__(self, connector: Callable[[], sqlite3.Connection], iter_chunk_size: int) -> None:
        super().__init__(connector, iter_chunk_size)
        self._tx: Any = _WorkerQueue(self._tx)  # the worker thread keeps aiosqlite's queue itself

    @property
    def worker_busy(self) -> bool:
        """Whether aiosqlite's worker thread is running (or has queued) a call on this connection."""
        return bool(self._tx.busy)

    def _closes(self, fn: Callable[..., Any]) -> bool:
        """Whether `fn` closes the `sqlite3` connection itself (not one of its cursors)."""
        return getattr(fn, "__name__", "") == "close" and getattr(fn, "__self__", None) is self._connection

    async def _worker_idle(self) -> None:
        """Wait until the worker thread has ended every call handed to it (a cancelled caller's too)."""
        delay = 0.0005
        while self._tx.busy and self._thread.is_alive():
            await asyncio.sleep(delay)
            delay = min(delay * 2, 0.01)

    async def _execute(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        if not self._running or not self._connection:
            raise ValueError("Connection closed")
        if self._closes(fn):
            # On the worker thread, after anything still running there; it may also checkpoint the WAL.
            return await aiosqlite.Connection._execute(self, fn, *args, **kwargs)  # type: ignore[no-untyped-call]
        if self._tx.busy:
            await self._worker_idle()
            if not self._running or not self._connection:
                raise ValueError("Connection closed")
        return fn(*args, **kwargs)


# An inline writer lets the loop run other tasks after this many statements in a row (a bulk write in one
# transaction would otherwise hold the loop for its whole length).
WRITER_YIELD_EVERY = 64


class InlineWriteSqlite(InlineSqlite):
    """The writer's connection: a write transaction runs on the loop's thread unless it must wait for a lock.

    In WAL mode a writer waits for another connection only to take the write lock, which `BEGIN IMMEDIATE` does;
    once it holds the lock no statement of its transaction waits for anyone. So BEGIN is first tried inline
    without a busy wait, and only when another process holds the lock (the import command, a second replica, a
    backup) does it go to aiosqlite's worker thread to wait there, up to the busy timeout. The commit keeps the
    worker thread (it may run a checkpoint, with fsyncs), and so do statements outside a transaction (PRAGMAs at
    connect, autocommit statements). A negotiation step's transaction then makes one hand-over to the worker
    thread instead of two per statement, each queued behind everything else the loop has to do
    (docs/decisions/0027-negotiation-throughput.md).
    """

    _inline_run = 0

    async def _execute(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        if self._closes(fn):
            return await super()._execute(fn, *args, **kwargs)  # queued behind the worker thread's calls
        if self._tx.busy:
            await self._worker_idle()  # nothing below may run beside a call on the worker thread
        connection = self._connection
        if connection is None:
            return await aiosqlite.Connection._execute(self, fn, *args, **kwargs)  # type: ignore[no-untyped-call]
        name = getattr(fn, "__name__", "")
        # Only a statement can wait for a lock (a new cursor, a fetch or a rollback never does); a commit may run
        # an automatic checkpoint, whose fsyncs take milliseconds (over 100 ms seen on a loaded disk).
        statement = name in ("execute", "executemany", "executescript")
        if name == "commit" or (statement and not connection.in_transaction):
            self._inline_run = 0
            if name == "execute" and args and isinstance(args[0], str) and args[0].startswith("BEGIN"):
                begun, result = _begin_at_once(connection, partial(fn, *args, **kwargs))
                if begun:
                    return result
            return await aiosqlite.Connection._execute(self, fn, *args, **kwargs)  # type: ignore[no-untyped-call]
        self._inline_run += 1
        if self._inline_run >= WRITER_YIELD_EVERY:
            self._inline_run = 0
            await asyncio.sleep(0)
        return await super()._execute(fn, *args, **kwargs)


def _begin_inline(connection: Any, begin: str) -> bool:
    """Run a transaction's BEGIN on the inline SQLite connection itself; return False where it must not (or failed).

    SQLAlchemy's execution of the statement cost as much CPU as a query (about 100 us, where SQLite takes a few);
    a writer's BEGIN IMMEDIATE is run as `InlineWriteSqlite` runs it, at once only if no other connection holds
    the write lock. Where this returns False, `exec_driver_sql` runs it as before (waiting for the lock on
    aiosqlite's thread, raising SQLAlchemy's error for a failure).
    """
    driver = getattr(connection.connection.dbapi_connection, "_connection", None)
    if not isinstance(driver, InlineSqlite) or driver._connection is None or not driver._running:
        return False
    if driver.worker_busy:
        return False  # `exec_driver_sql` waits for the worker thread's call to end first
    raw = driver._connection
    try:
        if isinstance(driver, InlineWriteSqlite):
            driver._inline_run = 0
            begun, _ = _begin_at_once(raw, partial(raw.execute, begin))
            return begun
        raw.execute(begin)
    except sqlite3.Error:
        return False
    return True


def _begin_at_once(connection: sqlite3.Connection, begin: Callable[[], Any]) -> tuple[bool, Any]:
    """Run a BEGIN if no other connection holds the write lock: (True, its result); (False, None) if one does."""
    connection.execute("PRAGMA busy_timeout=0")
    try:
        return True, begin()
    except sqlite3.OperationalError as exc:
        if "locked" not in str(exc) and "busy" not in str(exc):
            raise
        return False, None
    finally:
        connection.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")


async def _inline_connection(database: str) -> InlineSqlite:
    return await _open(InlineSqlite, database, SQLITE_READ_BUSY_TIMEOUT_MS)


async def _inline_writer(database: str) -> InlineSqlite:
    return await _open(InlineWriteSqlite, database, SQLITE_BUSY_TIMEOUT_MS)


async def _open(kind: type[InlineSqlite], database: str, busy_ms: int) -> InlineSqlite:
    connect = partial(sqlite3.connect, database, check_same_thread=False, timeout=busy_ms / 1000)
    connection = kind(connect, 64)
    connection._thread.daemon = True  # as SQLAlchemy makes aiosqlite's own: a forgotten connection never holds up exit
    try:
        await connection
    except Exception:
        # aiosqlite stops its worker thread after a failed connect but does not wait for it; the thread then
        # reports to this loop, which may be closed by then (a command that fails at once): a traceback at exit.
        await asyncio.get_running_loop().run_in_executor(None, connection._thread.join, 1.0)
        raise
    return connection
