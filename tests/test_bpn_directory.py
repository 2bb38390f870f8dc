"""BPNs resolved to DIDs: through a BDRS-shaped server on loopback (gzip, a membership presentation as bearer), through
a directory file, and the directory's caching, single fetch, outage and size rules (CX-0167, docs/identity.md)."""

from __future__ import annotations

import asyncio
import gzip
import json
import logging
import tracemalloc
import zlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from connector.app import Node
from connector.domain.errors import PeerError
from connector.identity import bdrs
from connector.identity.did import did_web_to_url, parse_did_document
from connector.identity.signature import MalformedJws, parse, verify
from tests.conftest import API_KEY, EDC_CONTEXT, ODRL_CONTEXT, Management, NodeFactory
from tests.test_two_nodes_catenax import MEMBER_BPN, OTHER_BPN, _grant, _hold, _provider

PROVIDER_BPN = "BPNL000000000001"
UNKNOWN_BPN = "BPNL0000000000ZZ"


class Bdrs:
    """The BDRS directory API on loopback, as bpn-did-resolution-service serves it (research §3).

    `GET /api/directory/bpn-directory` with `Authorization: Bearer <VP-JWT>`: the presentation's signature is checked
    against its holder's DID document and it must hold a MembershipCredential of that holder (else 401/403). The
    answer is the JSON object BPN -> DID, gzipped, with `Content-Encoding: gzip` and no caching headers.
    """

    def __init__(self, entries: dict[str, str] | None = None) -> None:
        self.entries: dict[str, str] = dict(entries or {})
        self.presented: list[dict[str, Any]] = []  # the payloads of the presentations it accepted
        self.refused: list[int] = []
        self.body: bytes | None = None  # a body to send instead of the entries
        self.say_gzip = True  # send Content-Encoding: gzip
        self.refuse: int | None = None  # refuse every presentation with this status
        self.url = ""
        self._runner: web.AppRunner | None = None

    @property
    def requests(self) -> int:
        return len(self.presented) + len(self.refused)

    async def start(self) -> None:
        app = web.Application()
        app.router.add_get("/api/directory/bpn-directory", self._directory)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.url = f"http://127.0.0.1:{site._server.sockets[0].getsockname()[1]}/api/directory"  # type: ignore[union-attr]

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    def _refuse(self, status: int) -> web.Response:
        self.refused.append(status)
        return web.json_response({"error": "unauthorized"}, status=status)

    async def _directory(self, request: web.Request) -> web.Response:
        authorization = request.headers.get("Authorization", "")
        if authorization[:7].lower() != "bearer ":
            return self._refuse(401)
        try:
            vp = parse(authorization[7:])
        except MalformedJws:
            return self._refuse(401)
        holder = str(vp.payload.get("iss", ""))
        async with (
            aiohttp.ClientSession() as http,
            http.get(did_web_to_url(holder, allow_http_loopback=True)) as answer,
        ):
            document = parse_did_document(await answer.read(), holder)
        key = document.key(vp.header.get("kid"), "authentication")
        if key is None or not verify(vp, key.key):
            return self._refuse(401)
        if self.refuse is not None:
            return self._refuse(self.refuse)
        credentials = [parse(jwt).payload for jwt in vp.payload.get("vp", {}).get("verifiableCredential", [])]
        if not any(
            "MembershipCredential" in c["vc"]["type"] and c["vc"]["credentialSubject"]["id"] == holder
            for c in credentials
        ):
            return self._refuse(403)
        self.presented.append(dict(vp.payload))
        body = self.body if self.body is not None else gzip.compress(json.dumps(self.entries).encode())
        headers = {"Content-Type": "application/json"}
        if self.say_gzip:
            headers["Content-Encoding"] = "gzip"
        return web.Response(body=body, headers=headers)


@pytest.fixture
async def directory_server() -> AsyncIterator[Bdrs]:
    server = Bdrs()
    await server.start()
    yield server
    await server.stop()


