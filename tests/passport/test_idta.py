"""IDTA-02035 Digital Battery Passport parts 1-7 as a first-class format, on the published schemas and examples:
every property has its place (a node field, or kept data under its Annex XIII tag), each part round-trips
exactly, a passport from either family exports in the other, an export that cannot be complete is refused
naming what it lacks, parts are found by semantic id, and each reader sees only what its level allows."""

from __future__ import annotations

import copy
import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import pytest

from connector.app import Node
from connector.domain import passport as model
from connector.domain.passport import aspects, catenax, exports, idta, idta_fields
from connector.domain.passport.model import BatteryStatus, NegativeEvent, PowerAtSoc
from tests.conftest import API_KEY, Management, NodeFactory
from tests.passport import examples
from tests.passport.examples import idta_part as example
from tests.passport.examples import idta_parts as parts

ROOT = Path(__file__).resolve().parents[2]


def load(bundle: dict[str, Any]) -> model.Passport:
    return model.load_document(copy.deepcopy(bundle))


def exact(a: Any, b: Any) -> bool:
    """Equal as JSON text: the same values, types and key order."""
    return orjson.dumps(a) == orjson.dumps(b)


def kept(passport: model.Passport) -> dict[str, dict[str, Any]]:
    """The IDTA extension data of a passport, by tag."""
    return {e.tag.value: e.data for e in passport.extensions if e.format == "idta"}


# The table against the schemas.


def _normalised(path: str) -> str:
    return ".".join(step.split("[")[0] + ("[]" if "[" in step else "") for step in path.split("."))


@pytest.mark.parametrize("part", list(idta_fields.PARTS))
def test_every_property_of_every_part_has_one_place(part: str) -> None:
    schema = idta.schema(part)
    moved = {_normalised(path) for name, path, _, _ in idta_fields.FIELDS if name == part}
    kept_paths = [path for name, path, _ in idta_fields.KEPT if name == part]
    for path in moved | set(kept_paths):
        assert aspects.at(schema, path.replace("[]", ".[]").split(".")) is not None, f"{part}: no {path} in the schema"
    for leaf in aspects.leaves(schema):
        in_kept = any(leaf == k or leaf.startswith((k + ".", k + "[]")) for k in kept_paths)
        assert leaf in moved or in_kept, f"{part}.{leaf} is neither moved into a node field nor kept"
        assert not (leaf in moved and in_kept), f"{part}.{leaf} is both moved and kept"


def test_the_document_references_are_the_schemas_document_id_lists() -> None:
    found = set()
    for part in idta_fields.PARTS:
        schema = idta.schema(part)

        def walk(node: dict[str, Any], path: str, part: str = part, schema: dict[str, Any] = schema) -> None:
            refs = [node.get("$ref", "")] + [x.get("$ref", "") for x in node.get("allOf", ())]
            if any(ref.endswith("/DocumentIdentifierSet") for ref in refs):
                found.add((part, path))
                return
            node = aspects.resolve(schema, node)
            if node.get("type") == "array":
                walk(node["items"], path + "[]")
            for key, child in aspects.properties(schema, node).items():
                walk(
                    child, f"{path}.{key}" if path and not path.endswith("[]") else f"{path}{'.' if path else ''}{key}"
                )

        walk(schema, "")
    assert found == set(idta_fields.DOCUMENT_REFERENCES)


def test_each_moved_value_is_kept_under_its_groups_tag() -> None:
    # A value the node keeps in its original shape stays in the extension data, under its path's tag: that tag
    # must be its group's, or a view would show (or hide) one copy and not the other.
    for row in idta.rows():
        tag = idta.tag_of(row.part, [*row.prefix, *row.suffix])
        assert tag is model.GROUPS[row.group].tag, f"{row.part}.{row.path} is {tag}, its group {row.group} is not"


def test_the_field_table_is_documented() -> None:
    text = (ROOT / "docs" / "passport-model.md").read_text()
    for part, path, target, _ in idta_fields.FIELDS:
        assert f"`{path}`" in text and target.split(".", 1)[1] in text, f"{part}.{path} -> {target} is not in the docs"


# Import.


def test_the_published_examples_are_refused_where_they_break_the_nodes_rules() -> None:
    # The schema with the node's rules refuses both (a C-rate is not negative, a share is 0-100), in the
    # bundle's order, with the value: the mapping, which would refuse them too, does not name them again.
    with pytest.raises(model.PassportInvalid) as caught:
        load({"idta": examples.idta_published_parts()})
    assert caught.value.errors == [
        (
            "idta.technical_data.TechnicalPropertyAreas.Lifetime.CrateOfRelevantCycleLifeTest",
            "must be at least 0, got -57931.4",
        ),
        ("idta.circularity.RenewableContent", "must be at least 0, got -12143.4"),
    ]


