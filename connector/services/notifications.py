"""Digital Twin Event notifications between nodes (CX-0151 shape; docs/lifecycle.md).

Sending: a service records what it owes (`owe`, in its own transaction) as a row of `notifications` (direction
`out`, state `pending`) and an outbox item; the dispatcher calls `deliver`, which finds the partner's
DigitalTwinEventAPI asset in its catalog, obtains an agreement and an EDR through the shared access service
(reused, never doubled) and POSTs the message through the partner's data plane. A 2xx, or a 409 saying the
partner has the message already, is delivered; retries and backoff are the outbox's; the reason is kept when it
gives up. Receiving: the data plane hands the message to `receive`, which remembers every message id (a repeat
answers 409 and changes nothing) and applies it in the same transaction.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import replace
from typing import Any

from connector.domain import lifecycle as lc
from connector.domain.assets import DIGITAL_TWIN_EVENT_API, Asset, ContractDefinition, Criterion, DataAddress
from connector.domain.errors import Conflict, ConnectorError, InvalidInput, NotFound, PeerError, Problem, Refused
from connector.services.access import Access, Partner
from connector.services.negotiations import now_ms
from connector.services.registry import DTR_ACCESS_POLICY, DTR_USAGE_POLICY, EDC
from connector.store import Store, Transaction
from connector.store.negotiations import OutboxItem

log = logging.getLogger("connector.notifications")

EVENT_MESSAGE = "DigitalTwinEvent"  # the outbox's name for a notification owed
DCT_TYPE_CRITERION = "'http://purl.org/dc/terms/type'.'@id'"
MAX_LISTED = 500
# Applies a received event in the receiving transaction; returns what it did (the inbox's state and reason), or
# None when the event does not concern it.
Apply = Callable[[Transaction, lc.Event, str], Awaitable[tuple[str, str | None] | None]]
_STATES = ("applied", "received", "ignored")  # the first an applier reports wins, in this order
BpnOf = Callable[[str], Awaitable[str | None]]


class NotificationService:
    """Sends and receives Digital Twin Events; keeps the inbox and the sent messages' delivery states."""

    def __init__(
        self, store: Store, access: Access, own_did: str, own_bpn: str | None, bpn_of: BpnOf, wake: Callable[[], None]
    ) -> None:
        self._store = store
        self._access = access
        self.own_did = own_did
        self.own_bpn = own_bpn
        self._bpn_of = bpn_of
        self._wake = wake
        self.appliers: list[Apply] = []  # the lifecycle service's, and the sync jobs' trigger when there is one

    async def bpn_of(self, partner: Partner) -> str:
        """Return a partner's BPN (the one it was named by, else the BPN directory's); 400 when unknown."""
        bpn = partner.bpn or await self._bpn_of(partner.did)
        if not bpn:
            raise InvalidInput(
                f"the BPN of {partner.did} is unknown: a Digital Twin Event names its receiver's BPN "
                "(name the partner by its BPN, or list it in CONNECTOR_BPN_DIRECTORY_FILE or the BDRS)",
                [Problem("no BPN", "partner", partner.did)],
            )
        return bpn

    def _sender_bpn(self) -> str:
        if not self.own_bpn:
            raise InvalidInput(
                "this node has no BPN (CONNECTOR_BPN): a Digital Twin Event names its sender's BPN",
                [Problem("no BPN", "CONNECTOR_BPN")],
            )
        return self.own_bpn

    async def owe(
        self,
        tx: Transaction,
        partner: Partner,
        receiver_bpn: str,
        context: str,
        passport_id: str,
        content: dict[str, Any],
    ) -> lc.Notification:
        """Record a notification to send to a partner, in the caller's transaction; the outbox delivers it."""
        at = now_ms()
        message_id = f"urn:uuid:{uuid.uuid4()}"
        message = lc.render_event(message_id, context, self._sender_bpn(), receiver_bpn, at, content)
        item = lc.Notification(message_id, "out", partner.did, context, passport_id, message, "pending", None, at, at)
        await tx.lifecycle.add_notification(item)
        payload = {"message": message, "partner": {"did": partner.did, "address": partner.address, "bpn": receiver_bpn}}
        await tx.outbox.add(
            OutboxItem(str(uuid.uuid4()), message_id, EVENT_MESSAGE, partner.address, payload, partner.did, 0, at), at
        )
        tx.after_commit.append(self._wake)
        return item

    async def owe_to(
        self, tx: Transaction, did: str, context: str, passport_id: str, content: dict[str, Any]
    ) -> lc.Notification | None:
        """Record a notification to a partner known by its DID only (its address is resolved when it is sent);
        None when its BPN is unknown (the header names it), which is logged."""
        bpn = await self._bpn_of(did)
        if not bpn:
            log.info("a partner without a known BPN is not told", extra={"partner": did, "context": context})
            return None
        return await self.owe(tx, Partner(did, "", bpn), bpn, context, passport_id, content)

    # Delivery (the outbox dispatcher's).

    async def deliver(self, item: OutboxItem) -> tuple[int, Any]:
        """Send one owed notification through the partner's data plane; return the status and body."""
        about = item.payload["partner"]
        partner = Partner(str(about["did"]), str(about["address"]), about.get("bpn"))
        try:
            if not partner.address:
                partner = await self._access.partner(partner.did)
            found = await self._access.datasets(partner, (Criterion(DCT_TYPE_CRITERION, "=", lc.EVENT_API_TYPE),))
            if not found:
                return 404, {"reason": f"{partner.did} offers this node no dataset of type {lc.EVENT_API_TYPE}"}
            agreement, _ = await self._access.grant(partner, found[0])
            answer = await self._access.request(partner, agreement, "POST", "", json=item.payload["message"])
        except PeerError:
            raise  # not reached, or no answer: the outbox retries
        except ConnectorError as exc:
            status = 403 if isinstance(exc, Refused) else 404 if isinstance(exc, NotFound) else 400
            return status, {"reason": exc.message}
        if answer.status == 409 and isinstance(answer.body, dict) and answer.body.get("duplicate") is True:
            return 200, answer.body  # the partner has it already (an earlier attempt arrived, its answer did not)
        return answer.status, answer.body

    async def on_delivered(self, item: OutboxItem, answer: Any, owner: str) -> None:
        """Record a notification as delivered."""
        async with self._store.transaction() as tx:
            if await tx.outbox.done(item.id, owner):
                await tx.lifecycle.set_state(item.negotiation_id, "out", "delivered", None, now_ms())

    async def on_undeliverable(self, item: OutboxItem, error: str, owner: str) -> None:
        """Record why a notification could not be delivered."""
        log.warning("a notification could not be delivered", extra={"message_id": item.negotiation_id, "reason": error})
        async with self._store.transaction() as tx:
            if await tx.outbox.done(item.id, owner):
                await tx.lifecycle.set_state(item.negotiation_id, "out", "failed", error, now_ms())

    # Receiving (the data plane's).

    async def receive(self, sender_did: str, body: Any) -> lc.Notification:
        """Take a notification a partner sent under an agreement; a repeated message id is a Conflict (409)."""
        event = lc.parse_event(body)
        if self.own_bpn and event.receiver_bpn != self.own_bpn:
            raise InvalidInput(
                f"the message is for {event.receiver_bpn}, not this node ({self.own_bpn})",
                [Problem("not this node's BPN", "header.receiverBpn", event.receiver_bpn)],
            )
        if event.successor is not None and event.successor.node != sender_did:
            raise Refused(
                f"the successor is said to be held by {event.successor.node}, but {sender_did} sent the message: "
                "a node reports only the successors it holds"
            )
        if event.assembly is not None and event.assembly.node != sender_did:
            raise Refused(
                f"the assembly is said to be held by {event.assembly.node}, but {sender_did} sent the message: "
                "a node reports only the assemblies it holds"
            )
        at = now_ms()
        item = lc.Notification(
            event.message_id,
            "in",
            sender_did,
            event.context,
            event.passport_id,
            event.message,
            "received",
            None,
            at,
            at,
        )
        async with self._store.transaction() as tx:
            if not await tx.lifecycle.add_notification(item):
                raise Conflict(f"message {event.message_id} was received already: nothing changed")
            outcomes = [found for apply in self.appliers if (found := await apply(tx, event, sender_did)) is not None]
            state = min((s for s, _ in outcomes), key=_STATES.index, default="received")
            reason = "; ".join(r for _, r in outcomes if r) or None
            await tx.lifecycle.set_state(event.message_id, "in", state, reason, at)
        return replace(item, state=state, reason=reason)

    # Reading.

    async def list(
        self, direction: str | None = None, passport_id: str | None = None, limit: int = 100
    ) -> list[lc.Notification]:
        """Return notifications received (`in`), sent (`out`) or both, newest first."""
        if direction not in (None, "in", "out"):
            raise InvalidInput("direction must be in or out", [Problem("invalid", "direction", direction)])
        async with self._store.read() as tx:
            return await tx.lifecycle.notifications(direction, passport_id, min(max(limit, 1), MAX_LISTED))

    async def get(self, message_id: str, direction: str = "in") -> lc.Notification:
        """Return one notification."""
        async with self._store.read() as tx:
            found = await tx.lifecycle.notification(message_id, direction)
        if found is None:
            raise NotFound(f"no notification {message_id!r} ({direction})")
        return found


