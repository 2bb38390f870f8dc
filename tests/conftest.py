"""Shared fixtures: real nodes on loopback, real SQLite files, real PostgreSQL databases."""

from __future__ import annotations

import io
import os
import uuid
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from connector.app import Node, running_node
from connector.settings import Settings
from connector.store import Store, migrate

REPO = Path(__file__).resolve().parents[1]
DATA = REPO / "tests" / "data"
POSTGRES_URL = os.environ.get("CONNECTOR_TEST_POSTGRES_URL")
API_KEY = "test-api-key-0123456789"

EDC_CONTEXT = {"@vocab": "https://w3id.org/edc/v0.0.1/ns/"}
ODRL_CONTEXT = "http://www.w3.org/ns/odrl.jsonld"


def data_path(*parts: str) -> Path:
    """Return a path under tests/data, the suite's own copies of the standards' files (see SOURCES.md there).

    A missing file is a plain error, never a skip: the suite carries every file it reads.
    """
    path = DATA.joinpath(*parts)
    if not path.exists():
        raise FileNotFoundError(f"{path.relative_to(REPO)} is missing (tests/data/SOURCES.md lists what belongs there)")
    return path


def free_port() -> int:
    """Return a TCP port free on loopback now (a node's DID names its port, so it is chosen up front)."""
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def make_settings(tmp_path: Path, **overrides: Any) -> Settings:
    """Return settings for a test node on loopback with its own ports, DID and data directory."""
    port = overrides.pop("protocol_port", None) or free_port()
    values: dict[str, Any] = {
        "protocol_host": "127.0.0.1",
        "protocol_port": port,
        "public_url": f"http://127.0.0.1:{port}",
        "management_port": 0,
        "data_dir": tmp_path / "data",
        "log_format": "text",
        "shutdown_timeout": 5.0,
        "allow_local_peers": True,
    }
    values.update(overrides)
    return Settings(**values)


async def _create_database(base_url: str) -> str:
    import asyncpg

    name = f"bpc_test_{uuid.uuid4().hex[:12]}"
    dsn = base_url.replace("postgresql+asyncpg://", "postgresql://")
    connection = await asyncpg.connect(dsn)
    try:
        await connection.execute(f'CREATE DATABASE "{name}" TEMPLATE template0')
    finally:
        await connection.close()
    return name


async def _drop_database(base_url: str, name: str) -> None:
    import asyncpg

    dsn = base_url.replace("postgresql+asyncpg://", "postgresql://")
    connection = await asyncpg.connect(dsn)
    try:
        await connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await connection.close()


def _with_database(url: str, name: str) -> str:
    head, _, _ = url.rpartition("/")
    url = head + "/" + name
    return url if url.startswith("postgresql+asyncpg://") else "postgresql+asyncpg://" + url.split("://", 1)[1]


@pytest.fixture
async def postgres_url() -> AsyncIterator[str]:
    """Yield the URL of a fresh, empty PostgreSQL database, dropped afterwards."""
    if not POSTGRES_URL:
        pytest.skip(
            "PostgreSQL tests need CONNECTOR_TEST_POSTGRES_URL (e.g. postgresql://postgres@127.0.0.1:5432/test)"
        )
    name = await _create_database(POSTGRES_URL)
    try:
        yield _with_database(POSTGRES_URL, name)
    finally:
        await _drop_database(POSTGRES_URL, name)


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
async def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[str]:
    """Yield an empty database URL, once on SQLite and once on PostgreSQL."""
    if request.param == "sqlite":
        yield f"sqlite+aiosqlite:///{tmp_path / 'store.db'}"
        return
    if not POSTGRES_URL:
        pytest.skip(
            "PostgreSQL tests need CONNECTOR_TEST_POSTGRES_URL (e.g. postgresql://postgres@127.0.0.1:5432/test)"
        )
    name = await _create_database(POSTGRES_URL)
    try:
        yield _with_database(POSTGRES_URL, name)
    finally:
        await _drop_database(POSTGRES_URL, name)


@pytest.fixture
async def store(database_url: str) -> AsyncIterator[Store]:
    """Yield a store on a migrated empty database (SQLite and PostgreSQL); a test file may define its own."""
    await migrate.upgrade(database_url)
    opened = Store(database_url, pool_size=4)
    try:
        yield opened
    finally:
        await opened.close()


NodeFactory = Callable[..., Any]


@pytest.fixture
async def node_factory(tmp_path: Path) -> AsyncIterator[Callable[..., Any]]:
    """Start real nodes on loopback; every node is stopped at the end of the test."""
    from contextlib import AsyncExitStack

    async with AsyncExitStack() as stack:
        count = 0

        async def start(**overrides: Any) -> Node:
            nonlocal count
            count += 1
            settings = make_settings(tmp_path / f"node{count}", **overrides)
            return await stack.enter_async_context(running_node(settings))

        yield start


@pytest.fixture
async def node(node_factory: Callable[..., Any]) -> Node:
    """A running node with an API key."""
    started: Node = await node_factory(api_key=API_KEY)
    return started


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    """An HTTP client for talking to nodes."""
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30)) as session:
        yield session


class Management:
    """A small client for a node's management API, as a script would use it."""

    def __init__(self, http: aiohttp.ClientSession, node: Node, api_key: str | None = API_KEY) -> None:
        self.http = http
        self.base = node.management_url
        self.headers = {"X-Api-Key": api_key} if api_key else {}

    async def call(
        self,
        method: str,
        path: str,
        body: Any = None,
        raw: bytes | None = None,
        headers: dict[str, str] | None = None,
    ) -> tuple[int, Any]:
        """Send one request; return (status, parsed JSON body or None)."""
        all_headers = {**self.headers, **(headers or {})}
        kwargs: dict[str, Any] = {"headers": all_headers}
        if raw is not None:
            kwargs["data"] = io.BytesIO(raw) if len(raw) > 1_000_000 else raw
            all_headers.setdefault("Content-Type", "application/json")
        elif body is not None:
            kwargs["json"] = body
        async with self.http.request(method, self.base + path, **kwargs) as response:
            text = await response.text()
            if not text:
                return response.status, None
            import json

            return response.status, json.loads(text)


@pytest.fixture
def management(http: aiohttp.ClientSession, node: Node) -> Management:
    """The management API client of the default test node."""
    return Management(http, node)
