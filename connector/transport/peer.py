"""The one HTTP client for talking to peers: bounded in time and size, no redirects, no private targets.

Every URL a peer gives us (a callback address, a DID document location, a data destination) goes through
here, so the limits hold everywhere: a total timeout, a cap on the response body, redirects never
followed, and, unless the operator allows local peers, no connection to loopback, private, link-local
or otherwise non-public addresses (checked on every resolved address, so DNS tricks do not help).
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import aiohttp
import orjson
from aiohttp.abc import AbstractResolver, ResolveResult
from aiohttp.resolver import DefaultResolver

from connector.domain.addresses import is_loopback_address, is_public_address
from connector.domain.errors import PeerError, PeerTimeout

USER_AGENT = "battery-passport-connector"


@dataclass(frozen=True, slots=True)
class PeerLimits:
    """How long and how much a peer may take."""

    timeout: float = 10.0
    connect_timeout: float = 5.0
    max_body_bytes: int = 10 * 1024 * 1024
    allow_local: bool = False


@dataclass(frozen=True, slots=True)
class PeerResponse:
    """A peer's answer: status, headers, and the body (parsed JSON when it was JSON)."""

    status: int
    headers: Mapping[str, str]
    body: Any
    raw: bytes
    content_type: str = ""

    @property
    def ok(self) -> bool:
        """Tell whether the status is 2xx."""
        return 200 <= self.status < 300

    @property
    def said_json(self) -> bool:
        """Tell whether the answer has a body its Content-Type says is JSON (read or not)."""
        return bool(self.raw) and is_json_type(self.content_type)

    def json_or_none(self) -> Any:
        """Return the JSON the answer says it carries, or None when it carries none or it is not valid JSON.

        For an error answer, whose reasons are read where there are any: the body itself is never the error.
        """
        if not self.said_json:
            return None
        try:
            return orjson.loads(self.raw)
        except orjson.JSONDecodeError:
            return None


class _PublicOnlyResolver(AbstractResolver):
    """Resolve names, then refuse the connection when any address is not public."""

    def __init__(self) -> None:
        self._inner = DefaultResolver()

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        results = await self._inner.resolve(host, port, family)
        for result in results:
            if not is_public_address(result["host"]):
                raise PeerError(
                    f"refusing to contact {host}: it resolves to the non-public address {result['host']} "
                    "(set CONNECTOR_ALLOW_LOCAL_PEERS=true for local development)"
                )
        return results

    async def close(self) -> None:
        await self._inner.close()


