"""Prometheus metrics at `GET /metrics` on the management surface, and what `/ready` checks besides the database.

Each node has its own registry (several nodes may run in one process, as the tests do). Two kinds of figures:

- counted as things happen: requests per surface, method, route pattern (never the raw path: ids and
  passport numbers would make one series per request) and status, with a latency histogram; bytes of the
  data plane's answers and request bodies;
- read at scrape time, cheaply: negotiations and transfers by role and state, the outbox's depth, retries and
  oldest message, agreements (a few grouped counts on indexed columns, `connector.store.figures`); the
  database pools' use; whether each background loop runs.

- reported by the services that do the work, through observers the node hands them (`sync_run_ended`,
  `crawl_ended`, `pushed`): sync runs and crawls by outcome with their durations and what they fetched, and
  the bytes of the provider's push transfers.

Other parts of the node may add their own through `NodeMetrics.registry` for counters they bump, and
`NodeMetrics.scrape_hooks` for figures they read at scrape time.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

from aiohttp import web
from aiohttp.typedefs import Middleware
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.exposition import CONTENT_TYPE_LATEST, generate_latest

from connector.domain.federation import Crawl
from connector.domain.sync import RunState, SyncRun
from connector.store import Store
from connector.store.figures import figures, pool_use

log = logging.getLogger("connector")

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
#: Route label of a request that matched no route (404s of unknown paths: one series, not one per path).
UNMATCHED = "(unmatched)"
DATA_PLANE_PREFIX = "/public"
#: Seconds the database may take to answer the scrape's counts before the scrape answers without them.
SCRAPE_TIMEOUT = 5.0


@dataclass(frozen=True, slots=True)
class Loop:
    """A background loop /ready and the metrics watch: its name and whether it runs."""

    name: str
    running: Callable[[], bool]


class NodeMetrics:
    """The metrics of one node: its registry, the families it fills, and the loops it watches."""

    def __init__(self, store: Store, loops: Sequence[Loop] = ()) -> None:
        self.store = store
        self.loops: list[Loop] = list(loops)
        #: Awaited before each scrape, to set figures read at scrape time (a sync service's gauges, say).
        self.scrape_hooks: list[Callable[[], Awaitable[None]]] = []
        self.registry = registry = CollectorRegistry()
        self.requests = Counter(
            "connector_http_requests",
            "HTTP requests answered, by surface, method, route pattern and status.",
            ["surface", "method", "route", "status"],
            registry=registry,
        )
        self.latency = Histogram(
            "connector_http_request_duration_seconds",
            "Time from a request's arrival to its answer (the handler's return; a streamed body until written).",
            ["surface", "method", "route"],
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0),
            registry=registry,
        )
        self.data_plane_bytes = Counter(
            "connector_dataplane_bytes",
            "Bytes of bodies on the data plane: out, answers served at /public; in, request bodies received there; "
            "push, data this node (the provider) pushed to a consumer's endpoint (HttpData-PUSH).",
            ["direction"],
            registry=registry,
        )
        self.negotiations = Gauge(
            "connector_negotiations", "Contract negotiations by role and state.", ["role", "state"], registry=registry
        )
        self.transfers = Gauge(
            "connector_transfers", "Transfer processes by role and state.", ["role", "state"], registry=registry
        )
        self.agreements = Gauge("connector_agreements", "Contract agreements held.", registry=registry)
        self.outbox_messages = Gauge(
            "connector_outbox_messages", "Messages to peers not yet delivered (the outbox's depth).", registry=registry
        )
        self.outbox_retrying = Gauge(
            "connector_outbox_retrying_messages",
            "Messages in the outbox whose delivery failed at least once and will be retried.",
            registry=registry,
        )
        self.outbox_attempts = Gauge(
            "connector_outbox_attempts",
            "Delivery attempts made so far by the messages in the outbox.",
            registry=registry,
        )
        self.outbox_oldest = Gauge(
            "connector_outbox_oldest_message_age_seconds",
            "Age of the oldest message in the outbox (0 when it is empty).",
            registry=registry,
        )
        self.pool_size = Gauge(
            "connector_database_pool_size", "Connections a database pool keeps.", ["pool"], registry=registry
        )
        self.pool_checked_out = Gauge(
            "connector_database_pool_checked_out_connections",
            "Connections of a database pool in use now.",
            ["pool"],
            registry=registry,
        )
        self.pool_overflow = Gauge(
            "connector_database_pool_overflow_connections",
            "Connections opened beyond a pool's size, in use now.",
            ["pool"],
            registry=registry,
        )
        self.loop_up = Gauge(
            "connector_background_loop_up",
            "1 while a background loop runs, 0 if it ended.",
            ["loop"],
            registry=registry,
        )
        self.sync_runs = Counter(
            "connector_sync_runs",
            "Sync job runs ended, by outcome (succeeded or failed).",
            ["outcome"],
            registry=registry,
        )
        self.sync_duration = Histogram(
            "connector_sync_run_duration_seconds",
            "Time from a sync run's start to its end, by outcome.",
            ["outcome"],
            buckets=(0.1, 0.5, 1.0, 5.0, 15.0, 60.0, 300.0, 900.0, 3600.0),
            registry=registry,
        )
        self.sync_records = Counter(
            "connector_sync_records",
            "Passport records sync runs fetched, by what became of them (new, changed, unchanged, removed, refused).",
            ["result"],
            registry=registry,
        )
        self.sync_bytes = Counter(
            "connector_sync_bytes", "Bytes of passport data sync runs fetched from partners.", registry=registry
        )
        self.crawls = Counter(
            "connector_federation_crawls",
            "Federated catalog crawls of a participant ended, by outcome (succeeded or failed).",
            ["outcome"],
            registry=registry,
        )
        self.crawl_duration = Histogram(
            "connector_federation_crawl_duration_seconds",
            "Time a crawl of one participant took, by outcome.",
            ["outcome"],
            buckets=(0.1, 0.5, 1.0, 2.5, 5.0, 15.0, 60.0, 300.0),
            registry=registry,
        )
        self.crawl_datasets = Counter(
            "connector_federation_crawled_datasets",
            "Datasets read by the crawls that succeeded (each crawl counts every dataset of the participant).",
            registry=registry,
        )
        self.scrape_failures = Counter(
            "connector_metrics_scrape_failures",
            "Scrapes whose figures from the database could not be read (the rest was served).",
            registry=registry,
        )

    # Observers the node hands to the services that do the work (they know nothing of Prometheus).

    def sync_run_ended(self, run: SyncRun) -> None:
        """Count a sync run (called by the sync service after each page too: only an ended run counts)."""
        if run.ended_at is None or run.state is RunState.RUNNING:
            return
        outcome = run.state.value.lower()
        self.sync_runs.labels(outcome).inc()
        self.sync_duration.labels(outcome).observe(max(0.0, (run.ended_at - run.started_at) / 1000))
        for result in ("new", "changed", "unchanged", "removed", "refused"):
            count = getattr(run, result)
            if count:
                self.sync_records.labels(result).inc(count)
        if run.bytes:
            self.sync_bytes.inc(run.bytes)

    def crawl_ended(self, crawl: Crawl) -> None:
        """Count a crawl of one participant that ended."""
        self.crawls.labels(crawl.outcome).inc()
        if crawl.finished_at is not None:
            self.crawl_duration.labels(crawl.outcome).observe(max(0.0, (crawl.finished_at - crawl.started_at) / 1000))
        if crawl.datasets:
            self.crawl_datasets.inc(crawl.datasets)

    def pushed(self, sent: int) -> None:
        """Count bytes a push transfer sent to the consumer's endpoint."""
        self.data_plane_bytes.labels("push").inc(sent)

    def stopped_loops(self) -> list[str]:
        """Return the names of the background loops that do not run."""
        return [loop.name for loop in self.loops if not loop.running()]

    async def refresh(self) -> None:
        """Set the figures read at scrape time."""
        for loop in self.loops:
            self.loop_up.labels(loop.name).set(1 if loop.running() else 0)
        for use in pool_use(self.store):
            self.pool_size.labels(use.name).set(use.size)
            self.pool_checked_out.labels(use.name).set(use.checked_out)
            self.pool_overflow.labels(use.name).set(use.overflow)
        try:
            async with asyncio.timeout(SCRAPE_TIMEOUT):
                counts = await figures(self.store)
        except Exception:  # a scrape answers without the database's figures rather than fail
            log.warning("metrics: the database's figures could not be read", exc_info=True)
            self.scrape_failures.inc()
        else:
            # A state that emptied must read 0, not keep its last value: start from none each time.
            self.negotiations.clear()
            self.transfers.clear()
            for (role, state), count in counts.negotiations.items():
                self.negotiations.labels(role.lower(), state).set(count)
            for (role, state), count in counts.transfers.items():
                self.transfers.labels(role.lower(), state).set(count)
            self.agreements.set(counts.agreements)
            self.outbox_messages.set(counts.outbox_messages)
            self.outbox_retrying.set(counts.outbox_retrying)
            self.outbox_attempts.set(counts.outbox_attempts)
            oldest = counts.outbox_oldest_ms
            self.outbox_oldest.set(max(0.0, time.time() - oldest / 1000) if oldest is not None else 0)
        for hook in self.scrape_hooks:
            try:
                await hook()
            except Exception:
                log.warning("metrics: a scrape hook failed", exc_info=True)

    def middleware(self, surface: str) -> Middleware:
        """Return the middleware that counts and times a surface's requests (it goes first, outside the rest).

        The labelled series of a (method, route, status) are looked up in the families once and kept, so a
        request costs a dictionary look-up, an increment and an observation (the series and the /metrics
        output are the families' own, as without the kept ones).
        """
        kept: dict[tuple[str, web.AbstractResource | None, int], _Series] = {}
        data_plane_bytes: dict[str, Counter] = {}  # "in", "out": made on first use, so /metrics shows them then
        clock = time.perf_counter

        @web.middleware
        async def observe(request: web.Request, handler: Handler) -> web.StreamResponse:
            started = clock()
            status = 500
            response: web.StreamResponse | None = None
            try:
                response = await handler(request)
                status = response.status
                return response
            except web.HTTPException as exc:
                status = exc.status
                raise
            finally:
                route = request.match_info.route
                key = (request.method, route.resource if route is not None else None, status)
                series = kept.get(key)
                if series is None:
                    series = self._series(surface, key)
                    if len(kept) < MAX_KEPT_SERIES:
                        kept[key] = series
                series.requests.inc()
                series.latency.observe(clock() - started)
                if series.data_plane:
                    self._count_data_plane(request, response, data_plane_bytes)

        return observe

    def _series(self, surface: str, key: tuple[str, web.AbstractResource | None, int]) -> _Series:
        method, resource, status = key
        route = UNMATCHED if resource is None else resource.canonical
        return _Series(
            self.requests.labels(surface, method, route, str(status)),
            self.latency.labels(surface, method, route),
            surface == "protocol" and route.startswith(DATA_PLANE_PREFIX),
        )

    def _count_data_plane(
        self, request: web.Request, response: web.StreamResponse | None, kept: dict[str, Counter]
    ) -> None:
        if request.content_length:
            self._bytes(kept, "in").inc(request.content_length)
        if response is None:
            return
        if response.prepared:  # streamed by the handler: every byte written so far
            sent = response.body_length
        elif isinstance(response, web.Response) and isinstance(response.body, bytes | bytearray):
            sent = len(response.body)
        else:
            sent = response.content_length or 0
        if sent:
            self._bytes(kept, "out").inc(sent)

    def _bytes(self, kept: dict[str, Counter], direction: str) -> Counter:
        series = kept.get(direction)
        if series is None:
            series = kept[direction] = self.data_plane_bytes.labels(direction)
        return series


