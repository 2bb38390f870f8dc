"""How a sync run gets to read a partner's dataset, through the one consumer access service (connector.services.access).

The seam is `DatasetAccess`: `partner` resolves the job's partner (DID, BPN or DSP address) to its DID and DSP
address, `open` returns an endpoint and token for a dataset (an agreement and an EDR held are reused; otherwise
the dataset's offer is negotiated and a pull transfer started), and `renew` replaces a token the provider
refused. `SharedAccess` is that seam over `Access`, which shares agreements and EDRs with the passport lookup.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

from connector.services.access import Access, Edr, Partner
from connector.services.sync_registry import RegistryReader
from connector.store.negotiations import Agreement


@dataclass(frozen=True, slots=True)
class Endpoint:
    """Where and with which token a dataset is read, and the transfer process that grants it."""

    transfer_id: str
    url: str
    token: str
    handle: Any = None  # what the access service needs to renew it


class DatasetAccess(Protocol):
    """Gets and renews read access to a partner's datasets."""

    async def partner(self, address: str, partner_id: str | None) -> tuple[str, str]: ...

    async def open(self, did: str, address: str, dataset_id: str, offer_id: str | None) -> Endpoint: ...

    async def renew(self, endpoint: Endpoint) -> Endpoint: ...

    def registry(self, did: str, address: str) -> RegistryReader: ...


class SharedAccess:
    """DatasetAccess through `Access`."""

    def __init__(self, access: Access) -> None:
        self._access = access

    async def partner(self, address: str, partner_id: str | None) -> tuple[str, str]:
        """Return the partner's DID and versioned DSP address (from its DID or BPN when given, else its address)."""
        found = await self._access.partner(partner_id or address)
        return found.did, found.address

    async def open(self, did: str, address: str, dataset_id: str, offer_id: str | None) -> Endpoint:
        """Return an endpoint for the dataset under an agreement held or negotiated."""
        partner = Partner(did, address)
        agreement, edr = await self._access.grant(partner, dataset_id, offer_id)
        return _endpoint(partner, agreement, edr)

    async def renew(self, endpoint: Endpoint) -> Endpoint:
        """Return another endpoint than one the provider refused: refreshed tokens, or a new transfer's."""
        partner, agreement, edr = endpoint.handle
        return _endpoint(partner, agreement, await self._access.renew(partner, agreement, edr))

    def registry(self, did: str, address: str) -> RegistryReader:
        """Return a reader of the partner's Digital Twin Registry (CX-0160's bulk mode)."""
        return RegistryReader(self._access, Partner(did, address))


def _endpoint(partner: Partner, agreement: Agreement, edr: Edr) -> Endpoint:
    return Endpoint(edr.transfer_id, edr.endpoint, edr.authorization, (partner, agreement, edr))
