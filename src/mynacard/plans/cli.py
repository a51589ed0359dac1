"""``mynacard plans …``: import and export plans, the national report, drafting, forecasts, the snapshot.

The command line acts for the national operator (J-LIS / the ministry), as the other batch commands do.
"""

from __future__ import annotations

import sys
from datetime import UTC, date, datetime
from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table

from mynacard.bootstrap import build_context
from mynacard.clock import JST, local_date
from mynacard.context import Context
from mynacard.errors import DomainError, InvalidInput
from mynacard.plans import service
from mynacard.plans.forecast import Forecast, ForecastStatus, WhatIf
from mynacard.plans.model import EVERY_WEEK, Means, Month, Site, format_target
from mynacard.principal import Principal

app = typer.Typer(help="Issuance plans (交付計画), forecasts and the national report.", no_args_is_help=True)
console = Console()
err = Console(stderr=True)
OPERATOR = Principal.system("cli")

HomeOption = typer.Option(None, "--home", help="Data folder (default $MYNACARD_HOME or ~/.mynacard).")
NowOption = typer.Option(None, "--now", help="Pretend it is this moment (ISO 8601, 2016-06-17T18:00+09:00).")


def _context(home: Path | None) -> Context:
    return build_context(home=home)


def _now(text: str | None) -> datetime:
    if not text:
        return datetime.now(UTC)
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise typer.BadParameter(f"--now: {text!r} is not a moment (ISO 8601, 2016-06-17T18:00+09:00)") from None
    return moment if moment.tzinfo else moment.replace(tzinfo=JST)


def _day(text: str | None, label: str = "--as-of") -> date | None:
    if not text:
        return None
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise typer.BadParameter(f"{label}: {text!r} is not a day (YYYY-MM-DD)") from None


def _month(text: str | None, label: str) -> Month | None:
    if text is None:
        return None
    try:
        return Month.parse(text)
    except ValueError:
        raise typer.BadParameter(f"{label}: YYYY-MM") from None


def _fail(exc: DomainError) -> typer.Exit:
    err.print(f"[red]{exc}[/red]")
    if isinstance(exc, InvalidInput) and exc.problems != [str(exc)]:
        for problem in exc.problems[:200]:
            err.print(f"  {problem}")
        if len(exc.problems) > 200:
            err.print(f"  … and {len(exc.problems) - 200} more")
    return typer.Exit(2)


@app.command("import")
def import_(
    files: list[Path] = typer.Argument(..., exists=True, dir_okay=False,
                                       help="CSV files (targets, monthly, means)."),
    as_of: str | None = typer.Option(None, "--as-of", help="The plans' day (YYYY-MM-DD); default today."),
    home: Path | None = HomeOption,
) -> None:
    """Import plans from CSV files: all rows, or none with every bad row and its line number."""
    now = datetime.now(UTC)
    day = _day(as_of) or local_date(now)
    ctx = _context(home)
    try:
        result = service.import_plans(ctx, OPERATOR, [(f.name, f.read_bytes()) for f in files], as_of=day,
                                      now=now)
    except DomainError as exc:
        raise _fail(exc) from None
    if result.already_imported:
        console.print(f"[yellow]already imported[/yellow] (import {result.import_id}): nothing changed")
    else:
        console.print(f"[green]imported[/green] {result.rows:,} rows for {result.municipalities:,} "
                      f"municipalities as of {day} (import {result.import_id})")


@app.command()
def export(
    kind: str = typer.Option("targets", "--kind", help="targets, monthly or means."),
    out: Path | None = typer.Option(None, "--out", help="Write all three files into this folder instead."),
    as_of: str | None = typer.Option(None, "--as-of", help="Plans as published on this day (YYYY-MM-DD)."),
    home: Path | None = HomeOption,
) -> None:
    """Export the published plans as importable CSV."""
    day = _day(as_of)
    ctx = _context(home)
    try:
        if out is None:
            sys.stdout.write(service.export_plans(ctx, OPERATOR, kind, as_of=day))
            return
        out.mkdir(parents=True, exist_ok=True)
        for k in service.EXPORT_KINDS:
            text = service.export_plans(ctx, OPERATOR, k, as_of=day)
            (out / f"plans-{k}.csv").write_text(text, encoding="utf-8")
    except DomainError as exc:
        raise _fail(exc) from None
    names = ', '.join(f'plans-{k}.csv' for k in service.EXPORT_KINDS)
    console.print(f"[green]wrote[/green] {names} to {out}")


