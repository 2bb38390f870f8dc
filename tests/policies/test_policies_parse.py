"""Parsing of the three input forms, errors with paths, limits."""

from __future__ import annotations

import json

import pytest

from policies import (
    Constraint,
    Limits,
    LiteralValue,
    LogicalConstraint,
    PolicyError,
    Ref,
    parse_policy,
)
from policies.parse import parse_partial
from policies.vocab import EDC, ODRL, XSD

OD = ODRL

DSP_FORM = {
    "@context": ["https://w3id.org/dspace/2025/1/context.jsonld"],
    "@type": "Offer",
    "@id": "urn:offer:1",
    "assigner": "did:web:provider",
    "permission": [
        {
            "action": "use",
            "constraint": [
                {"leftOperand": "purpose", "operator": "isAnyOf", "rightOperand": ["repair", "recycling"]},
                {
                    "and": [
                        {
                            "leftOperand": "dateTime",
                            "operator": "lt",
                            "rightOperand": {"@value": "2030-01-01T00:00:00Z", "@type": "xsd:dateTime"},
                        },
                        {"leftOperand": "count", "operator": "lteq", "rightOperand": 5},
                    ]
                },
            ],
            "duty": [{"action": "odrl:delete"}],
        }
    ],
    "prohibition": [{"action": "odrl:distribute"}],
}

EDC_FORM = {
    "@context": {"@vocab": EDC, "edc": EDC, "odrl": OD},
    "@type": "odrl:Offer",
    "@id": "urn:offer:1",
    "odrl:assigner": {"@id": "did:web:provider"},
    "odrl:permission": [
        {
            "odrl:action": {"@id": "odrl:use"},
            "odrl:constraint": [
                {
                    "odrl:leftOperand": {"@id": "odrl:purpose"},
                    "odrl:operator": {"@id": "odrl:isAnyOf"},
                    "odrl:rightOperand": ["repair", "recycling"],
                },
                {
                    "odrl:and": [
                        {
                            "odrl:leftOperand": {"@id": "odrl:dateTime"},
                            "odrl:operator": {"@id": "odrl:lt"},
                            "odrl:rightOperand": {"@value": "2030-01-01T00:00:00Z", "@type": "xsd:dateTime"},
                        },
                        {
                            "odrl:leftOperand": {"@id": "odrl:count"},
                            "odrl:operator": {"@id": "odrl:lteq"},
                            "odrl:rightOperand": 5,
                        },
                    ]
                },
            ],
            "odrl:duty": {"odrl:action": {"@id": "odrl:delete"}},
        }
    ],
    "odrl:prohibition": {"odrl:action": {"@id": "odrl:distribute"}},
}

EXPANDED_FORM = [
    {
        "@id": "urn:offer:1",
        "@type": [OD + "Offer"],
        OD + "assigner": [{"@id": "did:web:provider"}],
        OD + "permission": [
            {
                OD + "action": [{"@id": OD + "use"}],
                OD + "constraint": [
                    {
                        OD + "leftOperand": [{"@id": OD + "purpose"}],
                        OD + "operator": [{"@id": OD + "isAnyOf"}],
                        OD + "rightOperand": [{"@value": "repair"}, {"@value": "recycling"}],
                    },
                    {
                        OD + "and": [
                            {
                                "@list": [
                                    {
                                        OD + "leftOperand": [{"@id": OD + "dateTime"}],
                                        OD + "operator": [{"@id": OD + "lt"}],
                                        OD + "rightOperand": [
                                            {"@value": "2030-01-01T00:00:00Z", "@type": XSD + "dateTime"}
                                        ],
                                    },
                                    {
                                        OD + "leftOperand": [{"@id": OD + "count"}],
                                        OD + "operator": [{"@id": OD + "lteq"}],
                                        OD + "rightOperand": [{"@value": 5}],
                                    },
                                ]
                            }
                        ],
                    },
                ],
                OD + "duty": [{OD + "action": [{"@id": OD + "delete"}]}],
            }
        ],
        OD + "prohibition": [{OD + "action": [{"@id": OD + "distribute"}]}],
    }
]


