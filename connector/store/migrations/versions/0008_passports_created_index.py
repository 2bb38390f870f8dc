"""passports: an index on (created_at, id) for the Digital Twin Registry's shells (listing, createdAfter)

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-01 13:00:00
"""

from alembic import op


revision = '0008'
down_revision = '0007'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index('ix_passports_created', 'passports', ['created_at', 'id'], unique=False)


def downgrade() -> None:
    op.drop_index('ix_passports_created', table_name='passports')
