"""``mynacard window …``: the window's batch and audit from the command line — roll back issuances left open
after a crash (run at start-up and nightly), and check that a card, its chip and its certificates agree."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import typer
from rich.console import Console

from mynacard.bootstrap import build_context
from mynacard.errors import DomainError
from mynacard.principal import Principal
from mynacard.window import service

app = typer.Typer(help="The municipal issuance window (窓口交付).", no_args_is_help=True)
console = Console()
HomeOption = typer.Option(None, "--home", help="Data folder (default $MYNACARD_HOME or ~/.mynacard).")
_SYSTEM = Principal.system("window-cli")


@app.command()
def recover(minutes: int = typer.Option(30, "--older-than", help="Minutes an issuance may stay open."),
            home: Path | None = HomeOption) -> None:
    """Roll back window issuances left open (the chip gets its pre-issuance image back)."""
    ctx = build_context(home=home)
    try:
        done = service.recover(ctx, _SYSTEM, datetime.now(UTC), timedelta(minutes=minutes))
    except DomainError as exc:
        console.print(f"[red]{type(exc).__name__}[/red]: {exc}")
        raise typer.Exit(2) from None
    console.print(f"rolled back: {len(done)} {done[:20]}")


@app.command()
def check(card_id: int = typer.Argument(..., help="The card's id."), home: Path | None = HomeOption) -> None:
    """Card state, issuance record, chip PINs and certificates: do they agree?"""
    ctx = build_context(home=home)
    try:
        problems = service.check_consistency(ctx, card_id)
    except DomainError as exc:
        console.print(f"[red]{type(exc).__name__}[/red]: {exc}")
        raise typer.Exit(2) from None
    if problems:
        for p in problems:
            console.print(f"[red]✗[/red] {p}")
        raise typer.Exit(1)
    console.print(f"card {card_id}: consistent")
