"""Real nodes on loopback: identity (DCP), credentials from an issuer, and catalogs filtered by access policy."""

from __future__ import annotations

import base64
import json
import logging
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from connector.app import Node
from connector.identity import issuer
from connector.services.identity import TOKEN_LIFETIME
from tests import dsp_schemas
from tests.conftest import API_KEY, EDC_CONTEXT, ODRL_CONTEXT, Management, free_port

BPC = "https://w3id.org/battery-passport-connector/ns/"
DSP_CONTEXT = "https://w3id.org/dspace/2025/1/context.jsonld"


async def _provider(node_factory: Any, tmp_path: Path) -> tuple[Node, Path]:
    """Start a provider that is also the dataspace's credential issuer."""
    port = free_port()
    data_dir = tmp_path / "provider"
    issuer_did = f"did:web:127.0.0.1%3A{port}:issuer"
    identity = issuer.create_issuer(data_dir / "issuer", issuer_did)
    issuer.init_registry(data_dir / "issuer", identity.did, f"http://127.0.0.1:{port}/issuer/status")
    node = await node_factory(
        api_key=API_KEY,
        protocol_port=port,
        data_dir=data_dir,
        trusted_issuers=issuer_did,
        claims_cache_seconds=0,
    )
    return node, data_dir / "issuer"


def _grant_role(issuer_dir: Path, subject: str, role: str) -> tuple[str, str]:
    registry = issuer.load_registry(issuer_dir)
    identity = issuer.create_issuer(issuer_dir, registry.did)
    now = datetime.now(UTC)
    jwt, registry = issuer.issue_role(
        identity, registry, subject, role, valid_from=now, valid_until=now + timedelta(days=1)
    )
    issuer.save_registry(issuer_dir, registry)
    return jwt, registry.credentials[-1].id


async def _publish(management: Management) -> None:
    for model in ("M0", "M1"):
        for i in range(3):
            body = {
                "@context": EDC_CONTEXT,
                "@id": f"bat-{model}-{i}",
                "properties": {"name": f"Battery passports {model} #{i}", BPC + "batteryModel": model},
                "dataAddress": {"type": "BatteryPassport", "batteryModel": model},
            }
            assert (await management.call("POST", "/management/v3/assets", body))[0] == 200
    recyclers = [
        {"action": "use", "constraint": [{"leftOperand": BPC + "role", "operator": "isA", "rightOperand": "recycler"}]}
    ]
    for policy_id, permissions in (("recyclers", recyclers), ("open", [])):
        body = {
            "@context": EDC_CONTEXT,
            "@id": policy_id,
            "policy": {"@context": ODRL_CONTEXT, "@type": "Set", "permission": permissions},
        }
        assert (await management.call("POST", "/management/v3/policydefinitions", body))[0] == 200
    for cd, access, model in (("cd-recyclers", "recyclers", "M0"), ("cd-public", "open", "M1")):
        body = {
            "@context": EDC_CONTEXT,
            "@id": cd,
            "accessPolicyId": access,
            "contractPolicyId": "open",
            "assetsSelector": [{"operandLeft": BPC + "batteryModel", "operator": "=", "operandRight": model}],
        }
        assert (await management.call("POST", "/management/v3/contractdefinitions", body))[0] == 200


def _dataset_ids(catalog: dict[str, Any]) -> list[str]:
    datasets = catalog.get("dcat:dataset", [])
    datasets = datasets if isinstance(datasets, list) else [datasets]
    return sorted(d["@id"] for d in datasets)


async def _request_catalog(client: Management, provider: Node, with_id: bool = True) -> tuple[int, Any]:
    body: dict[str, Any] = {
        "@context": EDC_CONTEXT,
        "@type": "CatalogRequest",
        "counterPartyAddress": provider.settings.dsp_base_url,
        "protocol": "dataspace-protocol-http:2025-1",
    }
    if with_id:
        body["counterPartyId"] = provider.settings.effective_did
    return await client.call("POST", "/management/v3/catalog/request", body)


