"""The registry's wire shapes: descriptors checked against the AAS Part 2 OpenAPI schemas (as the Tractus-X DTR ships
them, tests/data/standards/tractusx-dtr) and their metamodel parts against the AAS metamodel library aas-core3.1;
the Tractus-X visibility rule, asset links, cursors and subprotocolBody parsing."""

from __future__ import annotations

import base64
import json
import uuid
from functools import cache
from typing import Any

import jsonschema
import pytest
import yaml
from aas_core3_1 import jsonization, verification

from connector.domain import passport as model
from connector.domain import registry as wire
from connector.domain.errors import InvalidInput
from tests.conftest import data_path

OWNER = "BPNL00000003CRHK"
MEMBER = "BPNL00000003AYRE"
OTHER = "BPNL00000003AZQP"
WHERE = wire.Publication(
    "https://provider.example/public",
    "https://provider.example/api/dsp/2025-1",
    OWNER,
    (MEMBER,),
    ("public", "legitimate_interest", "authority"),
)


@cache
def _openapi() -> dict[str, Any]:
    path = data_path("standards", "tractusx-dtr", "backend", "src", "main", "resources", "static")
    loaded: dict[str, Any] = yaml.safe_load((path / "aas-registry-openapi.yaml").read_text(encoding="utf-8"))
    return loaded


def assert_valid(schema_name: str, instance: Any) -> None:
    """Check an answer against one of the AAS Part 2 OpenAPI's component schemas."""
    root = {"$ref": f"#/components/schemas/{schema_name}", "components": _openapi()["components"]}
    errors = sorted(jsonschema.Draft7Validator(root).iter_errors(instance), key=lambda e: list(e.path))
    assert not errors, [f"{list(e.path)}: {e.message}" for e in errors[:5]]


def assert_metamodel(shell: dict[str, Any]) -> None:
    """Check the metamodel parts of a shell descriptor with aas-core3.1: specific asset ids, references, idShorts."""
    for item in shell.get("specificAssetIds", ()):
        parsed = jsonization.specific_asset_id_from_jsonable(item)
        assert list(verification.verify(parsed)) == [], item
    if "idShort" in shell:
        assert verification.matches_id_short(shell["idShort"])
    for descriptor in shell["submodelDescriptors"]:
        reference = jsonization.reference_from_jsonable(descriptor["semanticId"])
        assert list(verification.verify(reference)) == []
        assert verification.matches_id_short(descriptor["idShort"])
        assert verification.matches_xs_any_uri(descriptor["id"])


def _shell(i: int = 0) -> dict[str, Any]:
    passport = model.parse_passport(model.generate(i))
    source = wire.ShellSource(passport.passport_id, passport.battery_id, passport.model_id, 1_764_590_400_123)
    return wire.shell_descriptor(source, WHERE)


@pytest.mark.parametrize("i", range(5))
def test_shell_descriptors_are_valid_aas_descriptors(i: int) -> None:
    shell = _shell(i)
    assert_valid("AssetAdministrationShellDescriptor", shell)
    assert_metamodel(shell)
    for descriptor in shell["submodelDescriptors"]:
        assert_valid("SubmodelDescriptor", descriptor)
    assert_valid("GetAssetAdministrationShellDescriptorsResult", wire.paged([shell], "abc"))
    for bpn in (MEMBER, OWNER):
        seen = wire.visible(shell, bpn, OWNER, frozenset())
        assert seen is not None
        assert_valid("AssetAdministrationShellDescriptor", seen)
        assert_metamodel(seen)


def test_the_error_body_is_an_aas_result() -> None:
    body = wire.result(400, "limit must be an integer of at least 1", 1_764_590_400_000)
    assert_valid("Result", body)
    assert body["messages"][0] == {
        "code": "400",
        "messageType": "Error",
        "text": "limit must be an integer of at least 1",
        "timestamp": "2025-12-01T12:00:00.000Z",
    }


