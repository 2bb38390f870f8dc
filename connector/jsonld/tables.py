"""JSON-LD expansion by term tables: the subset DSP 2025-1 and EDC documents use, exactly as pyld expands it.

pyld re-processes a type-scoped context for every node that names its type (each Dataset, Offer and
Distribution of a catalog), canonicalising the context each time; a catalog of 1,000 datasets cost seconds.
Here a context is processed once into a table of terms, every context derived from it by a type-scoped
context is kept beside it, and a document is expanded by looking its keys and values up in those tables.

The expansion follows pyld's algorithm step by step (key order, reverting type-scoped contexts, value
coercion), for a subset: term definitions with `@id`, `@type` (`@id`, `@vocab` or a datatype IRI),
`@container: @set`, `@protected` and type-scoped `@context`; contexts with `@version`, `@vocab`,
`@protected` and `@propagate`; language-tagged strings. Anything else (`@list`, `@graph`, `@reverse`,
language maps, keyword aliases, property-scoped contexts, embedded contexts below the top, `@base`,
`@language`, remote contexts, any input pyld would reject) raises `Unsupported`, and the caller expands
the document with pyld instead.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from typing import Any

import orjson

JSON = Any

# pyld's keywords and keyword pattern (a string that looks like a keyword but is not one expands to nothing).
KEYWORDS = frozenset(
    {
        "@base", "@container", "@context", "@default", "@direction", "@embed", "@explicit", "@first", "@graph",
        "@id", "@import", "@included", "@index", "@json", "@language", "@list", "@nest", "@none", "@omitDefault",
        "@propagate", "@protected", "@preserve", "@requireAll", "@reverse", "@set", "@type", "@value", "@version",
        "@vocab",
    }
)  # fmt: skip
_KEYWORD_FORM = re.compile(r"^@[a-zA-Z]+$")
_ABSOLUTE_IRI = re.compile(r"^([A-Za-z][A-Za-z0-9+-.]*|_):[^\s]*$")
_GEN_DELIM_END = re.compile(r".*[:/\?#\[\]@]$")
_CONTEXT_KEYS = frozenset(("@version", "@vocab", "@protected", "@propagate"))
_TERM_KEYS = frozenset(("@id", "@type", "@container", "@context", "@protected"))
MAX_DEPTH = 64  # deeper documents go to pyld (peer documents are bounded before they get here)
_MAX_DERIVED = 64  # contexts derived from one context by type-scoped contexts, kept
_MAX_KEYS = 4096  # expanded keys kept per context
_MAX_TOP = 64  # top-level contexts kept (lists of URLs and inline ones alike: a peer chooses them)
_MAX_REPEATS = 4096  # flat nodes remembered per compacted document
_MAX_FLAT_KEYS = 8  # only small flat nodes are looked for (the ones that repeat: distributions, permissions)
_SCALARS = (str, int, float, bool, type(None))
_MISSING = object()


class Unsupported(Exception):
    """The document uses JSON-LD outside the table subset (or is invalid): expand it with pyld."""


class Term:
    """One term definition: its IRI (None for a term mapped to null), coercion, container and scoped context."""

    __slots__ = ("container_set", "iri", "prefix", "protected", "scoped", "type")

    def __init__(
        self, iri: str | None, type_: str | None, container_set: bool, prefix: bool, protected: bool, scoped: JSON
    ) -> None:
        self.iri = iri
        self.type = type_
        self.container_set = container_set
        self.prefix = prefix
        self.protected = protected
        self.scoped = scoped

    def same(self, other: Term) -> bool:
        """Tell whether two definitions are the same but for protection (a protected term may be redefined so)."""
        return (self.iri, self.type, self.container_set, self.prefix, self.scoped) == (
            other.iri,
            other.type,
            other.container_set,
            other.prefix,
            other.scoped,
        )


class Context:
    """An active context: terms, @vocab, the context a non-propagated type-scoped context reverts to; and caches."""

    __slots__ = ("_derived", "_ids", "_keys", "previous", "props", "terms", "vocab")

    def __init__(self, terms: dict[str, Term | None], vocab: str | None, previous: Context | None) -> None:
        self.terms = terms
        self.vocab = vocab
        self.previous = previous
        self.props: dict[str, tuple[str | None, Term | None]] = {}
        self._derived: dict[Term, Context] = {}
        self._keys: dict[str, str | None] = {}
        self._ids: dict[str, str | None] = {}

    def key(self, value: str) -> str | None:
        """Expand a key or a @type value (vocabulary-relative), remembering the answer."""
        found = self._keys.get(value, self)
        if found is not self:
            return found  # type: ignore[return-value]
        expanded = expand_iri(self, value, vocab=True)
        if len(self._keys) < _MAX_KEYS:
            self._keys[value] = expanded
        return expanded

    def prop(self, key: str) -> tuple[str | None, Term | None]:
        """Return what a node's key expands to (None: the key is dropped) and its term (_KEYWORD for a keyword)."""
        expanded = None if key == "@context" else expand_iri(self, key, vocab=True)
        found: tuple[str | None, Term | None]
        if expanded is None:
            found = (None, None)
        elif expanded in KEYWORDS:
            found = (expanded, _KEYWORD)
        elif _ABSOLUTE_IRI.match(expanded):
            found = (expanded, self.terms.get(key))
        else:
            found = (None, None)  # pyld drops a key that expands to neither an absolute IRI nor a keyword
        if len(self.props) < _MAX_KEYS:
            self.props[key] = found
        return found

    def ident(self, value: str) -> str | None:
        """Expand an @id value (document-relative with no base: a relative IRI stays as it is)."""
        found = self._ids.get(value, self)
        if found is not self:
            return found  # type: ignore[return-value]
        expanded = expand_iri(self, value, vocab=False)
        if len(self._ids) < _MAX_KEYS:
            self._ids[value] = expanded
        return expanded

    def scoped_by(self, term: Term) -> Context:
        """Return this context with a type-scoped context applied (not propagated unless it says so)."""
        derived = self._derived.get(term)
        if derived is None:
            derived = apply_context(self, term.scoped, propagate=False)
            if len(self._derived) < _MAX_DERIVED:
                self._derived[term] = derived
        return derived


