"""The Catena-X profile of 2025-9 evaluated as Tractus-X EDC evaluates it, operand by operand and scope by scope."""

from __future__ import annotations

from typing import Any

import pytest

from policies import EvaluationContext, Scope, evaluate, parse_policy, validate

CX = "https://w3id.org/catenax/2025/9/policy/"
LEGACY = "https://w3id.org/catenax/policy/"
CONTEXT = [
    "https://w3id.org/catenax/2025/9/policy/odrl.jsonld",
    "https://w3id.org/catenax/2025/9/policy/context.jsonld",
]

MEMBERSHIP = {"leftOperand": "Membership", "operator": "eq", "rightOperand": "active"}
FRAMEWORK = {"leftOperand": "FrameworkAgreement", "operator": "eq", "rightOperand": "DataExchangeGovernance:1.0"}
DPP = {"leftOperand": "UsagePurpose", "operator": "isAnyOf", "rightOperand": ["cx.circular.dpp:1"]}

# What a verified presentation of the three Tractus-X credentials gives (connector.identity.credentials).
MEMBER = {"credential_types": frozenset({"MembershipCredential"})}
GOVERNED = {
    "credential_types": frozenset({"MembershipCredential", "DataExchangeGovernanceCredential", "BpnCredential"}),
    "contract_versions": frozenset({"DataExchangeGovernanceCredential:1.0"}),
    "bpn_credential": "BPNL00000003AYRE",
}


def policy(action: str, *constraints: Any) -> dict[str, Any]:
    """A Catena-X policy compacted with the 2025-9 contexts (the Catena-X ODRL profile samples' form)."""
    return {
        "@context": CONTEXT,
        "@type": "Set",
        "permission": [{"action": action, "constraint": [{"and": list(constraints)}]}],
    }


def ctx(claims: dict[str, Any] | None = None, **kw: Any) -> EvaluationContext:
    return EvaluationContext(participant_id="did:web:consumer.example", claims=claims or {}, **kw)


def test_the_compacted_forms_expand_to_the_2025_9_namespace() -> None:
    p = parse_policy(policy("access", MEMBERSHIP, FRAMEWORK))
    rule = p.permissions[0]
    assert rule.action == CX + "access"
    assert [c.left_operand for c in rule.constraints[0].constraints] == [CX + "Membership", CX + "FrameworkAgreement"]  # type: ignore[union-attr]
    assert validate(p) == []
    assert validate(policy("use", FRAMEWORK, DPP)) == []


def test_membership_is_any_membership_credential() -> None:
    p = policy("access", MEMBERSHIP)
    for scope in (Scope.CATALOG, Scope.NEGOTIATION, Scope.TRANSFER):
        assert evaluate(p, "use", ctx(MEMBER), scope).permitted
        denied = evaluate(p, "use", ctx({"membership": True}), scope)
        # The node's own membership claim is not what Tractus-X reads: it is the credential type.
        assert not denied.permitted and "cx-policy:Membership eq 'active' not satisfied" in denied.reason


def test_the_framework_agreement_needs_the_governance_credential_of_version_1_0() -> None:
    p = policy("access", FRAMEWORK)
    assert evaluate(p, "use", ctx(GOVERNED), Scope.CATALOG).permitted
    wrong_version = {
        "credential_types": frozenset({"DataExchangeGovernanceCredential"}),
        "contract_versions": frozenset({"DataExchangeGovernanceCredential:2.0"}),
    }
    d = evaluate(p, "use", ctx(wrong_version), Scope.NEGOTIATION)
    assert not d.permitted and "DataExchangeGovernanceCredential:2.0" in d.reason
    # Another credential stating contractVersion 1.0 does not do: type and version are of one credential.
    other = {
        "credential_types": frozenset({"DataExchangeGovernanceCredential", "PcfCredential"}),
        "contract_versions": frozenset({"PcfCredential:1.0"}),
    }
    assert not evaluate(p, "use", ctx(other), Scope.TRANSFER).permitted
    assert not evaluate(p, "use", ctx(), Scope.CATALOG).permitted


def test_the_older_framework_agreement_operand_takes_eq_as_tractus_x_does() -> None:
    legacy = {
        "permission": [
            {
                "action": "use",
                "constraint": [
                    {
                        "leftOperand": LEGACY + "FrameworkAgreement",
                        "operator": "eq",
                        "rightOperand": "DataExchangeGovernance:1.0",
                    }
                ],
            }
        ]
    }
    assert validate(legacy) == []
    assert evaluate(legacy, "use", ctx(GOVERNED), Scope.NEGOTIATION).permitted
    assert not evaluate(legacy, "use", ctx(MEMBER), Scope.NEGOTIATION).permitted


@pytest.mark.parametrize(
    ("operator", "listed", "expected"),
    [("isAnyOf", True, True), ("isAnyOf", False, False), ("isNoneOf", True, False), ("isNoneOf", False, True)],
)
def test_business_partner_numbers_are_read_from_the_bpn_credential(operator: str, listed: bool, expected: bool) -> None:
    bpns = ["BPNL00000003AYRE", "BPNL00000003AZQP"] if listed else ["BPNL00000003AZQP"]
    p = policy("access", {"leftOperand": "BusinessPartnerNumber", "operator": operator, "rightOperand": bpns})
    assert evaluate(p, "use", ctx(GOVERNED), Scope.CATALOG).permitted is expected
    # No BpnCredential: Tractus-X fails the constraint whatever the operator (the BPN of a membership is not read).
    assert not evaluate(p, "use", ctx({"bpn": "BPNL00000003AYRE", **MEMBER}), Scope.CATALOG).permitted