@dataclass(frozen=True, slots=True)
class _Series:
    """The series a request of one (method, route, status) counts in, and whether it is a data-plane one."""

    requests: Counter
    latency: Histogram
    data_plane: bool


#: Most (method, route, status) series a surface's middleware keeps at hand (methods are the client's choice;
#: beyond this many, a request's series is looked up in the families, as it always was).
MAX_KEPT_SERIES = 1024


def _route(request: web.Request) -> str:
    """Return the pattern of the route a request matched (`/management/v3/assets/{id}`), never the raw path."""
    route = request.match_info.route
    resource = route.resource if route is not None else None
    if resource is None:
        return UNMATCHED
    return resource.canonical


METRICS: web.AppKey[NodeMetrics] = web.AppKey("metrics", NodeMetrics)


def install(app: web.Application, metrics: NodeMetrics, surface: str) -> None:
    """Count and time the requests of a surface's application (before it starts)."""
    app.middlewares.insert(0, metrics.middleware(surface))
    app[METRICS] = metrics


async def scrape(request: web.Request) -> web.Response:
    """Serve the node's metrics in Prometheus' text format."""
    metrics = request.app.get(METRICS)
    if metrics is None:
        raise web.HTTPNotFound()
    await metrics.refresh()
    response = web.Response(body=generate_latest(metrics.registry))
    response.content_type = CONTENT_TYPE_LATEST.split(";")[0]
    response.charset = "utf-8"
    return response
