"""The public catalog as DCAT-AP 3.0.1 RDF: Turtle, JSON-LD and RDF/XML, chosen by content negotiation.

`build_graph` turns a `Catalog` (computed for an anonymous requester: this module never filters, it renders
what it is given) plus the `CatalogInfo` DCAT-AP needs about the publishing node into an rdflib graph that
conforms to the DCAT-AP 3.0.1 SHACL shapes. `serialize` writes it; `negotiate` reads an Accept header.
See docs/catalog-rdf.md for the mapping and the known gaps.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator, Mapping
from datetime import date, datetime
from functools import lru_cache
from typing import Any, Final
from urllib.parse import quote

from rdflib import BNode, Graph, Literal, URIRef
from rdflib.collection import Collection
from rdflib.namespace import FOAF, RDF, RDFS, SKOS, XSD, Namespace, is_ncname, split_uri

from catalog.info import LANGUAGE_TAG, CatalogInfo, is_iri, language_code
from catalog.model import Catalog, DataService, Dataset, Distribution, Offer
from catalog.offers import parse_offer_id
from policies import Constraint, LiteralValue, LogicalConstraint, Policy, Ref, Rule

# Open namespaces: rdflib's closed DCAT/DCTERMS ones warn on terms they lack (dcat:version, ...).
DCAT: Final = Namespace("http://www.w3.org/ns/dcat#")
DCTERMS: Final = Namespace("http://purl.org/dc/terms/")
ODRL2: Final = Namespace("http://www.w3.org/ns/odrl/2/")
DSPACE: Final = Namespace("https://w3id.org/dspace/2025/1/")
BPC: Final = Namespace("https://w3id.org/battery-passport-connector/ns/")
ADMS: Final = Namespace("http://www.w3.org/ns/adms#")
PROV: Final = Namespace("http://www.w3.org/ns/prov#")
VCARD: Final = Namespace("http://www.w3.org/2006/vcard/ns#")
DCATAP: Final = Namespace("http://data.europa.eu/r5r/")
EDC: Final = "https://w3id.org/edc/v0.0.1/ns/"
EU_LANGUAGE: Final = "http://publications.europa.eu/resource/authority/language/"
EU_DATA_THEME: Final = "http://publications.europa.eu/resource/authority/data-theme/"
IANA_MEDIA_TYPES: Final = "https://www.iana.org/assignments/media-types/"
# The published Dataspace Protocol 2025-1 specification: what the data service conforms to.
DSP_SPECIFICATION: Final = "https://eclipse-dataspace-protocol-base.github.io/DataspaceProtocol/2025-1/"

PREFIXES: Final[dict[str, str]] = {
    "dcat": str(DCAT),
    "dct": str(DCTERMS),
    "foaf": str(FOAF),
    "odrl": str(ODRL2),
    "rdf": str(RDF),
    "rdfs": str(RDFS),
    "skos": str(SKOS),
    "xsd": str(XSD),
    "dspace": str(DSPACE),
    "bpc": str(BPC),
}

CONTENT_TYPES: Final[dict[str, str]] = {
    "turtle": "text/turtle",
    "json-ld": "application/ld+json",
    "xml": "application/rdf+xml",
}

# Graphs up to this size get rdflib's pretty Turtle (about 0.1 ms a triple); larger ones the flat writer.
PRETTY_TURTLE_MAX_TRIPLES: Final = 5_000

# ISO 639-1 codes of the EU's official languages (and a few neighbours) to the EU language authority codes.
# English labels of the EU data themes (skos:Concept needs a skos:prefLabel in DCAT-AP).
_EU_DATA_THEMES: Final[dict[str, str]] = {
    "AGRI": "Agriculture, fisheries, forestry and food",
    "ECON": "Economy and finance",
    "EDUC": "Education, culture and sport",
    "ENER": "Energy",
    "ENVI": "Environment",
    "GOVE": "Government and public sector",
    "HEAL": "Health",
    "INTR": "International issues",
    "JUST": "Justice, legal system and public safety",
    "REGI": "Regions and cities",
    "SOCI": "Population and society",
    "TECH": "Science and technology",
    "TRAN": "Transport",
    "OP_DATPRO": "Provisional data",
}

# Identifiers with these schemes are used as IRIs as they are; anything else (an EDC asset id such as
# "battery 42", an offer id "base64:base64:base64") is a local identifier and gets an IRI minted for it.
_MEDIA_TYPE: Final = re.compile(r"^[A-Za-z0-9][A-Za-z0-9!#$&^_.+-]*/[A-Za-z0-9][A-Za-z0-9!#$&^_.+-]*$")
_DATE: Final = re.compile(r"^-?\d{4,}-\d{2}-\d{2}(Z|[+-]\d{2}:\d{2})?$")
_DATETIME: Final = re.compile(r"^-?\d{4,}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})?$")
_GYEAR: Final = re.compile(r"^-?\d{4,}$")
_GYEARMONTH: Final = re.compile(r"^-?\d{4,}-\d{2}$")
_TEMPORAL_TYPES: Final = {XSD.date: _DATE, XSD.dateTime: _DATETIME, XSD.gYear: _GYEAR, XSD.gYearMonth: _GYEARMONTH}


@lru_cache(maxsize=4096)
def _writable_predicate(iri: str) -> bool:
    """Return True when every format (RDF/XML included) can write the IRI as a predicate."""
    if not is_iri(iri):
        return False
    try:
        _, local = split_uri(iri)
    except ValueError:
        return False
    return bool(local) and (local[0].isalpha() or local[0] == "_") and bool(is_ncname(local))


def language_iri(tag: str) -> URIRef:
    """Return the EU language authority IRI for a BCP 47 tag ("en" -> .../language/ENG)."""
    code = language_code(tag)
    if code is None:
        raise ValueError(f"no EU language authority code for {tag!r}")
    return URIRef(EU_LANGUAGE + code)


# --- JSON values to RDF terms ------------------------------------------------------------------------------


def _items(value: Any) -> Iterator[Any]:
    if value is None:
        return
    if isinstance(value, list | tuple):
        for item in value:
            yield from _items(item)
    elif isinstance(value, Mapping) and "@list" in value:
        yield from _items(value["@list"])
    elif isinstance(value, Mapping) and "@set" in value:
        yield from _items(value["@set"])
    else:
        yield value


def _expand_datatype(datatype: str) -> str:
    return str(XSD) + datatype[4:] if datatype.startswith("xsd:") else datatype


def _literal(value: Any) -> Literal:
    """A JSON value as a literal: native JSON types keep their XSD type, objects become rdf:JSON."""
    if isinstance(value, Mapping):
        if "@value" in value:
            lexical = value["@value"]
            language = value.get("@language")
            datatype = value.get("@type")
            if isinstance(language, str) and LANGUAGE_TAG.match(language):
                return Literal(str(lexical), lang=language)
            if isinstance(datatype, str) and is_iri(_expand_datatype(datatype)):
                if isinstance(lexical, bool):
                    lexical = "true" if lexical else "false"
                return Literal(str(lexical), datatype=URIRef(_expand_datatype(datatype)), normalize=False)
            return _literal(lexical)
        return Literal(json.dumps(value, sort_keys=True, ensure_ascii=False), datatype=RDF.JSON)
    if isinstance(value, bool | int | float | str):
        return Literal(value)
    return Literal(json.dumps(value, ensure_ascii=False, default=str), datatype=RDF.JSON)


def _term(value: Any) -> URIRef | Literal:
    """A JSON value as an RDF term: {"@id": iri} is a resource, anything else a literal."""
    if isinstance(value, Mapping) and isinstance(value.get("@id"), str) and "@value" not in value:
        return URIRef(value["@id"]) if is_iri(value["@id"]) else Literal(value["@id"])
    return _literal(value)


def _iri_of(value: Any) -> str | None:
    """The IRI a value names: {"@id": iri} or a string that is an IRI."""
    if isinstance(value, Mapping):
        value = value.get("@id")
    return value if isinstance(value, str) and is_iri(value) else None


def _text(value: Any, language: str) -> Literal | None:
    """A human-readable text: plain strings get the catalog language, tagged values keep their own."""
    if isinstance(value, Mapping) and "@value" in value:
        literal = _literal(value)
        return literal if str(literal).strip() else None
    if isinstance(value, str | int | float) and not isinstance(value, bool):
        text = str(value).strip()
        return Literal(text, lang=language) if text else None
    return None


def _temporal(value: Any) -> Literal | None:
    """A date or date-time as xsd:date/xsd:dateTime/xsd:gYear/xsd:gYearMonth; None when it is not one."""
    if isinstance(value, datetime):
        return Literal(value.isoformat(), datatype=XSD.dateTime, normalize=False)
    if isinstance(value, date):
        return Literal(value.isoformat(), datatype=XSD.date, normalize=False)
    declared: URIRef | None = None
    if isinstance(value, Mapping) and "@value" in value:
        if isinstance(value.get("@type"), str):
            declared = URIRef(_expand_datatype(value["@type"]))
        value = value["@value"]
    if not isinstance(value, str):
        return None
    lexical = value.strip()
    candidates = [declared] if declared in _TEMPORAL_TYPES else list(_TEMPORAL_TYPES)
    for datatype in candidates:
        if datatype is not None and _TEMPORAL_TYPES[datatype].match(lexical) and _parses(lexical, datatype):
            return Literal(lexical, datatype=datatype, normalize=False)
    return None


def _parses(lexical: str, datatype: URIRef) -> bool:
    """Check the calendar (the patterns only check the shape): month 1-12, a real day, a real time."""
    if lexical.startswith("-"):
        return True  # BCE years: Python's date cannot hold them, the pattern is all we check
    try:
        if datatype == XSD.dateTime:
            datetime.fromisoformat(lexical)
        elif datatype == XSD.date:
            date.fromisoformat(lexical[:10])
        elif datatype == XSD.gYearMonth:
            return 1 <= int(lexical[-2:]) <= 12
    except ValueError:
        return False
    return True


# --- Dataset metadata: DCAT-AP properties and their ranges ---------------------------------------------------


class _Builder:
    """Adds one catalog's triples to a graph."""

    def __init__(self, graph: Graph, info: CatalogInfo, base: str) -> None:
        self.g = graph
        self.info = info
        self.base = base
        self.formats: dict[str, URIRef | BNode] = {}
        self.services: dict[DataService, URIRef] = {}

    def mint(self, kind: str, local: str) -> URIRef:
        return URIRef(f"{self.base}/{kind}/{quote(local, safe='')}")

    # Resources DCAT-AP constrains with sh:class must carry that type (the validator does no inference).
    def typed(self, value: Any, cls: URIRef, label: URIRef = RDFS.label) -> URIRef | BNode | None:
        iri = _iri_of(value)
        if iri is not None:
            node: URIRef | BNode = URIRef(iri)
            self.g.add((node, RDF.type, cls))
            if cls == SKOS.Concept and (node, SKOS.prefLabel, None) not in self.g:
                self.g.add((node, SKOS.prefLabel, self._concept_label(iri)))
            if cls == FOAF.Agent and (node, FOAF.name, None) not in self.g:
                self.g.add((node, FOAF.name, Literal(iri)))
            return node
        text = _text(value, self.info.language)
        if text is None:
            return None
        node = BNode()
        self.g.add((node, RDF.type, cls))
        self.g.add((node, label, text))
        return node

    @staticmethod
    def _concept_label(iri: str) -> Literal:
        if iri.startswith(EU_DATA_THEME) and iri[len(EU_DATA_THEME) :] in _EU_DATA_THEMES:
            return Literal(_EU_DATA_THEMES[iri[len(EU_DATA_THEME) :]], lang="en")
        return Literal(re.split(r"[/#:]", iri.rstrip("/#"))[-1])

    def language(self, value: Any) -> URIRef | None:
        iri = _iri_of(value)
        if iri is None and isinstance(value, str) and LANGUAGE_TAG.match(value) and language_code(value):
            iri = str(language_iri(value))
        if iri is None:
            return None
        node = URIRef(iri)
        self.g.add((node, RDF.type, DCTERMS.LinguisticSystem))
        return node

    def format_node(self, name: str) -> URIRef | BNode:
        """dct:format must be a dct:MediaTypeOrExtent: a media type IRI, or a labelled node for a transfer type."""
        node = self.formats.get(name)
        if node is None:
            node = URIRef(IANA_MEDIA_TYPES + name) if _MEDIA_TYPE.match(name) else BNode()
            self.g.add((node, RDF.type, DCTERMS.MediaTypeOrExtent))
            self.g.add((node, RDFS.label, Literal(name)))
            self.formats[name] = node
        return node


