"""Where each IDTA-02035 Digital Battery Passport property lives in the node's passport: data only.

`FIELDS` moves a property into a node field (`idta.py` reads it both ways); `KEPT` names what the node has no
field for, kept as extension data under its Annex XIII tag (`TAGS`, else the part's tag). A test holds the
tables to the parts' schemas: every property of every part is in exactly one of them.

A path inside a part joins keys with dots; `Key[]` is each item of the list at `Key`, index by index with the
node's list (`group.field[].attribute`, or `group.field[]` for a list of plain values); `Key[Name=Value]` is
the one item whose `Name` is `Value`. A node target is `group.field`, one of those list forms, or
`condition.measured_at.<field>`, the time a condition value was measured. When several paths name one node
field, the first in the table is where it is read from and where export always writes it; the others are
written where the part has other content, and keep their own value if it differs.
"""

from __future__ import annotations

from typing import NamedTuple

from .model import Tag

P, LM, A, LB = Tag.PUBLIC, Tag.LEGITIMATE_INTEREST_MODEL, Tag.AUTHORITY, Tag.LEGITIMATE_INTEREST_BATTERY


class Part(NamedTuple):
    """One IDTA-02035 part: its number in the standard and its Annex XIII tag (its schema: aspects.SCHEMAS)."""

    number: int
    tag: Tag


PARTS: dict[str, Part] = {
    "digital_nameplate": Part(1, P),
    "handover_documentation": Part(2, P),
    "carbon_footprint": Part(3, P),
    "technical_data": Part(4, P),
    "product_condition": Part(5, LB),
    "material_composition": Part(6, P),
    "circularity": Part(7, P),
}

# (part, path) -> Annex XIII point, where it differs from the part's (the battery-passport study's table).
TAGS: dict[tuple[str, str], Tag] = {
    ("digital_nameplate", "DateOfPuttingIntoService"): LB,  # Annex VII part B
    ("digital_nameplate", "LifeCycleStage"): LB,  # battery status, 4(c)
    ("digital_nameplate", "ResultsOfTestReportsProvingCompliance"): A,  # point 3
    # Performance and durability values at placing on the market and at a status change, 4(a).
    ("technical_data", "TechnicalPropertyAreas.CapacityEnergyVoltage.CapacityFade"): LB,
    ("technical_data", "TechnicalPropertyAreas.RoundTripEnergyEfficiency.EnergyRoundTripEfficiencyFade"): LB,
    ("technical_data", "TechnicalPropertyAreas.RoundTripEnergyEfficiency.InitialSelfDischargingRate"): LB,
    ("technical_data", "TechnicalPropertyAreas.Resistance.InternalResistanceIncreaseAtBatteryCellLevel"): LB,
    ("technical_data", "TechnicalPropertyAreas.Resistance.InternalResistanceIncreaseAtBatteryPackLevel"): LB,
    ("technical_data", "TechnicalPropertyAreas.Resistance.InternalResistanceIncreaseAtBatteryModuleLevel"): LB,
    ("technical_data", "TechnicalPropertyAreas.PowerCapability.PowerFade"): LB,
    ("technical_data", "TechnicalPropertyAreas.Lifetime.ExpectedLifetimeInCalendarYears"): LB,
    ("material_composition", "BatteryMaterials"): LM,  # detailed composition, 2(a)
    ("circularity", "DismantlingAndRemovalInformation"): LM,  # 2(c)
    ("circularity", "SparePartSources"): LM,  # 2(b)
    ("circularity", "SafetyMeasures.SafetyInstructions"): LM,  # 2(d); the extinguishing agents are public
}

