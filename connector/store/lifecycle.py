"""Passports' places in their batteries' lives, and Digital Twin Event notifications (docs/lifecycle.md)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import insert, select, update
from sqlalchemy.engine import RowMapping
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from connector.domain.lifecycle import Lifecycle, Notification, link_of
from connector.store.tables import notifications, passport_lifecycle


def _lifecycle(row: RowMapping) -> Lifecycle:
    return Lifecycle(
        row["passport_id"],
        tuple(link_of(item) for item in row["predecessors"]),
        tuple(link_of(item) for item in row["successors"]),
        int(row["superseded_at"]) if row["superseded_at"] is not None else None,
        dict(row["details"]),
        int(row["updated_at"]),
    )


def _notification(row: RowMapping) -> Notification:
    return Notification(
        row["message_id"],
        row["direction"],
        row["partner"],
        row["context"],
        row["passport_id"],
        dict(row["message"]),
        row["state"],
        row["reason"],
        int(row["created_at"]),
        int(row["updated_at"]),
    )


class LifecycleRepository:
    """Lifecycle rows (one per passport with links) and notifications (one per message id and direction)."""

    def __init__(self, connection: AsyncConnection) -> None:
        self._c = connection

    async def get(self, passport_id: str) -> Lifecycle | None:
        """Return a passport's lifecycle row (None when it has no links)."""
        query = select(passport_lifecycle).where(passport_lifecycle.c.passport_id == passport_id)
        row = (await self._c.execute(query)).mappings().first()
        return _lifecycle(row) if row is not None else None

    async def put(self, lifecycle: Lifecycle) -> None:
        """Store a passport's lifecycle row (insert or replace)."""
        values: dict[str, Any] = {
            "predecessors": [link.as_json() for link in lifecycle.predecessors],
            "successors": [link.as_json() for link in lifecycle.successors],
            "superseded_at": lifecycle.superseded_at,
            "details": lifecycle.details,
            "updated_at": lifecycle.updated_at,
        }
        done = await self._c.execute(
            update(passport_lifecycle).where(passport_lifecycle.c.passport_id == lifecycle.passport_id).values(**values)
        )
        if done.rowcount == 0:
            await self._c.execute(insert(passport_lifecycle).values(passport_id=lifecycle.passport_id, **values))

    async def successors_of(self, passport_ids: Sequence[str]) -> dict[str, list[str]]:
        """Return {passport id: its successors' ids} for the ids that have any (the registry's shells)."""
        if not passport_ids:
            return {}
        rows = await self._c.execute(
            select(passport_lifecycle.c.passport_id, passport_lifecycle.c.successors).where(
                passport_lifecycle.c.passport_id.in_(list(passport_ids))
            )
        )
        return {r.passport_id: [s["passportId"] for s in r.successors] for r in rows if r.successors}

    async def add_notification(self, item: Notification) -> bool:
        """Record a notification; False when one with its message id and direction exists (nothing changed)."""
        exists = await self.notification(item.message_id, item.direction)
        if exists is not None:
            return False
        try:
            async with self._c.begin_nested():
                await self._c.execute(
                    insert(notifications).values(
                        message_id=item.message_id,
                        direction=item.direction,
                        partner=item.partner,
                        context=item.context,
                        passport_id=item.passport_id,
                        message=item.message,
                        state=item.state,
                        reason=item.reason,
                        created_at=item.created_at,
                        updated_at=item.updated_at,
                    )
                )
        except IntegrityError:
            return False  # another replica recorded the same message meanwhile
        return True

    async def notification(self, message_id: str, direction: str) -> Notification | None:
        """Return one notification."""
        query = select(notifications).where(
            notifications.c.message_id == message_id, notifications.c.direction == direction
        )
        row = (await self._c.execute(query)).mappings().first()
        return _notification(row) if row is not None else None

    async def set_state(self, message_id: str, direction: str, state: str, reason: str | None, now: int) -> None:
        """Record what became of a notification."""
        await self._c.execute(
            update(notifications)
            .where(notifications.c.message_id == message_id, notifications.c.direction == direction)
            .values(state=state, reason=reason[:2000] if reason else None, updated_at=now)
        )

    async def notifications(
        self, direction: str | None = None, passport_id: str | None = None, limit: int = 100
    ) -> list[Notification]:
        """Return notifications, newest first."""
        query = select(notifications)
        if direction is not None:
            query = query.where(notifications.c.direction == direction)
        if passport_id is not None:
            query = query.where(notifications.c.passport_id == passport_id)
        query = query.order_by(notifications.c.created_at.desc(), notifications.c.message_id).limit(limit)
        return [_notification(r) for r in (await self._c.execute(query)).mappings()]
