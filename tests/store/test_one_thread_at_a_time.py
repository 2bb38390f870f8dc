"""One SQLite connection is used by one thread at a time, even when the task that used it was cancelled.

A statement or commit handed to aiosqlite's worker thread goes on there after its caller is cancelled (a client
that went away, a request's deadline, a node stopping). Closing the connection on the loop's thread beside it
crashed the interpreter (a segmentation fault in CPython's sqlite3 module, which reads the closed connection's
handle when the statement ends): the suite died that way once in CI. These scenarios run in a child process, so
that a regression fails the test with the child's fatal-error dump instead of killing the test run.
"""

from __future__ import annotations

import asyncio
import sqlite3
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from connector.store import Store, migrate
from connector.store.engine import _inline_writer

# What both scenarios start with: a fatal error in the child prints every thread's stack.
PRELUDE = """
import asyncio, faulthandler, sqlite3, sys, threading, time
faulthandler.enable(all_threads=True)
"""

# The writer's statement outside a transaction goes to aiosqlite's worker thread and waits there for the lock
# another connection holds; its caller is cancelled; the lock is let go; the connection is closed at once, as
# SQLAlchemy closes the connection of a cancelled task. Nothing else is cached on the connection, so the close
# does not wait inside SQLite for the statement: the two threads meet every time.
DRIVER_SCENARIO = """
from connector.store.engine import _inline_writer

async def main(path):
    setup = sqlite3.connect(path, isolation_level=None)
    setup.execute("PRAGMA journal_mode=WAL")
    setup.execute("CREATE TABLE t (x)")
    setup.close()
    holder = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    holder.execute("BEGIN IMMEDIATE")
    connection = await _inline_writer(path)
    connection._conn.isolation_level = None  # autocommit, as the store's connections are
    task = asyncio.ensure_future(connection.execute("INSERT INTO t VALUES (1)"))
    await asyncio.sleep(0.3)
    assert not task.done(), "the insert should be waiting for the lock"
    task.cancel()
    try:
        await task
    except asyncio.CancelledError:
        pass
    threading.Thread(target=lambda: (time.sleep(0.3), holder.execute("ROLLBACK"))).start()
    await connection.close()
    holder.close()
    print("rows", sqlite3.connect(path).execute("SELECT count(*) FROM t").fetchone()[0])

asyncio.run(main(sys.argv[1]))
"""

# The same through the store: a write transaction's BEGIN waits on the worker thread for another process's lock,
# its task is cancelled, the lock is let go, and the store is closed (its pool closes every connection).
STORE_SCENARIO = """
from connector.store import Store, migrate

async def main(path):
    url = f"sqlite+aiosqlite:///{path}"
    await migrate.upgrade(url)
    store = Store(url)
    holder = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    holder.execute("BEGIN IMMEDIATE")

    async def write():
        async with store.transaction() as tx:
            await tx.seen_tokens.remember("did:p", "jti-1", 10**12)

    task = asyncio.ensure_future(write())
    await asyncio.sleep(0.3)
    assert not task.done(), "the transaction should be waiting for the lock"
    task.cancel()
    try:
        await task
    except asyncio.CancelledError:
        pass
    threading.Thread(target=lambda: (time.sleep(0.3), holder.execute("ROLLBACK"))).start()
    await store.close()
    holder.close()
    print("closed")

asyncio.run(main(sys.argv[1]))
"""


def _run(scenario: str, database: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", PRELUDE + textwrap.dedent(scenario), str(database)],
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_closing_a_connection_whose_cancelled_statement_still_runs_waits_for_it(tmp_path: Path) -> None:
    done = _run(DRIVER_SCENARIO, tmp_path / "t.db")
    assert done.returncode == 0, f"the child ended with {done.returncode}:\n{done.stderr}"
    # The cancelled caller's insert ran to its end on the worker thread, then the connection closed.
    assert done.stdout.split() == ["rows", "1"], done.stdout + done.stderr


def test_a_store_closed_while_a_cancelled_transaction_waits_for_the_lock_survives(tmp_path: Path) -> None:
    done = _run(STORE_SCENARIO, tmp_path / "node.db")
    assert done.returncode == 0, f"the child ended with {done.returncode}:\n{done.stderr}"
    assert done.stdout.split() == ["closed"], done.stdout + done.stderr


async def test_a_call_on_the_loops_thread_waits_for_the_worker_threads_call_to_end(tmp_path: Path) -> None:
    database = tmp_path / "t.db"
    with sqlite3.connect(database, isolation_level=None) as setup:
        setup.execute("PRAGMA journal_mode=WAL")
        setup.execute("CREATE TABLE t (x)")
    holder = sqlite3.connect(database, isolation_level=None, check_same_thread=False)
    holder.execute("BEGIN IMMEDIATE")
    connection = await _inline_writer(str(database))
    connection._conn.isolation_level = None  # autocommit, as the store's connections are
    try:
        task = asyncio.ensure_future(connection.execute("INSERT INTO t VALUES (1)"))
        await asyncio.sleep(0.2)
        assert connection.worker_busy  # the insert waits for the lock on the worker thread
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert connection.worker_busy  # cancelling the caller did not stop the call
        asyncio.get_running_loop().call_later(0.2, holder.execute, "ROLLBACK")
        # An inline BEGIN (tried at once on the loop's thread) waits until the worker thread's insert has ended.
        await connection.execute("BEGIN IMMEDIATE")
        assert not connection.worker_busy
        cursor = await connection.execute("SELECT count(*) FROM t")
        assert await cursor.fetchone() == (1,)
        await connection.rollback()
    finally:
        await connection.close()
        holder.close()


async def test_a_store_goes_on_after_a_cancelled_transaction_that_waited_for_the_lock(tmp_path: Path) -> None:
    database = tmp_path / "node.db"
    url = f"sqlite+aiosqlite:///{database}"
    await migrate.upgrade(url)
    store = Store(url)
    holder = sqlite3.connect(database, isolation_level=None, check_same_thread=False)
    try:
        holder.execute("BEGIN IMMEDIATE")

        async def write(jti: str) -> bool:
            async with store.transaction() as tx:
                return await tx.seen_tokens.remember("did:p", jti, 10**12)

        task = asyncio.ensure_future(write("jti-1"))
        await asyncio.sleep(0.3)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        asyncio.get_running_loop().call_later(0.2, holder.execute, "ROLLBACK")
        assert await write("jti-2")  # the next writer gets the lock once it is free, on a sound connection
        assert not await write("jti-2")  # and it was committed
    finally:
        holder.close()
        await store.close()
