"""Sending DSP 2025-1 requests to peers: signed with our token, bounded by the peer client, errors explained."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

from connector.domain.assets import Criterion
from connector.domain.errors import ConnectorError, InvalidInput, PeerError, Problem
from connector.dsp.catalog import parse_dataset_offers, render_catalog_request
from connector.services.identity import NodeIdentity
from connector.transport.peer import PeerClient, PeerResponse, read_json

DSP_CONTEXT = "https://w3id.org/dspace/2025/1/context.jsonld"
DSP_PROTOCOL = "dataspace-protocol-http:2025-1"
ACCEPTED_PROTOCOLS = (DSP_PROTOCOL, "dataspace-protocol-http")


def check_protocol(protocol: str | None, field: str = "protocol") -> None:
    """Refuse a protocol id this node does not speak (`field`: where the request named it, protocol or profile)."""
    if protocol is not None and protocol not in ACCEPTED_PROTOCOLS:
        raise InvalidInput(
            f"{field} {protocol!r} is not supported; this node speaks {DSP_PROTOCOL}",
            [Problem(f"unsupported {field}", field, protocol)],
        )


def _reasons(body: Any) -> str:
    if isinstance(body, dict):
        reason = body.get("reason")
        if isinstance(reason, list):
            return "; ".join(str(r) for r in reason[:5])
        if isinstance(reason, str):
            return reason
        for key in ("detail", "message", "title"):
            if isinstance(body.get(key), str):
                return str(body[key])
    return "no reason given"


class DspClient:
    """Sends DSP messages to a peer's versioned base URL (its `counterPartyAddress`).

    Every message is addressed (the token's audience) to the peer's DID: a counterparty named by its BPN is resolved
    through the BPN directory, here, for every request and every message owed, as Tractus-X EDC's audience mapper does.
    """

    def __init__(self, peer: PeerClient, identity: NodeIdentity) -> None:
        self._peer = peer
        self._identity = identity

    async def counterparty_id(self, address: str, given: str | None) -> str:
        """Return the peer's DID: as given (a BPN resolved to its DID), or its version document's serviceId."""
        if given:
            return await self._identity.participant_did(given)
        root = address.rstrip("/").removesuffix("/2025-1")
        answer = await self._peer.request("GET", f"{root}/.well-known/dspace-version")
        versions = answer.body.get("protocolVersions") if isinstance(answer.body, dict) else None
        for entry in versions if isinstance(versions, list) else []:
            if (
                isinstance(entry, dict)
                and entry.get("version") == "2025-1"
                and str(entry.get("serviceId", "")).startswith("did:")
            ):
                return str(entry["serviceId"])
        raise InvalidInput(
            "counterPartyId is required: the peer's version document names no DID to address it by",
            [Problem("missing", "counterPartyId")],
        )

    async def _send(
        self, method: str, url: str, counterparty: str, message: Any = None, decode: bool = True
    ) -> PeerResponse:
        """Send a DSP request; a 2xx answer must be JSON (without `decode`: says it is JSON, its bytes unread)."""
        headers = {"Authorization": self._identity.token_for(await self._identity.participant_did(counterparty))}
        answer = await self._peer.request(method, url, json=message, headers=headers, decode=decode)
        if not answer.ok:
            reasons = _reasons(answer.body if decode else answer.json_or_none())
            raise PeerError(f"{url} answered {answer.status}: {reasons}")
        if not (isinstance(answer.body, dict) if decode else answer.said_json):
            raise PeerError(f"{url} answered {answer.status} without a JSON object")
        return answer

    async def deliver(self, url: str, counterparty: str, message: dict[str, Any]) -> tuple[int, Any]:
        """POST a message and return the peer's status and body, whatever the status (the outbox decides)."""
        try:
            audience = await self._identity.participant_did(counterparty)
        except ConnectorError as exc:
            raise PeerError(exc.message) from None  # retried, then the process ends with the reason
        headers = {"Authorization": self._identity.token_for(audience)}
        answer = await self._peer.request("POST", url, json=message, headers=headers)
        return answer.status, answer.body

    async def post(
        self, address: str, path: str, counterparty: str, message: dict[str, Any], decode: bool = True
    ) -> PeerResponse:
        """POST a DSP message to `<address><path>`."""
        return await self._send("POST", address.rstrip("/") + path, counterparty, message, decode)

    async def get(self, address: str, path: str, counterparty: str, decode: bool = True) -> PeerResponse:
        """GET a DSP resource at `<address><path>`."""
        return await self._send("GET", address.rstrip("/") + path, counterparty, None, decode)


@dataclass(slots=True)
class PeerDocument:
    """A peer's catalog or dataset answer: the bytes it sent, read as its DSP JSON only when `body` is asked.

    Whether the bytes are a JSON object of the expected type depends on the bytes alone, so a caller that
    answered these very bytes before (the management API keeps its renderings with the bytes they came from)
    need not read them again; reading them raises PeerError naming what is wrong, as the request would have."""

    raw: bytes
    address: str
    request: str  # "catalog" or "dataset": what was asked, for the error
    types: tuple[str, ...]
    _body: dict[str, Any] | None = field(default=None, repr=False)

    @property
    def body(self) -> dict[str, Any]:
        """Return the answer's JSON object (read once), checked to be of the expected type."""
        if self._body is None:
            found = read_json(self.raw, self.address)
            if not isinstance(found, dict):
                raise PeerError(f"{self.address} answered a {self.request} request without a JSON object")
            if found.get("@type") not in self.types:
                raise PeerError(f"{self.address} answered a {self.request} request with a {found.get('@type')!r}")
            self._body = found
        return self._body


class PeerCatalogs:
    """Asks peers for their catalogs (the consumer side of the catalog protocol)."""

    def __init__(self, client: DspClient) -> None:
        self._client = client

    async def catalog(
        self,
        address: str,
        counterparty: str | None,
        protocol: str | None,
        page: tuple[int, int] | None,
        criteria: tuple[Criterion, ...] = (),
    ) -> dict[str, Any]:
        """Return a peer's catalog (one page, of the datasets the criteria select) as its DSP JSON."""
        return (await self.catalog_answer(address, counterparty, protocol, page, criteria)).body

    async def catalog_answer(
        self,
        address: str,
        counterparty: str | None,
        protocol: str | None,
        page: tuple[int, int] | None,
        criteria: tuple[Criterion, ...] = (),
    ) -> PeerDocument:
        """Return a peer's catalog answer (its bytes; its DSP JSON read when asked)."""
        check_protocol(protocol)
        did = await self._client.counterparty_id(address, counterparty)
        # EDC providers read paging and the filter from a QuerySpec in the message's filter; this node's does too.
        message = render_catalog_request(page, criteria)
        answer = await self._client.post(address, "/catalog/request", did, message, decode=False)
        return PeerDocument(answer.raw, address, "catalog", ("Catalog", "dcat:Catalog"))

    async def dataset(
        self, address: str, counterparty: str | None, protocol: str | None, dataset_id: str
    ) -> dict[str, Any]:
        """Return one dataset of a peer as its DSP JSON."""
        return (await self.dataset_answer(address, counterparty, protocol, dataset_id)).body

    async def dataset_answer(
        self, address: str, counterparty: str | None, protocol: str | None, dataset_id: str
    ) -> PeerDocument:
        """Return a peer's answer for one dataset (its bytes; its DSP JSON read when asked)."""
        check_protocol(protocol)
        did = await self._client.counterparty_id(address, counterparty)
        path = f"/catalog/datasets/{quote(dataset_id, safe='')}"
        answer = await self._client.get(address, path, did, decode=False)
        return PeerDocument(answer.raw, address, "dataset", ("Dataset", "dcat:Dataset"))

    async def published_offer(self, address: str, counterparty: str, dataset_id: str, offer_id: str) -> dict[str, Any]:
        """Return an offer as the provider publishes it (DSP form, its dataset as target), read from the dataset.

        EDC writes a fresh last part into its offer ids on every catalog request
        (`base64(definition):base64(asset):base64(uuid)`), so an id of that shape that is no longer listed is
        matched by its first two parts: the same contract definition on the same asset, hence the same rules.
        """
        document = await self.dataset(address, counterparty, None, dataset_id)
        offers = parse_dataset_offers(document)
        found = offers.get(offer_id)
        if found is None and offer_id.count(":") == 2:
            stem = offer_id.rsplit(":", 1)[0] + ":"
            same = [o for i, o in offers.items() if i.count(":") == 2 and i.startswith(stem)]
            found = same[0] if len(same) == 1 else None
        if found is None:
            listed = ", ".join(sorted(offers)[:5]) or "none"
            raise InvalidInput(
                f"the provider's dataset {dataset_id!r} has no offer {offer_id!r} (it offers {listed}); "
                "request the catalog again and use one of its offers",
                [Problem("unknown offer", "policy.@id", offer_id)],
            )
        return {**found, "@id": offer_id}
