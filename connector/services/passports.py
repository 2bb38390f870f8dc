"""Battery passports stored by the node: create, update, history, soft delete, bulk import, views, datasets.

Every change is a new version (the old ones stay, in `passport_versions`); storing the same content
again changes nothing, which is also what makes a bulk import safe to run twice or to resume. Views are
computed from the stored node JSON for the access levels a reader holds (`connector.domain.passport`):
the public view at a stable URL for anyone, the others only through the data plane under an agreement.
"""

from __future__ import annotations

import base64
import logging
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from contextlib import aclosing
from dataclasses import dataclass, field, replace
from typing import Any

import orjson

import policies
from connector import jsonld
from connector.domain import passport as model
from connector.domain.assets import BATTERY_PASSPORT, Asset, ContractDefinition, Criterion, DataAddress
from connector.domain.assets import PolicyDefinition as StoredPolicy
from connector.domain.errors import Conflict, InvalidInput, NotFound, Problem, Unprocessable
from connector.domain.json_input import JsonLimits
from connector.domain.passport import exports
from connector.services.passport_pipeline import (
    GARBAGE_EVERY,
    IMPORT_BATCH,
    Prepared,
    bulk_collection,
    collect_garbage,
    prepared,
)
from connector.services.passport_reading import load as load  # the service's, where other modules take it
from connector.services.passport_reading import node_json as node_json
from connector.services.passport_reading import write_fields
from connector.services.passport_sources import SourceRecord
from connector.services.recent import Recent
from connector.store import Store, Transaction
from connector.store.engine import EncodedJSON
from connector.store.passports import (
    Checkpoint,
    PassportFilter,
    PassportRecord,
    PassportVersion,
    PassportWrite,
    TakenId,
)
from connector.store.passports import digest as stored_digest
from connector.vocab import BPC

log = logging.getLogger("connector.passports")

EDC = "https://w3id.org/edc/v0.0.1/ns/"
# What a passport dataset conforms to: the node's plain-JSON passport (docs/passport-model.md).
PASSPORT_SCHEMA = BPC + "Passport"
FORMATS = ("node", "catenax", "idta")
LEVELS = tuple(level.value for level in policies.AccessLevel)
MAX_LIMIT = 1000
DEFAULT_LIMIT = 100
MAX_LISTED = 1000  # refusals, and records with warnings, an import summary lists


def now_ms() -> int:
    """Return the current time in milliseconds."""
    return int(time.time() * 1000)


def digest(data: Mapping[str, Any]) -> str:
    """Return the content digest of a passport's node JSON: SHA-256 of the bytes the store writes
    (`connector.store.passports.digest`; the key order is part of the content, as export keeps it)."""
    return stored_digest(data)


