"""The federated catalog's rules: one crawl per participant and period across replicas, scheduled crawls, the
participants file, retention, errors as problem+json, and Insights' minimum group sizes."""

from __future__ import annotations

import asyncio
import csv
import io
import re
from pathlib import Path
from typing import Any

import aiohttp

from connector.app import Node
from connector.domain import federation as fed
from connector.domain.passport.synthetic import generate
from connector.services.insights import InsightsConfig, battery_of
from connector.services.insights import _figures as figures_of
from connector.store import Store, migrate
from tests.conftest import API_KEY, Management, NodeFactory
from tests.test_federation import FED, PASSPORTS, _stock

LOOP_WAIT = 30.0  # seconds a scheduled crawl may take to show up (a bound for a slow machine, not a measurement)


async def test_a_run_key_is_taken_once_across_replicas(database_url: str) -> None:
    await migrate.upgrade(database_url)
    replicas = [Store(database_url), Store(database_url)]
    try:
        async with replicas[0].transaction() as tx:
            await tx.federation.add(fed.Participant("p1", "did:web:example.com", "api", 1))
        results = []
        for store in replicas + replicas:
            async with store.transaction() as tx:
                results.append(await tx.federation.claim("p1:period:42", "p1", 2))
        assert results == [True, False, False, False]
        async with replicas[1].transaction() as tx:
            assert await tx.federation.claim("p1:period:43", "p1", 3) is True
            crawls = await tx.federation.crawls("p1")
        assert [c.run_key for c in crawls] == ["p1:period:43", "p1:period:42"]
    finally:
        for store in replicas:
            await store.close()


async def _wait_for(check: Any, what: str) -> Any:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + LOOP_WAIT
    while True:
        found = await check()
        if found:
            return found
        assert loop.time() < deadline, f"{what} did not happen within {LOOP_WAIT:g} s"
        await asyncio.sleep(0.2)


async def test_scheduled_crawls_from_the_participants_file(
    node_factory: NodeFactory, http: aiohttp.ClientSession, tmp_path: Path
) -> None:
    provider = await node_factory(api_key=API_KEY)
    await _stock(Management(http, provider), 1)
    listing = tmp_path / "participants.txt"
    listing.write_text(f"# the providers we crawl\n{provider.settings.dsp_base_url}  # by DSP address\n\n", "utf-8")
    crawler = await node_factory(
        api_key=API_KEY, federation_crawl_interval_seconds=2, federation_participants_file=listing
    )
    api = Management(http, crawler)

    async def crawled() -> list[dict[str, Any]] | None:
        status, listed = await api.call("GET", f"{FED}/participants")
        assert status == 200
        return listed if listed and listed[0]["lastSuccessAt"] else None

    listed = await _wait_for(crawled, "the scheduled crawl")
    assert listed[0]["origin"] == "file" and listed[0]["did"] == provider.settings.effective_did
    assert listed[0]["datasets"] > 0 and listed[0]["stale"] is False
    _status, detail = await api.call("GET", f"{FED}/participants/{listed[0]['id']}")
    keys = [c["runKey"] for c in detail["crawls"]]
    assert keys and all(re.fullmatch(rf"{listed[0]['id']}:period:\d+", k) for k in keys)
    assert len(keys) == len(set(keys))  # one crawl per period


async def test_errors_are_problems(node: Node, management: Management) -> None:
    for body, field in (({}, "participant"), ({"participant": "example.com"}, "participant"), ([], "")):
        status, problem = await management.call("POST", f"{FED}/participants", body)
        assert status == 400, problem
        assert problem["errors"][0]["path"] == field, problem
    for path in (f"{FED}/participants/nope", f"{FED}/participants/nope/crawl"):
        status, problem = await management.call("GET" if path.endswith("nope") else "POST", path)
        assert status == 404 and "nope" in problem["errors"][0]["message"]
    assert (await management.call("DELETE", f"{FED}/participants/nope"))[0] == 404
    for query in ("limit=0", "limit=1001", "limit=x", "cursor=%%%"):
        status, problem = await management.call("GET", f"{FED}/datasets?{query}")
        assert status == 400, (query, problem)
    status, problem = await management.call("POST", "/api/catalog/v1alpha/catalog/query", {"limit": -1})
    assert status == 400 and problem["errors"][0]["path"] == "limit"


async def test_a_participant_that_never_answers_fails_with_its_reason(
    node_factory: NodeFactory, http: aiohttp.ClientSession
) -> None:
    crawler = await node_factory(api_key=API_KEY, federation_crawl_interval_seconds=0)
    api = Management(http, crawler)
    status, added = await api.call("POST", f"{FED}/participants", {"participant": "http://127.0.0.1:9/api/dsp/2025-1"})
    assert status == 201
    status, done = await api.call("POST", f"{FED}/participants/{added['id']}/crawl")
    assert status == 200 and done["crawl"]["outcome"] == "failed"
    assert "127.0.0.1:9" in done["lastError"] and done["stale"] is True and done["lastSuccessAt"] is None


