"""Negotiations, agreements and the outbox of messages owed to peers."""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import orjson
from sqlalchemy import and_, bindparam, delete, insert, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from connector.domain.errors import AlreadyExists, Conflict
from connector.domain.negotiation import Negotiation, NegotiationState, Role
from connector.domain.query import QuerySpec
from connector.store import direct, query
from connector.store.sealing import PLAIN, Sealer, open_or_none
from connector.store.tables import agreements, negotiations, outbox


def _int_or_none(value: Any) -> int | None:
    return None if value is None else int(value)


def _negotiation(row: Mapping[Any, Any]) -> Negotiation:
    return Negotiation(
        id=row["id"],
        role=Role(row["role"]),
        state=NegotiationState(row["state"]),
        provider_pid=row["provider_pid"],
        consumer_pid=row["consumer_pid"],
        counterparty_id=row["counterparty_id"],
        counterparty_address=row["counterparty_address"],
        offer=dict(row["offer"]),
        asset_id=row["asset_id"],
        definition_id=row["definition_id"],
        agreement=dict(row["agreement"]) if row["agreement"] is not None else None,
        agreement_id=row["agreement_id"],
        error_detail=row["error_detail"],
        awaiting_ack=row["awaiting_ack"],
        pending=bool(row["pending"]),
        deadline_at=_int_or_none(row["deadline_at"]),
        pull_when_finalized=bool(row["pull_when_finalized"]),
        created_at=int(row["created_at"]),
        updated_at=int(row["updated_at"]),
        version=int(row["version"]),
    )


def _row(negotiation: Negotiation) -> dict[str, Any]:
    return {
        "id": negotiation.id,
        "role": negotiation.role.value,
        "state": negotiation.state.value,
        "provider_pid": negotiation.provider_pid,
        "consumer_pid": negotiation.consumer_pid,
        "counterparty_id": negotiation.counterparty_id,
        "counterparty_address": negotiation.counterparty_address,
        "offer": negotiation.offer,
        "asset_id": negotiation.asset_id,
        "definition_id": negotiation.definition_id,
        "agreement": negotiation.agreement,
        "agreement_id": negotiation.agreement_id,
        "error_detail": negotiation.error_detail,
        "awaiting_ack": negotiation.awaiting_ack,
        "pending": negotiation.pending,
        "deadline_at": negotiation.deadline_at,
        "pull_when_finalized": negotiation.pull_when_finalized,
        "created_at": negotiation.created_at,
        "updated_at": negotiation.updated_at,
        "version": negotiation.version,
    }


# The statements of a negotiation's every step, built once: a statement built per call costs SQLAlchemy its
# construction (a coercion per column of .values()) and a fresh cache key each time, more than the SQLite work
# itself; a constant statement with its values as execute parameters hits the compiled cache at once.
_ADD_NEGOTIATION = insert(negotiations)
_SAVE_NEGOTIATION = update(negotiations).where(
    negotiations.c.id == bindparam("b_id"), negotiations.c.version == bindparam("b_previous")
)
_GET_NEGOTIATION = select(negotiations).where(negotiations.c.id == bindparam("b_id"))
_GET_NEGOTIATION_LOCKED = _GET_NEGOTIATION.with_for_update()
_FIND_BY_PEER = {
    column.name: select(negotiations).where(
        negotiations.c.role == bindparam("b_role"),
        negotiations.c.counterparty_id == bindparam("b_counterparty"),
        column == bindparam("b_pid"),
    )
    for column in (negotiations.c.consumer_pid, negotiations.c.provider_pid)
}
_ADD_AGREEMENT = insert(agreements)
_GET_AGREEMENT = select(agreements).where(agreements.c.id == bindparam("b_id"))
_ADD_OUTBOX = insert(outbox)
_DONE_OUTBOX = delete(outbox).where(outbox.c.id == bindparam("b_id"), outbox.c.lease_owner == bindparam("b_owner"))
_FORGET_OUTBOX = delete(outbox).where(
    outbox.c.negotiation_id == bindparam("b_process"), outbox.c.message == bindparam("b_message")
)
_PENDING_OUTBOX = (
    select(outbox.c.message).where(outbox.c.negotiation_id == bindparam("b_process")).order_by(outbox.c.created_at)
)
_DROP_OUTBOX = delete(outbox).where(outbox.c.negotiation_id == bindparam("b_process"))


