"""The evaluation scope and the request context the caller supplies."""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from types import MappingProxyType
from typing import Final

_EMPTY: Final[Mapping[str, object]] = MappingProxyType({})


class Scope(StrEnum):
    """Where in the connector a policy is evaluated."""

    CATALOG = "catalog"  # visibility of a dataset/offer in the catalog
    NEGOTIATION = "negotiation"  # contract request / offer acceptance
    TRANSFER = "transfer"  # transfer process start
    DATA_REQUEST = "data_request"  # every data-plane request
    MONITOR = "monitor"  # periodic re-evaluation of running transfers


ALL_SCOPES: Final = frozenset(Scope)
USAGE_SCOPES: Final = frozenset({Scope.TRANSFER, Scope.DATA_REQUEST, Scope.MONITOR})
# Where the caller's verified claims are known (DSP requests authenticated with its credentials).
CLAIM_SCOPES: Final = frozenset({Scope.CATALOG, Scope.NEGOTIATION, Scope.TRANSFER})


def _now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True, slots=True)
class EvaluationContext:
    """What the engine knows about the request; only verified facts belong here.

    ``claims`` are the verified credential claims of the requester (see docs/policies.md for the keys the
    built-in operands read: ``roles``, ``membership``, ``bpn``, ``access_level``, ``framework_agreements``).
    ``now`` and ``agreement_start`` must carry a time zone. ``target`` (and ``asset_collections``) are only
    checked against rule targets when given; ``party_collections`` are the party collections the requester
    is a verified member of (matched against ``assignee``). ``extra`` feeds node-specific resolvers.
    """

    participant_id: str | None = None
    claims: Mapping[str, object] = field(default_factory=lambda: _EMPTY)
    now: datetime = field(default_factory=_now)
    agreement_start: datetime | None = None
    count: int | None = None
    purpose: str | Collection[str] | None = None
    spatial: str | None = None
    target: str | None = None
    party_collections: frozenset[str] = frozenset()
    asset_collections: frozenset[str] = frozenset()
    extra: Mapping[str, object] = field(default_factory=lambda: _EMPTY)

    def __post_init__(self) -> None:
        if self.now.tzinfo is None:
            raise ValueError("EvaluationContext.now must be timezone-aware")
        if self.agreement_start is not None and self.agreement_start.tzinfo is None:
            raise ValueError("EvaluationContext.agreement_start must be timezone-aware")
