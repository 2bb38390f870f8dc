"""Rendering (DSP, EDC), round trips, canonical form, validation, passport templates."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from jsonschema import Draft201909Validator

from policies import (
    AccessLevel,
    AccessLevelMapping,
    Constraint,
    EvaluationContext,
    LiteralValue,
    LogicalConstraint,
    Policy,
    Ref,
    Registry,
    Rule,
    Scope,
    canonical,
    evaluate,
    install_access_level,
    parse_policy,
    render_dsp,
    render_edc,
    same_rules,
    templates,
    validate,
)
from policies.context import CLAIM_SCOPES
from policies.vocab import BPC, EDC, ODRL, XSD
from tests.conftest import data_path

DSP = data_path("standards", "dsp-2025-1", "artifacts", "src", "main", "resources")
NOW = datetime(2025, 6, 1, tzinfo=UTC)

iris = st.builds(lambda s: f"urn:x:{s}", st.text("abcdef0123", min_size=1, max_size=6))
literals = st.one_of(
    st.builds(LiteralValue, st.text(max_size=8)),
    st.builds(LiteralValue, st.integers(-1000, 1000)),
    st.builds(LiteralValue, st.booleans()),
    st.builds(
        LiteralValue,
        st.sampled_from(["2025-01-01T00:00:00Z", "2030-06-01T12:00:00+02:00"]),
        st.just(XSD + "dateTime"),
    ),
    st.builds(LiteralValue, st.sampled_from(["5.50", "1"]), st.just(XSD + "decimal")),
    st.builds(LiteralValue, st.text("ab", min_size=1, max_size=3), st.none(), st.just("en")),
)
values = st.one_of(literals, st.builds(Ref, iris))
operands = st.sampled_from([ODRL + "purpose", ODRL + "dateTime", EDC + "inForceDate", BPC + "role", "urn:x:op"])
operators = st.sampled_from([ODRL + o for o in ("eq", "neq", "lt", "isAnyOf", "hasPart")])
atomic = st.builds(
    Constraint, operands, operators, st.lists(values, min_size=1, max_size=3).map(tuple), st.none() | iris
)
constraints = st.recursive(
    atomic,
    lambda inner: st.builds(
        LogicalConstraint,
        st.sampled_from(["and", "or", "xone", "andSequence"]),
        st.lists(inner, min_size=1, max_size=3).map(tuple),
        st.none() | iris,
    ),
    max_leaves=6,
)
actions = st.sampled_from([ODRL + "use", ODRL + "read", ODRL + "delete", "urn:x:act"])


def rules(kind: str) -> st.SearchStrategy[Rule]:
    duty = st.builds(Rule, st.just("duty"), actions, st.lists(constraints, max_size=2).map(tuple))
    return st.builds(
        Rule,
        st.just(kind),
        actions,
        st.lists(constraints, max_size=3).map(tuple),
        duties=st.lists(duty, max_size=2).map(tuple) if kind == "permission" else st.just(()),
        remedies=st.lists(duty, max_size=1).map(tuple) if kind == "prohibition" else st.just(()),
        target=st.none() | iris,
        assignee=st.none() | iris,
        uid=st.none() | iris,
    )


policies_st = st.builds(
    Policy,
    st.sampled_from(["Set", "Offer", "Agreement", "Policy"]),
    st.none() | iris,
    st.lists(rules("permission"), max_size=3).map(tuple),
    st.lists(rules("prohibition"), max_size=2).map(tuple),
    st.lists(rules("obligation"), max_size=1).map(tuple),
    target=st.none() | iris,
    assigner=st.none() | iris,
    assignee=st.none() | iris,
    profiles=st.lists(iris, max_size=2).map(tuple),
)


@settings(max_examples=150, deadline=None)
@given(policies_st)
def test_round_trip_dsp_and_edc(policy: Policy) -> None:
    assert parse_policy(render_dsp(policy)) == policy
    assert parse_policy(render_edc(policy)) == policy
    assert parse_policy(json.loads(json.dumps(render_dsp(policy, with_context=True)))) == policy
    assert canonical(parse_policy(render_edc(policy))) == canonical(policy)


def test_dsp_rendering_shape() -> None:
    p = parse_policy(
        {
            "@type": "Offer",
            "@id": "urn:o",
            "permission": [
                {
                    "action": "odrl:read",
                    "constraint": [
                        {"leftOperand": "spatial", "operator": "eq", "rightOperand": {"@id": "http://x/EU"}},
                        {
                            "leftOperand": EDC + "inForceDate",
                            "operator": "lteq",
                            "rightOperand": "contractAgreement+1d",
                        },
                    ],
                }
            ],
        }
    )
    out = render_dsp(p)
    rule = out["permission"][0]
    assert rule["action"] == "odrl:read"  # only `use` is a DSP profile term
    assert rule["constraint"][0] == {
        "leftOperand": "odrl:spatial",
        "operator": "eq",
        "rightOperand": {"@id": "http://x/EU"},
    }
    assert rule["constraint"][1]["leftOperand"] == EDC + "inForceDate"
    edc = render_edc(p)
    assert edc["@type"] == "odrl:Offer"
    assert edc["odrl:permission"][0]["odrl:constraint"][1]["odrl:leftOperand"] == {"@id": "edc:inForceDate"}


def _dsp_schema_validator(definition: str) -> Any:
    schema = json.loads((DSP / "negotiation" / "contract-schema.json").read_text())
    schema = {**schema, "allOf": [{"$ref": f"#/definitions/{definition}"}]}
    return Draft201909Validator(schema)


@pytest.mark.parametrize("level", list(AccessLevel))
def test_templates_render_to_valid_dsp_offers_and_agreements(level: AccessLevel) -> None:
    offer = templates.policy_for_level(level, uid="urn:offer:1")
    errors = list(_dsp_schema_validator("Offer").iter_errors(render_dsp(offer)))
    assert errors == []
    agreement = Policy(
        "Agreement", "urn:agr:1", offer.permissions, target="urn:ds:1", assigner="did:web:p", assignee="did:web:c"
    )
    assert list(_dsp_schema_validator("Agreement").iter_errors(render_dsp(agreement))) == []
    assert same_rules(offer, agreement)
    assert canonical(offer) != canonical(agreement)


def test_dsp_example_policies_parse() -> None:
    agreement = json.loads((DSP / "negotiation/example/contract-agreement-message.json").read_text())["agreement"]
    p = parse_policy(agreement)
    assert p.type == "Agreement" and p.permissions[0].constraints[0] == Constraint(
        ODRL + "dateTime", ODRL + "lteq", (LiteralValue("2023-12-31T06:00Z"),)
    )
    assert validate(p) == []
    d = evaluate(p, "use", EvaluationContext(participant_id="http://example.com/Consumer", now=NOW), Scope.TRANSFER)
    assert not d.permitted and "odrl:dateTime" in d.reason  # expired at the end of 2023


def test_same_rules_ignores_order_and_ids_but_not_content() -> None:
    a = {
        "permission": [
            {
                "@id": "urn:r1",
                "action": "use",
                "constraint": [
                    {"leftOperand": "purpose", "operator": "isAnyOf", "rightOperand": ["b", "a"]},
                    {"leftOperand": "count", "operator": "lt", "rightOperand": 5},
                ],
            }
        ]
    }
    b = {
        "@type": "Agreement",
        "assignee": "did:web:c",
        "permission": [
            {
                "action": "odrl:use",
                "constraint": [
                    {"leftOperand": "count", "operator": "lt", "rightOperand": {"@value": "5", "@type": "xsd:integer"}},
                    {"leftOperand": "purpose", "operator": "isAnyOf", "rightOperand": ["a", "b"]},
                ],
            }
        ],
    }
    c = {
        "permission": [
            {
                "action": "use",
                "constraint": [
                    {"leftOperand": "count", "operator": "lt", "rightOperand": 6},
                    {"leftOperand": "purpose", "operator": "isAnyOf", "rightOperand": ["a", "b"]},
                ],
            }
        ]
    }
    assert same_rules(a, b)
    assert not same_rules(a, c)
    seq1 = {
        "permission": [
            {
                "action": "use",
                "constraint": [
                    {
                        "andSequence": [
                            {"leftOperand": "purpose", "operator": "eq", "rightOperand": "a"},
                            {"leftOperand": "count", "operator": "lt", "rightOperand": 1},
                        ]
                    }
                ],
            }
        ]
    }
    seq2 = {
        "permission": [
            {
                "action": "use",
                "constraint": [
                    {
                        "andSequence": [
                            {"leftOperand": "count", "operator": "lt", "rightOperand": 1},
                            {"leftOperand": "purpose", "operator": "eq", "rightOperand": "a"},
                        ]
                    }
                ],
            }
        ]
    }
    assert not same_rules(seq1, seq2)  # andSequence is ordered


def test_validate_reports_every_problem_with_paths() -> None:
    problems = validate(
        {
            "permission": [
                {
                    "action": "use",
                    "constraint": [
                        {"leftOperand": "http://example.com/x", "operator": "eq", "rightOperand": "a"},
                        {"leftOperand": "dateTime", "operator": "lt", "rightOperand": "tomorrow"},
                        {"leftOperand": "count", "operator": "lt", "rightOperand": "many"},
                        {"leftOperand": "purpose", "operator": "lt", "rightOperand": "a"},
                        {"leftOperand": "purpose", "operator": "eq", "rightOperand": ["a", "b"]},
                        {"leftOperand": "count", "operator": "eq", "rightOperandReference": "urn:r"},
                        {"leftOperand": "bpc:role", "operator": "eq", "rightOperand": "recycler"},
                        {"leftOperand": "purpose", "operator": "startsWith", "rightOperand": "a"},
                    ],
                },
                {"action": "http://example.com/fly"},
            ]
        }
    )
    got = {(p.path, p.message.split(" ")[0]) for p in problems}
    base = "permission[0].constraint"
    assert {
        (f"{base}[5].rightOperandReference", "rightOperandReference"),
        (f"{base}[0].leftOperand", "unknown"),
        (f"{base}[1].rightOperand", "'tomorrow'"),
        (f"{base}[2].rightOperand", "'many'"),
        (f"{base}[3].rightOperand", "operator"),
        (f"{base}[4].rightOperand", "operator"),
        (f"{base}[6].operator", "bpc:role"),
        (f"{base}[7].operator", "unknown"),
        ("permission[1].action", "unknown"),
    } <= got
    assert validate(templates.legitimate_interest_policy(purposes=["repair"])) == []


def _levels(claims: dict[str, Any], mapping: AccessLevelMapping | None = None) -> set[str]:
    return set((mapping or AccessLevelMapping()).levels(claims))


def test_access_levels_from_roles() -> None:
    assert _levels({}) == {"public"}
    assert _levels({"roles": ["recycler"]}) == {"public", "legitimate_interest"}
    assert _levels({"roles": "notified_body"}) == {"public", "authority"}
    assert _levels({"roles": [BPC + "role/european_commission"]}) == {"public", "authority"}
    assert _levels({"roles": ["marketing"]}) == {"public"}
    assert _levels({"access_level": "legitimate_interest"}) == {"public", "legitimate_interest"}
    assert _levels({"access_level": "superuser"}) == {"public"}
    assert _levels({"access_level": "authority"}, AccessLevelMapping(honour_level_claim=False)) == {"public"}
    custom = AccessLevelMapping(roles={"insurer": frozenset({AccessLevel.LEGITIMATE_INTEREST})})
    assert _levels({"roles": ["insurer"]}, custom) == {"public", "legitimate_interest"}
    assert _levels({"roles": ["recycler"]}, custom) == {"public"}


@pytest.mark.parametrize(
    ("template", "claims", "purpose", "permitted"),
    [
        (templates.public_policy(), {}, None, True),
        (templates.legitimate_interest_policy(), {"roles": ["repairer"]}, None, True),
        (templates.legitimate_interest_policy(), {"roles": ["notified_body"]}, None, False),
        (templates.legitimate_interest_policy(), {}, None, False),
        (templates.legitimate_interest_policy(purposes=["repair"]), {"roles": ["repairer"]}, "repair", True),
        (templates.legitimate_interest_policy(purposes=["repair"]), {"roles": ["repairer"]}, "resale", False),
        (templates.authority_policy(), {"roles": ["market_surveillance_authority"]}, None, True),
        (templates.authority_policy(), {"roles": ["recycler"]}, None, False),
        (templates.legitimate_interest_or_authority_policy(), {"roles": ["european_commission"]}, None, True),
        (templates.legitimate_interest_or_authority_policy(), {"roles": ["second_life_operator"]}, None, True),
        (templates.legitimate_interest_or_authority_policy(), {"roles": ["consumer"]}, None, False),
    ],
)
def test_templates_decide(template: Policy, claims: dict[str, Any], purpose: str | None, permitted: bool) -> None:
    context = EvaluationContext(participant_id="did:web:r", claims=claims, purpose=purpose, now=NOW)
    for scope in CLAIM_SCOPES:
        assert evaluate(template, "read", context, scope).permitted is permitted


def test_claims_are_not_reread_where_no_caller_proves_them() -> None:
    # A data-plane request carries a transfer's token, the monitor has no caller: the level was checked
    # at negotiation and transfer start, and is deferred there rather than read as "no claims".
    without_claims = EvaluationContext(participant_id="did:web:r", claims={}, now=NOW)
    for scope in (Scope.DATA_REQUEST, Scope.MONITOR):
        decision = evaluate(templates.legitimate_interest_policy(), "use", without_claims, scope)
        assert decision.permitted
        assert [c.outcome for c in decision.explanation.deferred] == ["deferred"]
    assert not evaluate(templates.legitimate_interest_policy(), "use", without_claims, Scope.TRANSFER).permitted


def test_role_mapping_is_configurable_per_registry() -> None:
    reg = Registry.with_defaults()
    install_access_level(reg, AccessLevelMapping(roles={"insurer": frozenset({AccessLevel.LEGITIMATE_INTEREST})}))
    context = EvaluationContext(claims={"roles": ["insurer"]}, now=NOW)
    policy = templates.legitimate_interest_policy()
    assert evaluate(policy, "use", context, Scope.NEGOTIATION, registry=reg).permitted
    assert not evaluate(policy, "use", context, Scope.NEGOTIATION).permitted


def test_template_json_forms() -> None:
    dsp = templates.template_json("authority")
    assert dsp["permission"][0]["constraint"][0]["leftOperand"] == BPC + "accessLevel"
    edc = templates.template_json(AccessLevel.AUTHORITY, form="edc")
    assert edc["@type"] == "odrl:Offer" and parse_policy(edc) == parse_policy(dsp)
    assert set(templates.ANNEX_XIII_TEMPLATES) == {
        "public",
        "legitimate_interest_model",
        "authority",
        "legitimate_interest_battery",
    }
