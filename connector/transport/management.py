"""The management surface: EDC Management API v3 and v4 routes, health, readiness and the OpenAPI document.

Every handler has the same shape: read, parse (management.wire), one service call, render, respond. The
handlers of EDC's resources serve both versions: `EDC_ROUTES` lists each once, and the version (a
`wire.Dialect`) is bound to the handler per route.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, replace

import orjson
from aiohttp import web

from connector.domain.errors import InvalidInput, NotFound, Problem
from connector.domain.transfer import TransferMessage
from connector.management import wire
from connector.services.dsp_client import DspClient, PeerCatalogs, PeerDocument, check_protocol
from connector.services.edrs import EdrRefresher
from connector.services.federation import FederationService
from connector.services.identity import NodeIdentity
from connector.services.lifecycle import LifecycleService
from connector.services.lookup import PassportLookup
from connector.services.negotiations import NegotiationService
from connector.services.notifications import NotificationService
from connector.services.offers import AssetService, ContractDefinitionService, PolicyDefinitionService, now_ms
from connector.services.passports import PassportService
from connector.services.sync import SyncService
from connector.services.transfers import TransferService
from connector.store import Store
from connector.store.negotiations import Agreement
from connector.store.repositories import HeldCredential
from connector.transport import (
    apidocs,
    federation,
    guard,
    lifecycle,
    lookup,
    metrics,
    notifications,
    openapi,
    passports,
    sync,
)
from connector.transport.http import (
    API_KEY,
    MAX_BODY,
    MAX_DEPTH,
    OPEN_PATHS,
    api_key_check,
    json_response,
    no_content,
    read_json,
    request_context,
)
from connector.transport.problems import problem_response


@dataclass(frozen=True, slots=True)
class ManagementServices:
    """What the management routes call."""

    store: Store
    assets: AssetService
    policies: PolicyDefinitionService
    contracts: ContractDefinitionService
    catalogs: PeerCatalogs
    identity: NodeIdentity
    negotiations: NegotiationService
    dsp: DspClient
    transfers: TransferService
    passports: PassportService
    edrs: EdrRefresher | None = None
    lookup: PassportLookup | None = None
    lifecycle: LifecycleService | None = None
    notifications: NotificationService | None = None
    federation: FederationService | None = None
    sync: SyncService | None = None


SERVICES: web.AppKey[ManagementServices] = web.AppKey("services", ManagementServices)

V3 = "/management/v3"


def _services(request: web.Request) -> ManagementServices:
    return request.app[SERVICES]


# EDC's Management API (v3 and v4): each handler serves both versions, told which by `api`.


async def create_asset(request: web.Request, api: wire.Dialect) -> web.Response:
    node = wire.expand_body(await read_json(request), "Asset", api)
    asset = await _services(request).assets.create(wire.parse_asset(node, created_at=now_ms()))
    return json_response(wire.id_response(asset.id, asset.created_at, api))


async def update_asset(request: web.Request, api: wire.Dialect) -> web.Response:
    node = wire.expand_body(await read_json(request), "Asset", api)
    await _services(request).assets.update(wire.parse_asset(node, created_at=now_ms(), id_required=True))
    return no_content()


async def get_asset(request: web.Request, api: wire.Dialect) -> web.Response:
    return json_response(wire.render_asset(await _services(request).assets.get(request.match_info["id"]), api))


async def query_assets(request: web.Request, api: wire.Dialect) -> web.Response:
    spec = wire.parse_query_spec(await read_json(request, optional=True), api)
    return json_response([wire.render_asset(a, api) for a in await _services(request).assets.query(spec)])


async def delete_asset(request: web.Request, api: wire.Dialect) -> web.Response:
    await _services(request).assets.delete(request.match_info["id"])
    return no_content()


async def create_policy(request: web.Request, api: wire.Dialect) -> web.Response:
    node = wire.expand_body(await read_json(request), "PolicyDefinition", api)
    definition = await _services(request).policies.create(wire.parse_policy_definition(node, created_at=now_ms()))
    return json_response(wire.id_response(definition.id, definition.created_at, api))


async def update_policy(request: web.Request, api: wire.Dialect) -> web.Response:
    node = wire.expand_body(await read_json(request), "PolicyDefinition", api)
    definition = wire.parse_policy_definition(node, created_at=now_ms())
    path_id = request.match_info["id"]
    if definition.id and definition.id != path_id:
        raise InvalidInput(f"@id {definition.id!r} differs from the id in the path {path_id!r}")
    await _services(request).policies.update(replace(definition, id=path_id))
    return no_content()


async def get_policy(request: web.Request, api: wire.Dialect) -> web.Response:
    definition = await _services(request).policies.get(request.match_info["id"])
    return json_response(wire.render_policy_definition(definition, api))


async def query_policies(request: web.Request, api: wire.Dialect) -> web.Response:
    spec = wire.parse_query_spec(await read_json(request, optional=True), api)
    found = await _services(request).policies.query(spec)
    return json_response([wire.render_policy_definition(p, api) for p in found])


async def delete_policy(request: web.Request, api: wire.Dialect) -> web.Response:
    await _services(request).policies.delete(request.match_info["id"])
    return no_content()


async def create_contract(request: web.Request, api: wire.Dialect) -> web.Response:
    node = wire.expand_body(await read_json(request), "ContractDefinition", api)
    definition = await _services(request).contracts.create(wire.parse_contract_definition(node, created_at=now_ms()))
    return json_response(wire.id_response(definition.id, definition.created_at, api))


async def update_contract(request: web.Request, api: wire.Dialect) -> web.Response:
    node = wire.expand_body(await read_json(request), "ContractDefinition", api)
    await _services(request).contracts.update(wire.parse_contract_definition(node, created_at=now_ms()))
    return no_content()


async def get_contract(request: web.Request, api: wire.Dialect) -> web.Response:
    definition = await _services(request).contracts.get(request.match_info["id"])
    return json_response(wire.render_contract_definition(definition, api))


async def query_contracts(request: web.Request, api: wire.Dialect) -> web.Response:
    spec = wire.parse_query_spec(await read_json(request, optional=True), api)
    found = await _services(request).contracts.query(spec)
    return json_response([wire.render_contract_definition(c, api) for c in found])


async def delete_contract(request: web.Request, api: wire.Dialect) -> web.Response:
    await _services(request).contracts.delete(request.match_info["id"])
    return no_content()


# Peers' catalogs (consumer side).


async def request_catalog(request: web.Request, api: wire.Dialect) -> web.Response:
    wanted = wire.parse_peer_catalog_request(wire.expand_body(await read_json(request), "CatalogRequest", api))
    check_protocol(wanted.protocol, wanted.protocol_field)
    found = await _services(request).catalogs.catalog_answer(
        wanted.address, wanted.counterparty_id, wanted.protocol, wanted.page, wanted.criteria
    )
    return _peer_document(found, api)


async def request_dataset(request: web.Request, api: wire.Dialect) -> web.Response:
    node = wire.expand_body(await read_json(request), "DatasetRequest", api)
    wanted = wire.parse_peer_catalog_request(node, dataset=True)
    check_protocol(wanted.protocol, wanted.protocol_field)
    assert wanted.dataset_id is not None
    found = await _services(request).catalogs.dataset_answer(
        wanted.address, wanted.counterparty_id, wanted.protocol, wanted.dataset_id
    )
    return _peer_document(found, api)


# Peers' answers rendered for clients, by the bytes each peer sent (a page asked again is neither read nor
# re-shaped again: the same bytes were found to be a document of the right type when they were first rendered).
_RENDERED = wire.RenderedPeerDocuments()


def _peer_document(found: PeerDocument, api: wire.Dialect) -> web.Response:
    body = _RENDERED.body(api, found.raw, lambda: orjson.dumps(wire.render_peer_document(found.body, api)))
    return web.Response(body=body, content_type="application/json")


# Contract negotiations and agreements.


async def start_negotiation(request: web.Request, api: wire.Dialect, pull: bool = False) -> web.Response:
    wanted = wire.parse_contract_request(wire.expand_body(await read_json(request), "ContractRequest", api))
    check_protocol(wanted.protocol, wanted.protocol_field)
    services = _services(request)
    counterparty = await services.dsp.counterparty_id(wanted.address, wanted.counterparty_id)
    negotiation = await services.negotiations.start(wanted.address, counterparty, wanted.offer, pull)
    return json_response(wire.id_response(negotiation.id, negotiation.created_at, api))


async def get_negotiation(request: web.Request, api: wire.Dialect) -> web.Response:
    negotiation = await _services(request).negotiations.get(request.match_info["id"])
    return json_response(wire.render_negotiation(negotiation, api))


async def get_negotiation_state(request: web.Request, api: wire.Dialect) -> web.Response:
    negotiation = await _services(request).negotiations.get(request.match_info["id"])
    return json_response({"@type": "NegotiationState", "state": negotiation.state.value, "@context": api.context})


async def get_negotiation_agreement(request: web.Request, api: wire.Dialect) -> web.Response:
    negotiation = await _services(request).negotiations.get(request.match_info["id"])
    if negotiation.agreement_id is None:
        raise NotFound(f"negotiation {negotiation.id!r} has no agreement (state {negotiation.state.value})")
    return json_response(wire.render_agreement(await _agreement(request, negotiation.agreement_id), api))


async def query_negotiations(request: web.Request, api: wire.Dialect) -> web.Response:
    spec = wire.parse_query_spec(await read_json(request, optional=True), api)
    async with _services(request).store.read() as tx:
        found = await tx.negotiations.query(spec)
    return json_response([wire.render_negotiation(n, api) for n in found])


async def terminate_negotiation(request: web.Request, api: wire.Dialect) -> web.Response:
    reason = wire.parse_terminate(await read_json(request), "TerminateNegotiation", api)
    await _services(request).negotiations.terminate(request.match_info["id"], reason)
    return no_content()


async def approve_negotiation(request: web.Request, api: wire.Dialect) -> web.Response:
    await _services(request).negotiations.approve(request.match_info["id"])
    return no_content()


async def _agreement(request: web.Request, agreement_id: str) -> Agreement:
    async with _services(request).store.read() as tx:
        found = await tx.agreements.get(agreement_id)
    if found is None:
        raise NotFound(f"no contract agreement {agreement_id!r}")
    return found


async def get_agreement(request: web.Request, api: wire.Dialect) -> web.Response:
    return json_response(wire.render_agreement(await _agreement(request, request.match_info["id"]), api))


async def query_agreements(request: web.Request, api: wire.Dialect) -> web.Response:
    spec = wire.parse_query_spec(await read_json(request, optional=True), api)
    async with _services(request).store.read() as tx:
        found = await tx.agreements.query(spec)
    return json_response([wire.render_agreement(a, api) for a in found])


async def get_agreement_negotiation(request: web.Request, api: wire.Dialect) -> web.Response:
    agreement = await _agreement(request, request.match_info["id"])
    negotiation = await _services(request).negotiations.get(agreement.negotiation_id)
    return json_response(wire.render_negotiation(negotiation, api))


# Transfer processes.


async def start_transfer(request: web.Request, api: wire.Dialect) -> web.Response:
    wanted = wire.parse_transfer_request(wire.expand_body(await read_json(request), "TransferRequest", api))
    check_protocol(wanted.protocol, wanted.protocol_field)
    transfer = await _services(request).transfers.start(
        wanted.address, wanted.agreement_id, wanted.transfer_type, wanted.destination, wanted.counterparty_id
    )
    return json_response(wire.id_response(transfer.id, transfer.created_at, api))


async def get_transfer(request: web.Request, api: wire.Dialect) -> web.Response:
    transfer = await _services(request).transfers.get(request.match_info["id"])
    return json_response(wire.render_transfer(transfer, api))


async def get_transfer_state(request: web.Request, api: wire.Dialect) -> web.Response:
    transfer = await _services(request).transfers.get(request.match_info["id"])
    return json_response({"@type": "TransferState", "state": transfer.state.value, "@context": api.context})


async def query_transfers(request: web.Request, api: wire.Dialect) -> web.Response:
    spec = wire.parse_query_spec(await read_json(request, optional=True), api)
    async with _services(request).store.read() as tx:
        found = await tx.transfers.query(spec)
    return json_response([wire.render_transfer(t, api) for t in found])


def _transfer_command(message: TransferMessage, body: str | None) -> VersionedHandler:
    """Return the handler of a transfer command; `body` names the command's body type when it takes a reason."""

    async def route(request: web.Request, api: wire.Dialect) -> web.Response:
        reason = None
        found = await read_json(request, optional=True)
        if body is not None:
            # v3 reads both commands as a TerminateTransfer, as EDC v3 does; v4 names each.
            reason = wire.parse_terminate(found, body if api.checked else "TerminateTransfer", api)
        await _services(request).transfers.command(request.match_info["id"], message, reason)
        return no_content()

    return route


