"""Our DCP messages validate against the official DCP 1.0 schemas (copies in tests/data, see SOURCES.md there)."""

from __future__ import annotations

import json
from typing import Any

import pytest
from jsonschema import Draft201909Validator
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT201909

from connector.identity.credentials import issue_credential, present, presentation_response_message
from connector.identity.signature import parse
from tests.conftest import data_path
from tests.identity.conftest import NOW, Party

RESOURCES = data_path("standards", "dcp-1.0", "artifacts", "src", "main", "resources")
BASE = "https://w3id.org/dspace-dcp/v1.0/"


def _registry() -> Registry:  # type: ignore[type-arg]
    resources = []
    for path in sorted(RESOURCES.rglob("*-schema.json")):
        schema = json.loads(path.read_text(encoding="utf-8"))
        resource = Resource.from_contents(schema, default_specification=DRAFT201909)
        # context-schema.json declares a v08 $id while the others reference v1.0: register both names.
        resources.append((BASE + path.relative_to(RESOURCES).as_posix(), resource))
        if "$id" in schema:
            resources.append((schema["$id"], resource))
    return Registry().with_resources(resources)


REGISTRY = _registry()


def _validate(schema_path: str, instance: Any) -> None:
    schema = json.loads((RESOURCES / schema_path).read_text(encoding="utf-8"))
    validator = Draft201909Validator(schema, registry=REGISTRY)
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
