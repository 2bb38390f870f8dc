"""A serving node's garbage collector: start-up's objects frozen, the young generation collected less often
(decision 0028). Run in a child process: freezing is process-wide."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from pathlib import Path

ROOT = str(Path(__file__).resolve().parents[1])
CHILD = """
import asyncio, gc, json, os, signal, sys
from connector.app import YOUNG_GC_THRESHOLD, serve_until_stopped
from connector.settings import Settings
before = {"frozen": gc.get_freeze_count(), "threshold": list(gc.get_threshold())}
def started(node):
    after = {"frozen": gc.get_freeze_count(), "threshold": list(gc.get_threshold())}
    print(json.dumps({"before": before, "after": after, "young": YOUNG_GC_THRESHOLD}), flush=True)
    os.kill(os.getpid(), signal.SIGTERM)
asyncio.run(serve_until_stopped(Settings(), started))
"""


async def test_a_serving_node_freezes_what_start_up_made_and_collects_the_young_less_often(tmp_path: Path) -> None:
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "PYTHONPATH": ROOT,
        "CONNECTOR_DATA_DIR": str(tmp_path / "data"),
        "CONNECTOR_PROTOCOL_HOST": "127.0.0.1",
        "CONNECTOR_PROTOCOL_PORT": "0",
        "CONNECTOR_MANAGEMENT_PORT": "0",
    }
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-c", CHILD, cwd=tmp_path, env=env, stdout=asyncio.subprocess.PIPE
    )
    out, _ = await asyncio.wait_for(process.communicate(), 60)
    assert process.returncode == 0
    seen = json.loads(out.decode().strip().splitlines()[-1])
    assert seen["before"]["frozen"] == 0
    assert seen["after"]["frozen"] > 10_000  # the modules, settings and services start-up made
    assert seen["after"]["threshold"] == [seen["young"], *seen["before"]["threshold"][1:]]
    assert seen["young"] > seen["before"]["threshold"][0]
