"""target states: which configuration of a ModelDeployment served each answer

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-02 22:30:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0003'
down_revision = '0002'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'target_states',
        sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
        sa.Column('run_pk', sa.Integer(), nullable=False),
        sa.Column('target', sa.String(length=63), nullable=False),
        sa.Column('at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('available', sa.Boolean(), nullable=False),
        sa.Column('reason', sa.Text(), nullable=True),
        sa.Column('generation', sa.Integer(), nullable=True),
        sa.Column('revision', sa.String(length=64), nullable=True),
        sa.Column('image', sa.String(length=1024), nullable=True),
        sa.Column('args', sa.JSON(), nullable=True),
        sa.Column('rolling_to', sa.Integer(), nullable=True),
        sa.ForeignKeyConstraint(['run_pk'], ['runs.id'], ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('id'),
    )
    op.create_index(op.f('ix_target_states_run_pk'), 'target_states', ['run_pk'], unique=False)
    with op.batch_alter_table('responses') as batch:
        batch.add_column(sa.Column('served_by', sa.Integer(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('responses') as batch:
        batch.drop_column('served_by')
    op.drop_index(op.f('ix_target_states_run_pk'), table_name='target_states')
    op.drop_table('target_states')