async def test_consumers_see_exactly_what_their_credentials_allow(
    node_factory: Any, http: aiohttp.ClientSession, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    provider, issuer_dir = await _provider(node_factory, tmp_path)
    await _publish(Management(http, provider))
    recycler = await node_factory(api_key=API_KEY, trusted_issuers=issuer.load_registry(issuer_dir).did)
    stranger = await node_factory(api_key=API_KEY)
    recycler_api, stranger_api = Management(http, recycler), Management(http, stranger)

    jwt, credential_id = _grant_role(issuer_dir, recycler.settings.effective_did, "recycler")
    status, held = await recycler_api.call("POST", "/management/v1/credentials", {"credential": jwt})
    assert status == 200, held
    assert held["types"] == ["VerifiableCredential", "RoleCredential"] or "RoleCredential" in held["types"]

    status, seen = await _request_catalog(recycler_api, provider)
    assert status == 200, seen
    assert _dataset_ids(seen) == [f"bat-M0-{i}" for i in range(3)] + [f"bat-M1-{i}" for i in range(3)]
    assert seen["@type"] == "dcat:Catalog"
    assert seen["dspace:participantId"] == {"@id": provider.settings.effective_participant_id}
    dataset = seen["dcat:dataset"][0]
    assert dataset["odrl:hasPolicy"]["@type"] == "odrl:Offer"
    # As EDC's Management API shows them: the transfer type as a (relative) IRI, the service by its id.
    assert [d["dct:format"] for d in dataset["dcat:distribution"]] == [
        {"@id": "HttpData-PULL"},
        {"@id": "HttpData-PUSH"},
    ]
    assert dataset["dcat:distribution"][0]["dcat:accessService"].startswith("urn:uuid:")

    status, seen = await _request_catalog(stranger_api, provider, with_id=False)
    assert status == 200, seen
    assert _dataset_ids(seen) == [f"bat-M1-{i}" for i in range(3)]

    # A dataset the stranger may not see is not found on the provider: a 502 naming the peer's answer.
    body = {
        "@context": EDC_CONTEXT,
        "@id": "bat-M0-0",
        "counterPartyAddress": provider.settings.dsp_base_url,
        "counterPartyId": provider.settings.effective_did,
    }
    status, problem = await stranger_api.call("POST", "/management/v3/catalog/dataset/request", body)
    assert status == 502
    assert "404" in problem["detail"] and "bat-M0-0" in problem["detail"]
    status, dataset = await recycler_api.call("POST", "/management/v3/catalog/dataset/request", body)
    assert status == 200 and dataset["@id"] == "bat-M0-0"

    # Revoking the credential takes the recycler-only datasets away at the next request, and only them: the
    # recycler is still who it proved to be, and sees what anyone sees.
    registry = issuer.load_registry(issuer_dir)
    found = registry.find(credential_id)
    assert found is not None
    issuer.save_registry(issuer_dir, registry.revoke(found.index))
    caplog.set_level(logging.INFO, logger="connector.identity")
    status, seen = await _request_catalog(recycler_api, provider)
    assert status == 200, seen
    assert _dataset_ids(seen) == [f"bat-M1-{i}" for i in range(3)]
    status, problem = await recycler_api.call("POST", "/management/v3/catalog/dataset/request", body)
    assert status == 502 and "404" in problem["detail"]
    # One line per request (claims are not cached here), saying whose credential was refused and why.
    refusals = [r for r in caplog.records if r.getMessage().startswith("credential refused")]
    assert len(refusals) == 2
    for refused in refusals:
        assert refused.levelno == logging.WARNING
        assert getattr(refused, "reason", None) == "revoked" and credential_id in getattr(refused, "credential", "")
        assert getattr(refused, "participant", None) == recycler.settings.effective_did
    assert jwt not in caplog.text and jwt.split(".")[2] not in caplog.text


async def test_dsp_catalog_endpoint_refuses_bad_tokens_and_pages_with_links(
    node_factory: Any, http: aiohttp.ClientSession, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="connector.dsp")
    provider, _ = await _provider(node_factory, tmp_path)
    await _publish(Management(http, provider))
    consumer = await node_factory(api_key=API_KEY)
    url = provider.settings.dsp_base_url + "/catalog/request"
    message = {"@context": [DSP_CONTEXT], "@type": "CatalogRequestMessage"}

    async def ask(headers: dict[str, str], body: Any = message, target: str = url) -> tuple[int, Any, Any]:
        async with http.post(target, json=body, headers=headers) as response:
            return response.status, await response.json(content_type=None), response.headers.get("Link")

    status, error, _ = await ask({})
    assert status == 401 and error["@type"] == "CatalogError" and error["code"] == "401"
    dsp_schemas.validate(error, "catalog/catalog-error-schema.json")

    token = consumer.identity.token_for(provider.settings.effective_did)
    status, catalog, link = await ask({"Authorization": token})
    assert status == 200
    dsp_schemas.validate(catalog, "catalog/catalog-schema.json")
    assert [d["@id"] for d in catalog["dataset"]] == [f"bat-M1-{i}" for i in range(3)]
    assert link is None

    status, error, _ = await ask({"Authorization": token})
    assert status == 401 and "replay" in json.dumps(error["reason"]).lower()
    refusals = [r for r in caplog.records if r.getMessage() == "DSP request refused"]
    assert any(getattr(r, "reason", "") == "replayed" for r in refusals), [r.__dict__ for r in refusals]
    assert token.removeprefix("Bearer ") not in caplog.text

    wrong_audience = consumer.identity.token_for("did:web:someone-else.example")
    status, error, _ = await ask({"Authorization": wrong_audience})
    assert status == 401 and "audience" in json.dumps(error["reason"]).lower()

    tampered = token[:-4] + ("AAAA" if not token.endswith("AAAA") else "BBBB")
    status, error, _ = await ask({"Authorization": tampered})
    assert status == 401

    paged = {**message, "filter": [{"@type": "QuerySpec", "offset": 0, "limit": 2, "filterExpression": []}]}
    status, first, link = await ask(
        {"Authorization": consumer.identity.token_for(provider.settings.effective_did)}, paged
    )
    assert status == 200 and len(first["dataset"]) == 2
    assert link is not None and 'rel="next"' in link
    next_url = link.split(";")[0].strip("<> ")
    status, second, link = await ask(
        {"Authorization": consumer.identity.token_for(provider.settings.effective_did)}, message, next_url
    )
    assert status == 200 and [d["@id"] for d in second["dataset"]] == ["bat-M1-2"]
    assert link is not None and 'rel="previous"' in link and 'rel="next"' not in link

    status, error, _ = await ask(
        {"Authorization": consumer.identity.token_for(provider.settings.effective_did)},
        {**message, "filter": [{"q": "x"}]},
    )
    assert status == 400 and error["@type"] == "CatalogError"

    dataset_url = provider.settings.dsp_base_url + "/catalog/datasets/bat-M1-0"
    async with http.get(
        dataset_url, headers={"Authorization": consumer.identity.token_for(provider.settings.effective_did)}
    ) as response:
        assert response.status == 200
        dsp_schemas.validate(await response.json(), "catalog/dataset-schema.json")
    async with http.get(
        provider.settings.dsp_base_url + "/catalog/datasets/bat-M0-0",
        headers={"Authorization": consumer.identity.token_for(provider.settings.effective_did)},
    ) as response:
        assert response.status == 404
        assert (await response.json())["@type"] == "CatalogError"


async def test_did_document_and_credential_service_are_published(
    node_factory: Any, http: aiohttp.ClientSession
) -> None:
    node = await node_factory(api_key=API_KEY)
    async with http.get(node.protocol_url + "/.well-known/did.json") as response:
        document = await response.json()
    assert document["id"] == node.settings.effective_did
    services = {s["type"]: s["serviceEndpoint"] for s in document["service"]}
    assert services["CredentialService"] == node.settings.effective_public_url + "/api/credentials"
    method = document["verificationMethod"][0]
    assert "d" not in method["publicKeyJwk"]
    assert method["id"] in [m if isinstance(m, str) else m["id"] for m in document["capabilityInvocation"]]
    key_file = node.settings.data_dir / "node-key.jwk"
    assert key_file.stat().st_mode & 0o077 == 0
    # Without a token the credential service refuses.
    async with http.post(
        node.protocol_url + "/api/credentials/presentations/query",
        json={"type": "PresentationQueryMessage", "scope": []},
    ) as response:
        assert response.status == 401


# rdflib's own JSON-LD parser uses a class it deprecates.
@pytest.mark.filterwarnings("ignore:ConjunctiveGraph is deprecated:DeprecationWarning")
async def test_public_dcat_ap_catalog_by_content_negotiation(
    node_factory: Any, http: aiohttp.ClientSession, tmp_path: Path
) -> None:
    import rdflib

    provider, _ = await _provider(node_factory, tmp_path)
    await _publish(Management(http, provider))
    url = provider.settings.effective_public_url + "/catalog"
    graphs = {}
    for accept, content_type, fmt in (
        ("text/turtle", "text/turtle", "turtle"),
        ("application/ld+json", "application/ld+json", "json-ld"),
        ("application/rdf+xml;q=0.9, text/html;q=0.1", "application/rdf+xml", "xml"),
    ):
        async with http.get(url, headers={"Accept": accept}) as response:
            assert response.status == 200
            assert response.content_type == content_type
            assert response.headers["Vary"] == "Accept"
            graphs[fmt] = rdflib.Graph().parse(data=await response.read(), format=fmt)
    dcat = rdflib.Namespace("http://www.w3.org/ns/dcat#")
    datasets = set(graphs["turtle"].subjects(rdflib.RDF.type, dcat.Dataset))
    # Only the public datasets (open access policy), never the recyclers-only ones.
    identifiers = {str(o) for s in datasets for o in graphs["turtle"].objects(s, rdflib.DCTERMS.identifier)}
    assert identifiers == {"bat-M1-0", "bat-M1-1", "bat-M1-2"}
    assert len(graphs["turtle"]) == len(graphs["xml"])
    async with http.get(url, headers={"Accept": "image/png"}) as response:
        assert response.status == 406


def _claims_of(authorization: str) -> dict[str, Any]:
    token = authorization.removeprefix("Bearer ")
    payload = token.split(".")[1]
    return dict(json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4))))


