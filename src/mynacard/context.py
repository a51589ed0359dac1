"""What every service needs: settings, the database and the message bus.

Services take a :class:`Context` and open their unit of work with :meth:`Context.transaction`; events recorded
there are delivered after the commit. :func:`mynacard.bootstrap.build_context` wires a context together.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import Connection

from mynacard.bus import DomainEvent, MessageBus
from mynacard.config import Settings
from mynacard.db import Database

__all__ = ["Context", "Transaction"]


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


@dataclass
class Context:
    """Settings, database and bus of one running installation (or one test)."""

    settings: Settings
    db: Database
    bus: MessageBus
    drain_after_commit: bool = True
    """Deliver events right after each commit (off in batch workers that drain separately)."""

    @contextmanager
    def transaction(self) -> Iterator[Transaction]:
        with self.db.begin() as conn:
            tx = Transaction(conn, self.bus)
            yield tx
        if tx.recorded and self.drain_after_commit:
            self.bus.drain(self.db)