_Handler = Callable[[_Builder, URIRef, URIRef, list[Any]], None]


def _texts(b: _Builder, s: URIRef, p: URIRef, values: list[Any]) -> None:
    for value in values:
        text = _text(value, b.info.language)
        if text is not None:
            b.g.add((s, p, text))


def _plain_one(b: _Builder, s: URIRef, p: URIRef, values: list[Any]) -> None:
    for value in values[:1]:
        literal = _literal(value.get("@value") if isinstance(value, Mapping) and "@value" in value else value)
        if str(literal).strip():
            b.g.add((s, p, Literal(str(literal))))


def _plain(b: _Builder, s: URIRef, p: URIRef, values: list[Any]) -> None:
    for value in values:
        b.g.add((s, p, Literal(str(_literal(value)))))


def _temporal_one(b: _Builder, s: URIRef, p: URIRef, values: list[Any]) -> None:
    for value in values:
        literal = _temporal(value)
        if literal is not None:
            b.g.add((s, p, literal))
            return


def _typed_literal_one(datatype: URIRef) -> _Handler:
    def handler(b: _Builder, s: URIRef, p: URIRef, values: list[Any]) -> None:
        for value in values[:1]:
            lexical = value.get("@value") if isinstance(value, Mapping) else value
            if isinstance(lexical, str | int | float) and not isinstance(lexical, bool):
                b.g.add((s, p, Literal(str(lexical), datatype=datatype, normalize=False)))

    return handler


