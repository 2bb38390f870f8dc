"""The passport lookup (POST /management/v1/passports/lookup) between two real nodes on loopback.

The provider offers a registry speaking the AAS Registry API v3 shapes (served here by a small real server behind
the provider's data plane, as an HttpData asset of dct:type DigitalTwinRegistry) and one submodel asset per access
level. The consumer looks batteries up by global asset id, by specific asset id, by DID, DSP address and BPN;
agreements and EDRs are reused (counted in the consumer's store); errors name the step that failed.
"""

from __future__ import annotations

import asyncio
import base64
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from connector.app import Node
from connector.services.lookup import BATTERY_PASS_SEMANTIC_ID, DTR_TYPE
from tests.conftest import API_KEY, EDC_CONTEXT, ODRL_CONTEXT, Management, NodeFactory
from tests.test_access import _count
from tests.test_catenax_policies import TX_CONTEXT

EDC = "https://w3id.org/edc/v0.0.1/ns/"
OTHER_BPN = "BPNL00000003AZQP"
LOOKUP = "/management/v1/passports/lookup"


def _b64(text: str) -> str:
    return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")


def _unb64(text: str) -> str:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)).decode()


class Registry:
    """A provider's registry backend (AAS Registry API v3 read profile) and its submodel backend, on loopback."""

    def __init__(self) -> None:
        self.url = ""
        self.shells: dict[str, dict[str, Any]] = {}
        self.calls: list[str] = []
        self._runner: web.AppRunner | None = None

    async def start(self) -> None:
        app = web.Application()
        app.router.add_post("/registry/lookup/shellsByAssetLink", self._lookup)
        app.router.add_get("/registry/lookup/shells", self._lookup_get)
        app.router.add_get("/registry/shell-descriptors/{id}", self._shell)
        app.router.add_get("/data/{level}/{battery}/$value", self._value)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.url = f"http://127.0.0.1:{site._server.sockets[0].getsockname()[1]}"  # type: ignore[union-attr]

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    def add(self, battery: str, href_base: str, dsp: str, levels: tuple[str, ...] = ("public", "legitimate")) -> None:
        """A shell for a battery, with a BatteryPass submodel offered at each level."""
        self.shells[f"urn:uuid:shell-{battery}"] = {
            "id": f"urn:uuid:shell-{battery}",
            "globalAssetId": battery,
            "specificAssetIds": [{"name": "partInstanceId", "value": f"PI-{battery}"}],
            "submodelDescriptors": [
                {
                    "id": f"urn:uuid:sm-{battery}",
                    "semanticId": {
                        "type": "ExternalReference",
                        "keys": [{"type": "GlobalReference", "value": BATTERY_PASS_SEMANTIC_ID}],
                    },
                    "endpoints": [
                        {
                            "interface": "SUBMODEL-3.0",
                            "protocolInformation": {
                                "href": f"{href_base}/public/{battery}",
                                "subprotocol": "DSP",
                                "subprotocolBody": f"id=passport-bp-{level};dspEndpoint={dsp}",
                                "subprotocolBodyEncoding": "plain",
                            },
                        }
                        for level in levels
                    ],
                }
            ],
        }

    def _find(self, links: list[tuple[str, str]]) -> list[str]:
        found = []
        for shell_id, shell in self.shells.items():
            have = {(i["name"], i["value"]) for i in shell["specificAssetIds"]} | {
                ("globalAssetId", shell["globalAssetId"])
            }
            if all(link in have for link in links):
                found.append(shell_id)
        return found

    async def _lookup(self, request: web.Request) -> web.Response:
        self.calls.append("lookup")
        body = await request.json()
        return web.json_response({"paging_metadata": {}, "result": self._find([(i["name"], i["value"]) for i in body])})

    async def _lookup_get(self, request: web.Request) -> web.Response:
        self.calls.append("lookup-get")
        links = [json.loads(_unb64(v)) for v in request.query.getall("assetIds", [])]
        return web.json_response(
            {"paging_metadata": {}, "result": self._find([(i["name"], i["value"]) for i in links])}
        )

    async def _shell(self, request: web.Request) -> web.Response:
        self.calls.append("shell")
        shell = self.shells.get(_unb64(request.match_info["id"]))
        if shell is None:
            return web.json_response({"messages": [{"code": "404", "text": "no shell"}]}, status=404)
        return web.json_response(shell)

    async def _value(self, request: web.Request) -> web.Response:
        self.calls.append("value")
        battery, level = request.match_info["battery"], request.match_info["level"]
        return web.json_response({"batteryId": battery, "view": level, "chemistry": "LFP"})