def test_a_submodel_descriptor_points_through_the_data_plane_and_names_its_asset_per_level() -> None:
    shell = _shell()
    semantic_ids = [d["semanticId"]["keys"][0]["value"] for d in shell["submodelDescriptors"]]
    assert semantic_ids[0] == "urn:samm:io.catenax.battery.battery_pass:6.1.0#BatteryPass"
    assert "urn:samm:io.admin-shell.idta.batterypass.digital_nameplate:1.0.0#BatteryNameplate" in semantic_ids
    assert len(semantic_ids) == 8
    descriptor = shell["submodelDescriptors"][0]
    hrefs = {e["protocolInformation"]["href"] for e in descriptor["endpoints"]}
    (href,) = hrefs
    assert href == f"https://provider.example/public/submodels/{wire.encode_id(shell['id'])}/battery_pass"
    assert wire.parse_submodel_path(href.removeprefix("https://provider.example/public/") + "/$value") == (
        shell["id"],
        "battery_pass",
        True,
    )
    bodies = [wire.parse_subprotocol_body(e["protocolInformation"]["subprotocolBody"]) for e in descriptor["endpoints"]]
    assert [b["id"] for b in bodies] == [
        "passport-submodel-battery-pass-public",
        "passport-submodel-battery-pass-legitimate-interest",
        "passport-submodel-battery-pass-authority",
    ]
    assert {b["dspEndpoint"] for b in bodies} == {WHERE.dsp_url}
    assert {e["interface"] for e in descriptor["endpoints"]} == {"SUBMODEL-3.0"}
    assert wire.submodel_id(shell["id"], "battery_pass") == descriptor["id"]  # stable
    assert descriptor["id"] == "urn:uuid:" + str(
        uuid.uuid5(uuid.NAMESPACE_URL, f"bpc:passport:{shell['id']}#battery_pass")
    )
    assert wire.submodel_id(shell["id"], "circularity") != descriptor["id"]


def test_the_visibility_rule_is_tractus_x_s() -> None:
    shell = _shell()
    assert wire.visible(shell, OWNER, OWNER, frozenset()) == shell
    assert wire.visible(shell, OTHER, OWNER, frozenset()) is None
    assert wire.visible(shell, None, OWNER, frozenset()) is None
    member = wire.visible(shell, MEMBER, OWNER, frozenset())
    assert member is not None and member["globalAssetId"] == shell["globalAssetId"]

    # Several readers on one id: each sees only the key that names it; the wildcard opens the allowed names only.
    where = wire.Publication(WHERE.data_plane_url, WHERE.dsp_url, OWNER, (MEMBER, wire.PUBLIC_READABLE), WHERE.levels)
    source = wire.ShellSource("urn:uuid:1", "SN-1", "M-1", 0)
    shared = wire.shell_descriptor(source, where)
    member = wire.visible(shared, MEMBER, OWNER, frozenset({"manufacturerPartId"}))
    assert member is not None
    for item in member["specificAssetIds"]:
        if item["name"] == "manufacturerPartId":
            assert [k["value"] for k in item["externalSubjectId"]["keys"]] == [MEMBER, wire.PUBLIC_READABLE]
        else:
            assert [k["value"] for k in item["externalSubjectId"]["keys"]] == [MEMBER]
    anyone = wire.visible(shared, OTHER, OWNER, frozenset({"manufacturerPartId"}))
    assert anyone is not None
    assert [i["name"] for i in anyone["specificAssetIds"]] == ["manufacturerPartId"]
    assert set(anyone) == {"id", "specificAssetIds", "submodelDescriptors", "createdAt"}  # no globalAssetId


def test_lookups_match_every_link_and_the_global_asset_id() -> None:
    shell = _shell()
    battery = shell["globalAssetId"]
    assert wire.matches(shell, [("partInstanceId", battery), ("digitalTwinType", "PartInstance")])
    assert wire.matches(shell, [("globalAssetId", battery)])
    assert not wire.matches(shell, [("partInstanceId", battery), ("digitalTwinType", "PartType")])
    assert wire.matches(shell, [])


