"""The one registry of left-operand resolvers and known actions.

Every left operand the engine can evaluate is declared here (or registered by the node at start-up with
``Registry.register``). An operand that is not registered makes a policy invalid: it is reported by
``validate`` and any evaluation of that policy is a denial. Never ignored.
"""

from __future__ import annotations

import re
import threading
from collections import OrderedDict
from collections.abc import Callable, Collection, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Final

from .context import ALL_SCOPES, CLAIM_SCOPES, USAGE_SCOPES, EvaluationContext, Scope
from .model import LiteralValue, Policy, Problem, Value
from .values import DT, DUR, NUM, STR, typed
from .vocab import ACTION_PARENT, BPC, CX_POLICY, EDC, ODRL, TX

Resolver = Callable[[EvaluationContext], object]
#: Compiles one right-operand value; may return a ``ContextValue`` for values relative to the context.
RightCompiler = Callable[[Value, str | None], object]
#: Checks an operand's compiled right-operand values for an operator: a problem message, or None when valid.
RightCheck = Callable[[str, tuple[object, ...]], str | None]
#: Decides a constraint on its own (as Tractus-X's constraint functions do): (satisfied, the value it judged).
Decider = Callable[[EvaluationContext, str, tuple[object, ...]], tuple[bool, object]]
#: Checks a whole policy against a profile's rules (which rules and operands go together): its problems.
PolicyCheck = Callable[[Policy], list[Problem]]

ANY: Final = "any"


class ContextValue:
    """A right-operand value that depends on the request (e.g. ``contractAgreement+100d``)."""

    __slots__ = ("describe", "fn")

    def __init__(self, fn: Callable[[EvaluationContext], object], describe: str) -> None:
        self.fn = fn
        self.describe = describe

    def __repr__(self) -> str:
        return self.describe


@dataclass(frozen=True, slots=True)
class Operand:
    """A registered left operand.

    ``scopes``: where the value can be resolved. Outside them the constraint is *deferred* when
    ``deferred_outside_scopes`` is true (the value does not exist yet, e.g. ``count`` in the catalog), and an
    error (denial) otherwise. ``value_type`` is the kind of value the resolver returns (used to type untyped
    right operands and to reject wrong right-operand types at creation); ``multi`` means the resolver
    returns a collection (only set operators make sense then). ``deferred_when_absent``: scopes where a value
    the caller did not supply defers the constraint instead of denying (a purpose is declared on use, so a
    catalog or a negotiation without one leaves the check to the data request). ``operators``: the only
    operators the operand takes (others are refused when the policy is compiled); ``check``: a profile's rule
    on the right-operand values (a problem message, or None); ``decide``: when given, the operand judges the
    constraint itself from the context, the operator and the right values, and ``resolve`` is not used.
    """

    iri: str
    resolve: Resolver
    scopes: frozenset[Scope]
    deferred_outside_scopes: bool
    value_type: str
    multi: bool
    right_operand: RightCompiler | None
    time_dependent: bool
    description: str
    deferred_when_absent: frozenset[Scope] = frozenset()
    operators: tuple[str, ...] | None = None
    check: RightCheck | None = None
    decide: Decider | None = None