@pytest.fixture
async def registry() -> AsyncIterator[Registry]:
    server = Registry()
    await server.start()
    yield server
    await server.stop()


async def _provider(
    node_factory: NodeFactory, http: aiohttp.ClientSession, registry: Registry, **settings: Any
) -> Node:
    """A provider with the registry asset and a BatteryPass submodel asset per level (the legitimate one for a BPN
    the consumer does not have)."""
    provider: Node = await node_factory(api_key=API_KEY, **settings)
    api = Management(http, provider)
    proxied = {"proxyPath": "true", "proxyQueryParams": "true", "proxyMethod": "true", "proxyBody": "true"}
    assets = [
        ("dtr", registry.url + "/registry", {"dct:type": {"@id": DTR_TYPE}, "cx-common:version": "3.0"}),
        ("passport-bp-public", registry.url + "/data/public", {"name": "BatteryPass, public"}),
        ("passport-bp-legitimate", registry.url + "/data/legitimate", {"name": "BatteryPass, legitimate interest"}),
    ]
    for asset_id, base_url, properties in assets:
        asset = {
            "@context": {
                "edc": EDC,
                "dct": "http://purl.org/dc/terms/",
                "cx-common": "https://w3id.org/catenax/ontology/common#",
            },
            "@id": asset_id,
            "properties": properties,
            "dataAddress": {"type": "HttpData", "baseUrl": base_url, **proxied},
        }
        status, answer = await api.call("POST", "/management/v3/assets", asset)
        assert status == 200, answer
    open_policy = {"@context": EDC_CONTEXT, "@id": "open", "policy": {"@context": ODRL_CONTEXT, "@type": "Set"}}
    bpn_only = {
        "@context": TX_CONTEXT,
        "@type": "PolicyDefinition",
        "@id": "bpn-only",
        "policy": {
            "@type": "Set",
            "permission": [
                {
                    "action": "access",
                    "constraint": {
                        "leftOperand": "BusinessPartnerNumber",
                        "operator": "isAnyOf",
                        "rightOperand": [OTHER_BPN],
                    },
                }
            ],
        },
    }
    for body in (open_policy, bpn_only):
        status, answer = await api.call("POST", "/management/v3/policydefinitions", body)
        assert status == 200, answer
    for cd, access, asset_id in (
        ("cd-dtr", "open", "dtr"),
        ("cd-public", "open", "passport-bp-public"),
        ("cd-legitimate", "bpn-only", "passport-bp-legitimate"),
    ):
        definition = {
            "@context": EDC_CONTEXT,
            "@id": cd,
            "accessPolicyId": access,
            "contractPolicyId": "open",
            "assetsSelector": [{"operandLeft": EDC + "id", "operator": "=", "operandRight": asset_id}],
        }
        assert (await api.call("POST", "/management/v3/contractdefinitions", definition))[0] == 200
    for battery in ("BAT-1", "BAT-2", "BAT-3"):
        registry.add(battery, provider.settings.effective_public_url, provider.settings.dsp_base_url)
    return provider