async def deprovision_transfer(request: web.Request, api: wire.Dialect) -> web.Response:
    # Nothing is provisioned for HttpData transfers; EDC clients call this after completion.
    await _services(request).transfers.get(request.match_info["id"])
    return no_content()


# Endpoint data references (v3 only: EDC's v4 has no EDR API).


async def negotiate_edr(request: web.Request) -> web.Response:
    # Tractus-X's one call: a v3 ContractRequest; the pull starts when the negotiation is finalized. The answer
    # names the negotiation, as Tractus-X EDC's does.
    return await start_negotiation(request, wire.V3, pull=True)


async def query_edrs(request: web.Request) -> web.Response:
    spec = wire.parse_query_spec(await read_json(request, optional=True))
    found = await _services(request).transfers.edr_entries(spec)
    return json_response([wire.render_edr_entry(e) for e in found])


async def get_edr_address(request: web.Request) -> web.Response:
    # Tractus-X EDC refreshes by default; its SDK sends auto_refresh=True (Java reads any case).
    auto = request.query.get("auto_refresh", "true").lower()
    if auto not in ("true", "false"):
        raise InvalidInput("auto_refresh must be true or false", [Problem("invalid", "auto_refresh", auto)])
    services = _services(request)
    if services.edrs is None:
        raise NotFound("this node holds no endpoint data references")
    transfer = await services.edrs.current(request.match_info["id"], auto_refresh=auto == "true")
    return json_response(wire.render_edr_address(transfer))


