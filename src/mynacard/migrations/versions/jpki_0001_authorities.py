"""jpki: CAs, certificates, CRLs, OCSP, verifiers

Revision ID: jpki_0001
Revises:
Depends on: 0001_foundation (branch label: jpki)
Create Date: 2026-11-27 01:01:13.306027
"""
from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = 'jpki_0001'
down_revision: str | Sequence[str] | None = None
branch_labels: str | Sequence[str] | None = ('jpki',)
depends_on: str | Sequence[str] | None = '0001_foundation'


def upgrade() -> None:
    """The part's schema as Alembic wrote it: one statement per table and index, kept whole so that it reads
    as the schema it creates."""
    op.create_table('jpki_authorities',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('kind', sa.String(length=8), nullable=False),
    sa.Column('generation', sa.Integer(), nullable=False),
    sa.Column('certificate', sa.LargeBinary(), nullable=False),
    sa.Column('subject_key_id', sa.String(length=64), nullable=False),
    sa.Column('name_sha1', sa.String(length=40), nullable=False),
    sa.Column('name_sha256', sa.String(length=64), nullable=False),
    sa.Column('key_sha1', sa.String(length=40), nullable=False),
    sa.Column('key_sha256', sa.String(length=64), nullable=False),
    sa.Column('not_before', sa.DateTime(timezone=True), nullable=False),
    sa.Column('not_after', sa.DateTime(timezone=True), nullable=False),
    sa.Column('key_store', sa.String(length=8), nullable=False),
    sa.Column('key_label', sa.String(length=64), nullable=False),
    sa.Column('sealed_key', sa.LargeBinary(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('retired_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('last_crl_number', sa.BigInteger(), nullable=False),
    sa.Column('last_full_crl_number', sa.BigInteger(), nullable=False),
    sa.Column('revocation_counter', sa.BigInteger(), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_jpki_authorities')),
    sa.UniqueConstraint('key_sha1', name=op.f('uq_jpki_authorities_key_sha1')),
    sa.UniqueConstraint('key_sha256', name=op.f('uq_jpki_authorities_key_sha256')),
    sa.UniqueConstraint('kind', 'generation', name=op.f('uq_jpki_authorities_kind_generation'))
    )
    op.create_table('jpki_challenges',
    sa.Column('id', sa.String(length=48), nullable=False),
    sa.Column('issued_to', sa.String(length=128), nullable=False),
    sa.Column('nonce', sa.LargeBinary(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('expires_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('used_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('outcome', sa.String(length=16), nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_jpki_challenges'))
    )
    op.create_table('jpki_link_certificates',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('kind', sa.String(length=8), nullable=False),
    sa.Column('subject_generation', sa.Integer(), nullable=False),
    sa.Column('issuer_generation', sa.Integer(), nullable=False),
    sa.Column('certificate', sa.LargeBinary(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_jpki_link_certificates')),
    sa.UniqueConstraint('kind', 'subject_generation', 'issuer_generation', name=op.f('uq_jpki_link_certificates_kind_subject_generation_issuer_generation'))
    )
    op.create_table('jpki_verifiers',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('kind', sa.String(length=24), nullable=False),
    sa.Column('verifies_signatures', sa.Boolean(), nullable=False),
    sa.Column('verifies_authentication', sa.Boolean(), nullable=False),
    sa.Column('username', sa.String(length=64), nullable=False),
    sa.Column('client_cert_sha256', sa.String(length=64), nullable=True),
    sa.Column('registered_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('registered_by', sa.String(length=64), nullable=False),
    sa.Column('suspended_at', sa.DateTime(timezone=True), nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_jpki_verifiers')),
    sa.UniqueConstraint('client_cert_sha256', name=op.f('uq_jpki_verifiers_client_cert_sha256')),
    sa.UniqueConstraint('username', name=op.f('uq_jpki_verifiers_username'))
    )
    op.create_table('jpki_certificates',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('authority_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('kind', sa.String(length=8), nullable=False),
    sa.Column('serial', sa.BigInteger(), nullable=False),
    sa.Column('card_id', sa.BigInteger(), nullable=True),
    sa.Column('card_serial', sa.String(length=16), nullable=True),
    sa.Column('resident_id', sa.BigInteger(), nullable=False),
    sa.Column('municipality_code', sa.String(length=6), nullable=False),
    sa.Column('subject_cn', sa.String(length=64), nullable=False),
    sa.Column('spki_sha256', sa.String(length=64), nullable=False),
    sa.Column('facts_digest', sa.String(length=64), nullable=True),
    sa.Column('der', sa.LargeBinary(), nullable=False),
    sa.Column('not_before', sa.DateTime(timezone=True), nullable=False),
    sa.Column('not_after', sa.DateTime(timezone=True), nullable=False),
    sa.Column('issued_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('issued_by', sa.String(length=64), nullable=False),
    sa.Column('status', sa.String(length=8), nullable=False),
    sa.Column('revoked_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('revocation_reason', sa.String(length=32), nullable=True),
    sa.Column('revocation_no', sa.BigInteger(), nullable=True),
    sa.Column('crl_after', sa.BigInteger(), nullable=True),
    sa.Column('crl_entry', sa.LargeBinary(), nullable=True),
    sa.Column('replaces_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=True),
    sa.ForeignKeyConstraint(['authority_id'], ['jpki_authorities.id'], name=op.f('fk_jpki_certificates_authority_id_jpki_authorities')),
    sa.ForeignKeyConstraint(['replaces_id'], ['jpki_certificates.id'], name=op.f('fk_jpki_certificates_replaces_id_jpki_certificates')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_jpki_certificates')),
    sa.UniqueConstraint('serial', name=op.f('uq_jpki_certificates_serial'))
    )
    with op.batch_alter_table('jpki_certificates', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_jpki_certificates_card_id'), ['card_id'], unique=False)
        batch_op.create_index('ix_jpki_certificates_crl', ['authority_id', 'status', 'crl_after'], unique=False)
        batch_op.create_index('ix_jpki_certificates_replaces', ['replaces_id'], unique=False)
        batch_op.create_index('ix_jpki_certificates_resident', ['resident_id', 'kind', 'status'], unique=False)
        batch_op.create_index('ix_jpki_certificates_revocation', ['authority_id', 'revocation_no'], unique=False)

    op.create_table('jpki_crls',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('authority_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('number', sa.BigInteger(), nullable=False),
    sa.Column('is_delta', sa.Boolean(), nullable=False),
    sa.Column('base_number', sa.BigInteger(), nullable=True),
    sa.Column('this_update', sa.DateTime(timezone=True), nullable=False),
    sa.Column('next_update', sa.DateTime(timezone=True), nullable=False),
    sa.Column('entry_count', sa.Integer(), nullable=False),
    sa.Column('der', sa.LargeBinary(), nullable=False),
    sa.ForeignKeyConstraint(['authority_id'], ['jpki_authorities.id'], name=op.f('fk_jpki_crls_authority_id_jpki_authorities')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_jpki_crls')),
    sa.UniqueConstraint('authority_id', 'number', name=op.f('uq_jpki_crls_authority_id_number'))
    )
    with op.batch_alter_table('jpki_crls', schema=None) as batch_op:
        batch_op.create_index('ix_jpki_crls_latest', ['authority_id', 'is_delta', 'number'], unique=False)

    op.create_table('jpki_ocsp_signers',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('authority_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('certificate', sa.LargeBinary(), nullable=False),
    sa.Column('key_sha1', sa.String(length=40), nullable=False),
    sa.Column('sealed_key', sa.LargeBinary(), nullable=False),
    sa.Column('not_before', sa.DateTime(timezone=True), nullable=False),
    sa.Column('not_after', sa.DateTime(timezone=True), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['authority_id'], ['jpki_authorities.id'], name=op.f('fk_jpki_ocsp_signers_authority_id_jpki_authorities')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_jpki_ocsp_signers'))
    )
    with op.batch_alter_table('jpki_ocsp_signers', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_jpki_ocsp_signers_authority_id'), ['authority_id'], unique=False)

    op.create_table('jpki_verifier_queries',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('verifier_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=True),
    sa.Column('caller', sa.String(length=128), nullable=False),
    sa.Column('action', sa.String(length=24), nullable=False),
    sa.Column('certificate_serial', sa.String(length=48), nullable=True),
    sa.Column('outcome', sa.String(length=16), nullable=False),
    sa.Column('detail', sa.Text(), nullable=True),
    sa.Column('at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('last_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('count', sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(['verifier_id'], ['jpki_verifiers.id'], name=op.f('fk_jpki_verifier_queries_verifier_id_jpki_verifiers')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_jpki_verifier_queries'))
    )
    with op.batch_alter_table('jpki_verifier_queries', schema=None) as batch_op:
        batch_op.create_index('ix_jpki_verifier_queries_verifier', ['verifier_id', 'at'], unique=False)

    op.create_table('jpki_certificate_events',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('certificate_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('from_status', sa.String(length=8), nullable=True),
    sa.Column('to_status', sa.String(length=8), nullable=False),
    sa.Column('reason', sa.String(length=32), nullable=True),
    sa.Column('actor', sa.String(length=64), nullable=False),
    sa.Column('at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('detail', sa.Text(), nullable=True),
    sa.ForeignKeyConstraint(['certificate_id'], ['jpki_certificates.id'], name=op.f('fk_jpki_certificate_events_certificate_id_jpki_certificates')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_jpki_certificate_events'))
    )
    with op.batch_alter_table('jpki_certificate_events', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_jpki_certificate_events_certificate_id'), ['certificate_id'], unique=False)

    op.create_table('jpki_notifications',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('verifier_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('certificate_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('event', sa.String(length=16), nullable=False),
    sa.Column('reason', sa.String(length=32), nullable=True),
    sa.Column('new_certificate_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('acknowledged_at', sa.DateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['certificate_id'], ['jpki_certificates.id'], name=op.f('fk_jpki_notifications_certificate_id_jpki_certificates')),
    sa.ForeignKeyConstraint(['new_certificate_id'], ['jpki_certificates.id'], name=op.f('fk_jpki_notifications_new_certificate_id_jpki_certificates')),
    sa.ForeignKeyConstraint(['verifier_id'], ['jpki_verifiers.id'], name=op.f('fk_jpki_notifications_verifier_id_jpki_verifiers')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_jpki_notifications'))
    )
    with op.batch_alter_table('jpki_notifications', schema=None) as batch_op:
        batch_op.create_index('ix_jpki_notifications_pending', ['verifier_id', 'acknowledged_at'], unique=False)

    op.create_table('jpki_ocsp_responses',
    sa.Column('certificate_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('hash_algorithm', sa.String(length=8), nullable=False),
    sa.Column('status', sa.String(length=8), nullable=False),
    sa.Column('der', sa.LargeBinary(), nullable=False),
    sa.Column('this_update', sa.DateTime(timezone=True), nullable=False),
    sa.Column('next_update', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['certificate_id'], ['jpki_certificates.id'], name=op.f('fk_jpki_ocsp_responses_certificate_id_jpki_certificates')),
    sa.PrimaryKeyConstraint('certificate_id', 'hash_algorithm', name=op.f('pk_jpki_ocsp_responses'))
    )
    op.create_table('jpki_subscriptions',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('verifier_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('certificate_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['certificate_id'], ['jpki_certificates.id'], name=op.f('fk_jpki_subscriptions_certificate_id_jpki_certificates')),
    sa.ForeignKeyConstraint(['verifier_id'], ['jpki_verifiers.id'], name=op.f('fk_jpki_subscriptions_verifier_id_jpki_verifiers')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_jpki_subscriptions')),
    sa.UniqueConstraint('verifier_id', 'certificate_id', name=op.f('uq_jpki_subscriptions_verifier_id_certificate_id'))
    )
    with op.batch_alter_table('jpki_subscriptions', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_jpki_subscriptions_certificate_id'), ['certificate_id'], unique=False)



def downgrade() -> None:
    with op.batch_alter_table('jpki_subscriptions', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_jpki_subscriptions_certificate_id'))

    op.drop_table('jpki_subscriptions')
    op.drop_table('jpki_ocsp_responses')
    with op.batch_alter_table('jpki_notifications', schema=None) as batch_op:
        batch_op.drop_index('ix_jpki_notifications_pending')

    op.drop_table('jpki_notifications')
    with op.batch_alter_table('jpki_certificate_events', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_jpki_certificate_events_certificate_id'))

    op.drop_table('jpki_certificate_events')
    with op.batch_alter_table('jpki_verifier_queries', schema=None) as batch_op:
        batch_op.drop_index('ix_jpki_verifier_queries_verifier')

    op.drop_table('jpki_verifier_queries')
    with op.batch_alter_table('jpki_ocsp_signers', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_jpki_ocsp_signers_authority_id'))

    op.drop_table('jpki_ocsp_signers')
    with op.batch_alter_table('jpki_crls', schema=None) as batch_op:
        batch_op.drop_index('ix_jpki_crls_latest')

    op.drop_table('jpki_crls')
    with op.batch_alter_table('jpki_certificates', schema=None) as batch_op:
        batch_op.drop_index('ix_jpki_certificates_revocation')
        batch_op.drop_index('ix_jpki_certificates_resident')
        batch_op.drop_index('ix_jpki_certificates_replaces')
        batch_op.drop_index('ix_jpki_certificates_crl')
        batch_op.drop_index(batch_op.f('ix_jpki_certificates_card_id'))

    op.drop_table('jpki_certificates')
    op.drop_table('jpki_verifiers')
    op.drop_table('jpki_link_certificates')
    op.drop_table('jpki_challenges')
    op.drop_table('jpki_authorities')
