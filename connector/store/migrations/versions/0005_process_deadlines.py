"""process deadlines, who suspended a transfer, one process per consumer pid

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-01 09:30:00
"""

from alembic import op
import sqlalchemy as sa


revision = '0005'
down_revision = '0004'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('negotiations') as batch:
        batch.add_column(sa.Column('deadline_at', sa.BigInteger(), nullable=True))
        batch.create_index(batch.f('ix_negotiations_deadline_at'), ['deadline_at'], unique=False)
        batch.create_index('uq_negotiations_peer', ['role', 'counterparty_id', 'consumer_pid'], unique=True)
    with op.batch_alter_table('transfers') as batch:
        batch.add_column(sa.Column('suspended_by', sa.String(length=16), nullable=True))
        batch.add_column(sa.Column('deadline_at', sa.BigInteger(), nullable=True))
        batch.create_index(batch.f('ix_transfers_deadline_at'), ['deadline_at'], unique=False)
        batch.create_index('uq_transfers_peer', ['role', 'counterparty_id', 'consumer_pid'], unique=True)


def downgrade() -> None:
    with op.batch_alter_table('transfers') as batch:
        batch.drop_index('uq_transfers_peer')
        batch.drop_index(batch.f('ix_transfers_deadline_at'))
        batch.drop_column('deadline_at')
        batch.drop_column('suspended_by')
    with op.batch_alter_table('negotiations') as batch:
        batch.drop_index('uq_negotiations_peer')
        batch.drop_index(batch.f('ix_negotiations_deadline_at'))
        batch.drop_column('deadline_at')
