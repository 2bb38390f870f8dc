"""A scripted Tractus-X EDC 0.13 peer on loopback: its DID document, key, credential service, DSP endpoints of both
roles and a data plane, speaking the messages and tokens in the shapes of tests/data/wire/tractusx-edc-0.13.

What it checks of our node is what Tractus-X EDC 0.13 (on EDC 0.17) checks: a DSP request's token must be `Bearer`
and a self-issued ID token whose key is found by its `kid` in the caller's DID document, with iss = sub, aud = this
peer's DID, unexpired, and a `token` claim; the caller's credential service is asked for a presentation with
Tractus-X's scopes, the presentation must be signed by the caller, addressed to this peer, hold a credential of
each type asked for, each signed by the issuer this peer trusts. An agreement must name the provider as assigner,
carry a readable timestamp and the rules of the offer. Messages are built from the fixture files and nothing else.
"""

from __future__ import annotations

import asyncio
import base64
import json
import re
import time
import uuid
import warnings
from collections import defaultdict
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

import aiohttp
from aiohttp import web
from joserfc import jws
from joserfc.errors import JoseError, SecurityWarning
from joserfc.jwk import ECKey, OKPKey

from connector import jsonld
from tests.conftest import data_path, free_port

WIRE = ("wire", "tractusx-edc-0.13")
EDC_NS = "https://w3id.org/edc/v0.0.1/ns/"
TX_AUTH_NS = "https://w3id.org/tractusx/auth/"
ODRL = "http://www.w3.org/ns/odrl/2/"
DSPACE = "https://w3id.org/dspace/2025/1/"
TX_SCOPES = [
    "org.eclipse.tractusx.vc.type:MembershipCredential:read",
    "org.eclipse.tractusx.vc.type:DataExchangeGovernanceCredential:read",
    "org.eclipse.tractusx.vc.type:BpnCredential:read",
]
MEMBERSHIP_SCOPE = TX_SCOPES[:1]
_REGISTRY = jws.JWSRegistry(algorithms=["ES256", "EdDSA", "Ed25519"], strict_check_header=False)
_REGISTRY.max_header_length = 4096
_REGISTRY.max_payload_length = 512 * 1024


def fixture(name: str, **values: Any) -> Any:
    """Return a wire fixture with its `${name}` placeholders filled (a whole-string placeholder takes any value)."""
    raw = json.loads(data_path(*WIRE, name).read_text(encoding="utf-8"))

    def fill(value: Any) -> Any:
        if isinstance(value, dict):
            return {k: fill(v) for k, v in value.items()}
        if isinstance(value, list):
            return [fill(v) for v in value]
        if isinstance(value, str) and "${" in value:
            whole = value[2:-1] if value.startswith("${") and value.endswith("}") else None
            if whole is not None and whole in values:
                return values[whole]
            for key, given in values.items():
                value = value.replace("${" + key + "}", str(given))
            assert "${" not in value, f"{name}: no value for {value}"
        return value

    return fill(raw)


def _b64_claims(token: str) -> dict[str, Any]:
    part = token.split(".")[1]
    return dict(json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))))


def edc_property(properties: Mapping[str, Any], key: str) -> Any:
    """Read a DataAddress property as EDC's `DataAddress.getProperty` does: EDC-namespaced key first, then as given."""
    return properties.get(EDC_NS + key, properties.get(key))


