"""Assets, policy definitions and contract definitions: what a provider offers and under which policies."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

JSON = Any

# Data-address types the node's data plane can serve.
HTTP_DATA = "HttpData"
BATTERY_PASSPORT = "BatteryPassport"
# The embedded Digital Twin Registry and the passports' submodels (docs/registry.md).
DIGITAL_TWIN_REGISTRY = "DigitalTwinRegistry"
PASSPORT_SUBMODEL = "PassportSubmodel"
DATA_ADDRESS_TYPES = (HTTP_DATA, BATTERY_PASSPORT, DIGITAL_TWIN_REGISTRY, PASSPORT_SUBMODEL)

# Data-address fields that are secrets: stored apart, never echoed, never logged.
SECRET_FIELDS = frozenset({"authCode", "authKey", "secret", "clientSecret", "password"})


@dataclass(frozen=True, slots=True)
class DataAddress:
    """Where an asset's data comes from. `secrets` are kept out of every rendering."""

    type: str
    properties: dict[str, JSON] = field(default_factory=dict)
    secrets: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Asset:
    """An offerable thing. Property keys are full IRIs; values are plain JSON or JSON-LD value objects."""

    id: str
    properties: dict[str, JSON]
    private_properties: dict[str, JSON]
    data_address: DataAddress
    created_at: int


@dataclass(frozen=True, slots=True)
class PolicyDefinition:
    """A named ODRL policy. `policy` holds the expanded JSON-LD form, as received."""

    id: str
    policy: JSON
    private_properties: dict[str, JSON]
    created_at: int


@dataclass(frozen=True, slots=True)
class Criterion:
    """One condition of a query or an assets selector: `operand_left operator operand_right`."""

    operand_left: str
    operator: str
    operand_right: JSON


@dataclass(frozen=True, slots=True)
class ContractDefinition:
    """Offers the assets its selector matches under a contract policy, to whoever passes the access policy."""

    id: str
    access_policy_id: str
    contract_policy_id: str
    assets_selector: tuple[Criterion, ...]
    private_properties: dict[str, JSON]
    created_at: int
