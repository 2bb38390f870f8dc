"""Generated passports for tests and benchmarks: valid, distinct, deterministic, a few models.

`generate` gives small records in the node's own JSON; `generate_catenax` gives Catena-X BatteryPass 6.1.0
documents as partners send them (every section of the format filled, 10-15 KB of compact JSON each), and
`catenax_documents` yields a run of them one at a time, so a file of any length is written in constant memory.
"""

from __future__ import annotations

import copy
import random
import uuid
from collections.abc import Iterator
from datetime import date, timedelta
from typing import Any, NamedTuple

MODELS = ("EVX-75-NMC", "EVX-100-NMC", "CITY-40-LFP", "STOR-200-LFP", "SCOOT-2-NMC")
CATEGORIES = {"EVX-75-NMC": "ev", "EVX-100-NMC": "ev", "CITY-40-LFP": "ev", "STOR-200-LFP": "stationary"}


def generate(i: int, *, seed: int = 0) -> dict[str, Any]:
    """Return passport number `i` in the node's JSON (about 3 KB), the same for the same (i, seed)."""
    rng = random.Random(i * 7919 + seed)
    model = MODELS[i % len(MODELS)]
    chemistry = "LFP" if model.endswith("LFP") else "NMC 811"
    serial = f"{seed:02d}{i:010d}"
    return {
        "identity": {
            "passport_id": f"urn:uuid:00000000-0000-4000-8{seed:03d}-{i:012d}",
            "battery_id": f"https://id.gs1.org/01/09520123456788/21/{serial}",
            "model_id": model,
            "gtin": "09520123456788",
            "serial_number": serial,
            "manufacturer_id": "BPNL000000000001",
            "manufacturer_name": "Example Cells GmbH",
            "manufacturing_place": "Salzgitter, DE",
            "manufacturing_date": f"20{26 + i % 2}-{1 + i % 12:02d}",
            "category": CATEGORIES.get(model, "lmt"),
            "chemistry": chemistry,
            "mass_kg": round(300 + rng.random() * 200, 1),
            "warranty_months": 96,
        },
        "carbon_footprint": {
            "kgco2e_per_kwh": round(50 + rng.random() * 30, 2),
            "performance_class": "B",
            "study_url": f"https://example.com/cf/{model}",
            "share_raw_material_pct": 61.5,
            "share_main_production_pct": 30.0,
            "share_distribution_pct": 2.5,
            "share_end_of_life_pct": 6.0,
        },
        "due_diligence": {"report_url": "https://example.com/due-diligence-2026.pdf"},
        "materials": {
            "critical_raw_materials": ["lithium", "graphite"] + (["cobalt", "nickel"] if "NMC" in chemistry else []),
            "hazardous_substances": [
                {"name": "lithium hexafluorophosphate", "cas": "21324-40-3", "location": "electrolyte"}
            ],
        },
        "circularity": {
            "recycled_cobalt_pct": 12.0,
            "recycled_lithium_pct": 4.0,
            "recycled_nickel_pct": 6.5,
            "recycled_lead_pct": 0.0,
            "renewable_content_pct": 3.0,
            "end_user_info_urls": ["https://example.com/take-back"],
        },
        "performance": {
            "rated_capacity_ah": 150.0,
            "certified_usable_energy_kwh": 75.0,
            "voltage_min_v": 280.0,
            "voltage_nominal_v": 355.0,
            "voltage_max_v": 403.0,
            "original_power_w": 150000.0,
            "expected_lifetime_cycles": 2000,
            "capacity_threshold_exhaustion_pct": 70.0,
            "idle_temperature_min_c": -20.0,
            "idle_temperature_max_c": 45.0,
            "initial_round_trip_efficiency_pct": 95.0,
            "round_trip_efficiency_50pct_life_pct": 92.0,
            "internal_resistance_pack_ohm": 0.08,
        },
        "labels": {
            "declaration_of_conformity_id": f"DoC-{model}-2026",
            "declaration_of_conformity_urls": [f"https://example.com/doc/{model}.pdf"],
            "separate_collection_symbol": True,
            "extinguishing_agents": ["water", "foam"],
        },
        "dismantling": {
            "detailed_composition": [
                {"name": "cathode active material", "concentration_pct": 31.0, "location": "cathode"},
                {"name": "graphite", "cas": "7782-42-5", "concentration_pct": 17.0, "location": "anode"},
            ],
            "component_part_numbers": [f"{model}-MOD-{k}" for k in range(4)],
            "spare_part_sources": ["https://example.com/spares"],
            "dismantling_urls": [f"https://example.com/dismantling/{model}"],
            "safety_measure_urls": ["https://example.com/safety"],
        },
        "test_reports": {"test_report_urls": [f"https://example.com/reports/{model}/un38.3.pdf"]},
        "condition": {
            "status": "original",
            "put_into_service": f"20{26 + i % 2}-{1 + (i + 2) % 12:02d}",
            "state_of_health_pct": round(80 + rng.random() * 20, 1),
            "state_of_certified_energy_pct": round(80 + rng.random() * 20, 1),
            "state_of_charge_pct": round(rng.random() * 100, 1),
            "remaining_capacity_ah": round(120 + rng.random() * 30, 1),
            "full_cycles": rng.randrange(0, 1500),
            "deep_discharge_events": rng.randrange(0, 5),
            "last_update": "2026-11-01T00:00:00Z",
        },
    }


