"""What a provider offers: assets, policy definitions and contract definitions (create, read, update, delete)."""

from __future__ import annotations

import json
import re
import time
import uuid
from collections.abc import Callable
from dataclasses import replace
from typing import Any

import policies
from connector.domain.assets import Asset, ContractDefinition, PolicyDefinition
from connector.domain.errors import Conflict, InvalidInput, NotFound, Problem
from connector.domain.query import QuerySpec
from connector.store import Store

# Checks a policy (expanded JSON-LD) and returns what the policy engine cannot evaluate.
PolicyChecker = Callable[[Any], list[Problem]]


_USE_WITHOUT_CONDITIONS = policies.parse_policy(
    {"@context": "http://www.w3.org/ns/odrl.jsonld", "@type": "Set", "permission": [{"action": "use"}]}
)


def effective_policy(policy: policies.Policy) -> policies.Policy:
    """Return the policy the node enforces for a policy definition.

    A definition with no rule at all is read as EDC and its clients read it, "use without conditions",
    not as ODRL reads it (nothing granted): existing EDC scripts create such policies to mean "allow".
    Any rule, even one permission with a constraint, keeps full ODRL semantics. See docs/decisions/0005.
    """
    if policy.permissions or policy.prohibitions or policy.obligations:
        return policy
    return _USE_WITHOUT_CONDITIONS


_NOT_RULES = ("target", "assigner", "assignee", "timestamp")


def has_rules(offer: dict[str, Any]) -> bool:
    """Tell whether an offer (DSP form) states any rule, or only names the offer (its id, target, assigner)."""
    return any(offer.get(key) for key in ("permission", "prohibition", "obligation"))


# EDC 0.17 (Tractus-X EDC 0.13) sends a right operand of several values as one string: the Java rendering of the
# values it stored, `[{@value={chars=a, string=a, valueType=STRING}}, ...]` (tractusx-edc #3043, EDC #5792), or
# their JSON text `[{"@value":"a"}, ...]`. Its own policy comparison sees the values; so does this one.
_EDC_STORED_VALUE = re.compile(r"\{@value=\{chars=(.*?), string=\1, valueType=STRING\}\}")


def edc_list_values(text: str) -> list[str] | None:
    """Return the values an EDC rendering of a multi-valued right operand names, or None if `text` is not one."""
    if not (text.startswith("[") and text.endswith("]")):
        return None
    inner = text[1:-1]
    found = list(_EDC_STORED_VALUE.finditer(inner))
    if found and ", ".join(m.group(0) for m in found) == inner:
        return [m.group(1) for m in found]
    try:
        items = json.loads(text)
    except ValueError:
        return None
    if not isinstance(items, list) or len(items) < 2:
        return None
    values = [i.get("@value") if isinstance(i, dict) and set(i) == {"@value"} else i for i in items]
    return [v for v in values if isinstance(v, str)] if all(isinstance(v, str) for v in values) else None


def _edc_lists_read(policy: policies.Policy) -> policies.Policy:
    """Return the policy with EDC's renderings of multi-valued right operands read as the values they name."""

    def constraint(
        c: policies.Constraint | policies.LogicalConstraint,
    ) -> policies.Constraint | policies.LogicalConstraint:
        if isinstance(c, policies.LogicalConstraint):
            return replace(c, constraints=tuple(constraint(x) for x in c.constraints))
        only = c.right_operand[0] if len(c.right_operand) == 1 else None
        if isinstance(only, policies.LiteralValue) and isinstance(only.value, str) and only.datatype is None:
            values = edc_list_values(only.value)
            if values is not None:
                return replace(c, right_operand=tuple(policies.LiteralValue(v) for v in values))
        return c

    def rule(r: policies.Rule) -> policies.Rule:
        return replace(
            r,
            constraints=tuple(constraint(c) for c in r.constraints),
            duties=tuple(rule(d) for d in r.duties),
            remedies=tuple(rule(d) for d in r.remedies),
            consequences=tuple(rule(d) for d in r.consequences),
        )

    return replace(
        policy,
        permissions=tuple(rule(r) for r in policy.permissions),
        prohibitions=tuple(rule(r) for r in policy.prohibitions),
        obligations=tuple(rule(r) for r in policy.obligations),
    )


def same_rules(first: Any, second: Any) -> bool:
    """Tell whether two policies (an offer and an agreement, in any form the policy parser reads) grant the same.

    Both are compared in the form the node enforces (`effective_policy`): an empty policy and one permission to
    use without conditions are the same, as EDC reads them. A right operand of several values is the same in
    EDC's string rendering of it (`edc_list_values`). Parties, targets, ids and timestamps are ignored; a policy
    that cannot be read is never the same as anything.
    """
    try:
        parsed = [
            _edc_lists_read(
                effective_policy(policies.parse_policy({k: v for k, v in p.items() if k not in _NOT_RULES}))
                if isinstance(p, dict)
                else effective_policy(policies.parse_policy(p))
            )
            for p in (first, second)
        ]
    except policies.PolicyError:
        return False
    return policies.same_rules(parsed[0], parsed[1])


def evaluable(policy: Any) -> list[Problem]:
    """Return what the policy engine cannot evaluate in a policy (expanded JSON-LD), each with its path."""
    return [Problem(p.message, p.path) for p in policies.validate(policy)]


def now_ms() -> int:
    """Return the current time in epoch milliseconds."""
    return time.time_ns() // 1_000_000


def new_id() -> str:
    """Return a fresh object id."""
    return str(uuid.uuid4())


