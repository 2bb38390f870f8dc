"""A whole passport in a source format, complete or refused: never a document that silently lacks what its
schema requires.

A passport exports in any format whatever format it came in (the node's fields are written in each format's
places). The document is then checked as an import would check it (`validation.check`: the format's
official schema with the node's rules), so a complete export is one the node itself would read back. What
the format requires and the node's passport has no value for, a value the format cannot express (the
writer says so) or one its schema refuses makes the export incomplete: `export_document` raises
`ExportIncomplete` naming every such path, `render_document` returns the partial document with the same list.
"""

from __future__ import annotations

from typing import Any

from . import catenax, idta, validation
from .model import Passport

FORMATS = ("catenax", "idta")
Problem = tuple[str, str]
MISSING = "required by the schema; the node's passport has no value for it"


class ExportIncomplete(Exception):
    """An export that cannot be complete; `problems` lists (path, why) for each missing or inexpressible value."""

    def __init__(self, fmt: str, problems: list[Problem]) -> None:
        shown = "; ".join(f"{path}: {why}" for path, why in problems[:5])
        more = f" (and {len(problems) - 5} more)" if len(problems) > 5 else ""
        super().__init__(f"the passport cannot be exported complete as {fmt}: {shown}{more}")
        self.format = fmt
        self.problems = problems

    @property
    def missing(self) -> list[str]:
        """The paths at fault."""
        return [path for path, _ in self.problems]


def catenax_version(passport: Passport) -> str:
    """Return the Catena-X version a passport exports as: 6.0 if it came as 6.0, else 6.1."""
    return "catenax-6.0" if passport.source_format == "catenax-6.0" else "catenax-6.1"


def render_document(passport: Passport, fmt: str) -> tuple[dict[str, Any], list[Problem]]:
    """Return a passport's document in a format ("catenax" or "idta") and what it lacks ([] if complete)."""
    if fmt == "catenax":
        document = catenax.to_catenax(passport)
        return document, _checked(catenax_version(passport), document, [])
    if fmt == "idta":
        parts, unwritten = idta.render(passport)
        document = {"passport_id": passport.passport_id, "idta": parts}
        return document, _checked("idta", document, unwritten)
    raise ValueError(f"not a format passports export in: {fmt!r}; use one of {', '.join(FORMATS)}")


def export_document(passport: Passport, fmt: str) -> dict[str, Any]:
    """Return a passport's complete document in a format; raise ExportIncomplete naming what it lacks."""
    document, problems = render_document(passport, fmt)
    if problems:
        raise ExportIncomplete(fmt, problems)
    return document


def _checked(fmt: str, document: dict[str, Any], unwritten: list[Problem]) -> list[Problem]:
    """Return what the writer could not write and what the format's check refuses, once per path, in document order."""
    found = [(path, MISSING if why == "required" else why) for path, why in validation.check(fmt, document)]
    return validation.in_document_order(document, unwritten + found)