async def refresh_edr(request: web.Request) -> web.Response:
    refresher = _services(request).edrs
    if refresher is None:
        raise NotFound("this node does not refresh endpoint data references")
    transfer = await refresher.refresh(request.match_info["id"])
    return json_response(wire.render_edr_address(transfer))


async def delete_edr(request: web.Request) -> web.Response:
    await _services(request).transfers.forget_edr(request.match_info["id"])
    return no_content()


async def query_access_log(request: web.Request) -> web.Response:
    spec = wire.parse_query_spec(await read_json(request, optional=True))
    async with _services(request).store.read() as tx:
        found = await tx.access_log.query(spec)
    return json_response(
        [
            {
                "at": a.at,
                "transferProcessId": a.transfer_id,
                "agreementId": a.agreement_id,
                "consumerId": a.consumer_id,
                "assetId": a.asset_id,
                "method": a.method,
                "path": a.path,
                "status": a.status,
                "bytes": a.bytes,
                "reason": a.reason,
            }
            for a in found
        ]
    )


# The node's identity and the credentials it holds (plain JSON).


def _credential(held: HeldCredential) -> dict[str, object]:
    return {"id": held.id, "types": list(held.types), "issuer": held.issuer, "validUntil": held.valid_until}


async def identity_info(request: web.Request) -> web.Response:
    identity = _services(request).identity
    return json_response(
        {
            "did": identity.did,
            "didDocument": identity.document,
            "credentialService": identity.credential_service_url,
            "issuer": identity.issuer.did if identity.issuer else None,
        }
    )


