"""Passports on a real node: the passports API, versions and history, soft delete, the public view per
battery, bulk import (API, CLI, resume after an interruption), and publishing datasets."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from connector.app import Node
from connector.domain import passport as model
from connector.services.passport_sources import Source, SourceRecord
from connector.services.passports import PassportService
from connector.store import Store
from tests.conftest import API_KEY, Management, NodeFactory
from tests.passport import examples

V1 = "/management/v1/passports"


def _catenax_example() -> dict[str, Any]:
    return examples.catenax("6.1.0")  # with only its noise made real (tests/passport/examples.py)


@pytest.fixture
async def api(node_factory: NodeFactory, http: aiohttp.ClientSession) -> tuple[Node, Management]:
    node = await node_factory(api_key=API_KEY)
    return node, Management(http, node)


async def test_a_passport_is_stored_versioned_viewed_and_deleted(
    api: tuple[Node, Management], http: aiohttp.ClientSession
) -> None:
    node, management = api
    document = model.generate(1)
    passport = model.parse_passport(document)
    status, stored = await management.call("POST", V1, document)
    assert status == 201, stored
    pid = passport.passport_id
    assert stored["id"] == pid and stored["version"] == 1 and stored["batteryId"] == passport.battery_id
    assert stored["passport"] == passport.to_json()
    assert stored["publicUrl"].startswith(node.settings.effective_public_url + "/passports/")
    assert (await management.call("POST", V1, document))[0] == 409

    # The public view, without any token, at the URL the QR code carries.
    async with http.get(stored["publicUrl"], headers={"Accept": "application/json"}) as response:
        assert response.status == 200
        public = await response.json()
        etag = response.headers["ETag"]
    assert public == model.view(passport, {"public"})
    async with http.get(stored["publicUrl"], headers={"If-None-Match": etag}) as response:
        assert response.status == 304
    async with http.get(stored["publicUrl"], headers={"Accept": "text/html"}) as response:
        assert response.status == 200 and response.content_type == "text/html"
        assert passport.battery_id in await response.text()

    # A change is a new version; the same content again is not.
    changed = json.loads(json.dumps(document))
    _set_first_number(changed, passport)
    status, second = await management.call("PUT", f"{V1}/{pid}", changed)
    assert status == 200, second
    assert second["version"] == 2
    # The public view (read above, so kept in the node's short-lived cache) shows the change at once.
    async with http.get(stored["publicUrl"], headers={"Accept": "application/json"}) as response:
        assert response.headers["ETag"] != etag
        assert (await response.json())["identity"]["mass_kg"] == changed["identity"]["mass_kg"]
    status, again = await management.call("PUT", f"{V1}/{pid}", changed)
    assert again["version"] == 2
    status, history = await management.call("GET", f"{V1}/{pid}/history")
    assert [v["version"] for v in history["versions"]] == [1, 2]
    assert history["versions"][0]["passport"] == passport.to_json()

    # Soft delete: gone from reads, history kept.
    assert (await management.call("DELETE", f"{V1}/{pid}"))[0] == 204
    assert (await management.call("GET", f"{V1}/{pid}"))[0] == 404
    async with http.get(stored["publicUrl"]) as response:
        assert response.status == 404
    status, history = await management.call("GET", f"{V1}/{pid}/history")
    assert [v["deleted"] for v in history["versions"]] == [False, False, True]
    assert (await management.call("DELETE", f"{V1}/{pid}"))[0] == 404
    # Stored again, it comes back as a new version.
    status, back = await management.call("POST", V1, document)
    assert status == 201 and back["version"] == 4


def _set_first_number(document: dict[str, Any], passport: model.Passport) -> None:
    """Change one numeric value the model keeps (the mass) so the content differs."""
    mass = passport.to_json()["identity"]["mass_kg"]
    document["identity"]["mass_kg"] = mass + 1


async def test_invalid_passports_are_refused_naming_the_field(api: tuple[Node, Management]) -> None:
    _, management = api
    document = model.generate(2)
    document["identity"]["mass_kg"] = -5
    status, problem = await management.call("POST", V1, document)
    assert status == 400
    assert any("mass_kg" in (p.get("path") or "") for p in problem["errors"]), problem
    status, problem = await management.call("POST", V1, [1, 2])
    assert status == 400
    status, problem = await management.call("POST", V1, {"what": "ever"})
    assert status == 400
    assert (await management.call("GET", f"{V1}/nope"))[0] == 404


async def test_listing_filters_pages_and_reads_changes_since(api: tuple[Node, Management]) -> None:
    _, management = api
    documents = [model.generate(i) for i in range(25)]
    status, summary = await management.call("POST", f"{V1}/import", documents)
    assert status == 200 and summary["new"] == 25 and summary["refused"] == 0, summary
    seen: list[str] = []
    cursor = None
    while True:
        path = f"{V1}?limit=10" + (f"&cursor={cursor}" if cursor else "")
        status, page = await management.call("GET", path)
        assert status == 200, page
        seen += [item["id"] for item in page["items"]]
        cursor = page["next"]
        if cursor is None:
            break
    expected = sorted(model.parse_passport(d).passport_id for d in documents)
    assert sorted(seen) == expected and len(seen) == len(set(seen))

    model_id = model.parse_passport(documents[0]).model_id
    status, page = await management.call("GET", f"{V1}?modelId={model_id}&limit=1000")
    assert page["items"] and all(item["modelId"] == model_id for item in page["items"])
    battery = model.parse_passport(documents[3]).battery_id
    status, page = await management.call("GET", f"{V1}?batteryId={battery}")
    assert [item["batteryId"] for item in page["items"]] == [battery]

    latest = max(item["updatedAt"] for item in (await management.call("GET", f"{V1}?limit=1000"))[1]["items"])
    assert (await management.call("GET", f"{V1}?changedSince={latest}"))[1]["items"] == []
    changed = json.loads(json.dumps(documents[5]))
    _set_first_number(changed, model.parse_passport(documents[5]))
    pid = model.parse_passport(documents[5]).passport_id
    assert (await management.call("PUT", f"{V1}/{pid}", changed))[0] == 200
    status, page = await management.call("GET", f"{V1}?changedSince={latest}")
    assert [item["id"] for item in page["items"]] == [pid]
    assert (await management.call("GET", f"{V1}?cursor=%%%"))[0] == 400
    assert (await management.call("GET", f"{V1}?limit=0"))[0] == 400


async def test_the_catenax_example_round_trips_through_the_node(api: tuple[Node, Management]) -> None:
    _, management = api
    original = _catenax_example()
    status, stored = await management.call("POST", V1, original)
    assert status == 201, stored
    assert stored["sourceFormat"].startswith("catenax")
    status, exported = await management.call("GET", f"{V1}/{stored['id']}/export?format=catenax")
    assert status == 200
    assert exported == original
    status, public = await management.call("GET", f"{V1}/{stored['id']}/view?level=public")
    assert status == 200
    assert public == model.view(model.from_catenax(original), {"public"})


async def test_import_refuses_bad_records_with_their_reason(api: tuple[Node, Management]) -> None:
    _, management = api
    bad = model.generate(7)
    bad["identity"]["mass_kg"] = -1
    status, summary = await management.call("POST", f"{V1}/import", {"passports": [model.generate(6), bad, "x"]})
    assert status == 200
    assert (summary["new"], summary["refused"]) == (1, 2)
    assert [r["position"] for r in summary["refusals"]] == [1, 2]
    assert "mass_kg" in summary["refusals"][0]["reason"]


class Interrupted(Exception):
    pass


def _crash_after(records: Iterator[SourceRecord], count: int) -> Iterator[SourceRecord]:
    for record in records:
        if record.position == count:
            raise Interrupted
        yield record


async def test_an_interrupted_import_resumes_without_duplicates(tmp_path: Path, database_url: str) -> None:
    from connector.store import migrate

    await migrate.upgrade(database_url)
    store = Store(database_url)
    try:
        service = PassportService(store, "http://127.0.0.1:1")
        source_file = tmp_path / "passports.jsonl"
        source_file.write_text("\n".join(json.dumps(model.generate(i)) for i in range(1200)) + "\n")
        source = Source(source_file)
        with pytest.raises(Interrupted):
            await service.import_records(_crash_after(source.records(), 730), source=source.key, batch=100)
        start = await service.resume_position(source.key)
        assert start == 700  # the batches committed before the crash
        summary = await service.import_records(source.records(start), source=source.key, batch=100, start=start)
        assert summary.refused == 0 and summary.new == 1200  # 700 before the interruption, 500 after
        assert await service.count() == 1200
        async with store.read() as tx:
            for i in (0, 699, 700, 1199):
                versions = await tx.passports.history(model.parse_passport(model.generate(i)).passport_id)
                assert [v.version for v in versions] == [1]
        assert await service.resume_position(source.key) == 0
    finally:
        await store.close()


def test_the_cli_imports_with_a_summary_and_a_second_run_changes_nothing(tmp_path: Path) -> None:
    source_file = tmp_path / "passports.jsonl"
    lines = [json.dumps(model.generate(i)) for i in range(300)] + ["{not json", json.dumps({"identity": {}})]
    source_file.write_text("\n".join(lines) + "\n")
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "CONNECTOR_DATA_DIR": str(tmp_path / "data"),
        "CONNECTOR_LOG_LEVEL": "WARNING",
    }

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "connector.cli", "passports", *args],
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )

    first = run("import", str(source_file), "--batch", "64")
    assert first.returncode == 1, first.stderr  # two records were refused
    assert "302 read: 300 new, 0 changed, 0 unchanged, 2 refused" in first.stdout, first.stdout
    assert f"refused {source_file}:301: not valid JSON" in first.stdout
    assert f"refused {source_file}:302:" in first.stdout
    second = run("import", str(source_file), "--publish")
    assert "302 read: 0 new, 0 changed, 300 unchanged, 2 refused" in second.stdout, second.stdout
    assert "published" in second.stdout
    pid = model.parse_passport(model.generate(5)).passport_id
    exported = run("export", pid)
    assert exported.returncode == 0, exported.stderr
    assert json.loads(exported.stdout) == model.parse_passport(model.generate(5)).to_json()
    missing = run("import", str(tmp_path / "absent"))
    assert missing.returncode == 1 and "no such file" in missing.stderr


async def test_publishing_offers_one_dataset_per_model_and_level(api: tuple[Node, Management]) -> None:
    _, management = api
    documents = [model.generate(i) for i in range(12)]
    assert (await management.call("POST", f"{V1}/import", documents))[0] == 200
    models = sorted({model.parse_passport(d).model_id for d in documents})
    status, published = await management.call("POST", f"{V1}/publish", {})
    assert status == 200, published
    assert sorted(published["contractDefinitions"]) == [
        "digital-twin-registry",  # the embedded Digital Twin Registry (docs/registry.md)
        "passports-authority",
        "passports-legitimate-interest",
        "passports-public",
    ]
    by_model = [a for a in published["assets"] if a.startswith("passports-")]
    assert len(by_model) == 3 * len(models)
    # The registry's asset, and one per submodel part (BatteryPass and the 7 IDTA-02035 parts) and level.
    assert len(published["assets"]) - len(by_model) == 1 + 8 * 3
    status, asset = await management.call("GET", f"/management/v3/assets/passports-{models[0]}-legitimate-interest")
    assert status == 200, asset
    assert asset["dataAddress"]["type"] == "BatteryPassport"
    assert asset["dataAddress"]["accessLevel"] == "legitimate_interest"
    # Publishing again creates nothing new.
    status, again = await management.call("POST", f"{V1}/publish", {})
    assert again == {"assets": [], "policyDefinitions": [], "contractDefinitions": []}
    assert (await management.call("POST", f"{V1}/publish", {"levels": ["nobody"]}))[0] == 400


def test_a_badly_encoded_line_is_that_records_error(tmp_path: Path) -> None:
    path = tmp_path / "mixed.jsonl"
    path.write_bytes(b"\xef\xbb\xbf" + json.dumps(model.generate(1)).encode() + b"\n\xff\xfe{}\n{}\n")
    records = list(Source(path).records())
    assert [r.position for r in records] == [0, 1, 2]
    assert records[0].document is not None and records[0].error is None
    assert records[1].error is not None and records[1].error.startswith("not valid UTF-8: byte 0xff at offset 0")
    assert records[2].document == {}
