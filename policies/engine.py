"""Compile policies into evaluation plans and decide requests: deny by default, always explained.

Constraint outcomes use a four-valued logic, ordered ``TRUE < DEFERRED < ERROR < FALSE``:

* ``and`` / ``andSequence`` take the worst (max) outcome, ``or`` the best (min); ``xone`` is true when
  exactly one branch is true and none is undecided.
* A permission applies when its constraints are TRUE or DEFERRED (deferred constraints are reported and are
  checked again in the later scope where their value exists).
* A prohibition applies when its constraints are TRUE or ERROR: a prohibition whose constraint cannot be
  evaluated is enforced (fail closed). DEFERRED prohibitions are reported and re-checked later.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Final

from .context import EvaluationContext, Scope
from .model import AnyConstraint, Constraint, LogicalConstraint, Policy, Problem, Rule
from .operators import SCALAR, SET, as_set
from .parse import parse_partial, parse_policy
from .registry import ANY, ContextValue, Registry, default_registry
from .values import BOOL, DATE, DT, DUR, KIND_OF, NUM, ORDERED_KINDS, STR, describe, typed
from .vocab import DEFAULT_PREFIXES, ODRL, ODRL_VALUE_TERMS, OPERATORS, SCALAR_OPERATORS, SET_OPERATORS

TRUE: Final = 0
DEFERRED: Final = 1
ERROR: Final = 2
FALSE: Final = 3

_OUTCOME: Final = {TRUE: "satisfied", DEFERRED: "deferred", ERROR: "error", FALSE: "not_satisfied"}
_COMPATIBLE: Final[dict[str, frozenset[str]]] = {
    DT: frozenset({DT, DATE}),
    NUM: frozenset({NUM}),
    DUR: frozenset({DUR}),
    STR: frozenset({STR}),
    BOOL: frozenset({BOOL}),
}


def short(iri: str) -> str:
    """Return a compact form of an IRI for human-readable messages."""
    for prefix, ns in DEFAULT_PREFIXES.items():
        if iri.startswith(ns):
            return f"{prefix}:{iri[len(ns) :]}"
    return iri


# -- explanation --------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ConstraintResult:
    """How one constraint was judged: path, operand, operator, expected and actual values, outcome."""

    path: str
    left_operand: str
    operator: str
    expected: object
    actual: object
    outcome: str
    message: str = ""

    def line(self) -> str:
        """Return a one-line human rendering."""
        head = f"{self.path} {short(self.left_operand)} {self.operator} {self.expected!r}"
        if self.outcome == "deferred":
            return f"{head} deferred ({self.message})"
        tail = f"actual {self.actual!r}" if self.actual is not None else "no actual value"
        extra = f": {self.message}" if self.message else ""
        return f"{head} {self.outcome.replace('_', ' ')} ({tail}){extra}"

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-friendly dict."""
        return {
            "path": self.path,
            "leftOperand": self.left_operand,
            "operator": self.operator,
            "expected": self.expected,
            "actual": self.actual,
            "outcome": self.outcome,
            "message": self.message,
        }


