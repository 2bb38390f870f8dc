"""Rewrite the README's Performance table from the benchmarks' result lines (bench/results/*.jsonl).

Only the text between the two markers below is replaced; the rest of the README is left byte for byte. Each
figure appears once: the newest result line of each (benchmark, figure) wins.
Run: python bench/readme_table.py [--results DIR] [--readme FILE]
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from harness import RESULTS, ROOT, fmt, fmt_ratio

START = "<!-- performance-table:start (written by `make bench`, bench/readme_table.py) -->"
END = "<!-- performance-table:end -->"


class MarkersMissing(ValueError):
    """The README has not exactly one pair of markers, start before end."""


def read_results(folder: Path) -> list[dict[str, Any]]:
    """Return the newest result of each (benchmark, figure), in the order the figures first appeared."""
    newest: dict[tuple[str, str], dict[str, Any]] = {}
    for path in sorted(folder.glob("*.jsonl")):
        for line in path.read_text().splitlines():
            if line.strip():
                record = json.loads(line)
                newest[(record.get("bench", path.stem), record["figure"])] = record
    return list(newest.values())


def _cell(text: object) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def render(records: Iterable[dict[str, Any]]) -> str:
    """Return the Markdown table of the records."""
    lines = [
        "| Figure | Median | Baseline (same run) | Ratio | Target | Measured by | Date | Machine |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in records:
        unit = r.get("unit", "")
        baseline = ""
        if r.get("baseline") is not None:
            baseline = f"{fmt(r['baseline'])} {unit} ({r.get('baseline_label') or 'bare'})"
        ratio = fmt_ratio(r["ratio"]) if r.get("ratio") is not None else ""
        target = r.get("target") or ""
        if target:
            target += " met" if r.get("met") else " **missed**" if r.get("met") is False else ""
            if r.get("unsteady"):
                target += " not shown (rounds unsteady)"
            if r.get("capped"):
                target += " not judged (load generator capped the baseline)"
        tool = f"{r.get('bench', '')}, {r.get('tool') or 'in-process'}, {r.get('rounds', 1)} rounds"
        cells = [
            r["figure"],
            f"{fmt(r['median'])} {unit}",
            baseline,
            ratio,
            target,
            tool,
            r.get("date", ""),
            r.get("machine", ""),
        ]
        lines.append("| " + " | ".join(_cell(c) for c in cells) + " |")
    return "\n".join(lines)


def rewrite(readme: str, table: str, note: str = "") -> str:
    """Return the README with the text between the markers replaced by the table."""
    if readme.count(START) != 1 or readme.count(END) != 1 or readme.index(START) > readme.index(END):
        raise MarkersMissing(f"the README needs exactly one {START!r} followed by one {END!r}")
    head, rest = readme.split(START, 1)
    _, tail = rest.split(END, 1)
    lead = f"{note}\n\n" if note else ""
    return f"{head}{START}\n{lead}{table}\n{END}{tail}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--results", type=Path, default=RESULTS)
    parser.add_argument("--readme", type=Path, default=ROOT / "README.md")
    parser.add_argument("--note", default="", help="a line written above the table (how the run was made)")
    args = parser.parse_args(argv)
    records = read_results(args.results)
    if not records:
        print(f"readme_table: no result lines in {args.results}; the README is left as it is", file=sys.stderr)
        return 1
    try:
        text = rewrite(args.readme.read_text(), render(records), args.note)
    except MarkersMissing as exc:
        print(f"readme_table: {exc}", file=sys.stderr)
        return 1
    args.readme.write_text(text)
    print(f"readme_table: wrote {len(records)} figures into {args.readme}'s Performance section")
    return 0


if __name__ == "__main__":
    sys.exit(main())
