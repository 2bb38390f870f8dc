"""The catalog as requesters see it: access policies decide, offers resolve back, pages and caches are right."""

from __future__ import annotations

from typing import Any

import pytest

from catalog.dsp import render_catalog, render_dataset
from catalog.offers import parse_offer_id
from connector import jsonld
from connector.domain.assets import Asset, ContractDefinition, Criterion, DataAddress, PolicyDefinition
from connector.domain.errors import NotFound
from connector.domain.participants import Participant
from connector.services.catalog import CatalogService
from connector.services.offers import ContractDefinitionService, PolicyDefinitionService
from connector.store import Store
from tests import dsp_schemas

EDC = "https://w3id.org/edc/v0.0.1/ns/"
BPC = "https://w3id.org/battery-passport-connector/ns/"
DSP_URL = "http://provider.example/api/dsp/2025-1"

MEMBER = Participant("did:web:member.example", {"membership": True})
RECYCLER = Participant("did:web:recycler.example", {"membership": True, "roles": ["recycler"]})
STRANGER = Participant("did:web:stranger.example", {})


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
RECYCLERS_ONLY = [
    {"action": "use", "constraint": [{"leftOperand": BPC + "role", "operator": "isA", "rightOperand": "recycler"}]}
]
PURPOSE = [{"action": "use", "constraint": [{"leftOperand": "purpose", "operator": "eq", "rightOperand": "recycling"}]}]


async def _setup(store: Store, models: int = 3, per_model: int = 4) -> None:
    policies = PolicyDefinitionService(store)
    for pid, rules in (("members", MEMBERS_ONLY), ("recyclers", RECYCLERS_ONLY), ("purpose", PURPOSE)):
        await policies.create(PolicyDefinition(pid, odrl(rules), {}, 1))
    async with store.transaction() as tx:
        for m in range(models):
            for i in range(per_model):
                props = {EDC + "name": f"Passports M{m} #{i}", BPC + "batteryModel": f"M{m}"}
                await tx.assets.add(Asset(f"bat-M{m}-{i}", props, {}, DataAddress("BatteryPassport", {}), 1))
    contracts = ContractDefinitionService(store)
    await contracts.create(
        ContractDefinition("cd-members", "members", "purpose", (Criterion("bpc:batteryModel", "=", "M0"),), {}, 1)
    )
    await contracts.create(
        ContractDefinition(
            "cd-recyclers", "recyclers", "purpose", (Criterion("bpc:batteryModel", "in", ["M1", "M0"]),), {}, 1
        )
    )


def _ids(page: Any) -> list[str]:
    return [d.id for d in page.catalog.datasets]


async def test_each_requester_sees_exactly_what_its_access_policies_allow(store: Store) -> None:
    await _setup(store)
    catalog = CatalogService(store, "did:web:provider.example", DSP_URL)
    assert _ids(await catalog.catalog(STRANGER)) == []
    assert _ids(await catalog.catalog(MEMBER)) == [f"bat-M0-{i}" for i in range(4)]
    seen = await catalog.catalog(RECYCLER)
    assert _ids(seen) == [f"bat-M0-{i}" for i in range(4)] + [f"bat-M1-{i}" for i in range(4)]
    # An asset under two permitted definitions is one dataset with two offers.
    first = seen.catalog.datasets[0]
    assert sorted(parse_offer_id(o.id).definition_id for o in first.offers) == ["cd-members", "cd-recyclers"]  # type: ignore[union-attr]
    assert [len(d.offers) for d in seen.catalog.datasets[4:]] == [1, 1, 1, 1]


