"""VCDM 2.0 verifiable credentials and presentations as JWTs (DCP profile ``vc20-bssl/jwt``), and their claims.

A credential is a VC-JWT (header ``typ: vc+jwt``) whose payload is the credential itself; a presentation is a
VP-JWT (``typ: vp+jwt``) whose ``verifiableCredential`` entries are ``EnvelopedVerifiableCredential`` objects
with an id ``data:application/vc+jwt,<jwt>``. ``verify_presentation`` checks the holder's signature, audience,
expiry and nonce, then each credential: issuer signature (key in the issuer's ``assertionMethod``), issuer
trusted for the credential's types, holder binding, validity window and revocation status.

Verified credentials become the policy engine's ``EvaluationContext.claims`` (keys from policies.registry):

=====================================  =========================================================================
credential type                         claims
=====================================  =========================================================================
``MembershipCredential``                ``membership`` = True; ``bpn`` from ``holderIdentifier`` or ``bpn``
``RoleCredential``                      ``roles`` += ``credentialSubject.role`` (a string or a list of strings;
                                        ``roles`` is accepted as well), e.g. ``recycler``, ``notified_body``
``BpnCredential``                       ``bpn`` = ``credentialSubject.bpn`` (or ``holderIdentifier``)
``AccessLevelCredential``               ``access_level`` += ``credentialSubject.accessLevel`` (string or list)
any type with ``useCase``               ``framework_agreements`` += ``useCase`` and ``useCase:contractVersion``
(Catena-X framework credentials)        (the values the ``cx-policy:FrameworkAgreement`` operand compares)
=====================================  =========================================================================

Two credentials stating different BPNs are refused (the requester's BPN would be ambiguous). Collections are
frozensets.

What is refused where. A check about the *holder's presentation* refuses the whole presentation
(PresentationRejected): its shape and ``typ``, a holder other than the token's subject, the holder's
signature, the audience, its expiry, the nonce, more than 32 credentials or an entry that is no credential at
all, and two credentials stating different BPNs. A check about *one credential* refuses that credential only:
it is listed in ``VerifiedClaims.refused`` with its reason, its claims never reach the mapping, and the other
credentials still count. Per credential are: a malformed VC-JWT, a bad or unknown issuer key, an issuer
whose DID cannot be resolved, outside its validity window (expired, not yet valid), an issuer not trusted for
its types, issued to another subject than the holder, revoked or suspended, and a status that cannot be
checked (status list unreachable, unverifiable or by another issuer: fail closed, for that credential).
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from types import MappingProxyType
from typing import Any, Final, Protocol

from policies.registry import (
    CLAIM_ACCESS_LEVEL,
    CLAIM_BPN,
    CLAIM_BPN_CREDENTIAL,
    CLAIM_CONTRACT_VERSIONS,
    CLAIM_CREDENTIAL_TYPES,
    CLAIM_FRAMEWORK_AGREEMENTS,
    CLAIM_MEMBERSHIP,
    CLAIM_ROLES,
)

from .did import DidDocument, key_id
from .errors import DidDocumentError, DidResolutionError, PresentationRejected, Reason
from .keys import NodeKey
from .resolver import DidResolver
from .signature import Compact, MalformedJws, parse, sign, verify

VC_CONTEXT: Final = "https://www.w3.org/ns/credentials/v2"
VC1_CONTEXT: Final = "https://www.w3.org/2018/credentials/v1"
PRESENTATION_EXCHANGE_CONTEXT: Final = "https://identity.foundation/presentation-exchange/submission/v1"
#: The two data models a VC-JWT may carry: VCDM 2.0 (vc+jwt) and VCDM 1.1 (a JWT with a ``vc`` claim).
VCDM2: Final = "vcdm2"
VCDM1: Final = "vcdm1"
CX_CREDENTIALS: Final = "https://w3id.org/catenax/credentials/"
DCP_CONTEXT: Final = "https://w3id.org/dspace-dcp/v1.0/dcp.jsonld"
VERIFIABLE_CREDENTIAL: Final = "VerifiableCredential"
VERIFIABLE_PRESENTATION: Final = "VerifiablePresentation"
ENVELOPED_VC: Final = "EnvelopedVerifiableCredential"
ENVELOPED_VP: Final = "EnvelopedVerifiablePresentation"
VC_DATA_PREFIX: Final = "data:application/vc+jwt,"
VP_DATA_PREFIX: Final = "data:application/vp+jwt,"
VC_TYP: Final = frozenset({"vc+jwt", "vc+ld+jwt"})
VP_TYP: Final = frozenset({"vp+jwt", "vp+ld+jwt"})

MEMBERSHIP_CREDENTIAL: Final = "MembershipCredential"
ROLE_CREDENTIAL: Final = "RoleCredential"
BPN_CREDENTIAL: Final = "BpnCredential"
ACCESS_LEVEL_CREDENTIAL: Final = "AccessLevelCredential"
DATA_EXCHANGE_GOVERNANCE_CREDENTIAL: Final = "DataExchangeGovernanceCredential"
STATUS_ENTRY_TYPE: Final = "BitstringStatusListEntry"

# Presentations are addressed to one verifier, for one request: minutes, not hours.
DEFAULT_VP_LIFETIME: Final = 300
MAX_CREDENTIALS: Final = 32
VC_KEY_RELATIONSHIP: Final = "assertionMethod"
VP_KEY_RELATIONSHIP: Final = "authentication"


def format_datetime(value: datetime) -> str:
    """Return an XSD dateTime in UTC with a Z suffix, as VCDM 2.0 writes validFrom/validUntil."""
    if value.tzinfo is None:
        raise ValueError("credential times must be timezone-aware")
    return value.astimezone(UTC).replace(microsecond=0).isoformat().replace("+00:00", "Z")


def _parse_datetime(value: object, name: str, label: str) -> datetime | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise PresentationRejected(Reason.MALFORMED, f"{name} is not a dateTime string", label)
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise PresentationRejected(Reason.MALFORMED, f"{name} {value[:40]!r} is not a dateTime", label) from None
    if parsed.tzinfo is None:
        raise PresentationRejected(Reason.MALFORMED, f"{name} has no time zone", label)
    return parsed


def _now(now: datetime | None) -> datetime:
    if now is None:
        return datetime.now(UTC)
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    return now


@dataclass(frozen=True, slots=True)
class StatusEntry:
    """Where a credential's status bit lives: a BitstringStatusList credential URL and an index in it."""

    list_url: str
    index: int
    purpose: str = "revocation"

    def to_json(self) -> dict[str, str]:
        """Return the ``credentialStatus`` object (BitstringStatusListEntry; the index is a string per VCDM 2.0)."""
        return {
            "id": f"{self.list_url}#{self.index}",
            "type": STATUS_ENTRY_TYPE,
            "statusPurpose": self.purpose,
            "statusListIndex": str(self.index),
            "statusListCredential": self.list_url,
        }