async def _member(
    node_factory: NodeFactory, http: aiohttp.ClientSession, tmp_path: Path, **settings: Any
) -> tuple[Node, Node]:
    """Start a provider (also the dataspace's issuer) and a consumer holding a MembershipCredential it issued."""
    provider, issuer_dir = await _provider(node_factory, tmp_path)
    consumer = await node_factory(api_key=API_KEY, **settings)
    await _hold(consumer, http, _grant(issuer_dir, consumer.settings.effective_did, MEMBER_BPN, "membership"))
    return provider, consumer


async def _publish_open(provider: Node, http: aiohttp.ClientSession) -> None:
    api = Management(http, provider)
    asset = {
        "@context": EDC_CONTEXT,
        "@id": "passports",
        "properties": {"name": "Passports"},
        "dataAddress": {"type": "HttpData", "baseUrl": "http://127.0.0.1:9/passports"},
    }
    assert (await api.call("POST", "/management/v3/assets", asset))[0] == 200
    policy = {"@context": EDC_CONTEXT, "@id": "open", "policy": {"@context": ODRL_CONTEXT, "@type": "Set"}}
    assert (await api.call("POST", "/management/v3/policydefinitions", policy))[0] == 200
    definition = {
        "@context": EDC_CONTEXT,
        "@id": "cd",
        "accessPolicyId": "open",
        "contractPolicyId": "open",
        "assetsSelector": [],
    }
    assert (await api.call("POST", "/management/v3/contractdefinitions", definition))[0] == 200


def _catalog_request(provider: Node, counterparty: str) -> dict[str, Any]:
    return {
        "@context": EDC_CONTEXT,
        "@type": "CatalogRequest",
        "counterPartyAddress": provider.settings.dsp_base_url,
        "counterPartyId": counterparty,
        "protocol": "dataspace-protocol-http:2025-1",
    }


async def _negotiated(api: Management, provider: Node, counterparty: str, offer: dict[str, Any]) -> dict[str, Any]:
    request = {
        "@context": {**EDC_CONTEXT, "odrl": "http://www.w3.org/ns/odrl/2/"},
        "@type": "ContractRequest",
        "counterPartyAddress": provider.settings.dsp_base_url,
        "counterPartyId": counterparty,
        "protocol": "dataspace-protocol-http:2025-1",
        "policy": {**offer, "odrl:assigner": {"@id": counterparty}, "odrl:target": {"@id": "passports"}},
    }
    status, created = await api.call("POST", "/management/v3/contractnegotiations", request)
    assert status == 200, created
    async with asyncio.timeout(20):
        while True:
            _, negotiation = await api.call("GET", f"/management/v3/contractnegotiations/{created['@id']}")
            if negotiation["state"] in ("FINALIZED", "TERMINATED"):
                return dict(negotiation)
            await asyncio.sleep(0.05)


# Outbound: a counterparty named by its BPN.


async def test_a_bpn_counterparty_is_resolved_through_the_bdrs_for_catalog_and_negotiation(
    node_factory: NodeFactory, http: aiohttp.ClientSession, tmp_path: Path, directory_server: Bdrs
) -> None:
    provider, consumer = await _member(node_factory, http, tmp_path, bdrs_url=directory_server.url)
    directory_server.entries = {PROVIDER_BPN: provider.settings.effective_did}
    await _publish_open(provider, http)
    api = Management(http, consumer)

    status, catalog = await api.call("POST", "/management/v3/catalog/request", _catalog_request(provider, PROVIDER_BPN))
    assert status == 200, catalog
    assert catalog["dcat:dataset"]["@id"] == "passports"
    # The consumer presented its own MembershipCredential, signed by its key, as Tractus-X EDC does.
    [presented] = directory_server.presented
    assert presented["iss"] == consumer.settings.effective_did and presented["aud"] == consumer.settings.effective_did

    negotiation = await _negotiated(api, provider, PROVIDER_BPN, catalog["dcat:dataset"]["odrl:hasPolicy"])
    assert negotiation["state"] == "FINALIZED", negotiation.get("errorDetail")
    # The process names the DID the BPN resolved to (the provider's messages come signed by it).
    assert negotiation["counterPartyId"] == provider.settings.effective_did
    # One fetch served both requests: the directory is kept (CONNECTOR_BDRS_CACHE_SECONDS).
    assert directory_server.requests == 1


