"""The Tractus-X EDR API between two nodes, driven with the exact HTTP calls of the Tractus-X SDK 0.8.3 (research §8).

The SDK needs Python 3.12, so this test replays its calls in order, with its bodies, its quirks included: it
probes transfer-process filter keys until one is refused, deletes `@type`, `providerId` and `@context` from each
EDR entry, and sends `auto_refresh=True`.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import aiohttp

from connector.app import Node
from connector.identity import issuer
from tests.conftest import API_KEY, EDC_CONTEXT, Management, NodeFactory
from tests.test_catalog_filters import DTR_TYPE
from tests.test_catenax_policies import access_policy, usage_policy
from tests.test_two_nodes_catenax import MEMBER_BPN, _grant, _hold, _provider
from tests.test_two_nodes_transfer import Backend
from tests.test_two_nodes_transfer import backend as backend

EDC = "https://w3id.org/edc/v0.0.1/ns/"
SDK_POLICY_CONTEXT = [
    "https://w3id.org/catenax/2025/9/policy/odrl.jsonld",
    "https://w3id.org/catenax/2025/9/policy/context.jsonld",
    {"@vocab": EDC},
]


async def _publish_registry(provider: Node, http: aiohttp.ClientSession, backend: Backend) -> None:
    """The provider side as the SDK's provider service writes it: a DTR asset, the Catena-X policies, a contract."""
    api = Management(http, provider)
    asset = {
        "@context": {
            "edc": EDC,
            "cx-common": "https://w3id.org/catenax/ontology/common#",
            "cx-taxo": "https://w3id.org/catenax/taxonomy#",
            "dct": "http://purl.org/dc/terms/",
        },
        "@id": "dtr",
        "properties": {"dct:type": {"@id": DTR_TYPE}, "cx-common:version": "3.0"},
        "privateProperties": {},
        "dataAddress": {
            "@type": "DataAddress",
            "type": "HttpData",
            "baseUrl": backend.url + "/source/registry",
            "proxyPath": "true",
            "proxyQueryParams": "true",
            "proxyMethod": "false",
            "proxyBody": "false",
            "authKey": "X-Api-Secret",
            "authCode": "backend-secret",
        },
    }
    status, answer = await api.call("POST", "/management/v3/assets", asset)
    assert status == 200, answer
    for body in (access_policy(context=SDK_POLICY_CONTEXT), usage_policy(context=SDK_POLICY_CONTEXT)):
        status, answer = await api.call("POST", "/management/v3/policydefinitions", body)
        assert status == 200, answer
    definition = {
        "@context": EDC_CONTEXT,
        "@id": "cd-dtr",
        "accessPolicyId": "membership-deg",
        "contractPolicyId": "dpp-usage",
        "assetsSelector": [{"operandLeft": EDC + "id", "operator": "=", "operandRight": "dtr"}],
    }
    assert (await api.call("POST", "/management/v3/contractdefinitions", definition))[0] == 200


def _query(key: str, value: str) -> dict[str, Any]:
    """The QuerySpec the SDK posts to .../request endpoints."""
    return {
        "@context": {"@vocab": EDC},
        "@type": "QuerySpec",
        "offset": 0,
        "limit": 10,
        "sortOrder": "DESC",
        "sortField": "createdAt",
        "filterExpression": [{"operandLeft": key, "operator": "=", "operandRight": value}],
    }


async def _consumer(node_factory: NodeFactory, http: aiohttp.ClientSession, issuer_dir: Path) -> Node:
    member: Node = await node_factory(api_key=API_KEY, trusted_issuers=issuer.load_registry(issuer_dir).did)
    credentials = _grant(issuer_dir, member.settings.effective_did, MEMBER_BPN, "membership", "deg", "bpn")
    await _hold(member, http, credentials)
    return member


