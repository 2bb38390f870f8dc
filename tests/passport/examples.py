"""The shared published examples every passport test reads: Catena-X BatteryPass 6.0.0 and 6.1.0 and the seven
IDTA-02035 parts (tests/data/passports, byte-exact copies), as published and with only their generator noise
made real.

The examples are generator output, and a few of their values break the node's rules (`NOISE`): Catena-X's
`operation.intoServiceDate` names no day, and the IDTA circularity renewable share and technical-data C-rate
are negative. The node refuses them (tests assert exactly that refusal, naming those paths); every other
test uses the examples with exactly these values replaced by real ones, and nothing else changed.
"""

from __future__ import annotations

import json
from functools import cache
from typing import Any

from connector.domain.passport import aspects
from tests.conftest import data_path

CATENAX_VERSIONS = ("6.0.0", "6.1.0")
IDTA_PARTS = aspects.IDTA_PARTS  # in the order of their numbers in IDTA-02035
PASSPORT_ID = "urn:uuid:550e8400-e29b-41d4-a716-446655440000"  # both Catena-X examples'
BUNDLE_ID = "urn:uuid:3f0d9a52-8f38-4c39-9b6e-1d2b0e6b7a10"  # a passport id for an IDTA bundle (it has none)

# (example, path of keys) -> (the published value, the real value the tests use instead).
NOISE: dict[tuple[str, tuple[str, ...]], tuple[Any, Any]] = {
    ("catenax-6.0", ("operation", "intoServiceDate")): ("9494-37-15", "2024-02-29"),
    ("catenax-6.1", ("operation", "intoServiceDate")): ("7172-75-08", "2024-02-29"),
    ("idta.circularity", ("RenewableContent",)): (-12143.4, 12.5),
    ("idta.technical_data", ("TechnicalPropertyAreas", "Lifetime", "CrateOfRelevantCycleLifeTest")): (-57931.4, 2.0),
}


def dotted(keys: tuple[str, ...]) -> str:
    """Return a path of keys as the node names it in a refusal."""
    return ".".join(keys)


@cache
def _published_bytes(fmt: str) -> bytes:
    folder, name = aspects.SCHEMAS[fmt]
    return data_path("passports", *folder.split("/"), name.replace("-schema", "")).read_bytes()


def _catenax_format(version: str) -> str:
    return f"catenax-{version[:3]}"


def catenax_bytes(version: str = "6.1.0") -> bytes:
    """Return a Catena-X example's file as published."""
    return _published_bytes(_catenax_format(version))


def catenax_published(version: str = "6.1.0") -> dict[str, Any]:
    """Return a Catena-X example as published (the node refuses it for its into-service date)."""
    return dict(json.loads(catenax_bytes(version)))


def catenax(version: str = "6.1.0") -> dict[str, Any]:
    """Return a Catena-X example with only its noise made real."""
    return _made_real(_catenax_format(version), catenax_published(version))


def idta_published(part: str) -> dict[str, Any]:
    """Return an IDTA-02035 part's example payload as published."""
    return dict(json.loads(_published_bytes(f"idta.{part}")))


def idta_part(part: str) -> dict[str, Any]:
    """Return an IDTA-02035 part's example payload with only its noise made real."""
    return _made_real(f"idta.{part}", idta_published(part))


def idta_parts() -> dict[str, dict[str, Any]]:
    """Return the seven example payloads, noise made real, by part name in part order."""
    return {part: idta_part(part) for part in IDTA_PARTS}


def idta_published_parts() -> dict[str, dict[str, Any]]:
    """Return the seven example payloads as published."""
    return {part: idta_published(part) for part in IDTA_PARTS}


def idta_bundle(passport_id: str | None = BUNDLE_ID) -> dict[str, Any]:
    """Return the seven parts, noise made real, as the bundle the node reads (with a passport id unless None)."""
    parts: dict[str, Any] = {"idta": idta_parts()}
    return parts if passport_id is None else {"passport_id": passport_id, **parts}


def noise(example: str) -> list[tuple[str, Any]]:
    """Return the noisy (path, published value) of an example ("catenax-6.1", "idta.circularity", ...)."""
    return [(dotted(keys), published) for (name, keys), (published, _) in NOISE.items() if name == example]


def _made_real(example: str, document: dict[str, Any]) -> dict[str, Any]:
    for (name, keys), (published, real) in NOISE.items():
        if name == example:
            node: Any = document
            for key in keys[:-1]:
                node = node[key]
            assert node[keys[-1]] == published, f"{example}: {dotted(keys)} is no longer {published!r}"
            node[keys[-1]] = real
    return document
