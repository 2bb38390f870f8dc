"""The API browser: Swagger UI for the management API's OpenAPI document, served by the node itself.

The page and its two assets (vendored from npm's swagger-ui-dist, static/swagger-ui/SOURCE.md) come from this
surface; nothing is loaded from another host (no validator badge, no fonts, no CDN). The page is open like the
OpenAPI document; calls made from it ("Try it out") carry the API key the user enters under "Authorize" and
pass the browser guard as same-origin requests.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from importlib import resources

from aiohttp import web

DOCS = "/management/docs"
OPENAPI = "/management/openapi.json"
_ASSETS = {
    "swagger-ui-bundle.js": "application/javascript",
    "swagger-ui.css": "text/css",
}
#: The page and its assets need no API key (a browser's navigation cannot send one); they hold nothing secret.
OPEN_PATHS = frozenset({DOCS, *(f"{DOCS}/{name}" for name in _ASSETS)})
_PAGE = """<!doctype html>
<html lang="en">
<head>
  <meta charset="utf-8">
  <title>Battery-passport connector: management API</title>
  <link rel="stylesheet" href="{docs}/swagger-ui.css">
</head>
<body>
  <div id="api"></div>
  <script src="{docs}/swagger-ui-bundle.js"></script>
  <script>
    window.ui = SwaggerUIBundle({{
      url: "{openapi}",
      dom_id: "#api",
      validatorUrl: null,
      deepLinking: true,
      tryItOutEnabled: false,
      persistAuthorization: false
    }});
  </script>
</body>
</html>
"""


def _read(name: str) -> bytes:
    return resources.files("connector.transport").joinpath("static", "swagger-ui", name).read_bytes()


async def page(request: web.Request) -> web.Response:
    """Serve the API browser's page."""
    body = _PAGE.format(docs=DOCS, openapi=OPENAPI)
    response = web.Response(text=body, content_type="text/html", charset="utf-8")
    response.headers["Content-Security-Policy"] = (
        "default-src 'self'; script-src 'self' 'unsafe-inline'; style-src 'self' 'unsafe-inline'; "
        "img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'"
    )
    return response


def _asset(name: str) -> Callable[[web.Request], Awaitable[web.Response]]:
    content_type = _ASSETS[name]

    async def serve(request: web.Request) -> web.Response:
        response = web.Response(body=_read(name), content_type=content_type, charset="utf-8")
        response.headers["Cache-Control"] = "public, max-age=86400"
        return response

    return serve


#: (path, handler, content type) of each asset: one route each, so the OpenAPI document lists them exactly.
ASSETS = tuple((f"{DOCS}/{name}", _asset(name), content_type) for name, content_type in _ASSETS.items())
#: Content types of the operations' answers that are not JSON, for the OpenAPI document.
CONTENT_TYPES = {DOCS: "text/html", **{path: content_type for path, _, content_type in ASSETS}}