async def import_credential(request: web.Request) -> web.Response:
    body = await read_json(request)
    jwt = body.get("credential") if isinstance(body, dict) else None
    if not isinstance(jwt, str) or jwt.count(".") != 2:
        raise InvalidInput(
            'the body must be {"credential": "<VC-JWT>"}', [Problem("a VC-JWT is required", "credential")]
        )
    held = await _services(request).identity.import_credential(jwt)
    return json_response(_credential(held))


async def list_credentials(request: web.Request) -> web.Response:
    async with _services(request).store.read() as tx:
        held = await tx.credentials.all()
    return json_response([_credential(c) for c in held])


async def delete_credential(request: web.Request) -> web.Response:
    async with _services(request).store.transaction() as tx:
        await tx.credentials.delete(request.match_info["id"])
    return no_content()


# Operations.


async def health(request: web.Request) -> web.Response:
    return json_response({"status": "UP"})


async def ready(request: web.Request) -> web.Response:
    try:
        await _services(request).store.ping()
    except Exception as exc:  # any failure to reach the database means "not ready"
        return problem_response(503, "Not ready", f"the database cannot be reached: {type(exc).__name__}", None)
    watched = request.app.get(metrics.METRICS)
    stopped = watched.stopped_loops() if watched is not None else []
    if stopped:
        return problem_response(503, "Not ready", f"background loops not running: {', '.join(stopped)}", None)
    return json_response({"status": "READY"})


async def openapi_document(request: web.Request) -> web.Response:
    return json_response(
        openapi.document(ROUTES, secured=request.app[API_KEY] is not None, open_paths=request.app[OPEN_PATHS])
    )


