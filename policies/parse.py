"""Parse ODRL 2.2 policies from expanded JSON-LD, DSP/ODRL compacted JSON-LD or EDC ``odrl:``-prefixed JSON.

The parser does not run a JSON-LD processor: it reads expanded JSON-LD exactly and understands the compacted
shapes produced with the ODRL context, the DSP 2025-1 contexts and the EDC management context. Documents with
any other remote ``@context`` are refused; expand them first (the connector does that with pyld and a local
document loader). Unknown ODRL features (refinements, ``rightOperandReference``, units, inheritance, ...) are
refused rather than ignored, because ignoring a constraint would silently widen access.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any, Final, cast

from .model import (
    AnyConstraint,
    Constraint,
    Limits,
    LiteralValue,
    LogicalConstraint,
    LogicalOp,
    Policy,
    PolicyError,
    Problem,
    Ref,
    Rule,
    RuleKind,
    Value,
)
from .vocab import (
    CONTEXT_TERMS,
    DEFAULT_PREFIXES,
    KNOWN_CONTEXTS,
    LOGICAL_OPERATORS,
    ODRL,
    ODRL_PROPERTY_TERMS,
    ODRL_VALUE_TERMS,
    POLICY_TYPES,
    RDF,
)

DEFAULT_LIMITS: Final = Limits()

_POLICY_PROPS: Final = frozenset(
    ODRL + p for p in ("permission", "prohibition", "obligation", "uid", "target", "assigner", "assignee", "profile")
) | {ODRL + "conflict"}
_RULE_PROPS: Final = frozenset(
    ODRL + p
    for p in (
        "action",
        "constraint",
        "duty",
        "remedy",
        "consequence",
        "target",
        "assigner",
        "assignee",
        "uid",
    )
)
_ATOMIC_PROPS: Final = frozenset(ODRL + p for p in ("leftOperand", "operator", "rightOperand", "uid"))
_NESTED_KIND: Final[dict[str, tuple[RuleKind, ...]]] = {
    "duty": ("permission",),
    "remedy": ("prohibition",),
    "consequence": ("duty", "obligation"),
}


# Placeholders keep the positions of unparsable elements in a partial parse, so that problems found later
# (by the compiler, in ``validate``) carry the same paths as the input. A full parse never returns them.
_BAD_RULE: Final = Rule("permission", "")
_BAD_CONSTRAINT: Final = Constraint("", "", ())


class _Parser:
    def __init__(self, limits: Limits) -> None:
        self.limits = limits
        self.problems: list[Problem] = []
        self.prefixes: dict[str, str] = dict(DEFAULT_PREFIXES)
        self.terms: dict[str, str] = {}
        self.vocab: str | None = None
        self.rules = 0
        self.constraints = 0
        self.values = 0

    def error(self, path: str, message: str) -> None:
        self.problems.append(Problem(path, message))

    # -- @context -------------------------------------------------------------------------------------------

    def load_context(self, ctx: Any, path: str) -> None:
        if isinstance(ctx, list):
            for i, item in enumerate(ctx):
                self.load_context(item, f"{path}[{i}]")
            return
        if ctx is None:
            return
        if isinstance(ctx, str):
            if ctx not in KNOWN_CONTEXTS:
                self.error(path, f"unknown @context {ctx!r}: expand the document with a local loader first")
                return
            vocab = KNOWN_CONTEXTS[ctx]
            if vocab is not None:
                self.vocab = vocab
            self.terms.update(CONTEXT_TERMS.get(ctx, {}))
            return
        if not isinstance(ctx, Mapping):
            self.error(path, "@context must be a string, an object or a list")
            return
        for key, value in ctx.items():
            if key == "@vocab":
                if isinstance(value, str):
                    self.vocab = self.expand(value)
                continue
            if key.startswith("@"):
                continue
            target = value.get("@id") if isinstance(value, Mapping) else value
            if not isinstance(target, str):
                continue
            if target.endswith(("/", "#", ":")) and ":" not in key:
                self.prefixes[key] = self.expand(target)
            else:
                self.terms[key] = self.expand(target)

    # -- IRIs -----------------------------------------------------------------------------------------------

    def expand(self, value: str) -> str:
        prefix, sep, rest = value.partition(":")
        if sep and not rest.startswith("//") and prefix in self.prefixes:
            return self.prefixes[prefix] + rest
        return value

    def key_iri(self, key: str) -> str:
        if key in self.terms:
            return self.terms[key]
        if key.startswith("@"):
            return key
        if ":" in key:
            return self.expand(key)
        if key in ODRL_PROPERTY_TERMS:
            return ODRL + key
        if self.vocab:
            return self.vocab + key
        return key

    def vocab_iri(self, value: str) -> str:
        if value in self.terms:
            return self.terms[value]
        if value in ODRL_VALUE_TERMS:
            return ODRL + value
        if ":" in value:
            return self.expand(value)
        if self.vocab:
            return self.vocab + value
        return value

    def iri_of(self, value: Any, path: str, *, vocab: bool) -> str | None:
        if isinstance(value, Mapping):
            if RDF + "value" in self.props(value, path):
                return self.action_object(value, path)
            if "@id" in value:
                value = value["@id"]
            else:
                self.error(path, "expected an IRI or an object with @id")
                return None
        if not isinstance(value, str) or not value:
            self.error(path, "expected a non-empty IRI string")
            return None
        if len(value) > self.limits.max_string:
            self.error(path, f"IRI longer than {self.limits.max_string} characters")
            return None
        return self.vocab_iri(value) if vocab else self.expand(value)

    def action_object(self, node: Mapping[str, Any], path: str) -> str | None:
        props = self.props(node, path)
        if ODRL + "refinement" in props:
            self.error(f"{path}.refinement", "action refinements are not supported (refused, not ignored)")
            return None
        values = props.get(RDF + "value", [])
        if len(values) != 1:
            self.error(path, "an action object needs exactly one rdf:value")
            return None
        return self.iri_of(values[0], f"{path}.value", vocab=True)

    # -- nodes ----------------------------------------------------------------------------------------------

    def props(self, node: Mapping[str, Any], path: str) -> dict[str, list[Any]]:
        if "@context" in node:
            self.load_context(node["@context"], f"{path}.@context" if path else "@context")
        out: dict[str, list[Any]] = {}
        for key, value in node.items():
            if key == "@context":
                continue
            iri = self.key_iri(key)
            if iri == ODRL + "uid":
                iri = "@id"
            items = value if isinstance(value, list) else [value]
            out.setdefault(iri, []).extend(items)
        return out

    def one(self, props: dict[str, list[Any]], iri: str, path: str) -> Any:
        values = props.get(iri)
        if not values:
            return None
        if len(values) > 1:
            self.error(path, "expected a single value")
        return values[0]

    def ref(self, props: dict[str, list[Any]], prop: str, path: str) -> str | None:
        value = self.one(props, ODRL + prop, path)
        if value is None:
            return None
        if isinstance(value, Mapping):
            inner = self.props(value, path)
            if ODRL + "refinement" in inner:
                self.error(f"{path}.refinement", "party/asset refinements are not supported")
                return None
            if "@id" not in value and "@id" not in inner:
                self.error(path, "expected an IRI or an object with @id")
                return None
            value = inner["@id"][0]
        return self.iri_of(value, path, vocab=False)

    def uid(self, props: dict[str, list[Any]], path: str) -> str | None:
        where = f"{path}.@id" if path else "@id"
        # `@id` and `odrl:uid` may both be present (RDF sources state both); they must agree.
        ids = {self.iri_of(v, where, vocab=False) for v in props.get("@id", [])}
        if len(ids) > 1:
            self.error(where, f"conflicting identifiers {sorted(str(i) for i in ids)}")
            return None
        return ids.pop() if ids else None

    def unsupported(self, props: dict[str, list[Any]], allowed: frozenset[str], path: str) -> None:
        for iri in props:
            if iri.startswith(ODRL) and iri not in allowed:
                name = iri[len(ODRL) :]
                where = f"{path}.{name}" if path else name
                self.error(where, f"ODRL property {name!r} is not supported here (refused, not ignored)")

    def policy(self, data: Mapping[str, Any]) -> Policy:
        props = self.props(data, "")
        ptype = "Set"
        types = props.get("@type", [])
        if types:
            names = []
            for t in types:
                iri = self.iri_of(t, "@type", vocab=True)
                if iri and iri.startswith(ODRL) and iri[len(ODRL) :] in POLICY_TYPES:
                    names.append(iri[len(ODRL) :])
            if len(names) != 1:
                self.error("@type", f"policy type must be one of {', '.join(POLICY_TYPES)}, got {types!r}")
            else:
                ptype = names[0]
        self.unsupported(props, _POLICY_PROPS, "")
        conflict = None
        raw_conflict = self.one(props, ODRL + "conflict", "conflict")
        if raw_conflict is not None:
            conflict_iri = self.iri_of(raw_conflict, "conflict", vocab=True)
            if conflict_iri not in (ODRL + "prohibit", ODRL + "invalid"):
                self.error("conflict", "only the 'prohibit' and 'invalid' conflict strategies are supported")
            else:
                conflict = conflict_iri[len(ODRL) :]
        profiles = tuple(
            p
            for i, v in enumerate(props.get(ODRL + "profile", []))
            if (p := self.iri_of(v, f"profile[{i}]", vocab=False)) is not None
        )
        rules: dict[str, tuple[Rule, ...]] = {}
        kinds: tuple[RuleKind, ...] = ("permission", "prohibition", "obligation")
        for kind in kinds:
            items = props.get(ODRL + kind, [])
            rules[kind] = tuple(self.rule(node, f"{kind}[{i}]", kind, 0) or _BAD_RULE for i, node in enumerate(items))
        return Policy(
            type=ptype,
            uid=self.uid(props, ""),
            permissions=rules["permission"],
            prohibitions=rules["prohibition"],
            obligations=rules["obligation"],
            target=self.ref(props, "target", "target"),
            assigner=self.ref(props, "assigner", "assigner"),
            assignee=self.ref(props, "assignee", "assignee"),
            profiles=profiles,
            conflict=conflict,
        )

    def rule(self, node: Any, path: str, kind: RuleKind, depth: int) -> Rule | None:
        self.rules += 1
        if self.rules > self.limits.max_rules:
            if self.rules == self.limits.max_rules + 1:
                self.error(path, f"more than {self.limits.max_rules} rules")
            return None
        if depth > self.limits.max_depth:
            self.error(path, f"nesting deeper than {self.limits.max_depth}")
            return None
        if not isinstance(node, Mapping):
            self.error(path, "a rule must be an embedded object (references by @id are not supported)")
            return None
        props = self.props(node, path)
        self.unsupported(props, _RULE_PROPS, path)
        actions = props.get(ODRL + "action", [])
        action: str | None = None
        if not actions:
            self.error(f"{path}.action", "missing action (ODRL 2.2 requires exactly one action per rule)")
        elif len(actions) > 1:
            self.error(f"{path}.action", "more than one action in a rule")
        else:
            action = self.iri_of(actions[0], f"{path}.action", vocab=True)
        constraints = tuple(
            self.constraint(item, f"{path}.constraint[{i}]", depth + 1) or _BAD_CONSTRAINT
            for i, item in enumerate(props.get(ODRL + "constraint", []))
        )
        nested: dict[str, tuple[Rule, ...]] = {}
        for prop, owners in _NESTED_KIND.items():
            items = props.get(ODRL + prop, [])
            if items and kind not in owners:
                self.error(f"{path}.{prop}", f"{prop!r} is not allowed on a {kind}")
                nested[prop] = ()
                continue
            sub_kind: RuleKind = "duty"
            nested[prop] = tuple(
                self.rule(item, f"{path}.{prop}[{i}]", sub_kind, depth + 1) or _BAD_RULE for i, item in enumerate(items)
            )
        if action is None:
            return None
        return Rule(
            kind=kind,
            action=action,
            constraints=constraints,
            duties=nested["duty"],
            remedies=nested["remedy"],
            consequences=nested["consequence"],
            target=self.ref(props, "target", f"{path}.target"),
            assigner=self.ref(props, "assigner", f"{path}.assigner"),
            assignee=self.ref(props, "assignee", f"{path}.assignee"),
            uid=self.uid(props, path),
        )

    def constraint(self, node: Any, path: str, depth: int) -> AnyConstraint | None:
        self.constraints += 1
        if self.constraints > self.limits.max_constraints:
            if self.constraints == self.limits.max_constraints + 1:
                self.error(path, f"more than {self.limits.max_constraints} constraints")
            return None
        if depth > self.limits.max_depth:
            self.error(path, f"nesting deeper than {self.limits.max_depth}")
            return None
        if not isinstance(node, Mapping):
            self.error(path, "a constraint must be an embedded object (references by @id are not supported)")
            return None
        props = self.props(node, path)
        ops = [name for name in LOGICAL_OPERATORS if ODRL + name in props]
        if ops:
            if len(ops) > 1:
                self.error(path, f"a logical constraint has exactly one operator, got {ops}")
                return None
            lop = ops[0]
            self.unsupported(props, frozenset({ODRL + lop, ODRL + "uid"}), path)
            items = _flatten(props[ODRL + lop])
            if not items:
                self.error(f"{path}.{lop}", "empty logical constraint")
                return None
            children = tuple(
                self.constraint(item, f"{path}.{lop}[{i}]", depth + 1) or _BAD_CONSTRAINT
                for i, item in enumerate(items)
            )
            return LogicalConstraint(cast(LogicalOp, lop), children, self.uid(props, path))
        if ODRL + "rightOperandReference" in props:
            self.error(
                f"{path}.rightOperandReference",
                "rightOperandReference is not supported: the engine never dereferences IRIs; "
                "put the value in rightOperand",
            )
            return None
        self.unsupported(props, _ATOMIC_PROPS, path)
        left_raw = self.one(props, ODRL + "leftOperand", f"{path}.leftOperand")
        op_raw = self.one(props, ODRL + "operator", f"{path}.operator")
        right_raw = props.get(ODRL + "rightOperand")
        left: str | None = None
        op: str | None = None
        if left_raw is None:
            self.error(f"{path}.leftOperand", "missing leftOperand")
        else:
            left = self.iri_of(left_raw, f"{path}.leftOperand", vocab=True)
        if op_raw is None:
            self.error(f"{path}.operator", "missing operator")
        else:
            op = self.iri_of(op_raw, f"{path}.operator", vocab=True)
        if not right_raw:
            self.error(f"{path}.rightOperand", "missing rightOperand")
            return None
        right = self.right_values(right_raw, f"{path}.rightOperand", depth)
        if left is None or op is None or right is None:
            return None
        return Constraint(left, op, right, self.uid(props, path))

    def right_values(self, raw: list[Any], path: str, depth: int) -> tuple[Value, ...] | None:
        out: list[Value] = []
        ok = True
        for i, item in enumerate(_flatten(raw)):
            where = f"{path}[{i}]" if len(raw) > 1 else path
            self.values += 1
            if self.values > self.limits.max_values:
                self.error(where, f"more than {self.limits.max_values} right-operand values")
                return None
            if isinstance(item, Mapping):
                if "@value" in item:
                    value = item["@value"]
                    dtype = item.get("@type")
                    if not isinstance(value, str | int | float | bool) or value is None:
                        self.error(where, "@value must be a string, number or boolean")
                        ok = False
                        continue
                    if dtype is not None and not isinstance(dtype, str):
                        self.error(f"{where}.@type", "@type of a literal must be a string")
                        ok = False
                        continue
                    if isinstance(value, str) and len(value) > self.limits.max_string:
                        self.error(where, f"string longer than {self.limits.max_string} characters")
                        ok = False
                        continue
                    lang = item.get("@language")
                    out.append(
                        LiteralValue(
                            value,
                            self.expand(dtype) if dtype else None,
                            lang if isinstance(lang, str) else None,
                        )
                    )
                elif "@id" in item:
                    iri = self.iri_of(item, where, vocab=False)
                    if iri is None:
                        ok = False
                    else:
                        out.append(Ref(iri))
                else:
                    self.error(where, "a right-operand object needs @value or @id")
                    ok = False
            elif isinstance(item, bool | int | float | str):
                if isinstance(item, str) and len(item) > self.limits.max_string:
                    self.error(where, f"string longer than {self.limits.max_string} characters")
                    ok = False
                    continue
                out.append(LiteralValue(item))
            else:
                self.error(where, f"unsupported right-operand value {item!r}")
                ok = False
        if not out and ok:
            self.error(path, "empty rightOperand")
            return None
        return tuple(out) if ok else None


def _flatten(items: list[Any], depth: int = 0) -> list[Any]:
    """Unwrap ``@list`` / ``@set`` objects and nested arrays (compacted shapes) into one flat list."""
    out: list[Any] = []
    for item in items:
        if depth < 4 and isinstance(item, Mapping) and ("@list" in item or "@set" in item):
            inner = item.get("@list", item.get("@set"))
            out.extend(_flatten(inner if isinstance(inner, list) else [inner], depth + 1))
        elif depth < 4 and isinstance(item, list):
            out.extend(_flatten(item, depth + 1))
        else:
            out.append(item)
    return out


def parse_policy(data: Any, *, limits: Limits = DEFAULT_LIMITS) -> Policy:
    """Parse an ODRL policy (expanded, DSP/ODRL-compacted or EDC-compacted JSON-LD) into a ``Policy``."""
    if isinstance(data, Policy):
        return data
    policy, problems = parse_partial(data, limits=limits)
    if problems or policy is None:
        first = problems[0]
        raise PolicyError(first.path, first.message, problems)
    return policy


def parse_partial(data: Any, *, limits: Limits = DEFAULT_LIMITS) -> tuple[Policy | None, list[Problem]]:
    """Parse as much as possible: the policy without its unparsable elements, and all problems found."""
    if isinstance(data, Policy):
        return data, []
    try:
        return _parse_partial(data, limits)
    except PolicyError as exc:
        return None, list(exc.problems)


def _parse_partial(data: Any, limits: Limits) -> tuple[Policy | None, list[Problem]]:
    if isinstance(data, str | bytes):
        try:
            data = json.loads(data)
        except ValueError as exc:
            raise PolicyError("", f"not JSON: {exc}") from None
    if isinstance(data, list):
        if len(data) != 1:
            raise PolicyError("", f"expected one policy object, got a list of {len(data)}")
        data = data[0]
    if not isinstance(data, Mapping):
        raise PolicyError("", "a policy must be a JSON object")
    parser = _Parser(limits)
    policy = parser.policy(data)
    return policy, parser.problems