def test_bpn_and_groups_are_catalog_scope_only() -> None:
    p = policy(
        "access", {"leftOperand": "BusinessPartnerNumber", "operator": "isAnyOf", "rightOperand": ["BPNL00000003AZQP"]}
    )
    for scope in (Scope.NEGOTIATION, Scope.TRANSFER, Scope.DATA_REQUEST, Scope.MONITOR):
        d = evaluate(p, "use", ctx(GOVERNED), scope)
        assert d.permitted and f"not applicable in {scope} scope" in d.reason


def test_business_partner_groups_are_the_node_s_groups_of_the_bpn() -> None:
    any_of = policy(
        "access", {"leftOperand": "BusinessPartnerGroup", "operator": "isAnyOf", "rightOperand": "gold,silver"}
    )
    none_of = policy(
        "access", {"leftOperand": "BusinessPartnerGroup", "operator": "isNoneOf", "rightOperand": ["blocked"]}
    )
    gold = {**GOVERNED, "business_partner_groups": frozenset({"gold"})}
    blocked = {**GOVERNED, "business_partner_groups": frozenset({"blocked"})}
    assert evaluate(any_of, "use", ctx(gold), Scope.CATALOG).permitted
    assert not evaluate(any_of, "use", ctx(blocked), Scope.CATALOG).permitted
    assert evaluate(none_of, "use", ctx(gold), Scope.CATALOG).permitted
    assert not evaluate(none_of, "use", ctx(blocked), Scope.CATALOG).permitted
    # A BPN the node keeps no groups for fails both, as in Tractus-X.
    assert not evaluate(none_of, "use", ctx(GOVERNED), Scope.CATALOG).permitted


@pytest.mark.parametrize("scope", list(Scope))
def test_the_usage_purpose_is_a_commitment_never_checked_per_request(scope: Scope) -> None:
    usage = policy("use", FRAMEWORK, DPP)
    # No purpose is declared anywhere, as Tractus-X consumers never send one; claims exist only in claim scopes.
    claims = GOVERNED if scope in (Scope.CATALOG, Scope.NEGOTIATION, Scope.TRANSFER) else {}
    d = evaluate(usage, "use", ctx(claims), scope)
    assert d.permitted, d.reason
    assert "UsagePurpose" not in d.reason
    # A declared purpose changes nothing either: the agreed purpose is what the consumer committed to.
    assert evaluate(usage, "use", ctx(claims, purpose="marketing"), scope).permitted


@pytest.mark.parametrize("scope", [Scope.TRANSFER, Scope.DATA_REQUEST, Scope.MONITOR])
def test_the_older_catena_x_usage_purpose_is_a_commitment_too(scope: Scope) -> None:
    agreed = {
        "permission": [
            {
                "action": "use",
                "constraint": [
                    {"leftOperand": LEGACY + "UsagePurpose", "operator": "eq", "rightOperand": "cx.pcf.base:1"}
                ],
            }
        ]
    }
    assert evaluate(agreed, "use", ctx(), scope).permitted


def test_the_node_s_own_purpose_is_still_declared_per_request() -> None:
    own = {
        "permission": [
            {"action": "use", "constraint": [{"leftOperand": "purpose", "operator": "eq", "rightOperand": "recycling"}]}
        ]
    }
    assert evaluate(own, "use", ctx(), Scope.NEGOTIATION).permitted  # deferred until use
    assert not evaluate(own, "use", ctx(), Scope.DATA_REQUEST).permitted
    assert evaluate(own, "use", ctx(purpose="recycling"), Scope.DATA_REQUEST).permitted
    assert not evaluate(own, "use", ctx(purpose="marketing"), Scope.DATA_REQUEST).permitted


def test_access_rules_grant_what_the_node_asks_of_access_policies() -> None:
    """The node asks access policies for `use`; a Catena-X access rule (action `access`) answers it."""
    p = policy("access", MEMBERSHIP)
    assert evaluate(p, "use", ctx(MEMBER), Scope.CATALOG).permitted
    assert evaluate(p, "read", ctx(MEMBER), Scope.CATALOG).permitted
    assert not evaluate(p, "transfer", ctx(MEMBER), Scope.CATALOG).permitted


def test_refusals_carry_the_path_of_the_element() -> None:
    problems = validate(policy("access", {**FRAMEWORK, "operator": "neq"}, {**MEMBERSHIP, "rightOperand": "yes"}))
    assert [(p.path, p.message) for p in problems] == [
        ("permission[0].constraint[0].and[0].operator", "cx-policy:FrameworkAgreement allows only eq, not neq"),
        (
            "permission[0].constraint[0].and[1].rightOperand",
            "cx-policy:Membership takes the right operand 'active', got ['yes']",
        ),
    ]
    bpns = validate(
        policy(
            "access",
            {
                "leftOperand": "BusinessPartnerNumber",
                "operator": "isAnyOf",
                "rightOperand": ["BPNL00000003AYRE", "BPNL00000003AYRE"],
            },
        )
    )
    assert [p.message for p in bpns] == ["cx-policy:BusinessPartnerNumber values must be unique"]
