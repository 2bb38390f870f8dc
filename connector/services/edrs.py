"""The consumer's side of the Tractus-X token refresh profile: exchange an EDR's refresh token for new tokens.

The consumer signs a self-issued token with its DID's key (``iss`` = ``sub`` = its DID, ``aud`` = the
provider's DID, never another party the EDR names; the access token being replaced in ``token``), POSTs
``grant_type=refresh_token`` and the refresh token to the EDR's refreshEndpoint (in the query, as Tractus-X
EDC 0.9-0.11 reads it, and in a form body, as RFC 6749 has it), and stores the new tokens and lifetime.
"""

from __future__ import annotations

import base64
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import urlencode

import orjson

from connector.domain.errors import NotFound, PeerError
from connector.domain.negotiation import Role
from connector.domain.transfer import Transfer
from connector.dsp.transfer import endpoint_properties
from connector.services.transfers import TransferService
from connector.transport.peer import PeerClient

MAX_ANSWER_BYTES = 64 * 1024
# The answer's fields and the EDR properties they replace (Tractus-X 0.9-0.11 answers `expires`).
_UPDATES = (("access_token", "authorization"), ("refresh_token", "refreshToken"))


# With auto_refresh, an access token this close to its expiry is refreshed before it is handed out.
REFRESH_MARGIN_SECONDS = 10


def token_expiry(token: str) -> int | None:
    """Return the `exp` of a JWT without verifying it (a hint for when to refresh; the provider verifies)."""
    parts = token.removeprefix("Bearer ").split(".")
    if len(parts) != 3:
        return None
    try:
        claims = orjson.loads(base64.urlsafe_b64decode(parts[1] + "=" * (-len(parts[1]) % 4)))
    except (ValueError, orjson.JSONDecodeError):
        return None
    exp = claims.get("exp") if isinstance(claims, dict) else None
    return exp if isinstance(exp, int) and not isinstance(exp, bool) else None


class EdrRefresher:
    """Refreshes the endpoint data references this node holds as a consumer."""

    def __init__(self, transfers: TransferService, peer: PeerClient, sign: Callable[[str, str], str]) -> None:
        self._transfers = transfers
        self._peer = peer
        self._sign = sign  # (audience DID, access token) -> our self-issued token

    async def current(self, transfer_id: str, auto_refresh: bool = False) -> Transfer:
        """Return a consumer transfer with its EDR, refreshed first when asked and its token (nearly) expired."""
        transfer = await self._transfers.get(transfer_id)
        if transfer.role is not Role.CONSUMER or transfer.data_address is None:
            raise NotFound(
                f"transfer process {transfer.id!r} has no endpoint data reference (state {transfer.state.value})"
            )
        if auto_refresh:
            expiry = token_expiry(endpoint_properties(transfer.data_address).get("authorization", ""))
            if expiry is not None and expiry - time.time() < REFRESH_MARGIN_SECONDS:
                return await self.refresh(transfer_id)
        return transfer

    async def refresh(self, transfer_id: str) -> Transfer:
        """Refresh the EDR of a consumer transfer; return the transfer with the new EDR stored."""
        transfer = await self._transfers.get(transfer_id)
        if transfer.role is not Role.CONSUMER or transfer.data_address is None:
            raise NotFound(f"transfer process {transfer_id!r} has no endpoint data reference to refresh")
        props = endpoint_properties(transfer.data_address)
        endpoint, refresh_token = props.get("refreshEndpoint"), props.get("refreshToken")
        if not endpoint or not refresh_token:
            raise PeerError(f"the provider's endpoint data reference of {transfer_id!r} cannot be refreshed")
        url = endpoint if endpoint.rstrip("/").endswith("/token") else endpoint.rstrip("/") + "/token"
        # Signed for the provider, whatever refreshAudience says: a token addressed to anyone else could be
        # replayed by the provider to that party as a request from this node. (Tractus-X providers name the
        # consumer's own DID there and do not check the audience.)
        proof = self._sign(transfer.counterparty_id, props.get("authorization", ""))
        form = urlencode({"grant_type": "refresh_token", "refresh_token": refresh_token})
        answer = await self._peer.request(
            "POST",
            f"{url}?{form}",
            data=form.encode(),
            headers={"Authorization": "Bearer " + proof, "Content-Type": "application/x-www-form-urlencoded"},
            max_body_bytes=MAX_ANSWER_BYTES,
        )
        body: Any = answer.body
        if not answer.ok or not isinstance(body, dict):
            reason = body.get("reason") if isinstance(body, dict) else None
            detail = f": {str(reason)[:300]}" if reason else ""
            raise PeerError(f"the provider refused to refresh the tokens ({answer.status}){detail}")
        values = {prop: body[field] for field, prop in _UPDATES if isinstance(body.get(field), str) and body[field]}
        lifetime = body.get("expires_in", body.get("expires"))
        if len(values) != len(_UPDATES) or isinstance(lifetime, bool) or not isinstance(lifetime, int | str):
            raise PeerError("the provider's refresh answer lacks access_token, refresh_token or expires_in")
        values["expiresIn"] = str(lifetime)
        return await self._transfers.update_edr(transfer.id, _replaced(transfer.data_address, values), transfer.version)


def _replaced(address: dict[str, Any], values: dict[str, str]) -> dict[str, Any]:
    """Return a DataAddress with the named endpoint properties' values replaced (names kept as sent)."""
    entries = []
    seen = set()
    for entry in address.get("endpointProperties") or []:
        if isinstance(entry, dict) and isinstance(entry.get("name"), str):
            bare = endpoint_properties({"endpointProperties": [entry]})
            name = next(iter(bare), None)
            if name in values:
                entry = {**entry, "value": values[name]}
                seen.add(name)
        entries.append(entry)
    entries += [{"@type": "EndpointProperty", "name": k, "value": v} for k, v in values.items() if k not in seen]
    return {**address, "endpointProperties": entries}
