"""embedding cache

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-28 08:10:57.496822
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None


def upgrade() -> None:

    op.create_table('embeddings',
    sa.Column('model', sa.String(length=255), nullable=False),
    sa.Column('text_sha256', sa.String(length=64), nullable=False),
    sa.Column('vector', sa.LargeBinary(), nullable=False),
    sa.PrimaryKeyConstraint('model', 'text_sha256')
    )



def downgrade() -> None:

    op.drop_table('embeddings')

