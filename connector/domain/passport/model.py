"""The node's battery passport: identity plus the Annex XIII attribute groups, each with one access tag.

Regulation (EU) 2023/1542, Art. 77(2) and Annex XIII: point 1 is public, point 2 is for persons with a
legitimate interest and the Commission (and, per Art. 77(2)(b), notified bodies and market surveillance
authorities), point 3 for those authorities, point 4 for persons with a legitimate interest. A group is
the unit of access: a field whose access differs from its group's belongs to another group.

Data a source format carries that the node's groups do not hold is kept as extension data, each piece
with the tag of the Annex XIII point it belongs to (unknown meaning: the most restricted, authority), so
a passport exports back to its source format unchanged and a view never shows what it should not.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from datetime import date, datetime
from enum import StrEnum
from typing import Annotated, Any, ClassVar

import orjson
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StrictBool,
    ValidationError,
    ValidationInfo,
    field_validator,
)
from pydantic_core import PydanticCustomError, PydanticKnownError


def _json_number(value: Any) -> Any:
    """Take a JSON number as it is: no string, no boolean, no NaN (a lax model would turn "1.5" into 1.5)."""
    kind = type(value)  # the plain int and float first: they are nearly every value
    if kind is int or (kind is float and math.isfinite(value)):
        return value
    if isinstance(value, bool) or not isinstance(value, int | float):
        got = f"{json_type(value)} {shown(value)}"
        raise PydanticCustomError("number", "must be a number, got {got}", {"got": got})
    if isinstance(value, float) and not math.isfinite(value):
        raise PydanticCustomError("finite", "must be a finite number, got {got}", {"got": shown(value)})
    return value


def _whole_number(value: Any) -> Any:
    value = _json_number(value)
    if isinstance(value, float) and not value.is_integer():
        raise PydanticCustomError("whole", "must be a whole number, got {got}", {"got": shown(value)})
    return value


def _bounded(
    number: Callable[[Any], Any], *, ge: float | None = None, gt: float | None = None, le: float | None = None
) -> Callable[[Any], Any]:
    """Return a check of a JSON number and its bounds in one step, failing as `Field(ge=..., gt=..., le=...)` fails
    (the same error types and context): pydantic applies a bound on a union of int and float as a Python function of
    its own per bound after the union, three calls a value instead of one (decision 0019, sixth round)."""

    def check(value: Any) -> Any:
        value = number(value)  # a plain int or float from here on
        if gt is not None and not value > gt:
            raise PydanticKnownError("greater_than", {"gt": gt})
        if ge is not None and not value >= ge:
            raise PydanticKnownError("greater_than_equal", {"ge": ge})
        if le is not None and not value <= le:
            raise PydanticKnownError("less_than_equal", {"le": le})
        return value

    return check


# Numbers keep their JSON type (an int stays an int, a float a float), so they leave the node as they came.
Number = Annotated[int | float, BeforeValidator(_json_number)]
Count = Annotated[int | float, BeforeValidator(_bounded(_whole_number, ge=0))]
Percent = Annotated[int | float, BeforeValidator(_bounded(_json_number, ge=0, le=100))]
Positive = Annotated[int | float, BeforeValidator(_bounded(_json_number, gt=0))]
NonNegative = Annotated[int | float, BeforeValidator(_bounded(_json_number, ge=0))]
Temperature = Annotated[int | float, BeforeValidator(_bounded(_json_number, ge=-273.15))]  # not below absolute zero

_DATE = re.compile(r"^\d{4}-\d{2}(-\d{2})?$")
_UUID = re.compile(r"(?:urn:uuid:)?[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}", re.IGNORECASE)


class Tag(StrEnum):
    """The four Annex XIII access tags."""

    PUBLIC = "public"  # point 1
    LEGITIMATE_INTEREST_MODEL = "legitimate_interest_model"  # point 2
    AUTHORITY = "authority"  # point 3
    LEGITIMATE_INTEREST_BATTERY = "legitimate_interest_battery"  # point 4


class PassportInvalid(Exception):
    """A passport that cannot be accepted; `errors` lists (field path, message)."""

    def __init__(self, errors: list[tuple[str, str]]) -> None:
        super().__init__("; ".join(f"{path}: {message}" for path, message in errors))
        self.errors = errors


def shown(value: Any, limit: int = 60) -> str:
    """Render a value as JSON for a message (NaN and infinities by name), shortened."""
    if isinstance(value, float) and not math.isfinite(value):
        return "NaN" if math.isnan(value) else ("Infinity" if value > 0 else "-Infinity")
    if isinstance(value, float):
        return repr(value)  # 150.0 stays 150.0 (orjson would agree; repr is what the value is)
    try:
        text = orjson.dumps(value).decode()
    except TypeError:
        text = repr(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def json_type(value: Any) -> str:
    """Name the JSON type of a value: null, boolean, number, string, array or object."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list | tuple):
        return "array"
    return "object" if isinstance(value, dict) else type(value).__name__


