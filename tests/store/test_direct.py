"""Hot-path statements run on SQLite's or asyncpg's connection directly (connector/store/direct.py, decisions
0027 and 0032).

What they store and read back must be what SQLAlchemy's own execution stores and reads; they must take the
direct way only where it is safe (inside a begun transaction, or a PostgreSQL read in autocommit), and a statement
that fails there must fail as it did through SQLAlchemy.
"""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import event, select
from sqlalchemy.exc import DBAPIError, IntegrityError

from connector.domain.errors import AlreadyExists
from connector.domain.negotiation import Negotiation, NegotiationState, Role
from connector.store import Store, direct
from connector.store import negotiations as repo
from connector.store.tables import negotiations, outbox


def _negotiation(pid: str, **changes: Any) -> Negotiation:
    fields: dict[str, Any] = {
        "id": pid,
        "role": Role.PROVIDER,
        "state": NegotiationState.REQUESTED,
        "provider_pid": pid,
        "consumer_pid": "urn:uuid:c-" + pid,
        "counterparty_id": "did:web:consumer.example",
        "counterparty_address": "https://consumer.example/dsp",
        "offer": {"@id": "offer-1", "permission": [{"action": "use", "constraint": [{"leftOperand": "x"}]}]},
        "asset_id": "passports",
        "created_at": 1,
        "updated_at": 1,
    }
    fields.update(changes)
    return Negotiation(**fields)