def test_every_part_maps_into_the_nodes_fields() -> None:
    passport = load({"idta": parts()})
    identity = passport.identity
    assert (identity.battery_id, identity.product_uri) == ("A12345-X75EN", "https://dc-qr.com/?m=R123456789")
    assert identity.passport_id == "https://dc-qr.com/?m=R123456789"  # no passport id given: the product's URI
    assert (identity.manufacturer_id, identity.manufacturer_name, identity.manufacturing_date) == (
        "f8",
        "Muster AG",
        "2022-01-01",
    )
    assert (identity.manufacturing_facility_id, identity.operator_id) == ("987654321", "QizvSaagg")
    assert (identity.category, identity.mass_kg, identity.warranty_months) == ("ev", 1007.0, 96)
    assert (identity.chemistry, identity.chemistry_name) == ("NMC", "Lithium nickel manganese cobalt oxides")
    assert passport.performance is not None and passport.condition is not None
    assert passport.performance.rated_capacity_ah == 210.0 and passport.performance.voltage_min_v == 2.04
    assert passport.performance.internal_resistance_cell_ohm == 67.0
    assert passport.performance.original_power_capability == (PowerAtSoc(soc_pct=80.0, power_w=500.0),)
    assert passport.performance.expected_lifetime_cycles == 1000 and passport.performance.c_rate_cycle_life_test == 2.0
    condition = passport.condition
    assert (condition.status, condition.put_into_service) == ("original", "2022-06-01")
    assert (condition.capacity_fade_pct, condition.power_fade_pct, condition.expected_lifetime_years) == (
        10.0,
        23.0,
        15,
    )
    assert (condition.state_of_charge_pct, condition.full_cycles, condition.temperature_c) == (70.0, 600, 20.0)
    assert condition.negative_events == (NegativeEvent(event="overcharged", at="2000-01-01T14:23:00"),)
    assert condition.measured_at is not None and condition.measured_at["state_of_charge_pct"] == "2000-01-01T14:23:00"
    assert passport.carbon_footprint is not None and passport.carbon_footprint.declarations is not None
    assert passport.carbon_footprint.declarations[0].co2e_kg == 17.2
    assert passport.materials is not None and passport.dismantling is not None
    assert passport.materials.hazardous_substances[0].cas == "346417-97-8"
    assert passport.materials.critical_raw_materials == ("Lithium",)  # public, from the detailed composition's flag
    assert passport.dismantling.detailed_composition[0].mass_kg == 52.0
    assert passport.dismantling.spare_part_sources == ("https://example.com/information/product/1224/contact",)
    assert passport.circularity is not None and passport.circularity.recycled_cobalt_pre_consumer_pct == 77.21
    assert passport.circularity.renewable_content_pct == 12.5
    assert passport.labels is not None and passport.labels.extinguishing_agents == ("0ds2fkjV",)
    # What moved is not kept twice; what the node keeps in another shape stays (the language of a name).
    public = kept(passport)["public"]
    assert public["technical_data"]["TechnicalPropertyAreas"] == {"Lifetime": {"CycleLifeReferenceTest": ["hIIjyfZ"]}}
    assert public["digital_nameplate"]["ManufacturerName"] == {"de": "Muster AG"}
    assert "SerialNumber" not in public["digital_nameplate"]
    assert "product_condition" not in public and kept(passport)["legitimate_interest_battery"]["product_condition"] == {
        "InformationOnAccidents": ["P2"]
    }


_REAL_TIME = "a real date and time (YYYY-MM-DDThh:mm:ss, optional fraction and offset up to ±14:00)"


