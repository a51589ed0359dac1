"""installation: what kind of installation the database is (a demo is marked as such)

Revision ID: installation_0001
Revises:
Create Date: 2026-12-07 08:00:00
"""
from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = 'installation_0001'
down_revision: str | Sequence[str] | None = None
branch_labels: str | Sequence[str] | None = ('installation',)
depends_on: str | Sequence[str] | None = '0001_foundation'


def upgrade() -> None:
    op.create_table('installation',
    sa.Column('key', sa.String(length=32), nullable=False),
    sa.Column('value', sa.Text(), nullable=False),
    sa.Column('set_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('key', name=op.f('pk_installation'))
    )


def downgrade() -> None:
    op.drop_table('installation')
