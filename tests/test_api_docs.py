"""The API browser at /management/docs: Swagger UI served by the node, loading nothing from another host."""

from __future__ import annotations

import hashlib
import re

import aiohttp

from connector.app import Node
from tests.conftest import API_KEY, REPO

VENDORED = REPO / "connector" / "transport" / "static" / "swagger-ui"


async def test_the_page_and_its_assets_come_from_the_node_itself(node: Node, http: aiohttp.ClientSession) -> None:
    # The node has an API key; a browser's navigation sends none, and the page needs none.
    async with http.get(node.management_url + "/management/docs") as response:
        assert response.status == 200 and response.content_type == "text/html"
        page = await response.text()
        assert "connect-src 'self'" in response.headers["Content-Security-Policy"]
    references = re.findall(r'(?:src|href|url:)\s*=?\s*"([^"]+)"', page)
    assert references and all(ref.startswith("/management/") for ref in references), references
    assert "validatorUrl: null" in page  # Swagger UI's default validator badge calls validator.swagger.io
    types = {"swagger-ui-bundle.js": "application/javascript", "swagger-ui.css": "text/css"}
    for ref in references:
        async with http.get(node.management_url + ref) as response:
            assert response.status == 200, ref
            body = await response.read()
        name = ref.rsplit("/", 1)[1]
        if name in types:
            assert response.content_type == types[name]
            assert hashlib.sha256(body).digest() == hashlib.sha256((VENDORED / name).read_bytes()).digest()
        else:
            assert ref == "/management/openapi.json"
    async with http.get(node.management_url + "/management/docs/LICENSE") as response:
        assert response.status == 401  # only the page and its two assets are open
    async with http.get(node.management_url + "/management/docs/LICENSE", headers={"X-Api-Key": API_KEY}) as response:
        assert response.status == 404  # and only those two assets are served


def test_the_vendored_assets_carry_their_licence_and_source() -> None:
    assert "Apache License" in (VENDORED / "LICENSE").read_text()
    assert "SmartBear" in (VENDORED / "NOTICE").read_text()
    source = (VENDORED / "SOURCE.md").read_text()
    assert "swagger-ui-dist` 5.35.0" in source
    assert '"5.35.0"' in (VENDORED / "swagger-ui-bundle.js").read_text() or "5.35.0" in source
