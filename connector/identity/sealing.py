"""Secrets at rest: tokens the node keeps for later (the consumer's EDR tokens, a push destination's
authorization) are stored encrypted, so a copy of the database alone (a backup, a dump) does not hand
out access to partners' data.

AES-256-GCM with a key derived (HKDF-SHA256) from the node's private key, which lives apart from the
database (the key file, 0600). Each value is bound to where it is stored (associated data: the row and the
property), so a sealed value copied into another row does not open. A value stored before sealing existed
reads as it is.
"""

from __future__ import annotations

import base64
import os

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from .keys import NodeKey

PREFIX = "sealed:v1:"
_INFO = b"battery-passport-connector secrets at rest v1"


class SealedValueError(Exception):
    """A sealed value does not open with this node's key (the key changed, or the value was tampered with)."""


class SecretSealer:
    """Seals and opens short secret strings for storage."""

    def __init__(self, key: bytes) -> None:
        if len(key) != 32:
            raise ValueError("the sealing key must be 32 bytes")
        self._aead = AESGCM(key)

    @classmethod
    def for_node(cls, node_key: NodeKey) -> SecretSealer:
        """Return the sealer of a node: its key derived from the node's private key."""
        secret = node_key.private_jwk()["d"].encode()
        derived = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=_INFO).derive(secret)
        return cls(derived)

    def seal(self, value: str, where: str) -> str:
        """Return `value` encrypted, bound to `where` (it opens only with the same `where`)."""
        nonce = os.urandom(12)
        sealed = self._aead.encrypt(nonce, value.encode(), where.encode())
        return PREFIX + base64.urlsafe_b64encode(nonce + sealed).decode().rstrip("=")

    def open(self, value: str, where: str) -> str:
        """Return the plain value (a value that was never sealed is returned as it is)."""
        if not value.startswith(PREFIX):
            return value
        raw = value[len(PREFIX) :]
        try:
            blob = base64.urlsafe_b64decode(raw + "=" * (-len(raw) % 4))
            return self._aead.decrypt(blob[:12], blob[12:], where.encode()).decode()
        except (InvalidTag, ValueError) as exc:
            raise SealedValueError(
                "a stored secret does not open with this node's key (was the key file replaced?)"
            ) from exc
