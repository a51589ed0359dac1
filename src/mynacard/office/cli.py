"""``mynacard office …``: the municipal office's batches from the command line — receipt checks, the
off-peak setup batch, staged notices, destruction of uncollected cards — and a notice postcard as PDF."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import typer
from rich.console import Console

from mynacard.bootstrap import build_context
from mynacard.context import Context
from mynacard.errors import DomainError
from mynacard.office import pdf, service
from mynacard.office.chipcheck import chip_file_inspector
from mynacard.principal import Principal, Role
from mynacard.registry import service as registry

app = typer.Typer(help="The municipal issuance office (交付窓口).", no_args_is_help=True)
console = Console()
HomeOption = typer.Option(None, "--home", help="Data folder (default $MYNACARD_HOME or ~/.mynacard).")
CodeOption = typer.Option(..., "--municipality", "-m", help="Local government code.")


def _who(ctx: Context, code: str) -> Principal:
    """The municipality's supervisor; an unknown municipality is refused (NotFound) before anything runs."""
    registry.get_municipality(ctx, code)
    return Principal(Role.SUPERVISOR, f"cli-supervisor-{code}", code)


def _run(action: str, fn: Callable[[], object]) -> None:
    try:
        result = fn()
    except DomainError as exc:
        console.print(f"[red]{type(exc).__name__}[/red]: {exc}")
        raise typer.Exit(2) from None
    console.print(f"{action}: {result}")


@app.command()
def check(municipality: str = CodeOption, home: Path | None = HomeOption) -> None:
    """Receipt checks of received cards: printed face against the registry, then the chip file if any."""
    ctx = build_context(home=home)

    def run() -> str:
        r = service.check_received_cards(ctx, _who(ctx, municipality), municipality, datetime.now(UTC),
                                         chip=chip_file_inspector(ctx))
        return f"{len(r.passed)} passed, {len(r.defective)} defective, {r.chips_read} chips read"

    _run("checked", run)


@app.command()
def setup(municipality: str = CodeOption, home: Path | None = HomeOption) -> None:
    """One off-peak run of the pre-issuance setup (交付前設定)."""
    ctx = build_context(home=home)
    _run("set up", lambda: service.run_pre_issuance_setup(ctx, _who(ctx, municipality), municipality,
                                                          datetime.now(UTC)))


@app.command()
def notices(municipality: str = CodeOption, home: Path | None = HomeOption) -> None:
    """Send the notices the windows can serve within the booking horizon (staged mailing)."""
    ctx = build_context(home=home)
    _run("notices sent", lambda: len(service.send_notices(ctx, _who(ctx, municipality), municipality,
                                                          datetime.now(UTC))))


@app.command()
def destroy(municipality: str = CodeOption, home: Path | None = HomeOption) -> None:
    """Destroy uncollected cards past their deadline and retention period (廃棄)."""
    ctx = build_context(home=home)
    _run("destroyed", lambda: len(service.destroy_uncollected(ctx, _who(ctx, municipality), municipality,
                                                              datetime.now(UTC))))


@app.command("notice-pdf")
def notice_pdf(number: str, out: Path = typer.Option(..., "--out"), municipality: str = CodeOption,
               base_url: str = typer.Option("http://127.0.0.1:8000", "--base-url"),
               home: Path | None = HomeOption) -> None:
    """Write a notice postcard (交付通知書) as PDF."""
    ctx = build_context(home=home)
    try:
        notice = service.notice_for_print(ctx, _who(ctx, municipality), number)
    except DomainError as exc:
        console.print(f"[red]{type(exc).__name__}[/red]: {exc}")
        raise typer.Exit(2) from None
    out.write_bytes(pdf.notice_pdf(notice, base_url))
    console.print(f"wrote {out}")
