"""From catalog to negotiation to transfer to data, between real nodes on loopback, as an EDC client does it."""

from __future__ import annotations

import asyncio
import json
import sqlite3
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from connector.app import Node
from tests import dsp_schemas
from tests.conftest import API_KEY, EDC_CONTEXT, ODRL_CONTEXT, Management, NodeFactory

PASSPORT = {"batteryId": "BAT-1", "chemistry": "LFP", "padding": "x" * 4000}


class Backend:
    """The provider operator's backend (the HttpData source) and the consumer's push sink, on loopback."""

    def __init__(self) -> None:
        self.requests: list[tuple[str, str, dict[str, str]]] = []
        self.pushed: list[tuple[dict[str, str], bytes]] = []
        self.url = ""
        self._runner: web.AppRunner | None = None

    async def start(self) -> None:
        app = web.Application()
        app.router.add_route("*", "/source/{tail:.*}", self._source)
        app.router.add_post("/sink", self._sink)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.url = f"http://127.0.0.1:{site._server.sockets[0].getsockname()[1]}"  # type: ignore[union-attr]

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    async def _source(self, request: web.Request) -> web.Response:
        self.requests.append((request.method, request.path_qs, dict(request.headers)))
        if request.headers.get("X-Api-Secret") != "backend-secret":
            return web.json_response({"error": "no secret"}, status=401)
        if request.path.endswith("/missing"):
            return web.json_response({"error": "no such passport"}, status=404)
        if request.path.endswith("/moved"):
            return web.Response(
                status=302,
                headers={"Location": "http://10.1.2.3/internal/passports", "Set-Cookie": "backend-session=s3cr3t"},
            )
        if request.path.endswith("/headers"):
            return web.json_response(
                PASSPORT, headers={"Server": "internal-passport-db/4.2 (10.1.2.3)", "X-Backend-Host": "db-7.internal"}
            )
        return web.json_response({**PASSPORT, "path": request.path_qs})

    async def _sink(self, request: web.Request) -> web.Response:
        self.pushed.append((dict(request.headers), await request.read()))
        return web.Response(status=204)


@pytest.fixture
async def backend() -> AsyncIterator[Backend]:
    server = Backend()
    await server.start()
    yield server
    await server.stop()


async def _agreement(
    provider: Node, consumer: Node, http: aiohttp.ClientSession, backend: Backend, contract: Any = None
) -> str:
    """Publish an HttpData asset on the provider and negotiate it from the consumer; return the agreement id."""
    provider_api, consumer_api = Management(http, provider), Management(http, consumer)
    asset = {
        "@context": EDC_CONTEXT,
        "@id": "passports-http",
        "properties": {"name": "Passports over HTTP"},
        "dataAddress": {
            "type": "HttpData",
            "baseUrl": backend.url + "/source/passports",
            "proxyPath": "true",
            "proxyQueryParams": "true",
            "authKey": "X-Api-Secret",
            "authCode": "backend-secret",
        },
    }
    assert (await provider_api.call("POST", "/management/v3/assets", asset))[0] == 200
    policy = {"@context": EDC_CONTEXT, "@id": "open", "policy": {"@context": ODRL_CONTEXT, "@type": "Set"}}
    assert (await provider_api.call("POST", "/management/v3/policydefinitions", policy))[0] == 200
    if contract is not None:
        body = {
            "@context": EDC_CONTEXT,
            "@id": "contract",
            "policy": {"@context": ODRL_CONTEXT, "@type": "Set", "permission": contract},
        }
        assert (await provider_api.call("POST", "/management/v3/policydefinitions", body))[0] == 200
    definition = {
        "@context": EDC_CONTEXT,
        "@id": "cd-http",
        "accessPolicyId": "open",
        "contractPolicyId": "open" if contract is None else "contract",
        "assetsSelector": [],
    }
    assert (await provider_api.call("POST", "/management/v3/contractdefinitions", definition))[0] == 200
    body = {
        "@context": EDC_CONTEXT,
        "@type": "CatalogRequest",
        "counterPartyAddress": provider.settings.dsp_base_url,
        "counterPartyId": provider.settings.effective_did,
        "protocol": "dataspace-protocol-http:2025-1",
    }
    status, catalog = await consumer_api.call("POST", "/management/v3/catalog/request", body)
    assert status == 200, catalog
    offer = catalog["dcat:dataset"]["odrl:hasPolicy"]
    request = {
        "@context": {**EDC_CONTEXT, "odrl": "http://www.w3.org/ns/odrl/2/"},
        "@type": "ContractRequest",
        "counterPartyAddress": provider.settings.dsp_base_url,
        "protocol": "dataspace-protocol-http:2025-1",
        "policy": {
            **offer,
            "odrl:assigner": {"@id": provider.settings.effective_participant_id},
            "odrl:target": {"@id": "passports-http"},
        },
    }
    status, created = await consumer_api.call("POST", "/management/v3/contractnegotiations", request)
    assert status == 200, created
    negotiation = await _wait(consumer_api, f"/management/v3/contractnegotiations/{created['@id']}", {"FINALIZED"})
    # The provider's side finalizes once our event is acknowledged: wait for it before transferring.
    _, listed = await provider_api.call("POST", "/management/v3/contractnegotiations/request")
    await _wait(provider_api, f"/management/v3/contractnegotiations/{listed[0]['@id']}", {"FINALIZED"})
    return str(negotiation["contractAgreementId"])


