"""``mynacard window …``: the window's batch and audit from the command line — roll back issuances left open
after a crash (run at start-up and nightly), and check that a card, its chip and its certificates agree.

Refusals (an unknown card, a role that may not) end in one line and exit code 2 through the root command
(:class:`mynacard.cli.RefusingGroup`); the options are bounded so that no number reaches the database or the
clock out of range."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import typer
from rich.console import Console

from mynacard.bootstrap import build_context
from mynacard.principal import Principal
from mynacard.window import service

app = typer.Typer(help="The municipal issuance window (窓口交付).", no_args_is_help=True)
console = Console()
HomeOption = typer.Option(None, "--home", help="Data folder (default $MYNACARD_HOME or ~/.mynacard).")
_SYSTEM = Principal.system("window-cli")
MAX_ID = 2**63 - 1
"""The largest card id the database holds (BIGINT)."""


@app.command()
def recover(minutes: int = typer.Option(30, "--older-than", min=0, max=525_600,
                                        help="Minutes an issuance may stay open (at most a year)."),
            home: Path | None = HomeOption) -> None:
    """Roll back window issuances left open (the chip gets its pre-issuance image back)."""
    ctx = build_context(home=home)
    done = service.recover(ctx, _SYSTEM, datetime.now(UTC), timedelta(minutes=minutes))
    console.print(f"rolled back: {len(done)} {done[:20]}")


@app.command()
def check(card_id: int = typer.Argument(..., min=1, max=MAX_ID, help="The card's id."),
          home: Path | None = HomeOption) -> None:
    """Card state, issuance record, chip PINs and certificates: do they agree?"""
    ctx = build_context(home=home)
    problems = service.check_consistency(ctx, card_id)
    if problems:
        for p in problems:
            console.print(f"[red]✗[/red] {p}")
        raise typer.Exit(1)
    console.print(f"card {card_id}: consistent")