async def publish(tx: Transaction, levels: Sequence[str], at: int) -> tuple[list[str], list[str], list[str]]:
    """Offer the Digital Twin Event API (in the passports' publishing transaction, after the registry's hook, whose
    Catena-X policies it is offered under); existing ones are kept."""
    made_assets: list[str] = []
    made_definitions: list[str] = []
    if await tx.assets.get(lc.EVENT_ASSET_ID) is None:
        await tx.assets.add(
            Asset(
                id=lc.EVENT_ASSET_ID,
                properties={
                    EDC + "id": lc.EVENT_ASSET_ID,
                    EDC + "name": "Digital Twin Events about battery passports (CX-0151)",
                    EDC + "contenttype": "application/json",
                    "http://purl.org/dc/terms/type": {"@id": lc.EVENT_API_TYPE},
                },
                private_properties={},
                data_address=DataAddress(DIGITAL_TWIN_EVENT_API, {}),
                created_at=at,
            )
        )
        made_assets.append(lc.EVENT_ASSET_ID)
    if await tx.contracts.get(lc.EVENT_ASSET_ID) is None:
        selector = (Criterion(EDC + "id", "=", lc.EVENT_ASSET_ID),)
        await tx.contracts.add(
            ContractDefinition(lc.EVENT_ASSET_ID, DTR_ACCESS_POLICY, DTR_USAGE_POLICY, selector, {}, at)
        )
        made_definitions.append(lc.EVENT_ASSET_ID)
    return made_assets, [], made_definitions
