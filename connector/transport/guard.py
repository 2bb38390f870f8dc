"""The management surface's guard against web pages: what a browser could be made to send, it refuses.

A page on any web site can make its visitor's browser send requests to 127.0.0.1:8181. Four checks, in
one middleware, keep such a page from reading or changing anything, with or without an API key:

- Host: only loopback names, the configured host names and the address the request arrived on. A page that
  re-resolved its own domain to 127.0.0.1 (DNS rebinding) is same-origin with the node, but its requests
  still name its domain in Host.
- Origin (or, without one, Sec-Fetch-Site): a request from a page on another origin is refused, reads
  included, unless that origin is configured for CORS.
- Bodies: a state-changing request's body must be JSON, so a "simple" request (text/plain, a form), which
  browsers send cross-origin without asking, never carries a command.
- CORS: no CORS header at all unless origins are configured; then preflights from those origins only are
  answered, and only their responses carry Access-Control-Allow-Origin.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from dataclasses import dataclass
from urllib.parse import urlsplit

from aiohttp import web

from connector.logs import request_id
from connector.settings import web_origin
from connector.transport.http import Handler
from connector.transport.problems import problem_response

STATE_CHANGING = frozenset({"POST", "PUT", "PATCH", "DELETE"})
JSON_TYPE = "application/json"
HOSTNAMES_SETTING = "CONNECTOR_MANAGEMENT_HOSTNAMES"
ORIGINS_SETTING = "CONNECTOR_MANAGEMENT_CORS_ORIGINS"
# What a configured origin's page may send: the methods and headers the management API uses.
CORS_METHODS = "GET, HEAD, POST, PUT, DELETE"
CORS_HEADERS = "Content-Type, X-Api-Key, X-Request-Id"
CORS_MAX_AGE = "600"
_WILDCARD_BINDS = frozenset({"0.0.0.0", "::", ""})  # noqa: S104
_SHOWN = 200  # longest header value echoed in a refusal


@dataclass(frozen=True, slots=True)
class BrowserPolicy:
    """What the guard allows besides loopback: host names, and origins whose pages may use CORS."""

    hostnames: frozenset[str] = frozenset()
    cors_origins: frozenset[str] = frozenset()

    @classmethod
    def of(cls, hostnames: Iterable[str], cors_origins: Iterable[str], bind_host: str) -> BrowserPolicy:
        """Build the policy; a management surface bound to one non-loopback address also answers to it."""
        names = {name.lower() for name in hostnames}
        bound = _bracketed(bind_host.strip().lower())
        if bound.strip("[]") not in _WILDCARD_BINDS and not _is_loopback_name(bound):
            names.add(bound)
        return cls(hostnames=frozenset(names), cors_origins=frozenset(cors_origins))


LOOPBACK_ONLY = BrowserPolicy()
BROWSER_POLICY: web.AppKey[BrowserPolicy] = web.AppKey("browser_policy", BrowserPolicy)
# (method, route path) -> the content types a route takes besides JSON (JSON Lines for passport imports).
BODY_TYPES: web.AppKey[dict[tuple[str, str], frozenset[str]]] = web.AppKey("body_types", dict)


@web.middleware
async def browser_guard(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Refuse a foreign Host, a foreign Origin or cross-site fetch, a body that is not JSON; answer CORS preflights."""
    policy = request.app[BROWSER_POLICY]
    host = request.headers.get("Host")
    refusal = _host_refusal(request, host, policy)
    if refusal is not None:
        return refusal
    origin = request.headers.get("Origin")
    if request.method == "OPTIONS" and origin is not None and "Access-Control-Request-Method" in request.headers:
        return _preflight(origin, policy)
    refusal = _origin_refusal(request, host, origin, policy)
    if refusal is not None:
        return refusal
    refusal = _body_refusal(request)
    if refusal is not None:
        return refusal
    return await handler(request)


