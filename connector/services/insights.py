"""Insights: what the battery value chain adds up to, from the passports' public data (docs/federation.md).

The figures are computed from the public view of every passport this node knows: its own, and those the federated
catalog crawled from participants' public passport listings. A group (a chemistry, a category, a material) smaller
than the minimum number of batteries or of operators is not shown, so that no single firm's data can be read out
of an aggregate; the counts by manufacturer, public per passport anyway, only obey the battery minimum.
"""

from __future__ import annotations

import statistics
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from connector.services.passports import render
from connector.store import Store
from connector.store.passports import PassportFilter

# Minimum recycled content of Art. 8(2) and 8(3) of Regulation (EU) 2023/1542, in per cent.
MINIMUM_RECYCLED = {
    "cobalt": {"2031": 16.0, "2036": 26.0},
    "lithium": {"2031": 6.0, "2036": 12.0},
    "nickel": {"2031": 6.0, "2036": 15.0},
    "lead": {"2031": 85.0, "2036": 85.0},
}
SOH_BINS = tuple(range(0, 100, 10))  # state of health in bins of 10 points: 0-10, ..., 90-100


@dataclass(frozen=True, slots=True)
class InsightsConfig:
    """The minimum group sizes (CONNECTOR_INSIGHTS_MIN_BATTERIES, CONNECTOR_INSIGHTS_MIN_OPERATORS) and the cache."""

    min_batteries: int = 10
    min_operators: int = 3
    cache_seconds: float = 60.0


@dataclass(frozen=True, slots=True)
class Figure:
    """One figure: a table (columns and rows) with what it says, and the groups left out as too small."""

    id: str
    title: str
    description: str
    columns: tuple[str, ...]
    rows: tuple[tuple[Any, ...], ...]
    suppressed: tuple[str, ...] = ()
    chart: str = "bar"  # bar: the last column per row; box: min, q1, median, q3, max; recycled: shares

    def as_json(self) -> dict[str, Any]:
        """Return the figure as JSON: rows as objects keyed by column."""
        return {
            "id": self.id,
            "title": self.title,
            "description": self.description,
            "columns": list(self.columns),
            "rows": [dict(zip(self.columns, row, strict=True)) for row in self.rows],
            "suppressed": list(self.suppressed),
        }

    def as_csv(self) -> str:
        """Return the figure's table as CSV (RFC 4180)."""
        import csv
        import io

        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\r\n")
        writer.writerow(self.columns)
        writer.writerows(self.rows)
        return out.getvalue()


@dataclass(frozen=True, slots=True)
class Insights:
    """The figures and what they were computed from."""

    generated_at: int
    sources: tuple[dict[str, Any], ...]
    batteries: int
    min_batteries: int
    min_operators: int
    figures: tuple[Figure, ...] = field(default_factory=tuple)

    def figure(self, figure_id: str) -> Figure | None:
        """Return one figure by its id."""
        return next((f for f in self.figures if f.id == figure_id), None)

    def as_json(self) -> dict[str, Any]:
        """Return everything as JSON."""
        return {
            "generatedAt": datetime.fromtimestamp(self.generated_at / 1000, UTC).isoformat(timespec="seconds"),
            "batteries": self.batteries,
            "minimumGroup": {"batteries": self.min_batteries, "operators": self.min_operators},
            "sources": list(self.sources),
            "figures": [f.as_json() for f in self.figures],
        }


@dataclass(slots=True)
class _Battery:
    operator: str
    category: str | None
    chemistry: str | None
    manufacturer: str | None
    footprint_per_kwh: float | None
    recycled: dict[str, float]
    state_of_health: float | None


def _number(value: Any) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def _group(view: dict[str, Any], name: str) -> dict[str, Any]:
    found = view.get(name)
    return found if isinstance(found, dict) else {}


def battery_of(view: dict[str, Any], operator: str, state_of_health: float | None = None) -> _Battery:
    """Read what Insights uses from a passport's public view (`operator`: whose node it came from, the fallback)."""
    identity = _group(view, "identity")
    footprint = _group(view, "carbon_footprint")
    circularity = _group(view, "circularity")
    condition = _group(view, "condition")
    recycled = {}
    for material in MINIMUM_RECYCLED:
        share = _number(circularity.get(f"recycled_{material}_pct"))
        if share is not None:
            recycled[material] = share
    soh = _number(condition.get("state_of_health_pct"))
    return _Battery(
        operator=str(identity.get("operator_id") or identity.get("manufacturer_id") or operator),
        category=identity.get("category") if isinstance(identity.get("category"), str) else None,
        chemistry=identity.get("chemistry") if isinstance(identity.get("chemistry"), str) else None,
        manufacturer=str(identity.get("manufacturer_name") or identity.get("manufacturer_id") or "") or None,
        footprint_per_kwh=_number(footprint.get("kgco2e_per_kwh")),
        recycled=recycled,
        state_of_health=soh if soh is not None else state_of_health,
    )


