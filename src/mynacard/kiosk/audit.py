"""The audit trail of kiosk issuance: append-only, hash-chained, one chain per stream.

Every step of a request (session opened, card authenticated or refused, order accepted, document prepared,
the release check, released, printed, aborted, voided) is one row written in the same transaction as the
state change it records, so the trail and the state never disagree. Rows are chained per stream — one stream
per kiosk at the centre (``kiosk:<id>``), one per municipality at the issuing servers
(``municipal:<code>``) — so that 200 kiosks do not queue on one lock, and :func:`verify_chains` recomputes
every chain against its recorded head. The individual number never appears in ``details``.
"""

from __future__ import annotations

import functools
import hashlib
import json
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection, TextClause, bindparam, insert, select, text, update

from mynacard.db import Database, UtcDateTime
from mynacard.kiosk.tables import kiosk_audit, kiosk_audit_heads

__all__ = ["GENESIS", "AuditReport", "Entry", "append", "append_many", "entry_hash", "verify_chains"]

GENESIS = "0" * 64


def entry_hash(prev_hash: str, stream: str, seq: int, at: datetime, request_id: str | None, actor: str,
               action: str, details: str) -> str:
    """SHA-256 over the previous hash and the row's canonical JSON."""
    body = json.dumps([stream, seq, at.astimezone(UTC).isoformat(timespec="microseconds"), request_id, actor,
                       action, details], ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256((prev_hash + body).encode()).hexdigest()


def _lock_head(conn: Connection, stream: str) -> tuple[int, str]:
    if conn.dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert as pg_insert

        # One statement creates the head if missing and locks it: ON CONFLICT DO UPDATE takes the row lock
        # and returns the latest committed head, so concurrent appenders to one stream queue here.
        stmt = pg_insert(kiosk_audit_heads).values(stream=stream, seq=0, hash=GENESIS)
        locked = conn.execute(stmt.on_conflict_do_update(index_elements=["stream"],
                                                         set_={"stream": stmt.excluded.stream})
                              .returning(kiosk_audit_heads.c.seq, kiosk_audit_heads.c.hash)).one()
        return int(locked.seq), str(locked.hash)
    query = select(kiosk_audit_heads.c.seq, kiosk_audit_heads.c.hash).where(kiosk_audit_heads.c.stream == stream)
    row = conn.execute(query).first()  # SQLite: BEGIN IMMEDIATE already serialises writers
    if row is None:
        conn.execute(insert(kiosk_audit_heads).values(stream=stream, seq=0, hash=GENESIS))
        return 0, GENESIS
    return int(row.seq), str(row.hash)


@dataclass(frozen=True)
class Entry:
    """One entry to append (see :func:`append_many`)."""

    action: str
    actor: str
    request_id: str | None = None
    details: dict[str, Any] | None = None


def append(conn: Connection, stream: str, action: str, actor: str, now: datetime, *,
           request_id: str | None = None, details: dict[str, Any] | None = None) -> str:
    """Append one entry to ``stream`` inside the caller's transaction; returns its hash."""
    return append_many(conn, stream, now, [Entry(action, actor, request_id, details)])


def append_many(conn: Connection, stream: str, now: datetime, entries: list[Entry]) -> str:
    """Append entries, in order, to ``stream`` inside the caller's transaction; returns the new head's hash.
    The head is locked once and the rows and the new head written in one statement (PostgreSQL): two
    statements for any number of entries."""
    seq, prev = _lock_head(conn, stream)
    at = now.astimezone(UTC)
    rows = []
    for e in entries:
        seq += 1
        body = json.dumps(e.details or {}, ensure_ascii=False, sort_keys=True, separators=(",", ":"))
        digest = entry_hash(prev, stream, seq, at, e.request_id, e.actor, e.action, body)
        rows.append({"stream": stream, "seq": seq, "at": at, "request_id": e.request_id, "actor": e.actor,
                     "action": e.action, "details": body, "prev_hash": prev, "hash": digest})
        prev = digest
    if conn.dialect.name == "postgresql":
        params: dict[str, Any] = {"head_stream": stream, "head_seq": seq, "head_hash": prev}
        for i, row in enumerate(rows):
            params.update({f"{k}_{i}": v for k, v in row.items()})
        conn.execute(_pg_append(len(rows)), params)
    else:
        conn.execute(insert(kiosk_audit), rows)
        conn.execute(update(kiosk_audit_heads).where(kiosk_audit_heads.c.stream == stream)
                     .values(seq=seq, hash=prev))
    return prev


_COLUMNS = ("stream", "seq", "at", "request_id", "actor", "action", "details", "prev_hash", "hash")


@functools.cache
def _pg_append(n: int) -> TextClause:
    """The rows and the new head in one statement, as text built once per row count: SQLAlchemy does not
    cache the compiled form of an INSERT inside a CTE, and compiling it cost more than sending it."""
    values = ", ".join("(" + ", ".join(f":{c}_{i}" for c in _COLUMNS) + ")" for i in range(n))
    return text(f"WITH appended AS (INSERT INTO kiosk_audit ({', '.join(_COLUMNS)}) VALUES {values}) "
                "UPDATE kiosk_audit_heads SET seq = :head_seq, hash = :head_hash WHERE stream = :head_stream"
                ).bindparams(*(bindparam(f"at_{i}", type_=UtcDateTime()) for i in range(n)))


@dataclass
class AuditReport:
    """What :func:`verify_chains` found."""

    streams: int = 0
    entries: int = 0
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


def verify_chains(db: Database, stream: str | None = None) -> AuditReport:
    """Recompute every chain (or one) and compare it with its recorded head."""
    report = AuditReport()
    with db.connect() as conn:
        heads_query = select(kiosk_audit_heads)
        if stream is not None:
            heads_query = heads_query.where(kiosk_audit_heads.c.stream == stream)
        heads = {r.stream: (r.seq, r.hash) for r in conn.execute(heads_query)}
        rows_query = select(kiosk_audit).order_by(kiosk_audit.c.stream, kiosk_audit.c.seq)
        if stream is not None:
            rows_query = rows_query.where(kiosk_audit.c.stream == stream)
        current: str | None = None
        prev, expected_seq = GENESIS, 1
        seen: dict[str, tuple[int, str]] = {}
        for row in conn.execute(rows_query):
            if row.stream != current:
                current, prev, expected_seq = row.stream, GENESIS, 1
            report.entries += 1
            if row.seq != expected_seq:
                report.problems.append(f"{row.stream}: entry {expected_seq} is missing (found {row.seq})")
            if row.prev_hash != prev:
                report.problems.append(f"{row.stream} #{row.seq}: does not follow the entry before it")
            digest = entry_hash(row.prev_hash, row.stream, row.seq, row.at, row.request_id, row.actor,
                                row.action, row.details)
            if digest != row.hash:
                report.problems.append(f"{row.stream} #{row.seq}: content changed after it was written")
            prev, expected_seq = row.hash, row.seq + 1
            seen[row.stream] = (row.seq, row.hash)
    report.streams = len(heads)
    for name, head in heads.items():
        if seen.get(name, (0, GENESIS)) != head:
            report.problems.append(f"{name}: the chain does not end at its recorded head (entries removed?)")
    for name in seen.keys() - heads.keys():
        report.problems.append(f"{name}: entries without a recorded head")
    return report
