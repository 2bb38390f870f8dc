"""Repositories: read and write domain objects; callers never see rows or SQL."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import and_, delete, func, insert, or_, select, update
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.engine import RowMapping
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from connector.domain.assets import Asset, ContractDefinition, Criterion, DataAddress, PolicyDefinition
from connector.domain.errors import Conflict, NotFound
from connector.domain.query import QuerySpec
from connector.store import direct, query
from connector.store.sealing import PLAIN, Sealer, open_or_none
from connector.store.tables import (
    CATALOG_ASSETS_REVISION,
    OFFERS_REVISION,
    asset_properties,
    assets,
    contract_definitions,
    held_credentials,
    policy_definitions,
    revisions,
    seen_tokens,
)


async def bump_revision(connection: AsyncConnection, name: str) -> None:
    """Mark a family of objects as changed, in the caller's transaction."""
    await connection.execute(update(revisions).where(revisions.c.name == name).values(value=revisions.c.value + 1))


async def read_revision(connection: AsyncConnection, name: str) -> int:
    """Return the change counter of a family of objects."""
    return int(await connection.scalar(select(revisions.c.value).where(revisions.c.name == name)) or 0)


async def read_revisions(connection: AsyncConnection, names: tuple[str, ...]) -> tuple[int, ...]:
    """Return the change counters of several families of objects (0 for a missing one), in one statement."""
    rows = await connection.execute(select(revisions.c.name, revisions.c.value).where(revisions.c.name.in_(names)))
    found = {name: int(value) for name, value in rows}
    return tuple(found.get(name, 0) for name in names)


_ASSETS_CHANGED = "catalog_assets_changed"  # in the connection's info: this transaction changed assets


def note_assets_changed(connection: AsyncConnection) -> None:
    """Note that this transaction changed assets; the assets revision is bumped when it commits."""
    connection.info[_ASSETS_CHANGED] = True


async def seal_assets_revision(connection: AsyncConnection) -> None:
    """Bump the assets revision if this transaction changed assets (call it right before the commit).

    Taken at the commit, not at the change, the counter's row is locked only for the commit itself: writers of
    assets never wait for each other's open transactions, and no lock order with other counters can deadlock.
    """
    if not connection.info.pop(_ASSETS_CHANGED, False):
        return
    result = await connection.execute(
        update(revisions).where(revisions.c.name == CATALOG_ASSETS_REVISION).values(value=revisions.c.value + 1)
    )
    if result.rowcount == 0:  # a database made without the migrations (0014 inserts the row)
        await connection.execute(insert(revisions).values(name=CATALOG_ASSETS_REVISION, value=1))


def forget_assets_changed(connection: AsyncConnection) -> None:
    """Drop the note of a transaction that rolled back (never raises, as changes.forget)."""
    try:
        connection.info.pop(_ASSETS_CHANGED, None)
    except Exception:  # a connection a cancellation left invalid is discarded with its info
        return


