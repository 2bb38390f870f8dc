"""DSP 2025-1 renderings of the catalog: compacted JSON that validates against the official schemas.

Offers carry no `target` (the enclosing dataset is the target). Arrays the schema bounds with minItems
are left out rather than sent empty. DCAT and DCT metadata use the `dcat:`/`dct:` prefixes the DSP context
declares; any other property keeps its full IRI, so a JSON-LD consumer never drops it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from catalog.model import Catalog, DataService, Dataset, Distribution, Offer
from policies import render_dsp

DSP_CONTEXT = "https://w3id.org/dspace/2025/1/context.jsonld"
DCT = "http://purl.org/dc/terms/"
DCAT = "http://www.w3.org/ns/dcat#"


def _compact_metadata(metadata: Mapping[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in metadata.items():
        if key.startswith(DCT):
            out["dct:" + key[len(DCT) :]] = value
        elif key.startswith(DCAT):
            out["dcat:" + key[len(DCAT) :]] = value
        else:
            out[key] = value
    return out


def render_offer(offer: Offer) -> dict[str, Any]:
    """Render an offer inside a dataset (no target, no context)."""
    rendered = render_dsp(offer.policy)
    rendered.pop("target", None)
    rendered.pop("assignee", None)
    rendered["@id"] = offer.id
    rendered["@type"] = "Offer"
    return rendered


def render_service(service: DataService) -> dict[str, Any]:
    """Render a DataService."""
    return {"@id": service.id, "@type": "DataService", "endpointURL": service.endpoint_url}


def render_distribution(distribution: Distribution, inline_service: bool) -> dict[str, Any]:
    """Render a Distribution; its service is inlined when the dataset stands alone."""
    service = distribution.access_service
    return {
        "@type": "Distribution",
        "format": distribution.format,
        "accessService": render_service(service) if inline_service else service.id,
    }


def render_dataset(dataset: Dataset, standalone: bool = False) -> dict[str, Any]:
    """Render a Dataset; a standalone one (the answer to a dataset request) carries the context."""
    body: dict[str, Any] = {}
    if standalone:
        body["@context"] = [DSP_CONTEXT]
    body["@id"] = dataset.id
    body["@type"] = "Dataset"
    body.update(_compact_metadata(dataset.metadata))
    body["hasPolicy"] = [render_offer(o) for o in dataset.offers]
    body["distribution"] = [render_distribution(d, inline_service=standalone) for d in dataset.distributions]
    return body


def render_catalog(catalog: Catalog) -> dict[str, Any]:
    """Render a Catalog (one page)."""
    body: dict[str, Any] = {
        "@context": [DSP_CONTEXT],
        "@id": catalog.id,
        "@type": "Catalog",
        "participantId": catalog.participant_id,
    }
    body.update(_compact_metadata(catalog.metadata))
    body["service"] = [render_service(catalog.service)]
    if catalog.datasets:
        body["dataset"] = [render_dataset(d) for d in catalog.datasets]
    return body


def render_catalog_error(code: int, reasons: list[str]) -> dict[str, Any]:
    """Render a CatalogError (code is the HTTP status, as EDC writes it)."""
    return {"@context": [DSP_CONTEXT], "@type": "CatalogError", "code": str(code), "reason": reasons}
