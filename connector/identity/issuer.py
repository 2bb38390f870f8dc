"""Pure helpers for a credential issuer (used by the ``connector issuer`` CLI): identity, issuing, revoking.

The issuer's state is its key (``keys.load_or_create_key``) and a registry of what it issued, kept as one JSON
file in a directory the caller names. Status list indices are drawn at random from the unused ones, as the
BitstringStatusList specification recommends, so an index reveals nothing about issuance order.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Final

from connector.domain.errors import InvalidInput

from .credentials import (
    BPN_CREDENTIAL,
    DATA_EXCHANGE_GOVERNANCE_CREDENTIAL,
    MEMBERSHIP_CREDENTIAL,
    ROLE_CREDENTIAL,
    VCDM1,
    VCDM2,
    StatusEntry,
    format_datetime,
    issue_credential,
    issue_credential_vcdm1,
)
from .did import build_did_document, did_web_to_url
from .keys import KeyKind, NodeKey, load_or_create_key
from .status import MIN_SIZE, create_status_list_credential

REGISTRY_FILE_NAME: Final = "issuer-registry.json"
FORMAT_VERSION: Final = 1
#: The data models the issuer writes: VCDM 2.0 (vc+jwt, the default) or VCDM 1.1 (Tractus-X's shape).
DATA_MODELS: Final = (VCDM2, VCDM1)
#: The Data Exchange Governance version Catena-X's framework agreement policy asks for.
DATA_EXCHANGE_GOVERNANCE_VERSION: Final = "1.0"
BPNL: Final = re.compile(r"^BPNL[0-9A-Z]{12}$")


@dataclass(frozen=True, slots=True)
class IssuerIdentity:
    """An issuer's DID and signing key."""

    did: str
    key: NodeKey

    def did_document(self) -> dict[str, Any]:
        """Return the issuer's DID document (its key in assertionMethod; no DSP or Credential Service)."""
        return build_did_document(self.did, self.key, None)


def create_issuer(directory: Path, did: str, kind: KeyKind = "Ed25519") -> IssuerIdentity:
    """Load the issuer's key from ``directory`` (creating it on first use) and pair it with ``did``."""
    did_web_to_url(did, allow_http_loopback=True)
    return IssuerIdentity(did, load_or_create_key(directory, kind))


@dataclass(frozen=True, slots=True)
class IssuedCredential:
    """One issued credential, as the registry remembers it (never the credential itself)."""

    index: int
    id: str
    subject: str
    types: tuple[str, ...]
    valid_from: str
    valid_until: str | None = None
    revoked: bool = False


@dataclass(frozen=True, slots=True)
class IssuerRegistry:
    """What an issuer issued, and where its status list is published; changes return a new registry."""

    did: str
    status_list_url: str
    size: int = MIN_SIZE
    credentials: tuple[IssuedCredential, ...] = ()

    def revoked_indices(self) -> frozenset[int]:
        """Return the status list indices of revoked credentials."""
        return frozenset(c.index for c in self.credentials if c.revoked)

    def free_index(self) -> int:
        """Return a random status list index no issued credential uses."""
        used = {c.index for c in self.credentials}
        if len(used) >= self.size:
            raise InvalidInput(f"status list {self.status_list_url} is full ({self.size} entries)")
        while True:
            index = secrets.randbelow(self.size)
            if index not in used:
                return index

    def revoke(self, index: int) -> IssuerRegistry:
        """Return the registry with the credential at status ``index`` revoked (idempotent)."""
        if not any(c.index == index for c in self.credentials):
            raise InvalidInput(f"no credential was issued with status index {index}")
        items = tuple(replace(c, revoked=True) if c.index == index else c for c in self.credentials)
        return replace(self, credentials=items)

    def find(self, credential_id: str) -> IssuedCredential | None:
        """Return the issued credential with this id."""
        return next((c for c in self.credentials if c.id == credential_id), None)

    def to_json(self) -> dict[str, Any]:
        """Return the registry as the JSON object stored in its file."""
        return {
            "version": FORMAT_VERSION,
            "did": self.did,
            "statusListUrl": self.status_list_url,
            "size": self.size,
            "credentials": [
                {
                    "index": c.index,
                    "id": c.id,
                    "subject": c.subject,
                    "types": list(c.types),
                    "validFrom": c.valid_from,
                    "validUntil": c.valid_until,
                    "revoked": c.revoked,
                }
                for c in self.credentials
            ],
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any], origin: str) -> IssuerRegistry:
        """Read a registry from its JSON object; ``origin`` names it in errors."""
        if data.get("version") != FORMAT_VERSION:
            raise InvalidInput(f"{origin}: unsupported registry version {data.get('version')!r}")
        try:
            return cls(
                str(data["did"]),
                str(data["statusListUrl"]),
                int(data["size"]),
                tuple(
                    IssuedCredential(
                        int(c["index"]),
                        str(c["id"]),
                        str(c["subject"]),
                        tuple(str(t) for t in c["types"]),
                        str(c["validFrom"]),
                        None if c.get("validUntil") is None else str(c["validUntil"]),
                        bool(c.get("revoked", False)),
                    )
                    for c in data["credentials"]
                ),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise InvalidInput(f"{origin}: malformed registry ({type(exc).__name__}: {exc})") from None


def load_registry(directory: Path) -> IssuerRegistry:
    """Read the registry file of ``directory``."""
    path = directory / REGISTRY_FILE_NAME
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise InvalidInput(f"{path}: no issuer registry here; initialise the issuer first") from None
    except (OSError, ValueError) as exc:
        raise InvalidInput(f"{path}: cannot be read ({type(exc).__name__})") from None
    if not isinstance(data, dict):
        raise InvalidInput(f"{path}: not a JSON object")
    return IssuerRegistry.from_json(data, str(path))


def save_registry(directory: Path, registry: IssuerRegistry) -> None:
    """Write the registry file of ``directory`` atomically (a crash leaves the old or the new file, never half)."""
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / REGISTRY_FILE_NAME
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(registry.to_json(), indent=2) + "\n", encoding="utf-8")
    os.replace(tmp, path)


