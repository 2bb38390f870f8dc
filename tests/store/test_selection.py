"""SQL selection (SQLite and PostgreSQL) and in-memory selection agree on every criterion."""

from __future__ import annotations

import random

import pytest

from connector.domain import selection
from connector.domain.assets import Asset, Criterion, DataAddress
from connector.domain.query import QuerySpec
from connector.store import Store

EDC = "https://w3id.org/edc/v0.0.1/ns/"
WORDS = ["alpha", "Alpha", "beta", "b_ta", "gamma%", "10", "9", "2.5", "LFP", "nmc", ""]
KEYS = ["model", "chemistry", "capacity", "tags", "dct:title"]


def _value(rng: random.Random) -> object:
    kind = rng.randrange(5)
    if kind == 0:
        return rng.choice(WORDS)
    if kind == 1:
        return rng.choice([0, 1, 2, 9, 10, 75, -3])
    if kind == 2:
        return rng.choice([2.5, 10.0, 0.1])
    if kind == 3:
        return [rng.choice(WORDS) for _ in range(rng.randrange(1, 3))]
    return {"@id": "https://example.com/" + rng.choice(WORDS)}


def _assets(rng: random.Random) -> list[Asset]:
    made = []
    for i in range(40):
        props = {selection.normalise_key(k): _value(rng) for k in KEYS if rng.random() < 0.7}
        private = {EDC + "plant": rng.choice(["P1", "P2"])} if rng.random() < 0.5 else {}
        made.append(
            Asset(f"a{i:02d}-{rng.choice(WORDS)}", props, private, DataAddress("HttpData", {"baseUrl": "http://x"}), i)
        )
    return made


def _criterion(rng: random.Random) -> Criterion:
    left = rng.choice([*KEYS, "id", "plant", "createdAt"])
    op = rng.choice(["=", "!=", "<", "<=", ">", ">=", "in", "like", "ilike", "contains"])
    if left == "createdAt":
        op = rng.choice(["=", "!=", "<", "<=", ">", ">="])
        return Criterion(left, op, rng.randrange(0, 40))
    if op == "in":
        return Criterion(left, op, [rng.choice(WORDS) for _ in range(rng.randrange(0, 3))])
    if op in ("like", "ilike"):
        return Criterion(left, op, rng.choice(["a%", "%a", "_eta", "%", "ALPHA", "gamma\\%", "1%"]))
    right = (
        rng.choice([rng.choice(WORDS), rng.choice([2, 9, 10, 2.5])]) if op not in ("contains",) else rng.choice(WORDS)
    )
    return Criterion(left, op, right)


async def test_sql_and_memory_selection_agree(store: Store) -> None:
    rng = random.Random(20261123)
    assets = _assets(rng)
    async with store.transaction() as tx:
        for asset in assets:
            await tx.assets.add(asset)
    checked = 0
    for _ in range(300):
        criteria = tuple(_criterion(rng) for _ in range(rng.randrange(1, 3)))
        expected = sorted(a.id for a in assets if selection.matches(a, criteria))
        async with store.read() as tx:
            found = [a.id for a in await tx.assets.query(QuerySpec(limit=1000, filter_expression=criteria))]
        assert found == expected, criteria
        checked += len(expected)
    assert checked > 100, "the generated criteria select almost nothing; the test would prove little"


async def test_any_selector_matches_the_union(store: Store) -> None:
    rng = random.Random(7)
    assets = _assets(rng)
    async with store.transaction() as tx:
        for asset in assets:
            await tx.assets.add(asset)
    for _ in range(100):
        selectors = [tuple(_criterion(rng) for _ in range(rng.randrange(1, 2))) for _ in range(rng.randrange(1, 6))]
        if rng.random() < 0.3:
            selectors.append((Criterion("model", "=", rng.choice(WORDS)),))
            selectors.append((Criterion("id", "in", [a.id for a in rng.sample(assets, 3)]),))
        expected = sorted(a.id for a in assets if any(selection.matches(a, s) for s in selectors))
        async with store.read() as tx:
            found = [a.id for a in await tx.assets.select_any(selectors, 0, 1000)]
        assert found == expected, selectors


async def test_a_requesters_filter_narrows_the_selection_on_public_properties_only(store: Store) -> None:
    rng = random.Random(11)
    assets = _assets(rng)
    async with store.transaction() as tx:
        for asset in assets:
            await tx.assets.add(asset)
    public = {a.id: Asset(a.id, a.properties, {}, a.data_address, a.created_at) for a in assets}
    for _ in range(100):
        where = tuple(_criterion(rng) for _ in range(rng.randrange(1, 3)))
        # As if the asset had no private properties: a requester's filter never sees them.
        expected = sorted(a.id for a in assets if selection.matches(public[a.id], where))
        async with store.read() as tx:
            found = [a.id for a in await tx.assets.select_any([()], 0, 1000, where=where)]
        assert found == expected, where


def test_edc_quoted_paths_name_the_property_key() -> None:
    assert selection.property_path("'http://purl.org/dc/terms/type'.'@id'") == "http://purl.org/dc/terms/type"
    assert selection.property_path("'a.b'.'@value'") == "a.b"
    assert selection.property_path("https://w3id.org/edc/v0.0.1/ns/id") == "https://w3id.org/edc/v0.0.1/ns/id"
    for bad in ("'a'.'b'", "'a", "'a'.'@id'.'x'", "''"):
        with pytest.raises(ValueError, match="operandLeft"):
            selection.property_path(bad)


def test_definition_index_agrees_with_selector_matching() -> None:
    import policies
    from connector.domain.assets import ContractDefinition
    from connector.services.catalog import CompiledDefinition, DefinitionIndex

    rng = random.Random(11)
    assets = _assets(rng)
    policy = policies.parse_policy({"@context": "http://www.w3.org/ns/odrl.jsonld", "permission": [{"action": "use"}]})
    definitions = []
    for i in range(60):
        shape = rng.randrange(4)
        if shape == 0:
            selector: tuple[Criterion, ...] = ((Criterion("model", "=", rng.choice(WORDS))),)
        elif shape == 1:
            selector = (Criterion("id", "in", [a.id for a in rng.sample(assets, 2)]),)
        elif shape == 2:
            selector = tuple(_criterion(rng) for _ in range(rng.randrange(0, 3)))
        else:
            selector = (Criterion("tags", "in", [rng.choice(WORDS), rng.choice(WORDS)]),)
        definition = ContractDefinition(f"cd{i}", "p", "p", selector, {}, 1)
        definitions.append(CompiledDefinition(definition, policy, policy, "f"))
    index = DefinitionIndex(definitions)
    hits = 0
    for asset in assets:
        expected = [d for d in definitions if selection.matches(asset, d.selector)]
        assert index.matching(asset) == expected, asset.id
        hits += len(expected)
    assert hits > 40
