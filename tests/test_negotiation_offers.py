"""A contract request that names only the offer is completed with the offer as the provider publishes it.

The provider here is a loopback server shaped like a Tractus-X EDC provider: its dataset is compacted with the
Catena-X policy context (one-item arrays as single values, `and` as an object) and its offer ids get a fresh
last part on every read, as EDC's do.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
from aiohttp import web

import policies
from connector.app import Node
from connector.services.offers import same_rules
from tests.conftest import API_KEY, Management, NodeFactory

EDC_ID = "Y2QtMQ==:YXNzZXQtMQ==:"  # base64("cd-1"):base64("asset-1"):<fresh uuid part>
TX_CATALOG_CONTEXT = [
    "https://w3id.org/tractusx/auth/v1.0.0",
    "https://w3id.org/catenax/2025/9/policy/context.jsonld",
    "https://w3id.org/dspace/2025/1/context.jsonld",
    "https://w3id.org/edc/dspace/v0.0.1",
]
USAGE = {
    "@context": "http://www.w3.org/ns/odrl.jsonld",
    "@type": "Set",
    "permission": [
        {
            "action": "use",
            "constraint": [
                {
                    "and": [
                        {
                            "leftOperand": "https://w3id.org/catenax/2025/9/policy/FrameworkAgreement",
                            "operator": "eq",
                            "rightOperand": "DataExchangeGovernance:1.0",
                        },
                        {
                            "leftOperand": "https://w3id.org/catenax/2025/9/policy/UsagePurpose",
                            "operator": "isAnyOf",
                            "rightOperand": ["cx.circular.dpp:1"],
                        },
                    ]
                }
            ],
        }
    ],
}


class EdcShapedProvider:
    """A provider's DSP endpoints as Tractus-X EDC answers them; it records the contract requests it gets."""

    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []
        self.requested = asyncio.Event()
        self.reads = 0
        self.url = ""
        self._runner: web.AppRunner | None = None

    async def start(self) -> None:
        app = web.Application()
        app.router.add_get("/api/dsp/.well-known/dspace-version", self._version)
        app.router.add_get("/api/dsp/2025-1/catalog/datasets/{id}", self._dataset)
        app.router.add_post("/api/dsp/2025-1/negotiations/request", self._request)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.url = f"http://127.0.0.1:{site._server.sockets[0].getsockname()[1]}"  # type: ignore[union-attr]

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    @property
    def did(self) -> str:
        return "did:web:" + self.url.removeprefix("http://").replace(":", "%3A")

    async def _version(self, request: web.Request) -> web.Response:
        entry = {"version": "2025-1", "path": "/2025-1", "binding": "HTTPS", "serviceId": self.did}
        return web.json_response({"protocolVersions": [entry]})

    async def _dataset(self, request: web.Request) -> web.Response:
        self.reads += 1
        if request.match_info["id"] != "asset-1":
            return web.json_response({"@type": "CatalogError", "code": "404"}, status=404)
        offer = {
            "@id": f"{EDC_ID}ZnJlc2gtJ{self.reads}",
            "@type": "Offer",
            # Compacted as Tractus-X EDC compacts it: single values, `and` as one object, Catena-X terms bare.
            "permission": {
                "action": "use",
                "constraint": {
                    "and": [
                        {
                            "leftOperand": "FrameworkAgreement",
                            "operator": "eq",
                            "rightOperand": "DataExchangeGovernance:1.0",
                        },
                        {"leftOperand": "UsagePurpose", "operator": "isAnyOf", "rightOperand": "cx.circular.dpp:1"},
                    ]
                },
            },
        }
        return web.json_response(
            {
                "@context": TX_CATALOG_CONTEXT,
                "@id": "asset-1",
                "@type": "Dataset",
                "hasPolicy": offer,
                "distribution": {"@type": "Distribution", "format": "HttpData-PULL", "accessService": "svc"},
            }
        )

    async def _request(self, request: web.Request) -> web.Response:
        body = await request.json()
        self.requests.append(body)
        self.requested.set()
        return web.json_response(
            {
                "@context": ["https://w3id.org/dspace/2025/1/context.jsonld"],
                "@type": "ContractNegotiation",
                "providerPid": "urn:uuid:provider-1",
                "consumerPid": body["consumerPid"],
                "state": "REQUESTED",
            },
            status=201,
        )


@pytest.fixture
async def edc_provider() -> AsyncIterator[EdcShapedProvider]:
    server = EdcShapedProvider()
    await server.start()
    yield server
    await server.stop()