async def _wait(api: Management, path: str, states: set[str]) -> dict[str, Any]:
    async with asyncio.timeout(20):
        while True:
            status, body = await api.call("GET", path)
            assert status == 200, body
            if body["state"] in states:
                return dict(body)
            if body["state"] in ("TERMINATED", "FINALIZED", "COMPLETED"):
                raise AssertionError(f"{path} ended {body['state']}: {body.get('errorDetail')}")
            await asyncio.sleep(0.05)


def _pull_request(provider: Node, agreement_id: str) -> dict[str, Any]:
    return {
        "@context": EDC_CONTEXT,
        "@type": "TransferRequest",
        "counterPartyAddress": provider.settings.dsp_base_url,
        "contractId": agreement_id,
        "protocol": "dataspace-protocol-http:2025-1",
        "transferType": "HttpData-PULL",
    }


async def _started_pull(
    provider: Node, consumer: Node, http: aiohttp.ClientSession, backend: Backend, contract: Any = None
) -> tuple[str, dict[str, Any]]:
    """Negotiate (with `contract` as the contract policy's permissions) and start a pull; return (id, EDR)."""
    agreement_id = await _agreement(provider, consumer, http, backend, contract)
    consumer_api = Management(http, consumer)
    status, created = await consumer_api.call(
        "POST", "/management/v3/transferprocesses", _pull_request(provider, agreement_id)
    )
    assert status == 200, created
    await _wait(consumer_api, f"/management/v3/transferprocesses/{created['@id']}", {"STARTED"})
    _, address = await consumer_api.call("GET", f"/management/v3/edrs/{created['@id']}/dataaddress")
    return str(created["@id"]), dict(address)


async def _provider_terminated(provider_api: Management) -> dict[str, Any]:
    """Wait until the provider's (only) transfer process is TERMINATED; return it."""
    async with asyncio.timeout(30):
        while True:
            _, provided = await provider_api.call("POST", "/management/v3/transferprocesses/request")
            if provided[0]["state"] == "TERMINATED":
                return dict(provided[0])
            await asyncio.sleep(0.2)


async def _wait_for_end(
    api: Management, transfer_id: str, states: tuple[str, ...] = ("TERMINATED", "COMPLETED")
) -> dict[str, Any]:
    """Poll a transfer process until it is in one of `states` (by default: ended, either way); return it."""
    async with asyncio.timeout(20):
        while True:
            _, body = await api.call("GET", f"/management/v3/transferprocesses/{transfer_id}")
            if body["state"] in states:
                return dict(body)
            await asyncio.sleep(0.05)


