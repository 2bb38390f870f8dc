"""The public catalog as DCAT-AP 3.0.1 RDF: SHACL conformance, the mapping, round trips, content negotiation."""

from __future__ import annotations

import json
import warnings
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

import pyshacl
import pytest
from rdflib import Graph, Literal, Namespace, URIRef
from rdflib.compare import isomorphic
from rdflib.namespace import FOAF, RDF, RDFS, SKOS, XSD

import policies
from catalog import rdf
from catalog.model import HTTP_PULL, HTTP_PUSH, Catalog, DataService, Dataset, Distribution, Offer
from catalog.offers import offer_id
from catalog.rdf import CatalogInfo, build_graph, negotiate, serialize
from tests.conftest import data_path

DCAT = Namespace("http://www.w3.org/ns/dcat#")
DCTERMS = Namespace("http://purl.org/dc/terms/")
SH = Namespace("http://www.w3.org/ns/shacl#")
ODRL = Namespace("http://www.w3.org/ns/odrl/2/")
BPC = "https://w3id.org/battery-passport-connector/ns/"
EDC = "https://w3id.org/edc/v0.0.1/ns/"
DCT = str(DCTERMS)
DCAT_NS = str(DCAT)
CATALOG_URL = "https://provider.example/catalog"
DSP_URL = "https://provider.example/api/dsp/2025-1"
SHAPES_DIR = ("dcat-ap-3", "releases", "3.0.1")

INFO = CatalogInfo(
    title="Battery passports of Example Cells GmbH",
    description="The public part of the catalog of Example Cells GmbH's dataspace connector.",
    publisher_name="Example Cells GmbH",
    publisher_id="did:web:provider.example",
    homepage="https://provider.example/",
    issued=datetime(2025, 1, 15, 8, 30, tzinfo=UTC),
    modified=datetime(2025, 6, 1, 12, 0, tzinfo=UTC),
    catalog_url=CATALOG_URL,
)

OPEN_POLICY = {"@context": "http://www.w3.org/ns/odrl.jsonld", "@type": "Set", "permission": [{"action": "use"}]}
PURPOSE_POLICY = {
    "@context": "http://www.w3.org/ns/odrl.jsonld",
    "@type": "Set",
    "permission": [
        {
            "action": "use",
            "constraint": [
                {
                    "or": [
                        {"leftOperand": "purpose", "operator": "eq", "rightOperand": "recycling"},
                        {"leftOperand": "purpose", "operator": "eq", "rightOperand": "repair"},
                    ]
                }
            ],
        }
    ],
    "prohibition": [{"action": "distribute"}],
}

SPECIAL_IDS = ("Zelle Ü 42 / lot#7", "urn:battery:pass:0003", "https://provider.example/assets/4", "电池 5")


def _metadata(i: int, asset_id: str) -> dict[str, Any]:
    """Realistic asset metadata, as connector.services.catalog.dataset_metadata writes it."""
    metadata: dict[str, Any] = {
        BPC + "batteryModel": f"EC-{i:03d}",
        BPC + "nominalCapacity": {"@value": f"{50 + i}.5", "@type": str(XSD.decimal)},
        BPC + "manufacturer": {"@id": "did:web:cells.example"},
        BPC + "cellCount": 96 + i,
        BPC + "recycled": i % 2 == 0,
        EDC + "contenttype": "application/json",
        DCAT_NS + "mediaType": "application/json",
    }
    if i % 3 != 0:  # every third asset has neither a name nor a description
        metadata[EDC + "name"] = f"Battery passport {asset_id}"
        metadata[DCT + "title"] = f"Battery passport {asset_id}"
        metadata[EDC + "description"] = f"Digital battery passport of model EC-{i:03d}."
        metadata[DCT + "description"] = f"Digital battery passport of model EC-{i:03d}."
    if i % 2 == 0:
        metadata[EDC + "keywords"] = ["battery", "passport", "Lithium-Ionen"]
        metadata[DCAT_NS + "keyword"] = ["battery", "passport", "Lithium-Ionen"]
        metadata[DCAT_NS + "version"] = f"1.{i}"
        metadata[DCT + "issued"] = "2024-05-01"
        metadata[DCT + "modified"] = "2024-05-02T10:00:00Z"
        metadata[DCT + "conformsTo"] = "https://batterypass.example/data-model/1.2.0"
        metadata[DCAT_NS + "theme"] = {"@id": "http://publications.europa.eu/resource/authority/data-theme/TECH"}
        metadata[DCT + "language"] = ["en", "de"]
        metadata[BPC + "chemistry"] = {"@value": "Lithium-Eisenphosphat", "@language": "de"}
        metadata[BPC + "dimensions"] = {"length": 400, "width": 200}
        metadata["https://provider.example/ns/123"] = "a predicate RDF/XML cannot write"
    return metadata