# Catena-X BatteryPass 6.1.0 (io.catenax.battery.battery_pass:6.1.0), every section filled as in the
# official example (tests/data/passports/catenax-sldt/.../6.1.0/gen/BatteryPass.json), with plausible values.

SPEC_6_1 = "urn:io.catenax.battery.battery_pass:6.1.0"


NCM, LFP = "Nickel Cobalt Manganese (NCM)", "Lithium Iron Phosphate (LFP)"


class CatenaxModel(NamedTuple):
    """A battery model's rated data: what every passport of the model shares."""

    part: str
    name: str
    category: str  # the Catena-X category enumeration
    chemistry: str
    volts: tuple[float, float, float]  # nominal, minimum, maximum
    ah: float
    kwh: float
    watts: float
    kg: float


CATENAX_MODELS = (
    CatenaxModel("EVX-75-NMC", "EVX 75 kWh traction pack", "EV", NCM, (355, 280, 403), 211, 75, 150e3, 480),
    CatenaxModel("EVX-100-NMC", "EVX 100 kWh traction pack", "EV", NCM, (400, 320, 450), 250, 100, 200e3, 620),
    CatenaxModel("CITY-40-LFP", "City 40 kWh traction pack", "EV", LFP, (320, 260, 365), 125, 40, 90e3, 310),
    CatenaxModel("STOR-200-LFP", "Storage 200 kWh rack", "industrial", LFP, (768, 672, 864), 260, 200, 100e3, 1900),
    CatenaxModel("SCOOT-2-NMC", "Scooter 2 kWh pack", "LMT", NCM, (48, 39, 54.6), 42, 2, 3e3, 12),
    CatenaxModel(
        "START-12-AGM", "12 V start-stop battery", "SLI", "Lead Acid (AGM)", (12, 10.5, 14.4), 70, 0.84, 9e3, 21
    ),
)
_PLANTS = ("BPNA0000000001AA", "BPNA0000000002AB", "BPNA0000000003AC", "BPNA0000000004AD")
_OPERATORS = ("BPNL00000003AYRE", "BPNL00000007RXRX", "BPNL000000000001", "BPNL0000000001AB")
_PRODUCERS = ("BPNL00000003CRHK", "BPNL00000003B6LU", "BPNL0000000002CD", "BPNL0000000009XY", "BPNL0000000005EF")
_LIFECYCLES = (
    "raw material acquisition and pre-processing",
    "main product production",
    "distribution",
    "end of life and recycling",
)
_FOOTPRINT_TYPES = ("Climate Change Total", "Climate Change Fossil", "Climate Change Biogenic Removals and Emissions")
_SOURCE_CATEGORIES = (
    "Product Specifications",
    "User Manuals and Guides",
    "Certifications and Compliance",
    "Safety Information",
    "Repair and Installation",
    "End of Life",
    "Technical Documentation",
)
_COMPOSITION = (
    ("CAS", "lithium hexafluorophosphate", "21324-40-3", "electrolyte"),
    ("CAS", "graphite", "7782-42-5", "anode"),
    ("CAS", "aluminium", "7429-90-5", "housing"),
    ("CAS", "copper", "7440-50-8", "anode current collector"),
    ("CAS", "ethylene carbonate", "96-49-1", "electrolyte"),
    ("CAS", "polyvinylidene fluoride", "24937-79-9", "binder"),
    ("EC", "lithium nickel manganese cobalt oxide", "700-210-3", "cathode"),
    ("CAS", "lithium iron phosphate", "15365-14-7", "cathode"),
    ("IUPAC", "dimethyl carbonate", "methoxycarbonyloxymethane", "electrolyte"),
)
_HAZARDOUS_OTHER = (
    ("CAS", "lithium hexafluorophosphate", "21324-40-3", "electrolyte"),
    ("CAS", "nickel sulphate", "7786-81-4", "cathode"),
    ("CAS", "cobalt sulphate", "10124-43-3", "cathode"),
)
_AGENTS = (("Water", "A"), ("Dry Powder", "A, B, C"), ("Foam", "A, B"), ("Carbon Dioxide", "B"))


