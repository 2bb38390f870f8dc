"""The Catena-X profile (ODRL profile of 2025-9) as Tractus-X EDC 0.12 and 0.13 evaluate and validate it.

Each left operand is evaluated the way Tractus-X's constraint function for it does (edc-extensions/cx-policy), and
refused at creation where Tractus-X's validator refuses it. The table is in docs/policies.md:

* ``Membership`` ``eq "active"``: the requester holds a ``MembershipCredential`` (its content is not read).
* ``FrameworkAgreement`` ``eq "DataExchangeGovernance:1.0"``: one credential of type
  ``DataExchangeGovernanceCredential`` whose subject states ``contractVersion`` ``1.0``.
* ``BusinessPartnerNumber`` ``isAnyOf`` / ``isNoneOf`` a list of BPNLs: the BPN a ``BpnCredential`` states.
* ``BusinessPartnerGroup`` ``isAnyOf`` / ``isNoneOf`` groups: the groups this node assigns to that BPN.
* ``UsagePurpose`` ``isAnyOf`` purposes: a commitment. The consumer commits to the purpose by accepting the offer,
  and nothing is sent or checked afterwards (Tractus-X's function is always true); it never denies.

Credential-based operands are bound to the scopes where the requester's credentials are known (catalog,
negotiation, transfer start); BPN and BPN group to the catalog only, as in Tractus-X. Outside them a constraint is
deferred, which permits, as Tractus-X ignores a constraint its scope does not bind.

A policy that uses a term of the 2025-9 namespace is a Catena-X policy and follows Tractus-X's policy rules: only
``and`` combines constraints; its rules are all ``access`` rules (an access policy: permissions only, operands
FrameworkAgreement, Membership, BusinessPartnerNumber, BusinessPartnerGroup) or all ``use`` rules (a usage policy,
whose permissions must state both FrameworkAgreement and UsagePurpose). Operands of other profiles may be combined
with Catena-X ones (the node's own, ODRL's); Tractus-X itself would refuse them.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Final

from .context import ALL_SCOPES, CLAIM_SCOPES, EvaluationContext, Scope
from .model import AnyConstraint, Constraint, LogicalConstraint, Policy, Problem, Rule
from .operators import SET
from .registry import (
    CLAIM_BPN_CREDENTIAL,
    CLAIM_CONTRACT_VERSIONS,
    CLAIM_CREDENTIAL_TYPES,
    CLAIM_FRAMEWORK_AGREEMENTS,
    CLAIM_PARTNER_GROUPS,
    Registry,
    claim_set,
)
from .values import STR
from .vocab import CX_POLICY, CX_POLICY_2025, ODRL

ACCESS: Final = CX_POLICY_2025 + "access"
USE: Final = ODRL + "use"
MEMBERSHIP: Final = CX_POLICY_2025 + "Membership"
FRAMEWORK_AGREEMENT: Final = CX_POLICY_2025 + "FrameworkAgreement"
BUSINESS_PARTNER_NUMBER: Final = CX_POLICY_2025 + "BusinessPartnerNumber"
BUSINESS_PARTNER_GROUP: Final = CX_POLICY_2025 + "BusinessPartnerGroup"
USAGE_PURPOSE: Final = CX_POLICY_2025 + "UsagePurpose"
LEGACY_USAGE_PURPOSE: Final = CX_POLICY + "UsagePurpose"
LEGACY_FRAMEWORK_AGREEMENT: Final = CX_POLICY + "FrameworkAgreement"

MEMBERSHIP_CREDENTIAL: Final = "MembershipCredential"
#: The only framework agreement Tractus-X accepts in a policy (FrameworkAgreementConstraintFunction.validate).
DATA_EXCHANGE_GOVERNANCE: Final = "DataExchangeGovernance:1.0"
BPNL: Final = re.compile(r"^BPNL[0-9A-Z]{12}$")
ACTIVE: Final = "active"

#: Catena-X operands Tractus-X allows in each kind of rule (PolicyValidationConstants), among those this node knows.
ACCESS_OPERANDS: Final = frozenset({FRAMEWORK_AGREEMENT, MEMBERSHIP, BUSINESS_PARTNER_NUMBER, BUSINESS_PARTNER_GROUP})
USAGE_OPERANDS: Final = frozenset({FRAMEWORK_AGREEMENT, MEMBERSHIP, USAGE_PURPOSE})
USAGE_REQUIRED: Final = (FRAMEWORK_AGREEMENT, USAGE_PURPOSE)
CATALOG_ONLY: Final = frozenset({Scope.CATALOG})


def _name(iri: str) -> str:
    return "cx-policy:" + iri[len(CX_POLICY_2025) :] if iri.startswith(CX_POLICY_2025) else iri


def _strings(rights: tuple[object, ...]) -> list[str] | None:
    """Return the right values as strings, a string holding a comma-separated list split (None: not strings)."""
    out: list[str] = []
    for value in rights:
        if not isinstance(value, str):
            return None
        out.extend(part.strip() for part in value.split(","))
    return out


# -- creation-time checks (Tractus-X's validate() of each constraint function) ---------------------------------


def _check_membership(op: str, rights: tuple[object, ...]) -> str | None:
    if len(rights) != 1 or not isinstance(rights[0], str) or rights[0].lower() != ACTIVE:
        return f"cx-policy:Membership takes the right operand 'active', got {list(rights)!r}"
    return None


def _check_framework(op: str, rights: tuple[object, ...]) -> str | None:
    if len(rights) != 1 or rights[0] != DATA_EXCHANGE_GOVERNANCE:
        return (
            f"cx-policy:FrameworkAgreement takes the right operand {DATA_EXCHANGE_GOVERNANCE!r}, got {list(rights)!r}"
        )
    return None


def _check_bpns(op: str, rights: tuple[object, ...]) -> str | None:
    values = _strings(rights)
    if values is None:
        return "cx-policy:BusinessPartnerNumber takes a list of BPNL strings"
    bad = [v for v in values if not BPNL.match(v)]
    if bad:
        return f"cx-policy:BusinessPartnerNumber values must match {BPNL.pattern}, got {bad[0]!r}"
    if len(set(values)) != len(values):
        return "cx-policy:BusinessPartnerNumber values must be unique"
    return None


def _check_groups(op: str, rights: tuple[object, ...]) -> str | None:
    values = _strings(rights)
    if values is None or not all(values):
        return "cx-policy:BusinessPartnerGroup takes a list of non-empty group names"
    if len(set(values)) != len(values):
        return "cx-policy:BusinessPartnerGroup values must be unique"
    return None


# -- evaluation (Tractus-X's evaluate() of each constraint function) -------------------------------------------


def _held(ctx: EvaluationContext) -> frozenset[str]:
    return claim_set(ctx.claims, CLAIM_CREDENTIAL_TYPES)


def _decide_membership(ctx: EvaluationContext, op: str, rights: tuple[object, ...]) -> tuple[bool, object]:
    held = _held(ctx)
    return MEMBERSHIP_CREDENTIAL in held, sorted(held) or "no credentials"


def _decide_framework(ctx: EvaluationContext, op: str, rights: tuple[object, ...]) -> tuple[bool, object]:
    subtype, _, version = str(rights[0]).partition(":")
    credential = subtype[:1].upper() + subtype[1:] + "Credential"
    if version:
        versions = claim_set(ctx.claims, CLAIM_CONTRACT_VERSIONS)
        return f"{credential}:{version}" in versions, sorted(versions) or "no credential states a contractVersion"
    held = _held(ctx)
    return credential in held, sorted(held) or "no credentials"


def _decide_legacy_framework(ctx: EvaluationContext, op: str, rights: tuple[object, ...]) -> tuple[bool, object]:
    # eq is Tractus-X's function (as in 2025-9); the set operators keep the node's reading of the older operand:
    # the use cases (and use case:contractVersion) the requester's credentials state.
    if op == "eq":
        return _decide_framework(ctx, op, rights)
    frameworks = claim_set(ctx.claims, CLAIM_FRAMEWORK_AGREEMENTS)
    right = frozenset(str(r) for r in rights)
    if op == "isA":
        return right <= frameworks, sorted(frameworks)
    return SET[op](frozenset[object](frameworks), frozenset[object](right)), sorted(frameworks)


def _decide_bpn(ctx: EvaluationContext, op: str, rights: tuple[object, ...]) -> tuple[bool, object]:
    bpn = ctx.claims.get(CLAIM_BPN_CREDENTIAL)
    if not isinstance(bpn, str):
        return False, "no BpnCredential"
    listed = bpn in (_strings(rights) or [])
    return (listed if op == "isAnyOf" else not listed), bpn


def _decide_groups(ctx: EvaluationContext, op: str, rights: tuple[object, ...]) -> tuple[bool, object]:
    if CLAIM_PARTNER_GROUPS not in ctx.claims:
        # Tractus-X fails the constraint when the BPN is not in its group store, for isNoneOf too.
        return False, "no groups are known for the requester's BPN"
    groups = claim_set(ctx.claims, CLAIM_PARTNER_GROUPS)
    allowed = frozenset(_strings(rights) or ())
    any_of = (not groups and not allowed) or not groups.isdisjoint(allowed)
    return (any_of if op == "isAnyOf" else not any_of), sorted(groups)


def _committed(ctx: EvaluationContext, op: str, rights: tuple[object, ...]) -> tuple[bool, object]:
    return True, None


def _unused(ctx: EvaluationContext) -> object:
    return None


# -- policy rules (Tractus-X's CxPolicyDefinitionValidator) ----------------------------------------------------


def _atomics(items: tuple[AnyConstraint, ...], path: str) -> Iterator[tuple[str, AnyConstraint]]:
    for i, c in enumerate(items):
        where = f"{path}.constraint[{i}]"
        yield where, c
        if isinstance(c, LogicalConstraint):
            yield from _nested(c, where)


def _nested(c: LogicalConstraint, path: str) -> Iterator[tuple[str, AnyConstraint]]:
    for i, child in enumerate(c.constraints):
        where = f"{path}.{c.operator}[{i}]"
        yield where, child
        if isinstance(child, LogicalConstraint):
            yield from _nested(child, where)


def _rules(policy: Policy) -> Iterator[tuple[str, Rule]]:
    for kind, rules in (
        ("permission", policy.permissions),
        ("prohibition", policy.prohibitions),
        ("obligation", policy.obligations),
    ):
        for i, rule in enumerate(rules):
            if rule.action:  # a placeholder of a rule the parser already reported has none
                yield f"{kind}[{i}]", rule


def _uses_catenax(policy: Policy) -> bool:
    for _, rule in _rules(policy):
        if rule.action.startswith(CX_POLICY_2025):
            return True
        for _, c in _atomics(rule.constraints, ""):
            if isinstance(c, Constraint) and c.left_operand.startswith(CX_POLICY_2025):
                return True
    return False


def check_policy(policy: Policy) -> list[Problem]:
    """Apply Tractus-X's policy rules to a policy that uses Catena-X terms of 2025-9 (others pass unchanged)."""
    if not _uses_catenax(policy):
        return []
    problems: list[Problem] = []
    kind: str | None = None
    for path, rule in _rules(policy):
        if rule.action not in (ACCESS, USE):
            problems.append(
                Problem(f"{path}.action", f"a Catena-X policy's rules are access or use rules, not <{rule.action}>")
            )
            continue
        this = "access" if rule.action == ACCESS else "usage"
        if kind is None:
            kind = this
        elif this != kind:
            problems.append(
                Problem(f"{path}.action", f"the policy mixes access and use rules (it began as a {kind} policy)")
            )
    kind = kind or "access"  # a policy without rules is an access policy to Tractus-X
    found: set[str] = set()
    for path, rule in _rules(policy):
        rule_kind = path.split("[", 1)[0]
        if kind == "access" and rule_kind != "permission":
            problems.append(Problem(path, "an access policy has permissions only"))
            continue
        allowed = ACCESS_OPERANDS if kind == "access" else USAGE_OPERANDS if rule_kind == "permission" else frozenset()
        where = "an access policy" if kind == "access" else f"a {rule_kind} of a usage policy"
        for cpath, c in _atomics(rule.constraints, path):
            if isinstance(c, LogicalConstraint):
                if c.operator != "and":
                    problems.append(
                        Problem(
                            cpath, f"a Catena-X policy allows only 'and' to combine constraints, not {c.operator!r}"
                        )
                    )
                continue
            operand = c.left_operand
            if operand.startswith(CX_POLICY_2025) and operand not in allowed:
                problems.append(Problem(f"{cpath}.leftOperand", f"{_name(operand)} is not allowed in {where}"))
            if rule_kind == "permission":
                found.add(operand)
    if kind == "usage":
        missing = [_name(o) for o in USAGE_REQUIRED if o not in found]
        if missing:
            first = "permission[0]" if policy.permissions else "permission"
            problems.append(
                Problem(
                    first,
                    "a Catena-X usage policy's permissions state both cx-policy:FrameworkAgreement and "
                    f"cx-policy:UsagePurpose (missing {', '.join(missing)})",
                )
            )
    return problems


