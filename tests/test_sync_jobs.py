"""Scheduled sync jobs between real nodes on loopback: a consumer keeps a current copy of a provider's passports.

The provider adds, changes and deletes passports between runs and each run's counts say exactly that; a run
with nothing changed transfers no passport; the copies are kept apart from the consumer's own passports.
"""

from __future__ import annotations

import asyncio
import copy
import json
import os
import sys
from asyncio.subprocess import PIPE
from pathlib import Path
from typing import Any

import aiohttp
import orjson
from aiohttp import web

from connector.app import Node
from connector.domain import passport as model
from connector.identity import issuer
from connector.services.sync import highest_levels
from connector.store import migrate
from tests.conftest import API_KEY, Management, NodeFactory, free_port
from tests.test_two_nodes_catalog import _grant_role, _provider

V1 = "/management/v1/passports"
JOBS = "/management/v1/sync/jobs"


async def provider_with_passports(
    node_factory: NodeFactory, http: aiohttp.ClientSession, count: int, **settings: Any
) -> tuple[Node, Management, list[dict[str, Any]]]:
    """Start a provider holding `count` passports of one model, published (public level only)."""
    provider = await node_factory(api_key=API_KEY, **settings)
    api = Management(http, provider)
    documents = [model.generate(i) for i in range(count)]
    model_id = documents[0]["identity"]["model_id"]
    for document in documents:
        document["identity"]["model_id"] = model_id
    for start in range(0, count, 200):  # within the node's body limit
        batch = documents[start : start + 200]
        status, summary = await api.call("POST", f"{V1}/import", raw=orjson.dumps(batch))
        assert status == 200 and summary["new"] == len(batch), summary
    status, published = await api.call("POST", f"{V1}/publish", {"levels": ["public"]})
    assert status == 200, published
    return provider, api, documents


def job_body(provider: Node, **extra: Any) -> dict[str, Any]:
    return {
        "partnerAddress": provider.settings.dsp_base_url,
        "partnerId": provider.settings.effective_did,
        "schedule": "PT1H",
        **extra,
    }


async def run(api: Management, job_id: str) -> dict[str, Any]:
    status, record = await api.call("POST", f"{JOBS}/{job_id}/run?wait=true")
    assert status == 200, record
    return record


def counts(record: dict[str, Any]) -> tuple[int, int, int, int, int]:
    return record["new"], record["changed"], record["unchanged"], record["removed"], record["refused"]


async def test_runs_pick_up_exactly_what_changed(
    database_url: str, node_factory: NodeFactory, http: aiohttp.ClientSession
) -> None:
    # The provider's feed on SQLite (a commit counter) and on PostgreSQL (transaction ids below the xmin).
    await migrate.upgrade(database_url)
    provider, provider_api, documents = await provider_with_passports(node_factory, http, 12, database_url=database_url)
    consumer = await node_factory(api_key=API_KEY, sync_page_size=5)
    api = Management(http, consumer)
    status, job = await api.call("POST", JOBS, job_body(provider, id="maker"))
    assert status == 201, job
    assert job["state"] == "ACTIVE" and job["destination"] == {"type": "store"}

    first = await run(api, "maker")
    assert first["state"] == "SUCCEEDED", first
    assert counts(first) == (12, 0, 0, 0, 0)
    assert first["bytes"] > 0

    # Nothing changed: nothing is transferred.
    idle = await run(api, "maker")
    assert idle["state"] == "SUCCEEDED" and counts(idle) == (0, 0, 0, 0, 0), idle

    # The provider adds two, changes three (one of them twice) and deletes one.
    for i in (100, 101):
        extra = model.generate(i)
        extra["identity"]["model_id"] = documents[0]["identity"]["model_id"]
        assert (await provider_api.call("POST", V1, extra))[0] == 201
    for document in documents[:3]:
        changed = copy.deepcopy(document)
        changed["identity"]["mass_kg"] = 123.5
        pid = changed["identity"]["passport_id"]
        status, body = await provider_api.call("PUT", f"{V1}/{pid}", changed)
        assert status == 200, body
    again = copy.deepcopy(documents[0])
    again["identity"]["mass_kg"] = 124.5
    assert (await provider_api.call("PUT", f"{V1}/{again['identity']['passport_id']}", again))[0] == 200
    gone = documents[5]["identity"]["passport_id"]
    assert (await provider_api.call("DELETE", f"{V1}/{gone}"))[0] == 204

    third = await run(api, "maker")
    assert third["state"] == "SUCCEEDED", third
    assert counts(third) == (2, 3, 0, 1, 0), third

    # One agreement and one transfer served all three runs (reused while STARTED).
    status, negotiations = await api.call("POST", "/management/v3/contractnegotiations/request", {})
    assert status == 200 and len(negotiations) == 1, negotiations

    status, runs = await api.call("GET", f"{JOBS}/maker/runs")
    assert [r["id"] for r in runs] == [third["id"], idle["id"], first["id"]]  # newest first

    status, kept = await api.call("GET", f"{JOBS}/maker/passports?limit=1000")
    assert status == 200
    ids = sorted(i["id"] for i in kept["items"])
    assert len(ids) == 13 and gone not in ids
    one = next(i for i in kept["items"] if i["id"] == again["identity"]["passport_id"])
    assert one["source"]["partnerId"] == provider.settings.effective_did
    assert one["source"]["accessLevel"] == "public" and one["source"]["partnerVersion"] == 3
    assert one["passport"]["identity"]["passport_id"] == one["id"]

    # Copies are not the consumer's own passports: not listed, not published, not in its feed.
    status, own = await api.call("GET", V1)
    assert status == 200 and own["items"] == []
    status, published = await api.call("POST", f"{V1}/publish", {})
    assert status == 200 and not [a for a in published["assets"] if a.startswith("passports-")], published
    # Nor in its registry (computed from its own passports only).
    async with consumer.store.read() as tx:
        assert await tx.passports.count(include_deleted=True) == 0