def _document(rng: random.Random, topic: str, part: str, year: int) -> dict[str, str]:
    number = rng.randrange(1000, 99999)
    return {
        "contentType": "application/pdf" if rng.random() < 0.7 else "URL",
        "header": f"{topic.replace('-', ' ').capitalize()} ({year})",
        "content": f"https://docs.example-cells.com/{part.lower()}/{number}.pdf",
    }


def _documents(rng: random.Random, topic: str, part: str, year: int, most: int = 1) -> list[Any]:
    return [_document(rng, topic, part, year) for _ in range(rng.randint(1, most))]


def _stamp(rng: random.Random, day: date) -> str:
    moment = f"{day.isoformat()}T{rng.randrange(24):02d}:{rng.randrange(60):02d}:{rng.randrange(60):02d}"
    return moment + (f".{rng.randrange(1000):03d}+01:00" if rng.random() < 0.5 else "Z")


def _record(rng: random.Random, value: float, day: date) -> dict[str, Any]:
    return {"value": value, "time": _stamp(rng, day)}


def _uuid(rng: random.Random) -> str:
    return f"urn:uuid:{uuid.UUID(int=rng.getrandbits(128), version=4)}"


def _substance(rng: random.Random, entry: tuple[str, str, str, str], part: str, year: int) -> dict[str, Any]:
    kind, name, number, location = entry
    return {
        "location": location,
        "critical": rng.random() < 0.4,
        "documentation": _documents(rng, "substance-" + name.split()[0], part, year),
        "materialIdentification": [{"type": kind, "name": name, "id": number}],
    }