async def test_unknown_bpns_and_an_unreachable_bdrs_are_clear_errors(
    node_factory: NodeFactory, http: aiohttp.ClientSession, tmp_path: Path, directory_server: Bdrs
) -> None:
    provider, consumer = await _member(node_factory, http, tmp_path, bdrs_url=directory_server.url)
    directory_server.entries = {PROVIDER_BPN: provider.settings.effective_did}
    api = Management(http, consumer)

    status, problem = await api.call("POST", "/management/v3/catalog/request", _catalog_request(provider, UNKNOWN_BPN))
    assert status == 400, problem
    assert UNKNOWN_BPN in problem["detail"] and directory_server.url in problem["detail"]
    assert problem["errors"][0]["path"] == "counterPartyId"

    await directory_server.stop()
    fresh = await node_factory(api_key=API_KEY, bdrs_url=directory_server.url)
    status, problem = await Management(http, fresh).call(
        "POST", "/management/v3/catalog/request", _catalog_request(provider, PROVIDER_BPN)
    )
    assert status == 502, problem
    assert f"the BDRS at {directory_server.url} cannot be read" in problem["detail"]


async def test_without_a_directory_a_bpn_counterparty_is_refused_naming_the_settings(
    node: Node, management: Management
) -> None:
    status, problem = await management.call(
        "POST", "/management/v3/catalog/request", _catalog_request(node, PROVIDER_BPN)
    )
    assert status == 400, problem
    assert PROVIDER_BPN in problem["detail"] and "CONNECTOR_BDRS_URL" in problem["detail"]


async def test_the_bdrs_refuses_a_node_without_a_membership_credential(
    node_factory: NodeFactory, http: aiohttp.ClientSession, directory_server: Bdrs
) -> None:
    consumer = await node_factory(api_key=API_KEY, bdrs_url=directory_server.url)
    with pytest.raises(bdrs.BpnDirectoryUnavailable, match="holds no valid MembershipCredential"):
        await consumer.identity.participant_did(PROVIDER_BPN)
    assert directory_server.requests == 0


async def test_a_bdrs_refusing_the_presentation_is_named_with_its_status(
    node_factory: NodeFactory, http: aiohttp.ClientSession, tmp_path: Path, directory_server: Bdrs
) -> None:
    _, consumer = await _member(node_factory, http, tmp_path, bdrs_url=directory_server.url)
    directory_server.refuse = 403
    with pytest.raises(bdrs.BpnDirectoryUnavailable) as raised:
        await consumer.identity.participant_did(PROVIDER_BPN)
    assert raised.value.message == (
        f"the BDRS at {directory_server.url} cannot be read: it answered 403: it did not accept this node's "
        "MembershipCredential (is the credential's issuer the one the BDRS trusts?)"
    )


async def test_a_directory_file_resolves_bpns_for_a_local_dataspace(
    node_factory: NodeFactory, http: aiohttp.ClientSession, tmp_path: Path
) -> None:
    provider = await node_factory(api_key=API_KEY)
    await _publish_open(provider, http)
    directory = tmp_path / "bpn-directory.json"
    directory.write_text(json.dumps({PROVIDER_BPN: provider.settings.effective_did}))
    consumer = await node_factory(api_key=API_KEY, bpn_directory_file=directory)
    api = Management(http, consumer)
    status, catalog = await api.call("POST", "/management/v3/catalog/request", _catalog_request(provider, PROVIDER_BPN))
    assert status == 200, catalog
    negotiation = await _negotiated(api, provider, PROVIDER_BPN, catalog["dcat:dataset"]["odrl:hasPolicy"])
    assert negotiation["state"] == "FINALIZED" and negotiation["counterPartyId"] == provider.settings.effective_did


