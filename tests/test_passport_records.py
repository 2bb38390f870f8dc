"""What the store keeps of a passport: its record's data is exactly the passport's node JSON in every source
format, and the current row and its version row hold the same JSON, on every store; its content digest is of
the bytes stored, and a digest of the former scheme still tells an unchanged passport."""

from __future__ import annotations

import base64
import hashlib
import json
from dataclasses import replace

import orjson
import pytest

from connector.domain import passport as model
from connector.domain.passport.synthetic import generate_catenax
from connector.services.passports import digest, load, record_of, write_of_reading
from connector.store import Store
from connector.store.passports import sorted_digest
from tests.passport import examples

DOCUMENTS = {
    "node": lambda: model.generate(3),
    "catenax-6.0 example": lambda: examples.catenax("6.0.0"),
    "catenax-6.1 example": lambda: examples.catenax("6.1.0"),
    "catenax-6.1 generated": lambda: generate_catenax(11),
    "idta example": examples.idta_bundle,
}


@pytest.mark.parametrize("name", DOCUMENTS)
def test_a_record_holds_exactly_the_passports_node_json(name: str) -> None:
    # record_of takes extension data as it is instead of dumping it through pydantic again: whatever the
    # model gains later, a record must still be what to_json says, value for value and byte for byte.
    reading = load(DOCUMENTS[name]())
    passport, record = reading.passport, record_of(reading)
    expected = passport.to_json()
    assert record.data == expected
    assert orjson.dumps(record.data) == orjson.dumps(expected)
    assert record.digest == digest(expected)
    assert model.parse_passport(json.loads(orjson.dumps(record.data))) == passport
    # What a bulk import's worker makes: the same columns, the same bytes, the same digest, of those bytes.
    write = write_of_reading(reading)
    assert write.data.text.encode() == orjson.dumps(expected)
    assert (
        write.digest
        == record.digest
        == "sha256-" + base64.b64encode(hashlib.sha256(orjson.dumps(expected)).digest()).decode()
    )
    assert (write.id, write.battery_id, write.model_id, write.category, write.source_format) == (
        record.id, record.battery_id, record.model_id, record.category, record.source_format
    )  # fmt: skip


async def test_the_current_row_and_the_version_row_hold_the_same_json(store: Store) -> None:
    # put_many encodes each passport's data once for both rows.
    first = record_of(load(generate_catenax(5)))
    data = {**first.data, "note": 'ünïcode ✓ and "quotes"', "numbers": [0, -1.5, 1e300, 2**53 + 1]}
    second = replace(first, data=data, digest=digest(data))
    async with store.transaction() as tx:
        assert await tx.passports.put_many([first], 1000) == ["created"]
    async with store.transaction() as tx:
        assert await tx.passports.put_many([second], 2000) == ["updated"]
    async with store.read() as tx:
        current = await tx.passports.get(first.id)
        history = await tx.passports.history(first.id)
    assert current is not None and current.data == data and current.version == 2
    assert [v.data for v in history] == [first.data, data]
    assert [v.digest for v in history] == [first.digest, second.digest]


@pytest.mark.parametrize("kind", ["record", "write"])
async def test_a_digest_of_the_former_scheme_still_tells_an_unchanged_passport(store: Store, kind: str) -> None:
    # A database written before the digest was of the stored bytes holds SHA-256 (hex) of the sorted-key
    # encoding: storing the same content again must not make a new version, different content must.
    reading = load(generate_catenax(8))
    record = record_of(reading)
    old = replace(record, digest=sorted_digest(record.data))
    assert len(old.digest) == 64 and old.digest != record.digest
    again = record if kind == "record" else write_of_reading(reading)
    data = {**record.data, "extensions": record.data["extensions"][:-1]}
    changed = replace(record, data=data, digest=digest(data))
    async with store.transaction() as tx:
        assert await tx.passports.put_many([old], 1000) == ["created"]
    async with store.transaction() as tx:
        assert await tx.passports.put_many([again], 2000) == ["unchanged"]
    async with store.read() as tx:
        kept = await tx.passports.get(record.id)
    assert kept is not None and kept.version == 1 and kept.digest == old.digest
    async with store.transaction() as tx:
        assert await tx.passports.put_many([changed], 3000) == ["updated"]
    async with store.read() as tx:
        history = await tx.passports.history(record.id)
    assert [v.digest for v in history] == [old.digest, changed.digest]


async def test_one_batch_creates_updates_restores_and_keeps_passports_at_once(store: Store) -> None:
    # A batch is written with one statement per table (an executemany): new, changed, deleted and stored
    # again, and unchanged passports side by side, as bulk-import writes and as plain records.
    records = [record_of(load(generate_catenax(i))) for i in range(20, 26)]
    async with store.transaction() as tx:
        assert await tx.passports.put_many(records[:4], 1000) == ["created"] * 4
    async with store.transaction() as tx:
        assert await tx.passports.delete(records[2].id, 1500)
    changed = []
    for record in records[:2]:
        data = {**record.data, "identity": {**record.data["identity"], "model_id": "MODEL-2"}}
        changed.append(replace(record, model_id="MODEL-2", data=data, digest=digest(data)))
    batch = [changed[0], write_of_reading(load(generate_catenax(21))), records[2], records[3], *records[4:]]
    batch[1] = replace(batch[1], model_id="MODEL-2", digest=changed[1].digest)
    batch[1] = replace(batch[1], data=type(batch[1].data)(orjson.dumps(changed[1].data).decode()))
    async with store.transaction() as tx:
        outcomes = await tx.passports.put_many(batch, 2000)
    assert outcomes == ["updated", "updated", "updated", "unchanged", "created", "created"]
    async with store.read() as tx:
        current = {r.id: await tx.passports.get(r.id) for r in records}
        histories = {r.id: await tx.passports.history(r.id) for r in records}
    for record, expected in ((records[0], changed[0]), (records[1], changed[1])):
        now = current[record.id]
        assert now is not None and (now.version, now.model_id, now.updated_at) == (2, "MODEL-2", 2000)
        assert now.data == expected.data and now.digest == expected.digest and now.created_at == 1000
    restored = current[records[2].id]
    assert restored is not None and restored.deleted_at is None and restored.version == 3
    assert [v.deleted for v in histories[records[2].id]] == [False, True, False]
    kept = current[records[3].id]
    assert kept is not None and (kept.version, kept.updated_at) == (1, 1000)
    for record in records[4:]:
        made = current[record.id]
        assert made is not None and (made.version, made.data, made.digest) == (1, record.data, record.digest)