def canonical_id(value: str) -> str:
    """Return a passport id in the form ids are compared in: a UUID lower case and without "urn:uuid:".

    Any other id is compared as it is: it has no case-insensitive form, and "Battery-A" and "battery-a" are
    two passports in the store (lower-casing them made an import refuse the second as a duplicate).
    """
    stripped = value.strip()
    if _UUID.fullmatch(stripped) is None:
        return value
    return stripped.lower().removeprefix("urn:uuid:")


def check_date(value: str | None) -> str | None:
    """Accept YYYY-MM or YYYY-MM-DD naming a real month or day."""
    if value is None:
        return None
    if _DATE.match(value):
        year, month, *day = (int(part) for part in value.split("-"))
        try:
            date(year, month, day[0] if day else 1)  # a month 13 or a 31 April is no date
            return value
        except ValueError:
            pass
    raise ValueError(f"must be a real date, YYYY-MM-DD or YYYY-MM, got {shown(value)}")


def check_timestamp(value: str) -> str:
    """Accept an ISO 8601 date and time naming a real instant (an offset is optional)."""
    try:
        datetime.fromisoformat(value)
    except ValueError:
        raise ValueError("must be a date and time, YYYY-MM-DDThh:mm:ss with an optional offset") from None
    if "T" not in value:
        raise ValueError("must be a date and time, YYYY-MM-DDThh:mm:ss with an optional offset")
    return value


Timestamp = Annotated[str, AfterValidator(check_timestamp)]


class Group(BaseModel):
    """An attribute group with its access tag."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    tag: ClassVar[Tag] = Tag.PUBLIC


class Substance(BaseModel):
    """A material or substance, with its concentration where known."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    name: str = Field(min_length=1)
    cas: str | None = Field(default=None, pattern=r"^\d{2,7}-\d{2}-\d$")
    concentration_pct: Percent | None = None
    location: str | None = None
    component_id: str | None = None
    mass_kg: NonNegative | None = None
    critical: StrictBool | None = None  # a critical raw material (Annex VI part A(10))
    hazard_class: str | None = None
    # Lists added since the first release default to None, not (): a passport stored before keeps its node
    # JSON and its digest (to_json leaves None out), so importing it again changes nothing.
    impacts: tuple[str, ...] | None = None


class PowerAtSoc(BaseModel):
    """A power capability measured at a state of charge."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    soc_pct: Percent
    power_w: NonNegative


class NegativeEvent(BaseModel):
    """A negative event in the battery's use (an accident, an overcharge), with when it was recorded."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    event: str = Field(min_length=1)
    at: Timestamp | None = None