# Inbound: the caller's BPN from its DID.


async def test_a_callers_bpn_comes_from_the_directory_when_its_credentials_state_none(
    node_factory: NodeFactory, http: aiohttp.ClientSession, tmp_path: Path
) -> None:
    """The caller's BPN for its business partner groups is its DID's entry when its credentials state none (Tractus-X
    0.13 resolves it through the BDRS); cx-policy:BusinessPartnerNumber still reads only a BpnCredential, as there."""
    from tests.test_two_nodes_catalog import _dataset_ids, _request_catalog
    from tests.test_two_nodes_catenax import _publish
    from tests.test_two_nodes_transfer import Backend

    directory = tmp_path / "bpn-directory.json"
    directory.write_text("{}")

    async def with_directory(**settings: Any) -> Node:
        node: Node = await node_factory(bpn_directory_file=directory, **settings)
        return node

    provider, issuer_dir = await _provider(with_directory, tmp_path)
    backend = Backend()
    await backend.start()
    try:
        await _publish(provider, http, backend)
    finally:
        await backend.stop()
    member = await node_factory(api_key=API_KEY)
    # A MembershipCredential without holderIdentifier: the credentials state no BPN.
    await _hold(member, http, _grant(issuer_dir, member.settings.effective_did, "", "membership"))
    assert _dataset_ids((await _request_catalog(Management(http, member), provider))[1]) == ["passports-open"]

    # The provider's directory file names the member's DID (the file is read again when it changes).
    directory.write_text(json.dumps({MEMBER_BPN: member.settings.effective_did, OTHER_BPN: "did:web:other.example"}))
    visible = _dataset_ids((await _request_catalog(Management(http, member), provider))[1])
    assert visible == ["passports-gold", "passports-open"]


# The directory itself: caching, one fetch at a time, outages, sizes.


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _serving(entries: dict[str, str], calls: list[int], gate: asyncio.Event | None = None) -> bdrs.Fetch:
    async def fetch() -> bytes:
        calls.append(1)
        if gate is not None:
            await gate.wait()
        return gzip.compress(json.dumps(entries).encode())

    return fetch


async def test_concurrent_lookups_share_one_fetch_and_the_map_is_kept_until_it_expires() -> None:
    clock, calls, gate = Clock(), [], asyncio.Event()
    entries = {PROVIDER_BPN: "did:web:provider.example", MEMBER_BPN: "did:web:member.example"}
    directory = bdrs.BdrsDirectory(
        "https://bdrs.example/api/directory", _serving(entries, calls, gate), 900, 10**6, clock
    )
    lookups = [asyncio.create_task(directory.did_of(PROVIDER_BPN)) for _ in range(20)]
    await asyncio.sleep(0)
    gate.set()
    assert set(await asyncio.gather(*lookups)) == {"did:web:provider.example"}
    assert len(calls) == 1
    assert await directory.bpn_of("did:web:member.example") == MEMBER_BPN
    clock.now += 899
    assert await directory.did_of(MEMBER_BPN) == "did:web:member.example" and len(calls) == 1
    clock.now += 1
    assert await directory.did_of(MEMBER_BPN) == "did:web:member.example" and len(calls) == 2


async def test_a_missing_bpn_fetches_again_at_most_every_thirty_seconds() -> None:
    clock, calls = Clock(), []
    entries = {PROVIDER_BPN: "did:web:provider.example"}
    directory = bdrs.BdrsDirectory("https://bdrs.example/api/directory", _serving(entries, calls), 900, 10**6, clock)
    assert await directory.did_of(UNKNOWN_BPN) is None and len(calls) == 1
    clock.now += 10
    assert await directory.did_of(UNKNOWN_BPN) is None and len(calls) == 1
    entries[UNKNOWN_BPN] = "did:web:newcomer.example"  # registered meanwhile
    clock.now += 20
    assert await directory.did_of(UNKNOWN_BPN) == "did:web:newcomer.example" and len(calls) == 2


