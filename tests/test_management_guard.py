"""The management surface refuses what a browser page could make it do: a foreign Host (DNS rebinding), a
foreign Origin, a body that is not JSON (a "simple" cross-origin request), and CORS unless configured.

Every test talks to a real node on loopback, with and without an API key, the way a hostile page's browser
would: the requests carry the Host, Origin and Sec-Fetch-Site headers a browser sends.
"""

from __future__ import annotations

import asyncio
import ipaddress
import json
import socket
from typing import Any

import aiohttp
import pytest
from multidict import CIMultiDictProxy

from connector.app import Node
from connector.domain import passport as model
from connector.settings import SettingsError, load_settings
from tests.conftest import API_KEY, EDC_CONTEXT, Management, NodeFactory

PUBLISH = "/management/v1/passports/publish"
IDENTITY = "/management/v1/identity"
ASSETS = "/management/v3/assets"
EVIL = "http://evil.example"


@pytest.fixture
async def keyless(node_factory: NodeFactory, http: aiohttp.ClientSession) -> tuple[Node, Management]:
    """A node as `make run` starts it: management on loopback, no API key."""
    node = await node_factory()
    return node, Management(http, node, api_key=None)


def _asset(asset_id: str) -> dict[str, Any]:
    return {
        "@context": EDC_CONTEXT,
        "@id": asset_id,
        "properties": {"name": asset_id},
        "dataAddress": {"type": "HttpData", "baseUrl": "https://backend.example.com/data"},
    }


async def _send(
    http: aiohttp.ClientSession,
    node: Node,
    method: str,
    path: str,
    headers: dict[str, str],
    body: bytes | None = None,
) -> tuple[int, Any, CIMultiDictProxy[str]]:
    async with http.request(method, node.management_url + path, headers=headers, data=body) as response:
        text = await response.text()
        parsed = None
        if text and response.content_type.endswith("json"):
            parsed = await response.json(content_type=None)
        return response.status, parsed, response.headers


async def _asset_ids(management: Management) -> list[str]:
    status, found = await management.call("POST", f"{ASSETS}/request")
    assert status == 200, found
    return [a["@id"] for a in found]


# Host: DNS rebinding makes a hostile page same-origin with 127.0.0.1; its requests still name its own host.


@pytest.mark.parametrize("host", ["evil.example", "evil.example:8181", "evil.example:{port}", "127.0.0.1.evil.example"])
async def test_a_foreign_host_is_refused(
    keyless: tuple[Node, Management], http: aiohttp.ClientSession, host: str
) -> None:
    node, _ = keyless
    given = host.format(port=node.management_port)
    status, problem, headers = await _send(http, node, "GET", IDENTITY, {"Host": given})
    assert status == 421, problem
    assert headers["Content-Type"].startswith("application/problem+json")
    assert repr(given) in problem["detail"]
    assert "CONNECTOR_MANAGEMENT_HOSTNAMES" in problem["detail"]
    assert problem["errors"] == [
        {"message": problem["detail"], "type": "MisdirectedRequest", "path": "Host", "invalidValue": given}
    ]
    assert "did" not in problem


async def test_a_foreign_host_is_refused_with_an_api_key_too(node: Node, http: aiohttp.ClientSession) -> None:
    status, problem, _ = await _send(http, node, "GET", IDENTITY, {"Host": "evil.example", "X-Api-Key": API_KEY})
    assert status == 421, problem


async def test_a_rebinding_page_cannot_read_edr_tokens_or_publish(
    keyless: tuple[Node, Management], http: aiohttp.ClientSession
) -> None:
    node, management = keyless
    status, stored = await management.call("POST", "/management/v1/passports", model.generate(1))
    assert status == 201, stored
    # After rebinding, the page is same-origin: its Origin is its own host, and so is its Host.
    page = {"Host": f"evil.example:{node.management_port}", "Origin": f"http://evil.example:{node.management_port}"}
    status, _, _ = await _send(http, node, "POST", "/management/v3/edrs/request", page, b"{}")
    assert status == 421
    status, _, _ = await _send(http, node, "POST", PUBLISH, {**page, "Content-Type": "application/json"}, b"{}")
    assert status == 421
    assert await _asset_ids(management) == []


@pytest.mark.parametrize(
    "host",
    [
        "localhost",
        "LocalHost:{port}",
        "127.0.0.1",
        "127.0.0.1:{port}",
        "127.3.4.5:{port}",
        "[::1]",
        "[::1]:{port}",
    ],
)
async def test_loopback_hosts_are_accepted(
    keyless: tuple[Node, Management], http: aiohttp.ClientSession, host: str
) -> None:
    node, _ = keyless
    status, body, _ = await _send(http, node, "GET", IDENTITY, {"Host": host.format(port=node.management_port)})
    assert status == 200, body
    assert body["did"] == node.settings.effective_did


