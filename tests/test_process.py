"""The `connector` command as an operator runs it: start, answer, drain in-flight requests on SIGTERM."""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import sys
from pathlib import Path

import aiohttp


async def _start(tmp_path: Path, *args: str) -> tuple[asyncio.subprocess.Process, int, int]:
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "CONNECTOR_PROTOCOL_HOST": "127.0.0.1",
        "CONNECTOR_PROTOCOL_PORT": "0",
        "CONNECTOR_MANAGEMENT_PORT": "0",
        "CONNECTOR_SHUTDOWN_TIMEOUT": "20",
    }
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "connector.cli",
        "serve",
        *args,
        cwd=tmp_path,
        env=env,
        stderr=asyncio.subprocess.PIPE,
    )
    assert process.stderr is not None
    async with asyncio.timeout(60):
        while True:
            line = (await process.stderr.readline()).decode()
            assert line, "the node exited before it started"
            if '"node started"' in line:
                entry = json.loads(line)
                break
    management = int(entry["management"].rsplit(":", 1)[1])
    protocol = int(entry["protocol"].rsplit(":", 1)[1])
    return process, management, protocol


async def test_serve_starts_on_embedded_sqlite_and_stops_on_sigterm(tmp_path: Path) -> None:
    process, management, protocol = await _start(tmp_path)
    try:
        async with aiohttp.ClientSession() as http:
            async with http.get(f"http://127.0.0.1:{management}/health") as response:
                assert await response.json() == {"status": "UP"}
            async with http.get(f"http://127.0.0.1:{protocol}/.well-known/dspace-version") as response:
                versions = await response.json()
                assert versions["protocolVersions"][0]["version"] == "2025-1"
        assert (tmp_path / "data" / "connector.db").exists()
        # Malformed HTTP from a peer is refused and logged as one INFO line, not an ERROR with a traceback.
        _, writer = await asyncio.open_connection("127.0.0.1", protocol)
        writer.write(b"GET / HTTP/1.1\r\nHost: x\r\nX-Bad: \x00\r\n\r\n")
        await writer.drain()
        writer.close()
    finally:
        process.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(process.wait(), 30) == 0
    assert process.stderr is not None
    logged = (await process.stderr.read()).decode()
    assert "malformed HTTP request refused" in logged
    assert '"level":"ERROR"' not in logged


async def test_sigterm_drains_a_request_in_flight(tmp_path: Path) -> None:
    process, management, _ = await _start(tmp_path)
    body = json.dumps(
        {
            "@context": {"@vocab": "https://w3id.org/edc/v0.0.1/ns/"},
            "@id": "drained",
            "properties": {"pad": "x" * 2000},
            "dataAddress": {"type": "HttpData", "baseUrl": "http://b.example"},
        }
    ).encode()
    reader, writer = await asyncio.open_connection("127.0.0.1", management)
    writer.write(
        b"POST /management/v3/assets HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
        + f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n".encode()
        + body[:1000]
    )
    await writer.drain()
    await asyncio.sleep(0.3)
    process.send_signal(signal.SIGTERM)
    await asyncio.sleep(0.5)
    # The node is stopping, but the request that had begun still completes.
    writer.write(body[1000:])
    await writer.drain()
    answer = await asyncio.wait_for(reader.read(), 20)
    writer.close()
    assert re.match(rb"HTTP/1.1 200", answer), answer[:200]
    assert b'"@id":"drained"' in answer
    assert await asyncio.wait_for(process.wait(), 30) == 0
    stderr = (await process.stderr.read()).decode() if process.stderr else ""
    assert '"node stopped"' in stderr
