"""the catalog's assets revision (position maps of selected assets are kept until an asset changes)

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-01 15:45:00
"""

import sqlalchemy as sa
from alembic import op


revision = '0014'
down_revision = '0013'
branch_labels = None
depends_on = None


def upgrade() -> None:
    revisions = sa.table('revisions', sa.column('name', sa.String), sa.column('value', sa.BigInteger))
    op.bulk_insert(revisions, [{'name': 'catalog_assets', 'value': 0}])


def downgrade() -> None:
    op.execute("DELETE FROM revisions WHERE name = 'catalog_assets'")
