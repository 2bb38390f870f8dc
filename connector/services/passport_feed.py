"""The provider's change feed of a passport collection: what changed since a cursor, in commit order.

Each entry is a passport's current state (its view at the dataset's access level), or a tombstone when it was
deleted. The cursor is a position in the change sequence (connector.store.changes), never the writer's clock:
a change committed late still comes after every cursor handed out before it committed.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass

from connector.domain.errors import InvalidInput, Problem
from connector.store import Store, changes
from connector.store.changes import Change

MAX_FEED_LIMIT = 1000
DEFAULT_FEED_LIMIT = 500
_PREFIX = "c1:"


def encode_position(seq: int, passport_id: str) -> str:
    """Return the opaque cursor after a feed entry."""
    return base64.urlsafe_b64encode(f"{_PREFIX}{seq}:{passport_id}".encode()).decode().rstrip("=")


def decode_position(cursor: str) -> tuple[int, str]:
    """Read a feed cursor; a broken one is a 400."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        if not raw.startswith(_PREFIX):
            raise ValueError(raw)
        seq, _, last = raw[len(_PREFIX) :].partition(":")
        return int(seq), last
    except (ValueError, UnicodeDecodeError) as exc:
        raise InvalidInput(
            "since is not a change-feed cursor this node issued", [Problem("invalid cursor", "since", cursor[:100])]
        ) from exc


@dataclass(frozen=True, slots=True)
class FeedPage:
    """One page of the feed and the cursor after it (the `since` of the next request)."""

    entries: list[Change]
    cursor: str | None
    more: bool


class PassportFeed:
    """Reads the change feed."""

    def __init__(self, store: Store) -> None:
        self._store = store

    async def page(
        self,
        since: str | None,
        limit: int = DEFAULT_FEED_LIMIT,
        model_id: str | None = None,
        battery_id: str | None = None,
        manufacturer_id: str | None = None,
    ) -> FeedPage:
        """Return the changes after `since` (from the start when None), at most `limit`."""
        after = decode_position(since) if since else None
        limit = min(max(limit, 1), MAX_FEED_LIMIT)
        async with self._store.read() as tx:
            found = await changes.changes(
                tx.connection,
                after,
                limit + 1,
                model_id=model_id,
                battery_id=battery_id,
                manufacturer_id=manufacturer_id,
            )
        more = len(found) > limit
        entries = found[:limit]
        cursor = encode_position(entries[-1].seq, entries[-1].passport_id) if entries else since
        return FeedPage(entries, cursor, more)