async def test_a_cold_then_warm_lookup_negotiates_once_per_asset_and_reuses_agreements_and_edrs(
    node_factory: NodeFactory, http: aiohttp.ClientSession, registry: Registry
) -> None:
    provider = await _provider(node_factory, http, registry)
    consumer = await node_factory(api_key=API_KEY)
    api = Management(http, consumer)
    status, found = await api.call("POST", LOOKUP, {"partner": provider.settings.effective_did, "batteryId": "BAT-1"})
    assert status == 200, found
    assert found["passport"] == {"batteryId": "BAT-1", "view": "public", "chemistry": "LFP"}
    source = found["source"]
    assert source["partner"] == provider.settings.effective_did
    assert source["dspAddress"] == provider.settings.dsp_base_url
    assert source["registry"]["asset"] == "dtr"
    assert source["shell"] == "urn:uuid:shell-BAT-1" and source["globalAssetId"] == "BAT-1"
    # The legitimate-interest asset is not offered to this consumer: the public one is read, named as such.
    assert source["asset"] == "passport-bp-public" and source["level"] == "public"
    assert set(found["elapsedMs"]) == {
        "partner",
        "registry",
        "registry-access",
        "shell",
        "submodel",
        "submodel-access",
        "passport",
    }
    assert await _count(consumer, "negotiations") == 2  # the registry and the submodel
    assert await _count(consumer, "transfers") == 2

    for battery in ("BAT-2", "BAT-3", "BAT-1"):
        status, again = await api.call(
            "POST", LOOKUP, {"partner": provider.settings.dsp_base_url, "batteryId": battery}
        )
        assert status == 200, again
        assert again["passport"]["batteryId"] == battery, (again, registry.calls)
        assert again["source"]["agreement"] == source["agreement"]
        assert again["source"]["registry"]["agreement"] == source["registry"]["agreement"]
    assert await _count(consumer, "negotiations") == 2
    assert await _count(consumer, "transfers") == 2

    # By specific asset id, and a level asked for.
    status, by_id = await api.call(
        "POST",
        LOOKUP,
        {
            "partner": provider.settings.effective_did,
            "specificAssetIds": [{"name": "partInstanceId", "value": "PI-BAT-2"}],
            "level": "public",
        },
    )
    assert status == 200, by_id
    assert by_id["passport"]["batteryId"] == "BAT-2" and by_id["source"]["shell"] == "urn:uuid:shell-BAT-2"
    assert await _count(consumer, "negotiations") == 2


async def test_concurrent_cold_lookups_make_one_negotiation_per_asset(
    node_factory: NodeFactory, http: aiohttp.ClientSession, registry: Registry
) -> None:
    provider = await _provider(node_factory, http, registry)
    consumer = await node_factory(api_key=API_KEY)
    api = Management(http, consumer)
    answers = await asyncio.gather(
        *(
            api.call("POST", LOOKUP, {"partner": provider.settings.effective_did, "batteryId": f"BAT-{1 + i % 3}"})
            for i in range(6)
        )
    )
    assert [status for status, _ in answers] == [200] * 6, answers
    assert len({body["source"]["agreement"] for _, body in answers}) == 1
    assert await _count(consumer, "negotiations") == 2
    assert await _count(consumer, "transfers") == 2


async def test_a_partner_named_by_its_bpn_is_found_through_the_directory_file(
    node_factory: NodeFactory, http: aiohttp.ClientSession, registry: Registry, tmp_path: Path
) -> None:
    provider = await _provider(node_factory, http, registry)
    directory = tmp_path / "bpns.json"
    directory.write_text(json.dumps({"BPNL00000003AYRE": provider.settings.effective_did}))
    consumer = await node_factory(api_key=API_KEY, bpn_directory_file=directory)
    status, found = await Management(http, consumer).call(
        "POST", LOOKUP, {"partner": "BPNL00000003AYRE", "batteryId": "BAT-3"}
    )
    assert status == 200, found
    assert found["source"]["bpn"] == "BPNL00000003AYRE" and found["passport"]["batteryId"] == "BAT-3"


async def test_an_expired_edr_is_refreshed_on_the_next_lookup_without_a_new_transfer(
    node_factory: NodeFactory, http: aiohttp.ClientSession, registry: Registry
) -> None:
    # Tokens of 10 s are within the refresh margin at once: every lookup refreshes both EDRs.
    provider = await _provider(node_factory, http, registry, token_lifetime_seconds=10)
    consumer = await node_factory(api_key=API_KEY)
    api = Management(http, consumer)
    body = {"partner": provider.settings.effective_did, "batteryId": "BAT-1"}
    assert (await api.call("POST", LOOKUP, body))[0] == 200
    status, edrs = await api.call("POST", "/management/v3/edrs/request")
    assert status == 200 and len(edrs) == 2, edrs
    first = {}
    for entry in edrs:
        _, address = await api.call(
            "GET", f"/management/v3/edrs/{entry['transferProcessId']}/dataaddress?auto_refresh=false"
        )
        first[entry["transferProcessId"]] = address["authorization"]
    status, again = await api.call("POST", LOOKUP, body)
    assert status == 200, again
    for transfer_id, token in first.items():
        _, address = await api.call("GET", f"/management/v3/edrs/{transfer_id}/dataaddress?auto_refresh=false")
        assert address["authorization"] != token  # refreshed
    assert await _count(consumer, "transfers") == 2 and await _count(consumer, "negotiations") == 2


