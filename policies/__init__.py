"""A pure-Python ODRL 2.2 policy engine: parse, validate, canonicalize, render and evaluate policies.

No I/O, no network; deny by default; every decision explained. See docs/policies.md.
"""

from . import passport
from . import passport as templates
from .canonical import canonical, same_rules
from .context import EvaluationContext, Scope
from .engine import (
    ConstraintResult,
    Decision,
    Explanation,
    Plan,
    RuleResult,
    compile_policy,
    evaluate,
    validate,
)
from .model import (
    Constraint,
    Limits,
    LiteralValue,
    LogicalConstraint,
    Policy,
    PolicyError,
    Problem,
    Ref,
    Rule,
)
from .parse import parse_policy
from .passport import AccessLevel, AccessLevelMapping, install_access_level
from .registry import Operand, Registry, default_registry
from .render import render_dsp, render_edc
from .vocab import BPC

__all__ = [
    "BPC",
    "AccessLevel",
    "AccessLevelMapping",
    "Constraint",
    "ConstraintResult",
    "Decision",
    "EvaluationContext",
    "Explanation",
    "Limits",
    "LiteralValue",
    "LogicalConstraint",
    "Operand",
    "Plan",
    "Policy",
    "PolicyError",
    "Problem",
    "Ref",
    "Registry",
    "Rule",
    "RuleResult",
    "Scope",
    "canonical",
    "compile_policy",
    "default_registry",
    "evaluate",
    "install_access_level",
    "parse_policy",
    "passport",
    "render_dsp",
    "render_edc",
    "same_rules",
    "templates",
    "validate",
]