def _typed_resources(cls: URIRef, label: URIRef = RDFS.label, max_count: int | None = None) -> _Handler:
    def handler(b: _Builder, s: URIRef, p: URIRef, values: list[Any]) -> None:
        for value in values[:max_count]:
            node = b.typed(value, cls, label)
            if node is not None:
                b.g.add((s, p, node))

    return handler


def _resources(b: _Builder, s: URIRef, p: URIRef, values: list[Any]) -> None:
    for value in values:
        iri = _iri_of(value)
        if iri is not None:
            b.g.add((s, p, URIRef(iri)))


def _languages(b: _Builder, s: URIRef, p: URIRef, values: list[Any]) -> None:
    for value in values:
        node = b.language(value)
        if node is not None:
            b.g.add((s, p, node))


def _agent_one(b: _Builder, s: URIRef, p: URIRef, values: list[Any]) -> None:
    for value in values[:1]:
        node = b.typed(value, FOAF.Agent, FOAF.name)
        if node is not None:
            b.g.add((s, p, node))


def _drop(b: _Builder, s: URIRef, p: URIRef, values: list[Any]) -> None:
    """Properties whose DCAT-AP range needs structure a plain JSON value cannot give, or that we write."""


# Every property the DCAT-AP 3.0.1 Dataset shape constrains, with how a metadata value is mapped to meet it.
# Other properties (battery-passport ones, other DCT terms) are kept as they are.
_DATASET_PROPERTIES: Final[dict[URIRef, _Handler]] = {
    DCTERMS.title: _texts,
    DCTERMS.description: _texts,
    DCAT.keyword: _texts,
    ADMS.versionNotes: _texts,
    DCAT.version: _plain_one,
    DCTERMS.identifier: _plain,
    DCTERMS.issued: _temporal_one,
    DCTERMS.modified: _temporal_one,
    DCAT.temporalResolution: _typed_literal_one(XSD.duration),
    DCAT.spatialResolutionInMeters: _typed_literal_one(XSD.decimal),
    DCTERMS.conformsTo: _typed_resources(DCTERMS.Standard),
    DCAT.theme: _typed_resources(SKOS.Concept, SKOS.prefLabel),
    DCTERMS.type: _typed_resources(SKOS.Concept, SKOS.prefLabel),
    DCTERMS.accessRights: _typed_resources(DCTERMS.RightsStatement, max_count=1),
    DCTERMS.accrualPeriodicity: _typed_resources(DCTERMS.Frequency, max_count=1),
    DCTERMS.spatial: _typed_resources(DCTERMS.Location),
    DCTERMS.provenance: _typed_resources(DCTERMS.ProvenanceStatement),
    DCAT.landingPage: _typed_resources(FOAF.Document),
    FOAF.page: _typed_resources(FOAF.Document),
    DCAT.contactPoint: _typed_resources(VCARD.Kind, VCARD.fn),
    DCTERMS.language: _languages,
    DCTERMS.publisher: _agent_one,
    DCTERMS.creator: _agent_one,
    DCTERMS.relation: _resources,
    DCTERMS.isReferencedBy: _resources,
    DCATAP.applicableLegislation: _typed_resources(URIRef("http://data.europa.eu/eli/ontology#LegalResource")),
    DCTERMS.source: _drop,
    DCTERMS.temporal: _drop,
    DCAT.hasVersion: _drop,
    DCAT.inSeries: _drop,
    DCAT.qualifiedRelation: _drop,
    DCAT.distribution: _drop,
    DCAT.mediaType: _drop,  # a distribution property: written on each distribution
    ADMS.identifier: _drop,
    ADMS.sample: _drop,
    PROV.wasGeneratedBy: _drop,
    PROV.qualifiedAttribution: _drop,
    ODRL2.hasPolicy: _drop,
    RDF.type: _drop,
}