def issue_credential(
    issuer_key: NodeKey,
    issuer_did: str,
    subject_did: str,
    types: Sequence[str],
    claims: Mapping[str, Any],
    valid_from: datetime,
    valid_until: datetime | None = None,
    status: StatusEntry | None = None,
    credential_id: str | None = None,
) -> str:
    """Return a signed VC-JWT stating ``claims`` about ``subject_did`` (``VerifiableCredential`` is added to types)."""
    if "id" in claims:
        raise ValueError("claims must not contain 'id': the subject is subject_did")
    if valid_until is not None and valid_until <= valid_from:
        raise ValueError("valid_until must be after valid_from")
    cid = credential_id or f"urn:uuid:{uuid.uuid4()}"
    credential: dict[str, Any] = {
        "@context": [VC_CONTEXT],
        "id": cid,
        "type": [VERIFIABLE_CREDENTIAL, *(t for t in types if t != VERIFIABLE_CREDENTIAL)],
        "issuer": issuer_did,
        "validFrom": format_datetime(valid_from),
        "credentialSubject": {"id": subject_did, **claims},
    }
    if valid_until is not None:
        credential["validUntil"] = format_datetime(valid_until)
    if status is not None:
        credential["credentialStatus"] = status.to_json()
    # JWT registered claims mirror the credential for JWT-only tooling; they never disagree with it.
    credential.update({"iss": issuer_did, "sub": subject_did, "jti": cid, "iat": int(time.time())})
    credential["nbf"] = int(valid_from.timestamp())
    if valid_until is not None:
        credential["exp"] = int(valid_until.timestamp())
    return sign(issuer_key, key_id(issuer_did, issuer_key), "vc+jwt", credential)


def issue_credential_vcdm1(
    issuer_key: NodeKey,
    issuer_did: str,
    subject_did: str,
    types: Sequence[str],
    claims: Mapping[str, Any],
    valid_from: datetime,
    valid_until: datetime | None = None,
    status: StatusEntry | None = None,
    credential_id: str | None = None,
) -> str:
    """Return a signed VCDM 1.1 JWT (the credential in a ``vc`` claim), shaped as Tractus-X's issuer issues them.

    The credential has only the W3C base context, so its types are bare names; ``iss``, ``sub``, ``nbf``, ``exp``
    and ``jti`` carry the issuer, the subject, the validity and the id, as VCDM 1.1's JWT encoding says.
    """
    if "id" in claims:
        raise ValueError("claims must not contain 'id': the subject is subject_did")
    if valid_until is not None and valid_until <= valid_from:
        raise ValueError("valid_until must be after valid_from")
    cid = credential_id or str(uuid.uuid4())
    credential: dict[str, Any] = {
        "@context": [VC1_CONTEXT],
        "id": cid,
        "type": [VERIFIABLE_CREDENTIAL, *(t for t in types if t != VERIFIABLE_CREDENTIAL)],
        "issuer": issuer_did,
        "issuanceDate": format_datetime(valid_from),
        "credentialSubject": {"id": subject_did, **claims},
    }
    if valid_until is not None:
        credential["expirationDate"] = format_datetime(valid_until)
    if status is not None:
        # Tractus-X's issuer writes the index as a number and the entry's own id as an opaque one.
        credential["credentialStatus"] = {**status.to_json(), "statusListIndex": status.index}
    payload: dict[str, Any] = {
        "iss": issuer_did,
        "sub": subject_did,
        "iat": int(time.time()),
        "nbf": int(valid_from.timestamp()),
        "jti": cid,
        "vc": credential,
    }
    if valid_until is not None:
        payload["exp"] = int(valid_until.timestamp())
    return sign(issuer_key, key_id(issuer_did, issuer_key), "JWT", payload)


