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
    MetaData,
    String,
    Table,
    Text,
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

assets = Table(
    "assets",
    metadata,
    Column("id", String(512), primary_key=True),
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
    Column("asset_id", String(512), ForeignKey("assets.id", ondelete="CASCADE"), nullable=False),
    Column("key", String(1024), nullable=False),
    Column("private", Boolean, nullable=False),
    Column("value_text", Text, nullable=True),
    Column("value_num", Float, nullable=True),
    Index("ix_asset_properties_key_text", "key", "value_text"),
    Index("ix_asset_properties_key_num", "key", "value_num"),
    Index("ix_asset_properties_asset", "asset_id"),
)

policy_definitions = Table(
    "policy_definitions",
    metadata,
    Column("id", String(512), primary_key=True),
    Column("policy", Json, nullable=False),
    Column("private_properties", Json, nullable=False),
    Column("created_at", BigInteger, nullable=False),
)

contract_definitions = Table(
    "contract_definitions",
    metadata,
    Column("id", String(512), primary_key=True),
    Column(
        "access_policy_id",
        String(512),
        ForeignKey("policy_definitions.id", ondelete="RESTRICT"),
        nullable=False,
        index=True,
    ),
    Column(
        "contract_policy_id",
        String(512),
        ForeignKey("policy_definitions.id", ondelete="RESTRICT"),
        nullable=False,
        index=True,
    ),
    Column("assets_selector", Json, nullable=False),
    Column("private_properties", Json, nullable=False),
    Column("created_at", BigInteger, nullable=False),
)
