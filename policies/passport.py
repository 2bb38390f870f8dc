"""The battery-passport profile: EU Battery Regulation 2023/1542 access levels and ready-made policies.

Art. 77(2) and Annex XIII give three groups of readers:

* ``public`` — the general public (Annex XIII point 1);
* ``legitimate_interest`` — persons with a legitimate interest (points 2 and 4), purpose-bound; who qualifies
  is left to the Art. 77(9) implementing act, so the role set is configuration, not code;
* ``authority`` — notified bodies, market surveillance authorities and the European Commission (points 2
  and 3).

The requester's levels are derived from *verified* role claims (``claims["roles"]``) through a configurable
mapping, plus an explicit level claim (``claims["access_level"]``) when a credential states the level. Every
requester holds ``public``. Levels are a set, not a ladder: an authority does not automatically read
point 4 (individual-battery) data, and a legitimate-interest reader does not read point 3 test reports.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Final

from .context import CLAIM_SCOPES, EvaluationContext
from .model import Constraint, LiteralValue, Policy, Rule
from .registry import CLAIM_ACCESS_LEVEL, CLAIM_ROLES, Registry, claim_set
from .render import render_dsp, render_edc
from .values import STR
from .vocab import BPC, ODRL

ACCESS_LEVEL: Final = BPC + "accessLevel"
ROLE_NS: Final = BPC + "role/"


class AccessLevel(StrEnum):
    """Stable ids of the access levels."""

    PUBLIC = "public"
    LEGITIMATE_INTEREST = "legitimate_interest"
    AUTHORITY = "authority"


LEGITIMATE_INTEREST_ROLES: Final = frozenset(
    {
        "repairer",
        "remanufacturer",
        "repurposer",
        "recycler",
        "second_life_operator",
        "waste_management_operator",
        "independent_operator",
    }
)
AUTHORITY_ROLES: Final = frozenset({"market_surveillance_authority", "notified_body", "european_commission"})


def _default_roles() -> dict[str, frozenset[AccessLevel]]:
    roles = {r: frozenset({AccessLevel.LEGITIMATE_INTEREST}) for r in LEGITIMATE_INTEREST_ROLES}
    roles.update({r: frozenset({AccessLevel.AUTHORITY}) for r in AUTHORITY_ROLES})
    return roles


@dataclass(frozen=True, slots=True)
class AccessLevelMapping:
    """Which verified roles grant which access levels (configurable per node)."""

    roles: Mapping[str, frozenset[AccessLevel]] = field(default_factory=_default_roles)
    honour_level_claim: bool = True

    def levels(self, claims: Mapping[str, object]) -> frozenset[str]:
        """Return the level ids a requester with these verified claims holds (always includes public)."""
        out: set[str] = {AccessLevel.PUBLIC.value}
        for role in claim_set(claims, CLAIM_ROLES, "role"):
            name = role[len(ROLE_NS) :] if role.startswith(ROLE_NS) else role
            for level in self.roles.get(name, ()):
                out.add(level.value)
        if self.honour_level_claim:
            valid = {lv.value for lv in AccessLevel}
            out.update(v for v in claim_set(claims, CLAIM_ACCESS_LEVEL, "access_levels") if v in valid)
        return frozenset(out)


DEFAULT_MAPPING: Final = AccessLevelMapping()


def install_access_level(registry: Registry, mapping: AccessLevelMapping = DEFAULT_MAPPING) -> None:
    """Register (or replace) the ``bpc:accessLevel`` operand with the given role mapping."""

    def resolve(ctx: EvaluationContext) -> object:
        return mapping.levels(ctx.claims)

    registry.register(
        ACCESS_LEVEL,
        resolve,
        value_type=STR,
        multi=True,
        scopes=CLAIM_SCOPES,
        deferred_outside_scopes=True,
        replace=registry.operand(ACCESS_LEVEL) is not None,
        description="access levels derived from verified role claims (and an explicit level claim)",
    )


# -- templates ---------------------------------------------------------------------------------------------


def _levels_constraint(levels: Iterable[AccessLevel]) -> Constraint:
    return Constraint(ACCESS_LEVEL, ODRL + "isAnyOf", tuple(LiteralValue(lv.value) for lv in sorted(levels, key=str)))


def _policy(
    constraints: tuple[Constraint, ...],
    uid: str | None,
    target: str | None,
    assigner: str | None,
    policy_type: str,
) -> Policy:
    rule = Rule("permission", ODRL + "use", constraints)
    return Policy(type=policy_type, uid=uid, permissions=(rule,), target=target, assigner=assigner)


def public_policy(
    *, uid: str | None = None, target: str | None = None, assigner: str | None = None, policy_type: str = "Offer"
) -> Policy:
    """Build the policy for public passport data (Annex XIII point 1): anyone may use it."""
    return _policy((), uid, target, assigner, policy_type)


def legitimate_interest_policy(
    *,
    purposes: Sequence[str] | None = None,
    uid: str | None = None,
    target: str | None = None,
    assigner: str | None = None,
    policy_type: str = "Offer",
) -> Policy:
    """Build the policy for legitimate-interest data (Annex XIII point 4), optionally purpose-bound."""
    constraints = [_levels_constraint({AccessLevel.LEGITIMATE_INTEREST})]
    if purposes:
        constraints.append(Constraint(ODRL + "purpose", ODRL + "isAnyOf", tuple(LiteralValue(p) for p in purposes)))
    return _policy(tuple(constraints), uid, target, assigner, policy_type)


def authority_policy(
    *, uid: str | None = None, target: str | None = None, assigner: str | None = None, policy_type: str = "Offer"
) -> Policy:
    """Build the policy for authority-only data (Annex XIII point 3, e.g. test reports)."""
    return _policy((_levels_constraint({AccessLevel.AUTHORITY}),), uid, target, assigner, policy_type)


def legitimate_interest_or_authority_policy(
    *, uid: str | None = None, target: str | None = None, assigner: str | None = None, policy_type: str = "Offer"
) -> Policy:
    """Build the policy for Annex XIII point 2 data (legitimate interest, Commission, NBs and MSAs)."""
    levels = {AccessLevel.LEGITIMATE_INTEREST, AccessLevel.AUTHORITY}
    return _policy((_levels_constraint(levels),), uid, target, assigner, policy_type)


def policy_for_level(level: AccessLevel | str, **kwargs: Any) -> Policy:
    """Build the template policy for one access level id."""
    builders = {
        AccessLevel.PUBLIC: public_policy,
        AccessLevel.LEGITIMATE_INTEREST: legitimate_interest_policy,
        AccessLevel.AUTHORITY: authority_policy,
    }
    return builders[AccessLevel(level)](**kwargs)


#: Annex XIII points -> template builder (the four passport access tags).
ANNEX_XIII_TEMPLATES: Final = {
    "public": public_policy,
    "legitimate_interest_model": legitimate_interest_or_authority_policy,
    "authority": authority_policy,
    "legitimate_interest_battery": legitimate_interest_policy,
}


def template_json(level: AccessLevel | str, form: str = "dsp", **kwargs: Any) -> dict[str, Any]:
    """Return the template policy of a level rendered as ``dsp`` or ``edc`` JSON."""
    policy = policy_for_level(level, **kwargs)
    return render_edc(policy) if form == "edc" else render_dsp(policy)
