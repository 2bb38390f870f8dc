"""Offer ids: stable, opaque to peers, and resolvable back to their contract definition and asset.

The shape is EDC's, `base64(definition id):base64(asset id):base64(policy fingerprint)`, so EDC users
recognise it; the third part changes when the contract policy changes, so an old offer is not
mistaken for the current one.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from dataclasses import dataclass

from policies import Policy, canonical


@dataclass(frozen=True, slots=True)
class OfferRef:
    """What an offer id names."""

    definition_id: str
    asset_id: str
    fingerprint: str


def fingerprint(policy: Policy) -> str:
    """Return a short, stable digest of a policy's rules."""
    return hashlib.sha256(canonical(policy, rules_only=True).encode()).hexdigest()[:16]


def _b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def offer_id(definition_id: str, asset_id: str, policy: Policy) -> str:
    """Return the offer id for a contract definition's policy on an asset."""
    return f"{_b64(definition_id)}:{_b64(asset_id)}:{_b64(fingerprint(policy))}"


def parse_offer_id(value: str) -> OfferRef | None:
    """Read an offer id this node issued; None when it is not one."""
    parts = value.split(":")
    if len(parts) != 3:
        return None
    try:
        decoded = [base64.b64decode(p, validate=True).decode() for p in parts]
    except (binascii.Error, UnicodeDecodeError, ValueError):
        return None
    return OfferRef(*decoded)
