"""A database the node cannot use is named, with the reason, in one line, within the connect timeout.

Each case runs the real `connector` command (`serve`, `db upgrade`, `passports import`) as a subprocess
against a database that is unreachable (a closed port), missing (no such PostgreSQL database, a SQLite
path that cannot be a file), silent (a loopback listener that accepts and never answers) or corrupt (a
SQLite file of random bytes). The answer must be at most two lines on stderr (the reason and a hint),
name the database (driver, host, port, name) and never show its password or a traceback.
"""

from __future__ import annotations

import asyncio
import os
import socket
import sys
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from sqlalchemy.engine import make_url

from tests.conftest import POSTGRES_URL

PASSWORD = "pw-never-shown-7f3a"
COMMANDS = {
    "serve": ["serve"],
    "db upgrade": ["db", "upgrade"],
    "passports import": ["passports", "import", "passports"],
}


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


async def _run(tmp_path: Path, command: str, url: str, connect_timeout: str = "2") -> tuple[int, list[str]]:
    (tmp_path / "passports").mkdir(exist_ok=True)
    (tmp_path / "passports" / "one.json").write_text("{}", encoding="utf-8")
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "CONNECTOR_DATABASE_URL": url,
        "CONNECTOR_DATABASE_CONNECT_TIMEOUT": connect_timeout,
        "CONNECTOR_PROTOCOL_HOST": "127.0.0.1",
        "CONNECTOR_PROTOCOL_PORT": "0",
        "CONNECTOR_MANAGEMENT_PORT": "0",
        "CONNECTOR_DATA_DIR": str(tmp_path / "data"),
    }
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "connector.cli",
        *COMMANDS[command],
        cwd=tmp_path,
        env=env,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        # Far above the 2 s connect timeout: only a command that ignores it runs into this.
        _, stderr = await asyncio.wait_for(process.communicate(), 40)
    except TimeoutError:
        process.kill()
        await process.wait()
        pytest.fail(f"`connector {command}` did not give up within the connect timeout")
    return process.returncode or 0, stderr.decode().splitlines()


def _check(code: int, lines: list[str], *named: str) -> str:
    text = "\n".join(lines)
    assert code != 0, text
    assert 1 <= len(lines) <= 2, text
    assert "Traceback" not in text and PASSWORD not in text, text
    first = lines[0]
    for part in named:
        assert part in first, (part, text)
    return first


@pytest.mark.parametrize("command", COMMANDS)
async def test_unreachable_postgres_is_named_in_one_line(tmp_path: Path, command: str) -> None:
    port = _closed_port()
    code, lines = await _run(tmp_path, command, f"postgresql://admin:{PASSWORD}@127.0.0.1:{port}/bpc")
    first = _check(code, lines, "postgresql", f"127.0.0.1:{port}", "bpc", "admin")
    assert "connection refused" in first


@pytest.fixture
async def silent_port() -> AsyncIterator[int]:
    """A loopback listener that accepts connections and never answers."""
    held: list[asyncio.StreamWriter] = []

    async def accept(_reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        held.append(writer)

    server = await asyncio.start_server(accept, "127.0.0.1", 0)
    try:
        yield int(server.sockets[0].getsockname()[1])
    finally:
        for writer in held:
            writer.close()
        server.close()
        await server.wait_closed()


@pytest.mark.parametrize("command", COMMANDS)
async def test_a_silent_database_is_given_up_after_the_connect_timeout(
    tmp_path: Path, command: str, silent_port: int
) -> None:
    url = f"postgresql+asyncpg://admin:{PASSWORD}@127.0.0.1:{silent_port}/bpc"
    code, lines = await _run(tmp_path, command, url, connect_timeout="2")
    first = _check(code, lines, "postgresql", f"127.0.0.1:{silent_port}", "bpc")
    assert "no answer within 2 s" in first


@pytest.mark.postgres
@pytest.mark.parametrize("command", COMMANDS)
async def test_a_missing_postgres_database_is_named(tmp_path: Path, command: str) -> None:
    if not POSTGRES_URL:
        pytest.skip("needs CONNECTOR_TEST_POSTGRES_URL")
    server = make_url(POSTGRES_URL)
    name = f"bpc_missing_{uuid.uuid4().hex[:8]}"
    url = server.set(drivername="postgresql", database=name, password=PASSWORD).render_as_string(hide_password=False)
    code, lines = await _run(tmp_path, command, url)
    first = _check(code, lines, "postgresql", f"{server.host}:{server.port or 5432}", name)
    assert "does not exist" in first


@pytest.mark.parametrize("command", COMMANDS)
async def test_a_corrupt_sqlite_file_is_named(tmp_path: Path, command: str) -> None:
    path = tmp_path / "corrupt.db"
    path.write_bytes(os.urandom(64 * 1024))
    code, lines = await _run(tmp_path, command, f"sqlite:///{path}")
    first = _check(code, lines, "sqlite", str(path))
    assert "not a SQLite database" in first


@pytest.mark.parametrize("command", COMMANDS)
@pytest.mark.parametrize("where", ["under a file", "a directory"])
async def test_a_sqlite_path_that_cannot_be_a_database_is_named(tmp_path: Path, command: str, where: str) -> None:
    if where == "under a file":
        (tmp_path / "plain").write_text("not a directory", encoding="utf-8")
        path = tmp_path / "plain" / "sub" / "node.db"
    else:
        path = tmp_path / "node.db"
        path.mkdir()
    code, lines = await _run(tmp_path, command, f"sqlite+aiosqlite:///{path}")
    _check(code, lines, "sqlite", str(path))