async def test_a_provider_gets_one_access_token_for_half_its_lifetime_and_may_present_it_again(
    node_factory: Any, http: aiohttp.ClientSession
) -> None:
    consumer = await node_factory(api_key=API_KEY)
    provider = await node_factory(api_key=API_KEY)
    identity, audience = consumer.identity, provider.settings.effective_did
    first, second = _claims_of(identity.token_for(audience)), _claims_of(identity.token_for(audience))
    assert first["jti"] != second["jti"]  # every request's own token is fresh (and refused if replayed)
    assert first["token"] == second["token"]  # the access token for the credential service is the same
    assert _claims_of(identity.token_for(consumer.settings.effective_did))["token"] != first["token"]
    # The consumer's credential service answers the provider's queries presenting that one access token twice.
    url = consumer.settings.effective_public_url + "/api/credentials/presentations/query"
    query = {
        "@context": ["https://w3id.org/dspace-dcp/v1.0/dcp.jsonld"],
        "type": "PresentationQueryMessage",
        "scope": ["org.eclipse.tractusx.vc.type:MembershipCredential:read"],
    }
    for _ in range(2):
        bearer = provider.identity.self_issued(consumer.settings.effective_did, access_token=first["token"])
        async with http.post(url, json=query, headers={"Authorization": "Bearer " + bearer}) as response:
            assert response.status == 200, await response.text()
            assert (await response.json())["type"] == "PresentationResponseMessage"
    # Half its lifetime later, a new one.
    started = identity._clock()
    identity._clock = lambda: started + TOKEN_LIFETIME / 2 + 1
    renewed = _claims_of(identity.token_for(audience))["token"]
    assert renewed != first["token"]
    assert _claims_of(identity.token_for(audience))["token"] == renewed