async def test_the_tractus_x_sdk_flow_finds_the_registry_negotiates_and_pulls_in_one_call(
    node_factory: NodeFactory, http: aiohttp.ClientSession, tmp_path: Path, backend: Backend
) -> None:
    provider, issuer_dir = await _provider(node_factory, tmp_path)
    await _publish_registry(provider, http, backend)
    consumer = await _consumer(node_factory, http, issuer_dir)
    api = Management(http, consumer, api_key=API_KEY)
    address = provider.settings.dsp_base_url
    provider_id = provider.settings.effective_did

    # 1. The catalog, filtered on the registry's type.
    catalog_request = {
        "@context": {"edc": EDC, "odrl": "http://www.w3.org/ns/odrl/2/", "dct": "https://purl.org/dc/terms/"},
        "@type": "CatalogRequest",
        "counterPartyAddress": address,
        "counterPartyId": provider_id,
        "protocol": "dataspace-protocol-http:2025-1",
        "additionalScopes": [],
        "querySpec": {
            "@context": {"@vocab": EDC},
            "@type": "QuerySpec",
            "filterExpression": [
                {"operandLeft": "'http://purl.org/dc/terms/type'.'@id'", "operator": "=", "operandRight": DTR_TYPE}
            ],
        },
    }
    status, catalog = await api.call("POST", "/management/v3/catalog/request", catalog_request)
    assert status == 200, catalog
    dataset = catalog["dcat:dataset"]
    assert isinstance(dataset, dict) and dataset["@id"] == "dtr"
    offer = dataset["odrl:hasPolicy"]

    # 2. One call: negotiate, then pull. The policy copies every key of the catalog's offer but @id and @type.
    edr_request = {
        "@context": SDK_POLICY_CONTEXT,
        "@type": "ContractRequest",
        "counterPartyAddress": address,
        "protocol": "dataspace-protocol-http:2025-1",
        "policy": {
            "@id": offer["@id"],
            "@type": "odrl:Offer",
            "assigner": {"@id": provider_id},
            "target": {"@id": dataset["@id"]},
            **{k: v for k, v in offer.items() if k not in ("@id", "@type")},
        },
        "callbackAddresses": [],
    }
    status, created = await api.call("POST", "/management/v3/edrs", edr_request)
    assert status == 200, created  # the SDK requires exactly 200
    negotiation_id = created["@id"]

    # 3. The negotiation's state, then the negotiation for its agreement.
    async with asyncio.timeout(30):
        while True:
            status, state = await api.call("GET", f"/management/v3/contractnegotiations/{negotiation_id}/state")
            assert status == 200, state
            assert state["state"] != "TERMINATED", state
            if state["state"] == "FINALIZED":
                break
            await asyncio.sleep(0.05)
    _, negotiation = await api.call("GET", f"/management/v3/contractnegotiations/{negotiation_id}")
    agreement_id = negotiation["contractAgreementId"]

    # 4. The transfer the EDR call started: the SDK tries filter keys in turn, moving on only after a non-200.
    used = None
    async with asyncio.timeout(30):
        while True:
            for key in ("contractAgreementId", "contractId", "agreementId"):
                status, transfers = await api.call(
                    "POST", "/management/v3/transferprocesses/request", _query(key, agreement_id)
                )
                if status == 200:
                    used = key
                    break
            assert used == "contractId" and len(transfers) == 1, transfers
            assert transfers[0]["state"] != "TERMINATED", transfers[0].get("errorDetail")
            if transfers[0]["state"] in ("STARTED", "COMPLETED"):
                break
            await asyncio.sleep(0.05)
    transfer_id = transfers[0]["@id"]
    assert transfers[0]["transferType"] == "HttpData-PULL"

    # 5. The EDR entry by negotiation id; the SDK deletes these three keys from it (a KeyError if one is missing).
    status, entries = await api.call(
        "POST", "/management/v3/edrs/request", _query("contractNegotiationId", negotiation_id)
    )
    assert status == 200, entries
    assert len(entries) == 1
    entry = dict(entries[0])
    del entry["@type"], entry["providerId"], entry["@context"]
    assert entry["transferProcessId"] == transfer_id and entry["agreementId"] == agreement_id
    assert entries[0]["providerId"] == provider_id and entries[0]["assetId"] == "dtr"

    # 6. The data address, as the SDK asks for it, and the registry behind it with the raw token.
    status, address_body = await api.call("GET", f"/management/v3/edrs/{transfer_id}/dataaddress?auto_refresh=True")
    assert status == 200, address_body
    async with http.get(
        address_body["endpoint"] + "/shell-descriptors?limit=5",
        headers={"Authorization": address_body["authorization"]},
    ) as response:
        assert response.status == 200, await response.text()
        assert (await response.json())["path"] == "/source/registry/shell-descriptors?limit=5"

    # The pull was started once, whatever was asked afterwards.
    _, all_transfers = await api.call("POST", "/management/v3/transferprocesses/request")
    assert [t["@id"] for t in all_transfers] == [transfer_id]


