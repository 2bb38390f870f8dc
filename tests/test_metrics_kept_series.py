"""The request middleware keeps each (method, route, status)'s series at hand: the counts and the /metrics
output are the families' own, for kept series and for requests beyond what is kept."""

from __future__ import annotations

import aiohttp
import pytest

from connector.app import Node
from connector.transport import metrics
from tests.conftest import Management
from tests.test_metrics import _scrape, _value


async def _count_mixed_requests(node: Node, management: Management, http: aiohttp.ClientSession) -> None:
    before = await _scrape(http, node)
    for _ in range(3):
        assert (await management.call("GET", "/management/v3/assets/no-such-asset"))[0] == 404
        assert (await management.call("GET", "/management/v3/no/such/route"))[0] == 404
        async with http.get(node.protocol_url + "/.well-known/did.json") as response:
            assert response.status == 200
        async with http.delete(node.protocol_url + "/.well-known/did.json") as response:
            assert response.status == 405
    after = await _scrape(http, node)

    def moved(name: str, **labels: str) -> float:
        return _value(after, name, **labels) - _value(before, name, **labels)

    asset = {"surface": "management", "method": "GET", "route": "/management/v3/assets/{id}"}
    unmatched = {"surface": "management", "method": "GET", "route": "(unmatched)"}
    did = {"surface": "protocol", "route": "/.well-known/did.json"}
    assert moved("connector_http_requests_total", **asset, status="404") == 3
    assert moved("connector_http_requests_total", **unmatched, status="404") == 3
    assert moved("connector_http_requests_total", **did, method="GET", status="200") == 3
    # A method the route does not allow matched no route.
    assert (
        moved("connector_http_requests_total", **{**unmatched, "surface": "protocol", "method": "DELETE"}, status="405")
        == 3
    )
    assert moved("connector_http_request_duration_seconds_count", **asset) == 3
    assert moved("connector_http_request_duration_seconds_bucket", **did, method="GET", le="+Inf") == 3
    assert moved("connector_http_request_duration_seconds_sum", **asset) > 0
    # No data-plane request was made: its byte series are not there yet (as before series were kept).
    assert not [key for key in after if key[0] == "connector_dataplane_bytes_total"]


async def test_kept_series_count_every_request(node: Node, management: Management, http: aiohttp.ClientSession) -> None:
    await _count_mixed_requests(node, management, http)


async def test_requests_beyond_the_kept_series_are_counted_too(
    node: Node, management: Management, http: aiohttp.ClientSession, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(metrics, "MAX_KEPT_SERIES", 1)
    await _count_mixed_requests(node, management, http)