def test_asset_ids_and_links_are_read_as_tractus_x_sends_them() -> None:
    encoded = base64.urlsafe_b64encode(json.dumps({"name": "partInstanceId", "value": "SN-1"}).encode()).decode()
    assert wire.parse_asset_ids([encoded]) == [("partInstanceId", "SN-1")]
    assert wire.parse_asset_ids([encoded.rstrip("=")]) == [("partInstanceId", "SN-1")]
    with pytest.raises(InvalidInput, match=wire.BAD_BASE64):
        wire.parse_asset_ids(["{ invalid }"])
    assert wire.parse_asset_links([{"name": "a", "value": "b"}]) == [("a", "b")]
    for bad in (
        {"name": "a"},
        [{"name": "", "value": "b"}],
        [{"name": "a", "value": 1}],
        [{"name": "x" * 65, "value": "b"}],
    ):
        with pytest.raises(InvalidInput):
            wire.parse_asset_links(bad)
    with pytest.raises(InvalidInput, match="at most 10000"):
        wire.parse_asset_links([{"name": "a", "value": "b"}] * 10_001)


def test_identifiers_cursors_and_subprotocol_bodies() -> None:
    for value in ("urn:uuid:0b6f8e5a-1c1d-4c52-9b43-1f6bd8e3f0a1", "https://x.example/aas?id=1&ü", "a"):
        encoded = wire.encode_id(value)
        assert "=" not in encoded and wire.decode_id(encoded) == value
        assert wire.decode_id(base64.b64encode(value.encode()).decode()) == value  # standard alphabet, padded
    with pytest.raises(InvalidInput):
        wire.decode_id("%%%")
    cursor = wire.encode_cursor([5, "id", None])
    assert wire.decode_cursor(cursor, 3) == [5, "id", None]
    for bad in ("x", wire.encode_cursor([1]), "", "bm90IGpzb24"):
        with pytest.raises(InvalidInput):
            wire.decode_cursor(bad, 3)
    assert wire.parse_subprotocol_body("id=a-1;dspEndpoint=https://p.example/api/dsp?x=1") == {
        "id": "a-1",
        "dspEndpoint": "https://p.example/api/dsp?x=1",
    }
    assert wire.parse_subprotocol_body(" dspEndpoint=https://p ; id=a ;extra=1")["extra"] == "1"
    with pytest.raises(InvalidInput, match="lacks dspEndpoint"):
        wire.parse_subprotocol_body("id=a")
    assert wire.parse_created_after("2026-12-01T00:00:00Z") == 1_796_083_200_000
    assert wire.parse_created_after("2026-12-01T01:00:00+01:00") == 1_796_083_200_000
    with pytest.raises(InvalidInput, match="createdAfter"):
        wire.parse_created_after("yesterday")
    assert wire.id_short("BatteryPassport", "SN/1-") == "BatteryPassport_SN_1_"
    assert verification.matches_id_short(wire.id_short("BatteryPassport", "x" * 300))


def test_the_schema_check_refuses_a_broken_descriptor() -> None:
    shell = _shell()
    broken = {**shell, "idShort": "1-starts-with-a-digit"}
    with pytest.raises(AssertionError, match="idShort"):
        assert_valid("AssetAdministrationShellDescriptor", broken)
    endpoint = shell["submodelDescriptors"][0]["endpoints"][0]
    with pytest.raises(AssertionError, match="interface"):
        assert_valid("Endpoint", {"protocolInformation": endpoint["protocolInformation"]})
    with pytest.raises(jsonization.DeserializationException):
        jsonization.specific_asset_id_from_jsonable({"name": "partInstanceId"})


def test_consumers_read_the_submodel_targets_of_a_shell() -> None:
    shell = _shell()
    targets = wire.submodel_targets(shell, "urn:samm:io.catenax.battery.battery_pass:")
    assert [t.asset_id for t in targets] == [
        "passport-submodel-battery-pass-public",
        "passport-submodel-battery-pass-legitimate-interest",
        "passport-submodel-battery-pass-authority",
    ]
    assert {t.dsp_endpoint for t in targets} == {WHERE.dsp_url}
    assert {t.semantic_id for t in targets} == {"urn:samm:io.catenax.battery.battery_pass:6.1.0#BatteryPass"}
    assert len(wire.submodel_targets(shell)) == 8 * 3
    broken = {"submodelDescriptors": [{"endpoints": [{"protocolInformation": {"href": "x", "subprotocol": "DSP"}}]}]}
    assert wire.submodel_targets(broken) == []
    assert wire.parse_asset_links(wire.lookup_links("SN-1")) == [
        ("partInstanceId", "SN-1"),
        ("digitalTwinType", "PartInstance"),
    ]