class Registry:
    """Left-operand resolvers and the action hierarchy; thread-safe to extend, cheap to read."""

    def __init__(self) -> None:
        self._operands: dict[str, Operand] = {}
        self._actions: dict[str, str | None] = {ODRL + a: (ODRL + p if p else None) for a, p in ACTION_PARENT.items()}
        self._same: dict[str, str] = {}
        self._covers: dict[tuple[str, str], bool] = {}
        self.policy_checks: tuple[PolicyCheck, ...] = ()
        self._lock = threading.Lock()
        self.version = 0
        self.plans: OrderedDict[tuple[Any, int], Any] = OrderedDict()
        self.plan_cache_size = 1024

    # -- operands -------------------------------------------------------------------------------------------

    def register(
        self,
        iri: str,
        resolver: Resolver,
        *,
        scopes: Iterable[Scope] = ALL_SCOPES,
        deferred_outside_scopes: bool = False,
        value_type: str = ANY,
        multi: bool = False,
        right_operand: RightCompiler | None = None,
        time_dependent: bool = False,
        description: str = "",
        replace: bool = False,
        deferred_when_absent: Iterable[Scope] = (),
        operators: Iterable[str] | None = None,
        check: RightCheck | None = None,
        decide: Decider | None = None,
    ) -> None:
        """Register (or with ``replace=True`` override) the resolver of a left operand IRI."""
        with self._lock:
            if iri in self._operands and not replace:
                raise ValueError(f"left operand {iri} is already registered (pass replace=True)")
            self._operands[iri] = Operand(
                iri,
                resolver,
                frozenset(scopes),
                deferred_outside_scopes,
                value_type,
                multi,
                right_operand,
                time_dependent,
                description,
                frozenset(deferred_when_absent),
                None if operators is None else tuple(operators),
                check,
                decide,
            )
            self._changed()

    def operand(self, iri: str) -> Operand | None:
        """Return the operand registered for ``iri``, if any."""
        return self._operands.get(iri)

    def operands(self) -> list[Operand]:
        """Return all registered operands sorted by IRI."""
        return sorted(self._operands.values(), key=lambda o: o.iri)

    # -- actions --------------------------------------------------------------------------------------------

    def register_action(self, iri: str, parent: str | None = ODRL + "use", *, same_as: str | None = None) -> None:
        """Declare an action (``parent`` is the action it is included in, per ``odrl:includedIn``).

        With ``same_as``, the action is another name of a known action: a rule on either covers requests for
        both, as a profile's own name for ``use`` would (Catena-X's ``access``).
        """
        with self._lock:
            if same_as is not None:
                if same_as not in self._actions:
                    raise ValueError(f"action {same_as} is not known")
                self._same[iri] = same_as
                parent = self._actions[same_as]
            self._actions[iri] = parent
            self._covers.clear()
            self._changed()

    def register_policy_check(self, check: PolicyCheck) -> None:
        """Add a rule every policy must pass (its problems make the policy invalid, as an unknown operand does)."""
        with self._lock:
            self.policy_checks = (*self.policy_checks, check)
            self._changed()

    def action_known(self, iri: str) -> bool:
        """Tell whether an action IRI is known."""
        return iri in self._actions

    def covers(self, granted: str, requested: str) -> bool:
        """Tell whether a rule on action ``granted`` covers a request for ``requested`` (same or ancestor)."""
        key = (granted, requested)
        hit = self._covers.get(key)
        if hit is not None:
            return hit
        granted = self._same.get(granted, granted)
        result = False
        current: str | None = self._same.get(requested, requested)
        seen = 0
        while current is not None and seen < 32:
            if current == granted:
                result = True
                break
            current = self._actions.get(current)
            seen += 1
        self._covers[key] = result
        return result

    def _changed(self) -> None:
        self.version += 1
        self.plans.clear()

    @classmethod
    def with_defaults(cls) -> Registry:
        """Build a fresh registry holding the built-in operands (ODRL, EDC, Catena-X, battery passport)."""
        reg = cls()
        install_builtin_operands(reg)
        from .passport import install_access_level  # passport imports this module

        install_access_level(reg)
        from .catenax import install_catenax  # catenax imports this module

        install_catenax(reg)
        return reg


_DEFAULT: Registry | None = None
_DEFAULT_LOCK = threading.Lock()


def default_registry() -> Registry:
    """Return the process-wide registry used when ``evaluate``/``validate`` get no registry."""
    global _DEFAULT
    if _DEFAULT is None:
        with _DEFAULT_LOCK:
            if _DEFAULT is None:
                _DEFAULT = Registry.with_defaults()
    return _DEFAULT


# -- claim keys read by the built-in operands ---------------------------------------------------------------

CLAIM_ROLES: Final = "roles"
CLAIM_MEMBERSHIP: Final = "membership"
CLAIM_BPN: Final = "bpn"
CLAIM_ACCESS_LEVEL: Final = "access_level"
CLAIM_FRAMEWORK_AGREEMENTS: Final = "framework_agreements"
#: The types of the requester's verified credentials, by bare name (``MembershipCredential``).
CLAIM_CREDENTIAL_TYPES: Final = "credential_types"
#: ``<credential type>:<contractVersion>`` of each verified credential whose subject states a contractVersion.
CLAIM_CONTRACT_VERSIONS: Final = "contract_versions"
#: The business partner number a verified ``BpnCredential`` states (its subject claim ending in ``bpn``).
CLAIM_BPN_CREDENTIAL: Final = "bpn_credential"
#: The business partner groups this node assigns to the requester's BPN (absent: the BPN is in no group list).
CLAIM_PARTNER_GROUPS: Final = "business_partner_groups"


def claim_set(claims: Mapping[str, object], *keys: str) -> frozenset[str]:
    """Collect string claim values under ``keys`` (a string or a collection of strings) into a set."""
    out: set[str] = set()
    for key in keys:
        value = claims.get(key)
        if isinstance(value, str):
            out.add(value)
        elif isinstance(value, Collection) and not isinstance(value, Mapping | bytes):
            out.update(v for v in value if isinstance(v, str))
    return frozenset(out)


# A purpose is what the consumer commits to by agreeing and declares on each use, the X-Purpose header of a data
# request: DSP gives a transfer request no place to declare one, and the monitor re-checks a running transfer on
# nobody's behalf. So everywhere but a data request a missing purpose defers the check to the data requests (a
# push transfer, which makes none, is refused while a check is deferred: connector/services/transfers.py).
BEFORE_USE: Final = frozenset({Scope.CATALOG, Scope.NEGOTIATION, Scope.TRANSFER, Scope.MONITOR})


def _purpose(ctx: EvaluationContext) -> object:
    p = ctx.purpose
    if p is None or isinstance(p, str):
        return p
    return frozenset(p)


