"""A Digital Twin Event about a passport a sync job holds runs that job at once (issue 22, docs/sync.md).

Two real nodes on loopback, set up as in the lifecycle story (scripts/lifecycle_story.py: BPNs, the BPN
directory, Catena-X credentials): the consumer's sync job, on an hourly schedule, holds the provider's passport;
the provider records a change and tells its readers; the consumer's job runs without waiting for its schedule
and picks the change up. A paused job holding the same copy is not run; the same message sent again is refused
(409) and starts no second run.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import aiohttp

from connector.domain import lifecycle as lc
from connector.services.sync import event_key, trigger_of
from connector.settings import Settings
from tests.test_lifecycle import _story_module

JOBS = "/management/v1/sync/jobs"
V1 = "/management/v1/passports"
EDC = "https://w3id.org/edc/v0.0.1/ns/"


def _runs_by(runs: list[dict[str, Any]], trigger: str) -> list[dict[str, Any]]:
    return [r for r in runs if r["trigger"] == trigger]


def test_a_run_s_key_says_why_it_started() -> None:
    assert trigger_of("manual:0123") == "manual"
    assert trigger_of("2026-12-01T14:00:00Z") == "schedule"
    assert trigger_of(event_key("urn:uuid:4b1d0000-0000-0000-0000-000000000000")) == "event"
    long = event_key("urn:x:" + "m" * 200)
    assert len(long) <= 128 and trigger_of(long) == "event" and long == event_key("urn:x:" + "m" * 200)


async def test_a_change_notified_runs_the_job_holding_the_passport_at_once(tmp_path: Path) -> None:
    story = _story_module()
    names = ("car maker", "second-life firm")
    ports = {name: story._free_port() for name in names}
    issuer_dir = tmp_path / "car maker" / "issuer"  # served by the provider (its data directory)
    issuer_did = f"did:web:127.0.0.1%3A{ports['car maker']}:issuer"
    identity = story.issuer.create_issuer(issuer_dir, issuer_did)
    story.issuer.init_registry(issuer_dir, identity.did, f"http://127.0.0.1:{ports['car maker']}/issuer/status")
    directory = tmp_path / "bpn-directory.json"
    directory.write_text(json.dumps({story.BPNS[n]: f"did:web:127.0.0.1%3A{ports[n]}" for n in names}))
    players = {
        name: story.Player(
            name,
            Settings(
                protocol_host="127.0.0.1",
                protocol_port=ports[name],
                public_url=f"http://127.0.0.1:{ports[name]}",
                management_port=0,
                data_dir=tmp_path / name,
                log_format="text",
                log_level="WARNING",
                shutdown_timeout=5.0,
                allow_local_peers=True,
                api_key=story.API_KEY,
                bpn=story.BPNS[name],
                bpn_directory_file=directory,
                trusted_issuers=issuer_did,
                claims_cache_seconds=0,
                outbox_retry_seconds=0.3,
            ),
        )
        for name in names
    }
    provider, consumer = players["car maker"], players["second-life firm"]
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=120)) as http:
        apis = {name: story.Api(http, player) for name, player in players.items()}
        maker, reader = apis["car maker"], apis["second-life firm"]
        try:
            for player in players.values():
                await player.start()
                for jwt in story._credentials(issuer_dir, player.did, player.bpn, story.ROLES.get(player.name)):
                    await apis[player.name].ok("POST", "/management/v1/credentials", {"credential": jwt})
            document = story._passport(2, 0, manufacturer_id=provider.bpn, operator_id=provider.bpn)
            pid = document["identity"]["passport_id"]
            await maker.ok("POST", V1, document, status=201)
            for api in apis.values():
                await api.ok("POST", f"{V1}/publish", {})

            # Two jobs hold the provider's passport at the legitimate-interest level (the repurposer's; a change
            # of condition is not in the public view); one of them is paused. Neither is due for an hour.
            level = {"operandLeft": EDC + "passportAccessLevel", "operator": "=", "operandRight": "legitimate_interest"}
            for job_id in ("cars", "paused-copy"):
                body = {
                    "id": job_id,
                    "partnerAddress": provider.settings.dsp_base_url,
                    "schedule": "PT1H",
                    "datasetFilter": [level],
                }
                await reader.ok("POST", JOBS, {**body, "partnerId": provider.did}, status=201)
                first = await reader.ok("POST", f"{JOBS}/{job_id}/run?wait=true")
                assert first["state"] == "SUCCEEDED" and first["trigger"] == "manual", first
                assert (first["new"], first["changed"]) == (1, 0), first
            await reader.ok("POST", f"{JOBS}/paused-copy/pause")
            held = await reader.ok("GET", f"{JOBS}/cars/passports?limit=1000")
            (before,) = [i for i in held["items"] if i["id"] == pid]

            # The provider records a change; its readers (the consumer's jobs hold an agreement) are told.
            await maker.ok("POST", f"{V1}/{pid}/changes", {"condition": {"state_of_health_pct": 71.5}})

            async def event_run() -> list[dict[str, Any]]:
                runs = await reader.ok("GET", f"{JOBS}/cars/runs")
                return [r for r in _runs_by(runs, "event") if r["state"] != "RUNNING"]

            (ran,) = await story._wait(event_run, "the job's run the event started")
            assert ran["state"] == "SUCCEEDED" and ran["changed"] == 1 and ran["new"] == 0, ran
            inbox = await reader.ok("GET", f"/management/v1/notifications?direction=in&passportId={pid}")
            (received,) = [n for n in inbox["items"] if n["context"] == lc.CONTEXT_UPDATED]
            assert ran["runKey"] == "event:" + received["messageId"]
            assert received["partner"] == provider.did and received["state"] == "received"
            assert "sync job(s) cars run now" in received["reason"], received
            held = await reader.ok("GET", f"{JOBS}/cars/passports?limit=1000")
            (after,) = [i for i in held["items"] if i["id"] == pid]
            assert after["source"]["partnerVersion"] == before["source"]["partnerVersion"] + 1
            assert after["digest"] != before["digest"]
            # The paused job was not run (it keeps its old copy until it is resumed or run by hand).
            paused_runs = await reader.ok("GET", f"{JOBS}/paused-copy/runs")
            assert [r["trigger"] for r in paused_runs] == ["manual"], paused_runs

            # The same message again: 409, nothing changed, no second run.
            sent = await maker.ok("GET", f"/management/v1/notifications?direction=out&passportId={pid}")
            (message,) = [n for n in sent["items"] if n["context"] == lc.CONTEXT_UPDATED]
            assert message["messageId"] == received["messageId"]
            access = provider.node.access
            assert access is not None
            partner = await access.partner(consumer.bpn)
            event_api = next(d for d in await access.datasets(partner) if d["@id"] == lc.EVENT_ASSET_ID)
            agreement, _ = await access.grant(partner, event_api)
            again = await access.request(partner, agreement, "POST", "", json=message["message"])
            assert again.status == 409 and again.body["duplicate"] is True, again.body
            # A run by hand takes the job's lease: a run the repeat had started would be listed before it, or
            # refuse it (409).
            by_hand = await reader.ok("POST", f"{JOBS}/cars/run?wait=true")
            assert by_hand["state"] == "SUCCEEDED" and by_hand["changed"] == 0, by_hand
            runs = await reader.ok("GET", f"{JOBS}/cars/runs")
            assert [r["trigger"] for r in runs] == ["manual", "event", "manual"], runs
        finally:
            for player in players.values():
                if player.node is not None:
                    await player.stop()