EMPTY = Context({}, None, None)
_KEYWORD = Term("@keyword", None, False, False, False, None)  # marks a key that expands to a keyword


def is_keyword(value: object) -> bool:
    """Tell whether a value is a JSON-LD keyword."""
    return isinstance(value, str) and value in KEYWORDS


def expand_iri(ctx: Context, value: str, vocab: bool) -> str | None:
    """Expand a string as pyld's IRI expansion does with no base IRI."""
    if value in KEYWORDS:
        return value
    if _KEYWORD_FORM.match(value):
        return None
    if vocab and value in ctx.terms:
        term = ctx.terms[value]
        return None if term is None else term.iri
    colon = value.find(":")
    if colon > 0:
        prefix, suffix = value[:colon], value[colon + 1 :]
        if prefix == "_" or suffix.startswith("//"):
            return value
        mapping = ctx.terms.get(prefix)
        if mapping is not None and mapping.prefix and mapping.iri is not None:
            return mapping.iri + suffix
        if _ABSOLUTE_IRI.match(value):
            return value
    if vocab and ctx.vocab is not None:
        return ctx.vocab + value
    return value


# Context processing.


def apply_context(active: Context, local: JSON, propagate: bool = True) -> Context:
    """Return the active context after a local context (a dict, or a list of dicts), as pyld processes it."""
    items = local if isinstance(local, list) else [local]
    if not items:
        return Context(dict(active.terms), active.vocab, active.previous)
    first = items[0]
    if isinstance(first, dict) and isinstance(first.get("@propagate"), bool):
        propagate = first["@propagate"]
    previous = active.previous
    if not propagate and previous is None:
        previous = active
    result = active
    for item in items:
        if not isinstance(item, dict):
            raise Unsupported("a context that is not an object")
        result = _process(result, item, previous)
    return result


def _process(active: Context, local: Mapping[str, JSON], previous: Context | None) -> Context:
    for key in local:
        if key.startswith("@") and key not in _CONTEXT_KEYS:
            raise Unsupported(f"context keyword {key}")
    if "@version" in local and local["@version"] != 1.1:
        raise Unsupported("@version")
    if "@propagate" in local and not isinstance(local["@propagate"], bool):
        raise Unsupported("@propagate")
    protected = local.get("@protected", False)
    if not isinstance(protected, bool):
        raise Unsupported("@protected")
    ctx = Context(dict(active.terms), active.vocab, previous)
    if "@vocab" in local:
        vocab = local["@vocab"]
        if vocab is None:
            ctx.vocab = None
        elif isinstance(vocab, str) and _ABSOLUTE_IRI.match(vocab) and not vocab.startswith("_:"):
            ctx.vocab = vocab
        else:
            raise Unsupported("@vocab that is not an absolute IRI")
    defined: dict[str, bool] = {}
    for term in local:
        if not term.startswith("@"):
            _define(ctx, active, local, term, defined, protected)
    return ctx