async def test_pull_transfer_fetches_data_with_the_edr_and_the_token_dies_with_the_transfer(
    node_factory: NodeFactory, http: aiohttp.ClientSession, backend: Backend
) -> None:
    provider = await node_factory(api_key=API_KEY)
    consumer = await node_factory(api_key=API_KEY)
    agreement_id = await _agreement(provider, consumer, http, backend)
    consumer_api, provider_api = Management(http, consumer), Management(http, provider)

    request = {
        "@context": EDC_CONTEXT,
        "@type": "TransferRequest",
        "counterPartyAddress": provider.settings.dsp_base_url,
        "contractId": agreement_id,
        "protocol": "dataspace-protocol-http:2025-1",
        "transferType": "HttpData-PULL",
    }
    status, created = await consumer_api.call("POST", "/management/v3/transferprocesses", request)
    assert status == 200, created
    transfer_id = created["@id"]
    started = await _wait(consumer_api, f"/management/v3/transferprocesses/{transfer_id}", {"STARTED"})
    assert started["type"] == "CONSUMER" and started["contractId"] == agreement_id
    status, edrs = await consumer_api.call("POST", "/management/v3/edrs/request")
    assert [e["transferProcessId"] for e in edrs] == [transfer_id]
    status, address = await consumer_api.call("GET", f"/management/v3/edrs/{transfer_id}/dataaddress")
    assert status == 200, address
    endpoint, token = address["endpoint"], address["authorization"]
    assert endpoint == provider.settings.effective_public_url + "/public"

    # The consumer calls the endpoint with the token as is, as EDC clients do.
    async with http.get(endpoint + "/BAT-1?version=2", headers={"Authorization": token}) as response:
        assert response.status == 200, await response.text()
        data = await response.json()
    assert data["batteryId"] == "BAT-1" and data["path"] == "/source/passports/BAT-1?version=2"
    _method, _, headers = backend.requests[-1]
    assert headers["X-Agreement-Id"] == agreement_id
    assert headers["X-Consumer-Id"] == consumer.settings.effective_participant_id
    # The secret went to the backend and nowhere else, and the provider's database holds it sealed.
    assert "backend-secret" not in json.dumps(address) and "backend-secret" not in json.dumps(data)
    with sqlite3.connect(provider.settings.effective_database_url.split("///", 1)[1]) as raw:
        (secrets,) = raw.execute("SELECT data_address_secrets FROM assets WHERE id = 'passports-http'").fetchone()
    assert "backend-secret" not in secrets and json.loads(secrets)["authCode"].startswith("sealed:v1:")

    # Without the token, or with a forged one: 401 with the reason.
    async with http.get(endpoint) as response:
        assert response.status == 401
        assert "no token" in (await response.json())["reason"]
    forged = token[:-4] + ("AAAA" if not token.endswith("AAAA") else "BBBB")
    async with http.get(endpoint, headers={"Authorization": forged}) as response:
        assert response.status == 401

    # The provider's view, and its access log.
    status, provided = await provider_api.call("POST", "/management/v3/transferprocesses/request")
    assert [t["state"] for t in provided] == ["STARTED"]
    # The provider holds no EDR: its transfers are not listed there (filtered before paging, not after).
    assert (await provider_api.call("POST", "/management/v3/edrs/request"))[1] == []
    async with asyncio.timeout(5):
        while True:
            status, log = await provider_api.call("POST", "/management/v1/dataaccess/request")
            if any(entry["status"] == 200 for entry in log):
                break
            await asyncio.sleep(0.1)
    served = next(entry for entry in log if entry["status"] == 200)
    assert served["agreementId"] == agreement_id and served["assetId"] == "passports-http" and served["bytes"] > 4000

    # Terminated by the consumer: the provider refuses the token, saying why.
    body = {"@context": EDC_CONTEXT, "@type": "TerminateTransfer", "reason": "done with it"}
    status, answer = await consumer_api.call("POST", f"/management/v3/transferprocesses/{transfer_id}/terminate", body)
    assert status == 204, answer
    await _wait(consumer_api, f"/management/v3/transferprocesses/{transfer_id}", {"TERMINATED"})
    async with asyncio.timeout(10):
        while True:
            async with http.get(endpoint, headers={"Authorization": token}) as response:
                if response.status != 200:
                    break
            await asyncio.sleep(0.05)
    assert response.status == 403
    async with http.get(endpoint, headers={"Authorization": token}) as response:
        reason = (await response.json())["reason"]
    assert "TERMINATED" in reason and "done with it" in reason