class FootprintDeclaration(BaseModel):
    """One product carbon footprint declaration: kg CO2e for a reference quantity over given life-cycle phases."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    co2e_kg: NonNegative
    reference_unit: str | None = None
    reference_quantity: Positive | None = None
    life_cycle_phases: tuple[str, ...] = ()
    calculation_methods: tuple[str, ...] = ()
    performance_class: str | None = None
    study_document_ids: tuple[str, ...] = ()


class Identity(Group):
    """Identifiers and label data (Annex VI part A; Annex XIII 1(a)): public."""

    passport_id: str = Field(min_length=1, max_length=256)
    battery_id: str = Field(min_length=1, max_length=512)
    model_id: str | None = Field(default=None, max_length=256)
    gtin: str | None = Field(default=None, pattern=r"^\d{8,14}$")
    serial_number: str | None = None
    batch_number: str | None = None
    manufacturer_id: str | None = Field(default=None, max_length=256)
    manufacturer_name: str | None = None
    manufacturing_place: str | None = None
    manufacturing_facility_id: str | None = None
    operator_id: str | None = None  # the economic operator responsible for the passport
    product_uri: str | None = None  # the product instance's URI (the QR code's target)
    manufacturing_date: str | None = None
    category: str | None = Field(default=None, max_length=32)
    chemistry: str | None = None
    chemistry_name: str | None = None
    mass_kg: Positive | None = None
    warranty_months: NonNegative | None = None
    predecessor_passport_ids: tuple[str, ...] = ()

    _date = field_validator("manufacturing_date")(check_date)

    @field_validator("predecessor_passport_ids")
    @classmethod
    def _not_its_own_predecessor(cls, value: tuple[str, ...], info: ValidationInfo) -> tuple[str, ...]:
        own = info.data.get("passport_id")
        if isinstance(own, str) and any(canonical_id(p) == canonical_id(own) for p in value):
            raise PydanticCustomError("predecessor", "must not name the passport itself (identity.passport_id)")
        return value


class CarbonFootprint(Group):
    """Art. 7 carbon footprint per functional unit and life-cycle shares: public."""

    kgco2e_per_kwh: NonNegative | None = None
    performance_class: str | None = None
    study_url: str | None = None
    share_raw_material_pct: Percent | None = None
    share_main_production_pct: Percent | None = None
    share_distribution_pct: Percent | None = None
    share_end_of_life_pct: Percent | None = None
    declarations: tuple[FootprintDeclaration, ...] | None = None


class DueDiligence(Group):
    """Art. 52(3) due-diligence report and third-party assurances: public."""

    report_url: str | None = None
    third_party_assurance_urls: tuple[str, ...] = ()


class Materials(Group):
    """Chemistry summary, critical raw materials, hazardous substances (Annex XIII 1(b)): public."""

    critical_raw_materials: tuple[str, ...] = ()
    hazardous_substances: tuple[Substance, ...] = ()


class Circularity(Group):
    """Recycled and renewable content (Art. 8; Annex XIII 1(e), 1(f)) and end-user information: public."""

    recycled_cobalt_pct: Percent | None = None
    recycled_lithium_pct: Percent | None = None
    recycled_nickel_pct: Percent | None = None
    recycled_lead_pct: Percent | None = None
    recycled_cobalt_pre_consumer_pct: Percent | None = None
    recycled_cobalt_post_consumer_pct: Percent | None = None
    recycled_lithium_pre_consumer_pct: Percent | None = None
    recycled_lithium_post_consumer_pct: Percent | None = None
    recycled_nickel_pre_consumer_pct: Percent | None = None
    recycled_nickel_post_consumer_pct: Percent | None = None
    recycled_lead_pre_consumer_pct: Percent | None = None
    recycled_lead_post_consumer_pct: Percent | None = None
    renewable_content_pct: Percent | None = None
    end_user_info_urls: tuple[str, ...] = ()


class Performance(Group):
    """Rated performance and durability values (Annex XIII 1(g)-(p)): public."""

    rated_capacity_ah: Positive | None = None
    certified_usable_energy_kwh: NonNegative | None = None
    voltage_min_v: NonNegative | None = None
    voltage_nominal_v: NonNegative | None = None
    voltage_max_v: NonNegative | None = None
    original_power_w: NonNegative | None = None
    original_power_capability: tuple[PowerAtSoc, ...] | None = None
    max_permitted_power_w: NonNegative | None = None
    power_to_energy_ratio_w_per_wh: NonNegative | None = None
    expected_lifetime_cycles: Count | None = None
    c_rate_cycle_life_test: NonNegative | None = None
    capacity_threshold_exhaustion_pct: Percent | None = None
    idle_temperature_min_c: Temperature | None = None
    idle_temperature_max_c: Temperature | None = None
    initial_round_trip_efficiency_pct: Percent | None = None
    round_trip_efficiency_50pct_life_pct: Percent | None = None
    internal_resistance_pack_ohm: NonNegative | None = None
    internal_resistance_cell_ohm: NonNegative | None = None
    internal_resistance_module_ohm: NonNegative | None = None


class Labels(Group):
    """Labels, symbols, extinguishing agent and the EU declaration of conformity (Annex XIII 1(r), 1(s)): public."""

    declaration_of_conformity_id: str | None = None
    declaration_of_conformity_urls: tuple[str, ...] = ()
    separate_collection_symbol: StrictBool | None = None
    extinguishing_agents: tuple[str, ...] = ()


class Dismantling(Group):
    """Detailed composition, part numbers, spare parts, dismantling and safety (Annex XIII point 2)."""

    tag: ClassVar[Tag] = Tag.LEGITIMATE_INTEREST_MODEL
    detailed_composition: tuple[Substance, ...] = ()
    component_part_numbers: tuple[str, ...] = ()
    spare_part_sources: tuple[str, ...] = ()
    dismantling_urls: tuple[str, ...] = ()
    safety_measure_urls: tuple[str, ...] = ()


class TestReports(Group):
    """Results of test reports proving compliance (Annex XIII point 3): authorities only."""

    tag: ClassVar[Tag] = Tag.AUTHORITY
    test_report_urls: tuple[str, ...] = ()


class BatteryStatus(StrEnum):
    """Annex XIII 4(c)."""

    ORIGINAL = "original"
    REPURPOSED = "repurposed"
    REUSED = "reused"
    REMANUFACTURED = "remanufactured"
    WASTE = "waste"


# Values a source format spells differently from the node: node field -> format family -> {theirs: node's}.
# The one table both mappings read, in and out. The node spells the status as Annex XIII does (`reused`;
# Catena-X and IDTA-02035 write `re-used`) and the category in lower case, as IDTA-02035 does (Catena-X
# writes `SLI`, `LMT`, `EV`). A value without an entry is the same in both.
SPELLINGS: dict[str, dict[str, dict[str, str]]] = {
    "condition.status": {"catenax": {"re-used": "reused"}, "idta": {"re-used": "reused"}},
    "identity.category": {"catenax": {"SLI": "sli", "LMT": "lmt", "EV": "ev"}},
}
_SPOKEN = {
    field: {family: {node: theirs for theirs, node in table.items()} for family, table in families.items()}
    for field, families in SPELLINGS.items()
}


def node_spelling(family: str, field: str, value: Any) -> Any:
    """Return a format family's value of a node field (`group.field`) as the node spells it."""
    table = SPELLINGS.get(field, {}).get(family)
    return table.get(value, value) if table and isinstance(value, str) else value


