"""Bulk passport imports: one reader and one set of limits on every path, a pathological record refused with
its position while the rest is imported, duplicate ids refused whatever the batch size (and across a
resume), and the same four counts everywhere, adding up."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from connector.app import Node
from connector.domain import passport as model
from connector.services.passport_sources import Source, SourceRecord
from connector.services.passports import PassportService
from connector.store import Store, migrate
from tests import passport_records as records
from tests.conftest import API_KEY, Management, NodeFactory
from tests.import_paths import run_cli
from tests.passport import examples

V1 = "/management/v1/passports"


def _lines(path: Path, *documents: bytes) -> Path:
    path.write_bytes(b"".join(raw + b"\n" for raw in documents))
    return path


def _deep(n: int) -> bytes:
    """Return Catena-X passport `n` with a member nested so deep (260 levels) that it cannot be stored."""
    nested: Any = "leaf"
    for _ in range(259):
        nested = {"n": nested}
    return records.compact({**records.catenax(n), "extra": nested})


def _stored_ids(url: str) -> dict[str, int]:
    """Return {passport id: number of versions} of a database."""
    from connector.store.passports import PassportFilter

    async def read() -> dict[str, int]:
        store = Store(url)
        try:
            async with store.read() as tx:
                page = await tx.passports.page(PassportFilter(limit=10_000, include_deleted=True))
                return {r.id: len(await tx.passports.history(r.id)) for r in page}
        finally:
            await store.close()

    return asyncio.run(read())


def _database(tmp_path: Path) -> str:
    return f"sqlite+aiosqlite:///{tmp_path / 'data' / 'connector.db'}"


# A pathological record is that record's refusal, on every path, and the import goes on.


def test_a_record_nested_260_levels_is_refused_and_the_rest_imported(tmp_path: Path) -> None:
    source = _lines(
        tmp_path / "passports.jsonl",
        records.compact(records.catenax(1)),
        _deep(2),
        records.compact(records.catenax(3)),
    )
    first = run_cli(tmp_path / "data", "passports", "import", str(source), "--batch", "1")
    assert first.code == 1, first.err
    assert f"refused {source}:2: nested deeper than 32 levels" in first.out, first.out
    assert _stored_ids(_database(tmp_path)) == {records.catenax_id(1): 1, records.catenax_id(3): 1}
    # Run again, and again from the start: the same verdict, nothing stored twice.
    for again in (("--restart",), ()):
        run = run_cli(tmp_path / "data", "passports", "import", str(source), *again)
        assert run.code == 1 and "nested deeper than 32 levels" in run.out, run.out + run.err
    assert _stored_ids(_database(tmp_path)) == {records.catenax_id(1): 1, records.catenax_id(3): 1}


def test_a_folder_with_a_deep_record_imports_the_others(tmp_path: Path) -> None:
    folder = tmp_path / "in"
    folder.mkdir()
    (folder / "a.json").write_bytes(records.compact(records.catenax(1)))
    (folder / "b.json").write_bytes(_deep(2))
    (folder / "c.jsonl").write_bytes(records.compact(records.catenax(3)) + b"\n")
    run = run_cli(tmp_path / "data", "passports", "import", str(folder))
    assert run.code == 1, run.err
    assert f"refused {folder / 'b.json'}: nested deeper than 32 levels" in run.out, run.out
    assert set(_stored_ids(_database(tmp_path))) == {records.catenax_id(1), records.catenax_id(3)}


async def test_the_ndjson_endpoint_refuses_a_deep_record_and_imports_the_rest(
    node_factory: NodeFactory, http: aiohttp.ClientSession
) -> None:
    node: Node = await node_factory(api_key="k" * 24)
    management = Management(http, node, api_key="k" * 24)
    body = records.compact(records.catenax(1)) + b"\n" + _deep(2) + b"\n" + records.compact(records.catenax(3))
    status, summary = await management.call(
        "POST", f"{V1}/import", raw=body, headers={"Content-Type": "application/x-ndjson"}
    )
    assert status == 200, summary
    assert [(r["position"], r["where"]) for r in summary["refusals"]] == [(1, "line 2")]
    assert "nested deeper than 32 levels" in summary["refusals"][0]["reason"]
    assert (summary["new"], summary["refused"]) == (2, 1)


def test_the_cli_takes_the_api_limits(tmp_path: Path) -> None:
    """NaN, Infinity, duplicate keys and a record larger than CONNECTOR_MAX_BODY_BYTES: the CLI refuses them too."""
    big = records.compact({**records.catenax(4), "extra": "x" * 1_100_000})
    source = _lines(
        tmp_path / "passports.jsonl",
        records.compact(records.node(1)).replace(b'"warranty_months":96', b'"warranty_months":Infinity'),
        records.compact(records.catenax(2)).replace(b'"status":"draft"', b'"status":"draft","status":"expired"'),
        big,
        records.compact(records.catenax(5)),
    )
    run = run_cli(tmp_path / "data", "passports", "import", str(source))
    assert run.code == 1
    assert f"refused {source}:1: not valid JSON: Infinity is not a JSON number" in run.out, run.out
    assert f'refused {source}:2: duplicate key "status" at metadata.status' in run.out, run.out
    assert f"refused {source}:3: the record is larger than 1,048,576 bytes" in run.out, run.out
    assert "1 new, 0 changed, 0 unchanged, 3 refused" in run.out
    # With a larger limit the same record is taken: the limit is the setting, on every path.
    wider = run_cli(tmp_path / "data", "passports", "import", str(source), env={"CONNECTOR_MAX_BODY_BYTES": "2000000"})
    assert "1 new, 0 changed, 1 unchanged, 2 refused" in wider.out, wider.out


# Duplicates never collapse.


async def _service(database_url: str) -> tuple[Store, PassportService]:
    await migrate.upgrade(database_url)
    store = Store(database_url)
    return store, PassportService(store, "http://127.0.0.1:1")


@pytest.mark.parametrize("batch", [1, 2, 3, 500])
async def test_the_same_id_twice_in_one_import_is_refused_naming_both_positions(
    tmp_path: Path, database_url: str, batch: int
) -> None:
    first, other, again = records.node(1), records.node(2), records.node(1)
    again["identity"]["mass_kg"] = 999.5  # other content: it would be a second version
    source = _lines(tmp_path / "p.jsonl", *(records.compact(d) for d in (first, other, again, records.node(3))))
    store, service = await _service(database_url)
    try:
        src = Source(source)
        summary = await service.import_records(src.records(), source=src.key, batch=batch)
        async with store.read() as tx:
            versions = await tx.passports.history(records.node_id(1))
        assert [v.data for v in versions] == [service_data(first)], "the first record is stored, once"
        assert (summary.new, summary.changed, summary.unchanged, summary.refused) == (3, 0, 0, 1)
        (refusal,) = summary.refusals
        assert (refusal["position"], refusal["where"]) == (2, f"{source}:3")
        assert refusal["reason"] == (
            f"passport id '{records.node_id(1)}' appeared already at {source}:1 (record 0); "
            "a passport appears once in an import"
        )
    finally:
        await store.close()


def service_data(document: dict[str, Any]) -> dict[str, Any]:
    """Return the node JSON the service stores for a document."""
    from connector.services.passports import load, record_of

    return record_of(load(document)).data


def _node_with_id(n: int, passport_id: str) -> bytes:
    document = records.node(n)
    document["identity"]["passport_id"] = passport_id
    return records.compact(document)


def _catenax_with_id(n: int, passport_id: str) -> bytes:
    document = records.catenax(n)
    document["metadata"]["passportIdentifier"] = passport_id
    return records.compact(document)


@pytest.mark.parametrize(
    ("first", "second"),
    [
        # The node's own JSON takes a UUID in any case, so only the canonical comparison makes these one.
        pytest.param(
            _node_with_id(7, "URN:UUID:6A1D0000-0000-4000-8000-000000000007"),
            _node_with_id(8, "urn:uuid:6a1d0000-0000-4000-8000-000000000007"),
            id="node-upper-then-lower",
        ),
        # Catena-X takes a lower-case UUID with or without its URN prefix: the same passport either way.
        pytest.param(
            _catenax_with_id(7, "urn:uuid:6a1d0000-0000-4000-8000-000000000007"),
            _catenax_with_id(8, "6a1d0000-0000-4000-8000-000000000007"),
            id="catenax-urn-then-bare",
        ),
    ],
)
async def test_the_same_uuid_in_another_form_is_one_passport(
    tmp_path: Path, database_url: str, first: bytes, second: bytes
) -> None:
    source = _lines(tmp_path / "p.jsonl", first, second)
    store, service = await _service(database_url)
    try:
        src = Source(source)
        summary = await service.import_records(src.records(), source=src.key)
        assert await service.count() == 1
        assert summary.new == 1 and summary.refused == 1, summary
        assert summary.refusals[0]["position"] == 1
        assert f"appeared already at {source}:1 (record 0)" in summary.refusals[0]["reason"]
    finally:
        await store.close()


async def test_an_upper_case_uuid_in_catenax_is_refused_by_the_schema_rule(tmp_path: Path, database_url: str) -> None:
    """Catena-X asks for a canonical lower-case UUID: the upper-case form is refused on its own, before it could
    be compared with a lower-case one (the tricky-records suite checks this on every path)."""
    source = _lines(
        tmp_path / "p.jsonl",
        records.compact(records.catenax(7, upper=True)),
        records.compact(records.catenax(7)),
    )
    store, service = await _service(database_url)
    try:
        src = Source(source)
        summary = await service.import_records(src.records(), source=src.key)
        assert await service.count() == 1
        assert (summary.new, summary.refused) == (1, 1), summary
        assert summary.refusals[0]["errors"] == [
            {
                "path": "metadata.passportIdentifier",
                "message": f"must be a canonical lower-case UUID, got {json.dumps(records.catenax_id(7, upper=True))}",
            }
        ]
    finally:
        await store.close()


class Interrupted(Exception):
    pass


def _crash_after(items: Iterator[SourceRecord], count: int) -> Iterator[SourceRecord]:
    for item in items:
        if item.position == count:
            raise Interrupted
        yield item


async def test_a_duplicate_across_a_resume_is_refused_and_the_totals_add_up(tmp_path: Path, database_url: str) -> None:
    documents = [records.node(i) for i in range(40)]
    documents[35] = records.node(3)  # read before the interruption
    documents[36] = records.node(33)  # read after it, in another batch
    bad = records.node(99)
    bad["identity"]["mass_kg"] = -1
    documents[5] = bad
    source = _lines(tmp_path / "p.jsonl", *(records.compact(d) for d in documents))
    store, service = await _service(database_url)
    try:
        src = Source(source)
        with pytest.raises(Interrupted):
            await service.import_records(_crash_after(src.records(), 25), source=src.key, batch=10)
        start = await service.resume_position(src.key)
        assert start == 20
        summary = await service.import_records(src.records(start), source=src.key, batch=10, start=start)
        assert [(r["position"], r["reason"].split(";")[0]) for r in summary.refusals] == [
            (35, f"passport id '{records.node_id(3)}' appeared already at {source}:4 (record 3)"),
            (36, f"passport id '{records.node_id(33)}' appeared already at {source}:34 (record 33)"),
        ], "the refusals of the run before the interruption are in its own summary"
        assert summary.resumed_from == 20
        assert (summary.new, summary.changed, summary.unchanged, summary.refused) == (37, 0, 0, 3)
        assert summary.new + summary.changed + summary.unchanged + summary.refused == summary.read == 40
        assert await service.count() == 37
        # The import is over: its ids are forgotten, so the next import may carry them again.
        again = await service.import_records(Source(source).records(), source=src.key)
        assert (again.new, again.unchanged, again.refused) == (0, 37, 3)
    finally:
        await store.close()


# The same words for the same counts.


async def test_the_api_and_the_cli_report_new_changed_unchanged_refused(
    tmp_path: Path, node_factory: NodeFactory, http: aiohttp.ClientSession
) -> None:
    node: Node = await node_factory(api_key="k" * 24)
    management = Management(http, node, api_key="k" * 24)
    batch = [records.node(1), records.node(2), "not a passport"]
    status, summary = await management.call("POST", f"{V1}/import", batch)
    assert status == 200
    changed = json.loads(json.dumps(records.node(2)))
    changed["identity"]["mass_kg"] = 1.5
    status, summary = await management.call("POST", f"{V1}/import", [records.node(1), changed, records.node(3), 7])
    assert {k: summary[k] for k in ("read", "new", "changed", "unchanged", "refused")} == {
        "read": 4,
        "new": 1,
        "changed": 1,
        "unchanged": 1,
        "refused": 1,
    }
    assert summary["refusals"] == [
        {
            "position": 3,
            "where": "[3]",
            "reason": "a passport must be a JSON object, not a number",
            "errors": [{"path": None, "message": "a passport must be a JSON object, not a number"}],
        }
    ]
    source = _lines(tmp_path / "p.jsonl", *(records.compact(d) for d in (records.node(1), changed, records.node(4))))
    run = await asyncio.to_thread(run_cli, tmp_path / "cli", "passports", "import", str(source))
    assert "3 read: 3 new, 0 changed, 0 unchanged, 0 refused" in run.out, run.out


# What a reading tolerated (IDTA-02035's published bare lists) is said wherever a record is stored.


def _idta(n: int) -> dict[str, Any]:
    """Return the shared IDTA bundle (noise made real; it gives lists bare) as passport number `n`."""
    return examples.idta_bundle(f"urn:uuid:1d7a0000-0000-4000-8000-{n:012x}")


@pytest.fixture
async def api_node(node_factory: NodeFactory, http: aiohttp.ClientSession) -> tuple[Node, Management]:
    node = await node_factory(api_key=API_KEY)
    return node, Management(http, node)


def _warnings_of(document: dict[str, Any]) -> list[dict[str, str]]:
    found = model.read_document(document).warnings
    assert found, "the shared IDTA example gives lists bare: its reading has warnings"
    return [{"path": path, "message": message} for path, message in found]


async def test_a_single_post_or_put_answers_the_readings_warnings(api_node: tuple[Node, Management]) -> None:
    _, management = api_node
    bundle = _idta(1)
    status, stored = await management.call("POST", V1, bundle)
    assert status == 201, stored
    assert stored["warnings"] == _warnings_of(bundle) and stored["sourceFormat"] == "idta"
    status, again = await management.call("PUT", f"{V1}/{stored['id']}", bundle)
    assert status == 200 and again["version"] == 1 and again["warnings"] == stored["warnings"]
    status, plain = await management.call("POST", V1, records.node(1))
    assert status == 201 and plain["warnings"] == []
    # A stored passport has no reading: GET answers what is stored, without warnings.
    assert "warnings" not in (await management.call("GET", f"{V1}/{stored['id']}"))[1]


async def test_the_import_endpoint_lists_records_stored_with_warnings(api_node: tuple[Node, Management]) -> None:
    _, management = api_node
    batch = [records.node(1), _idta(2), _idta(2), _idta(3)]  # the second _idta(2) is refused: a duplicate
    status, summary = await management.call("POST", f"{V1}/import", batch)
    assert status == 200
    assert (summary["new"], summary["refused"]) == (3, 1), summary
    assert summary["warnings"] == [
        {"position": 1, "where": "[1]", "warnings": _warnings_of(_idta(2))},
        {"position": 3, "where": "[3]", "warnings": _warnings_of(_idta(3))},
    ]
    status, summary = await management.call("POST", f"{V1}/import", [records.node(4)])
    assert status == 200 and summary["warnings"] == []


def test_the_cli_lists_records_stored_with_warnings(tmp_path: Path) -> None:
    source = _lines(tmp_path / "p.jsonl", records.compact(records.node(1)), records.compact(_idta(2)))
    expected = _warnings_of(_idta(2))
    run = run_cli(tmp_path / "json", "passports", "import", str(source), "--json")
    assert run.code == 0, run.err
    assert run.json()["warnings"] == [{"position": 1, "where": f"{source}:2", "warnings": expected}]
    run = run_cli(tmp_path / "text", "passports", "import", str(source))
    assert run.code == 0, run.err  # warnings do not fail an import
    lines = run.out.splitlines()
    at = lines.index(f"warned {source}:2: imported with {len(expected)} warnings")
    assert lines[at + 1 : at + 1 + len(expected)] == [f"  {w['path']}: {w['message']}" for w in expected]
    run = run_cli(tmp_path / "none", "passports", "import", str(source), "--show", "0")
    assert "warned" not in run.out and "... and 1 more record with warnings" in run.out
