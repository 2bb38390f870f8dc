"""Who is asking: an authenticated participant and the claims its verified credentials carry."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True, slots=True)
class Participant:
    """A requester whose identity was verified; `claims` feed the policy engine's left operands."""

    id: str
    claims: Mapping[str, Any] = field(default_factory=dict)
