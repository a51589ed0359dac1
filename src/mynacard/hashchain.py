"""The one hash-chain mechanism of every append-only audit log (kiosk issuance, account administration, the
exchange log 情報提供等記録).

The rule, for every log:

- an entry is linked to its predecessor by :func:`link`: SHA-256 over the previous entry's hash and the entry's
  canonical bytes; the first entry of a chain follows :data:`GENESIS` (or a retention anchor, once the start of a
  chain has been purged);
- :class:`ChainWalk` walks a chain's entries in position order, recomputes each link and names every
  :class:`Fault` — an altered entry, a broken link, a gap, a reordering — and at the end compares the chain with
  its recorded head, so that entries removed from the end are found too.

What a log keeps of its own is how it makes an entry's canonical bytes, where it stores the rows and what it says
about a fault. The audit logs of the kiosks and of account administration share one table shape — entries
``(stream, seq, at, request_id, actor, action, details, prev_hash, hash)`` and heads ``(stream, seq, hash)`` —
made by :func:`chain_tables`, and a :class:`HashChain` over them. Rows are written in the caller's transaction,
with the state change they record, so that the log and the state never disagree. (The exchange log,
:mod:`mynacard.exchange`, has its own tables, signed heads and checkpoints, built on :func:`link` and
:class:`ChainWalk`.)
"""

from __future__ import annotations

import functools
import hashlib
import json
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import (
    BigInteger,
    Column,
    Connection,
    Integer,
    String,
    Table,
    Text,
    TextClause,
    UniqueConstraint,
    bindparam,
    insert,
    select,
    text,
    update,
)
from sqlalchemy.dialects.postgresql import insert as pg_insert

from mynacard.db import Database, UtcDateTime, metadata

__all__ = ["GENESIS", "AuditReport", "ChainWalk", "Entry", "Fault", "HashChain", "chain_tables",
           "entry_hash", "link"]

GENESIS = "0" * 64
"""The hash the first entry of every chain follows (its ``prev_hash``)."""


def link(prev_hash: str, body: bytes) -> str:
    """The hash of an entry with canonical bytes ``body`` that follows the entry with hash ``prev_hash``:
    SHA-256 (hex) over the previous hash (its 64 ASCII hex digits) followed by the body. The previous hash has a
    fixed length, so no separator is needed for the two parts to be told apart."""
    return hashlib.sha256(prev_hash.encode() + body).hexdigest()


class Fault(StrEnum):
    """What :class:`ChainWalk` found wrong at one entry, or at the end of a chain."""

    ALTERED = "altered"
    """The entry's contents no longer give its hash."""
    RELINKED = "relinked"
    """The entry does not follow the one before it: one of them was altered and rehashed, or it was inserted."""
    GAP = "gap"
    """Positions between the previous entry and this one are missing."""
    OUT_OF_ORDER = "out_of_order"
    """The entry stands at or before a position already walked."""
    TRUNCATED = "truncated"
    """The recorded head lies beyond the last entry: entries were removed from the end."""
    HEAD = "head"
    """The chain ends at or beyond its recorded head, but not with the head's hash."""


_WHOLE: tuple[Fault, ...] = ()


@dataclass
class ChainWalk:
    """One chain, walked entry by entry in position order (streaming): :meth:`step` recomputes each link and
    returns the faults it shows; :meth:`end` compares where the walk stopped with the chain's recorded head."""

    pos: int = 0
    """The last position walked; before the first step the anchor's (0, or the last one purged)."""
    hash: str = GENESIS
    """The hash of the entry at :attr:`pos` (before the first step: :data:`GENESIS`, or the anchor's hash)."""
    entries: int = 0
    """Entries walked."""

    def step(self, pos: int, prev_hash: str, body: bytes, row_hash: str) -> tuple[Fault, ...]:
        """Walk the entry stored at ``pos`` with ``prev_hash`` and ``row_hash``; ``body`` is its canonical bytes.
        Returns its faults (none for a whole link): at most one of GAP, OUT_OF_ORDER or RELINKED (where it
        stands), then ALTERED (what it holds). Read :attr:`pos` before the step for where a gap starts."""
        self.entries += 1
        expected = self.pos + 1
        if pos == expected:
            faults = _WHOLE if prev_hash == self.hash else (Fault.RELINKED,)
        else:
            faults = (Fault.GAP,) if pos > expected else (Fault.OUT_OF_ORDER,)
        if link(prev_hash, body) != row_hash:
            faults += (Fault.ALTERED,)
        self.pos = max(self.pos, pos)
        self.hash = row_hash
        return faults

    def end(self, head_pos: int, head_hash: str) -> Fault | None:
        """Whether the chain ends at its recorded head: None, TRUNCATED (the head lies beyond the last entry) or
        HEAD (the chain reaches the head's position, but with another hash)."""
        if (head_pos, head_hash) == (self.pos, self.hash):
            return None
        return Fault.TRUNCATED if head_pos > self.pos else Fault.HEAD


