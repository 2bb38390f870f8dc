"""What the public DCAT-AP catalog says of its publisher, checked without loading any RDF library."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from typing import Final

_EU_LANGUAGE_CODES: Final[dict[str, str]] = {
    "bg": "BUL", "cs": "CES", "da": "DAN", "de": "DEU", "el": "ELL", "en": "ENG", "es": "SPA", "et": "EST",
    "fi": "FIN", "fr": "FRA", "ga": "GLE", "hr": "HRV", "hu": "HUN", "it": "ITA", "lt": "LIT", "lv": "LAV",
    "mt": "MLT", "nl": "NLD", "pl": "POL", "pt": "POR", "ro": "RON", "sk": "SLK", "sl": "SLV", "sv": "SWE",
    "no": "NOR", "nb": "NOB", "nn": "NNO", "is": "ISL", "tr": "TUR", "uk": "UKR", "zh": "ZHO", "ja": "JPN",
    "ko": "KOR",
}  # fmt: skip

_IRI_SCHEMES: Final = frozenset({"http", "https", "urn", "did", "tag", "mailto", "ftp", "info", "ark"})
_IRI_SYNTAX: Final = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*):[^\s<>\"{}|\\^`\x00-\x1f\x7f]+$")
LANGUAGE_TAG: Final = re.compile(r"^[A-Za-z]{2,3}(-[A-Za-z0-9]{1,8})*$")


def is_iri(value: str) -> bool:
    """Return True for an absolute IRI this module uses as it is (a known scheme, no forbidden character)."""
    match = _IRI_SYNTAX.match(value)
    if match is None:
        return False
    scheme = match.group(1).lower()
    if scheme in ("http", "https"):
        return value[len(scheme) : len(scheme) + 3] == "://" and len(value) > len(scheme) + 3
    return scheme in _IRI_SCHEMES


def language_code(tag: str) -> str | None:
    primary = tag.split("-", 1)[0].lower()
    if len(primary) == 3:
        return primary.upper()
    return _EU_LANGUAGE_CODES.get(primary)


@dataclass(frozen=True)
class CatalogInfo:
    """What DCAT-AP needs about the publishing node that the catalog model does not carry."""

    title: str
    description: str
    publisher_name: str
    publisher_id: str
    homepage: str
    language: str = "en"
    issued: datetime | None = None
    modified: datetime | None = None
    catalog_url: str | None = None

    def __post_init__(self) -> None:
        for name in ("publisher_id", "homepage"):
            if not is_iri(getattr(self, name)):
                raise ValueError(f"CatalogInfo.{name} must be an absolute IRI, got {getattr(self, name)!r}")
        if self.catalog_url is not None and not is_iri(self.catalog_url):
            raise ValueError(f"CatalogInfo.catalog_url must be an absolute IRI, got {self.catalog_url!r}")
        if not LANGUAGE_TAG.match(self.language) or language_code(self.language) is None:
            raise ValueError(f"CatalogInfo.language {self.language!r} has no EU language authority code")
        for name in ("title", "description", "publisher_name"):
            if not getattr(self, name).strip():
                raise ValueError(f"CatalogInfo.{name} must not be empty (DCAT-AP requires it)")