# EDC names the connector also writes under their DCAT/DCT name (connector.services.catalog._DCAT_ALIASES);
# the DCAT-AP view keeps only the DCAT/DCT copy.
_EDC_DUPLICATES: Final[dict[str, URIRef]] = {
    EDC + "name": DCTERMS.title,
    EDC + "description": DCTERMS.description,
    EDC + "keywords": DCAT.keyword,
    EDC + "version": DCAT.version,
    EDC + "contenttype": DCAT.mediaType,
    EDC + "id": DCTERMS.identifier,
}


# --- ODRL ----------------------------------------------------------------------------------------------------


def _odrl_value(value: LiteralValue | Ref) -> URIRef | Literal:
    if isinstance(value, Ref):
        return URIRef(value.iri) if is_iri(value.iri) else Literal(value.iri)
    if value.language is not None and LANGUAGE_TAG.match(value.language):
        return Literal(str(value.value), lang=value.language)
    if value.datatype is not None and is_iri(value.datatype):
        lexical = str(value.value).lower() if isinstance(value.value, bool) else str(value.value)
        return Literal(lexical, datatype=URIRef(value.datatype), normalize=False)
    return Literal(value.value)


def _party(value: str) -> URIRef | Literal:
    return URIRef(value) if is_iri(value) else Literal(value)


