"""passports: each version's data stored once, in its version row; the current row points at it

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-01 13:00:00

Until this revision every stored passport's node JSON was written twice, in its current row and in its
version row. The version rows already hold every version's data, so the current row's copy is dropped and
`data_version` names the version whose row holds the current data: the current version, or for a deleted
passport the last version stored before the deletion. Downgrading copies the data back.
"""

from alembic import op
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql


revision = '0009'
down_revision = '0008'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('passports') as batch:
        batch.add_column(sa.Column('data_version', sa.BigInteger(), nullable=True))
    # The last version that is no deletion (a deletion's row holds JSON null, not SQL NULL).
    op.execute(
        sa.text(
            'UPDATE passports SET data_version = (SELECT max(v.version) FROM passport_versions v '
            'WHERE v.passport_id = passports.id AND v.deleted = :deleted)'
        ).bindparams(deleted=False)
    )
    with op.batch_alter_table('passports') as batch:
        batch.alter_column('data_version', existing_type=sa.BigInteger(), nullable=False)
        batch.drop_column('data')


def downgrade() -> None:
    with op.batch_alter_table('passports') as batch:
        batch.add_column(
            sa.Column(
                'data',
                sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'),
                nullable=True,
            )
        )
    op.execute(
        'UPDATE passports SET data = (SELECT v.data FROM passport_versions v '
        'WHERE v.passport_id = passports.id AND v.version = passports.data_version)'
    )
    with op.batch_alter_table('passports') as batch:
        batch.alter_column(
            'data',
            existing_type=sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'),
            nullable=False,
        )
        batch.drop_column('data_version')
