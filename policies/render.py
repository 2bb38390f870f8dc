"""Render policies as DSP 2025-1 compacted JSON or as EDC Management API compacted JSON."""

from __future__ import annotations

from typing import Any, Final

from .model import AnyConstraint, LiteralValue, LogicalConstraint, Policy, Rule, Value
from .vocab import EDC, ODRL, OPERATORS, XSD

DSP_CONTEXT: Final = "https://w3id.org/dspace/2025/1/context.jsonld"
EDC_CONTEXT: Final[dict[str, str]] = {"@vocab": EDC, "edc": EDC, "odrl": ODRL}

# Terms the DSP 2025-1 ODRL profile context defines; anything else must be a compact `odrl:` IRI or a full
# IRI, or DSP processors turn it into a relative IRI (the "interop trap").
_DSP_ACTIONS: Final = frozenset({"use"})


def _compact(iri: str, *, edc: bool = False) -> str:
    if iri.startswith(ODRL):
        return "odrl:" + iri[len(ODRL) :]
    if edc and iri.startswith(EDC):
        return "edc:" + iri[len(EDC) :]
    return iri


def _value(v: Value, *, dsp: bool) -> Any:
    if not isinstance(v, LiteralValue):
        return {"@id": v.iri}
    if v.datatype is None and v.language is None:
        return v.value
    out: dict[str, Any] = {"@value": v.value}
    if v.datatype is not None:
        out["@type"] = "xsd:" + v.datatype[len(XSD) :] if v.datatype.startswith(XSD) else v.datatype
    if v.language is not None:
        out["@language"] = v.language
    return out


def _right(values: tuple[Value, ...], *, dsp: bool) -> Any:
    if len(values) == 1:
        return _value(values[0], dsp=dsp)
    return [_value(v, dsp=dsp) for v in values]


def _dsp_constraint(c: AnyConstraint) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if c.uid:
        out["@id"] = c.uid
    if isinstance(c, LogicalConstraint):
        out[c.operator] = [_dsp_constraint(x) for x in c.constraints]
        return out
    op = c.operator[len(ODRL) :] if c.operator.startswith(ODRL) else ""
    out["leftOperand"] = _compact(c.left_operand)
    out["operator"] = op if op in OPERATORS else c.operator
    out["rightOperand"] = _right(c.right_operand, dsp=True)
    return out


def _dsp_rule(r: Rule) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if r.uid:
        out["@id"] = r.uid
    action = r.action[len(ODRL) :] if r.action.startswith(ODRL) else None
    out["action"] = action if action in _DSP_ACTIONS else _compact(r.action)
    if r.constraints:
        out["constraint"] = [_dsp_constraint(c) for c in r.constraints]
    for key, nested in (("duty", r.duties), ("odrl:remedy", r.remedies), ("odrl:consequence", r.consequences)):
        if nested:
            out[key] = [_dsp_rule(x) for x in nested]
    for key in ("target", "assigner", "assignee"):
        value = getattr(r, key)
        if value is not None:
            out[key] = value
    return out


def render_dsp(policy: Policy, *, with_context: bool = False) -> dict[str, Any]:
    """Render a policy in DSP 2025-1 compacted form (bare DSP terms, ``odrl:`` compact IRIs elsewhere)."""
    out: dict[str, Any] = {}
    if with_context:
        out["@context"] = [DSP_CONTEXT]
    if policy.uid:
        out["@id"] = policy.uid
    out["@type"] = policy.type
    if policy.profiles:
        out["profile"] = list(policy.profiles)
    for key in ("target", "assigner", "assignee"):
        value = getattr(policy, key)
        if value is not None:
            out[key] = value
    for key, rules in (
        ("permission", policy.permissions),
        ("prohibition", policy.prohibitions),
        ("obligation", policy.obligations),
    ):
        if rules:
            out[key] = [_dsp_rule(r) for r in rules]
    if policy.conflict:
        out["odrl:conflict"] = {"@id": "odrl:" + policy.conflict}
    return out


def _edc_constraint(c: AnyConstraint) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if c.uid:
        out["@id"] = c.uid
    if isinstance(c, LogicalConstraint):
        out["odrl:" + c.operator] = [_edc_constraint(x) for x in c.constraints]
        return out
    out["odrl:leftOperand"] = {"@id": _compact(c.left_operand, edc=True)}
    out["odrl:operator"] = {"@id": _compact(c.operator, edc=True)}
    out["odrl:rightOperand"] = _right(c.right_operand, dsp=False)
    return out


def _edc_rule(r: Rule) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if r.uid:
        out["@id"] = r.uid
    out["odrl:action"] = {"@id": _compact(r.action, edc=True)}
    if r.constraints:
        out["odrl:constraint"] = [_edc_constraint(c) for c in r.constraints]
    for key, nested in (("odrl:duty", r.duties), ("odrl:remedy", r.remedies), ("odrl:consequence", r.consequences)):
        if nested:
            out[key] = [_edc_rule(x) for x in nested]
    for key in ("target", "assigner", "assignee"):
        value = getattr(r, key)
        if value is not None:
            out["odrl:" + key] = {"@id": value}
    return out


def render_edc(policy: Policy, *, with_context: bool = True) -> dict[str, Any]:
    """Render a policy in EDC Management API compacted form (``odrl:``-prefixed keys, ``@type: odrl:Set``)."""
    out: dict[str, Any] = {}
    if with_context:
        out["@context"] = dict(EDC_CONTEXT)
    if policy.uid:
        out["@id"] = policy.uid
    out["@type"] = "odrl:" + policy.type
    if policy.profiles:
        out["odrl:profile"] = [{"@id": p} for p in policy.profiles]
    for key in ("target", "assigner", "assignee"):
        value = getattr(policy, key)
        if value is not None:
            out["odrl:" + key] = {"@id": value}
    for key, rules in (
        ("odrl:permission", policy.permissions),
        ("odrl:prohibition", policy.prohibitions),
        ("odrl:obligation", policy.obligations),
    ):
        if rules:
            out[key] = [_edc_rule(r) for r in rules]
    if policy.conflict:
        out["odrl:conflict"] = {"@id": "odrl:" + policy.conflict}
    return out
