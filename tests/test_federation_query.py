"""The federated catalog's queries over stored entries: free text by word prefixes (a range on the word index),
and EDC's federated catalog query applying a QuerySpec's filterExpression, sortField, offset and limit to each
dataset (docs/federation.md). Entries are written by the store as a crawl writes them; the queries go through a
real node's management API."""

from __future__ import annotations

from typing import Any

import pytest

from connector import vocab
from connector.app import Node
from connector.domain import federation as fed
from connector.domain.errors import InvalidInput
from connector.dsp.catalog import dataset_fields
from connector.store import Store, migrate
from connector.store import federation as federation_store
from tests.conftest import Management

QUERY = "/api/catalog/v1alpha/catalog/query"
DTR = "https://w3id.org/catenax/taxonomy#DigitalTwinRegistry"
EDC_CONTEXT = {"@vocab": vocab.EDC}


def _node(dataset_id: str, title: str, **props: Any) -> dict[str, Any]:
    """An expanded dataset node, as a crawl of an EDC-shaped catalog stores it."""
    node: dict[str, Any] = {"@id": dataset_id, vocab.DCT + "title": [{"@value": title}]}
    for key, value in props.items():
        node[key] = [{"@id": value}] if key == vocab.DCT + "type" else [{"@value": value}]
    return node


def _entry(node: dict[str, Any], provider: str) -> fed.DatasetEntry:
    return fed.DatasetEntry(dataset_id=node["@id"], provider=provider, document=node, **dataset_fields(node))


def _plain(dataset_id: str, title: str, colour: str) -> fed.DatasetEntry:
    """A dataset of a plain DSP 2025-1 page: stored as sent, with its @context."""
    document = {
        "@context": {"dct": vocab.DCT, "ex": "https://example.com/ns/"},
        "@id": dataset_id,
        "dct:title": title,
        "ex:colour": colour,
    }
    return fed.DatasetEntry(
        dataset_id=dataset_id,
        provider="did:web:c.example.com",
        title=title,
        keywords=(),
        battery_category=None,
        chemistry=None,
        model=None,
        access_level=None,
        asset_type=None,
        document=document,
    )


ENTRIES: dict[str, tuple[str, list[fed.DatasetEntry]]] = {
    "pa": (
        "did:web:a.example.com",
        [
            _entry(
                _node(
                    "bat-1",
                    "Battery passport LFP public view",
                    **{vocab.BPC + "chemistry": "LFP", vocab.EDC + "passportAccessLevel": "public"},
                ),
                "did:web:a.example.com",
            ),
            _entry(
                _node(
                    "bat-2",
                    "Passports and passport views NMC",
                    **{vocab.BPC + "chemistry": "NMC", vocab.EDC + "passportAccessLevel": "authority"},
                ),
                "did:web:a.example.com",
            ),
            _entry(_node("registry", "Digital twin registry", **{vocab.DCT + "type": DTR}), "did:web:a.example.com"),
        ],
    ),
    "pb": (
        "did:web:b.example.com",
        [
            _entry(
                _node("bat-9", "Passport LFP", **{vocab.BPC + "chemistry": "LFP"}),
                "did:web:b.example.com",
            ),
            _entry(_node("registry", "Registry of B", **{vocab.DCT + "type": DTR}), "did:web:b.example.com"),
        ],
    ),
    "pc": ("did:web:c.example.com", [_plain("plain-1", "Red one", "red"), _plain("plain-2", "Blue one", "blue")]),
}


async def _seed(store: Store) -> None:
    for k, (pid, (did, entries)) in enumerate(ENTRIES.items()):
        async with store.transaction() as tx:
            await tx.federation.add(fed.Participant(pid, did, "api", k))
            await tx.federation.replace(pid, did, f"https://{pid}.example.com/dsp", 100 + k, entries, [])


