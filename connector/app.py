"""The composition root: builds the store, the services and both surfaces from the settings, and runs them."""

from __future__ import annotations

import asyncio
import gc
import logging
import signal
import socket
from collections.abc import AsyncIterator, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass

from catalog.info import CatalogInfo
from connector.identity.access_tokens import AccessTokenVerifier
from connector.identity.errors import KeyFileError
from connector.identity.keys import NodeKey, load_key, load_or_create_key
from connector.identity.sealing import SecretSealer
from connector.jobs.crawler import Crawler
from connector.jobs.deadlines import DeadlineWatch
from connector.jobs.monitor import PolicyMonitor
from connector.jobs.outbox import OutboxDispatcher, OutboxSettings
from connector.jobs.pruning import Pruner
from connector.jobs.sync import SyncScheduler, check_schedule
from connector.services import notifications, registry, tck
from connector.services.access import Access
from connector.services.catalog import CatalogService
from connector.services.dataplane import AccessLog, DataPlaneService
from connector.services.dsp_client import DspClient, PeerCatalogs
from connector.services.edrs import EdrRefresher
from connector.services.federation import FederationConfig, FederationService
from connector.services.identity import (
    IdentityConfig,
    NodeIdentity,
    parse_business_partner_groups,
    parse_trusted_issuers,
)
from connector.services.insights import InsightsConfig, InsightsService
from connector.services.lifecycle import LifecycleService
from connector.services.lookup import PassportLookup
from connector.services.negotiations import NegotiationService, now_ms
from connector.services.notifications import NotificationService
from connector.services.offers import (
    AssetService,
    ContractDefinitionService,
    PolicyChecker,
    PolicyDefinitionService,
    evaluable,
)
from connector.services.passport_feed import PassportFeed
from connector.services.passports import PassportService
from connector.services.retention import RetentionService
from connector.services.sync import SyncService, SyncSettings
from connector.services.sync_access import SharedAccess
from connector.services.transfers import TransferService
from connector.settings import Settings
from connector.store import Store, migrate
from connector.transport import (
    dataplane,
    federation,
    guard,
    insights,
    management,
    metrics,
    passport_feed,
    passports,
    protocol,
    server,
)
from connector.transport import notifications as notifications_transport
from connector.transport import registry as registry_transport
from connector.transport.peer import PeerClient, PeerLimits

log = logging.getLogger("connector")


@dataclass(slots=True)
class Node:
    """A running node: its settings, store and the addresses both surfaces listen on."""

    settings: Settings
    store: Store
    peer: PeerClient
    identity: NodeIdentity
    management_port: int
    protocol_port: int
    access: Access | None = None  # this node's access to partners' data as consumer (services.access)
    metrics: metrics.NodeMetrics | None = None  # its Prometheus registry and scrape hooks (sync runs, crawls)
    notifications: NotificationService | None = None  # Digital Twin Events sent and received (docs/lifecycle.md)

    @property
    def management_url(self) -> str:
        """Return the management surface's base URL (loopback form)."""
        return f"http://{_client_host(self.settings.management_host)}:{self.management_port}"

    @property
    def protocol_url(self) -> str:
        """Return the protocol surface's base URL (loopback form)."""
        return f"http://{_client_host(self.settings.protocol_host)}:{self.protocol_port}"


def _client_host(host: str) -> str:
    return "127.0.0.1" if host in ("0.0.0.0", "") else f"[{host}]" if ":" in host else host  # noqa: S104