def _battery(k: int, operator: str, **identity: Any) -> Any:
    document = generate(k)
    document["identity"].update(identity)
    return battery_of(document, operator)


def test_insights_show_no_group_below_the_minimums() -> None:
    config = InsightsConfig(min_batteries=3, min_operators=2)
    batteries = [_battery(i, "a", chemistry="LFP", manufacturer_id="A", manufacturer_name="A") for i in range(3)]
    batteries += [_battery(i, "b", chemistry="NMC", manufacturer_id="B", manufacturer_name="B") for i in range(3, 7)]
    batteries += [_battery(7, "c", chemistry="NMC", manufacturer_id="C", manufacturer_name="C")]
    figures = {f.id: f for f in figures_of(batteries, config)}
    # LFP: three batteries but one operator (A): not shown, so A's footprint cannot be read out.
    assert figures["by-chemistry"].rows == (("NMC", 5),) and figures["by-chemistry"].suppressed == ("LFP",)
    assert [r[0] for r in figures["carbon-footprint"].rows] == ["NMC"]
    assert figures["carbon-footprint"].suppressed == ("LFP",)
    # Counts by manufacturer are public per passport: only the battery minimum applies.
    assert figures["by-manufacturer"].rows == (("B", 4), ("A", 3)) and figures["by-manufacturer"].suppressed == ("C",)
    low, q1, median, q3, high = figures["carbon-footprint"].rows[0][2:]
    assert low <= q1 <= median <= q3 <= high
    recycled = {r[0]: r for r in figures["recycled-content"].rows}
    assert set(recycled) == {"cobalt", "lithium", "nickel", "lead"}
    assert recycled["cobalt"][4] == 16.0 and recycled["cobalt"][6] == 26.0 and recycled["lead"][4] == 85.0
    assert 0 <= recycled["cobalt"][5] <= 100
    soh = figures["state-of-health"]
    assert sum(r[1] for r in soh.rows) == len(batteries)
    one_operator = figures_of(batteries[:3], config)
    assert all(not f.rows for f in one_operator if f.id != "by-manufacturer")


async def test_the_insights_page_needs_no_other_host(node_factory: NodeFactory, http: aiohttp.ClientSession) -> None:
    node = await node_factory(api_key=API_KEY, insights_min_batteries=2, insights_min_operators=1)
    await _stock(Management(http, node), 1)
    async with http.get(node.protocol_url + "/insights", headers={"Accept": "text/html"}) as response:
        assert response.status == 200 and response.content_type == "text/html"
        page = await response.text()
    assert "<svg" in page and "<table>" in page and "<script" not in page
    assert not re.findall(r'(?:src|href)="(?:https?:)?//', page)  # nothing from another host
    for figure in ("by-category", "by-chemistry", "carbon-footprint", "recycled-content", "state-of-health"):
        assert f'href="insights/{figure}.csv"' in page and f'href="insights/{figure}.json"' in page
        async with http.get(f"{node.protocol_url}/insights/{figure}.csv") as response:
            assert response.status == 200 and response.content_type == "text/csv"
            rows = list(csv.reader(io.StringIO(await response.text())))
        async with http.get(f"{node.protocol_url}/insights/{figure}.json") as response:
            data = await response.json()
        assert rows[0] == data["columns"] and len(rows) - 1 == len(data["rows"]) and data["generatedAt"]
    async with http.get(node.protocol_url + "/insights", headers={"Accept": "application/json"}) as response:
        insights = await response.json()
    assert insights["batteries"] == 12 and insights["sources"][0] == {"kind": "own passports", "passports": 12}
    async with http.get(node.protocol_url + "/insights/nothing.csv") as response:
        assert response.status == 404


async def test_the_public_passport_listing(node_factory: NodeFactory, http: aiohttp.ClientSession) -> None:
    node = await node_factory(api_key=API_KEY)
    api = Management(http, node)
    await _stock(api, 1)
    found, cursor = [], None
    while True:
        query = f"?limit=5{'&cursor=' + cursor if cursor else ''}"
        async with http.get(node.protocol_url + "/passports" + query) as response:
            assert response.status == 200
            page = await response.json()
        found += page["passports"]
        cursor = page["next"]
        if not cursor:
            break
    assert len(found) == 12 and len({p["identity"]["passport_id"] for p in found}) == 12
    assert all("condition" not in p and "dismantling" not in p for p in found)  # the public view only
    _status, one = await api.call("GET", f"{PASSPORTS}/{found[0]['identity']['passport_id']}/view?level=public")
    assert one == found[0]
    async with http.get(node.protocol_url + "/passports?limit=5000") as response:
        assert response.status == 400