def test_prefix_bounds() -> None:
    assert fed.prefix_bound("passp") == "passq"
    assert fed.prefix_bound("a\U0010ffff") == "b"  # the last code point has no successor: the one before moves
    assert fed.prefix_bound("\U0010ffff") is None
    assert fed.prefix_bound("\ud7ff") == "\ue000"  # surrogates are skipped
    words = ["passo", "passp", "passport", "passports", "passpz", "passq", "pass"]
    assert [w for w in words if "passp" <= w < "passq"] == [w for w in words if w.startswith("passp")]


async def test_free_text_matches_word_prefixes(database_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    await migrate.upgrade(database_url)
    store = Store(database_url)
    try:
        await _seed(store)

        async def ids(text: str, limit: int = 50) -> list[tuple[str, str]]:
            found: list[tuple[str, str]] = []
            after = None
            while True:
                async with store.read() as tx:
                    page = await tx.federation.search(fed.DatasetFilter(text=text, after=after, limit=limit))
                found.extend((f.participant_id, f.entry.dataset_id) for f in page)
                if len(page) < limit:
                    return found
                after = found[-1]

        # bat-2 has both "passports" and "passport": found once, in key order, on every page size.
        expected = [("pa", "bat-1"), ("pa", "bat-2"), ("pb", "bat-9")]
        assert await ids("passp") == expected
        assert await ids("PASSP", limit=1) == expected
        assert await ids("passport") == expected  # a whole word is a prefix of itself
        assert await ids("passports") == [("pa", "bat-2")]
        assert await ids("passp vie") == [("pa", "bat-1"), ("pa", "bat-2")]
        assert await ids("passp lf") == [("pa", "bat-1"), ("pb", "bat-9")]
        assert await ids("regis") == [("pa", "registry"), ("pb", "registry")]
        assert await ids("passq") == []
        assert await ids("assport") == []  # a prefix, not any part of a word
        # A prefix whose words have many index rows is answered by probing the datasets in key order: the same.
        monkeypatch.setattr(federation_store, "COMMON_ROWS", 2)
        assert await ids("passp") == expected
        assert await ids("passp", limit=1) == expected
        assert await ids("lf passp") == [("pa", "bat-1"), ("pb", "bat-9")]
        assert await ids("regis") == [("pa", "registry"), ("pb", "registry")]
        # A prefix stands for at most MAX_PREFIX_WORDS words of the index; a shorter one is refused naming `q`.
        monkeypatch.setattr(federation_store, "MAX_PREFIX_WORDS", 2)
        assert await ids("passp") == expected  # passport, passports
        with pytest.raises(InvalidInput) as refused:
            await ids("p")  # passport, passports, public, ...
        assert refused.value.problems[0].path == "q"
    finally:
        await store.close()


async def _query(management: Management, body: Any, status: int = 200) -> Any:
    got, answer = await management.call("POST", QUERY, body)
    assert got == status, answer
    return answer


def _datasets(catalogs: list[dict[str, Any]]) -> dict[str, list[str]]:
    return {c["@id"]: [d.get("@id") for d in c["dcat:dataset"]] for c in catalogs}


def _spec(*criteria: tuple[str, str, Any], **rest: Any) -> dict[str, Any]:
    return {
        "@context": EDC_CONTEXT,
        "@type": "QuerySpec",
        "filterExpression": [
            {"@type": "Criterion", "operandLeft": left, "operator": op, "operandRight": right}
            for left, op, right in criteria
        ],
        **rest,
    }


async def test_the_edc_query_filters_each_dataset(node: Node, management: Management) -> None:
    await _seed(node.store)

    # No filter: every catalog with every dataset, as before.
    everything = _datasets(await _query(management, {"@context": EDC_CONTEXT, "@type": "QuerySpec"}))
    assert everything == {
        "pa": ["bat-1", "bat-2", "registry"],
        "pb": ["bat-9", "registry"],
        "pc": ["plain-1", "plain-2"],
    }

    # Indexed fields, as EDC users write them: the asset type (its IRI or short name), chemistry, id, access level.
    for left, right in (("dct:type", DTR), ("dct:type", "DigitalTwinRegistry"), ("'dct:type'.'@id'", DTR)):
        registries = await _query(management, _spec((left, "=", right)))
        assert _datasets(registries) == {"pa": ["registry"], "pb": ["registry"]}
    lfp = _spec((vocab.BPC + "chemistry", "in", ["LFP", "LMFP"]))
    assert _datasets(await _query(management, lfp)) == {"pa": ["bat-1"], "pb": ["bat-9"]}
    assert _datasets(await _query(management, _spec(("id", "like", "bat-%")))) == {
        "pa": ["bat-1", "bat-2"],
        "pb": ["bat-9"],
    }
    both = _spec(("https://w3id.org/edc/v0.0.1/ns/id", "!=", "bat-1"), ("passportAccessLevel", "=", "authority"))
    assert _datasets(await _query(management, both)) == {"pa": ["bat-2"]}
    provider = _spec(("dspace:participantId", "=", "did:web:b.example.com"))
    assert _datasets(await _query(management, provider)) == {"pb": ["bat-9", "registry"]}

    # Other properties are read from the stored datasets: expanded ones and plain pages with their @context.
    title = _spec(("dct:title", "ilike", "%registry%"))
    assert _datasets(await _query(management, title)) == {"pa": ["registry"], "pb": ["registry"]}
    colour = _spec(("https://example.com/ns/colour", "=", "blue"))
    assert _datasets(await _query(management, colour)) == {"pc": ["plain-2"]}
    mixed = _spec(("dct:title", "like", "%LFP%"), ("id", "in", ["bat-9", "bat-1"]))
    assert _datasets(await _query(management, mixed)) == {"pa": ["bat-1"], "pb": ["bat-9"]}

    # offset and limit page the catalogs that have a dataset selected; sortField orders each catalog's datasets.
    paged = await _query(management, _spec(("id", "like", "%"), offset=1, limit=1))
    assert _datasets(paged) == {"pb": ["bat-9", "registry"]}
    sorted_desc = await _query(management, _spec(sortField="dct:title", sortOrder="DESC", limit=1))
    assert _datasets(sorted_desc) == {"pa": ["bat-2", "registry", "bat-1"]}  # Passports, Digital, Battery
    by_chemistry = await _query(management, _spec(sortField="bpc:chemistry", sortOrder="DESC", limit=1))
    assert _datasets(by_chemistry) == {"pa": ["bat-2", "bat-1", "registry"]}  # NMC, LFP, then none
    sorted_asc = await _query(management, _spec(sortField="id", sortOrder="ASC", offset=2))
    assert _datasets(sorted_asc) == {"pc": ["plain-1", "plain-2"]}


async def test_the_edc_query_refuses_what_it_cannot_evaluate(
    node: Node, management: Management, monkeypatch: pytest.MonkeyPatch
) -> None:
    await _seed(node.store)
    for criteria, path in (
        ((("createdAt", ">", 0),), "filterExpression[0].operandLeft"),
        ((("id", "=", "x"), ("id", "=", ["a", "b"])), "filterExpression[1].operandRight"),
        ((("dct:title", "=", {"a": 1}),), "filterExpression[0].operandRight"),
        ((("id", "between", "a"),), "filterExpression[0].operator"),
        ((("'dct:type'.'a'.'b'", "=", "a"),), "filterExpression[0].operandLeft"),
    ):
        problem = await _query(management, _spec(*criteria), 400)
        assert problem["errors"][0]["path"] == path, problem
    # The in-memory evaluation is bounded: past it, the criterion is named and an indexed one asked for.
    monkeypatch.setattr(fed, "MAX_EVALUATED", 3)
    problem = await _query(management, _spec(("dct:title", "like", "%")), 400)
    assert problem["errors"][0]["path"] == "filterExpression[0]", problem
    assert "not an indexed field" in str(problem) and "dct:title" in str(problem)
    narrowed = _spec(("dct:type", "=", "DigitalTwinRegistry"), ("dct:title", "like", "%B"))
    assert _datasets(await _query(management, narrowed)) == {"pb": ["registry"]}
