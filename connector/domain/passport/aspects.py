"""The official JSON schemas the node ships (`schemas/`, see SOURCES.md there), and what the mappings read from them.

`SCHEMAS` names each format's schema file; `schema_bytes` is the one reader of those files (validation
compiles its checks from them, with the node's rules added) and `schema` gives one parsed, read-only copy.
From a schema the mappings take an aspect's semantic id (`x-samm-aspect-model-urn`), the order of its
properties (exports write them in that order, which is the order of the SAMM tooling and of the published
examples) and the schema of a property path. Checking a document against a schema is `validation.py`'s.
"""

from __future__ import annotations

from functools import cache
from importlib import resources
from typing import Any

import orjson

# format -> (folder under schemas/, the same as under tests/data/passports; file name). IDTA parts in the
# order of their numbers in IDTA-02035 (1 nameplate ... 7 circularity).
SCHEMAS: dict[str, tuple[str, str]] = {
    "catenax-6.0": ("catenax-sldt/io.catenax.battery.battery_pass/6.0.0/gen", "BatteryPass-schema.json"),
    "catenax-6.1": ("catenax-sldt/io.catenax.battery.battery_pass/6.1.0/gen", "BatteryPass-schema.json"),
    "idta.digital_nameplate": (
        "idta-smt/io.admin-shell.idta.batterypass.digital_nameplate/1.0.0/gen",
        "NameplateBattery-schema.json",
    ),
    "idta.handover_documentation": (
        "idta-smt/io.admin-shell.idta.batterypass.handover_documentation/1.0.0/gen",
        "HandoverDocumentationBattery-schema.json",
    ),
    "idta.carbon_footprint": (
        "idta-smt/io.admin-shell.idta.batterypass.carbon_footprint/1.0.0/gen",
        "CarbonFootprintBattery-schema.json",
    ),
    "idta.technical_data": (
        "idta-smt/io.admin-shell.idta.batterypass.technical_data/1.0.1/gen",
        "TechnicalDataBattery-schema.json",
    ),
    "idta.product_condition": (
        "idta-smt/io.admin-shell.idta.batterypass.product_condition/1.0.1/gen",
        "ProductConditionBattery-schema.json",
    ),
    "idta.material_composition": (
        "idta-smt/io.admin-shell.idta.batterypass.material_composition/1.0.1/gen",
        "MaterialCompositionBattery-schema.json",
    ),
    "idta.circularity": (
        "idta-smt/io.admin-shell.idta.batterypass.circularity/1.0.0/gen",
        "CircularityBattery-schema.json",
    ),
}
IDTA_PARTS = tuple(fmt.removeprefix("idta.") for fmt in SCHEMAS if fmt.startswith("idta."))


def schema_bytes(fmt: str) -> bytes:
    """Return the shipped official schema of a format, as it is on disk."""
    folder, name = SCHEMAS[fmt]
    return resources.files(__package__).joinpath("schemas", *folder.split("/"), name).read_bytes()


@cache
def schema(fmt: str) -> dict[str, Any]:
    """Return the parsed schema of a format (read once; shared, so never change it)."""
    parsed: dict[str, Any] = orjson.loads(schema_bytes(fmt))
    return parsed


def semantic_id(root: dict[str, Any]) -> str:
    """Return the aspect's semantic id, e.g. urn:samm:io.admin-shell.idta.batterypass.circularity:1.0.0#Circularity."""
    return str(root["x-samm-aspect-model-urn"])


def resolve(root: dict[str, Any], node: dict[str, Any]) -> dict[str, Any]:
    """Follow `$ref` and single-element `allOf` wrappers to the schema that says what a value is."""
    for _ in range(64):  # the shipped schemas nest a few levels; a loop would be a broken schema
        if "$ref" in node:
            node = root["components"]["schemas"][node["$ref"].rsplit("/", 1)[-1]]
        elif "allOf" in node and len(node["allOf"]) == 1 and "properties" not in node:
            node = node["allOf"][0]
        else:
            return node
    raise ValueError("schema references do not end")


def properties(root: dict[str, Any], node: dict[str, Any]) -> dict[str, Any]:
    """Return an object schema's properties (empty for anything else)."""
    node = resolve(root, node)
    found: dict[str, Any] = dict(node.get("properties", {}))
    for part in node.get("allOf", ()):
        found.update(properties(root, part))
    return found


def at(root: dict[str, Any], path: list[str]) -> dict[str, Any] | None:
    """Return the schema of a property path (`"[]"` steps into list items); None if the schema has no such path."""
    node: dict[str, Any] = root
    for key in path:
        node = resolve(root, node)
        if key == "[]":
            if node.get("type") != "array":
                return None
            node = node["items"]
        else:
            found = properties(root, node).get(key)
            if found is None:
                return None
            node = found
    return resolve(root, node)


def leaves(root: dict[str, Any], node: dict[str, Any] | None = None, prefix: str = "") -> list[str]:
    """Return the path of every scalar (or list of scalars) property, `[]` marking list items."""
    node = resolve(root, root if node is None else node)
    if node.get("type") == "array":
        items = resolve(root, node["items"])
        if properties(root, items):
            return leaves(root, items, prefix + "[]")
        return [prefix]
    found = properties(root, node)
    if not found:
        return [prefix]
    out: list[str] = []
    for key, child in found.items():
        out += leaves(root, child, f"{prefix}.{key}" if prefix else key)
    return out


def ordered(root: dict[str, Any], value: Any, node: dict[str, Any] | None = None) -> Any:
    """Return `value` with every object's keys in its schema's order; keys the schema lacks follow, as they were."""
    node = resolve(root, root if node is None else node)
    if isinstance(value, list) and node.get("type") == "array":
        return [ordered(root, item, node["items"]) for item in value]
    if not isinstance(value, dict):
        return value
    known = properties(root, node)
    out = {key: ordered(root, value[key], known[key]) for key in known if key in value}
    out.update((key, item) for key, item in value.items() if key not in known)
    return out
