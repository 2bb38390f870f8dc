"""The generated Catena-X BatteryPass 6.1 passports the import benchmark uses: valid against the official
schema, every section filled as in the official example, realistic in size, varied, and made one at a time."""

from __future__ import annotations

import copy
import itertools
import json
import re
from collections.abc import Iterator
from datetime import date, datetime
from typing import Any

import jsonschema
import orjson
import pytest

from connector.domain import passport as model
from connector.domain.passport.catenax import MOVED
from connector.domain.passport.synthetic import catenax_documents, generate_catenax
from tests.conftest import data_path

SAMPLE = [*range(24), 997, 10_007, 99_999]  # every battery model several times, and far-apart numbers
UUID = re.compile(r"^urn:uuid:[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$")


def official(name: str) -> Any:
    path = data_path("passports", "catenax-sldt", "io.catenax.battery.battery_pass", "6.1.0", "gen") / name
    return json.loads(path.read_text())


def paths(value: Any, prefix: str = "") -> set[str]:
    """Every object key path in a document, list items as []."""
    if isinstance(value, dict):
        found = set()
        for key, inner in value.items():
            path = f"{prefix}.{key}" if prefix else key
            found |= {path} | paths(inner, path)
        return found
    if isinstance(value, list):
        return set().union(*(paths(item, prefix + "[]") for item in value)) if value else set()
    return set()


@pytest.fixture(scope="module")
def validator() -> jsonschema.Draft4Validator:
    schema = official("BatteryPass-schema.json")
    jsonschema.Draft4Validator.check_schema(schema)
    return jsonschema.Draft4Validator(schema)


@pytest.mark.parametrize("seed", [0, 3])
def test_generated_passports_are_valid_against_the_official_6_1_schema(
    validator: jsonschema.Draft4Validator, seed: int
) -> None:
    for i in SAMPLE:
        document = generate_catenax(i, seed=seed)
        errors = [f"{'.'.join(map(str, e.absolute_path))}: {e.message}" for e in validator.iter_errors(document)]
        assert errors == [], f"passport {i} (seed {seed})"


def test_the_official_example_is_valid_too(validator: jsonschema.Draft4Validator) -> None:
    # The check above means something only if the validator accepts what the format's authors publish.
    assert list(validator.iter_errors(official("BatteryPass.json"))) == []


def test_every_section_of_the_official_example_is_filled() -> None:
    wanted = paths(official("BatteryPass.json"))
    for i in SAMPLE:
        assert paths(generate_catenax(i)) == wanted, f"passport {i}"


def test_generated_passports_are_10_to_15_kb_of_compact_json() -> None:
    sizes = [len(orjson.dumps(generate_catenax(i))) for i in range(200)]
    assert min(sizes) >= 10_000 and max(sizes) <= 15 * 1024
    assert max(sizes) - min(sizes) > 2_000  # list lengths vary


def test_ids_dates_numbers_and_lists_vary() -> None:
    documents = [generate_catenax(i) for i in range(200)]
    ids = [d["metadata"]["passportIdentifier"] for d in documents]
    assert len(set(ids)) == len(ids) and all(UUID.match(i) for i in ids)
    assert len({d["identification"]["identification"]["serial"][0]["value"] for d in documents}) == len(documents)
    assert len({d["operation"]["manufacturer"]["manufacturingDate"] for d in documents}) > 100
    assert len({d["performance"]["dynamic"]["stateOfCharge"]["value"] for d in documents}) > 100
    assert len({len(d["materials"]["composition"]) for d in documents}) > 1
    assert len({len(d["sustainability"]["carbonFootprint"]) for d in documents}) > 1
    assert len({d["identification"]["category"] for d in documents}) > 2
    predecessors = {d["metadata"]["predecessor"] for d in documents}
    assert "urn:uuid:00000000-0000-0000-0000-000000000000" in predecessors and len(predecessors) > 1
    assert not set(ids) & predecessors  # never its own predecessor


def values(document: Any, key: str = "") -> Iterator[tuple[str, Any]]:
    """Every scalar of a document with the key it is under."""
    if isinstance(document, dict):
        for inner_key, inner in document.items():
            yield from values(inner, inner_key)
    elif isinstance(document, list):
        for item in document:
            yield from values(item, key)
    else:
        yield key, document


def test_generated_passports_keep_the_node_s_product_rules() -> None:
    # What the node checks beyond the schema: shares and concentrations within 0-100 whatever their unit,
    # no negative amounts (only a temperature may be below zero), real dates and timestamps.
    for i in SAMPLE:
        for key, value in values(generate_catenax(i)):
            if key in ("recycled", "renewable", "concentration"):
                assert 0 <= value <= 100, f"passport {i}: {key} {value}"
            elif isinstance(value, int | float) and not isinstance(value, bool) and key != "lower":
                assert value >= 0, f"passport {i}: {key} {value}"
            elif key in ("issueDate", "expirationDate", "lastModification", "placedOnMarket") or key.endswith(
                ("Date", "time")
            ):
                (date.fromisoformat if len(value) == 10 else datetime.fromisoformat)(value)


def test_generated_passports_are_deterministic_per_number_and_seed() -> None:
    assert generate_catenax(42) == generate_catenax(42)
    assert generate_catenax(42, seed=1) != generate_catenax(42)
    first = {generate_catenax(i, seed=s)["metadata"]["passportIdentifier"] for i in range(50) for s in range(3)}
    assert len(first) == 150


def test_every_value_the_node_maps_passes_its_checks() -> None:
    # A realistic passport loses nothing to the node's checks: every mapped path lands in its group, none
    # stays behind as extension data because the node found it invalid (a date that is not one, say).
    for i in SAMPLE:
        document = generate_catenax(i)
        stored = model.load_document(copy.deepcopy(document)).to_json()
        for path, group, name in MOVED:
            assert name in stored.get(group, {}), f"passport {i}: {path} was not taken into {group}.{name}"
        assert model.to_catenax(model.parse_passport(stored)) == document


def test_the_mapping_s_extensions_are_what_validation_would_make() -> None:
    # The Catena-X mapping builds its extensions without validating them (catenax._read): they must be
    # exactly what the model's validation makes of the same JSON, and export must give the document back
    # key for key in its order, also when the keys come shuffled and the moved values sit elsewhere.
    for i in SAMPLE:
        document = generate_catenax(i)
        shuffled = {key: document[key] for key in reversed(document)}
        shuffled["identification"] = dict(reversed(document["identification"].items()))
        for source in (document, shuffled):
            passport = model.from_catenax(copy.deepcopy(source))
            for extension in passport.extensions:
                assert model.Extension.model_validate(extension.model_dump(mode="json")) == extension
            assert model.Passport.model_validate(passport.model_dump(mode="json")) == passport
            assert orjson.dumps(model.to_catenax(passport)) == orjson.dumps(source)


def test_documents_are_made_one_at_a_time() -> None:
    # A billion passports: only a generator that makes each when asked returns the first ones at all.
    documents = catenax_documents(10**9, start=5)
    assert isinstance(documents, Iterator)
    assert list(itertools.islice(documents, 3)) == [generate_catenax(i) for i in (5, 6, 7)]
