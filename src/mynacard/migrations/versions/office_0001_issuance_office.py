"""office: sites, counters, shifts, slots, notices, bookings, receipt checks, setup runs

Revision ID: office_0001
Revises:
Create Date: 2026-11-27 04:54:14.796711
"""
from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = 'office_0001'
down_revision: str | Sequence[str] | None = None
branch_labels: str | Sequence[str] | None = ('office',)
depends_on: str | Sequence[str] | None = '0001_foundation'


def upgrade() -> None:
    """The part's schema as Alembic wrote it: one statement per table and index, kept whole so that it reads
    as the schema it creates."""
    op.create_table('office_setup_runs',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('municipality_code', sa.String(length=6), nullable=False),
    sa.Column('started_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('terminals', sa.Integer(), nullable=False),
    sa.Column('limit_cards', sa.Integer(), nullable=False),
    sa.Column('cards', sa.Integer(), nullable=False),
    sa.Column('run_by', sa.String(length=64), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_office_setup_runs'))
    )
    with op.batch_alter_table('office_setup_runs', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_office_setup_runs_municipality_code'), ['municipality_code'], unique=False)

    op.create_table('office_sites',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('municipality_code', sa.String(length=6), nullable=False),
    sa.Column('name', sa.String(length=100), nullable=False),
    sa.Column('kind', sa.String(length=16), nullable=False),
    sa.Column('address', sa.Text(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_office_sites')),
    sa.UniqueConstraint('municipality_code', 'name', name='uq_office_sites_name')
    )
    with op.batch_alter_table('office_sites', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_office_sites_municipality_code'), ['municipality_code'], unique=False)

    op.create_table('office_counters',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('site_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('kind', sa.String(length=16), nullable=False),
    sa.Column('label', sa.String(length=40), nullable=False),
    sa.Column('terminals', sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(['site_id'], ['office_sites.id'], name=op.f('fk_office_counters_site_id_office_sites')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_office_counters')),
    sa.UniqueConstraint('site_id', 'label', name='uq_office_counters_label')
    )
    with op.batch_alter_table('office_counters', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_office_counters_site_id'), ['site_id'], unique=False)

    op.create_table('office_shifts',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('site_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('day', sa.Date(), nullable=False),
    sa.Column('starts', sa.Time(), nullable=False),
    sa.Column('ends', sa.Time(), nullable=False),
    sa.Column('staff', sa.Integer(), nullable=False),
    sa.Column('note', sa.String(length=100), nullable=True),
    sa.ForeignKeyConstraint(['site_id'], ['office_sites.id'], name=op.f('fk_office_shifts_site_id_office_sites')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_office_shifts')),
    sa.UniqueConstraint('site_id', 'day', 'starts', name='uq_office_shifts_start')
    )
    op.create_table('office_slots',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('site_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('municipality_code', sa.String(length=6), nullable=False),
    sa.Column('kind', sa.String(length=16), nullable=False),
    sa.Column('starts_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('ends_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('capacity', sa.Integer(), nullable=False),
    sa.Column('booked', sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(['site_id'], ['office_sites.id'], name=op.f('fk_office_slots_site_id_office_sites')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_office_slots')),
    sa.UniqueConstraint('site_id', 'kind', 'starts_at', name='uq_office_slots_start')
    )
    with op.batch_alter_table('office_slots', schema=None) as batch_op:
        batch_op.create_index('ix_office_slots_municipality_start', ['municipality_code', 'kind', 'starts_at'], unique=False)

    op.create_table('office_notices',
    sa.Column('notice_number', sa.String(length=17), nullable=False),
    sa.Column('card_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('resident_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('municipality_code', sa.String(length=6), nullable=False),
    sa.Column('state', sa.String(length=16), nullable=False),
    sa.Column('sequence', sa.Integer(), nullable=False),
    sa.Column('birth_hash', sa.String(length=64), nullable=False),
    sa.Column('failed_attempts', sa.Integer(), nullable=False),
    sa.Column('sent_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('pickup_deadline', sa.Date(), nullable=False),
    sa.Column('closed_at', sa.DateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['card_id'], ['cards.id'], name=op.f('fk_office_notices_card_id_cards')),
    sa.ForeignKeyConstraint(['resident_id'], ['residents.id'], name=op.f('fk_office_notices_resident_id_residents')),
    sa.PrimaryKeyConstraint('notice_number', name=op.f('pk_office_notices'))
    )
    with op.batch_alter_table('office_notices', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_office_notices_card_id'), ['card_id'], unique=False)
        batch_op.create_index('ix_office_notices_municipality_state', ['municipality_code', 'state'], unique=False)
        batch_op.create_index('uq_office_notices_open_card', ['card_id'], unique=True, postgresql_where=sa.text("state = 'sent'"), sqlite_where=sa.text("state = 'sent'"))

    op.create_table('office_receipt_checks',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('card_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('municipality_code', sa.String(length=6), nullable=False),
    sa.Column('outcome', sa.String(length=16), nullable=False),
    sa.Column('problems', sa.Text(), nullable=True),
    sa.Column('chip_checked', sa.Integer(), nullable=False),
    sa.Column('checked_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('checked_by', sa.String(length=64), nullable=False),
    sa.ForeignKeyConstraint(['card_id'], ['cards.id'], name=op.f('fk_office_receipt_checks_card_id_cards')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_office_receipt_checks'))
    )
    with op.batch_alter_table('office_receipt_checks', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_office_receipt_checks_card_id'), ['card_id'], unique=False)

    op.create_table('office_bookings',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('notice_number', sa.String(length=17), nullable=False),
    sa.Column('slot_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('municipality_code', sa.String(length=6), nullable=False),
    sa.Column('state', sa.String(length=16), nullable=False),
    sa.Column('idempotency_key', sa.String(length=80), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('closed_at', sa.DateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['notice_number'], ['office_notices.notice_number'], name=op.f('fk_office_bookings_notice_number_office_notices')),
    sa.ForeignKeyConstraint(['slot_id'], ['office_slots.id'], name=op.f('fk_office_bookings_slot_id_office_slots')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_office_bookings')),
    sa.UniqueConstraint('idempotency_key', name=op.f('uq_office_bookings_idempotency_key'))
    )
    with op.batch_alter_table('office_bookings', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_office_bookings_notice_number'), ['notice_number'], unique=False)
        batch_op.create_index(batch_op.f('ix_office_bookings_slot_id'), ['slot_id'], unique=False)
        batch_op.create_index('uq_office_bookings_active_notice', ['notice_number'], unique=True, postgresql_where=sa.text("state = 'active'"), sqlite_where=sa.text("state = 'active'"))



def downgrade() -> None:
    with op.batch_alter_table('office_bookings', schema=None) as batch_op:
        batch_op.drop_index('uq_office_bookings_active_notice', postgresql_where=sa.text("state = 'active'"), sqlite_where=sa.text("state = 'active'"))
        batch_op.drop_index(batch_op.f('ix_office_bookings_slot_id'))
        batch_op.drop_index(batch_op.f('ix_office_bookings_notice_number'))

    op.drop_table('office_bookings')
    with op.batch_alter_table('office_receipt_checks', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_office_receipt_checks_card_id'))

    op.drop_table('office_receipt_checks')
    with op.batch_alter_table('office_notices', schema=None) as batch_op:
        batch_op.drop_index('uq_office_notices_open_card', postgresql_where=sa.text("state = 'sent'"), sqlite_where=sa.text("state = 'sent'"))
        batch_op.drop_index('ix_office_notices_municipality_state')
        batch_op.drop_index(batch_op.f('ix_office_notices_card_id'))

    op.drop_table('office_notices')
    with op.batch_alter_table('office_slots', schema=None) as batch_op:
        batch_op.drop_index('ix_office_slots_municipality_start')

    op.drop_table('office_slots')
    op.drop_table('office_shifts')
    with op.batch_alter_table('office_counters', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_office_counters_site_id'))

    op.drop_table('office_counters')
    with op.batch_alter_table('office_sites', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_office_sites_municipality_code'))

    op.drop_table('office_sites')
    with op.batch_alter_table('office_setup_runs', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_office_setup_runs_municipality_code'))

    op.drop_table('office_setup_runs')