# What the schema with the node's rules sees is refused with its reason (the value shown); what only the
# node's model says (a battery id of at most 512 characters) with the model's, at the IDTA path. Either way
# the path is named once.
@pytest.mark.parametrize(
    ("part", "keys", "value", "reason"),
    [
        (
            "technical_data",
            ("TechnicalPropertyAreas", "CapacityEnergyVoltage", "RatedCapacity"),
            "210.0",
            'must be a number, got string "210.0"',
        ),
        ("technical_data", ("GeneralInformation", "BatteryMass"), True, "must be a number, got boolean true"),
        ("technical_data", ("GeneralInformation", "BatteryMass"), -3.0, "must be greater than 0, got -3.0"),
        (
            "technical_data",
            ("TechnicalPropertyAreas", "Lifetime", "ExpectedNumberOfCycles"),
            10.5,
            "must be a whole number, got 10.5",
        ),
        (
            "circularity",
            ("RecycledContentInformation", 0, "PreConsumerShare"),
            112.0,
            "must be at most 100, got 112.0",
        ),
        ("carbon_footprint", ("ProductCarbonFootprints", 0, "PcfCo2eq"), -1.0, "must be at least 0, got -1.0"),
        (
            "material_composition",
            ("BatteryMaterials", 0, "BatteryMaterialMass"),
            -52.0,
            "must be at least 0, got -52.0",
        ),
        (
            "digital_nameplate",
            ("DateOfManufacture",),
            "2022-02-30",
            'must be a real calendar date (YYYY-MM-DD), got "2022-02-30"',
        ),
        (
            "digital_nameplate",
            ("DateOfManufacture",),
            "2022-01",
            'must be a real calendar date (YYYY-MM-DD), got "2022-01"',
        ),
        (
            "digital_nameplate",
            ("LifeCycleStage",),
            "broken",
            'must be one of "original", "repurposed", "re-used", "remanufactured", "waste", got "broken"',
        ),
        (
            "product_condition",
            ("StateOfCharge", "LastUpdate"),
            "2000-13-01T00:00:00",
            f'must be {_REAL_TIME}, got "2000-13-01T00:00:00"',
        ),
        (
            "technical_data",
            ("GeneralInformation", "WarrantyInformation", "WarrantyPeriod"),
            "96 months",
            'must be an ISO 8601 duration (e.g. P96M), got "96 months"',
        ),
        ("digital_nameplate", ("SerialNumber",), "x" * 513, "must be at most 512 characters, got 513"),
    ],
)
def test_a_value_the_node_cannot_accept_refuses_the_bundle_naming_its_path(
    part: str, keys: tuple[str | int, ...], value: Any, reason: str
) -> None:
    bundle = parts()
    node: Any = bundle[part]
    for key in keys[:-1]:
        node = node[key]
    node[keys[-1]] = value
    with pytest.raises(model.PassportInvalid) as caught:
        load({"idta": bundle})
    path = f"idta.{part}." + ".".join(str(k) for k in keys).replace(".0.", "[0].")
    assert caught.value.errors == [(path, reason)]


def test_ambiguous_or_broken_lists_are_refused_naming_them() -> None:
    bundle = parts()
    recycled = bundle["circularity"]["RecycledContentInformation"]
    recycled.append(dict(recycled[0]))
    bundle["material_composition"]["HazardousSubstances"].append("Cobalt")
    with pytest.raises(model.PassportInvalid) as caught:
        load({"idta": bundle})
    # The schema sees the item that is no object; only the mapping sees two items for one material.
    assert caught.value.errors == [
        ("idta.material_composition.HazardousSubstances[1]", 'must be an object, got string "Cobalt"'),
        ("idta.circularity.RecycledContentInformation", "more than one item has RecycledMaterial Cobalt: items 0, 1"),
    ]


def test_a_fault_inside_a_moved_list_is_named_once_where_it_is() -> None:
    bundle = parts()
    bundle["material_composition"]["HazardousSubstances"][0]["HazardousSubstanceImpact"] = ["toxic", 7]
    bundle["digital_nameplate"]["ManufacturerName"] = [{"de": "Muster AG"}, 7]
    with pytest.raises(model.PassportInvalid) as caught:
        load({"idta": bundle})
    # Not again at the list, as a value the mapping cannot read.
    assert caught.value.errors == [
        ("idta.digital_nameplate.ManufacturerName[1]", "must be an object, got number 7"),
        (
            "idta.material_composition.HazardousSubstances[0].HazardousSubstanceImpact[1]",
            "must be a string, got number 7",
        ),
    ]