def enveloped_credential(vc_jwt: str) -> dict[str, Any]:
    """Return the EnvelopedVerifiableCredential object that carries a VC-JWT inside a presentation."""
    return {"@context": [VC_CONTEXT], "id": VC_DATA_PREFIX + vc_jwt, "type": ENVELOPED_VC}


def present(
    holder_key: NodeKey,
    holder_did: str,
    credentials: Iterable[str],
    audience: str,
    *,
    nonce: str | None = None,
    lifetime: int = DEFAULT_VP_LIFETIME,
    now: datetime | None = None,
) -> str:
    """Return a signed VP-JWT presenting the given VC-JWTs to ``audience``."""
    at = int(_now(now).timestamp())
    payload: dict[str, Any] = {
        "@context": [VC_CONTEXT],
        "id": f"urn:uuid:{uuid.uuid4()}",
        "type": [VERIFIABLE_PRESENTATION],
        "holder": holder_did,
        "verifiableCredential": [enveloped_credential(c) for c in credentials],
        "iss": holder_did,
        "aud": audience,
        "iat": at,
        "nbf": at,
        "exp": at + lifetime,
        "jti": str(uuid.uuid4()),
    }
    if nonce is not None:
        payload["nonce"] = nonce
    return sign(holder_key, key_id(holder_did, holder_key), "vp+jwt", payload)


def present_vcdm1(
    holder_key: NodeKey,
    holder_did: str,
    credentials: Iterable[str],
    audience: str,
    *,
    nonce: str | None = None,
    lifetime: int = DEFAULT_VP_LIFETIME,
    now: datetime | None = None,
) -> str:
    """Return a signed VCDM 1.1 VP-JWT (a ``vp`` claim) presenting VCDM 1.1 VC-JWTs, as Tractus-X's wallet does."""
    at = int(_now(now).timestamp())
    payload: dict[str, Any] = {
        "iss": holder_did,
        "aud": audience,
        "iat": at,
        "nbf": at,
        "exp": at + lifetime,
        "jti": str(uuid.uuid4()),
        "vp": {
            "@context": [VC1_CONTEXT, PRESENTATION_EXCHANGE_CONTEXT],
            "type": VERIFIABLE_PRESENTATION,
            "verifiableCredential": list(credentials),
        },
    }
    if nonce is not None:
        payload["nonce"] = nonce
    return sign(holder_key, key_id(holder_did, holder_key), "JWT", payload)


def presentations(
    holder_key: NodeKey,
    holder_did: str,
    credentials: Iterable[str],
    audience: str,
    *,
    nonce: str | None = None,
    now: datetime | None = None,
) -> list[str]:
    """Return one VP-JWT per data model of the given VC-JWTs (VCDM 1.1 ones in a VCDM 1.1 presentation)."""
    by_model: dict[str, list[str]] = {}
    for jwt in credentials:
        by_model.setdefault(credential_format(jwt), []).append(jwt)
    out: list[str] = []
    if by_model.get(VCDM2):
        out.append(present(holder_key, holder_did, by_model[VCDM2], audience, nonce=nonce, now=now))
    if by_model.get(VCDM1):
        out.append(present_vcdm1(holder_key, holder_did, by_model[VCDM1], audience, nonce=nonce, now=now))
    return out


def presentation_response_message(presentations: Iterable[str]) -> dict[str, Any]:
    """Return the DCP PresentationResponseMessage a Credential Service answers with (VP-JWTs as strings)."""
    return {"@context": [DCP_CONTEXT], "type": "PresentationResponseMessage", "presentation": list(presentations)}


