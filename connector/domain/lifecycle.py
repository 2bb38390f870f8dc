"""A battery's life across nodes (issue 22, docs/lifecycle.md): successor passports, recorded changes, events.

EU 2023/1542 Art. 77(7): a battery prepared for re-use or repurposing, repurposed or remanufactured gets a new
passport linked to the passport(s) of the original battery(ies), and the operator placing it on the market again
becomes responsible; when it becomes waste, responsibility moves on again. Each operator runs its own node, so the
links name the node that holds each passport, and nodes tell each other in the Catena-X Digital Twin Event shape
(CX-0151: a `header` and a `content`).

No framework here: parsing and rendering of the requests and the event message, the change summary of a new
version, and the chain rules (no self-succession, no cycle).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from connector.domain.errors import InvalidInput, Problem, ProblemList
from connector.domain.passport import canonical_id

# The Catena-X taxonomy term of a Digital Twin Event API asset (CX-0151), as its dct:type.
EVENT_API_TYPE = "https://w3id.org/catenax/taxonomy#DigitalTwinEventAPI"
EVENT_ASSET_ID = "digital-twin-event-api"
# This node's contexts (CX-0151 leaves the context to the use case; none is registered for battery succession).
CONTEXT_SUCCEEDED = "BatteryPass-DigitalTwinEvent-PassportSucceeded:1.0.0"
CONTEXT_UPDATED = "BatteryPass-DigitalTwinEvent-PassportUpdated:1.0.0"
CONTEXT_INCORPORATED = "BatteryPass-DigitalTwinEvent-PassportIncorporated:1.0.0"
CONTEXTS = (CONTEXT_SUCCEEDED, CONTEXT_UPDATED, CONTEXT_INCORPORATED)
HEADER_VERSION = "3.0.0"
# Annex XIII 4(c) statuses a successor passport starts with (original is the first passport's).
SUCCESSOR_STATUSES = ("repurposed", "reused", "remanufactured", "waste")
MAX_PREDECESSORS = 50
MAX_TEXT = 512
_BPN = re.compile(r"^BPN[LSA][0-9A-Z]{12}$")


@dataclass(frozen=True, slots=True)
class Link:
    """A passport in the chain and the node that holds it (None: this node)."""

    passport_id: str
    node: str | None = None  # the holder's DID
    address: str | None = None  # its DSP address
    bpn: str | None = None
    at: int | None = None

    def as_json(self) -> dict[str, Any]:
        """Return the link as stored and shown."""
        return {
            "passportId": self.passport_id,
            "node": self.node,
            "dspAddress": self.address,
            "bpn": self.bpn,
            "at": self.at,
        }


def link_of(data: Mapping[str, Any]) -> Link:
    """Read a link stored or received as `as_json` wrote it."""
    return Link(
        str(data["passportId"]),
        data.get("node"),
        data.get("dspAddress"),
        data.get("bpn"),
        int(data["at"]) if isinstance(data.get("at"), int) else None,
    )


@dataclass(frozen=True, slots=True)
class Lifecycle:
    """A passport's place in its battery's life as this node knows it."""

    passport_id: str
    predecessors: tuple[Link, ...] = ()
    successors: tuple[Link, ...] = ()
    superseded_at: int | None = None
    details: dict[str, Any] = field(default_factory=dict)  # recoveredMaterials, components, partOf, ...
    updated_at: int = 0

    def links(self, name: str) -> tuple[Link, ...]:
        """Return the component (`components`) or assembly (`partOf`) links kept in the details."""
        return tuple(link_of(item) for item in self.details.get(name, ()))


@dataclass(frozen=True, slots=True)
class Notification:
    """A Digital Twin Event received (direction `in`) or sent (`out`), and what became of it."""

    message_id: str
    direction: str
    partner: str
    context: str
    passport_id: str | None
    message: dict[str, Any]
    state: str  # in: received | applied | ignored; out: pending | delivered | failed
    reason: str | None
    created_at: int
    updated_at: int

    def as_json(self) -> dict[str, Any]:
        """Return the notification as the management API and the CLI show it."""
        return {
            "messageId": self.message_id,
            "direction": self.direction,
            "partner": self.partner,
            "context": self.context,
            "passportId": self.passport_id,
            "state": self.state,
            "reason": self.reason,
            "createdAt": self.created_at,
            "updatedAt": self.updated_at,
            "message": self.message,
        }


# Requests.


@dataclass(frozen=True, slots=True)
class PredecessorRef:
    """A predecessor named in a successor request: its passport id and the partner whose node holds it."""

    passport_id: str
    partner: str | None  # None: this node holds it


@dataclass(frozen=True, slots=True)
class SuccessorRequest:
    """A passport for a battery taken over, its predecessors, its status and the operator now responsible."""

    passport: dict[str, Any]
    predecessors: tuple[PredecessorRef, ...]
    status: str
    operator: str
    changed_by: str | None
    recovered_materials: tuple[dict[str, Any], ...] = ()


def _text(value: Any) -> bool:
    return isinstance(value, str) and bool(value.strip()) and len(value) <= MAX_TEXT


def parse_successor_request(body: Any) -> SuccessorRequest:
    """Read a successor request; every problem is named with its field."""
    problems = ProblemList()
    if not isinstance(body, dict):
        raise InvalidInput("the body must be a JSON object", [Problem("not an object", None)])
    passport = body.get("passport")
    if not isinstance(passport, dict):
        problems.add("passport (the successor passport, any supported format) is required", "passport")
    raw = body.get("predecessors")
    refs: list[PredecessorRef] = []
    if not isinstance(raw, list) or not raw or len(raw) > MAX_PREDECESSORS:
        problems.add(f"predecessors must be a list of 1 to {MAX_PREDECESSORS} {{passportId, partner}}", "predecessors")
    else:
        for i, item in enumerate(raw):
            pid = item.get("passportId") if isinstance(item, dict) else None
            partner = item.get("partner") if isinstance(item, dict) else None
            if not _text(pid):
                problems.add("passportId is required", f"predecessors[{i}].passportId", pid)
            elif partner is not None and not _text(partner):
                problems.add("partner must be a DID, a BPN or a DSP address", f"predecessors[{i}].partner", partner)
            else:
                refs.append(PredecessorRef(str(pid).strip(), str(partner).strip() if partner else None))
        seen = [canonical_id(r.passport_id) for r in refs]
        if len(set(seen)) != len(seen):
            problems.add("a predecessor is named twice", "predecessors")
    status = body.get("status")
    if status not in SUCCESSOR_STATUSES:
        problems.add(f"status must be one of {', '.join(SUCCESSOR_STATUSES)}", "status", status)
    operator = body.get("operator")
    if not _text(operator):
        problems.add("operator (the economic operator now responsible, e.g. its BPN) is required", "operator")
    changed_by = body.get("changedBy")
    if changed_by is not None and not _text(changed_by):
        problems.add("changedBy must be a non-empty string", "changedBy", changed_by)
    materials = body.get("recoveredMaterials", [])
    if not isinstance(materials, list) or len(materials) > 100:
        problems.add("recoveredMaterials must be a list of at most 100 {material, massKg}", "recoveredMaterials")
        materials = []
    for i, item in enumerate(materials):
        if not isinstance(item, dict) or not _text(item.get("material")):
            problems.add("each recovered material names its material", f"recoveredMaterials[{i}].material")
        elif (
            not isinstance(item.get("massKg"), int | float)
            or isinstance(item.get("massKg"), bool)
            or item["massKg"] < 0
        ):
            problems.add("massKg must be a number of kilograms, 0 or more", f"recoveredMaterials[{i}].massKg")
    problems.raise_if_any("the successor request is invalid")
    assert isinstance(passport, dict)
    return SuccessorRequest(
        passport,
        tuple(refs),
        str(status),
        str(operator).strip(),
        str(changed_by).strip() if changed_by else None,
        tuple({"material": str(m["material"]).strip(), "massKg": m["massKg"]} for m in materials),
    )


def parse_components_request(body: Any) -> tuple[tuple[PredecessorRef, ...], str | None]:
    """Read the components an assembly lists (a pack's cells or modules): [{passportId, partner}], changedBy."""
    problems = ProblemList()
    if not isinstance(body, dict):
        raise InvalidInput("the body must be a JSON object", [Problem("not an object", None)])
    raw = body.get("components")
    refs: list[PredecessorRef] = []
    if not isinstance(raw, list) or not raw or len(raw) > MAX_PREDECESSORS:
        problems.add(f"components must be a list of 1 to {MAX_PREDECESSORS} {{passportId, partner}}", "components")
    else:
        for i, item in enumerate(raw):
            pid = item.get("passportId") if isinstance(item, dict) else None
            partner = item.get("partner") if isinstance(item, dict) else None
            if not _text(pid):
                problems.add("passportId is required", f"components[{i}].passportId", pid)
            elif partner is not None and not _text(partner):
                problems.add("partner must be a DID, a BPN or a DSP address", f"components[{i}].partner", partner)
            else:
                refs.append(PredecessorRef(str(pid).strip(), str(partner).strip() if partner else None))
    changed_by = body.get("changedBy")
    if changed_by is not None and not _text(changed_by):
        problems.add("changedBy must be a non-empty string", "changedBy", changed_by)
    problems.raise_if_any("the components are invalid")
    return tuple(refs), str(changed_by).strip() if changed_by else None


@dataclass(frozen=True, slots=True)
class ChangeRequest:
    """A change of a passport's condition (status, state of health, events) and who records it."""

    changed_by: str | None
    condition: dict[str, Any]
    events: tuple[dict[str, Any], ...]


def parse_change_request(body: Any) -> ChangeRequest:
    """Read a change request: `condition` fields to set (node names), `events` to add, `changedBy`."""
    problems = ProblemList()
    if not isinstance(body, dict):
        raise InvalidInput("the body must be a JSON object", [Problem("not an object", None)])
    unknown = sorted(set(body) - {"changedBy", "condition", "events"})
    for name in unknown:
        problems.add("unknown field: a change has changedBy, condition and events", name)
    condition = body.get("condition", {})
    if not isinstance(condition, dict):
        problems.add("condition must be an object of condition fields (node names) to set", "condition")
        condition = {}
    if "negative_events" in condition:
        problems.add("events are added with `events`, never replaced", "condition.negative_events")
    events = body.get("events", [])
    if not isinstance(events, list) or not all(isinstance(e, dict) for e in events) or len(events) > 100:
        problems.add("events must be a list of at most 100 {event, at}", "events")
        events = []
    if not condition and not events:
        problems.add("a change sets condition fields or adds events", "condition")
    changed_by = body.get("changedBy")
    if changed_by is not None and not _text(changed_by):
        problems.add("changedBy must be a non-empty string", "changedBy", changed_by)
    problems.raise_if_any("the change is invalid")
    return ChangeRequest(str(changed_by).strip() if changed_by else None, dict(condition), tuple(events))


def apply_change(data: Mapping[str, Any], change: ChangeRequest, now_iso: str) -> dict[str, Any]:
    """Return a passport's node JSON with a change applied (to be validated again by the caller)."""
    out = {key: value for key, value in data.items()}
    condition = dict(out.get("condition") or {})
    condition.update({k: v for k, v in change.condition.items()})
    if change.events:
        stamped = [{"at": now_iso, **e} for e in change.events]
        condition["negative_events"] = [*(condition.get("negative_events") or []), *stamped]
    condition["last_update"] = now_iso[:10]
    out["condition"] = condition
    return out


def _flat(prefix: str, value: Any, out: dict[str, Any]) -> None:
    if isinstance(value, dict):
        for key, item in value.items():
            _flat(f"{prefix}.{key}" if prefix else str(key), item, out)
    else:
        out[prefix] = value


def changes(before: Mapping[str, Any] | None, after: Mapping[str, Any]) -> list[str]:
    """Return what a new version changes, one line per field: `path: old -> new`, `path: set to new`, ..."""
    old: dict[str, Any] = {}
    new: dict[str, Any] = {}
    _flat("", dict(before or {}), old)
    _flat("", dict(after), new)
    lines = []
    for path in sorted(old.keys() | new.keys()):
        if path == "extensions" or path.startswith("extensions."):
            if old.get(path) != new.get(path):
                lines.append("extensions changed")
            continue
        if path not in old:
            lines.append(f"{path}: set to {_shown(new[path])}")
        elif path not in new:
            lines.append(f"{path}: removed (was {_shown(old[path])})")
        elif old[path] != new[path]:
            if isinstance(old[path], list) and isinstance(new[path], list) and new[path][: len(old[path])] == old[path]:
                lines.append(f"{path}: {len(new[path]) - len(old[path])} added")
            else:
                lines.append(f"{path}: {_shown(old[path])} -> {_shown(new[path])}")
    return sorted(set(lines), key=lines.index)


def _shown(value: Any) -> str:
    text = repr(value) if not isinstance(value, str) else value
    return text if len(text) <= 80 else text[:77] + "..."


# The chain.


def check_chain(passport_id: str, reached: Iterable[str]) -> None:
    """Refuse a successor whose predecessors' chain (as far as readable) reaches the successor itself."""
    own = canonical_id(passport_id)
    for i, other in enumerate(reached):
        if canonical_id(other) == own:
            raise InvalidInput(
                f"passport {passport_id!r} cannot succeed {'itself' if i == 0 else 'a passport it precedes'}: "
                "the links would form a cycle",
                [Problem("cycle", "predecessors", other)],
            )


# The Digital Twin Event message (CX-0151).


def iso_now(ms: int) -> str:
    """Return a millisecond time as an ISO 8601 UTC timestamp."""
    return datetime.fromtimestamp(ms / 1000, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def render_event(
    message_id: str, context: str, sender_bpn: str, receiver_bpn: str, sent_ms: int, content: Mapping[str, Any]
) -> dict[str, Any]:
    """Return a Digital Twin Event message: CX-0151's header and the content."""
    return {
        "header": {
            "messageId": message_id,
            "context": context,
            "sentDateTime": iso_now(sent_ms),
            "senderBpn": sender_bpn,
            "receiverBpn": receiver_bpn,
            "version": HEADER_VERSION,
        },
        "content": dict(content),
    }


@dataclass(frozen=True, slots=True)
class Event:
    """A Digital Twin Event as received."""

    message_id: str
    context: str
    sender_bpn: str
    receiver_bpn: str
    passport_id: str
    successor: Link | None
    status: str | None
    message: dict[str, Any]
    assembly: Link | None = None


def parse_event(body: Any) -> Event:
    """Read a Digital Twin Event message (CX-0151 header, this node's content); every problem named."""
    problems = ProblemList()
    if not isinstance(body, dict):
        raise InvalidInput("the message must be a JSON object with header and content", [Problem("not an object")])
    header = body.get("header")
    content = body.get("content")
    if not isinstance(header, dict):
        problems.add("header is required (CX-0151)", "header")
        header = {}
    if not isinstance(content, dict):
        problems.add("content is required (CX-0151)", "content")
        content = {}
    for name in ("messageId", "context", "sentDateTime", "senderBpn", "receiverBpn", "version"):
        if not _text(header.get(name)):
            problems.add(f"header.{name} is required", f"header.{name}", header.get(name))
    for name in ("senderBpn", "receiverBpn"):
        if _text(header.get(name)) and not _BPN.match(str(header[name])):
            problems.add(f"header.{name} must be a BPN", f"header.{name}", header.get(name))
    context = header.get("context")
    if _text(context) and context not in CONTEXTS:
        problems.add(f"this node reads the contexts {', '.join(CONTEXTS)}", "header.context", context)
    passport_id = content.get("passportId")
    if not _text(passport_id):
        problems.add("content.passportId is required", "content.passportId", passport_id)
    successor = None
    raw = content.get("successor")
    if context == CONTEXT_SUCCEEDED:
        if not isinstance(raw, dict) or not _text(raw.get("passportId")) or not _text(raw.get("node")):
            problems.add("content.successor {passportId, node, dspAddress, bpn} is required", "content.successor")
        else:
            successor = link_of(raw)
    assembly = None
    raw = content.get("assembly")
    if context == CONTEXT_INCORPORATED:
        if not isinstance(raw, dict) or not _text(raw.get("passportId")) or not _text(raw.get("node")):
            problems.add("content.assembly {passportId, node, dspAddress, bpn} is required", "content.assembly")
        else:
            assembly = link_of(raw)
    status = content.get("status")
    if status is not None and not _text(status):
        problems.add("content.status must be a string", "content.status", status)
    problems.raise_if_any("the Digital Twin Event is invalid")
    return Event(
        str(header["messageId"]),
        str(context),
        str(header["senderBpn"]),
        str(header["receiverBpn"]),
        str(passport_id),
        successor,
        str(status) if status is not None else None,
        dict(body),
        assembly,
    )


def public_part(lifecycle: Lifecycle | None, links: Sequence[str] = ()) -> dict[str, Any]:
    """Return what the public view shows of a passport's chain: its links and whether it is superseded."""
    if lifecycle is None:
        return {
            "predecessors": [{"passportId": p} for p in links],
            "successors": [],
            "components": [],
            "partOf": [],
            "superseded": False,
        }
    return {
        "components": list(lifecycle.details.get("components", [])),
        "partOf": list(lifecycle.details.get("partOf", [])),
        "predecessors": [link.as_json() for link in lifecycle.predecessors] or [{"passportId": p} for p in links],
        "successors": [link.as_json() for link in lifecycle.successors],
        "superseded": lifecycle.superseded_at is not None,
        "supersededAt": iso_now(lifecycle.superseded_at) if lifecycle.superseded_at is not None else None,
        **(
            {"recoveredMaterials": lifecycle.details["recoveredMaterials"]}
            if "recoveredMaterials" in lifecycle.details
            else {}
        ),
    }