async def test_jobs_are_checked_and_errors_are_problems(node: Node, management: Management) -> None:
    status, problem = await management.call(
        "POST", JOBS, {"partnerAddress": "ftp://x", "schedule": "every day", "destination": {"type": "tape"}}
    )
    assert status == 400, problem
    paths = {e["path"] for e in problem["errors"]}
    assert {"partnerAddress", "schedule", "destination"} <= paths
    status, problem = await management.call(
        "POST",
        JOBS,
        {"partnerAddress": "http://127.0.0.1:1/api/dsp", "schedule": "0 2 * * *", "timeZone": "Mars/Olympus"},
    )
    assert status == 400 and "time zone" in problem["detail"], problem
    status, problem = await management.call(
        "POST", JOBS, {"partnerAddress": "http://127.0.0.1:1", "schedule": "PT0.5S"}
    )
    assert status == 400 and problem["errors"][0]["path"] == "schedule"
    body = {
        "id": "j1",
        "partnerAddress": "http://127.0.0.1:1/api/dsp",
        "schedule": "*/5 * * * *",
        "timeZone": "Europe/Berlin",
    }
    assert (await management.call("POST", JOBS, body))[0] == 201
    status, problem = await management.call("POST", JOBS, body)
    assert status == 409 and problem["status"] == 409
    for method, path in (("GET", f"{JOBS}/nope"), ("POST", f"{JOBS}/nope/run"), ("GET", f"{JOBS}/nope/runs")):
        status, problem = await management.call(method, path)
        assert status == 404 and "nope" in problem["detail"], (method, path, problem)
    status, paused = await management.call("POST", f"{JOBS}/j1/pause")
    assert status == 200 and paused["state"] == "PAUSED"
    status, changed = await management.call("PUT", f"{JOBS}/j1", {**body, "schedule": "PT15M", "state": "PAUSED"})
    assert status == 200 and changed["schedule"] == "PT15M" and changed["state"] == "PAUSED"
    status, listed = await management.call("GET", JOBS)
    assert [j["id"] for j in listed] == ["j1"]
    assert (await management.call("DELETE", f"{JOBS}/j1"))[0] == 204
    assert (await management.call("GET", f"{JOBS}/j1"))[0] == 404


async def test_the_openapi_document_gives_both_answers_of_a_run(management: Management) -> None:
    # A run answers 202 while it goes (test below) and 200 at its end with wait=true (every run() here).
    status, document = await management.call("GET", "/management/openapi.json")
    assert status == 200
    responses = document["paths"][f"{JOBS}/{{id}}/run"]["post"]["responses"]
    for code in ("200", "202"):
        assert responses[code]["content"]["application/json"]["schema"] == {"$ref": "#/components/schemas/SyncRun"}
    assert "wait=true" in responses["200"]["description"] and "goes on" in responses["202"]["description"]
    assert {"404", "409"} <= set(responses)
    # Routes without other answers keep their one status.
    assert set(document["paths"][JOBS]["post"]["responses"]) & {"200", "201", "202"} == {"201"}


