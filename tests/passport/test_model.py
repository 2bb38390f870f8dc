"""The passport model on real examples: Catena-X round trips, the fields each access level sees, and
validation errors that name the field (IDTA parts: test_idta.py)."""

from __future__ import annotations

import copy
import json
from typing import Annotated, Any

import pydantic
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import BeforeValidator

from connector.domain import passport as model
from connector.domain.passport import model as node_model
from tests.passport import examples

CATENAX = examples.CATENAX_VERSIONS
catenax = examples.catenax  # the published examples with only their noise made real


@pytest.mark.parametrize("version", CATENAX)
def test_catenax_examples_round_trip_exactly(version: str) -> None:
    original = catenax(version)
    passport = model.load_document(copy.deepcopy(original))
    assert model.detect_format(original) == ("catenax-6.1" if version == "6.1.0" else "catenax-6.0")
    assert model.to_catenax(passport) == original
    # Through the node's JSON (what the store keeps) too.
    assert model.to_catenax(model.parse_passport(json.loads(json.dumps(passport.to_json())))) == original
    assert passport.passport_id == "urn:uuid:550e8400-e29b-41d4-a716-446655440000"
    assert passport.battery_id == "SN12345678" and passport.model_id == "123-0.740-3434-A"


def test_a_changed_value_is_exported_at_its_catenax_path() -> None:
    passport = model.load_document(catenax("6.1.0"))
    assert passport.condition is not None
    changed = passport.model_copy(
        update={"condition": passport.condition.model_copy(update={"state_of_charge_pct": 12.5})}
    )
    assert model.to_catenax(changed)["performance"]["dynamic"]["stateOfCharge"]["value"] == 12.5


def test_a_catenax_value_the_node_finds_invalid_refuses_the_document() -> None:
    original = catenax("6.1.0")
    ((path, day),) = examples.noise("catenax-6.1")
    original["operation"]["intoServiceDate"] = day  # the published value: the schema's pattern matches; no day
    with pytest.raises(model.PassportInvalid) as caught:
        model.load_document(original)
    assert [p for p, _ in caught.value.errors] == [path]


def test_the_public_view_has_exactly_the_public_fields() -> None:
    passport = model.load_document(catenax("6.1.0"))
    public = model.view_catenax(passport, {"public"})
    assert set(public["performance"]) == {"rated"}
    assert set(public["materials"]) == {"active", "hazardous"}
    assert set(public["safety"]) == {"usableExtinguishAgent", "meaningOfLabels"}
    assert set(public["conformity"]) == {
        "declarationOfConformityId",
        "thirdPartyAssurance",
        "declarationOfConformity",
        "dueDiligencePolicy",
    }
    assert "handling" not in public and "status" not in public["sustainability"]
    node = model.view(passport, {"public"})
    assert "condition" not in node and "test_reports" not in node and "dismantling" not in node
    assert {e["tag"] for e in node["extensions"]} == {"public"}
    assert node["performance"]["rated_capacity_ah"] == 4.0


def test_the_legitimate_interest_view_adds_points_2_and_4_but_not_test_reports() -> None:
    passport = model.load_document(catenax("6.1.0"))
    view = model.view_catenax(passport, {"legitimate_interest"})
    assert set(view["performance"]) == {"rated", "dynamic"}
    assert "composition" in view["materials"] and "handling" in view
    assert {"dismantling", "safetyMeasures", "removalFromAppliance", "safeDischarging"} <= set(view["safety"])
    assert view["sustainability"]["status"] == "original"
    assert "resultOfTestReport" not in view["conformity"]
    node = model.view(passport, {"legitimate_interest"})
    assert node["condition"]["state_of_charge_pct"] == 50.0
    assert {e["tag"] for e in node["extensions"]} == {
        "public",
        "legitimate_interest_model",
        "legitimate_interest_battery",
    }


def test_the_authority_view_has_test_reports_but_not_the_battery_condition() -> None:
    passport = model.load_document(catenax("6.1.0"))
    view = model.view_catenax(passport, {"authority"})
    assert "resultOfTestReport" in view["conformity"] and "composition" in view["materials"]
    assert "dynamic" not in view["performance"]
    both = model.view_catenax(passport, {"authority", "legitimate_interest"})
    assert both == catenax("6.1.0")


