"""The embedded Digital Twin Registry: one shell per stored passport, read through the data plane (docs/registry.md).

Shells are computed from the passports table at every request (no second copy to keep in step), so an import,
an update or a deletion is in the registry the moment it commits. What a requester sees follows the Tractus-X
DTR's visibility rule for the BPN the agreement's consumer has. The DTR asset, and one asset per submodel part
and access level, are published with the passports' datasets.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

import policies
from connector import jsonld
from connector.domain import passport as model
from connector.domain import registry as wire
from connector.domain.assets import (
    DIGITAL_TWIN_REGISTRY,
    PASSPORT_SUBMODEL,
    Asset,
    ContractDefinition,
    Criterion,
    DataAddress,
)
from connector.domain.assets import PolicyDefinition as StoredPolicy
from connector.domain.errors import InvalidInput, NotFound, Problem
from connector.domain.passport import catenax, idta, views
from connector.store import Store, Transaction
from connector.store.registry import ShellFilter
from policies.catenax import BPNL

log = logging.getLogger("connector.registry")

EDC = "https://w3id.org/edc/v0.0.1/ns/"
AAS_SEMANTIC_ID = "https://admin-shell.io/aas/3/0/HasSemantics/semanticId"
DEFAULT_LIMIT = 100
MAX_LIMIT = 1000
DTR_ACCESS_POLICY = "dtr-access"
DTR_USAGE_POLICY = "dtr-usage"
# The Catena-X policies Tractus-X providers put their DTR under: membership and the framework agreement to see
# it, the framework agreement and the passport purpose (CX-0160) to use it.
_TX_CONTEXT = [
    "https://w3id.org/dspace/2025/1/odrl-profile.jsonld",
    "https://w3id.org/catenax/2025/9/policy/context.jsonld",
    {"@vocab": EDC},
]
_MEMBERSHIP = {"leftOperand": "Membership", "operator": "eq", "rightOperand": "active"}
_FRAMEWORK = {"leftOperand": "FrameworkAgreement", "operator": "eq", "rightOperand": "DataExchangeGovernance:1.0"}
_DPP_PURPOSE = {"leftOperand": "UsagePurpose", "operator": "isAnyOf", "rightOperand": ["cx.circular.dpp:1"]}
_DTR_POLICIES = {
    DTR_ACCESS_POLICY: {"action": "access", "constraint": [{"and": [_MEMBERSHIP, _FRAMEWORK]}]},
    DTR_USAGE_POLICY: {"action": "use", "constraint": {"and": [_FRAMEWORK, _DPP_PURPOSE]}},
}


def now_ms() -> int:
    """Return the current time in milliseconds."""
    return int(time.time() * 1000)


@dataclass(frozen=True, slots=True)
class RegistryConfig:
    """What the registry needs from the settings."""

    data_plane_url: str
    dsp_url: str
    owner_bpn: str | None
    readers: tuple[str, ...] = (wire.PUBLIC_READABLE,)
    public_names: frozenset[str] = frozenset({"manufacturerPartId", "partInstanceId", "digitalTwinType"})
    settle_ms: int = 5000

    def publication(self) -> wire.Publication:
        """Return where descriptors point and who may see specific asset ids."""
        levels = tuple(level.value for level in policies.AccessLevel)
        return wire.Publication(self.data_plane_url, self.dsp_url, self.owner_bpn, self.readers, levels)


BpnOf = Callable[[str], Awaitable[str | None]]


def _limit(raw: str | None) -> int:
    if raw is None or raw == "":
        return DEFAULT_LIMIT
    try:
        value = int(raw)
    except ValueError:
        value = 0
    if value < 1:
        raise InvalidInput("limit must be an integer of at least 1", [Problem("invalid", "limit", raw)])
    return min(value, MAX_LIMIT)


class RegistryService:
    """Answers the AAS registry and discovery read APIs for the node's passports."""

    def __init__(
        self, store: Store, config: RegistryConfig, bpn_of: BpnOf | None = None, clock: Callable[[], int] = now_ms
    ) -> None:
        self._store = store
        self._clock = clock
        self.config = config
        self._publication = config.publication()
        self._bpn_of = bpn_of

    async def requester_bpn(self, participant_id: str) -> str | None:
        """Return the BPN of an agreement's consumer: its id when a BPNL, else what the BPN directory says."""
        if BPNL.match(participant_id):
            return participant_id
        if self._bpn_of is None:
            return None
        try:
            return await self._bpn_of(participant_id)
        except Exception as exc:  # the directory down: the requester is seen as one without a BPN
            log.warning(
                "the requester's BPN could not be looked up", extra={"participant": participant_id, "reason": str(exc)}
            )
            return None

    def _view(self, source: wire.ShellSource, bpn: str | None) -> dict[str, Any] | None:
        shell = wire.shell_descriptor(source, self._publication)
        return wire.visible(shell, bpn, self.config.owner_bpn, self.config.public_names)

    def _window(
        self, created_after: str | None, cursor: str | None
    ) -> tuple[int | None, int | None, tuple[int, str] | None]:
        """Return (createdAfter, settled horizon, keyset position) of a listing; a cursor carries its horizon."""
        after = wire.parse_created_after(created_after) if created_after else None
        if cursor:
            at, last, until = wire.decode_cursor(cursor, 3)
            if not isinstance(at, int) or not isinstance(last, str) or not (until is None or isinstance(until, int)):
                raise InvalidInput("cursor is not one this registry issued", [Problem("invalid cursor", "cursor")])
            return after, until, (at, last)
        # A poll by creation time sees only shells created settle_ms ago or earlier: a transaction that took its
        # time before and commits late is then never behind the poller's last createdAfter (docs/registry.md).
        return after, (self._clock() - self.config.settle_ms) if after is not None else None, None

    async def _scan(
        self, spec: ShellFilter, bpn: str | None, until: int | None, keep: Callable[[dict[str, Any]], bool]
    ) -> tuple[list[dict[str, Any]], str | None]:
        async with self._store.read() as tx:
            found = await tx.shells.page(ShellFilter(**{**_fields(spec), "limit": spec.limit + 1}))
        more = len(found) > spec.limit
        page = found[: spec.limit]
        shells = [v for v in (self._view(s, bpn) for s in page) if v is not None and keep(v)]
        cursor = wire.encode_cursor([page[-1].created_at, page[-1].passport_id, until]) if more and page else None
        return shells, cursor

    async def list_shells(
        self,
        bpn: str | None,
        *,
        limit: str | None = None,
        cursor: str | None = None,
        asset_kind: str | None = None,
        asset_type: str | None = None,
        created_after: str | None = None,
    ) -> dict[str, Any]:
        """Return GET /shell-descriptors: a page of the shells the requester may see."""
        size = _limit(limit)
        after, until, position = self._window(created_after, cursor)
        if asset_kind is not None and asset_kind not in ("Instance", "NotApplicable", "Role", "Type"):
            raise InvalidInput(
                "assetKind must be Instance, NotApplicable, Role or Type", [Problem("invalid", "assetKind", asset_kind)]
            )
        if asset_type is not None:
            wire.decode_id(asset_type, "assetType")
        if (asset_kind is not None and asset_kind != "Instance") or asset_type is not None:
            return wire.paged([], None)  # every shell here is an Instance without an assetType
        spec = ShellFilter(created_after=after, created_until=until, after=position, limit=size)
        shells, following = await self._scan(spec, bpn, until, lambda _: True)
        return wire.paged(shells, following)

    async def shell(self, bpn: str | None, encoded_id: str) -> dict[str, Any]:
        """Return GET /shell-descriptors/{aasIdentifier}; 404 when absent or not visible to the requester."""
        aas_id = wire.decode_id(encoded_id, "aasIdentifier")
        async with self._store.read() as tx:
            source = await tx.shells.get(aas_id)
        shown = self._view(source, bpn) if source is not None else None
        if shown is None:
            raise NotFound(f"Shell for identifier {aas_id} not found")
        return shown

    async def submodels(
        self, bpn: str | None, encoded_id: str, limit: str | None, cursor: str | None
    ) -> dict[str, Any]:
        """Return GET /shell-descriptors/{aasIdentifier}/submodel-descriptors, paged by position."""
        descriptors = (await self.shell(bpn, encoded_id))["submodelDescriptors"]
        size = _limit(limit)
        start = 0
        if cursor:
            (start,) = wire.decode_cursor(cursor, 1)
            if not isinstance(start, int) or start < 0:
                raise InvalidInput("cursor is not one this registry issued", [Problem("invalid cursor", "cursor")])
        page = descriptors[start : start + size]
        following = wire.encode_cursor([start + size]) if start + size < len(descriptors) else None
        return wire.paged(page, following)

    async def submodel(self, bpn: str | None, encoded_id: str, encoded_submodel: str) -> dict[str, Any]:
        """Return GET /shell-descriptors/{aasIdentifier}/submodel-descriptors/{submodelIdentifier}."""
        submodel_id = wire.decode_id(encoded_submodel, "submodelIdentifier")
        for descriptor in (await self.shell(bpn, encoded_id))["submodelDescriptors"]:
            if descriptor["id"] == submodel_id:
                return dict(descriptor)
        raise NotFound(f"Submodel for identifier {submodel_id} not found")

    async def lookup(
        self,
        bpn: str | None,
        links: Sequence[tuple[str, str]],
        *,
        limit: str | None = None,
        cursor: str | None = None,
        created_after: str | None = None,
    ) -> dict[str, Any]:
        """Return the ids of the shells the requester sees that have every asset link (GET and POST lookups)."""
        size = _limit(limit)
        after, until, position = self._window(created_after, cursor)
        narrowed = _narrow(links, self.config.owner_bpn)
        if narrowed is None or not links:
            return wire.paged([], None)
        spec = ShellFilter(created_after=after, created_until=until, after=position, limit=size, **narrowed)
        shells, following = await self._scan(spec, bpn, until, lambda shell: wire.matches(shell, links))
        return wire.paged([s["id"] for s in shells], following)