async def test_edr_entries_are_filtered_by_every_key_tractus_x_clients_use(
    node_factory: NodeFactory, http: aiohttp.ClientSession, tmp_path: Path, backend: Backend
) -> None:
    from tests.test_two_nodes_transfer import _started_pull

    provider = await node_factory(api_key=API_KEY)
    consumer = await node_factory(api_key=API_KEY)
    transfer_id, _ = await _started_pull(provider, consumer, http, backend)
    api = Management(http, consumer, api_key=API_KEY)
    status, entries = await api.call("POST", "/management/v3/edrs/request")
    assert status == 200 and len(entries) == 1, entries
    entry = entries[0]
    for key, value in (
        ("contractNegotiationId", entry["contractNegotiationId"]),
        ("assetId", entry["assetId"]),
        ("agreementId", entry["agreementId"]),
        ("contractAgreementId", entry["agreementId"]),
        ("contractId", entry["agreementId"]),
        ("providerId", entry["providerId"]),
        ("transferProcessId", transfer_id),
        (EDC + "contractNegotiationId", entry["contractNegotiationId"]),
    ):
        status, found = await api.call("POST", "/management/v3/edrs/request", _query(key, value))
        assert status == 200, (key, found)
        assert [e["@id"] for e in found] == [transfer_id], key
        status, found = await api.call("POST", "/management/v3/edrs/request", _query(key, "no-such-value"))
        assert status == 200 and found == [], key
    assert entry["contractNegotiationId"] and entry["providerId"] == provider.settings.effective_participant_id
    status, problem = await api.call("POST", "/management/v3/edrs/request", _query("state", "STARTED"))
    assert status == 400, problem
    assert "endpoint data references cannot be filtered or sorted by 'state'" in problem["detail"]
    assert "contractNegotiationId" in problem["detail"]


async def test_the_edr_call_refuses_a_bad_request_naming_what_is_wrong(
    node_factory: NodeFactory, http: aiohttp.ClientSession
) -> None:
    consumer = await node_factory(api_key=API_KEY)
    api = Management(http, consumer, api_key=API_KEY)
    body = {"@context": {"@vocab": EDC}, "@type": "ContractRequest", "protocol": "dataspace-protocol-http:2025-1"}
    status, problem = await api.call("POST", "/management/v3/edrs", body)
    assert status == 400, problem
    paths = {p.get("path") for p in problem.get("errors", problem.get("problems", []))} or {problem["detail"]}
    assert any("counterPartyAddress" in str(p) for p in paths), problem
    assert any("policy" in str(p) for p in paths) or "policy" in problem["detail"], problem
    # There is no v4 EDR API (EDC's v4 has none).
    status, _ = await api.call("POST", "/management/v4/edrs", body)
    assert status in (404, 405)


# The Tractus-X SDK itself (Python 3.12), in a venv of its own: the consumer flow as its README shows it.
SDK_VERSION = "0.8.3"
SDK_SCRIPT = """
import json, sys
from tractusx_sdk.dataspace.services.connector import ServiceFactory
from tractusx_sdk.dataspace.managers.connection import MemoryConnectionManager

management, api_key, provider_id, provider_dsp, dtr_type = sys.argv[1:6]
consumer = ServiceFactory.get_connector_consumer_service(
    dataspace_version="saturn", base_url=management, dma_path="/management",
    headers={"X-Api-Key": api_key, "Content-Type": "application/json"},
    connection_manager=MemoryConnectionManager(), verbose=False)
found = [consumer.get_filter_expression(key="'http://purl.org/dc/terms/type'.'@id'", operator="=", value=dtr_type)]
answers = []
for _ in range(2):  # the second call reuses the cached transfer
    response = consumer.do_get(counter_party_id=provider_id, counter_party_address=provider_dsp,
        filter_expression=found, path="/shell-descriptors", params={"limit": 5}, policies=None,
        protocol="dataspace-protocol-http:2025-1", poll_interval=1, max_wait=60)
    answers.append({"status": response.status_code, "body": response.json()})
print(json.dumps(answers))
"""


