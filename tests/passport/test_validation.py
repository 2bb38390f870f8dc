"""Validation of passports against the official schemas and the node's product rules, format detection, and
values that leave the node exactly as they came in.

Every tricky record below is derived from the Catena-X BatteryPass 6.1.0 example; each must be refused
with every failing JSON path and its reason, and nothing else.
"""

from __future__ import annotations

import copy
import json
import tomllib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from connector.domain import passport as model
from connector.domain.passport import aspects, idta_fields, validation
from tests.conftest import data_path
from tests.passport import examples

PASSPORT_ID = examples.PASSPORT_ID
ROOT = Path(__file__).resolve().parents[2]
REAL_DAY = examples.NOISE[("catenax-6.1", ("operation", "intoServiceDate"))][1]  # the examples' made-real day
example = examples.catenax
published = examples.catenax_published


def refused(document: Any) -> list[tuple[str, str]]:
    with pytest.raises(model.PassportInvalid) as caught:
        model.load_document(document)
    return caught.value.errors


def dumps(value: Any) -> bytes:
    return orjson.dumps(value)


def dumps_lax(value: Any) -> str:
    return repr(value)  # NaN has no JSON form; repr compares it too


def at(path: str, value: Any) -> Callable[[dict[str, Any]], None]:
    """Return an edit that sets the value at a dotted path (a number segment indexes a list)."""

    def edit(document: dict[str, Any]) -> None:
        keys: list[str | int] = [int(k) if k.isdigit() else k for k in path.split(".")]
        node: Any = document
        for key in keys[:-1]:
            node = node[key]
        node[keys[-1]] = value

    return edit


def removed(path: str) -> Callable[[dict[str, Any]], None]:
    def edit(document: dict[str, Any]) -> None:
        *parents, last = path.split(".")
        node: Any = document
        for key in parents:
            node = node[key]
        del node[last]

    return edit


