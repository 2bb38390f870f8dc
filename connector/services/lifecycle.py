"""A battery's life across nodes (issue 22, docs/lifecycle.md).

- `create_successor`: a passport for a battery this operator takes over, linked to its predecessor(s), each
  checked: it exists and this node can read it (on a partner's node: its public view, then the lookup through the
  partner's registry under an agreement), no self-succession, no cycle as far as the chain is readable. The
  predecessors' nodes are told through the outbox (a Digital Twin Event, services.notifications).
- `record_change`: status, state of health, capacity, events recorded by the operator responsible, as a new
  version with who changed what.
- `on_event`: a partner's notification applied: the passport marked superseded, its successor linked.
- `lifecycle`: the chain followed across nodes, each passport at the level this node can read it (or why not).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any
from urllib.parse import quote

from connector.domain import lifecycle as lc
from connector.domain.assets import Criterion
from connector.domain.errors import Conflict, ConnectorError, InvalidInput, NotFound, PeerError, Problem
from connector.domain.lifecycle import Lifecycle
from connector.domain.passport import canonical_id
from connector.domain.query import QuerySpec
from connector.services import passports as ps
from connector.services.access import Access, Partner
from connector.services.lookup import LookupRequest, PassportLookup
from connector.services.notifications import NotificationService
from connector.services.recent import Recent
from connector.store import Store, Transaction
from connector.store.passports import PassportRecord
from connector.transport.peer import PeerClient

log = logging.getLogger("connector.lifecycle")

MAX_CHAIN = 50  # passports a lifecycle call follows at most
_DSP_PATH = re.compile(r"/api/dsp(/2025-1)?/?$")


def public_root(dsp_address: str) -> str:
    """Return a node's protocol root (where `/passports/{id}` is served) from its DSP address."""
    return _DSP_PATH.sub("", dsp_address.rstrip("/"))


def public_view_url(dsp_address: str, passport_id: str) -> str:
    """Return the URL of a partner's public view of a passport."""
    return f"{public_root(dsp_address)}/passports/{quote(passport_id, safe='')}"


@dataclass(frozen=True, slots=True)
class _Remote:
    """What this node read of a partner's passport."""

    public: dict[str, Any] | None
    level: str | None
    reason: str | None
    status: str | None


