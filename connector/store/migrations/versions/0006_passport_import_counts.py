"""passport imports: the four counts (new, changed, unchanged, refused) and the ids an import has taken

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-10 10:00:00

Checkpoints of imports interrupted before this revision counted differently and did not record the ids
they had taken, so they are dropped: such an import starts again from its first record (storing nothing
twice, since unchanged content is not stored again).
"""

from alembic import op
import sqlalchemy as sa


revision = '0006'
down_revision = '0005'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute('DELETE FROM passport_imports')
    with op.batch_alter_table('passport_imports') as batch:
        batch.drop_column('accepted')
        batch.drop_column('rejected')
        batch.add_column(sa.Column('new', sa.BigInteger(), nullable=False))
        batch.add_column(sa.Column('changed', sa.BigInteger(), nullable=False))
        batch.add_column(sa.Column('refused', sa.BigInteger(), nullable=False))
    op.create_table('passport_import_ids',
    sa.Column('source', sa.String(length=512).with_variant(sa.String(length=512, collation='C'), 'postgresql'), nullable=False),
    sa.Column('passport_id', sa.String(length=256).with_variant(sa.String(length=256, collation='C'), 'postgresql'), nullable=False),
    sa.Column('position', sa.BigInteger(), nullable=False),
    sa.Column('place', sa.Text(), nullable=False),
    sa.PrimaryKeyConstraint('source', 'passport_id', name=op.f('pk_passport_import_ids'))
    )


def downgrade() -> None:
    op.drop_table('passport_import_ids')
    op.execute('DELETE FROM passport_imports')
    with op.batch_alter_table('passport_imports') as batch:
        batch.drop_column('refused')
        batch.drop_column('changed')
        batch.drop_column('new')
        batch.add_column(sa.Column('accepted', sa.BigInteger(), nullable=False))
        batch.add_column(sa.Column('rejected', sa.BigInteger(), nullable=False))
