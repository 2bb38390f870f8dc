"""Verified presentations and self-issued tokens per second, DID documents cached, against raw joserfc verification.

Measures `credentials.verify_presentation` with 1 credential (membership) and 3 (membership, role, BPN), with
status list checking on (credentials carry a BitstringStatusListEntry; a StatusListChecker over an in-memory fetch,
its list cached) and off (no status entries, no checker); DID documents from a StaticResolver or a warmed
CachingResolver. Then `tokens.verify_token` on fresh self-issued ID tokens (each carrying an access token, as a
node sends them) with a MemoryReplayCache. The baseline is joserfc's own compact JWS verification of one token
in the same run; each ratio says how many raw verifications one operation costs, beside the number of signatures
it must check. Prints medians over several rounds; never fails on time: the numbers are informational.

Run: python bench/bench_identity.py [--rounds N] [--seconds S] [--key Ed25519|P-256]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
import warnings
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

from harness import Result, emit  # bench/harness.py (scripts run from bench/)

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from joserfc import jws
from joserfc.errors import SecurityWarning
from joserfc.jws import JWSRegistry

from connector.identity import credentials as vc
from connector.identity.did import build_did_document, parse_did_document
from connector.identity.keys import KeyKind, generate_key
from connector.identity.resolver import CachingResolver, DidResolver, StaticResolver
from connector.identity.status import StatusListChecker, create_status_list_credential
from connector.identity.tokens import MemoryReplayCache, issue_token, verify_token

ISSUER = "did:web:issuer.example"
HOLDER = "did:web:recycler.example"
VERIFIER = "did:web:provider.example"
STATUS_URL = "https://issuer.example/status/1"
BPN = "BPNL000000000001"


class Parties:
    """Keys, DID documents, credentials and presentations of one issuer, one holder and one verifier."""

    def __init__(self, kind: KeyKind) -> None:
        self.issuer_key = generate_key(kind)
        self.holder_key = generate_key(kind)
        self.documents = {
            ISSUER: build_did_document(ISSUER, self.issuer_key, None),
            HOLDER: build_did_document(
                HOLDER,
                self.holder_key,
                "https://recycler.example/api/dsp/2025-1",
                credential_service_url="https://recycler.example/api/credentials",
            ),
        }
        self.static = StaticResolver(parse_did_document(doc, did) for did, doc in self.documents.items())
        self.trusted = vc.TrustedIssuers.of({"*": [ISSUER]})
        now = datetime.now(UTC).replace(microsecond=0)
        self.valid = (now - timedelta(minutes=1), now + timedelta(days=1))
        # Revoked entries exist in the list; the presented ones are not among them.
        self.status_list = create_status_list_credential(
            self.issuer_key, ISSUER, STATUS_URL, [3, 17, 4096], valid_from=self.valid[0], valid_until=self.valid[1]
        )

    def credentials(self, count: int, with_status: bool) -> list[str]:
        kinds = [
            (vc.MEMBERSHIP_CREDENTIAL, {"holderIdentifier": BPN}),
            (vc.ROLE_CREDENTIAL, {"role": "recycler"}),
            (vc.BPN_CREDENTIAL, {"bpn": BPN}),
        ][:count]
        return [
            vc.issue_credential(
                self.issuer_key,
                ISSUER,
                HOLDER,
                [kind],
                claims,
                self.valid[0],
                self.valid[1],
                vc.StatusEntry(STATUS_URL, 100 + i) if with_status else None,
            )
            for i, (kind, claims) in enumerate(kinds)
        ]

    def presentation(self, count: int, with_status: bool) -> str:
        return vc.present(self.holder_key, HOLDER, self.credentials(count, with_status), VERIFIER, lifetime=3600)

    def caching_resolver(self) -> CachingResolver:
        documents = self.documents

        async def fetch(did: str) -> dict[str, object]:
            return documents[did]

        return CachingResolver(fetch)

    def status_checker(self, resolver: DidResolver) -> StatusListChecker:
        status_list = self.status_list

        async def fetch(url: str) -> str:
            assert url == STATUS_URL
            return status_list

        return StatusListChecker(fetch, resolver)

    def token(self) -> str:
        access = issue_token(self.holder_key, HOLDER, VERIFIER)
        return "Bearer " + issue_token(self.holder_key, HOLDER, VERIFIER, access_token=access)


async def rate(fn: Callable[[], Awaitable[object]], seconds: float, batch: int = 20) -> float:
    """Return calls per second of fn over about `seconds`."""
    n = 0
    start = time.perf_counter()
    deadline = start + seconds
    while True:
        for _ in range(batch):
            await fn()
        n += batch
        now = time.perf_counter()
        if now >= deadline:
            return n / (now - start)


async def main(args: argparse.Namespace) -> None:
    # Raw joserfc flags "EdDSA" as deprecated (RFC 9864) on every call; the node silences it the same way.
    warnings.filterwarnings("ignore", message="EdDSA is deprecated", category=SecurityWarning)
    parties = Parties(args.key)
    holder_public = parse_did_document(parties.documents[HOLDER], HOLDER).key(None, "capabilityInvocation")
    assert holder_public is not None
    registry = JWSRegistry(algorithms=["EdDSA", "ES256"], strict_check_header=False)
    baseline_jws = parties.token().removeprefix("Bearer ").encode("ascii")

    async def raw() -> None:
        jws.deserialize_compact(baseline_jws, holder_public.key, registry=registry)

    cases: dict[str, tuple[Callable[[], Awaitable[object]], int]] = {}
    for count in (1, 3):
        for with_status in (False, True):
            vp = parties.presentation(count, with_status)
            resolvers: list[tuple[str, DidResolver]] = [
                ("static", parties.static),
                ("caching", parties.caching_resolver()),
            ]
            for resolver_name, resolver in resolvers:
                if resolver_name == "caching" and not (count == 3 and with_status):
                    continue  # the node's own configuration; one case is enough to compare resolvers
                checker = parties.status_checker(resolver) if with_status else None

                async def verify(
                    vp: str = vp, resolver: DidResolver = resolver, checker: StatusListChecker | None = checker
                ) -> vc.VerifiedClaims:
                    return await vc.verify_presentation(vp, VERIFIER, HOLDER, resolver, parties.trusted, checker)

                verified = await verify()  # warms the caching resolver and the status list cache
                assert len(verified.credentials) == count
                label = f"VP, {count} credential{'s' if count > 1 else ''}, status {'on ' if with_status else 'off'}"
                cases[f"{label}, {resolver_name} DIDs"] = (verify, 1 + count)

    # Tokens are single-use: issue enough fresh ones up front for every round (bounded by --tokens).
    replays = MemoryReplayCache()
    tokens = [parties.token() for _ in range(args.tokens)]
    for token in tokens[:3]:
        await verify_token(token, VERIFIER, parties.static, MemoryReplayCache())
    token_rates: list[float] = []

    results: dict[str, list[float]] = {"raw joserfc (one JWS, key imported)": []}
    results.update({name: [] for name in cases})
    per_round = args.tokens // args.rounds
    for r in range(args.rounds):
        results["raw joserfc (one JWS, key imported)"].append(await rate(raw, args.seconds))
        for name, (fn, _) in cases.items():
            results[name].append(await rate(fn, args.seconds))
        chunk = tokens[r * per_round : (r + 1) * per_round]
        start = time.perf_counter()
        for token in chunk:
            await verify_token(token, VERIFIER, parties.static, replays)
        token_rates.append(len(chunk) / (time.perf_counter() - start))

    raw_rate = statistics.median(results["raw joserfc (one JWS, key imported)"])
    print(
        f"key {args.key}; {args.rounds} rounds of {args.seconds} s per case; DID documents cached; "
        f"status list cached after the first check"
    )
    print(f"{'':60s} {'per second':>12s} {'(min)':>10s}  raw/op  signatures")
    signatures = {name: sigs for name, (_, sigs) in cases.items()}
    signatures["raw joserfc (one JWS, key imported)"] = 1
    for name, values in results.items():
        med = statistics.median(values)
        print(f"{name:60s} {med:12,.0f} {min(values):10,.0f}  {raw_rate / med:6.1f}  {signatures[name]:10d}")
    med = statistics.median(token_rates)
    label = f"self-issued token (verify_token, replay cache, {per_round} fresh)"
    print(f"{label:60s} {med:12,.0f} {min(token_rates):10,.0f}  {raw_rate / med:6.1f}  {1:10d}")
    print(f"raw joserfc verification of one JWS: {raw_rate:,.0f}/s ({1e6 / raw_rate:.0f} µs)")
    emit(
        Result(
            f"DSP token verifications/s ({label.strip()})",
            med,
            "tokens/s",
            raw_rate,
            "raw joserfc JWS verification",
            tool="in-process",
            rounds=args.rounds,
        )
    )


def parse_args() -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=5, help="rounds; the median is printed (default 5)")
    ap.add_argument("--seconds", type=float, default=0.4, help="seconds per case and round (default 0.4)")
    ap.add_argument("--tokens", type=int, default=5_000, help="fresh tokens verified over all rounds (default 5,000)")
    ap.add_argument("--key", choices=["Ed25519", "P-256"], default="Ed25519", help="key kind of issuer and holder")
    args = ap.parse_args()
    if args.rounds < 1 or args.seconds <= 0 or args.tokens < args.rounds:
        ap.error("need rounds >= 1, seconds > 0 and at least one token per round")
    return args


if __name__ == "__main__":
    asyncio.run(main(parse_args()))
