"""A battery's whole life across four nodes on loopback (issue 22, docs/lifecycle.md), printed step by step.

A cell maker (also the dataspace's credential issuer), a car maker whose pack passport lists the cells, a
second-life firm that repurposes the pack (a successor passport, status `repurposed`) and a recycler that records
it as waste with the materials it recovered. Every step goes through the nodes' management APIs; between nodes,
only DSP, the data planes and the public views. At the end: each node's lifecycle call, a notification sent twice,
and a node that is down while a notification is sent. Usage: `.venv/bin/python scripts/lifecycle_story.py`.
The test suite plays the same story (tests/test_lifecycle.py) and checks what it returns.
"""

from __future__ import annotations

import asyncio
import json
import socket
import sys
import tempfile
import time
from collections.abc import Callable
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp

from connector.app import Node, running_node
from connector.domain import lifecycle as lc
from connector.domain import passport as model
from connector.domain import registry as wire
from connector.identity import issuer
from connector.settings import Settings

API_KEY = "lifecycle-story-key-0001"
V1 = "/management/v1/passports"
BPNS = {
    "cell maker": "BPNL00000000CELL",
    "car maker": "BPNL000000000CAR",
    "second-life firm": "BPNL0000000SECND",
    "recycler": "BPNL0000000RECYC",
}
ROLES = {"second-life firm": "repurposer", "recycler": "recycler"}


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@dataclass
class Player:
    """One operator's node, restartable on the same port and data directory."""

    name: str
    settings: Settings
    node: Node | None = None
    stack: AsyncExitStack | None = None

    @property
    def bpn(self) -> str:
        return BPNS[self.name]

    @property
    def did(self) -> str:
        return self.settings.effective_did

    async def start(self) -> None:
        self.stack = AsyncExitStack()
        self.node = await self.stack.enter_async_context(running_node(self.settings))

    async def stop(self) -> None:
        assert self.stack is not None
        await self.stack.aclose()
        self.node = None


@dataclass
class Story:
    """What the story did, for the test to check."""

    players: dict[str, Player]
    cells: list[str] = field(default_factory=list)
    pack: str = ""
    repurposed: str = ""
    waste: str = ""
    lifecycles: dict[str, dict[str, Any]] = field(default_factory=dict)
    duplicate: tuple[int, Any] = (0, None)
    inbox_before: list[dict[str, Any]] = field(default_factory=list)
    inbox_after: list[dict[str, Any]] = field(default_factory=list)
    down_sent: dict[str, Any] = field(default_factory=dict)
    down_while: dict[str, Any] = field(default_factory=dict)
    down_received: list[dict[str, Any]] = field(default_factory=list)
    views: dict[str, Any] = field(default_factory=dict)
    history: list[dict[str, Any]] = field(default_factory=list)
    refusals: dict[str, tuple[int, Any]] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)


class Api:
    """A player's management API, as an operator's script uses it."""

    def __init__(self, http: aiohttp.ClientSession, player: Player) -> None:
        self.http, self.player = http, player

    async def call(self, method: str, path: str, body: Any = None) -> tuple[int, Any]:
        assert self.player.node is not None
        url = self.player.node.management_url + path
        async with self.http.request(method, url, json=body, headers={"X-Api-Key": API_KEY}) as answer:
            text = await answer.text()
            return answer.status, json.loads(text) if text else None

    async def ok(self, method: str, path: str, body: Any = None, status: int = 200) -> Any:
        got, answer = await self.call(method, path, body)
        if got != status:
            raise AssertionError(f"{self.player.name}: {method} {path} answered {got}: {answer}")
        return answer


def _passport(seed: int, i: int, **identity: Any) -> dict[str, Any]:
    document = model.generate(i, seed=seed)
    document["identity"] = {**document["identity"], **identity}
    document["identity"].pop("predecessor_passport_ids", None)
    return document


def _credentials(issuer_dir: Path, subject: str, bpn: str, role: str | None) -> list[str]:
    registry = issuer.load_registry(issuer_dir)
    identity = issuer.create_issuer(issuer_dir, registry.did)
    now = datetime.now(UTC)
    validity: dict[str, Any] = {"valid_from": now, "valid_until": now + timedelta(days=1), "data_model": "vcdm1"}
    out = []
    jwt, registry = issuer.issue_membership(identity, registry, subject, bpn=bpn, **validity)
    out.append(jwt)
    jwt, registry = issuer.issue_data_exchange_governance(identity, registry, subject, bpn, **validity)
    out.append(jwt)
    jwt, registry = issuer.issue_bpn(identity, registry, subject, bpn, **validity)
    out.append(jwt)
    if role is not None:
        jwt, registry = issuer.issue_role(identity, registry, subject, role, **validity)
        out.append(jwt)
    issuer.save_registry(issuer_dir, registry)
    return out