class InsightsService:
    """Computes the Insights figures (cached for a short while: the page is public)."""

    def __init__(self, store: Store, config: InsightsConfig, clock: Callable[[], float] = time.time) -> None:
        self._store = store
        self.config = config
        self._clock = clock
        self._cached: tuple[float, Insights] | None = None

    def forget(self) -> None:
        """Drop the cached figures (an entry changed)."""
        self._cached = None

    async def insights(self) -> Insights:
        """Return the figures, computed at most once per cache period."""
        now = self._clock()
        if self._cached is not None and self._cached[0] > now:
            return self._cached[1]
        computed = await self._compute()
        self._cached = (now + self.config.cache_seconds, computed)
        return computed

    async def _compute(self) -> Insights:
        batteries: list[_Battery] = []
        seen: set[str] = set()
        sources: list[dict[str, Any]] = []
        own = 0
        after: tuple[int, str] | None = None
        while True:
            async with self._store.read() as tx:
                page = await tx.passports.page(PassportFilter(after=after, limit=1000))
            for record in page:
                view = render(record.data, ())
                condition = _group(record.data, "condition")
                batteries.append(battery_of(view, "this node", _number(condition.get("state_of_health_pct"))))
                seen.add(record.id)
                own += 1
            if len(page) < 1000:
                break
            after = (page[-1].updated_at, page[-1].id)
        sources.append({"kind": "own passports", "passports": own})
        # Copies sync jobs hold of partners' passports: only their public parts count (rendered with no level), so a
        # partner's state of health, granted to this node at a higher level for its own purpose, is left out.
        copies: Counter[str] = Counter()
        cursor: tuple[str, str] | None = None
        while True:
            async with self._store.read() as tx:
                held = await tx.sync.synced_views(cursor, 2000)
            for passport_id, _job_id, partner_id, data in held:
                if passport_id in seen:
                    continue
                seen.add(passport_id)
                batteries.append(battery_of(render(data, ()), partner_id))
                copies[partner_id] += 1
            if len(held) < 2000:
                break
            cursor = (held[-1][0], held[-1][1])
        for partner_id, count in sorted(copies.items()):
            sources.append({"kind": "synced copies", "partner": partner_id, "passports": count})
        async with self._store.read() as tx:
            participants = {p.id: p for p in await tx.federation.all()}
        crawled: Counter[str] = Counter()
        key: tuple[str, str] | None = None
        while True:
            async with self._store.read() as tx:
                rows = await tx.federation.public_views(key, 2000)
            for participant_id, passport_id, data in rows:
                if passport_id in seen or not isinstance(data, dict):
                    continue
                seen.add(passport_id)
                participant = participants.get(participant_id)
                batteries.append(
                    battery_of(data, participant.did or participant.name if participant else participant_id)
                )
                crawled[participant_id] += 1
            if len(rows) < 2000:
                break
            key = (rows[-1][0], rows[-1][1])
        for participant_id, count in sorted(crawled.items()):
            participant = participants.get(participant_id)
            sources.append(
                {
                    "kind": "crawled public views",
                    "participant": participant.did or participant.name if participant else participant_id,
                    "passports": count,
                    "crawledAt": participant.last_success_at if participant else None,
                }
            )
        figures = _figures(batteries, self.config)
        return Insights(
            int(self._clock() * 1000),
            tuple(sources),
            len(batteries),
            self.config.min_batteries,
            self.config.min_operators,
            figures,
        )


def _enough(group: Iterable[_Battery], config: InsightsConfig) -> bool:
    items = list(group)
    return len(items) >= config.min_batteries and len({b.operator for b in items}) >= config.min_operators


def _counts(
    figure_id: str,
    title: str,
    what: str,
    batteries: list[_Battery],
    key: Callable[[_Battery], str | None],
    config: InsightsConfig,
    operators_rule: bool = True,
) -> Figure:
    groups: dict[str, list[_Battery]] = defaultdict(list)
    for battery in batteries:
        groups[key(battery) or "not given"].append(battery)
    rows, suppressed = [], []
    for name, members in sorted(groups.items(), key=lambda item: (-len(item[1]), item[0])):
        ok = _enough(members, config) if operators_rule else len(members) >= config.min_batteries
        if ok:
            rows.append((name, len(members)))
        else:
            suppressed.append(name)
    return Figure(figure_id, title, f"Batteries by {what}.", (what, "batteries"), tuple(rows), tuple(suppressed))