async def test_an_outage_uses_the_map_held_for_one_more_period_and_retries_sparingly() -> None:
    clock, calls, down = Clock(), [], [False]
    entries = {PROVIDER_BPN: "did:web:provider.example"}
    serve = _serving(entries, calls)

    async def fetch() -> bytes:
        if down[0]:
            calls.append(1)
            raise PeerError("cannot connect to bdrs.example: Connection refused")
        return await serve()

    directory = bdrs.BdrsDirectory("https://bdrs.example/api/directory", fetch, 900, 10**6, clock)
    assert await directory.did_of(PROVIDER_BPN) == "did:web:provider.example"
    down[0] = True
    clock.now += 900
    assert await directory.did_of(PROVIDER_BPN) == "did:web:provider.example"  # held, with a warning
    assert len(calls) == 2
    clock.now += 1
    assert await directory.did_of(PROVIDER_BPN) == "did:web:provider.example" and len(calls) == 2  # not retried yet
    clock.now += 900
    with pytest.raises(bdrs.BpnDirectoryUnavailable) as raised:
        await directory.did_of(PROVIDER_BPN)
    assert raised.value.message == (
        "the BDRS at https://bdrs.example/api/directory cannot be read: "
        "cannot connect to bdrs.example: Connection refused"
    )


async def test_a_cold_directory_that_cannot_be_read_says_so_and_is_not_asked_again_at_once() -> None:
    clock, calls = Clock(), []

    async def fetch() -> bytes:
        calls.append(1)
        return b'[{"bpn": "BPNL000000000001", "did": "did:web:provider.example"}]'

    directory = bdrs.BdrsDirectory("https://bdrs.example/api/directory", fetch, 900, 10**6, clock)
    lookups = await asyncio.gather(*(directory.did_of(PROVIDER_BPN) for _ in range(5)), return_exceptions=True)
    assert len(calls) == 1
    assert all(isinstance(e, bdrs.BpnDirectoryUnavailable) for e in lookups)
    assert "its answer is not a BPN directory: it is a JSON list, not an object of BPN to DID" in str(lookups[0])


def test_bad_entries_of_a_bdrs_are_left_out_and_of_a_file_refused() -> None:
    raw = json.dumps({PROVIDER_BPN: "did:web:ok.example", "bpnl-lower": "did:web:x", MEMBER_BPN: "https://not-a-did"})
    entries, left_out = bdrs.read_directory(raw.encode(), 10**6, strict=False)
    assert entries == {PROVIDER_BPN: "did:web:ok.example"} and len(left_out) == 2
    with pytest.raises(ValueError, match="is not a BPNL"):
        bdrs.read_directory(raw.encode(), 10**6, strict=True)


def test_a_did_that_several_bpns_name_gives_no_bpn() -> None:
    raw = json.dumps({PROVIDER_BPN: "did:web:shared.example", MEMBER_BPN: "did:web:shared.example"}).encode()
    snapshot = bdrs._Snapshot.of(bdrs.read_directory(raw, 10**6, strict=True)[0], 0.0)
    assert snapshot.by_bpn[MEMBER_BPN] == "did:web:shared.example" and "did:web:shared.example" not in snapshot.by_did


