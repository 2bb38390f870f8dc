"""The federated catalog: participants to crawl, crawls that replace a participant's entry at once, and search.

A crawl reads a participant's whole DSP catalog (every page, nested catalogs included) and the public views of its
passports, within a time budget and size limits, then replaces the participant's entry in one transaction, so a
reader sees the previous crawl's entry or this one's, never a mix. A failed crawl keeps the last good entry, marked
stale, until the retention setting expires it. Each crawl has a run key, unique in the store: the scheduled crawl of
a participant in a period is done once across replicas (docs/federation.md).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlencode, urlsplit

from connector import jsonld
from connector.domain import federation as fed
from connector.domain import selection
from connector.domain.assets import Criterion
from connector.domain.errors import (
    AlreadyExists,
    ConnectorError,
    InvalidInput,
    NotFound,
    PeerError,
    PeerTimeout,
    Problem,
)
from connector.domain.query import QuerySpec, SortOrder
from connector.dsp.catalog import (
    dataset_fields,
    next_page,
    parse_catalog_entries,
    parse_plain_catalog,
    render_catalog_request,
)
from connector.services.access import Access, Partner
from connector.services.dsp_client import DspClient
from connector.store import Store
from connector.transport.peer import PeerClient

log = logging.getLogger("connector.federation")


def now_ms() -> int:
    """Return the time in epoch milliseconds."""
    return int(time.time() * 1000)


@dataclass(frozen=True, slots=True)
class FederationConfig:
    """How crawls run (the CONNECTOR_FEDERATION_* settings)."""

    interval_seconds: float = 3600.0  # 0: no scheduled crawls (manual ones only)
    concurrency: int = 8
    crawl_timeout_seconds: float = 120.0
    page_size: int = 1000
    max_datasets: int = 100_000
    max_passports: int = 100_000
    retention_seconds: float = 7 * 86_400.0
    participants_file: Path | None = None

    @property
    def interval_ms(self) -> int:
        """The crawl period in milliseconds."""
        return int(self.interval_seconds * 1000)


class TooLarge(PeerError):
    """A participant's catalog or passports exceed a size limit."""


def public_root(address: str) -> str:
    """Return where a node's public surface is: its DSP address without `/api/dsp/...` (or the address's origin)."""
    head, found, _ = address.partition("/api/dsp")
    if found:
        return head
    parts = urlsplit(address)
    return f"{parts.scheme}://{parts.netloc}"