@asynccontextmanager
async def running_node(settings: Settings, policy_checker: PolicyChecker | None = None) -> AsyncIterator[Node]:
    """Start a node (migrating an embedded database first) and stop it, draining requests, on exit."""
    if settings.protocol_port == 0 and settings.public_url is None:
        # The DID names the port, so a "any free port" node picks its port before it has an identity.
        settings = settings.model_copy(update={"protocol_port": _free_port(settings.protocol_host)})
    migrated = None
    if settings.auto_migrate:
        migrated = await migrate.upgrade(
            settings.effective_database_url, connect_timeout=settings.database_connect_timeout
        )
    async with AsyncExitStack() as stack:
        key = node_key(settings)
        store = Store(
            settings.effective_database_url,
            pool_size=settings.database_pool_size,
            sealer=SecretSealer.for_node(key),
            connect_timeout=settings.database_connect_timeout,
        )
        stack.push_async_callback(store.close)
        if migrated is None or migrated != (migrate.quick_head() or migrate.head()):
            await check_schema(settings)
        async with store.reaching():
            await store.optimize()
        peer = PeerClient(
            PeerLimits(
                timeout=settings.peer_timeout,
                max_body_bytes=settings.peer_max_body_bytes,
                allow_local=settings.allow_local_peers,
            )
        )
        stack.push_async_callback(peer.close)
        identity = NodeIdentity(identity_config(settings), key, store, peer)
        stack.push_async_callback(identity.close)  # before the store closes: pending read token ids are written
        catalog = CatalogService(store, settings.effective_participant_id, settings.dsp_base_url)
        dsp = DspClient(peer, identity)
        peer_catalogs = PeerCatalogs(dsp)
        wake = _Wake()
        negotiations = NegotiationService(
            store,
            catalog,
            settings.effective_participant_id,
            settings.dsp_base_url,
            wake,
            manual_approval=settings.negotiation_approval == "manual",
            reactions=tck.TckReactions() if settings.tck_mode else None,
            deadline_seconds=settings.peer_deadline_seconds,
            published_offer=peer_catalogs.published_offer,
        )
        transfers = TransferService(
            store,
            settings.effective_participant_id,
            settings.effective_did,
            key,
            settings.dsp_base_url,
            settings.effective_public_url,
            wake,
            token_lifetime=settings.token_lifetime_seconds,
            reactions=tck.TckReactions() if settings.tck_mode else None,
            deadline_seconds=settings.peer_deadline_seconds,
        )
        transfers.finalize = negotiations.finalized
        negotiations.start_pull = transfers.start_pull
        passport_service = PassportService(store, settings.effective_public_url)
        passport_service.publish_hooks.append(registry.publish)
        backend = dataplane.backend_session(settings.peer_timeout)
        stack.push_async_callback(backend.close)
        mover = dataplane.HttpMover(store, peer, backend)
        access_log = AccessLog(store)
        await access_log.start()
        stack.push_async_callback(access_log.stop)
        edrs = EdrRefresher(transfers, peer, identity.self_issued)
        access = Access(
            store,
            negotiations,
            transfers,
            edrs,
            peer_catalogs,
            dsp,
            identity,
            peer,
            settings.effective_participant_id,
            wait_seconds=settings.access_wait_seconds,
        )
        sync_service = SyncService(
            store,
            peer_catalogs,
            SharedAccess(access),
            peer,
            check_schedule,
            SyncSettings(
                page_size=settings.sync_page_size,
                retry_attempts=settings.sync_retry_attempts,
                retry_seconds=settings.sync_retry_seconds,
                lease_seconds=settings.sync_lease_seconds,
            ),
        )
        scheduler = SyncScheduler(store, sync_service, settings.sync_poll_seconds)
        await scheduler.start()
        stack.push_async_callback(scheduler.stop)
        transfers.listeners.append(access.transfer_changed)
        lookup = PassportLookup(access)
        notification_service = NotificationService(
            store,
            access,
            settings.effective_did,
            settings.effective_bpn,
            identity.bpn_directory.bpn_of,
            wake,
        )
        passport_service.publish_hooks.append(notifications.publish)
        lifecycle_service = LifecycleService(
            store,
            passport_service,
            access,
            lookup,
            notification_service,
            peer,
            settings.effective_did,
            settings.dsp_base_url,
        )
        # A Digital Twin Event about a passport a sync job holds runs that job at once (docs/sync.md).
        notification_service.appliers.append(sync_service.on_event)
        dispatcher = OutboxDispatcher(
            store,
            negotiations,
            dsp.deliver,
            OutboxSettings(
                max_attempts=settings.outbox_max_attempts,
                retry_base_seconds=settings.outbox_retry_seconds,
                lease_seconds=settings.outbox_lease_seconds,
                # The TCK answers 404 until it has registered its handler for the next message.
                retry_not_found=settings.tck_mode,
            ),
            transfers=transfers,
            push=mover.push,
            notifications=notification_service,
            notify=notification_service.deliver,
        )
        wake.target = dispatcher.wake
        await dispatcher.start()
        stack.push_async_callback(dispatcher.stop)
        monitor = PolicyMonitor(transfers, settings.policy_monitor_seconds)
        await monitor.start()
        stack.push_async_callback(monitor.stop)
        deadlines = DeadlineWatch(store, [negotiations.engine, transfers.engine], settings.peer_deadline_seconds, wake)
        await deadlines.start()
        stack.push_async_callback(deadlines.stop)
        pruner = Pruner(RetentionService(store, settings.access_log_retention_days), settings.prune_interval_seconds)
        await pruner.start()
        stack.push_async_callback(pruner.stop)
        federation_service = FederationService(store, access, dsp, peer, federation_config(settings))
        insights_service = InsightsService(
            store,
            InsightsConfig(
                min_batteries=settings.insights_min_batteries,
                min_operators=settings.insights_min_operators,
                cache_seconds=settings.insights_cache_seconds,
            ),
        )
        federation_service.listeners.append(insights_service.forget)
        crawler = Crawler(federation_service)
        await crawler.start()
        stack.push_async_callback(crawler.stop)
        services = management.ManagementServices(
            store=store,
            assets=AssetService(store),
            policies=PolicyDefinitionService(store, policy_checker or evaluable),
            contracts=ContractDefinitionService(store),
            catalogs=peer_catalogs,
            identity=identity,
            negotiations=negotiations,
            dsp=dsp,
            transfers=transfers,
            passports=passport_service,
            edrs=edrs,
            lookup=lookup,
            lifecycle=lifecycle_service,
            notifications=notification_service,
            federation=federation_service,
            sync=sync_service,
        )
        api_key = settings.api_key.get_secret_value() if settings.api_key else None
        authenticator: tck.TckAuthenticator | NodeIdentity = identity
        if settings.tck_mode:
            assert settings.tck_authorization is not None
            log.warning(
                "DSP conformance test mode is on: TCK datasets are seeded, reactions are scripted, and the TCK's "
                "static Authorization header is accepted. Never run a production node like this."
            )
            authenticator = tck.TckAuthenticator(settings.tck_authorization.get_secret_value(), identity)
            await tck.seed(services.assets, services.policies, services.contracts, now_ms())
            await tck.seed_agreements(store, settings.effective_participant_id, now_ms())
        browsers = guard.BrowserPolicy.of(
            settings.management_hostname_list, settings.management_cors_origin_list, settings.management_host
        )
        management_app = management.create_app(
            services, api_key, settings.max_body_bytes, settings.max_json_depth, browsers
        )
        protocol_app = protocol.create_app(
            protocol.ProtocolServices(
                participant_id=settings.effective_participant_id,
                dsp_url=settings.dsp_base_url,
                authenticator=authenticator,
                catalog=catalog,
                identity=identity,
                catalog_info=catalog_info(settings),
                negotiations=negotiations,
                transfers=transfers,
                tck_mode=settings.tck_mode,
            ),
            settings.max_body_bytes,
            settings.max_json_depth,
        )
        passports.add_public_routes(protocol_app, passport_service)
        protocol_app[passports.PUBLIC_CHAIN] = lifecycle_service.public_chain
        notifications_transport.install(protocol_app, notification_service)
        federation.add_public_routes(protocol_app, passport_service)
        insights.add_routes(protocol_app, insights_service)
        passport_feed.add(protocol_app, PassportFeed(store))
        dataplane.add_routes(
            protocol_app,
            DataPlaneService(
                store,
                AccessTokenVerifier(key, settings.effective_did),
                transfers,
                authenticate=identity.verify_self_issued,
            ),
            access_log,
            backend,
        )
        registry_transport.install(
            protocol_app,
            registry.RegistryService(store, registry_config(settings), identity.bpn_directory.bpn_of),
        )
        node_metrics = metrics.NodeMetrics(
            store,
            [
                metrics.Loop("outbox", lambda: dispatcher.running),
                metrics.Loop("deadlines", lambda: deadlines.running),
                metrics.Loop("policy-monitor", lambda: monitor.running),
                metrics.Loop("pruner", lambda: pruner.running),
                metrics.Loop("access-log", lambda: access_log.running),
            ],
        )
        # The services report what they did through plain observers; the metrics count it.
        sync_service.progress.append(node_metrics.sync_run_ended)
        federation_service.crawl_observers.append(node_metrics.crawl_ended)
        mover.observers.append(node_metrics.pushed)
        metrics.install(management_app, node_metrics, "management")
        metrics.install(protocol_app, node_metrics, "protocol")
        served_protocol = await server.serve(
            protocol_app,
            settings.protocol_host,
            settings.protocol_port,
            settings.shutdown_timeout,
            "protocol",
            settings.max_header_bytes,
        )
        stack.push_async_callback(server.stop, served_protocol)
        served_management = await server.serve(
            management_app,
            settings.management_host,
            settings.management_port,
            settings.shutdown_timeout,
            "management",
            settings.max_header_bytes,
        )
        stack.push_async_callback(server.stop, served_management)
        node = Node(
            settings,
            store,
            peer,
            identity,
            served_management.port,
            served_protocol.port,
            access,
            node_metrics,
            notification_service,
        )
        log.info(
            "node started",
            extra={
                "participant_id": settings.effective_participant_id,
                "did": settings.effective_did,
                "protocol": f"{settings.protocol_host}:{served_protocol.port}",
                "management": f"{settings.management_host}:{served_management.port}",
                "public_url": settings.effective_public_url,
                "database": settings.effective_database_url.split("://", 1)[0],
                "next": f"curl {node.management_url}/health",
            },
        )
        yield node
        log.info("node stopping: draining in-flight requests", extra={"timeout_s": settings.shutdown_timeout})


