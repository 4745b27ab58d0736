"""initial schema

Revision ID: 0001
Revises: (none)
Create Date: 2026-11-28 07:28:39.515182
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0001'
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:

    op.create_table('probe_samples',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('namespace', sa.String(length=253), nullable=False),
    sa.Column('target', sa.String(length=253), nullable=False),
    sa.Column('at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('ttft_ms', sa.Float(), nullable=True),
    sa.Column('e2e_ms', sa.Float(), nullable=True),
    sa.Column('completion_tokens', sa.Integer(), nullable=True),
    sa.Column('error_class', sa.String(length=128), nullable=True),
    sa.Column('error_message', sa.Text(), nullable=True),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('probe_samples', schema=None) as batch_op:
        batch_op.create_index('ix_probe_samples_target_at', ['namespace', 'target', 'at'], unique=False)

    op.create_table('runs',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('namespace', sa.String(length=253), nullable=False),
    sa.Column('evaluation', sa.String(length=253), nullable=False),
    sa.Column('run_id', sa.String(length=63), nullable=False),
    sa.Column('reference', sa.String(length=63), nullable=False),
    sa.Column('spec', sa.JSON(), nullable=False),
    sa.Column('total', sa.Integer(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('finished_at', sa.DateTime(timezone=True), nullable=True),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('namespace', 'evaluation', 'run_id', name='uq_runs_key')
    )
    op.create_table('judgments',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('run_pk', sa.Integer(), nullable=False),
    sa.Column('prompt_id', sa.String(length=128), nullable=False),
    sa.Column('sample', sa.Integer(), nullable=False),
    sa.Column('judge', sa.String(length=63), nullable=False),
    sa.Column('first', sa.String(length=63), nullable=False),
    sa.Column('second', sa.String(length=63), nullable=False),
    sa.Column('verdict', sa.String(length=16), nullable=True),
    sa.Column('parse_status', sa.String(length=32), nullable=False),
    sa.Column('raw', sa.Text(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['run_pk'], ['runs.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('run_pk', 'prompt_id', 'sample', 'judge', 'first', 'second', name='uq_judgments_key')
    )
    with op.batch_alter_table('judgments', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_judgments_run_pk'), ['run_pk'], unique=False)

    op.create_table('prompts',
    sa.Column('run_pk', sa.Integer(), nullable=False),
    sa.Column('prompt_id', sa.String(length=128), nullable=False),
    sa.Column('position', sa.Integer(), nullable=False),
    sa.Column('messages', sa.JSON(), nullable=False),
    sa.Column('references', sa.JSON(), nullable=False),
    sa.ForeignKeyConstraint(['run_pk'], ['runs.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('run_pk', 'prompt_id')
    )
    op.create_table('ratings',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('submission', sa.String(length=128), nullable=False),
    sa.Column('run_pk', sa.Integer(), nullable=False),
    sa.Column('rater', sa.String(length=128), nullable=False),
    sa.Column('prompt_id', sa.String(length=128), nullable=False),
    sa.Column('sample', sa.Integer(), nullable=False),
    sa.Column('left', sa.String(length=63), nullable=False),
    sa.Column('right', sa.String(length=63), nullable=False),
    sa.Column('choice', sa.String(length=16), nullable=False),
    sa.Column('criteria', sa.JSON(), nullable=False),
    sa.Column('reason', sa.Text(), nullable=True),
    sa.Column('is_control', sa.Boolean(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['run_pk'], ['runs.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('submission')
    )
    with op.batch_alter_table('ratings', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_ratings_run_pk'), ['run_pk'], unique=False)

    op.create_table('responses',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('run_pk', sa.Integer(), nullable=False),
    sa.Column('target', sa.String(length=63), nullable=False),
    sa.Column('prompt_id', sa.String(length=128), nullable=False),
    sa.Column('sample', sa.Integer(), nullable=False),
    sa.Column('started_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('attempts', sa.Integer(), nullable=False),
    sa.Column('ttft_ms', sa.Float(), nullable=True),
    sa.Column('e2e_ms', sa.Float(), nullable=True),
    sa.Column('itl_mean_ms', sa.Float(), nullable=True),
    sa.Column('itl_p50_ms', sa.Float(), nullable=True),
    sa.Column('itl_p95_ms', sa.Float(), nullable=True),
    sa.Column('itl_max_ms', sa.Float(), nullable=True),
    sa.Column('prompt_tokens', sa.Integer(), nullable=True),
    sa.Column('completion_tokens', sa.Integer(), nullable=True),
    sa.Column('tokens_source', sa.String(length=16), nullable=True),
    sa.Column('finish_reason', sa.String(length=32), nullable=True),
    sa.Column('text', sa.Text(), nullable=False),
    sa.Column('error_class', sa.String(length=128), nullable=True),
    sa.Column('error_message', sa.Text(), nullable=True),
    sa.Column('status_code', sa.Integer(), nullable=True),
    sa.Column('schedule_lag_ms', sa.Float(), nullable=True),
    sa.ForeignKeyConstraint(['run_pk'], ['runs.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('run_pk', 'target', 'prompt_id', 'sample', name='uq_responses_key')
    )
    with op.batch_alter_table('responses', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_responses_run_pk'), ['run_pk'], unique=False)

    op.create_table('targets',
    sa.Column('run_pk', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(length=63), nullable=False),
    sa.Column('kind', sa.String(length=32), nullable=False),
    sa.Column('model', sa.String(length=255), nullable=False),
    sa.Column('base_url', sa.String(length=2048), nullable=False),
    sa.Column('is_reference', sa.Boolean(), nullable=False),
    sa.Column('concurrency', sa.Integer(), nullable=False),
    sa.Column('details', sa.JSON(), nullable=False),
    sa.ForeignKeyConstraint(['run_pk'], ['runs.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('run_pk', 'name')
    )
    op.create_table('scores',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('response_id', sa.Integer(), nullable=False),
    sa.Column('scorer', sa.String(length=64), nullable=False),
    sa.Column('score', sa.Float(), nullable=True),
    sa.Column('passed', sa.Boolean(), nullable=True),
    sa.Column('reason', sa.Text(), nullable=True),
    sa.Column('raw', sa.JSON(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['response_id'], ['responses.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('response_id', 'scorer', name='uq_scores_key')
    )



def downgrade() -> None:

    op.drop_table('scores')
    op.drop_table('targets')
    with op.batch_alter_table('responses', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_responses_run_pk'))

    op.drop_table('responses')
    with op.batch_alter_table('ratings', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_ratings_run_pk'))

    op.drop_table('ratings')
    op.drop_table('prompts')
    with op.batch_alter_table('judgments', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_judgments_run_pk'))

    op.drop_table('judgments')
    op.drop_table('runs')
    with op.batch_alter_table('probe_samples', schema=None) as batch_op:
        batch_op.drop_index('ix_probe_samples_target_at')

    op.drop_table('probe_samples')

