"""transfers and data access

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-23 12:42:32.957154
"""

from alembic import op
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql

revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('data_access',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('at', sa.BigInteger(), nullable=False),
    sa.Column('transfer_id', sa.String(length=64).with_variant(sa.String(length=64, collation='C'), 'postgresql'), nullable=True),
    sa.Column('agreement_id', sa.String(length=256).with_variant(sa.String(length=256, collation='C'), 'postgresql'), nullable=True),
    sa.Column('consumer_id', sa.String(length=512).with_variant(sa.String(length=512, collation='C'), 'postgresql'), nullable=True),
    sa.Column('asset_id', sa.String(length=512).with_variant(sa.String(length=512, collation='C'), 'postgresql'), nullable=True),
    sa.Column('method', sa.String(length=16), nullable=False),
    sa.Column('path', sa.Text(), nullable=False),
    sa.Column('status', sa.Integer(), nullable=False),
    sa.Column('bytes', sa.BigInteger(), nullable=False),
    sa.Column('reason', sa.Text(), nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_data_access'))
    )
    with op.batch_alter_table('data_access', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_data_access_at'), ['at'], unique=False)
        batch_op.create_index(batch_op.f('ix_data_access_transfer_id'), ['transfer_id'], unique=False)

    op.create_table('transfers',
    sa.Column('id', sa.String(length=64).with_variant(sa.String(length=64, collation='C'), 'postgresql'), nullable=False),
    sa.Column('role', sa.String(length=16), nullable=False),
    sa.Column('state', sa.String(length=16), nullable=False),
    sa.Column('provider_pid', sa.String(length=256).with_variant(sa.String(length=256, collation='C'), 'postgresql'), nullable=True),
    sa.Column('consumer_pid', sa.String(length=256).with_variant(sa.String(length=256, collation='C'), 'postgresql'), nullable=True),
    sa.Column('counterparty_id', sa.String(length=512).with_variant(sa.String(length=512, collation='C'), 'postgresql'), nullable=False),
    sa.Column('counterparty_address', sa.Text(), nullable=False),
    sa.Column('agreement_id', sa.String(length=256).with_variant(sa.String(length=256, collation='C'), 'postgresql'), nullable=False),
    sa.Column('asset_id', sa.String(length=512).with_variant(sa.String(length=512, collation='C'), 'postgresql'), nullable=False),
    sa.Column('transfer_type', sa.String(length=64), nullable=False),
    sa.Column('destination', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=True),
    sa.Column('data_address', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=True),
    sa.Column('error_detail', sa.Text(), nullable=True),
    sa.Column('awaiting_ack', sa.String(length=64), nullable=True),
    sa.Column('token_generation', sa.BigInteger(), nullable=False),
    sa.Column('created_at', sa.BigInteger(), nullable=False),
    sa.Column('updated_at', sa.BigInteger(), nullable=False),
    sa.Column('version', sa.BigInteger(), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_transfers'))
    )
    with op.batch_alter_table('transfers', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_transfers_agreement_id'), ['agreement_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_transfers_consumer_pid'), ['consumer_pid'], unique=False)
        batch_op.create_index(batch_op.f('ix_transfers_provider_pid'), ['provider_pid'], unique=False)
        batch_op.create_index(batch_op.f('ix_transfers_state'), ['state'], unique=False)



def downgrade() -> None:
    with op.batch_alter_table('transfers', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_transfers_state'))
        batch_op.drop_index(batch_op.f('ix_transfers_provider_pid'))
        batch_op.drop_index(batch_op.f('ix_transfers_consumer_pid'))
        batch_op.drop_index(batch_op.f('ix_transfers_agreement_id'))

    op.drop_table('transfers')
    with op.batch_alter_table('data_access', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_data_access_transfer_id'))
        batch_op.drop_index(batch_op.f('ix_data_access_at'))

    op.drop_table('data_access')