async def test_push_transfer_delivers_into_the_consumer_endpoint_and_completes(
    node_factory: NodeFactory, http: aiohttp.ClientSession, backend: Backend
) -> None:
    provider = await node_factory(api_key=API_KEY)
    consumer = await node_factory(api_key=API_KEY)
    agreement_id = await _agreement(provider, consumer, http, backend)
    consumer_api = Management(http, consumer)
    request = {
        "@context": EDC_CONTEXT,
        "@type": "TransferRequest",
        "counterPartyAddress": provider.settings.dsp_base_url,
        "contractId": agreement_id,
        "protocol": "dataspace-protocol-http:2025-1",
        "transferType": "HttpData-PUSH",
        "dataDestination": {"type": "HttpData", "baseUrl": backend.url + "/sink", "authorization": "sink-token"},
    }
    status, created = await consumer_api.call("POST", "/management/v3/transferprocesses", request)
    assert status == 200, created
    done = await _wait(consumer_api, f"/management/v3/transferprocesses/{created['@id']}", {"COMPLETED"})
    assert done["transferType"] == "HttpData-PUSH"
    [(headers, pushed)] = backend.pushed
    assert headers["Authorization"] == "Bearer sink-token"
    assert json.loads(pushed)["batteryId"] == "BAT-1"
    assert headers["X-Agreement-Id"] == agreement_id


async def test_transfer_requests_for_unknown_agreements_are_refused(
    node_factory: NodeFactory, http: aiohttp.ClientSession
) -> None:
    provider = await node_factory(api_key=API_KEY)
    consumer = await node_factory(api_key=API_KEY)
    message = {
        "@context": ["https://w3id.org/dspace/2025/1/context.jsonld"],
        "@type": "TransferRequestMessage",
        "consumerPid": "urn:uuid:1",
        "agreementId": "no-such-agreement",
        "format": "HttpData-PULL",
        "callbackAddress": consumer.settings.dsp_base_url,
    }
    token = consumer.identity.token_for(provider.settings.effective_did)
    async with http.post(
        provider.settings.dsp_base_url + "/transfers/request", json=message, headers={"Authorization": token}
    ) as response:
        assert response.status == 400
        body = await response.json()
    dsp_schemas.validate(body, "transfer/transfer-error-schema.json")
    assert "no-such-agreement" in body["reason"][0]


async def test_an_expired_agreement_stops_the_data_and_the_monitor_terminates_the_transfer(
    node_factory: NodeFactory, http: aiohttp.ClientSession, backend: Backend
) -> None:
    provider = await node_factory(api_key=API_KEY, policy_monitor_seconds=0.3)
    consumer = await node_factory(api_key=API_KEY)
    until = (datetime.now(UTC) + timedelta(seconds=4)).strftime("%Y-%m-%dT%H:%M:%SZ")
    contract = [{"action": "use", "constraint": [{"leftOperand": "dateTime", "operator": "lt", "rightOperand": until}]}]
    transfer_id, address = await _started_pull(provider, consumer, http, backend, contract)
    consumer_api, provider_api = Management(http, consumer), Management(http, provider)
    async with http.get(address["endpoint"], headers={"Authorization": address["authorization"]}) as response:
        assert response.status == 200
    # After the validity period the data stops at once (data-request scope), then the monitor ends the transfer.
    provided = await _provider_terminated(provider_api)
    assert "policy monitor" in provided["errorDetail"] and "dateTime" in provided["errorDetail"]
    async with http.get(address["endpoint"], headers={"Authorization": address["authorization"]}) as response:
        assert response.status == 403
        assert "TERMINATED" in (await response.json())["reason"]
    done = await _wait(consumer_api, f"/management/v3/transferprocesses/{transfer_id}", {"TERMINATED"})
    assert "usage policy no longer holds" in done["errorDetail"]