def _fields(spec: ShellFilter) -> dict[str, Any]:
    return {name: getattr(spec, name) for name in ShellFilter.__dataclass_fields__}


def _narrow(links: Sequence[tuple[str, str]], owner: str | None) -> dict[str, str] | None:
    """Return the column filters asset links imply, or None when no shell of this registry can have them all."""
    columns: dict[str, str] = {}
    for name, value in links:
        column = {
            "partInstanceId": "battery_id",
            wire.GLOBAL_ASSET_ID: "battery_id",
            "manufacturerPartId": "model_id",
        }.get(name)
        if column is not None:
            if columns.setdefault(column, value) != value:
                return None
        elif (name, value) not in (("digitalTwinType", wire.DIGITAL_TWIN_TYPE), ("manufacturerId", owner)):
            return None
    return columns


def submodel_value(data: dict[str, Any], part: str, level: str) -> dict[str, Any]:
    """Return one submodel of a stored passport as a reader of `level` sees it (the aspect's JSON payload)."""
    passport = model.parse_passport(dict(data))
    granted = {policies.AccessLevel.PUBLIC.value, level}
    if part == wire.BATTERY_PASS:
        return model.view_catenax(passport, granted)
    return idta.to_idta_part(catenax.drop(passport, views.tags_for(granted)), part)


