"""Battery passports: the node's model (Annex XIII groups with access tags), source formats, views.

See docs/passport-model.md.
"""

from __future__ import annotations

from typing import Any

from .catenax import ASPECT_6_0, ASPECT_6_1, from_catenax, is_catenax, to_catenax
from .idta import from_idta, is_idta, to_idta
from .model import GROUPS, Extension, Passport, PassportInvalid, Tag, parse_passport
from .synthetic import generate
from .views import READER_TAGS, tags_for, view, view_catenax, view_json


def detect_format(document: dict[str, Any]) -> str:
    """Return the format of a passport document: node, catenax-6.0, catenax-6.1 or idta."""
    if is_idta(document):
        return "idta"
    if is_catenax(document):
        return "catenax-6.1" if "6.1" in str(document.get("specVersion", "")) else "catenax-6.0"
    if "identity" in document:
        return "node"
    raise PassportInvalid(
        [("(passport)", "not a passport this node reads: node JSON, Catena-X BatteryPass 6.x or an IDTA bundle")]
    )


def load_document(document: Any) -> Passport:
    """Read a passport in any supported format (raise PassportInvalid naming the fields at fault)."""
    if not isinstance(document, dict):
        raise PassportInvalid([("(passport)", f"must be a JSON object, not {type(document).__name__}")])
    fmt = detect_format(document)
    if fmt == "idta":
        passport_id = document.get("passport_id")
        return from_idta(document["idta"], passport_id if isinstance(passport_id, str) else None)
    if fmt.startswith("catenax"):
        return from_catenax(document)
    return parse_passport(document)


__all__ = [
    "ASPECT_6_0",
    "ASPECT_6_1",
    "GROUPS",
    "READER_TAGS",
    "Extension",
    "Passport",
    "PassportInvalid",
    "Tag",
    "detect_format",
    "from_catenax",
    "from_idta",
    "generate",
    "load_document",
    "parse_passport",
    "tags_for",
    "to_catenax",
    "to_idta",
    "view",
    "view_catenax",
    "view_json",
]
