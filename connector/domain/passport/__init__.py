"""Battery passports: the node's model (Annex XIII groups with access tags), source formats, views.

See docs/passport-model.md.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from . import formats, validation
from .catenax import ASPECT_6_0, ASPECT_6_1, from_catenax, to_catenax
from .idta import from_idta, read_bundle, to_idta
from .model import GROUPS, Extension, Passport, PassportInvalid, Tag, canonical_id, parse_passport
from .synthetic import generate
from .views import READER_TAGS, tags_for, view, view_catenax, view_json


@dataclass(frozen=True, slots=True)
class Reading:
    """A passport read from a document: the passport, the document's format, and what was tolerated."""

    passport: Passport
    format: str
    warnings: list[tuple[str, str]] = field(default_factory=list)


def detect_format(document: Any) -> str:
    """Return the format of a passport document: node, catenax-6.0, catenax-6.1 or idta (else PassportInvalid)."""
    return formats.detect(document)


def read_document(document: Any) -> Reading:
    """Read a passport in any supported format, checked against its schema and the node's rules.

    Raise PassportInvalid naming every fault (path and reason); nothing of a refused document is kept.
    """
    fmt = formats.detect(document)
    if fmt.startswith("catenax"):
        return Reading(from_catenax(document, fmt), fmt)
    if fmt == "idta":
        passport, warnings = read_bundle(document)
        return Reading(passport, fmt, warnings)
    errors = validation.check("node", document)
    try:
        passport = parse_passport(document)
    except PassportInvalid as exc:
        errors = validation.in_document_order(document, errors + exc.errors)
    if errors:
        raise PassportInvalid(errors)
    return Reading(passport, fmt)


def load_document(document: Any) -> Passport:
    """Read a passport in any supported format (raise PassportInvalid naming every fault)."""
    return read_document(document).passport


__all__ = [
    "ASPECT_6_0",
    "ASPECT_6_1",
    "GROUPS",
    "READER_TAGS",
    "Extension",
    "Passport",
    "PassportInvalid",
    "Reading",
    "Tag",
    "canonical_id",
    "detect_format",
    "from_catenax",
    "from_idta",
    "generate",
    "load_document",
    "parse_passport",
    "read_document",
    "tags_for",
    "to_catenax",
    "to_idta",
    "validation",
    "view",
    "view_catenax",
    "view_json",
]