class AssetRepository:
    """Assets and their indexed properties (the data address's secrets sealed at rest)."""

    def __init__(self, connection: AsyncConnection, sealer: Sealer = PLAIN) -> None:
        self._c = connection
        self._sealer = sealer

    async def add(self, asset: Asset) -> None:
        """Store a new asset; raise Conflict when its id exists."""
        if await self.exists(asset.id):
            raise Conflict(f"an asset with id {asset.id!r} already exists")
        try:
            await self._c.execute(insert(assets).values(**_asset_row(asset, self._sealer)))
        except IntegrityError:
            raise Conflict(f"an asset with id {asset.id!r} already exists") from None
        await self._index(asset)
        note_assets_changed(self._c)

    async def replace(self, asset: Asset) -> None:
        """Replace a stored asset (created_at is kept); raise NotFound when it does not exist."""
        row = _asset_row(asset, self._sealer)
        del row["created_at"]
        result = await self._c.execute(update(assets).where(assets.c.id == asset.id).values(**row))
        if result.rowcount == 0:
            raise NotFound(f"no asset with id {asset.id!r}")
        await self._c.execute(delete(asset_properties).where(asset_properties.c.asset_id == asset.id))
        await self._index(asset)
        note_assets_changed(self._c)

    async def delete(self, asset_id: str) -> None:
        """Delete an asset; raise NotFound when it does not exist."""
        await self._c.execute(delete(asset_properties).where(asset_properties.c.asset_id == asset_id))
        result = await self._c.execute(delete(assets).where(assets.c.id == asset_id))
        if result.rowcount == 0:
            raise NotFound(f"no asset with id {asset_id!r}")
        note_assets_changed(self._c)

    async def exists(self, asset_id: str) -> bool:
        """Tell whether an asset with this id is stored."""
        found = await self._c.scalar(select(assets.c.id).where(assets.c.id == asset_id))
        return found is not None

    async def get(self, asset_id: str) -> Asset | None:
        """Return one asset, or None."""
        row = (await self._c.execute(select(assets).where(assets.c.id == asset_id))).mappings().first()
        return _asset(row, self._sealer) if row else None

    async def query(self, spec: QuerySpec) -> list[Asset]:
        """Return the page of assets a QuerySpec selects."""
        statement = query.apply_asset_query(select(assets), spec)
        return [_asset(r, self._sealer) for r in (await self._c.execute(statement)).mappings()]

    async def select_any(
        self,
        selectors: list[tuple[Criterion, ...]],
        offset: int,
        limit: int,
        after: str | None = None,
        where: tuple[Criterion, ...] = (),
    ) -> list[Asset]:
        """Return a page (by id) of the assets matching at least one selector (an empty selector matches all).

        `after` pages by key (ids greater than it), which stays fast at any depth; `offset` skips rows. `where`
        narrows the page to the assets whose public properties (or id) match every one of its criteria.
        """
        if not selectors:
            return []
        condition = query.any_selector(selectors)
        if where:
            condition = and_(condition, query.asset_condition(where, public_only=True))
        if after is not None:
            condition = and_(assets.c.id > after, condition)
        statement = select(assets).where(condition).order_by(assets.c.id).offset(offset).limit(limit)
        return [_asset(r, self._sealer) for r in (await self._c.execute(statement)).mappings()]

    async def ids_matching_any(self, selectors: list[tuple[Criterion, ...]]) -> list[str]:
        """Return the ids, in order, of every asset matching at least one selector (the catalog's position map).

        One statement whose merged `=`/`in` selectors are uncorrelated semi-joins over the property index: the
        database reads each selected value's index range once, instead of probing every asset for every value.
        """
        if not selectors:
            return []
        statement = select(assets.c.id).where(query.any_selector_set(selectors)).order_by(assets.c.id)
        return list((await self._c.execute(statement)).scalars())

    async def get_ordered(self, ids: list[str]) -> list[Asset]:
        """Return the stored assets among these ids, by id (a page of the catalog's position map)."""
        if not ids:
            return []
        statement = select(assets).where(assets.c.id.in_(ids)).order_by(assets.c.id)
        return [_asset(r, self._sealer) for r in (await self._c.execute(statement)).mappings()]

    async def count(self, criteria: Iterable[Criterion] = ()) -> int:
        """Count the assets matching every criterion."""
        statement = select(func.count()).select_from(assets).where(query.asset_condition(tuple(criteria)))
        return int(await self._c.scalar(statement) or 0)

    async def _index(self, asset: Asset) -> None:
        rows = [
            {"asset_id": asset.id, "key": key, "private": private, "value_text": text, "value_num": number}
            for private, props in ((False, asset.properties), (True, asset.private_properties))
            for key, value in props.items()
            for text, number in query.scalar_texts(value)
        ]
        if rows:
            await self._c.execute(insert(asset_properties), rows)


def _asset_row(asset: Asset, sealer: Sealer = PLAIN) -> dict[str, Any]:
    return {
        "id": asset.id,
        "properties": asset.properties,
        "private_properties": asset.private_properties,
        "data_address_type": asset.data_address.type,
        "data_address": asset.data_address.properties,
        "data_address_secrets": {
            name: sealer.seal(value, f"assets/{asset.id}/secrets/{name}")
            for name, value in asset.data_address.secrets.items()
        },
        "created_at": asset.created_at,
    }


