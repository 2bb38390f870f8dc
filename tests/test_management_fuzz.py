"""Schemathesis drives the management API from its own OpenAPI document: no input may produce a 500."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

schemathesis = pytest.importorskip("schemathesis", reason="schemathesis is a test dependency")
from schemathesis.checks import not_a_server_error  # noqa: E402
from schemathesis.specs.openapi.checks import (  # noqa: E402
    response_schema_conformance,
    status_code_conformance,
)

API_KEY = "fuzz-api-key-0123456789"


@pytest.fixture(scope="module")
def node_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A node in its own process (schemathesis calls it synchronously)."""
    workdir: Path = tmp_path_factory.mktemp("fuzz")
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "CONNECTOR_PROTOCOL_HOST": "127.0.0.1",
        "CONNECTOR_PROTOCOL_PORT": "0",
        "CONNECTOR_MANAGEMENT_PORT": "0",
        "CONNECTOR_API_KEY": API_KEY,
    }
    log_path = workdir / "node.log"
    # A file, not a pipe: a pipe nobody reads fills up and blocks the node's logging.
    with log_path.open("w") as log_file:
        process = subprocess.Popen(
            [sys.executable, "-m", "connector.cli", "serve"], cwd=workdir, env=env, stderr=log_file
        )
    deadline = time.monotonic() + 60
    port = None
    while port is None and time.monotonic() < deadline and process.poll() is None:
        for line in log_path.read_text().splitlines():
            if '"node started"' in line:
                port = int(json.loads(line)["management"].rsplit(":", 1)[1])
        time.sleep(0.05)
    assert port is not None, f"the node did not start: {log_path.read_text()[-2000:]}"
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=30)
    errors = [line for line in log_path.read_text().splitlines() if '"level":"ERROR"' in line]
    assert not errors, f"the node logged errors under fuzzing: {errors[:3]}"


def test_no_input_breaks_the_management_api(node_url: str) -> None:
    from hypothesis import HealthCheck, given, settings

    schema = schemathesis.openapi.from_url(f"{node_url}/management/openapi.json")
    checks = [not_a_server_error, status_code_conformance, response_schema_conformance]
    tested = set()
    for result in schema.get_all_operations():
        operation = result.ok()

        # Derandomized: CI explores the same inputs every run; change max_examples to explore more locally.
        @settings(
            max_examples=40, deadline=None, database=None, derandomize=True, suppress_health_check=list(HealthCheck)
        )
        @given(case=operation.as_strategy())
        def call(case: object) -> None:
            case.call_and_validate(headers={"X-Api-Key": API_KEY}, checks=checks)  # type: ignore[attr-defined]

        call()
        tested.add((operation.method.upper(), operation.path))
    documented = {(m.upper(), p) for p, ops in schema.raw_schema["paths"].items() for m in ops}
    # Schemathesis may leave out the operation that serves the schema it was loaded from.
    assert documented - tested <= {("GET", "/management/openapi.json")}
    assert len(tested) >= len(documented) - 1
