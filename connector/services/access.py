"""Access to a partner's datasets as a consumer: its DSP address, an agreement, an EDR, and data read with it.

One place decides whether this node may reuse what it holds or must ask the partner again, for every caller that
reads a partner's data (the passport lookup, scheduled sync jobs):

- `partner(name)` resolves a DID, a BPN (through the BPN directory) or a DSP address to the partner's DID and
  versioned DSP address (the DID document's `DataService` entry, or the version document).
- `agreement(partner, dataset)` returns an agreement this node holds on the dataset with that partner, or
  negotiates one. Never two negotiations for the same (partner, dataset) at once: concurrent callers share one
  (single flight), a negotiation already under way in the store is waited for rather than doubled, and stored
  agreements are the cache, with an in-memory index in front of them.
- `edr(partner, agreement)` returns a usable endpoint data reference under an agreement: the one held (refreshed
  when its token is about to expire), or a new pull transfer's; single flight per agreement as well.
- `get(partner, agreement, path)` reads the data plane with it, renewing the EDR once if the provider refuses it.

Waiting for a negotiation or a transfer reads the store (the outbox dispatcher moves them), so a process started
by another replica, or by an earlier call that gave up waiting, is waited for the same way.
"""

from __future__ import annotations

import asyncio
import copy
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar
from urllib.parse import urlencode, urlsplit

from connector.domain.assets import Criterion
from connector.domain.errors import ConnectorError, InvalidInput, NotFound, PeerError, PeerTimeout, Problem, Refused
from connector.domain.negotiation import NegotiationState, Role
from connector.domain.query import QuerySpec, SortOrder
from connector.domain.transfer import Transfer, TransferState
from connector.dsp.catalog import parse_dataset_offers
from connector.dsp.transfer import endpoint_properties
from connector.identity import did as didweb
from connector.identity.bdrs import is_bpn
from connector.services.dsp_client import DspClient, PeerCatalogs
from connector.services.edrs import REFRESH_MARGIN_SECONDS, EdrRefresher, token_expiry
from connector.services.identity import NodeIdentity
from connector.services.negotiations import NegotiationService
from connector.services.transfers import PULL, TransferService
from connector.store import Store
from connector.store.negotiations import Agreement
from connector.transport.peer import PeerClient, PeerResponse

DSP_VERSION = "2025-1"
# How long a resolved partner (DID, DSP address) is kept; DID documents are cached as long by the resolver.
PARTNER_TTL_SECONDS = 300.0
_ENDED = (NegotiationState.FINALIZED, NegotiationState.TERMINATED)
_NEGOTIATING = tuple(s.value for s in NegotiationState if s not in _ENDED)
_TRANSFERRING = (TransferState.INITIAL.value, TransferState.REQUESTED.value)
T = TypeVar("T")


def failed_at(step: str, error: ConnectorError) -> ConnectorError:
    """Return the error as raised at `step` (its message prefixed with the step, `step` set); the first step wins."""
    if error.step is not None:
        return error
    named = copy.copy(error)
    named.step = step
    named.message = f"{step}: {error.message}"
    named.args = (named.message,)
    return named


@dataclass(frozen=True, slots=True)
class Partner:
    """A provider as this node addresses it: its DID (the tokens' audience) and its versioned DSP address."""

    did: str
    address: str
    bpn: str | None = None


@dataclass(frozen=True, slots=True)
class Edr:
    """An endpoint data reference ready to use: where to read, with which token, until when."""

    transfer_id: str
    agreement_id: str
    asset_id: str
    endpoint: str
    authorization: str
    expires_at: int | None  # the access token's `exp` (epoch seconds), when it says

    def fresh(self, margin: float = REFRESH_MARGIN_SECONDS) -> bool:
        """Tell whether the access token is good for at least `margin` seconds more (or says no expiry)."""
        return self.expires_at is None or self.expires_at - time.time() >= margin


