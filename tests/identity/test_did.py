"""did:web URL mapping and DID documents."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from connector.identity.did import (
    build_did_document,
    did_web_from_url,
    did_web_to_url,
    parse_did_document,
)
from connector.identity.errors import DidDocumentError, DidError
from connector.identity.keys import generate_key
from connector.settings import did_web_from_url as settings_did_web_from_url


@pytest.mark.parametrize(
    ("did", "url"),
    [
        ("did:web:w3c-ccg.github.io", "https://w3c-ccg.github.io/.well-known/did.json"),
        ("did:web:w3c-ccg.github.io:user:alice", "https://w3c-ccg.github.io/user/alice/did.json"),
        ("did:web:example.com%3A3000", "https://example.com:3000/.well-known/did.json"),
        ("did:web:example.com%3a3000:a:b", "https://example.com:3000/a/b/did.json"),
        ("did:web:Example.COM", "https://example.com/.well-known/did.json"),
        ("did:web:localhost%3A8282", "https://localhost:8282/.well-known/did.json"),
        ("did:web:example.com:bpn%20x", "https://example.com/bpn%20x/did.json"),
    ],
)
def test_did_web_maps_to_https_url(did: str, url: str) -> None:
    assert did_web_to_url(did) == url


@pytest.mark.parametrize(
    ("did", "url"),
    [
        ("did:web:localhost%3A8282", "http://localhost:8282/.well-known/did.json"),
        ("did:web:127.0.0.1%3A8282:api", "http://127.0.0.1:8282/api/did.json"),
        ("did:web:%5B%3A%3A1%5D%3A9000", "http://[::1]:9000/.well-known/did.json"),
        ("did:web:example.com", "https://example.com/.well-known/did.json"),
    ],
)
def test_http_only_for_loopback_when_allowed(did: str, url: str) -> None:
    assert did_web_to_url(did, allow_http_loopback=True) == url


@pytest.mark.parametrize(
    ("did", "message"),
    [
        ("did:key:z6Mk", "not a did:web"),
        ("did:web:", "empty segment"),
        ("did:web:example.com:", "empty segment"),
        ("did:web:example.com::a", "empty segment"),
        ("did:web:example.com#key-1", "fragment"),
        ("did:web:example.com?x=1", "query"),
        ("did:web:user@example.com", "userinfo"),
        ("did:web:example.com/path", "'/'"),
        ("did:web:10.0.0.1", "IP address"),
        ("did:web:169.254.169.254", "IP address"),
        ("did:web:%5B2001%3Adb8%3A%3A1%5D", "IP address"),
        ("did:web:%5B%3A%3A1", "unterminated"),
        ("did:web:exa_mple.com", "not a valid host name"),
        ("did:web:example.com%3A0", "invalid port"),
        ("did:web:example.com%3A99999", "invalid port"),
        ("did:web:example.com%3Ax", "invalid port"),
        ("did:web:example%2Ecom", "port colon"),
        ("did:web:example.com:%2E%2E", "not allowed"),
        ("did:web:example.com:a%2Fb", "not allowed"),
        ("did:web:example.com:a%zz", "percent-encoding"),
        ("did:web:" + "a" * 3000, "longer than"),
    ],
)
def test_malformed_did_web_is_refused_with_reason(did: str, message: str) -> None:
    with pytest.raises(DidError, match=message):
        did_web_to_url(did, allow_http_loopback=True)


@pytest.mark.parametrize(
    ("url", "did"),
    [
        ("http://localhost:8282", "did:web:localhost%3A8282"),
        ("https://provider.example/", "did:web:provider.example"),
        ("https://provider.example/tenants/a", "did:web:provider.example:tenants:a"),
        ("http://127.0.0.1:9000/x", "did:web:127.0.0.1%3A9000:x"),
    ],
)
def test_did_from_base_url_matches_settings(url: str, did: str) -> None:
    assert did_web_from_url(url) == did == settings_did_web_from_url(url)


@pytest.mark.parametrize(
    "url", ["ftp://x.example", "https://u:p@x.example", "https://x.example/?q=1", "https://10.1.1.1"]
)
def test_bad_base_url_is_refused(url: str) -> None:
    with pytest.raises(DidError):
        did_web_from_url(url)


_label = st.from_regex(r"[a-z][a-z0-9]{0,10}", fullmatch=True)


@given(
    host=st.lists(_label, min_size=2, max_size=4).map(".".join),
    port=st.none() | st.integers(1, 65535),
    path=st.lists(st.from_regex(r"[A-Za-z0-9_-]{1,12}", fullmatch=True), max_size=3),
)
def test_base_url_to_did_to_document_url_round_trip(host: str, port: int | None, path: list[str]) -> None:
    netloc = host if port is None else f"{host}:{port}"
    base = f"https://{netloc}" + "".join(f"/{p}" for p in path)
    expected = base + ("/did.json" if path else "/.well-known/did.json")
    assert did_web_to_url(did_web_from_url(base)) == expected


def _doc() -> tuple[str, dict[str, Any]]:
    did = "did:web:provider.example"
    key = generate_key()
    return did, build_did_document(did, key, "https://provider.example/api/dsp", "https://provider.example/cs")


def test_did_document_round_trip() -> None:
    did = "did:web:provider.example"
    key = generate_key("P-256")
    raw = build_did_document(
        did, key, "https://provider.example/api/dsp", "https://provider.example/cs", "https://provider.example/catalog"
    )
    doc = parse_did_document(json.dumps(raw), did)
    kid = f"{did}#{key.kid}"
    assert raw["@context"][0] == "https://www.w3.org/ns/did/v1"
    assert raw["verificationMethod"][0]["type"] == "JsonWebKey2020"
    assert doc.id == did
    assert set(doc.keys) == {kid}
    for rel in ("authentication", "assertionMethod", "capabilityInvocation"):
        assert doc.relationships[rel] == {kid}
        assert doc.key(kid, rel) is not None
    assert doc.relationships["capabilityDelegation"] == frozenset()
    assert doc.key(key.kid, "capabilityInvocation") is not None  # a bare fragment is relative to the document
    assert doc.key(None, "capabilityInvocation") is not None  # one key only: no kid needed
    assert doc.keys[kid].key.thumbprint() == key.kid
    assert doc.credential_service_url == "https://provider.example/cs"
    assert doc.service("DataService") is not None and doc.service("CatalogService") is not None


def test_relative_ids_and_embedded_methods_are_understood() -> None:
    did, raw = _doc()
    method = raw["verificationMethod"][0]
    method["id"] = "#key-1"
    raw["verificationMethod"] = []
    raw["capabilityInvocation"] = [method]
    raw["authentication"] = ["#key-1"]
    raw["assertionMethod"] = []
    doc = parse_did_document(raw, did)
    assert doc.key("#key-1", "capabilityInvocation") is not None
    assert doc.key(f"{did}#key-1", "authentication") is not None
    assert doc.key("key-1", "assertionMethod") is None


def _mutate(raw: dict[str, Any], how: str) -> dict[str, Any] | str:
    method = raw["verificationMethod"][0]
    if how == "id":
        raw["id"] = "did:web:attacker.example"
    elif how == "private":
        method["publicKeyJwk"]["d"] = "AAAA"
    elif how == "rsa":
        method["publicKeyJwk"] = {"kty": "RSA", "n": "x", "e": "AQAB"}
    elif how == "dangling":
        raw["capabilityInvocation"] = ["did:web:provider.example#nope"]
    elif how == "foreign":
        method["id"] = "did:web:other.example#k"
    elif how == "many":
        raw["verificationMethod"] = [method] * 100
    elif how == "list":
        raw["service"] = "x"
    elif how == "big":
        return json.dumps({**raw, "pad": "x" * 70_000})
    elif how == "notjson":
        return "<html>"
    return raw


@pytest.mark.parametrize(
    ("how", "message"),
    [
        ("id", "not the DID it was fetched for"),
        ("private", "private key"),
        ("rsa", "unsupported key"),
        ("dangling", "unknown method"),
        ("foreign", "not a fragment"),
        ("many", "at most"),
        ("list", "service must be a list"),
        ("big", "larger than"),
        ("notjson", "not JSON"),
    ],
)
def test_bad_did_documents_are_refused(how: str, message: str) -> None:
    did, raw = _doc()
    with pytest.raises(DidDocumentError, match=message):
        parse_did_document(_mutate(raw, how), did)


def test_unknown_method_types_are_skipped_not_fatal() -> None:
    did, raw = _doc()
    raw["verificationMethod"].append({"id": f"{did}#mk", "type": "Multikey", "publicKeyMultibase": "z6Mk"})
    raw["authentication"].append(f"{did}#mk")
    doc = parse_did_document(raw, did)
    assert doc.key(f"{did}#mk", "authentication") is None
    assert len(doc.keys) == 1


def _identity_hub_document(did: str, jwk: dict[str, Any]) -> dict[str, Any]:
    """A DID document as EDC IdentityHub (Tractus-X EDC's wallet) publishes it: keys only in verificationMethod."""
    return {
        "service": [
            {"id": f"{did}#credential-service", "type": "CredentialService", "serviceEndpoint": "https://x/cs"}
        ],
        "verificationMethod": [
            {
                "id": f"{did}#key-1",
                "type": "JsonWebKey2020",
                "controller": did,
                "publicKeyMultibase": None,
                "publicKeyJwk": jwk,
            }
        ],
        "authentication": [],
        "id": did,
        "@context": ["https://w3id.org/did-resolution/v1"],
    }


def test_a_document_naming_no_relationship_lets_its_verification_methods_stand_for_each() -> None:
    did = "did:web:tractusx.example"
    key = generate_key("P-256")
    doc = parse_did_document(_identity_hub_document(did, key.public_jwk()), did)
    for rel in ("capabilityInvocation", "assertionMethod", "authentication"):
        assert doc.key(f"{did}#key-1", rel) is not None
        assert doc.key("key-1", rel) is not None
        assert doc.key(None, rel) is not None  # its only key
    assert doc.key(f"{did}#key-2", "capabilityInvocation") is None  # still only its own keys, by kid
    raw = _identity_hub_document(did, key.public_jwk())
    second = {**raw["verificationMethod"][0], "id": f"{did}#key-2", "publicKeyJwk": generate_key("P-256").public_jwk()}
    raw["verificationMethod"].append(second)
    doc = parse_did_document(raw, did)
    assert doc.key(None, "capabilityInvocation") is None  # two keys: a kid is needed


def test_a_document_naming_any_relationship_is_held_to_it() -> None:
    did = "did:web:tractusx.example"
    raw = _identity_hub_document(did, generate_key("P-256").public_jwk())
    raw["authentication"] = [f"{did}#key-1"]
    doc = parse_did_document(raw, did)
    assert doc.key(f"{did}#key-1", "authentication") is not None
    assert doc.key(f"{did}#key-1", "capabilityInvocation") is None
