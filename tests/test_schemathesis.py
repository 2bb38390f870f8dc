"""Schemathesis drives the management API from its own OpenAPI document with the strict checks.

Every operation is called with schema-valid input (which must not be refused: positive_data_acceptance) and with
schema-invalid input (which must be refused: negative_data_rejection), and every answer must be documented
(status code, content type, body schema) and never a server error. Where a check cannot hold for a principled
reason, the operation is named in EXCLUDED with the reason; nothing else is left out.

Repeatable: hypothesis is derandomized and each operation gets a bounded number of examples in each mode, so CI
explores the same inputs every run (raise EXAMPLES locally to explore more).
"""

from __future__ import annotations

import fnmatch
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

schemathesis = pytest.importorskip("schemathesis", reason="schemathesis is a test dependency")
from schemathesis import GenerationMode  # noqa: E402
from schemathesis.specs.openapi.checks import (  # noqa: E402
    content_type_conformance,
    negative_data_rejection,
    positive_data_acceptance,
    response_schema_conformance,
    status_code_conformance,
)

API_KEY = "fuzz-api-key-0123456789"
EXAMPLES = int(os.environ.get("CONNECTOR_TEST_SCHEMATHESIS_EXAMPLES", "8"))


def no_internal_error(ctx: Any, response: Any, case: Any) -> None:
    """Fail on a 500: the node's own failure. A 502 or 504 (a peer that failed or is slow) is documented where an
    operation contacts a peer, which status_code_conformance checks."""
    assert response.status_code != 500, f"500 Internal Server Error: {response.text[:500]}"


CHECKS: dict[str, Callable[..., Any]] = {
    "no_internal_error": no_internal_error,
    "status_code_conformance": status_code_conformance,
    "content_type_conformance": content_type_conformance,
    "response_schema_conformance": response_schema_conformance,
    "positive_data_acceptance": positive_data_acceptance,
    "negative_data_rejection": negative_data_rejection,
}

_V3_JSONLD = (
    "a v3 body is JSON-LD read with EDC's vocabulary: a term is known by its expanded IRI, so a body the compacted "
    "schema calls invalid (a value under a prefixed or full-IRI key, a key outside the vocabulary, which JSON-LD "
    "drops) can be a valid one; v4 bodies are checked against their schema first and are not excluded"
)
_QUERY_FIELDS = (
    "which fields a QuerySpec may filter or sort by depends on the resource and, for JSON-LD properties, on the "
    "stored objects; a field the resource does not have is refused with the list of those it has"
)
_REFERENCES = (
    "the body names other objects (policy definitions, agreements, a peer to contact) whose existence no schema can "
    "state; a missing one is refused with its field named"
)
_ODRL = (
    "an ODRL policy is valid when the policy engine can evaluate it (known left operands, operators and value "
    "types per operand, docs/policies.md); the schema states the shape, the engine the meaning"
)
_JSONLD_KEYS = (
    "the body is expanded as JSON-LD: an extra key that is neither a term nor an absolute IRI (schemathesis sends "
    "arbitrary ones) breaks the expansion, which JSON Schema cannot state for keys it does not name"
)
_PASSPORT = (
    "a passport is valid against the battery-passport model (Annex XIII, Catena-X 6.x or IDTA-02035: hundreds of "
    "rules, docs/passport-model.md), which the document names but does not restate"
)

_UNKNOWN_QUERY = (
    "the invalid requests schemathesis makes here add query parameters the operation does not have (arbitrary "
    "names); the node ignores a parameter it does not know, as EDC does, and checks each one it documents"
)

