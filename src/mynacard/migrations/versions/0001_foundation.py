"""foundation: registry, card pipeline, accounts, outbox

Revision ID: 0001_foundation
Revises:
Create Date: 2026-11-27 00:40:10.747667
"""
from __future__ import annotations

import csv
from collections.abc import Sequence
from importlib.resources import files

import sqlalchemy as sa
from alembic import op

revision: str = '0001_foundation'
down_revision: str | Sequence[str] | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """The part's schema as Alembic wrote it: one statement per table and index, kept whole so that it reads
    as the schema it creates."""
    op.create_table('accounts',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('username', sa.String(length=64), nullable=False),
    sa.Column('role', sa.String(length=16), nullable=False),
    sa.Column('municipality_code', sa.String(length=6), nullable=True),
    sa.Column('password_hash', sa.String(length=256), nullable=True),
    sa.Column('api_key_hash', sa.String(length=64), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('disabled_at', sa.DateTime(timezone=True), nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_accounts')),
    sa.UniqueConstraint('api_key_hash', name=op.f('uq_accounts_api_key_hash')),
    sa.UniqueConstraint('username', name=op.f('uq_accounts_username'))
    )
    op.create_table('boxes',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('municipality_code', sa.String(length=6), nullable=False),
    sa.Column('manufacturer', sa.String(length=32), nullable=False),
    sa.Column('card_count', sa.Integer(), nullable=False),
    sa.Column('manifest_sha256', sa.String(length=64), nullable=False),
    sa.Column('shipped_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('received_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('received_by', sa.String(length=64), nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_boxes'))
    )
    with op.batch_alter_table('boxes', schema=None) as batch_op:
        batch_op.create_index('ix_boxes_municipality_received', ['municipality_code', 'received_at'], unique=False)

    op.create_table('domain_events',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('kind', sa.String(length=64), nullable=False),
    sa.Column('payload', sa.Text(), nullable=False),
    sa.Column('occurred_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_domain_events'))
    )
    op.create_table('individual_numbers',
    sa.Column('number_hash', sa.String(length=64), nullable=False),
    sa.Column('resident_code', sa.String(length=11), nullable=False),
    sa.Column('attempt', sa.Integer(), nullable=False),
    sa.Column('sealed_number', sa.LargeBinary(), nullable=False),
    sa.Column('assigned_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('retired_at', sa.DateTime(timezone=True), nullable=True),
    sa.PrimaryKeyConstraint('number_hash', name=op.f('pk_individual_numbers'))
    )
    with op.batch_alter_table('individual_numbers', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_individual_numbers_resident_code'), ['resident_code'], unique=False)

    op.create_table('municipalities',
    sa.Column('code', sa.String(length=6), nullable=False),
    sa.Column('prefecture_code', sa.String(length=2), nullable=False),
    sa.Column('prefecture', sa.String(length=8), nullable=False),
    sa.Column('name', sa.String(length=32), nullable=False),
    sa.Column('kana', sa.String(length=64), nullable=False),
    sa.Column('lat', sa.Float(), nullable=True),
    sa.Column('lng', sa.Float(), nullable=True),
    sa.PrimaryKeyConstraint('code', name=op.f('pk_municipalities'))
    )
    with op.batch_alter_table('municipalities', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_municipalities_prefecture_code'), ['prefecture_code'], unique=False)

    op.create_table('print_batches',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('manufacturer', sa.String(length=32), nullable=False),
    sa.Column('business_date', sa.Date(), nullable=False),
    sa.Column('file_name', sa.String(length=128), nullable=False),
    sa.Column('sha256', sa.String(length=64), nullable=False),
    sa.Column('card_count', sa.Integer(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('acknowledged_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('manufactured_at', sa.DateTime(timezone=True), nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_print_batches'))
    )
    op.create_table('box_discrepancies',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('box_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('card_serial', sa.String(length=16), nullable=False),
    sa.Column('kind', sa.String(length=16), nullable=False),
    sa.Column('reason', sa.Text(), nullable=True),
    sa.Column('at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['box_id'], ['boxes.id'], name=op.f('fk_box_discrepancies_box_id_boxes')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_box_discrepancies'))
    )
    with op.batch_alter_table('box_discrepancies', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_box_discrepancies_box_id'), ['box_id'], unique=False)

    op.create_table('event_deliveries',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('event_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('handler', sa.String(length=128), nullable=False),
    sa.Column('done_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('attempts', sa.Integer(), nullable=False),
    sa.Column('last_error', sa.Text(), nullable=True),
    sa.ForeignKeyConstraint(['event_id'], ['domain_events.id'], name=op.f('fk_event_deliveries_event_id_domain_events')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_event_deliveries'))
    )
    with op.batch_alter_table('event_deliveries', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_event_deliveries_done_at'), ['done_at'], unique=False)
        batch_op.create_index(batch_op.f('ix_event_deliveries_event_id'), ['event_id'], unique=False)

    op.create_table('households',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('municipality_code', sa.String(length=6), nullable=False),
    sa.Column('address', sa.Text(), nullable=False),
    sa.ForeignKeyConstraint(['municipality_code'], ['municipalities.code'], name=op.f('fk_households_municipality_code_municipalities')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_households'))
    )
    with op.batch_alter_table('households', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_households_municipality_code'), ['municipality_code'], unique=False)

    op.create_table('residents',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('resident_code', sa.String(length=11), nullable=False),
    sa.Column('municipality_code', sa.String(length=6), nullable=False),
    sa.Column('household_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=True),
    sa.Column('relationship', sa.String(length=16), nullable=False),
    sa.Column('family_name', sa.String(length=60), nullable=False),
    sa.Column('given_name', sa.String(length=60), nullable=False),
    sa.Column('family_kana', sa.String(length=120), nullable=False),
    sa.Column('given_kana', sa.String(length=120), nullable=False),
    sa.Column('maiden_name', sa.String(length=60), nullable=True),
    sa.Column('birth_date', sa.Date(), nullable=False),
    sa.Column('sex', sa.String(length=1), nullable=False),
    sa.Column('address', sa.Text(), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('number_hash', sa.String(length=64), nullable=True),
    sa.Column('version', sa.Integer(), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['household_id'], ['households.id'], name=op.f('fk_residents_household_id_households')),
    sa.ForeignKeyConstraint(['municipality_code'], ['municipalities.code'], name=op.f('fk_residents_municipality_code_municipalities')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_residents')),
    sa.UniqueConstraint('number_hash', name=op.f('uq_residents_number_hash')),
    sa.UniqueConstraint('resident_code', name=op.f('uq_residents_resident_code'))
    )
    with op.batch_alter_table('residents', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_residents_household_id'), ['household_id'], unique=False)
        batch_op.create_index('ix_residents_municipality_status', ['municipality_code', 'status'], unique=False)

    op.create_table('application_forms',
    sa.Column('application_id', sa.String(length=23), nullable=False),
    sa.Column('resident_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('municipality_code', sa.String(length=6), nullable=False),
    sa.Column('facts_digest', sa.String(length=64), nullable=False),
    sa.Column('issued_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['resident_id'], ['residents.id'], name=op.f('fk_application_forms_resident_id_residents')),
    sa.PrimaryKeyConstraint('application_id', name=op.f('pk_application_forms'))
    )
    with op.batch_alter_table('application_forms', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_application_forms_resident_id'), ['resident_id'], unique=False)

    op.create_table('cards',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('application_id', sa.String(length=23), nullable=False),
    sa.Column('resident_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('municipality_code', sa.String(length=6), nullable=False),
    sa.Column('state', sa.String(length=24), nullable=False),
    sa.Column('channel', sa.String(length=16), nullable=False),
    sa.Column('family_name', sa.String(length=60), nullable=False),
    sa.Column('given_name', sa.String(length=60), nullable=False),
    sa.Column('birth_date', sa.Date(), nullable=False),
    sa.Column('sex', sa.String(length=1), nullable=False),
    sa.Column('address', sa.Text(), nullable=False),
    sa.Column('maiden_name', sa.String(length=60), nullable=True),
    sa.Column('photo_sha256', sa.String(length=64), nullable=False),
    sa.Column('wants_sign_cert', sa.Boolean(), nullable=False),
    sa.Column('wants_auth_cert', sa.Boolean(), nullable=False),
    sa.Column('applied_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('review_reason', sa.Text(), nullable=True),
    sa.Column('print_batch_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=True),
    sa.Column('box_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=True),
    sa.Column('card_serial', sa.String(length=16), nullable=True),
    sa.Column('print_count', sa.Integer(), nullable=False),
    sa.Column('issued_on', sa.Date(), nullable=True),
    sa.Column('card_valid_until', sa.Date(), nullable=True),
    sa.Column('cert_valid_until', sa.Date(), nullable=True),
    sa.Column('abolition_reason', sa.String(length=32), nullable=True),
    sa.Column('version', sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(['box_id'], ['boxes.id'], name=op.f('fk_cards_box_id_boxes')),
    sa.ForeignKeyConstraint(['print_batch_id'], ['print_batches.id'], name=op.f('fk_cards_print_batch_id_print_batches')),
    sa.ForeignKeyConstraint(['resident_id'], ['residents.id'], name=op.f('fk_cards_resident_id_residents')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_cards')),
    sa.UniqueConstraint('application_id', name=op.f('uq_cards_application_id')),
    sa.UniqueConstraint('card_serial', name=op.f('uq_cards_card_serial'))
    )
    with op.batch_alter_table('cards', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_cards_box_id'), ['box_id'], unique=False)
        batch_op.create_index('ix_cards_municipality_state', ['municipality_code', 'state'], unique=False)
        batch_op.create_index('ix_cards_print_batch', ['print_batch_id', 'state'], unique=False)
        batch_op.create_index(batch_op.f('ix_cards_resident_id'), ['resident_id'], unique=False)
        batch_op.create_index('ix_cards_state_id', ['state', 'id'], unique=False)

    op.create_table('registry_events',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('resident_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('kind', sa.String(length=32), nullable=False),
    sa.Column('actor', sa.String(length=64), nullable=False),
    sa.Column('at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('details', sa.Text(), nullable=False),
    sa.ForeignKeyConstraint(['resident_id'], ['residents.id'], name=op.f('fk_registry_events_resident_id_residents')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_registry_events'))
    )
    with op.batch_alter_table('registry_events', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_registry_events_resident_id'), ['resident_id'], unique=False)

    op.create_table('card_events',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('card_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('from_state', sa.String(length=24), nullable=True),
    sa.Column('to_state', sa.String(length=24), nullable=False),
    sa.Column('actor', sa.String(length=64), nullable=False),
    sa.Column('at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('reason', sa.Text(), nullable=True),
    sa.ForeignKeyConstraint(['card_id'], ['cards.id'], name=op.f('fk_card_events_card_id_cards')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_card_events'))
    )
    with op.batch_alter_table('card_events', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_card_events_card_id'), ['card_id'], unique=False)
    # Reference data: the 1,741 municipalities (see registry/data/PROVENANCE.md).
    text = (files("mynacard.registry") / "data" / "municipalities.csv").read_text(encoding="utf-8")
    rows = [{**r, "lat": float(r["lat"]), "lng": float(r["lng"])} for r in csv.DictReader(text.splitlines())]
    op.bulk_insert(sa.table("municipalities", *(sa.column(c) for c in rows[0])), rows)


def downgrade() -> None:
    with op.batch_alter_table('card_events', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_card_events_card_id'))

    op.drop_table('card_events')
    with op.batch_alter_table('registry_events', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_registry_events_resident_id'))

    op.drop_table('registry_events')
    with op.batch_alter_table('cards', schema=None) as batch_op:
        batch_op.drop_index('ix_cards_state_id')
        batch_op.drop_index(batch_op.f('ix_cards_resident_id'))
        batch_op.drop_index('ix_cards_print_batch')
        batch_op.drop_index('ix_cards_municipality_state')
        batch_op.drop_index(batch_op.f('ix_cards_box_id'))

    op.drop_table('cards')
    with op.batch_alter_table('application_forms', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_application_forms_resident_id'))

    op.drop_table('application_forms')
    with op.batch_alter_table('residents', schema=None) as batch_op:
        batch_op.drop_index('ix_residents_municipality_status')
        batch_op.drop_index(batch_op.f('ix_residents_household_id'))

    op.drop_table('residents')
    with op.batch_alter_table('households', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_households_municipality_code'))

    op.drop_table('households')
    with op.batch_alter_table('event_deliveries', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_event_deliveries_event_id'))
        batch_op.drop_index(batch_op.f('ix_event_deliveries_done_at'))

    op.drop_table('event_deliveries')
    with op.batch_alter_table('box_discrepancies', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_box_discrepancies_box_id'))

    op.drop_table('box_discrepancies')
    op.drop_table('print_batches')
    with op.batch_alter_table('municipalities', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_municipalities_prefecture_code'))

    op.drop_table('municipalities')
    with op.batch_alter_table('individual_numbers', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_individual_numbers_resident_code'))

    op.drop_table('individual_numbers')
    op.drop_table('domain_events')
    with op.batch_alter_table('boxes', schema=None) as batch_op:
        batch_op.drop_index('ix_boxes_municipality_received')

    op.drop_table('boxes')
    op.drop_table('accounts')
