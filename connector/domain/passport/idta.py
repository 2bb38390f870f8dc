"""IDTA-02035 Digital Battery Passport parts 1-7 (value-only payloads) to and from the node's passport.

A bundle is `{"idta": {"<part>": <payload>, ...}}` with the part names of `PARTS`, plus an optional
`"passport_id"`. Each part's top-level properties are kept whole as extension data under the Annex XIII
tag of the property (`KEYS`; otherwise the part's tag), so export gives back the same payloads. The
passport's identity (battery id, manufacturer, dates) is read from the nameplate, not moved out of it.
The shared examples that fail their own schema only do so in language-text shapes (a string where the
schema wants a list of {language, text}); their meaning is clear, so they are accepted as they are.
"""

from __future__ import annotations

import copy
from typing import Any

from pydantic import ValidationError

from .model import Passport, PassportInvalid, Tag, check_date, invalid

FORMAT = "idta"
P, LM, A, LB = Tag.PUBLIC, Tag.LEGITIMATE_INTEREST_MODEL, Tag.AUTHORITY, Tag.LEGITIMATE_INTEREST_BATTERY

PARTS: dict[str, Tag] = {
    "digital_nameplate": P,
    "handover_documentation": P,
    "product_condition": LB,
    "technical_data": P,
    "material_composition": P,
    "carbon_footprint": P,
    "circularity": P,
}
KEYS: dict[tuple[str, str], Tag] = {
    ("digital_nameplate", "DateOfPuttingIntoService"): LB,
    ("digital_nameplate", "LifeCycleStage"): LB,
    ("material_composition", "BatteryMaterials"): LM,
    ("circularity", "DismantlingAndRemovalInformation"): LM,
    ("circularity", "SparePartSources"): LM,
    ("circularity", "SafetyMeasures"): LM,
}


def is_idta(document: dict[str, Any]) -> bool:
    """Tell an IDTA parts bundle."""
    return isinstance(document.get("idta"), dict)


def _text(value: Any) -> str | None:
    """Read a plain string or a language-text value ({"en": ...}, or [{"language", "text"}])."""
    if isinstance(value, str):
        return value or None
    if isinstance(value, dict) and value:
        return str(value.get("en") or next(iter(value.values())))
    if isinstance(value, list) and value and isinstance(value[0], dict):
        return str(value[0].get("text") or "") or None
    return None


def from_idta(parts: dict[str, Any], passport_id: str | None = None) -> Passport:
    """Map IDTA-02035 part payloads into the node's passport (raise PassportInvalid naming what is wrong)."""
    errors = [(f"idta.{name}", "not an IDTA-02035 part this node knows") for name in parts if name not in PARTS]
    errors += [(f"idta.{name}", "must be a JSON object") for name, v in parts.items() if not isinstance(v, dict)]
    nameplate = parts.get("digital_nameplate")
    if not isinstance(nameplate, dict):
        errors.append(("idta.digital_nameplate", "required: it carries the battery's identity"))
    if errors:
        raise PassportInvalid(errors)
    assert isinstance(nameplate, dict)
    battery_id = _text(nameplate.get("SerialNumber")) or _text(nameplate.get("URIOfTheProduct"))
    if battery_id is None:
        raise PassportInvalid([("idta.digital_nameplate.SerialNumber", "required: the battery's identifier")])
    made = _text(nameplate.get("DateOfManufacture"))
    try:
        made = check_date(made[:10]) if made else None
    except ValueError:
        made = None  # kept verbatim in the nameplate
    identity = {
        "passport_id": passport_id or _text(nameplate.get("URIOfTheProduct")) or battery_id,
        "battery_id": battery_id,
        "manufacturer_id": _text(nameplate.get("ManufacturerIdentifier")),
        "manufacturer_name": _text(nameplate.get("ManufacturerName")),
        "manufacturing_date": made,
    }
    chemistry = parts.get("material_composition", {}).get("BatteryChemistry")
    if _text(chemistry) is not None:
        identity["chemistry"] = _text(chemistry)
    split: dict[Tag, dict[str, Any]] = {}
    for name, payload in parts.items():
        for key, value in payload.items():
            tag = KEYS.get((name, key), PARTS[name])
            split.setdefault(tag, {}).setdefault(name, {})[key] = copy.deepcopy(value)
    data = {
        "identity": {k: v for k, v in identity.items() if v is not None},
        "source_format": FORMAT,
        "extensions": [{"format": FORMAT, "tag": tag.value, "data": split[tag]} for tag in Tag if tag in split],
    }
    try:
        return Passport.model_validate(data)
    except ValidationError as exc:
        raise invalid(exc, "idta.") from None


def to_idta(passport: Passport) -> dict[str, dict[str, Any]]:
    """Return the IDTA part payloads a passport holds (those of a view, when given a view's passport)."""
    out: dict[str, dict[str, Any]] = {}
    for extension in passport.extensions:
        if extension.format == FORMAT:
            for name, payload in extension.data.items():
                out.setdefault(name, {}).update(copy.deepcopy(payload))
    return out
