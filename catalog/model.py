"""DCAT 3 as the Dataspace Protocol uses it: Catalog, Dataset, Distribution, DataService and offers."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from policies import Policy

HTTP_PULL = "HttpData-PULL"
HTTP_PUSH = "HttpData-PUSH"


@dataclass(frozen=True, slots=True)
class DataService:
    """The node's DSP endpoint (`endpoint_url` is the versioned DSP base URL)."""

    id: str
    endpoint_url: str


@dataclass(frozen=True, slots=True)
class Distribution:
    """One way to get a dataset: a transfer type served by a data service."""

    format: str
    access_service: DataService


@dataclass(frozen=True, slots=True)
class Offer:
    """A contract policy offered for one dataset; its id names the contract definition and the asset."""

    id: str
    policy: Policy


@dataclass(frozen=True, slots=True)
class Dataset:
    """One offerable asset, with every offer the requester may see and the ways to get it.

    `metadata` maps property IRIs to plain JSON values (DCAT and DCT terms, passport-specific ones).
    """

    id: str
    offers: tuple[Offer, ...]
    distributions: tuple[Distribution, ...]
    metadata: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Catalog:
    """A provider's catalog as computed for one requester (one page of it)."""

    id: str
    participant_id: str
    service: DataService
    datasets: tuple[Dataset, ...]
    metadata: Mapping[str, Any] = field(default_factory=dict)