class _Statements:
    """Counts the statements SQLAlchemy executes (the direct ones never reach its events)."""

    def __init__(self, store: Store) -> None:
        self.seen: list[str] = []
        self._engines = {store._write.sync_engine, store._read.sync_engine}

    def _count(self, _conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        self.seen.append(statement)

    def __enter__(self) -> _Statements:
        for engine in self._engines:
            event.listen(engine, "before_cursor_execute", self._count)
        return self

    def __exit__(self, *_: object) -> None:
        for engine in self._engines:
            event.remove(engine, "before_cursor_execute", self._count)


async def test_a_negotiation_reads_back_as_sqlalchemy_reads_it(store: Store) -> None:
    stored = _negotiation("urn:uuid:n1", agreement=None, pending=True, deadline_at=None, pull_when_finalized=True)
    async with store.transaction() as tx:
        await tx.negotiations.add(stored)
    async with store.read() as tx:
        found = await tx.negotiations.get(stored.id)
        by_peer = await tx.negotiations.find_by_peer(Role.PROVIDER, stored.counterparty_id, stored.consumer_pid or "")
        # The same row through SQLAlchemy's own execution, processors and all.
        row = (await tx.connection.execute(select(negotiations).where(negotiations.c.id == stored.id))).mappings().one()
    assert found == stored == by_peer
    assert repo._negotiation(row) == stored
    assert found is not None and found.agreement is None and found.pending is True and found.deadline_at is None

    agreement = {"@id": "urn:uuid:a1", "target": "passports", "permission": [{"action": "use"}]}
    changed = _negotiation(
        stored.id, state=NegotiationState.AGREED, agreement=agreement, agreement_id="urn:uuid:a1", version=1
    )
    async with store.transaction() as tx:
        await tx.negotiations.save(changed)
    async with store.read() as tx:
        assert await tx.negotiations.get(stored.id) == changed
        row = (await tx.connection.execute(select(negotiations).where(negotiations.c.id == stored.id))).mappings().one()
    assert repo._negotiation(row) == changed


async def test_the_outbox_and_the_replay_record_count_rows_as_before(store: Store) -> None:
    async with store.transaction() as tx:
        await tx.outbox.owe("n1", "ContractAgreementMessage", "https://peer/x", {"a": [1, {"b": None}]}, "did:p", 5)
        await tx.outbox.owe("n1", "ContractNegotiationEventMessage", "https://peer/y", {"c": True}, "did:p", 6)
        assert await tx.outbox.pending("n1") == ["ContractAgreementMessage", "ContractNegotiationEventMessage"]
        assert await tx.seen_tokens.remember("did:p", "jti-1", 10**12)
        assert not await tx.seen_tokens.remember("did:p", "jti-1", 10**12)  # a replay
    async with store.transaction() as tx:
        claimed = await tx.outbox.claim("me", 100, 10_000, 10)
    assert sorted((i.message, i.payload["a" if "a" in i.payload else "c"]) for i in claimed) == [
        ("ContractAgreementMessage", [1, {"b": None}]),
        ("ContractNegotiationEventMessage", True),
    ]
    first = next(i for i in claimed if i.message == "ContractAgreementMessage")
    async with store.transaction() as tx:
        assert not await tx.outbox.done(first.id, "someone else")  # only the lease holder
        assert await tx.outbox.done(first.id, "me")
        assert not await tx.outbox.done(first.id, "me")
        await tx.outbox.forget("n1", "ContractNegotiationEventMessage")
        assert await tx.outbox.pending("n1") == []
        rows = (await tx.connection.execute(select(outbox.c.id))).scalars().all()
    assert rows == []


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
async def test_on_sqlite_they_bypass_sqlalchemys_execution_inside_a_transaction(store: Store) -> None:
    stored = _negotiation("urn:uuid:n2")
    with _Statements(store) as statements:
        async with store.transaction() as tx:
            await tx.negotiations.add(stored)
            assert await tx.seen_tokens.remember("did:p", "jti-2", 10**12)
        async with store.read() as tx:
            assert await tx.negotiations.get(stored.id) == stored
    # Neither the statements nor the BEGINs went through SQLAlchemy's execution.
    assert statements.seen == []


@pytest.mark.parametrize("database_url", ["postgres"], indirect=True)
async def test_on_postgresql_they_bypass_sqlalchemy_once_its_transaction_is_begun(store: Store) -> None:
    stored = _negotiation("urn:uuid:n5")
    with _Statements(store) as statements:
        async with store.transaction() as tx:
            await tx.negotiations.add(stored)  # the first statement: SQLAlchemy's adapter sends BEGIN with it
            assert await tx.seen_tokens.remember("did:p", "jti-5", 10**12)
            assert not await tx.seen_tokens.remember("did:p", "jti-5", 10**12)  # a replay: no row inserted
            assert await tx.negotiations.get(stored.id) == stored
        async with store.read() as tx:  # autocommit: no transaction to wait for
            assert await tx.negotiations.get(stored.id) == stored
            assert await tx.outbox.pending(stored.id) == []
    assert [s.split(" ", 2)[:2] for s in statements.seen] == [["INSERT", "INTO"]]
    with pytest.raises(IntegrityError):  # refused on the direct path, raised as SQLAlchemy raises it
        async with store.transaction() as tx:
            await tx.seen_tokens.remember("did:p", "jti-6", 10**12)
            await direct.execute(tx.connection, repo._ADD_NEGOTIATION, repo._row(stored))
    async with store.read() as tx:  # rolled back as a whole
        assert await tx.seen_tokens.remember("did:p", "jti-6", 10**12)


@pytest.mark.parametrize("database_url", ["postgres"], indirect=True)
async def test_on_postgresql_a_connection_lost_under_a_direct_statement_is_invalidated(store: Store) -> None:
    with pytest.raises(DBAPIError) as caught:
        async with store.transaction() as tx:
            await tx.negotiations.get("urn:uuid:none")  # begins the transaction
            raw = (await tx.connection.get_raw_connection()).driver_connection
            assert raw is not None
            raw.terminate()  # the socket closes under the transaction
            await tx.negotiations.get("urn:uuid:none")
    assert caught.value.connection_invalidated
    async with store.read() as tx:  # the pool opens a new connection
        assert await tx.negotiations.get("urn:uuid:none") is None


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
async def test_outside_a_begun_transaction_they_take_sqlalchemys_path(store: Store) -> None:
    async with store._write.connect() as connection:
        # No transaction begun by SQLAlchemy: the direct way must not be taken (SQLAlchemy autobegins).
        assert direct._inline(connection) is None
        with _Statements(store) as statements:
            assert await direct.execute(connection, repo._DROP_OUTBOX, {"b_process": "nothing"}) == 0
        await connection.rollback()
    assert any(s.startswith("DELETE FROM outbox") for s in statements.seen)


async def test_a_failing_statement_fails_as_through_sqlalchemy(store: Store) -> None:
    stored = _negotiation("urn:uuid:n3")
    async with store.transaction() as tx:
        await tx.negotiations.add(stored)
    # The same consumer pid of the same peer again: the unique index refuses it, as before.
    with pytest.raises(AlreadyExists):
        async with store.transaction() as tx:
            await tx.negotiations.add(_negotiation("urn:uuid:n4", consumer_pid=stored.consumer_pid))
    with pytest.raises(IntegrityError):
        async with store.transaction() as tx:
            await direct.execute(tx.connection, repo._ADD_NEGOTIATION, repo._row(stored))
    async with store.read() as tx:
        assert await tx.negotiations.get("urn:uuid:n4") is None
        assert await tx.negotiations.get(stored.id) == stored


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
async def test_a_writer_still_waits_for_another_process_holding_the_lock(store: Store, tmp_path: Path) -> None:
    other = sqlite3.connect(tmp_path / "store.db", timeout=5, isolation_level=None)
    other.execute("BEGIN IMMEDIATE")
    try:
        transaction = store.transaction()
        entering = asyncio.ensure_future(transaction.__aenter__())
        await asyncio.sleep(0.3)
        assert not entering.done()  # waiting for the lock (on aiosqlite's thread), not failed, not begun
        other.execute("ROLLBACK")
        tx = await asyncio.wait_for(entering, 5)
        assert await tx.seen_tokens.remember("did:p", "jti-3", 10**12)
        await transaction.__aexit__(None, None, None)
    finally:
        other.close()
    async with store.transaction() as tx:
        assert not await tx.seen_tokens.remember("did:p", "jti-3", 10**12)  # it was committed


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
async def test_they_store_the_bytes_sqlalchemy_stores(store: Store, tmp_path: Path) -> None:
    agreement = {"@id": "urn:uuid:a9", "permission": [{"action": "use"}], "ü": "ß"}
    for pid, agreed in (("urn:uuid:n5", None), ("urn:uuid:n6", agreement)):
        ours = _negotiation(pid, agreement=agreed, pending=True)
        theirs = _negotiation(pid + "-sa", consumer_pid=f"urn:uuid:c-{pid}-sa", agreement=agreed, pending=True)
        async with store.transaction() as tx:
            await direct.execute(tx.connection, repo._ADD_NEGOTIATION, repo._row(ours))
            await tx.connection.execute(repo._ADD_NEGOTIATION, repo._row(theirs))
    with sqlite3.connect(tmp_path / "store.db") as connection:
        rows = connection.execute(
            "SELECT id, typeof(agreement), agreement, offer, typeof(pending), pending, typeof(deadline_at) "
            "FROM negotiations ORDER BY id"
        ).fetchall()
    assert len(rows) == 4
    for ours_row, theirs_row in ((rows[0], rows[1]), (rows[2], rows[3])):
        assert theirs_row[0] == ours_row[0] + "-sa"
        assert ours_row[1:] == theirs_row[1:]