async def test_rendered_catalog_and_dataset_validate_against_the_official_schemas(store: Store) -> None:
    await _setup(store)
    catalog = CatalogService(store, "did:web:provider.example", DSP_URL)
    page = await catalog.catalog(RECYCLER)
    body = render_catalog(page.catalog)
    dsp_schemas.validate(body, "catalog/catalog-schema.json")
    assert body["participantId"] == "did:web:provider.example"
    assert body["service"][0]["endpointURL"] == DSP_URL
    dataset = body["dataset"][0]
    assert dataset["dct:title"] == "Passports M0 #0"
    assert dataset[BPC + "batteryModel"] == "M0"
    assert {d["format"] for d in dataset["distribution"]} == {"HttpData-PULL", "HttpData-PUSH"}
    offer = dataset["hasPolicy"][0]
    assert "target" not in offer and offer["@type"] == "Offer"
    assert offer["permission"][0]["constraint"][0]["rightOperand"] == "recycling"
    standalone = render_dataset(await catalog.dataset(RECYCLER, "bat-M1-0"), standalone=True)
    dsp_schemas.validate(standalone, "catalog/dataset-schema.json")
    empty = render_catalog((await catalog.catalog(STRANGER)).catalog)
    dsp_schemas.validate(empty, "catalog/catalog-schema.json")
    assert "dataset" not in empty


async def test_invisible_datasets_are_not_found(store: Store) -> None:
    await _setup(store)
    catalog = CatalogService(store, "did:web:provider.example", DSP_URL)
    assert (await catalog.dataset(MEMBER, "bat-M0-1")).id == "bat-M0-1"
    for participant, dataset_id in (
        (MEMBER, "bat-M1-0"),
        (STRANGER, "bat-M0-1"),
        (RECYCLER, "bat-M2-0"),
        (RECYCLER, "nope"),
    ):
        with pytest.raises(NotFound):
            await catalog.dataset(participant, dataset_id)


async def test_pages_are_cut_in_sql_and_flag_more(store: Store) -> None:
    await _setup(store, models=2, per_model=30)
    catalog = CatalogService(store, "did:web:provider.example", DSP_URL)
    first = await catalog.catalog(RECYCLER, offset=0, limit=25)
    second = await catalog.catalog(RECYCLER, offset=25, limit=25)
    third = await catalog.catalog(RECYCLER, offset=50, limit=25)
    assert (len(_ids(first)), len(_ids(second)), len(_ids(third))) == (25, 25, 10)
    assert first.has_more and second.has_more and not third.has_more
    assert len(set(_ids(first)) | set(_ids(second)) | set(_ids(third))) == 60


async def test_offers_resolve_and_go_stale_when_the_policy_changes(store: Store) -> None:
    await _setup(store)
    catalog = CatalogService(store, "did:web:provider.example", DSP_URL)
    offer = (await catalog.dataset(MEMBER, "bat-M0-0")).offers[0]
    resolved = await catalog.resolve_offer(MEMBER, offer.id)
    assert (resolved.definition.id, resolved.asset.id) == ("cd-members", "bat-M0-0")
    with pytest.raises(NotFound):
        await catalog.resolve_offer(STRANGER, offer.id)
    with pytest.raises(NotFound):
        await catalog.resolve_offer(MEMBER, "not-an-offer")
    # Changing the contract policy changes the offer id; the old one no longer resolves.
    await PolicyDefinitionService(store).update(PolicyDefinition("purpose", odrl(MEMBERS_ONLY), {}, 1))
    with pytest.raises(NotFound, match="no longer"):
        await catalog.resolve_offer(MEMBER, offer.id)
    fresh = (await catalog.dataset(MEMBER, "bat-M0-0")).offers[0]
    assert fresh.id != offer.id
    assert (await catalog.resolve_offer(MEMBER, fresh.id)).asset.id == "bat-M0-0"


async def test_new_definitions_show_up_at_once(store: Store) -> None:
    await _setup(store)
    catalog = CatalogService(store, "did:web:provider.example", DSP_URL)
    assert "bat-M2-0" not in _ids(await catalog.catalog(MEMBER))
    await ContractDefinitionService(store).create(
        ContractDefinition("cd-m2", "members", "purpose", (Criterion("bpc:batteryModel", "=", "M2"),), {}, 1)
    )
    assert "bat-M2-0" in _ids(await catalog.catalog(MEMBER))


