"""Who is asking: an authenticated participant and the claims its verified credentials carry."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True, slots=True)
class TokenUse:
    """A verified token's id, to be remembered until `expires_at` (epoch seconds) so it is never accepted again."""

    issuer: str
    jti: str
    expires_at: int


@dataclass(frozen=True, slots=True)
class Participant:
    """A requester whose identity was verified; `claims` feed the policy engine's left operands.

    `unrecorded` is the token id of a request whose replay check the service makes itself, in the transaction
    that acts on the message (authenticated with `record=False`); None when it was recorded already.
    """

    id: str
    claims: Mapping[str, Any] = field(default_factory=dict)
    unrecorded: TokenUse | None = None