@dataclass(frozen=True, slots=True)
class TrustedIssuers:
    """Which issuer DIDs are trusted for which credential types; ``"*"`` lists issuers trusted for every type."""

    by_type: Mapping[str, frozenset[str]]

    @classmethod
    def of(cls, mapping: Mapping[str, Iterable[str]]) -> TrustedIssuers:
        """Build from a mapping of credential type to issuer DIDs."""
        return cls(MappingProxyType({t: frozenset(dids) for t, dids in mapping.items()}))

    def untrusted_types(self, issuer: str, types: Iterable[str]) -> list[str]:
        """Return the credential types (besides VerifiableCredential) ``issuer`` is not trusted for."""
        if issuer in self.by_type.get("*", frozenset()):
            return []
        names = (type_name(t) for t in types)
        return [t for t in names if t != VERIFIABLE_CREDENTIAL and issuer not in self.by_type.get(t, frozenset())]


class StatusChecker(Protocol):
    """Tell whether the status bit of a credential is set (True: revoked or suspended, per the entry's purpose).

    Implementations fetch and verify the status list credential of ``entry.list_url`` (see ``status``); they
    raise PresentationRejected (or any identity error) when the list cannot be obtained or trusted.
    """

    async def __call__(self, entry: StatusEntry, issuer: str) -> bool:
        """Check one status entry of a credential issued by ``issuer``."""
        ...


@dataclass(frozen=True, slots=True)
class VerifiedCredential:
    """A credential whose signature and validity window were checked."""

    id: str | None
    types: tuple[str, ...]
    issuer: str
    subject: str
    subject_claims: Mapping[str, Any]
    valid_from: datetime | None
    valid_until: datetime | None
    status: tuple[StatusEntry, ...] = ()
    payload: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}), repr=False, compare=False)


@dataclass(frozen=True, slots=True)
class RefusedCredential:
    """A credential of a presentation that failed a check of its own: its claims are left out, nothing else."""

    credential: str
    reason: Reason
    message: str


@dataclass(frozen=True, slots=True)
class VerifiedClaims:
    """The outcome of a verified presentation: the holder, its credentials, the policy engine's claims, and the
    credentials refused (each with why)."""

    holder: str
    credentials: tuple[VerifiedCredential, ...]
    claims: Mapping[str, object]
    refused: tuple[RefusedCredential, ...] = ()


def _label(index: int, payload: Mapping[str, Any] | None = None) -> str:
    if payload is None:
        return f"#{index}"
    cid = payload.get("id")
    types = payload.get("type")
    shown = [t for t in types if isinstance(t, str) and t != VERIFIABLE_CREDENTIAL] if isinstance(types, list) else []
    name = f" {str(cid)[:100]}" if isinstance(cid, str) else ""
    return f"#{index}{name} ({', '.join(shown) or 'untyped'})"


async def _resolve(resolver: DidResolver, did: str, label: str | None) -> DidDocument:
    try:
        doc = await resolver(did)
    except (DidResolutionError, DidDocumentError) as exc:
        raise PresentationRejected(Reason.UNRESOLVABLE, f"DID document of {did[:100]}: {exc.message}", label) from None
    if doc.id != did:
        raise PresentationRejected(Reason.UNRESOLVABLE, "resolver returned the document of another DID", label)
    return doc


async def _check_signature(
    compact: Compact, signer: str, relationship: str, resolver: DidResolver, label: str | None
) -> None:
    kid = compact.header.get("kid")
    if kid is not None and not isinstance(kid, str):
        raise PresentationRejected(Reason.MALFORMED, "header kid is not a string", label)
    if kid is not None and ":" in kid.split("#", 1)[0] and kid.split("#", 1)[0] != signer:
        raise PresentationRejected(
            Reason.UNKNOWN_KEY, f"signing key {kid[:120]!r} is not a key of {signer[:100]}", label
        )
    doc = await _resolve(resolver, signer, label)
    vkey = doc.key(kid, relationship)
    if vkey is None:
        shown = "(no kid)" if kid is None else repr(kid[:120])
        raise PresentationRejected(
            Reason.UNKNOWN_KEY, f"signing key {shown} is not listed in {relationship} of {signer[:100]}", label
        )
    if not verify(compact, vkey.key):
        raise PresentationRejected(Reason.BAD_SIGNATURE, f"signature does not verify with {vkey.id[:120]}", label)


def _status_entries(payload: Mapping[str, Any], label: str) -> tuple[StatusEntry, ...]:
    raw = payload.get("credentialStatus")
    if raw is None:
        return ()
    items = raw if isinstance(raw, list) else [raw]
    out: list[StatusEntry] = []
    for item in items:
        if not isinstance(item, dict) or item.get("type") != STATUS_ENTRY_TYPE:
            kind = item.get("type") if isinstance(item, dict) else None
            raise PresentationRejected(Reason.MALFORMED, f"unsupported credentialStatus type {str(kind)[:60]!r}", label)
        url, index, purpose = item.get("statusListCredential"), item.get("statusListIndex"), item.get("statusPurpose")
        if not isinstance(url, str) or not isinstance(purpose, str):
            raise PresentationRejected(Reason.MALFORMED, "credentialStatus lacks its list URL or purpose", label)
        try:
            idx = int(index) if isinstance(index, str | int) and not isinstance(index, bool) else -1
        except ValueError:
            idx = -1
        if idx < 0:
            raise PresentationRejected(Reason.MALFORMED, "credentialStatus statusListIndex is not an index", label)
        out.append(StatusEntry(url, idx, purpose))
    return tuple(out)