def _define(
    ctx: Context, active: Context, local: Mapping[str, JSON], term: str, defined: dict[str, bool], protected: bool
) -> None:
    if term in defined:
        if not defined[term]:
            raise Unsupported("a cyclic term definition")
        return
    defined[term] = False
    if not term or ":" in term or "/" in term or _KEYWORD_FORM.match(term):
        raise Unsupported(f"term {term!r}")
    value = local[term]
    simple = isinstance(value, str)
    if value is None:
        definition: Term | None = None
    else:
        if simple:
            value = {"@id": value}
        if not isinstance(value, dict) or not set(value) <= _TERM_KEYS:
            raise Unsupported(f"definition of {term!r}")
        term_protected = value.get("@protected", protected)
        if not isinstance(term_protected, bool):
            raise Unsupported("@protected")
        iri_value = value.get("@id", term)
        from_vocab = False
        if iri_value is None:
            iri: str | None = None
        elif not isinstance(iri_value, str) or iri_value == term:
            if iri_value != term or ctx.vocab is None:
                raise Unsupported(f"@id of {term!r}")
            iri = ctx.vocab + term
            from_vocab = True
        else:
            if iri_value.startswith("@"):
                raise Unsupported("a keyword alias")
            iri = _iri_in_context(ctx, active, local, iri_value, defined, protected)
            if iri is None or not _ABSOLUTE_IRI.match(iri):
                raise Unsupported(f"@id of {term!r}")
        type_ = value.get("@type")
        if type_ is not None:
            if not isinstance(type_, str):
                raise Unsupported("@type")
            if type_ not in ("@id", "@vocab"):
                if type_.startswith("@"):
                    raise Unsupported(f"@type {type_}")
                type_ = _iri_in_context(ctx, active, local, type_, defined, protected)
                if type_ is None or not _ABSOLUTE_IRI.match(type_) or type_.startswith("_:"):
                    raise Unsupported("@type that is not an absolute IRI")
        container = value.get("@container")
        if container not in (None, "@set", ["@set"]):
            raise Unsupported(f"@container {container!r}")
        scoped = value.get("@context")
        if "@context" in value and not isinstance(scoped, dict):
            raise Unsupported("a scoped context that is not an object")
        prefix = (
            simple and not from_vocab and iri is not None and (iri.startswith("_:") or bool(_GEN_DELIM_END.match(iri)))
        )
        definition = Term(iri, type_, container is not None, prefix, term_protected, scoped)
    before = ctx.terms.get(term)
    if before is not None and before.protected:
        if definition is None or not before.same(definition):
            raise Unsupported(f"redefinition of protected term {term!r}")  # pyld reports the error
        definition.protected = True
    ctx.terms[term] = definition
    defined[term] = True


def _iri_in_context(
    ctx: Context, active: Context, local: Mapping[str, JSON], value: str, defined: dict[str, bool], protected: bool
) -> str | None:
    """Expand an IRI inside a context being processed, defining the terms it depends on first."""
    if value in local and not value.startswith("@") and defined.get(value) is not True:
        _define(ctx, active, local, value, defined, protected)
    colon = value.find(":")
    if colon > 0:
        prefix = value[:colon]
        if prefix in local and not defined.get(prefix):
            _define(ctx, active, local, prefix, defined, protected)
    return expand_iri(ctx, value, vocab=True)


# Expansion.


def _arrayify(value: JSON) -> list[JSON]:
    return value if isinstance(value, list) else [value]


class Compactor:
    """How expanded IRIs are written back in a compacted answer: in key position and in value position.

    `for_document()` gives the compactor one document is written with: it shares the IRI tables and remembers
    the flat nodes (nodes whose values are all literals) of that document, which repeat in a catalog (every
    dataset's distributions and permissions): the same node text in the same context is written once.
    """

    __slots__ = ("_iri", "_iris", "_key", "_keys", "repeats")

    def __init__(self, key: Callable[[str], str], iri: Callable[[str], str]) -> None:
        self._key = key
        self._iri = iri
        self._keys: dict[str, str] = {}
        self._iris: dict[str, str] = {}
        self.repeats: dict[tuple[Context, str | None, bytes], JSON] | None = None

    def for_document(self) -> Compactor:
        """Return a compactor sharing these tables, remembering the flat nodes of one document."""
        one = Compactor(self._key, self._iri)
        one._keys, one._iris = self._keys, self._iris
        one.repeats = {}
        return one

    def key(self, iri: str) -> str:
        """Return an IRI as written in key position."""
        found = self._keys.get(iri)
        if found is None:
            found = self._key(iri)
            if len(self._keys) < _MAX_KEYS:
                self._keys[iri] = found
        return found

    def iri(self, iri: str) -> str:
        """Return an IRI as written in value position (@id, @type)."""
        found = self._iris.get(iri)
        if found is None:
            found = self._iri(iri)
            if len(self._iris) < _MAX_KEYS:
                self._iris[iri] = found
        return found