UPPER = "urn:uuid:550E8400-E29B-41D4-A716-446655440000"
TRICKY: list[tuple[str, Callable[[dict[str, Any]], None], list[tuple[str, str]]]] = [
    (
        "number as a string",
        at("performance.rated.capacity.value", "120.6"),
        [("performance.rated.capacity.value", 'must be a number, got string "120.6"')],
    ),
    (
        "boolean where a number goes",
        at("performance.rated.energy.value", True),
        [("performance.rated.energy.value", "must be a number, got boolean true")],
    ),
    (
        "status outside its enum",
        at("sustainability.status", "broken"),
        [
            (
                "sustainability.status",
                'must be one of "original", "repurposed", "re-used", "remanufactured", "waste", got "broken"',
            )
        ],
    ),
    (
        "31 April",
        at("metadata.issueDate", "2024-04-31"),
        [("metadata.issueDate", 'must be a real calendar date (YYYY-MM-DD), got "2024-04-31"')],
    ),
    (
        "a date in another shape",
        at("commercial.placedOnMarket", "01.01.2000"),
        [("commercial.placedOnMarket", 'must be a real calendar date (YYYY-MM-DD), got "01.01.2000"')],
    ),
    (
        "timestamp with an offset beyond 14 hours",
        at("performance.dynamic.stateOfCharge.time", "2023-12-07T10:39:13.576+15:00"),
        [
            (
                "performance.dynamic.stateOfCharge.time",
                "must be a real date and time (YYYY-MM-DDThh:mm:ss, optional fraction and offset up to ±14:00), "
                'got "2023-12-07T10:39:13.576+15:00"',
            )
        ],
    ),
    (
        "30 February in a timestamp",
        at("performance.dynamic.fullCycles.time", "2023-02-30T10:00:00Z"),
        [
            (
                "performance.dynamic.fullCycles.time",
                "must be a real date and time (YYYY-MM-DDThh:mm:ss, optional fraction and offset up to ±14:00), "
                'got "2023-02-30T10:00:00Z"',
            )
        ],
    ),
    (
        "timestamp inside other text (the schema's pattern has no anchors)",
        at("performance.dynamic.energy.soce.time", "at 2023-12-07T10:39:13Z or so"),
        [
            (
                "performance.dynamic.energy.soce.time",
                "must be a real date and time (YYYY-MM-DDThh:mm:ss, optional fraction and offset up to ±14:00), "
                'got "at 2023-12-07T10:39:13Z or so"',
            )
        ],
    ),
    (
        "malformed BPNL",
        at("operation.manufacturer.manufacturer", "BPNL123"),
        [("operation.manufacturer.manufacturer", 'must be a BPNL (BPNL and 12 letters or digits), got "BPNL123"')],
    ),
    (
        "over-long header",
        at("sources.0.header", "x" * 101),
        [("sources[0].header", "must be at most 100 characters, got 101")],
    ),
    (
        "negative carbon footprint",
        at("sustainability.carbonFootprint.0.value", -12.678),
        [("sustainability.carbonFootprint[0].value", "must be at least 0, got -12.678")],
    ),
    (
        "recycled share of 112 %",
        at("materials.active.cobalt.recycled", 112),
        [("materials.active.cobalt.recycled", "must be at most 100, got 112")],
    ),
    (
        "state of charge of 150 %",
        at("performance.dynamic.stateOfCharge.value", 150.0),
        [("performance.dynamic.stateOfCharge.value", "must be at most 100, got 150.0")],
    ),
    (
        "negative mass",
        at("characteristics.physicalDimension.weight.value", -20.0),
        [("characteristics.physicalDimension.weight.value", "must be at least 0, got -20.0")],
    ),
    (
        "negative energy",
        at("performance.dynamic.energy.remaining.value", -0.5),
        [("performance.dynamic.energy.remaining.value", "must be at least 0, got -0.5")],
    ),
    (
        "half a cycle",
        at("performance.rated.lifetime.cycleLifeTesting.cycles", 1500.5),
        [("performance.rated.lifetime.cycleLifeTesting.cycles", "must be a whole number, got 1500.5")],
    ),
    (
        "rated capacity of zero (a node rule on a moved value)",
        at("performance.rated.capacity.value", 0.0),
        [("performance.rated.capacity.value", "must be greater than 0, got 0.0")],
    ),
    (
        "predecessor is the passport itself",
        at("metadata.predecessor", PASSPORT_ID.removeprefix("urn:uuid:")),
        [("metadata.predecessor", "must not be the passport itself (metadata.passportIdentifier)")],
    ),
    (
        "upper-case UUID",
        at("metadata.passportIdentifier", UPPER),
        [("metadata.passportIdentifier", f'must be a canonical lower-case UUID, got "{UPPER}"')],
    ),
    (
        "NaN where a number goes",
        at("performance.rated.capacity.value", float("nan")),
        [("performance.rated.capacity.value", "must be a finite number, got NaN")],
    ),
    (
        "infinity where a number goes",
        at("performance.rated.voltage.max", float("inf")),
        [("performance.rated.voltage.max", "must be a finite number, got Infinity")],
    ),
    (
        "NaN in a property the schema does not name",
        at("metadata.note", float("nan")),
        [("metadata.note", "must be a finite number, got NaN")],
    ),
    (
        "null",
        at("metadata.backupReference", None),
        [("metadata.backupReference", "must not be null (leave the property out)")],
    ),
    (
        "a required property missing",
        removed("metadata.passportIdentifier"),
        [("metadata.passportIdentifier", "required")],
    ),
]


@pytest.mark.parametrize(("name", "edit", "expected"), TRICKY, ids=[name for name, _, _ in TRICKY])
def test_a_tricky_catenax_record_is_refused_naming_every_path(
    name: str, edit: Callable[[dict[str, Any]], None], expected: list[tuple[str, str]]
) -> None:
    document = example()
    edit(document)
    assert refused(document) == expected
    # The schema and the product rules find all but the node's own rules on the values it reads.
    assert validation.check("catenax-6.1", document) == ([] if name.startswith("rated capacity") else expected)


def test_every_fault_of_a_record_is_named_not_only_the_first() -> None:
    document = example()
    for _, edit, _ in TRICKY[:3] + TRICKY[9:12]:
        edit(document)
    assert [path for path, _ in refused(document)] == [  # in the order of the document
        "sources[0].header",
        "sustainability.carbonFootprint[0].value",
        "sustainability.status",
        "performance.rated.energy.value",
        "performance.rated.capacity.value",
        "materials.active.cobalt.recycled",
    ]


@pytest.mark.parametrize("version", examples.CATENAX_VERSIONS)
def test_the_published_examples_are_refused_only_for_their_into_service_date(version: str) -> None:
    ((path, day),) = examples.noise(f"catenax-{version[:3]}")
    assert path == "operation.intoServiceDate"
    assert refused(published(version)) == [(path, f'must be a real calendar date (YYYY-MM-DD), got "{day}"')]


