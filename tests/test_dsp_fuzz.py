"""Malformed DSP messages, with valid tokens, get a DSP error body with a 4xx; never a 500 or a stack trace."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import aiohttp
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from connector.app import Node
from tests.conftest import API_KEY

DSP_CONTEXT = "https://w3id.org/dspace/2025/1/context.jsonld"
TYPES = [
    "CatalogRequestMessage",
    "ContractRequestMessage",
    "ContractOfferMessage",
    "ContractAgreementMessage",
    "ContractAgreementVerificationMessage",
    "ContractNegotiationEventMessage",
    "ContractNegotiationTerminationMessage",
]
FIELDS = [
    "consumerPid",
    "providerPid",
    "callbackAddress",
    "offer",
    "agreement",
    "eventType",
    "filter",
    "reason",
    "code",
]

scalars = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False), st.text(max_size=20))
values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
    max_leaves=8,
)
messages = (
    st.fixed_dictionaries(
        {},
        optional={
            "@context": st.sampled_from([[DSP_CONTEXT], DSP_CONTEXT, ["https://example.com/x"], []]),
            "@type": st.sampled_from(TYPES) | st.text(max_size=10),
            **{name: values | st.text(max_size=30) for name in FIELDS},
        },
    )
    | values
)


def _routes(pid: str) -> list[str]:
    return [
        "/catalog/request",
        "/negotiations/request",
        "/negotiations/offers",
        f"/negotiations/{pid}/request",
        f"/negotiations/{pid}/offers",
        f"/negotiations/{pid}/events",
        f"/negotiations/{pid}/agreement",
        f"/negotiations/{pid}/agreement/verification",
        f"/negotiations/{pid}/termination",
    ]


async def test_malformed_messages_get_dsp_errors(
    node_factory: Any, http: aiohttp.ClientSession, tmp_path: Path
) -> None:
    provider: Node = await node_factory(api_key=API_KEY)
    consumer: Node = await node_factory(api_key=API_KEY)
    base = provider.settings.dsp_base_url
    seen: list[tuple[str, str]] = []

    # Hypothesis generates the inputs; the requests go out afterwards, on the test's event loop.
    @settings(max_examples=60, deadline=None, derandomize=True, database=None, suppress_health_check=list(HealthCheck))
    @given(route=st.sampled_from(_routes("urn:uuid:unknown")), body=messages)
    def case(route: str, body: Any) -> None:
        seen.append((route, json.dumps(body)))

    case()
    failures = []
    for route, raw in seen:
        headers = {"Authorization": consumer.identity.token_for(provider.settings.effective_did)}
        async with http.post(
            base + route, data=raw, headers={**headers, "Content-Type": "application/json"}
        ) as response:
            text = await response.text()
            if response.status >= 500 or not (400 <= response.status < 500 or response.status in (200, 201)):
                failures.append((route, raw, response.status, text[:300]))
                continue
            if response.status >= 400:
                error = json.loads(text)
                if not (isinstance(error, dict) and error.get("@type", "").endswith("Error") and error.get("reason")):
                    failures.append((route, raw, response.status, text[:300]))
    assert not failures, failures[:5]
    assert len(seen) == 60