def _asset(row: RowMapping, sealer: Sealer = PLAIN) -> Asset:
    secrets = {
        name: open_or_none(sealer, value, f"assets/{row['id']}/secrets/{name}")
        for name, value in dict(row["data_address_secrets"]).items()
    }
    return Asset(
        id=row["id"],
        properties=dict(row["properties"]),
        private_properties=dict(row["private_properties"]),
        data_address=DataAddress(
            type=row["data_address_type"],
            properties=dict(row["data_address"]),
            secrets={name: value for name, value in secrets.items() if value is not None},
        ),
        created_at=int(row["created_at"]),
    )


class PolicyDefinitionRepository:
    """Named ODRL policies."""

    _COLUMNS = {"id": policy_definitions.c.id, "createdAt": policy_definitions.c.created_at}

    def __init__(self, connection: AsyncConnection) -> None:
        self._c = connection

    async def add(self, definition: PolicyDefinition) -> None:
        """Store a new policy definition; raise Conflict when its id exists."""
        if await self.get(definition.id) is not None:
            raise Conflict(f"a policy definition with id {definition.id!r} already exists")
        try:
            await self._c.execute(insert(policy_definitions).values(**_policy_row(definition)))
        except IntegrityError:
            raise Conflict(f"a policy definition with id {definition.id!r} already exists") from None
        await bump_revision(self._c, OFFERS_REVISION)

    async def replace(self, definition: PolicyDefinition) -> None:
        """Replace a stored policy definition; raise NotFound when it does not exist."""
        row = _policy_row(definition)
        del row["created_at"]
        result = await self._c.execute(
            update(policy_definitions).where(policy_definitions.c.id == definition.id).values(**row)
        )
        if result.rowcount == 0:
            raise NotFound(f"no policy definition with id {definition.id!r}")
        await bump_revision(self._c, OFFERS_REVISION)

    async def delete(self, policy_id: str) -> None:
        """Delete a policy definition; raise NotFound, or Conflict while a contract definition uses it."""
        users = await ContractDefinitionRepository(self._c).using_policy(policy_id)
        if users:
            raise Conflict(f"policy definition {policy_id!r} is used by contract definition(s) {', '.join(users[:5])}")
        result = await self._c.execute(delete(policy_definitions).where(policy_definitions.c.id == policy_id))
        if result.rowcount == 0:
            raise NotFound(f"no policy definition with id {policy_id!r}")
        await bump_revision(self._c, OFFERS_REVISION)

    async def get(self, policy_id: str) -> PolicyDefinition | None:
        """Return one policy definition, or None."""
        statement = select(policy_definitions).where(policy_definitions.c.id == policy_id)
        row = (await self._c.execute(statement)).mappings().first()
        return _policy(row) if row else None

    async def get_many(self, ids: Iterable[str]) -> dict[str, PolicyDefinition]:
        """Return the stored policy definitions among these ids, by id."""
        wanted = sorted(set(ids))
        if not wanted:
            return {}
        statement = select(policy_definitions).where(policy_definitions.c.id.in_(wanted))
        return {r["id"]: _policy(r) for r in (await self._c.execute(statement)).mappings()}

    async def query(self, spec: QuerySpec) -> list[PolicyDefinition]:
        """Return the page of policy definitions a QuerySpec selects."""
        statement = query.apply_column_query(
            select(policy_definitions), spec, self._COLUMNS, policy_definitions.c.id, "policy definitions"
        )
        return [_policy(r) for r in (await self._c.execute(statement)).mappings()]


def _policy_row(definition: PolicyDefinition) -> dict[str, Any]:
    return {
        "id": definition.id,
        "policy": definition.policy,
        "private_properties": definition.private_properties,
        "created_at": definition.created_at,
    }


