"""scheduled sync jobs, their runs, cursors and synced passports; the passports' change sequence

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-01 13:00:00

Passports stored before this revision are at change 0: a feed read from the start returns them all.
"""

from alembic import op
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql


revision = '0012'
down_revision = '0011'
branch_labels = None
depends_on = None


def _text(length: int | None = None) -> sa.types.TypeEngine:  # type: ignore[type-arg]
    base = sa.String(length) if length else sa.Text()
    return base.with_variant(sa.String(length, collation='C') if length else sa.Text(collation='C'), 'postgresql')


_JSON = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql')


def upgrade() -> None:
    with op.batch_alter_table('passports') as batch:
        batch.add_column(sa.Column('change_seq', sa.BigInteger(), nullable=False, server_default='0'))
        batch.create_index('ix_passports_change_seq', ['change_seq', 'id'], unique=False)
    revisions = sa.table('revisions', sa.column('name', sa.String), sa.column('value', sa.BigInteger))
    op.bulk_insert(revisions, [{'name': 'passport_changes', 'value': 0}, {'name': 'sync_jobs', 'value': 0}])
    op.create_table('sync_jobs',
    sa.Column('id', _text(128), nullable=False),
    sa.Column('partner_address', sa.Text(), nullable=False),
    sa.Column('partner_id', _text(512), nullable=True),
    sa.Column('datasets', _JSON, nullable=False),
    sa.Column('dataset_filter', _JSON, nullable=False),
    sa.Column('schedule', sa.String(length=256), nullable=False),
    sa.Column('time_zone', sa.String(length=64), nullable=False),
    sa.Column('destination', _JSON, nullable=False),
    sa.Column('mode', sa.String(length=16), nullable=False),
    sa.Column('state', sa.String(length=16), nullable=False),
    sa.Column('lease_owner', sa.String(length=64), nullable=True),
    sa.Column('lease_until', sa.BigInteger(), nullable=True),
    sa.Column('created_at', sa.BigInteger(), nullable=False),
    sa.Column('updated_at', sa.BigInteger(), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_sync_jobs'))
    )
    op.create_table('sync_runs',
    sa.Column('id', _text(64), nullable=False),
    sa.Column('job_id', _text(128), nullable=False),
    sa.Column('run_key', _text(128), nullable=False),
    sa.Column('state', sa.String(length=16), nullable=False),
    sa.Column('started_at', sa.BigInteger(), nullable=False),
    sa.Column('ended_at', sa.BigInteger(), nullable=True),
    sa.Column('new', sa.BigInteger(), nullable=False),
    sa.Column('changed', sa.BigInteger(), nullable=False),
    sa.Column('unchanged', sa.BigInteger(), nullable=False),
    sa.Column('removed', sa.BigInteger(), nullable=False),
    sa.Column('refused', sa.BigInteger(), nullable=False),
    sa.Column('refusals', _JSON, nullable=False),
    sa.Column('bytes', sa.BigInteger(), nullable=False),
    sa.Column('error', sa.Text(), nullable=True),
    sa.Column('seconds', _JSON, nullable=False),
    sa.ForeignKeyConstraint(['job_id'], ['sync_jobs.id'], name=op.f('fk_sync_runs_job_id_sync_jobs'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_sync_runs'))
    )
    with op.batch_alter_table('sync_runs') as batch:
        batch.create_index('uq_sync_runs_key', ['job_id', 'run_key'], unique=True)
        batch.create_index('ix_sync_runs_job_started', ['job_id', 'started_at'], unique=False)
    op.create_table('sync_cursors',
    sa.Column('job_id', _text(128), nullable=False),
    sa.Column('dataset_id', _text(512), nullable=False),
    sa.Column('position', sa.Text(), nullable=True),
    sa.Column('transfer_id', _text(64), nullable=True),
    sa.Column('updated_at', sa.BigInteger(), nullable=False),
    sa.ForeignKeyConstraint(['job_id'], ['sync_jobs.id'], name=op.f('fk_sync_cursors_job_id_sync_jobs'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('job_id', 'dataset_id', name=op.f('pk_sync_cursors'))
    )
    op.create_table('synced_passports',
    sa.Column('job_id', _text(128), nullable=False),
    sa.Column('passport_id', _text(256), nullable=False),
    sa.Column('partner_id', _text(512), nullable=False),
    sa.Column('dataset_id', _text(512), nullable=False),
    sa.Column('access_level', sa.String(length=32), nullable=False),
    sa.Column('partner_version', sa.BigInteger(), nullable=False),
    sa.Column('digest', sa.String(length=64), nullable=False),
    sa.Column('data', _JSON, nullable=True),
    sa.Column('deleted', sa.Boolean(), nullable=False),
    sa.Column('synced_at', sa.BigInteger(), nullable=False),
    sa.ForeignKeyConstraint(['job_id'], ['sync_jobs.id'], name=op.f('fk_synced_passports_job_id_sync_jobs'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('job_id', 'passport_id', name=op.f('pk_synced_passports'))
    )


def downgrade() -> None:
    op.drop_table('synced_passports')
    op.drop_table('sync_cursors')
    op.drop_table('sync_runs')
    op.drop_table('sync_jobs')
    op.execute("DELETE FROM revisions WHERE name IN ('passport_changes', 'sync_jobs')")
    with op.batch_alter_table('passports') as batch:
        batch.drop_index('ix_passports_change_seq')
        batch.drop_column('change_seq')