def edr_of(transfer: Transfer) -> Edr | None:
    """Return the EDR a consumer pull transfer holds, or None when it holds none (or one without endpoint/token)."""
    if transfer.data_address is None:
        return None
    props = endpoint_properties(transfer.data_address)
    endpoint, authorization = props.get("endpoint"), props.get("authorization")
    if not endpoint or not authorization:
        return None
    return Edr(
        transfer.id, transfer.agreement_id, transfer.asset_id, endpoint, authorization, token_expiry(authorization)
    )


def same_origin(a: str, b: str) -> bool:
    """Tell whether two URLs have the same scheme, host and port."""
    pa, pb = urlsplit(a), urlsplit(b)
    default = {"http": 80, "https": 443}
    return (
        pa.scheme == pb.scheme
        and (pa.hostname or "").lower() == (pb.hostname or "").lower()
        and (pa.port or default.get(pa.scheme)) == (pb.port or default.get(pb.scheme))
    )


class _SingleFlight:
    """Runs one task per key at a time; callers asking for the same key meanwhile await the same result."""

    def __init__(self) -> None:
        self._running: dict[Any, asyncio.Future[Any]] = {}

    async def run(self, key: Any, work: Callable[[], Awaitable[T]]) -> T:
        running = self._running.get(key)
        if running is None:
            running = asyncio.ensure_future(work())
            self._running[key] = running
            running.add_done_callback(lambda done: self._done(key, done))
        # A caller that gives up (its timeout, a disconnect) does not cancel the others' negotiation.
        return await asyncio.shield(running)

    def _done(self, key: Any, done: asyncio.Future[Any]) -> None:
        if self._running.get(key) is done:
            del self._running[key]
        if not done.cancelled():
            done.exception()  # retrieved: every waiter re-raises it, nobody must log it as lost


