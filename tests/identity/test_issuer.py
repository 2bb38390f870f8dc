"""Issuer helpers: identity, registry file, issuing, revoking, rendering the status list."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from connector.domain.errors import InvalidInput
from connector.identity.credentials import StatusEntry, TrustedIssuers, present, verify_presentation
from connector.identity.did import parse_did_document
from connector.identity.errors import Reason
from connector.identity.issuer import (
    create_issuer,
    init_registry,
    issue_bpn,
    issue_membership,
    issue_role,
    load_registry,
    render_status_list,
    save_registry,
)
from connector.identity.resolver import StaticResolver
from connector.identity.signature import parse
from connector.identity.status import StatusListChecker
from tests.identity.conftest import Party

NOW = datetime.now(UTC).replace(microsecond=0)
URL = "https://issuer.example/status/1"


async def test_issue_revoke_and_render(tmp_path: Path, provider: Party, consumer: Party) -> None:
    ident = create_issuer(tmp_path, "did:web:issuer.example")
    doc = parse_did_document(ident.did_document(), ident.did)
    assert doc.key(None, "assertionMethod") is not None and doc.service("DataService") is None
    registry = init_registry(tmp_path, ident.did, URL)
    membership, registry = issue_membership(ident, registry, consumer.did, bpn="BPNL000000000001")
    role, registry = issue_role(ident, registry, consumer.did, "recycler", valid_until=NOW + timedelta(days=30))
    bpn, registry = issue_bpn(ident, registry, consumer.did, "BPNL000000000001")
    save_registry(tmp_path, registry)
    registry = load_registry(tmp_path)
    assert [c.types for c in registry.credentials] == [
        ("MembershipCredential",),
        ("RoleCredential",),
        ("BpnCredential",),
    ]
    assert len({c.index for c in registry.credentials}) == 3
    status = parse(role).payload["credentialStatus"]
    role_record = registry.find(parse(role).payload["id"])
    assert role_record is not None and status["statusListIndex"] == str(role_record.index)

    published = {URL: render_status_list(ident, registry)}

    async def fetch(url: str) -> str:
        return published[url]

    resolver = StaticResolver([provider.document, consumer.document, doc])
    trust = TrustedIssuers.of({"*": {ident.did}})
    vp = present(consumer.key, consumer.did, [membership, role, bpn], provider.did)
    claims = await verify_presentation(
        vp, provider.did, consumer.did, resolver, trust, StatusListChecker(fetch, resolver)
    )
    assert claims.claims["roles"] == {"recycler"} and claims.claims["bpn"] == "BPNL000000000001"

    registry = registry.revoke(role_record.index)
    save_registry(tmp_path, registry)
    assert load_registry(tmp_path).revoked_indices() == {role_record.index}
    published[URL] = render_status_list(ident, registry)
    claims = await verify_presentation(
        vp, provider.did, consumer.did, resolver, trust, StatusListChecker(fetch, resolver)
    )
    # Revoking the role credential takes its roles away; the holder's membership and BPN stay.
    assert [(r.reason, "RoleCredential" in r.credential) for r in claims.refused] == [(Reason.REVOKED, True)]
    assert "roles" not in claims.claims and claims.claims["bpn"] == "BPNL000000000001" and claims.claims["membership"]


def test_registry_errors(tmp_path: Path) -> None:
    with pytest.raises(InvalidInput, match="initialise the issuer"):
        load_registry(tmp_path)
    registry = init_registry(tmp_path, "did:web:issuer.example", URL)
    with pytest.raises(InvalidInput, match="status index 5"):
        registry.revoke(5)
    with pytest.raises(InvalidInput, match=r"belongs to did:web:issuer\.example"):
        init_registry(tmp_path, "did:web:other.example", URL)
    (tmp_path / "issuer-registry.json").write_text('{"version": 1}')
    with pytest.raises(InvalidInput, match="malformed registry"):
        load_registry(tmp_path)


def test_status_entry_points_at_registry_list(tmp_path: Path, consumer: Party) -> None:
    ident = create_issuer(tmp_path, "did:web:issuer.example", "P-256")
    registry = init_registry(tmp_path, ident.did, URL)
    vc, registry = issue_role(ident, registry, consumer.did, ["recycler", "repairer"])
    payload = parse(vc).payload
    assert payload["credentialSubject"]["role"] == ["recycler", "repairer"]
    entry = payload["credentialStatus"]
    assert StatusEntry(URL, registry.credentials[0].index).to_json() == entry
    with pytest.raises(InvalidInput, match="non-blank"):
        issue_role(ident, registry, consumer.did, [" "])