@dataclass(frozen=True, slots=True)
class _Reading:
    """What a credential states, whichever data model carries it."""

    credential: Mapping[str, Any]
    types: tuple[str, ...]
    issuer: str
    subject: Mapping[str, Any]
    valid_from: datetime | None
    valid_until: datetime | None


def _issuer_of(credential: Mapping[str, Any]) -> object:
    issuer = credential.get("issuer")
    return issuer.get("id") if isinstance(issuer, dict) else issuer


def _types_of(credential: Mapping[str, Any], label: str) -> tuple[str, ...]:
    types = credential.get("type")
    if not isinstance(types, list) or VERIFIABLE_CREDENTIAL not in types or not all(isinstance(t, str) for t in types):
        raise PresentationRejected(Reason.MALFORMED, "type must be a list including VerifiableCredential", label)
    return tuple(types)


def _read_vcdm2(compact: Compact, label: str) -> _Reading:
    """Read a VCDM 2.0 VC-JWT: the payload is the credential (typ vc+jwt)."""
    payload = compact.payload
    if compact.header.get("typ") not in VC_TYP:
        raise PresentationRejected(Reason.WRONG_TYPE, "header typ is not vc+jwt", label)
    contexts = payload.get("@context")
    if not isinstance(contexts, list) or not contexts or contexts[0] != VC_CONTEXT:
        raise PresentationRejected(Reason.MALFORMED, f"@context must start with {VC_CONTEXT}", label)
    types = _types_of(payload, label)
    issuer = _issuer_of(payload)
    if not isinstance(issuer, str) or not issuer:
        raise PresentationRejected(Reason.MALFORMED, "issuer is missing", label)
    if payload.get("iss", issuer) != issuer:
        raise PresentationRejected(Reason.ISSUER_MISMATCH, "JWT iss differs from the credential issuer", label)
    subject = payload.get("credentialSubject")
    if not isinstance(subject, dict) or not isinstance(subject.get("id"), str):
        raise PresentationRejected(Reason.MALFORMED, "credentialSubject must be one object with an id", label)
    if payload.get("sub", subject["id"]) != subject["id"]:
        raise PresentationRejected(Reason.HOLDER_MISMATCH, "JWT sub differs from credentialSubject.id", label)
    return _Reading(
        payload,
        types,
        issuer,
        subject,
        _parse_datetime(payload.get("validFrom"), "validFrom", label),
        _parse_datetime(payload.get("validUntil"), "validUntil", label),
    )


def _read_vcdm1(compact: Compact, label: str) -> _Reading:
    """Read a VCDM 1.1 JWT (the form Tractus-X's issuers issue): the credential is the ``vc`` claim.

    As the VC-JWT rules of VCDM 1.1 say: ``iss`` is the issuer, ``sub`` the subject, ``nbf`` and ``exp`` the
    validity, ``jti`` the id; where the credential states them too, both must agree.
    """
    payload = compact.payload
    typ = compact.header.get("typ")
    if typ is not None and str(typ).upper() != "JWT":
        raise PresentationRejected(
            Reason.WRONG_TYPE, f"header typ {str(typ)[:40]!r}: a VCDM 1.1 credential (vc claim) is typ JWT", label
        )
    credential = payload["vc"]
    if not isinstance(credential, dict):
        raise PresentationRejected(Reason.MALFORMED, "the vc claim is not a JSON object", label)
    contexts = credential.get("@context")
    contexts = [contexts] if isinstance(contexts, str) else contexts
    if not isinstance(contexts, list) or not contexts or contexts[0] != VC1_CONTEXT:
        raise PresentationRejected(Reason.MALFORMED, f"vc.@context must start with {VC1_CONTEXT}", label)
    types = _types_of(credential, label)
    stated = _issuer_of(credential)
    issuer = payload.get("iss", stated)
    if not isinstance(issuer, str) or not issuer:
        raise PresentationRejected(Reason.MALFORMED, "issuer is missing (neither iss nor vc.issuer)", label)
    if stated is not None and stated != issuer:
        raise PresentationRejected(Reason.ISSUER_MISMATCH, "JWT iss differs from vc.issuer", label)
    subject = credential.get("credentialSubject")
    if isinstance(subject, list) and len(subject) == 1:
        subject = subject[0]
    if not isinstance(subject, dict):
        raise PresentationRejected(Reason.MALFORMED, "vc.credentialSubject must be one object", label)
    subject_id = subject.get("id", payload.get("sub"))
    if not isinstance(subject_id, str) or not subject_id:
        raise PresentationRejected(Reason.MALFORMED, "the subject has no id (no sub, no credentialSubject.id)", label)
    if payload.get("sub", subject_id) != subject_id:
        raise PresentationRejected(Reason.HOLDER_MISMATCH, "JWT sub differs from credentialSubject.id", label)
    cid = credential.get("id", payload.get("jti"))
    view = {**credential, "id": cid} if isinstance(cid, str) else dict(credential)
    issued = credential.get("issuanceDate", credential.get("validFrom"))
    expires = credential.get("expirationDate", credential.get("validUntil"))
    return _Reading(
        view,
        types,
        issuer,
        {**subject, "id": subject_id},
        _parse_datetime(issued, "vc.issuanceDate", label),
        _parse_datetime(expires, "vc.expirationDate", label),
    )