@dataclass(frozen=True, slots=True)
class Route:
    """One management route and what the OpenAPI document says of it."""

    method: str
    path: str
    handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    summary: str
    tag: str
    request: str | None = None
    response: str | None = None
    status: int = 200
    query: tuple[str, ...] = ()
    body_types: tuple[str, ...] = ()  # besides JSON; the browser guard refuses any other body
    # Other answers of success besides `status`, each (status, what it means), with the same body (`response`).
    statuses: tuple[tuple[int, str], ...] = ()


VersionedHandler = Callable[[web.Request, wire.Dialect], Awaitable[web.StreamResponse]]


@dataclass(frozen=True, slots=True)
class EdcRoute:
    """A route of EDC's Management API: one handler, served under the prefix of each version in `versions`."""

    method: str
    path: str  # below the version's prefix: /assets/{id}
    handler: VersionedHandler
    summary: str
    tag: str
    body: str | None = None  # the body's EDC type (Asset, QuerySpec, ...); it names the body's schema per version
    response: str | None = None
    status: int = 200
    versions: tuple[wire.Dialect, ...] = wire.DIALECTS

    def routes(self) -> Iterator[Route]:
        """Return this route under each of its versions."""
        for api in self.versions:
            request = openapi.body_schema(self.body, api.name) if self.body else None
            yield Route(
                self.method,
                api.path + self.path,
                _bound(self.handler, api),
                self.summary,
                self.tag,
                request,
                self.response,
                self.status,
            )


def _bound(handler: VersionedHandler, api: wire.Dialect) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
    async def route(request: web.Request) -> web.StreamResponse:
        return await handler(request, api)

    return route


_V3_ONLY = (wire.V3,)
_NEGOTIATIONS, _AGREEMENTS, _TRANSFERS = "Contract negotiations", "Contract agreements", "Transfer processes"

