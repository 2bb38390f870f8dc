"""did:web identifiers and DID documents: URL mapping, building our document, parsing a peer's.

The mapping follows the did:web method specification: ``did:web:host%3Aport:path:seg`` is fetched from
``https://host:port/path/seg/did.json``; a DID without a path from ``https://host/.well-known/did.json``.
Nothing here does I/O: the transport fetches the document and hands it to ``parse_did_document``.
"""

from __future__ import annotations

import ipaddress
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Final
from urllib.parse import quote, unquote, urlsplit

from joserfc.errors import JoseError
from joserfc.jwk import ECKey, OKPKey

from connector.domain.addresses import is_loopback_address

from .errors import DidDocumentError, DidError
from .keys import NodeKey

DID_CONTEXT: Final = "https://www.w3.org/ns/did/v1"
JWS_2020_CONTEXT: Final = "https://w3id.org/security/suites/jws-2020/v1"
RELATIONSHIPS: Final = ("authentication", "assertionMethod", "capabilityInvocation", "capabilityDelegation")
# JsonWebKey2020 is what EDC writes; JsonWebKey is its successor in the VC JOSE/COSE specification.
JWK_METHOD_TYPES: Final = frozenset({"JsonWebKey2020", "JsonWebKey"})
CREDENTIAL_SERVICE: Final = "CredentialService"
DATA_SERVICE: Final = "DataService"
CATALOG_SERVICE: Final = "CatalogService"

MAX_DID_LENGTH: Final = 2048
MAX_DOCUMENT_BYTES: Final = 64 * 1024
MAX_METHODS: Final = 64
MAX_SERVICES: Final = 64

_HOST_LABEL: Final = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$")
_IDCHARS: Final = re.compile(r"^(?:[A-Za-z0-9._-]|%[0-9A-Fa-f]{2})+$")


def _check_host(host: str, did: str) -> None:
    if host.startswith("["):
        if not host.endswith("]") or not is_loopback_address(host):
            raise DidError(f"{did}: IP address hosts are not allowed (except loopback)")
        return
    try:
        ipaddress.ip_address(host)
    except ValueError:
        pass
    else:
        if not is_loopback_address(host):
            raise DidError(f"{did}: IP address hosts are not allowed (except loopback)")
        return
    labels = host.split(".")
    if len(host) > 253 or not all(_HOST_LABEL.match(label) for label in labels):
        raise DidError(f"{did}: {host!r} is not a valid host name")


def did_web_to_url(did: str, *, allow_http_loopback: bool = False) -> str:
    """Return the URL of the DID document of a did:web DID; raise DidError naming what is malformed.

    With ``allow_http_loopback`` a DID whose host is loopback maps to http (local test nodes); every other
    DID maps to https.
    """
    shown = did[:80] + ("..." if len(did) > 80 else "")
    if len(did) > MAX_DID_LENGTH:
        raise DidError(f"{shown}: DID is longer than {MAX_DID_LENGTH} characters")
    if not did.startswith("did:web:"):
        raise DidError(f"{shown}: not a did:web DID (must start with 'did:web:')")
    msid = did[len("did:web:") :]
    if any(c in msid for c in "#?/@"):
        raise DidError(f"{shown}: a did:web DID has no fragment, query, path, '/' or userinfo ('@')")
    segments = msid.split(":")
    if any(not s for s in segments):
        raise DidError(f"{shown}: empty segment (consecutive, leading or trailing ':')")
    if not all(_IDCHARS.match(s) for s in segments):
        raise DidError(f"{shown}: invalid character or percent-encoding")
    authority = segments[0]
    # Only the port colon and an IPv6 literal's brackets and colons may be percent-encoded in the host segment.
    host_port = re.sub("%5[Dd]", "]", re.sub("%5[Bb]", "[", re.sub("%3[Aa]", ":", authority)))
    if "%" in host_port:
        raise DidError(f"{shown}: the host may only percent-encode the port colon (%3A) or IPv6 brackets")
    host, port = host_port.lower(), None
    if host.startswith("["):
        end = host.find("]")
        if end < 0:
            raise DidError(f"{shown}: unterminated IPv6 literal")
        host, rest = host[: end + 1], host[end + 1 :]
        if rest:
            if not rest.startswith(":"):
                raise DidError(f"{shown}: junk after the IPv6 literal")
            port = rest[1:]
    elif ":" in host:
        host, port = host.split(":", 1)
    _check_host(host, shown)
    if port is not None and (not port.isdigit() or not 0 < int(port) < 65536 or port.startswith("0")):
        raise DidError(f"{shown}: invalid port {port!r}")
    path = segments[1:]
    for seg in path:
        decoded = unquote(seg)
        if decoded in {".", ".."} or "/" in decoded or "\\" in decoded or "\x00" in decoded:
            raise DidError(f"{shown}: path segment {seg!r} is not allowed")
    scheme = "http" if allow_http_loopback and is_loopback_address(host) else "https"
    netloc = f"{host}:{port}" if port else host
    suffix = "/".join([*path, "did.json"]) if path else ".well-known/did.json"
    return f"{scheme}://{netloc}/{suffix}"


