"""The repository contract: every store (SQLite, PostgreSQL) passes the same tests."""

from __future__ import annotations

import asyncio

import pytest

from connector.domain.assets import Asset, ContractDefinition, Criterion, DataAddress, PolicyDefinition
from connector.domain.errors import Conflict, InvalidInput, NotFound
from connector.domain.query import QuerySpec, SortOrder
from connector.store import Store, migrate

EDC = "https://w3id.org/edc/v0.0.1/ns/"
POLICY = {"@type": ["http://www.w3.org/ns/odrl/2/Set"], "http://www.w3.org/ns/odrl/2/permission": []}


def asset(asset_id: str, created_at: int = 1, **props: object) -> Asset:
    return Asset(
        id=asset_id,
        properties={EDC + k: v for k, v in props.items()},
        private_properties={EDC + "plant": "P7"},
        data_address=DataAddress("HttpData", {"baseUrl": "https://b.example/" + asset_id}, {"authCode": "s3cret"}),
        created_at=created_at,
    )


async def test_migrations_reach_head(database_url: str) -> None:
    assert await migrate.current(database_url) is None
    assert await migrate.upgrade(database_url) == migrate.head()
    # Upgrading again is a no-op.
    assert await migrate.upgrade(database_url) == migrate.head()


async def test_asset_round_trip(store: Store) -> None:
    original = asset("a1", name="Pack", capacity=75.5, tags=["x", "y"], type={"@id": "https://example.com/T"})
    async with store.transaction() as tx:
        await tx.assets.add(original)
    async with store.read() as tx:
        found = await tx.assets.get("a1")
        assert await tx.assets.get("nope") is None
    assert found == original
    assert found.data_address.secrets == {"authCode": "s3cret"}


async def test_asset_duplicate_replace_delete(store: Store) -> None:
    async with store.transaction() as tx:
        await tx.assets.add(asset("a1", name="one"))
    with pytest.raises(Conflict):
        async with store.transaction() as tx:
            await tx.assets.add(asset("a1", name="two"))
    async with store.transaction() as tx:
        await tx.assets.replace(asset("a1", created_at=99, name="three"))
    async with store.read() as tx:
        found = await tx.assets.get("a1")
    assert found is not None
    assert found.properties[EDC + "name"] == "three"
    assert found.created_at == 1
    with pytest.raises(NotFound):
        async with store.transaction() as tx:
            await tx.assets.replace(asset("zz"))
    async with store.transaction() as tx:
        await tx.assets.delete("a1")
    with pytest.raises(NotFound):
        async with store.transaction() as tx:
            await tx.assets.delete("a1")


async def test_failed_transaction_leaves_nothing(store: Store) -> None:
    with pytest.raises(RuntimeError):
        async with store.transaction() as tx:
            await tx.assets.add(asset("a1"))
            raise RuntimeError("crash in the middle")
    async with store.read() as tx:
        assert await tx.assets.get("a1") is None
        assert await tx.assets.count() == 0


async def test_asset_queries_run_on_indexed_properties(store: Store) -> None:
    async with store.transaction() as tx:
        for i, (model, capacity) in enumerate([("X", 10), ("Y", 20), ("X", 30), ("Z", 40)]):
            await tx.assets.add(asset(f"a{i}", created_at=i, model=model, capacity=capacity, tags=["t" + model]))

    async def ids(*criteria: Criterion, **spec: object) -> list[str]:
        async with store.read() as tx:
            found = await tx.assets.query(QuerySpec(filter_expression=criteria, **spec))  # type: ignore[arg-type]
        return [a.id for a in found]

    assert await ids(Criterion("model", "=", "X")) == ["a0", "a2"]
    assert await ids(Criterion(EDC + "model", "!=", "X")) == ["a1", "a3"]
    assert await ids(Criterion("capacity", ">", 15), Criterion("capacity", "<=", 30)) == ["a1", "a2"]
    assert await ids(Criterion("capacity", "=", 20)) == ["a1"]
    assert await ids(Criterion("model", "in", ["Y", "Z"])) == ["a1", "a3"]
    assert await ids(Criterion("edc:tags", "contains", "tX")) == ["a0", "a2"]
    assert await ids(Criterion("model", "ilike", "x")) == ["a0", "a2"]
    assert await ids(Criterion("id", "like", "a%")) == ["a0", "a1", "a2", "a3"]
    assert await ids(Criterion("createdAt", ">=", 2)) == ["a2", "a3"]
    assert await ids(Criterion("plant", "=", "P7"), limit=2) == ["a0", "a1"]
    assert await ids(sort_field="capacity", sort_order=SortOrder.DESC) == ["a3", "a2", "a1", "a0"]
    assert await ids(sort_field="createdAt", offset=1, limit=2) == ["a1", "a2"]
    assert await ids(Criterion("model", "in", [])) == []
    with pytest.raises(InvalidInput):
        await ids(Criterion("createdAt", "=", "yesterday"))
    async with store.read() as tx:
        assert await tx.assets.count([Criterion("model", "=", "X")]) == 2