def _elapsed(ctx: EvaluationContext) -> object:
    if ctx.agreement_start is None:
        return None
    return ctx.now - ctx.agreement_start


def _roles(ctx: EvaluationContext) -> object:
    return claim_set(ctx.claims, CLAIM_ROLES, "role")


def _membership(ctx: EvaluationContext) -> object:
    return ctx.claims.get(CLAIM_MEMBERSHIP)


def _cx_membership(ctx: EvaluationContext) -> object:
    value = ctx.claims.get(CLAIM_MEMBERSHIP)
    if value is True or value == "active":
        return "active"
    return None


def _bpn(ctx: EvaluationContext) -> object:
    value = ctx.claims.get(CLAIM_BPN)
    return value if isinstance(value, str) else None


_RELATIVE_RE: Final = re.compile(r"^\s*contractAgreement\s*(?:([+-])\s*(\d+)\s*([smhd]))?\s*$")
_UNITS: Final = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days"}


def _in_force_right(value: Value, hint: str | None) -> object:
    """Compile an EDC ``inForceDate`` bound: an xsd:dateTime or ``contractAgreement(+|-)<n>(s|m|h|d)``."""
    if isinstance(value, LiteralValue) and isinstance(value.value, str):
        m = _RELATIVE_RE.match(value.value)
        if m is not None:
            sign, amount, unit = m.groups()
            delta = timedelta(**{_UNITS[unit]: int(amount)}) if amount else timedelta(0)
            if sign == "-":
                delta = -delta

            def at(ctx: EvaluationContext, delta: timedelta = delta) -> datetime | None:
                return None if ctx.agreement_start is None else ctx.agreement_start + delta

            return ContextValue(at, value.value.strip())
    return typed(value, hint)


def install_builtin_operands(reg: Registry) -> None:
    """Register the ODRL, EDC, Catena-X/Tractus-X and ``bpc:`` operands (access level excluded)."""
    reg.register(
        ODRL + "dateTime",
        lambda c: c.now,
        value_type=DT,
        time_dependent=True,
        description="current time (EvaluationContext.now)",
    )
    reg.register(
        ODRL + "elapsedTime",
        _elapsed,
        scopes=USAGE_SCOPES,
        deferred_outside_scopes=True,
        value_type=DUR,
        time_dependent=True,
        description="now - agreement_start; deferred before an agreement exists",
    )
    reg.register(
        ODRL + "count",
        lambda c: c.count,
        scopes=USAGE_SCOPES,
        deferred_outside_scopes=True,
        value_type=NUM,
        time_dependent=True,
        description="uses so far (EvaluationContext.count); deferred before usage",
    )
    # The node's own purpose is what the consumer commits to by agreeing, and declares on each data request (see
    # BEFORE_USE); a purpose given elsewhere is checked there too. (Catena-X's UsagePurpose is a commitment only:
    # policies/catenax.py.)
    reg.register(
        ODRL + "purpose",
        _purpose,
        value_type=STR,
        deferred_when_absent=BEFORE_USE,
        description="declared purpose(s); without one, deferred outside data requests",
    )
    reg.register(ODRL + "spatial", lambda c: c.spatial, value_type=STR, description="requester location")
    reg.register(
        BPC + "participantId",
        lambda c: c.participant_id,
        value_type=STR,
        description="verified id of the requesting participant",
    )
    # Claims are verified from the caller's credentials on DSP requests (catalog, negotiation, transfer
    # start). A data-plane request carries only the access token of a transfer whose start checked them,
    # and the monitor has no caller: there the claim constraints are deferred, not re-read as empty.
    reg.register(
        BPC + "role",
        _roles,
        value_type=STR,
        multi=True,
        description="claims['roles']",
        scopes=CLAIM_SCOPES,
        deferred_outside_scopes=True,
    )
    reg.register(
        BPC + "membership",
        _membership,
        description="claims['membership'] (bool or string)",
        scopes=CLAIM_SCOPES,
        deferred_outside_scopes=True,
    )
    for iri in (BPC + "businessPartnerNumber", TX + "BusinessPartnerNumber", CX_POLICY + "BusinessPartnerNumber"):
        reg.register(
            iri, _bpn, value_type=STR, description="claims['bpn']", scopes=CLAIM_SCOPES, deferred_outside_scopes=True
        )
    reg.register(
        EDC + "inForceDate",
        lambda c: c.now,
        scopes=USAGE_SCOPES,
        deferred_outside_scopes=True,
        value_type=DT,
        right_operand=_in_force_right,
        time_dependent=True,
        description="contract validity: now vs fixed dateTime or contractAgreement+<n>(s|m|h|d)",
    )
    reg.register(
        CX_POLICY + "Membership",
        _cx_membership,
        value_type=STR,
        description="'active' when claims['membership'] is true or 'active'",
        scopes=CLAIM_SCOPES,
        deferred_outside_scopes=True,
    )
    # cx-policy:FrameworkAgreement of the older namespace is registered with the Catena-X profile (catenax.py).
