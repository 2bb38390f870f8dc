"""Serving the two surfaces: bind, run until told to stop, drain in-flight requests."""

from __future__ import annotations

import errno
import logging
from dataclasses import dataclass

from aiohttp import web

from connector.transport.http import IN_FLIGHT, InFlight

log = logging.getLogger("connector")


class BindError(Exception):
    """A surface could not bind its address."""


@dataclass(slots=True)
class Served:
    """One running surface: its runner and the port it actually bound (useful with port 0)."""

    runner: web.AppRunner
    port: int
    in_flight: InFlight
    shutdown_timeout: float


async def serve(app: web.Application, host: str, port: int, shutdown_timeout: float, what: str) -> Served:
    """Start serving an application; raise BindError with one clear line when the address is taken."""
    in_flight = InFlight()
    app[IN_FLIGHT] = in_flight
    runner = web.AppRunner(app, handle_signals=False, access_log=None, shutdown_timeout=shutdown_timeout)
    await runner.setup()
    site = web.TCPSite(runner, host, port, reuse_address=True)
    try:
        await site.start()
    except OSError as exc:
        await runner.cleanup()
        reason = "address already in use" if exc.errno == errno.EADDRINUSE else exc.strerror or str(exc)
        raise BindError(f"cannot bind the {what} surface to {host}:{port}: {reason}") from None
    addresses = runner.addresses
    bound = addresses[0][1] if addresses else port
    return Served(runner=runner, port=int(bound), in_flight=in_flight, shutdown_timeout=shutdown_timeout)


async def stop(served: Served) -> None:
    """Stop accepting connections, let in-flight requests finish (up to the shutdown timeout), clean up."""
    # aiohttp's own shutdown stops reading from connections at once, which cuts off a request whose
    # body is still arriving; so stop listening first and wait for our own in-flight count instead.
    for site in list(served.runner.sites):
        await site.stop()
    served.in_flight.draining = True
    if not await served.in_flight.wait_idle(served.shutdown_timeout):
        log.warning("requests still in flight after the shutdown timeout", extra={"count": served.in_flight.count})
    await served.runner.cleanup()