async def test_configured_hostnames_are_accepted(node_factory: NodeFactory, http: aiohttp.ClientSession) -> None:
    node = await node_factory(management_hostnames="node.example.org, Admin.Example.org")
    for host in ("node.example.org", "node.example.org:443", "admin.example.org", "localhost"):
        status, body, _ = await _send(http, node, "GET", IDENTITY, {"Host": host})
        assert status == 200, (host, body)
    status, problem, _ = await _send(http, node, "GET", IDENTITY, {"Host": "other.example.org"})
    assert status == 421, problem


async def _raw(port: int, request: bytes, address: str = "127.0.0.1") -> bytes:
    reader, writer = await asyncio.open_connection(address, port)
    try:
        writer.write(request)
        await writer.drain()
        return await asyncio.wait_for(reader.read(), 20)
    finally:
        writer.close()


def _status_line(answer: bytes) -> bytes:
    return answer.split(b"\r\n", 1)[0]


async def test_a_missing_host_is_answered_over_loopback_for_http_1_0_only(keyless: tuple[Node, Management]) -> None:
    node, _ = keyless
    answer = await _raw(node.management_port, b"GET /health HTTP/1.0\r\n\r\n")
    assert b" 200 " in _status_line(answer), answer[:300]
    # HTTP/1.1 requires Host: aiohttp's parser refuses the request before the application sees it.
    answer = await _raw(node.management_port, b"GET /health HTTP/1.1\r\nConnection: close\r\n\r\n")
    assert b" 400 " in _status_line(answer), answer[:300]


