"""The federated catalog's store: participants, their last good entry (datasets, public passports) and crawls."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import ColumnElement, and_, delete, exists, func, insert, or_, select, update
from sqlalchemy.engine import RowMapping
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.sql.elements import KeyedColumnElement

from connector.domain.errors import AlreadyExists, InvalidInput, Problem
from connector.domain.federation import (
    Crawl,
    DatasetEntry,
    DatasetFilter,
    FoundDataset,
    Participant,
    criterion_column,
    prefix_bound,
    words,
)
from connector.store.query import column_condition
from connector.store.tables import (
    federation_crawls,
    federation_datasets,
    federation_participants,
    federation_passports,
    federation_words,
)

_PAGE = 2000  # rows per INSERT when an entry is replaced
COMMON_ROWS = 5000  # index rows past which a prefix's datasets are found by probing datasets in key order
MAX_PREFIX_WORDS = 64  # distinct words a free-text prefix may stand for (a shorter prefix is refused)


def _starts_with(column: Any, prefix: str) -> ColumnElement[bool]:
    """The condition that a word starts with a prefix, as a range on the word index (the index answers it)."""
    bound = prefix_bound(prefix)
    return and_(column >= prefix, column < bound) if bound is not None else column >= prefix


def _participant(row: RowMapping) -> Participant:
    return Participant(
        id=row["id"],
        name=row["name"],
        origin=row["origin"],
        added_at=int(row["added_at"]),
        did=row["did"],
        address=row["address"],
        last_attempt_at=row["last_attempt_at"],
        last_success_at=row["last_success_at"],
        last_error=row["last_error"],
        datasets=int(row["datasets"]),
        passports=int(row["passports"]),
        expired_at=row["expired_at"],
    )


def _entry(row: RowMapping) -> DatasetEntry:
    return DatasetEntry(
        dataset_id=row["dataset_id"],
        provider=row["provider"],
        title=row["title"],
        keywords=tuple(k for k in (row["keywords"] or "").split("\n") if k),
        battery_category=row["battery_category"],
        chemistry=row["chemistry"],
        model=row["model"],
        access_level=row["access_level"],
        asset_type=row["asset_type"],
        document=row["document"],
    )


def _crawl(row: RowMapping) -> Crawl:
    return Crawl(
        run_key=row["run_key"],
        participant_id=row["participant_id"],
        started_at=int(row["started_at"]),
        outcome=row["outcome"],
        finished_at=row["finished_at"],
        error=row["error"],
        datasets=row["datasets"],
        appeared=tuple(row["appeared"] or ()),
        disappeared=tuple(row["disappeared"] or ()),
        appeared_count=int(row["appeared_count"] or 0),
        disappeared_count=int(row["disappeared_count"] or 0),
    )


class FederationRepository:
    """Participants, their entries and their crawls."""

    def __init__(self, connection: AsyncConnection) -> None:
        self._c = connection

    # Participants.

    async def add(self, participant: Participant) -> None:
        """Store a new participant (AlreadyExists when its id is taken)."""
        try:
            async with self._c.begin_nested():
                await self._c.execute(
                    insert(federation_participants).values(
                        id=participant.id,
                        name=participant.name,
                        origin=participant.origin,
                        added_at=participant.added_at,
                        datasets=0,
                        passports=0,
                    )
                )
        except IntegrityError:
            raise AlreadyExists(f"participant {participant.name!r} is already crawled (id {participant.id})") from None

    async def get(self, participant_id: str) -> Participant | None:
        """Return one participant."""
        rows = await self._c.execute(
            select(federation_participants).where(federation_participants.c.id == participant_id)
        )
        row = rows.mappings().first()
        return _participant(row) if row else None

    async def all(self) -> list[Participant]:
        """Return every participant, in the order they were added."""
        c = federation_participants.c
        rows = await self._c.execute(select(federation_participants).order_by(c.added_at, c.id))
        return [_participant(r) for r in rows.mappings()]

    async def remove(self, participant_id: str) -> bool:
        """Forget a participant, its entry and its crawls; tell whether it was there."""
        await self._drop_entry(participant_id)
        await self._c.execute(delete(federation_crawls).where(federation_crawls.c.participant_id == participant_id))
        result = await self._c.execute(
            delete(federation_participants).where(federation_participants.c.id == participant_id)
        )
        return bool(result.rowcount)

    async def _drop_entry(self, participant_id: str) -> None:
        for table in (federation_words, federation_datasets, federation_passports):
            await self._c.execute(delete(table).where(table.c.participant_id == participant_id))

    async def attempted(self, participant_id: str, at: int, error: str | None) -> None:
        """Record a failed attempt (the entry is kept)."""
        await self._c.execute(
            update(federation_participants)
            .where(federation_participants.c.id == participant_id)
            .values(last_attempt_at=at, last_error=error)
        )

    # Entries.

    async def dataset_ids(self, participant_id: str) -> set[str]:
        """Return the ids of the datasets in a participant's entry."""
        c = federation_datasets.c
        rows = await self._c.execute(select(c.dataset_id).where(c.participant_id == participant_id))
        return {r.dataset_id for r in rows}

    async def replace(
        self,
        participant_id: str,
        did: str,
        address: str,
        at: int,
        datasets: Sequence[DatasetEntry],
        passports: Sequence[tuple[str, dict[str, Any]]],
    ) -> None:
        """Replace a participant's entry by what a crawl found (one transaction: readers see the old or the new)."""
        await self._drop_entry(participant_id)
        rows = [
            {
                "participant_id": participant_id,
                "dataset_id": d.dataset_id,
                "provider": d.provider,
                "title": d.title,
                "keywords": "\n".join(d.keywords) or None,
                "search_text": d.search_text,
                "battery_category": d.battery_category,
                "chemistry": d.chemistry,
                "model": d.model,
                "access_level": d.access_level,
                "asset_type": d.asset_type,
                "document": d.document,
            }
            for d in datasets
        ]
        for start in range(0, len(rows), _PAGE):
            await self._c.execute(insert(federation_datasets), rows[start : start + _PAGE])
        index = [
            {"word": word, "participant_id": participant_id, "dataset_id": d.dataset_id}
            for d in datasets
            for word in d.words
        ]
        for start in range(0, len(index), _PAGE * 5):
            await self._c.execute(insert(federation_words), index[start : start + _PAGE * 5])
        views = [{"participant_id": participant_id, "passport_id": p, "data": data} for p, data in passports]
        for start in range(0, len(views), _PAGE):
            await self._c.execute(insert(federation_passports), views[start : start + _PAGE])
        await self._c.execute(
            update(federation_participants)
            .where(federation_participants.c.id == participant_id)
            .values(
                did=did,
                address=address,
                last_attempt_at=at,
                last_success_at=at,
                last_error=None,
                datasets=len(rows),
                passports=len(views),
                expired_at=None,
            )
        )

    async def expire(self, participant_id: str, at: int) -> None:
        """Drop a participant's entry (kept too long without a good crawl); the participant stays."""
        await self._drop_entry(participant_id)
        await self._c.execute(
            update(federation_participants)
            .where(federation_participants.c.id == participant_id)
            .values(expired_at=at, datasets=0, passports=0)
        )

    async def search(self, spec: DatasetFilter) -> list[FoundDataset]:
        """Return the datasets a filter selects, at most `spec.limit`, in (participant, dataset) order."""
        c = federation_datasets.c
        query = select(federation_datasets)
        # Keyset order is that of the table that drives the query: the first word's index rows with free text,
        # else the datasets' primary key (both are (participant_id, dataset_id) within their range).
        key_participant: KeyedColumnElement[Any] = c.participant_id
        key_dataset: KeyedColumnElement[Any] = c.dataset_id
        wanted = words(spec.text or "")
        if wanted:
            # Each word of the text is a prefix of a word of the dataset: the prefix is first completed to the
            # distinct words of the index that start with it (one index seek each), so that every match is an
            # exact probe of the word index. The word with fewest completions drives the query: with one, in
            # the index's own keyset order; with several, their distinct datasets in key order.
            completions = [await self._completions(word) for word in wanted]
            if not all(completions):
                return []
            completions.sort(key=len)
            w = federation_words
            if len(completions[0]) == 1:
                first: Any = w.alias("w0")
                driver = select(federation_datasets).where(first.c.word == completions[0][0])
            elif await self._common(completions[0]):
                # Many rows: the datasets in key order, each probed, reach a page long before a sort would.
                first = None
                driver = select(federation_datasets)
                completions.insert(0, [])  # every completion list below is a probe
            else:
                first = (
                    select(w.c.participant_id, w.c.dataset_id)
                    .where(w.c.word.in_(completions[0]))
                    .distinct()
                    .subquery("w0")
                )
                driver = select(federation_datasets)
            query = (
                driver
                if first is None
                else driver.select_from(
                    first.join(
                        federation_datasets,
                        and_(first.c.participant_id == c.participant_id, first.c.dataset_id == c.dataset_id),
                    )
                )
            )
            if first is not None:
                key_participant, key_dataset = first.c.participant_id, first.c.dataset_id
            for i, found in enumerate(completions[1:], start=1):
                other = federation_words.alias(f"w{i}")
                query = query.where(
                    exists().where(
                        other.c.word.in_(found),
                        other.c.participant_id == c.participant_id,
                        other.c.dataset_id == c.dataset_id,
                    )
                )
        for i, criterion in enumerate(spec.criteria):
            name = criterion_column(criterion.operand_left)
            if name is None:
                raise ValueError(f"{criterion.operand_left!r} is not an indexed field")  # the service splits them
            query = query.where(column_condition(c[name], criterion, f"filterExpression[{i}]"))
        if spec.provider is not None:
            query = query.where(or_(c.provider == spec.provider, c.participant_id == spec.provider))
        for column, value in (
            (c.battery_category, spec.battery_category),
            (c.chemistry, spec.chemistry),
            (c.model, spec.model),
            (c.access_level, spec.access_level),
            (c.asset_type, spec.asset_type),
        ):
            if value is not None:
                query = query.where(column == value)
        if spec.participant_ids is not None:
            query = query.where(key_participant.in_(spec.participant_ids))
        if spec.after is not None:
            participant, dataset = spec.after
            query = query.where(
                or_(
                    key_participant > participant,
                    and_(key_participant == participant, key_dataset > dataset),
                )
            )
        query = query.order_by(key_participant, key_dataset).limit(spec.limit)
        rows = await self._c.execute(query)
        return [FoundDataset(r["participant_id"], _entry(r)) for r in rows.mappings()]

    async def _common(self, found: list[str]) -> bool:
        """Tell whether words have at least COMMON_ROWS rows in the word index (counting stops there)."""
        w = federation_words.c
        rows = select(w.word).where(w.word.in_(found)).limit(COMMON_ROWS).subquery()
        return int((await self._c.execute(select(func.count()).select_from(rows))).scalar_one()) >= COMMON_ROWS

    async def _completions(self, prefix: str) -> list[str]:
        """Return the distinct indexed words that start with a prefix (InvalidInput past MAX_PREFIX_WORDS)."""
        w = federation_words.c
        found: list[str] = []
        while True:
            start = w.word >= prefix if not found else w.word > found[-1]
            word = (
                await self._c.execute(
                    select(w.word).where(start, _starts_with(w.word, prefix)).order_by(w.word).limit(1)
                )
            ).scalar()
            if word is None:
                return found
            if len(found) == MAX_PREFIX_WORDS:
                raise InvalidInput(
                    f"q: {prefix!r} begins more than {MAX_PREFIX_WORDS} different words of the index; give more "
                    "letters",
                    [Problem("prefix too short", "q", prefix)],
                )
            found.append(word)

    async def count(self) -> int:
        """Return how many datasets all entries hold."""
        return int((await self._c.execute(select(func.count()).select_from(federation_datasets))).scalar_one())

    async def public_views(self, after: tuple[str, str] | None, limit: int) -> list[tuple[str, str, dict[str, Any]]]:
        """Return crawled public passport views (participant, passport id, data), in key order, after a key."""
        c = federation_passports.c
        query = select(c.participant_id, c.passport_id, c.data)
        if after is not None:
            query = query.where(
                or_(c.participant_id > after[0], and_(c.participant_id == after[0], c.passport_id > after[1]))
            )
        rows = await self._c.execute(query.order_by(c.participant_id, c.passport_id).limit(limit))
        return [(r.participant_id, r.passport_id, r.data) for r in rows]

    # Crawls.

    async def claim(self, run_key: str, participant_id: str, at: int) -> bool:
        """Record a crawl as running; False when a crawl with this run key exists (another replica took it)."""
        try:
            async with self._c.begin_nested():
                await self._c.execute(
                    insert(federation_crawls).values(
                        run_key=run_key, participant_id=participant_id, started_at=at, outcome="running"
                    )
                )
        except IntegrityError:
            return False
        return True

    async def finish(self, crawl: Crawl) -> None:
        """Record how a crawl ended."""
        await self._c.execute(
            update(federation_crawls)
            .where(federation_crawls.c.run_key == crawl.run_key)
            .values(
                finished_at=crawl.finished_at,
                outcome=crawl.outcome,
                error=crawl.error,
                datasets=crawl.datasets,
                appeared=list(crawl.appeared),
                disappeared=list(crawl.disappeared),
                appeared_count=crawl.appeared_count,
                disappeared_count=crawl.disappeared_count,
            )
        )

    async def crawls(self, participant_id: str, limit: int = 20) -> list[Crawl]:
        """Return a participant's latest crawls, newest first."""
        c = federation_crawls.c
        rows = await self._c.execute(
            select(federation_crawls)
            .where(c.participant_id == participant_id)
            .order_by(c.started_at.desc(), c.run_key.desc())
            .limit(limit)
        )
        return [_crawl(r) for r in rows.mappings()]

    async def prune_crawls(self, before: int) -> None:
        """Forget crawls started before a time."""
        await self._c.execute(delete(federation_crawls).where(federation_crawls.c.started_at < before))
