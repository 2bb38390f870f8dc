"""federation: crawled participants, their datasets and public passports, and the crawls' record

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-01 13:40:00
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = '0010'
down_revision = '0009'
branch_labels = None
depends_on = None


def _text(length: int | None = None) -> sa.types.TypeEngine[str]:
    base = sa.String(length) if length else sa.Text()
    return base.with_variant(sa.String(length, collation='C') if length else sa.Text(collation='C'), 'postgresql')


_json = sa.JSON().with_variant(postgresql.JSONB(), 'postgresql')


def upgrade() -> None:
    op.create_table(
        'federation_participants',
        sa.Column('id', _text(64), nullable=False),
        sa.Column('name', _text(1024), nullable=False),
        sa.Column('origin', sa.String(16), nullable=False),
        sa.Column('did', _text(1024), nullable=True),
        sa.Column('address', _text(2048), nullable=True),
        sa.Column('added_at', sa.BigInteger(), nullable=False),
        sa.Column('last_attempt_at', sa.BigInteger(), nullable=True),
        sa.Column('last_success_at', sa.BigInteger(), nullable=True),
        sa.Column('last_error', sa.Text(), nullable=True),
        sa.Column('datasets', sa.Integer(), nullable=False),
        sa.Column('passports', sa.Integer(), nullable=False),
        sa.Column('expired_at', sa.BigInteger(), nullable=True),
        sa.PrimaryKeyConstraint('id', name='pk_federation_participants'),
    )
    op.create_table(
        'federation_datasets',
        sa.Column('participant_id', _text(64), nullable=False),
        sa.Column('dataset_id', _text(1024), nullable=False),
        sa.Column('provider', _text(1024), nullable=False),
        sa.Column('title', sa.Text(), nullable=True),
        sa.Column('keywords', sa.Text(), nullable=True),
        sa.Column('search_text', sa.Text(), nullable=False),
        sa.Column('battery_category', _text(64), nullable=True),
        sa.Column('chemistry', _text(128), nullable=True),
        sa.Column('model', _text(256), nullable=True),
        sa.Column('access_level', _text(64), nullable=True),
        sa.Column('asset_type', _text(1024), nullable=True),
        sa.Column('document', _json, nullable=False),
        sa.ForeignKeyConstraint(
            ['participant_id'], ['federation_participants.id'],
            name='fk_federation_datasets_participant_id_federation_participants', ondelete='CASCADE',
        ),
        sa.PrimaryKeyConstraint('participant_id', 'dataset_id', name='pk_federation_datasets'),
    )
    for name, column in (
        ('model', 'model'), ('chemistry', 'chemistry'), ('category', 'battery_category'),
        ('level', 'access_level'), ('type', 'asset_type'), ('provider', 'provider'),
    ):
        op.create_index(
            f'ix_federation_datasets_{name}', 'federation_datasets', [column, 'participant_id', 'dataset_id']
        )
    op.create_table(
        'federation_words',
        sa.Column('word', _text(256), nullable=False),
        sa.Column('participant_id', _text(64), nullable=False),
        sa.Column('dataset_id', _text(1024), nullable=False),
        sa.PrimaryKeyConstraint('word', 'participant_id', 'dataset_id', name='pk_federation_words'),
    )
    op.create_table(
        'federation_passports',
        sa.Column('participant_id', _text(64), nullable=False),
        sa.Column('passport_id', _text(256), nullable=False),
        sa.Column('data', _json, nullable=False),
        sa.ForeignKeyConstraint(
            ['participant_id'], ['federation_participants.id'],
            name='fk_federation_passports_participant_id_federation_participants', ondelete='CASCADE',
        ),
        sa.PrimaryKeyConstraint('participant_id', 'passport_id', name='pk_federation_passports'),
    )
    op.create_table(
        'federation_crawls',
        sa.Column('run_key', _text(256), nullable=False),
        sa.Column('participant_id', _text(64), nullable=False),
        sa.Column('started_at', sa.BigInteger(), nullable=False),
        sa.Column('finished_at', sa.BigInteger(), nullable=True),
        sa.Column('outcome', sa.String(16), nullable=False),
        sa.Column('error', sa.Text(), nullable=True),
        sa.Column('datasets', sa.Integer(), nullable=True),
        sa.Column('appeared', _json, nullable=True),
        sa.Column('disappeared', _json, nullable=True),
        sa.Column('appeared_count', sa.Integer(), nullable=True),
        sa.Column('disappeared_count', sa.Integer(), nullable=True),
        sa.PrimaryKeyConstraint('run_key', name='pk_federation_crawls'),
    )
    op.create_index('ix_federation_crawls_participant', 'federation_crawls', ['participant_id', 'started_at'])


def downgrade() -> None:
    op.drop_index('ix_federation_crawls_participant', table_name='federation_crawls')
    op.drop_table('federation_crawls')
    op.drop_table('federation_passports')
    op.drop_table('federation_words')
    for name in ('model', 'chemistry', 'category', 'level', 'type', 'provider'):
        op.drop_index(f'ix_federation_datasets_{name}', table_name='federation_datasets')
    op.drop_table('federation_datasets')
    op.drop_table('federation_participants')