def encode_cursor(record: PassportRecord) -> str:
    """Return an opaque keyset cursor that continues after a record."""
    return base64.urlsafe_b64encode(f"{record.updated_at}:{record.id}".encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[int, str]:
    """Read a cursor from `encode_cursor`; a broken one is a 400."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        at, _, last = raw.partition(":")
        return int(at), last
    except (ValueError, UnicodeDecodeError) as exc:
        raise InvalidInput("cursor is not one this node issued", [Problem("invalid cursor", "cursor", cursor)]) from exc


def levels_of(granted: Iterable[str]) -> frozenset[str]:
    """Return the valid reader levels among `granted`, always with public."""
    return frozenset({policies.AccessLevel.PUBLIC.value, *(g for g in granted if g in LEVELS)})


def record_of(reading: model.Reading) -> PassportRecord:
    """Return the store record of a validated passport, as `load` read it."""
    passport = reading.passport
    data = node_json(passport)
    category = passport.category
    return PassportRecord(
        id=passport.passport_id,
        battery_id=passport.battery_id,
        model_id=passport.model_id,
        manufacturer_id=passport.manufacturer_id,
        category=getattr(category, "value", category) if category is not None else None,
        data=data,
        digest=digest(data),
        source_format=reading.format,
    )


def write_of_reading(reading: model.Reading) -> PassportWrite:
    """Return what storing a validated passport writes, as `record_of` would make it: its node JSON is
    encoded once, and the digest is of those bytes (what a bulk import's worker process hands over)."""
    fields = write_fields(reading)
    return PassportWrite(*fields[:5], EncodedJSON(fields[5].decode()), fields[6], fields[7])


def warnings_json(warnings: Iterable[tuple[str, str]]) -> list[dict[str, str]]:
    """Return a reading's warnings as the API and the CLI show them: each with its path and message."""
    return [{"path": path, "message": message} for path, message in warnings]


def version_json(item: PassportVersion) -> dict[str, Any]:
    """Return one entry of a passport's history as the API and the CLI show it."""
    return {
        "version": item.version,
        "recordedAt": item.recorded_at,
        "deleted": item.deleted,
        "digest": item.digest,
        "sourceFormat": item.source_format,
        "changedBy": item.changed_by,
        "changes": item.changes,
        "passport": item.data,
    }


def render(data: Mapping[str, Any], levels: Iterable[str], fmt: str = "node") -> dict[str, Any]:
    """Return the view of stored node JSON for reader levels, in the node's shape or Catena-X's."""
    granted = levels_of(levels)
    if fmt == "node":
        return model.view_json(data, granted)  # stored data was validated when stored: no second pass
    if fmt == "catenax":
        return model.view_catenax(model.parse_passport(dict(data)), granted)
    raise InvalidInput(f"format {fmt!r} is not served; use node or catenax", [Problem("unsupported", "format", fmt)])


def export(data: Mapping[str, Any], fmt: str) -> dict[str, Any]:
    """Return a whole stored passport (every level) in a format: node, catenax or idta (422 when incomplete)."""
    if fmt == "node":
        return dict(data)
    if fmt not in exports.FORMATS:
        raise InvalidInput(
            f"format {fmt!r} is unknown; use one of {', '.join(FORMATS)}", [Problem("unknown", "format", fmt)]
        )
    try:
        return exports.export_document(model.parse_passport(dict(data)), fmt)
    except exports.ExportIncomplete as exc:
        raise Unprocessable(str(exc), [Problem(why, path) for path, why in exc.problems[:100]]) from exc


@dataclass(slots=True)
class ImportSummary:
    """What a bulk import did, in four counts that add up to the records read (the part before an
    interruption included); each refusal carries its position, where it came from, why, and every error.
    A record imported with warnings (what its reading tolerated) is listed in `warnings` the same way."""

    source: str | None
    resumed_from: int = 0
    new: int = 0
    changed: int = 0
    unchanged: int = 0
    refused: int = 0
    refusals: list[dict[str, Any]] = field(default_factory=list)
    warnings: list[dict[str, Any]] = field(default_factory=list)
    position: int = 0
    seconds: float = 0.0

    @property
    def read(self) -> int:
        """Return how many records the import has read and judged."""
        return self.new + self.changed + self.unchanged + self.refused

    def as_json(self) -> dict[str, Any]:
        """Return the summary as plain JSON (the import endpoint's answer, `connector passports import --json`)."""
        return {
            "source": self.source,
            "resumedFrom": self.resumed_from,
            "read": self.read,
            "new": self.new,
            "changed": self.changed,
            "unchanged": self.unchanged,
            "refused": self.refused,
            "refusals": self.refusals,
            "warnings": self.warnings,
            "seconds": round(self.seconds, 3),
        }


Progress = Callable[[ImportSummary], None]
PublishHook = Callable[[Transaction, Sequence[str], int], Awaitable[tuple[list[str], list[str], list[str]]]]


@dataclass(frozen=True, slots=True)
class Saved:
    """What a single write stored: the passport's current version, whether it changed anything, and the
    warnings of its reading (path, message)."""

    record: PassportRecord
    changed: bool
    warnings: list[tuple[str, str]]


@dataclass(frozen=True, slots=True)
class Published:
    """The datasets (assets), policies and contract definitions publishing created or updated."""

    assets: list[str]
    policies: list[str]
    contract_definitions: list[str]


def _duplicate(passport_id: str, first: TakenId) -> tuple[str, list[Problem]]:
    reason = (
        f"passport id {passport_id!r} appeared already at {first.place} (record {first.position}); "
        "a passport appears once in an import"
    )
    return reason, [Problem(reason)]


class _TakenIds:
    """The passport ids an import has taken: in the database for an import with a source key (it may be
    resumed, and may read millions of records), in memory for one request's body."""

    def __init__(self, source: str | None) -> None:
        self._source = source
        self._memory: dict[str, TakenId] = {}

    async def find(self, tx: Transaction, keys: Sequence[str]) -> dict[str, TakenId]:
        """Return which of the canonical ids `keys` are taken, and by which record."""
        if self._source is None:
            return {k: self._memory[k] for k in keys if k in self._memory}
        return await tx.passports.taken_ids(self._source, keys)

    async def add(self, tx: Transaction, taken: Sequence[TakenId]) -> None:
        """Record ids as taken, in the transaction that stores their records."""
        if self._source is None:
            self._memory.update((t.passport_id, t) for t in taken)
        else:
            await tx.passports.take_ids(self._source, taken)


class PassportService:
    """The node's passports."""

    def __init__(self, store: Store, public_url: str, cache_seconds: float = 1.0, cache_size: int = 4096) -> None:
        self._store = store
        self.public_base = public_url.rstrip("/") + "/passports/"
        # Passports read recently by the data plane and the public view, kept `cache_seconds`: this node
        # forgets a passport the moment it writes it; a write by another process (a replica, the import
        # command) is seen within cache_seconds.
        self._recent: Recent[str, PassportRecord | None] = Recent(cache_seconds, cache_size)
        # Serialised views by (content digest, reader level, format): the same content always renders the same.
        self._views: OrderedDict[tuple[str, str, str], bytes] = OrderedDict()
        self._views_size = cache_size
        # Called in publish's transaction with (tx, levels, at); each returns the (assets, policies, contract
        # definitions) it made. The registry publishes its DTR and submodel assets this way (services/registry.py).
        self.publish_hooks: list[PublishHook] = []

    def view_bytes(self, record: PassportRecord, level: str, fmt: str = "node") -> bytes:
        """Return the JSON of a passport's view for a reader level, serialised (kept for repeated reads)."""
        key = (record.digest, level, fmt)
        found = self._views.get(key)
        if found is None:
            found = orjson.dumps(render(record.data, {level}, fmt))
            self._views[key] = found
            while len(self._views) > self._views_size:
                self._views.popitem(last=False)
        return found

    def _forget(self, passport_ids: Iterable[str]) -> None:
        for passport_id in passport_ids:
            self._recent.forget(passport_id)

    def forget(self, passport_ids: Iterable[str]) -> None:
        """Forget what was read lately of passports another service changed (their lifecycle, say)."""
        self._forget(passport_ids)

    def envelope(self, record: PassportRecord) -> dict[str, Any]:
        """Return a stored passport as the API and the CLI show it: its columns and its node JSON."""
        return {
            "id": record.id,
            "version": record.version,
            "batteryId": record.battery_id,
            "modelId": record.model_id,
            "manufacturerId": record.manufacturer_id,
            "category": record.category,
            "sourceFormat": record.source_format,
            "createdAt": record.created_at,
            "updatedAt": record.updated_at,
            "deleted": record.deleted_at is not None,
            "publicUrl": self.public_url(record.id),
            "passport": record.data,
        }

    def public_url(self, passport_id: str) -> str:
        """Return the stable public URL of a passport (what its QR code points to)."""
        from urllib.parse import quote

        return self.public_base + quote(passport_id, safe="")

    # Single passports.

    async def create(self, document: Any) -> Saved:
        """Store a new passport; 409 when one with its id exists."""
        reading = load(document)
        record = record_of(reading)
        async with self._store.transaction() as tx:
            if await tx.passports.get(record.id) is not None:
                raise Conflict(f"passport {record.id!r} exists; update it with PUT")
            await tx.passports.put_many([record], now_ms())
            stored = await tx.passports.get(record.id)
        self._forget([record.id])
        assert stored is not None
        return Saved(stored, True, reading.warnings)

    async def update(self, passport_id: str, document: Any) -> Saved:
        """Store a new version of an existing passport (unchanged content keeps the version)."""
        reading = load(document)
        record = record_of(reading)
        if record.id != passport_id:
            raise InvalidInput(
                f"the passport's id {record.id!r} differs from the id in the path {passport_id!r}",
                [Problem("differs from the path", "passport_id", record.id)],
            )
        async with self._store.transaction() as tx:
            if await tx.passports.get(passport_id) is None:
                raise NotFound(f"no passport {passport_id!r}")
            (outcome,) = await tx.passports.put_many([record], now_ms())
            stored = await tx.passports.get(passport_id)
        self._forget([passport_id])
        assert stored is not None
        return Saved(stored, outcome != "unchanged", reading.warnings)

    async def get(self, passport_id: str) -> PassportRecord:
        """Return a passport's current version."""
        async with self._store.read() as tx:
            found = await tx.passports.get(passport_id)
        if found is None:
            raise NotFound(f"no passport {passport_id!r}")
        return found

    async def current(self, passport_id: str) -> PassportRecord | None:
        """Return a passport's current version (None when absent or deleted), from memory when read lately.

        For readers that may see another process's write up to the cache's seconds late: the data plane
        and the public view. The management API reads the database every time (`get`).
        """

        async def read() -> PassportRecord | None:
            async with self._store.read() as tx:
                return await tx.passports.get(passport_id)

        return await self._recent.get(passport_id, read)

    async def history(self, passport_id: str) -> list[PassportVersion]:
        """Return every version of a passport (deleted ones too)."""
        async with self._store.read() as tx:
            versions = await tx.passports.history(passport_id)
        if not versions:
            raise NotFound(f"no passport {passport_id!r}")
        return versions

    async def delete(self, passport_id: str) -> None:
        """Mark a passport deleted; its history stays."""
        async with self._store.transaction() as tx:
            if not await tx.passports.delete(passport_id, now_ms()):
                raise NotFound(f"no passport {passport_id!r}")
        self._forget([passport_id])

    async def list(self, spec: PassportFilter) -> tuple[list[PassportRecord], str | None]:
        """Return a page of passports and the cursor of the next page (None at the end)."""
        limit = min(max(spec.limit, 1), MAX_LIMIT)
        async with self._store.read() as tx:
            found = await tx.passports.page(replace(spec, limit=limit + 1))
        more = len(found) > limit
        page = found[:limit]
        return page, encode_cursor(page[-1]) if more and page else None

    async def count(self) -> int:
        """Return how many passports are stored (deleted ones left out)."""
        async with self._store.read() as tx:
            return await tx.passports.count()

    # Bulk import.

    async def import_records(
        self,
        records: Iterable[SourceRecord],
        source: str | None = None,
        batch: int = IMPORT_BATCH,
        progress: Progress | None = None,
        start: int = 0,
        limits: JsonLimits | None = None,
        workers: int = 0,
    ) -> ImportSummary:
        """Import records in batches, one transaction each, with the source's checkpoint in the same one.

        A record that cannot be read or validated is refused with its reason; so is a record whose passport
        id (canonical form) an earlier record of the same import has taken, whatever the batch. With a
        `source` key, each batch commits its checkpoint and the ids it took, so a rerun after an
        interruption starts after the last committed record (`start` is where the caller began reading)
        and still knows those ids; without one (an import request) the ids are kept in memory.
        Records may come unparsed (`Source.records(parse=False)`, read within `limits`); with `workers`
        they are made ready in that many worker processes while this one stores (`passport_pipeline`).
        """
        with bulk_collection():
            return await self._import(records, source, batch, progress, start, limits or JsonLimits(), workers)

    async def _import(
        self,
        records: Iterable[SourceRecord],
        source: str | None,
        batch: int,
        progress: Progress | None,
        start: int,
        limits: JsonLimits,
        workers: int,
    ) -> ImportSummary:
        summary = ImportSummary(source=source, resumed_from=start, position=start)
        began = time.perf_counter()
        async with self._store.read() as tx:
            previous = await tx.passports.checkpoint(source) if source else None
        if previous is not None and previous.position == start:
            summary.new, summary.changed = previous.new, previous.changed
            summary.unchanged, summary.refused = previous.unchanged, previous.refused
        taken = _TakenIds(source)
        pending: dict[str, Prepared] = {}  # by canonical id
        refusals: list[tuple[Prepared, str, list[Problem]]] = []
        collected = start  # where the cycles the import left were last collected

        async def flush() -> None:
            async with self._store.transaction() as tx:
                earlier = await taken.find(tx, list(pending))
                storing = [item for key, item in pending.items() if key not in earlier]
                for key in earlier.keys() & pending.keys():
                    item = pending[key]
                    assert item.write is not None
                    refusals.append((item, *_duplicate(item.write.id, earlier[key])))
                writes = [item.write for item in storing if item.write is not None]
                outcomes = await tx.passports.put_many(writes, now_ms()) if writes else []
                await taken.add(tx, [TakenId(item.key, item.position, item.where) for item in storing if item.key])
                for outcome in outcomes:
                    if outcome == "created":
                        summary.new += 1
                    elif outcome == "updated":
                        summary.changed += 1
                    else:
                        summary.unchanged += 1
                for item, reason, problems in sorted(refusals, key=lambda r: r[0].position):
                    self._refuse(summary, item, reason, problems)
                for item in storing:
                    self._warn(summary, item, item.warnings)
                if source:
                    await tx.passports.save_checkpoint(
                        Checkpoint(
                            source, summary.position, summary.new, summary.changed, summary.unchanged, summary.refused
                        ),
                        now_ms(),
                    )
            self._forget(item.write.id for item in pending.values() if item.write is not None)
            pending.clear()
            refusals.clear()
            nonlocal collected
            if summary.position - collected >= GARBAGE_EVERY:
                collect_garbage()
                collected = summary.position
            summary.seconds = time.perf_counter() - began
            if progress is not None:
                progress(summary)

        async with aclosing(prepared(records, limits, workers)) as ready:
            async for item in ready:
                summary.position = item.position + 1
                if item.reason is not None:
                    refusals.append((item, item.reason, item.problems))
                elif item.key is not None and item.write is not None:
                    first = pending.get(item.key)
                    if first is not None:
                        refusals.append(
                            (item, *_duplicate(item.write.id, TakenId(item.key, first.position, first.where)))
                        )
                    else:
                        pending[item.key] = item
                if summary.position % batch == 0:
                    await flush()
        await flush()
        if source:
            async with self._store.transaction() as tx:
                await tx.passports.forget_checkpoint(source)
        summary.seconds = time.perf_counter() - began
        log.info(
            "passports imported",
            extra={
                "import_source": source,
                "import_read": summary.read,
                "import_new": summary.new,
                "import_changed": summary.changed,
                "import_unchanged": summary.unchanged,
                "import_refused": summary.refused,
            },
        )
        return summary

    @staticmethod
    def _refuse(summary: ImportSummary, item: Prepared, reason: str, problems: Sequence[Problem]) -> None:
        summary.refused += 1
        if len(summary.refusals) < MAX_LISTED:
            summary.refusals.append(
                {
                    "position": item.position,
                    "where": item.where,
                    "reason": reason,
                    "errors": [{"path": p.path, "message": p.message} for p in problems],
                }
            )

    @staticmethod
    def _warn(summary: ImportSummary, item: Prepared, warnings: Sequence[tuple[str, str]]) -> None:
        if warnings and len(summary.warnings) < MAX_LISTED:
            summary.warnings.append(
                {"position": item.position, "where": item.where, "warnings": warnings_json(warnings)}
            )

    async def resume_position(self, source: str) -> int:
        """Return where an interrupted import of `source` stopped (0 when it never ran or finished)."""
        async with self._store.read() as tx:
            found = await tx.passports.checkpoint(source)
        return found.position if found is not None else 0

    async def forget_import(self, source: str) -> None:
        """Forget an interrupted import, so the next run starts from the beginning."""
        async with self._store.transaction() as tx:
            await tx.passports.forget_checkpoint(source)

    # Datasets.

    async def publish(self, model_ids: Sequence[str] | None = None, levels: Sequence[str] = LEVELS) -> Published:
        """Offer the stored passports as datasets: one per battery model and access level, each under the
        policy template of its level, with one contract definition per level. Existing ones are kept."""
        for level in levels:
            if level not in LEVELS:
                raise InvalidInput(f"access level {level!r} is unknown; use {', '.join(LEVELS)}")
        if model_ids is None:
            async with self._store.read() as tx:
                model_ids = await tx.passports.model_ids()
        at = now_ms()
        made_assets: list[str] = []
        made_policies: list[str] = []
        made_definitions: list[str] = []
        async with self._store.transaction() as tx:
            for level in levels:
                policy_id = f"passport-{level.replace('_', '-')}"
                if await tx.policies.get(policy_id) is None:
                    expanded = jsonld.single_node(
                        jsonld.expand(policies.templates.template_json(level, form="edc")), "policy"
                    )
                    await tx.policies.add(StoredPolicy(policy_id, expanded, {}, at))
                    made_policies.append(policy_id)
                for model_id in model_ids:
                    asset_id = f"passports-{model_id}-{level.replace('_', '-')}"
                    if await tx.assets.get(asset_id) is not None:
                        continue
                    category, chemistry = await tx.passports.model_facts(model_id)
                    # Category and chemistry let a federated catalog's search find the dataset (docs/federation.md).
                    facts = {
                        key: value
                        for key, value in ((BPC + "batteryCategory", category), (BPC + "chemistry", chemistry))
                        if value
                    }
                    await tx.assets.add(
                        Asset(
                            id=asset_id,
                            properties={
                                EDC + "id": asset_id,
                                EDC + "name": f"Battery passports of model {model_id}, {level.replace('_', ' ')} view",
                                EDC + "contenttype": "application/json",
                                EDC + "passportAccessLevel": level,
                                BPC + "batteryModel": model_id,
                                "http://purl.org/dc/terms/conformsTo": PASSPORT_SCHEMA,
                                **facts,
                            },
                            private_properties={},
                            data_address=DataAddress(
                                BATTERY_PASSPORT, {"accessLevel": level, "batteryModel": model_id}
                            ),
                            created_at=at,
                        )
                    )
                    made_assets.append(asset_id)
                definition_id = f"passports-{level.replace('_', '-')}"
                if await tx.contracts.get(definition_id) is None:
                    selector = (Criterion(EDC + "passportAccessLevel", "=", level),)
                    await tx.contracts.add(ContractDefinition(definition_id, policy_id, policy_id, selector, {}, at))
                    made_definitions.append(definition_id)
            for hook in self.publish_hooks:
                assets, made, definitions = await hook(tx, levels, at)
                made_assets += assets
                made_policies += made
                made_definitions += definitions
        return Published(made_assets, made_policies, made_definitions)
