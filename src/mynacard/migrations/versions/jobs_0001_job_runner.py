"""jobs: the job runner's lease and last outcome per job, and the history of runs

Revision ID: jobs_0001
Revises:
Depends on: 0001_foundation
Create Date: 2026-12-08 01:00:00
"""
from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = 'jobs_0001'
down_revision: str | Sequence[str] | None = None
branch_labels: str | Sequence[str] | None = ('jobs',)
depends_on: str | Sequence[str] | None = '0001_foundation'


def upgrade() -> None:
    op.create_table('job_state',
    sa.Column('name', sa.String(length=64), nullable=False),
    sa.Column('lease_holder', sa.String(length=128), nullable=True),
    sa.Column('lease_until', sa.DateTime(timezone=True), nullable=True),
    sa.Column('next_due_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('run_requested_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('failures', sa.Integer(), nullable=False),
    sa.Column('last_started_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('last_finished_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('last_outcome', sa.String(length=16), nullable=True),
    sa.Column('last_detail', sa.Text(), nullable=True),
    sa.Column('last_duration_ms', sa.Integer(), nullable=True),
    sa.PrimaryKeyConstraint('name', name=op.f('pk_job_state'))
    )
    op.create_table('job_runs',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('name', sa.String(length=64), nullable=False),
    sa.Column('runner', sa.String(length=128), nullable=False),
    sa.Column('started_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('finished_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('outcome', sa.String(length=16), nullable=False),
    sa.Column('detail', sa.Text(), nullable=False),
    sa.Column('duration_ms', sa.Integer(), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_job_runs'))
    )
    op.create_index('ix_job_runs_name', 'job_runs', ['name', 'id'], unique=False)


def downgrade() -> None:
    op.drop_index('ix_job_runs_name', table_name='job_runs')
    op.drop_table('job_runs')
    op.drop_table('job_state')