def family_spelling(family: str, field: str, value: Any) -> Any:
    """Return a node field's value as a format family spells it (the converse of node_spelling)."""
    table = _SPOKEN.get(field, {}).get(family)
    return table.get(value, value) if table and isinstance(value, str) else value


class Condition(Group):
    """The individual battery's state of health, status and use (Annex XIII point 4; Annex VII)."""

    tag: ClassVar[Tag] = Tag.LEGITIMATE_INTEREST_BATTERY
    status: BatteryStatus | None = None
    put_into_service: str | None = None
    state_of_health_pct: Percent | None = None
    state_of_certified_energy_pct: Percent | None = None
    state_of_charge_pct: Percent | None = None
    remaining_capacity_ah: NonNegative | None = None
    remaining_energy_kwh: NonNegative | None = None
    capacity_fade_pct: Percent | None = None
    power_fade_pct: Percent | None = None
    full_cycles: Count | None = None
    deep_discharge_events: Count | None = None
    last_update: str | None = None
    # Performance and durability values at placing on the market and at each status change (point 4(a)).
    expected_lifetime_years: NonNegative | None = None
    round_trip_efficiency_fade_pct: Percent | None = None
    initial_self_discharge_rate_pct: Percent | None = None
    internal_resistance_increase_cell_pct: NonNegative | None = None
    internal_resistance_increase_pack_pct: NonNegative | None = None
    internal_resistance_increase_module_pct: NonNegative | None = None
    # Use data (points 4(b), 4(d); Annex VII).
    energy_throughput_kwh: NonNegative | None = None
    capacity_throughput_ah: NonNegative | None = None
    remaining_power_w: NonNegative | None = None
    remaining_power_at_soc_pct: Percent | None = None
    remaining_round_trip_efficiency_pct: Percent | None = None
    current_self_discharge_rate_pct: Percent | None = None
    self_discharge_evolution_pct: Number | None = None
    temperature_c: Temperature | None = None
    minutes_above_temp: NonNegative | None = None
    minutes_below_temp: NonNegative | None = None
    minutes_charging_above_temp: NonNegative | None = None
    minutes_charging_below_temp: NonNegative | None = None
    negative_events: tuple[NegativeEvent, ...] | None = None
    measured_at: dict[str, Timestamp] | None = None  # condition field name -> when it was last measured

    _date = field_validator("put_into_service")(check_date)

    @field_validator("measured_at")
    @classmethod
    def _measured_fields(cls, value: dict[str, str] | None) -> dict[str, str] | None:
        unknown = sorted(set(value or ()) - (set(cls.model_fields) - {"measured_at"}))
        if unknown:
            raise ValueError(f"names no condition field: {', '.join(unknown)}")
        return value