@app.command()
def report(
    csv_out: bool = typer.Option(False, "--csv", help="The deck-shaped table as CSV on standard output."),
    as_of: str | None = typer.Option(None, "--as-of",
                                     help="Report day (YYYY-MM-DD); default the newest plans' day."),
    support_after: str | None = typer.Option(None, "--support-after",
                                             help="List municipalities finishing after this month."),
    prefecture: str | None = typer.Option(None, "--prefecture", help="Two-digit prefecture code."),
    home: Path | None = HomeOption,
) -> None:
    """The national report: municipalities by target month per application month, cleared share,
    notices against applications, the daily number against capacity, and the support list."""
    given = _day(as_of)
    ctx = _context(home)
    day = given or service.latest_plan_day(ctx) or local_date(datetime.now(UTC))
    try:
        rep = service.national_report_for(ctx, OPERATOR, as_of=day, prefecture_code=prefecture,
                                          support_after=_month(support_after, "--support-after"))
    except DomainError as exc:
        raise _fail(exc) from None
    if csv_out:
        from mynacard.plans.csvfiles import write_csv

        rows = rep.csv_rows()
        sys.stdout.write(write_csv(rows[0], rows[1:]))
        return
    table = Table(title=f"交付通知書発送完了目標見込み — as of {rep.as_of} ({rep.with_plan:,} of "
                        f"{rep.municipalities:,} municipalities with a plan)")
    table.add_column("target \\ applied")
    for i, col in enumerate(rep.columns):
        table.add_column(f"{col}{'+' if i == len(rep.columns) - 1 else ''}", justify="right")
    for extra in ("month", "cleared", "share", "notices", "applications", "ratio"):
        table.add_column(extra, justify="right")
    for row in rep.csv_rows()[1:]:
        table.add_row(*row)
    console.print(table)
    daily = Table(title=f"national notices per open day implied by the plans (capacity {rep.cms_capacity:,})")
    daily.add_column("month")
    daily.add_column("per day", justify="right")
    daily.add_column("", justify="left")
    for d in rep.daily:
        daily.add_row(str(d.month), f"{d.per_day:,}", "[red]over capacity[/red]" if d.over else "ok")
    console.print(daily)
    console.print(f"{len(rep.support):,} municipalities finish after {rep.support_after} (support team):")
    for s in rep.support[:50]:
        console.print(f"  {s.municipality_code} {s.name}: {s.clearance}")
    if len(rep.support) > 50:
        console.print(f"  … and {len(rep.support) - 50:,} more (see the CSV on /plans/support.csv)")


def _means(terminals: int, staff: int, saturdays: bool, after_hours: bool) -> Means:
    site = Site("本庁", terminals=terminals, staff=staff, saturdays=EVERY_WEEK if saturdays else frozenset(),
                after_hours_days=frozenset(range(5)) if after_hours else frozenset())
    return Means((site,)).check()


@app.command()
def draft(
    municipality: str = typer.Option(..., "--municipality", "-m"),
    target: str = typer.Option(..., "--target", help="Clear the backlog by the end of this month (YYYY-MM)."),
    terminals: int = typer.Option(1, "--terminals"),
    staff: int = typer.Option(2, "--staff"),
    saturdays: bool = typer.Option(False, "--saturdays/--no-saturdays"),
    after_hours: bool = typer.Option(False, "--after-hours/--no-after-hours"),
    save: bool = typer.Option(False, "--save", help="Publish it (a new revision of the plan)."),
    now: str | None = NowOption,
    home: Path | None = HomeOption,
) -> None:
    """Work a plan out from the live backlog (one main site); ``--save`` publishes it."""
    ctx = _context(home)
    moment = _now(now)
    month = _month(target, "--target")
    assert month is not None
    try:
        means = _means(terminals, staff, saturdays, after_hours)
        if save:
            service.save_plan(ctx, OPERATOR, municipality, target=month, means=means, now=moment)
        _, fig = service.draft_plan(ctx, OPERATOR, municipality, target=month, means=means, now=moment)
    except DomainError as exc:
        raise _fail(exc) from None
    console.print(f"backlog {fig.backlog_total:,} cards + {fig.expected_arrivals:,} expected arrivals over "
                  f"{fig.open_days} open days ({fig.first_day} – {fig.last_day})")
    console.print(f"needed: {fig.required_per_day:,} cards a day; the means give "
                  f"{fig.capacity_per_day or 0:,.1f} a day (limited by {fig.bottleneck})")
    if fig.flagged:
        console.print(f"[red]short by {fig.shortfall_per_day:,} a day ({fig.shortfall_total:,} cards)[/red]; "
                      f"the means would clear it in {fig.achievable_month or 'more than three years'}")
    else:
        console.print(f"[green]the means suffice[/green] (they would clear it in {fig.achievable_month})")
    console.print("targets: " + ", ".join(f"{m}→{format_target(t)}" for m, t in sorted(fig.targets.items())))
    if save:
        console.print("[green]published[/green]")


