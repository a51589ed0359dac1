"""Domain events and the message bus that hands them from one part to another.

A service records an event inside its own transaction (the outbox): one ``domain_events`` row plus one
``event_deliveries`` row per subscribed handler. After the commit, :meth:`MessageBus.drain` runs each pending
delivery in a transaction of its own that also marks it done, so a reaction happens exactly once even if the
process dies in between: the next drain (any process, any host) picks up what is left.

A :class:`Transaction` (a connection inside a transaction, and the events recorded in it) is the unit of work:
services open one with ``Context.transaction``, pass it where work crosses a part boundary, and handlers
receive one, so that a reaction may record events of its own.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    Column,
    Connection,
    ForeignKey,
    Integer,
    String,
    Table,
    Text,
    insert,
    select,
    update,
)

from mynacard.db import Database, UtcDateTime, metadata

__all__ = ["DomainEvent", "Handler", "MessageBus", "Transaction", "domain_events", "event_deliveries"]

domain_events = Table(
    "domain_events",
    metadata,
    Column("id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True),
    Column("kind", String(64), nullable=False),
    Column("payload", Text, nullable=False),
    Column("occurred_at", UtcDateTime(), nullable=False),
)

event_deliveries = Table(
    "event_deliveries",
    metadata,
    Column("id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True),
    Column("event_id", ForeignKey("domain_events.id"), nullable=False, index=True),
    Column("handler", String(128), nullable=False),
    Column("done_at", UtcDateTime(), nullable=True, index=True),
    Column("attempts", Integer, nullable=False, default=0),
    Column("last_error", Text, nullable=True),
)


@dataclass(frozen=True)
class DomainEvent:
    """Something that happened in one part that other parts may react to."""

    kind: str
    """Dotted name, e.g. ``registry.resident_moved``."""
    payload: dict[str, Any]
    """JSON-serialisable facts; never the individual number."""
    occurred_at: datetime
    """When it happened (the service's ``now``)."""


@dataclass
class Transaction:
    """One unit of work: a connection inside a transaction, and the events it records."""

    conn: Connection
    bus: MessageBus
    recorded: list[DomainEvent] = field(default_factory=list)

    def record(self, kind: str, payload: dict[str, Any], now: datetime) -> None:
        """Record a domain event; other parts react to it after the commit."""
        event = DomainEvent(kind, payload, now)
        self.bus.record(self.conn, event)
        self.recorded.append(event)


Handler = Callable[[Transaction, DomainEvent], None]
"""A reaction: runs inside the transaction that marks its delivery done (and may record events in it)."""


class MessageBus:
    """Subscriptions of handlers to event kinds, and the outbox that delivers them."""

    def __init__(self) -> None:
        self._handlers: dict[str, list[tuple[str, Handler]]] = {}

    def subscribe(self, kind: str, name: str, handler: Handler) -> None:
        """Register ``handler`` (stable ``name``, stored in the outbox) for events of ``kind``."""
        entries = self._handlers.setdefault(kind, [])
        if any(existing == name for existing, _ in entries):
            raise ValueError(f"handler {name!r} already subscribed to {kind!r}")
        entries.append((name, handler))

    def record(self, conn: Connection, event: DomainEvent) -> None:
        """Write the event and its pending deliveries inside the caller's transaction."""
        event_id = conn.execute(
            insert(domain_events)
            .values(kind=event.kind, payload=json.dumps(event.payload, ensure_ascii=False, sort_keys=True),
                    occurred_at=event.occurred_at)
            .returning(domain_events.c.id)
        ).scalar_one()
        handlers = self._handlers.get(event.kind, [])
        if handlers:
            conn.execute(insert(event_deliveries),
                         [{"event_id": event_id, "handler": name, "attempts": 0} for name, _ in handlers])

    def _lookup(self, kind: str, name: str) -> Handler | None:
        return next((h for n, h in self._handlers.get(kind, []) if n == name), None)

    def drain(self, db: Database, *, max_rounds: int = 100) -> int:
        """Run every pending delivery, each in its own transaction; returns how many ran.

        Handlers may record further events; those are drained too, up to ``max_rounds`` passes. A handler
        that raises leaves its delivery pending (with the error) and the others go on.
        """
        done = 0
        failed: set[int] = set()
        for _ in range(max_rounds):
            with db.connect() as conn:
                pending = conn.execute(
                    select(event_deliveries.c.id).where(event_deliveries.c.done_at.is_(None))
                    .order_by(event_deliveries.c.id).limit(500)
                ).scalars().all()
            pending = [p for p in pending if p not in failed]
            if not pending:
                break
            for delivery_id in pending:
                if self._deliver(db, delivery_id):
                    done += 1
                else:
                    failed.add(delivery_id)
        return done

    def _deliver(self, db: Database, delivery_id: int) -> bool:
        try:
            with db.begin() as conn:
                claim = select(event_deliveries, domain_events.c.kind, domain_events.c.payload,
                               domain_events.c.occurred_at).join(domain_events).where(
                    event_deliveries.c.id == delivery_id, event_deliveries.c.done_at.is_(None))
                if db.is_postgres:
                    claim = claim.with_for_update(skip_locked=True, of=event_deliveries)
                row = conn.execute(claim).mappings().first()
                if row is None:  # another worker has it or has done it
                    return True
                handler = self._lookup(row["kind"], row["handler"])
                if handler is None:
                    raise LookupError(f"no handler {row['handler']!r} for {row['kind']!r}")
                event = DomainEvent(row["kind"], json.loads(row["payload"]), row["occurred_at"])
                handler(Transaction(conn, self), event)
                conn.execute(update(event_deliveries).where(event_deliveries.c.id == delivery_id)
                             .values(done_at=event.occurred_at, attempts=row["attempts"] + 1))
            return True
        except Exception as exc:
            with db.begin() as conn:
                conn.execute(update(event_deliveries).where(event_deliveries.c.id == delivery_id)
                             .values(attempts=event_deliveries.c.attempts + 1,
                                     last_error=f"{type(exc).__name__}: {exc}"[:2000]))
            return False
