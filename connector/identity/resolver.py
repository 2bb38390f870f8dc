"""How verifiers obtain DID documents: a resolver protocol, a static one, and a caching one over a fetch function.

The transport supplies the fetch function (HTTPS, timeout, size limit, no redirects); this package never does I/O.
"""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Iterable, Mapping
from typing import Any, Protocol

from .did import DidDocument, parse_did_document
from .errors import DidDocumentError, DidResolutionError

#: Fetches the raw DID document of a DID (as parsed JSON or as bytes); raises DidResolutionError when it cannot.
Fetch = Callable[[str], Awaitable[Mapping[str, Any] | bytes | str]]


class DidResolver(Protocol):
    """Return the parsed DID document of a DID, or raise DidResolutionError / DidDocumentError."""

    async def __call__(self, did: str) -> DidDocument:
        """Resolve ``did``."""
        ...


class StaticResolver:
    """Resolve from documents already parsed (tests, the node's own DID, pre-fetched trust anchors)."""

    def __init__(self, documents: Iterable[DidDocument] = ()) -> None:
        self._docs = {d.id: d for d in documents}

    def add(self, document: DidDocument) -> None:
        """Add or replace a document."""
        self._docs[document.id] = document

    async def __call__(self, did: str) -> DidDocument:
        """Return the stored document of ``did``."""
        try:
            return self._docs[did]
        except KeyError:
            raise DidResolutionError(f"{did[:100]}: no DID document known") from None


class CachingResolver:
    """Resolve through ``fetch`` and keep parsed documents (with their imported keys) for ``ttl`` seconds.

    Concurrent resolutions of one DID share a single fetch. The cache holds at most ``max_entries`` DIDs,
    dropping the least recently used.
    """

    def __init__(
        self,
        fetch: Fetch,
        ttl: float = 300.0,
        max_entries: int = 10_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._fetch = fetch
        self._ttl = ttl
        self._max = max_entries
        self._clock = clock
        self._cache: OrderedDict[str, tuple[float, DidDocument]] = OrderedDict()
        self._pending: dict[str, asyncio.Future[DidDocument]] = {}

    def invalidate(self, did: str | None = None) -> None:
        """Forget one DID's document (e.g. after its key rotated), or all of them."""
        if did is None:
            self._cache.clear()
        else:
            self._cache.pop(did, None)

    async def __call__(self, did: str) -> DidDocument:
        """Return the cached document of ``did``, fetching and parsing it when absent or stale."""
        hit = self._cache.get(did)
        if hit is not None and hit[0] > self._clock():
            self._cache.move_to_end(did)
            return hit[1]
        pending = self._pending.get(did)
        if pending is not None:
            return await asyncio.shield(pending)
        future: asyncio.Future[DidDocument] = asyncio.get_running_loop().create_future()
        self._pending[did] = future
        try:
            raw = await self._fetch(did)
            doc = parse_did_document(raw, did)
        except (DidResolutionError, DidDocumentError) as exc:
            future.set_exception(exc)
            future.exception()  # mark retrieved: waiters re-raise it, nobody else must log it as lost
            raise
        except BaseException as exc:
            future.set_exception(DidResolutionError(f"{did[:100]}: resolution failed ({type(exc).__name__})"))
            future.exception()
            raise
        else:
            future.set_result(doc)
        finally:
            del self._pending[did]
        self._cache[did] = (self._clock() + self._ttl, doc)
        self._cache.move_to_end(did)
        while len(self._cache) > self._max:
            self._cache.popitem(last=False)
        return doc