def install_catenax(registry: Registry) -> None:
    """Register the Catena-X 2025-9 operands, the ``access`` action and the Catena-X policy rules."""
    registry.register_action(ACCESS, same_as=USE)
    registry.register(
        MEMBERSHIP,
        _unused,
        value_type=STR,
        operators=("eq",),
        check=_check_membership,
        decide=_decide_membership,
        scopes=CLAIM_SCOPES,
        deferred_outside_scopes=True,
        description="a verified MembershipCredential is held",
    )
    registry.register(
        FRAMEWORK_AGREEMENT,
        _unused,
        value_type=STR,
        operators=("eq",),
        check=_check_framework,
        decide=_decide_framework,
        scopes=CLAIM_SCOPES,
        deferred_outside_scopes=True,
        description="a verified DataExchangeGovernanceCredential states contractVersion 1.0",
    )
    registry.register(
        BUSINESS_PARTNER_NUMBER,
        _unused,
        value_type=STR,
        operators=("isAnyOf", "isNoneOf"),
        check=_check_bpns,
        decide=_decide_bpn,
        scopes=CATALOG_ONLY,
        deferred_outside_scopes=True,
        description="the BPN a verified BpnCredential states (catalog scope)",
    )
    registry.register(
        BUSINESS_PARTNER_GROUP,
        _unused,
        value_type=STR,
        operators=("isAnyOf", "isNoneOf"),
        check=_check_groups,
        decide=_decide_groups,
        scopes=CATALOG_ONLY,
        deferred_outside_scopes=True,
        description="the node's groups of the requester's BPN (catalog scope)",
    )
    registry.register(
        USAGE_PURPOSE,
        _unused,
        value_type=STR,
        operators=("isAnyOf",),
        decide=_committed,
        scopes=ALL_SCOPES,
        description="a commitment made by accepting the offer; never checked afterwards",
    )
    registry.register(
        LEGACY_FRAMEWORK_AGREEMENT,
        _unused,
        value_type=STR,
        operators=("eq", "isA", "isAnyOf", "isAllOf", "isNoneOf", "hasPart", "isPartOf"),
        decide=_decide_legacy_framework,
        scopes=CLAIM_SCOPES,
        deferred_outside_scopes=True,
        description="eq: as cx-policy:FrameworkAgreement; set operators: claims['framework_agreements']",
    )
    # Before 2025-9 the purpose was a commitment too: policies agreed then are not re-checked per request.
    registry.register(
        LEGACY_USAGE_PURPOSE,
        _unused,
        value_type=STR,
        decide=_committed,
        scopes=ALL_SCOPES,
        description="a commitment made by accepting the offer; never checked afterwards",
    )
    registry.register_policy_check(check_policy)