def _pages() -> list[dict[str, Any]]:
    dsp = "https://w3id.org/dspace/2025/1/context.jsonld"
    edc = "https://w3id.org/edc/v0.0.1/ns/"
    bpc = "https://w3id.org/battery-passport-connector/ns/"
    offer = {"@id": "o1", "@type": "Offer", "permission": [{"action": "use"}]}
    distribution = [{"@type": "Distribution", "format": "HttpData-PULL", "accessService": "svc"}]
    first = {
        "@id": "ds-1",
        "@type": "Dataset",
        "dct:title": "Passports of model A",
        "dcat:keyword": ["battery", "A"],
        "dct:type": {"@id": "https://w3id.org/catenax/taxonomy#DigitalTwinRegistry"},
        bpc + "batteryModel": "A",
        bpc + "chemistry": {"@value": "LFP"},
        bpc + "batteryCategory": ["ev", "lmt"],
        edc + "passportAccessLevel": "public",
        "hasPolicy": [offer],
        "distribution": distribution,
    }
    second = {"@id": "ds-2", "@type": "Dataset", edc + "name": "Second", edc + "version": 3, "hasPolicy": offer}
    nested = {"@id": "sub", "@type": "Catalog", "participantId": "did:web:sub", "dataset": [second]}
    return [
        {"@context": [dsp], "@id": "c", "@type": "Catalog", "participantId": "did:web:top", "dataset": [first]},
        {"@context": dsp, "@id": "c", "@type": "Catalog", "dataset": first, "catalog": [nested]},
        {"@context": [dsp, "https://w3id.org/edc/dspace/v0.0.1"], "@id": "c", "@type": "Catalog", "dataset": [second]},
    ]


def test_plain_pages_are_read_as_their_expansion_reads() -> None:
    from connector.dsp.catalog import dataset_fields, parse_catalog_entries, parse_plain_catalog

    for page in _pages():
        plain = parse_plain_catalog(page)
        assert plain is not None, page
        expanded = parse_catalog_entries(page)
        assert plain[0] == expanded.participant
        assert [(p, d.id) for p, d in plain[1]] == [(p, n["@id"]) for p, n in expanded.datasets]
        for (_, item), (_, node) in zip(plain[1], expanded.datasets, strict=True):
            assert item.fields == dataset_fields(node), item.id
            # What is kept is the node as sent, with the context that reads it.
            assert parse_catalog_entries({**item.document, "@type": "Dataset"}).datasets[0][1] == node
    fields = parse_plain_catalog(_pages()[0])[1][0][1].fields  # type: ignore[index]
    assert (
        fields["chemistry"] == "LFP" and fields["battery_category"] == "ev" and fields["keywords"] == ("battery", "A")
    )
    other = {**_pages()[0], "@context": [{"@vocab": "https://example.com/"}]}
    assert parse_plain_catalog(other) is None
    odd = {**_pages()[0], "dataset": [{"@id": "x", "title": "a term the plain reader does not know"}]}
    assert parse_plain_catalog(odd) is None


async def test_insights_count_the_public_parts_of_synced_copies(
    node_factory: NodeFactory, http: aiohttp.ClientSession
) -> None:
    from connector.domain.sync import Destination, JobState, SyncJob
    from connector.services.passports import load, record_of
    from connector.store.sync import SyncedPassport

    node = await node_factory(api_key=API_KEY, insights_min_batteries=1, insights_min_operators=1)
    records = [record_of(load(generate(i))) for i in (901, 902)]
    copies = [dict(r.data) for r in records]
    copies[0].setdefault("condition", {})["state_of_health_pct"] = 12.5
    job = SyncJob(
        "job-1",
        "http://127.0.0.1:9/api/dsp",
        "did:web:partner.example",
        (),
        (),
        "PT1H",
        "UTC",
        Destination(),
        JobState.PAUSED,
        1,
        1,
    )
    async with node.store.transaction() as tx:
        await tx.sync.add_job(job)
        await tx.sync.put_synced(
            [
                SyncedPassport(
                    job_id=job.id,
                    passport_id=r.id,
                    partner_id="did:web:partner.example",
                    dataset_id="passports-x-legitimate-interest",
                    access_level="legitimate_interest",
                    partner_version=1,
                    digest="d",
                    data=c,
                    deleted=False,
                    synced_at=1,
                )
                for r, c in zip(records, copies, strict=True)
            ],
            set(),
        )
    async with http.get(node.protocol_url + "/insights", headers={"Accept": "application/json"}) as response:
        insights = await response.json()
    assert {"kind": "synced copies", "partner": "did:web:partner.example", "passports": 2} in insights["sources"]
    assert insights["batteries"] == 2
    soh = next(f for f in insights["figures"] if f["id"] == "state-of-health")
    assert sum(row[1] for row in soh["rows"]) == 0  # a partner's state of health is not the node's to aggregate
