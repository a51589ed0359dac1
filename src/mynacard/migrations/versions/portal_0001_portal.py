"""portal: resident sessions, own-information folder, applications

Revision ID: portal_0001
Revises:
Create Date: 2026-11-27 01:24:54.274111
"""
from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = 'portal_0001'
down_revision: str | Sequence[str] | None = None
branch_labels: str | Sequence[str] | None = ('portal',)
depends_on: str | Sequence[str] | None = '0001_foundation'


def upgrade() -> None:
    op.create_table('portal_applications',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('resident_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('idempotency_key', sa.String(length=64), nullable=False),
    sa.Column('message_id', sa.String(length=64), nullable=False),
    sa.Column('procedures', sa.Text(), nullable=False),
    sa.Column('sealed_forms', sa.LargeBinary(), nullable=False),
    sa.Column('submitted_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['resident_id'], ['residents.id'], name=op.f('fk_portal_applications_resident_id_residents')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_portal_applications')),
    sa.UniqueConstraint('message_id', name=op.f('uq_portal_applications_message_id')),
    sa.UniqueConstraint('resident_id', 'idempotency_key', name=op.f('uq_portal_applications_resident_id_idempotency_key'))
    )
    with op.batch_alter_table('portal_applications', schema=None) as batch_op:
        batch_op.create_index('ix_portal_applications_resident', ['resident_id', 'submitted_at'], unique=False)

    op.create_table('portal_self_information',
    sa.Column('resident_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('agency_id', sa.String(length=40), nullable=False),
    sa.Column('item', sa.String(length=40), nullable=False),
    sa.Column('sealed_data', sa.LargeBinary(), nullable=False),
    sa.Column('source_updated_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('fetched_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('message_id', sa.String(length=64), nullable=False),
    sa.ForeignKeyConstraint(['resident_id'], ['residents.id'], name=op.f('fk_portal_self_information_resident_id_residents')),
    sa.PrimaryKeyConstraint('resident_id', 'agency_id', 'item', name=op.f('pk_portal_self_information'))
    )
    op.create_table('portal_sessions',
    sa.Column('token_hash', sa.String(length=64), nullable=False),
    sa.Column('resident_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('auth_cert_serial', sa.String(length=64), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('last_seen_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('closed_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('close_reason', sa.String(length=16), nullable=True),
    sa.ForeignKeyConstraint(['resident_id'], ['residents.id'], name=op.f('fk_portal_sessions_resident_id_residents')),
    sa.PrimaryKeyConstraint('token_hash', name=op.f('pk_portal_sessions'))
    )
    with op.batch_alter_table('portal_sessions', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_portal_sessions_resident_id'), ['resident_id'], unique=False)

    op.create_table('portal_deliveries',
    sa.Column('application_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('procedure', sa.String(length=40), nullable=False),
    sa.Column('agency_id', sa.String(length=40), nullable=False),
    sa.Column('log_seq', sa.BigInteger(), nullable=False),
    sa.ForeignKeyConstraint(['application_id'], ['portal_applications.id'], name=op.f('fk_portal_deliveries_application_id_portal_applications')),
    sa.PrimaryKeyConstraint('application_id', 'procedure', name=op.f('pk_portal_deliveries'))
    )


def downgrade() -> None:
    op.drop_table('portal_deliveries')
    with op.batch_alter_table('portal_sessions', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_portal_sessions_resident_id'))

    op.drop_table('portal_sessions')
    op.drop_table('portal_self_information')
    with op.batch_alter_table('portal_applications', schema=None) as batch_op:
        batch_op.drop_index('ix_portal_applications_resident')

    op.drop_table('portal_applications')
