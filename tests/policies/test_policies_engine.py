"""Evaluation: deny by default, action hierarchy, scopes, explanations, caching, registry extension."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from policies import (
    EvaluationContext,
    Registry,
    Scope,
    compile_policy,
    default_registry,
    evaluate,
    parse_policy,
    validate,
)
from policies.vocab import EDC, ODRL

NOW = datetime(2025, 6, 1, 12, 0, tzinfo=UTC)


def pol(*constraints: dict[str, Any], action: str = "use", **extra: Any) -> dict[str, Any]:
    rule: dict[str, Any] = {"action": action}
    if constraints:
        rule["constraint"] = list(constraints)
    return {"@type": "Set", "permission": [rule], **extra}


def c(left: str, op: str, right: Any) -> dict[str, Any]:
    return {"leftOperand": left, "operator": op, "rightOperand": right}


def ctx(**kw: Any) -> EvaluationContext:
    kw.setdefault("now", NOW)
    return EvaluationContext(**kw)


def test_empty_policy_denies() -> None:
    d = evaluate(parse_policy({"@type": "Set"}), "use", ctx(), Scope.CATALOG)
    assert not d.permitted and d.explanation.code == "no_permission"


def test_unconstrained_permission_permits_and_decision_is_reused() -> None:
    p = parse_policy(pol())
    d1 = evaluate(p, "use", ctx(), Scope.DATA_REQUEST)
    d2 = evaluate(p, "use", ctx(participant_id="other"), Scope.DATA_REQUEST)
    assert d1.permitted and d1.explanation.rule == "permission[0]"
    assert d1 is d2  # immutable permit decisions are cached per plan
    assert "permitted by permission[0]" in d1.reason


@pytest.mark.parametrize(
    ("granted", "requested", "permitted"),
    [
        ("use", "read", True),
        ("use", "use", True),
        ("use", "odrl:distribute", True),
        ("read", "use", False),
        ("read", "odrl:distribute", False),
        ("odrl:play", "odrl:display", True),
        ("use", "odrl:sell", False),  # sell is included in transfer, not use
        ("odrl:transfer", "odrl:sell", True),
    ],
)
def test_action_hierarchy(granted: str, requested: str, permitted: bool) -> None:
    assert evaluate(parse_policy(pol(action=granted)), requested, ctx(), Scope.NEGOTIATION).permitted is permitted


def test_unknown_requested_action_denies() -> None:
    d = evaluate(parse_policy(pol()), "http://example.com/fly", ctx(), Scope.NEGOTIATION)
    assert not d.permitted and d.explanation.code == "unknown_action"


def test_unknown_rule_action_invalidates_policy() -> None:
    p = parse_policy({"permission": [{"action": "use"}, {"action": "http://example.com/fly"}]})
    d = evaluate(p, "use", ctx(), Scope.NEGOTIATION)
    assert not d.permitted and d.explanation.code == "invalid_policy"
    assert d.explanation.problems[0].path == "permission[1].action"


def test_unknown_left_operand_is_never_ignored() -> None:
    p = parse_policy(pol({"or": [c("purpose", "eq", "x"), c("http://example.com/unknown", "eq", "y")]}))
    d = evaluate(p, "use", ctx(purpose="x"), Scope.NEGOTIATION)
    assert not d.permitted and d.explanation.code == "invalid_policy"
    assert "unknown left operand" in d.reason


def test_unknown_operator_denies() -> None:
    d = evaluate(parse_policy(pol(c("purpose", "term-lteq", "x"))), "use", ctx(purpose="x"), Scope.NEGOTIATION)
    assert not d.permitted and "unknown operator" in d.reason


def test_failed_constraint_is_explained() -> None:
    p = parse_policy(pol(c("purpose", "eq", "repair"), c("spatial", "eq", "EU")))
    d = evaluate(p, "use", ctx(purpose="marketing", spatial="EU"), Scope.NEGOTIATION)
    assert not d.permitted and d.explanation.code == "constraint_not_satisfied"
    (rule,) = d.explanation.rules
    (failure,) = rule.constraints
    assert failure.path == "permission[0].constraint[0]"
    assert failure.left_operand == ODRL + "purpose"
    assert failure.expected == "repair" and failure.actual == "marketing"
    assert failure.outcome == "not_satisfied"
    assert "permission[0].constraint[0] odrl:purpose eq 'repair' not satisfied (actual 'marketing')" in d.reason
    assert d.to_dict()["explanation"]["rules"][0]["constraints"][0]["actual"] == "marketing"


def test_missing_value_denies_with_reason() -> None:
    d = evaluate(parse_policy(pol(c("purpose", "eq", "repair"))), "use", ctx(), Scope.DATA_REQUEST)
    assert not d.permitted
    assert d.explanation.rules[0].constraints[0].outcome == "error"
    assert "no value" in d.reason


@pytest.mark.parametrize("scope", [Scope.CATALOG, Scope.NEGOTIATION])
def test_purpose_not_declared_yet_is_deferred_before_use(scope: Scope) -> None:
    policy = parse_policy(pol(c("purpose", "eq", "repair")))
    d = evaluate(policy, "use", ctx(), scope)
    assert d.permitted
    assert [r.outcome for r in d.explanation.deferred] == ["deferred"]
    assert "none declared yet" in d.explanation.deferred[0].message
    # A purpose that is declared is checked in every scope.
    assert not evaluate(policy, "use", ctx(purpose="marketing"), scope).permitted


def test_type_mismatch_denies_without_crash() -> None:
    d = evaluate(
        parse_policy(pol(c("bpc:membership", "eq", 5))), "use", ctx(claims={"membership": "x"}), Scope.NEGOTIATION
    )
    assert not d.permitted and "mismatch" in d.reason


def test_logical_constraints() -> None:
    or_p = parse_policy(pol({"or": [c("purpose", "eq", "a"), c("purpose", "eq", "b")]}))
    assert evaluate(or_p, "use", ctx(purpose="b"), Scope.NEGOTIATION).permitted
    assert not evaluate(or_p, "use", ctx(purpose="c"), Scope.NEGOTIATION).permitted
    xone = parse_policy(pol({"xone": [c("purpose", "eq", "a"), c("spatial", "eq", "EU")]}))
    assert evaluate(xone, "use", ctx(purpose="a", spatial="US"), Scope.NEGOTIATION).permitted
    both = evaluate(xone, "use", ctx(purpose="a", spatial="EU"), Scope.NEGOTIATION)
    assert not both.permitted and "2 branches satisfied" in both.reason
    assert not evaluate(xone, "use", ctx(purpose="b", spatial="US"), Scope.NEGOTIATION).permitted
    seq = parse_policy(pol({"andSequence": [c("purpose", "eq", "a"), c("spatial", "eq", "EU")]}))
    assert evaluate(seq, "use", ctx(purpose="a", spatial="EU"), Scope.NEGOTIATION).permitted
    d = evaluate(seq, "use", ctx(purpose="z", spatial="EU"), Scope.NEGOTIATION)
    assert not d.permitted and [f.path for f in d.explanation.rules[0].constraints] == [
        "permission[0].constraint[0].andSequence[0]"
    ]


@given(st.lists(st.booleans(), min_size=1, max_size=6), st.sampled_from(["and", "or", "xone", "andSequence"]))
def test_logical_semantics_property(bits: list[bool], op: str) -> None:
    children = [c("purpose", "isAnyOf", ["yes"]) if b else c("purpose", "isAnyOf", ["no"]) for b in bits]
    p = parse_policy(pol({op: children}))
    got = evaluate(p, "use", ctx(purpose="yes"), Scope.NEGOTIATION).permitted
    expected = {"and": all(bits), "andSequence": all(bits), "or": any(bits), "xone": sum(bits) == 1}[op]
    assert got is expected


def test_prohibition_overrides_permission() -> None:
    p = parse_policy(
        {
            "permission": [{"action": "use"}],
            "prohibition": [{"action": "odrl:distribute", "constraint": [c("spatial", "neq", "EU")]}],
        }
    )
    assert evaluate(p, "odrl:distribute", ctx(spatial="EU"), Scope.NEGOTIATION).permitted
    d = evaluate(p, "odrl:distribute", ctx(spatial="US"), Scope.NEGOTIATION)
    assert not d.permitted and d.explanation.code == "prohibited" and d.explanation.rule == "prohibition[0]"
    assert evaluate(p, "read", ctx(spatial="US"), Scope.NEGOTIATION).permitted  # unrelated action
    # a prohibition on a narrower action blocks a request for the broader one
    assert not evaluate(p, "use", ctx(spatial="US"), Scope.NEGOTIATION).permitted
    # a prohibition that cannot be evaluated is enforced (fail closed)
    assert not evaluate(p, "odrl:distribute", ctx(), Scope.NEGOTIATION).permitted


def test_count_and_elapsed_time_are_deferred_outside_usage_scopes() -> None:
    p = parse_policy(pol(c("count", "lt", 3), c("elapsedTime", "lteq", {"@value": "P30D", "@type": "xsd:duration"})))
    d = evaluate(p, "use", ctx(), Scope.CATALOG)
    assert d.permitted and len(d.explanation.deferred) == 2
    assert all(x.outcome == "deferred" for x in d.explanation.deferred)
    assert "deferred" in d.reason
    start = NOW - timedelta(days=10)
    assert evaluate(p, "use", ctx(count=2, agreement_start=start), Scope.DATA_REQUEST).permitted
    assert not evaluate(p, "use", ctx(count=3, agreement_start=start), Scope.DATA_REQUEST).permitted
    late = NOW - timedelta(days=31)
    assert not evaluate(p, "use", ctx(count=0, agreement_start=late), Scope.MONITOR).permitted
    assert not evaluate(p, "use", ctx(), Scope.TRANSFER).permitted  # missing values in usage scope


def test_deferred_prohibition_does_not_block_catalog() -> None:
    p = parse_policy(
        {"permission": [{"action": "use"}], "prohibition": [{"action": "use", "constraint": [c("count", "gt", 10)]}]}
    )
    d = evaluate(p, "use", ctx(), Scope.CATALOG)
    assert d.permitted and d.explanation.deferred[0].path == "prohibition[0].constraint[0]"
    assert not evaluate(p, "use", ctx(count=11), Scope.DATA_REQUEST).permitted


def test_in_force_date_fixed_and_relative() -> None:
    fixed = parse_policy(
        pol(
            c(EDC + "inForceDate", "gteq", {"@value": "2025-01-01T00:00:00Z", "@type": "xsd:dateTime"}),
            c(EDC + "inForceDate", "lteq", "2025-12-31T00:00:00Z"),
        )
    )
    assert evaluate(fixed, "use", ctx(), Scope.TRANSFER).permitted
    assert not evaluate(fixed, "use", ctx(now=datetime(2026, 1, 1, tzinfo=UTC)), Scope.TRANSFER).permitted
    rel = parse_policy(pol(c(EDC + "inForceDate", "lteq", "contractAgreement+100d")))
    start = NOW - timedelta(days=99)
    assert evaluate(rel, "use", ctx(agreement_start=start), Scope.DATA_REQUEST).permitted
    d = evaluate(rel, "use", ctx(agreement_start=NOW - timedelta(days=101)), Scope.DATA_REQUEST)
    assert not d.permitted and d.explanation.rules[0].constraints[0].expected == "contractAgreement+100d"
    assert not evaluate(rel, "use", ctx(), Scope.DATA_REQUEST).permitted  # no agreement start
    assert evaluate(rel, "use", ctx(), Scope.CATALOG).permitted  # deferred before an agreement exists


def test_assignee_and_target_matching() -> None:
    p = parse_policy(
        {"@type": "Agreement", "assignee": "did:web:c", "target": "urn:a", "permission": [{"action": "use"}]}
    )
    assert evaluate(p, "use", ctx(participant_id="did:web:c", target="urn:a"), Scope.TRANSFER).permitted
    assert evaluate(p, "use", ctx(participant_id="did:web:c"), Scope.TRANSFER).permitted
    d = evaluate(p, "use", ctx(participant_id="did:web:x"), Scope.TRANSFER)
    assert not d.permitted and "assignee" in d.reason
    assert not evaluate(p, "use", ctx(participant_id="did:web:c", target="urn:b"), Scope.TRANSFER).permitted
    assert evaluate(
        p, "use", ctx(participant_id="did:web:z", party_collections=frozenset({"did:web:c"})), Scope.TRANSFER
    ).permitted


def test_duties_and_obligations_are_reported() -> None:
    p = parse_policy(
        {
            "permission": [{"action": "use", "duty": [{"action": "odrl:delete"}]}],
            "obligation": [{"action": "odrl:inform"}],
        }
    )
    d = evaluate(p, "use", ctx(), Scope.TRANSFER)
    assert d.permitted and [x.action for x in d.duties] == [ODRL + "delete", ODRL + "inform"]
    assert "duties: odrl:delete, odrl:inform" in d.reason


def test_duty_with_unknown_action_invalidates() -> None:
    p = parse_policy({"permission": [{"action": "use", "duty": [{"action": "http://example.com/dance"}]}]})
    assert not evaluate(p, "use", ctx(), Scope.TRANSFER).permitted


def test_participant_and_claim_operands() -> None:
    p = parse_policy(
        pol(
            c("bpc:participantId", "isAnyOf", ["did:web:a", "did:web:b"]),
            c("bpc:role", "hasPart", "recycler"),
            c("https://w3id.org/tractusx/v0.0.1/ns/BusinessPartnerNumber", "eq", "BPNL0001"),
            c("https://w3id.org/catenax/policy/Membership", "eq", "active"),
            c("https://w3id.org/catenax/policy/UsagePurpose", "isAnyOf", ["cx.circular.dpp:1"]),
        )
    )
    good = ctx(
        participant_id="did:web:a",
        claims={"roles": ["recycler", "repairer"], "bpn": "BPNL0001", "membership": True},
        purpose="cx.circular.dpp:1",
    )
    assert evaluate(p, "use", good, Scope.NEGOTIATION).permitted
    bad = ctx(participant_id="did:web:a", claims={"roles": ["repairer"], "bpn": "BPNL0001", "membership": True})
    assert not evaluate(p, "use", bad, Scope.NEGOTIATION).permitted


def test_registry_extension_and_scoped_resolver() -> None:
    reg = Registry.with_defaults()
    iri = "https://example.com/ns/tier"
    reg.register(iri, lambda cx: cx.extra.get("tier"), value_type="number", scopes={Scope.DATA_REQUEST})
    p = parse_policy(pol(c(iri, "gteq", "2")))
    assert validate(p) != []  # unknown to the default registry
    assert validate(p, registry=reg) == []
    assert evaluate(p, "use", ctx(extra={"tier": 3}), Scope.DATA_REQUEST, registry=reg).permitted
    assert not evaluate(p, "use", ctx(extra={"tier": 1}), Scope.DATA_REQUEST, registry=reg).permitted
    d = evaluate(p, "use", ctx(extra={"tier": 3}), Scope.CATALOG, registry=reg)
    assert not d.permitted and "not available in catalog scope" in d.reason
    with pytest.raises(ValueError, match="already registered"):
        reg.register(iri, lambda cx: None)


def test_failing_resolver_denies() -> None:
    reg = Registry.with_defaults()

    def boom(cx: EvaluationContext) -> object:
        raise RuntimeError("backend down")

    reg.register("https://example.com/ns/boom", boom)
    p = parse_policy(pol(c("https://example.com/ns/boom", "eq", "x")))
    d = evaluate(p, "use", ctx(), Scope.DATA_REQUEST, registry=reg)
    assert not d.permitted and "resolver failed" in d.reason


def test_plans_are_cached_and_invalidated_by_registration() -> None:
    reg = Registry.with_defaults()
    p = parse_policy(pol(c("purpose", "eq", "a")))
    evaluate(p, "use", ctx(purpose="a"), Scope.NEGOTIATION, registry=reg)
    plan = p._cache[reg][1]
    same = parse_policy(pol(c("purpose", "eq", "a")))
    evaluate(same, "use", ctx(purpose="a"), Scope.NEGOTIATION, registry=reg)
    assert same._cache[reg][1] is plan  # shared through the registry's LRU
    reg.register_action("https://example.com/fly")
    evaluate(p, "use", ctx(purpose="a"), Scope.NEGOTIATION, registry=reg)
    assert p._cache[reg][1] is not plan
    assert compile_policy(p, reg).time_dependent is False
    assert compile_policy(parse_policy(pol(c("dateTime", "lt", "2030-01-01T00:00:00Z"))), reg).time_dependent


def test_evaluate_accepts_json() -> None:
    assert evaluate(pol(), "use", ctx(), Scope.CATALOG).permitted


def test_naive_context_time_is_refused() -> None:
    with pytest.raises(ValueError, match="timezone"):
        EvaluationContext(now=datetime(2025, 1, 1))


def test_default_registry_is_shared_and_lists_operands() -> None:
    assert default_registry() is default_registry()
    iris = {o.iri for o in default_registry().operands()}
    assert {ODRL + "dateTime", ODRL + "count", EDC + "inForceDate"} <= iris
