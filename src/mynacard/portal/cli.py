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
    """Close resident sessions that are idle (15 minutes) or too old (one hour); count the active ones; delete
    the login page's expired challenges."""
    counts = service.sweep_sessions(build_context(home=home), Principal.system("portal-sweep"), datetime.now(UTC))
    console.print(f"{counts.closed_now:,} sessions closed, {counts.active:,} active, "
                  f"{counts.challenges_purged:,} expired login challenges deleted")


@app.command("answer")
def answer(
    challenge: str = typer.Option(..., "--challenge", help="The login page's challenge (Base64)."),
    card: Path | None = typer.Option(None, "--card", help="A card file (or --reader)."),
    reader: str | None = typer.Option(None, "--reader", "-r", help="A PC/SC reader (its name or a part of it)."),
    pin: str = typer.Option(..., "--pin", prompt="利用者証明用暗証番号 (4 digits)", hide_input=True),
    home: Path | None = HomeOption,
) -> None:
    """What card reader software does for the login page: print the card's authentication certificate and its
    signature over the challenge (both Base64) to paste into /portal/login. The chip checks the PIN."""
    import base64
    import binascii

    from cryptography.hazmat.primitives import serialization

    from mynacard.chip.cardfile import CardFile
    from mynacard.chip.client import CardClient
    from mynacard.chip.model import KeyKind
    from mynacard.chip.transport import InProcessTransport, PcscTransport
    from mynacard.config import load_settings
    from mynacard.errors import DomainError

    if (card is None) == (reader is None):
        raise typer.BadParameter("give a card file or --reader, not both")

    def sign(client: CardClient, nonce: bytes) -> tuple[bytes, bytes]:
        return (client.read_auth_certificate().public_bytes(serialization.Encoding.DER),
                client.sign_message(KeyKind.AUTH, pin, nonce))

    try:
        nonce = base64.b64decode(challenge, validate=True)
        if card is not None:
            with CardFile(card, load_settings(home=home).data_key, wait=2.0) as chip:
                certificate, signature = sign(CardClient(InProcessTransport(chip)), nonce)
        else:
            with PcscTransport(reader or None) as transport:
                certificate, signature = sign(CardClient(transport), nonce)
    except binascii.Error:
        raise typer.BadParameter("--challenge is not Base64") from None
    except DomainError as exc:
        console.print(f"[red]{exc}[/red]")
        raise typer.Exit(1) from None
    typer.echo(f"certificate: {base64.b64encode(certificate).decode()}")
    typer.echo(f"signature: {base64.b64encode(signature).decode()}")