def make_catalog(n: int = 20) -> Catalog:
    """A catalog as an anonymous requester sees it: n datasets, two offers on some, both transfer types."""
    service = DataService(id="0e3e8a3c-3a4f-5b3a-9d55-0c1f6c3e0f11", endpoint_url=DSP_URL)
    open_policy = policies.parse_policy(OPEN_POLICY)
    purpose_policy = policies.parse_policy(PURPOSE_POLICY)
    datasets = []
    for i in range(n):
        asset_id = SPECIAL_IDS[i] if i < len(SPECIAL_IDS) else f"battery-passport-{i:04d}"
        offers = [Offer(offer_id("public-read", asset_id, open_policy), open_policy)]
        if i % 4 == 1:
            offers.append(Offer(offer_id("recyclers", asset_id, purpose_policy), purpose_policy))
        datasets.append(
            Dataset(
                id=asset_id,
                offers=tuple(offers),
                distributions=(Distribution(HTTP_PULL, service), Distribution(HTTP_PUSH, service)),
                metadata=_metadata(i, asset_id),
            )
        )
    return Catalog(
        id="urn:uuid:5f0f4b7e-8a45-5f51-a1b7-3f3d1f3bba0e",
        participant_id="did:web:provider.example",
        service=service,
        datasets=tuple(datasets),
    )


def load_shapes(*names: str) -> tuple[Graph, int]:
    """Load DCAT-AP 3.0.1 shape files, dropping sh:property links to property shapes no loaded file defines.

    Upstream quirk: dcat-ap-SHACL.ttl links two DataService property shapes (endpointURL, endpointDescription)
    that only ranges.ttl defines, and ranges.ttl links five that neither file defines; pyshacl refuses to run
    with a dangling link. The constraints themselves are kept as published.
    """
    shapes = Graph()
    for name in names:
        shapes.parse(data_path("standards", *SHAPES_DIR, *name.split("/")), format="turtle")
    dangling = [(s, o) for s, o in shapes.subject_objects(SH.property) if (o, SH.path, None) not in shapes]
    for s, o in dangling:
        shapes.remove((s, SH.property, o))
    return shapes, len(dangling)


@pytest.fixture(scope="module")
def shapes() -> Graph:
    """The full DCAT-AP 3.0.1 shapes (mandatory properties, cardinalities, classes) with their ranges, loaded once."""
    loaded, dangling = load_shapes("shacl/dcat-ap-SHACL.ttl", "shacl/ranges.ttl")
    assert dangling == 5
    return loaded


@pytest.fixture(scope="module")
def split_shapes() -> Graph:
    """The split variant the DCAT-AP 3.0.1 HTML release publishes: shapes.ttl plus range.ttl."""
    loaded, dangling = load_shapes("html/shacl/shapes.ttl", "html/shacl/range.ttl")
    assert dangling == 0
    return loaded


@pytest.fixture(scope="module")
def graph() -> Graph:
    return build_graph(make_catalog(), INFO)


def shacl_results(data: Graph, shapes: Graph) -> tuple[bool, list[tuple[Any, Any, Any]], str]:
    """Validate without inference or imports (offline); return conforms, the violations and the report text."""
    conforms, report, text = pyshacl.validate(
        data, shacl_graph=shapes, inference="none", abort_on_first=False, allow_warnings=True, do_owl_imports=False
    )
    violations = [
        (report.value(r, SH.focusNode), report.value(r, SH.resultPath), report.value(r, SH.sourceShape))
        for r in report.subjects(SH.resultSeverity, SH.Violation)
    ]
    return bool(conforms), violations, str(text)