def _add_constraint(g: Graph, constraint: Constraint | LogicalConstraint) -> URIRef | BNode:
    node: URIRef | BNode = URIRef(constraint.uid) if constraint.uid and is_iri(constraint.uid) else BNode()
    if isinstance(constraint, LogicalConstraint):
        operands: list[URIRef | BNode] = [_add_constraint(g, c) for c in constraint.constraints]
        g.add((node, RDF.type, ODRL2.LogicalConstraint))
        if constraint.operator == "andSequence":
            head = BNode()
            Collection(g, head, list(operands))
            g.add((node, ODRL2.andSequence, head))
        else:
            for operand in operands:
                g.add((node, ODRL2[constraint.operator], operand))
        return node
    g.add((node, RDF.type, ODRL2.Constraint))
    g.add((node, ODRL2.leftOperand, _party(constraint.left_operand)))
    g.add((node, ODRL2.operator, _party(constraint.operator)))
    for value in constraint.right_operand:
        g.add((node, ODRL2.rightOperand, _odrl_value(value)))
    return node


_RULE_TYPES: Final = {
    "permission": ODRL2.Permission,
    "prohibition": ODRL2.Prohibition,
    "obligation": ODRL2.Duty,
    "duty": ODRL2.Duty,
}


def _add_rule(g: Graph, rule: Rule) -> URIRef | BNode:
    node: URIRef | BNode = URIRef(rule.uid) if rule.uid and is_iri(rule.uid) else BNode()
    g.add((node, RDF.type, _RULE_TYPES[rule.kind]))
    g.add((node, ODRL2.action, _party(rule.action)))
    for constraint in rule.constraints:
        g.add((node, ODRL2.constraint, _add_constraint(g, constraint)))
    for predicate, nested in ((ODRL2.duty, rule.duties), (ODRL2.remedy, rule.remedies)):
        for child in nested:
            g.add((node, predicate, _add_rule(g, child)))
    for child in rule.consequences:
        g.add((node, ODRL2.consequence, _add_rule(g, child)))
    for predicate, value in ((ODRL2.target, rule.target), (ODRL2.assigner, rule.assigner)):
        if value is not None:
            g.add((node, predicate, _party(value)))
    return node


