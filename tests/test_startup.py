"""`connector serve` as `make run` starts it: loopback by default, and it ends start-up naming its addresses
and the next step (the README's first curl)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import urllib.request
from pathlib import Path

from tests.conftest import free_port


def _serve(tmp_path: Path, **env: str) -> subprocess.Popen[str]:
    connector = Path(sys.executable).with_name("connector")
    environ = {k: v for k, v in os.environ.items() if not k.startswith("CONNECTOR_")}
    environ.update(CONNECTOR_DATA_DIR=str(tmp_path / "data"), **env)
    return subprocess.Popen(
        [str(connector), "serve"], env=environ, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True
    )


def _lines_until(process: subprocess.Popen[str], marker: str) -> list[str]:
    assert process.stderr is not None
    lines: list[str] = []
    for line in process.stderr:
        lines.append(line)
        if marker in line:
            return lines
    raise AssertionError("the node ended before " + repr(marker) + ":\n" + "".join(lines))


def _stop(process: subprocess.Popen[str]) -> None:
    process.terminate()
    try:
        process.wait(timeout=20)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        if process.stderr is not None:
            process.stderr.close()


def test_text_start_up_names_the_addresses_and_the_next_step(tmp_path: Path) -> None:
    protocol, management = free_port(), free_port()
    process = _serve(
        tmp_path,
        CONNECTOR_LOG_FORMAT="text",
        CONNECTOR_PROTOCOL_PORT=str(protocol),
        CONNECTOR_MANAGEMENT_PORT=str(management),
    )
    try:
        lines = _lines_until(process, "next: curl")
        text = "".join(lines)
        assert (
            f"protocol surface    http://127.0.0.1:{protocol} (bound to 127.0.0.1: reachable from this machine only)"
            in text
        )
        assert f"management surface  http://127.0.0.1:{management} (loopback only, no API key)" in text
        assert f"public URL          http://localhost:{protocol}" in text
        command = lines[-1].removeprefix("next: ").split("   ")[0].split()
        assert command == ["curl", f"http://127.0.0.1:{management}/health"]
        # The next step works as printed.
        with urllib.request.urlopen(command[1], timeout=10) as answer:
            assert json.loads(answer.read()) == {"status": "UP"}
    finally:
        _stop(process)
    assert process.returncode == 0


def test_json_start_up_logs_the_same_and_no_free_text(tmp_path: Path) -> None:
    protocol, management = free_port(), free_port()
    process = _serve(
        tmp_path,
        CONNECTOR_PROTOCOL_HOST="0.0.0.0",
        CONNECTOR_PROTOCOL_PORT=str(protocol),
        CONNECTOR_MANAGEMENT_PORT=str(management),
    )
    try:
        lines = _lines_until(process, '"node started"')
    finally:
        _stop(process)
    records = [json.loads(line) for line in lines]  # every line is JSON: no banner in a JSON log
    started = records[-1]
    assert started["protocol"] == f"0.0.0.0:{protocol}"
    assert started["management"] == f"127.0.0.1:{management}"
    assert started["next"] == f"curl http://127.0.0.1:{management}/health"