class PeerClient:
    """Sends requests to peers within the limits; owns one pooled session."""

    def __init__(self, limits: PeerLimits) -> None:
        self.limits = limits
        connector = aiohttp.TCPConnector(
            resolver=None if limits.allow_local else _PublicOnlyResolver(),
            limit=100,
            ttl_dns_cache=60,
        )
        # A push has no limit on the whole request (its deadline moves with progress; see `idle`).
        self._unbounded = aiohttp.ClientTimeout(total=None, sock_connect=limits.connect_timeout)
        self._session = aiohttp.ClientSession(
            connector=connector,
            timeout=aiohttp.ClientTimeout(total=limits.timeout, sock_connect=limits.connect_timeout),
            headers={"User-Agent": USER_AGENT},
            auto_decompress=True,
        )

    async def close(self) -> None:
        """Close the pooled connections."""
        await self._session.close()

    def check_url(self, url: str) -> None:
        """Refuse a URL this node must not contact (bad scheme, credentials in it, non-public IP literal)."""
        try:
            parts = urlsplit(url)
            hostname = parts.hostname
        except ValueError:  # "http://[" and the like: not a URL at all
            hostname = None
        if not hostname or parts.scheme not in ("http", "https"):
            shown = url.split("?", 1)[0][:200]  # never the query: it may carry a token
            raise PeerError(f"refusing to contact {shown!r}: only http(s) URLs with a host are allowed")
        if parts.username or parts.password:
            raise PeerError(f"refusing to contact {parts.hostname}: the URL carries credentials")
        if self.limits.allow_local:
            return
        try:
            literal = ipaddress.ip_address(hostname)
        except ValueError:
            if is_loopback_address(hostname):
                raise PeerError(
                    f"refusing to contact {parts.hostname}: local peers are off "
                    "(set CONNECTOR_ALLOW_LOCAL_PEERS=true for local development)"
                ) from None
            return  # a name: every address it resolves to is checked by the resolver, on each connection
        if not is_public_address(literal):
            raise PeerError(
                f"refusing to contact {parts.hostname}: not a public address "
                "(set CONNECTOR_ALLOW_LOCAL_PEERS=true for local development)"
            )

    async def request(
        self,
        method: str,
        url: str,
        json: Any = None,
        headers: Mapping[str, str] | None = None,
        max_body_bytes: int | None = None,
        within: float | None = None,
        data: Any = None,
        idle: float | None = None,
        decode: bool = True,
    ) -> PeerResponse:
        """Send one request; raise PeerTimeout or PeerError naming the peer when it fails or misbehaves.

        With `idle` and a body of chunks (a push), there is no limit on the whole request: it fails when `idle`
        seconds pass without a chunk going out (or, once all is sent, without the answer). Without `decode` the body
        is left as bytes (`raw`), whatever its content type says. A body sent with `Content-Encoding` is decompressed
        as it arrives, and the limit counts the decompressed bytes.
        """
        self.check_url(url)
        host = urlsplit(url).netloc
        limit = max_body_bytes or self.limits.max_body_bytes
        if data is None and json is not None:
            data = orjson.dumps(json)
            all_headers = {"Content-Type": "application/json", **(headers or {})}
        else:
            # Raw bytes or an async iterator of chunks (a push streams its data through).
            all_headers = dict(headers or {})
        budget = idle if idle is not None else within or self.limits.timeout
        try:
            async with asyncio.timeout(budget) as deadline:
                if idle is not None and data is not None and hasattr(data, "__aiter__"):
                    data = _progressing(data, deadline, idle)
                options: dict[str, Any] = {"timeout": self._unbounded} if idle is not None else {}
                async with self._session.request(
                    method, url, data=data, headers=all_headers, allow_redirects=False, **options
                ) as response:
                    if 300 <= response.status < 400:
                        raise PeerError(
                            f"{host} answered {response.status} with a redirect to "
                            f"{response.headers.get('Location', '?')!r}; redirects are not followed"
                        )
                    declared = response.content_length
                    if declared is not None and declared > limit:
                        raise PeerError(f"{host} sent a {declared}-byte body; the limit is {limit} bytes")
                    raw = await _read_capped(response, limit, host)
                    body = _maybe_json(raw, response.content_type, host) if decode else None
                    return PeerResponse(response.status, dict(response.headers), body, raw, response.content_type)
        except TimeoutError:
            if idle is not None:
                raise PeerTimeout(f"{host} took no data and sent no answer for {idle:g} s") from None
            raise PeerTimeout(f"{host} did not answer within {budget:g} s") from None
        except PeerError:
            raise
        except aiohttp.ClientConnectorError as exc:
            cause = exc.os_error
            if isinstance(cause, PeerError):
                raise cause from None
            raise PeerError(f"cannot connect to {host}: {cause.strerror or cause}") from None
        except aiohttp.ClientError as exc:
            raise PeerError(f"request to {host} failed: {type(exc).__name__}: {exc}") from None


async def _progressing(chunks: AsyncIterator[bytes], deadline: asyncio.Timeout, idle: float) -> AsyncIterator[bytes]:
    """Pass chunks through, moving the deadline `idle` seconds ahead each time one is taken."""
    loop = asyncio.get_running_loop()
    async for chunk in chunks:
        deadline.reschedule(loop.time() + idle)
        yield chunk
    deadline.reschedule(loop.time() + idle)  # the same budget for the answer


async def _read_capped(response: aiohttp.ClientResponse, limit: int, host: str) -> bytes:
    chunks: list[bytes] = []
    size = 0
    async for chunk in response.content.iter_chunked(65536):
        size += len(chunk)
        if size > limit:
            raise PeerError(f"{host} sent more than {limit} bytes; the answer was cut off")
        chunks.append(chunk)
    return b"".join(chunks)


def is_json_type(content_type: str) -> bool:
    """Tell whether a Content-Type (without its parameters) names JSON."""
    return content_type == "application/json" or content_type.endswith("+json")


def read_json(raw: bytes, host: str) -> Any:
    """Return the JSON a peer sent; PeerError naming the peer when the bytes are not valid JSON."""
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise PeerError(f"{host} sent a body that is not valid JSON ({exc})") from None


def _maybe_json(raw: bytes, content_type: str, host: str) -> Any:
    return read_json(raw, host) if raw and is_json_type(content_type) else None