def _policy(row: RowMapping) -> PolicyDefinition:
    return PolicyDefinition(
        id=row["id"],
        policy=row["policy"],
        private_properties=dict(row["private_properties"]),
        created_at=int(row["created_at"]),
    )


class ContractDefinitionRepository:
    """Contract definitions: which assets, under which access and contract policies."""

    _COLUMNS = {
        "id": contract_definitions.c.id,
        "accessPolicyId": contract_definitions.c.access_policy_id,
        "contractPolicyId": contract_definitions.c.contract_policy_id,
        "createdAt": contract_definitions.c.created_at,
    }

    def __init__(self, connection: AsyncConnection) -> None:
        self._c = connection

    async def add(self, definition: ContractDefinition) -> None:
        """Store a new contract definition; raise Conflict when its id exists."""
        if await self.get(definition.id) is not None:
            raise Conflict(f"a contract definition with id {definition.id!r} already exists")
        try:
            await self._c.execute(insert(contract_definitions).values(**_contract_row(definition)))
        except IntegrityError:
            raise Conflict(f"a contract definition with id {definition.id!r} already exists") from None
        await bump_revision(self._c, OFFERS_REVISION)

    async def replace(self, definition: ContractDefinition) -> None:
        """Replace a stored contract definition; raise NotFound when it does not exist."""
        row = _contract_row(definition)
        del row["created_at"]
        result = await self._c.execute(
            update(contract_definitions).where(contract_definitions.c.id == definition.id).values(**row)
        )
        if result.rowcount == 0:
            raise NotFound(f"no contract definition with id {definition.id!r}")
        await bump_revision(self._c, OFFERS_REVISION)

    async def delete(self, definition_id: str) -> None:
        """Delete a contract definition; raise NotFound when it does not exist."""
        result = await self._c.execute(delete(contract_definitions).where(contract_definitions.c.id == definition_id))
        if result.rowcount == 0:
            raise NotFound(f"no contract definition with id {definition_id!r}")
        await bump_revision(self._c, OFFERS_REVISION)

    async def get(self, definition_id: str) -> ContractDefinition | None:
        """Return one contract definition, or None."""
        statement = select(contract_definitions).where(contract_definitions.c.id == definition_id)
        row = (await self._c.execute(statement)).mappings().first()
        return _contract(row) if row else None

    async def query(self, spec: QuerySpec) -> list[ContractDefinition]:
        """Return the page of contract definitions a QuerySpec selects."""
        statement = query.apply_column_query(
            select(contract_definitions),
            spec,
            self._COLUMNS,
            contract_definitions.c.id,
            "contract definitions",
        )
        return [_contract(r) for r in (await self._c.execute(statement)).mappings()]

    async def all(self) -> list[ContractDefinition]:
        """Return every contract definition (the catalog caches them until the offers revision changes)."""
        rows = (await self._c.execute(select(contract_definitions).order_by(contract_definitions.c.id))).mappings()
        return [_contract(r) for r in rows]

    async def using_policy(self, policy_id: str) -> list[str]:
        """Return the ids of contract definitions that use a policy (as access or contract policy)."""
        c = contract_definitions.c
        statement = (
            select(c.id).where(or_(c.access_policy_id == policy_id, c.contract_policy_id == policy_id)).order_by(c.id)
        )
        return list((await self._c.execute(statement)).scalars())


def _contract_row(definition: ContractDefinition) -> dict[str, Any]:
    return {
        "id": definition.id,
        "access_policy_id": definition.access_policy_id,
        "contract_policy_id": definition.contract_policy_id,
        "assets_selector": [
            {"operandLeft": c.operand_left, "operator": c.operator, "operandRight": c.operand_right}
            for c in definition.assets_selector
        ],
        "private_properties": definition.private_properties,
        "created_at": definition.created_at,
    }


def _contract(row: RowMapping) -> ContractDefinition:
    return ContractDefinition(
        id=row["id"],
        access_policy_id=row["access_policy_id"],
        contract_policy_id=row["contract_policy_id"],
        assets_selector=tuple(
            Criterion(c["operandLeft"], c["operator"], c["operandRight"]) for c in row["assets_selector"]
        ),
        private_properties=dict(row["private_properties"]),
        created_at=int(row["created_at"]),
    )