class FederationService:
    """Manages the participants and their crawls; answers searches."""

    def __init__(
        self,
        store: Store,
        access: Access,
        dsp: DspClient,
        peer: PeerClient,
        config: FederationConfig,
        clock: Callable[[], int] = now_ms,
    ) -> None:
        self._store = store
        self._access = access
        self._dsp = dsp
        self._peer = peer
        self.config = config
        self._clock = clock
        self._running: dict[str, asyncio.Task[fed.Crawl | None]] = {}
        self.listeners: list[Callable[[], Awaitable[None] | None]] = []  # told when an entry changed
        self.crawl_observers: list[Callable[[fed.Crawl], None]] = []  # told of each crawl that ended (metrics)

    # Participants.

    async def add(self, name: Any, origin: str = "api") -> fed.Participant:
        """Add a participant named by its DID, BPN or DSP address (AlreadyExists when it is there)."""
        if not isinstance(name, str) or not name.strip():
            raise InvalidInput(
                "participant is required: a DID, a BPN or a DSP address", [Problem("missing", "participant")]
            )
        name = name.strip().rstrip("/")
        if len(name) > 1000:
            raise InvalidInput(
                "participant is longer than 1000 characters", [Problem("too long", "participant", name[:200])]
            )
        if not (name.startswith(("did:", "http://", "https://")) or name.upper().startswith("BPNL")):
            raise InvalidInput(
                f"participant {name[:200]!r} is neither a DID, a BPN nor an http(s) DSP address",
                [Problem("not a DID, BPN or URL", "participant", name[:200])],
            )
        participant = fed.Participant(fed.participant_id(name), name, origin, self._clock())
        async with self._store.transaction() as tx:
            await tx.federation.add(participant)
        return participant

    async def ensure(self, name: str, origin: str) -> None:
        """Add a participant unless it is there."""
        async with self._store.read() as tx:
            if await tx.federation.get(fed.participant_id(name)) is not None:
                return
        with contextlib.suppress(AlreadyExists):  # added by another replica meanwhile
            await self.add(name, origin)

    async def load_file(self) -> int:
        """Add the participants the participants file names (one per line; `#` starts a comment)."""
        path = self.config.participants_file
        if path is None:
            return 0
        try:
            lines = path.read_text(encoding="utf-8").splitlines()
        except OSError as exc:
            raise InvalidInput(
                f"CONNECTOR_FEDERATION_PARTICIPANTS_FILE {path}: cannot be read ({exc.strerror})"
            ) from None
        names = [line.split("#", 1)[0].strip() for line in lines]
        for name in (n for n in names if n):
            await self.ensure(name, "file")
        return len([n for n in names if n])

    async def get(self, participant_id: str) -> fed.Participant:
        """Return a participant (NotFound when there is none)."""
        async with self._store.read() as tx:
            found = await tx.federation.get(participant_id)
        if found is None:
            raise NotFound(f"no participant {participant_id!r} is crawled")
        return found

    async def participants(self) -> list[fed.Participant]:
        """Return every participant."""
        async with self._store.read() as tx:
            return await tx.federation.all()

    async def crawls(self, participant_id: str) -> list[fed.Crawl]:
        """Return a participant's latest crawls."""
        async with self._store.read() as tx:
            return await tx.federation.crawls(participant_id)

    async def remove(self, participant_id: str) -> None:
        """Stop crawling a participant and drop its entry (NotFound when there is none)."""
        async with self._store.transaction() as tx:
            if not await tx.federation.remove(participant_id):
                raise NotFound(f"no participant {participant_id!r} is crawled")
        await self._changed()

    # Crawls.

    async def crawl_now(self, participant_id: str) -> fed.Crawl:
        """Crawl one participant now (a crawl of it under way is awaited instead of starting another)."""
        participant = await self.get(participant_id)
        running = self._running.get(participant_id)
        if running is not None:
            done = await asyncio.shield(running)
            if done is not None:
                return done
        done = await self._start(participant, f"{participant.id}:now:{uuid.uuid4().hex}")
        if done is None:  # a fresh run key is always claimed: the participant was removed meanwhile
            raise NotFound(f"participant {participant_id!r} was removed while it was crawled")
        return done

    async def crawl_due(self) -> list[fed.Crawl]:
        """Crawl every participant whose crawl of the current period has not run (on this or another replica)."""
        if self.config.interval_ms <= 0:
            return []
        period = self._clock() // self.config.interval_ms
        participants = await self.participants()
        if not participants:
            return []
        limit = asyncio.Semaphore(self.config.concurrency)

        async def one(participant: fed.Participant) -> fed.Crawl | None:
            async with limit:
                return await self._start(participant, f"{participant.id}:period:{period}")

        done = await asyncio.gather(*(one(p) for p in participants))
        await self.expire()
        return [d for d in done if d is not None]

    async def _start(self, participant: fed.Participant, run_key: str) -> fed.Crawl | None:
        task = asyncio.ensure_future(self._crawl(participant, run_key))
        task.add_done_callback(self._observe)
        self._running[participant.id] = task
        try:
            return await asyncio.shield(task)
        finally:
            if self._running.get(participant.id) is task:
                del self._running[participant.id]

    async def _crawl(self, participant: fed.Participant, run_key: str) -> fed.Crawl | None:
        started = self._clock()
        async with self._store.transaction() as tx:
            if not await tx.federation.claim(run_key, participant.id, started):
                return None
        try:
            async with asyncio.timeout(self.config.crawl_timeout_seconds):
                partner = await self._access.partner(participant.name)
                datasets = await self._datasets(partner)
                passports = await self._passports(partner)
        except TimeoutError:
            return await self._failed(
                participant, run_key, started, f"the crawl took longer than {self.config.crawl_timeout_seconds:g} s"
            )
        except ConnectorError as exc:
            return await self._failed(participant, run_key, started, exc.message)
        at = self._clock()
        async with self._store.transaction() as tx:
            before = await tx.federation.dataset_ids(participant.id)
            if await tx.federation.get(participant.id) is None:
                return None  # removed while it was crawled
            await tx.federation.replace(participant.id, partner.did, partner.address, at, datasets, passports)
            after = {d.dataset_id for d in datasets}
            appeared, disappeared = sorted(after - before), sorted(before - after)
            crawl = fed.Crawl(
                run_key,
                participant.id,
                started,
                "succeeded",
                finished_at=at,
                datasets=len(datasets),
                appeared=tuple(appeared[: fed.MAX_CHANGES_LISTED]),
                disappeared=tuple(disappeared[: fed.MAX_CHANGES_LISTED]),
                appeared_count=len(appeared),
                disappeared_count=len(disappeared),
            )
            await tx.federation.finish(crawl)
        log.info(
            "participant crawled",
            extra={
                "participant": participant.name,
                "datasets": len(datasets),
                "passports": len(passports),
                "appeared": len(appeared),
                "disappeared": len(disappeared),
            },
        )
        await self._changed()
        return crawl

    def _observe(self, task: asyncio.Task[fed.Crawl | None]) -> None:
        crawl = task.result() if not task.cancelled() and task.exception() is None else None
        if crawl is not None:
            for observer in self.crawl_observers:
                observer(crawl)

    async def _failed(self, participant: fed.Participant, run_key: str, started: int, error: str) -> fed.Crawl:
        at = self._clock()
        crawl = fed.Crawl(run_key, participant.id, started, "failed", finished_at=at, error=error[:2000])
        async with self._store.transaction() as tx:
            await tx.federation.attempted(participant.id, at, error[:2000])
            await tx.federation.finish(crawl)
        log.warning("participant crawl failed", extra={"participant": participant.name, "error": error[:500]})
        return crawl

    async def _datasets(self, partner: Partner) -> list[fed.DatasetEntry]:
        """Read every page of the partner's catalog, following rel="next" links."""
        url: str | None = partner.address.rstrip("/") + "/catalog/request"
        message = render_catalog_request((0, self.config.page_size))
        seen_urls: set[str] = set()
        found: dict[str, fed.DatasetEntry] = {}
        while url is not None and url not in seen_urls:
            seen_urls.add(url)
            answer = await self._dsp.post(url, "", partner.did, message)
            plain = parse_plain_catalog(answer.body)
            if plain is not None:
                page_participant, items = plain
                for provider, item in items:
                    found[item.id] = fed.DatasetEntry(
                        dataset_id=item.id,
                        provider=provider or page_participant or partner.did,
                        document=item.document,
                        **item.fields,
                    )
                self._check_size(partner, len(found))
                url = next_page(answer.headers.get("Link"))
                message = {"@context": message["@context"], "@type": "CatalogRequestMessage"}
                continue
            entries = parse_catalog_entries(answer.body)
            for provider, node in entries.datasets:
                dataset_id = node.get("@id")
                if not isinstance(dataset_id, str):
                    continue
                found[dataset_id] = fed.DatasetEntry(
                    dataset_id=dataset_id,
                    provider=provider or entries.participant or partner.did,
                    document=node,
                    **dataset_fields(node),
                )
            self._check_size(partner, len(found))
            url = next_page(answer.headers.get("Link"))
            message = {"@context": message["@context"], "@type": "CatalogRequestMessage"}
        return list(found.values())

    def _check_size(self, partner: Partner, count: int) -> None:
        if count > self.config.max_datasets:
            raise TooLarge(
                f"{partner.address} offers more than {self.config.max_datasets} datasets "
                "(CONNECTOR_FEDERATION_MAX_DATASETS)"
            )

    async def _passports(self, partner: Partner) -> list[tuple[str, dict[str, Any]]]:
        """Read the public views of the partner's passports (none when it serves no listing)."""
        root = public_root(partner.address)
        cursor: str | None = None
        found: dict[str, dict[str, Any]] = {}
        while True:
            query = {"limit": "1000", **({"cursor": cursor} if cursor else {})}
            answer = await self._peer.request("GET", f"{root}/passports?{urlencode(query)}")
            if answer.status in (404, 405) and not found:
                return []
            if not answer.ok or not isinstance(answer.body, dict):
                raise PeerError(f"{root}/passports answered {answer.status} without a passport listing")
            items = answer.body.get("passports")
            for item in items if isinstance(items, list) else []:
                identity = item.get("identity") if isinstance(item, dict) else None
                passport = identity.get("passport_id") if isinstance(identity, dict) else None
                if isinstance(passport, str):
                    found[passport] = item
            if len(found) > self.config.max_passports:
                raise TooLarge(
                    f"{root} serves more than {self.config.max_passports} passports "
                    "(CONNECTOR_FEDERATION_MAX_PASSPORTS)"
                )
            following = answer.body.get("next")
            if not isinstance(following, str) or not following or following == cursor:
                return list(found.items())
            cursor = following

    async def expire(self) -> int:
        """Drop the entries of participants without a good crawl for longer than the retention; return how many."""
        now = self._clock()
        limit = int(self.config.retention_seconds * 1000)
        expired = 0
        for participant in await self.participants():
            last = participant.last_success_at
            if last is None or participant.expired_at is not None or now - last <= limit:
                continue
            async with self._store.transaction() as tx:
                await tx.federation.expire(participant.id, now)
            expired += 1
        if expired:
            await self._changed()
        async with self._store.transaction() as tx:
            await tx.federation.prune_crawls(now - max(limit, 30 * 86_400_000))
        return expired

    async def _changed(self) -> None:
        for listener in self.listeners:
            result = listener()
            if result is not None:
                await result

    # Search.

    async def search(self, spec: fed.DatasetFilter) -> tuple[list[fed.FoundDataset], str | None]:
        """Return a page of datasets a filter selects and the cursor of the next page (None on the last)."""
        if spec.asset_type is not None:
            spec = _replace(spec, asset_type=fed.asset_type_iri(spec.asset_type))
        async with self._store.read() as tx:
            found = await tx.federation.search(_replace(spec, limit=spec.limit + 1))
        following = fed.encode_cursor(found[spec.limit - 1]) if len(found) > spec.limit else None
        return found[: spec.limit], following

    async def catalogs(self, spec: QuerySpec) -> list[tuple[fed.Participant, list[fed.DatasetEntry]]]:
        """Answer EDC's federated catalog query: the catalogs of the good entries, with the datasets it selects.

        The filter applies to each dataset: criteria on the dataset id and the indexed fields run in the store, any
        other is evaluated over the stored dataset (at most `fed.MAX_EVALUATED` of them a query, else the query is
        refused naming the criterion). With a filter, a catalog with no dataset selected is left out. `offset` and
        `limit` page the catalogs; `sortField` orders the datasets of each catalog (by dataset id otherwise).
        """
        indexed, evaluated = _split_criteria(spec.filter_expression)
        participants = [p for p in await self.participants() if p.expired_at is None and p.last_success_at is not None]
        answer: list[tuple[fed.Participant, list[fed.DatasetEntry]]] = []
        skipped = evaluations = 0
        for participant in participants:
            if len(answer) >= spec.limit:
                break
            entries: list[fed.DatasetEntry] = []
            after: tuple[str, str] | None = None
            while True:
                found, following = await self.search(
                    fed.DatasetFilter(
                        participant_ids=(participant.id,), criteria=indexed, after=after, limit=fed.MAX_SEARCH_LIMIT
                    )
                )
                for item in found:
                    if evaluated:
                        evaluations += 1
                        if evaluations > fed.MAX_EVALUATED:
                            path, criterion = evaluated[0]
                            raise InvalidInput(
                                f"{path}: {criterion.operand_left!r} is not an indexed field, and more than "
                                f"{fed.MAX_EVALUATED} datasets would have to be read to evaluate it: add a criterion "
                                "on an indexed field (id, dct:type, bpc:batteryCategory, bpc:chemistry, "
                                "bpc:batteryModel, passportAccessLevel, dspace:participantId) (docs/federation.md)",
                                [Problem("too many datasets to evaluate", path, criterion.operand_left)],
                            )
                        node = _expanded(item.entry.document)
                        if not all(selection.holds_in(item.entry.dataset_id, node, c) for _, c in evaluated):
                            continue
                    entries.append(item.entry)
                if following is None:
                    break
                after = fed.decode_cursor(following)
            if spec.filter_expression and not entries:
                continue
            if skipped < spec.offset:
                skipped += 1
                continue
            if spec.sort_field is not None:
                entries = _sorted(entries, spec.sort_field, spec.sort_order is SortOrder.DESC)
            answer.append((participant, entries))
        return answer

    def status(self, participant: fed.Participant) -> dict[str, Any]:
        """Return a participant's crawl status as the API shows it."""
        now = self._clock()
        stale = participant.stale(now, self.config.interval_ms)
        return {
            "id": participant.id,
            "participant": participant.name,
            "origin": participant.origin,
            "did": participant.did,
            "dspAddress": participant.address,
            "addedAt": participant.added_at,
            "lastAttemptAt": participant.last_attempt_at,
            "lastSuccessAt": participant.last_success_at,
            "datasets": participant.datasets,
            "passports": participant.passports,
            "stale": stale,
            "ageSeconds": None if participant.last_success_at is None else (now - participant.last_success_at) // 1000,
            "expiredAt": participant.expired_at,
            "lastError": participant.last_error,
        }