def test_an_unclear_bundle_is_refused_with_the_path() -> None:
    with pytest.raises(model.PassportInvalid) as caught:
        load({"idta": {"product_condition": example("product_condition")}})
    assert caught.value.errors == [("idta.digital_nameplate", "required: it carries the battery's identity")]
    with pytest.raises(model.PassportInvalid) as caught:
        load({"idta": {"digital_nameplate": {"ManufacturerName": "x"}, "unknown_part": {}}})
    assert ("idta.unknown_part", "not an IDTA-02035 part this node knows") in caught.value.errors
    nameplate = example("digital_nameplate")
    del nameplate["SerialNumber"]
    with pytest.raises(model.PassportInvalid) as caught:
        load({"idta": {"digital_nameplate": nameplate}})
    assert caught.value.errors == [("idta.digital_nameplate.SerialNumber", "required")]  # the schema's, and the node's
    # Nothing of a bundle is left aside unnamed: a key beside the parts, a passport id that is none.
    with pytest.raises(model.PassportInvalid) as caught:
        load({"passport_id": 7, "idta": parts(), "metadata": {}})
    assert caught.value.errors == [
        ("passport_id", "must be a passport id (a non-empty string), got 7"),
        ("metadata", "not part of an IDTA bundle (its keys are passport_id, idta)"),
    ]


def test_the_published_shapes_that_differ_from_the_schema_are_read_and_kept() -> None:
    # {"de": "Muster AG"} where the schema has [{"de": "Muster AG"}]; "ISO 14067" where it has a list.
    nameplate = example("digital_nameplate")
    passport = load({"idta": {"digital_nameplate": nameplate}})
    assert passport.identity.manufacturer_name == "Muster AG"
    footprint = load({"idta": {"digital_nameplate": nameplate, "carbon_footprint": example("carbon_footprint")}})
    assert footprint.carbon_footprint is not None and footprint.carbon_footprint.declarations is not None
    assert footprint.carbon_footprint.declarations[0].calculation_methods == ("ISO 14067",)
    assert exact(idta.to_idta(footprint)["carbon_footprint"], example("carbon_footprint"))


def test_a_status_in_idta_spelling_is_the_nodes_status() -> None:
    bundle = parts()
    bundle["digital_nameplate"]["LifeCycleStage"] = "re-used"
    passport = load({"idta": bundle})
    assert passport.condition is not None and passport.condition.status == BatteryStatus.REUSED
    assert idta.to_idta(passport)["digital_nameplate"]["LifeCycleStage"] == "re-used"


# Export in its own format.


def test_every_example_part_round_trips_exactly() -> None:
    bundle = examples.idta_bundle()
    passport = load(bundle)
    assert passport.passport_id == bundle["passport_id"]
    assert exact(exports.export_document(passport, "idta"), bundle)
    # Through the node's JSON, as the store keeps it.
    stored = model.parse_passport(json.loads(json.dumps(passport.to_json())))
    assert exact(exports.export_document(stored, "idta"), bundle)
    for name, payload in bundle["idta"].items():
        assert exact(idta.to_idta_part(stored, name), payload), name


def test_json_types_and_shapes_survive_the_round_trip() -> None:
    bundle = parts()
    lifetime = bundle["technical_data"]["TechnicalPropertyAreas"]["Lifetime"]
    lifetime["ExpectedNumberOfCycles"] = 1000.0  # a whole number written as a float
    bundle["technical_data"]["GeneralInformation"]["WarrantyInformation"]["WarrantyPeriod"] = "P8Y"
    bundle["digital_nameplate"]["ManufacturerName"] = [{"de": "Muster AG"}, {"en": "Sample Ltd"}]
    passport = load({"idta": bundle})
    assert passport.performance is not None and passport.performance.expected_lifetime_cycles == 1000
    assert passport.identity.warranty_months == 96 and passport.identity.manufacturer_name == "Sample Ltd"
    assert exact(idta.to_idta(passport), bundle)


def test_a_changed_node_field_is_exported_at_its_idta_path() -> None:
    passport = load({"idta": parts()})
    assert passport.condition is not None and passport.performance is not None
    changed = passport.model_copy(
        update={
            "condition": passport.condition.model_copy(update={"state_of_charge_pct": 12.5}),
            "performance": passport.performance.model_copy(update={"rated_capacity_ah": 205.0}),
            "identity": passport.identity.model_copy(update={"manufacturer_name": "Muster Batterien AG"}),
        }
    )
    out = idta.to_idta(changed)
    assert out["product_condition"]["StateOfCharge"] == {
        "StateOfChargeValue": 12.5,
        "LastUpdate": "2000-01-01T14:23:00",
    }
    assert out["technical_data"]["TechnicalPropertyAreas"]["CapacityEnergyVoltage"]["RatedCapacity"] == 205.0
    assert out["digital_nameplate"]["ManufacturerName"] == [{"en": "Muster Batterien AG"}]
    # The technical data named its manufacturer differently from the nameplate: that stays its own.
    assert out["technical_data"]["GeneralInformation"]["ManufacturerName"] == "sQoGGV3"


