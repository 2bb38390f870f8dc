"""The ODRL 2.2 policy model: frozen, slotted dataclasses with full IRIs everywhere."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal, TypeAlias

RuleKind: TypeAlias = Literal["permission", "prohibition", "obligation", "duty"]
LogicalOp: TypeAlias = Literal["and", "or", "xone", "andSequence"]


@dataclass(frozen=True, slots=True)
class Problem:
    """One thing the engine cannot accept or evaluate, with the JSON path of the offending element."""

    path: str
    message: str

    def __str__(self) -> str:
        return f"{self.path}: {self.message}" if self.path else self.message


class PolicyError(ValueError):
    """A policy that cannot be parsed; ``path`` points at the first offending element."""

    def __init__(self, path: str, message: str, problems: list[Problem] | None = None) -> None:
        self.path = path
        self.message = message
        self.problems: list[Problem] = problems if problems is not None else [Problem(path, message)]
        extra = f" (+{len(self.problems) - 1} more)" if len(self.problems) > 1 else ""
        super().__init__(f"{path}: {message}{extra}" if path else f"{message}{extra}")


@dataclass(frozen=True, slots=True)
class LiteralValue:
    """An RDF literal: a JSON-native value or a lexical form with an optional datatype IRI."""

    value: str | int | float | bool
    datatype: str | None = None
    language: str | None = None


@dataclass(frozen=True, slots=True)
class Ref:
    """An IRI (``{"@id": ...}``) used as a value."""

    iri: str


Value: TypeAlias = LiteralValue | Ref


@dataclass(frozen=True, slots=True)
class Constraint:
    """An atomic constraint ``leftOperand operator rightOperand``; the right operand is a tuple of values."""

    left_operand: str
    operator: str
    right_operand: tuple[Value, ...]
    uid: str | None = None


@dataclass(frozen=True, slots=True)
class LogicalConstraint:
    """``and`` / ``or`` / ``xone`` / ``andSequence`` over nested constraints."""

    operator: LogicalOp
    constraints: tuple[AnyConstraint, ...]
    uid: str | None = None


AnyConstraint: TypeAlias = Constraint | LogicalConstraint


@dataclass(frozen=True, slots=True)
class Rule:
    """A permission, prohibition, obligation or duty.

    ``duties`` holds a permission's duties, ``remedies`` a prohibition's remedies and ``consequences`` a
    duty's or obligation's consequences.
    """

    kind: RuleKind
    action: str
    constraints: tuple[AnyConstraint, ...] = ()
    duties: tuple[Rule, ...] = ()
    remedies: tuple[Rule, ...] = ()
    consequences: tuple[Rule, ...] = ()
    target: str | None = None
    assigner: str | None = None
    assignee: str | None = None
    uid: str | None = None


@dataclass(frozen=True, slots=True)
class Policy:
    """An ODRL policy of type Set, Offer, Agreement or Policy."""

    type: str = "Set"
    uid: str | None = None
    permissions: tuple[Rule, ...] = ()
    prohibitions: tuple[Rule, ...] = ()
    obligations: tuple[Rule, ...] = ()
    target: str | None = None
    assigner: str | None = None
    assignee: str | None = None
    profiles: tuple[str, ...] = ()
    conflict: str | None = None
    # Compiled plans and the canonical key live here so that repeated evaluation of the same object is a
    # dictionary lookup; excluded from equality, hashing and repr.
    _cache: dict[Any, Any] = field(default_factory=dict, compare=False, hash=False, repr=False)

    @property
    def rules(self) -> tuple[Rule, ...]:
        """Return all top-level rules (permissions, prohibitions, obligations)."""
        return self.permissions + self.prohibitions + self.obligations


@dataclass(frozen=True, slots=True)
class Limits:
    """Bounds on parsing so a hostile peer cannot make it explode."""

    max_depth: int = 16
    max_rules: int = 256
    max_constraints: int = 2048
    max_values: int = 1024
    max_string: int = 8192