def _print_forecast(code: str, fc: Forecast) -> None:
    if fc.status is ForecastStatus.CLEARED:
        console.print(f"{code}: no backlog ({fc.backlog:,} waiting, all within the normal handling time)")
        return
    if fc.median is None:
        console.print(f"{code}: {fc.status.value} (backlog {fc.backlog:,})")
        return
    console.print(f"{code}: cleared around [bold]{fc.median}[/bold] (90% band {fc.low} – "
                  f"{fc.high or 'beyond ' + str(fc.horizon_end)}); backlog {fc.backlog:,}, "
                  f"{fc.throughput_per_day:,.1f} a day through the window, "
                  f"{fc.arrivals_per_day:,.1f} arriving")


@app.command()
def forecast(
    municipality: str | None = typer.Option(None, "--municipality", "-m",
                                            help="One municipality (default: every one, from the snapshot)."),
    add_terminals: int = typer.Option(0, "--add-terminals"),
    add_staff: int = typer.Option(0, "--add-staff"),
    saturdays: bool = typer.Option(False, "--saturdays"),
    after_hours: bool = typer.Option(False, "--after-hours"),
    temporary_days: int = typer.Option(0, "--temporary-days", help="Open a temporary window for N days."),
    now: str | None = NowOption,
    home: Path | None = HomeOption,
) -> None:
    """Forecast the clearance date (with a 90% band) of one municipality, or of all of them."""
    ctx = _context(home)
    try:
        if municipality is None:
            results = service.national_forecasts(ctx, OPERATOR)
            late = sorted(((fc.median or date.max, code) for code, fc in results.items()), reverse=True)
            console.print(f"{len(results):,} municipalities forecast; the latest:")
            for _, code in late[:20]:
                _print_forecast(code, results[code])
            return
        what_if = WhatIf(add_terminals=add_terminals, add_staff=add_staff, saturdays=saturdays,
                         after_hours=after_hours, temporary_days=temporary_days)
        moment = _now(now)
        base = service.forecast_for(ctx, OPERATOR, municipality, moment)
        _print_forecast(municipality, base)
        if not what_if.empty:
            changed = service.forecast_for(ctx, OPERATOR, municipality, moment, what_if=what_if)
            console.print("with the change:")
            _print_forecast(municipality, changed)
    except DomainError as exc:
        raise _fail(exc) from None


@app.command()
def refresh(now: str | None = NowOption, home: Path | None = HomeOption) -> None:
    """Rebuild the national snapshot of actuals from the card history and forecast every municipality
    from it (run nightly)."""
    moment = _now(now)
    ctx = _context(home)
    with console.status("counting the card history and forecasting every municipality…"):
        result = service.refresh_actuals(ctx, OPERATOR, moment)
    console.print(f"[green]snapshot rebuilt[/green]: {result.rows:,} rows, {result.municipalities:,} "
                  f"municipalities, daily from {result.daily_since}; {result.forecasts:,} forecasts kept")


@app.command()
def settings(
    capacity: int | None = typer.Option(None, "--cms-capacity",
                                        help="Cards a day the card management system handles."),
    support_after: str | None = typer.Option(None, "--support-after", help="YYYY-MM."),
    home: Path | None = HomeOption,
) -> None:
    """Show or set the card management system's capacity and the support team's month."""
    ctx = _context(home)
    try:
        if capacity is not None or support_after is not None:
            service.set_settings(ctx, OPERATOR, datetime.now(UTC), cms_daily_capacity=capacity,
                                 support_after=_month(support_after, "--support-after"))
    except DomainError as exc:
        raise _fail(exc) from None
    s = service.get_settings(ctx)
    console.print(f"card management system capacity: {s.cms_daily_capacity:,} cards a day")
    after = s.support_after or "two months after the report's month"
    console.print(f"support team: municipalities finishing after {after}")
    console.print(f"actuals snapshot: {s.actuals_refreshed_at or 'never built (mynacard plans refresh)'}")