def add_policy(g: Graph, node: URIRef | BNode, policy: Policy) -> None:
    """Add a policy's rules to `node` as ODRL 2.2 triples (the assignee is left out: the catalog is public)."""
    for predicate, rules in (
        (ODRL2.permission, policy.permissions),
        (ODRL2.prohibition, policy.prohibitions),
        (ODRL2.obligation, policy.obligations),
    ):
        for rule in rules:
            g.add((node, predicate, _add_rule(g, rule)))
    if policy.assigner is not None:
        g.add((node, ODRL2.assigner, _party(policy.assigner)))
    for profile in policy.profiles:
        g.add((node, ODRL2.profile, _party(profile)))
    if policy.conflict is not None:
        g.add((node, ODRL2.conflict, _party(policy.conflict)))


# --- The catalog ---------------------------------------------------------------------------------------------


def catalog_iri(catalog: Catalog, info: CatalogInfo) -> URIRef:
    """Return the catalog's subject: the stable URL it is served at, else its id, else one under the homepage."""
    if info.catalog_url is not None:
        return URIRef(info.catalog_url.rstrip("/"))
    if is_iri(catalog.id):
        return URIRef(catalog.id)
    return URIRef(info.homepage.rstrip("/") + "/catalog")


def dataset_iri(dataset_id: str, base: str) -> URIRef:
    """Return a dataset's subject: its id when that is an IRI, else `{base}/datasets/{quoted id}`."""
    if is_iri(dataset_id):
        return URIRef(dataset_id)
    return URIRef(f"{base}/datasets/{quote(dataset_id, safe='')}")


def _service(b: _Builder, service: DataService) -> URIRef:
    known = b.services.get(service)
    if known is not None:
        return known
    node = URIRef(service.id) if is_iri(service.id) else b.mint("services", service.id)
    b.services[service] = node
    b.g.add((node, RDF.type, DCAT.DataService))
    b.g.add((node, DCTERMS.identifier, Literal(service.id)))
    b.g.add((node, DCTERMS.title, Literal(f"{b.info.publisher_name} Dataspace Protocol endpoint", lang="en")))
    b.g.add((node, DCAT.endpointURL, URIRef(service.endpoint_url)))
    # ranges.ttl gives dcat:endpointURL the class rdfs:Resource, and the validator does no RDFS inference.
    b.g.add((URIRef(service.endpoint_url), RDF.type, RDFS.Resource))
    b.g.add((node, DCTERMS.conformsTo, URIRef(DSP_SPECIFICATION)))
    b.g.add((URIRef(DSP_SPECIFICATION), RDF.type, DCTERMS.Standard))
    b.g.add((node, DCTERMS.publisher, URIRef(b.info.publisher_id)))
    return node


def _offer(b: _Builder, dataset: URIRef, offer: Offer) -> URIRef:
    usable = is_iri(offer.id) and parse_offer_id(offer.id) is None
    node = URIRef(offer.id) if usable else b.mint("offers", offer.id)
    b.g.add((node, RDF.type, ODRL2.Offer))
    b.g.add((node, DCTERMS.identifier, Literal(offer.id)))
    b.g.add((node, ODRL2.target, dataset))
    add_policy(b.g, node, offer.policy)
    return node


def _distribution(b: _Builder, dataset: Dataset, distribution: Distribution, media_type: URIRef | None) -> URIRef:
    node = URIRef(f"{b.mint('datasets', dataset.id)}/distributions/{quote(distribution.format, safe='')}")
    service = _service(b, distribution.access_service)
    b.g.add((node, RDF.type, DCAT.Distribution))
    b.g.add((node, DCAT.accessURL, URIRef(distribution.access_service.endpoint_url)))
    b.g.add((node, DCAT.accessService, service))
    b.g.add((node, DCTERMS["format"], b.format_node(distribution.format)))
    b.g.add((node, DCTERMS.title, Literal(f"{distribution.format} through the Dataspace Protocol", lang="en")))
    b.g.add(
        (
            node,
            DCTERMS.description,
            Literal(
                f"Negotiate a contract for an offer of this dataset at the data service, then transfer it with "
                f"{distribution.format}.",
                lang="en",
            ),
        )
    )
    if media_type is not None:
        b.g.add((node, DCAT.mediaType, media_type))
    return node


def _media_type(b: _Builder, metadata: Mapping[str, Any]) -> URIRef | None:
    for value in _items(metadata.get(str(DCAT.mediaType))):
        text = value.get("@value") if isinstance(value, Mapping) else value
        iri = _iri_of(value)
        if iri is None and isinstance(text, str) and _MEDIA_TYPE.match(text.strip()):
            iri = IANA_MEDIA_TYPES + text.strip().lower()
        if iri is not None:
            node = URIRef(iri)
            b.g.add((node, RDF.type, DCTERMS.MediaType))
            return node
    return None