def init_registry(directory: Path, did: str, status_list_url: str, size: int = MIN_SIZE) -> IssuerRegistry:
    """Create the registry file of ``directory`` if there is none, and return the registry."""
    if (directory / REGISTRY_FILE_NAME).exists():
        registry = load_registry(directory)
        if registry.did != did:
            raise InvalidInput(f"{directory}: the registry there belongs to {registry.did}, not {did}")
        return registry
    registry = IssuerRegistry(did, status_list_url, size)
    save_registry(directory, registry)
    return registry


def issue(
    issuer: IssuerIdentity,
    registry: IssuerRegistry,
    subject_did: str,
    types: Sequence[str],
    claims: Mapping[str, Any],
    *,
    valid_from: datetime | None = None,
    valid_until: datetime | None = None,
    data_model: str = VCDM2,
) -> tuple[str, IssuerRegistry]:
    """Issue a revocable credential and return it with the registry that records it (the caller saves it).

    ``data_model`` is VCDM2 (a VCDM 2.0 vc+jwt) or VCDM1 (a VCDM 1.1 JWT, as Tractus-X's issuer writes them).
    """
    if registry.did != issuer.did:
        raise InvalidInput(f"registry belongs to {registry.did}, not to issuer {issuer.did}")
    if data_model not in DATA_MODELS:
        raise InvalidInput(f"data model {data_model!r}: use one of {', '.join(DATA_MODELS)}")
    start = valid_from or datetime.now(UTC).replace(microsecond=0)
    index = registry.free_index()
    entry = StatusEntry(registry.status_list_url, index)
    cid = f"urn:uuid:{uuid.uuid4()}"
    write = issue_credential_vcdm1 if data_model == VCDM1 else issue_credential
    vc = write(issuer.key, issuer.did, subject_did, types, claims, start, valid_until, entry, cid)
    record = IssuedCredential(
        index,
        cid,
        subject_did,
        tuple(types),
        format_datetime(start),
        None if valid_until is None else format_datetime(valid_until),
    )
    return vc, replace(registry, credentials=(*registry.credentials, record))


def _bpnl(bpn: str) -> str:
    if not BPNL.match(bpn):
        raise InvalidInput(f"bpn: {bpn!r} is not a legal entity BPN ({BPNL.pattern})")
    return bpn