# Parts by semantic id, and views.


def test_each_part_is_found_by_its_semantic_id() -> None:
    passport = load({"idta": parts()})
    for part in idta_fields.PARTS:
        urn = aspects.semantic_id(idta.schema(part))
        assert urn.startswith(f"urn:samm:io.admin-shell.idta.batterypass.{part}:1.0.")
        assert idta.semantic_id(part) == urn and idta.part_of(urn) == part
        assert exact(idta.to_idta_part(passport, idta.part_of(urn) or ""), parts()[part])
    # CX-0160 names the 1.0.0 versions; the node answers with the bug-fix version it has.
    assert (
        idta.part_of("urn:samm:io.admin-shell.idta.batterypass.technical_data:1.0.0#TechnicalData") == "technical_data"
    )
    assert idta.part_of("urn:samm:io.admin-shell.idta.batterypass.technical_data:2.0.0#TechnicalData") is None
    assert idta.part_of("urn:samm:io.admin-shell.idta.batterypass.technical_data:1.0.1#Nameplate") is None
    assert idta.part_of("urn:samm:io.catenax.battery.battery_pass:6.1.0#BatteryPass") is None
    assert idta.part_of("not a urn") is None
    with pytest.raises(ValueError, match="not an IDTA-02035 part: 'nameplate'"):
        idta.to_idta_part(passport, "nameplate")


def test_each_reader_sees_only_its_levels_parts_and_properties() -> None:
    passport = load({"idta": parts()})
    public = idta.view_idta(passport, {"public"})
    assert set(public) == {
        "digital_nameplate",
        "handover_documentation",
        "carbon_footprint",
        "technical_data",
        "material_composition",
        "circularity",
    }
    assert {"LifeCycleStage", "DateOfPuttingIntoService", "ResultsOfTestReportsProvingCompliance"}.isdisjoint(
        public["digital_nameplate"]
    )
    areas = public["technical_data"]["TechnicalPropertyAreas"]
    assert "CapacityFade" not in areas["CapacityEnergyVoltage"] and "PowerFade" not in areas["PowerCapability"]
    assert set(areas["Resistance"]) == {
        "InitialInternalResistanceAtBatteryCellLevel",
        "InitialInternalResistanceAtBatteryPackLevel",
        "InitialInternalResistanceAtBatteryModuleLevel",
    }
    assert set(areas["Lifetime"]) == {
        "ExpectedNumberOfCycles",
        "CapacityThresholdExhaustion",
        "CycleLifeReferenceTest",
        "CrateOfRelevantCycleLifeTest",
    }
    assert "BatteryMaterials" not in public["material_composition"]
    assert public["circularity"]["SafetyMeasures"] == {"ExtinguishingAgents": ["0ds2fkjV"]}  # public label data
    assert {"DismantlingAndRemovalInformation", "SparePartSources"}.isdisjoint(public["circularity"])
    assert idta.view_idta_part(passport, "product_condition", {"public"}) == {}

    interest = idta.view_idta(passport, {"legitimate_interest"})
    assert exact(interest["product_condition"], example("product_condition"))
    assert interest["digital_nameplate"]["LifeCycleStage"] == "original"
    assert "ResultsOfTestReportsProvingCompliance" not in interest["digital_nameplate"]
    assert exact(interest["material_composition"], example("material_composition"))

    authority = idta.view_idta(passport, {"authority"})
    assert "product_condition" not in authority and "LifeCycleStage" not in authority["digital_nameplate"]
    assert authority["digital_nameplate"]["ResultsOfTestReportsProvingCompliance"] == ["Q"]
    assert "CapacityFade" not in authority["technical_data"]["TechnicalPropertyAreas"]["CapacityEnergyVoltage"]
    assert exact(idta.view_idta(passport, {"authority", "legitimate_interest"}), parts())


def test_the_node_view_of_an_idta_passport_keeps_restricted_properties_from_the_public() -> None:
    passport = load({"idta": parts()})
    public = model.view(passport, {"public"})
    keys = set()

    def collect(node: Any) -> None:
        if isinstance(node, dict):
            keys.update(node)
            for value in node.values():
                collect(value)
        elif isinstance(node, list):
            for value in node:
                collect(value)

    collect(public)
    restricted = {"ResultsOfTestReportsProvingCompliance", "LifeCycleStage", "CapacityFade", "SafetyInstructions"}
    assert not keys & (restricted | {"BatteryMaterials", "DateOfPuttingIntoService", "SparePartSources"})
    assert "condition" not in public and "dismantling" not in public
    assert public["labels"]["extinguishing_agents"] == ["0ds2fkjV"]