def test_a_broken_directory_file_is_named_and_a_later_broken_edit_keeps_the_last_good_one(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "directory.json"
    with pytest.raises(bdrs.BpnDirectoryFileError, match=f"the BPN directory file {path} cannot be read"):
        bdrs.FileDirectory(path)
    path.write_text('{"BPNL000000000001": 42}')
    with pytest.raises(bdrs.BpnDirectoryFileError, match="the DID of BPNL000000000001 is not a DID"):
        bdrs.FileDirectory(path)
    path.write_text(json.dumps({PROVIDER_BPN: "did:web:provider.example"}))
    directory = bdrs.FileDirectory(path)
    path.write_text('{"BPNL000000000001": ')  # an edit under way
    assert directory.did_of(PROVIDER_BPN) == "did:web:provider.example"
    assert directory.did_of(PROVIDER_BPN) == "did:web:provider.example"
    assert [r.getMessage() for r in caplog.records] == ["the BPN directory file was not reloaded"]  # once
    path.write_text(json.dumps({PROVIDER_BPN: "did:web:moved.example"}))
    assert directory.did_of(PROVIDER_BPN) == "did:web:moved.example"


async def test_a_node_does_not_start_with_a_broken_directory_file(node_factory: NodeFactory, tmp_path: Path) -> None:
    path = tmp_path / "directory.json"
    path.write_text("not json")
    with pytest.raises(bdrs.BpnDirectoryFileError, match=r"directory\.json cannot be used: it is not JSON"):
        await node_factory(bpn_directory_file=path)


# Sizes: a gzip bomb is refused within the peer client's limit, whether the BDRS says it is gzip or not.


def _bomb(size: int) -> bytes:
    """Return `size` zero bytes gzipped, made a MiB at a time (never held whole)."""
    packer = zlib.compressobj(9, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    chunk = b"\0" * (1 << 20)
    return b"".join(packer.compress(chunk) for _ in range(size >> 20)) + packer.flush()


@pytest.mark.parametrize("say_gzip", [True, False], ids=["content-encoding", "no-header"])
async def test_a_gzip_bomb_is_refused_without_exhausting_memory(
    node_factory: NodeFactory,
    http: aiohttp.ClientSession,
    tmp_path: Path,
    directory_server: Bdrs,
    say_gzip: bool,
) -> None:
    limit = 1 << 20
    _, consumer = await _member(node_factory, http, tmp_path, bdrs_url=directory_server.url, peer_max_body_bytes=limit)
    directory_server.body = _bomb(256 << 20)  # 256 MiB of zeros, 250 KiB on the wire
    directory_server.say_gzip = say_gzip
    tracemalloc.start()
    try:
        with pytest.raises(bdrs.BpnDirectoryUnavailable) as raised:
            await consumer.identity.participant_did(PROVIDER_BPN)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert str(limit) in raised.value.message and directory_server.url in raised.value.message
    assert peak < 32 << 20, f"reading the bomb took {peak} bytes"


async def test_a_gzipped_body_without_the_header_is_read(
    node_factory: NodeFactory, http: aiohttp.ClientSession, tmp_path: Path, directory_server: Bdrs
) -> None:
    _, consumer = await _member(node_factory, http, tmp_path, bdrs_url=directory_server.url)
    directory_server.entries = {PROVIDER_BPN: "did:web:provider.example"}
    directory_server.say_gzip = False
    assert await consumer.identity.participant_did(PROVIDER_BPN) == "did:web:provider.example"
    assert await consumer.identity.participant_did("did:web:as-is.example") == "did:web:as-is.example"
    assert directory_server.requests == 1


async def test_lookups_are_logged_without_the_presentation(
    node_factory: NodeFactory,
    http: aiohttp.ClientSession,
    tmp_path: Path,
    directory_server: Bdrs,
    caplog: pytest.LogCaptureFixture,
) -> None:
    _, consumer = await _member(node_factory, http, tmp_path, bdrs_url=directory_server.url)
    directory_server.entries = {PROVIDER_BPN: "did:web:provider.example"}
    caplog.set_level(logging.DEBUG)
    await consumer.identity.participant_did(PROVIDER_BPN)
    fetched = [r for r in caplog.records if r.getMessage() == "BPN directory fetched"]
    assert [r.entries for r in fetched] == [1]  # type: ignore[attr-defined]
    assert not any("eyJ" in json.dumps(r.__dict__, default=str) for r in caplog.records)
