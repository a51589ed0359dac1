"""plans: issuance plans, revisions, settings, actuals snapshot, batch forecasts

Revision ID: plans_0001
Revises:
Depends on: 0001_foundation
Create Date: 2026-11-27 00:55:24.687621
"""
from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = 'plans_0001'
down_revision: str | Sequence[str] | None = None
branch_labels: str | Sequence[str] | None = ('plans',)
depends_on: str | Sequence[str] | None = '0001_foundation'


def upgrade() -> None:
    """The part's schema as Alembic wrote it: one statement per table and index, kept whole so that it reads
    as the schema it creates."""
    op.create_table('plan_actuals',
    sa.Column('municipality_code', sa.String(length=6), nullable=False),
    sa.Column('daily', sa.Boolean(), nullable=False),
    sa.Column('period', sa.Date(), nullable=False),
    sa.Column('state', sa.String(length=24), nullable=False),
    sa.Column('count', sa.BigInteger(), nullable=False),
    sa.PrimaryKeyConstraint('municipality_code', 'daily', 'period', 'state', name=op.f('pk_plan_actuals'))
    )
    op.create_table('plan_forecasts',
    sa.Column('municipality_code', sa.String(length=6), nullable=False),
    sa.Column('as_of', sa.Date(), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('low', sa.Date(), nullable=True),
    sa.Column('median', sa.Date(), nullable=True),
    sa.Column('high', sa.Date(), nullable=True),
    sa.Column('backlog', sa.Integer(), nullable=False),
    sa.Column('throughput_per_day', sa.Float(), nullable=False),
    sa.Column('arrivals_per_day', sa.Float(), nullable=False),
    sa.PrimaryKeyConstraint('municipality_code', name=op.f('pk_plan_forecasts'))
    )
    op.create_table('plan_imports',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('sha256', sa.String(length=64), nullable=False),
    sa.Column('as_of', sa.Date(), nullable=False),
    sa.Column('files', sa.Text(), nullable=False),
    sa.Column('municipalities', sa.Integer(), nullable=False),
    sa.Column('rows', sa.Integer(), nullable=False),
    sa.Column('imported_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('imported_by', sa.String(length=64), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_plan_imports')),
    sa.UniqueConstraint('sha256', name=op.f('uq_plan_imports_sha256'))
    )
    op.create_table('plan_settings',
    sa.Column('key', sa.String(length=32), nullable=False),
    sa.Column('value', sa.Text(), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_by', sa.String(length=64), nullable=False),
    sa.PrimaryKeyConstraint('key', name=op.f('pk_plan_settings'))
    )
    op.create_table('plan_revisions',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('municipality_code', sa.String(length=6), nullable=False),
    sa.Column('revision', sa.Integer(), nullable=False),
    sa.Column('as_of', sa.Date(), nullable=False),
    sa.Column('target_month', sa.Date(), nullable=True),
    sa.Column('source', sa.String(length=16), nullable=False),
    sa.Column('import_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=True),
    sa.Column('means', sa.Text(), nullable=True),
    sa.Column('backlog_total', sa.Integer(), nullable=True),
    sa.Column('arrivals_per_day', sa.Float(), nullable=True),
    sa.Column('required_per_day', sa.Integer(), nullable=True),
    sa.Column('capacity_per_day', sa.Float(), nullable=True),
    sa.Column('shortfall_per_day', sa.Integer(), nullable=True),
    sa.Column('bottleneck', sa.String(length=16), nullable=True),
    sa.Column('note', sa.Text(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('created_by', sa.String(length=64), nullable=False),
    sa.ForeignKeyConstraint(['import_id'], ['plan_imports.id'], name=op.f('fk_plan_revisions_import_id_plan_imports')),
    sa.ForeignKeyConstraint(['municipality_code'], ['municipalities.code'], name=op.f('fk_plan_revisions_municipality_code_municipalities')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_plan_revisions')),
    sa.UniqueConstraint('municipality_code', 'revision', name=op.f('uq_plan_revisions_municipality_code_revision'))
    )
    with op.batch_alter_table('plan_revisions', schema=None) as batch_op:
        batch_op.create_index('ix_plan_revisions_as_of', ['as_of'], unique=False)
        batch_op.create_index(batch_op.f('ix_plan_revisions_import_id'), ['import_id'], unique=False)

    op.create_table('plan_months',
    sa.Column('revision_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('month', sa.Date(), nullable=False),
    sa.Column('notices_sent_cumulative', sa.BigInteger(), nullable=False),
    sa.Column('applications_cumulative', sa.BigInteger(), nullable=False),
    sa.Column('planned', sa.Boolean(), nullable=False),
    sa.ForeignKeyConstraint(['revision_id'], ['plan_revisions.id'], name=op.f('fk_plan_months_revision_id_plan_revisions')),
    sa.PrimaryKeyConstraint('revision_id', 'month', name=op.f('pk_plan_months'))
    )
    op.create_table('plan_targets',
    sa.Column('revision_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('application_month', sa.Date(), nullable=False),
    sa.Column('target_month', sa.Date(), nullable=True),
    sa.Column('backlog', sa.Integer(), nullable=True),
    sa.ForeignKeyConstraint(['revision_id'], ['plan_revisions.id'], name=op.f('fk_plan_targets_revision_id_plan_revisions')),
    sa.PrimaryKeyConstraint('revision_id', 'application_month', name=op.f('pk_plan_targets'))
    )


def downgrade() -> None:
    op.drop_table('plan_targets')
    op.drop_table('plan_months')
    with op.batch_alter_table('plan_revisions', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_plan_revisions_import_id'))
        batch_op.drop_index('ix_plan_revisions_as_of')

    op.drop_table('plan_revisions')
    op.drop_table('plan_settings')
    op.drop_table('plan_imports')
    op.drop_table('plan_forecasts')
    op.drop_table('plan_actuals')