# Lists of handover-document identifiers: a handover document takes the tag of what refers to it.
DOCUMENT_REFERENCES: tuple[tuple[str, str], ...] = (
    ("digital_nameplate", "EUDeclarationOfConformity"),
    ("digital_nameplate", "ResultsOfTestReportsProvingCompliance"),
    ("carbon_footprint", "ProductCarbonFootprints[].WebLinkToPublicCarbonFootprintStudy"),
    ("technical_data", "TechnicalPropertyAreas.Lifetime.CycleLifeReferenceTest"),
    ("product_condition", "InformationOnAccidents"),
    ("circularity", "DismantlingAndRemovalInformation"),
    ("circularity", "SafetyMeasures.SafetyInstructions"),
    ("circularity", "EndOfLifeInformation.WastePrevention"),
    ("circularity", "EndOfLifeInformation.SeparateCollection"),
    ("circularity", "EndOfLifeInformation.InformationOnCollection"),
)

_TPA = "TechnicalPropertyAreas."
_PCF = "ProductCarbonFootprints[]."
_FP = "carbon_footprint.declarations[]."
_MAT = "BatteryMaterials[]."
_DC = "dismantling.detailed_composition[]."
_HAZ = "HazardousSubstances[]."
_HS = "materials.hazardous_substances[]."


def _measured(block: str, value: str, field: str, codec: str = "number") -> tuple[tuple[str, str, str, str], ...]:
    """A product-condition value and its LastUpdate."""
    return (
        ("product_condition", f"{block}.{value}", f"condition.{field}", codec),
        ("product_condition", f"{block}.LastUpdate", f"condition.measured_at.{field}", "timestamp"),
    )


def _recycled(material: str) -> tuple[tuple[str, str, str, str], ...]:
    """The pre- and post-consumer recycled shares of one material (Art. 8)."""
    item = f"RecycledContentInformation[RecycledMaterial={material}]"
    name = material.lower()
    return (
        ("circularity", f"{item}.PreConsumerShare", f"circularity.recycled_{name}_pre_consumer_pct", "number"),
        ("circularity", f"{item}.PostConsumerShare", f"circularity.recycled_{name}_post_consumer_pct", "number"),
    )