# (method, path pattern) -> {check: reason}. Both are fnmatch patterns ("P*": POST and PUT, the methods with a body).
EXCLUDED: dict[tuple[str, str], dict[str, str]] = {
    ("P*", "/management/v3/*"): {"negative_data_rejection": _V3_JSONLD},
    ("POST", "/management/v*/*/request"): {"positive_data_acceptance": _QUERY_FIELDS},
    # The data-access log and EDC's federated catalog query read a v3 QuerySpec.
    ("POST", "/management/v1/dataaccess/request"): {
        "negative_data_rejection": _V3_JSONLD,
        "positive_data_acceptance": _QUERY_FIELDS,
    },
    ("POST", "/api/catalog/v1alpha/catalog/query"): {
        "negative_data_rejection": _V3_JSONLD,
        "positive_data_acceptance": _QUERY_FIELDS,
    },
    ("P*", "/management/v*/assets"): {
        "positive_data_acceptance": "a data address's required fields depend on its type (HttpData needs baseUrl, "
        "BatteryPassport none); an update names an @id that must exist. " + _JSONLD_KEYS
    },
    ("P*", "/management/v*/policydefinitions*"): {"positive_data_acceptance": _ODRL},
    ("P*", "/management/v*/contractdefinitions"): {"positive_data_acceptance": _REFERENCES},
    ("POST", "/management/v*/contractnegotiations"): {"positive_data_acceptance": _ODRL},
    ("POST", "/management/v3/edrs"): {"positive_data_acceptance": _ODRL},
    ("POST", "/management/v*/transferprocesses"): {"positive_data_acceptance": _REFERENCES},
    ("POST", "/management/v4/*/{id}/*"): {"positive_data_acceptance": _JSONLD_KEYS},
    ("POST", "/management/v3/*/{id}/*"): {"positive_data_acceptance": _JSONLD_KEYS},
    ("POST", "/management/v1/credentials"): {
        "positive_data_acceptance": "a credential is a VC-JWT signed by its issuer for this node; no schema-valid "
        "string is one unless an issuer made it"
    },
    ("POST", "/management/v1/passports"): {"positive_data_acceptance": _PASSPORT},
    ("PUT", "/management/v1/passports/{id}"): {"positive_data_acceptance": _PASSPORT},
    ("POST", "/management/v1/passports/import"): {
        "positive_data_acceptance": _PASSPORT,
        "negative_data_rejection": "an import refuses records one by one (each listed in `refusals` with its "
        "position) and stores the rest, so a record that is not a passport is answered 200 by design",
    },
    ("POST", "/management/v1/passports/successors"): {"positive_data_acceptance": _PASSPORT + ". " + _REFERENCES},
    ("POST", "/management/v1/passports/lookup"): {"positive_data_acceptance": _REFERENCES},
    ("POST", "/management/v1/passports/{id}/components"): {"positive_data_acceptance": _REFERENCES},
    ("GET", "/management/v1/notifications"): {"negative_data_rejection": _UNKNOWN_QUERY},
    ("GET", "/management/v1/sync/jobs"): {"negative_data_rejection": _UNKNOWN_QUERY},
    ("POST", "/management/v1/sync/jobs"): {
        "positive_data_acceptance": "a schedule is an ISO 8601 interval or a cron expression in an IANA time "
        "zone, and a destination folder must be writable: rules the schema names but cannot check"
    },
    ("PUT", "/management/v1/sync/jobs/{id}"): {
        "positive_data_acceptance": "as for a new job: the schedule, its time zone and the destination are read "
        "by rules the schema names but cannot check"
    },
}


def _excluded(method: str, path: str) -> dict[str, str]:
    found: dict[str, str] = {}
    for (pattern_method, pattern), checks in EXCLUDED.items():
        if fnmatch.fnmatchcase(method, pattern_method) and fnmatch.fnmatchcase(path, pattern):
            found.update(checks)
    return found


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


def test_every_exclusion_names_a_documented_operation_and_a_check(node_url: str) -> None:
    schema = schemathesis.openapi.from_url(f"{node_url}/management/openapi.json")
    documented = [(m.upper(), p) for p, ops in schema.raw_schema["paths"].items() for m in ops]
    for (method, pattern), checks in EXCLUDED.items():
        assert any(fnmatch.fnmatchcase(m, method) and fnmatch.fnmatchcase(p, pattern) for m, p in documented), pattern
        for check, reason in checks.items():
            assert check in CHECKS and len(reason) > 40, (pattern, check)


def _explore(operation: Any, mode: GenerationMode, checks: list[Callable[..., Any]]) -> None:
    from hypothesis import HealthCheck, given, settings

    @settings(
        max_examples=EXAMPLES, deadline=None, database=None, derandomize=True, suppress_health_check=list(HealthCheck)
    )
    @given(case=operation.as_strategy(generation_mode=mode))
    def call(case: Any) -> None:
        if mode is GenerationMode.POSITIVE and isinstance(case.query, dict):
            # A cursor is opaque: only the `next` of a page this node answered is one (any other string is
            # refused with 400, which negative mode checks); a made-up one cannot be accepted.
            case.query.pop("cursor", None)
        case.call_and_validate(headers={"X-Api-Key": API_KEY}, checks=checks)

    call()


def test_the_management_api_agrees_with_its_document(node_url: str) -> None:
    schema = schemathesis.openapi.from_url(f"{node_url}/management/openapi.json")
    failures: dict[str, str] = {}
    tested = set()
    for result in schema.get_all_operations():
        operation = result.ok()
        method, path = operation.method.upper(), operation.path
        excluded = _excluded(method, path)
        checks = [check for name, check in CHECKS.items() if name not in excluded]
        raw = operation.definition.raw
        # An operation with no parameter and no body has nothing to make invalid.
        modes = [GenerationMode.POSITIVE]
        if raw.get("parameters") or raw.get("requestBody"):
            modes.append(GenerationMode.NEGATIVE)
        for mode in modes:
            try:
                _explore(operation, mode, checks)
            except (Exception, BaseExceptionGroup) as exc:  # every failing operation is reported, not only the first
                failures[f"{method} {path} ({mode.name.lower()})"] = str(exc)[:3000]
        tested.add((method, path))
    assert not failures, "\n\n".join(f"== {name}\n{text}" for name, text in failures.items())
    documented = {(m.upper(), p) for p, ops in schema.raw_schema["paths"].items() for m in ops}
    # Schemathesis may leave out the operation that serves the schema it was loaded from.
    assert documented - tested <= {("GET", "/management/openapi.json")}
