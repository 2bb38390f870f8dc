"""The data plane on the protocol surface (`/public/...`) and the mover that pushes data to consumers.

A request carries the token of an endpoint data reference; the data-plane service decides (token,
transfer state, agreement, usage policy) and this module moves the bytes: HttpData assets are proxied to
the operator's backend and streamed back without being held in memory, with the asset's secrets as
headers and audit headers naming the agreement and the consumer. Each access is logged.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable, Iterable

import aiohttp
from aiohttp import web
from yarl import URL

import policies
from connector.domain.assets import BATTERY_PASSPORT, DIGITAL_TWIN_EVENT_API, HTTP_DATA, Asset
from connector.domain.backend_urls import PathRefused, join_below
from connector.domain.errors import ConnectorError, InvalidInput, PeerError
from connector.domain.participants import Participant
from connector.domain.transfer import Transfer
from connector.dsp.transfer import PushDestination, endpoint_properties, parse_push_destination
from connector.identity.access_tokens import AccessDenied
from connector.services.dataplane import AccessLog, DataPlaneService, Forbidden, Grant, InvalidRefresh
from connector.services.transfers import agreement_policy, counts_uses, give_back_use, take_use
from connector.store import Store
from connector.store.negotiations import Agreement, OutboxItem
from connector.transport import notifications, passports, registry
from connector.transport.http import json_response
from connector.transport.peer import PeerClient

log = logging.getLogger("connector.dataplane")

PUBLIC = "/public"  # where the data plane is mounted on the protocol surface
CHUNK = 64 * 1024
# The backend's response headers a consumer gets: those that describe the content, nothing about the backend
# (no Location, Set-Cookie, Server, or headers naming internal hosts).
_PASSED_HEADERS = frozenset(
    {
        "content-type",
        "content-encoding",
        "content-language",
        "content-disposition",
        "content-range",
        "accept-ranges",
        "etag",
        "last-modified",
        "cache-control",
        "expires",
        "vary",
    }
)

DATA_PLANE: web.AppKey[DataPlaneService] = web.AppKey("data_plane", DataPlaneService)
ACCESS_LOG: web.AppKey[AccessLog] = web.AppKey("access_log", AccessLog)
BACKEND: web.AppKey[aiohttp.ClientSession] = web.AppKey("backend", aiohttp.ClientSession)


def backend_session(timeout: float) -> aiohttp.ClientSession:
    """The client for operators' backends (configured by the operator, so private addresses are allowed)."""
    return aiohttp.ClientSession(
        timeout=aiohttp.ClientTimeout(total=None, sock_connect=10, sock_read=timeout),
        auto_decompress=False,
    )


def _flag(asset: Asset, name: str) -> bool:
    return asset.data_address.properties.get(name) == "true"


def backend_request(
    asset: Asset, grant: Grant, raw_sub_path: str = "", query: Iterable[tuple[str, str]] = ()
) -> tuple[str, URL, dict[str, str]]:
    """Return (method, url, headers) for the backend call of an HttpData asset; raise PathRefused.

    `raw_sub_path` is what the consumer wrote after `/public/` (still percent-encoded) and `query` its decoded
    parameters; each is passed on only when the asset says so, and only through `join_below`, which refuses
    anything that would leave the asset's baseUrl. The URL goes out exactly as built (no client normalisation).
    """
    props = asset.data_address.properties
    base = str(URL(str(props["baseUrl"])))  # the operator's URL as the client would send it
    url = join_below(
        base,
        raw_sub_path if _flag(asset, "proxyPath") else "",
        query if _flag(asset, "proxyQueryParams") else (),
    )
    headers = {
        "X-Agreement-Id": grant.agreement.id,
        "X-Consumer-Id": grant.transfer.counterparty_id,
        "X-Transfer-Process-Id": grant.transfer.id,
    }
    secrets = asset.data_address.secrets
    if "authKey" in secrets or "authCode" in secrets:
        headers[secrets.get("authKey", "Authorization")] = secrets.get("authCode", "")
    return str(props.get("method") or "GET"), URL(url, encoded=True), headers