def _dataset(g: Graph, asset_id: str) -> URIRef:
    subjects = [s for s in g.subjects(DCTERMS.identifier, Literal(asset_id)) if (s, RDF.type, DCAT.Dataset) in g]
    assert len(subjects) == 1, f"one dataset with identifier {asset_id!r}, got {subjects}"
    node = subjects[0]
    assert isinstance(node, URIRef)
    return node


def parse(body: bytes, fmt: str) -> Graph:
    """Parse a serialisation back (rdflib's JSON-LD parser warns about its own use of ConjunctiveGraph)."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="ConjunctiveGraph is deprecated", category=DeprecationWarning)
        return Graph().parse(data=body, format=fmt)


def normalized(g: Graph) -> Graph:
    """The graph with every literal in rdflib's canonical lexical form ("...Z" and "...+00:00" are one value)."""
    out = Graph()
    for s, p, o in g:
        if isinstance(o, Literal):
            o = Literal(str(o), lang=o.language, datatype=o.datatype)
        out.add((s, p, o))
    return out


def same_graph(a: Graph, b: Graph) -> bool:
    return len(a) == len(b) and isomorphic(normalized(a), normalized(b))


# --- SHACL conformance ----------------------------------------------------------------------------------------


def test_generated_catalog_conforms_to_dcat_ap_3(graph: Graph, shapes: Graph) -> None:
    conforms, violations, text = shacl_results(graph, shapes)
    assert violations == [], text
    assert conforms, text
    assert len(list(graph.subjects(RDF.type, DCAT.Dataset))) == 20


def test_generated_catalog_conforms_to_the_split_shapes(graph: Graph, split_shapes: Graph) -> None:
    conforms, violations, text = shacl_results(graph, split_shapes)
    assert violations == [], text
    assert conforms, text


def test_shapes_report_a_catalog_without_title(graph: Graph, shapes: Graph) -> None:
    broken = Graph() + graph
    catalog = URIRef(CATALOG_URL)
    assert (catalog, DCTERMS.title, None) in broken
    broken.remove((catalog, DCTERMS.title, None))
    conforms, violations, _ = shacl_results(broken, shapes)
    assert not conforms
    assert (catalog, DCTERMS.title) in {(focus, path) for focus, path, _ in violations}


def test_shapes_report_a_dataset_without_title_and_a_distribution_without_access_url(
    graph: Graph, shapes: Graph
) -> None:
    broken = Graph() + graph
    dataset = _dataset(broken, "battery-passport-0007")
    distribution = next(iter(broken.objects(dataset, DCAT.distribution)))
    broken.remove((dataset, DCTERMS.title, None))
    broken.remove((distribution, DCAT.accessURL, None))
    conforms, violations, _ = shacl_results(broken, shapes)
    assert not conforms
    found = {(focus, path) for focus, path, _ in violations}
    assert found == {(dataset, DCTERMS.title), (distribution, DCAT.accessURL)}


def test_shapes_report_an_untyped_format(graph: Graph, shapes: Graph) -> None:
    """dct:format must point at a dct:MediaTypeOrExtent: a bare literal such as "HttpData-PULL" is rejected."""
    broken = Graph() + graph
    dataset = _dataset(broken, "battery-passport-0007")
    distribution = next(iter(broken.objects(dataset, DCAT.distribution)))
    broken.set((distribution, DCTERMS["format"], Literal(HTTP_PULL)))
    conforms, violations, _ = shacl_results(broken, shapes)
    assert not conforms
    assert {(focus, path) for focus, path, _ in violations} == {(distribution, DCTERMS["format"])}


