"""exchange: agencies, codes, review queue, hash-chained log

Revision ID: exchange_0001
Revises:
Create Date: 2026-11-27 01:57:37.255840
"""
from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = 'exchange_0001'
down_revision: str | Sequence[str] | None = None
branch_labels: str | Sequence[str] | None = ('exchange',)
depends_on: str | Sequence[str] | None = '0001_foundation'


def upgrade() -> None:
    """The part's schema as Alembic wrote it: one statement per table and index, kept whole so that it reads
    as the schema it creates."""
    if op.get_bind().dialect.name == "postgresql":  # entry numbers handed out without a lock
        op.execute(sa.schema.CreateSequence(sa.Sequence("exchange_log_seq")))
    op.create_table('exchange_hub_keys',
    sa.Column('purpose', sa.String(length=16), nullable=False),
    sa.Column('public_sign', sa.LargeBinary(), nullable=True),
    sa.Column('public_enc', sa.LargeBinary(), nullable=True),
    sa.Column('sealed_private', sa.LargeBinary(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('purpose', name=op.f('pk_exchange_hub_keys'))
    )
    op.create_table('exchange_log',
    sa.Column('seq', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=False, nullable=False),
    sa.Column('chain', sa.SmallInteger(), nullable=False),
    sa.Column('chain_seq', sa.BigInteger(), nullable=False),
    sa.Column('kind', sa.String(length=20), nullable=False),
    sa.Column('message_id', sa.String(length=64), nullable=False),
    sa.Column('requester', sa.String(length=40), nullable=False),
    sa.Column('provider', sa.String(length=40), nullable=True),
    sa.Column('procedure', sa.String(length=40), nullable=True),
    sa.Column('item', sa.String(length=40), nullable=True),
    sa.Column('subject_code', sa.String(length=26), nullable=True),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('reason', sa.Text(), nullable=True),
    sa.Column('requested_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('completed_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('prev_hash', sa.String(length=64), nullable=False),
    sa.Column('row_hash', sa.String(length=64), nullable=False),
    sa.PrimaryKeyConstraint('seq', name=op.f('pk_exchange_log')),
    sa.UniqueConstraint('chain', 'chain_seq', name=op.f('uq_exchange_log_chain_chain_seq')),
    sa.UniqueConstraint('requester', 'message_id', 'provider', name=op.f('uq_exchange_log_requester_message_id_provider'))
    )
    with op.batch_alter_table('exchange_log', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_exchange_log_completed_at'), ['completed_at'], unique=False)
        batch_op.create_index('ix_exchange_log_provider', ['provider', 'seq'], unique=False)
        batch_op.create_index('ix_exchange_log_requester', ['requester', 'seq'], unique=False)
        batch_op.create_index(batch_op.f('ix_exchange_log_subject_code'), ['subject_code'], unique=False)

    op.create_table('exchange_log_checkpoints',
    sa.Column('chain', sa.SmallInteger(), autoincrement=False, nullable=False),
    sa.Column('chain_seq', sa.BigInteger(), autoincrement=False, nullable=False),
    sa.Column('seq', sa.BigInteger(), nullable=True),
    sa.Column('kind', sa.String(length=16), nullable=False),
    sa.Column('row_hash', sa.String(length=64), nullable=False),
    sa.Column('signature', sa.LargeBinary(), nullable=False),
    sa.Column('at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('chain', 'chain_seq', name=op.f('pk_exchange_log_checkpoints'))
    )
    op.create_table('exchange_log_head',
    sa.Column('chain', sa.SmallInteger(), autoincrement=False, nullable=False),
    sa.Column('chain_seq', sa.BigInteger(), nullable=False),
    sa.Column('row_hash', sa.String(length=64), nullable=False),
    sa.Column('signature', sa.LargeBinary(), nullable=True),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('chain', name=op.f('pk_exchange_log_head'))
    )
    op.create_table('exchange_agencies',
    sa.Column('id', sa.String(length=40), nullable=False),
    sa.Column('name', sa.String(length=120), nullable=False),
    sa.Column('name_en', sa.String(length=120), nullable=False),
    sa.Column('kind', sa.String(length=32), nullable=False),
    sa.Column('municipality_code', sa.String(length=6), nullable=True),
    sa.Column('sign_public_key', sa.LargeBinary(), nullable=False),
    sa.Column('enc_public_key', sa.LargeBinary(), nullable=False),
    sa.Column('key_version', sa.Integer(), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('registered_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('registered_by', sa.String(length=64), nullable=False),
    sa.ForeignKeyConstraint(['municipality_code'], ['municipalities.code'], name=op.f('fk_exchange_agencies_municipality_code_municipalities')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_exchange_agencies'))
    )
    with op.batch_alter_table('exchange_agencies', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_exchange_agencies_kind'), ['kind'], unique=False)
        batch_op.create_index(batch_op.f('ix_exchange_agencies_municipality_code'), ['municipality_code'], unique=False)

    op.create_table('exchange_reply_handles',
    sa.Column('handle', sa.String(length=32), nullable=False),
    sa.Column('agency_id', sa.String(length=40), nullable=False),
    sa.Column('subject_code', sa.String(length=26), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['agency_id'], ['exchange_agencies.id'], name=op.f('fk_exchange_reply_handles_agency_id_exchange_agencies')),
    sa.PrimaryKeyConstraint('handle', name=op.f('pk_exchange_reply_handles'))
    )
    op.create_table('exchange_links',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('agency_id', sa.String(length=40), nullable=False),
    sa.Column('code', sa.String(length=26), nullable=False),
    sa.Column('resident_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('generation', sa.Integer(), nullable=False),
    sa.Column('local_ref', sa.String(length=64), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('linked_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('changed_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['agency_id'], ['exchange_agencies.id'], name=op.f('fk_exchange_links_agency_id_exchange_agencies')),
    sa.ForeignKeyConstraint(['resident_id'], ['residents.id'], name=op.f('fk_exchange_links_resident_id_residents')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_exchange_links')),
    sa.UniqueConstraint('agency_id', 'resident_id', 'generation', name=op.f('uq_exchange_links_agency_id_resident_id_generation')),
    sa.UniqueConstraint('code', name=op.f('uq_exchange_links_code'))
    )
    with op.batch_alter_table('exchange_links', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_exchange_links_resident_id'), ['resident_id'], unique=False)
        batch_op.create_index('ux_exchange_links_live_person', ['agency_id', 'resident_id'], unique=True, sqlite_where=sa.text("status <> 'unlinked'"), postgresql_where=sa.text("status <> 'unlinked'"))
        batch_op.create_index('ux_exchange_links_live_ref', ['agency_id', 'local_ref'], unique=True, sqlite_where=sa.text("status <> 'unlinked'"), postgresql_where=sa.text("status <> 'unlinked'"))

    op.create_table('exchange_link_events',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('link_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('kind', sa.String(length=16), nullable=False),
    sa.Column('from_status', sa.String(length=16), nullable=True),
    sa.Column('to_status', sa.String(length=16), nullable=False),
    sa.Column('actor', sa.String(length=64), nullable=False),
    sa.Column('at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('reason', sa.Text(), nullable=True),
    sa.ForeignKeyConstraint(['link_id'], ['exchange_links.id'], name=op.f('fk_exchange_link_events_link_id_exchange_links')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_exchange_link_events'))
    )
    with op.batch_alter_table('exchange_link_events', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_exchange_link_events_link_id'), ['link_id'], unique=False)

    op.create_table('exchange_reviews',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('agency_id', sa.String(length=40), nullable=False),
    sa.Column('local_ref', sa.String(length=64), nullable=False),
    sa.Column('source', sa.String(length=16), nullable=False),
    sa.Column('request_digest', sa.String(length=64), nullable=False),
    sa.Column('candidate_resident_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=True),
    sa.Column('reasons', sa.Text(), nullable=False),
    sa.Column('sealed_submission', sa.LargeBinary(), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('decided_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('decided_by', sa.String(length=64), nullable=True),
    sa.Column('decision_reason', sa.Text(), nullable=True),
    sa.Column('link_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=True),
    sa.ForeignKeyConstraint(['agency_id'], ['exchange_agencies.id'], name=op.f('fk_exchange_reviews_agency_id_exchange_agencies')),
    sa.ForeignKeyConstraint(['candidate_resident_id'], ['residents.id'], name=op.f('fk_exchange_reviews_candidate_resident_id_residents')),
    sa.ForeignKeyConstraint(['link_id'], ['exchange_links.id'], name=op.f('fk_exchange_reviews_link_id_exchange_links')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_exchange_reviews'))
    )
    with op.batch_alter_table('exchange_reviews', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_exchange_reviews_agency_id'), ['agency_id'], unique=False)
        batch_op.create_index('ix_exchange_reviews_digest', ['agency_id', 'request_digest'], unique=False)
        batch_op.create_index('ix_exchange_reviews_status', ['status', 'agency_id'], unique=False)



def downgrade() -> None:
    with op.batch_alter_table('exchange_reviews', schema=None) as batch_op:
        batch_op.drop_index('ix_exchange_reviews_status')
        batch_op.drop_index('ix_exchange_reviews_digest')
        batch_op.drop_index(batch_op.f('ix_exchange_reviews_agency_id'))

    op.drop_table('exchange_reviews')
    with op.batch_alter_table('exchange_link_events', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_exchange_link_events_link_id'))

    op.drop_table('exchange_link_events')
    with op.batch_alter_table('exchange_links', schema=None) as batch_op:
        batch_op.drop_index('ux_exchange_links_live_ref', sqlite_where=sa.text("status <> 'unlinked'"), postgresql_where=sa.text("status <> 'unlinked'"))
        batch_op.drop_index('ux_exchange_links_live_person', sqlite_where=sa.text("status <> 'unlinked'"), postgresql_where=sa.text("status <> 'unlinked'"))
        batch_op.drop_index(batch_op.f('ix_exchange_links_resident_id'))

    op.drop_table('exchange_links')
    op.drop_table('exchange_reply_handles')
    with op.batch_alter_table('exchange_agencies', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_exchange_agencies_municipality_code'))
        batch_op.drop_index(batch_op.f('ix_exchange_agencies_kind'))

    op.drop_table('exchange_agencies')
    op.drop_table('exchange_log_head')
    op.drop_table('exchange_log_checkpoints')
    with op.batch_alter_table('exchange_log', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_exchange_log_subject_code'))
        batch_op.drop_index('ix_exchange_log_requester')
        batch_op.drop_index('ix_exchange_log_provider')
        batch_op.drop_index(batch_op.f('ix_exchange_log_completed_at'))

    op.drop_table('exchange_log')
    op.drop_table('exchange_hub_keys')
    if op.get_bind().dialect.name == "postgresql":
        op.execute(sa.schema.DropSequence(sa.Sequence("exchange_log_seq")))
