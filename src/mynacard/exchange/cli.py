"""``mynacard exchange …``: the network from the command line — the directory, the permitted table, the log
verifier, reviews, reconciliation and a demonstration network."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.console import Console
from rich.progress import Progress
from rich.table import Table

from mynacard.bootstrap import build_context
from mynacard.clock import utc_now
from mynacard.context import Context
from mynacard.errors import DomainError
from mynacard.exchange import service
from mynacard.exchange.model import PERMITTED_EXCHANGES, AgencyKind
from mynacard.principal import Principal, Role

app = typer.Typer(help="The information provision network (情報提供ネットワークシステム).", no_args_is_help=True)
console = Console()
OPERATOR = Principal(Role.OPERATOR, "cli-operator")
HomeOption = typer.Option(None, "--home", help="Data folder (default $MYNACARD_HOME or ~/.mynacard).")


def _context(home: Path | None) -> Context:
    return build_context(home=home)


def _fail(exc: DomainError) -> typer.Exit:
    console.print(f"[red]{type(exc).__name__}[/red]: {exc}")
    for problem in getattr(exc, "problems", [])[1:] if getattr(exc, "problems", None) else []:
        console.print(f"  - {problem}")
    return typer.Exit(2)


@app.command("agencies")
def agencies(home: Path | None = HomeOption, kind: str | None = typer.Option(None, "--kind")) -> None:
    """The directory of agencies on the network."""
    if kind is not None and kind not in {k.value for k in AgencyKind}:
        raise typer.BadParameter(f"--kind: unknown agency kind {kind!r} (one of: "
                                 f"{', '.join(k.value for k in AgencyKind)})")
    table = Table(title="agencies (機関)")
    for column in ("id", "name", "kind", "municipality", "status"):
        table.add_column(column)
    for a in service.list_agencies(_context(home), kind=kind):
        table.add_row(a.id, a.name, a.kind.value, a.municipality_code or "—", a.status.value)
    console.print(table)


@app.command("register")
def register(agency_id: str, name: str = typer.Option(..., "--name", help="Japanese name."),
             name_en: str = typer.Option(..., "--name-en"), kind: str = typer.Option(..., "--kind"),
             municipality: str | None = typer.Option(None, "--municipality"),
             home: Path | None = HomeOption) -> None:
    """Register an agency (its keys and its own store are created)."""
    try:
        a = service.register_agency(_context(home), OPERATOR, service.AgencyRegistration(
            agency_id, name, name_en, kind, municipality), utc_now())
    except DomainError as exc:
        raise _fail(exc) from None
    console.print(f"[green]registered[/green] {a.id} ({a.kind.value}), signing key {a.sign_public_key.hex()[:16]}…")


@app.command("permissions")
def permissions() -> None:
    """The permitted-exchange table (in the spirit of 番号法 別表第二)."""
    table = Table(title="permitted exchanges (別表第二)")
    for column in ("row", "requester 情報照会者", "procedure 事務", "provider 情報提供者", "item 特定個人情報"):
        table.add_column(column)
    for p in PERMITTED_EXCHANGES:
        table.add_row(p.row, p.requester.label_ja, p.procedure.label_ja, p.provider.label_ja, p.item.label_ja)
    console.print(table)


@app.command("verify-log")
def verify_log(home: Path | None = HomeOption) -> None:
    """Recompute the hash chain of the exchange log and check the hub's signatures; exit 1 and say where
    the chain breaks if it does."""
    report = service.verify_log(_context(home), Principal.system("verify-log"))
    span = f"entries {report.first_seq}–{report.last_seq}" if report.entries else "no entries"
    if report.ok:
        console.print(f"[green]log whole[/green]: {report.entries:,} {span} in {report.chains} chains, "
                      f"{report.checkpoints} signed checkpoints")
        return
    first = report.first
    assert first is not None
    console.print(f"[red]log BROKEN at {first.where}[/red] ({first.kind}): {first.detail}")
    for b in report.breaks:
        if b is not first:
            console.print(f"  also {b.where} ({b.kind}): {b.detail}")
    console.print(f"{report.entries:,} entries read ({span})")
    raise typer.Exit(1)


@app.command("checkpoint")
def checkpoint(home: Path | None = HomeOption) -> None:
    """Sign a checkpoint at the current head of the log."""
    signed = service.checkpoint_log(_context(home), OPERATOR, utc_now())
    console.print(f"[green]{signed} checkpoint(s) signed[/green] (one per chain head not yet signed)")


@app.command("purge-log")
def purge_log(home: Path | None = HomeOption) -> None:
    """Remove log entries past the seven-year retention (a signed anchor keeps the rest verifiable)."""
    removed = service.purge_expired_log(_context(home), OPERATOR, utc_now())
    console.print(f"{removed:,} entries past seven years removed")


@app.command("reviews")
def reviews(agency: str | None = typer.Option(None, "--agency"), home: Path | None = HomeOption) -> None:
    """Enrolments waiting for a person (partial matches are never linked)."""
    ctx = _context(home)
    if agency is not None:
        service.get_agency(ctx, agency)  # an unknown agency is refused (NotFound), not shown as an empty queue
    table = Table(title="review queue (確認待ち)")
    for column in ("id", "agency", "record", "source", "why", "number", "since"):
        table.add_column(column)
    for r in service.list_reviews(ctx, OPERATOR, agency):
        table.add_row(str(r.id), r.agency_id, r.local_ref, r.source, ", ".join(r.reasons), r.masked_number,
                      r.created_at.isoformat(timespec="minutes"))
    console.print(table)


@app.command("reconcile")
def reconcile(agency: str, home: Path | None = HomeOption) -> None:
    """Check an agency's links against the registry again; stale ones are suspended and reviewed."""
    ctx = _context(home)
    try:
        service.get_agency(ctx, agency)  # refused before the hub is set up (reconcile would set it up first)
        report = service.reconcile(ctx, OPERATOR, agency, utc_now())
    except DomainError as exc:
        raise _fail(exc) from None
    console.print(f"{report.checked:,} links checked, {len(report.suspended):,} suspended for review")


