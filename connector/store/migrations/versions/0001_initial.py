"""initial schema

Revision ID: 0001
Revises: 
Create Date: 2026-11-23 11:37:25.980688
"""

from alembic import op
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql

revision = '0001'
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('agreements',
    sa.Column('id', sa.String(length=256).with_variant(sa.String(length=256, collation='C'), 'postgresql'), nullable=False),
    sa.Column('negotiation_id', sa.String(length=64).with_variant(sa.String(length=64, collation='C'), 'postgresql'), nullable=False),
    sa.Column('asset_id', sa.String(length=512).with_variant(sa.String(length=512, collation='C'), 'postgresql'), nullable=False),
    sa.Column('provider_id', sa.String(length=512).with_variant(sa.String(length=512, collation='C'), 'postgresql'), nullable=False),
    sa.Column('consumer_id', sa.String(length=512).with_variant(sa.String(length=512, collation='C'), 'postgresql'), nullable=False),
    sa.Column('policy', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=False),
    sa.Column('signed_at', sa.BigInteger(), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_agreements'))
    )
    with op.batch_alter_table('agreements', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_agreements_asset_id'), ['asset_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_agreements_negotiation_id'), ['negotiation_id'], unique=False)

    op.create_table('assets',
    sa.Column('id', sa.String(length=512).with_variant(sa.String(length=512, collation='C'), 'postgresql'), nullable=False),
    sa.Column('properties', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=False),
    sa.Column('private_properties', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=False),
    sa.Column('data_address_type', sa.String(length=128), nullable=False),
    sa.Column('data_address', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=False),
    sa.Column('data_address_secrets', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=False),
    sa.Column('created_at', sa.BigInteger(), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_assets'))
    )
    op.create_table('held_credentials',
    sa.Column('id', sa.String(length=512).with_variant(sa.String(length=512, collation='C'), 'postgresql'), nullable=False),
    sa.Column('types', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=False),
    sa.Column('issuer', sa.String(length=512).with_variant(sa.String(length=512, collation='C'), 'postgresql'), nullable=False),
    sa.Column('valid_until', sa.BigInteger(), nullable=True),
    sa.Column('jwt', sa.Text(), nullable=False),
    sa.Column('created_at', sa.BigInteger(), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_held_credentials'))
    )
    op.create_table('negotiations',
    sa.Column('id', sa.String(length=64).with_variant(sa.String(length=64, collation='C'), 'postgresql'), nullable=False),
    sa.Column('role', sa.String(length=16), nullable=False),
    sa.Column('state', sa.String(length=16), nullable=False),
    sa.Column('provider_pid', sa.String(length=256).with_variant(sa.String(length=256, collation='C'), 'postgresql'), nullable=True),
    sa.Column('consumer_pid', sa.String(length=256).with_variant(sa.String(length=256, collation='C'), 'postgresql'), nullable=True),
    sa.Column('counterparty_id', sa.String(length=512).with_variant(sa.String(length=512, collation='C'), 'postgresql'), nullable=False),
    sa.Column('counterparty_address', sa.Text(), nullable=False),
    sa.Column('offer', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=False),
    sa.Column('asset_id', sa.String(length=512).with_variant(sa.String(length=512, collation='C'), 'postgresql'), nullable=True),
    sa.Column('definition_id', sa.String(length=512).with_variant(sa.String(length=512, collation='C'), 'postgresql'), nullable=True),
    sa.Column('agreement', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=True),
    sa.Column('agreement_id', sa.String(length=256).with_variant(sa.String(length=256, collation='C'), 'postgresql'), nullable=True),
    sa.Column('error_detail', sa.Text(), nullable=True),
    sa.Column('awaiting_ack', sa.String(length=64), nullable=True),
    sa.Column('pending', sa.Boolean(), nullable=False),
    sa.Column('created_at', sa.BigInteger(), nullable=False),
    sa.Column('updated_at', sa.BigInteger(), nullable=False),
    sa.Column('version', sa.BigInteger(), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_negotiations'))
    )
    with op.batch_alter_table('negotiations', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_negotiations_agreement_id'), ['agreement_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_negotiations_consumer_pid'), ['consumer_pid'], unique=False)
        batch_op.create_index(batch_op.f('ix_negotiations_provider_pid'), ['provider_pid'], unique=False)
        batch_op.create_index(batch_op.f('ix_negotiations_state'), ['state'], unique=False)

    op.create_table('outbox',
    sa.Column('id', sa.String(length=64).with_variant(sa.String(length=64, collation='C'), 'postgresql'), nullable=False),
    sa.Column('negotiation_id', sa.String(length=64).with_variant(sa.String(length=64, collation='C'), 'postgresql'), nullable=False),
    sa.Column('message', sa.String(length=64), nullable=False),
    sa.Column('url', sa.Text(), nullable=False),
    sa.Column('payload', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=False),
    sa.Column('counterparty', sa.String(length=512).with_variant(sa.String(length=512, collation='C'), 'postgresql'), nullable=False),
    sa.Column('attempts', sa.BigInteger(), nullable=False),
    sa.Column('next_attempt_at', sa.BigInteger(), nullable=False),
    sa.Column('lease_owner', sa.String(length=64), nullable=True),
    sa.Column('lease_until', sa.BigInteger(), nullable=True),
    sa.Column('last_error', sa.Text(), nullable=True),
    sa.Column('created_at', sa.BigInteger(), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_outbox'))
    )
    with op.batch_alter_table('outbox', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_outbox_negotiation_id'), ['negotiation_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_outbox_next_attempt_at'), ['next_attempt_at'], unique=False)

    op.create_table('policy_definitions',
    sa.Column('id', sa.String(length=512).with_variant(sa.String(length=512, collation='C'), 'postgresql'), nullable=False),
    sa.Column('policy', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=False),
    sa.Column('private_properties', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=False),
    sa.Column('created_at', sa.BigInteger(), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_policy_definitions'))
    )
    revisions = op.create_table('revisions',
    sa.Column('name', sa.String(length=64), nullable=False),
    sa.Column('value', sa.BigInteger(), nullable=False),
    sa.PrimaryKeyConstraint('name', name=op.f('pk_revisions'))
    )
    op.bulk_insert(revisions, [{'name': 'offers', 'value': 0}])
    op.create_table('seen_tokens',
    sa.Column('issuer', sa.String(length=512).with_variant(sa.String(length=512, collation='C'), 'postgresql'), nullable=False),
    sa.Column('jti', sa.String(length=256).with_variant(sa.String(length=256, collation='C'), 'postgresql'), nullable=False),
    sa.Column('expires_at', sa.BigInteger(), nullable=False),
    sa.PrimaryKeyConstraint('issuer', 'jti', name=op.f('pk_seen_tokens'))
    )
    with op.batch_alter_table('seen_tokens', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_seen_tokens_expires_at'), ['expires_at'], unique=False)

    op.create_table('asset_properties',
    sa.Column('asset_id', sa.String(length=512).with_variant(sa.String(length=512, collation='C'), 'postgresql'), nullable=False),
    sa.Column('key', sa.String(length=1024).with_variant(sa.String(length=1024, collation='C'), 'postgresql'), nullable=False),
    sa.Column('private', sa.Boolean(), nullable=False),
    sa.Column('value_text', sa.Text().with_variant(sa.Text(collation='C'), 'postgresql'), nullable=True),
    sa.Column('value_num', sa.Float(), nullable=True),
    sa.ForeignKeyConstraint(['asset_id'], ['assets.id'], name=op.f('fk_asset_properties_asset_id_assets'), ondelete='CASCADE')
    )
    with op.batch_alter_table('asset_properties', schema=None) as batch_op:
        batch_op.create_index('ix_asset_properties_asset_key_text', ['asset_id', 'key', 'value_text'], unique=False)
        batch_op.create_index('ix_asset_properties_key_num', ['key', 'value_num'], unique=False)
        batch_op.create_index('ix_asset_properties_key_text', ['key', 'value_text'], unique=False)

    op.create_table('contract_definitions',
    sa.Column('id', sa.String(length=512).with_variant(sa.String(length=512, collation='C'), 'postgresql'), nullable=False),
    sa.Column('access_policy_id', sa.String(length=512).with_variant(sa.String(length=512, collation='C'), 'postgresql'), nullable=False),
    sa.Column('contract_policy_id', sa.String(length=512).with_variant(sa.String(length=512, collation='C'), 'postgresql'), nullable=False),
    sa.Column('assets_selector', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=False),
    sa.Column('private_properties', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=False),
    sa.Column('created_at', sa.BigInteger(), nullable=False),
    sa.ForeignKeyConstraint(['access_policy_id'], ['policy_definitions.id'], name=op.f('fk_contract_definitions_access_policy_id_policy_definitions'), ondelete='RESTRICT'),
    sa.ForeignKeyConstraint(['contract_policy_id'], ['policy_definitions.id'], name=op.f('fk_contract_definitions_contract_policy_id_policy_definitions'), ondelete='RESTRICT'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_contract_definitions'))
    )
    with op.batch_alter_table('contract_definitions', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_contract_definitions_access_policy_id'), ['access_policy_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_contract_definitions_contract_policy_id'), ['contract_policy_id'], unique=False)



def downgrade() -> None:
    with op.batch_alter_table('contract_definitions', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_contract_definitions_contract_policy_id'))
        batch_op.drop_index(batch_op.f('ix_contract_definitions_access_policy_id'))

    op.drop_table('contract_definitions')
    with op.batch_alter_table('asset_properties', schema=None) as batch_op:
        batch_op.drop_index('ix_asset_properties_key_text')
        batch_op.drop_index('ix_asset_properties_key_num')
        batch_op.drop_index('ix_asset_properties_asset_key_text')

    op.drop_table('asset_properties')
    with op.batch_alter_table('seen_tokens', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_seen_tokens_expires_at'))

    op.drop_table('seen_tokens')
    op.drop_table('revisions')
    op.drop_table('policy_definitions')
    with op.batch_alter_table('outbox', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_outbox_next_attempt_at'))
        batch_op.drop_index(batch_op.f('ix_outbox_negotiation_id'))

    op.drop_table('outbox')
    with op.batch_alter_table('negotiations', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_negotiations_state'))
        batch_op.drop_index(batch_op.f('ix_negotiations_provider_pid'))
        batch_op.drop_index(batch_op.f('ix_negotiations_consumer_pid'))
        batch_op.drop_index(batch_op.f('ix_negotiations_agreement_id'))

    op.drop_table('negotiations')
    op.drop_table('held_credentials')
    op.drop_table('assets')
    with op.batch_alter_table('agreements', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_agreements_negotiation_id'))
        batch_op.drop_index(batch_op.f('ix_agreements_asset_id'))

    op.drop_table('agreements')
