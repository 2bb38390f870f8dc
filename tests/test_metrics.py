"""`GET /metrics` on the management surface: each family is scraped, parsed with prometheus_client's own
parser, and seen to move with what the node does; `/ready` reflects the database and the background loops."""

from __future__ import annotations

import asyncio
from pathlib import Path

import aiohttp
from prometheus_client.parser import text_string_to_metric_families

from connector.app import Node
from connector.domain import passport as model
from tests.conftest import API_KEY, EDC_CONTEXT, Management, NodeFactory
from tests.test_two_nodes_catalog import _grant_role, _provider
from tests.test_two_nodes_passports import V1, _negotiate, _pull

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


async def _scrape(http: aiohttp.ClientSession, node: Node) -> Samples:
    async with http.get(node.management_url + "/metrics", headers={"X-Api-Key": API_KEY}) as response:
        assert response.status == 200, await response.text()
        assert response.content_type == "text/plain"
        text = await response.text()
    samples: Samples = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


def _value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def _sum(samples: Samples, name: str, **labels: str) -> float:
    wanted = set(labels.items())
    return sum(v for (n, ls), v in samples.items() if n == name and wanted <= set(ls))


async def test_requests_are_counted_by_route_pattern_and_status_never_the_raw_path(
    node: Node, management: Management, http: aiohttp.ClientSession
) -> None:
    before = await _scrape(http, node)
    for _ in range(3):
        assert (await management.call("GET", "/management/v3/assets/no-such-asset-4711"))[0] == 404
    assert (await management.call("GET", "/management/v3/no/such/route/0815"))[0] == 404
    after = await _scrape(http, node)
    route = {"surface": "management", "method": "GET", "route": "/management/v3/assets/{id}"}
    assert (
        _value(after, "connector_http_requests_total", **route, status="404")
        - _value(before, "connector_http_requests_total", **route, status="404")
        == 3
    )
    assert _value(after, "connector_http_request_duration_seconds_count", **route) == 3
    assert _value(after, "connector_http_request_duration_seconds_bucket", **route, le="+Inf") == 3
    assert _value(after, "connector_http_request_duration_seconds_sum", **route) > 0
    unmatched = {"surface": "management", "method": "GET", "route": "(unmatched)", "status": "404"}
    assert _value(after, "connector_http_requests_total", **unmatched) == 1
    labels = {value for (_, pairs) in after for _, value in pairs}
    assert not any("4711" in v or "0815" in v for v in labels), "a raw path leaked into a label"
    # A request to the protocol surface is counted under its own surface.
    async with http.get(node.protocol_url + "/.well-known/did.json") as response:
        assert response.status == 200
    later = await _scrape(http, node)
    assert _sum(later, "connector_http_requests_total", surface="protocol", route="/.well-known/did.json") == 1


async def test_metrics_need_the_api_key_and_ready_and_health_do_not(node: Node, http: aiohttp.ClientSession) -> None:
    async with http.get(node.management_url + "/metrics") as response:
        assert response.status == 401
    async with http.get(node.management_url + "/ready") as response:
        assert response.status == 200 and (await response.json()) == {"status": "READY"}


async def test_database_pools_and_background_loops_are_reported(node: Node, http: aiohttp.ClientSession) -> None:
    samples = await _scrape(http, node)
    assert _value(samples, "connector_database_pool_size", pool="write") == 1  # SQLite: one writer
    assert _value(samples, "connector_database_pool_size", pool="read") == node.settings.database_pool_size
    assert ("connector_database_pool_checked_out_connections", (("pool", "read"),)) in samples
    for loop in ("outbox", "deadlines", "policy-monitor", "pruner", "access-log"):
        assert _value(samples, "connector_background_loop_up", loop=loop) == 1


async def test_ready_fails_when_a_background_loop_has_ended(node: Node, http: aiohttp.ClientSession) -> None:
    (dispatcher,) = [t for t in asyncio.all_tasks() if t.get_name() == "outbox-dispatcher"]
    dispatcher.cancel()
    await asyncio.sleep(0.05)
    async with http.get(node.management_url + "/ready") as response:
        assert response.status == 503
        problem = await response.json()
    assert "background loops not running: outbox" in problem["detail"]
    samples = await _scrape(http, node)
    assert _value(samples, "connector_background_loop_up", loop="outbox") == 0
    assert _value(samples, "connector_background_loop_up", loop="pruner") == 1