@pytest.mark.parametrize("version", ["6.0.0", "6.1.0"])
def test_the_examples_are_accepted(version: str) -> None:
    document = example(version)
    assert validation.check(f"catenax-{version[:3]}", document) == []
    passport = model.load_document(document)
    assert passport.passport_id == PASSPORT_ID
    assert passport.condition is not None and passport.condition.put_into_service == REAL_DAY


def test_the_status_re_used_is_read_and_written_back_in_the_catenax_spelling() -> None:
    document = example()
    document["sustainability"]["status"] = "re-used"
    passport = model.load_document(document)
    assert passport.condition is not None and passport.condition.status == "reused"
    assert model.to_catenax(passport)["sustainability"]["status"] == "re-used"


def test_a_category_in_catenax_spelling_is_the_nodes_and_goes_back_as_it_came() -> None:
    document = example()
    document["identification"]["category"] = "EV"
    passport = model.load_document(document)
    assert passport.identity.category == "ev"  # the node spells categories as IDTA-02035 does
    assert model.to_catenax(passport)["identification"]["category"] == "EV"
    # A passport stored before the node spelt it so holds "EV": it exports the same in both families.
    stored = passport.to_json()
    stored["identity"]["category"] = "EV"
    legacy = model.parse_passport(stored)
    assert model.to_catenax(legacy)["identification"]["category"] == "EV"
    assert model.to_idta(legacy)["technical_data"]["GeneralInformation"]["BatteryCategory"] == "ev"


# --- values never change on the way out -----------------------------------------------------------------


@pytest.mark.parametrize("version", ["6.0.0", "6.1.0"])
def test_an_example_exports_byte_for_byte_in_its_own_format(version: str) -> None:
    document = example(version)
    original = dumps(document)
    passport = model.load_document(document)
    assert dumps(document) == original  # the input is not modified
    assert dumps(model.to_catenax(passport)) == original
    # Through the node's stored JSON too (what the store keeps, serialised as the store does).
    stored = orjson.loads(orjson.dumps(passport.to_json()))
    assert dumps(model.to_catenax(model.parse_passport(stored))) == original
    # And every reader level together sees exactly the document.
    assert dumps(model.view_catenax(passport, {"authority", "legitimate_interest"})) == original


def test_integers_booleans_and_floats_keep_their_json_types() -> None:
    document = example()
    document["performance"]["rated"]["capacity"]["value"] = 4  # an integer where the example has 4.0
    document["performance"]["dynamic"]["fullCycles"]["value"] = 1500.0  # a whole float where it has 1500
    document["handling"]["applicable"] = False
    original = dumps(document)
    passport = model.load_document(document)
    assert passport.performance is not None and type(passport.performance.rated_capacity_ah) is int
    exported = model.to_catenax(passport)
    assert dumps(exported) == original
    assert exported["performance"]["dynamic"]["fullCycles"]["value"] == 1500.0
    assert type(exported["performance"]["dynamic"]["fullCycles"]["value"]) is float


def test_a_view_keeps_the_source_order_of_what_it_shows() -> None:
    document = example()
    public = model.view_catenax(model.load_document(document), {"public"})

    def keys_in_order(full: Any, part: Any) -> None:
        if isinstance(part, dict):
            assert list(part) == [k for k in full if k in part]
            for key, value in part.items():
                keys_in_order(full[key], value)

    keys_in_order(document, public)
    assert "intoServiceDate" not in public["operation"]


@pytest.mark.parametrize(
    ("field", "value"),
    [
        (("performance", "rated_capacity_ah"), "120.6"),
        (("identity", "mass_kg"), True),
        (("circularity", "recycled_cobalt_pct"), float("nan")),
        (("condition", "full_cycles"), 12.5),
        (("labels", "separate_collection_symbol"), 1),
    ],
)
def test_the_node_format_takes_no_coerced_values(field: tuple[str, str], value: Any) -> None:
    document = model.generate(3)
    document.setdefault(field[0], {})[field[1]] = value
    errors = refused(document)
    assert [path for path, _ in errors] == [".".join(field)]


def test_a_node_passport_cannot_be_its_own_predecessor() -> None:
    document = model.generate(3)
    document["identity"]["predecessor_passport_ids"] = [document["identity"]["passport_id"].upper()]
    assert refused(document) == [
        ("identity.predecessor_passport_ids", "must not name the passport itself (identity.passport_id)")
    ]