def _metadata(b: _Builder, subject: URIRef, metadata: Mapping[str, Any]) -> None:
    for key, value in metadata.items():
        if key.startswith("@") or not _writable_predicate(key):
            continue  # not a property IRI, or one RDF/XML cannot write: left out of every format alike
        duplicate = _EDC_DUPLICATES.get(key)
        if duplicate is not None and str(duplicate) in metadata:
            continue
        values = list(_items(value))
        predicate = URIRef(key)
        handler = _DATASET_PROPERTIES.get(predicate)
        if handler is not None:
            handler(b, subject, predicate, values)
            continue
        for item in values:
            b.g.add((subject, predicate, _term(item)))


def _dataset(b: _Builder, dataset: Dataset) -> URIRef:
    node = dataset_iri(dataset.id, b.base)
    g = b.g
    g.add((node, RDF.type, DCAT.Dataset))
    g.add((node, DCTERMS.identifier, Literal(dataset.id)))
    _metadata(b, node, dataset.metadata)
    if (node, DCTERMS.title, None) not in g:
        g.add((node, DCTERMS.title, Literal(dataset.id)))
    if (node, DCTERMS.description, None) not in g:
        text = f"Dataset {dataset.id} offered by {b.info.publisher_name} through the Dataspace Protocol."
        g.add((node, DCTERMS.description, Literal(text, lang="en")))
    if (node, DCTERMS.publisher, None) not in g:
        g.add((node, DCTERMS.publisher, URIRef(b.info.publisher_id)))
    for offer in dataset.offers:
        g.add((node, ODRL2.hasPolicy, _offer(b, node, offer)))
    media_type = _media_type(b, dataset.metadata)
    for distribution in dataset.distributions:
        g.add((node, DCAT.distribution, _distribution(b, dataset, distribution, media_type)))
    return node


def new_graph() -> Graph:
    """Return an empty graph with this module's prefixes bound (and no others)."""
    graph = Graph(bind_namespaces="none")
    for prefix, namespace in PREFIXES.items():
        graph.bind(prefix, namespace)
    return graph


def build_graph(catalog: Catalog, info: CatalogInfo) -> Graph:
    """Return the catalog as a DCAT-AP 3.0.1 graph.

    Render only what an anonymous requester may see: the caller passes the catalog computed for one.
    """
    graph = new_graph()
    subject = catalog_iri(catalog, info)
    b = _Builder(graph, info, info.catalog_url.rstrip("/") if info.catalog_url else str(subject))
    g = graph
    g.add((subject, RDF.type, DCAT.Catalog))
    g.add((subject, DCTERMS.identifier, Literal(catalog.id)))
    g.add((subject, DCTERMS.title, Literal(info.title, lang=info.language)))
    g.add((subject, DCTERMS.description, Literal(info.description, lang=info.language)))
    publisher = URIRef(info.publisher_id)
    g.add((subject, DCTERMS.publisher, publisher))
    g.add((publisher, RDF.type, FOAF.Agent))
    g.add((publisher, FOAF.name, Literal(info.publisher_name)))
    g.add((publisher, FOAF.homepage, URIRef(info.homepage)))
    g.add((subject, FOAF.homepage, URIRef(info.homepage)))
    g.add((URIRef(info.homepage), RDF.type, FOAF.Document))
    g.add((subject, DCTERMS.language, b.language(info.language) or language_iri(info.language)))
    for predicate, moment in ((DCTERMS.issued, info.issued), (DCTERMS.modified, info.modified)):
        if moment is not None:
            g.add((subject, predicate, Literal(moment.isoformat(), datatype=XSD.dateTime, normalize=False)))
    if catalog.participant_id:
        g.add((subject, DSPACE.participantId, _party(catalog.participant_id)))
    g.add((subject, DCAT.service, _service(b, catalog.service)))
    for dataset in catalog.datasets:
        node = _dataset(b, dataset)
        g.add((subject, DCAT.dataset, node))
        for distribution in dataset.distributions:
            g.add((_service(b, distribution.access_service), DCAT.servesDataset, node))
    return graph


# --- Serialisation and content negotiation ------------------------------------------------------------------


