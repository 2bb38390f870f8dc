"""How a sync run gets to read a partner's dataset: an agreement and a pull transfer's endpoint data reference.

The seam is `DatasetAccess`: `open` returns an endpoint and token for a dataset (reusing the job's transfer of
that dataset while it is STARTED, or negotiating the dataset's offer and starting a pull transfer), `refresh`
renews the token. `NegotiatedAccess` builds it from this node's consumer services; the shared "reuse a valid
agreement and EDR or negotiate" service (connector.services.access) is meant to replace it behind the seam.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any, Protocol

from connector.domain.assets import Criterion
from connector.domain.errors import ConnectorError, PeerError
from connector.domain.negotiation import NegotiationState, Role
from connector.domain.query import QuerySpec
from connector.domain.transfer import TransferState
from connector.dsp.transfer import endpoint_properties
from connector.services.edrs import EdrRefresher
from connector.services.negotiations import NegotiationService
from connector.services.transfers import TransferService
from connector.store import Store


@dataclass(frozen=True, slots=True)
class Endpoint:
    """Where and with which token a dataset is read, and the transfer process that grants it."""

    transfer_id: str
    url: str
    token: str


class DatasetAccess(Protocol):
    """Gets and renews read access to a partner's dataset."""

    async def open(
        self, address: str, counterparty_id: str, dataset_id: str, offer: dict[str, Any], reuse: str | None
    ) -> Endpoint: ...

    async def refresh(self, endpoint: Endpoint) -> Endpoint: ...


def _endpoint(transfer_id: str, address: dict[str, Any] | None) -> Endpoint | None:
    props = endpoint_properties(address) if address else {}
    url, token = props.get("endpoint"), props.get("authorization")
    return Endpoint(transfer_id, url, token) if url and token else None


class NegotiatedAccess:
    """DatasetAccess through this node's negotiation and transfer services."""

    def __init__(
        self,
        store: Store,
        negotiations: NegotiationService,
        transfers: TransferService,
        edrs: EdrRefresher,
        timeout: float = 60.0,
        poll: float = 0.05,
    ) -> None:
        self._store = store
        self._negotiations = negotiations
        self._transfers = transfers
        self._edrs = edrs
        self._timeout = timeout
        self._poll = poll

    async def open(
        self, address: str, counterparty_id: str, dataset_id: str, offer: dict[str, Any], reuse: str | None
    ) -> Endpoint:
        """Return an endpoint for the dataset: the transfer `reuse` while it is STARTED, or a new agreement's."""
        if reuse is not None:
            try:
                transfer = await self._edrs.current(reuse, auto_refresh=True)
            except ConnectorError:
                transfer = None
            if transfer is not None and transfer.state is TransferState.STARTED:
                found = _endpoint(transfer.id, transfer.data_address)
                if found is not None:
                    return found
        negotiation = await self._negotiations.start(address, counterparty_id, offer, pull_when_finalized=True)
        try:
            async with asyncio.timeout(self._timeout):
                return await self._wait(negotiation.id, dataset_id)
        except TimeoutError:
            raise PeerError(
                f"no agreement and data address for dataset {dataset_id!r} within {self._timeout:g} s"
            ) from None

    async def _wait(self, negotiation_id: str, dataset_id: str) -> Endpoint:
        while True:
            negotiation = await self._negotiations.get(negotiation_id)
            if negotiation.state is NegotiationState.TERMINATED:
                reason = negotiation.error_detail or "no reason"
                raise PeerError(f"the negotiation for dataset {dataset_id!r} was terminated: {reason}")
            if negotiation.state is NegotiationState.FINALIZED and negotiation.agreement_id:
                break
            await asyncio.sleep(self._poll)
        spec = QuerySpec(
            limit=10,
            filter_expression=(
                Criterion("contractId", "=", negotiation.agreement_id),
                Criterion("type", "=", Role.CONSUMER.value),  # the node's own side of the transfer
            ),
        )
        while True:
            async with self._store.read() as tx:
                found_transfers = await tx.transfers.query(spec)
            for transfer in found_transfers:
                if transfer.state is TransferState.TERMINATED:
                    reason = transfer.error_detail or "no reason"
                    raise PeerError(f"the transfer for dataset {dataset_id!r} was terminated: {reason}")
                if transfer.state is TransferState.STARTED:
                    found = _endpoint(transfer.id, transfer.data_address)
                    if found is not None:
                        return found
            await asyncio.sleep(self._poll)

    async def refresh(self, endpoint: Endpoint) -> Endpoint:
        """Return the endpoint with fresh tokens (the Tractus-X refresh profile)."""
        transfer = await self._edrs.refresh(endpoint.transfer_id)
        found = _endpoint(transfer.id, transfer.data_address)
        if found is None:
            raise PeerError("the refreshed endpoint data reference has no endpoint or token")
        return found