GROUPS: dict[str, type[Group]] = {
    "identity": Identity,
    "carbon_footprint": CarbonFootprint,
    "due_diligence": DueDiligence,
    "materials": Materials,
    "circularity": Circularity,
    "performance": Performance,
    "labels": Labels,
    "dismantling": Dismantling,
    "test_reports": TestReports,
    "condition": Condition,
}


class Extension(BaseModel):
    """Source data the groups do not hold, under the tag of the Annex XIII point it belongs to."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    format: str = Field(min_length=1)
    tag: Tag
    data: dict[str, Any]
    # Where this tag's keys stood in the source document's containers (container path -> key -> index),
    # for a source format whose export must give back the same key order (catenax.py).
    order: dict[str, dict[str, int]] | None = None


class Passport(BaseModel):
    """A battery passport as the node stores it."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    identity: Identity
    carbon_footprint: CarbonFootprint | None = None
    due_diligence: DueDiligence | None = None
    materials: Materials | None = None
    circularity: Circularity | None = None
    performance: Performance | None = None
    labels: Labels | None = None
    dismantling: Dismantling | None = None
    test_reports: TestReports | None = None
    condition: Condition | None = None
    source_format: str = "node"
    extensions: tuple[Extension, ...] = ()

    @property
    def passport_id(self) -> str:
        """The passport's unique identifier."""
        return self.identity.passport_id

    @property
    def battery_id(self) -> str:
        """The battery's unique identifier."""
        return self.identity.battery_id

    @property
    def model_id(self) -> str | None:
        """The battery model."""
        return self.identity.model_id

    @property
    def manufacturer_id(self) -> str | None:
        """The manufacturer's identifier."""
        return self.identity.manufacturer_id

    @property
    def category(self) -> str | None:
        """The battery category."""
        return self.identity.category

    def to_json(self) -> dict[str, Any]:
        """Return the node's plain JSON (absent groups left out)."""
        return self.model_dump(mode="json", exclude_none=True)


def _path(location: tuple[int | str, ...]) -> str:
    out = ""
    for part in location:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


_REASONS = {
    "greater_than": "must be greater than {gt}",
    "greater_than_equal": "must be at least {ge}",
    "less_than": "must be less than {lt}",
    "less_than_equal": "must be at most {le}",
    "string_too_long": "must be at most {max_length} characters",
    "string_too_short": "must be at least {min_length} characters",
    "string_pattern_mismatch": "must match {pattern}",
    "string_type": "must be a string",
    "bool_type": "must be true or false",
    "enum": "must be one of {expected}",
    "missing": "required",
    "extra_forbidden": "not a field of this group",
}


def reason(item: Any) -> str:
    """Say what is wrong with a value in the node's words ("must be at most 100, got 130")."""
    template = _REASONS.get(item["type"])
    if template is None:
        message = str(item["msg"]).removeprefix("Value error, ")
        return message[:1].lower() + message[1:]
    text = template.format(**item.get("ctx", {}))
    if item["type"] in ("missing", "extra_forbidden"):
        return text
    value = item.get("input")
    got = f"{len(value)}" if item["type"].startswith("string_too") else shown(value)
    return f"{text}, got {json_type(value) + ' ' if item['type'].endswith('_type') else ''}{got}"


def invalid(error: ValidationError, prefix: str = "") -> PassportInvalid:
    """Turn pydantic's errors into (path, reason) pairs, one per field."""
    errors: dict[str, str] = {}
    for item in error.errors(include_url=False):
        steps = tuple(p for p in item["loc"] if not (isinstance(p, str) and ("[" in p or p in ("int", "float"))))
        path = _path(steps)
        errors.setdefault(f"{prefix}{path}" if path else prefix.rstrip(".") or "(passport)", reason(item))
    return PassportInvalid(list(errors.items()))


def parse_passport(data: Any) -> Passport:
    """Validate the node's JSON; raise PassportInvalid naming every field at fault."""
    if not isinstance(data, dict):
        raise PassportInvalid([("(passport)", f"must be a JSON object, not {type(data).__name__}")])
    try:
        return Passport.model_validate(data)
    except ValidationError as exc:
        raise invalid(exc) from None