async def test_an_empty_policy_definition_means_use_without_conditions(store: Store) -> None:
    await _setup(store)
    await PolicyDefinitionService(store).create(PolicyDefinition("empty", odrl([]), {}, 1))
    await ContractDefinitionService(store).create(
        ContractDefinition("cd-open", "empty", "empty", (Criterion("bpc:batteryModel", "=", "M2"),), {}, 1)
    )
    catalog = CatalogService(store, "did:web:provider.example", DSP_URL)
    seen = await catalog.catalog(STRANGER)
    assert [d.id for d in seen.catalog.datasets] == [f"bat-M2-{i}" for i in range(4)]
    body = render_catalog(seen.catalog)
    assert body["dataset"][0]["hasPolicy"][0]["permission"] == [{"action": "use"}]
    dsp_schemas.validate(body, "catalog/catalog-schema.json")


async def test_resolving_an_offer_first_does_not_narrow_the_requesters_catalog(store: Store) -> None:
    # A requester's first call to this service resolves one offer (a negotiation after a restart, say): the access
    # decision made for that one definition must not be reused as the decision for all of them.
    await _setup(store)
    before = CatalogService(store, "did:web:provider.example", DSP_URL)
    offer = next(o for o in (await before.dataset(RECYCLER, "bat-M0-0")).offers if _definition(o.id) == "cd-members")
    fresh = CatalogService(store, "did:web:provider.example", DSP_URL)
    assert (await fresh.resolve_offer(RECYCLER, offer.id)).definition.id == "cd-members"
    seen = await fresh.catalog(RECYCLER)
    assert _ids(seen) == [f"bat-M0-{i}" for i in range(4)] + [f"bat-M1-{i}" for i in range(4)]
    assert [len(d.offers) for d in seen.catalog.datasets] == [2, 2, 2, 2, 1, 1, 1, 1]
    assert (await fresh.dataset(RECYCLER, "bat-M1-0")).id == "bat-M1-0"


def _definition(offer_id: str) -> str:
    ref = parse_offer_id(offer_id)
    assert ref is not None
    return ref.definition_id


async def test_counters_see_another_stores_commit_at_once_and_hold_no_snapshot(store: Store, database_url: str) -> None:
    # Another Store on the same database stands for another process (a replica, the import command).
    other = Store(database_url, pool_size=1)
    try:
        before = await store.revisions(("offers", "catalog_assets"))
        await PolicyDefinitionService(other).create(PolicyDefinition("p-new", odrl(PURPOSE), {}, 1))
        after = await store.revisions(("offers", "catalog_assets"))
        assert after[0] > before[0] and after[1] == before[1]
        assert await store.revisions(("no-such-counter",)) == (0,)
        # Unchanged while nothing commits (SQLite answers from the counters kept with its data_version), and a
        # commit through this store's own pool, another connection than the counters', is seen at once too.
        assert await store.revisions(("offers", "catalog_assets")) == after
        await PolicyDefinitionService(store).create(PolicyDefinition("p-own", odrl(PURPOSE), {}, 1))
        again = await store.revisions(("offers", "catalog_assets"))
        assert again[0] > after[0] and again[1] == after[1]
        await PolicyDefinitionService(other).create(PolicyDefinition("p-third", odrl(PURPOSE), {}, 1))
        assert (await store.revisions(("offers", "catalog_assets")))[0] > again[0]
        if database_url.startswith("sqlite"):
            # The read ended with its statement: a full checkpoint is blocked by no reader of ours.
            import sqlite3

            checkpoint = sqlite3.connect(database_url.split(":///", 1)[1], isolation_level=None)
            try:
                busy, _, _ = checkpoint.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
            finally:
                checkpoint.close()
            assert busy == 0
    finally:
        await other.close()