class Refused(Exception):
    """A check Tractus-X would fail; answered 401 or 400 with the reason."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status


class TractusXPeer:
    """The scripted peer. `received` holds every DSP message it got, by @type; `failures` every check that failed."""

    def __init__(self, http: aiohttp.ClientSession, trusted_issuer: str) -> None:
        self.http = http
        self.trusted_issuer = trusted_issuer
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.did = f"did:web:127.0.0.1%3A{self.port}"
        self.kid = f"{self.did}#key-1"
        self.key = ECKey.generate_key("P-256", private=True)
        self.dsp_url = self.base + "/api/v1/dsp/2025-1"
        self.public_url = self.base + "/api/public"
        self.credentials: list[str] = []  # VC-JWTs this peer holds
        self.received: dict[str, list[dict[str, Any]]] = defaultdict(list)
        self.failures: list[str] = []
        self.presentation_queries: list[tuple[str, list[str]]] = []
        self.data_requests: list[tuple[str, str]] = []
        self._events: dict[str, asyncio.Event] = defaultdict(asyncio.Event)
        self._runner: web.AppRunner | None = None
        self._tasks: set[asyncio.Task[Any]] = set()
        # Provider role: the offers it publishes (offer id -> (asset id, offer rules)), its processes and tokens.
        self.offers: dict[str, tuple[str, dict[str, Any]]] = {}
        self.negotiations: dict[str, dict[str, Any]] = {}
        self.transfers: dict[str, dict[str, Any]] = {}
        self.access_tokens: dict[str, str] = {}  # token -> provider pid
        self.refresh_tokens: dict[str, str] = {}
        self.refuse_with: str | None = None  # a reason: the next contract requests are terminated with it

    # Lifecycle.

    async def start(self) -> None:
        app = web.Application()
        app.router.add_get("/.well-known/did.json", self._did_document)
        app.router.add_post("/api/credentials/presentations/query", self._presentation_query)
        app.router.add_post("/api/v1/dsp/2025-1/{tail:.*}", self._dsp)
        app.router.add_get("/api/public/{tail:.*}", self._data)
        app.router.add_post("/api/public/token", self._refresh)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", self.port).start()

    async def stop(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        if self._runner is not None:
            await self._runner.cleanup()

    def _later(self, coro: Any) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def wait_for(self, message_type: str, count: int = 1) -> dict[str, Any]:
        """Wait until `count` messages of a type arrived (or a check failed); return the last one."""
        async with asyncio.timeout(20):
            while len(self.received[message_type]) < count:
                assert not self.failures, self.failures
                for ended in ("ContractNegotiationTerminationMessage", "TransferTerminationMessage"):
                    assert ended == message_type or not self.received[ended], self.received[ended]
                self._events[message_type].clear()
                await self._events[message_type].wait()
        assert not self.failures, self.failures
        return self.received[message_type][count - 1]

    def _got(self, message_type: str, body: dict[str, Any]) -> None:
        self.received[message_type].append(body)
        for event in self._events.values():
            event.set()

    def _fail(self, reason: str) -> None:
        self.failures.append(reason)
        for event in self._events.values():
            event.set()

    # Identity: the DID document IdentityHub publishes, and tokens as EDC's embedded STS signs them.

    def _public_jwk(self) -> dict[str, Any]:
        jwk = self.key.as_dict(private=False)
        return {"kty": jwk["kty"], "crv": jwk["crv"], "kid": self.kid, "x": jwk["x"], "y": jwk["y"]}

    async def _did_document(self, request: web.Request) -> web.Response:
        document = fixture(
            "did-document.json",
            did=self.did,
            credentialService=self.base + "/api/credentials",
            dspUrl=self.dsp_url,
            publicKeyJwk=self._public_jwk(),
        )
        return web.json_response(document)

    def _sign(self, template: str, **values: Any) -> str:
        now = int(time.time())
        shape = fixture(template, did=self.did, now=now, expiry=now + 300, uuid=str(uuid.uuid4()), **values)
        payload = json.dumps(shape["claims"], separators=(",", ":"))
        return jws.serialize_compact(shape["header"], payload, self.key, algorithms=["ES256"])

    def token_for(self, audience: str, scopes: list[str] = TX_SCOPES) -> str:
        """Return the Authorization value of a DSP request to `audience` (EDC's DcpIdentityService form)."""
        access = self._sign("sts-access-token.json", audience=audience, scopes=" ".join(scopes))
        return "Bearer " + self._sign("self-issued-id-token.json", audience=audience, accessToken=access)

    async def _resolve(self, did: str) -> dict[str, Any]:
        assert did.startswith("did:web:127.0.0.1%3A"), did
        parts = did.removeprefix("did:web:").split(":")
        host = parts[0].replace("%3A", ":")
        path = "/".join(parts[1:]) + "/did.json" if len(parts) > 1 else ".well-known/did.json"
        async with self.http.get(f"http://{host}/{path}") as response:
            assert response.status == 200, did
            return dict(await response.json(content_type=None))

    async def _verify_jwt(self, token: str, expected_iss: str | None = None) -> dict[str, Any]:
        """Verify a JWT's signature with the key its kid names in its issuer's DID document (EDC resolves the kid)."""
        claims = _b64_claims(token)
        issuer = claims.get("iss")
        if not isinstance(issuer, str) or (expected_iss is not None and issuer != expected_iss):
            raise Refused(401, f"issuer {issuer!r} is not {expected_iss!r}")
        header = jws.extract_compact(token.encode(), registry=_REGISTRY).headers()
        kid = header.get("kid")
        document = await self._resolve(issuer)
        full = kid if isinstance(kid, str) and kid.startswith("did:") else f"{issuer}#{str(kid).lstrip('#')}"
        method = next((m for m in document.get("verificationMethod", []) if m.get("id") == full), None)
        if method is None:
            raise Refused(401, f"no verification method {full} in the DID document of {issuer}")
        jwk = method["publicKeyJwk"]
        key = OKPKey.import_key(jwk) if jwk["kty"] == "OKP" else ECKey.import_key(jwk)
        try:
            with warnings.catch_warnings():
                # Our node signs with "EdDSA", which joserfc flags as deprecated (RFC 9864); EDC reads it.
                warnings.simplefilter("ignore", SecurityWarning)
                jws.deserialize_compact(token, key, algorithms=["ES256", "EdDSA", "Ed25519"], registry=_REGISTRY)
        except (JoseError, ValueError) as exc:  # any verification failure is a refusal
            raise Refused(401, f"signature of {issuer} does not verify: {type(exc).__name__}") from None
        if not isinstance(claims.get("exp"), int) or claims["exp"] < time.time() - 5:
            raise Refused(401, "token expired or without exp")
        return claims

    async def authenticate(self, authorization: str | None, scopes: list[str]) -> str:
        """Check a caller as Tractus-X EDC does and return its DID; raise Refused naming the failed check."""
        if not authorization or not authorization.startswith("Bearer "):
            raise Refused(401, "Token is not a Bearer token")
        token = authorization.removeprefix("Bearer ").strip()
        claims = await self._verify_jwt(token)
        if claims.get("sub") != claims.get("iss"):
            raise Refused(401, "iss and sub differ")
        audience = claims.get("aud")
        if audience != self.did and not (isinstance(audience, list) and self.did in audience):
            raise Refused(401, f"aud {audience!r} is not {self.did}")
        for claim in ("jti", "iat", "token"):
            if not claims.get(claim):
                raise Refused(401, f"claim {claim} is missing")
        caller = str(claims["iss"])
        document = await self._resolve(caller)
        service = next((s for s in document.get("service", []) if s.get("type") == "CredentialService"), None)
        if service is None:
            raise Refused(401, f"{caller} has no CredentialService")
        query = fixture("presentation-query-message.json")
        query["scope"] = scopes
        own = self._sign("self-issued-id-token.json", audience=caller, accessToken=claims["token"])
        async with self.http.post(
            str(service["serviceEndpoint"]).rstrip("/") + "/presentations/query",
            json=query,
            headers={"Authorization": "Bearer " + own},
        ) as response:
            body = await response.json(content_type=None)
            if response.status != 200:
                raise Refused(401, f"Presentation Query failed: HTTP {response.status}, message: {body}")
        await self._check_presentations(caller, body, scopes)
        return caller

    async def _check_presentations(self, caller: str, body: Any, scopes: list[str]) -> None:
        presentations = body.get("presentation") if isinstance(body, dict) else None
        if not isinstance(presentations, list) or not presentations:
            raise Refused(401, f"no presentation in {body}")
        types: set[str] = set()
        count = 0
        for vp in presentations:
            if not isinstance(vp, str):
                raise Refused(401, "only JWT presentations are expected from a JWT wallet")
            claims = await self._verify_jwt(vp, expected_iss=caller)
            if claims.get("aud") != self.did and self.did not in (claims.get("aud") or []):
                raise Refused(401, f"presentation addressed to {claims.get('aud')!r}")
            holder = claims.get("vp", {}).get("holder", claims["iss"])
            if holder != caller:
                raise Refused(401, f"Returned presentations contains invalid issuer. Expected {caller} found {holder}")
            for vc in claims.get("vp", {}).get("verifiableCredential", []):
                vc_claims = await self._verify_jwt(vc, expected_iss=self.trusted_issuer)
                credential = vc_claims.get("vc", vc_claims)
                subject = credential.get("credentialSubject", {})
                if vc_claims.get("sub", subject.get("id")) != caller:
                    raise Refused(401, "a credential of someone else")
                types |= set(credential.get("type", []))
                count += 1
        if len(scopes) > count:
            raise Refused(401, "Number of requested credentials does not match the number of returned credentials")
        if not all(any(t in scope for t in types) for scope in scopes):
            raise Refused(401, "Not all requested credentials are present in the presentation response")

    async def _presentation_query(self, request: web.Request) -> web.Response:
        """This peer's credential service (IdentityHub's presentation API), answering a verifier such as our node."""
        try:
            token = (request.headers.get("Authorization") or "").removeprefix("Bearer ").strip()
            claims = await self._verify_jwt(token)
            verifier = str(claims["iss"])
            if claims.get("aud") != self.did:
                raise Refused(401, "the verifier's token is not addressed to this holder")
            access = _b64_claims(str(claims.get("token")))
            if access.get("iss") != self.did or access.get("sub") != verifier:
                raise Refused(401, "the access token was not issued by this holder to this verifier")
            await self._verify_jwt(str(claims["token"]), expected_iss=self.did)
            body = await request.json()
            if body.get("type", body.get("@type")) != "PresentationQueryMessage":
                raise Refused(400, f"not a PresentationQueryMessage: {body}")
            scopes = [str(s) for s in body.get("scope", [])]
            self.presentation_queries.append((verifier, scopes))
            wanted = {s.split(":")[1] for s in scopes}
            chosen = [c for c in self.credentials if set(_b64_claims(c)["vc"]["type"]) & wanted]
            vp = self._sign_presentation(verifier, chosen)
            return web.json_response(fixture("presentation-response-message.json", vpJwt=vp))
        except Refused as exc:
            self._fail(f"credential service: {exc}")
            return web.json_response({"error": str(exc)}, status=exc.status)

    def _sign_presentation(self, verifier: str, credentials: list[str]) -> str:
        now = int(time.time())
        shape = fixture(
            "verifiable-presentation-jwt.json",
            did=self.did,
            verifier=verifier,
            now=now,
            expiry=now + 60,
            uuid=str(uuid.uuid4()),
            vcJwt="",
        )
        shape["claims"]["vp"]["verifiableCredential"] = credentials
        payload = json.dumps(shape["claims"], separators=(",", ":"))
        return jws.serialize_compact(shape["header"], payload, self.key, algorithms=["ES256"])

    # DSP, both roles, on one protocol URL (as a Tractus-X connector has).

    async def _dsp(self, request: web.Request) -> web.Response:
        tail = request.match_info["tail"]
        try:
            body = await request.json()
            kind = str(body.get("@type"))
            provider_side = tail in ("catalog/request", "negotiations/request", "transfers/request") or tail.endswith(
                "/agreement/verification"
            )
            caller = await self.authenticate(
                request.headers.get("Authorization"), TX_SCOPES if provider_side else MEMBERSHIP_SCOPE
            )
            body["_caller"] = caller
            body["_path"] = tail
            self._got(kind, body)
            return await self._answer(tail, kind, body)
        except Refused as exc:
            self._fail(f"{tail}: {exc}")
            return web.json_response(
                {
                    "@context": fixture("contract-negotiation-ack.json", providerPid="", consumerPid="")["@context"],
                    "@type": "ContractNegotiationError",
                    "code": str(exc.status),
                    "reason": [str(exc)],
                },
                status=exc.status,
            )
        except AssertionError as exc:
            self._fail(f"{tail}: {exc}")
            return web.json_response({"reason": [str(exc)]}, status=400)

    async def _answer(self, tail: str, kind: str, body: dict[str, Any]) -> web.Response:
        empty = web.Response(status=200, content_type="application/json")  # EDC: 200, empty body
        if tail == "catalog/request":
            return web.json_response(self._catalog(body["_caller"]))
        if tail == "negotiations/request":
            return self._on_contract_request(body)
        if tail.endswith("/agreement/verification"):
            negotiation = self.negotiations[tail.split("/")[1]]
            self._later(self._send_event(negotiation))
            return empty
        if tail == "transfers/request":
            return self._on_transfer_request(body)
        if tail.endswith("/agreement"):
            self.check_agreement(body)
            return empty
        return empty

    # Consumer role: what the Tractus-X consumer checks of a received agreement (EDC's ContractValidationService).

    expected_offer: dict[str, Any] | None = None
    provider_identity: str | None = None

    def check_agreement(self, body: dict[str, Any]) -> None:
        agreement = body["agreement"]
        assert agreement.get("assigner") == body["_caller"] == self.provider_identity, agreement.get("assigner")
        datetime.fromisoformat(str(agreement["timestamp"]).replace("Z", "+00:00"))
        assert self.expected_offer is not None
        assert rules(body, "agreement") == self.expected_offer, (rules(body, "agreement"), self.expected_offer)

    # Provider role.

    def publish(self, offer_id: str, asset_id: str, offer_rules: dict[str, Any]) -> None:
        self.offers[offer_id] = (asset_id, offer_rules)

    def _catalog(self, caller: str) -> dict[str, Any]:
        context = fixture("contract-negotiation-ack.json", providerPid="", consumerPid="")["@context"]
        datasets = [
            {
                "@id": asset_id,
                "@type": "Dataset",
                "hasPolicy": {"@id": offer_id, "@type": "Offer", **offer_rules},
                "distribution": [
                    {
                        "@type": "Distribution",
                        "format": "HttpData-PULL",
                        "accessService": {
                            "@id": "dsp",
                            "@type": "DataService",
                            "endpointDescription": "dspace:connector",
                            "endpointURL": self.dsp_url,
                        },
                    }
                ],
                "id": asset_id,
            }
            for offer_id, (asset_id, offer_rules) in self.offers.items()
        ]
        return {
            "@id": str(uuid.uuid4()),
            "@type": "Catalog",
            "participantId": self.did,
            "dataset": datasets[0] if len(datasets) == 1 else datasets,
            "service": [
                {
                    "@id": "dsp",
                    "@type": "DataService",
                    "endpointDescription": "dspace:connector",
                    "endpointURL": self.dsp_url,
                }
            ],
            "@context": context,
        }

    def _on_contract_request(self, body: dict[str, Any]) -> web.Response:
        offer = body["offer"]
        assert offer.get("@id") in self.offers, f"unknown offer {offer.get('@id')}"
        assert offer.get("target"), "offer.target is missing"
        assert isinstance(body.get("callbackAddress"), str)
        provider_pid = str(uuid.uuid4())
        negotiation = {
            "providerPid": provider_pid,
            "consumerPid": body["consumerPid"],
            "callback": body["callbackAddress"].rstrip("/"),
            "consumer": body["_caller"],
            "asset": self.offers[offer["@id"]][0],
            "agreementId": str(uuid.uuid4()),
        }
        self.negotiations[provider_pid] = negotiation
        if self.refuse_with is not None:
            self._later(self._send_termination(negotiation, self.refuse_with))
        else:
            self._later(self._send_agreement(negotiation))
        ack = fixture("contract-negotiation-ack.json", providerPid=provider_pid, consumerPid=body["consumerPid"])
        return web.json_response(ack)

    async def _post(self, url: str, body: dict[str, Any], audience: str) -> None:
        await asyncio.sleep(0.05)  # after the acknowledgement, as EDC's state machine sends
        async with self.http.post(url, json=body, headers={"Authorization": self.token_for(audience)}) as response:
            if response.status != 200:
                self._fail(f"{body['@type']} to {url} answered {response.status}: {await response.text()}")

    async def _send_agreement(self, negotiation: dict[str, Any]) -> None:
        offer_id = next(o for o, (a, _) in self.offers.items() if a == negotiation["asset"])
        message = fixture(
            "contract-agreement-message.json",
            messageId=str(uuid.uuid4()),
            providerPid=negotiation["providerPid"],
            consumerPid=negotiation["consumerPid"],
            agreementId=negotiation["agreementId"],
            consumerId=negotiation["consumer"],
            providerId=self.did,
            assetId=negotiation["asset"],
            timestamp=datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        )
        message["agreement"].update(self.offers[offer_id][1])
        url = f"{negotiation['callback']}/negotiations/{negotiation['consumerPid']}/agreement"
        await self._post(url, message, negotiation["consumer"])

    async def _send_termination(self, negotiation: dict[str, Any], reason: str) -> None:
        message = fixture(
            "contract-negotiation-termination-message.json",
            messageId=str(uuid.uuid4()),
            providerPid=negotiation["providerPid"],
            consumerPid=negotiation["consumerPid"],
            code="400",
            reason=reason,
        )
        url = f"{negotiation['callback']}/negotiations/{negotiation['consumerPid']}/termination"
        await self._post(url, message, negotiation["consumer"])

    async def terminate_transfer(self, provider_pid: str, reason: str) -> None:
        """Terminate a transfer as a Tractus-X provider does (its data plane stops serving it)."""
        transfer = self.transfers[provider_pid]
        for token in [t for t, pid in self.access_tokens.items() if pid == provider_pid]:
            del self.access_tokens[token]
        message = fixture(
            "transfer-termination-message.json",
            messageId=str(uuid.uuid4()),
            providerPid=provider_pid,
            consumerPid=transfer["consumerPid"],
            code="Terminated",
            reason=reason,
        )
        await self._post(
            f"{transfer['callback']}/transfers/{transfer['consumerPid']}/termination", message, transfer["consumer"]
        )

    async def _send_event(self, negotiation: dict[str, Any]) -> None:
        message = fixture(
            "contract-negotiation-event-message.json",
            messageId=str(uuid.uuid4()),
            providerPid=negotiation["providerPid"],
            consumerPid=negotiation["consumerPid"],
        )
        url = f"{negotiation['callback']}/negotiations/{negotiation['consumerPid']}/events"
        await self._post(url, message, negotiation["consumer"])

    def _on_transfer_request(self, body: dict[str, Any]) -> web.Response:
        agreement = next((n for n in self.negotiations.values() if n["agreementId"] == body["agreementId"]), None)
        assert agreement is not None, f"unknown agreement {body['agreementId']}"
        assert body.get("format") == "HttpData-PULL", body.get("format")
        provider_pid = str(uuid.uuid4())
        transfer = {
            "providerPid": provider_pid,
            "consumerPid": body["consumerPid"],
            "callback": body["callbackAddress"].rstrip("/"),
            "consumer": body["_caller"],
        }
        self.transfers[provider_pid] = transfer
        self._later(self._send_start(transfer))
        ack = fixture("transfer-process-ack.json", providerPid=provider_pid, consumerPid=body["consumerPid"])
        return web.json_response(ack)

    def _issue_data_tokens(self, transfer: dict[str, Any]) -> tuple[str, str]:
        access, refresh = "tx-access-" + uuid.uuid4().hex, "tx-refresh-" + uuid.uuid4().hex
        self.access_tokens[access] = transfer["providerPid"]
        self.refresh_tokens[refresh] = transfer["providerPid"]
        return access, refresh

    async def _send_start(self, transfer: dict[str, Any]) -> None:
        access, refresh = self._issue_data_tokens(transfer)
        message = fixture(
            "transfer-start-message.json",
            messageId=str(uuid.uuid4()),
            providerPid=transfer["providerPid"],
            consumerPid=transfer["consumerPid"],
            endpoint=self.public_url,
            accessToken=access,
            consumerId=transfer["consumer"],
            refreshToken=refresh,
            refreshEndpoint=self.public_url + "/token",
            providerId=self.did,
        )
        url = f"{transfer['callback']}/transfers/{transfer['consumerPid']}/start"
        await self._post(url, message, transfer["consumer"])

    async def _data(self, request: web.Request) -> web.Response:
        """The provider data plane: the token of the EDR, as sent (Tractus-X clients send it without `Bearer`)."""
        token = request.headers.get("Authorization", "")
        if token not in self.access_tokens:
            return web.json_response({"errors": ["Unauthorized"]}, status=401)
        self.data_requests.append((request.path_qs, token))
        return web.json_response({"batteryId": request.match_info["tail"], "from": "tractus-x provider"})

    async def _refresh(self, request: web.Request) -> web.Response:
        """The Tractus-X refresh token grant: a self-issued token for this provider wrapping the access token."""
        try:
            authorization = request.headers.get("Authorization", "")
            if not authorization.startswith("Bearer "):
                raise Refused(401, "the refresh request carries no Bearer token")
            claims = await self._verify_jwt(authorization.removeprefix("Bearer "))
            if claims.get("aud") != self.did or claims.get("iss") != claims.get("sub"):
                raise Refused(401, f"the refresh proof is addressed to {claims.get('aud')!r}")
            form = await request.post()
            grant = form.get("grant_type") or request.query.get("grant_type")
            refresh = form.get("refresh_token") or request.query.get("refresh_token")
            if grant != "refresh_token" or refresh not in self.refresh_tokens:
                raise Refused(400, "invalid grant")
            pid = self.refresh_tokens.pop(str(refresh))
            if self.access_tokens.get(str(claims.get("token"))) != pid:
                raise Refused(401, "the proof's token is not this transfer's access token")
            access, new_refresh = self._issue_data_tokens(self.transfers[pid])
            self._got("refresh", {"caller": claims["iss"]})
            return web.json_response(
                {"access_token": access, "refresh_token": new_refresh, "expires_in": 300, "token_type": "bearer"}
            )
        except Refused as exc:
            self._fail(f"refresh: {exc}")
            return web.json_response({"error": str(exc)}, status=exc.status)

    # Consumer role: messages this peer sends to a provider (our node).

    async def discover(self, root: str) -> str:
        """Find a connector's DSP 2025-1 address as Tractus-X's connector discovery does (`/dspversionparams`).

        GET `<root>/.well-known/dspace-version`, take the `protocolVersions` entry of version `2025-1` that has a
        `path`, and join root and path with surrounding slashes removed.
        """
        async with self.http.get(root.rstrip("/") + "/.well-known/dspace-version") as response:
            assert response.status == 200, await response.text()
            versions = (await response.json(content_type=None)).get("protocolVersions")
        assert isinstance(versions, list), versions
        found = next(v for v in versions if v.get("version") == "2025-1" and v.get("path") is not None)
        return root.strip("/") + "/" + str(found["path"]).strip("/")

    async def send(self, url: str, message: dict[str, Any], audience: str) -> tuple[int, Any]:
        """POST a DSP message as a Tractus-X consumer; return (status, parsed body or None)."""
        async with self.http.post(url, json=message, headers={"Authorization": self.token_for(audience)}) as response:
            text = await response.text()
            return response.status, json.loads(text) if text else None


def rules(message: dict[str, Any], field: str) -> dict[str, Any]:
    """Return the rules of a policy in a DSP message as (left operand IRI, operator IRI, right operand) sets.

    The message is read in its own @context (what a JSON-LD processor such as EDC's Titanium does); a single
    right operand value and a one-element list are the same, as EDC's constraint reader makes them.
    """
    nodes = [n for n in jsonld.expand_peer_document(message) if isinstance(n, dict)]
    policy = next(p for n in nodes for p in jsonld.values(n, DSPACE + field) if isinstance(p, dict))

    def constraints(node: Mapping[str, Any]) -> list[Any]:
        out: list[Any] = []
        for c in jsonld.values(node, ODRL + "constraint"):
            logical = jsonld.values(c, ODRL + "and")
            if logical:
                out.append(("and", frozenset(map(_atomic, logical))))
            else:
                out.append(_atomic(c))
        return sorted(out, key=repr)

    def _rules(kind: str) -> list[Any]:
        return sorted(
            (
                (jsonld.values(r, ODRL + "action")[0].get("@id"), tuple(constraints(r)))
                for r in jsonld.values(policy, ODRL + kind)
            ),
            key=repr,
        )

    return {kind: _rules(kind) for kind in ("permission", "prohibition", "obligation")}


# How EDC 0.17 writes a right operand of several values once it has stored it (tractusx-edc issue #3043).
_STORED = re.compile(r"\{@value=\{chars=(.*?), string=\1, valueType=STRING\}\}")


def stored_values(values: list[str]) -> str:
    """Return EDC 0.17's rendering of a stored multi-valued right operand (what its messages carry)."""
    return "[" + ", ".join(f"{{@value={{chars={v}, string={v}, valueType=STRING}}}}" for v in values) + "]"


def _atomic(c: Mapping[str, Any]) -> tuple[str, str, tuple[str, ...]]:
    left = jsonld.values(c, ODRL + "leftOperand")[0]
    operator = jsonld.values(c, ODRL + "operator")[0]
    right = [str(v.get("@value", v.get("@id"))) for v in jsonld.values(c, ODRL + "rightOperand")]
    if len(right) == 1 and _STORED.search(right[0]):
        right = _STORED.findall(right[0])  # EDC compares the values it stored, not their rendering
    return (str(left.get("@id", left)), str(operator.get("@id", operator)), tuple(sorted(right)))