async def test_a_partner_that_is_down_fails_the_run_with_the_reason(
    node_factory: NodeFactory, http: aiohttp.ClientSession
) -> None:
    consumer = await node_factory(api_key=API_KEY, sync_retry_attempts=3, sync_retry_seconds=0.4)
    api = Management(http, consumer)
    port = free_port()  # nothing listens there
    body = {
        "id": "gone",
        "partnerAddress": f"http://127.0.0.1:{port}/api/dsp",
        "partnerId": f"did:web:127.0.0.1%3A{port}",
    }
    assert (await api.call("POST", JOBS, body))[0] == 201
    status, going = await api.call("POST", f"{JOBS}/gone/run")
    assert status == 202 and going["state"] == "RUNNING"
    # It retries (0.4 s, then 0.8 s): a second run of the job meanwhile is refused, on this node too.
    status, problem = await api.call("POST", f"{JOBS}/gone/run")
    assert status == 409 and "never overlap" in problem["detail"], problem
    async with asyncio.timeout(30):
        while True:
            record = (await api.call("GET", f"{JOBS}/gone/runs"))[1][0]
            if record["state"] != "RUNNING":
                break
            await asyncio.sleep(0.1)
    assert record["id"] == going["id"] and len((await api.call("GET", f"{JOBS}/gone/runs"))[1]) == 1
    assert record["state"] == "FAILED" and record["endedAt"] is not None
    assert "cannot connect" in record["error"] and "after 3 attempts" in record["error"], record["error"]


async def test_the_schedule_runs_the_job_and_pause_stops_it(
    node_factory: NodeFactory, http: aiohttp.ClientSession
) -> None:
    provider, _, _ = await provider_with_passports(node_factory, http, 3)
    consumer = await node_factory(api_key=API_KEY, sync_poll_seconds=1)
    api = Management(http, consumer)
    assert (await api.call("POST", JOBS, job_body(provider, id="often", schedule="PT1S")))[0] == 201
    runs: list[dict[str, Any]] = []
    async with asyncio.timeout(30):
        while len([r for r in runs if r["state"] == "SUCCEEDED"]) < 2:
            await asyncio.sleep(0.2)
            runs = (await api.call("GET", f"{JOBS}/often/runs"))[1]
    ordered = sorted(runs, key=lambda r: r["runKey"])
    assert ordered[0]["new"] == 3 and all(r["new"] == 0 for r in ordered[1:] if r["state"] == "SUCCEEDED")
    assert all(not r["runKey"].startswith("manual:") for r in runs)
    assert (await api.call("POST", f"{JOBS}/often/pause"))[0] == 200
    await asyncio.sleep(1.5)  # one poll: the scheduler has seen the pause
    before = len((await api.call("GET", f"{JOBS}/often/runs"))[1])
    await asyncio.sleep(2.5)
    assert len((await api.call("GET", f"{JOBS}/often/runs"))[1]) == before


async def test_folder_and_http_destinations(
    node_factory: NodeFactory, http: aiohttp.ClientSession, tmp_path: Path
) -> None:
    provider, provider_api, documents = await provider_with_passports(node_factory, http, 7)
    consumer = await node_factory(api_key=API_KEY, sync_page_size=3)
    api = Management(http, consumer)

    folder = tmp_path / "out"
    assert (
        await api.call(
            "POST", JOBS, job_body(provider, id="files", destination={"type": "folder", "path": str(folder)})
        )
    )[0] == 201
    assert counts(await run(api, "files")) == (7, 0, 0, 0, 0)
    gone = documents[0]["identity"]["passport_id"]
    assert (await provider_api.call("DELETE", f"{V1}/{gone}"))[0] == 204
    assert counts(await run(api, "files")) == (0, 0, 0, 1, 0)
    lines = [
        orjson.loads(line) for f in sorted((folder / "files").glob("*.jsonl")) for line in f.read_bytes().splitlines()
    ]
    assert sorted(x["id"] for x in lines if not x["deleted"]) == sorted(d["identity"]["passport_id"] for d in documents)
    assert [x["id"] for x in lines if x["deleted"]] == [gone]
    assert all(x["partnerId"] == provider.settings.effective_did and x["accessLevel"] == "public" for x in lines)
    # The store keeps the index (for the counts), not the data: the folder has it.
    _, kept = await api.call("GET", f"{JOBS}/files/passports")
    assert len(kept["items"]) == 6 and all(i["passport"] is None for i in kept["items"])

    received: list[tuple[str | None, str | None, dict[str, Any]]] = []

    async def collect(request: web.Request) -> web.Response:
        received.append((request.headers.get("Idempotency-Key"), request.headers.get("X-Token"), await request.json()))
        return web.json_response({}, status=202)

    app = web.Application()
    app.router.add_post("/inbox", collect)
    runner = web.AppRunner(app)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    try:
        destination = {"type": "http", "url": f"http://127.0.0.1:{port}/inbox", "headers": {"X-Token": "s3cret"}}
        status, job = await api.call("POST", JOBS, job_body(provider, id="hook", destination=destination))
        assert status == 201 and job["destination"]["headers"] == {"X-Token": "***"}  # never shown back
        assert counts(await run(api, "hook")) == (6, 0, 0, 0, 0)
    finally:
        await runner.cleanup()
    assert len(received) == 2 and all(token == "s3cret" for _, token, _ in received)
    assert len({key for key, _, _ in received}) == 2
    assert sum(len(body["passports"]) for _, _, body in received) == 6


