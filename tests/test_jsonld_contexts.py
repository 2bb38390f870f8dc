"""The locally held JSON-LD contexts read the same, whatever was read before them."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from pyld import jsonld as pyld

from connector import jsonld
from connector.domain.errors import InvalidInput

DSP = "https://w3id.org/dspace/2025/1/context.jsonld"
V2 = "https://w3id.org/edc/connector/management/v2"

# A DSP catalog: its Dataset scope imports the DSP ODRL profile and redefines hasPolicy and distribution.
CATALOG = {
    "@context": [DSP],
    "@type": "Catalog",
    "@id": "urn:catalog",
    "dataset": [{"@id": "a1", "@type": "Dataset", "hasPolicy": [{"@id": "o1", "@type": "Offer"}]}],
}
# A DSP message whose scope imports the same profile with other terms.
REQUEST = {
    "@context": [DSP],
    "@type": "ContractRequestMessage",
    "consumerPid": "urn:c1",
    "callbackAddress": "https://consumer.example.com/callback",
    "offer": {"@id": "o1", "@type": "Offer", "target": "a1", "permission": [{"action": "use"}]},
}
# EDC's Management API v4 PolicyDefinition: its scope imports the profile too.
POLICY = {
    "@context": [V2],
    "@type": "PolicyDefinition",
    "@id": "p1",
    "policy": {"@type": "Set", "permission": [{"action": "use"}]},
}


def _fresh() -> None:
    # Start from what a new process holds: pyld's shared cache of resolved contexts and the node's own.
    pyld._resolved_context_cache.clear()
    jsonld._context_document_text.cache_clear()


def _expanded(document: dict[str, Any]) -> list[Any]:
    return jsonld.expand(copy.deepcopy(document))


@pytest.mark.parametrize("first", [CATALOG, REQUEST, POLICY])
def test_an_imported_context_reads_the_same_after_any_other_document(first: dict[str, Any]) -> None:
    expected = {}
    for document in (CATALOG, REQUEST, POLICY):
        _fresh()
        expected[document["@type"]] = _expanded(document)
    _fresh()
    _expanded(first)
    for document in (CATALOG, REQUEST, POLICY, CATALOG, REQUEST, POLICY):
        assert _expanded(document) == expected[document["@type"]], document["@type"]


def test_import_in_a_body_is_refused_and_changes_nothing() -> None:
    _fresh()
    expected = _expanded(REQUEST)
    body = {
        "@context": [{"@import": "https://w3id.org/dspace/2025/1/odrl-profile.jsonld", "target": "urn:mine:target"}],
        "@type": "Offer",
        "target": "a1",
    }
    with pytest.raises(InvalidInput) as refused:
        jsonld.expand(body)
    assert "@import" in refused.value.message and refused.value.problems[0].path == "@context"
    assert _expanded(REQUEST) == expected
    # A key named @import in data (not in a context) is no import.
    assert jsonld.expand(
        {"@context": {"@vocab": "https://example.com/"}, "note": {"@value": {"@import": 1}, "@type": "@json"}}
    )
