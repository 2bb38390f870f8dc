"""What each reader sees of a passport: one function from granted reader levels to a view.

Reader levels (policies.AccessLevel) map onto the Annex XIII tags (Art. 77(2)): the public reads point 1;
persons with a legitimate interest read points 1, 2 and 4; notified bodies, market surveillance
authorities and the Commission read points 1, 2 and 3. Levels add up; nobody but a legitimate-interest
reader sees point 4 (the individual battery's condition).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from . import catenax
from .model import GROUPS, Passport, Tag

READER_TAGS: dict[str, frozenset[Tag]] = {
    "public": frozenset({Tag.PUBLIC}),
    "legitimate_interest": frozenset({Tag.PUBLIC, Tag.LEGITIMATE_INTEREST_MODEL, Tag.LEGITIMATE_INTEREST_BATTERY}),
    "authority": frozenset({Tag.PUBLIC, Tag.LEGITIMATE_INTEREST_MODEL, Tag.AUTHORITY}),
}
_GROUP_TAGS = {name: group.tag for name, group in GROUPS.items()}


def tags_for(granted: Iterable[str]) -> frozenset[Tag]:
    """Return the Annex XIII tags readable with these reader levels (public always)."""
    tags: set[Tag] = {Tag.PUBLIC}
    for level in granted:
        tags |= READER_TAGS.get(str(level), frozenset())
    return frozenset(tags)


def view_json(data: Mapping[str, Any], granted: Iterable[str]) -> dict[str, Any]:
    """Return the view of a passport's node JSON (as stored) for reader levels, without re-validating it."""
    allowed = tags_for(granted)
    out: dict[str, Any] = {}
    for key, value in data.items():
        if key == "extensions":
            out[key] = [e for e in value if Tag(e["tag"]) in allowed]
        elif key in _GROUP_TAGS:
            if _GROUP_TAGS[key] in allowed:
                out[key] = value
        else:
            out[key] = value
    return out


def view(passport: Passport, granted: Iterable[str]) -> dict[str, Any]:
    """Return the node-JSON view of a passport for reader levels."""
    return view_json(passport.to_json(), granted)


def view_catenax(passport: Passport, granted: Iterable[str]) -> dict[str, Any]:
    """Return the same view in the Catena-X BatteryPass shape."""
    return catenax.to_catenax(catenax.drop(passport, tags_for(granted)))