def test_an_empty_catalog_conforms(shapes: Graph) -> None:
    empty = Catalog(
        id="catalog 1", participant_id="did:web:provider.example", service=make_catalog(0).service, datasets=()
    )
    info = CatalogInfo(
        title="Leer",
        description="Nichts",
        publisher_name="P",
        publisher_id="https://provider.example/#org",
        homepage="https://provider.example",
        language="de",
    )
    g = build_graph(empty, info)
    conforms, violations, text = shacl_results(g, shapes)
    assert conforms and violations == [], text
    # No catalog_url and a catalog id that is no IRI: the subject is minted under the homepage.
    assert (URIRef("https://provider.example/catalog"), RDF.type, DCAT.Catalog) in g
    assert (URIRef("https://provider.example/catalog"), DCTERMS.title, Literal("Leer", lang="de")) in g
    language = URIRef("http://publications.europa.eu/resource/authority/language/DEU")
    assert (URIRef("https://provider.example/catalog"), DCTERMS.language, language) in g


# --- The mapping ----------------------------------------------------------------------------------------------


def test_catalog_node(graph: Graph) -> None:
    catalog = URIRef(CATALOG_URL)
    publisher = URIRef(INFO.publisher_id)
    assert (catalog, RDF.type, DCAT.Catalog) in graph
    assert (catalog, DCTERMS.title, Literal(INFO.title, lang="en")) in graph
    assert (catalog, DCTERMS.description, Literal(INFO.description, lang="en")) in graph
    assert (catalog, DCTERMS.publisher, publisher) in graph
    assert (publisher, RDF.type, FOAF.Agent) in graph
    assert (publisher, FOAF.name, Literal("Example Cells GmbH")) in graph
    assert (catalog, FOAF.homepage, URIRef(INFO.homepage)) in graph
    english = URIRef("http://publications.europa.eu/resource/authority/language/ENG")
    assert (catalog, DCTERMS.language, english) in graph
    issued = graph.value(catalog, DCTERMS.issued)
    assert isinstance(issued, Literal) and issued.datatype == XSD.dateTime
    assert issued.toPython() == INFO.issued
    assert (catalog, DCTERMS.identifier, Literal("urn:uuid:5f0f4b7e-8a45-5f51-a1b7-3f3d1f3bba0e")) in graph
    service = graph.value(catalog, DCAT.service)
    assert (service, RDF.type, DCAT.DataService) in graph
    assert (service, DCAT.endpointURL, URIRef(DSP_URL)) in graph
    assert graph.value(service, DCTERMS.title) is not None
    assert len(list(graph.objects(catalog, DCAT.dataset))) == 20


def test_dataset_iris_are_minted_for_local_ids_and_kept_for_iris(graph: Graph) -> None:
    for asset_id in ("Zelle Ü 42 / lot#7", "电池 5", "battery-passport-0011"):
        node = _dataset(graph, asset_id)
        assert str(node) == f"{CATALOG_URL}/datasets/{quote(asset_id, safe='')}"
        assert str(node).isascii() and " " not in str(node)
    for asset_id in ("urn:battery:pass:0003", "https://provider.example/assets/4"):
        assert _dataset(graph, asset_id) == URIRef(asset_id)


def test_titles_and_descriptions_fall_back_when_the_asset_has_none(graph: Graph) -> None:
    untitled = _dataset(graph, "Zelle Ü 42 / lot#7")  # index 0: no name, no description
    assert list(graph.objects(untitled, DCTERMS.title)) == [Literal("Zelle Ü 42 / lot#7")]
    (description,) = graph.objects(untitled, DCTERMS.description)
    assert "Zelle Ü 42 / lot#7" in str(description)
    titled = _dataset(graph, "urn:battery:pass:0003")  # index 2
    assert list(graph.objects(titled, DCTERMS.title)) == [Literal("Battery passport urn:battery:pass:0003", lang="en")]


