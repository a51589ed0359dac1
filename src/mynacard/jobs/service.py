"""The job runner (定期処理の実行): any number of runners, on any number of hosts, share one row per job; a
runner takes a due job by a conditional UPDATE of its lease (one statement, so on SQLite and PostgreSQL alike
only one runner wins), runs it outside any transaction, and records the outcome and the run. A failed run is
kept, retried with back-off (:func:`~mynacard.jobs.model.retry_delay`) and shown, never lost.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import insert, or_, select, update

from mynacard.context import Context
from mynacard.db import bulk_insert_ignore
from mynacard.errors import Conflict, NotFound
from mynacard.jobs.model import JobSpec, Outcome, next_due
from mynacard.jobs.tables import job_runs, job_state
from mynacard.principal import Principal, Role

__all__ = ["JobResult", "JobStatus", "recent_runs", "request_run", "run_due", "run_now",
           "status"]

log = logging.getLogger(__name__)

_OPERATORS = (Role.OPERATOR, Role.SYSTEM)


@dataclass(frozen=True)
class JobResult:
    name: str
    outcome: Outcome
    detail: str
    started_at: datetime
    duration_ms: int


@dataclass(frozen=True)
class JobStatus:
    """A job as the operator's list shows it."""

    name: str
    description: str
    every_seconds: int
    next_due_at: datetime
    running_on: str | None
    run_requested_at: datetime | None
    failures: int
    last_started_at: datetime | None
    last_outcome: str | None
    last_detail: str | None
    last_duration_ms: int | None


def _ensure_jobs(ctx: Context, specs: Sequence[JobSpec], now: datetime) -> None:
    """One row per job, due at once when new (a retry or a second runner adds nothing)."""
    with ctx.transaction() as tx:
        bulk_insert_ignore(tx.conn, job_state, [{"name": s.name, "next_due_at": now, "failures": 0}
                                                for s in specs], "name")


def _claim(ctx: Context, spec: JobSpec, runner: str, now: datetime, *, asked: bool) -> bool:
    """Take the job's lease if it is free (or ours, expired) and the job is due — or asked for, with ``asked``."""
    free = or_(job_state.c.lease_until.is_(None), job_state.c.lease_until < now)
    due = (job_state.c.next_due_at <= now) | job_state.c.run_requested_at.is_not(None)
    with ctx.transaction() as tx:
        taken = tx.conn.execute(update(job_state).where(job_state.c.name == spec.name, free,
                                                        *(() if asked else (due,)))
                                .values(lease_holder=runner[:128], lease_until=now + spec.lease,
                                        last_started_at=now, run_requested_at=None)).rowcount
    return taken == 1


def _run_job(ctx: Context, spec: JobSpec, runner: str, *, asked: bool = False) -> JobResult | None:
    """Run one job if this runner gets its lease; None when it is not due or another runner holds it."""
    started = ctx.now()
    if not _claim(ctx, spec, runner, started, asked=asked):
        return None
    clock = time.monotonic()
    try:
        detail, outcome = spec.run(ctx, started), Outcome.OK
    except Exception as exc:  # a job's failure is recorded and retried, never lost; the runner goes on
        log.exception("job %s failed on %s", spec.name, runner)
        detail, outcome = f"{type(exc).__name__}: {exc}"[:2000], Outcome.FAILED
    duration_ms = int((time.monotonic() - clock) * 1000)
    finished = ctx.now()
    with ctx.transaction() as tx:
        row = tx.conn.execute(select(job_state.c.failures).where(job_state.c.name == spec.name)).one()
        failures = 0 if outcome is Outcome.OK else row.failures + 1
        tx.conn.execute(update(job_state).where(job_state.c.name == spec.name, job_state.c.lease_holder == runner[:128])
                        .values(lease_holder=None, lease_until=None, failures=failures,
                                next_due_at=next_due(spec, finished, outcome, failures), last_finished_at=finished,
                                last_outcome=outcome.value, last_detail=detail, last_duration_ms=duration_ms))
        tx.conn.execute(insert(job_runs).values(name=spec.name, runner=runner[:128], started_at=started,
                                                finished_at=finished, outcome=outcome.value, detail=detail,
                                                duration_ms=duration_ms))
    return JobResult(spec.name, outcome, detail, started, duration_ms)


def run_due(ctx: Context, specs: Sequence[JobSpec], runner: str) -> list[JobResult]:
    """One pass of a runner: every due (or asked-for) job whose lease it gets, in order."""
    _ensure_jobs(ctx, specs, ctx.now())
    return [r for spec in specs if (r := _run_job(ctx, spec, runner)) is not None]


def request_run(ctx: Context, principal: Principal, spec: JobSpec, now: datetime) -> None:
    """Run now (the operator's button): the next runner pass takes the job whatever its schedule."""
    principal.require(*_OPERATORS)
    _ensure_jobs(ctx, [spec], now)
    with ctx.transaction() as tx:
        tx.conn.execute(update(job_state).where(job_state.c.name == spec.name).values(run_requested_at=now))


def run_now(ctx: Context, principal: Principal, spec: JobSpec, runner: str) -> JobResult:
    """Run a job in this process at once (``mynacard jobs run``), through the same lease as the runners."""
    principal.require(*_OPERATORS)
    _ensure_jobs(ctx, [spec], ctx.now())
    result = _run_job(ctx, spec, runner, asked=True)
    if result is None:
        with ctx.db.connect() as conn:
            holder = conn.execute(select(job_state.c.lease_holder).where(job_state.c.name == spec.name)).scalar()
        raise Conflict(f"{spec.name} is running on {holder} now; it is not started twice")
    return result


def status(ctx: Context, principal: Principal, specs: Sequence[JobSpec]) -> list[JobStatus]:
    """Every job with its schedule, lease and last outcome (the operator's list)."""
    principal.require(*_OPERATORS)
    with ctx.db.connect() as conn:
        rows = {r.name: r for r in conn.execute(select(job_state))}
    now = ctx.now()
    out = []
    for spec in specs:
        r = rows.get(spec.name)
        running = r.lease_holder if r is not None and r.lease_until is not None and r.lease_until > now else None
        out.append(JobStatus(
            spec.name, spec.description, int(spec.every.total_seconds()), r.next_due_at if r else now, running,
            r.run_requested_at if r else None, r.failures if r else 0, r.last_started_at if r else None,
            r.last_outcome if r else None, r.last_detail if r else None, r.last_duration_ms if r else None))
    return out


def recent_runs(ctx: Context, principal: Principal, name: str, limit: int = 20) -> list[JobResult]:
    """The last runs of one job, newest first."""
    principal.require(*_OPERATORS)
    with ctx.db.connect() as conn:
        if conn.execute(select(job_state.c.name).where(job_state.c.name == name)).first() is None:
            raise NotFound(f"no job {name!r} has run here")
        rows = conn.execute(select(job_runs).where(job_runs.c.name == name)
                            .order_by(job_runs.c.id.desc()).limit(max(1, min(limit, 500)))).all()
    return [JobResult(r.name, Outcome(r.outcome), r.detail, r.started_at, r.duration_ms) for r in rows]
