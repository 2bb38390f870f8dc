"""Reading a passport document and encoding it for the store, with nothing of the store imported.

What a bulk import's worker process runs (`passport_pipeline.prepare_sent`): a worker imports only the node's
model and this, not the store (SQLAlchemy and every repository), which took about a second of its start-up
(decision 0019, fifth round). `connector.services.passports` uses the same functions for every other write.
"""

from __future__ import annotations

from typing import Any

import orjson

from connector.domain import passport as model
from connector.domain.errors import InvalidInput, Problem
from connector.domain.passport_digest import digest_of

# What storing a validated passport writes, field by field: id, battery id, model id, manufacturer id,
# category, the node JSON encoded (UTF-8 bytes), its digest, the source format
# (`connector.store.passports.PassportWrite`, which holds the encoding as text).
WriteFields = tuple[str, str, str | None, str | None, str | None, bytes, str, str]


def node_json(passport: model.Passport) -> dict[str, Any]:
    """Return the node's JSON of a validated passport: what `passport.to_json()` returns, made faster.

    Extension data is parsed JSON the passport already checked; walking it through pydantic's JSON dump
    again (every value's type looked up) was four fifths of the cost of making a store record, so it is
    taken as it is. The dicts are the passport's own: neither is changed once made.
    """
    data = passport.model_dump(mode="json", exclude_none=True, exclude={"extensions"})
    data["extensions"] = [_extension_json(extension) for extension in passport.extensions]
    return data


def _extension_json(extension: model.Extension) -> dict[str, Any]:
    # What `model_dump(mode="json", exclude_none=True)` gives, in the fields' order as `to_json` writes them
    # (the digest is of these bytes), without pydantic's walk over the order's positions.
    dumped: dict[str, Any] = {"format": extension.format, "tag": extension.tag.value, "data": extension.data}
    if extension.order is not None:
        dumped["order"] = extension.order
    return dumped


def write_fields(reading: model.Reading) -> WriteFields:
    """Return what storing a validated passport writes, as `services.passports.record_of` would make it: its node
    JSON encoded once (bytes: a worker process sends them as they are), and the digest of those bytes."""
    passport = reading.passport
    encoded = orjson.dumps(node_json(passport))
    category = passport.category
    return (
        passport.passport_id,
        passport.battery_id,
        passport.model_id,
        passport.manufacturer_id,
        getattr(category, "value", category) if category is not None else None,
        encoded,
        digest_of(encoded),
        reading.format,
    )


def load(document: Any) -> model.Reading:
    """Read a passport in any supported format: the passport, its format's name and what the reading
    tolerated (IDTA's bare lists, as warnings). A document that does not validate is a 400 naming every field."""
    if not isinstance(document, dict):
        raise InvalidInput(f"a passport must be a JSON object, not {_json_type(document)}")
    try:
        reading = model.read_document(document)  # the format is told once, by the reading
    except model.PassportInvalid as exc:
        shown = "; ".join(f"{p}: {m}" for p, m in exc.errors[:5])
        more = f" (and {len(exc.errors) - 5} more)" if len(exc.errors) > 5 else ""
        raise InvalidInput(
            f"the passport is not valid: {shown}{more}", [Problem(message, path) for path, message in exc.errors]
        ) from exc
    return reading


def _json_type(value: Any) -> str:
    names = {bool: "a boolean", int: "a number", float: "a number", str: "a string", list: "an array"}
    return "null" if value is None else names.get(type(value), type(value).__name__)