def _split_criteria(
    criteria: tuple[Criterion, ...],
) -> tuple[tuple[Criterion, ...], list[tuple[str, Criterion]]]:
    """Split QuerySpec criteria into those the store answers (indexed fields) and those read from the datasets."""
    indexed: list[Criterion] = []
    evaluated: list[tuple[str, Criterion]] = []
    for i, criterion in enumerate(criteria):
        path = f"filterExpression[{i}]"
        try:  # EDC's path syntax, `'dct:type'.'@id'`, names the property it is on
            left = selection.property_path(criterion.operand_left)
        except ValueError as exc:
            raise InvalidInput(
                f"{path}.operandLeft: {exc}", [Problem(str(exc), f"{path}.operandLeft", criterion.operand_left)]
            ) from None
        criterion = Criterion(left, criterion.operator, criterion.operand_right)
        if criterion.operand_left in selection.CREATED_KEYS:
            raise InvalidInput(
                f"{path}: crawled datasets have no createdAt to filter on",
                [Problem("unsupported field", f"{path}.operandLeft", criterion.operand_left)],
            )
        items = criterion.operand_right if isinstance(criterion.operand_right, list) else [criterion.operand_right]
        if criterion.operator != "in" and isinstance(criterion.operand_right, list):
            raise InvalidInput(
                f"{path}: operator {criterion.operator!r} compares with one value, not a list (use 'in')",
                [Problem("a list needs 'in'", f"{path}.operandRight", criterion.operand_right)],
            )
        for value in items:
            try:
                selection.single_text(value)
            except ValueError as exc:
                raise InvalidInput(f"{path}: {exc}", [Problem("not a scalar", f"{path}.operandRight", value)]) from None
        column = fed.criterion_column(criterion.operand_left)
        if column is None:
            evaluated.append((path, criterion))
            continue
        if column == "asset_type" and criterion.operator in ("=", "!=", "in"):
            # A short name (DigitalTwinRegistry) stands for its IRI, as in the dataset search.
            named = [fed.asset_type_iri(v) if isinstance(v, str) else v for v in items]
            criterion = Criterion(
                criterion.operand_left, criterion.operator, named if criterion.operator == "in" else named[0]
            )
        indexed.append(criterion)
    return tuple(indexed), evaluated