def _denied(status: int, reason: str) -> web.Response:
    return json_response({"error": "Unauthorized" if status == 401 else "Forbidden", "reason": reason}, status=status)


def raw_sub_path(request: web.Request) -> str:
    """Return what a data request names after `/public/`, as sent (percent-encoded); raise PathRefused.

    The router matches the decoded path, which cannot tell `/` from `%2F`: the sub-path is cut from the raw one.
    """
    raw = request.rel_url.raw_path
    if raw == PUBLIC:
        return ""
    if not raw.startswith(PUBLIC + "/"):
        raise PathRefused(
            f"the request is refused: {PUBLIC}/ must be written plainly (not percent-encoded); "
            "a data request may not leave the dataset's address"
        )
    return raw[len(PUBLIC) + 1 :]


async def public(request: web.Request) -> web.StreamResponse:
    """Serve one data request under a transfer's token."""
    service, access_log = request.app[DATA_PLANE], request.app[ACCESS_LOG]
    tail = request.match_info.get("tail", "")
    try:
        grant = await service.authorize(request.headers.get("Authorization"), request.headers.get("X-Purpose"))
    except AccessDenied as exc:
        access_log.record(None, request.method, request.path, 401, 0, str(exc))
        return _denied(401, str(exc))
    except Forbidden as exc:
        access_log.record(None, request.method, request.path, 403, 0, str(exc))
        return _denied(403, str(exc))
    # A counted use stands once data went out; a request that sent none (refused, failed) gives it back.
    sent: list[int] = [0]
    try:
        return await _serve(request, grant, tail, sent)
    except BaseException:
        if not sent[0]:
            await service.give_back(grant)
        raise


async def _serve(request: web.Request, grant: Grant, tail: str, sent: list[int]) -> web.StreamResponse:
    service, access_log = request.app[DATA_PLANE], request.app[ACCESS_LOG]
    asset = grant.asset
    served_here = (BATTERY_PASSPORT, DIGITAL_TWIN_EVENT_API, *registry.TYPES)
    if asset.data_address.type in served_here:
        try:
            if asset.data_address.type == BATTERY_PASSPORT:
                served, refusal = await passports.data_plane(request, asset.data_address.properties, tail)
            elif asset.data_address.type == DIGITAL_TWIN_EVENT_API:
                served, refusal = await notifications.data_plane(request, grant)
            else:
                served, refusal = await registry.data_plane(request, grant, tail)
        except ConnectorError as exc:
            served, refusal = json_response({"error": "Bad Request", "reason": exc.message}, status=400), exc.message
        size = len(served.body) if isinstance(served.body, bytes) else 0
        access_log.record(grant, request.method, request.path, served.status, size, refusal)
        if not 200 <= served.status < 300:
            await service.give_back(grant)
        else:
            sent[0] = size or 1
        return served
    if asset.data_address.type != HTTP_DATA:
        reason = f"this node does not serve {asset.data_address.type} data through the data plane yet"
        access_log.record(grant, request.method, request.path, 501, 0, reason)
        await service.give_back(grant)
        sent[0] = -1  # settled: given back
        return json_response({"error": "Not Implemented", "reason": reason}, status=501)
    try:
        method, url, headers = backend_request(asset, grant, raw_sub_path(request), request.query.items())
    except PathRefused as exc:
        access_log.record(grant, request.method, request.path, 400, 0, exc.message)
        await service.give_back(grant)
        sent[0] = -1  # settled: given back
        return json_response({"error": "Bad Request", "reason": exc.message}, status=400)
    if _flag(asset, "proxyMethod"):
        method = request.method
    body = request.content if request.can_read_body and _flag(asset, "proxyBody") else None
    if body is not None and request.content_type:
        headers["Content-Type"] = request.content_type
    try:
        async with request.app[BACKEND].request(
            method, url, headers=headers, data=body, allow_redirects=False
        ) as answer:
            if 300 <= answer.status < 400:
                # Not followed, and not passed on: its Location would show the consumer the backend's addresses.
                reason = f"the data source answered {answer.status} (a redirect), which the data plane does not follow"
                access_log.record(grant, request.method, request.path, 502, 0, reason)
                await service.give_back(grant)
                sent[0] = -1  # settled: given back
                return json_response({"error": "Bad Gateway", "reason": reason}, status=502)
            response = web.StreamResponse(status=answer.status)
            for name, value in answer.headers.items():
                if name.lower() in _PASSED_HEADERS:
                    response.headers[name] = value
            if answer.content_length is not None:
                response.content_length = answer.content_length
            await response.prepare(request)
            async for chunk in answer.content.iter_chunked(CHUNK):
                await response.write(chunk)
                sent[0] += len(chunk)
            await response.write_eof()
    except (aiohttp.ClientError, TimeoutError) as exc:
        reason = f"the transfer was cut: {type(exc).__name__}"
        access_log.record(grant, request.method, request.path, 502, sent[0], reason)
        if sent[0]:
            raise  # the response had begun (the use stands); the connection is cut
        await service.give_back(grant)
        sent[0] = -1  # settled: given back
        return json_response(
            {"error": "Bad Gateway", "reason": f"the data source did not answer: {reason}"}, status=502
        )
    access_log.record(grant, request.method, request.path, answer.status, sent[0])
    if not 200 <= answer.status < 300:
        await service.give_back(grant)
        sent[0] = -1  # settled: given back
    elif not sent[0]:
        sent[0] = 1  # an empty 2xx answer is a use too
    return response


