"""Expansion by term tables gives exactly what pyld gives, and leaves to pyld every document it cannot read."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pyld import jsonld as pyld

import policies
from catalog.dsp import render_catalog, render_dataset
from catalog.model import HTTP_PULL, HTTP_PUSH, Catalog, DataService, Dataset, Distribution, Offer
from connector import jsonld
from connector.domain.errors import InvalidInput
from connector.jsonld import tables
from connector.management import wire

DATA = Path(__file__).parent / "data"
DSP = "https://w3id.org/dspace/2025/1/context.jsonld"
ODRL = "http://www.w3.org/ns/odrl.jsonld"
CX_POLICY = "https://w3id.org/catenax/2025/9/policy/context.jsonld"
V2 = "https://w3id.org/edc/connector/management/v2"
EDC = "https://w3id.org/edc/v0.0.1/ns/"
BPC = "https://w3id.org/battery-passport-connector/ns/"


def by_pyld(document: Any) -> list[Any]:
    """Expand with pyld alone, as connector.jsonld did before the tables."""
    return pyld.expand(document, {"documentLoader": jsonld._load_document, "base": None})  # type: ignore[no-any-return]


def same(a: Any, b: Any) -> bool:
    """Deep equality, key order included (the management answer keeps the order of the expansion)."""
    return json.dumps(a) == json.dumps(b)


def peer_form(document: Any) -> Any:
    """Drop the context URLs the node does not hold, as expand_peer_document does."""
    if isinstance(document, dict) and isinstance(document.get("@context"), list):
        held = set(jsonld.known_context_urls())
        return {**document, "@context": [c for c in document["@context"] if not isinstance(c, str) or c in held]}
    return document


def node_catalog(n: int) -> dict[str, Any]:
    """Return a catalog page as this node's provider renders it: n datasets, metadata, offers, two distributions."""
    member = policies.parse_policy(
        jsonld.expand(
            {
                "@context": ODRL,
                "@type": "Set",
                "permission": [
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
                ],
            }
        )[0]
    )
    open_policy = policies.parse_policy(jsonld.expand({"@context": ODRL, "@type": "Set"})[0])
    service = DataService("urn:service:dsp", "http://127.0.0.1:8282/api/dsp/2025-1")
    datasets = tuple(
        Dataset(
            f"passport-{i:08d}",
            (Offer(f"def-{i % 7}:passport-{i:08d}:c", member if i % 2 else open_policy),),
            (Distribution(HTTP_PULL, service), Distribution(HTTP_PUSH, service)),
            {
                EDC + "name": f"Battery passport {i}",
                EDC + "contenttype": "application/json",
                BPC + "batteryModel": f"M{i % 40:04d}",
                BPC + "ratedCapacityKWh": 40 + i % 60,
                "http://purl.org/dc/terms/conformsTo": {"@id": "urn:samm:io.catenax.battery.battery_pass:6.0.0"},
                "http://purl.org/dc/terms/title": [f"Model {i % 40}", {"@value": "Modell", "@language": "de"}],
            },
        )
        for i in range(n)
    )
    return render_catalog(Catalog("urn:catalog:1", "did:web:provider.example", service, datasets))


