"""A node killed mid-negotiation and restarted completes it, without duplicates."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
from pathlib import Path
from typing import Any

import aiohttp

import policies
from catalog.offers import offer_id
from connector import jsonld
from connector.services.offers import effective_policy
from tests.conftest import API_KEY, EDC_CONTEXT, ODRL_CONTEXT, Management, free_port

USE = [{"action": "use"}]


async def _start_consumer(data_dir: Path, port: int, admin: int) -> asyncio.subprocess.Process:
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "CONNECTOR_DATA_DIR": str(data_dir),
        "CONNECTOR_PROTOCOL_HOST": "127.0.0.1",
        "CONNECTOR_PROTOCOL_PORT": str(port),
        "CONNECTOR_PUBLIC_URL": f"http://127.0.0.1:{port}",
        "CONNECTOR_MANAGEMENT_PORT": str(admin),
        "CONNECTOR_API_KEY": API_KEY,
        "CONNECTOR_ALLOW_LOCAL_PEERS": "true",
        "CONNECTOR_OUTBOX_RETRY_SECONDS": "0.1",
        "CONNECTOR_OUTBOX_MAX_ATTEMPTS": "100",
    }
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "connector.cli", "serve", env=env, stderr=asyncio.subprocess.DEVNULL
    )
    async with aiohttp.ClientSession() as http, asyncio.timeout(60):
        while True:
            try:
                async with http.get(f"http://127.0.0.1:{admin}/ready") as response:
                    if response.status == 200:
                        return process
            except aiohttp.ClientError:
                pass
            await asyncio.sleep(0.05)


async def test_killed_consumer_completes_its_negotiation_after_restart(
    node_factory: Any, http: aiohttp.ClientSession, tmp_path: Path
) -> None:
    provider_port, consumer_port, consumer_admin = free_port(), free_port(), free_port()
    provider_did = f"did:web:127.0.0.1%3A{provider_port}"
    provider_dsp = f"http://127.0.0.1:{provider_port}/api/dsp/2025-1"
    contract = effective_policy(
        policies.parse_policy(jsonld.expand({"@context": ODRL_CONTEXT, "@type": "Set", "permission": USE})[0])
    )
    offer = offer_id("cd-x", "passports-x", contract)

    consumer = await _start_consumer(tmp_path / "consumer", consumer_port, consumer_admin)
    consumer_api = Management(http, type("N", (), {"management_url": f"http://127.0.0.1:{consumer_admin}"})())  # type: ignore[arg-type]
    try:
        request = {
            "@context": EDC_CONTEXT,
            "@type": "ContractRequest",
            "counterPartyAddress": provider_dsp,
            "counterPartyId": provider_did,
            "protocol": "dataspace-protocol-http:2025-1",
            "policy": {
                "@context": ODRL_CONTEXT,
                "@type": "Offer",
                "@id": offer,
                "assigner": provider_did,
                "target": "passports-x",
                "permission": USE,
            },
        }
        status, created = await consumer_api.call("POST", "/management/v3/contractnegotiations", request)
        assert status == 200, created
        # The provider is not there yet: the request waits in the outbox, retried; then the node dies hard.
        await asyncio.sleep(0.5)
        _, negotiation = await consumer_api.call("GET", f"/management/v3/contractnegotiations/{created['@id']}")
        assert negotiation["state"] == "INITIAL"
    finally:
        consumer.send_signal(signal.SIGKILL)
        await consumer.wait()

    provider = await node_factory(api_key=API_KEY, protocol_port=provider_port, data_dir=tmp_path / "provider")
    provider_api = Management(http, provider)
    asset = {
        "@context": EDC_CONTEXT,
        "@id": "passports-x",
        "properties": {"name": "X"},
        "dataAddress": {"type": "BatteryPassport"},
    }
    assert (await provider_api.call("POST", "/management/v3/assets", asset))[0] == 200
    body = {
        "@context": EDC_CONTEXT,
        "@id": "use",
        "policy": {"@context": ODRL_CONTEXT, "@type": "Set", "permission": USE},
    }
    assert (await provider_api.call("POST", "/management/v3/policydefinitions", body))[0] == 200
    definition = {
        "@context": EDC_CONTEXT,
        "@id": "cd-x",
        "accessPolicyId": "use",
        "contractPolicyId": "use",
        "assetsSelector": [],
    }
    assert (await provider_api.call("POST", "/management/v3/contractdefinitions", definition))[0] == 200

    consumer = await _start_consumer(tmp_path / "consumer", consumer_port, consumer_admin)
    try:
        async with asyncio.timeout(30):
            while True:
                _, negotiation = await consumer_api.call("GET", f"/management/v3/contractnegotiations/{created['@id']}")
                if negotiation["state"] in ("FINALIZED", "TERMINATED"):
                    break
                await asyncio.sleep(0.05)
        assert negotiation["state"] == "FINALIZED", json.dumps(negotiation)
        async with asyncio.timeout(10):
            while True:
                _, listed = await provider_api.call("POST", "/management/v3/contractnegotiations/request")
                if listed and listed[0]["state"] == "FINALIZED":
                    break
                await asyncio.sleep(0.05)
        assert len(listed) == 1, "the provider holds exactly one negotiation: no duplicates"
        assert listed[0]["contractAgreementId"] == negotiation["contractAgreementId"]
    finally:
        consumer.send_signal(signal.SIGTERM)
        await consumer.wait()
