"""Queries over stored objects (the EDC QuerySpec): paging, sorting and filter criteria."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from connector.domain.assets import Criterion

DEFAULT_LIMIT = 50
MAX_LIMIT = 10_000

# Criterion operators as EDC defines them.
OPERATORS = ("=", "!=", "<", "<=", ">", ">=", "in", "like", "ilike", "contains")


class SortOrder(StrEnum):
    """Direction of sorting."""

    ASC = "ASC"
    DESC = "DESC"


@dataclass(frozen=True, slots=True)
class QuerySpec:
    """Which page of which objects, in which order."""

    offset: int = 0
    limit: int = DEFAULT_LIMIT
    sort_field: str | None = None
    sort_order: SortOrder = SortOrder.ASC
    filter_expression: tuple[Criterion, ...] = ()