def credential_format(vc_jwt: str) -> str:
    """Return the data model of a VC-JWT: VCDM1 (a ``vc`` claim) or VCDM2 (the payload is the credential)."""
    try:
        payload = parse(vc_jwt).payload
    except MalformedJws:
        return VCDM2
    return VCDM1 if "vc" in payload else VCDM2


async def verify_credential(
    vc_jwt: str,
    resolver: DidResolver,
    *,
    now: datetime | None = None,
    leeway: timedelta = timedelta(seconds=30),
    index: int = 0,
) -> VerifiedCredential:
    """Verify a VC-JWT's shape, issuer signature (key in assertionMethod) and validity window.

    Both data models are read: VCDM 2.0 (``vc+jwt``, the payload is the credential) and VCDM 1.1 (a JWT whose
    ``vc`` claim is the credential, as Tractus-X's issuers issue them). Trust in the issuer, holder binding and
    status are the caller's checks (``verify_presentation`` does them).
    """
    try:
        compact = parse(vc_jwt)
    except MalformedJws as exc:
        raise PresentationRejected(Reason.MALFORMED, f"not a usable VC-JWT: {exc}", _label(index)) from None
    payload = compact.payload
    vcdm1 = "vc" in payload
    label = _label(index, payload["vc"] if vcdm1 and isinstance(payload["vc"], dict) else payload)
    reading = _read_vcdm1(compact, label) if vcdm1 else _read_vcdm2(compact, label)
    await _check_signature(compact, reading.issuer, VC_KEY_RELATIONSHIP, resolver, label)
    at = _now(now)
    valid_from, valid_until = reading.valid_from, reading.valid_until
    if valid_from is not None and valid_from - leeway > at:
        raise PresentationRejected(Reason.NOT_YET_VALID, f"not valid before {format_datetime(valid_from)}", label)
    if valid_until is not None and valid_until + leeway < at:
        raise PresentationRejected(Reason.EXPIRED, f"expired at {format_datetime(valid_until)}", label)
    for claim, reason in (("nbf", Reason.NOT_YET_VALID), ("exp", Reason.EXPIRED)):
        value = payload.get(claim)
        if value is not None:
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise PresentationRejected(Reason.MALFORMED, f"JWT claim {claim} is not a number", label)
            bound = datetime.fromtimestamp(value, UTC)
            if (claim == "nbf" and bound - leeway > at) or (claim == "exp" and bound + leeway < at):
                raise PresentationRejected(reason, f"JWT claim {claim} is {format_datetime(bound)}", label)
    cid = reading.credential.get("id")
    return VerifiedCredential(
        cid if isinstance(cid, str) else None,
        reading.types,
        reading.issuer,
        reading.subject["id"],
        MappingProxyType(dict(reading.subject)),
        valid_from,
        valid_until,
        _status_entries(reading.credential, label),
        MappingProxyType(dict(reading.credential)),
    )


def _credential_jwts(presentation: Mapping[str, Any]) -> list[str]:
    entries = presentation.get("verifiableCredential", [])
    if not isinstance(entries, list):
        entries = [entries]
    if len(entries) > MAX_CREDENTIALS:
        raise PresentationRejected(Reason.MALFORMED, f"more than {MAX_CREDENTIALS} credentials")
    out: list[str] = []
    for i, entry in enumerate(entries):
        if isinstance(entry, str):
            out.append(entry)
        elif (
            isinstance(entry, dict)
            and entry.get("type") == ENVELOPED_VC
            and isinstance(entry.get("id"), str)
            and entry["id"].startswith(VC_DATA_PREFIX)
        ):
            out.append(entry["id"][len(VC_DATA_PREFIX) :])
        else:
            raise PresentationRejected(
                Reason.MALFORMED, "verifiableCredential entry is neither a VC-JWT nor an enveloped one", f"#{i}"
            )
    return out


