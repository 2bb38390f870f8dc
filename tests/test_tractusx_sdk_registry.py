"""The Tractus-X SDK (0.8.3, Python 3.12, in a venv of its own) finds the provider's embedded Digital Twin Registry in
its catalog by dct:type, looks a battery up by partInstanceId and reads its BatteryPass submodel, all through our
consumer node: the consumer flow a Catena-X application writes with the SDK, against the node's own registry."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import aiohttp
import pytest

from connector.domain import passport as model
from tests.conftest import Management, NodeFactory
from tests.test_catalog_filters import DTR_TYPE
from tests.test_edr_api import _consumer, _sdk_python
from tests.test_two_nodes_catenax import _provider

SDK_SCRIPT = """
import base64, json, sys
import requests
from tractusx_sdk.dataspace.services.connector import ServiceFactory
from tractusx_sdk.dataspace.managers.connection import MemoryConnectionManager

management, api_key, provider_id, provider_dsp, dtr_type, serial = sys.argv[1:7]
consumer = ServiceFactory.get_connector_consumer_service(
    dataspace_version="saturn", base_url=management, dma_path="/management",
    headers={"X-Api-Key": api_key, "Content-Type": "application/json"},
    connection_manager=MemoryConnectionManager(), verbose=False)
dtr = [consumer.get_filter_expression(key="'http://purl.org/dc/terms/type'.'@id'", operator="=", value=dtr_type)]
common = dict(counter_party_id=provider_id, counter_party_address=provider_dsp, policies=None,
              protocol="dataspace-protocol-http:2025-1", poll_interval=1, max_wait=60)
found = consumer.do_post(filter_expression=dtr, path="/lookup/shellsByAssetLink",
    json=[{"name": "partInstanceId", "value": serial}, {"name": "digitalTwinType", "value": "PartInstance"}], **common)
aas_id = found.json()["result"][0]
encoded = base64.urlsafe_b64encode(aas_id.encode()).decode()
shell = consumer.do_get(filter_expression=dtr, path="/shell-descriptors/" + encoded, **common)
descriptor = next(d for d in shell.json()["submodelDescriptors"]
                  if d["semanticId"]["keys"][0]["value"].endswith("#BatteryPass"))
protocol = descriptor["endpoints"][0]["protocolInformation"]
body = dict(item.split("=", 1) for item in protocol["subprotocolBody"].split(";"))
asset = [consumer.get_filter_expression(key="https://w3id.org/edc/v0.0.1/ns/id", operator="=", value=body["id"])]
_, token = consumer.do_dsp(counter_party_id=provider_id, counter_party_address=body["dspEndpoint"],
    filter_expression=asset, policies=None, protocol="dataspace-protocol-http:2025-1", poll_interval=1, max_wait=60)
submodel = requests.get(protocol["href"], headers=consumer.get_data_plane_headers(access_token=token), timeout=30)
value = requests.get(protocol["href"] + "/$value", headers=consumer.get_data_plane_headers(access_token=token),
                     timeout=30)
print(json.dumps({"lookup": found.status_code, "aas_id": aas_id, "shell": shell.status_code,
                  "submodel": submodel.status_code, "passport": submodel.json(), "value": value.json()}))
"""


async def test_the_tractus_x_sdk_looks_a_battery_up_in_our_registry_and_reads_its_passport(
    node_factory: NodeFactory, http: aiohttp.ClientSession, tmp_path: Path
) -> None:
    python, why = await asyncio.to_thread(_sdk_python)
    if python is None:
        pytest.skip(why)
    provider, issuer_dir = await _provider(node_factory, tmp_path)
    api = Management(http, provider)
    documents = [model.generate(i) for i in range(3)]
    assert (await api.call("POST", "/management/v1/passports/import", documents))[0] == 200
    assert (await api.call("POST", "/management/v1/passports/publish", {}))[0] == 200
    consumer = await _consumer(node_factory, http, issuer_dir)
    wanted = model.parse_passport(documents[1])
    process = await asyncio.create_subprocess_exec(
        python,
        "-c",
        SDK_SCRIPT,
        consumer.management_url,
        str(consumer.settings.api_key.get_secret_value() if consumer.settings.api_key else ""),
        provider.settings.effective_did,
        provider.settings.dsp_base_url,
        DTR_TYPE,
        wanted.battery_id,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    async with asyncio.timeout(240):
        out, err = await process.communicate()
    assert process.returncode == 0, err.decode()[-3000:]
    answer = json.loads(out.decode().strip().splitlines()[-1])
    assert answer["lookup"] == 200 and answer["shell"] == 200 and answer["submodel"] == 200
    assert answer["aas_id"] == wanted.passport_id
    assert answer["passport"] == model.view_catenax(wanted, {"public"}) == answer["value"]
    # Two negotiations through our consumer: the registry (reused for the second call) and the submodel.
    _, negotiations = await Management(http, consumer).call("POST", "/management/v3/contractnegotiations/request")
    assert sorted(n["state"] for n in negotiations) == ["FINALIZED", "FINALIZED"]