def generate_catenax(i: int, *, seed: int = 0) -> dict[str, Any]:
    """Return Catena-X BatteryPass 6.1.0 document number `i`, every section filled, the same for the same (i, seed).

    Valid against the official 6.1.0 JSON schema and the node's product rules (real dates, every share and
    concentration within 0-100 whatever its unit, canonical lower-case UUIDs, a predecessor that is not the
    passport itself); 10-15 KB of compact JSON; ids, dates, numbers and list lengths vary.
    """
    rng = random.Random(f"catenax-6.1:{seed}:{i}")
    part, name, category, chemistry, (nominal, v_min, v_max), ah, kwh, watts, kg = CATENAX_MODELS[
        i % len(CATENAX_MODELS)
    ]
    made = date(2024, 1, 1) + timedelta(days=rng.randrange(3 * 365))
    year = made.year
    issued = made + timedelta(days=rng.randrange(1, 30))
    placed = issued + timedelta(days=rng.randrange(1, 90))
    into_service = placed + timedelta(days=rng.randrange(1, 120))
    measured = into_service + timedelta(days=rng.randrange(1, 700))
    modified = measured + timedelta(days=rng.randrange(0, 30))
    serial = f"{part[:4]}{seed:02d}{i:010d}"
    passport_id = _uuid(rng)
    predecessor = _uuid(rng) if rng.random() < 0.15 else "urn:uuid:00000000-0000-0000-0000-000000000000"
    operator = rng.choice(_OPERATORS)
    soh = round(rng.uniform(75, 100), 1)
    cycles = rng.randrange(0, 2500)
    lead = "Lead" in chemistry

    def share(low: float, high: float) -> float:
        return round(rng.uniform(low, high), 1)

    def active(metal: str) -> dict[str, Any]:
        return {
            "location": "cathode" if metal != "lithium" else "cathode and electrolyte",
            "recycled": share(0, 30),
            "critical": metal in ("cobalt", "lithium", "nickel"),
            "documentation": _documents(rng, f"recycled-{metal}", part, year),
        }

    def hazardous(metal: str) -> dict[str, Any]:
        return {
            "concentration": round(rng.uniform(0, 40 if metal == "lead" and lead else 4), 2),
            "location": "grid plates" if metal == "lead" and lead else "housing",
            "critical": metal != "lead" or lead,
            "impactOfSubstances": _documents(rng, f"impact-{metal}", part, year),
            "materialUnit": "unit:partPerMillion",
            "documentation": _documents(rng, f"hazardous-{metal}", part, year),
        }

    lead_hazardous = {**hazardous("lead"), "recycled": share(0, 85 if lead else 5)}
    lead_active = copy.deepcopy(lead_hazardous)  # the same values in both places, not the same object
    return {
        "specVersion": SPEC_6_1,
        "characteristics": {
            "physicalDimension": {
                "length": {"value": float(rng.randrange(200, 2200)), "unit": "unit:millimetre"},
                "width": {"value": float(rng.randrange(150, 1600)), "unit": "unit:millimetre"},
                "weight": {"value": round(kg * rng.uniform(0.98, 1.02), 1), "unit": "unit:kilogram"},
                "height": {"value": float(rng.randrange(90, 400)), "unit": "unit:millimetre"},
            },
            "warranty": {"lifeValue": rng.choice((5, 8, 10)), "lifeUnit": "unit:year"},
        },
        "metadata": {
            "backupReference": f"https://backup.example-cells.com/passports/{passport_id[9:]}",
            "registrationIdentifier": f"https://registry.example.eu/batteries/{serial}",
            "economicOperatorId": operator,
            "lastModification": modified.isoformat(),
            "predecessor": predecessor,
            "issueDate": issued.isoformat(),
            "version": f"1.{rng.randrange(4)}.{rng.randrange(10)}",
            "passportIdentifier": passport_id,
            "status": rng.choice(("approved", "approved", "approved", "draft")),
            "expirationDate": issued.replace(year=issued.year + 15, day=min(issued.day, 28)).isoformat(),
        },
        "commercial": {
            "placedOnMarket": placed.isoformat(),
            "purpose": ["automotive"] if category == "EV" else rng.sample(["stationary", "mobility", "industrial"], 2),
        },
        "sources": [
            {
                "header": f"{category_name} {part}",
                "category": category_name,
                "type": "URL",
                "content": f"https://docs.example-cells.com/batteries/{part.lower()}/sources/{k}",
            }
            for k, category_name in enumerate(rng.sample(_SOURCE_CATEGORIES, rng.randint(1, 3)))
        ],
        "sustainability": {
            "documents": {
                "separateCollection": _documents(rng, "separate-collection", part, year, most=2),
                "sustainabilityReport": _documents(rng, "sustainability-report", part, year, most=2),
                "euTaxonomyDisclosureStatement": _documents(rng, "eu-taxonomy", part, year),
                "wastePrevention": _documents(rng, "waste-prevention", part, year),
            },
            "carbonFootprint": [
                {
                    "lifecycle": lifecycle,
                    "rulebook": _documents(rng, "pef-rulebook", part, year),
                    "unit": "kg CO2 / kWh",
                    "performanceClass": rng.choice("ABC"),
                    "manufacturingPlant": [{"facility": plant} for plant in rng.sample(_PLANTS, rng.randint(1, 2))],
                    "type": rng.choice(_FOOTPRINT_TYPES),
                    "value": round(rng.uniform(1, 60), 3),
                    "declaration": _documents(rng, "carbon-footprint-declaration", part, year),
                }
                for lifecycle in _LIFECYCLES[: rng.randint(1, 3)]
            ],
            "status": rng.choice(("original",) * 8 + ("repurposed", "remanufactured")),
        },
        "identification": {
            "chemistry": chemistry,
            "idDmc": f"DMC{seed:02d}{i:012d}",
            "identification": {
                "batch": [{"value": f"B{year}{rng.randrange(100000):05d}", "key": "batchId"}],
                "codes": [
                    {"value": "8507 60 00", "key": "TARIC"},
                    {"value": f"0952012345{i % 10000:04d}", "key": "GTIN"},
                ],
                "type": {"manufacturerPartId": part, "nameAtManufacturer": name},
                "classification": [
                    {
                        "classificationStandard": "GIN 20510-21513",
                        "classificationID": f"10047{rng.randrange(10, 99)}",
                        "classificationDescription": "Generic standard for classification of parts in the automotive "
                        "industry.",
                    }
                ],
                "serial": [{"value": serial, "key": "partInstanceId"}, {"value": operator, "key": "manufacturerId"}],
                "dataCarrier": {
                    "carrierType": "QR",
                    "carrierLayout": rng.choice(("upper-left side", "top cover", "front label")),
                },
            },
            "category": category,
        },
        "performance": {
            "rated": {
                "roundTripEfficiency": {
                    "depthOfDischarge": share(80, 100),
                    "temperature": 25.0,
                    "50PercentLife": share(85, 92),
                    "initial": share(92, 98),
                },
                "selfDischargingRate": round(rng.uniform(0.5, 3), 2),
                "performanceDocument": _documents(rng, "rated-performance", part, year),
                "testReport": _documents(rng, "rated-test-report", part, year),
                "temperature": {"lower": float(rng.choice((-30, -25, -20))), "upper": float(rng.choice((45, 55, 60)))},
                "lifetime": {
                    "report": _documents(rng, "cycle-life-report", part, year),
                    "cycleLifeTesting": {
                        "temperature": 25.0,
                        "depthOfDischarge": share(80, 100),
                        "appliedDischargeRate": rng.choice((0.5, 1.0, 2.0)),
                        "cycles": rng.randrange(1000, 6000, 100),
                        "appliedChargeRate": rng.choice((0.3, 0.5, 1.0)),
                    },
                    "expectedYears": rng.randint(8, 15),
                },
                "power": {
                    "at20SoC": round(watts * rng.uniform(0.7, 0.85)),
                    "temperature": 25.0,
                    "value": float(watts),
                    "at80SoC": round(watts * rng.uniform(0.9, 0.98)),
                },
                "resistance": {
                    "temperature": 25.0,
                    "cell": round(rng.uniform(0.0005, 0.003), 5),
                    "pack": round(rng.uniform(0.05, 0.2), 4),
                    "module": round(rng.uniform(0.005, 0.02), 4),
                },
                "voltage": {"temperature": 25.0, "min": float(v_min), "nominal": float(nominal), "max": float(v_max)},
                "energy": {"temperature": 25.0, "value": float(kwh)},
                "capacity": {
                    "temperature": 25.0,
                    "value": float(ah),
                    "thresholdExhaustion": rng.choice((60.0, 70.0, 80.0)),
                },
            },
            "dynamic": {
                "selfDischargingRate": round(rng.uniform(0.5, 4), 2),
                "roundTripEfficiency": {
                    "remaining": _record(rng, share(85, 97), measured),
                    "fade": _record(rng, share(0, 8), measured),
                },
                "operatingEnvironment": _documents(rng, "operating-environment", part, year),
                "stateOfCharge": _record(rng, share(5, 100), measured),
                "performanceDocument": _documents(rng, "dynamic-performance", part, year),
                "fullCycles": {"value": cycles, "time": _stamp(rng, measured)},
                "power": {
                    "remaining": _record(rng, round(watts * soh / 100), measured),
                    "fade": _record(rng, round(100 - soh, 1), measured),
                },
                "negativeEvents": _documents(rng, "negative-events", part, year),
                "resistance": {
                    "increase": {level: _record(rng, share(0, 40), measured) for level in ("cell", "pack", "module")},
                    "remaining": {
                        level: _record(rng, round(rng.uniform(0.001, 0.3), 4), measured)
                        for level in ("cell", "pack", "module")
                    },
                },
                "capacity": {
                    "fade": _record(rng, round(100 - soh, 1), measured),
                    "throughput": _record(rng, round(ah * cycles * rng.uniform(0.8, 1.0), 1), measured),
                    "capacity": _record(rng, round(ah * soh / 100, 1), measured),
                },
                "energy": {
                    "remaining": _record(rng, round(kwh * soh / 100, 2), measured),
                    "soce": _record(rng, soh, measured),
                    "throughput": _record(rng, round(kwh * cycles * rng.uniform(0.8, 1.0), 1), measured),
                },
            },
        },
        "materials": {
            "hazardous": {
                "cadmium": hazardous("cadmium"),
                "other": [
                    {
                        **_substance(rng, entry, part, year),
                        "impactOfSubstances": _documents(rng, "impact-other", part, year),
                        "concentration": round(rng.uniform(0.1, 15), 2),
                        "materialUnit": "unit:percent",
                    }
                    for entry in rng.sample(_HAZARDOUS_OTHER, rng.randint(1, 2))
                ],
                "mercury": hazardous("mercury"),
                "lead": lead_hazardous,
            },
            "active": {
                "nickel": active("nickel"),
                "lithium": active("lithium"),
                "cobalt": active("cobalt"),
                "other": [
                    {**_substance(rng, entry, part, year), "recycled": share(0, 25)}
                    for entry in rng.sample(_COMPOSITION[:4], 1)
                ],
                "lead": lead_active,
            },
            "composition": [
                {
                    "unit": "unit:percent",
                    "recycled": share(0, 30),
                    "critical": rng.random() < 0.4,
                    "renewable": share(0, 10),
                    "documentation": _documents(rng, "composition", part, year),
                    "concentration": share(0.5, 35),
                    "location": location,
                    "id": [{"type": kind, "name": substance, "id": number}],
                }
                for kind, substance, number, location in rng.sample(_COMPOSITION, rng.randint(2, 4))
            ],
        },
        "safety": {
            "usableExtinguishAgent": [
                {
                    "fireClass": fire_class,
                    "document": _documents(rng, "extinguishing", part, year),
                    "media": media,
                }
                for media, fire_class in rng.sample(_AGENTS, rng.randint(1, 3))
            ],
            "safeDischarging": _documents(rng, "safe-discharging", part, year),
            "meaningOfLabels": _documents(rng, "labels", part, year),
            "dismantling": _documents(rng, "dismantling", part, year, most=2),
            "removalFromAppliance": _documents(rng, "removal", part, year),
            "safetyMeasures": _documents(rng, "safety-measures", part, year, most=2),
        },
        "handling": {
            "applicable": True,
            "content": {
                "producer": [{"id": bpnl} for bpnl in rng.sample(_PRODUCERS, rng.randint(1, 3))],
                "sparePart": [
                    {"manufacturerPartId": f"{part}-{kind}-{k:02d}", "nameAtManufacturer": f"{kind.lower()} {k}"}
                    for k, kind in enumerate(
                        rng.sample(("MODULE", "BMS", "FUSE", "CONTACTOR", "COVER", "HARNESS"), rng.randint(2, 5))
                    )
                ],
            },
        },
        "conformity": {
            "declarationOfConformityId": f"DoC-{part}-{year}-{rng.randrange(100):02d}",
            "thirdPartyAssurance": _documents(rng, "third-party-assurance", part, year),
            "resultOfTestReport": _documents(rng, "test-report-result", part, year, most=2),
            "declarationOfConformity": _documents(rng, "declaration-of-conformity", part, year),
            "dueDiligencePolicy": _documents(rng, "due-diligence", part, year),
        },
        "operation": {
            "intoServiceDate": into_service.isoformat(),
            "manufacturer": {
                "facility": [{"facility": plant} for plant in rng.sample(_PLANTS, rng.randint(1, 2))],
                "manufacturingDate": made.isoformat(),
                "manufacturer": operator,
            },
        },
    }


def catenax_documents(count: int, *, start: int = 0, seed: int = 0) -> Iterator[dict[str, Any]]:
    """Yield Catena-X 6.1 documents `start` .. `start + count - 1`, one at a time (constant memory)."""
    for i in range(start, start + count):
        yield generate_catenax(i, seed=seed)