def _claim_outbox(locking: bool) -> Any:
    """Lease due messages not leased by another (or whose lease expired): SET lease_owner, lease_until."""
    free = or_(outbox.c.lease_until.is_(None), outbox.c.lease_until < bindparam("b_now"))
    due = (
        select(outbox.c.id)
        .where(outbox.c.next_attempt_at <= bindparam("b_now"), free)
        .order_by(outbox.c.next_attempt_at)
        .limit(bindparam("b_limit"))
    )
    if locking:
        due = due.with_for_update(skip_locked=True)
    return update(outbox).where(outbox.c.id.in_(due.scalar_subquery()), free).returning(*outbox.c)


_CLAIM_OUTBOX = _claim_outbox(locking=False)
_CLAIM_OUTBOX_PG = _claim_outbox(locking=True)  # several replicas claim at once: skip what another has locked


class NegotiationRepository:
    """Negotiations, written with a version check so two writers never overwrite each other."""

    _COLUMNS = {
        "id": negotiations.c.id,
        "state": negotiations.c.state,
        "pending": negotiations.c.pending,
        "type": negotiations.c.role,
        "counterPartyId": negotiations.c.counterparty_id,
        "assetId": negotiations.c.asset_id,
        "contractAgreementId": negotiations.c.agreement_id,
        "createdAt": negotiations.c.created_at,
    }

    def __init__(self, connection: AsyncConnection) -> None:
        self._c = connection

    async def add(self, negotiation: Negotiation) -> None:
        """Store a new negotiation (AlreadyExists when the peer's pid is taken: its request, handled twice)."""
        try:
            await direct.execute(self._c, _ADD_NEGOTIATION, _row(negotiation))
        except IntegrityError as exc:
            raise AlreadyExists(
                f"negotiation {negotiation.consumer_pid} of {negotiation.counterparty_id} exists"
            ) from exc

    async def save(self, negotiation: Negotiation) -> None:
        """Store a changed negotiation whose version is one more than the stored one; Conflict otherwise."""
        parameters = {**_row(negotiation), "b_id": negotiation.id, "b_previous": negotiation.version - 1}
        if await direct.execute(self._c, _SAVE_NEGOTIATION, parameters) != 1:
            raise Conflict(f"negotiation {negotiation.id} was changed concurrently; retry")

    async def get(self, negotiation_id: str, for_update: bool = False) -> Negotiation | None:
        """Return one negotiation by this node's pid."""
        locked = for_update and self._c.dialect.name == "postgresql"
        statement = _GET_NEGOTIATION_LOCKED if locked else _GET_NEGOTIATION
        row = await direct.first(self._c, statement, {"b_id": negotiation_id})
        return _negotiation(row) if row else None

    async def find_by_peer(self, role: Role, counterparty_id: str, peer_pid: str) -> Negotiation | None:
        """Return the negotiation in `role` that the counterparty opened with its pid (for redelivered openings)."""
        statement = _FIND_BY_PEER["consumer_pid" if role is Role.PROVIDER else "provider_pid"]
        parameters = {"b_role": role.value, "b_counterparty": counterparty_id, "b_pid": peer_pid}
        row = await direct.first(self._c, statement, parameters)
        return _negotiation(row) if row else None

    async def overdue(self, now: int, limit: int) -> list[Negotiation]:
        """Return negotiations whose deadline for the peer's next move has passed, earliest first."""
        statement = (
            select(negotiations)
            .where(negotiations.c.deadline_at <= now)
            .order_by(negotiations.c.deadline_at)
            .limit(limit)
        )
        return [_negotiation(r) for r in (await self._c.execute(statement)).mappings()]

    async def unstamped(self, limit: int, after: str = "") -> list[Negotiation]:
        """Return negotiations that have not ended, owe nothing and have no deadline, by id (to stamp them)."""
        statement = (
            select(negotiations)
            .where(
                negotiations.c.deadline_at.is_(None),
                negotiations.c.awaiting_ack.is_(None),
                negotiations.c.state.not_in([NegotiationState.FINALIZED.value, NegotiationState.TERMINATED.value]),
                negotiations.c.id > after,
            )
            .order_by(negotiations.c.id)
            .limit(limit)
        )
        return [_negotiation(r) for r in (await self._c.execute(statement)).mappings()]

    async def ongoing_for_asset(self, asset_id: str) -> list[str]:
        """Return the ids of negotiations on an asset that have not ended."""
        statement = (
            select(negotiations.c.id)
            .where(
                negotiations.c.asset_id == asset_id,
                negotiations.c.state.not_in([NegotiationState.FINALIZED.value, NegotiationState.TERMINATED.value]),
            )
            .limit(5)
        )
        return list((await self._c.execute(statement)).scalars())

    async def query(self, spec: QuerySpec) -> list[Negotiation]:
        """Return the negotiations a QuerySpec selects."""
        statement = query.apply_column_query(
            select(negotiations), spec, self._COLUMNS, negotiations.c.id, "contract negotiations"
        )
        return [_negotiation(r) for r in (await self._c.execute(statement)).mappings()]