async def refresh(request: web.Request) -> web.Response:
    """The Tractus-X token refresh endpoint: a new access and refresh token for a STARTED transfer.

    `grant_type=refresh_token&refresh_token=...` in the query (as Tractus-X EDC 0.9-0.11 sends it) or in a
    form body (RFC 6749); `Authorization: Bearer <the consumer's self-issued token>` (docs/transfer.md).
    """
    service = request.app[DATA_PLANE]
    params: dict[str, str] = dict(request.query)
    if request.can_read_body and request.content_type == "application/x-www-form-urlencoded":
        if request.content_length is not None and request.content_length > 16_384:
            return _invalid("the form body is larger than a refresh request needs (16 KiB)")
        form = await request.post()
        params.update({k: v for k, v in form.items() if isinstance(v, str)})
    grant = params.get("grant_type", "refresh_token")
    if grant != "refresh_token":
        return _invalid(f"grant_type {grant[:64]!r} is not supported; use refresh_token")
    try:
        address = await service.refresh(request.headers.get("Authorization"), params.get("refresh_token"))
    except InvalidRefresh as exc:
        return _invalid(str(exc))
    except AccessDenied as exc:
        return _denied(401, str(exc))
    except Forbidden as exc:
        return _denied(403, str(exc))
    props = endpoint_properties(address)
    lifetime = int(props["expiresIn"])
    return json_response(
        {
            "access_token": props["authorization"],
            "token_type": "bearer",
            "expires_in": lifetime,
            "expires": lifetime,  # the name Tractus-X EDC 0.9-0.11 reads
            "refresh_token": props["refreshToken"],
            "endpoint": props["endpoint"],
            "dataAddress": address,
        }
    )


def _invalid(reason: str) -> web.Response:
    return json_response({"error": "invalid_request", "reason": reason}, status=400)