# Built once (each DSP message that changes state records its token id): a constant statement with its values as
# execute parameters hits SQLAlchemy's compiled cache without the per-call construction and cache key.
_REMEMBER_TOKEN_PG = postgresql_insert(seen_tokens).on_conflict_do_nothing(index_elements=["issuer", "jti"])
_REMEMBER_TOKEN_SQLITE = sqlite_insert(seen_tokens).on_conflict_do_nothing(index_elements=["issuer", "jti"])


class SeenTokenRepository:
    """Token ids already accepted (replay protection shared by every replica)."""

    def __init__(self, connection: AsyncConnection) -> None:
        self._c = connection

    async def remember(self, issuer: str, jti: str, expires_at: int) -> bool:
        """Record a token id; return False when it was seen before (a replay)."""
        statement = _REMEMBER_TOKEN_PG if self._c.dialect.name == "postgresql" else _REMEMBER_TOKEN_SQLITE
        return bool(await direct.execute(self._c, statement, {"issuer": issuer, "jti": jti, "expires_at": expires_at}))

    async def remember_many(self, ids: list[tuple[str, str, int]]) -> int:
        """Record (issuer, jti, expires_at) token ids; return how many were recorded before (replays)."""
        values = [{"issuer": i, "jti": j, "expires_at": e} for i, j, e in dict.fromkeys(ids)]
        keys = ["issuer", "jti"]
        if self._c.dialect.name == "postgresql":
            statement: Any = postgresql_insert(seen_tokens).on_conflict_do_nothing(index_elements=keys)
        else:
            statement = sqlite_insert(seen_tokens).on_conflict_do_nothing(index_elements=keys)
        result = await self._c.execute(statement, values)
        recorded = int(result.rowcount)
        return len(values) - recorded if recorded >= 0 else 0  # some drivers do not count an executemany


@dataclass(frozen=True, slots=True)
class HeldCredential:
    """A credential this node holds: its id, types, issuer, expiry (epoch seconds) and the VC-JWT."""

    id: str
    types: tuple[str, ...]
    issuer: str
    valid_until: int | None
    jwt: str
    created_at: int


class HeldCredentialRepository:
    """The node's own credentials."""

    def __init__(self, connection: AsyncConnection) -> None:
        self._c = connection

    async def add(self, credential: HeldCredential) -> None:
        """Store a credential; raise Conflict when its id is held already."""
        if await self.get(credential.id) is not None:
            raise Conflict(f"a credential with id {credential.id!r} is held already")
        await self._c.execute(
            insert(held_credentials).values(
                id=credential.id,
                types=list(credential.types),
                issuer=credential.issuer,
                valid_until=credential.valid_until,
                jwt=credential.jwt,
                created_at=credential.created_at,
            )
        )

    async def get(self, credential_id: str) -> HeldCredential | None:
        """Return one held credential, or None."""
        row = (
            (await self._c.execute(select(held_credentials).where(held_credentials.c.id == credential_id)))
            .mappings()
            .first()
        )
        return _held(row) if row else None

    async def all(self) -> list[HeldCredential]:
        """Return every held credential."""
        rows = (await self._c.execute(select(held_credentials).order_by(held_credentials.c.id))).mappings()
        return [_held(r) for r in rows]

    async def delete(self, credential_id: str) -> None:
        """Stop holding a credential; raise NotFound when it is not held."""
        result = await self._c.execute(delete(held_credentials).where(held_credentials.c.id == credential_id))
        if result.rowcount == 0:
            raise NotFound(f"no credential with id {credential_id!r} is held")


def _held(row: RowMapping) -> HeldCredential:
    return HeldCredential(
        id=row["id"],
        types=tuple(row["types"]),
        issuer=row["issuer"],
        valid_until=row["valid_until"],
        jwt=row["jwt"],
        created_at=int(row["created_at"]),
    )
