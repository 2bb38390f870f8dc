"""lifecycle: who changed a passport version and what, successor links, Digital Twin Event notifications

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-01 14:00:00
"""

from alembic import op
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql


revision = '0011'
down_revision = '0010'
branch_labels = None
depends_on = None

_JSON = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql')


def _text(length: int) -> sa.String:
    return sa.String(length=length).with_variant(sa.String(length=length, collation='C'), 'postgresql')


def upgrade() -> None:
    with op.batch_alter_table('passport_versions') as batch:
        batch.add_column(sa.Column('changed_by', sa.Text(), nullable=True))
        batch.add_column(sa.Column('changes', _JSON, nullable=True))
    op.create_table('passport_lifecycle',
    sa.Column('passport_id', _text(256), nullable=False),
    sa.Column('predecessors', _JSON, nullable=False),
    sa.Column('successors', _JSON, nullable=False),
    sa.Column('superseded_at', sa.BigInteger(), nullable=True),
    sa.Column('details', _JSON, nullable=False),
    sa.Column('updated_at', sa.BigInteger(), nullable=False),
    sa.PrimaryKeyConstraint('passport_id', name=op.f('pk_passport_lifecycle'))
    )
    op.create_table('notifications',
    sa.Column('message_id', _text(256), nullable=False),
    sa.Column('direction', sa.String(length=8), nullable=False),
    sa.Column('partner', _text(512), nullable=False),
    sa.Column('context', sa.Text(), nullable=False),
    sa.Column('passport_id', _text(256), nullable=True),
    sa.Column('message', _JSON, nullable=False),
    sa.Column('state', sa.String(length=16), nullable=False),
    sa.Column('reason', sa.Text(), nullable=True),
    sa.Column('created_at', sa.BigInteger(), nullable=False),
    sa.Column('updated_at', sa.BigInteger(), nullable=False),
    sa.PrimaryKeyConstraint('message_id', 'direction', name=op.f('pk_notifications'))
    )
    op.create_index(op.f('ix_notifications_passport_id'), 'notifications', ['passport_id'], unique=False)


def downgrade() -> None:
    op.drop_index(op.f('ix_notifications_passport_id'), table_name='notifications')
    op.drop_table('notifications')
    op.drop_table('passport_lifecycle')
    with op.batch_alter_table('passport_versions') as batch:
        batch.drop_column('changes')
        batch.drop_column('changed_by')
