"""``mynacard mykey …``: the ledger check, and the shelter terminal's queue (sync when the network is back)."""

from __future__ import annotations

import os
from pathlib import Path

import typer
from rich.console import Console

from mynacard.bootstrap import build_context
from mynacard.mykey import points
from mynacard.mykey.shelter_client import HttpUplink, ShelterClient

app = typer.Typer(help="MyKey platform, municipal points, shelter check-in.", no_args_is_help=True)
console = Console()

HomeOption = typer.Option(None, "--home", help="Data folder (default $MYNACARD_HOME or ~/.mynacard).")


@app.command("verify-ledger")
def verify_ledger(home: Path | None = HomeOption) -> None:
    """Check the point ledger: every posting balances, balances match entries, nobody below zero."""
    check = points.verify_ledger(build_context(home=home))
    console.print(f"{check.transactions} transactions, {check.entries} entries, total {check.total}")
    if not check.ok:
        console.print(f"[red]unbalanced transactions {list(check.unbalanced_transactions)[:20]}, "
                      f"accounts out of step {list(check.accounts_out_of_step)[:20]}, "
                      f"overdrawn {list(check.overdrawn_accounts)[:20]}[/red]")
        raise typer.Exit(1)
    console.print("[green]the ledger balances[/green]")


@app.command("shelter-sync")
def shelter_sync(queue: Path = typer.Option(..., help="The shelter terminal's local queue (SQLite file)."),
                 shelter: str = typer.Option(..., help="Shelter code."),
                 url: str = typer.Option(..., help="The municipality's server, e.g. https://bousai.example.jp"),
                 api_key: str | None = typer.Option(None, help="The terminal's API key (or $MYNACARD_API_KEY).")
                 ) -> None:
    """Send the queued touches; safe to run again and again (touch ids make repeats harmless)."""
    key = api_key or os.environ.get("MYNACARD_API_KEY")
    if not key:
        raise typer.BadParameter("an API key is needed (--api-key or $MYNACARD_API_KEY)")
    client = ShelterClient(queue, shelter, HttpUplink(url, key))
    report = client.sync()
    console.print(f"sent {report.sent}: {report.accepted} new, {report.duplicates} already there, "
                  f"{report.refused} refused; {report.pending} still queued")
    for touch_id, why in client.refused().items():
        console.print(f"  refused {touch_id}: {why}")
    if report.network_down:
        console.print("[yellow]the municipality could not be reached; the touches stay queued[/yellow]")
        raise typer.Exit(2)
