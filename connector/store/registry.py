"""The Digital Twin Registry's reads: shells are computed from the stored passports, so they are never stale."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import and_, or_, select
from sqlalchemy.ext.asyncio import AsyncConnection

from connector.domain.registry import ShellSource
from connector.store.tables import passports


@dataclass(frozen=True, slots=True)
class ShellFilter:
    """Which shells a listing or lookup asks for, in (created_at, id) order; every field narrows it."""

    created_after: int | None = None  # epoch ms, exclusive
    created_until: int | None = None  # epoch ms, inclusive: the settled horizon of a createdAfter poll
    after: tuple[int, str] | None = None  # keyset cursor
    passport_id: str | None = None
    battery_id: str | None = None
    model_id: str | None = None
    limit: int = 100


class ShellRepository:
    """The shells of the current (not deleted) passports."""

    def __init__(self, connection: AsyncConnection) -> None:
        self._c = connection

    async def page(self, spec: ShellFilter) -> list[ShellSource]:
        """Return the shells a filter selects, at most `spec.limit`, oldest first."""
        c = passports.c
        query = select(c.id, c.battery_id, c.model_id, c.created_at).where(c.deleted_at.is_(None))
        for column, value in ((c.id, spec.passport_id), (c.battery_id, spec.battery_id), (c.model_id, spec.model_id)):
            if value is not None:
                query = query.where(column == value)
        if spec.created_after is not None:
            query = query.where(c.created_at > spec.created_after)
        if spec.created_until is not None:
            query = query.where(c.created_at <= spec.created_until)
        if spec.after is not None:
            at, last = spec.after
            query = query.where(or_(c.created_at > at, and_(c.created_at == at, c.id > last)))
        query = query.order_by(c.created_at, c.id).limit(spec.limit)
        return [ShellSource(r.id, r.battery_id, r.model_id, int(r.created_at)) for r in await self._c.execute(query)]

    async def get(self, passport_id: str) -> ShellSource | None:
        """Return the shell of one passport (None when there is none, or it was deleted)."""
        found = await self.page(ShellFilter(passport_id=passport_id, limit=1))
        return found[0] if found else None