def test_dct_and_dcat_metadata_get_their_dcat_ap_ranges(graph: Graph) -> None:
    node = _dataset(graph, "battery-passport-0010")
    keywords = set(graph.objects(node, DCAT.keyword))
    assert keywords == {Literal(k, lang="en") for k in ("battery", "passport", "Lithium-Ionen")}
    assert list(graph.objects(node, DCAT.version)) == [Literal("1.10")]
    assert list(graph.objects(node, DCTERMS.issued)) == [Literal("2024-05-01", datatype=XSD.date)]
    (modified,) = graph.objects(node, DCTERMS.modified)
    assert isinstance(modified, Literal) and modified.datatype == XSD.dateTime
    assert str(modified) == "2024-05-02T10:00:00Z"
    standard = URIRef("https://batterypass.example/data-model/1.2.0")
    assert list(graph.objects(node, DCTERMS.conformsTo)) == [standard]
    assert (standard, RDF.type, DCTERMS.Standard) in graph
    theme = URIRef("http://publications.europa.eu/resource/authority/data-theme/TECH")
    assert list(graph.objects(node, DCAT.theme)) == [theme]
    assert (theme, RDF.type, SKOS.Concept) in graph
    assert (theme, SKOS.prefLabel, Literal("Science and technology", lang="en")) in graph
    languages = {str(x).rsplit("/", 1)[1] for x in graph.objects(node, DCTERMS.language)}
    assert languages == {"ENG", "DEU"}
    assert (node, DCTERMS.publisher, URIRef(INFO.publisher_id)) in graph


def test_other_properties_are_kept_with_their_iris(graph: Graph) -> None:
    node = _dataset(graph, "battery-passport-0010")
    bpc = Namespace(BPC)
    assert list(graph.objects(node, bpc.batteryModel)) == [Literal("EC-010")]
    assert list(graph.objects(node, bpc.nominalCapacity)) == [Literal("60.5", datatype=XSD.decimal)]
    assert list(graph.objects(node, bpc.manufacturer)) == [URIRef("did:web:cells.example")]
    assert list(graph.objects(node, bpc.cellCount)) == [Literal(106)]
    assert list(graph.objects(node, bpc.recycled)) == [Literal(True)]
    assert list(graph.objects(node, bpc.chemistry)) == [Literal("Lithium-Eisenphosphat", lang="de")]
    (dimensions,) = graph.objects(node, bpc.dimensions)
    assert isinstance(dimensions, Literal) and dimensions.datatype == RDF.JSON
    assert json.loads(str(dimensions)) == {"length": 400, "width": 200}
    # The EDC copies of DCAT/DCT terms are not repeated; a predicate RDF/XML cannot write is left out.
    predicates = {str(p) for p in graph.predicates(node)}
    assert not {EDC + "name", EDC + "description", EDC + "keywords", EDC + "contenttype"} & predicates
    assert "https://provider.example/ns/123" not in predicates


def test_offers_are_odrl_offers_with_their_rules(graph: Graph) -> None:
    asset_id = "battery-passport-0005"
    node = _dataset(graph, asset_id)
    offers = set(graph.objects(node, ODRL.hasPolicy))
    assert len(offers) == 2
    identifiers = {str(graph.value(o, DCTERMS.identifier)) for o in offers}
    assert identifiers == {
        offer_id("public-read", asset_id, policies.parse_policy(OPEN_POLICY)),
        offer_id("recyclers", asset_id, policies.parse_policy(PURPOSE_POLICY)),
    }
    for offer in offers:
        assert (offer, RDF.type, ODRL.Offer) in graph
        assert (offer, ODRL.target, node) in graph
        identifier = str(graph.value(offer, DCTERMS.identifier))
        assert str(offer) == f"{CATALOG_URL}/offers/{quote(identifier, safe='')}"
        permission = graph.value(offer, ODRL.permission)
        assert (permission, ODRL.action, ODRL.use) in graph
    recyclers = next(o for o in offers if (o, ODRL.prohibition, None) in graph)
    assert (graph.value(recyclers, ODRL.prohibition), ODRL.action, ODRL.distribute) in graph
    constraint = graph.value(graph.value(recyclers, ODRL.permission), ODRL.constraint)
    operands = list(graph.objects(constraint, ODRL["or"]))
    assert len(operands) == 2
    assert {graph.value(c, ODRL.rightOperand) for c in operands} == {Literal("recycling"), Literal("repair")}
    assert all(graph.value(c, ODRL.leftOperand) == ODRL.purpose for c in operands)