def _quartiles(values: list[float]) -> tuple[float, float, float, float, float]:
    ordered = sorted(values)
    if len(ordered) == 1:
        v = ordered[0]
        return v, v, v, v, v
    q1, median, q3 = statistics.quantiles(ordered, n=4, method="inclusive")
    return ordered[0], q1, median, q3, ordered[-1]


def _figures(batteries: list[_Battery], config: InsightsConfig) -> tuple[Figure, ...]:
    figures = [
        _counts("by-category", "Batteries by category", "category", batteries, lambda b: b.category, config),
        _counts("by-chemistry", "Batteries by chemistry", "chemistry", batteries, lambda b: b.chemistry, config),
        _counts(
            "by-manufacturer",
            "Batteries by manufacturer",
            "manufacturer",
            batteries,
            lambda b: b.manufacturer,
            config,
            operators_rule=False,
        ),
    ]
    # Carbon footprint per kWh by chemistry: the distribution of each group that is large enough.
    groups: dict[str, list[_Battery]] = defaultdict(list)
    for battery in batteries:
        if battery.footprint_per_kwh is not None:
            groups[battery.chemistry or "not given"].append(battery)
    rows, suppressed = [], []
    for chemistry, members in sorted(groups.items()):
        if not _enough(members, config):
            suppressed.append(chemistry)
            continue
        low, q1, median, q3, high = _quartiles(
            [b.footprint_per_kwh for b in members if b.footprint_per_kwh is not None]
        )
        rows.append(
            (chemistry, len(members), round(low, 2), round(q1, 2), round(median, 2), round(q3, 2), round(high, 2))
        )
    figures.append(
        Figure(
            "carbon-footprint",
            "Carbon footprint per kWh, by chemistry",
            "Declared life-cycle carbon footprint (kg CO2e per kWh of total energy over the service life): "
            "minimum, quartiles and maximum of each chemistry.",
            ("chemistry", "batteries", "min", "q1", "median", "q3", "max"),
            tuple(rows),
            tuple(suppressed),
            chart="box",
        )
    )
    # Recycled content against the regulation's minimum shares.
    recycled_rows: list[tuple[Any, ...]] = []
    suppressed = []
    for material, minimum in MINIMUM_RECYCLED.items():
        members = [b for b in batteries if material in b.recycled]
        if not _enough(members, config):
            suppressed.append(material)
            continue
        shares = [b.recycled[material] for b in members]
        meets_2031 = sum(1 for s in shares if s >= minimum["2031"]) * 100.0 / len(shares)
        meets_2036 = sum(1 for s in shares if s >= minimum["2036"]) * 100.0 / len(shares)
        recycled_rows.append(
            (
                material,
                len(members),
                round(statistics.fmean(shares), 1),
                round(statistics.median(shares), 1),
                minimum["2031"],
                round(meets_2031, 1),
                minimum["2036"],
                round(meets_2036, 1),
            )
        )
    figures.append(
        Figure(
            "recycled-content",
            "Recycled content against the minimum shares",
            "Share of recycled cobalt, lithium, nickel and lead declared in the passports, and the share of batteries "
            "that meet the minimum of Art. 8 of Regulation (EU) 2023/1542 for 2031 and for 2036.",
            (
                "material",
                "batteries",
                "mean %",
                "median %",
                "minimum 2031 %",
                "meeting 2031 %",
                "minimum 2036 %",
                "meeting 2036 %",
            ),
            tuple(recycled_rows),
            tuple(suppressed),
            chart="recycled",
        )
    )
    # State of health, where published.
    members = [b for b in batteries if b.state_of_health is not None]
    bins: Counter[int] = Counter()
    for battery in members:
        assert battery.state_of_health is not None
        bins[min(90, int(battery.state_of_health // 10) * 10)] += 1
    shown = _enough(members, config)
    figures.append(
        Figure(
            "state-of-health",
            "State of health",
            "Batteries by state of health (per cent of the original capacity), in bins of ten points.",
            ("state of health %", "batteries"),
            tuple((f"{low}-{low + 10}", bins[low]) for low in SOH_BINS) if shown else (),
            () if shown or not members else ("all",),
        )
    )
    return tuple(figures)