async def test_a_count_limit_allows_exactly_that_many_uses_and_failed_requests_use_none(
    node_factory: NodeFactory, http: aiohttp.ClientSession, backend: Backend
) -> None:
    provider = await node_factory(api_key=API_KEY, policy_monitor_seconds=0.3)
    consumer = await node_factory(api_key=API_KEY)
    contract = [{"action": "use", "constraint": [{"leftOperand": "count", "operator": "lteq", "rightOperand": 5}]}]
    _, address = await _started_pull(provider, consumer, http, backend, contract)
    consumer_api, provider_api = Management(http, consumer), Management(http, provider)
    auth = {"Authorization": address["authorization"]}

    # A request the backend cannot answer with data does not use up the agreement.
    async with http.get(address["endpoint"] + "/missing", headers=auth) as response:
        assert response.status == 404

    async def fetch() -> tuple[int, str]:
        async with http.get(address["endpoint"] + "/BAT-1", headers=auth) as response:
            return response.status, await response.text()

    # Twenty at once: exactly five get data, however the requests interleave.
    results = await asyncio.gather(*(fetch() for _ in range(20)))
    assert sorted(status for status, _ in results) == [200] * 5 + [403] * 15
    refused = next(text for status, text in results if status == 403)
    assert "count" in refused and "lteq 5" in refused

    # With every use taken, the monitor ends the transfer, and a new transfer is refused.
    assert "count" in (await _provider_terminated(provider_api))["errorDetail"]
    request = _pull_request(provider, address["agreementId"])
    status, again = await consumer_api.call("POST", "/management/v3/transferprocesses", request)
    assert status == 200, again
    ended = await _wait_for_end(consumer_api, again["@id"])
    assert ended["state"] == "TERMINATED" and "count" in ended["errorDetail"]


async def test_tokens_are_refreshed_with_the_consumers_signed_authentication_token(
    node_factory: NodeFactory, http: aiohttp.ClientSession, backend: Backend
) -> None:
    """The Tractus-X token refresh profile, both sides: the consumer's management API refreshes its EDR."""
    provider = await node_factory(api_key=API_KEY, token_lifetime_seconds=12)
    consumer = await node_factory(api_key=API_KEY)
    transfer_id, address = await _started_pull(provider, consumer, http, backend)
    consumer_api = Management(http, consumer)
    assert address["refreshAudience"] == provider.settings.effective_did
    assert address["refreshEndpoint"] == address["endpoint"] + "/token"

    status, refreshed = await consumer_api.call("POST", f"/management/v3/edrs/{transfer_id}/refresh")
    assert status == 200, refreshed
    assert refreshed["authorization"] != address["authorization"]
    assert refreshed["refreshToken"] != address["refreshToken"] and refreshed["expiresIn"] == address["expiresIn"]
    _, stored = await consumer_api.call("GET", f"/management/v3/edrs/{transfer_id}/dataaddress")
    assert stored["authorization"] == refreshed["authorization"]
    async with http.get(address["endpoint"] + "/BAT-1", headers={"Authorization": refreshed["authorization"]}) as got:
        assert got.status == 200, await got.text()
    # Twice in a row: the refresh token of the first refresh works for the second.
    status, again = await consumer_api.call("POST", f"/management/v3/edrs/{transfer_id}/refresh")
    assert status == 200 and again["authorization"] != refreshed["authorization"]

    # An EDR naming another party as refreshAudience does not make the consumer sign a token for that party
    # (the provider could replay it there as this consumer's request): the proof is always for the provider.
    database = consumer.settings.effective_database_url.split("///", 1)[1]
    with sqlite3.connect(database) as raw:
        (stored,) = raw.execute("SELECT data_address FROM transfers WHERE id = ?", (transfer_id,)).fetchone()
        tampered = stored.replace(provider.settings.effective_did, "did:web:elsewhere.example")
        assert tampered != stored
        raw.execute("UPDATE transfers SET data_address = ? WHERE id = ?", (tampered, transfer_id))
    status, again = await consumer_api.call("POST", f"/management/v3/edrs/{transfer_id}/refresh")
    assert status == 200, again  # the provider got a proof addressed to itself

    # auto_refresh (as Tractus-X clients ask) refreshes only a token that is about to expire.
    _, fresh = await consumer_api.call("GET", f"/management/v3/edrs/{transfer_id}/dataaddress?auto_refresh=true")
    assert fresh["authorization"] == again["authorization"]  # valid for minutes: handed out as it is
    assert (await consumer_api.call("GET", f"/management/v3/edrs/{transfer_id}/dataaddress?auto_refresh=maybe"))[
        0
    ] == 400

    await asyncio.sleep(3)  # 12 s tokens: now within 10 s of expiry, so auto_refresh refreshes
    _, renewed = await consumer_api.call("GET", f"/management/v3/edrs/{transfer_id}/dataaddress?auto_refresh=true")
    assert renewed["authorization"] != again["authorization"]
    again = renewed

    # At rest, the consumer's database holds the tokens sealed: a copy of it alone grants nothing.
    with sqlite3.connect(database) as raw:
        (stored_address,) = raw.execute("SELECT data_address FROM transfers WHERE id = ?", (transfer_id,)).fetchone()
    assert again["authorization"] not in stored_address and again["refreshToken"] not in stored_address
    # Three sealed values: the access token under its DSP and its EDC name (Tractus-X reads the latter), the refresh token.
    assert stored_address.count("sealed:v1:") == 3 and address["endpoint"] in stored_address


