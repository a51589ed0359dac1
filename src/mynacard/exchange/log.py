"""The exchange log (情報提供等記録) for the operator and the agencies: reading it, verifying every chain,
signing checkpoints and purging entries past the seven-year retention."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from sqlalchemy import delete, func, insert, or_, select
from sqlalchemy.exc import NoResultFound

from mynacard.context import Context
from mynacard.errors import Forbidden
from mynacard.exchange import hub as hubmod
from mynacard.exchange import keys as keyring
from mynacard.exchange.access import ADMIN
from mynacard.exchange.model import (
    ChainBreak,
    ChainVerifier,
    ExchangeKind,
    ExchangeStatus,
    LogEntry,
    first_break,
    log_cutoff,
)
from mynacard.exchange.tables import exchange_log, exchange_log_checkpoints, exchange_log_head
from mynacard.hashchain import GENESIS
from mynacard.principal import Principal, Role

__all__ = ["ChainReport", "checkpoint_log", "exchange_log_entries", "purge_expired_log", "verify_log"]


def _entry(r: Any) -> LogEntry:
    return LogEntry(r.seq, r.chain, r.chain_seq, ExchangeKind(r.kind), r.message_id, r.requester, r.provider,
                    r.procedure, r.item, r.subject_code, ExchangeStatus(r.status), r.reason, r.requested_at,
                    r.completed_at)


def exchange_log_entries(ctx: Context, principal: Principal, agency_id: str | None = None, after_seq: int = 0,
                         limit: int = 100) -> list[LogEntry]:
    """Log entries in order: the operator sees all (or one agency's share), an agency the exchanges it took part
    in — asking for another agency's share is refused, not quietly answered with its own."""
    query = select(exchange_log).where(exchange_log.c.seq > after_seq).order_by(exchange_log.c.seq).limit(
        max(1, min(limit, 5000)))
    if principal.role is Role.AGENCY:
        if agency_id and agency_id != principal.subject:
            raise Forbidden("an agency reads only its own share of the exchange log")
        agency_id = principal.subject
    else:
        principal.require(*ADMIN)
    if agency_id:
        query = query.where(or_(exchange_log.c.requester == agency_id, exchange_log.c.provider == agency_id))
    with ctx.db.connect() as conn:
        return [_entry(r) for r in conn.execute(query)]


@dataclass(frozen=True)
class ChainReport:
    """The verifier's answer: whole or not, and if not, where."""

    entries: int
    first_seq: int | None
    last_seq: int | None
    chains: int
    """Chains that hold entries."""
    checkpoints: int
    breaks: list[ChainBreak]

    @property
    def ok(self) -> bool:
        return not self.breaks

    @property
    def first(self) -> ChainBreak | None:
        return first_break(self.breaks)


def verify_log(ctx: Context, principal: Principal, chunk: int = 5000) -> ChainReport:
    """Recompute every chain, check the hub's signatures on each head and checkpoint, and say where a chain
    breaks: an altered entry, a removed one, or a stretch rewritten after it was signed."""
    principal.require(*ADMIN)
    breaks: list[ChainBreak] = []
    entries = 0
    first_seq: int | None = None
    last_seq: int | None = None
    with ctx.db.connect() as conn:
        try:
            sign_public: bytes | None = keyring.hub_public_keys(conn)[0]
        except NoResultFound:  # no hub keys: nothing was ever logged
            sign_public = None
        heads = {int(h.chain): h for h in conn.execute(select(exchange_log_head))}
        anchors: dict[int, tuple[int, str]] = {}
        marks: dict[int, dict[int, str]] = {}
        n_checkpoints = 0
        for c in conn.execute(select(exchange_log_checkpoints).order_by(
                exchange_log_checkpoints.c.chain, exchange_log_checkpoints.c.chain_seq)):
            message = hubmod.checkpoint_message(c.kind, c.chain, c.chain_seq, c.row_hash)
            if not _signed(sign_public, message, c.signature):
                breaks.append(ChainBreak(c.chain, c.chain_seq, c.seq, "checkpoint",
                                         f"the checkpoint at position {c.chain_seq} of chain {c.chain} is not "
                                         "signed by the hub"))
            elif c.kind == "anchor":
                anchors[int(c.chain)] = (int(c.chain_seq), str(c.row_hash))
            else:
                marks.setdefault(int(c.chain), {})[int(c.chain_seq)] = str(c.row_hash)
                n_checkpoints += 1
        chains = sorted(set(heads) | set(conn.execute(select(exchange_log.c.chain).distinct()).scalars()))
        for chain in chains:
            anchor_pos, anchor_hash = anchors.get(chain, (0, GENESIS))
            verifier = ChainVerifier(chain, anchor_pos, anchor_hash,
                                     {p: h for p, h in marks.get(chain, {}).items() if p > anchor_pos})
            after = anchor_pos if anchor_pos else -1
            while True:
                rows = conn.execute(select(exchange_log).where(
                    exchange_log.c.chain == chain, exchange_log.c.chain_seq > after)
                    .order_by(exchange_log.c.chain_seq).limit(chunk)).all()
                if not rows:
                    break
                for r in rows:
                    verifier.feed(_entry(r), r.prev_hash, r.row_hash)
                    first_seq = r.seq if first_seq is None else min(first_seq, r.seq)
                    last_seq = r.seq if last_seq is None else max(last_seq, r.seq)
                after = rows[-1].chain_seq
            entries += verifier.entries
            head = heads.get(chain)
            head_pos = head_hash = None
            if head is not None and head.chain_seq > 0:
                message = hubmod.head_message(chain, head.chain_seq, head.row_hash)
                if not _signed(sign_public, message, head.signature):
                    breaks.append(ChainBreak(chain, int(head.chain_seq), None, "head",
                                             f"the head of chain {chain} is not signed by the hub"))
                head_pos, head_hash = int(head.chain_seq), str(head.row_hash)
            breaks.extend(verifier.finish(head_pos, head_hash))
    return ChainReport(entries, first_seq, last_seq, len(chains), n_checkpoints,
                       sorted(breaks, key=lambda b: (b.chain, b.chain_seq, b.kind)))


def _signed(public: bytes | None, message: bytes, signature: bytes | None) -> bool:
    if public is None or signature is None:
        return False
    try:
        Ed25519PublicKey.from_public_bytes(public).verify(bytes(signature), message)
        return True
    except InvalidSignature:
        return False


def checkpoint_log(ctx: Context, principal: Principal, now: datetime) -> int:
    """Sign a checkpoint at the head of every chain (besides the automatic one every 1,000 entries of a
    chain); returns how many were signed."""
    principal.require(*ADMIN)
    hub = keyring.hub_keys(ctx, now)
    signed = 0
    with ctx.transaction() as tx:
        for head in tx.conn.execute(select(exchange_log_head).where(exchange_log_head.c.chain_seq > 0)).all():
            exists = tx.conn.execute(select(exchange_log_checkpoints.c.chain_seq).where(
                exchange_log_checkpoints.c.chain == head.chain,
                exchange_log_checkpoints.c.chain_seq == head.chain_seq)).first()
            if exists is not None:
                continue
            seq = tx.conn.execute(select(exchange_log.c.seq).where(
                exchange_log.c.chain == head.chain, exchange_log.c.chain_seq == head.chain_seq)).scalar()
            tx.conn.execute(insert(exchange_log_checkpoints).values(
                chain=head.chain, chain_seq=head.chain_seq, seq=seq, kind="checkpoint", row_hash=head.row_hash,
                at=now, signature=hub.party.sign.sign(
                    hubmod.checkpoint_message("checkpoint", head.chain, head.chain_seq, head.row_hash))))
            signed += 1
    return signed


def purge_expired_log(ctx: Context, principal: Principal, now: datetime) -> int:
    """Remove entries past the seven-year retention, chain by chain; a signed anchor at each chain's last
    removed position keeps the rest verifiable."""
    principal.require(*ADMIN)
    hub = keyring.hub_keys(ctx, now)
    cutoff = log_cutoff(now)
    removed = 0
    with ctx.transaction() as tx:
        conn = tx.conn
        for chain in list(conn.execute(select(exchange_log.c.chain).distinct()).scalars()):
            in_chain = exchange_log.c.chain == chain
            # A chain is appended in time order, so its expired entries are a prefix: stop at the first live one.
            first_live = conn.execute(select(func.min(exchange_log.c.chain_seq)).where(
                in_chain, exchange_log.c.completed_at >= cutoff)).scalar()
            query = select(func.max(exchange_log.c.chain_seq)).where(in_chain, exchange_log.c.completed_at < cutoff)
            if first_live is not None:
                query = query.where(exchange_log.c.chain_seq < first_live)
            last = conn.execute(query).scalar()
            if last is None:
                continue
            row = conn.execute(select(exchange_log.c.seq, exchange_log.c.row_hash).where(
                in_chain, exchange_log.c.chain_seq == last)).one()
            removed += conn.execute(delete(exchange_log).where(in_chain, exchange_log.c.chain_seq <= last)).rowcount
            conn.execute(delete(exchange_log_checkpoints).where(
                exchange_log_checkpoints.c.chain == chain, exchange_log_checkpoints.c.chain_seq <= last))
            conn.execute(insert(exchange_log_checkpoints).values(
                chain=chain, chain_seq=last, seq=row.seq, kind="anchor", row_hash=row.row_hash, at=now,
                signature=hub.party.sign.sign(hubmod.checkpoint_message("anchor", chain, last, row.row_hash))))
    return int(removed)