# (part, path in the part, node target, codec). Codecs are in idta.py; "text" reads a language-tagged text.
FIELDS: tuple[tuple[str, str, str, str], ...] = (
    # Part 1, Digital Nameplate (the individual battery).
    ("digital_nameplate", "URIOfTheProduct", "identity.product_uri", "string"),
    ("digital_nameplate", "ManufacturerName", "identity.manufacturer_name", "text"),
    ("digital_nameplate", "SerialNumber", "identity.battery_id", "string"),  # as Catena-X's partInstanceId
    ("digital_nameplate", "DateOfManufacture", "identity.manufacturing_date", "date"),
    ("digital_nameplate", "DateOfPuttingIntoService", "condition.put_into_service", "date"),
    ("digital_nameplate", "UniqueFacilityIdentifier", "identity.manufacturing_facility_id", "string"),
    ("digital_nameplate", "LifeCycleStage", "condition.status", "status"),
    ("digital_nameplate", "OperatorIdentifier", "identity.operator_id", "string"),
    ("digital_nameplate", "ManufacturerIdentifier", "identity.manufacturer_id", "string"),
    # Part 3, Product Carbon Footprint.
    ("carbon_footprint", _PCF + "PcfCalculationMethods", _FP + "calculation_methods", "strings"),
    ("carbon_footprint", _PCF + "PcfCo2eq", _FP + "co2e_kg", "number"),
    ("carbon_footprint", _PCF + "ReferenceImpactUnitForCalculation", _FP + "reference_unit", "string"),
    ("carbon_footprint", _PCF + "QuantityOfMeasureForCalculation", _FP + "reference_quantity", "number"),
    ("carbon_footprint", _PCF + "LifeCyclePhases", _FP + "life_cycle_phases", "strings"),
    ("carbon_footprint", _PCF + "PerformanceClass", _FP + "performance_class", "string"),
    ("carbon_footprint", _PCF + "WebLinkToPublicCarbonFootprintStudy", _FP + "study_document_ids", "strings"),
    # Part 4, Technical Data (the battery model).
    ("technical_data", "GeneralInformation.WarrantyInformation.WarrantyPeriod", "identity.warranty_months", "months"),
    ("technical_data", "GeneralInformation.BatteryCategory", "identity.category", "category"),
    ("technical_data", "GeneralInformation.BatteryMass", "identity.mass_kg", "number"),
    ("technical_data", _TPA + "CapacityEnergyVoltage.NominalVoltage", "performance.voltage_nominal_v", "number"),
    ("technical_data", _TPA + "CapacityEnergyVoltage.MinVoltage", "performance.voltage_min_v", "number"),
    ("technical_data", _TPA + "CapacityEnergyVoltage.MaxVoltage", "performance.voltage_max_v", "number"),
    ("technical_data", _TPA + "CapacityEnergyVoltage.RatedCapacity", "performance.rated_capacity_ah", "number"),
    ("technical_data", _TPA + "CapacityEnergyVoltage.CapacityFade", "condition.capacity_fade_pct", "number"),
    (
        "technical_data",
        _TPA + "CapacityEnergyVoltage.CertifiedUsableBatteryEnergy",
        "performance.certified_usable_energy_kwh",
        "number",
    ),
    (
        "technical_data",
        _TPA + "RoundTripEnergyEfficiency.InitialRoundTripEnergyEfficiency",
        "performance.initial_round_trip_efficiency_pct",
        "number",
    ),
    (
        "technical_data",
        _TPA + "RoundTripEnergyEfficiency.RoundTripEnergyEfficiencyAt50PercentOfCycleLife",
        "performance.round_trip_efficiency_50pct_life_pct",
        "number",
    ),
    (
        "technical_data",
        _TPA + "RoundTripEnergyEfficiency.EnergyRoundTripEfficiencyFade",
        "condition.round_trip_efficiency_fade_pct",
        "number",
    ),
    (
        "technical_data",
        _TPA + "RoundTripEnergyEfficiency.InitialSelfDischargingRate",
        "condition.initial_self_discharge_rate_pct",
        "number",
    ),
    (
        "technical_data",
        _TPA + "Resistance.InitialInternalResistanceAtBatteryCellLevel",
        "performance.internal_resistance_cell_ohm",
        "number",
    ),
    (
        "technical_data",
        _TPA + "Resistance.InitialInternalResistanceAtBatteryPackLevel",
        "performance.internal_resistance_pack_ohm",
        "number",
    ),
    (
        "technical_data",
        _TPA + "Resistance.InitialInternalResistanceAtBatteryModuleLevel",
        "performance.internal_resistance_module_ohm",
        "number",
    ),
    (
        "technical_data",
        _TPA + "Resistance.InternalResistanceIncreaseAtBatteryCellLevel",
        "condition.internal_resistance_increase_cell_pct",
        "number",
    ),
    (
        "technical_data",
        _TPA + "Resistance.InternalResistanceIncreaseAtBatteryPackLevel",
        "condition.internal_resistance_increase_pack_pct",
        "number",
    ),
    (
        "technical_data",
        _TPA + "Resistance.InternalResistanceIncreaseAtBatteryModuleLevel",
        "condition.internal_resistance_increase_module_pct",
        "number",
    ),
    (
        "technical_data",
        _TPA + "PowerCapability.MaximumPermittedBatteryPower",
        "performance.max_permitted_power_w",
        "number",
    ),
    ("technical_data", _TPA + "PowerCapability.PowerFade", "condition.power_fade_pct", "number"),
    (
        "technical_data",
        _TPA + "PowerCapability.RatioNominalBatteryPowerAndBatteryEnergy",
        "performance.power_to_energy_ratio_w_per_wh",
        "number",
    ),
    (
        "technical_data",
        _TPA + "PowerCapability.OriginalPowerCapability[].atSoC",
        "performance.original_power_capability[].soc_pct",
        "number",
    ),
    (
        "technical_data",
        _TPA + "PowerCapability.OriginalPowerCapability[].powerCapabilityAt",
        "performance.original_power_capability[].power_w",
        "number",
    ),
    (
        "technical_data",
        _TPA + "Temperature.TemperatureRangeIdleState_LowerBoundary",
        "performance.idle_temperature_min_c",
        "number",
    ),
    (
        "technical_data",
        _TPA + "Temperature.TemperatureRangeIdleState_UpperBoundary",
        "performance.idle_temperature_max_c",
        "number",
    ),
    (
        "technical_data",
        _TPA + "Lifetime.ExpectedLifetimeInCalendarYears",
        "condition.expected_lifetime_years",
        "number",
    ),
    ("technical_data", _TPA + "Lifetime.ExpectedNumberOfCycles", "performance.expected_lifetime_cycles", "integer"),
    (
        "technical_data",
        _TPA + "Lifetime.CapacityThresholdExhaustion",
        "performance.capacity_threshold_exhaustion_pct",
        "number",
    ),
    ("technical_data", _TPA + "Lifetime.CrateOfRelevantCycleLifeTest", "performance.c_rate_cycle_life_test", "number"),
    # Part 5, Product Condition (the individual battery, each value with the time it was measured).
    *_measured("EnergyThroughput", "EnergyThroughputValue", "energy_throughput_kwh"),
    *_measured("CapacityThroughput", "CapacityThroughputValue", "capacity_throughput_ah"),
    *_measured("NumberOfFullCycles", "NumberOfFullCyclesValue", "full_cycles", "integer"),
    *_measured("StateOfCertifiedEnergy", "StateOfCertifiedEnergyValue", "state_of_certified_energy_pct"),
    *_measured("RemainingEnergy", "RemainingEnergyValue", "remaining_energy_kwh"),
    *_measured("RemainingCapacity", "RemainingCapacityValue", "remaining_capacity_ah"),
    ("product_condition", "NegativeEvents[].NegativeEventValue", "condition.negative_events[].event", "string"),
    ("product_condition", "NegativeEvents[].LastUpdate", "condition.negative_events[].at", "timestamp"),
    ("product_condition", "TemperatureInformation.MeasuredTemp", "condition.temperature_c", "number"),
    ("product_condition", "TemperatureInformation.TimeExtremeHighTemp", "condition.minutes_above_temp", "number"),
    ("product_condition", "TemperatureInformation.TimeExtremeLowTemp", "condition.minutes_below_temp", "number"),
    (
        "product_condition",
        "TemperatureInformation.TimeExtremeHighTempCharging",
        "condition.minutes_charging_above_temp",
        "number",
    ),
    (
        "product_condition",
        "TemperatureInformation.TimeExtremeLowTempCharging",
        "condition.minutes_charging_below_temp",
        "number",
    ),
    ("product_condition", "TemperatureInformation.LastUpdate", "condition.measured_at.temperature_c", "timestamp"),
    (
        "product_condition",
        "RemainingPowerCapability.RemainingPowerCapabilityValue.AtSoC",
        "condition.remaining_power_at_soc_pct",
        "number",
    ),
    (
        "product_condition",
        "RemainingPowerCapability.RemainingPowerCapabilityValue.PowerCapabilityAt",
        "condition.remaining_power_w",
        "number",
    ),
    (
        "product_condition",
        "RemainingPowerCapability.LastUpdate",
        "condition.measured_at.remaining_power_w",
        "timestamp",
    ),
    *_measured("EvolutionOfSelfDischarge", "EvolutionOfSelfDischargeValue", "self_discharge_evolution_pct"),
    *_measured("CurrentSelfDischargingRate", "CurrentSelfDischargingRateValue", "current_self_discharge_rate_pct"),
    *_measured(
        "RemainingRoundTripEnergyEfficiency",
        "RemainingRoundTripEnergyEfficiencyValue",
        "remaining_round_trip_efficiency_pct",
    ),
    *_measured("StateOfCharge", "StateOfChargeValue", "state_of_charge_pct"),
    # Part 6, Material Composition (the battery model).
    ("material_composition", "BatteryChemistry.ShortName", "identity.chemistry", "string"),
    ("material_composition", "BatteryChemistry.ClearName", "identity.chemistry_name", "string"),
    ("material_composition", _MAT + "BatteryMaterialLocation.ComponentName", _DC + "location", "string"),
    ("material_composition", _MAT + "BatteryMaterialLocation.ComponentId", _DC + "component_id", "string"),
    ("material_composition", _MAT + "BatteryMaterialIdentifier", _DC + "cas", "string"),
    ("material_composition", _MAT + "BatteryMaterialName", _DC + "name", "string"),
    ("material_composition", _MAT + "BatteryMaterialMass", _DC + "mass_kg", "number"),
    ("material_composition", _MAT + "IsCriticalRawMaterial", _DC + "critical", "boolean"),
    ("material_composition", _HAZ + "HazardousSubstanceClass", _HS + "hazard_class", "string"),
    ("material_composition", _HAZ + "HazardousSubstanceName", _HS + "name", "string"),
    ("material_composition", _HAZ + "HazardousSubstanceIdentifier", _HS + "cas", "string"),
    ("material_composition", _HAZ + "HazardousSubstanceConcentration", _HS + "concentration_pct", "number"),
    ("material_composition", _HAZ + "HazardousSubstanceImpact", _HS + "impacts", "strings"),
    ("material_composition", _HAZ + "HazardousSubstanceLocation.ComponentName", _HS + "location", "string"),
    ("material_composition", _HAZ + "HazardousSubstanceLocation.ComponentId", _HS + "component_id", "string"),
    # Part 7, Circularity (the battery model).
    ("circularity", "SparePartSources[].SupplierWebAddress", "dismantling.spare_part_sources[]", "string"),
    *_recycled("Cobalt"),
    *_recycled("Nickel"),
    *_recycled("Lithium"),
    *_recycled("Lead"),
    ("circularity", "SafetyMeasures.ExtinguishingAgents", "labels.extinguishing_agents", "strings"),
    ("circularity", "RenewableContent", "circularity.renewable_content_pct", "number"),
    # The same values in a second place: the manufacturer is named on the nameplate and in the technical data,
    # and the remaining power capability carries its time twice.
    ("technical_data", "GeneralInformation.ManufacturerName", "identity.manufacturer_name", "string"),
    ("technical_data", "GeneralInformation.ManufacturerIdentifier", "identity.manufacturer_id", "string"),
    (
        "product_condition",
        "RemainingPowerCapability.RemainingPowerCapabilityValue.RPCLastUpdated",
        "condition.measured_at.remaining_power_w",
        "timestamp",
    ),
)

