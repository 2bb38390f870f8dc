"""Catena-X policy definitions as Tractus-X EDC writes them: accepted by the management API, refused as Tractus-X
refuses them (each refusal naming the element at fault)."""

from __future__ import annotations

from typing import Any

import pytest

from tests.conftest import Management

# The @context Tractus-X EDC's management walkthrough (docs/usage/management-api-walkthrough/02_policies.md) uses.
TX_CONTEXT = [
    "https://w3id.org/dspace/2025/1/odrl-profile.jsonld",
    "https://w3id.org/catenax/2025/9/policy/context.jsonld",
    {"@vocab": "https://w3id.org/edc/v0.0.1/ns/"},
]
# The one the Tractus-X Python SDK and the Catena-X ODRL profile samples use.
SDK_CONTEXT = [
    "https://w3id.org/catenax/2025/9/policy/odrl.jsonld",
    "https://w3id.org/catenax/2025/9/policy/context.jsonld",
    {"@vocab": "https://w3id.org/edc/v0.0.1/ns/"},
]

MEMBERSHIP = {"leftOperand": "Membership", "operator": "eq", "rightOperand": "active"}
FRAMEWORK = {"leftOperand": "FrameworkAgreement", "operator": "eq", "rightOperand": "DataExchangeGovernance:1.0"}
DPP_PURPOSE = {"leftOperand": "UsagePurpose", "operator": "isAnyOf", "rightOperand": ["cx.circular.dpp:1"]}


def access_policy(policy_id: str = "membership-deg", *constraints: Any, context: Any = None) -> dict[str, Any]:
    """The access policy of the Tractus-X walkthrough (Membership and the framework agreement)."""
    return {
        "@context": context or TX_CONTEXT,
        "@type": "PolicyDefinition",
        "@id": policy_id,
        "policy": {
            "@type": "Set",
            "permission": [{"action": "access", "constraint": [{"and": list(constraints or (MEMBERSHIP, FRAMEWORK))}]}],
        },
    }


def usage_policy(policy_id: str = "dpp-usage", *constraints: Any, context: Any = None) -> dict[str, Any]:
    """The usage policy of the walkthrough for passports (CX-0160): the framework agreement and the purpose."""
    return {
        "@context": context or TX_CONTEXT,
        "@type": "PolicyDefinition",
        "@id": policy_id,
        "policy": {
            "@type": "Set",
            "permission": [{"action": "use", "constraint": {"and": list(constraints or (FRAMEWORK, DPP_PURPOSE))}}],
        },
    }


async def test_the_tractus_x_policies_are_accepted_as_written(management: Management) -> None:
    for body in (
        access_policy(),
        usage_policy(),
        access_policy("sdk-access", context=SDK_CONTEXT),
        usage_policy("sdk-usage", context=SDK_CONTEXT),
        # The walkthrough's BPN example writes the constraint as one object, not an array.
        {
            "@context": TX_CONTEXT,
            "@type": "PolicyDefinition",
            "@id": "bpn-access",
            "policy": {
                "@type": "Set",
                "permission": [
                    {
                        "action": "access",
                        "constraint": {
                            "leftOperand": "BusinessPartnerNumber",
                            "operator": "isAnyOf",
                            "rightOperand": ["BPNL00000003AYRE", "BPNL00000003AZQP"],
                        },
                    }
                ],
            },
        },
        access_policy(
            "bpg-access", {"leftOperand": "BusinessPartnerGroup", "operator": "isNoneOf", "rightOperand": "blocked"}
        ),
    ):
        status, answer = await management.call("POST", "/management/v3/policydefinitions", body)
        assert status == 200, (body["@id"], answer)
    status, stored = await management.call("GET", "/management/v3/policydefinitions/dpp-usage")
    assert status == 200
    text = str(stored["policy"])
    assert "https://w3id.org/catenax/2025/9/policy/FrameworkAgreement" in text
    assert "https://w3id.org/catenax/2025/9/policy/UsagePurpose" in text