async def test_an_undelivered_message_shows_in_the_outbox(
    node_factory: NodeFactory, http: aiohttp.ClientSession
) -> None:
    consumer = await node_factory(api_key=API_KEY, outbox_max_attempts=5, outbox_retry_seconds=600)
    client = Management(http, consumer)
    empty = await _scrape(http, consumer)
    assert _value(empty, "connector_outbox_messages") == 0
    request = {
        "@context": {**EDC_CONTEXT, "odrl": "http://www.w3.org/ns/odrl/2/"},
        "@type": "ContractRequest",
        "counterPartyAddress": "http://127.0.0.1:9/api/dsp/2025-1",
        "counterPartyId": "did:web:nobody.example",
        "protocol": "dataspace-protocol-http:2025-1",
        "policy": {
            "@id": "offer-1",
            "@type": "odrl:Offer",
            "odrl:target": {"@id": "x"},
            "odrl:assigner": {"@id": "did:web:nobody.example"},
            "odrl:permission": {"odrl:action": {"@id": "odrl:use"}},
        },
    }
    status, created = await client.call("POST", "/management/v3/contractnegotiations", request)
    assert status == 200, created
    async with asyncio.timeout(20):
        while True:  # the first attempt fails at once (nothing listens on port 9); the retry is 600 s away
            samples = await _scrape(http, consumer)
            if _value(samples, "connector_outbox_retrying_messages") == 1:
                break
            await asyncio.sleep(0.05)
    assert _value(samples, "connector_outbox_messages") == 1
    assert _value(samples, "connector_outbox_attempts") >= 1
    assert _value(samples, "connector_outbox_oldest_message_age_seconds") >= 0
    assert _value(samples, "connector_negotiations", role="consumer", state="INITIAL") == 1  # not delivered yet


async def test_processes_by_state_and_data_plane_bytes_move_with_a_pull(
    node_factory: NodeFactory, http: aiohttp.ClientSession, tmp_path: Path
) -> None:
    from connector.identity import issuer

    maker, issuer_dir = await _provider(node_factory, tmp_path)
    maker_api = Management(http, maker)
    documents = [model.generate(i) for i in range(4)]
    assert (await maker_api.call("POST", f"{V1}/import", documents))[1]["new"] == 4
    assert (await maker_api.call("POST", f"{V1}/publish", {}))[0] == 200
    before = await _scrape(http, maker)
    assert _sum(before, "connector_negotiations") == 0 and _value(before, "connector_agreements") == 0

    recycler = await node_factory(api_key=API_KEY, trusted_issuers=issuer.load_registry(issuer_dir).did)
    recycler_api = Management(http, recycler)
    jwt, _ = _grant_role(issuer_dir, recycler.settings.effective_did, "recycler")
    assert (await recycler_api.call("POST", "/management/v1/credentials", {"credential": jwt}))[0] == 200
    model_id = model.parse_passport(documents[0]).model_id
    agreement = await _negotiate(recycler_api, maker, f"passports-{model_id}-legitimate-interest")
    endpoint, token = await _pull(recycler_api, maker, agreement)
    async with http.get(endpoint + "?limit=10", headers={"Authorization": token}) as response:
        assert response.status == 200
        body = await response.read()

    provider = await _scrape(http, maker)
    assert _value(provider, "connector_negotiations", role="provider", state="FINALIZED") == 1
    assert _value(provider, "connector_agreements") == 1
    assert _value(provider, "connector_transfers", role="provider", state="STARTED") == 1
    assert _value(provider, "connector_dataplane_bytes_total", direction="out") >= len(body) > 0
    consumer = await _scrape(http, recycler)
    assert _value(consumer, "connector_negotiations", role="consumer", state="FINALIZED") == 1
    assert _value(consumer, "connector_transfers", role="consumer", state="STARTED") == 1
    # The pull went through the provider's data plane route, counted by its pattern.
    pulled = [ls for (n, ls) in provider if n == "connector_http_requests_total" and ("surface", "protocol") in ls]
    assert any(dict(ls)["route"].startswith("/public") and dict(ls)["status"] == "200" for ls in pulled)

    # Terminated, the transfer leaves STARTED: a state that emptied reads 0 (not its last value).
    status, transfers = await recycler_api.call("POST", "/management/v3/transferprocesses/request", {})
    (transfer_id,) = [t["@id"] for t in transfers if t.get("contractId") == agreement]
    status, _ = await recycler_api.call(
        "POST", f"/management/v3/transferprocesses/{transfer_id}/terminate", {"@context": EDC_CONTEXT, "reason": "done"}
    )
    assert status == 204
    async with asyncio.timeout(20):
        while True:
            provider = await _scrape(http, maker)
            if _value(provider, "connector_transfers", role="provider", state="TERMINATED") == 1:
                break
            await asyncio.sleep(0.05)
    assert ("connector_transfers", (("role", "provider"), ("state", "STARTED"))) not in provider


async def test_the_grafana_dashboard_reads_only_metrics_the_node_serves(
    node: Node, http: aiohttp.ClientSession
) -> None:
    import json
    import re

    from tests.conftest import REPO

    async with http.get(node.management_url + "/metrics", headers={"X-Api-Key": API_KEY}) as response:
        text = await response.text()
    served: set[str] = set()
    for family in text_string_to_metric_families(text):
        served |= {family.name, *(family.name + suffix for suffix in ("_total", "_bucket", "_count", "_sum"))}
    dashboard = json.loads((REPO / "docs" / "grafana-dashboard.json").read_text())
    expressions = [t["expr"] for panel in dashboard["panels"] for t in panel["targets"]]
    assert len(expressions) >= 12
    used = {name for expr in expressions for name in re.findall(r"\bconnector_[a-z_]+\b", expr)}
    assert used and used <= served, f"the dashboard reads metrics the node does not serve: {used - served}"
