"""The change feed on the data plane: `GET /public?feed=changes&since=<cursor>&limit=<n>` on a passport dataset.

The answer lists each passport changed since the cursor, in a stable order that no late commit lands behind:
`id`, `version` (the provider's), `deleted`, and `passport` (the view of the dataset's access level; null for a
tombstone), with `cursor` (the `since` of the next request) and `more` (another page is ready now). docs/sync.md
describes it.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from connector.domain.errors import InvalidInput, Problem
from connector.services import passports as service
from connector.services.passport_feed import DEFAULT_FEED_LIMIT, PassportFeed
from connector.transport.http import json_response

FEED: web.AppKey[PassportFeed] = web.AppKey("passport_feed", PassportFeed)


def wants_feed(request: web.Request) -> bool:
    """Tell whether a data-plane request asks for the change feed."""
    return request.query.get("feed") == "changes"


def _limit(request: web.Request) -> int:
    raw = request.query.get("limit") or str(DEFAULT_FEED_LIMIT)
    if not raw.isdigit() or int(raw) < 1:
        raise InvalidInput("limit must be a positive integer", [Problem("invalid", "limit", raw[:50])])
    return int(raw)


async def answer(request: web.Request, address: dict[str, Any], level: str, fmt: str) -> web.Response:
    """Answer one page of the change feed of a BatteryPassport dataset."""
    feed = request.app[FEED]

    def fixed(name: str) -> str | None:
        value = address.get(name)
        return value if isinstance(value, str) else None

    page = await feed.page(
        request.query.get("since") or None,
        _limit(request),
        model_id=fixed("batteryModel"),
        battery_id=fixed("batteryId"),
        manufacturer_id=fixed("manufacturer"),
    )
    body = {
        "changes": [
            {
                "id": entry.passport_id,
                "version": entry.version,
                "deleted": entry.deleted,
                "passport": service.render(entry.data, {level}, fmt) if entry.data is not None else None,
            }
            for entry in page.entries
        ],
        "cursor": page.cursor,
        "more": page.more,
        "accessLevel": level,
    }
    return json_response(body)


def add(app: web.Application, feed: PassportFeed) -> None:
    """Serve the change feed on the data plane of an application."""
    app[FEED] = feed