def did_web_from_url(url: str) -> str:
    """Return the did:web DID for a base URL (port colon percent-encoded, path segments joined by ':')."""
    parts = urlsplit(url)
    if parts.scheme not in {"http", "https"} or not parts.hostname:
        raise DidError(f"{url}: not an http(s) URL with a host")
    if parts.username is not None or parts.password is not None or parts.query or parts.fragment:
        raise DidError(f"{url}: a did:web base URL has no userinfo, query or fragment")
    host = parts.hostname
    if ":" in host:
        host = f"[{host}]"
    if parts.port is not None:
        host = f"{host}:{parts.port}"
    segments = [quote(host, safe="[]")]
    segments += [quote(s, safe="") for s in parts.path.split("/") if s]
    did = "did:web:" + ":".join(segments)
    did_web_to_url(did, allow_http_loopback=True)  # refuse what the other direction would refuse
    return did


def key_id(did: str, key: NodeKey) -> str:
    """Return the DID URL that names ``key`` in the DID document of ``did`` (``did#kid``)."""
    return f"{did}#{key.kid}"


def build_did_document(
    did: str,
    key: NodeKey,
    dsp_url: str | None,
    credential_service_url: str | None = None,
    catalog_url: str | None = None,
) -> dict[str, Any]:
    """Return the DID document a node serves: its key as JsonWebKey2020, its DSP and Credential Service entries.

    An issuer that runs no connector passes ``dsp_url=None``. The key is referenced from authentication,
    assertionMethod and capabilityInvocation: DCP verifiers look for a self-issued token's key in
    capabilityInvocation, VC verifiers look for an issuer's key in assertionMethod.
    """
    did_web_to_url(did, allow_http_loopback=True)
    kid = key_id(did, key)
    services: list[dict[str, str]] = []
    if dsp_url is not None:
        services.append({"id": f"{did}#dsp", "type": DATA_SERVICE, "serviceEndpoint": dsp_url})
    if catalog_url is not None:
        services.append({"id": f"{did}#catalog", "type": CATALOG_SERVICE, "serviceEndpoint": catalog_url})
    if credential_service_url is not None:
        services.append(
            {"id": f"{did}#credential-service", "type": CREDENTIAL_SERVICE, "serviceEndpoint": credential_service_url}
        )
    return {
        "@context": [DID_CONTEXT, JWS_2020_CONTEXT],
        "id": did,
        "verificationMethod": [
            {"id": kid, "type": "JsonWebKey2020", "controller": did, "publicKeyJwk": key.public_jwk()}
        ],
        "authentication": [kid],
        "assertionMethod": [kid],
        "capabilityInvocation": [kid],
        "service": services,
    }


@dataclass(frozen=True, slots=True)
class VerificationKey:
    """A public key of a DID document, imported once (importing is the costly part of a verification)."""

    id: str
    controller: str
    key: OKPKey | ECKey


@dataclass(frozen=True, slots=True)
class Service:
    """A service entry of a DID document."""

    id: str
    type: str
    endpoint: str


@dataclass(frozen=True, slots=True)
class DidDocument:
    """A parsed DID document: its keys by absolute id, which keys each relationship references, its services."""

    id: str
    keys: Mapping[str, VerificationKey]
    relationships: Mapping[str, frozenset[str]]
    services: tuple[Service, ...] = ()
    raw: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}), compare=False, repr=False)

    def absolute(self, kid: str) -> str:
        """Return a key id as an absolute DID URL (``#frag`` and bare ``frag`` are relative to the document)."""
        if kid.startswith("#"):
            return self.id + kid
        if ":" not in kid:
            return f"{self.id}#{kid}"
        return kid

    def key(self, kid: str | None, relationship: str) -> VerificationKey | None:
        """Return the key ``kid`` if the document lists it under ``relationship``.

        Without a kid the document must hold exactly one key in that relationship (DCP's rule). A document that
        references no key from any verification relationship lets each of its verification methods stand for
        every one: EDC IdentityHub, the wallet of Tractus-X EDC, publishes its keys only under
        ``verificationMethod`` (with an empty ``authentication``), and EDC's verifiers resolve a ``kid`` there
        (decision 0018). A document that names keys for any relationship is held to what it names.
        """
        if any(self.relationships.values()):
            allowed = self.relationships.get(relationship, frozenset())
        else:
            allowed = frozenset(self.keys)
        if kid is None:
            if len(allowed) != 1:
                return None
            (only,) = allowed
            return self.keys.get(only)
        full = self.absolute(kid)
        return self.keys.get(full) if full in allowed else None

    def service(self, service_type: str) -> Service | None:
        """Return the first service of the given type."""
        return next((s for s in self.services if s.type == service_type), None)

    @property
    def credential_service_url(self) -> str | None:
        """Return the endpoint of the CredentialService entry (where DCP verifiers query presentations)."""
        s = self.service(CREDENTIAL_SERVICE)
        return s.endpoint if s else None