def _read_presentation(compact: Compact) -> Mapping[str, Any]:
    """Return the presentation a VP-JWT carries: its payload (VCDM 2.0, vp+jwt) or its ``vp`` claim (VCDM 1.1)."""
    payload = compact.payload
    typ = compact.header.get("typ")
    if "vp" in payload:
        # Tractus-X's wallet (EDC IdentityHub) signs VCDM 1.1 presentations without a typ of their own.
        if typ is not None and str(typ).upper() != "JWT" and typ not in VP_TYP:
            raise PresentationRejected(Reason.WRONG_TYPE, f"header typ {str(typ)[:40]!r} is not JWT or vp+jwt")
        claim = payload["vp"]
        if not isinstance(claim, dict):
            raise PresentationRejected(Reason.MALFORMED, "the vp claim is not a JSON object")
        presentation: Mapping[str, Any] = claim
    else:
        if typ not in VP_TYP:
            raise PresentationRejected(Reason.WRONG_TYPE, "header typ is not vp+jwt")
        presentation = payload
    types = presentation.get("type")
    types = [types] if isinstance(types, str) else types
    if not isinstance(types, list) or VERIFIABLE_PRESENTATION not in types:
        raise PresentationRejected(Reason.MALFORMED, "type must include VerifiablePresentation")
    return presentation


def unwrap_presentation(value: str | Mapping[str, Any]) -> str:
    """Return the VP-JWT of a presentation given as a string or as an EnvelopedVerifiablePresentation object."""
    if isinstance(value, str):
        return value
    vid = value.get("id")
    if value.get("type") == ENVELOPED_VP and isinstance(vid, str) and vid.startswith(VP_DATA_PREFIX):
        return vid[len(VP_DATA_PREFIX) :]
    raise PresentationRejected(Reason.MALFORMED, "not a VP-JWT or an EnvelopedVerifiablePresentation")


async def verify_presentation(
    vp: str | Mapping[str, Any],
    expected_audience: str,
    expected_holder: str,
    resolver: DidResolver,
    trusted_issuers: TrustedIssuers,
    status_checker: StatusChecker | None,
    *,
    nonce: str | None = None,
    now: datetime | None = None,
    leeway: timedelta = timedelta(seconds=30),
) -> VerifiedClaims:
    """Verify a VP-JWT from ``expected_holder`` (the DCP token's subject) and every credential in it.

    Raise PresentationRejected when the presentation itself fails a check; a credential that fails one of its
    own is left out and listed in ``refused`` (see the module docstring). A credential carrying a status entry
    is refused when no ``status_checker`` is given: revocation is never silently skipped.
    """
    try:
        compact = parse(unwrap_presentation(vp))
    except MalformedJws as exc:
        raise PresentationRejected(Reason.MALFORMED, f"not a usable VP-JWT: {exc}") from None
    payload = compact.payload
    presentation = _read_presentation(compact)
    holder = presentation.get("holder", payload.get("iss"))
    if not isinstance(holder, str) or payload.get("iss", holder) != holder:
        raise PresentationRejected(Reason.ISSUER_MISMATCH, "holder and JWT iss are missing or differ")
    if holder != expected_holder:
        raise PresentationRejected(
            Reason.HOLDER_MISMATCH, f"presented by {holder[:100]}, but the request comes from {expected_holder[:100]}"
        )
    await _check_signature(compact, holder, VP_KEY_RELATIONSHIP, resolver, None)
    aud = payload.get("aud")
    audiences = [aud] if isinstance(aud, str) else aud if isinstance(aud, list) else []
    if expected_audience not in audiences:
        raise PresentationRejected(Reason.WRONG_AUDIENCE, f"presentation is not addressed to {expected_audience}")
    at = _now(now)
    exp, iat = payload.get("exp"), payload.get("iat")
    if isinstance(exp, bool) or not isinstance(exp, int | float):
        raise PresentationRejected(Reason.MALFORMED, "claim exp is missing")
    if datetime.fromtimestamp(exp, UTC) + leeway < at:
        raise PresentationRejected(Reason.EXPIRED, "presentation expired")
    if isinstance(iat, int | float) and not isinstance(iat, bool) and datetime.fromtimestamp(iat, UTC) - leeway > at:
        raise PresentationRejected(Reason.NOT_YET_VALID, "presentation is issued in the future")
    if nonce is not None and payload.get("nonce") != nonce:
        raise PresentationRejected(Reason.NONCE, "nonce does not match the one requested")
    verified: list[VerifiedCredential] = []
    refused: list[RefusedCredential] = []
    for i, vc_jwt in enumerate(_credential_jwts(presentation)):
        try:
            verified.append(
                await _verify_presented(vc_jwt, i, holder, resolver, trusted_issuers, status_checker, at, leeway)
            )
        except PresentationRejected as exc:
            refused.append(RefusedCredential(exc.credential or f"#{i}", exc.reason, exc.detail))
    return VerifiedClaims(holder, tuple(verified), claims_from_credentials(verified), tuple(refused))


