"""Transfer processes and the data-plane access log."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Text, case, cast, insert, select, update
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.engine import RowMapping
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from connector.domain.errors import AlreadyExists, Conflict
from connector.domain.negotiation import Role
from connector.domain.query import QuerySpec
from connector.domain.transfer import EdrEntry, Transfer, TransferState
from connector.store import query
from connector.store.sealing import PLAIN, Sealer, open_or_none
from connector.store.tables import agreement_uses, agreements, data_access, transfers

log = logging.getLogger("connector.store")


# Endpoint properties that are credentials (by bare name: EDC's and Tractus-X's namespaces are ignored), and the
# extra headers of an EDC push destination (`header:<name>`), which may carry one.
SECRET_PROPERTIES = frozenset({"authorization", "refreshToken", "authCode"})
HEADER_PROPERTY = "header:"


def _is_secret(name: str) -> bool:
    return _bare(name) in SECRET_PROPERTIES or name.rsplit("/", 1)[-1].startswith(HEADER_PROPERTY)


def _bare(name: str) -> str:
    """A property's name without its namespace (an IRI's last segment, or what follows a prefix like edc:)."""
    return name.rsplit("/", 1)[-1].rsplit("#", 1)[-1].rsplit(":", 1)[-1]


def _secrets(
    address: dict[str, Any] | None, where: str, change: Callable[[str, str], str | None]
) -> dict[str, Any] | None:
    """Return a DataAddress with the values of its credential properties passed through `change`."""
    if address is None:
        return None
    entries = address.get("endpointProperties")
    if not isinstance(entries, list):
        return address
    changed = []
    for entry in entries:
        name = entry.get("name") if isinstance(entry, dict) else None
        value = entry.get("value") if isinstance(entry, dict) else None
        if isinstance(name, str) and isinstance(value, str) and _is_secret(name):
            new = change(value, f"{where}/{name}")
            if new is None:
                continue
            entry = {**entry, "value": new}
        changed.append(entry)
    return {**address, "endpointProperties": changed}


# A transfer without an endpoint data reference stores JSON `null` in data_address (SQLAlchemy's JSON type writes
# Python None so), which `IS NOT NULL` does not exclude: compare the text too (SQLite's text, PostgreSQL's jsonb).
_HOLDS_EDR = transfers.c.data_address.is_not(None) & (cast(transfers.c.data_address, Text) != "null")


def _transfer(row: RowMapping, sealer: Sealer = PLAIN) -> Transfer:
    def opened(value: str, where: str) -> str | None:
        return open_or_none(sealer, value, where)

    return Transfer(
        id=row["id"],
        role=Role(row["role"]),
        state=TransferState(row["state"]),
        provider_pid=row["provider_pid"],
        consumer_pid=row["consumer_pid"],
        counterparty_id=row["counterparty_id"],
        counterparty_address=row["counterparty_address"],
        agreement_id=row["agreement_id"],
        asset_id=row["asset_id"],
        transfer_type=row["transfer_type"],
        destination=_secrets(
            dict(row["destination"]) if row["destination"] is not None else None,
            f"transfers/{row['id']}/destination",
            opened,
        ),
        data_address=_secrets(
            dict(row["data_address"]) if row["data_address"] is not None else None,
            f"transfers/{row['id']}/data_address",
            opened,
        ),
        error_detail=row["error_detail"],
        awaiting_ack=row["awaiting_ack"],
        token_generation=int(row["token_generation"]),
        suspended_by=Role(row["suspended_by"]) if row["suspended_by"] else None,
        deadline_at=None if row["deadline_at"] is None else int(row["deadline_at"]),
        created_at=int(row["created_at"]),
        updated_at=int(row["updated_at"]),
        version=int(row["version"]),
    )


def _row(transfer: Transfer, sealer: Sealer = PLAIN) -> dict[str, Any]:
    return {
        "id": transfer.id,
        "role": transfer.role.value,
        "state": transfer.state.value,
        "provider_pid": transfer.provider_pid,
        "consumer_pid": transfer.consumer_pid,
        "counterparty_id": transfer.counterparty_id,
        "counterparty_address": transfer.counterparty_address,
        "agreement_id": transfer.agreement_id,
        "asset_id": transfer.asset_id,
        "transfer_type": transfer.transfer_type,
        "destination": _secrets(transfer.destination, f"transfers/{transfer.id}/destination", sealer.seal),
        "data_address": _secrets(transfer.data_address, f"transfers/{transfer.id}/data_address", sealer.seal),
        "error_detail": transfer.error_detail,
        "awaiting_ack": transfer.awaiting_ack,
        "token_generation": transfer.token_generation,
        "suspended_by": transfer.suspended_by.value if transfer.suspended_by else None,
        "deadline_at": transfer.deadline_at,
        "created_at": transfer.created_at,
        "updated_at": transfer.updated_at,
        "version": transfer.version,
    }


class TransferRepository:
    """Transfer processes, written with a version check so two writers never overwrite each other."""

    _COLUMNS = {
        "id": transfers.c.id,
        "state": transfers.c.state,
        "type": transfers.c.role,
        "counterPartyId": transfers.c.counterparty_id,
        "assetId": transfers.c.asset_id,
        "contractId": transfers.c.agreement_id,
        "transferType": transfers.c.transfer_type,
        "createdAt": transfers.c.created_at,
    }

    # The fields of Tractus-X's EndpointDataReferenceEntry, and the names its clients filter them by.
    _EDR_COLUMNS = {
        "id": transfers.c.id,
        "transferProcessId": transfers.c.id,
        "assetId": transfers.c.asset_id,
        "agreementId": transfers.c.agreement_id,
        "contractAgreementId": transfers.c.agreement_id,
        "contractId": transfers.c.agreement_id,
        "contractNegotiationId": agreements.c.negotiation_id,
        "providerId": transfers.c.counterparty_id,
        "counterPartyId": transfers.c.counterparty_id,
        "createdAt": transfers.c.created_at,
    }

    def __init__(self, connection: AsyncConnection, sealer: Sealer = PLAIN) -> None:
        self._c = connection
        self._sealer = sealer

    async def add(self, transfer: Transfer) -> None:
        """Store a new transfer (AlreadyExists when the peer's pid is taken: its request, handled twice)."""
        try:
            await self._c.execute(insert(transfers).values(**_row(transfer, self._sealer)))
        except IntegrityError as exc:
            raise AlreadyExists(f"transfer {transfer.consumer_pid} of {transfer.counterparty_id} exists") from exc

    async def save(self, transfer: Transfer) -> None:
        """Store a changed transfer whose version is one more than the stored one; Conflict otherwise."""
        result = await self._c.execute(
            update(transfers)
            .where(transfers.c.id == transfer.id, transfers.c.version == transfer.version - 1)
            .values(**_row(transfer, self._sealer))
        )
        if result.rowcount != 1:
            raise Conflict(f"transfer process {transfer.id} was changed concurrently; retry")

    async def get(self, transfer_id: str, for_update: bool = False) -> Transfer | None:
        """Return one transfer by this node's pid."""
        statement = select(transfers).where(transfers.c.id == transfer_id)
        if for_update and self._c.dialect.name == "postgresql":
            statement = statement.with_for_update()
        row = (await self._c.execute(statement)).mappings().first()
        return _transfer(row, self._sealer) if row else None

    async def find_by_peer(self, role: Role, counterparty_id: str, peer_pid: str) -> Transfer | None:
        """Return the transfer in `role` that the counterparty opened with its pid (for redelivered requests)."""
        column = transfers.c.consumer_pid if role is Role.PROVIDER else transfers.c.provider_pid
        statement = select(transfers).where(
            transfers.c.role == role.value, transfers.c.counterparty_id == counterparty_id, column == peer_pid
        )
        row = (await self._c.execute(statement)).mappings().first()
        return _transfer(row, self._sealer) if row else None

    async def overdue(self, now: int, limit: int) -> list[Transfer]:
        """Return transfers whose deadline for the peer's next move has passed, earliest first."""
        statement = (
            select(transfers).where(transfers.c.deadline_at <= now).order_by(transfers.c.deadline_at).limit(limit)
        )
        return [_transfer(r, self._sealer) for r in (await self._c.execute(statement)).mappings()]

    async def unstamped(self, limit: int, after: str = "") -> list[Transfer]:
        """Return transfers that have not ended, owe nothing and have no deadline, by id (to stamp them)."""
        statement = (
            select(transfers)
            .where(
                transfers.c.deadline_at.is_(None),
                transfers.c.awaiting_ack.is_(None),
                transfers.c.state.not_in([TransferState.COMPLETED.value, TransferState.TERMINATED.value]),
                transfers.c.id > after,
            )
            .order_by(transfers.c.id)
            .limit(limit)
        )
        return [_transfer(r, self._sealer) for r in (await self._c.execute(statement)).mappings()]

    async def running(self, limit: int = 500, after: str = "") -> list[Transfer]:
        """Return provider transfers not yet ended, by id (for the policy monitor)."""
        statement = (
            select(transfers)
            .where(
                transfers.c.role == Role.PROVIDER.value,
                transfers.c.state.in_([TransferState.STARTED.value, TransferState.SUSPENDED.value]),
                transfers.c.id > after,
            )
            .order_by(transfers.c.id)
            .limit(limit)
        )
        return [_transfer(r, self._sealer) for r in (await self._c.execute(statement)).mappings()]

    async def query(self, spec: QuerySpec, with_edr: bool = False) -> list[Transfer]:
        """Return the transfers a QuerySpec selects (only consumer ones holding an EDR, with `with_edr`)."""
        base = select(transfers)
        if with_edr:
            base = base.where(transfers.c.role == Role.CONSUMER.value, _HOLDS_EDR)
        statement = query.apply_column_query(base, spec, self._COLUMNS, transfers.c.id, "transfer processes")
        return [_transfer(r, self._sealer) for r in (await self._c.execute(statement)).mappings()]

    async def edr_entries(self, spec: QuerySpec) -> list[EdrEntry]:
        """Return the endpoint data references (consumer pull transfers holding one) a QuerySpec selects."""
        base = (
            select(transfers, agreements.c.negotiation_id.label("edr_negotiation_id"))
            .select_from(transfers.outerjoin(agreements, agreements.c.id == transfers.c.agreement_id))
            .where(transfers.c.role == Role.CONSUMER.value, _HOLDS_EDR)
        )
        statement = query.apply_column_query(base, spec, self._EDR_COLUMNS, transfers.c.id, "endpoint data references")
        return [
            EdrEntry(_transfer(r, self._sealer), r["edr_negotiation_id"])
            for r in (await self._c.execute(statement)).mappings()
        ]


@dataclass(frozen=True, slots=True)
class Access:
    """One data-plane request, as the audit log keeps it."""

    at: int
    transfer_id: str | None
    agreement_id: str | None
    consumer_id: str | None
    asset_id: str | None
    method: str
    path: str
    status: int
    bytes: int
    reason: str | None = None


#: One access as the data plane queues it: `Access`'s fields in its order (at, transfer_id, agreement_id,
#: consumer_id, asset_id, method, path, status, bytes, reason).
AccessRow = tuple[int, str | None, str | None, str | None, str | None, str, str, int, int, str | None]
#: The longest request path the audit log keeps (longer ones are cut).
MAX_LOGGED_PATH = 2000
# add_rows's statement on SQLite, as SQLAlchemy writes it for the table (tables.py).
_SQLITE_INSERT_ACCESS = (
    "INSERT INTO data_access (at, transfer_id, agreement_id, consumer_id, asset_id, method, path, status, bytes,"
    " reason) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)


def _cut_path(row: AccessRow) -> AccessRow:
    return (*row[:6], row[6][:MAX_LOGGED_PATH], *row[7:])


class AccessLogRepository:
    """The data-plane audit log."""

    _COLUMNS = {
        "at": data_access.c.at,
        "transferProcessId": data_access.c.transfer_id,
        "agreementId": data_access.c.agreement_id,
        "consumerId": data_access.c.consumer_id,
        "assetId": data_access.c.asset_id,
        "status": data_access.c.status,
    }

    def __init__(self, connection: AsyncConnection) -> None:
        self._c = connection

    async def add_many(self, entries: Sequence[Access]) -> None:
        """Append entries."""
        await self.add_rows(
            [
                (
                    e.at,
                    e.transfer_id,
                    e.agreement_id,
                    e.consumer_id,
                    e.asset_id,
                    e.method,
                    e.path,
                    e.status,
                    e.bytes,
                    e.reason,
                )
                for e in entries
            ]
        )

    async def add_rows(self, rows: Sequence[AccessRow]) -> None:
        """Append entries given as plain tuples of `Access`'s fields, in its order (the data plane queues these).

        On SQLite the rows go to one executemany as they are: SQLAlchemy's per-row parameter processing (a dict
        and its bind processors per row) was most of a row's cost, about 20 us of a data-plane request's
        (decision 0028). The statement is the one SQLAlchemy writes for the table.
        """
        if not rows:
            return
        if self._c.dialect.name == "sqlite":
            await self._c.exec_driver_sql(
                _SQLITE_INSERT_ACCESS,
                [row if len(row[6]) <= MAX_LOGGED_PATH else _cut_path(row) for row in rows],
            )
            return
        await self._c.execute(
            insert(data_access),
            [
                {
                    "at": at,
                    "transfer_id": transfer_id,
                    "agreement_id": agreement_id,
                    "consumer_id": consumer_id,
                    "asset_id": asset_id,
                    "method": method,
                    "path": path[:MAX_LOGGED_PATH],
                    "status": status,
                    "bytes": size,
                    "reason": reason,
                }
                for at, transfer_id, agreement_id, consumer_id, asset_id, method, path, status, size, reason in rows
            ],
        )

    async def query(self, spec: QuerySpec) -> list[Access]:
        """Return the entries a QuerySpec selects."""
        statement = query.apply_column_query(
            select(data_access), spec, self._COLUMNS, data_access.c.id, "data access log"
        )
        return [
            Access(
                at=int(r["at"]),
                transfer_id=r["transfer_id"],
                agreement_id=r["agreement_id"],
                consumer_id=r["consumer_id"],
                asset_id=r["asset_id"],
                method=r["method"],
                path=r["path"],
                status=int(r["status"]),
                bytes=int(r["bytes"]),
                reason=r["reason"],
            )
            for r in (await self._c.execute(statement)).mappings()
        ]


class UsageRepository:
    """How many times data was used under each agreement (the `count` of its usage policy)."""

    def __init__(self, connection: AsyncConnection) -> None:
        self._c = connection

    async def uses(self, agreement_id: str, for_update: bool = False) -> int:
        """Return the uses so far; with for_update, lock the count until the transaction ends."""
        if for_update:
            values = {"agreement_id": agreement_id, "uses": 0, "updated_at": 0}
            if self._c.dialect.name == "postgresql":
                ensure: Any = postgresql_insert(agreement_uses).values(**values).on_conflict_do_nothing()
            else:
                ensure = sqlite_insert(agreement_uses).values(**values).on_conflict_do_nothing()
            await self._c.execute(ensure)
        statement = select(agreement_uses.c.uses).where(agreement_uses.c.agreement_id == agreement_id)
        if for_update and self._c.dialect.name == "postgresql":
            statement = statement.with_for_update()
        found = (await self._c.execute(statement)).scalar()
        return int(found or 0)

    async def add(self, agreement_id: str, delta: int, at: int) -> None:
        """Add `delta` uses (negative to give back a use whose request failed); never below zero."""
        await self.uses(agreement_id, for_update=True)
        total = agreement_uses.c.uses + delta
        await self._c.execute(
            update(agreement_uses)
            .where(agreement_uses.c.agreement_id == agreement_id)
            .values(uses=case((total < 0, 0), else_=total), updated_at=at)
        )