def _import_jwk(jwk: object, where: str) -> OKPKey | ECKey:
    if not isinstance(jwk, dict):
        raise DidDocumentError(f"{where}: publicKeyJwk is not an object")
    if "d" in jwk:
        raise DidDocumentError(f"{where}: publicKeyJwk holds a private key (member 'd'); refusing it")
    kty, crv = jwk.get("kty"), jwk.get("crv")
    try:
        if kty == "OKP" and crv == "Ed25519":
            return OKPKey.import_key(jwk)
        if kty == "EC" and crv == "P-256":
            return ECKey.import_key(jwk)
    except (JoseError, ValueError, TypeError) as exc:
        raise DidDocumentError(f"{where}: publicKeyJwk is invalid ({type(exc).__name__})") from None
    raise DidDocumentError(f"{where}: unsupported key {kty}/{crv}; only OKP/Ed25519 and EC/P-256 are accepted")


def parse_did_document(doc: Mapping[str, Any] | str | bytes, expected_did: str) -> DidDocument:
    """Validate a DID document fetched for ``expected_did`` and extract its keys and services.

    Verification methods of other types (e.g. Multikey) are skipped, not refused; a relationship that
    references an unknown method is refused, as are oversized documents and ids that do not match.
    """
    if isinstance(doc, str | bytes):
        if len(doc) > MAX_DOCUMENT_BYTES:
            raise DidDocumentError(f"DID document of {expected_did}: larger than {MAX_DOCUMENT_BYTES} bytes")
        try:
            doc = json.loads(doc)
        except (ValueError, UnicodeError):
            raise DidDocumentError(f"DID document of {expected_did}: not JSON") from None
    if not isinstance(doc, Mapping):
        raise DidDocumentError(f"DID document of {expected_did}: not a JSON object")
    if doc.get("id") != expected_did:
        raise DidDocumentError(
            f"DID document of {expected_did}: its id is {str(doc.get('id'))[:100]!r}, not the DID it was fetched for"
        )
    did = expected_did
    keys: dict[str, VerificationKey] = {}

    def absolute(ref: str) -> str:
        return did + ref if ref.startswith("#") else ref

    def add_method(method: object, where: str) -> str:
        if not isinstance(method, dict) or not isinstance(method.get("id"), str):
            raise DidDocumentError(f"DID document of {did}: {where} is not a verification method with an id")
        mid = absolute(method["id"])
        if not mid.startswith(did + "#"):
            raise DidDocumentError(f"DID document of {did}: {where} id {mid[:100]!r} is not a fragment of the DID")
        controller = method.get("controller", did)
        if method.get("type") in JWK_METHOD_TYPES and "publicKeyJwk" in method:
            if mid in keys:
                raise DidDocumentError(f"DID document of {did}: duplicate verification method {mid!r}")
            if controller != did:
                raise DidDocumentError(f"DID document of {did}: {where} is controlled by another DID")
            keys[mid] = VerificationKey(mid, did, _import_jwk(method["publicKeyJwk"], f"DID document of {did}: {mid}"))
        return mid

    methods = doc.get("verificationMethod", [])
    if not isinstance(methods, list) or len(methods) > MAX_METHODS:
        raise DidDocumentError(f"DID document of {did}: verificationMethod must be a list of at most {MAX_METHODS}")
    known = {add_method(m, f"verificationMethod[{i}]") for i, m in enumerate(methods)}
    # Embedded methods first: a relationship may reference a method another relationship embeds.
    references: dict[str, list[tuple[int, str]]] = {}
    for rel in RELATIONSHIPS:
        entries = doc.get(rel, [])
        if not isinstance(entries, list) or len(entries) > MAX_METHODS:
            raise DidDocumentError(f"DID document of {did}: {rel} must be a list of at most {MAX_METHODS}")
        references[rel] = []
        for i, entry in enumerate(entries):
            if isinstance(entry, str):
                references[rel].append((i, absolute(entry)))
            else:
                embedded = add_method(entry, f"{rel}[{i}]")
                known.add(embedded)
                references[rel].append((i, embedded))
    relationships: dict[str, frozenset[str]] = {}
    for rel, refs in references.items():
        for i, ref in refs:
            if ref not in known:
                raise DidDocumentError(f"DID document of {did}: {rel}[{i}] references unknown method {ref[:100]!r}")
        relationships[rel] = frozenset(ref for _, ref in refs if ref in keys)
    raw_services = doc.get("service", [])
    if not isinstance(raw_services, list) or len(raw_services) > MAX_SERVICES:
        raise DidDocumentError(f"DID document of {did}: service must be a list of at most {MAX_SERVICES}")
    services: list[Service] = []
    for i, s in enumerate(raw_services):
        if not isinstance(s, dict) or not isinstance(s.get("id"), str) or not isinstance(s.get("type"), str):
            raise DidDocumentError(f"DID document of {did}: service[{i}] needs a string id and type")
        endpoint = s.get("serviceEndpoint")
        if isinstance(endpoint, str):
            services.append(Service(absolute(s["id"]), s["type"], endpoint))
        # Map- and list-valued endpoints are legal DID syntax but no DSP/DCP service uses them: skip them.
    return DidDocument(did, MappingProxyType(keys), MappingProxyType(relationships), tuple(services), doc)