async def _cli(*args: str) -> tuple[int, str, str]:
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "CONNECTOR_API_KEY": API_KEY,
        "CONNECTOR_LOG_LEVEL": "ERROR",
    }
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "connector.cli", *args, env=env, stdout=PIPE, stderr=PIPE
    )
    out, err = await process.communicate()
    assert process.returncode is not None
    return process.returncode, out.decode(), err.decode()


async def test_the_cli_adds_runs_and_shows_a_job(node_factory: NodeFactory, http: aiohttp.ClientSession) -> None:
    provider, _, _ = await provider_with_passports(node_factory, http, 4)
    consumer = await node_factory(api_key=API_KEY)
    node = ["--node", consumer.management_url]
    code, out, err = await _cli(
        "sync", "add", *node, "--id", "cli", "--partner", provider.settings.dsp_base_url,
        "--partner-id", provider.settings.effective_did, "--schedule", "PT1H",
    )  # fmt: skip
    assert code == 0 and "sync job cli created (ACTIVE)" in out, err
    code, out, err = await _cli("sync", "run", *node, "cli")
    assert code == 0 and "SUCCEEDED" in out and "4 new, 0 changed" in out, (out, err)
    code, out, _ = await _cli("sync", "list", *node)
    assert code == 0 and out.startswith("cli\tACTIVE\tPT1H UTC")
    code, out, _ = await _cli("sync", "pause", *node, "cli")
    assert code == 0 and "is PAUSED" in out
    code, out, _ = await _cli("sync", "history", *node, "cli", "--json")
    assert code == 0 and [r["new"] for r in json.loads(out)] == [4]
    code, _, err = await _cli("sync", "run", *node, "missing")
    assert code == 1 and "404" in err and "no sync job 'missing'" in err


async def test_three_nodes_copies_of_two_partners_are_told_apart(
    node_factory: NodeFactory, http: aiohttp.ClientSession
) -> None:
    # Both makers hold passports with the same ids (generated alike); the consumer keeps each partner's apart.
    maker_a, _, _ = await provider_with_passports(node_factory, http, 3)
    maker_b, api_b, documents_b = await provider_with_passports(node_factory, http, 3)
    consumer = await node_factory(api_key=API_KEY)
    api = Management(http, consumer)
    for name, maker in (("a", maker_a), ("b", maker_b)):
        assert (await api.call("POST", JOBS, job_body(maker, id=name)))[0] == 201
        assert counts(await run(api, name)) == (3, 0, 0, 0, 0)
    changed = copy.deepcopy(documents_b[1])
    changed["identity"]["mass_kg"] = 99.5
    assert (await api_b.call("PUT", f"{V1}/{changed['identity']['passport_id']}", changed))[0] == 200
    assert counts(await run(api, "a")) == (0, 0, 0, 0, 0)
    assert counts(await run(api, "b")) == (0, 1, 0, 0, 0)
    kept_a = (await api.call("GET", f"{JOBS}/a/passports"))[1]["items"]
    kept_b = (await api.call("GET", f"{JOBS}/b/passports"))[1]["items"]
    assert [i["id"] for i in kept_a] == [i["id"] for i in kept_b]
    assert {i["source"]["partnerId"] for i in kept_a} == {maker_a.settings.effective_did}
    assert {i["source"]["partnerId"] for i in kept_b} == {maker_b.settings.effective_did}
    one_b = next(i for i in kept_b if i["id"] == changed["identity"]["passport_id"])
    one_a = next(i for i in kept_a if i["id"] == changed["identity"]["passport_id"])
    assert one_b["passport"]["identity"]["mass_kg"] == 99.5 and one_b["source"]["partnerVersion"] == 2
    assert one_a["passport"]["identity"]["mass_kg"] != 99.5 and one_a["source"]["partnerVersion"] == 1