def test_nan_in_node_extension_data_is_refused() -> None:
    document = model.generate(3)
    document["extensions"] = [{"format": "catenax", "tag": "public", "data": {"x": [1, float("nan")]}}]
    assert refused(document) == [("extensions[0].data.x[1]", "must be a finite number, got NaN")]


# --- format detection -----------------------------------------------------------------------------------


def dpp_7() -> dict[str, Any]:
    """A generic Catena-X DigitalProductPassport 7.0.0 (top level as its schema requires)."""
    schema = json.loads(
        data_path(
            "passports",
            "catenax-sldt",
            "io.catenax.generic.digital_product_passport",
            "7.0.0",
            "gen",
            "DigitalProductPassport-schema.json",
        ).read_text()
    )
    document: dict[str, Any] = {key: {} for key in schema["required"]}
    document["metadata"] = {
        "passportIdentifier": PASSPORT_ID,
        "predecessor": {"applicable": False},
        "passportStatus": "draft",
    }
    document["identification"] = {"type": {"manufacturerPartId": "123-0.740-3434-A"}}
    document["sources"] = []
    document["compliances"] = {"productCompliances": []}
    return document


@pytest.mark.parametrize(
    ("document", "expected"),
    [
        (example("6.0.0"), "catenax-6.0"),
        (example("6.1.0"), "catenax-6.1"),
        (
            {**example("6.0.0"), "specVersion": "urn:samm:io.catenax.battery.battery_pass:6.0.0#BatteryPass"},
            "catenax-6.0",
        ),
        ({"idta": {"digital_nameplate": {}}}, "idta"),
        ({"identity": {"passport_id": "p", "battery_id": "b"}}, "node"),
    ],
)
def test_the_format_is_detected_from_the_document(document: dict[str, Any], expected: str) -> None:
    assert model.detect_format(document) == expected


@pytest.mark.parametrize(
    ("document", "message"),
    [
        (dpp_7(), "a Catena-X DigitalProductPassport 7.0.0, not a battery passport"),
        (
            {**example(), "specVersion": "urn:io.catenax.battery.battery_pass:5.0.0"},
            "a Catena-X BatteryPass 5.0.0; this node reads BatteryPass 6.0.0 and 6.1.0",
        ),
        (
            {"specVersion": "urn:io.catenax.pcf:datamodel:version:7.0.0", "id": "x", "pcf": {}},
            "a Catena-X Product Carbon Footprint (urn:io.catenax.pcf:datamodel:version:7.0.0), not a battery passport",
        ),
        (
            examples.idta_part("digital_nameplate"),
            'an IDTA-02035 digital_nameplate part on its own; send the parts as {"idta": {"digital_nameplate": {...}, ...}}',
        ),
    ],
)
def test_a_known_document_that_is_not_a_battery_passport_is_named(document: dict[str, Any], message: str) -> None:
    errors = refused(document)
    assert errors == [("(passport)", message)]


def test_an_unknown_document_says_what_was_looked_for() -> None:
    ((path, message),) = refused({"some": "thing", "other": 1})
    assert path == "(passport)"
    assert message == (
        "not a passport this node reads (top-level keys: some, other); looked for a Catena-X BatteryPass 6.0.0/6.1.0 "
        '(specVersion, or metadata.passportIdentifier with the battery sections), an IDTA-02035 bundle ({"idta": '
        "{...}}) or the node's JSON (identity)"
    )


# --- IDTA-02035 parts -----------------------------------------------------------------------------------


def test_every_idta_example_part_is_accepted_with_its_language_text_shapes_as_warnings() -> None:
    bundle = {"idta": examples.idta_parts()}
    original = dumps(bundle)
    findings = validation.inspect("idta", bundle)
    assert findings.errors == []
    warned = {path for path, _ in findings.warnings}
    assert "idta.digital_nameplate.ManufacturerName" in warned
    assert "idta.digital_nameplate.AddressInformation.Languages" in warned
    assert "idta.handover_documentation.Documents[0].DocumentVersions[0].Language" in warned
    assert "idta.carbon_footprint.ProductCarbonFootprints[0].LifeCyclePhases" in warned
    assert "idta.circularity.SparePartSources[0].NameOfSupplier" in warned
    assert {p.split(".")[1] for p in warned} == {
        "digital_nameplate",
        "handover_documentation",
        "carbon_footprint",
        "circularity",
    }
    assert dict(findings.warnings)["idta.digital_nameplate.ManufacturerName"] == (
        "one language text given bare where the schema wants a list of them; accepted as published"
    )
    assert dict(findings.warnings)["idta.digital_nameplate.AddressInformation.Languages"] == (
        "one string given bare where the schema wants a list of them; accepted as published"
    )
    reading = model.read_document(bundle)
    assert reading.format == "idta" and reading.warnings == findings.warnings
    assert dumps(bundle) == original


