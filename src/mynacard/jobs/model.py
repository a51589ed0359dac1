"""Scheduled jobs (定期処理) as a pure model: what a job is, when it is due, and how long a failed one waits.

No I/O and no clock: the moments come in as arguments. The runner (:mod:`mynacard.jobs.service`) keeps one row
per job with its lease, and asks these functions what to do.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from mynacard.context import Context

__all__ = ["FIRST_RETRY", "LAST_RETRY", "JobSpec", "Outcome", "next_due", "retry_delay"]

FIRST_RETRY = timedelta(minutes=1)
"""A failed run is retried after this long, doubling with each failure in a row …"""
LAST_RETRY = timedelta(hours=1)
"""… up to this; the job's own schedule wins when it comes sooner."""


class Outcome(StrEnum):
    OK = "ok"
    FAILED = "failed"


@dataclass(frozen=True)
class JobSpec:
    """One stage of the programme that runs on its own calendar."""

    name: str
    """Stable name (``jpki.crl``): the key of its row, the argument of ``mynacard jobs run``."""
    every: timedelta
    description: str
    """Japanese first, for the operator's list."""
    run: Callable[[Context, datetime], str]
    """Does the work for ``now`` and says in a line what it did; raises when it could not."""
    lease: timedelta = timedelta(minutes=10)
    """How long one runner holds the job; longer than the job ever takes, so that no second runner starts it."""


def retry_delay(failures: int) -> timedelta:
    """How long to wait after the ``failures``-th failed run in a row: 1, 2, 4 … minutes, at most an hour."""
    if failures <= 0:
        return timedelta(0)
    return min(FIRST_RETRY * 2 ** min(failures - 1, 16), LAST_RETRY)


def next_due(spec: JobSpec, finished_at: datetime, outcome: Outcome, failures: int) -> datetime:
    """When the job is due again after a run that finished at ``finished_at``."""
    if outcome is Outcome.OK:
        return finished_at + spec.every
    return finished_at + min(retry_delay(failures), spec.every)
