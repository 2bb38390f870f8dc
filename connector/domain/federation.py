"""The federated catalog's entities: participants to crawl, the datasets found, and what a search asks for."""

from __future__ import annotations

import base64
import hashlib
import re
from dataclasses import dataclass, field
from typing import Any

from connector import vocab
from connector.domain import selection
from connector.domain.assets import Criterion
from connector.domain.errors import InvalidInput, Problem

# Short names of the asset types a search filters on (dct:type of a dataset), and the IRIs they stand for.
ASSET_TYPES = {
    "DigitalTwinRegistry": "https://w3id.org/catenax/taxonomy#DigitalTwinRegistry",
    "ReceiveQualityInvestigationNotification": "https://w3id.org/catenax/taxonomy#ReceiveQualityInvestigationNotification",
    "ReceiveQualityAlertNotification": "https://w3id.org/catenax/taxonomy#ReceiveQualityAlertNotification",
    "Submodel": "https://w3id.org/catenax/taxonomy#Submodel",
}
MAX_SEARCH_LIMIT = 1000
DEFAULT_SEARCH_LIMIT = 50
# Datasets EDC's federated catalog query evaluates in memory, per query, for criteria on properties the store does
# not hold as columns (past it the query is refused naming the criterion: narrow it with an indexed criterion).
MAX_EVALUATED = 10_000
MAX_CHANGES_LISTED = 1000  # dataset ids listed per crawl as appeared or disappeared (the counts are exact)


_WORD = re.compile(r"[^\W_]+")
MAX_WORD = 256


def words(text: str) -> list[str]:
    """Return the distinct lower-case words of a text (runs of letters and digits), in order of appearance."""
    return list(dict.fromkeys(w[:MAX_WORD] for w in _WORD.findall(text.lower())))


def prefix_bound(prefix: str) -> str | None:
    """Return the least text above every text that starts with `prefix` (None when there is none to write).

    A word starts with `prefix` exactly when `prefix <= word < prefix_bound(prefix)` in code point order.
    """
    for end in range(len(prefix) - 1, -1, -1):
        point = ord(prefix[end]) + 1
        if 0xD800 <= point <= 0xDFFF:
            point = 0xE000  # surrogates are no text
        if point <= 0x10FFFF:
            return prefix[:end] + chr(point)
    return None


def participant_id(name: str) -> str:
    """Return the stable id of a participant named by a DID, a BPN or a DSP address (the same name, the same id)."""
    return hashlib.sha256(name.strip().rstrip("/").encode()).hexdigest()[:16]


@dataclass(frozen=True, slots=True)
class Participant:
    """A participant this node crawls, with the status of its crawls."""

    id: str
    name: str
    origin: str  # "api" or "file"
    added_at: int
    did: str | None = None
    address: str | None = None
    last_attempt_at: int | None = None
    last_success_at: int | None = None
    last_error: str | None = None
    datasets: int = 0
    passports: int = 0
    expired_at: int | None = None

    def stale(self, now: int, interval_ms: int) -> bool:
        """Tell whether the entry is not from the latest attempt, or older than two crawl periods."""
        if self.last_success_at is None:
            return self.last_attempt_at is not None
        if self.last_attempt_at is not None and self.last_attempt_at > self.last_success_at:
            return True
        return interval_ms > 0 and now - self.last_success_at > 2 * interval_ms


@dataclass(frozen=True, slots=True)
class DatasetEntry:
    """One dataset as a crawl found it, with the columns a search filters on."""

    dataset_id: str
    provider: str
    title: str | None
    keywords: tuple[str, ...]
    battery_category: str | None
    chemistry: str | None
    model: str | None
    access_level: str | None
    asset_type: str | None
    document: dict[str, Any]

    @property
    def search_text(self) -> str:
        """The lower-case text free-text search matches: title and keywords."""
        return " ".join([self.title or "", *self.keywords]).lower()

    @property
    def words(self) -> list[str]:
        """The words free-text search finds the dataset by."""
        return words(self.search_text)


@dataclass(frozen=True, slots=True)
class FoundDataset:
    """A dataset a search found: the entry and the participant whose catalog listed it."""

    participant_id: str
    entry: DatasetEntry


@dataclass(frozen=True, slots=True)
class Crawl:
    """One crawl of one participant and what it changed."""

    run_key: str
    participant_id: str
    started_at: int
    outcome: str
    finished_at: int | None = None
    error: str | None = None
    datasets: int | None = None
    appeared: tuple[str, ...] = ()
    disappeared: tuple[str, ...] = ()
    appeared_count: int = 0
    disappeared_count: int = 0


@dataclass(frozen=True, slots=True)
class DatasetFilter:
    """What a dataset search asks for; every field narrows it. `after` is the (participant, dataset) keyset cursor."""

    provider: str | None = None  # a participant id or the provider's DID
    battery_category: str | None = None
    chemistry: str | None = None
    model: str | None = None
    access_level: str | None = None
    asset_type: str | None = None
    text: str | None = None
    participant_ids: tuple[str, ...] | None = None  # the participants whose entries are readable (not expired)
    after: tuple[str, str] | None = None
    limit: int = DEFAULT_SEARCH_LIMIT
    extra: dict[str, str] = field(default_factory=dict)
    # EDC QuerySpec criteria on indexed fields only (their operandLeft a key of CRITERION_COLUMNS).
    criteria: tuple[Criterion, ...] = ()


# The operands of an EDC Criterion the store answers from its columns, as full IRIs (see criterion_column); they
# match the indexed value, as the dataset search's filters do. Any other property is read from the dataset itself.
CRITERION_COLUMNS = {
    vocab.DCT + "type": "asset_type",
    vocab.BPC + "batteryCategory": "battery_category",
    vocab.BPC + "chemistry": "chemistry",
    vocab.BPC + "batteryModel": "model",
    vocab.EDC + "passportAccessLevel": "access_level",
    vocab.BPC + "passportAccessLevel": "access_level",
    vocab.DSPACE + "participantId": "provider",
    "dspace:participantId": "provider",
}


def criterion_column(operand_left: str) -> str | None:
    """Return the column a criterion's operandLeft names (the dataset id, an indexed field), or None."""
    if operand_left in selection.ID_KEYS:
        return "dataset_id"
    return CRITERION_COLUMNS.get(operand_left) or CRITERION_COLUMNS.get(selection.normalise_key(operand_left))


def asset_type_iri(value: str) -> str:
    """Return the IRI an asset type filter names (a short name of ASSET_TYPES, or the IRI itself)."""
    return ASSET_TYPES.get(value, value)


def encode_cursor(found: FoundDataset) -> str:
    """Return the keyset cursor after a found dataset."""
    raw = f"{found.participant_id}\n{found.entry.dataset_id}".encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[str, str]:
    """Read a keyset cursor; InvalidInput when it is not one this node wrote."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        participant, dataset = raw.split("\n", 1)
    except (ValueError, UnicodeDecodeError):
        raise InvalidInput("cursor is not one this node wrote", [Problem("invalid cursor", "cursor", cursor)]) from None
    return participant, dataset