def _sdk_python() -> tuple[str | None, str]:
    """Return a Python 3.12 with the Tractus-X SDK (made once, in the user's cache), or None and why not."""
    import fcntl
    import os

    given = os.environ.get("CONNECTOR_TEST_TRACTUSX_SDK_PYTHON")
    if given:
        return given, ""
    cache = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "bpc-tests" / f"tractusx-sdk-{SDK_VERSION}"
    cache.parent.mkdir(parents=True, exist_ok=True)
    # One install at a time: two test runs on one machine (two clones' CI) share the cache, and without the lock
    # one removed the folder while the other installed into it (a click package with no files: the SDK's import
    # failed in both of the test's backends).
    with (cache.parent / f"{cache.name}.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        return _sdk_install(cache)


def _sdk_install(cache: Path) -> tuple[str | None, str]:
    """Make the SDK's Python in `cache` unless a finished install is there (the caller holds the lock)."""
    import os
    import shutil
    import subprocess

    python, installed = cache / "bin" / "python", cache / "installed"
    if installed.exists():
        return str(python), ""
    root = Path(os.environ.get("PYENV_ROOT", Path.home() / ".pyenv")) / "versions"
    candidates = sorted(root.glob("3.12*/bin/python3.12")) + [Path(p) for p in [shutil.which("python3.12")] if p]
    if not candidates:
        return None, "the Tractus-X SDK needs Python 3.12 (none under pyenv nor on PATH)"
    shutil.rmtree(cache, ignore_errors=True)  # what an interrupted install left
    try:
        subprocess.run([str(candidates[0]), "-m", "venv", str(cache)], check=True, capture_output=True, timeout=120)
        subprocess.run(
            [str(python), "-m", "pip", "install", "-q", f"tractusx-sdk=={SDK_VERSION}"],
            check=True,
            capture_output=True,
            timeout=600,
        )
    except (subprocess.SubprocessError, OSError) as exc:
        shutil.rmtree(cache, ignore_errors=True)
        return None, f"could not install tractusx-sdk {SDK_VERSION} for Python 3.12: {exc}"
    installed.touch()  # only a finished install counts (an interrupted one is made again)
    return str(python), ""


async def test_the_tractus_x_sdk_itself_reads_the_registry_through_our_consumer(
    node_factory: NodeFactory, http: aiohttp.ClientSession, tmp_path: Path, backend: Backend
) -> None:
    import json

    import pytest

    python, why = await asyncio.to_thread(_sdk_python)
    if python is None:
        pytest.skip(why)
    provider, issuer_dir = await _provider(node_factory, tmp_path)
    await _publish_registry(provider, http, backend)
    consumer = await _consumer(node_factory, http, issuer_dir)
    process = await asyncio.create_subprocess_exec(
        python,
        "-c",
        SDK_SCRIPT,
        consumer.management_url,
        API_KEY,
        provider.settings.effective_did,
        provider.settings.dsp_base_url,
        DTR_TYPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    async with asyncio.timeout(180):
        out, err = await process.communicate()
    assert process.returncode == 0, err.decode()[-3000:]
    answers = json.loads(out.decode().strip().splitlines()[-1])
    assert [a["status"] for a in answers] == [200, 200]
    assert answers[0]["body"]["path"] == "/source/registry/shell-descriptors?limit=5"
    # One negotiation and one transfer for both calls.
    api = Management(http, consumer)
    _, negotiations = await api.call("POST", "/management/v3/contractnegotiations/request")
    _, transfers = await api.call("POST", "/management/v3/transferprocesses/request")
    assert len(negotiations) == 1 and len(transfers) == 1