@pytest.mark.parametrize(
    ("field", "value", "path"),
    [
        (("identity", "mass_kg"), -3, "identity.mass_kg"),
        (("circularity", "recycled_cobalt_pct"), 130, "circularity.recycled_cobalt_pct"),
        (("identity", "manufacturing_date"), "2026-13", "identity.manufacturing_date"),
        (("condition", "status"), "broken", "condition.status"),
        (("identity", "gtin"), "12ab", "identity.gtin"),
        (("performance", "unknown_field"), 1, "performance.unknown_field"),
    ],
)
def test_validation_errors_name_the_field(field: tuple[str, str], value: Any, path: str) -> None:
    document = model.generate(1)
    document[field[0]][field[1]] = value
    with pytest.raises(model.PassportInvalid) as caught:
        model.parse_passport(document)
    assert [p for p, _ in caught.value.errors] == [path]


@pytest.mark.parametrize(
    ("given", "canonical"),
    [
        ("urn:uuid:6A1D0000-0000-4000-8000-00000000001E", "6a1d0000-0000-4000-8000-00000000001e"),
        ("URN:UUID:6a1d0000-0000-4000-8000-00000000001e", "6a1d0000-0000-4000-8000-00000000001e"),
        ("6a1d0000-0000-4000-8000-00000000001e", "6a1d0000-0000-4000-8000-00000000001e"),
        ("Battery-A", "Battery-A"),  # no UUID: compared as it is, "battery-a" is another passport
        ("urn:uuid:not-a-uuid", "urn:uuid:not-a-uuid"),
    ],
)
def test_canonical_ids_fold_only_uuids(given: str, canonical: str) -> None:
    assert model.canonical_id(given) == canonical


def test_a_catenax_document_without_a_passport_id_is_rejected() -> None:
    document = catenax("6.1.0")
    del document["metadata"]["passportIdentifier"]
    with pytest.raises(model.PassportInvalid) as caught:
        model.load_document(document)
    assert caught.value.errors[0][0] == "metadata.passportIdentifier"
    with pytest.raises(model.PassportInvalid):
        model.load_document({"some": "thing"})


@settings(max_examples=50, deadline=None)
@given(st.integers(min_value=0, max_value=10**9), st.integers(min_value=0, max_value=99))
def test_generated_passports_are_valid_and_survive_the_node_json(i: int, seed: int) -> None:
    passport = model.parse_passport(model.generate(i, seed=seed))
    assert model.parse_passport(json.loads(json.dumps(passport.to_json()))) == passport
    assert passport.passport_id != model.parse_passport(model.generate(i + 1, seed=seed)).passport_id
    public = model.view(passport, {"public"})
    assert "condition" not in public and "test_reports" not in public and "dismantling" not in public


# The node's bounded numbers check the number and its bounds in one function (model._bounded); pydantic's own
# `Field(ge=..., gt=..., le=...)` on the same union is the reference: the same verdicts and the same errors.
_BOUNDED = {
    "Percent": (node_model.Percent, {"ge": 0, "le": 100}, node_model.Number),
    "Positive": (node_model.Positive, {"gt": 0}, node_model.Number),
    "NonNegative": (node_model.NonNegative, {"ge": 0}, node_model.Number),
    "Temperature": (node_model.Temperature, {"ge": -273.15}, node_model.Number),
    "Count": (
        node_model.Count,
        {"ge": 0},
        Annotated[int | float, BeforeValidator(node_model._whole_number)],
    ),
}
_VALUES = [-300, -273.16, -273.15, -1, -0.0, 0, 0.0, 1e-9, 1, 1.5, 99.99, 100, 100.0, 100.5, 150, 10**15]
_VALUES += [2.0**70, "1", True, False, None, [], {}, float("nan"), float("inf")]


@pytest.mark.parametrize("name", sorted(_BOUNDED))
def test_bounded_numbers_fail_as_pydantic_bounds_fail(name: str) -> None:
    bounded, bounds, number = _BOUNDED[name]
    ours = pydantic.TypeAdapter(bounded)
    reference = pydantic.TypeAdapter(Annotated[number, pydantic.Field(**bounds)])  # type: ignore[valid-type]
    refused = 0
    for value in _VALUES:
        try:
            expected: Any = ("ok", type(got := reference.validate_python(value)), got)
        except pydantic.ValidationError as exc:
            expected, refused = ("refused", exc.errors(include_url=False)), refused + 1
        try:
            actual: Any = ("ok", type(got := ours.validate_python(value)), got)
        except pydantic.ValidationError as exc:
            actual = ("refused", exc.errors(include_url=False))
        assert repr(actual) == repr(expected), value  # repr: NaN is not equal to itself
    assert 0 < refused < len(_VALUES)