def test_ordered_constraints_and_duties_are_written() -> None:
    policy = policies.parse_policy(
        {
            "@context": "http://www.w3.org/ns/odrl.jsonld",
            "@type": "Set",
            "permission": [
                {
                    "action": "use",
                    "constraint": [
                        {
                            "andSequence": [
                                {"leftOperand": "purpose", "operator": "eq", "rightOperand": "recycling"},
                                {
                                    "leftOperand": "dateTime",
                                    "operator": "lt",
                                    "rightOperand": {"@value": "2030-01-01T00:00:00Z", "@type": "xsd:dateTime"},
                                },
                            ]
                        }
                    ],
                    "duty": [{"action": "compensate"}],
                }
            ],
        }
    )
    g = rdf.new_graph()
    offer = URIRef("https://provider.example/offers/1")
    rdf.add_policy(g, offer, policy)
    permission = g.value(offer, ODRL.permission)
    assert (g.value(permission, ODRL.duty), ODRL.action, ODRL.compensate) in g
    sequence = g.value(g.value(permission, ODRL.constraint), ODRL.andSequence)
    first, rest = g.value(sequence, RDF.first), g.value(sequence, RDF.rest)
    assert g.value(first, ODRL.rightOperand) == Literal("recycling")
    second = g.value(rest, RDF.first)
    deadline = g.value(second, ODRL.rightOperand)
    assert isinstance(deadline, Literal) and deadline.datatype == XSD.dateTime
    assert str(deadline) == "2030-01-01T00:00:00Z"
    assert g.value(rest, RDF.rest) == RDF.nil


def test_distributions(graph: Graph) -> None:
    node = _dataset(graph, "battery-passport-0006")
    distributions = list(graph.objects(node, DCAT.distribution))
    assert len(distributions) == 2
    service = graph.value(URIRef(CATALOG_URL), DCAT.service)
    labels = set()
    for distribution in distributions:
        assert (distribution, RDF.type, DCAT.Distribution) in graph
        assert (distribution, DCAT.accessURL, URIRef(DSP_URL)) in graph
        assert (distribution, DCAT.accessService, service) in graph
        assert graph.value(distribution, DCTERMS.title) is not None
        media_type = URIRef("https://www.iana.org/assignments/media-types/application/json")
        assert (distribution, DCAT.mediaType, media_type) in graph
        (fmt,) = graph.objects(distribution, DCTERMS["format"])
        assert (fmt, RDF.type, DCTERMS.MediaTypeOrExtent) in graph
        labels.add(str(graph.value(fmt, RDFS.label)))
    assert labels == {HTTP_PULL, HTTP_PUSH}
    # One format node per transfer type, shared by every distribution.
    assert len(set(graph.subjects(RDF.type, DCTERMS.MediaTypeOrExtent))) == 2


def test_catalog_info_is_checked() -> None:
    with pytest.raises(ValueError, match="publisher_id"):
        CatalogInfo(title="t", description="d", publisher_name="p", publisher_id="ACME", homepage="https://a.example")
    with pytest.raises(ValueError, match="language"):
        CatalogInfo(
            title="t",
            description="d",
            publisher_name="p",
            publisher_id="did:web:a.example",
            homepage="https://a.example",
            language="klingon!",
        )
    with pytest.raises(ValueError, match="title"):
        CatalogInfo(
            title=" ",
            description="d",
            publisher_name="p",
            publisher_id="did:web:a.example",
            homepage="https://a.example",
        )


def test_offer_ids_are_never_taken_for_iris() -> None:
    policy = policies.parse_policy(OPEN_POLICY)
    # A base64 part may look like an IRI scheme ("YQ==" is not, "cHVibGlj" is): neither is used as an IRI.
    assert not rdf.is_iri(offer_id("public", "a", policy))
    assert not rdf.is_iri("battery passport 1")
    assert rdf.is_iri("did:web:provider.example") and rdf.is_iri("urn:uuid:1") and rdf.is_iri("https://a.example/x")
    assert not rdf.is_iri("https:no-authority")