def add_routes(
    app: web.Application, service: DataPlaneService, access_log: AccessLog, backend: aiohttp.ClientSession
) -> None:
    """Mount the data plane on an application."""
    app[DATA_PLANE] = service
    app[ACCESS_LOG] = access_log
    app[BACKEND] = backend
    app.router.add_post(f"{PUBLIC}/token", refresh)
    app.router.add_route("*", PUBLIC, public)
    app.router.add_route("*", PUBLIC + r"/{tail:[\s\S]*}", public)  # any character, newlines too


class HttpMover:
    """Performs push jobs: reads the asset from its backend and streams it to the consumer's endpoint."""

    def __init__(self, store: Store, peer: PeerClient, backend: aiohttp.ClientSession) -> None:
        self._store = store
        self._peer = peer
        self._backend = backend
        self.observers: list[Callable[[int], None]] = []  # told of the bytes of each chunk pushed (metrics)

    async def push(self, item: OutboxItem) -> tuple[int, object]:
        """Push the data of the item's transfer; return (status, None) like a delivery."""
        async with self._store.read() as tx:
            transfer = await tx.transfers.get(item.negotiation_id)
            agreement = await tx.agreements.get(transfer.agreement_id) if transfer else None
            asset = await tx.assets.get(transfer.asset_id) if transfer else None
        if transfer is None or agreement is None or asset is None or transfer.destination is None:
            raise PeerError("the transfer, its agreement or its dataset no longer exists")
        if asset.data_address.type != HTTP_DATA:
            raise PeerError(f"pushing {asset.data_address.type} data is not supported yet")
        try:
            destination = parse_push_destination(transfer.destination)
        except InvalidInput as exc:  # a destination stored before it was checked on receipt
            raise PeerError(f"the push destination cannot be used: {exc.message}") from None
        self._peer.check_url(destination.url)
        # A push is one use of the data: under a count limit it takes one first, and gives it back on failure.
        try:
            policy = agreement_policy(agreement)
        except policies.PolicyError as exc:
            raise PeerError(f"the agreement's policy cannot be evaluated: {exc}") from None
        counted = counts_uses(policy)
        if counted:
            decision = await take_use(self._store, agreement, Participant(transfer.counterparty_id), policy)
            if not decision.permitted:
                raise PeerError(f"the usage policy is not satisfied: {decision.reason}")
        try:
            status, body = await self._push(transfer, agreement, asset, destination)
        except BaseException:
            if counted:
                await give_back_use(self._store, agreement.id)
            raise
        if counted and not 200 <= status < 300:
            await give_back_use(self._store, agreement.id)
        return status, body

    async def _push(
        self, transfer: Transfer, agreement: Agreement, asset: Asset, destination: PushDestination
    ) -> tuple[int, object]:
        method, url, headers = backend_request(asset, Grant(transfer, agreement, asset))
        # The destination's own headers (its credential among them), then this node's, which it cannot replace.
        ours = {"x-agreement-id", "x-transfer-process-id", "content-type"}
        out_headers = {
            **{k: v for k, v in destination.headers.items() if k.lower() not in ours},
            "X-Agreement-Id": agreement.id,
            "X-Transfer-Process-Id": transfer.peer_pid or "",
        }
        try:
            async with self._backend.request(method, url, headers=headers, allow_redirects=False) as source:
                if not 200 <= source.status < 300:
                    raise PeerError(f"the data source answered {source.status}")
                out_headers["Content-Type"] = (
                    destination.content_type or source.headers.get("Content-Type") or "application/octet-stream"
                )

                async def chunks() -> AsyncIterator[bytes]:
                    async for chunk in source.content.iter_chunked(CHUNK):
                        yield chunk
                        for observer in self.observers:
                            observer(len(chunk))

                # No limit on the whole push (it may be large); each chunk must go out within the peer timeout.
                answer = await self._peer.request(
                    destination.method,
                    destination.url,
                    data=chunks(),
                    headers=out_headers,
                    idle=self._peer.limits.timeout,
                )
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise PeerError(f"the data source failed: {type(exc).__name__}") from None
        return answer.status, answer.body