@dataclass(frozen=True, slots=True)
class Agreement:
    """A contract agreement: who agreed with whom, on which asset, under which policy (DSP JSON), when."""

    id: str
    negotiation_id: str
    asset_id: str
    provider_id: str
    consumer_id: str
    policy: dict[str, Any]
    signed_at: int


class AgreementRepository:
    """Agreements reached (on either side)."""

    _COLUMNS = {
        "id": agreements.c.id,
        "assetId": agreements.c.asset_id,
        "providerId": agreements.c.provider_id,
        "consumerId": agreements.c.consumer_id,
        "contractSigningDate": agreements.c.signed_at,
    }

    def __init__(self, connection: AsyncConnection) -> None:
        self._c = connection

    async def add(self, agreement: Agreement) -> None:
        """Store an agreement (once: a redelivered agreement changes nothing)."""
        if await self.get(agreement.id) is None:
            await direct.execute(
                self._c,
                _ADD_AGREEMENT,
                {
                    "id": agreement.id,
                    "negotiation_id": agreement.negotiation_id,
                    "asset_id": agreement.asset_id,
                    "provider_id": agreement.provider_id,
                    "consumer_id": agreement.consumer_id,
                    "policy": agreement.policy,
                    "signed_at": agreement.signed_at,
                },
            )

    async def get(self, agreement_id: str) -> Agreement | None:
        """Return one agreement."""
        row = await direct.first(self._c, _GET_AGREEMENT, {"b_id": agreement_id})
        return _agreement(row) if row else None

    async def query(self, spec: QuerySpec) -> list[Agreement]:
        """Return the agreements a QuerySpec selects."""
        statement = query.apply_column_query(
            select(agreements), spec, self._COLUMNS, agreements.c.id, "contract agreements"
        )
        return [_agreement(r) for r in (await self._c.execute(statement)).mappings()]

    async def referencing_asset(self, asset_id: str) -> list[str]:
        """Return the ids of agreements on an asset."""
        statement = select(agreements.c.id).where(agreements.c.asset_id == asset_id).limit(5)
        return list((await self._c.execute(statement)).scalars())


def _agreement(row: Mapping[Any, Any]) -> Agreement:
    return Agreement(
        id=row["id"],
        negotiation_id=row["negotiation_id"],
        asset_id=row["asset_id"],
        provider_id=row["provider_id"],
        consumer_id=row["consumer_id"],
        policy=dict(row["policy"]),
        signed_at=int(row["signed_at"]),
    )


@dataclass(frozen=True, slots=True)
class OutboxItem:
    """A message owed to a peer."""

    id: str
    negotiation_id: str
    message: str
    url: str
    payload: dict[str, Any]
    counterparty: str
    attempts: int
    next_attempt_at: int
    # Its sealed payload did not open with this node's key (the key file was replaced): it cannot be sent.
    unreadable: bool = False


# An outbox payload as stored: the message sealed whole (it may carry tokens: an EDR in a start, a push
# destination's authorization in a request), bound to its row.
SEALED = "sealed"


