"""jpki: certificates found by the card's manufacture number (the operator's page searches by it)

Revision ID: jpki_0002
Revises: jpki_0001
Create Date: 2026-12-07 13:00:00
"""
from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = 'jpki_0002'
down_revision: str | Sequence[str] | None = 'jpki_0001'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table('jpki_certificates', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_jpki_certificates_card_serial'), ['card_serial'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('jpki_certificates', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_jpki_certificates_card_serial'))