@dataclass(frozen=True, slots=True)
class RuleResult:
    """Why a rule did or did not decide the request."""

    path: str
    kind: str
    action: str
    outcome: str  # "applied" | "not_applicable" | "constraints_failed"
    message: str = ""
    constraints: tuple[ConstraintResult, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-friendly dict."""
        return {
            "path": self.path,
            "kind": self.kind,
            "action": self.action,
            "outcome": self.outcome,
            "message": self.message,
            "constraints": [c.to_dict() for c in self.constraints],
        }


@dataclass(frozen=True, slots=True)
class Explanation:
    """The structured account of a decision.

    ``code`` is one of ``permitted``, ``invalid_policy``, ``unknown_action``, ``no_permission``,
    ``constraint_not_satisfied``, ``prohibited``. ``rule`` is the path of the deciding rule, ``rules`` the
    rules that were considered and failed, ``deferred`` the constraints left for a later scope.
    """

    code: str
    action: str
    scope: str
    rule: str | None = None
    rules: tuple[RuleResult, ...] = ()
    deferred: tuple[ConstraintResult, ...] = ()
    problems: tuple[Problem, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-friendly dict."""
        return {
            "code": self.code,
            "action": self.action,
            "scope": self.scope,
            "rule": self.rule,
            "rules": [r.to_dict() for r in self.rules],
            "deferred": [c.to_dict() for c in self.deferred],
            "problems": [{"path": p.path, "message": p.message} for p in self.problems],
        }


@dataclass(frozen=True, slots=True)
class Decision:
    """The answer to "may this participant do this, now?"; ``duties`` must be fulfilled by the caller."""

    permitted: bool
    explanation: Explanation
    duties: tuple[Rule, ...] = ()

    @property
    def reason(self) -> str:
        """Return a one-line human explanation."""
        e = self.explanation
        act = short(e.action)
        if self.permitted:
            text = f"permitted by {e.rule} for {act} in {e.scope} scope"
            if e.deferred:
                text += "; deferred: " + "; ".join(c.line() for c in e.deferred)
            if self.duties:
                text += "; duties: " + ", ".join(short(d.action) for d in self.duties)
            return text
        if e.code == "invalid_policy":
            return "denied: invalid policy: " + "; ".join(str(p) for p in e.problems[:3])
        if e.code == "unknown_action":
            return f"denied: unknown action {e.action}"
        if e.code == "prohibited":
            detail = "; ".join(c.line() for r in e.rules for c in r.constraints)
            return f"denied: prohibited by {e.rule} for {act}" + (f" ({detail})" if detail else "")
        if e.code == "no_permission":
            return f"denied: no permission covers {act} for this request" + (
                " (" + "; ".join(f"{r.path}: {r.message}" for r in e.rules) + ")" if e.rules else ""
            )
        parts: list[str] = []
        for r in e.rules:
            if r.constraints:
                parts.extend(c.line() for c in r.constraints)
            else:
                parts.append(f"{r.path}: {r.message}")
        return "denied: " + "; ".join(parts)

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-friendly dict (for logs and API error bodies)."""
        return {
            "permitted": self.permitted,
            "reason": self.reason,
            "explanation": self.explanation.to_dict(),
            "duties": [short(d.action) for d in self.duties],
        }


# -- compilation --------------------------------------------------------------------------------------------

Check = Callable[[EvaluationContext, Scope, list[ConstraintResult]], int]


def _expected(values: tuple[object, ...]) -> object:
    if len(values) == 1:
        v = values[0]
        return v.describe if isinstance(v, ContextValue) else describe(v)
    return [v.describe if isinstance(v, ContextValue) else describe(v) for v in values]


def _kind(value: object) -> str | None:
    if isinstance(value, ContextValue):
        return DT
    return KIND_OF.get(type(value))


class _Compiler:
    def __init__(self, registry: Registry) -> None:
        self.registry = registry
        self.problems: list[Problem] = []
        self.operands: set[str] = set()
        self.time_dependent = False

    def problem(self, path: str, message: str) -> None:
        self.problems.append(Problem(path, message))

    def action(self, iri: str, path: str) -> None:
        if not self.registry.action_known(iri):
            self.problem(f"{path}.action", f"unknown action <{iri}>")

    def constraints(self, items: tuple[AnyConstraint, ...], path: str) -> Check | None:
        checks = [self.any(c, f"{path}.constraint[{i}]") for i, c in enumerate(items)]
        if not checks:
            return None
        ok = [c for c in checks if c is not None]
        if len(ok) != len(checks):
            return None
        return ok[0] if len(ok) == 1 else _and(tuple(ok))

    def any(self, c: AnyConstraint, path: str) -> Check | None:
        if isinstance(c, LogicalConstraint):
            children = [self.any(x, f"{path}.{c.operator}[{i}]") for i, x in enumerate(c.constraints)]
            ok = tuple(x for x in children if x is not None)
            if len(ok) != len(children):
                return None
            if c.operator in ("and", "andSequence"):
                return _and(ok)
            if c.operator == "or":
                return _or(ok)
            return _xone(ok, path)
        return self.atomic(c, path)

    def atomic(self, c: Constraint, path: str) -> Check | None:
        if not c.left_operand:  # placeholder of an element the parser already reported
            return None
        start = len(self.problems)
        operand = self.registry.operand(c.left_operand)
        if operand is None:
            self.problem(f"{path}.leftOperand", f"unknown left operand <{c.left_operand}>")
        else:
            self.operands.add(operand.iri)
            self.time_dependent |= operand.time_dependent
        op = c.operator[len(ODRL) :] if c.operator.startswith(ODRL) else None
        if op not in OPERATORS:
            self.problem(f"{path}.operator", f"unknown operator <{c.operator}>")
            op = None
        hint = operand.value_type if operand is not None and operand.value_type != ANY else None
        compile_right = operand.right_operand if operand is not None and operand.right_operand else typed
        rights: list[object] = []
        for i, v in enumerate(c.right_operand):
            where = f"{path}.rightOperand" + (f"[{i}]" if len(c.right_operand) > 1 else "")
            try:
                rights.append(compile_right(v, hint))
            except ValueError as exc:
                self.problem(where, str(exc))
        if op is not None and operand is not None and operand.operators is not None and op not in operand.operators:
            self.problem(
                f"{path}.operator", f"{short(operand.iri)} allows only {', '.join(operand.operators)}, not {op}"
            )
        elif op is not None and len(rights) == len(c.right_operand):
            self._check_types(op, operand.value_type if operand else ANY, rights, path, operand)
            if operand is not None and operand.check is not None and len(self.problems) == start:
                message = operand.check(op, tuple(rights))
                if message is not None:
                    self.problem(f"{path}.rightOperand", message)
        if len(self.problems) > start or operand is None or op is None:
            return None
        if operand.decide is not None:
            return _decided(operand.iri, operand, op, tuple(rights), path)
        if op in SCALAR_OPERATORS:
            return _scalar(operand.iri, operand, op, rights[0], path)
        return _set(operand.iri, operand, op, frozenset(rights), path)

    def _check_types(self, op: str, value_type: str, rights: list[object], path: str, operand: Any) -> None:
        where = f"{path}.rightOperand"
        if op in SCALAR_OPERATORS and len(rights) != 1:
            self.problem(where, f"operator {op} takes exactly one right-operand value, got {len(rights)}")
            return
        kinds = [_kind(r) for r in rights]
        if op in SET_OPERATORS and any(isinstance(r, ContextValue) for r in rights):
            self.problem(where, f"operator {op} cannot take context-relative values")
        if op in ("lt", "lteq", "gt", "gteq") and kinds[0] not in ORDERED_KINDS:
            self.problem(where, f"operator {op} needs a number, dateTime, date or duration, got {kinds[0]}")
        if value_type != ANY:
            allowed = _COMPATIBLE.get(value_type, frozenset())
            bad = [k for k in kinds if k not in allowed]
            if bad:
                self.problem(
                    where,
                    f"wrong right-operand type for {short(operand.iri)}: expected {value_type}, got {bad[0]}",
                )
        if operand is not None and operand.multi and op in SCALAR_OPERATORS and op != "isA":
            self.problem(
                f"{path}.operator",
                f"{short(operand.iri)} is multi-valued: use isAnyOf, isAllOf, isNoneOf, hasPart or isPartOf",
            )


LeftValue = Callable[[EvaluationContext, Scope, list[ConstraintResult]], tuple[int | None, object]]


def _left_value(iri: str, operand: Any, op: str, expected: object, path: str) -> LeftValue:
    """Build the resolution of a constraint's left operand, shared by every operator.

    The result is (None, value), or (DEFERRED or ERROR, None) with the reason appended to ``out``.
    """
    resolve = operand.resolve
    scopes = operand.scopes
    deferrable = operand.deferred_outside_scopes
    absent = operand.deferred_when_absent

    def left(ctx: EvaluationContext, scope: Scope, out: list[ConstraintResult]) -> tuple[int | None, object]:
        if scope not in scopes:
            if deferrable:
                out.append(
                    ConstraintResult(path, iri, op, expected, None, "deferred", f"not applicable in {scope} scope")
                )
                return DEFERRED, None
            out.append(ConstraintResult(path, iri, op, expected, None, "error", f"not available in {scope} scope"))
            return ERROR, None
        try:
            value = resolve(ctx)
        except Exception as exc:  # a node resolver failing must deny, not crash the request
            out.append(ConstraintResult(path, iri, op, expected, None, "error", f"resolver failed: {exc!r}"))
            return ERROR, None
        if value is None:
            if scope in absent:
                out.append(
                    ConstraintResult(path, iri, op, expected, None, "deferred", f"none declared yet in {scope} scope")
                )
                return DEFERRED, None
            out.append(ConstraintResult(path, iri, op, expected, None, "error", "no value in the request context"))
            return ERROR, None
        return None, value

    return left


def _decided(iri: str, operand: Any, op: str, rights: tuple[object, ...], path: str) -> Check:
    """Build the check of an operand that judges its constraint itself (a profile's constraint function)."""
    decide = operand.decide
    scopes = operand.scopes
    deferrable = operand.deferred_outside_scopes
    expected = _expected(rights)

    def check(ctx: EvaluationContext, scope: Scope, out: list[ConstraintResult]) -> int:
        if scope not in scopes:
            if deferrable:
                out.append(
                    ConstraintResult(path, iri, op, expected, None, "deferred", f"not applicable in {scope} scope")
                )
                return DEFERRED
            out.append(ConstraintResult(path, iri, op, expected, None, "error", f"not available in {scope} scope"))
            return ERROR
        try:
            satisfied, actual = decide(ctx, op, rights)
        except Exception as exc:  # a profile function failing must deny, not crash the request
            out.append(ConstraintResult(path, iri, op, expected, None, "error", f"resolver failed: {exc!r}"))
            return ERROR
        if satisfied:
            return TRUE
        out.append(ConstraintResult(path, iri, op, expected, describe(actual), "not_satisfied"))
        return FALSE

    return check


def _scalar(iri: str, operand: Any, op: str, right: object, path: str) -> Check:
    fn = SCALAR[op]
    dynamic = isinstance(right, ContextValue)
    expected = _expected((right,))
    resolve_left = _left_value(iri, operand, op, expected, path)

    def check(ctx: EvaluationContext, scope: Scope, out: list[ConstraintResult]) -> int:
        outcome, left = resolve_left(ctx, scope, out)
        if outcome is not None:
            return outcome
        r = right
        if dynamic:
            assert isinstance(right, ContextValue)
            r = right.fn(ctx)
            if r is None:
                out.append(
                    ConstraintResult(path, iri, op, expected, describe(left), "error", "bound needs agreement_start")
                )
                return ERROR
        res = fn(left, r)
        if res is True:
            return TRUE
        if res is False:
            out.append(ConstraintResult(path, iri, op, expected, describe(left), "not_satisfied"))
            return FALSE
        out.append(ConstraintResult(path, iri, op, expected, describe(left), "error", res))
        return ERROR

    return check


def _set(iri: str, operand: Any, op: str, right: frozenset[object], path: str) -> Check:
    fn = SET[op]
    expected = sorted((describe(v) for v in right), key=repr)
    resolve_left = _left_value(iri, operand, op, expected, path)

    def check(ctx: EvaluationContext, scope: Scope, out: list[ConstraintResult]) -> int:
        outcome, left = resolve_left(ctx, scope, out)
        if outcome is not None:
            return outcome
        if fn(as_set(left), right):
            return TRUE
        out.append(ConstraintResult(path, iri, op, expected, describe(left), "not_satisfied"))
        return FALSE

    return check


def _and(children: tuple[Check, ...]) -> Check:
    def check(ctx: EvaluationContext, scope: Scope, out: list[ConstraintResult]) -> int:
        state = TRUE
        for child in children:
            s = child(ctx, scope, out)
            if s == FALSE:
                return FALSE
            if s > state:
                state = s
        return state

    return check


def _or(children: tuple[Check, ...]) -> Check:
    def check(ctx: EvaluationContext, scope: Scope, out: list[ConstraintResult]) -> int:
        mark = len(out)
        state = FALSE
        for child in children:
            s = child(ctx, scope, out)
            if s == TRUE:
                del out[mark:]
                return TRUE
            if s < state:
                state = s
        return state

    return check


def _xone(children: tuple[Check, ...], path: str) -> Check:
    def check(ctx: EvaluationContext, scope: Scope, out: list[ConstraintResult]) -> int:
        mark = len(out)
        trues = 0
        undecided = TRUE
        for child in children:
            s = child(ctx, scope, out)
            if s == TRUE:
                trues += 1
            elif s != FALSE and s > undecided:
                undecided = s
        if trues > 1:
            del out[mark:]
            out.append(ConstraintResult(path, "xone", "xone", 1, trues, "not_satisfied", f"{trues} branches satisfied"))
            return FALSE
        if undecided != TRUE:
            return undecided
        if trues == 1:
            del out[mark:]
            return TRUE
        return FALSE

    return check


@dataclass(frozen=True, slots=True)
class _CompiledRule:
    index: int
    path: str
    rule: Rule
    check: Check | None
    target: str | None
    assignee: str | None


class Plan:
    """A compiled policy: evaluation closures per rule plus the problems found while compiling."""

    __slots__ = (
        "_by_action",
        "_invalid",
        "_permits",
        "obligations",
        "operands",
        "permissions",
        "policy",
        "problems",
        "prohibitions",
        "registry",
        "time_dependent",
    )

    def __init__(self, policy: Policy, registry: Registry) -> None:
        comp = _Compiler(registry)
        self.policy = policy
        self.registry = registry
        self.permissions = self._rules(comp, policy, policy.permissions, "permission")
        self.prohibitions = self._rules(comp, policy, policy.prohibitions, "prohibition")
        for i, rule in enumerate(policy.obligations):
            self._duty(comp, rule, f"obligation[{i}]")
        self.obligations = policy.obligations
        for profile_check in registry.policy_checks:
            comp.problems.extend(profile_check(policy))
        self.problems: tuple[Problem, ...] = tuple(comp.problems)
        self.operands = frozenset(comp.operands)
        #: True when a decision depends on the clock or on usage counters (so it must not be cached).
        self.time_dependent = comp.time_dependent
        self._by_action: dict[str, tuple[tuple[_CompiledRule, ...], tuple[_CompiledRule, ...]]] = {}
        self._permits: dict[tuple[int, Scope, str], Decision] = {}
        self._invalid: dict[tuple[str, Scope], Decision] = {}

    def _rules(self, comp: _Compiler, policy: Policy, rules: tuple[Rule, ...], kind: str) -> tuple[_CompiledRule, ...]:
        out = []
        for i, rule in enumerate(rules):
            path = f"{kind}[{i}]"
            if not rule.action:  # placeholder of a rule the parser already reported
                continue
            comp.action(rule.action, path)
            check = comp.constraints(rule.constraints, path)
            for j, duty in enumerate(rule.duties):
                self._duty(comp, duty, f"{path}.duty[{j}]")
            for j, remedy in enumerate(rule.remedies):
                self._duty(comp, remedy, f"{path}.remedy[{j}]")
            out.append(
                _CompiledRule(i, path, rule, check, rule.target or policy.target, rule.assignee or policy.assignee)
            )
        return tuple(out)

    def _duty(self, comp: _Compiler, duty: Rule, path: str) -> None:
        # Duties are reported, not enforced, but they must still be understood: an unknown duty action or
        # operand would leave the caller with an obligation nobody can check.
        if not duty.action:
            return
        comp.action(duty.action, path)
        comp.constraints(duty.constraints, path)
        for j, c in enumerate(duty.consequences):
            self._duty(comp, c, f"{path}.consequence[{j}]")

    def _select(self, action: str) -> tuple[tuple[_CompiledRule, ...], tuple[_CompiledRule, ...]]:
        hit = self._by_action.get(action)
        if hit is None:
            covers = self.registry.covers
            perms = tuple(r for r in self.permissions if covers(r.rule.action, action))
            # A prohibition on a broader or narrower action both bite: prohibiting `use` forbids `read`,
            # and prohibiting `read` forbids a request to `use` (which would include reading).
            prohs = tuple(
                r for r in self.prohibitions if covers(r.rule.action, action) or covers(action, r.rule.action)
            )
            hit = self._by_action[action] = (perms, prohs)
        return hit

    def evaluate(self, action: str, ctx: EvaluationContext, scope: Scope) -> Decision:
        """Decide whether ``action`` is permitted for ``ctx`` in ``scope``."""
        if self.problems:
            key = (action, scope)
            d = self._invalid.get(key)
            if d is None:
                d = self._invalid[key] = Decision(
                    False, Explanation("invalid_policy", action, scope, problems=self.problems)
                )
            return d
        if not self.registry.action_known(action):
            return Decision(False, Explanation("unknown_action", action, scope))
        perms, prohs = self._select(action)
        failed: list[RuleResult] = []
        granted: _CompiledRule | None = None
        deferred: list[ConstraintResult] = []
        for r in perms:
            why = _not_applicable(r, ctx)
            if why:
                failed.append(RuleResult(r.path, r.rule.kind, r.rule.action, "not_applicable", why))
                continue
            if r.check is None:
                granted = r
                break
            out: list[ConstraintResult] = []
            s = r.check(ctx, scope, out)
            if s <= DEFERRED:
                granted = r
                deferred = out
                break
            failed.append(RuleResult(r.path, r.rule.kind, r.rule.action, "constraints_failed", "", tuple(out)))
        if granted is None:
            code = "constraint_not_satisfied" if any(f.constraints for f in failed) else "no_permission"
            return Decision(False, Explanation(code, action, scope, rules=tuple(failed)))
        for r in prohs:
            if _not_applicable(r, ctx):
                continue
            out = []
            s = TRUE if r.check is None else r.check(ctx, scope, out)
            if s in (TRUE, ERROR):
                res = RuleResult(r.path, r.rule.kind, r.rule.action, "applied", "prohibition applies", tuple(out))
                return Decision(False, Explanation("prohibited", action, scope, rule=r.path, rules=(res,)))
            if s == DEFERRED:
                deferred.extend(out)
        if not deferred:
            key2 = (granted.index, scope, action)
            d = self._permits.get(key2)
            if d is None:
                d = self._permits[key2] = Decision(
                    True,
                    Explanation("permitted", action, scope, rule=granted.path),
                    granted.rule.duties + self.obligations,
                )
            return d
        return Decision(
            True,
            Explanation("permitted", action, scope, rule=granted.path, deferred=tuple(deferred)),
            granted.rule.duties + self.obligations,
        )


def _not_applicable(r: _CompiledRule, ctx: EvaluationContext) -> str:
    if r.assignee is not None and r.assignee != ctx.participant_id and r.assignee not in ctx.party_collections:
        return f"assignee is {r.assignee}, requester is {ctx.participant_id}"
    t = ctx.target
    if r.target is not None and t is not None and r.target != t and r.target not in ctx.asset_collections:
        return f"target is {r.target}, request is for {t}"
    return ""


def compile_policy(policy: Policy, registry: Registry | None = None) -> Plan:
    """Compile a policy into an evaluation plan without using any cache."""
    return Plan(policy, registry or default_registry())


def plan_for(policy: Policy, registry: Registry) -> Plan:
    """Return the cached plan of ``policy`` (identity cache on the object, then an LRU on its value)."""
    entry = policy._cache.get(registry)
    if entry is not None and entry[0] == registry.version:
        plan: Plan = entry[1]
        return plan
    plans = registry.plans
    key = (policy, registry.version)
    cached = plans.get(key)
    if cached is None:
        cached = Plan(policy, registry)
        plans[key] = cached
        if len(plans) > registry.plan_cache_size:
            plans.popitem(last=False)
    else:
        plans.move_to_end(key)
    policy._cache[registry] = (registry.version, cached)
    return cached


_ACTIONS: dict[str, str] = {}


def normalize_action(action: str) -> str:
    """Expand ``use`` / ``odrl:use`` / a full IRI to the full action IRI."""
    hit = _ACTIONS.get(action)
    if hit is None:
        if action in ODRL_VALUE_TERMS:
            hit = ODRL + action
        else:
            prefix, sep, rest = action.partition(":")
            hit = DEFAULT_PREFIXES[prefix] + rest if sep and prefix in DEFAULT_PREFIXES else action
        if len(_ACTIONS) < 4096:
            _ACTIONS[action] = hit
    return hit


def evaluate(
    policy: Policy | Mapping[str, Any],
    action: str,
    context: EvaluationContext,
    scope: Scope,
    *,
    registry: Registry | None = None,
) -> Decision:
    """Decide whether ``context``'s participant may perform ``action`` under ``policy`` in ``scope``."""
    reg = registry or default_registry()
    if not isinstance(policy, Policy):
        policy = parse_policy(policy)
    return plan_for(policy, reg).evaluate(normalize_action(action), context, scope)


def validate(data_or_policy: Any, registry: Registry | None = None) -> list[Problem]:
    """List every element of a policy the engine cannot parse or evaluate (empty list: valid)."""
    policy, problems = parse_partial(data_or_policy)
    if policy is None:
        return problems
    return problems + list(Plan(policy, registry or default_registry()).problems)
