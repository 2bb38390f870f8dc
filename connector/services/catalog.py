"""The catalog as one requester sees it: computed from contract definitions, policies and assets.

Contract definitions and their policies are parsed once and kept until the offers revision changes (any
replica's write bumps it). Access policies are evaluated once per definition per request, never per
asset (and not at all for a requester seen before, unless a policy reads the clock). Each set of permitted
definitions (a "selection") keeps its definition index and the ordered ids of the assets it selects (its
position map) until the offers or the assets revision changes: a page at any offset, or after any key, is
a slice of that map and one `id IN (...)` read of the page's assets, and the datasets of recent pages are kept
with it (docs/decisions/0025-catalog-selections.md).
Only a requester's filter (`where`) pages in SQL.
"""

from __future__ import annotations

import asyncio
import bisect
import logging
import uuid
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
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
from connector.store.repositories import read_revisions
from connector.store.tables import CATALOG_ASSETS_REVISION, OFFERS_REVISION

log = logging.getLogger("connector.catalog")
_REGISTRY = policies.default_registry()
_MAX_CACHED_REQUESTERS = 10_000
# Position maps kept at most, counted in asset ids over every selection (about 80 bytes each); the least
# recently used selections are dropped first. A selection larger than this pages in SQL instead.
MAX_POSITIONS = 2_000_000
_MAX_SELECTIONS = 256
_MAX_PAGES = 32  # pages kept per selection (a crawler walks forwards; many requesters ask for the first ones)
_REVISIONS = (OFFERS_REVISION, CATALOG_ASSETS_REVISION)

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


@dataclass(slots=True)
class Selection:
    """The definitions one class of requesters may use, their index, and the ordered ids of what they select."""

    definitions: list[CompiledDefinition]
    index: DefinitionIndex
    selectors: list[tuple[Criterion, ...]]
    positions: list[str] | None = None
    assets_revision: int = -1
    building: asyncio.Lock = field(default_factory=asyncio.Lock)
    # Pages computed from the position map, by (assets revision, start, limit): the datasets and the last key.
    pages: OrderedDict[tuple[int, int, int], tuple[Catalog, str | None, dict[str, Any]]] = field(
        default_factory=OrderedDict
    )


