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


async def _run_child(code: str, tmp_path: Path, expect: int = 0, faulthandler: bool = True, **settings: str) -> bytes:
    """Run `code` in a fresh interpreter on a fresh data directory (both surfaces on free ports); its stdout
    (and its stderr after it, when it is expected to end with a status other than 0)."""
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "PYTHONPATH": ROOT,
        "CONNECTOR_DATA_DIR": str(tmp_path / "data"),
        "CONNECTOR_PROTOCOL_HOST": "127.0.0.1",
        "CONNECTOR_PROTOCOL_PORT": "0",
        "CONNECTOR_MANAGEMENT_PORT": "0",
        **settings,
    }
    # With faulthandler on, a child that crashes in native code says where, every thread's stack on its stderr.
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        *(("-X", "faulthandler") if faulthandler else ()),
        "-c",
        code,
        cwd=tmp_path,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(process.communicate(), 60)
    assert process.returncode == expect, err.decode(errors="replace")[-4000:]
    return out + err if expect else out


async def test_a_serving_node_freezes_what_start_up_made_and_collects_the_young_less_often(tmp_path: Path) -> None:
    out = await _run_child(CHILD, tmp_path)
    seen = json.loads(out.decode().strip().splitlines()[-1])
    assert seen["before"]["frozen"] == 0
    assert seen["after"]["frozen"] > 10_000  # the modules, settings and services start-up made
    assert seen["after"]["threshold"] == [seen["young"], *seen["before"]["threshold"][1:]]
    assert seen["young"] > seen["before"]["threshold"][0]


CLI_CHILD = """
import gc, json, os, signal, sys
import connector.app as app
from connector import cli
collections = []
gc.callbacks.append(lambda phase, info: phase == "start" and collections.append(info["generation"]))
real = app.serve_until_stopped
async def watched(settings, started=None):
    collections.clear()  # what parsing the command line and reading the settings did, with the collector on
    def told(node):
        seen = {"collections": list(collections), "enabled": gc.isenabled(), "frozen": gc.get_freeze_count()}
        seen["loaded"] = sorted(m for m in ("pyld", "requests", "pygments") if m in sys.modules)
        print(json.dumps(seen), flush=True)
        os.kill(os.getpid(), signal.SIGTERM)
    await real(settings, told)
app.serve_until_stopped = watched
code = cli.main(["serve"])
print(json.dumps({"exit": code, "enabled": gc.isenabled()}), flush=True)
"""


async def test_connector_serve_starts_without_collecting_or_loading_what_it_does_not_use(tmp_path: Path) -> None:
    # The collector stays off while start-up makes its long-lived objects (a full collection before ready would
    # walk all of them); it is on once the node is up, and on again after `connector serve` returns. pyld (with
    # the HTTP client it loads) waits for a document the term tables cannot read; Pygments, which Alembic's
    # Mako would load to colour error pages, is not loaded by the migrations a fresh data directory runs.
    out = await _run_child(CLI_CHILD, tmp_path, CONNECTOR_LOG_LEVEL="WARNING")
    lines = [json.loads(line) for line in out.decode().splitlines() if line.startswith("{")]
    up, done = lines[-2], lines[-1]
    assert up["collections"] == []  # a fresh data directory: keys made, every migration run, no collection
    assert up["enabled"] is True
    assert up["frozen"] > 10_000
    assert up["loaded"] == []
    assert done == {"exit": 0, "enabled": True}


MANY_CHILD = """
import asyncio, gc, json, os, signal
gc.disable()  # as `connector serve` keeps it while starting: the only collection is one asked for
import connector.app as app
from connector.settings import Settings
collected = []
gc.callbacks.append(lambda phase, info: phase == "start" and collected.append(info["generation"]))
app.START_UP_COLLECT_ABOVE = 0  # as if start-up had made far more objects than it does
def started(node):
    print(json.dumps({"collected": collected, "frozen": gc.get_freeze_count(), "enabled": gc.isenabled()}))
    os.kill(os.getpid(), signal.SIGTERM)
asyncio.run(app.serve_until_stopped(Settings(), started))
"""


async def test_a_start_that_made_far_more_objects_than_usual_is_collected_before_it_is_frozen(tmp_path: Path) -> None:
    # As if start-up had run a data migration over many rows: its garbage is not kept for the process's life.
    seen = json.loads((await _run_child(MANY_CHILD, tmp_path)).decode().strip().splitlines()[-1])
    assert seen == {"collected": [2], "frozen": seen["frozen"], "enabled": True}  # one full collection
    assert seen["frozen"] > 10_000


CRASH_CHILD = """
import faulthandler, os, signal, sys
import connector.app as app
from connector import cli
real = app.serve_until_stopped
async def watched(settings, started=None):
    def told(node):
        print(f"faulthandler {faulthandler.is_enabled()}", flush=True)
        os.kill(os.getpid(), signal.SIGSEGV)  # as a crash in native code would end it
    await real(settings, told)
app.serve_until_stopped = watched
sys.exit(cli.main(["serve"]))
"""


async def test_a_node_that_crashes_in_native_code_writes_every_threads_stack_to_stderr(tmp_path: Path) -> None:
    # `connector serve` turns faulthandler on itself: a child started without `-X faulthandler` shows it too.
    out = await _run_child(CRASH_CHILD, tmp_path, expect=-11, faulthandler=False, CONNECTOR_LOG_LEVEL="WARNING")
    text = out.decode(errors="replace")
    assert "faulthandler True" in text
    assert "Fatal Python error: Segmentation fault" in text
    assert "Current thread" in text and "serve_until_stopped" in text