async def test_policy_and_contract_definitions(store: Store) -> None:
    async with store.transaction() as tx:
        await tx.policies.add(PolicyDefinition("p1", POLICY, {}, 1))
        await tx.policies.add(PolicyDefinition("p2", POLICY, {EDC + "note": "n"}, 2))
        await tx.contracts.add(ContractDefinition("c1", "p1", "p2", (Criterion(EDC + "id", "=", "a1"),), {}, 3))
    with pytest.raises(Conflict):
        async with store.transaction() as tx:
            await tx.policies.add(PolicyDefinition("p1", POLICY, {}, 1))
    with pytest.raises(Conflict, match="c1"):
        async with store.transaction() as tx:
            await tx.policies.delete("p2")
    async with store.read() as tx:
        assert (await tx.policies.get("p2")) == PolicyDefinition("p2", POLICY, {EDC + "note": "n"}, 2)
        assert set(await tx.policies.get_many(["p1", "p2", "p9"])) == {"p1", "p2"}
        contract = await tx.contracts.get("c1")
        assert contract == ContractDefinition("c1", "p1", "p2", (Criterion(EDC + "id", "=", "a1"),), {}, 3)
        assert await tx.contracts.using_policy("p1") == ["c1"]
        listed = await tx.contracts.query(QuerySpec(filter_expression=(Criterion("contractPolicyId", "=", "p2"),)))
        assert [c.id for c in listed] == ["c1"]
        listed_p = await tx.policies.query(QuerySpec(sort_field="createdAt", sort_order=SortOrder.DESC))
        assert [p.id for p in listed_p] == ["p2", "p1"]
        with pytest.raises(InvalidInput, match="colour"):
            await tx.policies.query(QuerySpec(filter_expression=(Criterion("colour", "=", "red"),)))
    async with store.transaction() as tx:
        await tx.contracts.delete("c1")
        await tx.policies.delete("p2")
    async with store.read() as tx:
        assert await tx.policies.get("p2") is None


async def test_concurrent_writers_do_not_lose_updates(store: Store) -> None:
    async def add(i: int) -> None:
        async with store.transaction() as tx:
            await tx.assets.add(asset(f"c{i:03d}", name=str(i)))

    await asyncio.gather(*(add(i) for i in range(40)))
    async with store.read() as tx:
        assert await tx.assets.count() == 40


async def test_counted_uses_are_never_taken_twice(store: Store, database_url: str) -> None:
    """Twenty writers (two stores: two replicas) race for five uses; the locked count lets exactly five through."""
    other = Store(database_url, pool_size=4)
    taken: list[int] = []

    async def take(on: Store) -> None:
        async with on.transaction() as tx:
            uses = await tx.usage.uses("agreement-1", for_update=True)
            await asyncio.sleep(0.01)  # hold the lock a while: a lost update would show
            if uses < 5:
                await tx.usage.add("agreement-1", 1, at=1)
                taken.append(uses + 1)

    try:
        await asyncio.gather(*(take(store if i % 2 else other) for i in range(20)))
    finally:
        await other.close()
    assert sorted(taken) == [1, 2, 3, 4, 5]
    async with store.transaction() as tx:
        assert await tx.usage.uses("agreement-1") == 5
        await tx.usage.add("agreement-1", -7, at=2)  # never below zero
        assert await tx.usage.uses("agreement-1") == 0
        assert await tx.usage.uses("never-used") == 0


async def test_only_transfers_holding_an_endpoint_data_reference_are_edr_entries(store: Store) -> None:
    """A consumer pull before its start message, or after its EDR was forgotten, holds none (Tractus-X lists none)."""
    from dataclasses import replace

    from connector.domain.negotiation import Role
    from connector.domain.transfer import Transfer, TransferState

    def pull(transfer_id: str, address: dict[str, object] | None) -> Transfer:
        return Transfer(
            id=transfer_id,
            role=Role.CONSUMER,
            state=TransferState.STARTED if address else TransferState.REQUESTED,
            provider_pid=None,
            consumer_pid=transfer_id,
            counterparty_id="did:web:provider.example",
            counterparty_address="https://provider.example/api/dsp/2025-1",
            agreement_id="agreement-1",
            asset_id="asset-1",
            transfer_type="HttpData-PULL",
            data_address=address,
        )

    edr = {"@type": "DataAddress", "endpointType": "https://w3id.org/idsa/v4.1/HTTP", "endpoint": "https://p/public"}
    async with store.transaction() as tx:
        await tx.transfers.add(pull("waiting", None))
        await tx.transfers.add(pull("started", edr))
        await tx.transfers.add(pull("forgotten", edr))
    async with store.transaction() as tx:
        forgotten = await tx.transfers.get("forgotten", for_update=True)
        assert forgotten is not None
        await tx.transfers.save(replace(forgotten, data_address=None, version=forgotten.version + 1))
    async with store.read() as tx:
        entries = await tx.transfers.edr_entries(QuerySpec())
        with_edr = await tx.transfers.query(QuerySpec(), with_edr=True)
    assert [e.transfer.id for e in entries] == ["started"]
    assert [t.id for t in with_edr] == ["started"]