class Access:
    """Obtains and reuses agreements and EDRs with partners, as consumer (see the module's docstring)."""

    def __init__(
        self,
        store: Store,
        negotiations: NegotiationService,
        transfers: TransferService,
        edrs: EdrRefresher,
        catalogs: PeerCatalogs,
        dsp: DspClient,
        identity: NodeIdentity,
        peer: PeerClient,
        participant_id: str,
        wait_seconds: float = 30.0,
        poll_seconds: float = 0.005,
    ) -> None:
        self._store = store
        self._negotiations = negotiations
        self._transfers = transfers
        self._edrs = edrs
        self._catalogs = catalogs
        self._dsp = dsp
        self._identity = identity
        self._peer = peer
        self._me = participant_id
        self.wait_seconds = wait_seconds
        self._poll = poll_seconds
        self._partners: dict[str, tuple[float, Partner]] = {}
        self._agreements: dict[tuple[str, str], Agreement] = {}  # (partner DID, dataset id) -> agreement
        self._held: dict[str, Edr] = {}  # agreement id -> EDR
        self._held_by_transfer: dict[str, str] = {}  # transfer id -> agreement id, of the EDRs held
        self._spent: set[str] = set()  # agreements the provider no longer honours (a transfer under one refused)
        self._fresh: set[str] = set()  # negotiations this node started here (their agreements are new)
        self._flights = _SingleFlight()

    # The partner.

    async def partner(self, name: str) -> Partner:
        """Resolve a partner named by its DID, its BPN or its DSP address (cached for a few minutes)."""
        name = name.strip()
        hit = self._partners.get(name)
        if hit is not None and hit[0] > time.monotonic():
            return hit[1]
        found = await self._flights.run(("partner", name), lambda: self._resolve(name))
        self._partners[name] = (time.monotonic() + PARTNER_TTL_SECONDS, found)
        return found

    async def _resolve(self, name: str) -> Partner:
        if not name:
            raise InvalidInput(
                "the partner is required (a DID, a BPN or a DSP address)", [Problem("missing", "partner")]
            )
        if name.startswith(("http://", "https://")):
            address, did = await self._from_version_document(name.rstrip("/"))
            if did is None:
                raise InvalidInput(
                    f"the version document of {name[:200]} names no DID (serviceId): give the partner's DID or BPN",
                    [Problem("partner not resolvable", "partner", name)],
                )
            return Partner(did, address)
        bpn = None
        if is_bpn(name):
            bpn, name = name, await self._identity.participant_did(name, "partner")
        if not name.startswith("did:"):
            raise InvalidInput(
                f"partner {name[:200]!r} is neither a DID, a BPN nor an http(s) DSP address",
                [Problem("not a DID, BPN or URL", "partner", name)],
            )
        document = await self._identity.did_document(name)
        service = document.service(didweb.DATA_SERVICE)
        if service is None or not service.endpoint.startswith(("http://", "https://")):
            raise PeerError(
                f"the DID document of {name[:200]} has no DataService entry with an http(s) endpoint "
                "(where its DSP endpoint would be): give the partner's DSP address instead"
            )
        endpoint = service.endpoint.rstrip("/").removesuffix("/.well-known/dspace-version")
        if endpoint.endswith("/" + DSP_VERSION):
            return Partner(name, endpoint, bpn)
        address, _ = await self._from_version_document(endpoint)
        return Partner(name, address, bpn)

    async def _from_version_document(self, url: str) -> tuple[str, str | None]:
        """Read `<root>/.well-known/dspace-version` (of a versioned address: its root); return the address and DID."""
        root = url.removesuffix("/" + DSP_VERSION)
        answer = await self._peer.request("GET", f"{root}/.well-known/dspace-version")
        versions = answer.body.get("protocolVersions") if answer.ok and isinstance(answer.body, dict) else None
        for entry in versions if isinstance(versions, list) else []:
            if isinstance(entry, dict) and entry.get("version") == DSP_VERSION and isinstance(entry.get("path"), str):
                path = str(entry["path"])
                if path.startswith(("http://", "https://")):
                    address = path  # an absolute path: the address itself
                elif urlsplit(root).path.rstrip("/") and path.startswith(urlsplit(root).path.rstrip("/") + "/"):
                    address = root[: len(root) - len(urlsplit(root).path)] + path  # a path from the host root
                else:
                    address = root + "/" + path.strip("/")
                service = entry.get("serviceId")
                did = str(service) if isinstance(service, str) and service.startswith("did:") else None
                return address.rstrip("/"), did
        raise PeerError(
            f"{root[:200]}/.well-known/dspace-version answered {answer.status} without DSP {DSP_VERSION}: "
            "it is not a DSP 2025-1 endpoint"
        )

    def owns(self, partner: Partner, dsp_endpoint: str) -> bool:
        """Tell whether a DSP endpoint someone names for a partner (a registry's dspEndpoint) is the partner's."""
        return same_origin(partner.address, dsp_endpoint)

    # Datasets.

    async def datasets(
        self, partner: Partner, criteria: tuple[Criterion, ...] = (), page: tuple[int, int] | None = None
    ) -> list[dict[str, Any]]:
        """Return the partner's datasets the criteria select, each as its DSP JSON (with the catalog's @context).

        `page` is (offset, limit), sent as EDC's QuerySpec; without it, the first page the partner answers.
        """
        catalog = await self._catalogs.catalog(partner.address, partner.did, None, page, criteria)
        found = catalog.get("dcat:dataset", catalog.get("dataset", []))
        items = found if isinstance(found, list) else [found]
        return [dict(d, **{"@context": catalog["@context"]}) if "@context" in catalog else dict(d) for d in items]

    async def dataset(self, partner: Partner, dataset_id: str) -> dict[str, Any]:
        """Return one of the partner's datasets as its DSP JSON."""
        return await self._catalogs.dataset(partner.address, partner.did, None, dataset_id)

    # Agreements.

    async def agreement(
        self, partner: Partner, dataset: str | Mapping[str, Any], offer_id: str | None = None
    ) -> Agreement:
        """Return an agreement on a dataset (its id, or its DSP JSON with offers) with the partner: held, or negotiated.

        With a dataset id and nothing held, the dataset is read from the partner first. `offer_id` picks one of the
        dataset's offers (default: the first this node can read).
        """
        dataset_id = dataset if isinstance(dataset, str) else str(dataset.get("@id", ""))
        if not dataset_id:
            raise InvalidInput("the dataset has no @id", [Problem("missing", "dataset.@id")])
        key = (partner.did, dataset_id)
        held = self._agreements.get(key)
        if held is not None and held.id not in self._spent:
            return held
        found = await self._flights.run(("agreement", key), lambda: self._obtain(partner, dataset, offer_id))
        self._agreements[key] = found
        return found

    async def held_agreement(self, partner: Partner, dataset_id: str) -> Agreement | None:
        """Return the newest agreement stored on a dataset with the partner that is not known to be spent."""
        spec = QuerySpec(
            limit=20,
            sort_field="contractSigningDate",
            sort_order=SortOrder.DESC,
            filter_expression=(
                Criterion("providerId", "=", partner.did),
                Criterion("consumerId", "=", self._me),
                Criterion("assetId", "=", dataset_id),
            ),
        )
        async with self._store.read() as tx:
            found = await tx.agreements.query(spec)
        return next((a for a in found if a.id not in self._spent), None)

    async def _obtain(self, partner: Partner, dataset: str | Mapping[str, Any], offer_id: str | None) -> Agreement:
        dataset_id = dataset if isinstance(dataset, str) else str(dataset["@id"])
        held = await self.held_agreement(partner, dataset_id)
        if held is not None:
            return held
        under_way = await self._ongoing_negotiation(partner, dataset_id)
        if under_way is None:
            document = await self.dataset(partner, dataset_id) if isinstance(dataset, str) else dataset
            offers = parse_dataset_offers(document)
            if offer_id is not None and offer_id not in offers:
                raise NotFound(f"dataset {dataset_id!r} of {partner.did} has no offer {offer_id!r} this node can read")
            if not offers:
                raise Refused(f"dataset {dataset_id!r} of {partner.did} carries no offer this node can read")
            chosen = offer_id or next(iter(offers))
            offer = {"assigner": partner.did, **offers[chosen], "@id": chosen, "target": dataset_id}
            negotiation = await self._negotiations.start(partner.address, partner.did, offer)
            under_way = negotiation.id
            self._fresh.add(under_way)
        return await self._finalized(under_way)

    async def _ongoing_negotiation(self, partner: Partner, dataset_id: str) -> str | None:
        spec = QuerySpec(
            limit=1,
            sort_field="createdAt",
            sort_order=SortOrder.DESC,
            filter_expression=(
                Criterion("type", "=", Role.CONSUMER.value),
                Criterion("counterPartyId", "=", partner.did),
                Criterion("assetId", "=", dataset_id),
                Criterion("state", "in", list(_NEGOTIATING)),
            ),
        )
        async with self._store.read() as tx:
            found = await tx.negotiations.query(spec)
        return found[0].id if found else None

    async def _finalized(self, negotiation_id: str) -> Agreement:
        async def ended() -> Agreement | None:
            negotiation = await self._negotiations.get(negotiation_id)
            if negotiation.state is NegotiationState.TERMINATED:
                raise Refused(
                    f"the negotiation {negotiation_id} ended without an agreement: "
                    f"{negotiation.error_detail or 'no reason given'}"
                )
            if negotiation.state is not NegotiationState.FINALIZED or negotiation.agreement_id is None:
                return None
            async with self._store.read() as tx:
                return await tx.agreements.get(negotiation.agreement_id)

        return await self._wait(ended, f"the negotiation {negotiation_id} was not finalized")

    # Endpoint data references.

    async def edr(self, partner: Partner, agreement: Agreement) -> Edr:
        """Return a usable EDR under an agreement: the one held (refreshed when about to expire), or a new pull's."""
        held = self._held.get(agreement.id)
        if held is not None and held.fresh():
            return held
        found = await self._flights.run(("edr", agreement.id), lambda: self._obtain_edr(partner, agreement))
        self._hold(found)
        return found

    async def _obtain_edr(self, partner: Partner, agreement: Agreement) -> Edr:
        for transfer in await self._consumer_transfers(agreement.id, (TransferState.STARTED.value,)):
            edr = edr_of(transfer)
            if edr is None:
                continue
            if edr.fresh():
                return edr
            try:
                refreshed = edr_of(await self._edrs.refresh(transfer.id))
            except ConnectorError:
                continue  # the refresh token expired or the provider refuses: a new transfer below
            if refreshed is not None:
                return refreshed
        ongoing = await self._consumer_transfers(agreement.id, _TRANSFERRING)
        if ongoing:
            return await self._started(ongoing[0].id)
        transfer = await self._transfers.start(partner.address, agreement.id, PULL, None)
        return await self._started(transfer.id)

    async def _consumer_transfers(self, agreement_id: str, states: tuple[str, ...]) -> list[Transfer]:
        spec = QuerySpec(
            limit=5,
            sort_field="createdAt",
            sort_order=SortOrder.DESC,
            filter_expression=(
                Criterion("type", "=", Role.CONSUMER.value),
                Criterion("contractId", "=", agreement_id),
                Criterion("transferType", "=", PULL),
                Criterion("state", "in", list(states)),
            ),
        )
        async with self._store.read() as tx:
            return await tx.transfers.query(spec)

    async def _started(self, transfer_id: str) -> Edr:
        async def started() -> Edr | None:
            transfer = await self._transfers.get(transfer_id)
            if transfer.state in (TransferState.TERMINATED, TransferState.COMPLETED):
                self._spent.add(transfer.agreement_id)
                raise Refused(
                    f"the transfer {transfer_id} under agreement {transfer.agreement_id} ended before it started: "
                    f"{transfer.error_detail or transfer.state.value}"
                )
            return edr_of(transfer) if transfer.state is TransferState.STARTED else None

        return await self._wait(started, f"the transfer {transfer_id} did not start")

    # Both, and reading.

    async def grant(
        self, partner: Partner, dataset: str | Mapping[str, Any], offer_id: str | None = None
    ) -> tuple[Agreement, Edr]:
        """Return an agreement on a dataset and an EDR under it; an agreement the provider no longer honours for a
        transfer is negotiated again, once."""
        agreement = await self.agreement(partner, dataset, offer_id)
        try:
            edr = await self.edr(partner, agreement)
            self._fresh.discard(agreement.negotiation_id)
            return agreement, edr
        except Refused:
            if agreement.id not in self._spent:
                raise
            if agreement.negotiation_id in self._fresh:
                # Just agreed, and its transfer refused: asking again would be refused the same way.
                self._spent.discard(agreement.id)
                raise
        agreement = await self.agreement(partner, dataset, offer_id)
        return agreement, await self.edr(partner, agreement)

    def _hold(self, edr: Edr) -> None:
        self._held[edr.agreement_id] = edr
        self._held_by_transfer[edr.transfer_id] = edr.agreement_id

    def transfer_changed(self, transfer_id: str) -> None:
        """Forget the EDR held of a transfer this node changed (ended, suspended, refreshed): read it again."""
        agreement_id = self._held_by_transfer.pop(transfer_id, None)
        if agreement_id is not None:
            held = self._held.get(agreement_id)
            if held is not None and held.transfer_id == transfer_id:
                del self._held[agreement_id]

    def forget_edr(self, edr: Edr) -> None:
        """Stop handing out an EDR (the provider refused its token); the next `edr` call refreshes or renews it."""
        if self._held.get(edr.agreement_id) == edr:
            del self._held[edr.agreement_id]

    async def renew(self, partner: Partner, agreement: Agreement, refused: Edr) -> Edr:
        """Return another EDR than one the provider refused: its tokens refreshed, or a new transfer's."""
        self.forget_edr(refused)

        async def work() -> Edr:
            try:
                refreshed = edr_of(await self._edrs.refresh(refused.transfer_id))
            except ConnectorError:
                refreshed = None
            if refreshed is not None and refreshed.authorization != refused.authorization:
                return refreshed
            transfer = await self._transfers.start(partner.address, agreement.id, PULL, None)
            return await self._started(transfer.id)

        found = await self._flights.run(("renew", refused.transfer_id, refused.authorization), work)
        self._hold(found)
        return found

    async def get(
        self,
        partner: Partner,
        agreement: Agreement,
        path: str = "",
        query: Mapping[str, str] | None = None,
        url: str | None = None,
        max_body_bytes: int | None = None,
    ) -> PeerResponse:
        """GET `<EDR endpoint><path>` (or `url`, which must be on the EDR's endpoint) under an agreement.

        A 401 or 403 (a token revoked or expired early) renews the EDR and tries once more. Only the EDR's own
        endpoint is ever sent its token: a `url` elsewhere is refused.
        """
        return await self.request(partner, agreement, "GET", path, query, url=url, max_body_bytes=max_body_bytes)

    async def request(
        self,
        partner: Partner,
        agreement: Agreement,
        method: str,
        path: str = "",
        query: Mapping[str, str] | None = None,
        json: Any = None,
        url: str | None = None,
        max_body_bytes: int | None = None,
    ) -> PeerResponse:
        """Send one request to the data plane under an agreement, as `get` does, with any method and a JSON body."""
        edr = await self.edr(partner, agreement)
        for attempt in (1, 2):
            target = url if url is not None else edr.endpoint.rstrip("/") + path
            if query:
                target += ("&" if "?" in target else "?") + urlencode(dict(query))
            if not same_origin(target, edr.endpoint):
                raise PeerError(
                    f"refusing to send the data plane token of {edr.endpoint[:200]} to {target.split('?', 1)[0][:200]}"
                )
            answer = await self._peer.request(
                method,
                target,
                json=json,
                headers={"Authorization": edr.authorization, "Accept": "application/json"},
                max_body_bytes=max_body_bytes,
            )
            if answer.status not in (401, 403) or attempt == 2:
                return answer
            edr = await self.renew(partner, agreement, edr)
        raise AssertionError("unreachable")

    async def partner_at(self, partner: Partner, dsp_endpoint: str) -> Partner:
        """Return the partner as reached at a DSP endpoint someone else named (a registry's `dspEndpoint`).

        The endpoint must be the partner's: its own address, or one whose version document names the partner's
        DID. Anything else is refused, so a registry cannot send this node to negotiate with a third party; the
        version document is read through the peer client, with its limits on addresses, time and size.
        """
        endpoint = dsp_endpoint.strip().rstrip("/")
        if endpoint == partner.address:
            return partner
        if not endpoint.startswith(("http://", "https://")):
            raise PeerError(f"the DSP endpoint {endpoint[:200]!r} is not an http(s) URL")
        address, did = await self._from_version_document(endpoint)
        if did == partner.did or (did is None and same_origin(address, partner.address)):
            return Partner(partner.did, address, partner.bpn)
        raise PeerError(
            f"the DSP endpoint {endpoint[:200]} is not {partner.did}'s (its version document names "
            f"{did or 'no DID'}): refusing to negotiate there"
        )

    # Waiting.

    async def _wait(self, check: Callable[[], Awaitable[T | None]], what: str) -> T:
        delay = self._poll
        try:
            async with asyncio.timeout(self.wait_seconds):
                while True:
                    found = await check()
                    if found is not None:
                        return found
                    await asyncio.sleep(delay)
                    delay = min(delay * 1.5, 0.1)
        except TimeoutError:
            raise PeerTimeout(
                f"{what} within {self.wait_seconds:g} s (CONNECTOR_ACCESS_WAIT_SECONDS); it goes on in the background, "
                "and the next call waits for it instead of starting another"
            ) from None