def expand_document(document: JSON, top: Context, compactor: Compactor | None = None) -> list[JSON]:
    """Expand a document whose top-level @context has already been processed into `top`.

    With a compactor, each node is written compacted as soon as it is expanded (connector.jsonld.compact's form:
    one-item arrays unwrapped, literals bare, IRIs by the compactor), which is compact() of the expansion.
    """
    if not isinstance(document, dict):
        raise Unsupported("a document that is not one object")
    if compactor is not None and compactor.repeats is None:
        compactor = compactor.for_document()
    result = _node(top, None, document, 0, True, compactor)
    return [] if result is None else [result]


def _value(
    ctx: Context, prop: str | None, term: Term | None, element: JSON, depth: int, out_c: Compactor | None
) -> JSON:
    if isinstance(element, dict):
        return _node(ctx, prop, element, depth, False, out_c)
    if isinstance(element, list):
        if depth > MAX_DEPTH:
            raise Unsupported("too deep")
        out: list[JSON] = []
        for item in element:
            expanded = _value(ctx, prop, term, item, depth + 1, out_c)
            if expanded is None:
                continue
            if isinstance(expanded, list):
                out.extend(expanded)
            else:
                out.append(expanded)
        return out
    if prop is None or element is None:
        return None
    if not isinstance(element, (str, int, float)):
        raise Unsupported("a value that is not JSON")
    type_ = term.type if term is not None else None
    if type_ is None:
        return element if out_c is not None else {"@value": element}
    if isinstance(element, str) and (type_ == "@id" or type_ == "@vocab"):
        iri = ctx.ident(element) if type_ == "@id" else ctx.key(element)
        if iri is None:
            raise Unsupported("an IRI that expands to nothing")
        return {"@id": iri if out_c is None else out_c.iri(iri)}
    if type_ not in ("@id", "@vocab"):
        if out_c is not None:
            return {"@type": out_c.iri(type_), "@value": element}
        return {"@type": type_, "@value": element}
    return element if out_c is not None else {"@value": element}


