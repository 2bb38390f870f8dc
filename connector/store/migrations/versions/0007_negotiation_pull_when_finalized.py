"""a consumer negotiation may start its pull transfer once finalized (the EDR API's one call)

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-02 10:00:00
"""

from alembic import op
import sqlalchemy as sa


revision = '0007'
down_revision = '0006'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('negotiations') as batch:
        batch.add_column(
            sa.Column('pull_when_finalized', sa.Boolean(), nullable=False, server_default=sa.false())
        )


def downgrade() -> None:
    with op.batch_alter_table('negotiations') as batch:
        batch.drop_column('pull_when_finalized')