# EDC's resources, in v3 and v4 alike (EDC 0.18 dropped deprovision from v4; approve and complete are this node's).
EDC_ROUTES: tuple[EdcRoute, ...] = (
    EdcRoute("POST", "/assets", create_asset, "Create an asset", "Assets", "Asset", "IdResponse"),
    EdcRoute("PUT", "/assets", update_asset, "Replace an asset (its @id names it)", "Assets", "Asset", None, 204),
    EdcRoute(
        "POST", "/assets/request", query_assets, "List assets matching a QuerySpec", "Assets", "QuerySpec", "AssetList"
    ),
    EdcRoute("GET", "/assets/{id}", get_asset, "Get an asset", "Assets", None, "Asset"),
    EdcRoute("DELETE", "/assets/{id}", delete_asset, "Delete an asset", "Assets", None, None, 204),
    EdcRoute(
        "POST",
        "/policydefinitions",
        create_policy,
        "Create a policy definition",
        "Policy definitions",
        "PolicyDefinition",
        "IdResponse",
    ),
    EdcRoute(
        "POST",
        "/policydefinitions/request",
        query_policies,
        "List policy definitions matching a QuerySpec",
        "Policy definitions",
        "QuerySpec",
        "PolicyDefinitionList",
    ),
    EdcRoute(
        "GET",
        "/policydefinitions/{id}",
        get_policy,
        "Get a policy definition",
        "Policy definitions",
        None,
        "PolicyDefinition",
    ),
    EdcRoute(
        "PUT",
        "/policydefinitions/{id}",
        update_policy,
        "Replace a policy definition",
        "Policy definitions",
        "PolicyDefinition",
        None,
        204,
    ),
    EdcRoute(
        "DELETE",
        "/policydefinitions/{id}",
        delete_policy,
        "Delete a policy definition no contract definition uses",
        "Policy definitions",
        None,
        None,
        204,
    ),
    EdcRoute(
        "POST",
        "/contractdefinitions",
        create_contract,
        "Create a contract definition",
        "Contract definitions",
        "ContractDefinition",
        "IdResponse",
    ),
    EdcRoute(
        "PUT",
        "/contractdefinitions",
        update_contract,
        "Replace a contract definition (its @id names it)",
        "Contract definitions",
        "ContractDefinition",
        None,
        204,
    ),
    EdcRoute(
        "POST",
        "/contractdefinitions/request",
        query_contracts,
        "List contract definitions matching a QuerySpec",
        "Contract definitions",
        "QuerySpec",
        "ContractDefinitionList",
    ),
    EdcRoute(
        "GET",
        "/contractdefinitions/{id}",
        get_contract,
        "Get a contract definition",
        "Contract definitions",
        None,
        "ContractDefinition",
    ),
    EdcRoute(
        "DELETE",
        "/contractdefinitions/{id}",
        delete_contract,
        "Delete a contract definition",
        "Contract definitions",
        None,
        None,
        204,
    ),
    EdcRoute(
        "POST",
        "/catalog/request",
        request_catalog,
        "Request a peer's catalog over DSP",
        "Catalog",
        "CatalogRequest",
        "PeerCatalog",
    ),
    EdcRoute(
        "POST",
        "/catalog/dataset/request",
        request_dataset,
        "Request one dataset of a peer over DSP",
        "Catalog",
        "DatasetRequest",
        "PeerDataset",
    ),
    EdcRoute(
        "POST",
        "/contractnegotiations",
        start_negotiation,
        "Start a contract negotiation with a provider",
        _NEGOTIATIONS,
        "ContractRequest",
        "IdResponse",
    ),
    EdcRoute(
        "POST",
        "/contractnegotiations/request",
        query_negotiations,
        "List contract negotiations matching a QuerySpec",
        _NEGOTIATIONS,
        "QuerySpec",
        "ContractNegotiationList",
    ),
    EdcRoute(
        "GET",
        "/contractnegotiations/{id}",
        get_negotiation,
        "Get a contract negotiation",
        _NEGOTIATIONS,
        None,
        "ContractNegotiation",
    ),
    EdcRoute(
        "GET",
        "/contractnegotiations/{id}/state",
        get_negotiation_state,
        "Get a negotiation's state",
        _NEGOTIATIONS,
        None,
        "NegotiationState",
    ),
    EdcRoute(
        "GET",
        "/contractnegotiations/{id}/agreement",
        get_negotiation_agreement,
        "Get the agreement a negotiation reached",
        _NEGOTIATIONS,
        None,
        "ContractAgreement",
    ),
    EdcRoute(
        "POST",
        "/contractnegotiations/{id}/terminate",
        terminate_negotiation,
        "Terminate a negotiation, telling the peer why",
        _NEGOTIATIONS,
        "TerminateNegotiation",
        None,
        204,
    ),
    EdcRoute(
        "POST",
        "/contractnegotiations/{id}/approve",
        approve_negotiation,
        "Send the agreement of a negotiation held for approval (CONNECTOR_NEGOTIATION_APPROVAL=manual)",
        _NEGOTIATIONS,
        None,
        None,
        204,
    ),
    EdcRoute(
        "GET",
        "/contractagreements/{id}",
        get_agreement,
        "Get a contract agreement",
        _AGREEMENTS,
        None,
        "ContractAgreement",
    ),
    EdcRoute(
        "POST",
        "/contractagreements/request",
        query_agreements,
        "List contract agreements matching a QuerySpec",
        _AGREEMENTS,
        "QuerySpec",
        "ContractAgreementList",
    ),
    EdcRoute(
        "GET",
        "/contractagreements/{id}/negotiation",
        get_agreement_negotiation,
        "Get the negotiation of an agreement",
        _AGREEMENTS,
        None,
        "ContractNegotiation",
    ),
    EdcRoute(
        "POST",
        "/transferprocesses",
        start_transfer,
        "Start a transfer under an agreement",
        _TRANSFERS,
        "TransferRequest",
        "IdResponse",
    ),
    EdcRoute(
        "GET", "/transferprocesses/{id}", get_transfer, "Get a transfer process", _TRANSFERS, None, "TransferProcess"
    ),
    EdcRoute(
        "GET",
        "/transferprocesses/{id}/state",
        get_transfer_state,
        "Get a transfer process's state",
        _TRANSFERS,
        None,
        "TransferState",
    ),
    EdcRoute(
        "POST",
        "/transferprocesses/request",
        query_transfers,
        "List transfer processes matching a QuerySpec",
        _TRANSFERS,
        "QuerySpec",
        "TransferProcessList",
    ),
    EdcRoute(
        "POST",
        "/transferprocesses/{id}/terminate",
        _transfer_command(TransferMessage.TERMINATION, "TerminateTransfer"),
        "Terminate a transfer, telling the peer why",
        _TRANSFERS,
        "TerminateTransfer",
        None,
        204,
    ),
    EdcRoute(
        "POST",
        "/transferprocesses/{id}/suspend",
        _transfer_command(TransferMessage.SUSPENSION, "SuspendTransfer"),
        "Suspend a transfer (its tokens stop working)",
        _TRANSFERS,
        "SuspendTransfer",
        None,
        204,
    ),
    EdcRoute(
        "POST",
        "/transferprocesses/{id}/resume",
        _transfer_command(TransferMessage.START, None),
        "Resume a suspended transfer",
        _TRANSFERS,
        None,
        None,
        204,
    ),
    EdcRoute(
        "POST",
        "/transferprocesses/{id}/complete",
        _transfer_command(TransferMessage.COMPLETION, None),
        "Complete a transfer",
        _TRANSFERS,
        None,
        None,
        204,
    ),
    EdcRoute(
        "POST",
        "/transferprocesses/{id}/deprovision",
        deprovision_transfer,
        "Deprovision (nothing to do for HttpData)",
        _TRANSFERS,
        None,
        None,
        204,
        _V3_ONLY,
    ),
)