def _flat_turtle(graph: Graph) -> bytes:
    """Write Turtle fast: prefixes, then each subject's triples with N-Triples terms (valid Turtle, no nesting).

    About 20 times faster than rdflib's pretty Turtle writer, which sorts and nests and costs ~0.1 ms a triple.
    """
    lines = [f"@prefix {prefix}: <{namespace}> ." for prefix, namespace in PREFIXES.items()]
    subjects: dict[Any, list[str]] = {}
    for s, p, o in graph:
        subjects.setdefault(s, []).append(f"{p.n3()} {o.n3()}")
    for s, statements in subjects.items():
        lines.append("")
        lines.append(s.n3() + " " + " ;\n    ".join(sorted(statements)) + " .")
    lines.append("")
    return "\n".join(lines).encode("utf-8")


def _pretty_turtle(graph: Graph) -> bytes:
    return graph.serialize(format="turtle", encoding="utf-8")


TurtleWriter = Callable[[Graph], bytes]


def turtle_writer(graph: Graph) -> TurtleWriter:
    """Choose the Turtle writer: this is the place to plug in pyoxigraph (see docs/catalog-rdf.md)."""
    return _pretty_turtle if len(graph) <= PRETTY_TURTLE_MAX_TRIPLES else _flat_turtle


def _json_ld(graph: Graph) -> bytes:
    return graph.serialize(format="json-ld", context=dict(PREFIXES), encoding="utf-8")


def _rdf_xml(graph: Graph) -> bytes:
    return graph.serialize(format="xml", encoding="utf-8")


def serialize(graph: Graph, fmt: str) -> tuple[bytes, str]:
    """Return the graph as (body, content type) in "turtle", "json-ld" or "xml" (RDF/XML)."""
    if fmt == "turtle":
        body = turtle_writer(graph)(graph)
    elif fmt == "json-ld":
        body = _json_ld(graph)
    elif fmt == "xml":
        body = _rdf_xml(graph)
    else:
        raise ValueError(f"unknown RDF format {fmt!r}; expected one of {sorted(CONTENT_TYPES)}")
    return body, CONTENT_TYPES[fmt]


# Media types offered, in the server's order of preference, and the format each selects.
_OFFERED: Final[tuple[tuple[str, str], ...]] = (
    ("text/turtle", "turtle"),
    ("application/ld+json", "json-ld"),
    ("application/json", "json-ld"),
    ("application/rdf+xml", "xml"),
    ("application/x-turtle", "turtle"),
)


def _parse_accept(header: str) -> Iterator[tuple[str, str, float, int]]:
    for position, part in enumerate(header.split(",")):
        pieces = [x.strip() for x in part.split(";")]
        media = pieces[0].lower()
        if "/" not in media:
            continue
        kind, _, sub = media.partition("/")
        if not kind or not sub or (kind == "*" and sub != "*"):
            continue
        q = 1.0
        for param in pieces[1:]:
            name, _, raw = param.partition("=")
            if name.strip().lower() == "q":
                try:
                    q = float(raw.strip())
                except ValueError:
                    q = -1.0
        if 0.0 <= q <= 1.0:
            yield kind, sub, q, position


def negotiate(accept_header: str | None) -> str | None:
    """Return the format ("turtle", "json-ld" or "xml") an Accept header asks for; None when none is acceptable.

    Each offered type takes the quality of the most specific range that matches it (RFC 9110 §12.5.1); the
    highest quality wins, then the more specific range, then the earlier one in the header, then Turtle.
    No header, or an empty one, means anything: Turtle.
    """
    if accept_header is None or not accept_header.strip():
        return "turtle"
    ranges = list(_parse_accept(accept_header))
    best: tuple[float, int, int, int] | None = None
    chosen: str | None = None
    for preference, (media, fmt) in enumerate(_OFFERED):
        kind, sub = media.split("/")
        match: tuple[int, float, int] | None = None  # specificity, q, position
        for r_kind, r_sub, q, position in ranges:
            if (r_kind, r_sub) == (kind, sub):
                specificity = 2
            elif r_kind == kind and r_sub == "*":
                specificity = 1
            elif r_kind == "*":
                specificity = 0
            else:
                continue
            if match is None or specificity > match[0]:
                match = (specificity, q, position)
        if match is None or match[1] <= 0:
            continue
        key = (match[1], match[0], -match[2], -preference)
        if best is None or key > best:
            best, chosen = key, fmt
    return chosen
