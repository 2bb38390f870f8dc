"""Identity errors: every refusal names what is wrong and never carries the token or credential text."""

from __future__ import annotations

from enum import StrEnum

from connector.domain.errors import InvalidInput, PeerError, Unauthorized


class KeyFileError(Exception):
    """The node's key file cannot be used; the message names the file and the fix."""


class DidError(InvalidInput):
    """A DID or a did:web URL is malformed or not allowed."""


class DidDocumentError(PeerError):
    """A DID document is malformed, oversized or does not belong to the DID it was fetched for."""


class DidResolutionError(PeerError):
    """A DID could not be resolved; resolvers raise this (and only this) when a document cannot be had."""


class Reason(StrEnum):
    """Why a token, a presentation or a credential was refused (stable codes for logs and metrics)."""

    MISSING = "missing"
    MALFORMED = "malformed"
    ALGORITHM = "algorithm_not_allowed"
    WRONG_TYPE = "wrong_type"
    UNKNOWN_KEY = "unknown_key"
    UNRESOLVABLE = "did_unresolvable"
    BAD_SIGNATURE = "bad_signature"
    ISSUER_MISMATCH = "issuer_mismatch"
    WRONG_AUDIENCE = "wrong_audience"
    EXPIRED = "expired"
    NOT_YET_VALID = "not_yet_valid"
    LIFETIME = "lifetime_too_long"
    REPLAYED = "replayed"
    NONCE = "wrong_nonce"
    UNTRUSTED_ISSUER = "untrusted_issuer"
    HOLDER_MISMATCH = "holder_mismatch"
    REVOKED = "revoked"
    STATUS_UNCHECKED = "status_unchecked"
    CONFLICT = "conflicting_claims"


class TokenRejected(Unauthorized):
    """A self-issued ID token was refused; ``reason`` says which check failed."""

    def __init__(self, reason: Reason, message: str) -> None:
        super().__init__(f"token rejected ({reason.value}): {message}")
        self.reason = reason


class PresentationRejected(Unauthorized):
    """A verifiable presentation, or one credential in it, was refused; ``reason`` says which check failed.

    ``credential`` names the credential (its id, or its position and types) when a credential was at fault.
    """

    def __init__(self, reason: Reason, message: str, credential: str | None = None) -> None:
        where = f"credential {credential}: " if credential else "presentation: "
        super().__init__(f"{where}{message} ({reason.value})")
        self.reason = reason
        self.credential = credential
        self.detail = message


class StatusListError(InvalidInput):
    """A status list credential or its encoded list is malformed."""