class OutboxRepository:
    """Messages owed to peers, claimed by lease; their payloads are sealed at rest."""

    def __init__(self, connection: AsyncConnection, sealer: Sealer = PLAIN) -> None:
        self._c = connection
        self._sealer = sealer

    def _seal(self, item_id: str, payload: dict[str, Any]) -> dict[str, Any]:
        return {SEALED: self._sealer.seal(orjson.dumps(payload).decode(), f"outbox/{item_id}/payload")}

    def _open(self, item_id: str, stored: dict[str, Any]) -> dict[str, Any] | None:
        sealed = stored.get(SEALED)
        if len(stored) != 1 or not isinstance(sealed, str):
            return stored  # written before payloads were sealed
        opened = open_or_none(self._sealer, sealed, f"outbox/{item_id}/payload")
        if opened is None:
            return None
        value = orjson.loads(opened)
        return value if isinstance(value, dict) else None

    async def owe(
        self,
        process_id: str,
        message: str,
        url: str,
        payload: dict[str, Any],
        counterparty: str,
        now: int,
        delay_ms: int = 0,
    ) -> None:
        """Record a message owed for a process (negotiation or transfer), due now or after `delay_ms`."""
        item = OutboxItem(str(uuid.uuid4()), process_id, message, url, payload, counterparty, 0, now + delay_ms)
        await self.add(item, now)

    async def add(self, item: OutboxItem, now: int) -> None:
        """Record a message to send."""
        await direct.execute(
            self._c,
            _ADD_OUTBOX,
            {
                "id": item.id,
                "negotiation_id": item.negotiation_id,
                "message": item.message,
                "url": item.url,
                "payload": self._seal(item.id, item.payload),
                "counterparty": item.counterparty,
                "attempts": item.attempts,
                "next_attempt_at": item.next_attempt_at,
                "created_at": now,
            },
        )

    async def claim(self, owner: str, now: int, lease_ms: int, limit: int) -> list[OutboxItem]:
        """Lease due messages to one worker; a message leased by another, unexpired, is skipped."""
        statement = _CLAIM_OUTBOX_PG if self._c.dialect.name == "postgresql" else _CLAIM_OUTBOX
        parameters = {"b_now": now, "b_limit": limit, "lease_owner": owner, "lease_until": now + lease_ms}
        rows = (await self._c.execute(statement, parameters)).mappings().all()
        items = []
        for r in rows:
            payload = self._open(r["id"], dict(r["payload"]))
            items.append(
                OutboxItem(
                    r["id"],
                    r["negotiation_id"],
                    r["message"],
                    r["url"],
                    payload or {},
                    r["counterparty"],
                    int(r["attempts"]),
                    int(r["next_attempt_at"]),
                    unreadable=payload is None,
                )
            )
        return items

    async def done(self, item_id: str, owner: str) -> bool:
        """Remove a delivered message (only by its lease holder)."""
        return bool(await direct.execute(self._c, _DONE_OUTBOX, {"b_id": item_id, "b_owner": owner}))

    async def renew(self, item_ids: list[str], owner: str, lease_until: int) -> None:
        """Extend the leases of messages still being worked on by their holder."""
        if item_ids:
            await self._c.execute(
                update(outbox)
                .where(outbox.c.id.in_(item_ids), outbox.c.lease_owner == owner)
                .values(lease_until=lease_until)
            )

    async def forget(self, process_id: str, message: str) -> None:
        """Forget a message owed for a process that the peer is known to have received."""
        await direct.execute(self._c, _FORGET_OUTBOX, {"b_process": process_id, "b_message": message})

    async def pending(self, process_id: str) -> list[str]:
        """Return the messages still owed for a process (oldest first)."""
        return await direct.scalars(self._c, _PENDING_OUTBOX, {"b_process": process_id})

    async def retry(self, item_id: str, owner: str, attempts: int, next_attempt_at: int, error: str) -> None:
        """Put a message back for a later attempt."""
        await self._c.execute(
            update(outbox)
            .where(and_(outbox.c.id == item_id, outbox.c.lease_owner == owner))
            .values(
                attempts=attempts,
                next_attempt_at=next_attempt_at,
                lease_owner=None,
                lease_until=None,
                last_error=error[:2000],
            )
        )

    async def drop_for(self, negotiation_id: str) -> None:
        """Forget every message owed for a negotiation (it ended)."""
        await direct.execute(self._c, _DROP_OUTBOX, {"b_process": negotiation_id})