async def test_errors_name_the_step_that_failed(
    node_factory: NodeFactory, http: aiohttp.ClientSession, registry: Registry
) -> None:
    provider = await _provider(node_factory, http, registry)
    consumer = await node_factory(api_key=API_KEY)
    stranger = await node_factory(api_key=API_KEY)  # offers no registry
    # A shell whose submodel names another connector than the partner's: a third party's URL.
    registry.add("BAT-EVIL", provider.settings.effective_public_url, stranger.settings.dsp_base_url, ("public",))
    api = Management(http, consumer)
    did = provider.settings.effective_did

    async def fails(body: dict[str, Any], status: int, step: str | None, text: str) -> None:
        got, problem = await api.call("POST", LOOKUP, body)
        assert got == status, problem
        assert problem["status"] == status and problem.get("step") == step, problem
        assert text in problem["detail"], problem

    await fails(
        {"partner": did, "batteryId": "NOPE"}, 404, "shell", "no shell visible to this node with globalAssetId=NOPE"
    )
    await fails(
        {"partner": did, "batteryId": "BAT-1", "level": "legitimate_interest"},
        403,
        "submodel",
        "offers this node none of the submodel's assets",
    )
    await fails(
        {"partner": did, "batteryId": "BAT-1", "semanticId": "urn:samm:x:1.0.0#X"}, 404, "submodel", "no submodel"
    )
    await fails({"partner": did, "batteryId": "BAT-EVIL"}, 502, "submodel", "is not " + did)
    await fails({"partner": stranger.settings.effective_did, "batteryId": "BAT-1"}, 404, "registry", "no Digital Twin")
    await fails({"partner": "BPNL00000003AYRE", "batteryId": "BAT-1"}, 400, "partner", "no BPN directory")
    await fails({"partner": did}, 400, None, "batteryId or specificAssetIds is required")
    await fails({"partner": did, "batteryId": "BAT-1", "level": "gold"}, 400, None, "level must be one of")
    # Nothing was negotiated with the third party, and the stranger was only asked for its catalog.
    _, negotiations = await api.call("POST", "/management/v3/contractnegotiations/request")
    assert {n["counterPartyId"] for n in negotiations} == {did}


async def test_the_command_line_looks_up_through_the_running_node(
    node_factory: NodeFactory, http: aiohttp.ClientSession, registry: Registry
) -> None:
    provider = await _provider(node_factory, http, registry)
    consumer = await node_factory(api_key=API_KEY)
    env = {"CONNECTOR_API_KEY": API_KEY, "CONNECTOR_MANAGEMENT_PORT": str(consumer.management_port)}
    import os
    import sys

    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "connector.cli",
        "passports",
        "lookup",
        "--partner",
        provider.settings.effective_did,
        "--battery",
        "BAT-2",
        env={**os.environ, **env},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(process.communicate(), 120)
    assert process.returncode == 0, err.decode()
    assert json.loads(out)["batteryId"] == "BAT-2"
    assert "asset passport-bp-public" in err.decode() and "level public" in err.decode()
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "connector.cli",
        "passports",
        "lookup",
        "--partner",
        provider.settings.effective_did,
        "--battery",
        "NOPE",
        env={**os.environ, **env},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(process.communicate(), 120)
    assert process.returncode == 1 and not out
    assert "the lookup failed at step shell (404)" in err.decode()


