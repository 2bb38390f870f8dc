"""Benchmark the policy engine on a typical passport policy (5 constraints, one logical constraint).

Prints evaluations per second cold (compile every time, no cache) and warm (cached plan), the median over
several rounds, and a hand-written Python baseline doing the same 5 comparisons, with the ratio. It never
fails on time: the numbers are informational.

Run: python bench/bench_policies.py [--rounds N] [--seconds S]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

from harness import Result, emit  # bench/harness.py (scripts run from bench/)

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from policies import EvaluationContext, Scope, evaluate, parse_policy
from policies.engine import compile_policy, normalize_action
from policies.registry import default_registry

BPC = "https://w3id.org/battery-passport-connector/ns/"
POLICY = {
    "@type": "Offer",
    "@id": "urn:offer:passport:legit",
    "permission": [
        {
            "action": "use",
            "constraint": [
                {"leftOperand": BPC + "accessLevel", "operator": "isAnyOf", "rightOperand": ["legitimate_interest"]},
                {"leftOperand": "odrl:purpose", "operator": "isAnyOf", "rightOperand": ["repair", "recycling"]},
                {
                    "leftOperand": "odrl:dateTime",
                    "operator": "lt",
                    "rightOperand": {"@value": "2030-01-01T00:00:00Z", "@type": "xsd:dateTime"},
                },
                {
                    "or": [
                        {"leftOperand": BPC + "membership", "operator": "eq", "rightOperand": True},
                        {
                            "leftOperand": "https://w3id.org/tractusx/v0.0.1/ns/BusinessPartnerNumber",
                            "operator": "eq",
                            "rightOperand": "BPNL000000000001",
                        },
                    ]
                },
            ],
        }
    ],
}
CTX = EvaluationContext(
    participant_id="did:web:recycler.example",
    claims={"roles": ["recycler"], "membership": True, "bpn": "BPNL000000000001"},
    purpose="recycling",
    now=datetime(2026, 3, 1, 12, 0, tzinfo=UTC),
)
LIMIT = datetime(2030, 1, 1, tzinfo=UTC)
LEGIT_ROLES = frozenset({"repairer", "remanufacturer", "repurposer", "recycler", "second_life_operator"})
PURPOSES = frozenset({"repair", "recycling"})


def baseline(ctx: EvaluationContext) -> bool:
    """Hand-written equivalent of the policy: the same 5 comparisons, no explanation."""
    roles = ctx.claims.get("roles", ())
    if not any(r in LEGIT_ROLES for r in roles):  # type: ignore[attr-defined]
        return False
    if ctx.purpose not in PURPOSES:
        return False
    if not ctx.now < LIMIT:
        return False
    return ctx.claims.get("membership") is True or ctx.claims.get("bpn") == "BPNL000000000001"


def rate(fn: Callable[[], object], seconds: float) -> float:
    n = 0
    batch = 200
    start = time.perf_counter()
    deadline = start + seconds
    while True:
        for _ in range(batch):
            fn()
        n += batch
        now = time.perf_counter()
        if now >= deadline:
            return n / (now - start)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--seconds", type=float, default=0.4)
    args = ap.parse_args()

    policy = parse_policy(POLICY)
    registry = default_registry()
    action = normalize_action("use")
    first = evaluate(policy, "use", CTX, Scope.DATA_REQUEST)
    assert first.permitted, first.reason
    assert baseline(CTX)

    def cold() -> object:
        return compile_policy(policy, registry).evaluate(action, CTX, Scope.DATA_REQUEST)

    def warm() -> object:
        return evaluate(policy, "use", CTX, Scope.DATA_REQUEST)

    def base() -> object:
        return baseline(CTX)

    results: dict[str, list[float]] = {"cold (compile + evaluate)": [], "warm (cached plan)": [], "baseline": []}
    for _ in range(args.rounds):
        results["cold (compile + evaluate)"].append(rate(cold, args.seconds))
        results["warm (cached plan)"].append(rate(warm, args.seconds))
        results["baseline"].append(rate(base, args.seconds))

    print(f"policy: 5 atomic constraints, 1 logical (or); scope data_request; {args.rounds} rounds")
    medians = {k: statistics.median(v) for k, v in results.items()}
    for name, med in medians.items():
        print(f"{name:28s} {med:12,.0f} evaluations/s  (median; min {min(results[name]):,.0f})")
    warm_rate = medians["warm (cached plan)"]
    print(f"baseline / warm ratio        {medians['baseline'] / warm_rate:12.1f}x")
    print(f"warm / cold ratio            {warm_rate / medians['cold (compile + evaluate)']:12.1f}x")
    target = 50_000
    print(f"target {target:,}/s warm: {'met' if warm_rate >= target else 'NOT met'}")
    emit(
        Result(
            "policy evaluations/s (warm, cached plan; 5 constraints)",
            warm_rate,
            "eval/s",
            medians["baseline"],
            "the same checks in plain Python",
            f">= {target:,}/s",
            warm_rate >= target,
            "in-process",
            args.rounds,
        )
    )


if __name__ == "__main__":
    main()
