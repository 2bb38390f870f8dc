"""The official JSON schemas the node ships (`schemas/`), and what the passport mappings read from them.

Each schema is read once, on first use. From a schema the node takes an aspect's semantic id
(`x-samm-aspect-model-urn`), the order of its properties (exports write them in that order, which is the
order of the SAMM tooling and of the published examples), and its required properties and enumerations
(an export that lacks one is refused, `problems`). This is not validation: values whose shape differs
from the schema's are left alone here.
"""

from __future__ import annotations

import json
from functools import cache
from importlib import resources
from typing import Any

# Schema files by format, relative to schemas/.
CATENAX_SCHEMAS = {
    "catenax-6.0": "catenax-sldt/io.catenax.battery.battery_pass/6.0.0/gen/BatteryPass-schema.json",
    "catenax-6.1": "catenax-sldt/io.catenax.battery.battery_pass/6.1.0/gen/BatteryPass-schema.json",
}

Problem = tuple[str, str]  # (JSON path, what is wrong)


@cache
def load(relative: str) -> dict[str, Any]:
    """Return a shipped schema by its path under schemas/ (read once)."""
    text = resources.files(__package__).joinpath("schemas", *relative.split("/")).read_text("utf-8")
    return dict(json.loads(text))


def semantic_id(schema: dict[str, Any]) -> str:
    """Return the aspect's semantic id, e.g. urn:samm:io.admin-shell.idta.batterypass.circularity:1.0.0#Circularity."""
    return str(schema["x-samm-aspect-model-urn"])


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


def problems(root: dict[str, Any], value: Any, prefix: str = "", node: dict[str, Any] | None = None) -> list[Problem]:
    """List the required properties `value` lacks and the values outside their enumeration, with their paths."""
    node = resolve(root, root if node is None else node)
    out: list[Problem] = []
    kind = node.get("type")
    if kind == "array" and isinstance(value, list):
        if len(value) < node.get("minItems", 0):
            out.append((prefix, f"needs at least {node['minItems']} item(s); the node's passport has none"))
        for index, item in enumerate(value):
            out += problems(root, item, f"{prefix}[{index}]", node["items"])
    elif kind == "object" and isinstance(value, dict):
        known = properties(root, node)
        required = list(node.get("required", ()))
        for part in node.get("allOf", ()):
            required += resolve(root, part).get("required", ())
        join = f"{prefix}." if prefix else ""
        for key in required:
            if key not in value:
                out.append((join + key, "required by the schema; the node's passport has no value for it"))
        for key, item in value.items():
            if key in known:
                out += problems(root, item, join + key, known[key])
    elif "enum" in node and isinstance(value, str | int | float) and value not in node["enum"]:
        out.append((prefix, f"{value!r} is not one of the schema's values ({', '.join(map(str, node['enum']))})"))
    return out