async def _verify_presented(
    vc_jwt: str,
    index: int,
    holder: str,
    resolver: DidResolver,
    trusted_issuers: TrustedIssuers,
    status_checker: StatusChecker | None,
    at: datetime,
    leeway: timedelta,
) -> VerifiedCredential:
    """Check one credential of a presentation; raise PresentationRejected naming it and the failed check."""
    vc = await verify_credential(vc_jwt, resolver, now=at, leeway=leeway, index=index)
    label = _label(index, vc.payload)
    untrusted = trusted_issuers.untrusted_types(vc.issuer, vc.types)
    if untrusted:
        raise PresentationRejected(
            Reason.UNTRUSTED_ISSUER, f"issuer {vc.issuer[:100]} is not trusted for {', '.join(untrusted)}", label
        )
    if vc.subject != holder:
        raise PresentationRejected(
            Reason.HOLDER_MISMATCH, f"issued to {vc.subject[:100]}, presented by {holder[:100]}", label
        )
    for entry in vc.status:
        if status_checker is None:
            raise PresentationRejected(Reason.STATUS_UNCHECKED, "has a status entry but no status checker", label)
        try:
            revoked = await status_checker(entry, vc.issuer)
        except PresentationRejected as exc:
            # The checker does not know which credential asked: name it here.
            raise PresentationRejected(exc.reason, exc.detail, label) from None
        if revoked:
            raise PresentationRejected(Reason.REVOKED, f"{entry.purpose} bit {entry.index} is set", label)
    return vc


def _strings(value: object) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, list):
        return [v for v in value if isinstance(v, str)]
    return []


def type_name(credential_type: str) -> str:
    """Return a credential type by its bare name (a Catena-X credential IRI stripped of its namespace).

    Tractus-X's issuers write bare names with only the W3C base context; with the Catena-X context the type may be
    the full IRI. Both name the same type, as Tractus-X's CredentialTypePredicate matches them.
    """
    return credential_type[len(CX_CREDENTIALS) :] if credential_type.startswith(CX_CREDENTIALS) else credential_type


def _subject_claim(subject: Mapping[str, Any], name: str) -> object:
    """Return a subject claim by its plain name or its Catena-X credentials IRI (as Tractus-X reads them)."""
    return subject.get(name, subject.get(CX_CREDENTIALS + name))


def claims_from_credentials(credentials: Iterable[VerifiedCredential]) -> Mapping[str, object]:
    """Map verified credentials to the policy engine's claim keys (see the module docstring)."""
    roles: set[str] = set()
    levels: set[str] = set()
    frameworks: set[str] = set()
    bpns: set[str] = set()
    held: set[str] = set()
    versions: set[str] = set()
    bpn_credential: str | None = None
    membership = False
    for vc in credentials:
        s = vc.subject_claims
        types = {type_name(t) for t in vc.types} - {VERIFIABLE_CREDENTIAL}
        held |= types
        version = _subject_claim(s, "contractVersion")
        if isinstance(version, str | int | float) and not isinstance(version, bool):
            versions.update(f"{t}:{version}" for t in types)
        if MEMBERSHIP_CREDENTIAL in types:
            membership = True
            bpns.update(_strings(s.get("holderIdentifier")) + _strings(s.get("bpn")))
        if ROLE_CREDENTIAL in types:
            roles.update(_strings(s.get("role")) + _strings(s.get("roles")))
        if BPN_CREDENTIAL in types:
            bpns.update(_strings(s.get("bpn")) or _strings(s.get("holderIdentifier")))
            # Tractus-X 0.13 reads the first subject claim whose name ends in "bpn".
            stated = next((v for k, v in s.items() if k.endswith("bpn") and isinstance(v, str)), None)
            bpn_credential = bpn_credential or stated
            if stated:
                bpns.add(stated)
        if ACCESS_LEVEL_CREDENTIAL in types:
            levels.update(_strings(s.get("accessLevel")) + _strings(s.get("access_level")))
        use_case = s.get("useCase")
        if isinstance(use_case, str):
            frameworks.add(use_case)
            if isinstance(version, str | int | float) and not isinstance(version, bool):
                frameworks.add(f"{use_case}:{version}")
    if len(bpns) > 1:
        raise PresentationRejected(Reason.CONFLICT, f"credentials state different BPNs: {', '.join(sorted(bpns))}")
    claims: dict[str, object] = {}
    if membership:
        claims[CLAIM_MEMBERSHIP] = True
    if roles:
        claims[CLAIM_ROLES] = frozenset(roles)
    if bpns:
        claims[CLAIM_BPN] = next(iter(bpns))
    if levels:
        claims[CLAIM_ACCESS_LEVEL] = frozenset(levels)
    if frameworks:
        claims[CLAIM_FRAMEWORK_AGREEMENTS] = frozenset(frameworks)
    if held:
        claims[CLAIM_CREDENTIAL_TYPES] = frozenset(held)
    if versions:
        claims[CLAIM_CONTRACT_VERSIONS] = frozenset(versions)
    if bpn_credential:
        claims[CLAIM_BPN_CREDENTIAL] = bpn_credential
    return MappingProxyType(claims)