def chain_tables(name: str) -> tuple[Table, Table]:
    """The entries table ``name`` and its heads table ``name_heads``, registered on the shared metadata."""
    entries = Table(
        name,
        metadata,
        Column("id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True),
        Column("stream", String(64), nullable=False),
        Column("seq", Integer, nullable=False),
        Column("at", UtcDateTime(), nullable=False),
        Column("request_id", String(32), nullable=True, index=True),
        Column("actor", String(64), nullable=False),
        Column("action", String(32), nullable=False),
        Column("details", Text, nullable=False),
        Column("prev_hash", String(64), nullable=False),
        Column("hash", String(64), nullable=False),
        UniqueConstraint("stream", "seq"),
    )
    heads = Table(
        f"{name}_heads",
        metadata,
        Column("stream", String(64), primary_key=True),
        Column("seq", Integer, nullable=False),
        Column("hash", String(64), nullable=False),
    )
    return entries, heads


def _body_parts(stream: str, at: datetime, request_id: str | None, actor: str, action: str,
                details: str) -> tuple[str, str]:
    """The row's canonical JSON split around its sequence number, which only the locked head decides."""
    head = json.dumps([stream], ensure_ascii=False, separators=(",", ":"))
    tail = json.dumps([at.astimezone(UTC).isoformat(timespec="microseconds"), request_id, actor, action, details],
                      ensure_ascii=False, separators=(",", ":"))
    return head[:-1] + ",", "," + tail[1:]


def _entry_body(stream: str, seq: int, at: datetime, request_id: str | None, actor: str, action: str,
               details: str) -> bytes:
    """A row's canonical bytes: the JSON ``[stream, seq, at, request_id, actor, action, details]`` (UTF-8)."""
    before, after = _body_parts(stream, at, request_id, actor, action, details)
    return (before + str(seq) + after).encode()


def entry_hash(prev_hash: str, stream: str, seq: int, at: datetime, request_id: str | None, actor: str,
               action: str, details: str) -> str:
    """The row's hash: :func:`link` of the previous hash and :func:`_entry_body`."""
    return link(prev_hash, _entry_body(stream, seq, at, request_id, actor, action, details))


@dataclass(frozen=True)
class Entry:
    """One entry to append (see :meth:`HashChain.append_many`)."""

    action: str
    actor: str
    request_id: str | None = None
    details: dict[str, Any] | None = None


@dataclass
class AuditReport:
    """What :meth:`HashChain.verify` found."""

    streams: int = 0
    entries: int = 0
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


class HashChain:
    """Append to and verify one log (an entries table and its heads, from :func:`chain_tables`)."""

    def __init__(self, entries: Table, heads: Table) -> None:
        self.entries = entries
        self.heads = heads

    def append(self, conn: Connection, stream: str, action: str, actor: str, now: datetime, *,
               request_id: str | None = None, details: dict[str, Any] | None = None) -> str:
        """Append one entry to ``stream`` inside the caller's transaction; returns its hash."""
        return self.append_many(conn, stream, now, [Entry(action, actor, request_id, details)])

    def append_many(self, conn: Connection, stream: str, now: datetime, entries: list[Entry]) -> str:
        """Append entries, in order, to ``stream`` inside the caller's transaction; returns the new head's hash.

        PostgreSQL: one statement locks the stream's head, writes the rows and moves the head, computing each
        row's hash itself (``sha256()``) from the locked head — the same hash :func:`entry_hash` gives, which
        :meth:`verify` recomputes. Only a stream's very first append takes two more statements (to create its
        head). SQLite: ``BEGIN IMMEDIATE`` already serialises writers, so the head is read and the hashes are
        computed here."""
        at = now.astimezone(UTC)
        rows = [(e.request_id, e.actor, e.action,
                 json.dumps(e.details or {}, ensure_ascii=False, sort_keys=True, separators=(",", ":")))
                for e in entries]
        if conn.dialect.name == "postgresql":
            params: dict[str, Any] = {"stream": stream, "at": at}
            for i, (request_id, actor, action, details) in enumerate(rows):
                params.update({f"request_id_{i}": request_id, f"actor_{i}": actor, f"action_{i}": action,
                               f"details_{i}": details})
                params[f"before_{i}"], params[f"after_{i}"] = _body_parts(stream, at, request_id, actor, action,
                                                                          details)
            statement = _pg_append(self.entries.name, self.heads.name, len(rows))
            head = conn.execute(statement, params).scalar()
            if head is None:  # the stream's first entry: create its head, then append as usual
                conn.execute(pg_insert(self.heads).values(stream=stream, seq=0, hash=GENESIS)
                             .on_conflict_do_nothing(index_elements=["stream"]))
                head = conn.execute(statement, params).scalar_one()
            return str(head)
        found = conn.execute(select(self.heads.c.seq, self.heads.c.hash)
                             .where(self.heads.c.stream == stream)).first()
        if found is None:
            conn.execute(insert(self.heads).values(stream=stream, seq=0, hash=GENESIS))
        seq, prev = (int(found.seq), str(found.hash)) if found else (0, GENESIS)
        written = []
        for request_id, actor, action, details in rows:
            seq += 1
            digest = entry_hash(prev, stream, seq, at, request_id, actor, action, details)
            written.append({"stream": stream, "seq": seq, "at": at, "request_id": request_id, "actor": actor,
                            "action": action, "details": details, "prev_hash": prev, "hash": digest})
            prev = digest
        conn.execute(insert(self.entries), written)
        conn.execute(update(self.heads).where(self.heads.c.stream == stream).values(seq=seq, hash=prev))
        return prev

    def verify(self, db: Database, stream: str | None = None) -> AuditReport:
        """Walk every chain (or one) with :class:`ChainWalk` and compare it with its recorded head."""
        report = AuditReport()
        entries, heads_table = self.entries, self.heads
        with db.connect() as conn:
            heads_query = select(heads_table)
            if stream is not None:
                heads_query = heads_query.where(heads_table.c.stream == stream)
            heads = {r.stream: (r.seq, r.hash) for r in conn.execute(heads_query)}
            rows_query = select(entries).order_by(entries.c.stream, entries.c.seq)
            if stream is not None:
                rows_query = rows_query.where(entries.c.stream == stream)
            walks: dict[str, ChainWalk] = {}
            for row in conn.execute(rows_query):
                walk = walks.get(row.stream)
                if walk is None:
                    walk = walks[row.stream] = ChainWalk()
                before = walk.pos
                body = _entry_body(row.stream, row.seq, row.at, row.request_id, row.actor, row.action, row.details)
                for fault in walk.step(row.seq, row.prev_hash, body, row.hash):
                    report.problems.append(_problem(row.stream, row.seq, before, fault))
        report.streams = len(heads)
        report.entries = sum(w.entries for w in walks.values())
        for name, (head_seq, head_hash) in heads.items():
            if walks.get(name, ChainWalk()).end(head_seq, head_hash) is not None:
                report.problems.append(f"{name}: the chain does not end at its recorded head (entries removed?)")
        for name in walks.keys() - heads.keys():
            report.problems.append(f"{name}: entries without a recorded head")
        return report


def _problem(stream: str, seq: int, before: int, fault: Fault) -> str:
    """What :meth:`HashChain.verify` reports for ``fault`` at entry ``seq`` (the walk had reached ``before``)."""
    if fault is Fault.GAP:
        return f"{stream}: entry {before + 1} is missing (found {seq})"
    if fault is Fault.OUT_OF_ORDER:
        return f"{stream} #{seq}: out of order (after #{before})"
    if fault is Fault.RELINKED:
        return f"{stream} #{seq}: does not follow the entry before it"
    return f"{stream} #{seq}: content changed after it was written"


@functools.cache
def _pg_append(entries: str, heads: str, n: int) -> TextClause:
    """Lock the head, write ``n`` rows, move the head: one statement, as text built once per table and row count
    (SQLAlchemy does not cache the compiled form of an INSERT inside a CTE). ``FOR UPDATE`` makes concurrent
    appenders to one stream queue on the head and then read the head their predecessor left. Row ``i`` is the
    CTE ``e<i>``, chained from the one before it (``e0``: the locked head), so each hash is computed once: the
    ``sha256()`` over the previous hash and the row's JSON is :func:`link` of :func:`_entry_body`, in SQL (the
    bound ``before``/``after`` are :func:`_body_parts`). The table names are the code's own
    (:func:`chain_tables`), never input."""
    chain = ", ".join(
        f"e{i} AS (SELECT e{i - 1}.seq + 1 AS seq, e{i - 1}.hash AS prev, encode(sha256(convert_to(e{i - 1}.hash"
        f" || :before_{i - 1} || (e{i - 1}.seq + 1)::text || :after_{i - 1}, 'UTF8')), 'hex') AS hash FROM e{i - 1})"
        for i in range(1, n + 1))
    rows = " UNION ALL ".join(
        f"SELECT :stream, e{i}.seq, :at, :request_id_{i - 1}, :actor_{i - 1}, :action_{i - 1}, :details_{i - 1}, "
        f"e{i}.prev, e{i}.hash FROM e{i}" for i in range(1, n + 1))
    return text(
        f"WITH e0 AS (SELECT seq, hash FROM {heads} WHERE stream = :stream FOR UPDATE), "
        f"{chain}, "
        f"appended AS (INSERT INTO {entries} (stream, seq, at, request_id, actor, action, details, prev_hash, "
        f"hash) {rows}) "
        f"UPDATE {heads} SET seq = e{n}.seq, hash = e{n}.hash FROM e{n} "
        f"WHERE {heads}.stream = :stream RETURNING {heads}.hash"
    ).bindparams(bindparam("at", type_=UtcDateTime()))