# Every route. A route of EDC's API in both versions goes in EDC_ROUTES; one of a single version (the EDR
# API exists in v3 only) or of this node's own API is a plain Route here, with its full path.
ROUTES: tuple[Route, ...] = (
    *(route for edc in EDC_ROUTES for route in edc.routes()),
    Route(
        "POST",
        f"{V3}/edrs",
        negotiate_edr,
        "Negotiate an offer and start its pull transfer in one call (Tractus-X EDR API); answers the negotiation id",
        "EDRs",
        "ContractRequest",
        "IdResponse",
    ),
    Route(
        "POST",
        f"{V3}/edrs/request",
        query_edrs,
        "List endpoint data references (started pull transfers)",
        "EDRs",
        "QuerySpec",
        "EdrEntryList",
    ),
    Route(
        "GET",
        f"{V3}/edrs/{{id}}/dataaddress",
        get_edr_address,
        "Get the endpoint and token of a pull transfer",
        "EDRs",
        None,
        "EdrDataAddress",
        query=("auto_refresh",),
    ),
    Route(
        "POST",
        f"{V3}/edrs/{{id}}/refresh",
        refresh_edr,
        "Refresh the tokens of a pull transfer (Tractus-X token refresh profile)",
        "EDRs",
        None,
        "EdrDataAddress",
    ),
    Route("DELETE", f"{V3}/edrs/{{id}}", delete_edr, "Forget an endpoint data reference", "EDRs", None, None, 204),
    Route(
        "POST",
        "/management/v1/dataaccess/request",
        query_access_log,
        "Data-plane access log (who, agreement, dataset, result, bytes)",
        "Transfer processes",
        "QuerySpec",
        "AccessLogList",
    ),
    Route(
        "GET",
        "/management/v1/identity",
        identity_info,
        "This node's DID, DID document and credential service",
        "Identity",
        None,
        "Identity",
    ),
    Route(
        "POST",
        "/management/v1/credentials",
        import_credential,
        "Hold a credential issued to this node",
        "Identity",
        "CredentialInput",
        "Credential",
    ),
    Route(
        "GET",
        "/management/v1/credentials",
        list_credentials,
        "List the credentials this node holds",
        "Identity",
        None,
        "CredentialList",
    ),
    Route(
        "DELETE",
        "/management/v1/credentials/{id}",
        delete_credential,
        "Stop holding a credential",
        "Identity",
        None,
        None,
        204,
    ),
    Route(
        "POST",
        lookup.PATH,
        lookup.lookup_passport,
        "Read a partner's passport in one call: its registry, agreements and EDRs (reused), the shell, the submodel",
        "Passports",
        "PassportLookup",
        "PassportLookupResult",
    ),
    Route(
        "POST",
        lifecycle.SUCCESSORS,
        lifecycle.create_successor,
        "Store a successor passport for a battery taken over, linked to its predecessors (checked across nodes)",
        "Lifecycle",
        "SuccessorInput",
        "SuccessorPassport",
        201,
    ),
    Route(
        "POST",
        lifecycle.CHANGES,
        lifecycle.record_change,
        "Record a status change, state of health, capacity or events as a new version (who changed what)",
        "Lifecycle",
        "PassportChange",
        "ChangedPassport",
    ),
    Route(
        "POST",
        lifecycle.COMPONENTS,
        lifecycle.add_components,
        "List an assembly's components (a pack's cells or modules), each checked readable at its node",
        "Lifecycle",
        "ComponentsInput",
        "PassportChainPart",
    ),
    Route(
        "GET",
        lifecycle.CHAIN,
        lifecycle.passport_lifecycle,
        "A battery's life: the chain of passports across nodes, each at the level this node can read it",
        "Lifecycle",
        None,
        "PassportLifecycle",
    ),
    Route(
        "GET",
        notifications.PATH,
        notifications.list_notifications,
        "Digital Twin Events received (the inbox) and sent, with their delivery state",
        "Lifecycle",
        None,
        "NotificationList",
        query=("direction", "passportId", "limit:notifications"),
    ),
    Route(
        "GET",
        notifications.PATH + "/{id}",
        notifications.get_notification,
        "One Digital Twin Event received or sent",
        "Lifecycle",
        None,
        "Notification",
        query=("direction",),
    ),
    *(
        Route(
            r.method, r.path, r.handler, r.summary, "Passports", r.request, r.response, r.status, r.query, r.body_types
        )
        for r in passports.ROUTES
    ),
    *(
        Route(
            r.method, r.path, r.handler, r.summary, "Federation", r.request, r.response, r.status, r.query, r.body_types
        )
        for r in federation.ROUTES
    ),
    *(
        Route(
            r.method,
            r.path,
            r.handler,
            r.summary,
            "Sync jobs",
            r.request,
            r.response,
            r.status,
            r.query,
            statuses=r.statuses,
        )
        for r in sync.ROUTES
    ),
    Route("GET", "/health", health, "Liveness: the process answers", "Operations", None, "Health"),
    Route(
        "GET",
        "/ready",
        ready,
        "Readiness: the database answers and the background loops run",
        "Operations",
        None,
        "Health",
    ),
    Route(
        "GET",
        "/metrics",
        metrics.scrape,
        "Prometheus metrics (text format): requests, processes, outbox, data plane, database pools",
        "Operations",
    ),
    Route("GET", "/management/openapi.json", openapi_document, "This OpenAPI document", "Operations", None, None),
    Route(
        "GET",
        apidocs.DOCS,
        apidocs.page,
        "API browser (Swagger UI) for this document, served by the node",
        "Operations",
    ),
    *(
        Route("GET", path, handler, "An asset of the API browser (vendored Swagger UI)", "Operations")
        for path, handler, _ in apidocs.ASSETS
    ),
)

