"""``mynacard portal …``: housekeeping of Mynaportal's resident sessions."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import typer
from rich.console import Console

from mynacard.bootstrap import build_context
from mynacard.portal import service
from mynacard.principal import Principal

app = typer.Typer(help="Mynaportal (マイナポータル).", no_args_is_help=True)
console = Console()
HomeOption = typer.Option(None, "--home", help="Data folder (default $MYNACARD_HOME or ~/.mynacard).")


@app.command("sweep-sessions")
def sweep_sessions(home: Path | None = HomeOption) -> None:
    """Close resident sessions that are idle (15 minutes) or too old (one hour); count the active ones."""
    counts = service.sweep_sessions(build_context(home=home), Principal.system("portal-sweep"), datetime.now(UTC))
    console.print(f"{counts.closed_now:,} sessions closed, {counts.active:,} active")
