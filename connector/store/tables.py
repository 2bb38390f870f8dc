"""The node's tables (SQLAlchemy Core). Alembic migrations create them; this file is their single description."""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    false,
)
from sqlalchemy.dialects.postgresql import JSONB

metadata = MetaData(
    naming_convention={
        "ix": "ix_%(column_0_label)s",
        "uq": "uq_%(table_name)s_%(column_0_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)

Json = JSON().with_variant(JSONB(), "postgresql")


def _text(length: int | None = None) -> String:
    """A string compared byte by byte on every database, as SQLite and Python compare them."""
    base = String(length) if length else Text()
    return base.with_variant(String(length, collation="C") if length else Text(collation="C"), "postgresql")


assets = Table(
    "assets",
    metadata,
    Column("id", _text(512), primary_key=True),
    Column("properties", Json, nullable=False),
    Column("private_properties", Json, nullable=False),
    Column("data_address_type", String(128), nullable=False),
    Column("data_address", Json, nullable=False),
    # Secrets of the data address (authCode and friends): never rendered, never logged.
    Column("data_address_secrets", Json, nullable=False),
    Column("created_at", BigInteger, nullable=False),
)

# One row per scalar property value, so selectors and filters run as indexed SQL, not in Python.
asset_properties = Table(
    "asset_properties",
    metadata,
    Column("asset_id", _text(512), ForeignKey("assets.id", ondelete="CASCADE"), nullable=False),
    Column("key", _text(1024), nullable=False),
    Column("private", Boolean, nullable=False),
    Column("value_text", _text(), nullable=True),
    Column("value_num", Float, nullable=True),
    Index("ix_asset_properties_key_text", "key", "value_text"),
    Index("ix_asset_properties_key_num", "key", "value_num"),
    # Probing "does asset X have key K with value V" is the inner loop of catalog selection.
    Index("ix_asset_properties_asset_key_text", "asset_id", "key", "value_text"),
)

policy_definitions = Table(
    "policy_definitions",
    metadata,
    Column("id", _text(512), primary_key=True),
    Column("policy", Json, nullable=False),
    Column("private_properties", Json, nullable=False),
    Column("created_at", BigInteger, nullable=False),
)

contract_definitions = Table(
    "contract_definitions",
    metadata,
    Column("id", _text(512), primary_key=True),
    Column(
        "access_policy_id",
        _text(512),
        ForeignKey("policy_definitions.id", ondelete="RESTRICT"),
        nullable=False,
        index=True,
    ),
    Column(
        "contract_policy_id",
        _text(512),
        ForeignKey("policy_definitions.id", ondelete="RESTRICT"),
        nullable=False,
        index=True,
    ),
    Column("assets_selector", Json, nullable=False),
    Column("private_properties", Json, nullable=False),
    Column("created_at", BigInteger, nullable=False),
)

# Token ids already accepted, kept until the token expires: a replayed token is refused on every replica.
seen_tokens = Table(
    "seen_tokens",
    metadata,
    Column("issuer", _text(512), primary_key=True),
    Column("jti", _text(256), primary_key=True),
    Column("expires_at", BigInteger, nullable=False, index=True),
)

# Verifiable credentials this node holds (VC-JWTs issued to it), presented to peers that ask.
held_credentials = Table(
    "held_credentials",
    metadata,
    Column("id", _text(512), primary_key=True),
    Column("types", Json, nullable=False),
    Column("issuer", _text(512), nullable=False),
    Column("valid_until", BigInteger, nullable=True),
    Column("jwt", Text, nullable=False),
    Column("created_at", BigInteger, nullable=False),
)

negotiations = Table(
    "negotiations",
    metadata,
    Column("id", _text(64), primary_key=True),
    Column("role", String(16), nullable=False),
    Column("state", String(16), nullable=False, index=True),
    Column("provider_pid", _text(256), nullable=True, index=True),
    Column("consumer_pid", _text(256), nullable=True, index=True),
    Column("counterparty_id", _text(512), nullable=False),
    Column("counterparty_address", Text, nullable=False),
    Column("offer", Json, nullable=False),
    Column("asset_id", _text(512), nullable=True),
    Column("definition_id", _text(512), nullable=True),
    Column("agreement", Json, nullable=True),
    Column("agreement_id", _text(256), nullable=True, index=True),
    Column("error_detail", Text, nullable=True),
    Column("awaiting_ack", String(64), nullable=True),
    Column("pending", Boolean, nullable=False, default=False),
    # When this node gives up waiting for the peer's next move (NULL when it does not wait on the peer).
    Column("deadline_at", BigInteger, nullable=True, index=True),
    # The consumer opens a pull transfer when the negotiation is finalized (POST /v3/edrs).
    Column("pull_when_finalized", Boolean, nullable=False, default=False, server_default=false()),
    Column("created_at", BigInteger, nullable=False),
    Column("updated_at", BigInteger, nullable=False),
    Column("version", BigInteger, nullable=False),
    # One process per pid of the consumer's: a request handled twice (two replicas) cannot open two.
    Index("uq_negotiations_peer", "role", "counterparty_id", "consumer_pid", unique=True),
)

agreements = Table(
    "agreements",
    metadata,
    Column("id", _text(256), primary_key=True),
    Column("negotiation_id", _text(64), nullable=False, index=True),
    Column("asset_id", _text(512), nullable=False, index=True),
    Column("provider_id", _text(512), nullable=False),
    Column("consumer_id", _text(512), nullable=False),
    Column("policy", Json, nullable=False),
    Column("signed_at", BigInteger, nullable=False),
)

transfers = Table(
    "transfers",
    metadata,
    Column("id", _text(64), primary_key=True),
    Column("role", String(16), nullable=False),
    Column("state", String(16), nullable=False, index=True),
    Column("provider_pid", _text(256), nullable=True, index=True),
    Column("consumer_pid", _text(256), nullable=True, index=True),
    Column("counterparty_id", _text(512), nullable=False),
    Column("counterparty_address", Text, nullable=False),
    Column("agreement_id", _text(256), nullable=False, index=True),
    Column("asset_id", _text(512), nullable=False),
    Column("transfer_type", String(64), nullable=False),
    Column("destination", Json, nullable=True),
    Column("data_address", Json, nullable=True),
    Column("error_detail", Text, nullable=True),
    Column("awaiting_ack", String(64), nullable=True),
    Column("token_generation", BigInteger, nullable=False),
    Column("suspended_by", String(16), nullable=True),
    Column("deadline_at", BigInteger, nullable=True, index=True),
    Column("created_at", BigInteger, nullable=False),
    Column("updated_at", BigInteger, nullable=False),
    Column("version", BigInteger, nullable=False),
    Index("uq_transfers_peer", "role", "counterparty_id", "consumer_pid", unique=True),
)

# One row per data-plane request: who, under which agreement, which dataset, the result and the bytes.
data_access = Table(
    "data_access",
    metadata,
    Column("id", BigInteger().with_variant(Integer(), "sqlite"), primary_key=True, autoincrement=True),
    Column("at", BigInteger, nullable=False, index=True),
    Column("transfer_id", _text(64), nullable=True, index=True),
    Column("agreement_id", _text(256), nullable=True),
    Column("consumer_id", _text(512), nullable=True),
    Column("asset_id", _text(512), nullable=True),
    Column("method", String(16), nullable=False),
    Column("path", Text, nullable=False),
    Column("status", Integer, nullable=False),
    Column("bytes", BigInteger, nullable=False),
    Column("reason", Text, nullable=True),
)

# Uses of data under an agreement (granted data-plane requests that were answered 2xx), for `count` constraints.
agreement_uses = Table(
    "agreement_uses",
    metadata,
    Column("agreement_id", _text(256), primary_key=True),
    Column("uses", BigInteger, nullable=False),
    Column("updated_at", BigInteger, nullable=False),
)

# Messages owed to peers, sent by the dispatcher; a row is claimed by lease so one replica sends it.
outbox = Table(
    "outbox",
    metadata,
    Column("id", _text(64), primary_key=True),
    Column("negotiation_id", _text(64), nullable=False, index=True),
    Column("message", String(64), nullable=False),
    Column("url", Text, nullable=False),
    Column("payload", Json, nullable=False),
    Column("counterparty", _text(512), nullable=False),
    Column("attempts", BigInteger, nullable=False),
    Column("next_attempt_at", BigInteger, nullable=False, index=True),
    Column("lease_owner", String(64), nullable=True),
    Column("lease_until", BigInteger, nullable=True),
    Column("last_error", Text, nullable=True),
    Column("created_at", BigInteger, nullable=False),
)

# Battery passports stored by the node: the current version of each, with the columns the data plane and
# the management API filter on. "Changed since" reads (updated_at, id) by index. The node's JSON is stored
# once, in its version's row: `data_version` names it (the current version; for a deleted passport, the
# last one stored before the deletion).
passports = Table(
    "passports",
    metadata,
    Column("id", _text(256), primary_key=True),
    Column("battery_id", _text(512), nullable=False, index=True),
    Column("model_id", _text(256), nullable=True, index=True),
    Column("manufacturer_id", _text(256), nullable=True, index=True),
    Column("category", String(32), nullable=True),
    Column("version", BigInteger, nullable=False),
    Column("data_version", BigInteger, nullable=False),
    Column("digest", String(64), nullable=False),
    Column("source_format", String(64), nullable=False),
    Column("created_at", BigInteger, nullable=False),
    Column("updated_at", BigInteger, nullable=False),
    Column("deleted_at", BigInteger, nullable=True),
    # The number of the commit that last changed the passport, handed out in commit order (the "passport_changes"
    # counter, taken right before the commit), so the change feed never finds a late commit behind its cursor.
    Column("change_seq", BigInteger, nullable=False, server_default="0"),
    Index("ix_passports_changed", "updated_at", "id"),
    Index("ix_passports_change_seq", "change_seq", "id"),
    Index("ix_passports_created", "created_at", "id"),  # the registry's shells, oldest first (createdAfter)
)

# Every version of every passport, in order (data is null for a deletion).
passport_versions = Table(
    "passport_versions",
    metadata,
    Column("passport_id", _text(256), primary_key=True),
    Column("version", BigInteger, primary_key=True),
    Column("data", Json, nullable=True),
    Column("digest", String(64), nullable=False),
    Column("source_format", String(64), nullable=False),
    Column("recorded_at", BigInteger, nullable=False),
    Column("deleted", Boolean, nullable=False),
    # Who recorded the version and what it changed (docs/lifecycle.md); null for versions stored before.
    Column("changed_by", Text, nullable=True),
    Column("changes", Json, nullable=True),
)

# A passport's place in its battery's life (docs/lifecycle.md): its predecessors (on this node or a partner's),
# the successors partners reported, and whether it is superseded. One row per passport that has any of those.
passport_lifecycle = Table(
    "passport_lifecycle",
    metadata,
    Column("passport_id", _text(256), primary_key=True),
    Column("predecessors", Json, nullable=False),
    Column("successors", Json, nullable=False),
    Column("superseded_at", BigInteger, nullable=True),
    Column("details", Json, nullable=False),
    Column("updated_at", BigInteger, nullable=False),
)

# Digital Twin Event notifications (CX-0151) received (the inbox) and sent (with their delivery state).
notifications = Table(
    "notifications",
    metadata,
    Column("message_id", _text(256), primary_key=True),
    Column("direction", String(8), primary_key=True),
    Column("partner", _text(512), nullable=False),
    Column("context", Text, nullable=False),
    Column("passport_id", _text(256), nullable=True, index=True),
    Column("message", Json, nullable=False),
    Column("state", String(16), nullable=False),
    Column("reason", Text, nullable=True),
    Column("created_at", BigInteger, nullable=False),
    Column("updated_at", BigInteger, nullable=False),
)

# How far a bulk import from one source got, and its counts so far, so an interrupted import resumes where
# it stopped and its totals still add up.
passport_imports = Table(
    "passport_imports",
    metadata,
    Column("source", _text(512), primary_key=True),
    Column("position", BigInteger, nullable=False),
    Column("new", BigInteger, nullable=False),
    Column("changed", BigInteger, nullable=False),
    Column("unchanged", BigInteger, nullable=False),
    Column("refused", BigInteger, nullable=False),
    Column("updated_at", BigInteger, nullable=False),
)

# The passport ids an import under way has taken (canonical form), with the record that took each: a later
# record with the same id in that import is refused, naming it. Dropped when the import ends.
passport_import_ids = Table(
    "passport_import_ids",
    metadata,
    Column("source", _text(512), primary_key=True),
    Column("passport_id", _text(256), primary_key=True),
    Column("position", BigInteger, nullable=False),
    Column("place", Text, nullable=False),
)

# Counters bumped in the same transaction as a change, so every replica can tell its caches are stale.
revisions = Table(
    "revisions",
    metadata,
    Column("name", String(64), primary_key=True),
    Column("value", BigInteger, nullable=False),
)

OFFERS_REVISION = "offers"
# Bumped by every commit that adds, replaces or deletes assets (right before the commit, store/__init__.py): the
# catalog's position maps of the assets each set of contract definitions selects are kept until it changes.
CATALOG_ASSETS_REVISION = "catalog_assets"

# The federated catalog (docs/federation.md): the participants this node crawls, and what each offered at its last
# good crawl. A crawl replaces a participant's datasets and public passports in one transaction.
federation_participants = Table(
    "federation_participants",
    metadata,
    Column("id", _text(64), primary_key=True),
    Column("name", _text(1024), nullable=False),  # as given: a DID, a BPN or a DSP address
    Column("origin", String(16), nullable=False),  # api or file
    Column("did", _text(1024), nullable=True),  # as last resolved
    Column("address", _text(2048), nullable=True),
    Column("added_at", BigInteger, nullable=False),
    Column("last_attempt_at", BigInteger, nullable=True),
    Column("last_success_at", BigInteger, nullable=True),
    Column("last_error", Text, nullable=True),
    Column("datasets", Integer, nullable=False, default=0),
    Column("passports", Integer, nullable=False, default=0),
    Column("expired_at", BigInteger, nullable=True),  # its entry was dropped by the retention setting
)

federation_datasets = Table(
    "federation_datasets",
    metadata,
    Column(
        "participant_id",
        _text(64),
        ForeignKey("federation_participants.id", ondelete="CASCADE"),
        primary_key=True,
    ),
    Column("dataset_id", _text(1024), primary_key=True),
    Column("provider", _text(1024), nullable=False),  # the DID of the catalog's participant
    Column("title", Text, nullable=True),
    Column("keywords", Text, nullable=True),
    Column("search_text", Text, nullable=False),  # lower-case title and keywords (their words: federation_words)
    Column("battery_category", _text(64), nullable=True),
    Column("chemistry", _text(128), nullable=True),
    Column("model", _text(256), nullable=True),
    Column("access_level", _text(64), nullable=True),
    Column("asset_type", _text(1024), nullable=True),
    Column("document", Json, nullable=False),  # the dataset as the provider sent it (expanded JSON-LD)
    Index("ix_federation_datasets_model", "model", "participant_id", "dataset_id"),
    Index("ix_federation_datasets_chemistry", "chemistry", "participant_id", "dataset_id"),
    Index("ix_federation_datasets_category", "battery_category", "participant_id", "dataset_id"),
    Index("ix_federation_datasets_level", "access_level", "participant_id", "dataset_id"),
    Index("ix_federation_datasets_type", "asset_type", "participant_id", "dataset_id"),
    Index("ix_federation_datasets_provider", "provider", "participant_id", "dataset_id"),
)

# The words of each dataset's title and keywords: free-text search reads this index, never scans the datasets.
federation_words = Table(
    "federation_words",
    metadata,
    Column("word", _text(256), primary_key=True),
    Column("participant_id", _text(64), primary_key=True),
    Column("dataset_id", _text(1024), primary_key=True),
)

# The public views of the passports a participant serves (Insights reads them).
federation_passports = Table(
    "federation_passports",
    metadata,
    Column(
        "participant_id",
        _text(64),
        ForeignKey("federation_participants.id", ondelete="CASCADE"),
        primary_key=True,
    ),
    Column("passport_id", _text(256), primary_key=True),
    Column("data", Json, nullable=False),
)

# One row per crawl: its run key is unique, so one crawl per participant and period runs across replicas.
federation_crawls = Table(
    "federation_crawls",
    metadata,
    Column("run_key", _text(256), primary_key=True),
    Column("participant_id", _text(64), nullable=False),
    Column("started_at", BigInteger, nullable=False),
    Column("finished_at", BigInteger, nullable=True),
    Column("outcome", String(16), nullable=False),  # running, succeeded, failed
    Column("error", Text, nullable=True),
    Column("datasets", Integer, nullable=True),
    Column("appeared", Json, nullable=True),  # dataset ids new since the previous good crawl (capped)
    Column("disappeared", Json, nullable=True),
    Column("appeared_count", Integer, nullable=True),
    Column("disappeared_count", Integer, nullable=True),
    Index("ix_federation_crawls_participant", "participant_id", "started_at"),
)

PASSPORT_CHANGES_REVISION = "passport_changes"
SYNC_JOBS_REVISION = "sync_jobs"

# Scheduled sync jobs: a partner, which of its datasets, a schedule and a destination (docs/sync.md). A job is
# leased by the node running it, so two runs of one job never overlap on any replica.
sync_jobs = Table(
    "sync_jobs",
    metadata,
    Column("id", _text(128), primary_key=True),
    Column("partner_address", Text, nullable=False),
    Column("partner_id", _text(512), nullable=True),
    Column("datasets", Json, nullable=False),
    Column("dataset_filter", Json, nullable=False),
    Column("schedule", String(256), nullable=False),
    Column("time_zone", String(64), nullable=False),
    Column("destination", Json, nullable=False),
    Column("mode", String(16), nullable=False),
    Column("state", String(16), nullable=False),
    Column("lease_owner", String(64), nullable=True),
    Column("lease_until", BigInteger, nullable=True),
    Column("created_at", BigInteger, nullable=False),
    Column("updated_at", BigInteger, nullable=False),
)

# One row per run; (job_id, run_key) is unique, the key naming the schedule's period: replicas firing the same
# period cannot both record (so run) it.
sync_runs = Table(
    "sync_runs",
    metadata,
    Column("id", _text(64), primary_key=True),
    Column("job_id", _text(128), ForeignKey("sync_jobs.id", ondelete="CASCADE"), nullable=False),
    Column("run_key", _text(128), nullable=False),
    Column("state", String(16), nullable=False),
    Column("started_at", BigInteger, nullable=False),
    Column("ended_at", BigInteger, nullable=True),
    Column("new", BigInteger, nullable=False),
    Column("changed", BigInteger, nullable=False),
    Column("unchanged", BigInteger, nullable=False),
    Column("removed", BigInteger, nullable=False),
    Column("refused", BigInteger, nullable=False),
    Column("refusals", Json, nullable=False),
    Column("bytes", BigInteger, nullable=False),
    Column("error", Text, nullable=True),
    # Where the run's time went: network, store, validation, total (seconds).
    Column("seconds", Json, nullable=False),
    Index("uq_sync_runs_key", "job_id", "run_key", unique=True),
    Index("ix_sync_runs_job_started", "job_id", "started_at"),
)

# How far a job got in each of its partner's datasets (the feed's cursor), and the transfer it reads it through.
sync_cursors = Table(
    "sync_cursors",
    metadata,
    Column("job_id", _text(128), ForeignKey("sync_jobs.id", ondelete="CASCADE"), primary_key=True),
    Column("dataset_id", _text(512), primary_key=True),
    Column("position", Text, nullable=True),
    Column("transfer_id", _text(64), nullable=True),
    Column("updated_at", BigInteger, nullable=False),
)

# Partners' passports as a job last read them, with their source: never this node's own passports (not
# published, not in its change feed). `data` is null for a tombstone and for destinations outside the store.
synced_passports = Table(
    "synced_passports",
    metadata,
    Column("job_id", _text(128), ForeignKey("sync_jobs.id", ondelete="CASCADE"), primary_key=True),
    Column("passport_id", _text(256), primary_key=True),
    Column("partner_id", _text(512), nullable=False),
    Column("dataset_id", _text(512), nullable=False),
    Column("access_level", String(32), nullable=False),
    Column("partner_version", BigInteger, nullable=False),
    Column("digest", String(64), nullable=False),
    Column("data", Json, nullable=True),
    Column("deleted", Boolean, nullable=False),
    Column("synced_at", BigInteger, nullable=False),
    # A Digital Twin Event names a passport: the jobs holding it are found by it (migration 0013).
    Index("ix_synced_passports_passport", "passport_id", "partner_id"),
)
