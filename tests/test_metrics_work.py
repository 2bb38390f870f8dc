"""The metrics of the node's work besides requests: sync runs, federated catalog crawls and push transfers.

Real nodes on loopback do the work; each scrape is parsed with prometheus_client's own parser and the figures are
seen to move by exactly what was done (a run that failed counts as failed, bytes pushed are the bytes received).
"""

from __future__ import annotations

import aiohttp

from tests.conftest import API_KEY, Management, NodeFactory, free_port
from tests.test_metrics import _scrape, _sum, _value
from tests.test_push_edc import Sink, sink  # noqa: F401 (the fixture)
from tests.test_sync_jobs import JOBS, job_body, provider_with_passports, run
from tests.test_two_nodes_transfer import Backend, _agreement, _pull_request, _wait
from tests.test_two_nodes_transfer import backend as backend  # the fixture

FED = "/management/v1/federation"


async def test_sync_runs_and_crawls_are_counted_by_outcome_with_what_they_fetched(
    node_factory: NodeFactory, http: aiohttp.ClientSession
) -> None:
    provider, _, _ = await provider_with_passports(node_factory, http, 3)
    consumer = await node_factory(api_key=API_KEY, federation_crawl_interval_seconds=0)
    api = Management(http, consumer)
    before = await _scrape(http, consumer)
    assert _sum(before, "connector_sync_runs_total") == 0 and _sum(before, "connector_federation_crawls_total") == 0

    assert (await api.call("POST", JOBS, job_body(provider, id="maker")))[0] == 201
    first = await run(api, "maker")
    assert first["state"] == "SUCCEEDED" and first["new"] == 3, first
    down = {"partnerAddress": f"http://127.0.0.1:{free_port()}/api/dsp/2025-1", "partnerId": "did:web:nobody"}
    assert (await api.call("POST", JOBS, {**down, "id": "down", "schedule": "PT1H"}))[0] == 201
    failed = await run(api, "down")
    assert failed["state"] == "FAILED", failed

    status, added = await api.call("POST", f"{FED}/participants", {"participant": provider.settings.dsp_base_url})
    assert status == 201, added
    status, done = await api.call("POST", f"{FED}/participants/{added['id']}/crawl")
    assert status == 200 and done["crawl"]["outcome"] == "succeeded", done
    crawled = done["crawl"]["datasets"]
    assert crawled > 0

    after = await _scrape(http, consumer)
    assert _value(after, "connector_sync_runs_total", outcome="succeeded") == 1
    assert _value(after, "connector_sync_runs_total", outcome="failed") == 1
    assert _value(after, "connector_sync_run_duration_seconds_count", outcome="succeeded") == 1
    assert _value(after, "connector_sync_run_duration_seconds_count", outcome="failed") == 1
    assert _value(after, "connector_sync_records_total", result="new") == 3
    assert _value(after, "connector_sync_records_total", result="changed") == 0
    assert _value(after, "connector_sync_bytes_total") == first["bytes"] > 0
    assert _value(after, "connector_federation_crawls_total", outcome="succeeded") == 1
    assert _value(after, "connector_federation_crawl_duration_seconds_count", outcome="succeeded") == 1
    assert _value(after, "connector_federation_crawled_datasets_total") == crawled

    # A run with nothing new counts as a run, and fetches no records.
    idle = await run(api, "maker")
    assert idle["state"] == "SUCCEEDED" and idle["new"] == 0, idle
    again = await _scrape(http, consumer)
    assert _value(again, "connector_sync_runs_total", outcome="succeeded") == 2
    assert _value(again, "connector_sync_records_total", result="new") == 3


async def test_the_bytes_a_provider_pushes_are_counted(
    node_factory: NodeFactory,
    http: aiohttp.ClientSession,
    backend: Backend,
    sink: Sink,  # noqa: F811
) -> None:
    provider = await node_factory(api_key=API_KEY)
    consumer = await node_factory(api_key=API_KEY)
    agreement_id = await _agreement(provider, consumer, http, backend)
    before = await _scrape(http, provider)
    assert _value(before, "connector_dataplane_bytes_total", direction="push") == 0
    request = {
        **_pull_request(provider, agreement_id),
        "transferType": "HttpData-PUSH",
        "dataDestination": {"type": "HttpData", "baseUrl": sink.url + "/inbox"},
    }
    consumer_api = Management(http, consumer)
    status, created = await consumer_api.call("POST", "/management/v3/transferprocesses", request)
    assert status == 200, created
    await _wait(consumer_api, f"/management/v3/transferprocesses/{created['@id']}", {"COMPLETED"})
    [(_, _, _, body)] = sink.received
    after = await _scrape(http, provider)
    assert _value(after, "connector_dataplane_bytes_total", direction="push") == len(body) > 0
    # The consumer pushed nothing.
    assert _value(await _scrape(http, consumer), "connector_dataplane_bytes_total", direction="push") == 0
