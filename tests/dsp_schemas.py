"""The official DSP 2025-1 JSON schemas, loaded offline, for validating what the node sends and receives.

The registry is built once, when this module is imported (a missing or broken schema file fails the import,
at collection time): validating never touches the file system, so it is safe inside a server handler.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from jsonschema import Draft201909Validator
from referencing import Registry, Resource

from tests.conftest import data_path

BASE = "https://w3id.org/dspace/2025/1/"
ROOT = data_path("standards", "dsp-2025-1", "artifacts", "src", "main", "resources")


def _registry(root: Path) -> Registry:  # type: ignore[type-arg]
    resources = []
    for path in sorted(root.rglob("*-schema.json")):
        # Upstream quirk: some transfer schemas write "#definitions/..." without the slash.
        text = path.read_text(encoding="utf-8").replace("#definitions/", "#/definitions/")
        document = json.loads(text)
        resource = Resource.from_contents(document)
        uri = document.get("$id") or BASE + path.relative_to(root).as_posix()
        resources.append((uri, resource))
        resources.append((BASE + path.relative_to(root).as_posix(), resource))
    if not resources:
        raise FileNotFoundError(f"no *-schema.json under {root}")
    return Registry().with_resources(resources)


REGISTRY = _registry(ROOT)


def validate(instance: Any, schema_name: str) -> None:
    """Validate against one official schema (e.g. 'catalog/catalog-schema.json'); raise on the first error."""
    schema = REGISTRY.contents(BASE + schema_name)
    validator = Draft201909Validator(schema, registry=REGISTRY)
    errors = sorted(validator.iter_errors(instance), key=lambda e: list(e.path))
    assert not errors, f"{schema_name}: " + "; ".join(f"{list(e.path)}: {e.message}" for e in errors[:5])
