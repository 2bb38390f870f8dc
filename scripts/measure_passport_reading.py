"""Time reading and writing the Catena-X BatteryPass 6.1.0 example (about 14.6 KB, every section filled).

Prints microseconds per passport (best of five runs) for: parsing the bytes, the schema validators the
node could use (docs/decisions/0010-passport-validator.md), `load_document` (validation and mapping),
`to_catenax` and `to_json`. Uses only the public functions, so it also runs on older commits for a
before/after. fastjsonschema is measured when installed (`pip install fastjsonschema==2.22.3`); the node
does not depend on it. Usage: `.venv/bin/python scripts/measure_passport_reading.py [--runs N]`.
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson

from connector.domain import passport as model

EXAMPLE = Path(__file__).resolve().parents[1] / "tests/data/passports/catenax-sldt/io.catenax.battery.battery_pass"


def best(fn: Callable[[], Any], runs: int) -> float:
    """Return the best of five timings of `runs` calls, in microseconds per call."""
    fn()
    timings = []
    for _ in range(5):
        start = time.perf_counter()
        for _ in range(runs):
            fn()
        timings.append((time.perf_counter() - start) / runs)
    return min(timings) * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=2000)
    runs = parser.parse_args().runs
    raw = (EXAMPLE / "6.1.0/gen/BatteryPass.json").read_bytes()
    document = orjson.loads(raw)
    document["operation"]["intoServiceDate"] = "2024-02-29"  # the published value names no day
    rows = [
        ("orjson.loads of the bytes", best(lambda: orjson.loads(raw), runs)),
        ("json.loads of the bytes", best(lambda: json.loads(raw), runs)),
    ]
    try:
        from connector.domain.passport import validation
    except ImportError:  # a commit before validation
        validation = None  # type: ignore[assignment]
    if validation is not None:
        compiled = validation._compiled("catenax-6.1")
        rows.append(
            ("jsonschema-rs is_valid (schema + node rules)", best(lambda: compiled.validator.is_valid(document), runs))
        )
        rows.append(
            (
                "jsonschema-rs iter_errors (every error)",
                best(lambda: list(compiled.validator.iter_errors(document)), runs),
            )
        )
        rows.append(
            ("validation.check (schema, rules, reasons)", best(lambda: validation.check("catenax-6.1", document), runs))
        )
        try:
            import fastjsonschema

            fast = fastjsonschema.compile(compiled.schema)
            rows.append(("fastjsonschema (first error only)", best(lambda: fast(document), runs)))
        except ImportError:
            pass
    rows.append(("load_document (check and map)", best(lambda: model.load_document(document), runs)))
    passport = model.load_document(document)
    rows.append(("to_catenax", best(lambda: model.to_catenax(passport), runs)))
    rows.append(("to_json", best(lambda: passport.to_json(), runs)))
    for label, micros in rows:
        print(f"{label:48s} {micros:8.1f} us")


if __name__ == "__main__":
    main()
