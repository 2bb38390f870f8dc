"""The federated catalog between real nodes on loopback: a crawler crawls four providers; one goes down and comes
back; the searches, the crawl status and Insights say what docs/federation.md says at every step."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from pathlib import Path
from typing import Any
from urllib.parse import quote

import aiohttp

from connector.app import Node, running_node
from connector.domain.federation import words
from connector.domain.passport.synthetic import generate
from tests.conftest import API_KEY, EDC_CONTEXT, ODRL_CONTEXT, Management, NodeFactory, make_settings

FED = "/management/v1/federation"
PASSPORTS = "/management/v1/passports"
PER_PROVIDER = 12
DTR = "https://w3id.org/catenax/taxonomy#DigitalTwinRegistry"
NOTIFICATION = "https://w3id.org/catenax/taxonomy#ReceiveQualityInvestigationNotification"


def provider_passports(k: int, count: int = PER_PROVIDER, first: int = 0) -> list[dict[str, Any]]:
    """Return passports of provider `k`: its own ids (the generator's seed) and its own manufacturer."""
    documents = []
    for i in range(first, first + count):
        document = generate(i, seed=k)
        document["identity"]["manufacturer_id"] = f"BPNL00000000000{k}"
        document["identity"]["manufacturer_name"] = f"Maker {k}"
        documents.append(document)
    return documents


async def _stock(api: Management, k: int) -> None:
    status, summary = await api.call("POST", f"{PASSPORTS}/import", provider_passports(k))
    assert status == 200 and summary["new"] == PER_PROVIDER, summary
    assert (await api.call("POST", f"{PASSPORTS}/publish", {}))[0] == 200


async def _offer_typed(api: Management, asset_id: str, type_iri: str) -> None:
    """Offer an asset of a given dct:type to everyone (an open policy and its own contract definition)."""
    asset = {
        "@context": EDC_CONTEXT,
        "@id": asset_id,
        "properties": {"name": f"Endpoint {asset_id}", "http://purl.org/dc/terms/type": {"@id": type_iri}},
        "dataAddress": {"type": "HttpData", "baseUrl": "https://backend.example.com/endpoint"},
    }
    assert (await api.call("POST", "/management/v3/assets", asset))[0] == 200
    policy = {
        "@context": EDC_CONTEXT,
        "@id": f"open-{asset_id}",
        "policy": {"@context": ODRL_CONTEXT, "@type": "Set", "permission": []},
    }
    assert (await api.call("POST", "/management/v3/policydefinitions", policy))[0] == 200
    definition = {
        "@context": EDC_CONTEXT,
        "@id": f"offer-{asset_id}",
        "accessPolicyId": f"open-{asset_id}",
        "contractPolicyId": f"open-{asset_id}",
        "assetsSelector": [
            {"operandLeft": "https://w3id.org/edc/v0.0.1/ns/id", "operator": "=", "operandRight": asset_id}
        ],
    }
    assert (await api.call("POST", "/management/v3/contractdefinitions", definition))[0] == 200


async def _all(api: Management, query: str = "", limit: int = 7) -> list[dict[str, Any]]:
    """Walk every page of a search; check that pages neither repeat nor skip."""
    found: list[dict[str, Any]] = []
    cursor = None
    while True:
        suffix = f"&cursor={cursor}" if cursor else ""
        status, page = await api.call("GET", f"{FED}/datasets?limit={limit}{('&' + query) if query else ''}{suffix}")
        assert status == 200, page
        assert len(page["datasets"]) <= limit
        found += page["datasets"]
        cursor = page["next"]
        if cursor is None:
            break
    keys = [(d["participantId"], d["id"]) for d in found]
    assert keys == sorted(keys) and len(set(keys)) == len(keys)
    return found


@asynccontextmanager
async def _provider_at(settings: Any) -> AsyncIterator[Node]:
    async with running_node(settings) as node:
        yield node


async def test_a_crawler_and_four_providers(
    node_factory: NodeFactory, http: aiohttp.ClientSession, tmp_path: Path, database_url: str
) -> None:
    providers = [await node_factory(api_key=API_KEY) for _ in range(3)]
    # The fourth is started by hand: it goes down and comes back on the same port with the same data.
    fourth_settings = make_settings(tmp_path / "fourth", api_key=API_KEY)
    fourth: AbstractAsyncContextManager[Node] = _provider_at(fourth_settings)
    providers.append(await fourth.__aenter__())
    try:
        for k, provider in enumerate(providers, start=1):
            await _stock(Management(http, provider), k)
        for k in (0, 1):
            await _offer_typed(Management(http, providers[k]), "registry", DTR)
        await _offer_typed(Management(http, providers[2]), "investigations", NOTIFICATION)
        crawler = await node_factory(
            api_key=API_KEY,
            database_url=database_url,  # the crawler's store: SQLite, then PostgreSQL
            database_auto_migrate=True,
            federation_crawl_interval_seconds=0,
            insights_min_batteries=5,
            insights_min_operators=2,
            insights_cache_seconds=0,
        )
        api = Management(http, crawler)
        names = [
            providers[0].settings.effective_did,
            providers[1].settings.dsp_base_url,
            providers[2].settings.effective_did,
            providers[3].settings.dsp_base_url,
        ]
        ids = []
        for name in names:
            status, added = await api.call("POST", f"{FED}/participants", {"participant": name})
            assert status == 201, added
            assert added["lastAttemptAt"] is None and added["datasets"] == 0 and added["stale"] is False
            ids.append(added["id"])
        status, again = await api.call("POST", f"{FED}/participants", {"participant": names[0]})
        assert status == 409 and again["errors"], again
        assert await _all(api) == []  # nothing crawled yet: an empty answer, not a half one

        counts = []
        for participant in ids:
            status, done = await api.call("POST", f"{FED}/participants/{participant}/crawl")
            assert status == 200, done
            crawl = done["crawl"]
            assert crawl["outcome"] == "succeeded", crawl
            assert crawl["datasets"] > 0 and crawl["appearedCount"] == crawl["datasets"]
            assert done["stale"] is False and done["lastError"] is None and done["passports"] == PER_PROVIDER
            counts.append(crawl["datasets"])
        everything = await _all(api)
        assert len(everything) == sum(counts)
        dids = [p.settings.effective_did for p in providers]
        assert {d["provider"] for d in everything} == set(dids)
        # This node's catalog pages are in DSP's plain compacted form: kept as sent, with their context.
        assert all(d["dataset"]["@context"] == ["https://w3id.org/dspace/2025/1/context.jsonld"] for d in everything)

        # Filters, each at dataset level.
        mine = await _all(api, f"provider={quote(dids[0], safe='')}")
        assert mine and {d["participantId"] for d in mine} == {ids[0]} and len(mine) == counts[0]
        public = await _all(api, "accessLevel=public")
        assert public and all(d["accessLevel"] == "public" for d in public)
        registries = await _all(api, "assetType=DigitalTwinRegistry")
        assert [d["id"] for d in registries] == ["registry", "registry"]
        assert {d["provider"] for d in registries} == set(dids[:2])
        assert [d["provider"] for d in await _all(api, f"assetType={quote(NOTIFICATION, safe='')}")] == [dids[2]]
        lfp = await _all(api, "chemistry=LFP")
        assert lfp and all(d["chemistry"] == "LFP" for d in lfp) and all("LFP" in (d["model"] or "") for d in lfp)
        model = lfp[0]["model"]
        by_model = await _all(api, f"model={model}&accessLevel=public")
        assert len(by_model) == 4 and all(d["model"] == model for d in by_model)
        ev = await _all(api, "batteryCategory=ev")
        assert ev and all(d["batteryCategory"] == "ev" for d in ev)
        text = await _all(api, f"q={model.lower()}+public+view")
        assert {d["id"] for d in text} == {d["id"] for d in by_model}
        prefixed = await _all(api, "q=passp", limit=100)  # words that start with it, not any part of a word
        assert prefixed and all(
            any(w.startswith("passp") for w in words(" ".join([d["title"], *d["keywords"]]))) for d in prefixed
        )
        assert await _all(api, "q=assport") == []
        worded = await _all(api, "q=PASSPORTS&accessLevel=public", limit=100)
        assert worded and all("passports" in words(" ".join([d["title"], *d["keywords"]])) for d in worded)

        # EDC's federated catalog query: one catalog per participant, every dataset in it.
        status, catalogs = await api.call(
            "POST",
            "/api/catalog/v1alpha/catalog/query",
            {"@context": {"@vocab": "https://w3id.org/edc/v0.0.1/ns/"}, "@type": "QuerySpec"},
        )
        assert status == 200 and isinstance(catalogs, list) and len(catalogs) == 4
        assert {c["dspace:participantId"] for c in catalogs} == set(dids)
        assert sum(len(c["dcat:dataset"]) for c in catalogs) == sum(counts)
        status, registries = await api.call(
            "POST",
            "/api/catalog/v1alpha/catalog/query",
            {
                "@context": {"@vocab": "https://w3id.org/edc/v0.0.1/ns/"},
                "@type": "QuerySpec",
                "filterExpression": [{"operandLeft": "dct:type", "operator": "=", "operandRight": DTR}],
            },
        )
        assert status == 200 and {c["dspace:participantId"] for c in registries} == set(dids[:2]), registries
        assert [[d["@id"] for d in c["dcat:dataset"]] for c in registries] == [["registry"], ["registry"]]

        # Insights over the crawled public views: 48 batteries from four operators.
        status, _figures = await api.call("GET", "/insights.json")
        status, insights = await _get_json(http, crawler.protocol_url + "/insights")
        assert status == 200 and insights["batteries"] == 4 * PER_PROVIDER
        crawled = [s for s in insights["sources"] if s["kind"] == "crawled public views"]
        assert sorted(s["participant"] for s in crawled) == sorted(dids)
        chemistry = {r["chemistry"]: r["batteries"] for r in _figure(insights, "by-chemistry")["rows"]}
        assert sum(chemistry.values()) == 4 * PER_PROVIDER and "LFP" in chemistry

        # The fourth provider goes down: its crawl fails, its last good entry stays, marked stale.
        await fourth.__aexit__(None, None, None)
        status, failed = await api.call("POST", f"{FED}/participants/{ids[3]}/crawl")
        assert status == 200 and failed["crawl"]["outcome"] == "failed", failed
        assert failed["stale"] is True and failed["lastError"] and failed["datasets"] == counts[3]
        assert failed["lastSuccessAt"] < failed["lastAttemptAt"] and failed["ageSeconds"] >= 0
        still = await _all(api, f"provider={ids[3]}")
        assert len(still) == counts[3] and all(d["stale"] is True for d in still)
        assert all(d["stale"] is False for d in await _all(api, f"provider={ids[0]}"))

        # Meanwhile the first provider offers a new model, then withdraws one dataset: the crawls say so.
        first_api = Management(http, providers[0])
        extra = generate(500, seed=1)
        extra["identity"]["model_id"] = "NEW-MODEL-1"
        extra["identity"]["manufacturer_id"] = "BPNL000000000001"
        assert (await first_api.call("POST", f"{PASSPORTS}/import", [extra]))[1]["new"] == 1
        assert (await first_api.call("POST", f"{PASSPORTS}/publish", {"models": ["NEW-MODEL-1"]}))[0] == 200
        # Readers during the crawl see the old entry or the new one, never a part of it.
        seen_during: list[int] = []
        crawl_task = asyncio.ensure_future(api.call("POST", f"{FED}/participants/{ids[0]}/crawl"))
        while not crawl_task.done():
            seen_during.append(len(await _all(api, f"provider={ids[0]}", limit=500)))
        status, grown = await crawl_task
        assert status == 200 and grown["crawl"]["outcome"] == "succeeded"
        appeared = grown["crawl"]["appeared"]
        assert appeared and all("NEW-MODEL-1" in a for a in appeared) and grown["crawl"]["disappeared"] == []
        assert set(seen_during) <= {counts[0], counts[0] + len(appeared)}
        withdrawn = "passports-NEW-MODEL-1-public"
        assert withdrawn in appeared
        assert (await first_api.call("DELETE", f"/management/v3/assets/{withdrawn}"))[0] == 204
        status, shrunk = await api.call("POST", f"{FED}/participants/{ids[0]}/crawl")
        assert shrunk["crawl"]["disappeared"] == [withdrawn] and shrunk["crawl"]["appeared"] == []
        assert await _all(api, "q=new-model-1+public") == []

        # The fourth comes back: a good crawl, no longer stale.
        fourth = _provider_at(fourth_settings)
        providers[3] = await fourth.__aenter__()
        status, back = await api.call("POST", f"{FED}/participants/{ids[3]}/crawl")
        assert back["crawl"]["outcome"] == "succeeded" and back["stale"] is False and back["lastError"] is None
        assert back["crawl"]["appeared"] == [] and back["crawl"]["disappeared"] == []
        status, detail = await api.call("GET", f"{FED}/participants/{ids[3]}")
        assert [c["outcome"] for c in detail["crawls"]][:3] == ["succeeded", "failed", "succeeded"]

        # Removing a participant drops its entry.
        assert (await api.call("DELETE", f"{FED}/participants/{ids[2]}"))[0] == 204
        assert not await _all(api, f"provider={ids[2]}")
        status, gone = await api.call("GET", f"{FED}/participants/{ids[2]}")
        assert status == 404 and gone["errors"]
        status, listed = await api.call("GET", f"{FED}/participants")
        assert [p["id"] for p in listed] == [ids[0], ids[1], ids[3]]
    finally:
        await fourth.__aexit__(None, None, None)


def _figure(insights: dict[str, Any], figure_id: str) -> dict[str, Any]:
    return next(f for f in insights["figures"] if f["id"] == figure_id)


async def _get_json(http: aiohttp.ClientSession, url: str) -> tuple[int, Any]:
    async with http.get(url, headers={"Accept": "application/json"}) as response:
        return response.status, await response.json()