def _document(identifier: str) -> dict[str, Any]:
    document = copy.deepcopy(example("handover_documentation")["Documents"][0])
    document["DocumentIds"][0]["DocumentIdentifier"] = identifier
    return document


def test_a_handover_document_is_seen_by_those_who_may_see_what_refers_to_it() -> None:
    bundle = parts()
    bundle["digital_nameplate"]["EUDeclarationOfConformity"] = ["doc-conformity"]
    bundle["digital_nameplate"]["ResultsOfTestReportsProvingCompliance"] = ["doc-tests", "doc-both"]
    bundle["product_condition"]["InformationOnAccidents"] = ["doc-accident", "doc-both"]
    names = ["doc-conformity", "doc-tests", "doc-accident", "doc-both", "doc-unreferenced"]
    bundle["handover_documentation"]["Documents"] = [_document(name) for name in names]

    def seen(granted: set[str]) -> list[str]:
        view = idta.view_idta(load({"idta": bundle}), granted).get("handover_documentation", {"Documents": []})
        return [d["DocumentIds"][0]["DocumentIdentifier"] for d in view["Documents"]]

    assert seen({"public"}) == ["doc-conformity", "doc-unreferenced"]
    assert seen({"authority"}) == ["doc-conformity", "doc-unreferenced", "doc-both", "doc-tests"]
    assert seen({"legitimate_interest"}) == ["doc-conformity", "doc-unreferenced", "doc-both", "doc-accident"]
    # The whole export has them all; grouped by access level, each group in its order (docs/passport-model.md).
    everything = idta.to_idta(load({"idta": bundle}))["handover_documentation"]["Documents"]
    assert sorted(d["DocumentIds"][0]["DocumentIdentifier"] for d in everything) == sorted(names)


# Across the families.

# Node fields both families carry (catenax.MOVED and idta_fields.FIELDS), and Catena-X's that IDTA cannot.
BOTH = {
    ("identity", "passport_id"),
    ("identity", "manufacturer_id"),
    ("identity", "manufacturing_date"),
    ("identity", "chemistry"),
    ("performance", "rated_capacity_ah"),
    ("performance", "capacity_threshold_exhaustion_pct"),
    ("performance", "certified_usable_energy_kwh"),
    ("performance", "voltage_min_v"),
    ("performance", "voltage_nominal_v"),
    ("performance", "voltage_max_v"),
    ("performance", "expected_lifetime_cycles"),
    ("performance", "idle_temperature_min_c"),
    ("performance", "idle_temperature_max_c"),
    ("performance", "initial_round_trip_efficiency_pct"),
    ("performance", "round_trip_efficiency_50pct_life_pct"),
    ("performance", "internal_resistance_pack_ohm"),
    ("condition", "status"),
    ("condition", "put_into_service"),
    ("condition", "state_of_charge_pct"),
    ("condition", "state_of_certified_energy_pct"),
    ("condition", "remaining_energy_kwh"),
    ("condition", "remaining_capacity_ah"),
    ("condition", "capacity_fade_pct"),
    ("condition", "power_fade_pct"),
    ("condition", "full_cycles"),
    ("identity", "category"),  # as far as the value is one of IDTA's four
}
CATENAX_ONLY = {
    ("identity", "model_id"),
    ("performance", "original_power_w"),
    ("circularity", "recycled_cobalt_pct"),
    ("circularity", "recycled_lithium_pct"),
    ("circularity", "recycled_nickel_pct"),
    ("circularity", "recycled_lead_pct"),
    ("labels", "declaration_of_conformity_id"),
}


def test_the_lists_of_what_crosses_the_families_are_complete() -> None:
    idta_targets = {(row.group, row.field) for row in idta.rows()} | {("identity", "passport_id")}
    moved = {(group, name) for _, group, name in catenax.MOVED}
    assert moved == BOTH | CATENAX_ONLY
    assert moved & idta_targets == BOTH and not CATENAX_ONLY & idta_targets


def _value(document: dict[str, Any], path: str) -> Any:
    node: Any = document
    for key in path.split("."):
        node = node.get(key) if isinstance(node, dict) else None
    return node


_STEP = re.compile(r"([^.\[\]]+)|\[(\d+)\]")