@dataclass(frozen=True, slots=True)
class Permitted:
    """The definitions a requester may use (in their order), and their ids: the key of their selection."""

    definitions: list[CompiledDefinition]
    ids: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class CatalogPage:
    """One page of a catalog and whether more pages follow."""

    catalog: Catalog
    offset: int
    limit: int
    has_more: bool
    last_key: str | None = None
    # Renderings of this page's catalog; a page kept by its selection shares them with every requester it serves.
    memo: dict[str, Any] = field(default_factory=dict)

    def rendered(self, name: str, render: Callable[[Catalog], Any]) -> Any:
        """Return render(catalog), computed once for a kept page (the caller must not change what it returns)."""
        if name not in self.memo:
            self.memo[name] = render(self.catalog)
        return self.memo[name]


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
        self._by_id: dict[str, CompiledDefinition] = {}
        self._decisions: dict[tuple[str, bytes], tuple[frozenset[str], Permitted | None]] = {}
        self._answers: dict[tuple[str, ...], Permitted] = {}  # the distinct kept answers of the current revision
        self._selections: OrderedDict[tuple[int, tuple[str, ...]], Selection] = OrderedDict()
        self._positions_held = 0
        self._compiling = asyncio.Lock()
        self._next_read: asyncio.Future[tuple[int, ...]] | None = None  # a counters read not started yet
        self._reading: asyncio.Task[None] | None = None  # the counters read under way

    async def _fresh_revisions(self) -> tuple[int, ...]:
        """Return both counters, read by a statement that starts after this call; concurrent callers share it.

        A caller never gets a read that began before it called (a change committed before a request is always
        seen by it), yet N concurrent requests cost at most two reads, not N.
        """
        answer = self._next_read
        if answer is None:
            answer = self._next_read = asyncio.get_running_loop().create_future()
            if self._reading is None:
                self._start_read()
        return await asyncio.shield(answer)

    def _start_read(self) -> None:
        answer, self._next_read = self._next_read, None
        assert answer is not None
        self._reading = asyncio.get_running_loop().create_task(self._read_counters(answer))

    async def _read_counters(self, answer: asyncio.Future[tuple[int, ...]]) -> None:
        try:
            answer.set_result(await self._store.revisions(_REVISIONS))
        except Exception as exc:  # every caller waiting on this read gets its error
            answer.set_exception(exc)
            answer.exception()  # retrieved here: a read nobody awaits any more must not log "never retrieved"
        except BaseException:
            answer.cancel()
            raise
        finally:
            self._reading = None
            if self._next_read is not None:
                self._start_read()

    async def _definitions(self, tx: Transaction) -> tuple[int, list[CompiledDefinition], int]:
        """Return the offers revision with its compiled definitions, and the assets revision (one statement)."""
        revision, assets_revision = await read_revisions(tx.connection, _REVISIONS)
        if self._cached is not None and self._cached[0] == revision:
            return revision, self._cached[1], assets_revision
        async with self._compiling:  # one request compiles a revision; the others wait and reuse it
            if self._cached is not None and self._cached[0] == revision:
                return revision, self._cached[1], assets_revision
            return revision, await self._compile(tx, revision), assets_revision

    async def _compile(self, tx: Transaction, revision: int) -> list[CompiledDefinition]:
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
        # Many definitions share a few policies: fingerprint and compile each policy once, not per definition.
        fingerprints = {pid: fingerprint(p) for pid, p in parsed.items()}
        time_dependent = {pid: policies.compile_policy(p, _REGISTRY).time_dependent for pid, p in parsed.items()}
        compiled = [
            CompiledDefinition(
                d,
                access,
                contract,
                fingerprints[d.contract_policy_id],
                access_time_dependent=time_dependent[d.access_policy_id],
            )
            for d in definitions
            if (access := parsed.get(d.access_policy_id)) is not None
            and (contract := parsed.get(d.contract_policy_id)) is not None
        ]
        self._cached = (revision, compiled)
        self._by_id = {d.definition.id: d for d in compiled}
        self._decisions.clear()
        self._answers.clear()
        self._selections.clear()
        self._positions_held = 0
        return compiled

    def _selection(self, revision: int, permitted: Permitted) -> Selection:
        """Return the selection of these permitted definitions (made once per offers revision)."""
        # The revision is part of the key: a request still holding older definitions never serves newer ones.
        key = (revision, permitted.ids)
        found = self._selections.get(key)
        if found is None:
            chosen = permitted.definitions
            found = Selection(chosen, DefinitionIndex(chosen), [d.selector for d in chosen])
            self._selections[key] = found
            if len(self._selections) > _MAX_SELECTIONS:
                self._drop_positions(self._selections.popitem(last=False)[1])
        self._selections.move_to_end(key)
        return found

    async def _positions(self, tx: Transaction, chosen: Selection, assets_revision: int) -> list[str] | None:
        """Return the ordered ids of the assets a selection selects, at this assets revision (None: too many)."""
        if chosen.assets_revision == assets_revision:
            return chosen.positions
        async with chosen.building:  # one request builds it; the others wait and reuse it
            if chosen.assets_revision != assets_revision:
                self._drop_positions(chosen)
                ids = await tx.assets.ids_matching_any(chosen.selectors)
                if len(ids) <= MAX_POSITIONS:
                    chosen.positions = ids
                    self._positions_held += len(ids)
                    self._evict(keep=chosen)
                chosen.assets_revision = assets_revision
        return chosen.positions

    def _drop_positions(self, chosen: Selection) -> None:
        if chosen.positions is not None:
            self._positions_held -= len(chosen.positions)
            chosen.positions = None
        chosen.assets_revision = -1
        chosen.pages.clear()

    def _evict(self, keep: Selection) -> None:
        """Drop the least recently used selections' position maps until what is held fits the bound."""
        for other in list(self._selections.values()):
            if self._positions_held <= MAX_POSITIONS:
                return
            if other is not keep:
                self._drop_positions(other)

    def _permitted(self, definitions: list[CompiledDefinition], participant: Participant) -> Permitted:
        """Return the definitions of the current revision whose access policy lets the participant see them.

        The decisions that read no clock are made once per requester and claims; when no access policy reads the
        clock, the whole answer (and the selection key) is kept, so a known requester costs one lookup.
        """
        context = None
        key = (participant.id, orjson.dumps(participant.claims, option=orjson.OPT_SORT_KEYS, default=str))
        # Only the current revision's list is decided from or into the kept decisions: a request still holding an
        # older list decides afresh, and a kept decision is never of another revision's definitions.
        current = self._cached is not None and definitions is self._cached[1]
        kept = self._decisions.get(key) if current else None
        if kept is None:
            context = policies.EvaluationContext(
                participant_id=participant.id, claims=participant.claims, now=datetime.now(UTC)
            )
            reusable = frozenset(
                d.definition.id
                for d in definitions
                if not d.access_time_dependent
                and policies.evaluate(d.access, "use", context, policies.Scope.CATALOG).permitted
            )
            fixed = None
            if not any(d.access_time_dependent for d in definitions):
                chosen = [d for d in definitions if d.definition.id in reusable]
                ids = tuple(d.definition.id for d in chosen)
                # Requesters fall into a few classes: each class's answer is held once, however many requesters.
                fixed = self._answers.get(ids) if current else None
                if fixed is None:
                    fixed = Permitted(chosen, ids)
                    if current and len(self._answers) < _MAX_SELECTIONS:
                        self._answers[ids] = fixed
                reusable = frozenset()  # the answer is the decision
            kept = (reusable, fixed)
            if current:
                if len(self._decisions) >= _MAX_CACHED_REQUESTERS:
                    self._decisions.pop(next(iter(self._decisions)))
                self._decisions[key] = kept
        reusable, fixed = kept
        if fixed is not None:
            return fixed
        if context is None:
            context = policies.EvaluationContext(
                participant_id=participant.id, claims=participant.claims, now=datetime.now(UTC)
            )
        chosen = [
            d
            for d in definitions
            if (
                policies.evaluate(d.access, "use", context, policies.Scope.CATALOG).permitted
                if d.access_time_dependent
                else d.definition.id in reusable
            )
        ]
        return Permitted(chosen, tuple(d.definition.id for d in chosen))

    @staticmethod
    def _permits(compiled: CompiledDefinition, participant: Participant) -> bool:
        """Tell whether one definition's access policy lets the participant see it (evaluated now, not kept)."""
        context = policies.EvaluationContext(
            participant_id=participant.id, claims=participant.claims, now=datetime.now(UTC)
        )
        return policies.evaluate(compiled.access, "use", context, policies.Scope.CATALOG).permitted

    def _catalog(self, datasets: tuple[Dataset, ...]) -> Catalog:
        return Catalog(id=self._catalog_id, participant_id=self.participant_id, service=self.service, datasets=datasets)

    def _datasets(self, assets: list[Asset], index: DefinitionIndex) -> tuple[Dataset, ...]:
        return tuple(d for a in assets if (d := self._dataset(a, index)) is not None)

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
        if not where and self._cached is not None:
            # A kept page needs no transaction: only the counters, read by a statement that began after this call.
            revision, assets_revision = await self._fresh_revisions()
            cached_definitions = self._cached
            if cached_definitions is not None and cached_definitions[0] == revision:
                chosen = self._selection(revision, self._permitted(cached_definitions[1], participant))
                positions = chosen.positions
                if positions is not None and chosen.assets_revision == assets_revision:
                    start = offset if after is None else bisect.bisect_right(positions, after) + offset
                    key = (assets_revision, start, limit)
                    kept = chosen.pages.get(key)
                    if kept is not None:
                        chosen.pages.move_to_end(key)
                        catalog, last_key, memo = kept
                        has_more = start + limit < len(positions)
                        return CatalogPage(catalog, offset, limit, has_more=has_more, last_key=last_key, memo=memo)
        async with self._store.read() as tx:
            revision, definitions, assets_revision = await self._definitions(tx)
            chosen = self._selection(revision, self._permitted(definitions, participant))
            positions = None if where else await self._positions(tx, chosen, assets_revision)
            if positions is None:
                assets = await tx.assets.select_any(chosen.selectors, offset, limit + 1, after=after, where=where)
                has_more = len(assets) > limit
                assets = assets[:limit]
            else:
                start = offset if after is None else bisect.bisect_right(positions, after) + offset
                has_more = start + limit < len(positions)
                key = (assets_revision, start, limit)
                cached = chosen.pages.get(key)
                if cached is None:
                    page = positions[start : start + limit]
                    # Read in the same transaction as the revisions: a page is of the map's snapshot (SQLite) or
                    # newer (an asset deleted since is left out; one changed since is offered as it is now).
                    assets = await tx.assets.get_ordered(page)
                    cached = (self._catalog(self._datasets(assets, chosen.index)), page[-1] if page else None, {})
                    chosen.pages[key] = cached
                    if len(chosen.pages) > _MAX_PAGES:
                        chosen.pages.popitem(last=False)
                chosen.pages.move_to_end(key)
                catalog, last_key, memo = cached
                return CatalogPage(catalog, offset, limit, has_more=has_more, last_key=last_key, memo=memo)
        catalog = self._catalog(self._datasets(assets, chosen.index))
        last_key = assets[-1].id if assets else None
        return CatalogPage(catalog, offset, limit, has_more=has_more, last_key=last_key)

    async def dataset(self, participant: Participant, dataset_id: str) -> Dataset:
        """Return one dataset this participant may see; NotFound otherwise (never say it exists)."""
        async with self._store.read() as tx:
            revision, definitions, _ = await self._definitions(tx)
            chosen = self._selection(revision, self._permitted(definitions, participant))
            asset = await tx.assets.get(dataset_id)
        found = self._dataset(asset, chosen.index) if asset is not None else None
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
            await self._definitions(tx)
            definitions = self._by_id
            asset = await tx.assets.get(asset_id)
        compiled = definitions.get(definition_id)
        if compiled is None or asset is None or fingerprint not in (None, compiled.fingerprint):
            raise NotFound(f"offer {offer!r} is not (or no longer) offered")
        if not selection.matches(asset, compiled.selector) or not self._permits(compiled, participant):
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