async def test_a_model_offered_at_two_levels_is_read_at_the_higher_only(
    node_factory: NodeFactory, http: aiohttp.ClientSession, tmp_path: Path
) -> None:
    # The provider publishes its model at the public and the legitimate-interest level; the consumer (a recycler)
    # is offered both. Each passport is kept once, at the higher level: the two views never overwrite each other.
    provider, issuer_dir = await _provider(node_factory, tmp_path)
    provider_api = Management(http, provider)
    documents = [model.generate(i) for i in range(4)]
    model_id = documents[0]["identity"]["model_id"]
    for document in documents:
        document["identity"]["model_id"] = model_id
    assert (await provider_api.call("POST", f"{V1}/import", documents))[1]["new"] == 4
    status, published = await provider_api.call("POST", f"{V1}/publish", {"levels": ["public", "legitimate_interest"]})
    assert status == 200, published
    consumer = await node_factory(api_key=API_KEY, trusted_issuers=issuer.load_registry(issuer_dir).did)
    api = Management(http, consumer)
    jwt, _ = _grant_role(issuer_dir, consumer.settings.effective_did, "recycler")
    assert (await api.call("POST", "/management/v1/credentials", {"credential": jwt}))[0] == 200
    both = [f"passports-{model_id}-public", f"passports-{model_id}-legitimate-interest"]
    status, job = await api.call("POST", JOBS, job_body(provider, id="levels", datasets=both))
    assert status == 201, job
    status, _ = await api.call("POST", JOBS, job_body(provider, id="every"))  # no datasets: every one offered
    assert status == 201

    for job_id in ("levels", "every"):
        first = await run(api, job_id)
        assert first["state"] == "SUCCEEDED" and counts(first) == (4, 0, 0, 0, 0), first
        idle = await run(api, job_id)
        assert idle["state"] == "SUCCEEDED" and counts(idle) == (0, 0, 0, 0, 0), idle
        kept = (await api.call("GET", f"{JOBS}/{job_id}/passports?limit=100"))[1]["items"]
        assert len(kept) == 4
        assert {i["source"]["accessLevel"] for i in kept} == {"legitimate_interest"}
        assert {i["source"]["datasetId"] for i in kept} == {both[1]}
        assert all("condition" in i["passport"] for i in kept)  # the legitimate-interest view (Annex XIII point 4)

    # One passport changes at the provider: one change per job, not one per level.
    changed = copy.deepcopy(documents[2])
    changed["identity"]["mass_kg"] = 321.5
    assert (await provider_api.call("PUT", f"{V1}/{changed['identity']['passport_id']}", changed))[0] == 200
    for job_id in ("levels", "every"):
        after = await run(api, job_id)
        assert counts(after) == (0, 1, 0, 0, 0), after
        kept = (await api.call("GET", f"{JOBS}/{job_id}/passports?limit=100"))[1]["items"]
        one = next(i for i in kept if i["id"] == changed["identity"]["passport_id"])
        assert one["passport"]["identity"]["mass_kg"] == 321.5
        assert one["source"]["accessLevel"] == "legitimate_interest"


def test_highest_levels_keeps_the_best_dataset_of_each_model() -> None:
    facts = {
        "a-public": ("A", "public"),
        "a-li": ("A", "legitimate_interest"),
        "a-authority": ("A", "authority"),
        "b-public": ("B", "public"),
        "unknown": (None, None),
        "odd-level": ("A", "secret"),
    }
    wanted = ["a-public", "a-li", "b-public", "unknown", "odd-level", "a-authority", "not-in-facts"]
    read, skipped = highest_levels(wanted, facts)
    assert read == ["b-public", "unknown", "odd-level", "a-authority", "not-in-facts"]
    assert skipped == ["a-public", "a-li"]
    assert highest_levels(["a-public"], facts) == (["a-public"], [])
