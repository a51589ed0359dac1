"""Appending to the hash-chained exchange log (情報提供等記録): each entry goes into its person's chain,
the chain's head is re-signed by the hub, a checkpoint is signed every so many entries, and each agency
keeps its own record of the exchange."""

from __future__ import annotations

from typing import Any

from sqlalchemy import bindparam, func, insert, select, text, update

from mynacard.db import UtcDateTime
from mynacard.exchange.envelope import canonical
from mynacard.exchange.hub_wire import NetworkBase, insert_ignore
from mynacard.exchange.model import (
    CHECKPOINT_EVERY,
    Agency,
    ExchangeKind,
    ExchangeStatus,
    LogEntry,
    chain_hash,
    chain_of,
)
from mynacard.exchange.tables import exchange_log, exchange_log_checkpoints, exchange_log_head, exchange_log_seq
from mynacard.hashchain import GENESIS

__all__ = ["LogAppend", "checkpoint_message", "head_message"]


# Statements on the hot path, built once and run with bind parameters.
_LOGGED = select(exchange_log).where(exchange_log.c.requester == bindparam("requester"),
                                     exchange_log.c.message_id == bindparam("mid")).order_by(exchange_log.c.seq)

_HEAD = select(exchange_log_head.c.chain_seq, exchange_log_head.c.row_hash).where(
    exchange_log_head.c.chain == bindparam("chain"))
_HEAD_LOCKED = _HEAD.with_for_update()
_NEXT_SEQ_PG = select(exchange_log_seq.next_value())
_NEXT_SEQ_SQLITE = select(func.coalesce(func.max(exchange_log.c.seq), 0) + 1)
_ADD_LOG = insert(exchange_log)
_ADD_LOG_AND_MOVE_HEAD_PG = text("""
    WITH entry AS (
        INSERT INTO exchange_log (seq, chain, chain_seq, kind, message_id, requester, provider, procedure, item,
                                  subject_code, status, reason, requested_at, completed_at, prev_hash, row_hash)
        VALUES (:seq, :chain, :chain_seq, :kind, :message_id, :requester, :provider, :procedure, :item,
                :subject_code, :status, :reason, :requested_at, :completed_at, :prev_hash, :row_hash)
        RETURNING seq)
    UPDATE exchange_log_head SET chain_seq = :h_pos, row_hash = :h_hash, signature = :h_sig, updated_at = :h_at
    WHERE chain = :chain AND EXISTS (SELECT 1 FROM entry)""").bindparams(
    bindparam("requested_at", type_=UtcDateTime()), bindparam("completed_at", type_=UtcDateTime()),
    bindparam("h_at", type_=UtcDateTime()))
_MOVE_HEAD = update(exchange_log_head).where(exchange_log_head.c.chain == bindparam("h_chain")).values(
    chain_seq=bindparam("h_pos"), row_hash=bindparam("h_hash"), signature=bindparam("h_sig"),
    updated_at=bindparam("h_at"))


def head_message(chain: int, position: int, row_hash: str) -> bytes:
    """What the hub signs for the head of a chain."""
    return canonical({"log": "exchange", "chain": chain, "position": position, "hash": row_hash})


def checkpoint_message(kind: str, chain: int, position: int, row_hash: str) -> bytes:
    """What the hub signs for a checkpoint or a retention anchor of a chain."""
    return canonical({"log": "exchange", "checkpoint": kind, "chain": chain, "position": position,
                      "hash": row_hash})


class LogAppend(NetworkBase):
    """The part of :class:`~mynacard.exchange.hub.Network` that writes the log and the agencies' own
    records of each exchange."""

    def _lock_head(self, chain: int) -> tuple[int, str]:
        query = _HEAD_LOCKED if self.conn.dialect.name == "postgresql" else _HEAD
        row = self.conn.execute(query, {"chain": chain}).first()
        if row is None:
            insert_ignore(self.conn, exchange_log_head, {"chain": chain, "chain_seq": 0,
                                                          "row_hash": GENESIS, "updated_at": self.now})
            row = self.conn.execute(query, {"chain": chain}).one()
        return int(row.chain_seq), str(row.row_hash)

    def append_log(self, kind: ExchangeKind, message_id: str, requester: str, provider: str | None,
                   procedure: str | None, item: str | None, subject_code: str | None, status: ExchangeStatus,
                   reason: str | None) -> int:
        """Append one entry to the person's chain (and sign its new head); returns the entry's number.

        Only appenders to the same chain wait for one another (the chain's head row is locked until commit);
        the entry number is taken under that lock, so within a chain numbers and positions rise together.
        """
        chain = chain_of(subject_code)
        last_pos, last_hash = self._lock_head(chain)
        pg = self.conn.dialect.name == "postgresql"
        seq = int(self.conn.execute(_NEXT_SEQ_PG if pg else _NEXT_SEQ_SQLITE).scalar_one())
        entry = LogEntry(seq, chain, last_pos + 1, kind, message_id, requester, provider, procedure, item,
                         subject_code, status, reason, self.now, self.now)
        row_hash = chain_hash(last_hash, entry)
        values = {
            "seq": seq, "chain": chain, "chain_seq": entry.chain_seq, "kind": kind.value, "message_id": message_id,
            "requester": requester, "provider": provider, "procedure": procedure, "item": item,
            "subject_code": subject_code, "status": status.value, "reason": reason, "requested_at": self.now,
            "completed_at": self.now, "prev_hash": last_hash, "row_hash": row_hash}
        head = {"chain": chain, "h_pos": entry.chain_seq, "h_hash": row_hash, "h_at": self.now,
                "h_sig": self.hub.party.sign.sign(head_message(chain, entry.chain_seq, row_hash))}
        if pg:  # one round trip instead of two
            self.conn.execute(_ADD_LOG_AND_MOVE_HEAD_PG, {**values, **head})
        else:
            self.conn.execute(_ADD_LOG, values)
            self.conn.execute(_MOVE_HEAD, {**head, "h_chain": chain})
        if entry.chain_seq % CHECKPOINT_EVERY == 0:
            self.conn.execute(insert(exchange_log_checkpoints).values(
                chain=chain, chain_seq=entry.chain_seq, seq=seq, kind="checkpoint", row_hash=row_hash, at=self.now,
                signature=self.hub.party.sign.sign(checkpoint_message("checkpoint", chain, entry.chain_seq,
                                                                      row_hash))))
        return seq

    def _logged(self, requester: str, message_id: str) -> list[Any]:
        return list(self.conn.execute(_LOGGED, {"requester": requester, "mid": message_id}))

    def _own_record(self, agency: Agency, message_id: str, role: str, counterpart: str | None,
                    kind: ExchangeKind, procedure: str | None, item: str | None, local_ref: str | None,
                    status: ExchangeStatus, seq: int | None) -> None:
        """The agency's own record of the exchange (番号法 §23), in its own store; a replay adds nothing."""
        self.conn.execute(self.store(agency.id).add_exchange, {
            "message_id": message_id, "role": role, "counterpart": counterpart, "kind": kind.value,
            "procedure": procedure, "item": item, "local_ref": local_ref, "status": status.value,
            "log_seq": seq, "at": self.now})