async def add_cors_headers(request: web.Request, response: web.StreamResponse) -> None:
    """Let a configured origin's page read the response (errors included); say that responses vary by Origin."""
    policy = request.app[BROWSER_POLICY]
    if not policy.cors_origins:
        return
    _vary_origin(response)
    origin = request.headers.get("Origin")
    if origin is not None and _normalised(origin) in policy.cors_origins:
        response.headers["Access-Control-Allow-Origin"] = origin
        response.headers["Access-Control-Expose-Headers"] = "X-Request-Id"


def _refuse(
    status: int,
    title: str,
    detail: str,
    header: str,
    value: str | None,
    headers: dict[str, str] | None = None,
) -> web.Response:
    # One problem, EDC-style: its type, the header at fault as its path, and (short) what that header said.
    kind = "".join(word[:1].upper() + word[1:] for word in title.split())
    shown = value if value is None or len(value) <= _SHOWN else value[:_SHOWN] + "..."
    errors = [{"message": detail, "type": kind, "path": header, "invalidValue": shown}]
    return problem_response(status, title, detail, request_id.get(None), errors, headers)


def _shown(value: str) -> str:
    return repr(value if len(value) <= _SHOWN else value[:_SHOWN] + "...")


# Host.


def _host_refusal(request: web.Request, host: str | None, policy: BrowserPolicy) -> web.Response | None:
    if host is None:
        # Browsers always send Host (and aiohttp refuses HTTP/1.1 without one), so an HTTP/1.0 request without
        # it is a local tool's probe; it is answered only when it comes from this machine.
        if _is_loopback_address(request.remote):
            return None
        return _refuse(
            400,
            "Host required",
            "the request has no Host header; only requests from this machine may omit it",
            "Host",
            None,
        )
    parts = _host_parts(host)
    if parts is not None and (
        _is_loopback_name(parts[0]) or parts[0] in policy.hostnames or _is_arrival_address(request, parts[0])
    ):
        return None
    return _refuse(
        421,
        "Misdirected request",
        f"the Host {_shown(host)} is not a name of this management surface; it answers to loopback names "
        f"(localhost, 127.0.0.1, [::1]) and to the host names in {HOSTNAMES_SETTING}: add the name there to "
        "allow it",
        "Host",
        host,
    )


def _host_parts(host: str) -> tuple[str, int | None] | None:
    """Split a Host header into its name (lower case, IPv6 in brackets) and port; None when it is malformed."""
    text = host.strip().lower()
    if text.startswith("["):
        end = text.find("]")
        name, rest = text[: end + 1], text[end + 1 :]
        if end < 0 or not _is_ip(name[1:-1], 6):
            return None
    else:
        name, colon, port = text.partition(":")
        rest = colon + port
        if not name:
            return None
    if not rest:
        return name, None
    digits = rest[1:]
    if rest[0] != ":" or not digits.isdigit() or len(digits) > 5 or int(digits) > 65535:
        return None
    return name, int(digits)


def _is_ip(text: str, version: int) -> bool:
    try:
        return ipaddress.ip_address(text).version == version
    except ValueError:
        return False


def _is_loopback_name(name: str) -> bool:
    if name == "localhost":
        return True
    return _is_loopback_address(name[1:-1] if name.startswith("[") else name)


def _is_loopback_address(text: str | None) -> bool:
    if not text:
        return False
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        return False
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped.is_loopback
    return address.is_loopback


def _is_arrival_address(request: web.Request, name: str) -> bool:
    """Tell whether Host names, as an address, the very address the connection arrived on (no name to rebind)."""
    bare = name[1:-1] if name.startswith("[") else name
    sockname = request.transport.get_extra_info("sockname") if request.transport is not None else None
    if not isinstance(sockname, tuple) or not sockname:
        return False
    try:
        wanted = ipaddress.ip_address(bare)
        arrived = ipaddress.ip_address(str(sockname[0]).split("%", 1)[0])
    except ValueError:
        return False
    if isinstance(arrived, ipaddress.IPv6Address) and arrived.ipv4_mapped is not None:
        arrived = arrived.ipv4_mapped
    return wanted == arrived


def _bracketed(name: str) -> str:
    return f"[{name}]" if ":" in name and not name.startswith("[") else name


# Origin and Sec-Fetch-Site.


