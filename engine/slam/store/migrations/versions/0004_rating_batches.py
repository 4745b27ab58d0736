"""rating batches: the pairs served to a rater, so a refresh resumes the batch

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-03 13:20:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0004'
down_revision = '0003'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'rating_batches',
        sa.Column('run_pk', sa.Integer(), nullable=False),
        sa.Column('rater', sa.String(length=128), nullable=False),
        sa.Column('number', sa.Integer(), nullable=False),
        sa.Column('assignments', sa.JSON(), nullable=False),
        sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(['run_pk'], ['runs.id'], ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('run_pk', 'rater', 'number'),
    )


def downgrade() -> None:
    op.drop_table('rating_batches')