OPEN = frozenset({"/health", "/ready", "/management/openapi.json", *apidocs.OPEN_PATHS})


def create_app(
    services: ManagementServices,
    api_key: str | None,
    max_body: int,
    max_depth: int,
    browsers: guard.BrowserPolicy = guard.LOOPBACK_ONLY,
) -> web.Application:
    """Build the management application (`browsers`: the host names and CORS origins allowed besides loopback)."""
    # The browser guard comes before the key check: CORS preflights carry no key, and a refusal names its reason.
    app = web.Application(middlewares=[request_context, guard.browser_guard, api_key_check], client_max_size=max_body)
    app[guard.BROWSER_POLICY] = browsers
    app[guard.BODY_TYPES] = {(r.method, r.path): frozenset(r.body_types) for r in ROUTES if r.body_types}
    app.on_response_prepare.append(guard.add_cors_headers)
    app[SERVICES] = services
    if services is not None:  # None only when a test builds the app to list its routes
        app[passports.PASSPORTS] = services.passports
        if services.lookup is not None:
            app[lookup.LOOKUP] = services.lookup
        if services.lifecycle is not None:
            lifecycle.install(app, services.lifecycle)
        if services.notifications is not None:
            notifications.install(app, services.notifications)
        if services.federation is not None:
            app[federation.FEDERATION] = services.federation
        if services.sync is not None:
            app[sync.SYNC] = services.sync
    app[API_KEY] = api_key
    app[MAX_BODY] = max_body
    app[MAX_DEPTH] = max_depth
    app[OPEN_PATHS] = OPEN
    for route in ROUTES:
        app.router.add_route(route.method, route.path, _query_checked(route))
    return app


def _query_checked(route: Route) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
    """Wrap a route's handler so its query parameters are checked against the document's schemas first."""
    if not route.query:
        return route.handler
    handler, keys = route.handler, route.query

    async def checked(request: web.Request) -> web.StreamResponse:
        problems = openapi.check_query(keys, request.query)
        if problems:
            raise InvalidInput(
                problems[0].message + (f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""), problems
            )
        return await handler(request)

    return checked