def _own_address() -> str:
    """Return an address of this machine that is not loopback (the one a default route would use)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        try:
            probe.connect(("192.0.2.1", 9))  # no packet is sent: connecting a UDP socket only picks a route
        except OSError:
            pytest.skip("this machine has no non-loopback IPv4 address to reach the node over")
        address = str(probe.getsockname()[0])
    if ipaddress.ip_address(address).is_loopback:
        pytest.skip("this machine has no non-loopback IPv4 address to reach the node over")
    return address


async def test_a_node_bound_to_every_address_answers_to_the_address_it_was_reached_on(
    node_factory: NodeFactory,
) -> None:
    address = _own_address()
    node = await node_factory(api_key=API_KEY, management_host="0.0.0.0")
    port = node.management_port
    key = f"X-Api-Key: {API_KEY}\r\nConnection: close\r\n".encode()
    request = b"GET /management/v1/identity HTTP/1.1\r\nHost: %s\r\n" + key + b"\r\n"
    answer = await _raw(port, request % f"{address}:{port}".encode(), address)
    assert b" 200 " in _status_line(answer), answer[:300]
    answer = await _raw(port, request % f"evil.example:{port}".encode(), address)
    assert b" 421 " in _status_line(answer), answer[:300]
    # Naming the machine's address while arriving on loopback is no address the connection arrived on.
    answer = await _raw(port, request % f"10.255.255.254:{port}".encode())
    assert b" 421 " in _status_line(answer), answer[:300]
    # Without Host, from another address than loopback: refused, it cannot be checked.
    answer = await _raw(port, b"GET /health HTTP/1.0\r\n\r\n", address)
    assert b" 400 " in _status_line(answer) and b"no Host header" in answer, answer[:300]


# Origin: a page on another origin may not change anything, nor read anything.


@pytest.mark.parametrize("origin", [EVIL, "null", "http://127.0.0.1:1", "http://127.0.0.1", "http://localhost:{port}"])
async def test_a_foreign_origin_is_refused_on_state_changes_and_reads(
    keyless: tuple[Node, Management], http: aiohttp.ClientSession, origin: str
) -> None:
    node, management = keyless
    given = origin.format(port=node.management_port)
    json_headers = {"Origin": given, "Content-Type": "application/json"}
    status, problem, headers = await _send(http, node, "POST", ASSETS, json_headers, json.dumps(_asset("a1")).encode())
    assert status == 403, problem
    assert headers["Content-Type"].startswith("application/problem+json")
    assert repr(given) in problem["detail"] and "CONNECTOR_MANAGEMENT_CORS_ORIGINS" in problem["detail"]
    assert "Access-Control-Allow-Origin" not in headers
    status, problem, _ = await _send(http, node, "GET", IDENTITY, {"Origin": given})
    assert status == 403, problem
    status, problem, _ = await _send(http, node, "DELETE", f"{ASSETS}/a1", {"Origin": given})
    assert status == 403, problem
    assert await _asset_ids(management) == []


async def test_the_surfaces_own_origin_is_accepted(
    keyless: tuple[Node, Management], http: aiohttp.ClientSession
) -> None:
    node, management = keyless
    port = node.management_port
    for host, origin in (
        (f"127.0.0.1:{port}", f"http://127.0.0.1:{port}"),
        (f"localhost:{port}", f"http://localhost:{port}"),
    ):
        headers = {"Host": host, "Origin": origin, "Sec-Fetch-Site": "same-origin", "Content-Type": "application/json"}
        asset = json.dumps(_asset(f"a-{host.split(':')[0]}")).encode()
        status, body, _ = await _send(http, node, "POST", ASSETS, headers, asset)
        assert status == 200, body
    assert sorted(await _asset_ids(management)) == ["a-127.0.0.1", "a-localhost"]


@pytest.mark.parametrize("site", ["cross-site", "same-site"])
async def test_a_cross_site_fetch_without_origin_is_refused(
    keyless: tuple[Node, Management], http: aiohttp.ClientSession, site: str
) -> None:
    node, _ = keyless
    path = "/management/v3/edrs/x/dataaddress?auto_refresh=true"
    status, problem, _ = await _send(http, node, "GET", path, {"Sec-Fetch-Site": site})
    assert status == 403, problem
    assert "Sec-Fetch-Site" in problem["detail"]


async def test_the_operator_typing_a_url_is_not_refused(
    keyless: tuple[Node, Management], http: aiohttp.ClientSession
) -> None:
    node, _ = keyless
    status, body, _ = await _send(http, node, "GET", IDENTITY, {"Sec-Fetch-Site": "none", "Sec-Fetch-Mode": "navigate"})
    assert status == 200, body


# Bodies: only JSON changes state, so a "simple" request (text/plain, a form) can never carry a command.


async def test_a_text_plain_publish_is_refused_and_nothing_is_stored(
    keyless: tuple[Node, Management], http: aiohttp.ClientSession
) -> None:
    node, management = keyless
    status, stored = await management.call("POST", "/management/v1/passports", model.generate(1))
    assert status == 201, stored
    # Exactly what a hostile page's `fetch(url, {method: "POST", mode: "no-cors", body: "{}"})` sends ...
    simple = {"Origin": EVIL, "Sec-Fetch-Site": "cross-site", "Content-Type": "text/plain;charset=UTF-8"}
    status, problem, _ = await _send(http, node, "POST", PUBLISH, simple, b"{}")
    assert status == 403, problem
    # ... with no body at all (before the guard this one published: an empty body read as "all models") ...
    status, problem, _ = await _send(http, node, "POST", PUBLISH, simple)
    assert status == 403, problem
    # ... and with its Origin stripped (by an extension or a proxy): the browser still says where it came from.
    stripped = {k: v for k, v in simple.items() if k != "Origin"}
    status, problem, _ = await _send(http, node, "POST", PUBLISH, stripped)
    assert status == 403, problem
    assert "Sec-Fetch-Site: cross-site" in problem["detail"]
    # ... and the same body from a client that sends no Origin at all.
    status, problem, headers = await _send(http, node, "POST", PUBLISH, {"Content-Type": "text/plain"}, b"{}")
    assert status == 415, problem
    assert headers["Content-Type"].startswith("application/problem+json")
    assert "'text/plain'" in problem["detail"] and "application/json" in problem["detail"]
    assert await _asset_ids(management) == []
    # The same request with JSON publishes.
    status, published = await management.call("POST", PUBLISH, {})
    assert status == 200, published
    assert await _asset_ids(management) != []


@pytest.mark.parametrize(
    ("content_type", "body"),
    [
        ("application/x-www-form-urlencoded", b"@id=a"),
        ("multipart/form-data; boundary=x", b'--x\r\nContent-Disposition: form-data; name="a"\r\n\r\n{}\r\n--x--\r\n'),
        ("text/plain", b"{}"),
        ("application/octet-stream", b"{}"),
        ("application/x-ndjson", b"{}\n"),
        (None, b"{}"),
    ],
)
async def test_a_body_that_is_not_json_gets_415(
    keyless: tuple[Node, Management], http: aiohttp.ClientSession, content_type: str | None, body: bytes
) -> None:
    node, management = keyless
    headers = {"Content-Type": content_type} if content_type else {}
    async with http.put(
        node.management_url + ASSETS, data=body, headers=headers, skip_auto_headers=["Content-Type"]
    ) as response:
        assert response.status == 415, await response.text()
        problem = await response.json(content_type=None)
        assert response.content_type == "application/problem+json"
    assert "application/json" in problem["detail"]
    assert problem["errors"][0]["path"] == "Content-Type" and problem["errors"][0]["type"] == "UnsupportedMediaType"
    assert await _asset_ids(management) == []


async def test_a_body_for_no_route_gets_404_not_415(
    keyless: tuple[Node, Management], http: aiohttp.ClientSession
) -> None:
    node, _ = keyless
    status, problem, _ = await _send(http, node, "POST", "/management/v3/nothing", {"Content-Type": "text/plain"}, b"x")
    assert status == 404, problem


@pytest.mark.parametrize("content_type", ["application/json", "application/json; charset=utf-8", "application/ld+json"])
async def test_json_bodies_are_accepted(
    keyless: tuple[Node, Management], http: aiohttp.ClientSession, content_type: str
) -> None:
    node, _ = keyless
    body = json.dumps(_asset("a1")).encode()
    status, created, _ = await _send(http, node, "POST", ASSETS, {"Content-Type": content_type}, body)
    assert status == 200, created


async def test_the_import_route_takes_json_lines_and_only_it(
    keyless: tuple[Node, Management], http: aiohttp.ClientSession
) -> None:
    node, _ = keyless
    lines = (json.dumps(model.generate(1)) + "\n").encode()
    ndjson = {"Content-Type": "application/x-ndjson"}
    status, summary, _ = await _send(http, node, "POST", "/management/v1/passports/import", ndjson, lines)
    assert status == 200, summary
    status, problem, _ = await _send(http, node, "POST", "/management/v1/passports", ndjson, lines)
    assert status == 415, problem
    assert "application/json" in problem["detail"]


async def test_a_body_less_command_needs_no_content_type(
    keyless: tuple[Node, Management], http: aiohttp.ClientSession
) -> None:
    node, _ = keyless
    status, body, _ = await _send(http, node, "POST", PUBLISH, {})
    assert status == 200, body


# CORS: none unless configured, and then only for the origins listed.


async def test_without_cors_configured_preflights_are_refused_and_no_cors_header_is_sent(
    keyless: tuple[Node, Management], http: aiohttp.ClientSession
) -> None:
    node, _ = keyless
    preflight = {
        "Origin": EVIL,
        "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "content-type",
    }
    status, problem, headers = await _send(http, node, "OPTIONS", PUBLISH, preflight)
    assert status == 403, problem
    assert "CONNECTOR_MANAGEMENT_CORS_ORIGINS" in problem["detail"]
    assert not [h for h in headers if h.lower().startswith("access-control-")]
    status, _, headers = await _send(http, node, "GET", IDENTITY, {})
    assert status == 200
    assert not [h for h in headers if h.lower().startswith("access-control-")]


async def test_configured_cors_origins_get_preflights_and_exact_headers(
    node_factory: NodeFactory, http: aiohttp.ClientSession
) -> None:
    app = "http://localhost:3000"
    node = await node_factory(api_key=API_KEY, management_cors_origins=f"{app}, https://ops.example.org")
    preflight = {
        "Origin": app,
        "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "content-type, x-api-key",
    }
    status, _, headers = await _send(http, node, "OPTIONS", ASSETS, preflight)
    assert status == 204
    assert headers["Access-Control-Allow-Origin"] == app
    assert "Origin" in headers["Vary"]
    assert "POST" in headers["Access-Control-Allow-Methods"]
    allowed = {h.strip().lower() for h in headers["Access-Control-Allow-Headers"].split(",")}
    assert {"content-type", "x-api-key"} <= allowed
    assert "Access-Control-Allow-Credentials" not in headers

    body = json.dumps(_asset("from-app")).encode()
    request = {"Origin": app, "Content-Type": "application/json", "X-Api-Key": API_KEY}
    status, created, headers = await _send(http, node, "POST", ASSETS, request, body)
    assert status == 200, created
    assert headers["Access-Control-Allow-Origin"] == app and "Origin" in headers["Vary"]
    # An error the page's own request causes is readable by it too.
    status, problem, headers = await _send(http, node, "GET", f"{ASSETS}/missing", {"Origin": app})
    assert status == 401, problem
    assert headers["Access-Control-Allow-Origin"] == app

    # Any other origin: refused, with no CORS header, on preflights and requests alike.
    status, _, headers = await _send(http, node, "OPTIONS", ASSETS, {**preflight, "Origin": EVIL})
    assert status == 403
    assert "Access-Control-Allow-Origin" not in headers
    status, _, headers = await _send(http, node, "GET", IDENTITY, {"Origin": EVIL, "X-Api-Key": API_KEY})
    assert status == 403
    assert "Access-Control-Allow-Origin" not in headers
    # A request without Origin (curl, scripts) gets no CORS header but says it varies by Origin.
    status, _, headers = await _send(http, node, "GET", IDENTITY, {"X-Api-Key": API_KEY})
    assert status == 200
    assert "Access-Control-Allow-Origin" not in headers and "Origin" in headers["Vary"]


async def test_an_options_request_that_is_no_preflight_is_not_answered_as_one(
    keyless: tuple[Node, Management], http: aiohttp.ClientSession
) -> None:
    node, _ = keyless
    status, problem, headers = await _send(http, node, "OPTIONS", ASSETS, {})
    assert status == 405, problem
    assert headers["Content-Type"].startswith("application/problem+json")


# Settings.


@pytest.mark.parametrize(
    ("environ", "named", "says"),
    [
        ({"CONNECTOR_MANAGEMENT_CORS_ORIGINS": "*"}, "CONNECTOR_MANAGEMENT_CORS_ORIGINS", "'*'"),
        ({"CONNECTOR_MANAGEMENT_CORS_ORIGINS": "https://a.example/path"}, "CONNECTOR_MANAGEMENT_CORS_ORIGINS", "path"),
        ({"CONNECTOR_MANAGEMENT_CORS_ORIGINS": "ftp://a.example"}, "CONNECTOR_MANAGEMENT_CORS_ORIGINS", "http"),
        ({"CONNECTOR_MANAGEMENT_CORS_ORIGINS": "a.example"}, "CONNECTOR_MANAGEMENT_CORS_ORIGINS", "http"),
        ({"CONNECTOR_MANAGEMENT_HOSTNAMES": "http://a.example"}, "CONNECTOR_MANAGEMENT_HOSTNAMES", "host name"),
        ({"CONNECTOR_MANAGEMENT_HOSTNAMES": "a.example/x"}, "CONNECTOR_MANAGEMENT_HOSTNAMES", "host name"),
        ({"CONNECTOR_MANAGEMENT_HOSTNAMES": "*.example"}, "CONNECTOR_MANAGEMENT_HOSTNAMES", "host name"),
    ],
)
def test_bad_guard_settings_are_named(environ: dict[str, str], named: str, says: str) -> None:
    with pytest.raises(SettingsError) as caught:
        load_settings(environ=environ)
    message = str(caught.value)
    assert message.startswith(named + ":"), message
    assert says in message, message


def test_guard_settings_are_normalised() -> None:
    settings = load_settings(
        environ={
            "CONNECTOR_MANAGEMENT_HOSTNAMES": " Node.Example.org , 10.0.0.5,[fd00::1], ",
            "CONNECTOR_MANAGEMENT_CORS_ORIGINS": "HTTPS://Ops.Example.org:443, http://localhost:3000",
        }
    )
    assert settings.management_hostname_list == ("node.example.org", "10.0.0.5", "[fd00::1]")
    assert settings.management_cors_origin_list == ("https://ops.example.org", "http://localhost:3000")


# The protocol surface: every route that changes state wants a token in Authorization, which no "simple"
# cross-origin request can carry, and it never answers CORS; so the same page gets nothing there either.


@pytest.mark.parametrize(
    "path",
    [
        "/api/dsp/2025-1/negotiations/request",
        "/api/dsp/2025-1/transfers/request",
        "/api/credentials/presentations/query",
        "/public/token",
        "/public/anything",
    ],
)
async def test_the_protocol_surface_gives_a_cross_origin_page_nothing(
    keyless: tuple[Node, Management], http: aiohttp.ClientSession, path: str
) -> None:
    node, management = keyless
    url = node.protocol_url + path
    simple = {"Origin": EVIL, "Sec-Fetch-Site": "cross-site", "Content-Type": "text/plain"}
    async with http.post(url, data=b'{"@type": "ContractRequestMessage"}', headers=simple) as response:
        assert response.status in (400, 401), await response.text()
        assert "Access-Control-Allow-Origin" not in response.headers
    form = {**simple, "Content-Type": "application/x-www-form-urlencoded"}
    async with http.post(url, data=b"grant_type=refresh_token&refresh_token=x", headers=form) as response:
        assert response.status in (400, 401), await response.text()
    preflight = {
        "Origin": EVIL,
        "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "authorization",
    }
    async with http.options(url, headers=preflight) as response:
        assert response.status >= 400
        assert not [h for h in response.headers if h.lower().startswith("access-control-")]
    status, negotiations = await management.call("POST", "/management/v3/contractnegotiations/request")
    assert status == 200 and negotiations == []