def _origin_refusal(
    request: web.Request, host: str | None, origin: str | None, policy: BrowserPolicy
) -> web.Response | None:
    if origin is not None:
        given = _normalised(origin)
        if given is not None and (given in policy.cors_origins or _is_own_origin(given, host)):
            return None
        return _refuse(
            403,
            "Foreign origin",
            f"the Origin {_shown(origin)} is neither this management surface's own origin nor one of "
            f"{ORIGINS_SETTING}: a web page on another origin may not use the management API; list the origin "
            "there to allow it",
            "Origin",
            origin,
        )
    site = request.headers.get("Sec-Fetch-Site", "").strip().lower()
    if site in ("cross-site", "same-site"):
        return _refuse(
            403,
            "Cross-site request",
            f"the browser says this request comes from another site (Sec-Fetch-Site: {site}): a web page on "
            f"another origin may not use the management API; a page whose origin is in {ORIGINS_SETTING} "
            "may (with CORS)",
            "Sec-Fetch-Site",
            site,
        )
    return None


def _normalised(origin: str) -> str | None:
    try:
        return web_origin(origin)
    except ValueError:
        return None  # "null" (sandboxed frames, file: pages) and anything malformed is never allowed


def _is_own_origin(origin: str, host: str | None) -> bool:
    """Tell whether an origin names the host and port of the request's Host (which the guard accepted)."""
    parts = _host_parts(host) if host is not None else None
    if parts is None:
        return False
    name, port = parts
    scheme = urlsplit(origin).scheme
    # Either scheme: whoever serves this host and port is this surface (or the proxy in front of it).
    return web_origin(f"{scheme}://{name}:{port or (443 if scheme == 'https' else 80)}") == origin


# CORS preflights.


def _preflight(origin: str, policy: BrowserPolicy) -> web.Response:
    given = _normalised(origin)
    if given is None or given not in policy.cors_origins:
        allowed = (
            f"it lists {len(policy.cors_origins)} other origin(s)" if policy.cors_origins else "it is empty: no CORS"
        )
        return _refuse(
            403,
            "Foreign origin",
            f"CORS preflight refused: the Origin {_shown(origin)} is not in {ORIGINS_SETTING} ({allowed})",
            "Origin",
            origin,
        )
    headers = {
        "Access-Control-Allow-Origin": origin,
        "Access-Control-Allow-Methods": CORS_METHODS,
        "Access-Control-Allow-Headers": CORS_HEADERS,
        "Access-Control-Max-Age": CORS_MAX_AGE,
        "Vary": "Origin, Access-Control-Request-Method, Access-Control-Request-Headers",
    }
    return web.Response(status=204, headers=headers)


def _vary_origin(response: web.StreamResponse) -> None:
    present = [v.strip() for v in response.headers.get("Vary", "").split(",") if v.strip()]
    if not any(v.lower() in ("origin", "*") for v in present):
        response.headers["Vary"] = ", ".join([*present, "Origin"])


# Bodies.


def _body_refusal(request: web.Request) -> web.Response | None:
    if request.method not in STATE_CHANGING or not request.body_exists or request.match_info.http_exception:
        return None  # no body to misread, or no such route (its 404 or 405 says more)
    declared = request.headers.get("Content-Type")
    given = request.content_type.lower() if declared else None
    extra = _route_body_types(request)
    if given is not None and (_is_json(given) or given in extra):
        return None
    accepted = [JSON_TYPE, "application/*+json", *sorted(extra)]
    shown = f"the Content-Type {given!r}" if given is not None else "no Content-Type"
    return _refuse(
        415,
        "Unsupported media type",
        f"a body with {shown} is not accepted here: send {' or '.join(accepted)}",
        "Content-Type",
        given,
        headers={"Accept": ", ".join(accepted)},
    )


def _route_body_types(request: web.Request) -> frozenset[str]:
    route = request.match_info.route
    if route.resource is None:
        return frozenset()
    return request.app.get(BODY_TYPES, {}).get((route.method, route.resource.canonical), frozenset())


def _is_json(content_type: str) -> bool:
    kind, _, subtype = content_type.partition("/")
    return content_type == JSON_TYPE or (kind == "application" and subtype.endswith("+json"))
