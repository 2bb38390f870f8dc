"""Scheduled sync jobs and their runs (docs/sync.md): what a job names, what a run records.

A job names a partner (its DSP address, and its DID or BPN), which of its datasets (ids, or criteria on its
catalog; none: every battery-passport dataset it offers this node), a schedule (an ISO 8601 interval such as
PT15M, or a five-field cron expression read in a time zone) and a destination (this node's store, a folder as
JSON Lines, or an HTTP endpoint of the operator's).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from connector.domain.assets import Criterion


class JobState(StrEnum):
    """Whether the scheduler runs a job."""

    ACTIVE = "ACTIVE"
    PAUSED = "PAUSED"


class RunState(StrEnum):
    """A run's state: RUNNING until it ends SUCCEEDED or FAILED."""

    RUNNING = "RUNNING"
    SUCCEEDED = "SUCCEEDED"
    FAILED = "FAILED"


DESTINATIONS = ("store", "folder", "http")
# Where a job reads what changed: the partner's change feed (this node's kind), its Digital Twin Registry by
# createdAfter (CX-0160's bulk mode, any Catena-X provider), or the feed when the partner offers one.
MODES = ("auto", "feed", "registry")


@dataclass(frozen=True, slots=True)
class Destination:
    """Where a job's passports go: `store` (this node's database), `folder` (JSON Lines files) or `http`."""

    type: str = "store"
    path: str | None = None  # folder
    url: str | None = None  # http
    headers: dict[str, str] = field(default_factory=dict)  # http: sent with each page (never shown back)

    def as_json(self, shown: bool = True) -> dict[str, Any]:
        """Return the destination as the API shows it (header values hidden unless `shown` is False)."""
        out: dict[str, Any] = {"type": self.type}
        if self.path is not None:
            out["path"] = self.path
        if self.url is not None:
            out["url"] = self.url
        if self.headers:
            out["headers"] = {k: "***" if shown else v for k, v in self.headers.items()}
        return out


@dataclass(frozen=True, slots=True)
class SyncJob:
    """One sync job."""

    id: str
    partner_address: str
    partner_id: str | None
    datasets: tuple[str, ...]
    dataset_filter: tuple[Criterion, ...]
    schedule: str
    time_zone: str
    destination: Destination
    state: JobState
    created_at: int
    updated_at: int
    mode: str = "auto"


@dataclass(frozen=True, slots=True)
class SyncRun:
    """The record of one run."""

    id: str
    job_id: str
    run_key: str
    state: RunState
    started_at: int
    ended_at: int | None = None
    new: int = 0
    changed: int = 0
    unchanged: int = 0
    removed: int = 0
    refused: int = 0
    refusals: tuple[dict[str, Any], ...] = ()
    bytes: int = 0
    error: str | None = None
    seconds: dict[str, float] = field(default_factory=dict)


_DURATION = re.compile(r"^P(?:(?P<d>\d+)D)?(?:T(?:(?P<h>\d+)H)?(?:(?P<m>\d+)M)?(?:(?P<s>\d+(?:\.\d+)?)S)?)?$")


def interval_seconds(schedule: str) -> float | None:
    """Return the seconds of an ISO 8601 duration (PT15M, P1D, PT30S); None when it is not one."""
    match = _DURATION.match(schedule.strip().upper())
    if match is None or not any(match.groupdict().values()) or schedule.strip().upper().endswith("T"):
        return None
    parts = match.groupdict()
    return (
        int(parts["d"] or 0) * 86_400 + int(parts["h"] or 0) * 3600 + int(parts["m"] or 0) * 60 + float(parts["s"] or 0)
    )