async def test_a_refresh_without_the_consumers_proof_is_refused_naming_why(
    node_factory: NodeFactory, http: aiohttp.ClientSession, backend: Backend
) -> None:
    provider = await node_factory(api_key=API_KEY)
    consumer = await node_factory(api_key=API_KEY)
    stranger = await node_factory(api_key=API_KEY)
    transfer_id, address = await _started_pull(provider, consumer, http, backend)
    url = address["refreshEndpoint"]
    provider_did = provider.settings.effective_did

    async def refresh(authorization: str | None, **params: str) -> tuple[int, dict[str, Any]]:
        query = {"grant_type": "refresh_token", "refresh_token": address["refreshToken"], **params}
        headers = {"Authorization": authorization} if authorization else {}
        async with http.post(url, params=query, headers=headers) as response:
            return response.status, await response.json()

    proof = consumer.identity.self_issued(provider_did, address["authorization"])
    status, body = await refresh("Bearer " + proof, grant_type="password")
    assert status == 400 and "grant_type" in body["reason"]
    status, body = await refresh("Bearer " + proof, refresh_token="")
    assert status == 400 and "refresh_token" in body["reason"]
    # The refresh token alone (the bearer pattern this node accepted before) proves nothing.
    status, body = await refresh(address["refreshToken"])
    assert status == 401 and "authentication token was refused" in body["reason"]
    status, body = await refresh(None)
    assert status == 401 and "no authentication token" in body["reason"]
    # Signed by another participant, or for another audience, or without the access token.
    other = stranger.identity.self_issued(provider_did, address["authorization"])
    status, body = await refresh("Bearer " + other)
    assert status == 401 and "not signed by the consumer" in body["reason"]
    wrong_audience = consumer.identity.self_issued(stranger.settings.effective_did, address["authorization"])
    status, body = await refresh("Bearer " + wrong_audience)
    assert status == 401 and "not addressed to" in body["reason"]
    status, body = await refresh("Bearer " + consumer.identity.self_issued(provider_did))
    assert status == 401 and "'token' claim" in body["reason"]
    # The right proof works once; the same proof again is a replay.
    status, body = await refresh("Bearer " + proof)
    assert status == 200, body
    assert body["token_type"] == "bearer" and body["expires_in"] == body["expires"] == int(address["expiresIn"])
    status, body = await refresh("Bearer " + proof)
    assert status == 401 and "already used" in body["reason"]
    # Once the transfer ends, nothing refreshes.
    consumer_api = Management(http, consumer)
    status, _ = await consumer_api.call(
        "POST", f"/management/v3/transferprocesses/{transfer_id}/terminate", {"reason": "done"}
    )
    assert status == 204
    await _wait_for_end(consumer_api, transfer_id)
    async with asyncio.timeout(10):
        while True:
            status, body = await refresh(
                "Bearer " + consumer.identity.self_issued(provider_did, address["authorization"])
            )
            if status == 403:
                break
            await asyncio.sleep(0.1)
    assert "not STARTED" in body["reason"]