def test_three_forms_give_the_same_model() -> None:
    a, b, c = parse_policy(DSP_FORM), parse_policy(EDC_FORM), parse_policy(EXPANDED_FORM)
    assert a == b == c
    assert a.type == "Offer" and a.uid == "urn:offer:1" and a.assigner == "did:web:provider"
    rule = a.permissions[0]
    assert rule.action == OD + "use"
    assert rule.constraints[0] == Constraint(
        OD + "purpose", OD + "isAnyOf", (LiteralValue("repair"), LiteralValue("recycling"))
    )
    logical = rule.constraints[1]
    assert isinstance(logical, LogicalConstraint) and logical.operator == "and"
    assert logical.constraints[1] == Constraint(OD + "count", OD + "lteq", (LiteralValue(5),))
    assert rule.duties[0].action == OD + "delete" and rule.duties[0].kind == "duty"
    assert a.prohibitions[0].action == OD + "distribute"


def test_expanded_pyld_output_is_parsed() -> None:
    pyld = pytest.importorskip("pyld")
    ctx = {"odrl": OD, "xsd": XSD, "permission": {"@id": "odrl:permission", "@container": "@set"}}
    doc = {
        "@context": ctx,
        "@type": "odrl:Set",
        "permission": [
            {
                "odrl:action": {"@id": "odrl:read"},
                "odrl:constraint": {
                    "odrl:or": {
                        "@list": [
                            {
                                "odrl:leftOperand": {"@id": "odrl:spatial"},
                                "odrl:operator": {"@id": "odrl:eq"},
                                "odrl:rightOperand": {"@id": "http://example.com/EU"},
                            },
                            {
                                "odrl:leftOperand": {"@id": "odrl:purpose"},
                                "odrl:operator": {"@id": "odrl:eq"},
                                "odrl:rightOperand": "x",
                            },
                        ]
                    }
                },
            }
        ],
    }
    expanded = pyld.jsonld.expand(doc, {"base": None})
    p = parse_policy(expanded)
    c = p.permissions[0].constraints[0]
    assert isinstance(c, LogicalConstraint) and c.operator == "or"
    assert c.constraints[0] == Constraint(OD + "spatial", OD + "eq", (Ref("http://example.com/EU"),))


def test_odrl_context_and_uid_alias() -> None:
    p = parse_policy(
        {
            "@context": "http://www.w3.org/ns/odrl.jsonld",
            "@type": "Agreement",
            "uid": "http://example.com/policy/1",
            "assignee": {"@id": "did:web:consumer"},
            "target": "urn:asset:1",
            "permission": [{"action": "read", "target": "urn:asset:2"}],
        }
    )
    assert p.uid == "http://example.com/policy/1"
    assert p.assignee == "did:web:consumer" and p.target == "urn:asset:1"
    assert p.permissions[0].action == OD + "read" and p.permissions[0].target == "urn:asset:2"


def test_json_text_and_missing_type_defaults_to_set() -> None:
    p = parse_policy(json.dumps({"permission": [{"action": "use"}]}))
    assert p.type == "Set"


def test_consequence_and_remedy_are_parsed() -> None:
    p = parse_policy(
        {
            "@type": "Set",
            "obligation": [{"action": "odrl:delete", "odrl:consequence": [{"action": "odrl:compensate"}]}],
            "prohibition": [{"action": "odrl:distribute", "odrl:remedy": [{"action": "odrl:anonymize"}]}],
        }
    )
    assert p.obligations[0].consequences[0].action == OD + "compensate"
    assert p.prohibitions[0].remedies[0].action == OD + "anonymize"