@pytest.mark.parametrize("part", ["circularity", "technical_data"])
def test_a_published_idta_example_is_refused_only_for_its_noise(part: str) -> None:
    # The renewable share (-12143.4 %) and the C-rate (-57931.4): the schema with the node's rules refuses them.
    bundle = {"idta": examples.idta_parts()}
    bundle["idta"][part] = examples.idta_published(part)
    ((path, value),) = examples.noise(f"idta.{part}")
    assert refused(bundle) == [(f"idta.{part}.{path}", f"must be at least 0, got {value}")]
    assert validation.check(f"idta.{part}", bundle["idta"][part]) == [(path, f"must be at least 0, got {value}")]


@pytest.mark.parametrize(
    ("part", "edit", "expected"),
    [
        (
            "product_condition",
            at("StateOfCharge.StateOfChargeValue", "50"),
            [("idta.product_condition.StateOfCharge.StateOfChargeValue", 'must be a number, got string "50"')],
        ),
        (
            "product_condition",
            at("NumberOfFullCycles.NumberOfFullCyclesValue", float("nan")),
            [("idta.product_condition.NumberOfFullCycles.NumberOfFullCyclesValue", "must be a finite number, got NaN")],
        ),
        (
            "product_condition",
            at("EnergyThroughput.LastUpdate", "2000-02-30T14:23:00"),
            [
                (
                    "idta.product_condition.EnergyThroughput.LastUpdate",
                    "must be a real date and time (YYYY-MM-DDThh:mm:ss, optional fraction and offset up to ±14:00), "
                    'got "2000-02-30T14:23:00"',
                )
            ],
        ),
        (
            "digital_nameplate",
            at("DateOfManufacture", "2024-04-31"),
            [
                (
                    "idta.digital_nameplate.DateOfManufacture",
                    'must be a real calendar date (YYYY-MM-DD), got "2024-04-31"',
                )
            ],
        ),
        (
            "digital_nameplate",
            at("ManufacturerName", {"de": 7}),
            [("idta.digital_nameplate.ManufacturerName", 'must be an array, got object {"de":7}')],
        ),
        (
            "material_composition",
            at("BatteryChemistry", 12),
            [("idta.material_composition.BatteryChemistry", "must be an object, got number 12")],
        ),
    ],
)
def test_an_idta_part_that_fails_its_schema_is_refused_with_the_path(
    part: str, edit: Callable[[dict[str, Any]], None], expected: list[tuple[str, str]]
) -> None:
    bundle = {"idta": examples.idta_parts()}
    edit(bundle["idta"][part])
    errors = refused(bundle)
    assert errors == expected
    assert validation.check(f"idta.{part}", bundle["idta"][part]) == [
        (path.removeprefix(f"idta.{part}."), reason) for path, reason in expected
    ]


def test_the_shipped_schemas_are_the_official_files_and_ship_in_the_package() -> None:
    for fmt, (upstream, name) in aspects.SCHEMAS.items():
        shipped = aspects.schema_bytes(fmt)
        assert shipped == data_path("passports", *upstream.split("/"), name).read_bytes(), fmt
    assert set(aspects.IDTA_PARTS) == set(idta_fields.PARTS)
    package = ROOT / "connector" / "domain" / "passport"
    assert (package / "schemas" / "idta-smt" / "LICENSE").exists()
    assert (package / "schemas" / "catenax-sldt" / "LICENSE").exists()
    # And a wheel carries them: the package data globs reach every file several folders down.
    globs = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]
    covered = {path for pattern in globs["connector.domain.passport"] for path in package.glob(pattern)}
    assert {path for path in (package / "schemas").rglob("*") if path.is_file()} == covered


def test_check_accepts_a_copy_unchanged_and_is_repeatable() -> None:
    document = example()
    before = copy.deepcopy(document)
    assert validation.check("catenax-6.1", document) == []
    assert validation.check("catenax-6.1", document) == []
    assert document == before