def corpus() -> list[tuple[str, Any]]:
    """Every JSON-LD document shape the node reads from peers, with a name."""
    found: list[tuple[str, Any]] = []
    for path in sorted((DATA / "standards" / "dsp-2025-1").rglob("*.json")) + sorted((DATA / "wire").rglob("*.json")):
        try:
            document = json.loads(path.read_text("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError):
            continue
        if isinstance(document, dict) and "@context" in document:
            found.append((str(path.relative_to(DATA)), document))
    found.append(("node catalog, 3 datasets", node_catalog(3)))
    found.append(("node catalog, 60 datasets", node_catalog(60)))
    dataset = node_catalog(1)["dataset"][0]
    found.append(("node dataset", {"@context": [DSP], **dataset}))
    found.append(("node standalone dataset", render_dataset_standalone()))
    found.append(("Tractus-X shaped catalog", tractusx_catalog()))
    found.append(("EDC catalog with @vocab", edc_vocab_catalog()))
    found.extend(EDGES.items())
    return found


# Rules of JSON-LD 1.1 the tables follow, each where getting it wrong changes the answer.
EDGES: dict[str, Any] = {
    "a @type is read in the context before its own scoped context": {
        "@context": {"@vocab": EDC, "T": {"@id": EDC + "T", "@context": {"T": "https://example.com/other/T"}}},
        "@id": "a",
        "@type": "T",
        "name": "x",
    },
    "an expanded term definition is no prefix": {
        "@context": {"ex": {"@id": "https://example.com/"}, "sx": "https://example.com/s/"},
        "@id": "a",
        "ex:a": 1,
        "sx:b": 2,
    },
    "a non-propagated scope ends at the next node, not at a value": {
        "@context": [DSP, {"@vocab": EDC}],
        "@id": "c",
        "@type": "Catalog",
        "dataset": [{"@id": "d", "dataset": {"@id": "e"}, "participantId": {"@value": "p"}}],
    },
    "keys that expand to the same IRI merge in key order": {
        "@context": [DSP],
        "@id": "a",
        "dct:title": "b",
        "http://purl.org/dc/terms/title": ["a", "c"],
    },
}


def render_dataset_standalone() -> dict[str, Any]:
    service = DataService("urn:service:dsp", "http://127.0.0.1:8282/api/dsp/2025-1")
    policy = policies.parse_policy(jsonld.expand({"@context": ODRL, "@type": "Set"})[0])
    return render_dataset(
        Dataset("a1", (Offer("o1", policy),), (Distribution(HTTP_PULL, service),), {EDC + "name": "x"}),
        standalone=True,
    )


def tractusx_catalog() -> dict[str, Any]:
    """A catalog as Tractus-X EDC 0.13 writes it: its contexts, single values unwrapped, an EDC `id` property."""
    context = json.loads((DATA / "wire" / "tractusx-edc-0.13" / "contract-negotiation-ack.json").read_text())[
        "@context"
    ]
    service = {"@id": "dsp", "@type": "DataService", "endpointDescription": "dspace:connector", "endpointURL": "x"}
    return {
        "@context": context,
        "@id": "c1",
        "@type": "Catalog",
        "participantId": "did:web:tx.example",
        "dataset": {
            "@id": "asset-1",
            "@type": "Dataset",
            "hasPolicy": {
                "@id": "offer-1",
                "@type": "Offer",
                "permission": {
                    "action": "use",
                    "constraint": {
                        "leftOperand": "FrameworkAgreement",
                        "operator": "eq",
                        "rightOperand": "DataExchangeGovernance:1.0",
                    },
                },
                "prohibition": [],
                "obligation": [],
            },
            "distribution": [{"@type": "Distribution", "format": "HttpData-PULL", "accessService": service}],
            "id": "asset-1",
        },
        "service": [service],
    }


def edc_vocab_catalog() -> dict[str, Any]:
    """A catalog in EDC's older compacted form: an inline context with @vocab and prefixes."""
    return {
        "@context": {
            "@vocab": EDC,
            "edc": EDC,
            "dcat": "http://www.w3.org/ns/dcat#",
            "dct": "http://purl.org/dc/terms/",
            "odrl": "http://www.w3.org/ns/odrl/2/",
            "dspace": "https://w3id.org/dspace/v0.8/",
        },
        "@id": "c1",
        "@type": "dcat:Catalog",
        "dcat:dataset": [
            {
                "@id": "asset-1",
                "@type": "dcat:Dataset",
                "odrl:hasPolicy": {"@id": "o1", "@type": "odrl:Offer", "odrl:permission": [], "odrl:obligation": []},
                "dcat:distribution": [{"@type": "dcat:Distribution", "dct:format": {"@id": "HttpData-PULL"}}],
                "name": "asset one",
                "id": "asset-1",
            }
        ],
        "dspace:participantId": "BPNL000000000001",
    }


CORPUS = corpus()


@pytest.mark.parametrize(("name", "document"), CORPUS, ids=[name for name, _ in CORPUS])
def test_corpus_expands_exactly_as_pyld(name: str, document: Any) -> None:
    document = peer_form(document)
    fast = jsonld.expand_by_table(document)
    try:
        slow = by_pyld(document)
    except jsonld.jsonld.JsonLdError:
        assert fast is None, f"{name}: pyld rejects it, the tables must leave it to pyld"
        return
    if fast is None:
        pytest.fail(f"{name}: the tables should read this document")
    assert same(fast, slow), name
    assert same(compacted_by_table(document), compacted(slow)), name


def compacted_by_table(document: Any) -> Any:
    """Expand and compact in one pass, as the consumer's catalog answer does."""
    return jsonld.expand_by_table(document, jsonld._compactor(jsonld.CATALOG_PREFIXES))


def compacted(expanded: list[Any]) -> list[Any]:
    return [jsonld.compact(n, jsonld.CATALOG_PREFIXES) for n in expanded]


def test_the_whole_corpus_is_read_by_the_tables() -> None:
    # Every catalog shape takes the fast path; the other messages too (none of them needs what the tables lack).
    left = [name for name, document in CORPUS if jsonld.expand_by_table(peer_form(document)) is None]
    assert left == []


def test_catalog_answer_is_unchanged() -> None:
    document = node_catalog(40)
    fast = wire.render_peer_document(document)
    nodes = by_pyld(document)
    assert same(fast, {**jsonld.compact(nodes[0], jsonld.CATALOG_PREFIXES), "@context": fast["@context"]})
    assert fast["dcat:dataset"][0]["odrl:hasPolicy"]["@type"] == "odrl:Offer"


def test_a_repeated_flat_node_is_written_for_the_context_it_is_in() -> None:
    # The one-pass compaction writes a small flat node seen before in the same document from memory; the same text
    # under another active context (here a propagated type-scoped one that makes `k` an IRI) must not reuse it.
    scoped = {"@propagate": True, "k": {"@id": "http://s.example/k", "@type": "@id"}}
    document = {
        "@context": {"@vocab": "http://v.example/", "T": {"@id": "http://v.example/T", "@context": scoped}},
        "@id": "urn:top",
        "p": [{"k": "x"}, {"@type": "T", "p": [{"k": "x"}, {"k": "x"}]}, {"k": "x"}, {"k": 1}, {"k": True}],
    }
    expected = compacted(by_pyld(document))
    assert same(compacted_by_table(document), expected)
    top = expected[0]["http://v.example/p"]
    assert top[0] == top[2] != top[1]["http://v.example/p"][0]
    assert not same(top[3], top[4])  # 1 and true are different texts, though equal in Python
    # The answers share no node: changing one leaves the others as they were.
    again = compacted_by_table(document)
    assert again is not None
    items = again[0]["http://v.example/p"]
    items[0]["changed"] = True
    assert "changed" not in items[2]


def test_node_catalog_page_is_written_as_compact_writes_pyld_expansion() -> None:
    document = node_catalog(60)
    assert same(compacted_by_table(document), compacted(by_pyld(document)))


# What the tables leave to pyld.

FALLBACK = {
    "an unknown context": {"@context": ["https://example.com/unknown.jsonld"], "@type": "Catalog"},
    "a list container": {
        "@context": {"@vocab": EDC, "items": {"@id": EDC + "items", "@container": "@list"}},
        "items": [1, 2],
    },
    "a language map": {
        "@context": {"@vocab": EDC, "t": {"@id": EDC + "t", "@container": "@language"}},
        "t": {"en": "x"},
    },
    "@graph": {"@context": [DSP], "@graph": [{"@id": "a", "@type": "Dataset"}]},
    "@reverse": {"@context": [DSP], "@id": "a", "@reverse": {"dcat:dataset": {"@id": "b"}}},
    "a keyword alias": {"@context": {"@vocab": EDC, "id": "@id"}, "id": "a1", "name": "x"},
    "an embedded context": {"@context": [DSP], "@type": "Catalog", "dataset": [{"@context": {"x": EDC + "x"}, "x": 1}]},
    "a property-scoped context": {
        "@context": {"@vocab": EDC, "p": {"@id": EDC + "p", "@context": {"q": EDC + "q"}}},
        "p": {"q": 1},
    },
    "@language in the context": {"@context": {"@vocab": EDC, "@language": "en"}, "name": "x"},
    "@base": {"@context": {"@vocab": EDC, "@base": "https://example.com/"}, "@id": "a"},
    "a language-tagged number": {"@context": [DSP], "@id": "a", "dct:title": {"@value": 1, "@language": "en"}},
    "a protected term redefined": {"@context": [DSP, {"dcat": "https://example.com/not-dcat#"}], "@type": "Catalog"},
    "@id that is not a string": {"@context": [DSP], "@id": 5, "@type": "Catalog"},
    "@type that is not a string": {"@context": [DSP], "@id": "a", "@type": {"x": 1}},
    "a value object with an array @type": {
        "@context": [DSP],
        "@id": "a",
        "dct:x": {"@value": "1", "@type": ["xsd:int"]},
    },
    "@nest": {"@context": {"@vocab": EDC, "n": "@nest"}, "n": {"a": 1}},
    "@version 1.0": {"@context": {"@version": 1.0, "@vocab": EDC}, "a": 1},
    "a document that is a list": [{"@context": [DSP], "@id": "a", "@type": "Catalog"}],
}


@pytest.mark.parametrize("name", sorted(FALLBACK))
def test_what_the_tables_cannot_read_goes_to_pyld(name: str) -> None:
    document = FALLBACK[name]
    assert jsonld.expand_by_table(document) is None
    try:
        expected: Any = by_pyld(document)
    except Exception:  # pyld's errors come in many types; expand() reports each as InvalidInput
        with pytest.raises(InvalidInput):
            jsonld.expand(document)
        return
    assert same(jsonld.expand(document), expected)


def test_an_invalid_peer_answer_is_still_a_peer_error() -> None:
    with pytest.raises(wire.PeerError, match="not valid JSON-LD"):
        wire.render_peer_document({"@context": [DSP, {"dcat": "https://example.com/x#"}], "@type": "Catalog"})
    with pytest.raises(wire.PeerError, match="expected one"):
        wire.render_peer_document({"@context": [DSP], "@id": "only-an-id"})


def test_deep_documents_go_to_pyld() -> None:
    document: dict[str, Any] = {"@id": "leaf"}
    for _ in range(100):
        document = {"@id": "n", "dcat:dataset": document}
    document["@context"] = [DSP]
    assert jsonld.expand_by_table(document) is None


# Property: for any document built from the terms peers use, the tables either give pyld's answer or decline.

TYPES = [
    "Catalog", "Dataset", "Distribution", "DataService", "Offer", "Set", "Agreement", "Permission", "CatalogError",
    "CatalogService", "DataAddress", "dcat:Catalog", "odrl:Offer", EDC + "Asset", "Unknown", "@id", "_:b0",
]  # fmt: skip
KEYS = [
    "participantId", "dataset", "catalog", "service", "distribution", "hasPolicy", "permission", "prohibition",
    "obligation", "constraint", "action", "leftOperand", "operator", "rightOperand", "format", "accessService",
    "endpointURL", "endpointDescription", "target", "assigner", "code", "reason", "id", "type", "name",
    "dct:title", "dcat:keyword", "dspace:participantId", EDC + "name", BPC + "batteryModel", "https:nothing",
    "cx-policy:FrameworkAgreement", "xsd:x", "odrl:target", "edc:name", "unknown", "@foo", "a b", "serviceEndpoint",
    "@id", "@type", "@value",
]  # fmt: skip
CONTEXTS: list[Any] = [
    [DSP],
    DSP,
    [ODRL],
    [ODRL, DSP],
    [DSP, ODRL],
    [CX_POLICY, DSP],
    [V2],
    [DSP, {"@vocab": EDC, "edc": EDC}],
    {"@vocab": EDC, "edc": EDC, "dcat": "http://www.w3.org/ns/dcat#", "odrl": "http://www.w3.org/ns/odrl/2/"},
    {"@vocab": EDC, "p": {"@id": "edc:p", "@type": "@id"}, "edc": EDC, "n": {"@id": EDC + "n", "@type": "xsd:int"}},
    [DSP, {"@propagate": False, "x": EDC + "x"}],
    {"x": {"@id": EDC + "x", "@container": "@set"}},
]
scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-5, 5),
    st.floats(allow_nan=False, allow_infinity=False, width=32),
    st.sampled_from(["use", "eq", "odrl:use", "dspace:connector", "HttpData-PULL", "urn:x", "a1", "_:b", "@id", ""]),
)