def _expanded(document: dict[str, Any]) -> dict[str, Any]:
    """Return a stored dataset as one expanded node (crawled plain pages keep their @context)."""
    if "@context" not in document:
        return document
    try:
        nodes = [n for n in jsonld.expand(document) if isinstance(n, dict)]
    except InvalidInput:
        return {}
    return nodes[0] if nodes else {}


def _sorted(entries: list[fed.DatasetEntry], field: str, descending: bool) -> list[fed.DatasetEntry]:
    """Order datasets by a field (an indexed one, or the first value of a property), then id; those without it last."""
    column = fed.criterion_column(field)
    keyed: list[tuple[str, fed.DatasetEntry]] = []
    missing: list[fed.DatasetEntry] = []
    for entry in entries:
        if column is not None:
            value = getattr(entry, column)
        else:
            texts = selection.scalar_texts(_expanded(entry.document).get(selection.normalise_key(field), []))
            value = texts[0][0] if texts else None
        if value is None:
            missing.append(entry)
        else:
            keyed.append((value, entry))
    keyed.sort(key=lambda pair: (pair[0], pair[1].dataset_id), reverse=descending)
    return [entry for _, entry in keyed] + missing


def _replace(spec: fed.DatasetFilter, **changes: Any) -> fed.DatasetFilter:
    from dataclasses import replace

    return replace(spec, **changes)


def crawl_json(crawl: fed.Crawl) -> dict[str, Any]:
    """Return a crawl as the API shows it."""
    return {
        "runKey": crawl.run_key,
        "participantId": crawl.participant_id,
        "startedAt": crawl.started_at,
        "finishedAt": crawl.finished_at,
        "outcome": crawl.outcome,
        "error": crawl.error,
        "datasets": crawl.datasets,
        "appeared": list(crawl.appeared),
        "disappeared": list(crawl.disappeared),
        "appearedCount": crawl.appeared_count,
        "disappearedCount": crawl.disappeared_count,
    }


__all__ = ["FederationConfig", "FederationService", "PeerTimeout", "crawl_json", "public_root"]