def _keys(path: str) -> list[str | int]:
    return [int(index) if index else key for key, index in _STEP.findall(path)]


def completed(document: dict[str, Any], problems: list[tuple[str, str]], example: dict[str, Any]) -> dict[str, Any]:
    """Complete an export as an operator would: each value it lacks (or cannot hold) taken from the example."""
    document = copy.deepcopy(document)
    for path, _ in problems:
        *parents, last = _keys(path)
        source: Any = example
        for key in [*parents, last]:
            source = source[key]  # the example has every value its format requires
        node: Any = document
        for key in parents:
            node = node.setdefault(key, {}) if isinstance(key, str) else node[key]
        node[last] = copy.deepcopy(source)
    return document


@pytest.mark.parametrize("version", examples.CATENAX_VERSIONS)
def test_a_catenax_passport_exports_as_idta_parts_and_back_losing_nothing_idta_carries(version: str) -> None:
    original = examples.catenax(version)
    passport = load(original)
    bundle, problems = exports.render_document(passport, "idta")
    nameplate = bundle["idta"]["digital_nameplate"]
    assert bundle["passport_id"] == examples.PASSPORT_ID
    assert (nameplate["SerialNumber"], nameplate["DateOfManufacture"], nameplate["LifeCycleStage"]) == (
        "SN12345678",
        "2000-01-31",
        "original",
    )
    assert nameplate["DateOfPuttingIntoService"] == "2024-02-29"
    assert bundle["idta"]["technical_data"]["TechnicalPropertyAreas"]["CapacityEnergyVoltage"]["RatedCapacity"] == 4.0
    assert bundle["idta"]["product_condition"]["StateOfCharge"] == {"StateOfChargeValue": 50.0}
    missing = dict(problems)
    assert missing["idta.technical_data.GeneralInformation.BatteryCategory"] == (
        "the battery category 'sli' has no IDTA-02035 counterpart (lmt, ev, industrial, stationary)"
    )
    assert missing["idta.digital_nameplate.URIOfTheProduct"] == exports.MISSING
    assert missing["idta.product_condition.StateOfCharge.LastUpdate"] == exports.MISSING
    with pytest.raises(exports.ExportIncomplete) as caught:
        exports.export_document(passport, "idta")
    assert caught.value.missing == [path for path, _ in problems]

    # Completed with what IDTA requires and the passport lacks, the export reads back through the one read
    # path (schema, then mapping), and every value both families carry comes back unchanged.
    back = load(completed(bundle, problems, examples.idta_bundle(examples.PASSPORT_ID)))
    again = catenax.to_catenax(back)
    for path, group, name in catenax.MOVED:
        before, after = _value(original, path), _value(again, path)
        if (group, name) in BOTH - {("identity", "category")}:
            assert _same(after, before), path
        elif (group, name) in CATENAX_ONLY:
            assert after is None, path
    # The one value the example cannot carry across: its category SLI has no IDTA name (the completion took
    # the IDTA example's, ev, which is Catena-X's EV).
    assert _value(again, "identification.category") == "EV"


def _same(a: Any, b: Any) -> bool:
    return type(a) is type(b) and a == b


def test_an_idta_passport_exports_as_catenax_and_back_losing_nothing_catenax_carries() -> None:
    original = examples.idta_bundle()
    passport = load(original)
    document, problems = exports.render_document(passport, "catenax")
    assert document["specVersion"] == "urn:io.catenax.battery.battery_pass:6.1.0"
    assert document["metadata"]["passportIdentifier"] == examples.BUNDLE_ID
    assert document["performance"]["rated"]["capacity"]["value"] == 210.0
    assert document["identification"]["category"] == "EV"  # IDTA's and the node's ev, in Catena-X's spelling
    missing = dict(problems)
    assert missing["metadata.version"] == exports.MISSING
    # The validator checks the export as an import would: IDTA's manufacturer identifier is free text, and
    # Catena-X wants a BPNL there.
    assert missing["operation.manufacturer.manufacturer"] == 'must be a BPNL (BPNL and 12 letters or digits), got "f8"'
    with pytest.raises(exports.ExportIncomplete):
        exports.export_document(passport, "catenax")

    back = load(completed(document, problems, examples.catenax()))
    again = idta.to_idta(back)
    for row in idta.rows():
        crosses = (row.group, row.field) in BOTH - {("identity", "manufacturer_id")}
        if crosses and row.step is None and not row.echo and row.measured is None:
            before = _value(original["idta"][row.part], ".".join(row.prefix))
            assert _same(_value(again[row.part], ".".join(row.prefix)), before), row.path
    # The one value that cannot cross: "f8" is no BPNL (the completion took the Catena-X example's).
    assert (
        again["digital_nameplate"]["ManufacturerIdentifier"]
        == examples.catenax()["operation"]["manufacturer"]["manufacturer"]
    )


