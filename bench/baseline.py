"""The baseline every benchmark compares against: a bare aiohttp app on loopback returning fixed bytes."""

from __future__ import annotations

from aiohttp import web


async def bare_server(body: bytes) -> tuple[web.AppRunner, int]:
    """Start a bare aiohttp app on 127.0.0.1 answering any request with `body`; return it and its port."""

    async def handler(request: web.Request) -> web.Response:
        await request.read()
        return web.Response(body=body, content_type="application/json")

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", handler)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    return runner, runner.addresses[0][1]
