"""Our DCP messages validate against the official DCP 1.0 schemas (from ../shared; skipped without it)."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

from connector.identity.credentials import issue_credential, present, presentation_response_message
from connector.identity.signature import parse
from tests.identity.conftest import NOW, Party

REPO = Path(__file__).resolve().parents[2]
DCP = REPO.parent / "shared" / "data" / "standards" / "dcp-1.0"
RESOURCES = DCP / "artifacts" / "src" / "main" / "resources"
BASE = "https://w3id.org/dspace-dcp/v1.0/"


def _schemas() -> Any:
    if not RESOURCES.exists():
        if os.environ.get("CI"):
            pytest.fail(f"{RESOURCES} is missing, but CI always has ../shared")
        pytest.skip(f"../shared is not beside the project ({RESOURCES} missing)")
    jsonschema = pytest.importorskip("jsonschema")
    referencing = pytest.importorskip("referencing")
    from referencing.jsonschema import DRAFT201909

    resources = []
    for path in RESOURCES.rglob("*-schema.json"):
        schema = json.loads(path.read_text(encoding="utf-8"))
        resource = referencing.Resource.from_contents(schema, default_specification=DRAFT201909)
        # context-schema.json declares a v08 $id while the others reference v1.0: register both names.
        resources.append((BASE + path.relative_to(RESOURCES).as_posix(), resource))
        if "$id" in schema:
            resources.append((schema["$id"], resource))
    registry = referencing.Registry().with_resources(resources)
    return jsonschema, registry


def _validate(schema_path: str, instance: Any) -> None:
    jsonschema, registry = _schemas()
    schema = json.loads((RESOURCES / schema_path).read_text(encoding="utf-8"))
    validator = jsonschema.Draft201909Validator(schema, registry=registry)
    errors = sorted(validator.iter_errors(instance), key=str)
    assert not errors, [e.message for e in errors]


def test_presentation_response_message_validates(issuer: Party, consumer: Party, provider: Party) -> None:
    vc = issue_credential(issuer.key, issuer.did, consumer.did, ["MembershipCredential"], {}, NOW)
    vp = present(consumer.key, consumer.did, [vc], provider.did)
    _validate("presentation/presentation-response-message-schema.json", presentation_response_message([vp]))


def test_schema_check_can_fail() -> None:
    # Guards the test above against a registry that silently accepts anything.
    with pytest.raises(AssertionError):
        _validate("presentation/presentation-response-message-schema.json", {"type": "PresentationResponseMessage"})


def test_credential_validates_against_the_credential_object_shape(issuer: Party, consumer: Party) -> None:
    vc = issue_credential(issuer.key, issuer.did, consumer.did, ["MembershipCredential"], {}, NOW)
    container = {"credentialType": "MembershipCredential", "payload": vc, "format": "jwt"}
    message = {
        "@context": ["https://w3id.org/dspace-dcp/v1.0/dcp.jsonld"],
        "type": "CredentialMessage",
        "credentials": [container],
        "issuerPid": "issuer-pid",
        "holderPid": "holder-pid",
        "status": "ISSUED",
    }
    _validate("issuance/credential-message-schema.json", message)
    assert parse(vc).payload["type"][1] == container["credentialType"]
