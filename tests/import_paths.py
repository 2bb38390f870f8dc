"""Every way a passport import can be started, each answering the verdict of every record it was given.

The CLI paths run the real `connector` command in this process (`connector.cli.main`: argument parsing,
settings from the environment, the source readers, the service, a real SQLite file); the HTTP paths talk
to a real node on loopback. Each path gets its own database, so what one path stored says nothing of another.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
import logging
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from connector.app import running_node
from connector.store import Store
from tests.conftest import API_KEY, make_settings

V1 = "/management/v1/passports"


@dataclass(frozen=True)
class Verdict:
    """What an import path said of one record: accepted or refused, and why."""

    accepted: bool
    reason: str = ""
    errors: tuple[tuple[str | None, str], ...] = ()

    def text(self) -> str:
        """Return the reason with every error's path and message, as one string to match."""
        return "; ".join([self.reason, *(f"{path}: {message}" for path, message in self.errors)])


@dataclass
class CliRun:
    """One run of the `connector` command: exit status and what it wrote."""

    code: int
    out: str
    err: str

    def json(self) -> Any:
        """Return stdout as JSON."""
        return json.loads(self.out)


@contextlib.contextmanager
def _environment(data_dir: Path, extra: dict[str, str] | None = None) -> Iterator[None]:
    """Run with only this node's CONNECTOR_* variables, and the logging setup as it was before."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    with pytest.MonkeyPatch.context() as patch:
        for key in [k for k in os.environ if k.startswith("CONNECTOR_")]:
            patch.delenv(key)
        patch.setenv("CONNECTOR_DATA_DIR", str(data_dir))
        patch.setenv("CONNECTOR_LOG_LEVEL", "WARNING")
        for key, value in (extra or {}).items():
            patch.setenv(key, value)
        try:
            yield
        finally:
            root.handlers[:] = handlers
            root.setLevel(level)


def run_cli(data_dir: Path, *args: str, env: dict[str, str] | None = None, stdin: str = "") -> CliRun:
    """Run `connector ARGS` in this process against the node whose data directory is `data_dir`."""
    from connector.cli import main

    out, err = io.StringIO(), io.StringIO()
    with (
        _environment(data_dir, env),
        contextlib.redirect_stdout(out),
        contextlib.redirect_stderr(err),
        pytest.MonkeyPatch.context() as patch,
    ):
        patch.setattr("sys.stdin", io.StringIO(stdin))
        code = main(list(args))
    return CliRun(code, out.getvalue(), err.getvalue())


def _from_summary(summary: dict[str, Any], count: int) -> list[Verdict]:
    """Turn an import summary into one verdict per record read (position order)."""
    refused = {item["position"]: item for item in summary["refusals"]}
    assert summary["read"] == count, summary
    assert summary["new"] + summary["changed"] + summary["unchanged"] + summary["refused"] == count, summary
    verdicts = []
    for position in range(count):
        item = refused.get(position)
        if item is None:
            verdicts.append(Verdict(True))
        else:
            errors = tuple((e.get("path"), e["message"]) for e in item.get("errors", []))
            verdicts.append(Verdict(False, item["reason"], errors))
    return verdicts


@dataclass
class PathResult:
    """The verdicts one path gave, in the order of the records, and what its database holds afterwards."""

    verdicts: list[Verdict] = field(default_factory=list)
    stored: dict[str, tuple[int, dict[str, Any]]] = field(default_factory=dict)  # id -> (versions, data)


async def _stored(url: str) -> dict[str, tuple[int, dict[str, Any]]]:
    store = Store(url)
    try:
        async with store.read() as tx:
            from connector.store.passports import PassportFilter

            found: dict[str, tuple[int, dict[str, Any]]] = {}
            for record in await tx.passports.page(PassportFilter(limit=100_000, include_deleted=True)):
                versions = await tx.passports.history(record.id)
                found[record.id] = (len(versions), record.data)
            return found
    finally:
        await store.close()


def _database(data_dir: Path) -> str:
    return f"sqlite+aiosqlite:///{data_dir / 'connector.db'}"


def cli_import_in_workers(work: Path, kind: str, records: Sequence[bytes]) -> PathResult:
    """Import records through the CLI as `kind` with two worker processes preparing them, as a large
    source is (the size below which a source is prepared in the command's own process set to nothing)."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr("connector.services.passport_pipeline.WORKER_MIN_BYTES", 0)
        return cli_import(work, kind, records, env={"CONNECTOR_IMPORT_WORKERS": "2"})


def cli_import(
    work: Path, kind: str, records: Sequence[bytes], *extra: str, env: dict[str, str] | None = None
) -> PathResult:
    """Import records through the CLI as `kind`: file (one run per file), lines, folder or array."""
    data_dir = work / "data"
    source = work / "source"
    source.mkdir(parents=True)
    result = PathResult()
    if kind == "file":
        for number, raw in enumerate(records):
            path = source / f"{number:03d}.json"
            path.write_bytes(raw)
            run = run_cli(data_dir, "passports", "import", str(path), "--json", *extra, env=env)
            assert run.code in (0, 1), run.err
            result.verdicts += _from_summary(run.json(), 1)
    else:
        if kind == "lines":
            assert not any(b"\n" in raw for raw in records), "a JSON Lines record is one line"
            path = source / "passports.jsonl"
            path.write_bytes(b"".join(raw + b"\n" for raw in records))
        elif kind == "array":
            path = source / "passports.json"
            path.write_bytes(b"[\n" + b",\n".join(records) + b"\n]\n")
        else:
            path = source
            for number, raw in enumerate(records):
                (source / f"{number:03d}.json").write_bytes(raw)
        run = run_cli(data_dir, "passports", "import", str(path), "--json", *extra, env=env)
        assert run.code in (0, 1), run.err
        assert run.err == "", run.err  # --json: nothing but the summary, no progress
        result.verdicts = _from_summary(run.json(), len(records))
    result.stored = asyncio.run(_stored(_database(data_dir)))
    return result


def _problem_verdict(status: int, body: Any) -> Verdict:
    if status in (200, 201):
        return Verdict(True)
    assert 400 <= status < 500, (status, body)
    errors = tuple((e.get("path"), e["message"]) for e in body.get("errors", []) if e.get("message") != body["detail"])
    return Verdict(False, body["detail"], errors)


async def _http_import(work: Path, kind: str, records: Sequence[bytes], max_body: int) -> PathResult:
    settings = make_settings(work, api_key=API_KEY)
    result = PathResult()
    headers = {"X-Api-Key": API_KEY}
    async with running_node(settings) as node, aiohttp.ClientSession() as http:

        async def post(path: str, body: bytes, content_type: str) -> tuple[int, Any]:
            sent = {**headers, "Content-Type": content_type}
            data = io.BytesIO(body) if len(body) > 1_000_000 else body  # aiohttp wants large bodies as a stream
            async with http.post(node.management_url + path, data=data, headers=sent) as response:
                return response.status, json.loads(await response.read())

        if kind == "single":
            for raw in records:
                result.verdicts.append(_problem_verdict(*await post(V1, raw, "application/json")))
        else:
            # A body holds what fits in CONNECTOR_MAX_BODY_BYTES; a record larger than that is sent on its own
            # (and refused whole, 413), the others together in one import, in their order.
            groups: list[list[int]] = [[]]
            for number, raw in enumerate(records):
                if len(raw) > max_body:
                    groups += [[number], []]
                else:
                    groups[-1].append(number)
            verdicts: dict[int, Verdict] = {}
            for group in (g for g in groups if g):
                parts = [records[n] for n in group]
                if kind == "lines":
                    body, content_type = b"".join(p + b"\n" for p in parts), "application/x-ndjson"
                else:
                    body, content_type = b"[" + b",".join(parts) + b"]", "application/json"
                status, answer = await post(f"{V1}/import", body, content_type)
                if status == 200:
                    for n, verdict in zip(group, _from_summary(answer, len(group)), strict=True):
                        verdicts[n] = verdict
                else:
                    assert len(group) == 1, (status, answer)
                    verdicts[group[0]] = _problem_verdict(status, answer)
            result.verdicts = [verdicts[n] for n in range(len(records))]
        url = node.settings.effective_database_url
    result.stored = await _stored(url)
    return result


def http_import(work: Path, kind: str, records: Sequence[bytes], max_body: int) -> PathResult:
    """Import records through a node's HTTP API as `kind`: single (POST each), lines (ndjson) or array."""
    return asyncio.run(_http_import(work, kind, records, max_body))
