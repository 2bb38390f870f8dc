"""CX-0160's bulk mode between real nodes: a consumer's sync job polls the provider's Digital Twin Registry by
createdAfter and reads each new twin's BatteryPass submodel through the provider's data plane, as it would from
any Catena-X provider that serves no change feed."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import aiohttp

from connector.domain import passport as model
from tests.conftest import Management, NodeFactory
from tests.test_sync_jobs import JOBS, counts, job_body, run
from tests.test_two_nodes_registry import V1, _dataspace


async def test_a_registry_job_picks_up_new_twins(
    node_factory: NodeFactory, http: aiohttp.ClientSession, tmp_path: Path
) -> None:
    space = await _dataspace(node_factory, http, tmp_path, count=5)
    api = Management(http, space.member)
    body: dict[str, Any] = job_body(space.provider, id="dtr", mode="registry")
    status, job = await api.call("POST", JOBS, body)
    assert status == 201 and job["mode"] == "registry", job
    first = await run(api, "dtr")
    assert first["state"] == "SUCCEEDED", first
    assert counts(first) == (5, 0, 0, 0, 0), first["refusals"]
    assert (await run(api, "dtr"))["new"] == 0  # nothing created since: no twin read again

    provider_api = Management(http, space.provider)
    more = [model.generate(i) for i in (50, 51)]
    status, summary = await provider_api.call("POST", f"{V1}/import", more)
    assert status == 200 and summary["new"] == 2, summary
    again = await run(api, "dtr")
    assert counts(again) == (2, 0, 0, 0, 0), again

    status, kept = await api.call("GET", f"{JOBS}/dtr/passports")
    ids = sorted(i["id"] for i in kept["items"])
    assert ids == sorted(d["identity"]["passport_id"] for d in [*space.documents, *more])
    source = kept["items"][0]["source"]
    assert source["partnerId"] == space.provider.settings.effective_did
    assert source["datasetId"] == "digital-twin-registry" and source["accessLevel"] in ("public", "legitimate_interest")
