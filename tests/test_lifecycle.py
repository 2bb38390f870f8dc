"""A battery's whole life across nodes (issue 22, docs/lifecycle.md).

The story runs on four real nodes on loopback (scripts/lifecycle_story.py, which prints it); this file checks what
it did: every node's view of the chain, the notifications (a repeat changes nothing; a node that was down gets it
when back), the refusals. The request and message readers, the change summary and the chain rule are checked
on their own below, and a notification whose partner never answers ends with its reason.
"""

from __future__ import annotations

import asyncio
import importlib.util
import sys
from pathlib import Path
from typing import Any

import pytest

from connector.domain import lifecycle as lc
from connector.domain.errors import InvalidInput
from connector.services.access import Partner
from tests.conftest import API_KEY, Management, NodeFactory, free_port

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "lifecycle_story.py"


def _story_module() -> Any:
    spec = importlib.util.spec_from_file_location("lifecycle_story", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["lifecycle_story"] = module
    spec.loader.exec_module(module)
    return module


async def test_a_battery_s_life_on_four_nodes(tmp_path: Path) -> None:
    lines: list[str] = []
    story = await _story_module().play(tmp_path, lines.append)
    chain_ids = [*story.cells, story.pack, story.repurposed, story.waste]
    own = {
        "cell maker": set(story.cells),
        "car maker": {story.pack},
        "second-life firm": {story.repurposed},
        "recycler": {story.waste},
    }
    # Nodes with a legitimate-interest role (repurposer, recycler) read the others' passports at that level and see
    # their status (Annex XIII 4(c)); the others read the public view only, and are told why not more.
    legitimate = {"second-life firm", "recycler"}
    statuses = {story.pack: "original", story.repurposed: "repurposed", story.waste: "waste"}
    statuses.update({c: "original" for c in story.cells})
    # While the car maker was down, its pack could not be read, and the chain beyond it (the cells) was not known.
    down = story.lifecycles.pop("while the car maker is down")
    assert down["complete"] is False
    assert [e["passportId"] for e in down["chain"]] == [story.pack, story.repurposed]
    assert down["chain"][0]["readable"] is False and "could not be reached" in down["chain"][0]["reason"]
    for name, answer in story.lifecycles.items():
        assert [e["passportId"] for e in answer["chain"]] == chain_ids, name
        assert answer["complete"] is True, name
        for entry in answer["chain"]:
            pid = entry["passportId"]
            if pid in own[name]:
                assert entry["level"] == "owner" and entry["status"] == statuses[pid], (name, entry)
            elif name in legitimate:
                assert entry["level"] == "legitimate_interest" and entry["status"] == statuses[pid], (name, entry)
            else:
                assert entry["level"] == "public" and entry["status"] is None, (name, entry)
                assert "public level only" in entry["reason"], entry
            assert entry["superseded"] is (pid in (story.pack, story.repurposed)), (name, entry)
        by_id = {e["passportId"]: e for e in answer["chain"]}
        assert by_id[story.pack]["components"] == story.cells
        assert by_id[story.pack]["successors"] == [story.repurposed]
        assert by_id[story.repurposed]["predecessors"] == [story.pack]
        assert by_id[story.waste]["predecessors"] == [story.repurposed]
        assert by_id[story.waste]["operator"] == "BPNL0000000RECYC"
        assert by_id[story.repurposed]["operator"] == "BPNL0000000SECND"
        assert [m["material"] for m in by_id[story.waste]["recoveredMaterials"]] == ["cobalt", "lithium", "nickel"]
        assert by_id[story.cells[0]]["partOf"] == [story.pack]

    # The predecessor's node: superseded, pointing to the successor in its public view and its registry entry.
    assert story.views["pack"]["superseded"] is True
    assert [s["passportId"] for s in story.views["pack"]["successors"]] == [story.repurposed]
    assert story.views["pack"]["successors"][0]["node"] == story.players["second-life firm"].did
    assert story.views["repurposed"]["superseded"] is True
    assert story.views["registry"] == [{"name": "successorPassportId", "valueType": "xs:string", "value": story.waste}]

    # Changes by the operator responsible, with who and what; the superseded passport's node records none.
    assert story.history[0]["changedBy"] == "second-life firm, intake desk"
    assert story.history[0]["changes"] == [f"created as the successor of {story.pack} (status repurposed)"]
    assert story.history[1]["changedBy"] == "second-life firm, test bench 2"
    changes = story.history[1]["changes"]
    assert any(c.startswith("condition.state_of_health_pct: ") and c.endswith(" -> 78.5") for c in changes), changes
    assert "condition.negative_events: 1 added" in changes or any(
        c.startswith("condition.negative_events: set to") for c in changes
    )
    status, problem = story.refusals["superseded change"]
    assert status == 409 and story.repurposed in problem["detail"]

    # A notification sent twice: 409 the second time, nothing changed.
    status, body = story.duplicate
    assert status == 409 and body["duplicate"] is True
    assert story.inbox_before == story.inbox_after
    assert story.views["repeat unchanged"] is True

    # A node down while a notification was sent gets it once it is back.
    assert story.down_while["state"] == "pending"
    assert story.down_sent["state"] == "delivered"
    assert [n["messageId"] for n in story.down_received] == [story.down_sent["messageId"]]
    assert story.down_received[0]["context"] == lc.CONTEXT_UPDATED

    # A node that read a passport (the car maker read the repurposed one) is told when it is superseded.
    (told,) = story.views["readers told"]
    assert told["message"]["content"]["supersededBy"]["passportId"] == story.waste
    assert told["partner"] == story.players["second-life firm"].did and told["state"] == "received"

    # Refusals name what is wrong.
    status, problem = story.refusals["predecessor twice"]
    assert status == 400 and problem["errors"][0]["path"] == "predecessors"
    status, problem = story.refusals["cycle"]
    assert status == 400 and "cycle" in problem["detail"]
    status, problem = story.refusals["cycle across nodes"]
    assert status == 400 and "a passport it precedes" in problem["detail"], problem
    assert story.refusals["forged successor"][0] == 403
    status, body = story.refusals["another receiver"]
    assert status == 400 and any(e["path"] == "header.receiverBpn" for e in body["errors"]), body
    status, problem = story.refusals["unknown predecessor"]
    assert status == 404 and problem["errors"][0]["path"] == "predecessors[0]", problem
    assert any(line.startswith("7. lifecycle from the recycler") for line in lines)


def test_a_successor_request_names_every_wrong_field() -> None:
    with pytest.raises(InvalidInput) as caught:
        lc.parse_successor_request(
            {
                "passport": [],
                "predecessors": [{"passportId": ""}, {"passportId": "a", "partner": 7}],
                "status": "original",
                "operator": "",
                "recoveredMaterials": [{"material": "cobalt", "massKg": -1}],
            }
        )
    paths = [p.path for p in caught.value.problems]
    assert paths == [
        "passport",
        "predecessors[0].passportId",
        "predecessors[1].partner",
        "status",
        "operator",
        "recoveredMaterials[0].massKg",
    ]
    good = lc.parse_successor_request(
        {
            "passport": {},
            "predecessors": [{"passportId": " p1 ", "partner": "BPNL000000000CAR"}],
            "status": "waste",
            "operator": "BPNL0000000RECYC",
        }
    )
    assert good.predecessors == (lc.PredecessorRef("p1", "BPNL000000000CAR"),)


def test_a_change_summary_names_each_field_and_the_chain_refuses_cycles() -> None:
    before = {
        "identity": {"passport_id": "p"},
        "condition": {"status": "original", "negative_events": [{"event": "a"}]},
    }
    after = {
        "identity": {"passport_id": "p"},
        "condition": {"status": "repurposed", "negative_events": [{"event": "a"}, {"event": "b"}], "full_cycles": 9},
    }
    assert lc.changes(before, after) == [
        "condition.full_cycles: set to 9",
        "condition.negative_events: 1 added",
        "condition.status: original -> repurposed",
    ]
    assert lc.changes(after, after) == []
    lc.check_chain("urn:uuid:new", ["urn:uuid:a", "urn:uuid:b"])
    with pytest.raises(InvalidInput, match="cannot succeed itself"):
        # A UUID is the same passport in any case, with or without urn:uuid: (canonical_id).
        lc.check_chain("urn:uuid:0000000A-0000-4000-8000-000000000001", ["0000000a-0000-4000-8000-000000000001"])
    with pytest.raises(InvalidInput, match="a passport it precedes"):
        lc.check_chain("urn:uuid:b", ["urn:uuid:a", "urn:uuid:b"])


def test_an_event_is_read_with_its_cx_0151_header() -> None:
    message = lc.render_event(
        "urn:uuid:m1",
        lc.CONTEXT_SUCCEEDED,
        "BPNL0000000SECND",
        "BPNL000000000CAR",
        0,
        {"passportId": "p", "successor": {"passportId": "s", "node": "did:web:x"}},
    )
    assert set(message["header"]) == {"messageId", "context", "sentDateTime", "senderBpn", "receiverBpn", "version"}
    assert message["header"]["sentDateTime"] == "1970-01-01T00:00:00.000Z"
    event = lc.parse_event(message)
    assert event.successor == lc.Link("s", "did:web:x") and event.passport_id == "p"
    with pytest.raises(InvalidInput) as caught:
        lc.parse_event({"header": {**message["header"], "senderBpn": "me", "context": "other"}, "content": {}})
    assert [p.path for p in caught.value.problems] == ["header.senderBpn", "header.context", "content.passportId"]


async def test_a_notification_to_a_partner_that_never_answers_ends_with_its_reason(node_factory: NodeFactory) -> None:
    import aiohttp

    sender = await node_factory(
        api_key=API_KEY, bpn="BPNL0000000SECND", outbox_retry_seconds=0.05, outbox_max_attempts=3
    )
    assert sender.notifications is not None
    gone = free_port()
    partner = Partner(f"did:web:127.0.0.1%3A{gone}", f"http://127.0.0.1:{gone}/api/dsp/2025-1", "BPNL000000000CAR")
    async with sender.store.transaction() as tx:
        owed = await sender.notifications.owe(
            tx, partner, "BPNL000000000CAR", lc.CONTEXT_UPDATED, "urn:uuid:p", {"passportId": "urn:uuid:p"}
        )
    async with aiohttp.ClientSession() as http:
        api = Management(http, sender)
        for _ in range(200):
            status, found = await api.call("GET", f"/management/v1/notifications/{owed.message_id}?direction=out")
            assert status == 200, found
            if found["state"] != "pending":
                break
            await asyncio.sleep(0.05)
        assert found["state"] == "failed", found
        assert "after 3 attempts" in found["reason"] and str(gone) in found["reason"]
        status, problem = await api.call("GET", "/management/v1/notifications/urn:uuid:nope")
        assert (status == 404 and problem["type"] == "ObjectNotFound") or status == 404, problem
        status, problem = await api.call("GET", "/management/v1/notifications?direction=sideways")
        assert status == 400, problem


async def _cli(node_port: int, *argv: str) -> tuple[int, str, str]:
    import os

    env = {**os.environ, "CONNECTOR_API_KEY": API_KEY, "CONNECTOR_MANAGEMENT_PORT": str(node_port)}
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "connector.cli",
        *argv,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(process.communicate(), 120)
    assert process.returncode is not None
    return process.returncode, out.decode(), err.decode()


async def test_the_command_line_records_changes_and_a_successor_on_the_same_node(
    node_factory: NodeFactory, tmp_path: Path
) -> None:
    import json

    import aiohttp

    from connector.domain import passport as model

    bpn = "BPNL0000000SECND"
    node = await node_factory(api_key=API_KEY, bpn=bpn)
    original = model.generate(1)
    original["identity"]["operator_id"] = bpn
    pid = original["identity"]["passport_id"]
    async with aiohttp.ClientSession() as http:
        assert (await Management(http, node).call("POST", "/management/v1/passports", original))[0] == 201
        port = node.management_port
        code, out, err = await _cli(
            port,
            "passports",
            "change",
            pid,
            "--set",
            "state_of_health_pct=80.5",
            "--event",
            "repair: fuse",
            "--changed-by",
            "workshop",
        )
        assert code == 0, err
        changed = json.loads(out)
        assert changed["changed"] is True and changed["version"] == 2
        assert changed["passport"]["condition"]["state_of_health_pct"] == 80.5
        assert changed["passport"]["condition"]["negative_events"][-1]["event"] == "repair: fuse"
        code, out, err = await _cli(port, "passports", "change", pid, "--set", "state_of_health_pct=101")
        assert code == 1 and "state_of_health_pct" in err, err  # validated as any version is

        successor = model.generate(2)
        (tmp_path / "successor.json").write_text(json.dumps(successor))
        code, out, err = await _cli(
            port,
            "passports",
            "successor",
            str(tmp_path / "successor.json"),
            "--predecessor",
            pid,
            "--status",
            "reused",
            "--operator",
            bpn,
        )
        assert code == 0, err
        made = json.loads(out)
        assert made["passport"]["condition"]["status"] == "reused"
        assert made["passport"]["identity"]["predecessor_passport_ids"] == [pid]
        assert made["lifecycle"]["predecessors"][0]["node"] == node.settings.effective_did

        code, out, err = await _cli(port, "passports", "lifecycle", pid)
        assert code == 0, err
        chain = json.loads(out)["chain"]
        assert [(e["passportId"], e["status"], e["superseded"]) for e in chain] == [
            (pid, original["condition"]["status"], True),
            (successor["identity"]["passport_id"], "reused", False),
        ]
        code, out, err = await _cli(port, "passports", "change", pid, "--set", "state_of_health_pct=70")
        assert code == 1 and "superseded" in err, err
        code, out, err = await _cli(port, "notifications", "--direction", "out")
        assert code == 0 and json.loads(out) == {"items": []}, (out, err)  # a local predecessor needs no message
        async with http.get(f"{node.protocol_url}/passports/{pid}") as answer:
            public = await answer.json()
        assert public["lifecycle"]["superseded"] is True
        assert [s["passportId"] for s in public["lifecycle"]["successors"]] == [successor["identity"]["passport_id"]]