class AssetService:
    """Use cases on assets."""

    def __init__(self, store: Store) -> None:
        self._store = store

    async def create(self, asset: Asset) -> Asset:
        """Store a new asset (an id is generated when none was given)."""
        if not asset.id:
            asset = replace(asset, id=new_id())
        async with self._store.transaction() as tx:
            await tx.assets.add(asset)
        return asset

    async def update(self, asset: Asset) -> None:
        """Replace an existing asset."""
        if not asset.id:
            raise InvalidInput("@id is required to update an asset", [Problem("@id is required", "@id")])
        async with self._store.transaction() as tx:
            await tx.assets.replace(asset)

    async def get(self, asset_id: str) -> Asset:
        """Return one asset or raise NotFound."""
        async with self._store.read() as tx:
            found = await tx.assets.get(asset_id)
        if found is None:
            raise NotFound(f"no asset with id {asset_id!r}")
        return found

    async def query(self, spec: QuerySpec) -> list[Asset]:
        """Return the assets a QuerySpec selects."""
        async with self._store.read() as tx:
            return await tx.assets.query(spec)

    async def delete(self, asset_id: str) -> None:
        """Delete an asset no agreement or ongoing negotiation refers to."""
        async with self._store.transaction() as tx:
            agreements = await tx.agreements.referencing_asset(asset_id)
            if agreements:
                raise Conflict(f"asset {asset_id!r} is the subject of contract agreement(s) {', '.join(agreements)}")
            ongoing = await tx.negotiations.ongoing_for_asset(asset_id)
            if ongoing:
                raise Conflict(f"asset {asset_id!r} is being negotiated in {', '.join(ongoing)}")
            await tx.assets.delete(asset_id)


class PolicyDefinitionService:
    """Use cases on policy definitions; a policy the engine cannot evaluate is refused at creation."""

    def __init__(self, store: Store, check: PolicyChecker = evaluable) -> None:
        self._store = store
        self._check = check

    def _validate(self, definition: PolicyDefinition) -> None:
        problems = [
            Problem(p.message, f"policy.{p.path}" if p.path else "policy", p.invalid_value)
            for p in self._check(definition.policy)
        ]
        if problems:
            first = problems[0]
            raise InvalidInput(f"the policy cannot be evaluated: {first.message} at {first.path}", problems)

    async def create(self, definition: PolicyDefinition) -> PolicyDefinition:
        """Validate and store a new policy definition."""
        if not definition.id:
            definition = replace(definition, id=new_id())
        self._validate(definition)
        async with self._store.transaction() as tx:
            await tx.policies.add(definition)
        return definition

    async def update(self, definition: PolicyDefinition) -> None:
        """Validate and replace an existing policy definition."""
        self._validate(definition)
        async with self._store.transaction() as tx:
            await tx.policies.replace(definition)

    async def get(self, policy_id: str) -> PolicyDefinition:
        """Return one policy definition or raise NotFound."""
        async with self._store.read() as tx:
            found = await tx.policies.get(policy_id)
        if found is None:
            raise NotFound(f"no policy definition with id {policy_id!r}")
        return found

    async def query(self, spec: QuerySpec) -> list[PolicyDefinition]:
        """Return the policy definitions a QuerySpec selects."""
        async with self._store.read() as tx:
            return await tx.policies.query(spec)

    async def delete(self, policy_id: str) -> None:
        """Delete a policy definition no contract definition uses."""
        async with self._store.transaction() as tx:
            await tx.policies.delete(policy_id)


class ContractDefinitionService:
    """Use cases on contract definitions; both policy ids must name stored policy definitions."""

    def __init__(self, store: Store) -> None:
        self._store = store

    async def _check_policies(self, definition: ContractDefinition, stored: dict[str, PolicyDefinition]) -> None:
        problems = []
        for field, value in (
            ("accessPolicyId", definition.access_policy_id),
            ("contractPolicyId", definition.contract_policy_id),
        ):
            if value not in stored:
                problems.append(Problem(f"no policy definition with id {value!r}", field, value))
                continue

        if problems:
            raise InvalidInput(f"invalid contract definition: {problems[0].message} ({problems[0].path})", problems)

    async def create(self, definition: ContractDefinition) -> ContractDefinition:
        """Store a new contract definition after checking its policies exist."""
        if not definition.id:
            definition = replace(definition, id=new_id())
        async with self._store.transaction() as tx:
            found = await tx.policies.get_many([definition.access_policy_id, definition.contract_policy_id])
            await self._check_policies(definition, found)
            await tx.contracts.add(definition)
        return definition

    async def update(self, definition: ContractDefinition) -> None:
        """Replace an existing contract definition after checking its policies exist."""
        if not definition.id:
            raise InvalidInput("@id is required to update a contract definition", [Problem("@id is required", "@id")])
        async with self._store.transaction() as tx:
            found = await tx.policies.get_many([definition.access_policy_id, definition.contract_policy_id])
            await self._check_policies(definition, found)
            await tx.contracts.replace(definition)

    async def get(self, definition_id: str) -> ContractDefinition:
        """Return one contract definition or raise NotFound."""
        async with self._store.read() as tx:
            found = await tx.contracts.get(definition_id)
        if found is None:
            raise NotFound(f"no contract definition with id {definition_id!r}")
        return found

    async def query(self, spec: QuerySpec) -> list[ContractDefinition]:
        """Return the contract definitions a QuerySpec selects."""
        async with self._store.read() as tx:
            return await tx.contracts.query(spec)

    async def delete(self, definition_id: str) -> None:
        """Delete a contract definition."""
        async with self._store.transaction() as tx:
            await tx.contracts.delete(definition_id)