def nodes(children: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    plain = st.dictionaries(st.sampled_from(KEYS), children, max_size=5)
    typed = st.builds(
        lambda d, t: {**d, "@type": t},
        plain,
        st.one_of(st.sampled_from(TYPES), st.lists(st.sampled_from(TYPES), max_size=3)),
    )
    value = st.one_of(
        st.builds(lambda v: {"@value": v}, scalars),
        st.builds(lambda v, t: {"@value": v, "@type": t}, scalars, st.sampled_from(["xsd:boolean", "odrl:x", "x"])),
        st.builds(lambda v, t: {"@value": v, "@language": t}, scalars, st.sampled_from(["en", "DE-ch", None, 3])),
    )
    return st.one_of(plain, typed, value, st.builds(lambda i: {"@id": i}, st.sampled_from(["a", "urn:a", "dcat:x"])))


values = st.recursive(
    scalars, lambda children: st.one_of(st.lists(children, max_size=3), nodes(children)), max_leaves=25
)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from(CONTEXTS), st.dictionaries(st.sampled_from(KEYS), values, max_size=6), st.sampled_from(TYPES))
def test_tables_agree_with_pyld_on_generated_documents(context: Any, body: dict[str, Any], type_: str) -> None:
    document = {"@context": context, "@type": type_, **body}
    fast = jsonld.expand_by_table(document)
    try:
        slow = by_pyld(document)
    except Exception:  # whatever pyld rejects, the tables must not accept
        assert fast is None
        assert compacted_by_table(document) is None
        return
    if fast is not None:
        assert same(fast, slow)
        assert same(compacted_by_table(document), compacted(slow))
    else:
        assert compacted_by_table(document) is None


def test_contexts_a_peer_chooses_are_kept_within_a_bound() -> None:
    for i in range(200):
        document = {"@context": {"@vocab": f"https://example.com/{i}/"}, "@id": "a", "name": i}
        assert same(jsonld.expand(document), by_pyld(document))
        assert jsonld.expand_by_table({"@context": [DSP, f"https://example.com/{i}.jsonld"], "@id": "a"}) is None
    assert len(tables._top) <= tables._MAX_TOP
