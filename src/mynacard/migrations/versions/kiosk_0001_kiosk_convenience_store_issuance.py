"""kiosk: convenience-store issuance

Revision ID: kiosk_0001
Revises:
Depends on: 0001_foundation
Create Date: 2026-11-27 01:44:27.231098
"""
from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = 'kiosk_0001'
down_revision: str | Sequence[str] | None = None
branch_labels: str | Sequence[str] | None = ('kiosk',)
depends_on: str | Sequence[str] | None = '0001_foundation'


def upgrade() -> None:
    """The part's schema as Alembic wrote it: one statement per table and index, kept whole so that it reads
    as the schema it creates."""
    op.create_table('kiosk_audit',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('stream', sa.String(length=64), nullable=False),
    sa.Column('seq', sa.Integer(), nullable=False),
    sa.Column('at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('request_id', sa.String(length=32), nullable=True),
    sa.Column('actor', sa.String(length=64), nullable=False),
    sa.Column('action', sa.String(length=32), nullable=False),
    sa.Column('details', sa.Text(), nullable=False),
    sa.Column('prev_hash', sa.String(length=64), nullable=False),
    sa.Column('hash', sa.String(length=64), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_kiosk_audit')),
    sa.UniqueConstraint('stream', 'seq', name=op.f('uq_kiosk_audit_stream_seq'))
    )
    with op.batch_alter_table('kiosk_audit', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_kiosk_audit_request_id'), ['request_id'], unique=False)

    op.create_table('kiosk_audit_heads',
    sa.Column('stream', sa.String(length=64), nullable=False),
    sa.Column('seq', sa.Integer(), nullable=False),
    sa.Column('hash', sa.String(length=64), nullable=False),
    sa.PrimaryKeyConstraint('stream', name=op.f('pk_kiosk_audit_heads'))
    )
    op.create_table('kiosk_closures',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('municipality_code', sa.String(length=6), nullable=True),
    sa.Column('day', sa.Date(), nullable=False),
    sa.Column('kind', sa.String(length=16), nullable=True),
    sa.Column('reason', sa.Text(), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_kiosk_closures')),
    sa.UniqueConstraint('municipality_code', 'day', 'kind', name=op.f('uq_kiosk_closures_municipality_code_day_kind'))
    )
    with op.batch_alter_table('kiosk_closures', schema=None) as batch_op:
        batch_op.create_index('ix_kiosk_closures_day', ['day'], unique=False)

    op.create_table('kiosk_family_registers',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('municipality_code', sa.String(length=6), nullable=False),
    sa.Column('domicile', sa.Text(), nullable=False),
    sa.Column('head_name', sa.String(length=60), nullable=False),
    sa.Column('pending_filing', sa.Boolean(), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_kiosk_family_registers'))
    )
    with op.batch_alter_table('kiosk_family_registers', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_kiosk_family_registers_municipality_code'), ['municipality_code'], unique=False)

    op.create_table('kiosk_signing_authorities',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('name', sa.String(length=128), nullable=False),
    sa.Column('certificate', sa.LargeBinary(), nullable=False),
    sa.Column('sealed_key', sa.LargeBinary(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_kiosk_signing_authorities'))
    )
    op.create_table('kiosk_municipal_settings',
    sa.Column('municipality_code', sa.String(length=6), nullable=False),
    sa.Column('participating', sa.Boolean(), nullable=False),
    sa.Column('mayor_name', sa.String(length=40), nullable=True),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['municipality_code'], ['municipalities.code'], name=op.f('fk_kiosk_municipal_settings_municipality_code_municipalities')),
    sa.PrimaryKeyConstraint('municipality_code', name=op.f('pk_kiosk_municipal_settings'))
    )
    op.create_table('kiosk_offerings',
    sa.Column('municipality_code', sa.String(length=6), nullable=False),
    sa.Column('kind', sa.String(length=16), nullable=False),
    sa.Column('fee_yen', sa.Integer(), nullable=False),
    sa.Column('weekdays_only', sa.Boolean(), nullable=False),
    sa.Column('opens', sa.String(length=5), nullable=False),
    sa.Column('closes', sa.String(length=5), nullable=False),
    sa.ForeignKeyConstraint(['municipality_code'], ['municipalities.code'], name=op.f('fk_kiosk_offerings_municipality_code_municipalities')),
    sa.PrimaryKeyConstraint('municipality_code', 'kind', name=op.f('pk_kiosk_offerings'))
    )
    op.create_table('kiosk_signing_keys',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('municipality_code', sa.String(length=6), nullable=False),
    sa.Column('authority_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('certificate', sa.LargeBinary(), nullable=False),
    sa.Column('sealed_key', sa.LargeBinary(), nullable=False),
    sa.Column('not_before', sa.DateTime(timezone=True), nullable=False),
    sa.Column('not_after', sa.DateTime(timezone=True), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['authority_id'], ['kiosk_signing_authorities.id'], name=op.f('fk_kiosk_signing_keys_authority_id_kiosk_signing_authorities')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_kiosk_signing_keys'))
    )
    with op.batch_alter_table('kiosk_signing_keys', schema=None) as batch_op:
        batch_op.create_index('ix_kiosk_signing_keys_municipality', ['municipality_code', 'not_after'], unique=False)

    op.create_table('kiosk_address_history',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('resident_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('address', sa.Text(), nullable=False),
    sa.Column('since', sa.Date(), nullable=False),
    sa.ForeignKeyConstraint(['resident_id'], ['residents.id'], name=op.f('fk_kiosk_address_history_resident_id_residents')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_kiosk_address_history'))
    )
    with op.batch_alter_table('kiosk_address_history', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_kiosk_address_history_resident_id'), ['resident_id'], unique=False)

    op.create_table('kiosk_documents',
    sa.Column('document_id', sa.String(length=26), nullable=False),
    sa.Column('request_id', sa.String(length=32), nullable=False),
    sa.Column('municipality_code', sa.String(length=6), nullable=False),
    sa.Column('kind', sa.String(length=16), nullable=False),
    sa.Column('state', sa.String(length=16), nullable=False),
    sa.Column('holder_resident_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('subject_resident_ids', sa.Text(), nullable=False),
    sa.Column('holder_ref', sa.String(length=64), nullable=False),
    sa.Column('copies', sa.Integer(), nullable=False),
    sa.Column('sealed_content', sa.LargeBinary(), nullable=False),
    sa.Column('content_digest', sa.String(length=64), nullable=False),
    sa.Column('sealed_pdf', sa.LargeBinary(), nullable=False),
    sa.Column('pdf_sha256', sa.String(length=64), nullable=False),
    sa.Column('prepared_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('issued_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('printed_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('voided_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('void_reason', sa.String(length=40), nullable=True),
    sa.Column('verifiable_until', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['holder_resident_id'], ['residents.id'], name=op.f('fk_kiosk_documents_holder_resident_id_residents')),
    sa.PrimaryKeyConstraint('document_id', name=op.f('pk_kiosk_documents')),
    sa.UniqueConstraint('request_id', name=op.f('uq_kiosk_documents_request_id'))
    )
    with op.batch_alter_table('kiosk_documents', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_kiosk_documents_holder_resident_id'), ['holder_resident_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_kiosk_documents_municipality_code'), ['municipality_code'], unique=False)

    op.create_table('kiosk_family_register_members',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('register_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('resident_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=True),
    sa.Column('position', sa.Integer(), nullable=False),
    sa.Column('family_name', sa.String(length=60), nullable=False),
    sa.Column('given_name', sa.String(length=60), nullable=False),
    sa.Column('birth_date', sa.Date(), nullable=False),
    sa.Column('sex', sa.String(length=1), nullable=False),
    sa.Column('relationship', sa.String(length=16), nullable=False),
    sa.Column('father', sa.String(length=60), nullable=True),
    sa.Column('mother', sa.String(length=60), nullable=True),
    sa.Column('events', sa.Text(), nullable=False),
    sa.Column('removed', sa.Boolean(), nullable=False),
    sa.ForeignKeyConstraint(['register_id'], ['kiosk_family_registers.id'], name=op.f('fk_kiosk_family_register_members_register_id_kiosk_family_registers')),
    sa.ForeignKeyConstraint(['resident_id'], ['residents.id'], name=op.f('fk_kiosk_family_register_members_resident_id_residents')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_kiosk_family_register_members'))
    )
    with op.batch_alter_table('kiosk_family_register_members', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_kiosk_family_register_members_register_id'), ['register_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_kiosk_family_register_members_resident_id'), ['resident_id'], unique=False)

    op.create_table('kiosk_family_register_use',
    sa.Column('resident_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('municipality_code', sa.String(length=6), nullable=False),
    sa.Column('registered_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('request_id', sa.String(length=32), nullable=True),
    sa.ForeignKeyConstraint(['resident_id'], ['residents.id'], name=op.f('fk_kiosk_family_register_use_resident_id_residents')),
    sa.PrimaryKeyConstraint('resident_id', 'municipality_code', name=op.f('pk_kiosk_family_register_use'))
    )
    op.create_table('kiosk_resident_notes',
    sa.Column('resident_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('transfer_out_filed_on', sa.Date(), nullable=True),
    sa.Column('moved_in_on', sa.Date(), nullable=True),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['resident_id'], ['residents.id'], name=op.f('fk_kiosk_resident_notes_resident_id_residents')),
    sa.PrimaryKeyConstraint('resident_id', name=op.f('pk_kiosk_resident_notes'))
    )
    op.create_table('kiosk_seal_registrations',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('resident_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('municipality_code', sa.String(length=6), nullable=False),
    sa.Column('registration_number', sa.String(length=16), nullable=False),
    sa.Column('impression', sa.LargeBinary(), nullable=False),
    sa.Column('registered_on', sa.Date(), nullable=False),
    sa.Column('abolished_on', sa.Date(), nullable=True),
    sa.ForeignKeyConstraint(['resident_id'], ['residents.id'], name=op.f('fk_kiosk_seal_registrations_resident_id_residents')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_kiosk_seal_registrations')),
    sa.UniqueConstraint('registration_number', name=op.f('uq_kiosk_seal_registrations_registration_number'))
    )
    with op.batch_alter_table('kiosk_seal_registrations', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_kiosk_seal_registrations_resident_id'), ['resident_id'], unique=False)

    op.create_table('kiosk_sessions',
    sa.Column('request_id', sa.String(length=32), nullable=False),
    sa.Column('kiosk_id', sa.String(length=64), nullable=False),
    sa.Column('state', sa.String(length=16), nullable=False),
    sa.Column('challenge', sa.LargeBinary(), nullable=True),
    sa.Column('challenge_expires_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('certificate_sha256', sa.String(length=64), nullable=True),
    sa.Column('certificate_serial', sa.String(length=40), nullable=True),
    sa.Column('resident_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=True),
    sa.Column('home_municipality', sa.String(length=6), nullable=True),
    sa.Column('offer', sa.Text(), nullable=True),
    sa.Column('options', sa.Text(), nullable=True),
    sa.Column('issuing_municipality', sa.String(length=6), nullable=True),
    sa.Column('fee_yen', sa.Integer(), nullable=True),
    sa.Column('paid_yen', sa.Integer(), nullable=True),
    sa.Column('document_id', sa.String(length=26), nullable=True),
    sa.Column('pdf_sha256', sa.String(length=64), nullable=True),
    sa.Column('refusal', sa.String(length=40), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('expires_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('authenticated_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('ordered_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('released_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('closed_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('void_confirmed_at', sa.DateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['resident_id'], ['residents.id'], name=op.f('fk_kiosk_sessions_resident_id_residents')),
    sa.PrimaryKeyConstraint('request_id', name=op.f('pk_kiosk_sessions')),
    sa.UniqueConstraint('document_id', name=op.f('uq_kiosk_sessions_document_id'))
    )
    with op.batch_alter_table('kiosk_sessions', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_kiosk_sessions_kiosk_id'), ['kiosk_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_kiosk_sessions_resident_id'), ['resident_id'], unique=False)
        batch_op.create_index('ix_kiosk_sessions_state_expires', ['state', 'expires_at'], unique=False)

    op.create_table('kiosk_support_measures',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('resident_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('municipality_code', sa.String(length=6), nullable=False),
    sa.Column('starts_on', sa.Date(), nullable=False),
    sa.Column('ends_on', sa.Date(), nullable=True),
    sa.Column('recorded_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['resident_id'], ['residents.id'], name=op.f('fk_kiosk_support_measures_resident_id_residents')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_kiosk_support_measures'))
    )
    with op.batch_alter_table('kiosk_support_measures', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_kiosk_support_measures_resident_id'), ['resident_id'], unique=False)

    op.create_table('kiosk_tax_records',
    sa.Column('resident_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('fiscal_year', sa.Integer(), nullable=False),
    sa.Column('municipality_code', sa.String(length=6), nullable=False),
    sa.Column('total_income', sa.BigInteger(), nullable=False),
    sa.Column('employment_income', sa.BigInteger(), nullable=False),
    sa.Column('deductions', sa.BigInteger(), nullable=False),
    sa.Column('taxable_income', sa.BigInteger(), nullable=False),
    sa.Column('municipal_tax', sa.BigInteger(), nullable=False),
    sa.Column('prefectural_tax', sa.BigInteger(), nullable=False),
    sa.Column('recorded_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['resident_id'], ['residents.id'], name=op.f('fk_kiosk_tax_records_resident_id_residents')),
    sa.PrimaryKeyConstraint('resident_id', 'fiscal_year', name=op.f('pk_kiosk_tax_records'))
    )


def downgrade() -> None:
    op.drop_table('kiosk_tax_records')
    with op.batch_alter_table('kiosk_support_measures', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_kiosk_support_measures_resident_id'))

    op.drop_table('kiosk_support_measures')
    with op.batch_alter_table('kiosk_sessions', schema=None) as batch_op:
        batch_op.drop_index('ix_kiosk_sessions_state_expires')
        batch_op.drop_index(batch_op.f('ix_kiosk_sessions_resident_id'))
        batch_op.drop_index(batch_op.f('ix_kiosk_sessions_kiosk_id'))

    op.drop_table('kiosk_sessions')
    with op.batch_alter_table('kiosk_seal_registrations', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_kiosk_seal_registrations_resident_id'))

    op.drop_table('kiosk_seal_registrations')
    op.drop_table('kiosk_resident_notes')
    op.drop_table('kiosk_family_register_use')
    with op.batch_alter_table('kiosk_family_register_members', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_kiosk_family_register_members_resident_id'))
        batch_op.drop_index(batch_op.f('ix_kiosk_family_register_members_register_id'))

    op.drop_table('kiosk_family_register_members')
    with op.batch_alter_table('kiosk_documents', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_kiosk_documents_municipality_code'))
        batch_op.drop_index(batch_op.f('ix_kiosk_documents_holder_resident_id'))

    op.drop_table('kiosk_documents')
    with op.batch_alter_table('kiosk_address_history', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_kiosk_address_history_resident_id'))

    op.drop_table('kiosk_address_history')
    with op.batch_alter_table('kiosk_signing_keys', schema=None) as batch_op:
        batch_op.drop_index('ix_kiosk_signing_keys_municipality')

    op.drop_table('kiosk_signing_keys')
    op.drop_table('kiosk_offerings')
    op.drop_table('kiosk_municipal_settings')
    op.drop_table('kiosk_signing_authorities')
    with op.batch_alter_table('kiosk_family_registers', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_kiosk_family_registers_municipality_code'))

    op.drop_table('kiosk_family_registers')
    with op.batch_alter_table('kiosk_closures', schema=None) as batch_op:
        batch_op.drop_index('ix_kiosk_closures_day')

    op.drop_table('kiosk_closures')
    op.drop_table('kiosk_audit_heads')
    with op.batch_alter_table('kiosk_audit', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_kiosk_audit_request_id'))

    op.drop_table('kiosk_audit')