# (part, path, why): properties kept as extension data (under TAGS' tag, else the part's) and not moved.
KEPT: tuple[tuple[str, str, str], ...] = (
    ("digital_nameplate", "AddressInformation", "the manufacturer's contact details; the node has no field for them"),
    ("digital_nameplate", "Markings", "markings and their certificates; the node has no field for them"),
    ("digital_nameplate", "EUDeclarationOfConformity", "handover-document identifiers"),
    ("digital_nameplate", "ResultsOfTestReportsProvingCompliance", "handover-document identifiers (authorities)"),
    ("handover_documentation", "Documents", "the documents themselves, each under the tag of what refers to it"),
    ("technical_data", "GeneralInformation.CompanyLogo", "the node has no field for it"),
    ("technical_data", "GeneralInformation.ProductImages", "the node has no field for them"),
    ("technical_data", "TechnicalPropertyAreas.Lifetime.CycleLifeReferenceTest", "handover-document identifiers"),
    ("product_condition", "InformationOnAccidents", "handover-document identifiers"),
    ("circularity", "DismantlingAndRemovalInformation", "handover-document identifiers"),
    ("circularity", "SparePartSources[].NameOfSupplier", "the supplier's contact details"),
    ("circularity", "SparePartSources[].AddressOfSupplier", "the supplier's contact details"),
    ("circularity", "SparePartSources[].EmailAddressOfSupplier", "the supplier's contact details"),
    ("circularity", "SparePartSources[].Components", "the parts a supplier offers"),
    ("circularity", "RecycledContentInformation[].RecycledMaterial", "the key of each recycled-content item"),
    ("circularity", "SafetyMeasures.SafetyInstructions", "handover-document identifiers"),
    ("circularity", "EndOfLifeInformation", "handover-document identifiers (Art. 74 end-user information)"),
)