@pytest.mark.parametrize(
    ("doc", "path", "needle"),
    [
        (
            {"permission": [{"action": "use", "constraint": [{"leftOperand": "purpose", "rightOperand": "x"}]}]},
            "permission[0].constraint[0].operator",
            "missing operator",
        ),
        (
            {
                "permission": [
                    {
                        "action": "use",
                        "constraint": [
                            {"leftOperand": "purpose", "operator": "eq", "rightOperand": "x"},
                            {"leftOperand": "purpose", "operator": "eq", "rightOperandReference": "http://x"},
                        ],
                    }
                ]
            },
            "permission[0].constraint[1].rightOperandReference",
            "rightOperandReference",
        ),
        ({"permission": [{"constraint": []}]}, "permission[0].action", "missing action"),
        ({"@type": "Ticket", "permission": [{"action": "use"}]}, "@type", "policy type"),
        ({"@context": "https://example.com/ctx.jsonld", "permission": []}, "@context", "unknown @context"),
        (
            {"permission": [{"action": [{"rdf:value": {"@id": "odrl:print"}, "refinement": [{}]}]}]},
            "permission[0].action.refinement",
            "refinements",
        ),
        (
            {"permission": [{"action": "use", "constraint": [{"and": [], "leftOperand": "x"}]}]},
            "permission[0].constraint[0].and",
            "empty logical",
        ),
        (
            {"permission": [{"action": "use", "constraint": [{"and": [{}], "or": [{}]}]}]},
            "permission[0].constraint[0]",
            "exactly one operator",
        ),
        (
            {"permission": [{"action": "use", "odrl:inheritFrom": "urn:x"}]},
            "permission[0].inheritFrom",
            "not supported",
        ),
        (
            {
                "permission": [
                    {
                        "action": "use",
                        "constraint": [{"leftOperand": "count", "operator": "lt", "rightOperand": 1, "unit": "urn:u"}],
                    }
                ]
            },
            "permission[0].constraint[0].unit",
            "not supported",
        ),
        ({"prohibition": [{"action": "use", "duty": [{"action": "use"}]}]}, "prohibition[0].duty", "not allowed"),
        ({"conflict": "perm", "permission": [{"action": "use"}]}, "conflict", "conflict"),
        ({"permission": ["urn:rule:1"]}, "permission[0]", "embedded object"),
        (
            {
                "permission": [
                    {"action": "use", "constraint": [{"leftOperand": "count", "operator": "eq", "rightOperand": None}]}
                ]
            },
            "permission[0].constraint[0].rightOperand",
            "unsupported right-operand",
        ),
    ],
)
def test_parse_errors_carry_paths(doc: dict[str, object], path: str, needle: str) -> None:
    with pytest.raises(PolicyError) as info:
        parse_policy(doc)
    paths = [p.path for p in info.value.problems]
    assert path in paths, info.value.problems
    problem = info.value.problems[paths.index(path)]
    assert needle in problem.message
    assert info.value.path == info.value.problems[0].path
    assert info.value.message == info.value.problems[0].message


def test_all_problems_are_collected() -> None:
    _, problems = parse_partial(
        {
            "permission": [
                {"action": "use", "constraint": [{"leftOperand": "count", "operator": "eq"}]},
                {"constraint": []},
            ]
        }
    )
    assert [p.path for p in problems] == ["permission[0].constraint[0].rightOperand", "permission[1].action"]


def _nested(depth: int) -> dict[str, object]:
    node: dict[str, object] = {"leftOperand": "count", "operator": "eq", "rightOperand": 1}
    for _ in range(depth):
        node = {"and": [node]}
    return node


def test_depth_limit() -> None:
    parse_policy({"permission": [{"action": "use", "constraint": [_nested(10)]}]})
    with pytest.raises(PolicyError, match="nesting deeper"):
        parse_policy({"permission": [{"action": "use", "constraint": [_nested(40)]}]})


def test_count_limits() -> None:
    many = [{"leftOperand": "count", "operator": "eq", "rightOperand": 1}] * 50
    with pytest.raises(PolicyError, match="more than 10 constraints"):
        parse_policy({"permission": [{"action": "use", "constraint": many}]}, limits=Limits(max_constraints=10))
    with pytest.raises(PolicyError, match="more than 3 rules"):
        parse_policy({"permission": [{"action": "use"}] * 5}, limits=Limits(max_rules=3))
    with pytest.raises(PolicyError, match="right-operand values"):
        parse_policy(
            {
                "permission": [
                    {
                        "action": "use",
                        "constraint": [
                            {"leftOperand": "purpose", "operator": "isAnyOf", "rightOperand": list(range(20))}
                        ],
                    }
                ]
            },
            limits=Limits(max_values=10),
        )
    with pytest.raises(PolicyError, match="longer than"):
        parse_policy(
            {
                "permission": [
                    {
                        "action": "use",
                        "constraint": [{"leftOperand": "purpose", "operator": "eq", "rightOperand": "x" * 100}],
                    }
                ]
            },
            limits=Limits(max_string=50),
        )


def test_list_input_must_hold_one_policy() -> None:
    with pytest.raises(PolicyError, match="one policy"):
        parse_policy([{}, {}])
    with pytest.raises(PolicyError, match="JSON object"):
        parse_policy(42)