async def _wait(check: Callable[[], Any], what: str, seconds: float = 60.0) -> Any:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        found = await check()
        if found:
            return found
        await asyncio.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


async def _sent(api: Api, passport_id: str, context: str) -> dict[str, Any] | None:
    listed = await api.ok("GET", f"/management/v1/notifications?direction=out&passportId={passport_id}")
    return next((n for n in listed["items"] if n["context"] == context), None)


async def _delivered(api: Api, passport_id: str, context: str) -> dict[str, Any] | None:
    found = await _sent(api, passport_id, context)
    return found if found is not None and found["state"] in ("delivered", "failed") else None


def _show_chain(say: Callable[[str], None], chain: dict[str, Any]) -> None:
    for entry in chain["chain"]:
        extra = f", reason: {entry['reason'][:90]}" if entry.get("reason") else ""
        materials = entry.get("recoveredMaterials")
        if materials:
            extra += ", recovered " + ", ".join(f"{m['material']} {m['massKg']} kg" for m in materials)
        say(
            f"    {entry['passportId']}  node {entry['node']}  status {entry.get('status')}  "
            f"operator {entry.get('operator')}  level {entry['level']}  superseded {entry.get('superseded')}{extra}"
        )


async def play(base: Path, say: Callable[[str], None] = print, retry_seconds: float = 0.3) -> Story:
    """Play the whole story under `base`; return what it did. Every node is stopped at the end."""
    ports = {name: _free_port() for name in BPNS}
    issuer_dir = base / "cell maker" / "issuer"
    issuer_did = f"did:web:127.0.0.1%3A{ports['cell maker']}:issuer"
    identity = issuer.create_issuer(issuer_dir, issuer_did)
    issuer.init_registry(issuer_dir, identity.did, f"http://127.0.0.1:{ports['cell maker']}/issuer/status")
    directory = base / "bpn-directory.json"
    directory.write_text(json.dumps({bpn: f"did:web:127.0.0.1%3A{ports[name]}" for name, bpn in BPNS.items()}))
    players = {
        name: Player(
            name,
            Settings(
                protocol_host="127.0.0.1",
                protocol_port=ports[name],
                public_url=f"http://127.0.0.1:{ports[name]}",
                management_port=0,
                data_dir=base / name,
                log_format="text",
                log_level="WARNING",
                shutdown_timeout=5.0,
                allow_local_peers=True,
                api_key=API_KEY,
                bpn=BPNS[name],
                bpn_directory_file=directory,
                trusted_issuers=issuer_did,
                claims_cache_seconds=0,
                registry_readers="PUBLIC_READABLE",
                registry_settle_seconds=0,
                outbox_retry_seconds=retry_seconds,
            ),
        )
        for name in BPNS
    }
    story = Story(players)
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=120)) as http:
        try:
            await _play(story, http, issuer_dir, say)
        finally:
            for player in players.values():
                if player.node is not None:
                    await player.stop()
    return story


