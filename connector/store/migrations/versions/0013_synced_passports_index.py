"""synced passports found by their passport id (a Digital Twin Event runs the jobs holding its passport)

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-01 14:40:00
"""

from alembic import op


revision = '0013'
down_revision = '0012'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('synced_passports') as batch:
        batch.create_index('ix_synced_passports_passport', ['passport_id', 'partner_id'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('synced_passports') as batch:
        batch.drop_index('ix_synced_passports_passport')
