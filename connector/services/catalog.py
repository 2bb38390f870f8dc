"""The catalog as one requester sees it: computed from contract definitions, policies and assets.

Contract definitions and their policies are parsed once and kept until the offers revision changes (any
replica's write bumps it). Access policies are evaluated once per definition per request, never per
asset. Assets are selected and paged in SQL; only the page is loaded.
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson

import policies
from catalog.model import HTTP_PULL, HTTP_PUSH, Catalog, DataService, Dataset, Distribution, Offer
from catalog.offers import fingerprint, offer_id, parse_offer_id
from connector import vocab
from connector.domain import selection
from connector.domain.assets import Asset, ContractDefinition, Criterion
from connector.domain.errors import NotFound
from connector.domain.participants import Participant
from connector.services.offers import effective_policy
from connector.store import Store, Transaction
from connector.store.repositories import read_revision
from connector.store.tables import OFFERS_REVISION

log = logging.getLogger("connector.catalog")
_REGISTRY = policies.default_registry()
_MAX_CACHED_REQUESTERS = 10_000

# Asset properties that have a DCAT/DCT meaning in a dataset (EDC names on the left).
_DCAT_ALIASES = {
    vocab.EDC + "name": vocab.DCT + "title",
    vocab.EDC + "description": vocab.DCT + "description",
    vocab.EDC + "keywords": vocab.DCAT + "keyword",
    vocab.EDC + "version": vocab.DCAT + "version",
    vocab.EDC + "contenttype": vocab.DCAT + "mediaType",
}


@dataclass(frozen=True, slots=True)
class CompiledDefinition:
    """A contract definition with its policies parsed, ready for evaluation."""

    definition: ContractDefinition
    access: policies.Policy
    contract: policies.Policy
    fingerprint: str
    # An access decision that reads no clock and no usage can be reused for the same requester and claims.
    access_time_dependent: bool = True

    @property
    def selector(self) -> tuple[Criterion, ...]:
        """Return the assets selector."""
        return self.definition.assets_selector


class DefinitionIndex:
    """Finds the permitted definitions whose selector holds for an asset without trying each of them.

    Most selectors are one `=`/`in` on a text property (a battery model, an asset id); those are looked
    up by (key, value). The rest, and selectors that select everything, are checked one by one.
    """

    def __init__(self, definitions: list[CompiledDefinition]) -> None:
        self._by_value: dict[str, dict[str, list[int]]] = {}
        self._by_id: dict[str, list[int]] = {}
        self._always: list[int] = []
        self._checked: list[int] = []
        self.definitions = definitions
        for position, compiled in enumerate(definitions):
            selector = compiled.selector
            if not selector:
                self._always.append(position)
                continue
            first = selector[0]
            simple = (
                len(selector) == 1
                and first.operator in ("=", "in")
                and not selection.is_number(first.operand_right)
                and first.operand_left not in selection.CREATED_KEYS
            )
            if not simple:
                self._checked.append(position)
                continue
            items = first.operand_right if isinstance(first.operand_right, list) else [first.operand_right]
            try:
                texts = {selection.single_text(v) for v in items}
            except ValueError:
                self._checked.append(position)
                continue
            if first.operand_left in selection.ID_KEYS:
                for text in texts:
                    self._by_id.setdefault(text, []).append(position)
            else:
                values = self._by_value.setdefault(selection.normalise_key(first.operand_left), {})
                for text in texts:
                    values.setdefault(text, []).append(position)

    def matching(self, asset: Asset) -> list[CompiledDefinition]:
        """Return the definitions (in their order) whose selector holds for the asset."""
        found = set(self._always)
        found.update(self._by_id.get(asset.id, ()))
        for key, values in self._by_value.items():
            for props in (asset.properties, asset.private_properties):
                if key in props:
                    for text, _ in selection.scalar_texts(props[key]):
                        found.update(values.get(text, ()))
        found.update(p for p in self._checked if selection.matches(asset, self.definitions[p].selector))
        return [self.definitions[p] for p in sorted(found)]


@dataclass(frozen=True, slots=True)
class CatalogPage:
    """One page of a catalog and whether more pages follow."""

    catalog: Catalog
    offset: int
    limit: int
    has_more: bool
    last_key: str | None = None


@dataclass(frozen=True, slots=True)
class ResolvedOffer:
    """What an offer id resolves to for a requester."""

    definition: ContractDefinition
    asset: Asset
    policy: policies.Policy


class CatalogService:
    """Computes catalogs, datasets and offers for requesters."""

    def __init__(self, store: Store, participant_id: str, dsp_url: str) -> None:
        self._store = store
        self.participant_id = participant_id
        self.service = DataService(id="urn:uuid:" + str(uuid.uuid5(uuid.NAMESPACE_URL, dsp_url)), endpoint_url=dsp_url)
        self._catalog_id = "urn:uuid:" + str(uuid.uuid5(uuid.NAMESPACE_URL, dsp_url + "#catalog"))
        self._cached: tuple[int, list[CompiledDefinition]] | None = None
        self._decisions: dict[tuple[str, bytes], frozenset[str]] = {}

    async def _definitions(self, tx: Transaction) -> list[CompiledDefinition]:
        revision = await read_revision(tx.connection, OFFERS_REVISION)
        if self._cached is not None and self._cached[0] == revision:
            return self._cached[1]
        definitions = await tx.contracts.all()
        stored = await tx.policies.get_many(
            {d.access_policy_id for d in definitions} | {d.contract_policy_id for d in definitions}
        )
        parsed: dict[str, policies.Policy] = {}
        for policy_id, definition in stored.items():
            try:
                parsed[policy_id] = effective_policy(policies.parse_policy(definition.policy))
            except policies.PolicyError as exc:
                # Validated at creation; a policy the engine cannot read now offers nothing (fail closed).
                log.warning("policy definition cannot be parsed", extra={"policy_id": policy_id, "error": str(exc)})
        compiled = [
            CompiledDefinition(
                d,
                access,
                contract,
                fingerprint(contract),
                access_time_dependent=policies.compile_policy(access, _REGISTRY).time_dependent,
            )
            for d in definitions
            if (access := parsed.get(d.access_policy_id)) is not None
            and (contract := parsed.get(d.contract_policy_id)) is not None
        ]
        self._cached = (revision, compiled)
        self._decisions.clear()
        return compiled

    def _permitted(self, definitions: list[CompiledDefinition], participant: Participant) -> list[CompiledDefinition]:
        context = policies.EvaluationContext(
            participant_id=participant.id, claims=participant.claims, now=datetime.now(UTC)
        )
        key = (participant.id, orjson.dumps(participant.claims, option=orjson.OPT_SORT_KEYS, default=str))
        reusable = self._decisions.get(key)
        if reusable is None:
            reusable = frozenset(
                d.definition.id
                for d in definitions
                if not d.access_time_dependent
                and policies.evaluate(d.access, "use", context, policies.Scope.CATALOG).permitted
            )
            if len(self._decisions) >= _MAX_CACHED_REQUESTERS:
                self._decisions.pop(next(iter(self._decisions)))
            self._decisions[key] = reusable
        return [
            d
            for d in definitions
            if (
                policies.evaluate(d.access, "use", context, policies.Scope.CATALOG).permitted
                if d.access_time_dependent
                else d.definition.id in reusable
            )
        ]

    def _dataset(self, asset: Asset, index: DefinitionIndex) -> Dataset | None:
        offers = tuple(
            Offer(id=offer_id(d.definition.id, asset.id, d.contract), policy=d.contract) for d in index.matching(asset)
        )
        if not offers:
            return None
        distributions = tuple(Distribution(fmt, self.service) for fmt in (HTTP_PULL, HTTP_PUSH))
        return Dataset(id=asset.id, offers=offers, distributions=distributions, metadata=dataset_metadata(asset))

    async def catalog(
        self,
        participant: Participant,
        offset: int = 0,
        limit: int = 50,
        after: str | None = None,
        where: tuple[Criterion, ...] = (),
    ) -> CatalogPage:
        """Return one page of the catalog this participant may see (after an id, or at an offset).

        `where` (a requester's filter) keeps the datasets whose public properties or id match all its criteria;
        the page is a page of those.
        """
        async with self._store.read() as tx:
            permitted = self._permitted(await self._definitions(tx), participant)
            assets = await tx.assets.select_any(
                [d.selector for d in permitted], offset, limit + 1, after=after, where=where
            )
        index = DefinitionIndex(permitted)
        datasets = [d for a in assets[:limit] if (d := self._dataset(a, index)) is not None]
        catalog = Catalog(
            id=self._catalog_id, participant_id=self.participant_id, service=self.service, datasets=tuple(datasets)
        )
        last_key = assets[:limit][-1].id if assets else None
        return CatalogPage(catalog, offset, limit, has_more=len(assets) > limit, last_key=last_key)

    async def dataset(self, participant: Participant, dataset_id: str) -> Dataset:
        """Return one dataset this participant may see; NotFound otherwise (never say it exists)."""
        async with self._store.read() as tx:
            permitted = self._permitted(await self._definitions(tx), participant)
            asset = await tx.assets.get(dataset_id)
        found = self._dataset(asset, DefinitionIndex(permitted)) if asset is not None else None
        if found is None:
            raise NotFound(f"no dataset {dataset_id!r} is offered to {participant.id}")
        return found

    async def resolve_offer(self, participant: Participant, offer: str) -> ResolvedOffer:
        """Return the definition, asset and contract policy an offer id names, if the participant may see it."""
        ref = parse_offer_id(offer)
        if ref is None:
            raise NotFound(f"{offer!r} is not an offer id of this node")
        return await self.resolve(participant, ref.definition_id, ref.asset_id, ref.fingerprint, offer)

    async def resolve(
        self, participant: Participant, definition_id: str, asset_id: str, fingerprint: str | None, offer: str
    ) -> ResolvedOffer:
        """Return what a contract definition offers on an asset (checking the policy's fingerprint when given)."""
        async with self._store.read() as tx:
            definitions = {d.definition.id: d for d in await self._definitions(tx)}
            asset = await tx.assets.get(asset_id)
        compiled = definitions.get(definition_id)
        if compiled is None or asset is None or fingerprint not in (None, compiled.fingerprint):
            raise NotFound(f"offer {offer!r} is not (or no longer) offered")
        if not selection.matches(asset, compiled.selector) or not self._permitted([compiled], participant):
            raise NotFound(f"offer {offer!r} is not offered to {participant.id}")
        return ResolvedOffer(compiled.definition, asset, compiled.contract)


def dataset_metadata(asset: Asset) -> dict[str, Any]:
    """Return a dataset's metadata: the asset's public properties, with DCAT/DCT names where they have one."""
    metadata: dict[str, Any] = {}
    for key, value in asset.properties.items():
        alias = _DCAT_ALIASES.get(key)
        if alias is not None:
            metadata.setdefault(alias, value)
        if key != vocab.EDC + "id":
            metadata[key] = value
    return metadata
