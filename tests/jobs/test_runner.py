"""The job runner: one runner at a time per job, failures kept and retried with back-off, run now, and the
catalogue's jobs running through their parts' use cases."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

import pytest
from typer.testing import CliRunner

from mynacard.cli import app as cli
from mynacard.context import Context
from mynacard.errors import Conflict, Forbidden
from mynacard.jobs import service
from mynacard.jobs.catalogue import JOBS, job
from mynacard.jobs.model import FIRST_RETRY, LAST_RETRY, JobSpec, Outcome, next_due, retry_delay
from mynacard.principal import Principal, Role

T0 = datetime(2026, 12, 8, 1, 0, tzinfo=UTC)
OPERATOR = Principal(Role.OPERATOR, "ops")


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
def clock(ctx: Context) -> Clock:
    c = Clock()
    ctx.clock = c
    return c


def test_the_back_off_doubles_from_a_minute_to_an_hour_and_the_schedule_wins() -> None:
    assert [retry_delay(n) for n in (0, 1, 2, 3)] == [timedelta(0), FIRST_RETRY, 2 * FIRST_RETRY, 4 * FIRST_RETRY]
    assert retry_delay(40) == LAST_RETRY
    often = JobSpec("x", timedelta(minutes=3), "x", lambda ctx, now: "")
    assert next_due(often, T0, Outcome.OK, 0) == T0 + timedelta(minutes=3)
    assert next_due(often, T0, Outcome.FAILED, 1) == T0 + FIRST_RETRY
    assert next_due(often, T0, Outcome.FAILED, 5) == T0 + timedelta(minutes=3)  # never later than its schedule


def test_a_job_runs_when_due_and_only_then(ctx: Context, clock: Clock) -> None:
    calls: list[datetime] = []
    spec = JobSpec("test.tick", timedelta(minutes=15), "tick", lambda c, now: calls.append(now) or "ticked")
    assert [r.outcome for r in service.run_due(ctx, [spec], "a")] == [Outcome.OK]
    assert service.run_due(ctx, [spec], "a") == []  # not due again yet
    clock.now = T0 + timedelta(minutes=15)
    assert [r.detail for r in service.run_due(ctx, [spec], "b")] == ["ticked"]
    assert calls == [T0, T0 + timedelta(minutes=15)]
    (shown,) = service.status(ctx, OPERATOR, [spec])
    assert shown.last_outcome == "ok" and shown.next_due_at == T0 + timedelta(minutes=30) and shown.running_on is None


def test_two_runners_never_run_one_job_at_once(ctx: Context, clock: Clock) -> None:
    started, release = threading.Event(), threading.Event()
    runs: list[str] = []

    def slow(c: Context, now: datetime) -> str:
        runs.append("run")
        started.set()
        release.wait(10)
        return "done"

    spec = JobSpec("test.slow", timedelta(minutes=5), "slow", slow, lease=timedelta(minutes=10))
    service._ensure_jobs(ctx, [spec], T0)
    first = threading.Thread(target=service.run_due, args=(ctx, [spec], "host-a:1"))
    first.start()
    assert started.wait(10)
    assert service.run_due(ctx, [spec], "host-b:2") == []  # the lease is host-a's
    assert service.status(ctx, OPERATOR, [spec])[0].running_on == "host-a:1"
    with pytest.raises(Conflict, match="running on host-a:1"):
        service.run_now(ctx, OPERATOR, spec, "cli")
    release.set()
    first.join(10)
    assert runs == ["run"]


def test_a_lease_left_by_a_dead_runner_expires(ctx: Context, clock: Clock) -> None:
    spec = JobSpec("test.crash", timedelta(minutes=5), "crash", lambda c, now: "ok", lease=timedelta(minutes=2))
    service._ensure_jobs(ctx, [spec], T0)
    assert service._claim(ctx, spec, "dead:1", T0, asked=False)  # it took the job and died
    assert service.run_due(ctx, [spec], "alive:2") == []
    clock.now = T0 + timedelta(minutes=3)
    assert [r.outcome for r in service.run_due(ctx, [spec], "alive:2")] == [Outcome.OK]


def test_a_failed_run_is_kept_retried_with_back_off_and_shown(ctx: Context, clock: Clock) -> None:
    attempts: list[datetime] = []

    def flaky(c: Context, now: datetime) -> str:
        attempts.append(now)
        if len(attempts) < 3:
            raise RuntimeError("the CA database is not reachable")
        return "recovered"

    spec = JobSpec("test.flaky", timedelta(hours=1), "flaky", flaky)
    (first,) = service.run_due(ctx, [spec], "a")
    assert first.outcome is Outcome.FAILED and "not reachable" in first.detail
    shown = service.status(ctx, OPERATOR, [spec])[0]
    assert shown.failures == 1 and shown.next_due_at == T0 + FIRST_RETRY and shown.last_outcome == "failed"
    clock.now = T0 + FIRST_RETRY
    assert service.run_due(ctx, [spec], "a")[0].outcome is Outcome.FAILED
    assert service.status(ctx, OPERATOR, [spec])[0].next_due_at == clock.now + 2 * FIRST_RETRY
    clock.now += 2 * FIRST_RETRY
    assert service.run_due(ctx, [spec], "a")[0].detail == "recovered"
    assert service.status(ctx, OPERATOR, [spec])[0].failures == 0
    assert [r.outcome for r in service.recent_runs(ctx, OPERATOR, "test.flaky")] == [
        Outcome.OK, Outcome.FAILED, Outcome.FAILED]  # nothing lost, newest first


def test_run_now_is_the_operators_and_a_request_is_taken_by_the_next_pass(ctx: Context, clock: Clock) -> None:
    spec = JobSpec("test.manual", timedelta(days=1), "manual", lambda c, now: "by hand")
    service.run_due(ctx, [spec], "a")
    assert service.run_due(ctx, [spec], "a") == []
    with pytest.raises(Forbidden):
        service.request_run(ctx, Principal(Role.CLERK, "c", "131016"), spec, T0)
    service.request_run(ctx, OPERATOR, spec, T0)
    assert [r.detail for r in service.run_due(ctx, [spec], "b")] == ["by hand"]
    assert service.run_now(ctx, OPERATOR, spec, "cli").detail == "by hand"


def test_every_job_of_the_catalogue_runs_on_a_fresh_installation(ctx: Context, clock: Clock) -> None:
    results = {r.name: r for r in service.run_due(ctx, JOBS, "a")}
    assert set(results) == {s.name for s in JOBS}
    assert all(r.outcome is Outcome.OK for r in results.values()), {n: r.detail for n, r in results.items()}
    assert results["jpki.crl"].detail == "no CRL was due"  # no CAs yet: nothing is created by a job
    with pytest.raises(KeyError, match=r"jpki\.crl"):
        job("no.such.job")


def test_the_commands_show_run_and_refuse_an_unknown_job(ctx: Context) -> None:
    runner = CliRunner()
    env = {"MYNACARD_DATABASE_URL": ctx.settings.database_url, "COLUMNS": "200"}
    home = ["--home", str(ctx.settings.home)]
    ran = runner.invoke(cli, ["jobs", "run", "accounts.sessions", *home], env=env)
    assert ran.exit_code == 0 and "accounts.sessions: ok" in ran.output, ran.output
    shown = runner.invoke(cli, ["jobs", "status", *home], env=env)
    assert shown.exit_code == 0 and "accounts.sessions" in shown.output and "jpki.crl" in shown.output
    assert "never run" in shown.output
    once = runner.invoke(cli, ["worker", "--once", *home], env=env)
    assert once.exit_code == 0 and "jpki.crl: ok" in once.output, once.output
    unknown = runner.invoke(cli, ["jobs", "run", "no.such.job", *home], env=env)
    assert unknown.exit_code == 2 and "the jobs are" in unknown.output
