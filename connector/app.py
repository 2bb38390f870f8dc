"""The composition root: builds the store, the services and both surfaces from the settings, and runs them."""

from __future__ import annotations

import asyncio
import logging
import signal
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass

from connector.services.offers import (
    AssetService,
    ContractDefinitionService,
    PolicyChecker,
    PolicyDefinitionService,
    evaluable,
)
from connector.settings import Settings
from connector.store import Store, migrate
from connector.transport import management, protocol, server
from connector.transport.peer import PeerClient, PeerLimits

log = logging.getLogger("connector")


@dataclass(slots=True)
class Node:
    """A running node: its settings, store and the addresses both surfaces listen on."""

    settings: Settings
    store: Store
    peer: PeerClient
    management_port: int
    protocol_port: int

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
    if settings.auto_migrate:
        await migrate.upgrade(settings.effective_database_url)
    async with AsyncExitStack() as stack:
        store = Store(settings.effective_database_url, pool_size=settings.database_pool_size)
        stack.push_async_callback(store.close)
        await _check_schema(settings)
        peer = PeerClient(
            PeerLimits(
                timeout=settings.peer_timeout,
                max_body_bytes=settings.peer_max_body_bytes,
                allow_local=settings.allow_local_peers,
            )
        )
        stack.push_async_callback(peer.close)
        services = management.ManagementServices(
            store=store,
            assets=AssetService(store),
            policies=PolicyDefinitionService(store, policy_checker or evaluable),
            contracts=ContractDefinitionService(store),
        )
        api_key = settings.api_key.get_secret_value() if settings.api_key else None
        management_app = management.create_app(services, api_key, settings.max_body_bytes, settings.max_json_depth)
        protocol_app = protocol.create_app(
            settings.effective_participant_id, settings.max_body_bytes, settings.max_json_depth
        )
        served_protocol = await server.serve(
            protocol_app,
            settings.protocol_host,
            settings.protocol_port,
            settings.shutdown_timeout,
            "protocol",
        )
        stack.push_async_callback(server.stop, served_protocol)
        served_management = await server.serve(
            management_app,
            settings.management_host,
            settings.management_port,
            settings.shutdown_timeout,
            "management",
        )
        stack.push_async_callback(server.stop, served_management)
        node = Node(settings, store, peer, served_management.port, served_protocol.port)
        log.info(
            "node started",
            extra={
                "participant_id": settings.effective_participant_id,
                "protocol": f"{settings.protocol_host}:{served_protocol.port}",
                "management": f"{settings.management_host}:{served_management.port}",
                "public_url": settings.effective_public_url,
                "database": settings.effective_database_url.split("://", 1)[0],
            },
        )
        yield node
        log.info("node stopping: draining in-flight requests", extra={"timeout_s": settings.shutdown_timeout})


class SchemaOutOfDate(Exception):
    """The database schema is older than the code; `connector db upgrade` fixes it."""


async def _check_schema(settings: Settings) -> None:
    current = await migrate.current(settings.effective_database_url)
    if current != migrate.head():
        raise SchemaOutOfDate(
            f"the database is at schema revision {current or 'none'} but this version needs {migrate.head()}: "
            "run `connector db upgrade` (or set CONNECTOR_DATABASE_AUTO_MIGRATE=true)"
        )


async def serve_until_stopped(settings: Settings) -> None:
    """Run a node until SIGTERM or SIGINT, then drain and stop."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    async with running_node(settings):
        await stop.wait()
    log.info("node stopped")