# --- Serialisation --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fmt", "content_type", "parse_as"),
    [
        ("turtle", "text/turtle", "turtle"),
        ("json-ld", "application/ld+json", "json-ld"),
        ("xml", "application/rdf+xml", "xml"),
    ],
)
def test_serialisations_round_trip(graph: Graph, fmt: str, content_type: str, parse_as: str) -> None:
    body, served_as = serialize(graph, fmt)
    assert served_as == content_type
    assert b"2024-05-02T10:00:00Z" in body  # the asset's lexical form is kept
    assert isinstance(body, bytes)
    body.decode("utf-8")
    back = parse(body, parse_as)
    assert len(back) == len(graph)
    assert same_graph(back, graph)


def test_large_graphs_get_the_flat_turtle_writer(graph: Graph, monkeypatch: pytest.MonkeyPatch) -> None:
    pretty, _ = serialize(graph, "turtle")
    monkeypatch.setattr(rdf, "PRETTY_TURTLE_MAX_TRIPLES", 10)
    flat, content_type = serialize(graph, "turtle")
    assert content_type == "text/turtle"
    assert flat != pretty
    assert flat.startswith(b"@prefix dcat: <http://www.w3.org/ns/dcat#> .")
    back = parse(flat, "turtle")
    assert len(back) == len(graph)
    assert same_graph(back, graph)


def test_json_ld_uses_the_prefixes() -> None:
    small = build_graph(make_catalog(2), INFO)
    body, _ = serialize(small, "json-ld")
    document = json.loads(body)
    assert document["@context"]["dcat"] == "http://www.w3.org/ns/dcat#"
    assert "dcat:Catalog" in body.decode()


def test_unknown_format_is_refused(graph: Graph) -> None:
    with pytest.raises(ValueError, match="unknown RDF format"):
        serialize(graph, "n3")


def test_literal_text_with_quotes_and_newlines_survives_every_format() -> None:
    catalog = make_catalog(1)
    tricky = 'He said "hi"\nthen <left> & \\ went; ünïcödé'
    dataset = Dataset(
        id="tricky", offers=catalog.datasets[0].offers, distributions=(), metadata={DCT + "description": tricky}
    )
    g = build_graph(Catalog(catalog.id, catalog.participant_id, catalog.service, (dataset,)), INFO)
    for fmt, parse_as in (("turtle", "turtle"), ("json-ld", "json-ld"), ("xml", "xml")):
        back = parse(serialize(g, fmt)[0], parse_as)
        assert (None, DCTERMS.description, Literal(tricky, lang="en")) in back, fmt


# --- Content negotiation --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("accept", "expected"),
    [
        (None, "turtle"),
        ("", "turtle"),
        ("*/*", "turtle"),
        ("text/turtle", "turtle"),
        ("application/ld+json", "json-ld"),
        ("application/json", "json-ld"),
        ("application/rdf+xml", "xml"),
        ("APPLICATION/RDF+XML; charset=utf-8", "xml"),
        ('application/ld+json;profile="http://www.w3.org/ns/json-ld#compacted"', "json-ld"),
        ("text/turtle;q=0.5, application/ld+json", "json-ld"),
        ("text/turtle;q=0.9, application/rdf+xml;q=0.95, */*;q=0.1", "xml"),
        ("application/ld+json, text/turtle", "json-ld"),  # equal quality: the client's order
        ("text/turtle, application/ld+json", "turtle"),
        ("text/*", "turtle"),
        ("application/*", "json-ld"),
        ("text/html, application/xhtml+xml, application/xml;q=0.9, */*;q=0.8", "turtle"),
        ("*/*, text/turtle;q=0", "json-ld"),  # a refused type is refused even under */*
        ("*/*;q=0.1, application/*;q=0", "turtle"),
        ("text/html", None),
        ("application/xml", None),
        ("text/turtle;q=0", None),
        ("text/turtle;q=abc", None),
        ("garbage", None),
    ],
)
def test_negotiate(accept: str | None, expected: str | None) -> None:
    assert negotiate(accept) == expected
