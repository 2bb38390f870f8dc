"""Generated passports for tests and benchmarks: valid, distinct, deterministic, a few models."""

from __future__ import annotations

import random
from typing import Any

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
