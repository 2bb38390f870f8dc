"""The catalog's selections (definition index and position map, decision 0025) give the same pages as brute force.

Pages by offset and by key, with many definitions of every selector shape, are compared with a computation over the
same data in Python (`selection.matches` per definition per asset); every change of a definition, a policy or an
asset, also by another "replica" (another CatalogService on the same database), shows in the next page at once.
SQLite and PostgreSQL.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import delete

import policies
from connector import jsonld
from connector.domain import selection
from connector.domain.assets import Asset, ContractDefinition, Criterion, DataAddress, PolicyDefinition
from connector.domain.participants import Participant
from connector.services import catalog as catalog_module
from connector.services.catalog import CatalogService
from connector.services.offers import AssetService, ContractDefinitionService, PolicyDefinitionService
from connector.store import Store, migrate
from connector.store.tables import asset_properties, assets, contract_definitions

EDC = "https://w3id.org/edc/v0.0.1/ns/"
BPC = "https://w3id.org/battery-passport-connector/ns/"
DSP_URL = "http://provider.example/api/dsp/2025-1"
MEMBER = Participant("did:web:member.example", {"membership": True})
STRANGER = Participant("did:web:stranger.example", {})
MODELS = ["M0", "M1", "M2", "M3", "M4", "M5"]
CHEMISTRIES = ["LFP", "NMC", "NCA"]


def odrl(permissions: list[Any]) -> Any:
    return jsonld.expand({"@context": "http://www.w3.org/ns/odrl.jsonld", "@type": "Set", "permission": permissions})[0]


MEMBERS_ONLY = [
    {
        "action": "use",
        "constraint": [
            {
                "leftOperand": BPC + "membership",
                "operator": "eq",
                "rightOperand": {"@value": "true", "@type": "xsd:boolean"},
            }
        ],
    }
]


@pytest.fixture
async def store(database_url: str) -> AsyncIterator[Store]:
    await migrate.upgrade(database_url)
    opened = Store(database_url, pool_size=4)
    try:
        policies_service = PolicyDefinitionService(opened)
        await policies_service.create(PolicyDefinition("open", odrl([]), {}, 1))
        await policies_service.create(PolicyDefinition("members", odrl(MEMBERS_ONLY), {}, 1))
        yield opened
    finally:
        await opened.close()


def _asset(i: int, model: str, chemistry: str, capacity: int) -> Asset:
    props = {EDC + "name": f"Passports #{i}", BPC + "batteryModel": model, BPC + "chemistry": chemistry}
    props[BPC + "capacity"] = capacity
    return Asset(f"bat-{i:04d}", props, {}, DataAddress("BatteryPassport", {}), i)


selectors = st.one_of(
    st.builds(lambda m: (Criterion("bpc:batteryModel", "=", m),), st.sampled_from(MODELS)),
    st.builds(lambda ms: (Criterion("bpc:batteryModel", "in", ms),), st.lists(st.sampled_from(MODELS), max_size=3)),
    st.builds(
        lambda ids: (Criterion("id", "in", [f"bat-{i:04d}" for i in ids]),), st.lists(st.integers(0, 80), max_size=4)
    ),
    st.builds(
        lambda c, n: (Criterion("bpc:chemistry", "=", c), Criterion("bpc:capacity", ">=", n)),
        st.sampled_from(CHEMISTRIES),
        st.integers(0, 100),
    ),
    st.builds(lambda p: (Criterion(EDC + "name", "like", p),), st.sampled_from(["Passports #1%", "%5", "%"])),
    st.just(()),
)
definitions_strategy = st.lists(st.tuples(selectors, st.sampled_from(["open", "members"])), min_size=1, max_size=12)
assets_strategy = st.lists(
    st.tuples(st.sampled_from(MODELS), st.sampled_from(CHEMISTRIES), st.integers(0, 100)), min_size=0, max_size=60
)


async def _reset(store: Store) -> None:
    async with store.transaction() as tx:
        await tx.connection.execute(delete(contract_definitions))
        await tx.connection.execute(delete(asset_properties))
        await tx.connection.execute(delete(assets))


async def _fill(
    store: Store, made: list[tuple[str, str, int]], defined: list[tuple[tuple[Criterion, ...], str]]
) -> None:
    async with store.transaction() as tx:
        for i, (model, chemistry, capacity) in enumerate(made):
            await tx.assets.add(_asset(i, model, chemistry, capacity))
        for j, (selector, access) in enumerate(defined):
            await tx.contracts.add(ContractDefinition(f"cd-{j:02d}", access, "open", selector, {}, 1))


def _expected(
    made: list[tuple[str, str, int]], defined: list[tuple[tuple[Criterion, ...], str]], who: Participant
) -> list[tuple[str, list[str]]]:
    """Every dataset the requester sees, in order, with the definitions offering it: brute force."""
    allowed = {"open", "members"} if who is MEMBER else {"open"}
    out = []
    for i, (model, chemistry, capacity) in enumerate(made):
        asset = _asset(i, model, chemistry, capacity)
        offering = [
            f"cd-{j:02d}"
            for j, (selector, access) in sorted(enumerate(defined), key=lambda e: f"cd-{e[0]:02d}")
            if access in allowed and selection.matches(asset, selector)
        ]
        if offering:
            out.append((asset.id, offering))
    return out


def _seen(page: Any) -> list[tuple[str, list[str]]]:
    return [(d.id, [_definition_of(o.id) for o in d.offers]) for d in page.catalog.datasets]


def _definition_of(offer: str) -> str:
    from catalog.offers import parse_offer_id

    ref = parse_offer_id(offer)
    assert ref is not None
    return ref.definition_id


async def _all_by_offset(service: CatalogService, who: Participant, limit: int) -> list[tuple[str, list[str]]]:
    out: list[tuple[str, list[str]]] = []
    offset = 0
    for _ in range(1000):  # a paging bug must fail, not loop
        page = await service.catalog(who, offset, limit)
        out.extend(_seen(page))
        if not page.has_more:
            return out
        offset += limit
    raise AssertionError("paging by offset never ended")


async def _all_by_key(service: CatalogService, who: Participant, limit: int) -> list[tuple[str, list[str]]]:
    out: list[tuple[str, list[str]]] = []
    page = await service.catalog(who, 0, limit)
    for _ in range(1000):  # a paging bug must fail, not loop
        out.extend(_seen(page))
        if not page.has_more:
            return out
        page = await service.catalog(who, 0, limit, after=page.last_key)
    raise AssertionError("paging by key never ended")


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow]
)
@given(made=assets_strategy, defined=definitions_strategy, limit=st.integers(1, 9), deep=st.integers(0, 70))
async def test_pages_equal_brute_force_by_offset_and_by_key(
    store: Store,
    made: list[tuple[str, str, int]],
    defined: list[tuple[tuple[Criterion, ...], str]],
    limit: int,
    deep: int,
) -> None:
    await _reset(store)
    await _fill(store, made, defined)
    service = CatalogService(store, "did:web:provider.example", DSP_URL)
    for who in (STRANGER, MEMBER):
        expected = _expected(made, defined, who)
        assert await _all_by_offset(service, who, limit) == expected
        assert await _all_by_key(service, who, limit) == expected
        # Any single deep page, read cold or warm, is the slice brute force gives.
        page = await service.catalog(who, deep, limit)
        assert _seen(page) == expected[deep : deep + limit]
        assert page.has_more == (deep + limit < len(expected))
        # The SQL path (a requester's filter that keeps everything) agrees too.
        filtered = await service.catalog(who, deep, limit, where=(Criterion(EDC + "name", "like", "%"),))
        assert _seen(filtered) == expected[deep : deep + limit]


async def test_many_definitions_page_like_brute_force_across_page_boundaries(store: Store) -> None:
    made = [(MODELS[i % 6], CHEMISTRIES[i % 3], i % 101) for i in range(300)]
    defined: list[tuple[tuple[Criterion, ...], str]] = []
    for j in range(240):
        kind = j % 4
        if kind == 0:
            defined.append(((Criterion("bpc:batteryModel", "=", MODELS[j % 6]),), "open"))
        elif kind == 1:
            defined.append(((Criterion("id", "in", [f"bat-{(j * 7) % 300:04d}", f"bat-{j:04d}"]),), "members"))
        elif kind == 2:
            defined.append(((Criterion("bpc:chemistry", "=", "LFP"), Criterion("bpc:capacity", ">", j % 100)), "open"))
        else:
            defined.append(((Criterion("bpc:batteryModel", "in", ["M1", "nope"]),), "members"))
    await _fill(store, made, defined)
    service = CatalogService(store, "did:web:provider.example", DSP_URL)
    for who in (STRANGER, MEMBER):
        expected = _expected(made, defined, who)
        assert len(expected) > 100
        for limit in (1, 7, 50):
            assert await _all_by_offset(service, who, limit) == expected
            assert await _all_by_key(service, who, limit) == expected


async def test_changes_show_at_once_also_when_made_by_another_replica(store: Store) -> None:
    made = [(MODELS[i % 3], "LFP", 10) for i in range(30)]
    await _fill(store, made, [((Criterion("bpc:batteryModel", "=", "M0"),), "open")])
    service = CatalogService(store, "did:web:provider.example", DSP_URL)
    other = CatalogService(store, "did:web:provider.example", DSP_URL)  # a second replica's catalog

    async def ids(who: Participant = STRANGER) -> list[str]:
        return [d for d, _ in await _all_by_offset(service, who, 4)]

    assert await ids() == [f"bat-{i:04d}" for i in range(0, 30, 3)]
    assert await other.catalog(STRANGER, 0, 1)  # the replica has its own selection cached
    contracts = ContractDefinitionService(store)
    await contracts.create(
        ContractDefinition("cd-m1", "open", "open", (Criterion("bpc:batteryModel", "=", "M1"),), {}, 1)
    )
    assert await ids() == [f"bat-{i:04d}" for i in range(30) if i % 3 in (0, 1)]
    await contracts.update(
        ContractDefinition("cd-m1", "members", "open", (Criterion("bpc:batteryModel", "=", "M1"),), {}, 1)
    )
    assert await ids() == [f"bat-{i:04d}" for i in range(0, 30, 3)]
    assert await ids(MEMBER) == [f"bat-{i:04d}" for i in range(30) if i % 3 in (0, 1)]
    await contracts.delete("cd-m1")
    assert await ids(MEMBER) == [f"bat-{i:04d}" for i in range(0, 30, 3)]

    # Assets: added, changed so the selector no longer holds, deleted — through the service as the API does.
    asset_service = AssetService(store)
    await asset_service.create(_asset(100, "M0", "LFP", 1))
    assert (await ids())[-1] == "bat-0100"
    await asset_service.update(_asset(0, "M2", "LFP", 1))
    assert "bat-0000" not in await ids()
    await asset_service.delete("bat-0003")
    assert "bat-0003" not in await ids()
    # Directly in the store, as another replica's write would be: the other service sees it at once too.
    async with store.transaction() as tx:
        await tx.assets.add(_asset(107, "M0", "NMC", 3))
    expected = [f"bat-{i:04d}" for i in [*range(6, 30, 3), 100, 107]]
    assert await ids() == expected
    assert [d for d, _ in await _all_by_offset(other, STRANGER, 3)] == expected


async def test_a_policy_change_changes_the_selection(store: Store) -> None:
    await _fill(store, [("M0", "LFP", 1), ("M1", "LFP", 1)], [((Criterion("bpc:batteryModel", "=", "M1"),), "members")])
    service = CatalogService(store, "did:web:provider.example", DSP_URL)
    assert await _all_by_offset(service, STRANGER, 5) == []
    await PolicyDefinitionService(store).update(PolicyDefinition("members", odrl([]), {}, 1))
    assert await _all_by_offset(service, STRANGER, 5) == [("bat-0001", ["cd-00"])]


async def test_a_selection_larger_than_the_bound_pages_in_sql(store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    made = [(MODELS[i % 2], "LFP", 1) for i in range(40)]
    defined: list[tuple[tuple[Criterion, ...], str]] = [((Criterion("bpc:batteryModel", "in", ["M0", "M1"]),), "open")]
    await _fill(store, made, defined)
    monkeypatch.setattr(catalog_module, "MAX_POSITIONS", 10)
    service = CatalogService(store, "did:web:provider.example", DSP_URL)
    expected = _expected(made, defined, STRANGER)
    assert await _all_by_offset(service, STRANGER, 6) == expected
    assert await _all_by_key(service, STRANGER, 6) == expected
    assert service._positions_held == 0  # nothing kept: every page was read in SQL


def test_the_policies_module_is_the_engine_the_catalog_uses() -> None:
    # The strategies above use "open" (empty) and "members" policies: check they decide as the brute force assumes.
    open_policy = policies.parse_policy(odrl([]))
    members = policies.parse_policy(odrl(MEMBERS_ONLY))
    from datetime import UTC, datetime

    def permitted(policy: policies.Policy, who: Participant) -> bool:
        context = policies.EvaluationContext(participant_id=who.id, claims=who.claims, now=datetime.now(UTC))
        return policies.evaluate(policy, "use", context, policies.Scope.CATALOG).permitted

    from connector.services.offers import effective_policy

    assert permitted(effective_policy(open_policy), STRANGER)
    assert permitted(effective_policy(members), MEMBER)
    assert not permitted(effective_policy(members), STRANGER)


async def test_concurrent_requests_all_see_a_change_committed_before_them(store: Store) -> None:
    made = [(MODELS[i % 2], "LFP", 1) for i in range(20)]
    await _fill(store, made, [((Criterion("bpc:batteryModel", "=", "M0"),), "open")])
    service = CatalogService(store, "did:web:provider.example", DSP_URL)
    before = [d.id for d in (await service.catalog(STRANGER, 0, 50)).catalog.datasets]
    assert before == [f"bat-{i:04d}" for i in range(0, 20, 2)]
    for round_ in range(3):
        # Requests under way while the change commits may answer either way; those started after it never miss it.
        early = [asyncio.ensure_future(service.catalog(STRANGER, 0, 50)) for _ in range(5)]
        async with store.transaction() as tx:
            await tx.assets.add(_asset(100 + round_, "M0", "LFP", 1))
        pages = await asyncio.gather(*(service.catalog(STRANGER, 0, 50) for _ in range(20)))
        for page in pages:
            assert f"bat-{100 + round_:04d}" in [d.id for d in page.catalog.datasets]
        await asyncio.gather(*early)
