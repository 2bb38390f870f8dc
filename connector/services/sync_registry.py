"""CX-0160's bulk mode for sync jobs: poll a partner's Digital Twin Registry by `createdAfter`, read each new twin's
passport submodel through the partner's data plane.

For Catena-X providers that serve no change feed (any other connector), a job reads the partner's DTR: it finds
the DTR dataset by its `dct:type`, gets access to it (the shared access service), lists
`GET /shell-descriptors?createdAfter=<the newest createdAt seen>` page by page, and for each shell reads its
BatteryPass submodel (`href/$value`) under an agreement on the submodel's asset (the best level the partner offers
this node, chosen once per set of assets). The poll's position (the newest `createdAt` seen, and the registry's
paging cursor while a poll is under way) is the job's cursor, committed with each page.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import orjson

from connector import vocab
from connector.domain.assets import Criterion
from connector.domain.errors import NotFound, PeerError, Refused
from connector.services.access import Access, Partner
from connector.services.lookup import (
    BATTERY_PASS_SEMANTIC_ID,
    DCT_TYPE_CRITERION,
    DTR_TYPE,
    LEVELS,
    Endpoint,
    endpoints_of,
    level_of,
)
from connector.store.negotiations import Agreement


@dataclass(frozen=True, slots=True)
class PollPosition:
    """Where a registry poll is: shells created after `created_after`; `page` is the registry's cursor mid-poll."""

    created_after: str | None = None
    newest: str | None = None  # the newest createdAt seen in this poll so far
    page: str | None = None

    def encode(self) -> str:
        """Return the position as the job's cursor."""
        return "dtr:" + orjson.dumps({"after": self.created_after, "newest": self.newest, "page": self.page}).decode()

    @staticmethod
    def decode(cursor: str | None) -> PollPosition:
        """Read a job's cursor (an unreadable one starts over)."""
        if not cursor or not cursor.startswith("dtr:"):
            return PollPosition()
        try:
            raw = orjson.loads(cursor[4:])
        except orjson.JSONDecodeError:
            return PollPosition()
        return PollPosition(raw.get("after"), raw.get("newest"), raw.get("page"))

    def after_page(self, shells: list[Mapping[str, Any]], following: str | None) -> PollPosition:
        """Return the position after a page: the next page of this poll, or the next poll's createdAfter."""
        stamps = [s["createdAt"] for s in shells if isinstance(s.get("createdAt"), str)]
        newest = max([*stamps, *([self.newest] if self.newest else [])], default=None)
        if following:
            return PollPosition(self.created_after, newest, following)
        return PollPosition(newest or self.created_after, None, None)


def _semantic_ids(descriptor: Mapping[str, Any]) -> list[str]:
    semantic = descriptor.get("semanticId")
    keys = semantic.get("keys") if isinstance(semantic, dict) else None
    return [str(k["value"]) for k in keys or [] if isinstance(k, dict) and isinstance(k.get("value"), str)]


@dataclass(frozen=True, slots=True)
class Twin:
    """One shell's passport as read: its id in the shell, the document, the asset and level it was read at."""

    shell_id: str
    document: Any
    asset_id: str
    level: str


class RegistryReader:
    """Reads a partner's registry and its twins' passport submodels for a sync run (one reader per run)."""

    def __init__(self, access: Access, partner: Partner, semantic_id: str = BATTERY_PASS_SEMANTIC_ID) -> None:
        self._access = access
        self.partner = partner
        self._semantic_id = semantic_id
        self._registry: Agreement | None = None
        # The submodel endpoint's assets -> (the asset chosen, its partner, its agreement).
        self._chosen: dict[tuple[str, ...], tuple[Endpoint, Partner, Agreement]] = {}

    async def open(self) -> str:
        """Find the partner's registry and get access to it; return its dataset id."""
        found = await self._access.datasets(self.partner, (Criterion(DCT_TYPE_CRITERION, "=", DTR_TYPE),))
        if not found:
            raise NotFound(
                f"{self.partner.did} offers this node no Digital Twin Registry (no dataset of type {DTR_TYPE})"
            )
        self._registry, _ = await self._access.grant(self.partner, found[0])
        return str(found[0].get("@id"))

    async def page(self, position: PollPosition, limit: int) -> tuple[list[dict[str, Any]], str | None, int]:
        """Return one page of shells created after the position, the registry's next cursor and the bytes read."""
        assert self._registry is not None
        query = {"limit": str(limit)}
        if position.created_after:
            query["createdAfter"] = position.created_after
        if position.page:
            query["cursor"] = position.page
        answer = await self._access.get(self.partner, self._registry, "/shell-descriptors", query=query)
        if not answer.ok or not isinstance(answer.body, dict):
            raise PeerError(f"the partner's registry answered {answer.status} to the createdAfter poll")
        shells = [s for s in answer.body.get("result") or [] if isinstance(s, dict)]
        paging = answer.body.get("paging_metadata")
        following = paging.get("cursor") if isinstance(paging, dict) else None
        return shells, following if isinstance(following, str) and following else None, len(answer.raw)

    async def read(self, shell: Mapping[str, Any]) -> tuple[Twin, int]:
        """Read a shell's passport submodel; NotFound when it has none, Refused when no level is offered."""
        descriptors = [d for d in shell.get("submodelDescriptors") or [] if isinstance(d, dict)]
        descriptor = next((d for d in descriptors if self._semantic_id in _semantic_ids(d)), None)
        if descriptor is None:
            raise NotFound(f"the shell has no submodel {self._semantic_id}")
        endpoints = endpoints_of(descriptor)
        if not endpoints:
            raise NotFound("its passport submodel has no DSP endpoint (href and subprotocolBody)")
        endpoint, partner, agreement = await self._choose(endpoints)
        href = next((e.href for e in endpoints if e.asset_id == endpoint.asset_id), endpoint.href)
        answer = await self._access.get(partner, agreement, url=href.rstrip("/") + "/$value")
        if not answer.ok or answer.body is None:
            raise PeerError(f"the partner's data plane answered {answer.status} for the submodel at {href[:200]}")
        level = endpoint.level or "public"
        return Twin(str(shell.get("id")), answer.body, endpoint.asset_id, level), len(answer.raw)

    async def _choose(self, endpoints: list[Endpoint]) -> tuple[Endpoint, Partner, Agreement]:
        key = tuple(sorted(e.asset_id for e in endpoints))
        hit = self._chosen.get(key)
        if hit is not None:
            return hit
        endpoints = sorted(endpoints, key=lambda e: LEVELS.index(e.level) if e.level in LEVELS else len(LEVELS))
        partner = await self._access.partner_at(self.partner, endpoints[0].dsp_endpoint)
        chosen: Endpoint | None = None
        for endpoint in endpoints:
            if await self._access.held_agreement(partner, endpoint.asset_id) is not None:
                chosen = endpoint
                break
        dataset: Any = None
        if chosen is None:
            ids = [e.asset_id for e in endpoints]
            offered = {
                str(d.get("@id")): d
                for d in await self._access.datasets(partner, (Criterion(vocab.EDC + "id", "in", ids),))
            }
            chosen = next((e for e in endpoints if e.asset_id in offered), None)
            if chosen is None:
                raise Refused("the partner offers this node none of the passport submodel's assets")
            dataset = offered[chosen.asset_id]
            if chosen.level is None:
                chosen = Endpoint(chosen.href, chosen.asset_id, chosen.dsp_endpoint, level_of("", dataset))
        agreement, _ = await self._access.grant(partner, dataset or chosen.asset_id)
        self._chosen[key] = (chosen, partner, agreement)
        return chosen, partner, agreement