def _node(
    ctx: Context, prop: str | None, element: dict[str, JSON], depth: int, top_level: bool, out_c: Compactor | None
) -> JSON:
    if depth > MAX_DEPTH:
        raise Unsupported("too deep")
    if "@context" in element and not top_level:
        raise Unsupported("an embedded context")
    repeat = None
    if out_c is not None and not top_level and out_c.repeats is not None and len(element) <= _MAX_FLAT_KEYS:
        for item in element.values():
            if not isinstance(item, _SCALARS):
                break
        else:
            # A flat node's output depends on its text, the active context and the property it is under alone.
            repeat = (ctx, prop, orjson.dumps(element))
            seen = out_c.repeats.get(repeat, _MISSING)
            if seen is not _MISSING:
                return dict(seen) if isinstance(seen, dict) else seen
    if ctx.previous is not None and not top_level:
        # pyld's revert rule: a type-scoped context ends at a node, not at a value object or a bare reference.
        keep = False
        if len(element) <= 2:
            for key in sorted(element):
                expanded = ctx.key(key)
                if expanded == "@value" or (expanded == "@id" and len(element) == 1):
                    keep = True
                    break
        if not keep:
            ctx = ctx.previous
    type_scoped = ctx
    types_value = element.get("@type")
    if types_value is not None:
        names = (
            (types_value,)
            if types_value.__class__ is str
            else sorted(t for t in _arrayify(types_value) if isinstance(t, str))
        )
        for name in names:
            scoping = type_scoped.terms.get(name)
            if scoping is not None and scoping.scoped is not None:
                ctx = ctx.scoped_by(scoping)
    out: dict[str, JSON] = {}
    props = ctx.props
    for key in sorted(element):
        found = props.get(key)
        if found is None:
            found = ctx.prop(key)
        expanded, term = found
        if expanded is None:
            continue
        value = element[key]
        if term is _KEYWORD:
            if expanded in out:
                raise Unsupported("colliding keywords")
            if expanded == "@id":
                if not isinstance(value, str):
                    raise Unsupported("@id that is not a string")
                ident = ctx.ident(value)
                if ident is None:
                    raise Unsupported("an @id that expands to nothing")
                out["@id"] = ident
            elif expanded == "@type":
                types: list[JSON] = []
                for item in _arrayify(value):
                    if not isinstance(item, str):
                        raise Unsupported("@type that is not a string")
                    iri = type_scoped.key(item)
                    if iri is None or iri in KEYWORDS:
                        raise Unsupported("@type that is a keyword")
                    types.append(iri)
                if types:
                    out["@type"] = types[0] if len(types) == 1 else types
            elif expanded == "@value":
                if value is None or not isinstance(value, (str, int, float)):
                    raise Unsupported("@value that is not a literal")
                out["@value"] = value
            elif expanded == "@language":
                if value is None:
                    continue  # pyld reads a null @language as none
                if not isinstance(value, str):
                    raise Unsupported("@language that is not a string")
                out["@language"] = value.lower()
            else:
                raise Unsupported(f"keyword {expanded}")
            continue
        if term is not None and term.scoped is not None:
            raise Unsupported("a property-scoped context")
        if value.__class__ is str and (term is None or term.type is None):
            result = value if out_c is not None else {"@value": value}  # the common case, without a call
        else:
            result = _value(ctx, key, term, value, depth + 1, out_c)
        if result is None:
            continue
        present = out.get(expanded)
        if present is None:
            out[expanded] = result if isinstance(result, list) else [result]
        elif isinstance(result, list):
            present.extend(result)
        else:
            present.append(result)
    if "@value" in out:
        if not set(out) <= {"@value", "@type", "@language"}:
            raise Unsupported("a value object with other keys")
        if "@language" in out and ("@type" in out or not isinstance(out["@value"], str)):
            raise Unsupported("a language-tagged value that is typed or not a string")
        if "@type" in out:
            vtype = out["@type"]
            if isinstance(element.get("@type"), list) or not isinstance(vtype, str):
                raise Unsupported("a value object with a @type array")
            if not _ABSOLUTE_IRI.match(vtype) or vtype.startswith("_:"):
                raise Unsupported("a value object whose @type is not an absolute IRI")
    elif "@language" in out:
        raise Unsupported("@language outside a value object")
    elif "@type" in out and not isinstance(out["@type"], list):
        out["@type"] = [out["@type"]]
    if prop is None and (not out or "@value" in out or (len(out) == 1 and "@id" in out)):
        return None
    if out_c is None:
        return out
    written = _compacted(out, out_c)
    if repeat is not None and out_c.repeats is not None and len(out_c.repeats) < _MAX_REPEATS:
        out_c.repeats[repeat] = dict(written) if isinstance(written, dict) else written
    return written


def _compacted(node: dict[str, JSON], out_c: Compactor) -> JSON:
    """Write one expanded node (its children already compacted) as connector.jsonld.compact does."""
    if "@value" in node:
        if len(node) == 1:
            return node["@value"]
        if "@type" in node:
            node["@type"] = out_c.iri(node["@type"])
        return node
    result: dict[str, JSON] = {}
    for key, item in node.items():
        if key == "@id":
            result["@id"] = out_c.iri(item)
        elif key == "@type":
            types = [out_c.iri(t) for t in item]
            result["@type"] = types[0] if len(types) == 1 else types
        else:
            result[out_c.key(key)] = item[0] if len(item) == 1 else item
    return result


# Top-level contexts.

_top: dict[str, Context | None] = {}


def top_context(local: JSON, load: Callable[[str], JSON]) -> Context:
    """Return the processed top-level context of a document (strings are held context URLs, `load` reads them)."""
    if isinstance(local, str) or (isinstance(local, list) and all(isinstance(c, str) for c in local)):
        cache_key = "\0".join(_arrayify(local))
    else:
        cache_key = json.dumps(local, sort_keys=True)
    keep = len(_top) < _MAX_TOP
    if cache_key in _top:
        found = _top[cache_key]
        if found is None:
            raise Unsupported("a context outside the table subset")
        return found
    try:
        items = []
        for item in _arrayify(local):
            if isinstance(item, str):
                document = load(item)  # raises Unsupported for a URL the node does not hold
                item = document.get("@context") if isinstance(document, dict) else None
            if not isinstance(item, dict):
                raise Unsupported("a context that is not an object")
            items.append(item)
        ctx = apply_context(EMPTY, items)
    except Unsupported:
        if keep:
            _top[cache_key] = None
        raise
    if keep:
        _top[cache_key] = ctx
    return ctx