async def test_a_passport_published_by_a_provider_node_is_read_through_its_embedded_registry(
    node_factory: NodeFactory, http: aiohttp.ClientSession, tmp_path: Path
) -> None:
    from connector.domain import passport as model
    from tests.test_two_nodes_registry import _dataspace

    space = await _dataspace(node_factory, http, tmp_path, count=3)
    passports = [model.parse_passport(d) for d in space.documents]
    api = Management(http, space.member)
    did = space.provider.settings.effective_did
    for one in passports:
        status, found = await api.call("POST", LOOKUP, {"partner": did, "batteryId": one.battery_id})
        assert status == 200, found
        # The member holds no role that grants legitimate interest: the public view, as the provider serves it.
        assert found["passport"] == model.view_catenax(one, {"public"})
        assert found["source"]["shell"] == one.passport_id
        assert found["source"]["asset"] == "passport-submodel-battery-pass-public"
        assert found["source"]["level"] == "public"
        assert found["source"]["registry"]["asset"] == "digital-twin-registry"
    assert await _count(space.member, "negotiations") == 2
    assert await _count(space.member, "transfers") == 2

    # By a specific asset id; an IDTA part by its semantic id.
    from connector.domain import registry as wire

    status, by_id = await api.call(
        "POST",
        LOOKUP,
        {
            "partner": did,
            "specificAssetIds": [{"name": "partInstanceId", "value": passports[1].battery_id}],
            "semanticId": wire.semantic_id("digital_nameplate"),
        },
    )
    assert status == 200, by_id
    assert by_id["source"]["asset"] == "passport-submodel-digital-nameplate-public"
    assert await _count(space.member, "negotiations") == 3

    status, problem = await api.call(
        "POST", LOOKUP, {"partner": did, "batteryId": passports[0].battery_id, "level": "legitimate_interest"}
    )
    assert status == 403 and problem["step"] == "submodel", problem
    # Another member, whose BPN the registry does not name as a reader, sees no shell for the battery.
    status, problem = await Management(http, space.other).call(
        "POST", LOOKUP, {"partner": did, "batteryId": passports[0].battery_id}
    )
    assert status == 404 and problem["step"] == "shell", problem


async def test_a_registry_that_hides_global_asset_ids_is_asked_by_part_instance_id(
    node_factory: NodeFactory, http: aiohttp.ClientSession, tmp_path: Path
) -> None:
    from connector.domain import passport as model
    from tests.test_two_nodes_registry import _dataspace

    # PUBLIC_READABLE: everyone sees partInstanceId, nobody but the BPNs named sees the global asset id.
    space = await _dataspace(node_factory, http, tmp_path, count=2, registry_readers="PUBLIC_READABLE")
    api = Management(http, space.other)
    for document in space.documents * 2:
        one = model.parse_passport(document)
        status, found = await api.call(
            "POST", LOOKUP, {"partner": space.provider.settings.effective_did, "batteryId": one.battery_id}
        )
        assert status == 200, found
        assert found["source"]["shell"] == one.passport_id and found["source"]["globalAssetId"] is None
        assert found["passport"] == model.view_catenax(one, {"public"})


async def test_a_slow_negotiation_answers_504_at_its_step_and_a_revoked_edr_is_renewed(
    node_factory: NodeFactory, http: aiohttp.ClientSession, registry: Registry
) -> None:
    slow = await _provider(node_factory, http, registry, negotiation_approval="manual")
    consumer = await node_factory(api_key=API_KEY, access_wait_seconds=0.5)
    api = Management(http, consumer)
    status, problem = await api.call("POST", LOOKUP, {"partner": slow.settings.effective_did, "batteryId": "BAT-1"})
    assert status == 504 and problem["step"] == "registry-access", problem
    assert "CONNECTOR_ACCESS_WAIT_SECONDS" in problem["detail"]

    registry.shells.clear()
    provider = await _provider(node_factory, http, registry)
    body = {"partner": provider.settings.effective_did, "batteryId": "BAT-1"}
    status, found = await api.call("POST", LOOKUP, body)
    assert status == 200, found
    # The provider ends the submodel's transfer: its token is refused, and the lookup starts another.
    provider_api = Management(http, provider)
    _, provided = await provider_api.call("POST", "/management/v3/transferprocesses/request")
    ended = next(t for t in provided if t["assetId"] == "passport-bp-public")
    status, _ = await provider_api.call(
        "POST", f"/management/v3/transferprocesses/{ended['@id']}/terminate", {"@context": EDC_CONTEXT, "reason": "x"}
    )
    assert status == 204
    status, again = await api.call("POST", LOOKUP, body)
    assert status == 200, again
    assert again["source"]["agreement"] == found["source"]["agreement"]
    _, transfers = await api.call("POST", "/management/v3/transferprocesses/request")
    mine = [t for t in transfers if t["counterPartyId"] == provider.settings.effective_did]
    assert sorted(t["state"] for t in mine) == ["STARTED", "STARTED", "TERMINATED"]