def test_a_node_passport_exports_as_idta_with_what_it_lacks_named() -> None:
    passport = model.parse_passport(model.generate(1))
    with pytest.raises(exports.ExportIncomplete) as caught:
        exports.export_document(passport, "idta")
    problems = dict(caught.value.problems)
    assert problems["idta.digital_nameplate.DateOfManufacture"] == "'2027-02' is not a day (the part needs YYYY-MM-DD)"
    assert "idta.digital_nameplate.URIOfTheProduct" in problems
    parts_, _ = idta.render(passport)
    materials = parts_["material_composition"]["BatteryMaterials"]
    assert [m["IsCriticalRawMaterial"] for m in materials] == [False, True]  # graphite is a critical raw material
    assert parts_["product_condition"]["StateOfCharge"]["LastUpdate"] == "2026-11-01T00:00:00Z"


# The management API.


@pytest.fixture
async def api(node_factory: NodeFactory, http: aiohttp.ClientSession) -> tuple[Node, Management]:
    node = await node_factory(api_key=API_KEY)
    return node, Management(http, node)


async def test_an_export_that_cannot_be_complete_is_a_422_naming_what_is_missing(api: tuple[Node, Management]) -> None:
    _, management = api
    status, stored = await management.call("POST", "/management/v1/passports", examples.catenax())
    assert status == 201, stored
    status, problem = await management.call("GET", f"/management/v1/passports/{stored['id']}/export?format=idta")
    assert status == 422, problem
    assert problem["title"] == "Unprocessable content" and "cannot be exported complete as idta" in problem["detail"]
    paths = {error["path"] for error in problem["errors"]}
    assert {"idta.digital_nameplate.URIOfTheProduct", "idta.technical_data.GeneralInformation.BatteryCategory"} <= paths

    bundle = examples.idta_bundle()
    status, stored = await management.call("POST", "/management/v1/passports", bundle)
    assert status == 201, stored
    status, exported = await management.call("GET", f"/management/v1/passports/{stored['id']}/export?format=idta")
    assert status == 200 and exact(exported, bundle)
    status, problem = await management.call("GET", f"/management/v1/passports/{stored['id']}/export?format=catenax")
    assert status == 422 and "metadata.version" in {error["path"] for error in problem["errors"]}


def test_the_cli_refuses_an_incomplete_export_naming_what_is_missing(tmp_path: Path) -> None:
    source = tmp_path / "passports.jsonl"
    source.write_text(json.dumps(examples.catenax()) + "\n")
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "CONNECTOR_DATA_DIR": str(tmp_path / "data"),
        "CONNECTOR_LOG_LEVEL": "WARNING",
    }

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        command = [sys.executable, "-m", "connector.cli", "passports", *args]
        return subprocess.run(command, env=env, capture_output=True, text=True, timeout=300, check=False)

    assert run("import", str(source)).returncode == 0
    exported = run("export", examples.PASSPORT_ID, "--format", "idta")
    assert exported.returncode == 1 and exported.stdout == ""
    assert "cannot be exported complete as idta: idta.digital_nameplate.URIOfTheProduct: required" in exported.stderr
    assert run("export", examples.PASSPORT_ID, "--format", "catenax").returncode == 0


def test_a_property_the_schema_does_not_know_is_kept_for_authorities_only() -> None:
    bundle = parts()
    bundle["digital_nameplate"]["BatteryColour"] = "blue"
    bundle["technical_data"]["GeneralInformation"]["Sticker"] = {"text": "x"}
    passport = load({"idta": bundle})
    assert kept(passport)["authority"]["digital_nameplate"] == {
        "ResultsOfTestReportsProvingCompliance": ["Q"],
        "BatteryColour": "blue",
    }
    assert "BatteryColour" not in idta.view_idta(passport, {"public", "legitimate_interest"})["digital_nameplate"]
    assert idta.view_idta(passport, {"authority"})["digital_nameplate"]["BatteryColour"] == "blue"
    # Inside a known property, an unknown key goes with the property.
    assert idta.view_idta(passport, {"public"})["technical_data"]["GeneralInformation"]["Sticker"] == {"text": "x"}
    assert exact(idta.to_idta(passport), bundle)