@app.command("seed")
def seed(municipality: list[str] = typer.Option(["131016"], "--municipality", "-m"),
         exchanges: int = typer.Option(300, "--exchanges", min=0, max=1_000_000, help="Permitted queries to run."),
         limit: int = typer.Option(2000, "--residents", min=1, max=5_000_000,
                                   help="Residents per municipality to enrol."),
         home: Path | None = HomeOption) -> None:
    """A demonstration network over residents already registered (``mynacard seed`` first): agencies,
    enrolment with a full match, copies of their items, and a day of permitted exchanges."""
    from mynacard.exchange import demo
    from mynacard.registry import service as registry

    ctx = _context(home)
    now = utc_now()
    for code in municipality:  # every town known before anything is built
        registry.get_municipality(ctx, code)
    people = []
    total = registry.count_residents(ctx, Principal.system())
    for code in municipality:
        clerk = Principal(Role.CLERK, "exchange-seed", code)
        found = registry.residents_by_id(ctx, clerk, range(1, total + 1))
        people.extend(sorted(found.values(), key=lambda r: r.id)[:limit])
    if not people:
        console.print("[yellow]no residents: run `mynacard seed` first[/yellow]")
        raise typer.Exit(1)
    with console.status("building the network"):
        world = demo.build_world(ctx, municipality, people, now)
    with Progress(console=console, transient=True) as progress:
        task = progress.add_task("exchanges", total=exchanges)
        for _ in range(0, exchanges, 50):
            demo.run_exchanges(ctx, world, min(50, exchanges - int(progress.tasks[0].completed)), now,
                               seed=int(progress.tasks[0].completed))
            progress.update(task, completed=min(exchanges, progress.tasks[0].completed + 50))
    linked = sum(len(v) for v in world.refs.values())
    console.print(f"[green]{len(world.agencies)} agencies, {linked:,} links, {exchanges:,} exchanges[/green]")