@pytest.mark.parametrize(
    ("body", "path", "fragment"),
    [
        (
            access_policy("x", {**FRAMEWORK, "rightOperand": "DataExchangeGovernance:2.0"}),
            "policy.permission[0].constraint[0].and[0].rightOperand",
            "DataExchangeGovernance:1.0",
        ),
        (
            access_policy("x", {**FRAMEWORK, "operator": "neq"}),
            "policy.permission[0].constraint[0].and[0].operator",
            "allows only eq",
        ),
        (
            access_policy("x", {**MEMBERSHIP, "rightOperand": "inactive"}),
            "policy.permission[0].constraint[0].and[0].rightOperand",
            "'active'",
        ),
        (
            access_policy(
                "x", {"leftOperand": "BusinessPartnerNumber", "operator": "isAnyOf", "rightOperand": ["BPNX1"]}
            ),
            "policy.permission[0].constraint[0].and[0].rightOperand",
            "^BPNL[0-9A-Z]{12}$",
        ),
        (
            access_policy(
                "x", {"leftOperand": "BusinessPartnerNumber", "operator": "eq", "rightOperand": "BPNL00000003AYRE"}
            ),
            "policy.permission[0].constraint[0].and[0].operator",
            "isAnyOf, isNoneOf",
        ),
        (
            usage_policy("x", FRAMEWORK, {**DPP_PURPOSE, "operator": "eq", "rightOperand": "cx.circular.dpp:1"}),
            "policy.permission[0].constraint[0].and[1].operator",
            "allows only isAnyOf",
        ),
        (
            usage_policy("x", FRAMEWORK),
            "policy.permission[0]",
            "UsagePurpose",
        ),
        (
            access_policy("x", DPP_PURPOSE),
            "policy.permission[0].constraint[0].and[0].leftOperand",
            "not allowed in an access policy",
        ),
        (
            {
                **usage_policy(),
                "policy": {
                    "@type": "Set",
                    "permission": [{"action": "use", "constraint": [{"or": [FRAMEWORK, DPP_PURPOSE]}]}],
                },
            },
            "policy.permission[0].constraint[0]",
            "only 'and'",
        ),
        (
            {
                **usage_policy(),
                "policy": {
                    "@type": "Set",
                    "permission": [
                        {"action": "use", "constraint": [FRAMEWORK, DPP_PURPOSE]},
                        {"action": "access", "constraint": [MEMBERSHIP]},
                    ],
                },
            },
            "policy.permission[1].action",
            "mixes",
        ),
    ],
)
async def test_what_tractus_x_refuses_is_refused_naming_the_element(
    management: Management, body: dict[str, Any], path: str, fragment: str
) -> None:
    status, problem = await management.call("POST", "/management/v3/policydefinitions", body)
    assert status == 400, problem
    assert problem["type"] and problem["status"] == 400
    assert [e["path"] for e in problem["errors"]] == [path], problem
    assert fragment in problem["errors"][0]["message"], problem


async def test_the_node_s_own_policies_keep_their_freedom(management: Management) -> None:
    """The Catena-X rules bind policies that use Catena-X terms; the node's own (and legacy ones) are unchanged."""
    body = {
        "@context": TX_CONTEXT,
        "@type": "PolicyDefinition",
        "@id": "own",
        "policy": {
            "@type": "Set",
            "permission": [
                {
                    "action": "use",
                    "constraint": [
                        {
                            "or": [
                                {"leftOperand": "odrl:purpose", "operator": "eq", "rightOperand": "recycling"},
                                {
                                    "leftOperand": "https://w3id.org/catenax/policy/Membership",
                                    "operator": "eq",
                                    "rightOperand": "active",
                                },
                            ]
                        }
                    ],
                }
            ],
        },
    }
    status, answer = await management.call("POST", "/management/v3/policydefinitions", body)
    assert status == 200, answer


def test_a_dsp_message_leaves_the_held_contexts_as_they_are() -> None:
    """pyld merges an @import into the document it caches: after a DSP 2025-1 message the DSP ODRL profile carried
    the DSP terms and @propagate, and the Tractus-X body (which names that profile first) failed to expand."""
    from connector import jsonld

    catalog = {
        "@context": ["https://w3id.org/dspace/2025/1/context.jsonld"],
        "@type": "Catalog",
        "@id": "urn:catalog",
        "dataset": [{"@id": "d", "hasPolicy": [{"@id": "o", "@type": "Offer", "permission": [{"action": "use"}]}]}],
    }
    jsonld.expand_peer_document(catalog)
    (node,) = jsonld.expand(access_policy())
    assert node["@id"] == "membership-deg"
    # A DSP term is not defined by the ODRL profile alone: with the EDC vocabulary it stays an EDC term.
    (profile_only,) = jsonld.expand(
        {"@context": [TX_CONTEXT[0], TX_CONTEXT[2]], "@id": "x", "callbackAddress": "http://cb"}
    )
    assert "https://w3id.org/edc/v0.0.1/ns/callbackAddress" in profile_only


def test_a_tractus_x_catalog_offer_expands_with_the_held_contexts() -> None:
    """A Tractus-X DSP catalog compacts Catena-X terms with the 2025-9 context (TX docs 04_catalog.md); held
    locally, they expand to the 2025-9 namespace with no network, and the offer reads as the policy it was made of."""
    import policies
    from connector import jsonld

    catalog = {
        "@context": [
            "https://w3id.org/tractusx/auth/v1.0.0",
            "https://w3id.org/catenax/2025/9/policy/context.jsonld",
            "https://w3id.org/dspace/2025/1/context.jsonld",
            "https://w3id.org/edc/dspace/v0.0.1",
        ],
        "@id": "urn:catalog",
        "@type": "Catalog",
        "participantId": "BPNL00000003AYRE",
        "dataset": {
            "@id": "asset-1",
            "@type": "Dataset",
            "hasPolicy": {
                "@id": "MQ==:MQ==:M2Zm",
                "@type": "Offer",
                "permission": {
                    "action": "use",
                    "constraint": {"and": [FRAMEWORK, {**DPP_PURPOSE, "rightOperand": "cx.circular.dpp:1"}]},
                },
                "prohibition": [],
                "obligation": [],
            },
            "distribution": [],
        },
    }
    (node,) = jsonld.expand_peer_document(catalog)
    offer = node["http://www.w3.org/ns/dcat#dataset"][0]["http://www.w3.org/ns/odrl/2/hasPolicy"][0]
    parsed = policies.parse_policy(offer)
    assert policies.validate(parsed) == []
    written = policies.parse_policy({"@context": SDK_CONTEXT[:2], **usage_policy()["policy"]})
    assert policies.same_rules(parsed, written)
