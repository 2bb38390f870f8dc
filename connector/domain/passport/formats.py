"""Which format a passport document is in, told from the document itself: its aspect URN, else its shape.

`detect(document)` answers `catenax-6.0`, `catenax-6.1`, `idta` or `node`, and refuses everything else
with a message naming what the document is, where the node knows (`OTHER_ASPECTS`, `_other_shape`: a
generic Catena-X DigitalProductPassport, another Catena-X aspect, a lone IDTA part, an AAS submodel), or
what was looked for.
"""

from __future__ import annotations

import re
from typing import Any

from . import validation
from .model import PassportInvalid

BATTERY_PASS = re.compile(r"^urn:(?:samm:)?io\.catenax\.battery\.battery_pass:(\d+\.\d+\.\d+)(?:#\w+)?$")
READ = {"6.0.0": "catenax-6.0", "6.1.0": "catenax-6.1"}
# Aspects the node knows and does not read as battery passports: URN (after "urn:" or "urn:samm:") -> name.
OTHER_ASPECTS: tuple[tuple[str, str], ...] = (
    ("io.catenax.generic.digital_product_passport:", "a Catena-X DigitalProductPassport"),
    ("io.catenax.pcf:", "a Catena-X Product Carbon Footprint"),
    ("io.catenax.serial_part:", "a Catena-X SerialPart"),
    ("io.catenax.batch:", "a Catena-X Batch"),
    ("io.catenax.part_type_information:", "a Catena-X PartTypeInformation"),
    ("io.catenax.single_level_bom_as_built:", "a Catena-X SingleLevelBomAsBuilt"),
    ("io.admin-shell.idta.batterypass.", "an IDTA-02035 part"),
)
# Top-level sections of a BatteryPass 6.x that a generic DigitalProductPassport does not have, and back.
BATTERY_SECTIONS = frozenset({"performance", "materials", "safety", "conformity"})
DPP_SECTIONS = frozenset({"compliances", "composition", "additionalData"})
LOOKED_FOR = (
    "looked for a Catena-X BatteryPass 6.0.0/6.1.0 (specVersion, or metadata.passportIdentifier with the battery "
    'sections), an IDTA-02035 bundle ({"idta": {...}}) or the node\'s JSON (identity)'
)


def detect(document: Any) -> str:
    """Return the format of a passport document; raise PassportInvalid naming what it is when not a passport."""
    if not isinstance(document, dict):
        raise _not_read(f"must be a JSON object, not {type(document).__name__}")
    if isinstance(document.get("idta"), dict):
        return "idta"
    spec = document.get("specVersion")
    if isinstance(spec, str) and spec.startswith("urn:"):
        return _by_urn(spec)
    if isinstance(document.get("identity"), dict):
        return "node"
    other = _other_shape(document)
    if other is not None:
        raise _not_read(other)
    metadata = document.get("metadata")
    if (isinstance(metadata, dict) and "passportIdentifier" in metadata) or BATTERY_SECTIONS & document.keys():
        return "catenax-6.0"  # 6.0.0 documents carry no specVersion
    keys = ", ".join(list(document)[:10]) + (", …" if len(document) > 10 else "")
    raise _not_read(f"not a passport this node reads (top-level keys: {keys or 'none'}); {LOOKED_FOR}")


def _by_urn(spec: str) -> str:
    battery = BATTERY_PASS.match(spec)
    if battery:
        version = battery.group(1)
        if version in READ:
            return READ[version]
        raise _not_read(f"a Catena-X BatteryPass {version}; this node reads BatteryPass 6.0.0 and 6.1.0")
    name = spec.removeprefix("urn:").removeprefix("samm:")
    for prefix, what in OTHER_ASPECTS:
        if name.startswith(prefix):
            raise _not_read(f"{what} ({spec}), not a battery passport")
    raise _not_read(f"specVersion {spec!r} names no format this node reads; {LOOKED_FOR}")


def _other_shape(document: dict[str, Any]) -> str | None:
    """Name a document the node knows by its shape and does not read as a battery passport."""
    metadata = document.get("metadata")
    predecessor = metadata.get("predecessor") if isinstance(metadata, dict) else None
    if not BATTERY_SECTIONS & document.keys() and (DPP_SECTIONS & document.keys() or isinstance(predecessor, dict)):
        # 7.0.0 made the predecessor an object {applicable, content} and renamed status to passportStatus.
        seven = isinstance(predecessor, dict) or (isinstance(metadata, dict) and "passportStatus" in metadata)
        return f"a Catena-X DigitalProductPassport{' 7.0.0' if seven else ''}, not a battery passport"
    if "catenaXId" in document:
        return "a Catena-X part twin aspect (catenaXId), not a battery passport"
    if document.get("modelType") == "Submodel":
        return 'an AAS Submodel; send the value-only payloads of the IDTA-02035 parts as {"idta": {...}}'
    part = validation.idta_part_of(document)
    if part is not None:
        return f'an IDTA-02035 {part} part on its own; send the parts as {{"idta": {{"{part}": {{...}}, ...}}}}'
    return None


def _not_read(message: str) -> PassportInvalid:
    return PassportInvalid([("(passport)", message)])