class _Wake:
    """Lets services wake the dispatcher, which is built after them."""

    def __init__(self) -> None:
        self.target: Callable[[], None] | None = None

    def __call__(self) -> None:
        if self.target is not None:
            self.target()


def _free_port(host: str) -> int:
    with socket.socket() as probe:
        probe.bind((host, 0))
        return int(probe.getsockname()[1])


def node_key(settings: Settings) -> NodeKey:
    """Return the node's key: from CONNECTOR_KEY_FILE, or created in the data directory on first start."""
    if settings.key_file is not None:
        try:
            return load_key(settings.key_file.read_text(encoding="utf-8"), origin=str(settings.key_file))
        except OSError as exc:
            raise KeyFileError(f"CONNECTOR_KEY_FILE {settings.key_file}: cannot be read ({exc.strerror})") from None
    return load_or_create_key(settings.data_dir, settings.key_kind)


def catalog_info(settings: Settings) -> CatalogInfo:
    """Return what the public DCAT-AP catalog says of its publisher."""
    participant = settings.effective_participant_id
    return CatalogInfo(
        title=settings.catalog_title or f"Battery passports of {participant}",
        description=settings.catalog_description
        or f"Battery passport datasets offered by {participant} over the Dataspace Protocol (DSP 2025-1).",
        publisher_name=settings.publisher_name or participant,
        publisher_id=settings.effective_did,
        homepage=settings.effective_public_url,
        catalog_url=settings.effective_public_url + "/catalog",
    )