@pytest.mark.parametrize(
    ("value", "real"),
    [
        ("2023-12-07T10:39:13.576+01:00", True),
        ("2000-01-01T14:23:00", True),  # no offset: XSD allows it, the IDTA examples use it
        ("2024-02-29T00:00:00Z", True),
        ("2000-02-29T24:00:00", True),  # the end of the day
        ("2023-12-07T10:39:13-14:00", True),
        ("2023-02-29T00:00:00Z", False),
        ("1900-02-29T01:00:00", False),  # 1900 is no leap year
        ("2023-04-31T10:00:00", False),
        ("2023-12-07T24:00:00.5", False),
        ("2023-12-07T10:60:00", False),
        ("2023-12-07T10:39:13+14:01", False),
        ("2023-12-07T10:39:13+15:00", False),
        ("2023-12-07 10:39:13", False),
        ("x2023-12-07T10:39:13Z", False),
    ],
)
def test_a_timestamp_is_a_real_instant(value: str, real: bool) -> None:
    document = example()
    document["performance"]["dynamic"]["stateOfCharge"]["time"] = value
    assert (validation.check("catenax-6.1", document) == []) is real


def test_keys_the_schema_does_not_name_come_back_as_they_were() -> None:
    document = example()
    document["x.y"] = {"z": 1}  # one key with a dot in it, not a path
    document["performance"]["performance.rated"] = "kept"
    document["metadata"]["note"] = [1, {"a": True}]
    original = dumps(document)
    passport = model.load_document(document)
    assert dumps(model.to_catenax(passport)) == original
    public = model.view_catenax(passport, {"public"})
    assert "x.y" not in public  # a section the node does not know: authorities only
    assert public["performance"]["performance.rated"] == "kept"  # one key, inside a public section
    assert public["metadata"]["note"] == [1, {"a": True}]
    assert model.view_catenax(passport, {"authority"})["x.y"] == {"z": 1}


def _paths(node: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    out = [prefix] if prefix else []
    if isinstance(node, dict):
        for key, value in node.items():
            out += _paths(value, (*prefix, key))
    elif isinstance(node, list):
        for index, value in enumerate(node):
            out += _paths(value, (*prefix, index))
    return out


JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers(-(10**6), 10**6) | st.floats() | st.text(max_size=12),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3),
    max_leaves=6,
)


def _edited(document: dict[str, Any], edits: list[tuple[tuple[Any, ...], Any]]) -> dict[str, Any]:
    for path, value in edits:
        node: Any = document
        try:  # an earlier edit may have replaced a container on the way: then this edit does nothing
            for step in path[:-1]:
                node = node[step]
            if isinstance(node, dict) or (isinstance(node, list) and isinstance(path[-1], int)):
                node[path[-1]] = value
        except (KeyError, IndexError, TypeError):
            pass
    return document


def idta_bundle() -> dict[str, Any]:
    return {"idta": examples.idta_parts()}


def node_passport() -> dict[str, Any]:
    return model.generate(5)


@pytest.mark.parametrize("base", [example, idta_bundle, node_passport], ids=["catenax", "idta", "node"])
@settings(max_examples=300, deadline=None)
@given(data=st.data())
def test_any_edit_of_a_record_is_read_or_refused_with_paths_never_an_exception(
    base: Callable[[], dict[str, Any]], data: st.DataObject
) -> None:
    paths = _paths(base())
    edits = data.draw(st.lists(st.tuples(st.sampled_from(paths), JSON_VALUES), min_size=1, max_size=4))
    document = _edited(base(), edits)
    original = dumps_lax(document)
    try:
        reading = model.read_document(document)
    except model.PassportInvalid as exc:
        assert exc.errors and all(path and reason for path, reason in exc.errors)
    else:
        if reading.format.startswith("catenax"):
            assert dumps(model.to_catenax(reading.passport)) == dumps(document)
        dumps(reading.passport.to_json())  # what the store writes: always JSON
    assert dumps_lax(document) == original  # the document is never changed


def test_odd_keys_are_named_as_they_are() -> None:
    document = example()
    document["metadata"][""] = {"x": None}
    document["metadata"]["0"] = float("nan")
    document["metadata"]["a.b"] = None
    assert refused(document) == [
        ('metadata[""].x', "must not be null (leave the property out)"),
        ("metadata.0", "must be a finite number, got NaN"),
        ('metadata["a.b"]', "must not be null (leave the property out)"),
    ]