async def _play(story: Story, http: aiohttp.ClientSession, issuer_dir: Path, say: Callable[[str], None]) -> None:
    players = story.players
    cell, car, second, recycler = (players[n] for n in BPNS)
    apis = {name: Api(http, player) for name, player in players.items()}
    began = time.perf_counter()
    for player in players.values():
        await player.start()
        for jwt in _credentials(issuer_dir, player.did, player.bpn, ROLES.get(player.name)):
            await apis[player.name].ok("POST", "/management/v1/credentials", {"credential": jwt})
    say(f"four nodes: {', '.join(f'{p.name} {p.bpn} {p.did}' for p in players.values())}")

    # 1. The cell maker's cells; the car maker's pack, listing them.
    cells = [_passport(1, i, manufacturer_id=cell.bpn, operator_id=cell.bpn) for i in range(2)]
    await apis["cell maker"].ok("POST", f"{V1}/import", cells)
    story.cells = [c["identity"]["passport_id"] for c in cells]
    pack = _passport(2, 0, manufacturer_id=car.bpn, operator_id=car.bpn)
    await apis["car maker"].ok("POST", V1, pack, 201)
    story.pack = pack["identity"]["passport_id"]
    for name in BPNS:
        await apis[name].ok("POST", f"{V1}/publish", {})
    say(f"1. cell maker stores cells {', '.join(story.cells)}; car maker stores pack {story.pack}; all publish")
    started = time.perf_counter()
    part = await apis["car maker"].ok(
        "POST",
        f"{V1}/{story.pack}/components",
        {"components": [{"passportId": c, "partner": cell.bpn} for c in story.cells]},
    )
    story.seconds["components"] = time.perf_counter() - started
    say(
        "   the pack lists its cells, each read at the cell maker: components "
        f"{[c['passportId'] for c in part['components']]}"
    )
    await _wait(lambda: _delivered(apis["car maker"], story.cells[0], lc.CONTEXT_INCORPORATED), "the cells' event")

    # 2. The second-life firm repurposes the pack: a successor passport, status repurposed.
    repurposed = _passport(3, 0, manufacturer_id=car.bpn, battery_id=pack["identity"]["battery_id"])
    body = {
        "passport": repurposed,
        "predecessors": [{"passportId": story.pack, "partner": car.bpn}],
        "status": "repurposed",
        "operator": second.bpn,
        "changedBy": "second-life firm, intake desk",
    }
    started = time.perf_counter()
    made = await apis["second-life firm"].ok("POST", f"{V1}/successors", body, 201)
    story.seconds["successor"] = time.perf_counter() - started
    story.repurposed = made["id"]
    say(
        f"2. second-life firm creates {story.repurposed} (repurposed), "
        f"predecessor {story.pack} checked at the car maker"
    )
    sent = await _wait(lambda: _delivered(apis["second-life firm"], story.pack, lc.CONTEXT_SUCCEEDED), "the event")
    say(f"   event {sent['message']['header']['messageId']} to the car maker: {sent['state']}")
    async with http.get(f"{car.node.protocol_url}/passports/{story.pack}") as answer:  # type: ignore[union-attr]
        story.views["pack"] = (await answer.json())["lifecycle"]
    say(
        f"   car maker's public view of the pack: superseded {story.views['pack']['superseded']}, successors "
        f"{[s['passportId'] for s in story.views['pack']['successors']]}"
    )
    refused = await apis["car maker"].call(
        "POST", f"{V1}/{story.pack}/changes", {"condition": {"state_of_health_pct": 90}}
    )
    story.refusals["superseded change"] = refused
    say(f"   the car maker can no longer change the pack: {refused[0]} {refused[1]['detail'][:100]}")

    # 3. Dynamic data by the operator responsible.
    change = {
        "changedBy": "second-life firm, test bench 2",
        "condition": {"state_of_health_pct": 78.5, "remaining_capacity_ah": 143.0},
        "events": [{"event": "repair: module 3 replaced"}],
    }
    await apis["second-life firm"].ok("POST", f"{V1}/{story.repurposed}/changes", change)
    story.history = (await apis["second-life firm"].ok("GET", f"{V1}/{story.repurposed}/history"))["versions"]
    for version in story.history:
        say(f"3. version {version['version']} by {version['changedBy']}: {'; '.join(version['changes'] or [])}")

    # 4. A node down while a notification is sent: the car maker reads the chain (it holds an agreement on the
    # second-life firm's passports), stops; the second-life firm records a change the car maker is told of.
    await apis["car maker"].ok("GET", f"{V1}/{story.pack}/lifecycle")
    await car.stop()
    await apis["second-life firm"].ok(
        "POST", f"{V1}/{story.repurposed}/changes", {"condition": {"state_of_charge_pct": 40.0}}
    )
    story.down_while = await _wait(
        lambda: _sent(apis["second-life firm"], story.repurposed, lc.CONTEXT_UPDATED), "the update owed"
    )
    await asyncio.sleep(1.0)  # two or three failed attempts
    say(f"4. car maker down; the update to it is {story.down_while['state']}")
    story.lifecycles["while the car maker is down"] = await apis["second-life firm"].ok(
        "GET", f"{V1}/{story.repurposed}/lifecycle"
    )
    down = story.lifecycles["while the car maker is down"]
    say(f"   the second-life firm's lifecycle meanwhile, complete {down['complete']}:")
    _show_chain(say, down)
    await car.start()
    story.down_sent = await _wait(
        lambda: _delivered(apis["second-life firm"], story.repurposed, lc.CONTEXT_UPDATED), "the update delivered"
    )
    inbox = await apis["car maker"].ok(
        "GET", f"/management/v1/notifications?direction=in&passportId={story.repurposed}"
    )
    story.down_received = inbox["items"]
    say(
        f"   car maker back on the same port and data: the update is {story.down_sent['state']}, car maker's inbox "
        f"has {len(story.down_received)} for {story.repurposed} "
        f"({story.down_received[0]['state'] if inbox['items'] else '-'})"
    )

    # 5. The recycler takes the battery as waste, with the materials it recovered.
    waste = _passport(4, 0, manufacturer_id=car.bpn, battery_id=pack["identity"]["battery_id"])
    body = {
        "passport": waste,
        "predecessors": [{"passportId": story.repurposed, "partner": second.bpn}],
        "status": "waste",
        "operator": recycler.bpn,
        "recoveredMaterials": [
            {"material": "cobalt", "massKg": 4.2},
            {"material": "lithium", "massKg": 2.9},
            {"material": "nickel", "massKg": 21.0},
        ],
    }
    made = await apis["recycler"].ok("POST", f"{V1}/successors", body, 201)
    story.waste = made["id"]
    say(f"5. recycler creates {story.waste} (waste), predecessor {story.repurposed} checked at the second-life firm")
    await _wait(lambda: _delivered(apis["recycler"], story.repurposed, lc.CONTEXT_SUCCEEDED), "the waste event")

    async def told() -> list[dict[str, Any]]:
        inbox = await apis["car maker"].ok(
            "GET", f"/management/v1/notifications?direction=in&passportId={story.repurposed}"
        )
        return [n for n in inbox["items"] if "supersededBy" in n["message"]["content"]]

    story.views["readers told"] = await _wait(told, "the car maker told that the repurposed passport was superseded")
    say(
        "   the second-life firm tells the nodes that read its passport (the car maker) that it is superseded by "
        f"{story.views['readers told'][0]['message']['content']['supersededBy']['passportId']}"
    )
    cycle = await apis["second-life firm"].call(
        "POST",
        f"{V1}/successors",
        {
            "passport": _passport(5, 0),
            "predecessors": [{"passportId": story.repurposed}, {"passportId": story.repurposed}],
            "status": "reused",
            "operator": second.bpn,
        },
    )
    story.refusals["predecessor twice"] = cycle
    itself = await apis["recycler"].call(
        "POST",
        f"{V1}/successors",
        {
            "passport": _passport(6, 0, passport_id=story.repurposed),
            "predecessors": [{"passportId": story.waste}],
            "status": "reused",
            "operator": recycler.bpn,
        },
    )
    story.refusals["cycle"] = itself
    # Across nodes: the pack's id (at the car maker) as a successor of the waste passport (at the recycler), whose
    # chain, read from the public views, reaches the pack.
    far = await apis["second-life firm"].call(
        "POST",
        f"{V1}/successors",
        {
            "passport": _passport(8, 0, passport_id=story.pack),
            "predecessors": [{"passportId": story.waste, "partner": recycler.bpn}],
            "status": "reused",
            "operator": second.bpn,
        },
    )
    story.refusals["cycle across nodes"] = far
    say(
        f"   refused: the same predecessor twice {cycle[0]}; a successor of the waste passport with the id of "
        f"its predecessor (a cycle) {itself[0]}: {itself[1]['detail'][:110]}; the pack's id after the waste "
        f"passport, across three nodes {far[0]}"
    )

    # 6. A notification sent twice changes nothing the second time.
    sent = await _sent(apis["recycler"], story.repurposed, lc.CONTEXT_SUCCEEDED)
    assert sent is not None
    story.inbox_before = (await apis["second-life firm"].ok("GET", "/management/v1/notifications?direction=in"))[
        "items"
    ]
    before = await apis["second-life firm"].ok("GET", f"{V1}/{story.repurposed}/lifecycle")
    access = recycler.node.access  # type: ignore[union-attr]
    assert access is not None
    partner = await access.partner(second.bpn)
    dataset = await access.datasets(partner)
    event_api = next(d for d in dataset if d["@id"] == lc.EVENT_ASSET_ID)
    agreement, _ = await access.grant(partner, event_api)
    again = await access.request(partner, agreement, "POST", "", json=sent["message"])
    story.duplicate = (again.status, again.body)
    story.inbox_after = (await apis["second-life firm"].ok("GET", "/management/v1/notifications?direction=in"))["items"]
    after = await apis["second-life firm"].ok("GET", f"{V1}/{story.repurposed}/lifecycle")
    story.views["repeat unchanged"] = before == after
    # A forged event (a successor said to be held by another node) and one for another BPN are refused.
    header = {**sent["message"]["header"], "messageId": "urn:uuid:forged-1"}
    forged = {"header": header, "content": {**sent["message"]["content"]}}
    forged["content"]["successor"] = {**forged["content"]["successor"], "node": cell.did}
    answer = await access.request(partner, agreement, "POST", "", json=forged)
    story.refusals["forged successor"] = (answer.status, answer.body)
    elsewhere = {
        "header": {**header, "messageId": "urn:uuid:forged-2", "receiverBpn": car.bpn},
        "content": sent["message"]["content"],
    }
    answer = await access.request(partner, agreement, "POST", "", json=elsewhere)
    story.refusals["another receiver"] = (answer.status, answer.body)
    unknown = await apis["recycler"].call(
        "POST",
        f"{V1}/successors",
        {
            "passport": _passport(7, 0),
            "predecessors": [{"passportId": "urn:uuid:no-such-passport", "partner": second.bpn}],
            "status": "waste",
            "operator": recycler.bpn,
        },
    )
    story.refusals["unknown predecessor"] = unknown
    say(
        f"   refused: a forged successor {story.refusals['forged successor'][0]}, an event for another BPN "
        f"{story.refusals['another receiver'][0]}, a predecessor the partner does not have {unknown[0]}"
    )
    say(
        f"6. the recycler's event {sent['message']['header']['messageId']} sent again: {again.status} "
        f"{(again.body or {}).get('reason')}; inbox {len(story.inbox_before)} -> {len(story.inbox_after)}, "
        f"lifecycle unchanged {before == after}"
    )

    # 7. The chain from every node.
    starts = {
        "cell maker": story.cells[0],
        "car maker": story.pack,
        "second-life firm": story.repurposed,
        "recycler": story.waste,
    }
    for name, start in starts.items():
        began_call = time.perf_counter()
        story.lifecycles[name] = await apis[name].ok("GET", f"{V1}/{start}/lifecycle")
        story.seconds[f"lifecycle {name}"] = time.perf_counter() - began_call
        say(
            f"7. lifecycle from the {name} ({start}), complete {story.lifecycles[name]['complete']}, "
            f"{story.seconds[f'lifecycle {name}'] * 1000:.0f} ms:"
        )
        _show_chain(say, story.lifecycles[name])
    async with http.get(f"{second.node.protocol_url}/passports/{story.repurposed}") as answer:  # type: ignore[union-attr]
        story.views["repurposed"] = (await answer.json())["lifecycle"]
    for name, start in starts.items():
        began_call = time.perf_counter()
        again_chain = await apis[name].ok("GET", f"{V1}/{start}/lifecycle")
        story.seconds[f"lifecycle {name} again"] = time.perf_counter() - began_call
        assert again_chain == story.lifecycles[name]
    say(
        "   the same calls again (agreements and EDRs reused): "
        + ", ".join(f"{name} {story.seconds[f'lifecycle {name} again'] * 1000:.0f} ms" for name in starts)
    )
    # The second-life firm's registry entry, as the recycler reads it through the data plane.
    registry = await access.agreement(partner, wire.DTR_ASSET_ID)
    shell = await access.get(partner, registry, "/shell-descriptors/" + wire.encode_id(story.repurposed))
    story.views["registry"] = shell.body.get("extensions") if isinstance(shell.body, dict) else shell.body
    say(
        f"   the second-life firm's registry entry of {story.repurposed}, read by the recycler: "
        f"{story.views['registry']}"
    )
    story.seconds["story"] = time.perf_counter() - began
    say(
        f"the story took {story.seconds['story']:.1f} s; the pack's components {story.seconds['components'] * 1000:.0f}"
        f" ms, the repurposed successor {story.seconds['successor'] * 1000:.0f} ms (both with first contact)"
    )


def main() -> None:
    with tempfile.TemporaryDirectory(prefix="lifecycle-story-") as base:
        asyncio.run(play(Path(base)))


if __name__ == "__main__":
    sys.exit(main())