class LifecycleService:
    """Successor passports, recorded changes, the chain across nodes."""

    def __init__(
        self,
        store: Store,
        passports: ps.PassportService,
        access: Access,
        lookup: PassportLookup,
        notifications: NotificationService,
        peer: PeerClient,
        own_did: str,
        own_address: str,
    ) -> None:
        self._store = store
        self._passports = passports
        self._access = access
        self._lookup = lookup
        self._notifications = notifications
        self._peer = peer
        self.own_did = own_did
        self.own_address = own_address
        notifications.appliers.append(self.on_event)
        # The public view asks for a passport's chain part on every read: kept a second, forgotten on a change.
        self._parts: Recent[str, Lifecycle | None] = Recent(1.0, 4096)

    def _forget(self, passport_ids: list[str]) -> None:
        self._passports.forget(passport_ids)
        for passport_id in passport_ids:
            self._parts.forget(passport_id)

    def _me(self) -> str:
        return self._notifications.own_bpn or self.own_did

    # Successors.

    async def create_successor(self, request: lc.SuccessorRequest) -> ps.Saved:
        """Store a successor passport linked to its checked predecessors and tell their nodes."""
        reading = ps.load(request.passport)
        data = ps.node_json(reading.passport)
        own_id = reading.passport.passport_id
        identity = dict(data["identity"])
        identity["predecessor_passport_ids"] = [ref.passport_id for ref in request.predecessors]
        identity["operator_id"] = request.operator
        condition = dict(data.get("condition") or {})
        condition["status"] = request.status
        data = {**data, "identity": identity, "condition": condition}
        lc.check_chain(own_id, [ref.passport_id for ref in request.predecessors])
        links: list[lc.Link] = []
        partners: list[tuple[Partner, str] | None] = []
        for i, ref in enumerate(request.predecessors):
            try:
                link, partner, reached = await self._check_predecessor(ref)
            except ConnectorError as exc:
                raise type(exc)(
                    f"predecessors[{i}] {ref.passport_id!r}: {exc.message}",
                    [Problem(exc.message, f"predecessors[{i}]", ref.passport_id)],
                ) from None
            lc.check_chain(own_id, reached)
            links.append(link)
            partners.append((partner, await self._notifications.bpn_of(partner)) if partner is not None else None)
        record = ps.record_of(ps.load(data))
        at = ps.now_ms()
        summary = [
            f"created as the successor of {', '.join(link.passport_id for link in links)} (status {request.status})"
        ]
        async with self._store.transaction() as tx:
            if await tx.passports.get(record.id, include_deleted=True) is not None:
                raise Conflict(f"passport {record.id!r} exists; a successor is a new passport")
            await tx.passports.put_many([record], at, request.changed_by or self._me(), summary)
            details: dict[str, Any] = {"status": request.status, "operator": request.operator}
            if request.recovered_materials:
                details["recoveredMaterials"] = list(request.recovered_materials)
            await tx.lifecycle.put(lc.Lifecycle(record.id, tuple(links), (), None, details, at))
            successor = lc.Link(record.id, self.own_did, self.own_address, self._notifications.own_bpn, at)
            content = {"passportId": "", "successor": successor.as_json(), "status": request.status}
            for link, owed in zip(links, partners, strict=True):
                if owed is None:
                    await self._supersede(tx, link.passport_id, successor, at)
                else:
                    await self._notifications.owe(
                        tx,
                        owed[0],
                        owed[1],
                        lc.CONTEXT_SUCCEEDED,
                        link.passport_id,
                        {**content, "passportId": link.passport_id},
                    )
            stored = await tx.passports.get(record.id)
        self._forget([record.id, *(link.passport_id for link in links if link.node is None)])
        assert stored is not None
        return ps.Saved(stored, True, reading.warnings)

    async def _check_predecessor(self, ref: lc.PredecessorRef) -> tuple[lc.Link, Partner | None, list[str]]:
        """Return the link to a predecessor, its node (None: this one), and the ids its chain reaches."""
        if ref.partner is None:
            record = await self._passports.get(ref.passport_id)
            reached = await self._local_chain(record.id)
            return lc.Link(record.id), None, reached
        partner = await self._access.partner(ref.partner)
        if partner.did == self.own_did:
            return await self._check_predecessor(lc.PredecessorRef(ref.passport_id, None))
        public = await self._public_view(partner, ref.passport_id)
        if public is None:
            raise NotFound(f"{partner.did} serves no passport {ref.passport_id!r}")
        battery = str((public.get("identity") or {}).get("battery_id", ""))
        found = await self._lookup.lookup(LookupRequest(partner.did, battery_id=battery))
        if found.source.get("shell") not in (None, ref.passport_id):
            raise NotFound(
                f"the registry of {partner.did} answers battery {battery!r} with passport "
                f"{found.source.get('shell')!r}, not {ref.passport_id!r}"
            )
        reached = await self._remote_chain(ref.passport_id, partner, public)
        return lc.Link(ref.passport_id, partner.did, partner.address, partner.bpn), partner, reached

    async def _remote_chain(self, passport_id: str, partner: Partner, public: Mapping[str, Any]) -> list[str]:
        """Return the ids a partner's passport's predecessors reach, read from the public views as far as readable."""
        reached = [passport_id]
        todo = [(partner, dict(public))]
        while todo and len(reached) < MAX_CHAIN:
            holder, view = todo.pop(0)
            for link in _chain_part(view).get("predecessors", []):
                pid = str(link.get("passportId", ""))
                if not pid or pid in reached:
                    continue
                reached.append(pid)
                node = link.get("node") or holder.did
                if node == self.own_did:
                    reached.extend(p for p in await self._local_chain(pid) if p not in reached)
                    continue
                try:
                    there = holder if node == holder.did else await self._access.partner(node)
                    found = await self._public_view(there, pid)
                except ConnectorError:
                    continue  # not readable: the chain is checked as far as it is
                if found is not None:
                    todo.append((there, found))
        return reached

    async def _local_chain(self, passport_id: str) -> list[str]:
        reached, todo = [passport_id], [passport_id]
        async with self._store.read() as tx:
            while todo and len(reached) < MAX_CHAIN:
                found = await tx.lifecycle.get(todo.pop())
                for link in found.predecessors if found is not None else ():
                    if link.passport_id not in reached:
                        reached.append(link.passport_id)
                        if link.node is None:
                            todo.append(link.passport_id)
        return reached

    async def _public_view(self, partner: Partner, passport_id: str) -> dict[str, Any] | None:
        answer = await self._peer.request("GET", public_view_url(partner.address, passport_id))
        if answer.status == 404:
            return None
        if not answer.ok or not isinstance(answer.body, dict):
            raise PeerError(f"the public view of {passport_id!r} at {partner.did} answered {answer.status}")
        return dict(answer.body)

    async def _supersede(self, tx: Transaction, passport_id: str, successor: lc.Link, at: int) -> bool:
        """Mark a passport of this node superseded by a successor (again: nothing changes)."""
        found = await tx.lifecycle.get(passport_id) or lc.Lifecycle(passport_id)
        if any(canonical_id(s.passport_id) == canonical_id(successor.passport_id) for s in found.successors):
            return False
        await tx.lifecycle.put(
            replace(
                found,
                successors=(*found.successors, successor),
                superseded_at=found.superseded_at or at,
                updated_at=at,
            )
        )
        tx.after_commit.append(lambda: self._forget([passport_id]))
        return True

    async def _add_link(self, tx: Transaction, passport_id: str, name: str, link: lc.Link, at: int) -> bool:
        """Add a component or assembly link to a passport's lifecycle details (again: nothing changes)."""
        found = await tx.lifecycle.get(passport_id) or lc.Lifecycle(passport_id)
        if any(canonical_id(other.passport_id) == canonical_id(link.passport_id) for other in found.links(name)):
            return False
        details = {**found.details, name: [*found.details.get(name, []), link.as_json()]}
        await tx.lifecycle.put(replace(found, details=details, updated_at=at))
        tx.after_commit.append(lambda: self._forget([passport_id]))
        return True

    async def add_components(
        self, passport_id: str, refs: tuple[lc.PredecessorRef, ...], changed_by: str | None
    ) -> dict[str, Any]:
        """List the components of an assembly (a pack's cells), each checked readable; tell their nodes."""
        record = await self._passports.get(passport_id)
        checked: list[tuple[lc.Link, tuple[Partner, str] | None]] = []
        for i, ref in enumerate(refs):
            if canonical_id(ref.passport_id) == canonical_id(record.id):
                raise InvalidInput("a passport is not its own component", [Problem("itself", f"components[{i}]")])
            try:
                link, partner, _ = await self._check_predecessor(ref)
            except ConnectorError as exc:
                raise type(exc)(
                    f"components[{i}] {ref.passport_id!r}: {exc.message}",
                    [Problem(exc.message, f"components[{i}]", ref.passport_id)],
                ) from None
            checked.append((link, (partner, await self._notifications.bpn_of(partner)) if partner else None))
        at = ps.now_ms()
        assembly = lc.Link(record.id, self.own_did, self.own_address, self._notifications.own_bpn, at)
        async with self._store.transaction() as tx:
            for link, owed in checked:
                if not await self._add_link(tx, record.id, "components", link, at):
                    continue
                if owed is None:
                    await self._add_link(tx, link.passport_id, "partOf", assembly, at)
                else:
                    content = {"passportId": link.passport_id, "assembly": assembly.as_json()}
                    await self._notifications.owe(
                        tx, owed[0], owed[1], lc.CONTEXT_INCORPORATED, link.passport_id, content
                    )
        log.info("components listed", extra={"passport_id": record.id, "changed_by": changed_by or self._me()})
        self._forget([record.id])
        return await self.public_part(await self._passports.get(record.id))

    # Events received.

    async def on_event(self, tx: Transaction, event: lc.Event, sender: str) -> tuple[str, str | None] | None:
        """Apply a Digital Twin Event: a successor reported marks the passport superseded."""
        record = await tx.passports.get(event.passport_id)
        if record is None:
            if event.context == lc.CONTEXT_UPDATED:
                # A partner's passport this node read: kept in the inbox (a sync job holding it runs at once).
                return "received", f"{event.passport_id} changed at {sender} (status {event.status or 'unchanged'})"
            return "ignored", f"no passport {event.passport_id!r} on this node"
        if event.context == lc.CONTEXT_SUCCEEDED and event.successor is not None:
            link = replace(event.successor, at=ps.now_ms())
            if not await self._supersede(tx, record.id, link, ps.now_ms()):
                return "ignored", f"successor {link.passport_id!r} was known already"
            # Those holding a copy of the superseded passport (a sync job, a lookup) are told in turn.
            status = (record.data.get("condition") or {}).get("status")
            told = {"passportId": record.id, "status": status, "supersededBy": link.as_json()}
            await self._tell_readers(tx, record.id, told, but=sender)
            return "applied", f"superseded by {link.passport_id} at {sender}"
        if event.context == lc.CONTEXT_INCORPORATED and event.assembly is not None:
            link = replace(event.assembly, at=ps.now_ms())
            if not await self._add_link(tx, record.id, "partOf", link, ps.now_ms()):
                return "ignored", f"assembly {link.passport_id!r} was known already"
            return "applied", f"part of {link.passport_id} at {sender}"
        return "applied", f"{event.passport_id} changed at {sender} (status {event.status or 'unchanged'})"

    # Changes by the operator responsible.

    async def record_change(self, passport_id: str, change: lc.ChangeRequest) -> ps.Saved:
        """Record a change of a passport's condition as a new version, with who changed what."""
        record = await self._passports.get(passport_id)
        async with self._store.read() as tx:
            found = await tx.lifecycle.get(record.id)
        if found is not None and found.superseded_at is not None:
            newest = found.successors[-1]
            raise Conflict(
                f"passport {record.id!r} is superseded by {newest.passport_id!r} (at {newest.node or 'this node'}): "
                "its operator responsible records changes there"
            )
        operator = (record.data.get("identity") or {}).get("operator_id")
        mine = {self.own_did, self._notifications.own_bpn}
        if operator is not None and operator not in mine:
            raise Conflict(f"passport {record.id!r} names {operator} as the operator responsible, not this node")
        at = ps.now_ms()
        data = lc.apply_change(record.data, change, lc.iso_now(at))
        updated = ps.record_of(ps.load(data))
        summary = lc.changes(record.data, updated.data)
        if not summary:
            return ps.Saved(record, False, [])
        status = (updated.data.get("condition") or {}).get("status")
        async with self._store.transaction() as tx:
            await tx.passports.put_many([updated], at, change.changed_by or self._me(), summary)
            stored = await tx.passports.get(record.id)
            await self._tell_readers(tx, updated.id, {"passportId": updated.id, "status": status})
        self._passports.forget([record.id])
        assert stored is not None
        return ps.Saved(stored, True, [])

    async def _tell_readers(self, tx: Transaction, passport_id: str, content: dict[str, Any], but: str = "") -> None:
        """Owe a PassportUpdated event to every partner holding an agreement on this node's passport data (it read
        them, or a sync job does), in the caller's transaction; addresses are resolved when the events are sent."""
        spec = QuerySpec(limit=200, filter_expression=(Criterion("providerId", "=", self.own_did),))
        agreements = await tx.agreements.query(spec)
        readers = {a.consumer_id for a in agreements if a.asset_id.startswith("passport")} - {self.own_did, but}
        for did in sorted(readers):
            await self._notifications.owe_to(tx, did, lc.CONTEXT_UPDATED, passport_id, content)

    # Reading.

    async def public_part(self, record: PassportRecord) -> dict[str, Any]:
        """Return the chain's public part of one of this node's passports (links name their nodes)."""

        async def read() -> Lifecycle | None:
            async with self._store.read() as tx:
                return await tx.lifecycle.get(record.id)

        found = await self._parts.get(record.id, read)
        ids = (record.data.get("identity") or {}).get("predecessor_passport_ids") or []
        part = lc.public_part(found, ids)
        for link in (*part["predecessors"], *part["components"], *part["partOf"], *part["successors"]):
            if link.get("node") is None and "node" in link:
                link.update(node=self.own_did, dspAddress=self.own_address, bpn=self._notifications.own_bpn)
        part["operator"] = (record.data.get("identity") or {}).get("operator_id")
        part["node"] = self.own_did
        return part

    async def public_chain(self, record: PassportRecord) -> dict[str, Any] | None:
        """Return the chain's public part for the public view; None for a passport with no links at all."""
        part = await self.public_part(record)
        linked = ("predecessors", "successors", "components", "partOf")
        return part if any(part[name] for name in linked) else None

    async def lifecycle(self, passport_id: str) -> dict[str, Any]:
        """Follow predecessor and successor links across nodes; answer each passport at this node's level."""
        record = await self._passports.get(passport_id)
        entries: dict[str, dict[str, Any]] = {}
        depth: dict[str, int] = {canonical_id(record.id): 0}
        todo: list[tuple[str, str | None, str | None]] = [(record.id, None, None)]
        truncated = False
        while todo:
            pid, node, address = todo.pop(0)
            key = canonical_id(pid)
            if key in entries:
                continue
            if len(entries) >= MAX_CHAIN:
                truncated = True
                break
            entry, part = await self._entry(pid, node, address)
            entries[key] = entry
            for direction, step in (("predecessors", -1), ("components", -1), ("successors", 1), ("partOf", 1)):
                for link in part.get(direction, []):
                    other = canonical_id(str(link["passportId"]))
                    depth.setdefault(other, depth[key] + step)
                    # A link that names no node is held where the passport naming it is.
                    link_node = link.get("node") or node
                    if link_node == self.own_did:
                        link_node = None
                    todo.append((str(link["passportId"]), link_node, link.get("dspAddress")))
        chain = sorted(entries.values(), key=lambda e: (depth[canonical_id(e["passportId"])], e["passportId"]))
        return {
            "passportId": record.id,
            "chain": chain,
            "complete": not truncated and all(e["readable"] for e in chain),
        }

    async def _entry(
        self, passport_id: str, node: str | None, address: str | None
    ) -> tuple[dict[str, Any], dict[str, Any]]:
        if node is None:
            found = await self._passports.current(passport_id)
            if found is None:
                entry = {"passportId": passport_id, "node": self.own_did, "readable": False, "level": None}
                return {**entry, "reason": f"no passport {passport_id!r} on this node"}, {}
            part = await self.public_part(found)
            entry = {
                "passportId": found.id,
                "batteryId": found.battery_id,
                "node": self.own_did,
                "status": (found.data.get("condition") or {}).get("status"),
                "operator": part["operator"],
                "superseded": part["superseded"],
                "readable": True,
                "level": "owner",
                "predecessors": [p["passportId"] for p in part["predecessors"]],
                "successors": [s["passportId"] for s in part["successors"]],
                "components": [c["passportId"] for c in part["components"]],
                "partOf": [a["passportId"] for a in part["partOf"]],
            }
            if "recoveredMaterials" in part:
                entry["recoveredMaterials"] = part["recoveredMaterials"]
            return entry, part
        remote = await self._remote(passport_id, node, address)
        part = _chain_part(remote.public) if remote.public is not None else {}
        identity = (remote.public or {}).get("identity") or {}
        entry = {
            "passportId": passport_id,
            "batteryId": identity.get("battery_id"),
            "node": node,
            "status": remote.status,
            "operator": part.get("operator", identity.get("operator_id")),
            "superseded": part.get("superseded"),
            "readable": remote.level is not None,
            "level": remote.level,
            "predecessors": [p["passportId"] for p in part.get("predecessors", [])],
            "successors": [s["passportId"] for s in part.get("successors", [])],
            "components": [c["passportId"] for c in part.get("components", [])],
            "partOf": [a["passportId"] for a in part.get("partOf", [])],
        }
        if "recoveredMaterials" in part:
            entry["recoveredMaterials"] = part["recoveredMaterials"]
        if remote.reason is not None:
            entry["reason"] = remote.reason
        return entry, part

    async def _remote(self, passport_id: str, node: str, address: str | None) -> _Remote:
        try:
            partner = await self._access.partner(node)
            public = await self._public_view(partner, passport_id)
        except ConnectorError as exc:
            return _Remote(None, None, f"{node} could not be reached: {exc.message}", None)
        if public is None:
            return _Remote(None, None, f"{node} serves no passport {passport_id!r}", None)
        battery = str((public.get("identity") or {}).get("battery_id", ""))
        try:
            found = await self._lookup.lookup(LookupRequest(partner.did, battery_id=battery))
        except ConnectorError as exc:
            # The public view is readable by anyone (Art. 77(2)(a)); the rest is not, and why is told.
            return _Remote(public, "public", f"the lookup failed: {exc.message}", None)
        level = str(found.source.get("level") or "public")
        # The lookup reads the best level offered to this node: public means nothing more is offered to it.
        why = "the partner offers this node the public level only (its policies, this node's credentials)"
        return _Remote(public, level, why if level == "public" else None, _status_of(found.passport))


def _chain_part(public: Mapping[str, Any] | None) -> dict[str, Any]:
    part = (public or {}).get("lifecycle")
    return dict(part) if isinstance(part, dict) else {}


def _status_of(passport: Any) -> str | None:
    """Return the battery status of a passport read through a lookup (Catena-X or node shape), when shown."""
    if not isinstance(passport, dict):
        return None
    for group, name in (("sustainability", "status"), ("condition", "status")):
        value = (passport.get(group) or {}).get(name) if isinstance(passport.get(group), dict) else None
        if isinstance(value, str):
            return value.lower().replace("re-used", "reused")
    return None


def parse_limit(raw: str | None) -> int:
    """Read a `limit` query parameter (1 to 500, default 100)."""
    if raw is None:
        return 100
    try:
        value = int(raw)
    except ValueError:
        raise InvalidInput("limit must be a whole number", [Problem("invalid", "limit", raw)]) from None
    if not 1 <= value <= 500:
        raise InvalidInput("limit must be 1 to 500", [Problem("out of range", "limit", raw)])
    return value