def issue_membership(
    issuer: IssuerIdentity,
    registry: IssuerRegistry,
    subject_did: str,
    *,
    bpn: str | None = None,
    valid_from: datetime | None = None,
    valid_until: datetime | None = None,
    data_model: str = VCDM2,
) -> tuple[str, IssuerRegistry]:
    """Issue a MembershipCredential (the holder is a member of the dataspace), optionally naming its BPN."""
    claims = {"holderIdentifier": bpn} if bpn else {}
    return issue(
        issuer,
        registry,
        subject_did,
        [MEMBERSHIP_CREDENTIAL],
        claims,
        valid_from=valid_from,
        valid_until=valid_until,
        data_model=data_model,
    )


def issue_data_exchange_governance(
    issuer: IssuerIdentity,
    registry: IssuerRegistry,
    subject_did: str,
    bpn: str,
    *,
    version: str = DATA_EXCHANGE_GOVERNANCE_VERSION,
    contract_template: str | None = None,
    valid_from: datetime | None = None,
    valid_until: datetime | None = None,
    data_model: str = VCDM2,
) -> tuple[str, IssuerRegistry]:
    """Issue the Catena-X framework credential (DataExchangeGovernanceCredential) the framework agreement asks for.

    The subject is the one of Tractus-X's credential profile: holderIdentifier, group, useCase, contractVersion
    (``1.0`` satisfies ``cx-policy:FrameworkAgreement eq "DataExchangeGovernance:1.0"``) and contractTemplate.
    """
    if not version.strip():
        raise InvalidInput("version: must not be blank")
    claims: dict[str, Any] = {
        "holderIdentifier": _bpnl(bpn),
        "group": "UseCaseFramework",
        "useCase": "DataExchangeGovernance",
        "contractVersion": version,
    }
    if contract_template:
        claims["contractTemplate"] = contract_template
    return issue(
        issuer,
        registry,
        subject_did,
        [DATA_EXCHANGE_GOVERNANCE_CREDENTIAL],
        claims,
        valid_from=valid_from,
        valid_until=valid_until,
        data_model=data_model,
    )


def issue_role(
    issuer: IssuerIdentity,
    registry: IssuerRegistry,
    subject_did: str,
    role: str | Sequence[str],
    *,
    valid_from: datetime | None = None,
    valid_until: datetime | None = None,
    data_model: str = VCDM2,
) -> tuple[str, IssuerRegistry]:
    """Issue a RoleCredential stating the holder's role(s), e.g. ``recycler`` or ``market_surveillance_authority``."""
    roles = [role] if isinstance(role, str) else list(role)
    if not roles or not all(isinstance(r, str) and r.strip() for r in roles):
        raise InvalidInput("role: give at least one non-blank role")
    value: str | list[str] = roles[0] if len(roles) == 1 else roles
    return issue(
        issuer,
        registry,
        subject_did,
        [ROLE_CREDENTIAL],
        {"role": value},
        valid_from=valid_from,
        valid_until=valid_until,
        data_model=data_model,
    )


def issue_bpn(
    issuer: IssuerIdentity,
    registry: IssuerRegistry,
    subject_did: str,
    bpn: str,
    *,
    valid_from: datetime | None = None,
    valid_until: datetime | None = None,
    data_model: str = VCDM2,
) -> tuple[str, IssuerRegistry]:
    """Issue a BpnCredential stating the holder's business partner number (and, in VCDM 1.1, as holderIdentifier)."""
    if not bpn.strip():
        raise InvalidInput("bpn: must not be blank")
    # Tractus-X's issuer states the BPN twice (bpn and holderIdentifier); the node's VCDM 2.0 form only once.
    claims = {"bpn": bpn, "holderIdentifier": bpn} if data_model == VCDM1 else {"bpn": bpn}
    return issue(
        issuer,
        registry,
        subject_did,
        [BPN_CREDENTIAL],
        claims,
        valid_from=valid_from,
        valid_until=valid_until,
        data_model=data_model,
    )


def render_status_list(
    issuer: IssuerIdentity,
    registry: IssuerRegistry,
    *,
    now: datetime | None = None,
    lifetime: timedelta = timedelta(days=1),
) -> str:
    """Return the signed status list credential to publish at the registry's status list URL.

    It expires after ``lifetime`` so verifiers cannot keep trusting a stale list: re-render it before then.
    """
    start = (now or datetime.now(UTC)).replace(microsecond=0)
    return create_status_list_credential(
        issuer.key,
        issuer.did,
        registry.status_list_url,
        registry.revoked_indices(),
        size=registry.size,
        valid_from=start,
        valid_until=start + lifetime,
    )
