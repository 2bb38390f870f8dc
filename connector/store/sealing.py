"""Secrets stored sealed: the store encrypts credential values on write and opens them on read through a
Sealer (connector.identity.sealing.SecretSealer in a running node; PLAIN where no key is at hand)."""

from __future__ import annotations

import logging
from typing import Protocol

log = logging.getLogger("connector.store")


class Sealer(Protocol):
    """Encrypts secrets for storage (connector.identity.sealing.SecretSealer)."""

    def seal(self, value: str, where: str) -> str:
        """Return `value` encrypted, bound to `where`."""
        ...

    def open(self, value: str, where: str) -> str:
        """Return the plain value; raise when it does not open."""
        ...


class _Plain:
    def seal(self, value: str, where: str) -> str:
        return value

    def open(self, value: str, where: str) -> str:
        return value


PLAIN: Sealer = _Plain()


def open_or_none(sealer: Sealer, value: str, where: str) -> str | None:
    """Return the opened value, or None (logged) when it does not open with this node's key."""
    try:
        return sealer.open(value, where)
    except Exception:
        log.warning("a stored secret does not open with this node's key; it is left out", extra={"where": where})
        return None