async def publish(tx: Transaction, levels: Sequence[str], at: int) -> tuple[list[str], list[str], list[str]]:
    """Offer the registry and the submodels (in the passports' publishing transaction); existing ones are kept.

    Returns the asset, policy and contract definition ids made. Submodel assets carry their access level, so the
    passports' contract definition of that level offers them under its policy.
    """
    made_assets: list[str] = []
    made_policies: list[str] = []
    made_definitions: list[str] = []
    for policy_id, permission in _DTR_POLICIES.items():
        if await tx.policies.get(policy_id) is None:
            document = {"@context": _TX_CONTEXT, "@type": "Set", "permission": [permission]}
            expanded = jsonld.single_node(jsonld.expand(document), "policy")
            await tx.policies.add(StoredPolicy(policy_id, expanded, {}, at))
            made_policies.append(policy_id)
    if await tx.assets.get(wire.DTR_ASSET_ID) is None:
        await tx.assets.add(
            Asset(
                id=wire.DTR_ASSET_ID,
                properties={
                    EDC + "id": wire.DTR_ASSET_ID,
                    EDC + "name": "Digital Twin Registry of the battery passports",
                    EDC + "contenttype": "application/json",
                    wire.DCT_TYPE: {"@id": wire.DTR_TAXONOMY},
                    wire.CX_COMMON_VERSION: wire.DTR_VERSION,
                },
                private_properties={},
                data_address=DataAddress(DIGITAL_TWIN_REGISTRY, {}),
                created_at=at,
            )
        )
        made_assets.append(wire.DTR_ASSET_ID)
    if await tx.contracts.get(wire.DTR_ASSET_ID) is None:
        selector = (Criterion(EDC + "id", "=", wire.DTR_ASSET_ID),)
        await tx.contracts.add(
            ContractDefinition(wire.DTR_ASSET_ID, DTR_ACCESS_POLICY, DTR_USAGE_POLICY, selector, {}, at)
        )
        made_definitions.append(wire.DTR_ASSET_ID)
    for part in wire.PARTS:
        semantic = wire.semantic_id(part)
        for level in levels:
            asset_id = wire.submodel_asset_id(part, level)
            if await tx.assets.get(asset_id) is not None:
                continue
            await tx.assets.add(
                Asset(
                    id=asset_id,
                    properties={
                        EDC + "id": asset_id,
                        EDC + "name": f"{semantic.rsplit('#', 1)[-1]} submodels of the battery passports, "
                        f"{level.replace('_', ' ')} view",
                        EDC + "contenttype": "application/json",
                        EDC + "passportAccessLevel": level,
                        wire.DCT_TYPE: {"@id": wire.SUBMODEL_TAXONOMY},
                        AAS_SEMANTIC_ID: {"@id": semantic},
                    },
                    private_properties={},
                    data_address=DataAddress(PASSPORT_SUBMODEL, {"part": part, "accessLevel": level}),
                    created_at=at,
                )
            )
            made_assets.append(asset_id)
    return made_assets, made_policies, made_definitions
