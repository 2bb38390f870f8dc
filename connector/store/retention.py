"""Pruning of the tables that grow with traffic: the data-plane access log and the token replay cache.

Each call deletes at most `limit` rows in the caller's transaction, so a pruning pass is many short write
transactions, never one long write lock. On PostgreSQL the rows are claimed with FOR UPDATE SKIP LOCKED:
replicas pruning at the same time split the rows between them instead of waiting on (or deadlocking with)
each other.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Select, delete, select, tuple_
from sqlalchemy.ext.asyncio import AsyncConnection

from connector.store.tables import data_access, seen_tokens


class RetentionRepository:
    """Deletes, one bounded batch at a time, access-log entries past retention and replay entries past expiry."""

    def __init__(self, connection: AsyncConnection) -> None:
        self._c = connection

    def _claim(self, chosen: Select[Any], limit: int) -> Select[Any]:
        chosen = chosen.limit(limit)
        if self._c.dialect.name == "postgresql":
            chosen = chosen.with_for_update(skip_locked=True)
        return chosen

    async def prune_access_log(self, before_ms: int, limit: int) -> int:
        """Delete at most `limit` access-log entries recorded before `before_ms` (epoch ms); return how many."""
        chosen = self._claim(
            select(data_access.c.id).where(data_access.c.at < before_ms).order_by(data_access.c.at), limit
        )
        result = await self._c.execute(delete(data_access).where(data_access.c.id.in_(chosen)))
        return int(result.rowcount or 0)

    async def prune_seen_tokens(self, now_s: int, limit: int) -> int:
        """Delete at most `limit` replay entries whose token expired before `now_s` (epoch s); return how many.

        An entry is kept until its token's `exp` plus the verifier's leeway (what `expires_at` holds): until
        then a replay must still be refused, afterwards the token is refused as expired anyway.
        """
        chosen = self._claim(
            select(seen_tokens.c.issuer, seen_tokens.c.jti)
            .where(seen_tokens.c.expires_at < now_s)
            .order_by(seen_tokens.c.expires_at),
            limit,
        )
        result = await self._c.execute(
            delete(seen_tokens).where(tuple_(seen_tokens.c.issuer, seen_tokens.c.jti).in_(chosen))
        )
        return int(result.rowcount or 0)