def _bare_request(address: str, offer_id: str, assigner: str) -> dict[str, Any]:
    """edc-client's ContractRequest (research §9): the offer's id, assigner and target, no rules, no counterPartyId."""
    return {
        "@context": {
            "@vocab": "https://w3id.org/edc/v0.0.1/ns/",
            "odrl": "http://www.w3.org/ns/odrl/2/",
            "assigner": {"@id": "http://www.w3.org/ns/odrl/2/assigner", "@type": "@id"},
            "target": {"@id": "http://www.w3.org/ns/odrl/2/target", "@type": "@id"},
        },
        "@type": "ContractRequest",
        "counterPartyAddress": address,
        "policy": {
            "@id": offer_id,
            "@type": "http://www.w3.org/ns/odrl/2/Offer",
            "assigner": assigner,
            "target": "asset-1",
        },
        "protocol": "dataspace-protocol-http:2025-1",
    }


async def test_a_bare_offer_is_sent_with_the_rules_the_provider_publishes(
    node_factory: NodeFactory, http: aiohttp.ClientSession, edc_provider: EdcShapedProvider
) -> None:
    consumer: Node = await node_factory(api_key=API_KEY)
    api = Management(http, consumer)
    # The id the client read from an earlier catalog: EDC has since written another last part.
    named = EDC_ID + "b2xkZXI="
    request = _bare_request(edc_provider.url + "/api/dsp/2025-1", named, edc_provider.did)
    status, created = await api.call("POST", "/management/v3/contractnegotiations", request)
    assert status == 200, created
    async with asyncio.timeout(20):
        await edc_provider.requested.wait()
    sent = edc_provider.requests[0]["offer"]
    assert sent["@id"] == named  # echoed as the client named it: an EDC provider resolves it by its first parts
    assert sent["target"] == "asset-1" and sent["assigner"] == edc_provider.did
    assert same_rules(sent, policies.parse_policy(USAGE))
    # The rules are what the consumer will hold the agreement to.
    assert not same_rules(sent, {"@type": "Set", "permission": [{"action": "use"}]})


async def test_a_bare_offer_the_provider_does_not_publish_is_refused_naming_it(
    node_factory: NodeFactory, http: aiohttp.ClientSession, edc_provider: EdcShapedProvider
) -> None:
    consumer: Node = await node_factory(api_key=API_KEY)
    api = Management(http, consumer)
    request = _bare_request(edc_provider.url + "/api/dsp/2025-1", "Y2QtMg==:YXNzZXQtMQ==:eA==", edc_provider.did)
    status, problem = await api.call("POST", "/management/v3/contractnegotiations", request)
    assert status == 400, problem
    assert "has no offer 'Y2QtMg==:YXNzZXQtMQ==:eA=='" in problem["detail"]
    assert edc_provider.requests == []


def test_an_empty_policy_and_use_without_conditions_are_the_same_rules() -> None:
    """EDC's reading of an empty policy (decision 0005) holds when an agreement is checked against its offer."""
    empty = {"@type": "Agreement", "target": "a", "assigner": "p", "assignee": "c"}
    use = {"@type": "Offer", "@id": "o", "target": "a", "permission": [{"action": "use"}]}
    assert same_rules(empty, use)
    assert not same_rules(empty, {"@type": "Offer", "prohibition": [{"action": "use"}]})
    assert not same_rules(use, {"@type": "Offer", "@context": "http://unknown.example/ctx"})


def test_an_agreement_compacted_with_the_catena_x_context_is_read_in_its_messages_context() -> None:
    """Tractus-X EDC compacts the agreement with the Catena-X context: `"leftOperand": "FrameworkAgreement"`."""
    from connector.dsp.negotiation import agreement_rules

    constraint = {"leftOperand": "UsagePurpose", "operator": "isAnyOf", "rightOperand": "cx.circular.dpp:1"}
    framework = {"leftOperand": "FrameworkAgreement", "operator": "eq", "rightOperand": "DataExchangeGovernance:1.0"}
    message = {
        "@context": [
            "https://w3id.org/catenax/2025/9/policy/context.jsonld",
            "https://w3id.org/dspace/2025/1/context.jsonld",
        ],
        "@type": "ContractAgreementMessage",
        "providerPid": "urn:uuid:p",
        "consumerPid": "urn:uuid:c",
        "agreement": {
            "@id": "urn:uuid:agreement",
            "@type": "Agreement",
            "target": "asset-1",
            "assigner": "did:web:p",
            "assignee": "did:web:c",
            "timestamp": "2026-12-01T00:00:00Z",
            "permission": {"action": "use", "constraint": {"and": [framework, constraint]}},
        },
    }
    offer = policies.render_dsp(policies.parse_policy(USAGE))
    assert same_rules(agreement_rules(message), offer)
    # Read without its context, the same agreement names other operands: it would be refused.
    assert not same_rules(message["agreement"], offer)