def identity_config(settings: Settings) -> IdentityConfig:
    """Return what the identity service needs from the settings."""
    return IdentityConfig(
        did=settings.effective_did,
        public_url=settings.effective_public_url,
        dsp_url=settings.dsp_base_url,
        trusted_issuers=parse_trusted_issuers(settings.trusted_issuers),
        requested_credentials=tuple(t.strip() for t in settings.requested_credentials.split(",") if t.strip()),
        allow_local=settings.allow_local_peers,
        claims_ttl=settings.claims_cache_seconds,
        issuer_dir=settings.issuer_dir,
        scope_alias=settings.credential_scope_alias,
        business_partner_groups=parse_business_partner_groups(settings.business_partner_groups),
        bdrs_url=str(settings.bdrs_url) if settings.bdrs_url is not None else None,
        bdrs_cache_seconds=settings.bdrs_cache_seconds,
        bpn_directory_file=settings.bpn_directory_file,
        replay_reads_in_database=settings.read_replay_cache == "database",
    )


def federation_config(settings: Settings) -> FederationConfig:
    """Return how the federated catalog crawls, from the settings."""
    return FederationConfig(
        interval_seconds=settings.federation_crawl_interval_seconds,
        concurrency=settings.federation_crawl_concurrency,
        crawl_timeout_seconds=settings.federation_crawl_timeout_seconds,
        page_size=settings.federation_page_size,
        max_datasets=settings.federation_max_datasets,
        max_passports=settings.federation_max_passports,
        retention_seconds=settings.federation_retention_seconds,
        participants_file=settings.federation_participants_file,
    )


