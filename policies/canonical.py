"""A deterministic canonical form of policies, for structural comparison (offer vs agreement)."""

from __future__ import annotations

import json
from typing import Any

from .model import AnyConstraint, LogicalConstraint, Policy, Rule, Value
from .parse import parse_policy
from .values import literal_key


def _dump(obj: Any) -> str:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def _sorted(items: list[Any]) -> list[Any]:
    return sorted(items, key=_dump)


def _value(v: Value) -> dict[str, str]:
    lex, dt = literal_key(v)
    return {"@id": lex} if dt == "@id" else {"@value": lex, "@type": dt}


def _constraint(c: AnyConstraint) -> dict[str, Any]:
    if isinstance(c, LogicalConstraint):
        items = [_constraint(x) for x in c.constraints]
        # andSequence is ordered; the others are commutative.
        return {c.operator: items if c.operator == "andSequence" else _sorted(items)}
    return {
        "leftOperand": c.left_operand,
        "operator": c.operator,
        "rightOperand": _sorted([_value(v) for v in c.right_operand]),
    }


def _rule(r: Rule, rules_only: bool) -> dict[str, Any]:
    out: dict[str, Any] = {
        "action": r.action,
        "constraint": _sorted([_constraint(c) for c in r.constraints]),
    }
    for name, nested in (("duty", r.duties), ("remedy", r.remedies), ("consequence", r.consequences)):
        if nested:
            out[name] = _sorted([_rule(x, rules_only) for x in nested])
    if not rules_only:
        for name in ("target", "assigner", "assignee"):
            value = getattr(r, name)
            if value is not None:
                out[name] = value
    return out


def canonical(policy: Policy | Any, *, rules_only: bool = False) -> str:
    """Return the canonical JSON string of a policy (ids ignored, rules and constraints sorted).

    With ``rules_only=True`` only the deontic content is kept (actions, constraints, duties): type,
    assigner, assignee and targets are left out, since they legitimately differ between an offer and the
    agreement made from it.
    """
    p = parse_policy(policy)
    key = "canonical_rules" if rules_only else "canonical"
    hit = p._cache.get(key)
    if isinstance(hit, str):
        return hit
    out: dict[str, Any] = {}
    for name, rules in (("permission", p.permissions), ("prohibition", p.prohibitions), ("obligation", p.obligations)):
        if rules:
            out[name] = _sorted([_rule(r, rules_only) for r in rules])
    if not rules_only:
        out["@type"] = p.type
        for name in ("target", "assigner", "assignee", "conflict"):
            value = getattr(p, name)
            if value is not None:
                out[name] = value
        if p.profiles:
            out["profile"] = sorted(p.profiles)
    text = _dump(out)
    p._cache[key] = text
    return text


def same_rules(a: Policy | Any, b: Policy | Any) -> bool:
    """Tell whether two policies grant and forbid exactly the same things (parties and targets ignored)."""
    return canonical(a, rules_only=True) == canonical(b, rules_only=True)
