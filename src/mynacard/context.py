"""What every service needs: settings, the database, the message bus and the clock.

Services take a :class:`Context` and open their unit of work with :meth:`Context.transaction`; events recorded
there are delivered after the commit. :func:`mynacard.bootstrap.build_context` wires a context together.
Services themselves never read the clock — they take ``now`` — but whoever calls them (a route, a command, a
job) asks :meth:`Context.now`, so that a test or a demo installation sets the time in one place.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, TypeVar

from mynacard.bus import MessageBus, Transaction
from mynacard.clock import utc_now
from mynacard.config import Settings
from mynacard.db import Database

__all__ = ["Context", "Transaction"]

T = TypeVar("T")


@dataclass
class Context:
    """Settings, database and bus of one running installation (or one test)."""

    settings: Settings
    db: Database
    bus: MessageBus
    drain_after_commit: bool = True
    """Deliver events right after each commit (off in batch workers that drain separately)."""
    clock: Callable[[], datetime] = utc_now
    """The installation's business clock: the wall clock (UTC, aware), or what a test or a demo sets.
    Security timing — sessions, lockouts, the accounts' audit — keeps to the wall clock whatever this says."""

    _parts: dict[Callable[[], Any], Any] = field(default_factory=dict, repr=False)

    def now(self) -> datetime:
        """The current moment by :attr:`clock`."""
        return self.clock()

    def part_settings(self, load: Callable[[], T]) -> T:
        """A part's settings (e.g. ``jpki.config.jpki_settings``), read from the environment once for this
        context — as a process reads its configuration when it starts — instead of at every use."""
        if load not in self._parts:
            self._parts[load] = load()
        value: T = self._parts[load]
        return value

    def reload_settings(self) -> None:
        """Read the parts' settings again at their next use (a test that changes the environment does)."""
        self._parts.clear()

    @contextmanager
    def join(self, tx: Transaction | None) -> Iterator[Transaction]:
        """The caller's unit of work when one is given — it commits or rolls back with the caller's work — or a
        new one of its own. How a use case offered to other parts takes part in their transaction."""
        if tx is not None:
            yield tx
            return
        with self.transaction() as own:
            yield own

    @contextmanager
    def transaction(self) -> Iterator[Transaction]:
        with self.db.begin() as conn:
            tx = Transaction(conn, self.bus)
            yield tx
        if tx.recorded and self.drain_after_commit:
            self.bus.drain(self.db)