def registry_config(settings: Settings) -> registry.RegistryConfig:
    """Return what the Digital Twin Registry needs from the settings."""
    return registry.RegistryConfig(
        data_plane_url=settings.effective_public_url + dataplane.PUBLIC,
        dsp_url=settings.dsp_base_url,
        owner_bpn=settings.effective_bpn,
        readers=tuple(r.strip() for r in settings.registry_readers.split(",") if r.strip()),
        public_names=frozenset(n.strip() for n in settings.registry_public_names.split(",") if n.strip()),
        settle_ms=int(settings.registry_settle_seconds * 1000),
    )


class SchemaOutOfDate(Exception):
    """The database schema is older than the code; `connector db upgrade` fixes it."""


async def check_schema(settings: Settings) -> None:
    """Raise SchemaOutOfDate unless the database is at the newest schema revision."""
    current = await migrate.current(settings.effective_database_url, connect_timeout=settings.database_connect_timeout)
    newest = migrate.quick_head() or migrate.head()
    if current != newest:
        raise SchemaOutOfDate(
            f"the database is at schema revision {current or 'none'} but this version needs {newest}: "
            "run `connector db upgrade` (or set CONNECTOR_DATABASE_AUTO_MIGRATE=true)"
        )


#: Net allocations between two collections of the garbage collector's young generation in a serving node.
YOUNG_GC_THRESHOLD = 10_000
#: A start that made more objects than this (the collector's young count; a plain start makes about 175,000) is
#: collected before they are frozen: work at start over many rows (a data migration) may have left much garbage.
START_UP_COLLECT_ABOVE = 1_000_000


async def serve_until_stopped(settings: Settings, started: Callable[[Node], None] | None = None) -> None:
    """Run a node until SIGTERM or SIGINT, then drain and stop; `started` is told once both surfaces listen."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    async with running_node(settings) as node:
        # What start-up made lives as long as the process: keep it out of the collector's generations (a full
        # collection while serving walks only what requests made), collect the young generation every 10,000 net
        # allocations, not 700, and turn the collector on if `connector serve` kept it off while starting. No
        # collection first: it would take 0.1 s before the node is ready to free start-up's garbage (about
        # 14,000 objects, 2 MB, on a fresh data directory), which stays frozen instead (decision 0029,
        # "Start-up"), unless start-up made far more objects than it does.
        if gc.get_count()[0] > START_UP_COLLECT_ABOVE:
            gc.collect()
        gc.freeze()
        gc.set_threshold(YOUNG_GC_THRESHOLD, *gc.get_threshold()[1:])
        gc.enable()
        if started is not None:
            started(node)
        await stop.wait()
    log.info("node stopped")