async def test_a_push_takes_a_counted_use(
    node_factory: NodeFactory, http: aiohttp.ClientSession, backend: Backend
) -> None:
    provider = await node_factory(api_key=API_KEY)
    consumer = await node_factory(api_key=API_KEY)
    contract = [{"action": "use", "constraint": [{"leftOperand": "count", "operator": "lteq", "rightOperand": 1}]}]
    agreement_id = await _agreement(provider, consumer, http, backend, contract)
    consumer_api = Management(http, consumer)
    request = {
        **_pull_request(provider, agreement_id),
        "transferType": "HttpData-PUSH",
        "dataDestination": {"type": "HttpData", "baseUrl": backend.url + "/sink"},
    }
    status, first = await consumer_api.call("POST", "/management/v3/transferprocesses", request)
    assert status == 200, first
    assert (await _wait_for_end(consumer_api, first["@id"]))["state"] == "COMPLETED"
    status, second = await consumer_api.call("POST", "/management/v3/transferprocesses", request)
    assert status == 200, second
    ended = await _wait_for_end(consumer_api, second["@id"])
    assert ended["state"] == "TERMINATED" and "count" in ended["errorDetail"]
    assert len(backend.pushed) == 1


PURPOSE_BOUND = [
    {"action": "use", "constraint": [{"leftOperand": "purpose", "operator": "eq", "rightOperand": "repair"}]}
]


async def test_a_purpose_bound_agreement_is_pulled_with_a_declared_purpose_and_never_pushed(
    node_factory: NodeFactory, http: aiohttp.ClientSession, backend: Backend
) -> None:
    provider = await node_factory(api_key=API_KEY)
    consumer = await node_factory(api_key=API_KEY)
    # A transfer request cannot declare a purpose: the pull starts, and each data request declares one.
    pulled, address = await _started_pull(provider, consumer, http, backend, PURPOSE_BOUND)
    consumer_api = Management(http, consumer)
    agreement_id = (await consumer_api.call("GET", f"/management/v3/transferprocesses/{pulled}"))[1]["contractId"]
    url, token = address["endpoint"] + "/BAT-1", address["authorization"]
    for purpose, expected in (("repair", 200), ("recycling", 403), (None, 403)):
        headers = {"Authorization": token} | ({"X-Purpose": purpose} if purpose else {})
        async with http.get(url, headers=headers) as response:
            body = await response.json()
            assert response.status == expected, (purpose, body)
            if expected == 403:
                assert "purpose" in body["reason"], body
    # A push sends the data at its start, where no purpose is declared: refused, naming the check left.
    request = {
        **_pull_request(provider, agreement_id),
        "transferType": "HttpData-PUSH",
        "dataDestination": {"type": "HttpData", "baseUrl": backend.url + "/sink"},
    }
    status, pushed = await consumer_api.call("POST", "/management/v3/transferprocesses", request)
    assert status == 200, pushed
    ended = await _wait_for_end(consumer_api, pushed["@id"])
    assert ended["state"] == "TERMINATED", ended
    assert "push transfer" in ended["errorDetail"] and "odrl:purpose" in ended["errorDetail"], ended
    assert backend.pushed == []


async def test_the_data_plane_passes_no_backend_redirects_or_backend_headers(
    node_factory: NodeFactory, http: aiohttp.ClientSession, backend: Backend
) -> None:
    provider = await node_factory(api_key=API_KEY)
    consumer = await node_factory(api_key=API_KEY)
    _, address = await _started_pull(provider, consumer, http, backend)
    headers = {"Authorization": address["authorization"]}
    async with http.get(address["endpoint"] + "/moved", headers=headers, allow_redirects=False) as response:
        body = await response.text()
        assert response.status == 502, body
        assert "Location" not in response.headers and "Set-Cookie" not in response.headers
    assert "10.1.2.3" not in body and "redirect" in body
    async with http.get(address["endpoint"] + "/headers", headers=headers) as response:
        assert response.status == 200
        assert response.headers["Content-Type"].startswith("application/json")
        assert "Server" not in response.headers or "internal" not in response.headers["Server"]
        assert "X-Backend-Host" not in response.headers
