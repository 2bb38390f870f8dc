"""JSON-LD processing with locally held contexts only: expansion of inputs, compaction of outputs.

Remote contexts are never fetched: a context URL the node does not hold is an input error.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Mapping
from functools import cache, lru_cache
from importlib import resources
from typing import Any

from connector import vocab
from connector.domain.errors import InvalidInput, Problem
from connector.jsonld import tables

JSON = Any

_CONTEXT_FILES = {
    vocab.ODRL_CONTEXT_URL: "odrl.jsonld",
    "https://www.w3.org/ns/odrl.jsonld": "odrl.jsonld",
    vocab.DSP_CONTEXT_URL: "dspace-2025-1.jsonld",
    vocab.DSP_ODRL_PROFILE_URL: "dspace-2025-1-odrl-profile.jsonld",
    vocab.CX_POLICY_CONTEXT_URL: "catenax-2025-9-policy-context.jsonld",
    vocab.CX_ODRL_CONTEXT_URL: "catenax-2025-9-policy-odrl.jsonld",
    vocab.EDC_MANAGEMENT_V2_CONTEXT_URL: "edc-management-v2.jsonld",
}

# Compact forms the node writes: prefixes for IRIs in value position, and the vocabulary for keys.
Prefixes = tuple[tuple[str, str], ...]
EDC_PREFIXES: Prefixes = (("edc:", vocab.EDC), ("odrl:", vocab.ODRL))
# A peer's catalog, as EDC's Management API returns it: DCAT, DCT and DSP terms prefixed too.
CATALOG_PREFIXES: Prefixes = (
    *EDC_PREFIXES,
    ("dcat:", vocab.DCAT),
    ("dct:", vocab.DCT),
    ("dspace:", vocab.DSPACE),
)
# Management API v4 answers: the prefixes EDC's management context v2 defines (EDC terms are bare in properties).
MANAGEMENT_V2_PREFIXES: Prefixes = (("edc:", vocab.EDC), ("dct:", vocab.DCT), ("dcat:", vocab.DCAT))


def output_context(prefixes: Prefixes) -> dict[str, str]:
    """Return the @context that defines the prefixes used in an answer (EDC terms under @vocab)."""
    return {"@vocab": vocab.EDC, **{prefix.rstrip(":"): namespace for prefix, namespace in prefixes}}


@cache
def _context_text(url: str) -> str:
    name = _CONTEXT_FILES[url]
    return resources.files("connector.jsonld").joinpath("contexts", name).read_text("utf-8")


@cache
def _context_document_text(url: str) -> str:
    return json.dumps(_inline_imports(json.loads(_context_text(url))))


def _context_document(url: str) -> JSON:
    """Return a held context, its ``@import``s already merged in, as a fresh object (pyld may write into it)."""
    return json.loads(_context_document_text(url))


def _inline_imports(value: JSON, depth: int = 0) -> JSON:
    """Merge every ``@import`` of a held context into the context that imports it, as JSON-LD 1.1 defines it.

    pyld merges an import by writing the importing context into the imported document it keeps in its shared
    cache, so after one DSP 2025-1 message the cached DSP ODRL profile carried the DSP terms (protected, with
    ``@propagate``), and the next document naming that profile failed to expand ("string indices must be
    integers"). A context that reaches pyld with its imports merged leaves nothing for it to write into.
    """
    if isinstance(value, list):
        return [_inline_imports(v, depth) for v in value]
    if not isinstance(value, dict):
        return value
    out = {k: _inline_imports(v, depth) for k, v in value.items()}
    url = out.get("@import")
    if isinstance(url, str) and url in _CONTEXT_FILES and depth < 4:
        imported = json.loads(_context_text(url)).get("@context")
        if isinstance(imported, dict) and "@import" not in imported:
            merged = {**_inline_imports(imported, depth + 1), **out}
            del merged["@import"]
            return merged
    return out


def known_context_urls() -> list[str]:
    """Return the context URLs this node holds locally."""
    return sorted(_CONTEXT_FILES)


def _pyld() -> Any:  # pyld has no type hints
    """Return pyld's jsonld module, imported on first use: documents the term tables read (nearly all) never
    need it, and importing it (with the HTTP client it sets up as its default loader) costs a start-up about
    60 ms."""
    from pyld import jsonld

    return jsonld


def _load_document(url: str, options: Mapping[str, Any] | None = None) -> dict[str, Any]:
    if url not in _CONTEXT_FILES:
        raise _pyld().JsonLdError(
            f"unknown JSON-LD context {url!r}: this node never fetches contexts; "
            f"it knows {', '.join(known_context_urls())}",
            "jsonld.LoadDocumentError",
            code="loading remote context failed",
        )
    return {
        "contentType": "application/ld+json",
        "contextUrl": None,
        "documentUrl": url,
        "document": copy.deepcopy(_context_document(url)),  # pyld keeps it, and may change what it keeps
    }


def expand(document: JSON, default_context: JSON | None = None) -> list[JSON]:
    """Expand a JSON-LD document with local contexts; raise InvalidInput naming what is wrong."""
    if default_context is not None and isinstance(document, dict) and "@context" not in document:
        document = {"@context": default_context, **document}
    fast = expand_by_table(document)  # a document the tables read has no @import anywhere (they refuse it)
    if fast is not None:
        return fast
    if _has_import(document):
        # pyld would merge the body's definitions into its shared copy of the imported context, changing how
        # every later document that uses that context is read.
        raise InvalidInput(
            "invalid JSON-LD: @import in a context is not supported; name the context URL in @context instead",
            [Problem("@import is not supported", "@context")],
        )
    jsonld = _pyld()
    try:
        result: list[JSON] = jsonld.expand(document, {"documentLoader": _load_document, "base": None})
    except jsonld.JsonLdError as exc:
        raise InvalidInput(f"invalid JSON-LD: {_jsonld_message(exc)}") from None
    except (ValueError, TypeError, KeyError, AttributeError, IndexError, RecursionError) as exc:
        # pyld reports some malformed input (relative IRIs without a base, odd value shapes) this way.
        raise InvalidInput(f"invalid JSON-LD: {exc}") from None
    return result


def _held_context(url: str) -> JSON:
    if url not in _CONTEXT_FILES:
        raise tables.Unsupported(f"context {url!r} is not held here")
    return _context_document(url)


def expand_by_table(document: JSON, compactor: tables.Compactor | None = None) -> list[JSON] | None:
    """Expand a document by term tables (connector.jsonld.tables), or return None when pyld must expand it.

    The answer is exactly pyld's for every document the tables cover (tests/test_jsonld_tables.py checks it).
    With a compactor each node comes out compacted, as compact() writes the expansion.
    """
    if not isinstance(document, dict):
        return None
    try:
        top = tables.EMPTY if "@context" not in document else tables.top_context(document["@context"], _held_context)
        return tables.expand_document(document, top, compactor)
    except tables.Unsupported:
        return None


@cache
def _compactor(prefixes: Prefixes) -> tables.Compactor:
    return tables.Compactor(lambda iri: compact_key(iri, prefixes), lambda iri: compact_iri(iri, prefixes))


def _has_import(value: JSON, in_context: bool = False) -> bool:
    """Tell whether a context anywhere in the document uses @import."""
    if isinstance(value, dict):
        if in_context and "@import" in value:
            return True
        return any(_has_import(v, in_context or k == "@context") for k, v in value.items())
    if isinstance(value, list):
        return any(_has_import(v, in_context) for v in value)
    return False


def _jsonld_message(exc: Exception) -> str:
    code = getattr(exc, "code", None)
    details = getattr(exc, "details", None) or {}
    url = details.get("url") if isinstance(details, dict) else None
    if code in ("loading remote context failed", "loading document failed") and url:
        return (
            f"unknown JSON-LD context {url!r}: this node never fetches contexts; "
            f"it knows {', '.join(known_context_urls())}"
        )
    message = getattr(exc, "message", None) or (exc.args[0] if exc.args else str(exc))
    if isinstance(details, dict) and details.get("context"):
        message += f" (context {details['context']!r})"
    return f"{message} [{code}]" if code else str(message)


# Reading expanded JSON-LD.


def single_node(expanded: list[JSON], what: str) -> dict[str, JSON]:
    """Return the one top-level node of an expanded document."""
    nodes = [n for n in expanded if isinstance(n, dict)]
    if len(nodes) != 1:
        raise InvalidInput(
            f"{what}: expected one JSON object with an @context, found {len(nodes)} nodes after JSON-LD expansion"
        )
    return nodes[0]


def values(node: Mapping[str, JSON], iri: str) -> list[JSON]:
    """Return the expanded values of a property (empty when absent)."""
    found = node.get(iri, [])
    return found if isinstance(found, list) else [found]


def plain(value: JSON) -> JSON:
    """Turn an expanded value into plain JSON: literals unwrapped, IRIs as {"@id"}, nodes as dicts."""
    if isinstance(value, list):
        items = [plain(v) for v in value]
        return items[0] if len(items) == 1 else items
    if not isinstance(value, dict):
        return value
    if "@list" in value:
        return [plain(v) for v in value["@list"]]
    if "@value" in value:
        if set(value) == {"@value"}:
            return value["@value"]
        return dict(value)
    if set(value) == {"@id"}:
        return {"@id": value["@id"]}
    return {k: (v if k in ("@id", "@type") else plain(v)) for k, v in value.items()}


def string(node: Mapping[str, JSON], iri: str, path: str, problems: list[Problem], required: bool = True) -> str | None:
    """Return one string literal (or IRI) property, recording a problem when it is missing or not a string."""
    found = values(node, iri)
    if not found:
        if required:
            problems.append(Problem(f"{path} is required", path))
        return None
    if len(found) > 1:
        problems.append(Problem(f"{path} must have one value, got {len(found)}", path))
        return None
    value = plain(found[0])
    if isinstance(value, dict) and "@id" in value and len(value) == 1:
        value = value["@id"]
    if not isinstance(value, str) or not value:
        problems.append(Problem(f"{path} must be a non-empty string", path, value))
        return None
    return value


def properties_map(node: Mapping[str, JSON] | None) -> dict[str, JSON]:
    """Turn an expanded node into a dict of IRI -> plain value (the node's @id and @type are dropped)."""
    if not node:
        return {}
    return {k: plain(v) for k, v in node.items() if not k.startswith("@")}


# Writing compacted JSON-LD (EDC Management API form).


@lru_cache(maxsize=8192)  # a catalog repeats a few keys thousands of times
def compact_key(iri: str, prefixes: Prefixes = EDC_PREFIXES) -> str:
    """Compact an IRI in key position: EDC terms become bare (the output @vocab), others prefixed."""
    if iri.startswith("@"):
        return iri
    if iri.startswith(vocab.EDC):
        local = iri[len(vocab.EDC) :]
        if local and "/" not in local and ":" not in local and "#" not in local:
            return local
    return compact_iri(iri, prefixes)


@lru_cache(maxsize=8192)
def compact_iri(iri: str, prefixes: Prefixes = EDC_PREFIXES) -> str:
    """Compact an IRI in value position (@id, @type) with the output prefixes."""
    for prefix, namespace in prefixes:
        if iri.startswith(namespace):
            local = iri[len(namespace) :]
            if local and "/" not in local and "#" not in local:
                return prefix + local
    return iri


def compact(value: JSON, prefixes: Prefixes = EDC_PREFIXES) -> JSON:
    """Compact expanded JSON-LD into the EDC output form (single values unwrapped, IRIs prefixed)."""
    if isinstance(value, list):
        items = [compact(v, prefixes) for v in value]
        return items[0] if len(items) == 1 else items
    if not isinstance(value, dict):
        return value
    if "@value" in value:
        if set(value) == {"@value"}:
            return value["@value"]
        out = dict(value)
        if "@type" in out:
            out["@type"] = compact_iri(out["@type"], prefixes)
        return out
    if "@list" in value:
        return [compact(v, prefixes) for v in value["@list"]]
    result: dict[str, JSON] = {}
    for key, item in value.items():
        if key == "@id":
            result["@id"] = compact_iri(item, prefixes)
        elif key == "@type":
            types = [compact_iri(t, prefixes) for t in (item if isinstance(item, list) else [item])]
            result["@type"] = types[0] if len(types) == 1 else types
        else:
            result[compact_key(key, prefixes)] = compact(item, prefixes)
    return result


def expand_peer_document(document: JSON) -> list[JSON]:
    """Expand a JSON-LD document a peer sent, ignoring context URLs this node does not hold.

    EDC adds its own context (https://w3id.org/edc/dspace/v0.0.1) to every DSP message; it only defines
    EDC-specific terms, so dropping it keeps every DSP term while never fetching anything.
    """
    return expand(_held_contexts_only(document))


def reshape_peer_document(document: JSON, prefixes: Prefixes) -> list[JSON]:
    """Return the top-level nodes of a peer's document compacted for output: compact(expand_peer_document(...)).

    One pass by term tables when they read the document, else pyld's expansion and then compact().
    """
    document = _held_contexts_only(document)
    fast = expand_by_table(document, _compactor(prefixes))
    if fast is not None:
        return fast
    return [compact(n, prefixes) for n in expand(document) if isinstance(n, dict)]


def _held_contexts_only(document: JSON) -> JSON:
    if isinstance(document, dict) and isinstance(document.get("@context"), list):
        kept = [c for c in document["@context"] if not isinstance(c, str) or c in _CONTEXT_FILES]
        document = {**document, "@context": kept}
    return document


def compact_properties(props: Mapping[str, JSON], prefixes: Prefixes = EDC_PREFIXES) -> dict[str, JSON]:
    """Compact a dict of IRI -> plain value for output."""
    return {compact_key(k, prefixes): _compact_plain(v, prefixes) for k, v in props.items()}


def _compact_plain(value: JSON, prefixes: Prefixes) -> JSON:
    if isinstance(value, list):
        return [_compact_plain(v, prefixes) for v in value]
    if isinstance(value, dict):
        if "@value" in value:
            out = dict(value)
            if "@type" in out:
                out["@type"] = compact_iri(out["@type"], prefixes)
            return out
        return {
            ("@id" if k == "@id" else "@type" if k == "@type" else compact_key(k, prefixes)): (
                compact_iri(v, prefixes) if k == "@id" and isinstance(v, str) else _compact_plain(v, prefixes)
            )
            for k, v in value.items()
        }
    return value
