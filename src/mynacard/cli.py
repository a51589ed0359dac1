"""The ``mynacard`` command (Typer). Each part with commands of its own adds a sub-app here.

Bad input never ends in a traceback: :class:`RefusingGroup`, the root of every command and sub-command,
turns a refusal into one line on standard error and exit code 2 (see :func:`refusal_message`); Typer's own
checks of option types and bounds (``min=``/``max=`` on counts, days, ids and ports) do the same before a
command starts. Anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

import os
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import typer
from rich.console import Console
from rich.table import Table
from sqlalchemy import text
from typer.core import TyperGroup

from mynacard.accounts.cli import app as accounts_app
from mynacard.bootstrap import build_context
from mynacard.chip.cli import app as card_app
from mynacard.clock import utc_now
from mynacard.context import Context
from mynacard.errors import DomainError, InvalidInput
from mynacard.exchange.cli import app as exchange_app
from mynacard.jobs import cli as jobs_cli
from mynacard.jpki import cli as jpki_cli
from mynacard.kiosk.cli import app as kiosk_app
from mynacard.mykey.cli import app as mykey_app
from mynacard.office import cli as office_cli
from mynacard.plans.cli import app as plans_app
from mynacard.portal.cli import app as portal_app
from mynacard.window import cli as window_cli

REFUSALS: tuple[type[BaseException], ...] = (
    DomainError,  # InvalidInput, NotFound, Forbidden, Conflict: refused by a service, nothing changed
    ValueError,  # a value that does not parse: an impossible date, an unknown name of an enum
    OverflowError,  # a number too large for the database or the clock
    FileNotFoundError, FileExistsError, IsADirectoryError, NotADirectoryError,  # a path given on the line
)
"""What ends a command as refused input (exit 2) rather than as a bug (a traceback)."""

MAX_ID = 2**63 - 1
"""The largest identifier the database holds (BIGINT): an id option or argument is bounded by it."""


def refusal_message(exc: BaseException) -> str:
    """One line saying why the command was refused (domain messages are safe to show, errors.py)."""
    if isinstance(exc, DomainError):
        message = f"{type(exc).__name__}: {exc}"
        if isinstance(exc, InvalidInput) and exc.problems != [str(exc)]:
            shown = exc.problems[:5]
            more = f" … and {len(exc.problems) - 5} more" if len(exc.problems) > 5 else ""
            message += " — " + "; ".join(shown) + more
    elif isinstance(exc, OverflowError):
        message = f"invalid value: a number is out of range ({exc})"
    elif isinstance(exc, OSError):
        message = f"{exc.strerror or type(exc).__name__}: {exc.filename}"
    else:
        message = f"invalid value: {exc}"
    return " ".join(message.split())


class RefusingGroup(TyperGroup):
    """The root command group: a refusal (:data:`REFUSALS`) raised by any command below it prints
    :func:`refusal_message` on standard error and exits with code 2. The services refuse before they write (each
    change is one transaction), and the commands parse and check their input before calling them, so a refused
    command has written nothing."""

    def invoke(self, ctx: Any) -> Any:  # typer's (vendored) click Context
        try:
            return super().invoke(ctx)
        except REFUSALS as exc:
            typer.echo(f"mynacard: {refusal_message(exc)}", err=True)
            raise typer.Exit(2) from None


def parse_day(value: str | None, option: str) -> date | None:
    """A day given as YYYY-MM-DD, or a usage error (exit 2) naming the option."""
    if value is None:
        return None
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise typer.BadParameter(f"{option}: {value!r} is not a day (YYYY-MM-DD)") from None


app = typer.Typer(help="mynacard — the My Number Card programme, end to end.", no_args_is_help=True,
                  cls=RefusingGroup)
db_app = typer.Typer(help="Database schema.", no_args_is_help=True)
app.add_typer(db_app, name="db")
app.add_typer(accounts_app, name="accounts")
app.add_typer(card_app, name="card")
app.add_typer(exchange_app, name="exchange")
app.add_typer(portal_app, name="portal")
app.add_typer(kiosk_app, name="kiosk")
app.add_typer(plans_app, name="plans")
app.add_typer(jpki_cli.app, name="jpki")
app.add_typer(mykey_app, name="mykey")
app.add_typer(office_cli.app, name="office")
app.add_typer(window_cli.app, name="window")
app.add_typer(jobs_cli.app, name="jobs")
app.command("worker")(jobs_cli.worker)
console = Console()

HomeOption = typer.Option(None, "--home", help="Data folder (default $MYNACARD_HOME or ~/.mynacard).")
PortOption = typer.Option(8000, "--port", min=1, max=65535)
MAX_RESIDENTS = 5_000_000
"""More residents than the largest municipality has (Yokohama: 3.8 million)."""
MAX_DAYS = 3660
"""Ten years of simulated days."""


def _context(home: Path | None) -> Context:
    return build_context(home=home)


@db_app.command("upgrade")
def db_upgrade(home: Path | None = HomeOption) -> None:
    """Create or migrate the schema to the newest revision."""
    from mynacard.migrate import upgrade

    ctx = _context(home)
    upgrade(ctx.db)
    console.print(f"[green]schema up to date[/green] ({ctx.db.url.render_as_string(hide_password=True)})")


@app.command()
def seed(
    municipality: list[str] = typer.Option(["131016"], "--municipality", "-m",
                                           help="Local government code(s) to populate."),
    residents: int = typer.Option(2000, "--residents", "-n", min=1, max=MAX_RESIDENTS,
                                  help="Residents per municipality."),
    seed_value: int = typer.Option(2016, "--seed", help="Random seed (same seed, same town)."),
    home: Path | None = HomeOption,
) -> None:
    """Populate municipalities with synthetic residents and their application forms."""
    from mynacard.registry import service as registry
    from mynacard.sim.population import seed_population

    ctx = _context(home)
    for code in municipality:  # every town known before the first is populated
        registry.get_municipality(ctx, code)
    total = seed_population(ctx, municipality, residents, seed=seed_value, now=utc_now(), console=console)
    console.print(f"[green]{total:,} residents registered[/green]")


@app.command()
def simulate(
    days: int = typer.Option(21, "--days", min=1, max=MAX_DAYS, help="Days to simulate."),
    start: str | None = typer.Option(None, "--start",
                                     help="First day (YYYY-MM-DD); default: the day after the last activity."),
    seed_value: int = typer.Option(2016, "--seed"),
    home: Path | None = HomeOption,
) -> None:
    """Drive applications, production, shipping and receipt day by day through the services."""
    from mynacard.cards.service import last_activity
    from mynacard.sim.driver import simulate_days

    given = parse_day(start, "--start")
    ctx = _context(home)
    last = last_activity(ctx)
    first = given or (last.date() + timedelta(days=1) if last else utc_now().date())
    simulate_days(ctx, first, days, seed=seed_value, console=console)


def _print_key_sources(ctx: Context) -> None:
    """Which keys are read from files in the home rather than supplied by the environment."""
    from_files = ctx.settings.keys_from_files
    if not from_files:
        console.print("[green]keys[/green]: all from the environment")
        return
    from rich.markup import escape

    listed = ", ".join(f"{env} ← {escape(str(path))}" for env, path in from_files)
    console.print(f"[yellow]keys from files[/yellow] (production supplies them from its secret store): {listed}",
                  soft_wrap=True)


@app.command()
def status(home: Path | None = HomeOption) -> None:
    """Cards by state per municipality, which keys come from files rather than the environment, and whether
    state and history agree (the check is kept: the first page shows its last result and when it ran — run
    this nightly)."""
    from mynacard.cards import service as cards
    from mynacard.cards.model import CardState
    from mynacard.principal import Principal
    from mynacard.registry import service as registry

    ctx = _context(home)
    counts = cards.counts_by_municipality_and_state(ctx, Principal.system())
    names = {m.code: m.full_name for m in registry.list_municipalities(ctx)}
    present = {s for by_state in counts.values() for s in by_state}
    states = [s.value for s in CardState if s.value in present]
    table = Table(title="cards by state")
    table.add_column("municipality", no_wrap=True)
    for s in states:
        table.add_column(s, justify="right")
    for code, by_state in sorted(counts.items()):
        table.add_row(f"{code} {names.get(code, '')}", *(f"{by_state.get(s, 0):,}" for s in states))
    if not counts:
        console.print("no cards yet")
    console.print(table)
    _print_key_sources(ctx)
    report, _ = cards.check_ledger(ctx, Principal.system("mynacard-status"), utc_now())  # kept for the first page
    colour = "green" if report.ok else "red"
    console.print(f"[{colour}]ledger {'whole' if report.ok else 'BROKEN'}[/{colour}]: "
                  f"{report.cards:,} cards, {report.events:,} events")
    if not report.ok:
        raise typer.Exit(1)


@app.command()
def serve(home: Path | None = HomeOption, host: str = "127.0.0.1", port: int = PortOption) -> None:
    """Serve the web app."""
    import uvicorn

    from mynacard.web.app import create_app

    uvicorn.run(create_app(_context(home)), host=host, port=port, log_level="info")


@app.command()
def demo(
    home: Path | None = typer.Option(None, "--home",
                                     help="Data folder (default $MYNACARD_HOME or ~/.mynacard, as every command)."),
    days: int = typer.Option(28, "--days", min=1, max=MAX_DAYS, help="Weeks of issuance to simulate first, in days."),
    residents: int = typer.Option(3000, "--residents", min=1, max=MAX_RESIDENTS),
    host: str = "127.0.0.1",
    port: int = PortOption,
    serve_after: bool = typer.Option(True, "--serve/--no-serve"),
    chip_cards: int = typer.Option(40, "--chip-cards", min=0, max=100_000,
                                   help="The first cards made get real chips (JPKI)."),
) -> None:
    """A seeded town on SQLite, a few simulated weeks of the issuance flow, and the web app."""
    from mynacard.clock import local_date
    from mynacard.config import default_home
    from mynacard.installation import is_demo, mark_demo, save_demo_cards
    from mynacard.migrate import upgrade
    from mynacard.sim.driver import simulate_days
    from mynacard.sim.population import seed_population

    root = home or default_home()
    ctx = build_context(home=root, database_url=f"sqlite:///{root.resolve() / 'mynacard.db'}")
    upgrade(ctx.db)
    with ctx.db.connect() as conn:
        fresh = conn.execute(text("SELECT count(*) FROM accounts")).scalar_one() == 0 and not is_demo(conn)
        if not fresh and not is_demo(conn):
            console.print(f"[red]{root} holds a real installation[/red]: a demo needs a home of its own "
                          "(--home DIR)")
            raise typer.Exit(2)
    if fresh:
        with ctx.transaction() as tx:
            conn = tx.conn
            mark_demo(conn, utc_now())
        start = local_date(utc_now()) - timedelta(days=days)  # the simulated weeks end yesterday in Japan
        seed_population(ctx, ["131016", "011002"], residents, seed=2016,
                        now=datetime.combine(start - timedelta(days=1), datetime.min.time(), UTC), console=console)
        from mynacard.sim.driver import SimulationRates

        simulate_days(ctx, start, days, seed=2016, console=console, rates=SimulationRates(chip_cards=chip_cards))
        from mynacard.plans.demo import prepare_demo

        prepare_demo(ctx, start, days, console=console)
        from mynacard.portal.demo import DEMO_PIN, prepare_portal_demo

        with console.status("exchange network, kiosks and demo cards"):
            demo_cards = prepare_portal_demo(ctx, ["131016", "011002"], utc_now())
        with ctx.transaction() as tx:
            conn = tx.conn
            save_demo_cards(conn, [{"serial": c.serial, "name": c.name, "pin": DEMO_PIN} for c in demo_cards],
                            utc_now())
        for card in demo_cards:
            console.print(f"demo card {card.serial} ({card.name}), PIN {DEMO_PIN}: Mynaportal → /portal/login")
        from mynacard.accounts.demo import create_demo_accounts

        create_demo_accounts(ctx, ["131016", "011002"], utc_now())
        from mynacard.cards.service import check_ledger
        from mynacard.principal import Principal

        check_ledger(ctx, Principal.system("demo"), utc_now())  # the first page shows the last check
    else:
        console.print(f"[yellow]reusing the demo database in {root}[/yellow] (delete it for a fresh town)")
    from mynacard.accounts.demo import print_demo_logins

    print_demo_logins(ctx, console)
    if home is not None or os.environ.get("MYNACARD_DATABASE_URL"):
        url = f" MYNACARD_DATABASE_URL={ctx.settings.database_url}" if os.environ.get("MYNACARD_DATABASE_URL") else ""
        console.print(f"other commands act on this demo after: [bold]export MYNACARD_HOME={root.resolve()}{url}[/bold]")
    if serve_after:
        import uvicorn

        from mynacard.web.app import create_app

        console.print(f"[bold green]mynacard is running on http://{host}:{port}[/bold green]")
        uvicorn.run(create_app(ctx), host=host, port=port, log_level="warning")


def main() -> None:
    app()


if __name__ == "__main__":
    main()
