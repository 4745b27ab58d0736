"""capacity probes (the load levels of each target's capacity search at the run's SLO), and the
judge's token usage per verdict

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-03 20:20:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0005'
down_revision = '0004'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'capacity_probes',
        sa.Column('run_pk', sa.Integer(), nullable=False),
        sa.Column('target', sa.String(length=63), nullable=False),
        sa.Column('number', sa.Integer(), nullable=False),
        sa.Column('concurrency', sa.Integer(), nullable=False),
        sa.Column('requests', sa.Integer(), nullable=False),
        sa.Column('failed', sa.Integer(), nullable=False),
        sa.Column('determined', sa.Integer(), nullable=False),
        sa.Column('conforming', sa.Integer(), nullable=False),
        sa.Column('seconds', sa.Float(), nullable=False),
        sa.Column('ttft_p95_ms', sa.Float(), nullable=True),
        sa.Column('tpot_p95_ms', sa.Float(), nullable=True),
        sa.Column('e2e_p95_ms', sa.Float(), nullable=True),
        sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(['run_pk'], ['runs.id'], ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('run_pk', 'target', 'number'),
    )
    with op.batch_alter_table('judgments') as batch:
        batch.add_column(sa.Column('prompt_tokens', sa.Integer(), nullable=True))
        batch.add_column(sa.Column('completion_tokens', sa.Integer(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('judgments') as batch:
        batch.drop_column('completion_tokens')
        batch.drop_column('prompt_tokens')
    op.drop_table('capacity_probes')
