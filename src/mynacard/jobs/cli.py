"""``mynacard worker`` (the job runner) and ``mynacard jobs …`` (the operator's view and "run now")."""

from __future__ import annotations

import contextlib
import os
import socket
from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table

from mynacard.bootstrap import build_context
from mynacard.clock import JST
from mynacard.jobs import service
from mynacard.jobs.catalogue import JOBS, job
from mynacard.jobs.model import JobSpec
from mynacard.principal import Principal

app = typer.Typer(help="Scheduled jobs (定期処理): status, history, run now.", no_args_is_help=True)


def _console() -> Console:
    return Console()  # made per command, so that it measures the terminal (COLUMNS) it runs in
HomeOption = typer.Option(None, "--home", help="Data folder (default $MYNACARD_HOME or ~/.mynacard).")
OPERATOR = Principal.system("jobs-cli")


def _runner() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def _spec(name: str) -> JobSpec:
    try:
        return job(name)
    except KeyError as exc:
        raise typer.BadParameter(str(exc.args[0])) from None


@app.command("status")
def status(home: Path | None = HomeOption) -> None:
    """Every job: its schedule, when it is next due, who runs it now, its last outcome."""
    ctx = build_context(home=home)
    table = Table("job", "every", "next due (JST)", "running on", "last", "failures", "detail")
    for s in service.status(ctx, OPERATOR, JOBS):
        table.add_row(s.name, f"{s.every_seconds // 60} min", f"{s.next_due_at.astimezone(JST):%m-%d %H:%M}",
                      s.running_on or "", s.last_outcome or "never run", str(s.failures), (s.last_detail or "")[:60])
    _console().print(table)


@app.command("run")
def run(name: str = typer.Argument(..., help="The job's name (see `mynacard jobs status`)."),
        home: Path | None = HomeOption) -> None:
    """Run one job now in this process — through the same lease, so never beside a runner that has it."""
    spec = _spec(name)
    ctx = build_context(home=home)
    result = service.run_now(ctx, OPERATOR, spec, _runner())
    _console().print(f"{result.name}: {result.outcome.value} in {result.duration_ms} ms — {result.detail}")
    if result.outcome.value != "ok":
        raise typer.Exit(1)


@app.command("runs")
def runs(name: str = typer.Argument(...), home: Path | None = HomeOption) -> None:
    """The last runs of one job, newest first."""
    _spec(name)
    ctx = build_context(home=home)
    table = Table("started (JST)", "outcome", "ms", "detail")
    for r in service.recent_runs(ctx, OPERATOR, name):
        table.add_row(f"{r.started_at.astimezone(JST):%Y-%m-%d %H:%M:%S}", r.outcome.value, str(r.duration_ms),
                      r.detail[:80])
    _console().print(table)


def worker(home: Path | None = HomeOption,
           once: bool = typer.Option(False, "--once", help="One pass over the due jobs, then exit."),
           poll: int = typer.Option(10, "--poll", min=1, max=3600, help="Seconds between passes.")) -> None:
    """The job runner: runs every scheduled stage on its own calendar. Start one or several (on PostgreSQL on
    several hosts): a job's lease lets only one of them run it at a time."""
    ctx = build_context(home=home)
    runner = _runner()
    if once:
        for r in service.run_due(ctx, JOBS, runner):
            _console().print(f"{r.name}: {r.outcome.value} in {r.duration_ms} ms — {r.detail}")
        return
    from apscheduler.schedulers.blocking import BlockingScheduler

    scheduler = BlockingScheduler(timezone="UTC")
    scheduler.add_job(service.run_due, "interval", seconds=poll, args=[ctx, JOBS, runner], max_instances=1,
                      coalesce=True, next_run_time=ctx.now())
    _console().print(f"worker {runner}: {len(JOBS)} jobs, a pass every {poll} s (Ctrl-C stops)")
    with contextlib.suppress(KeyboardInterrupt, SystemExit):  # Ctrl-C or a service manager's stop
        scheduler.start()
