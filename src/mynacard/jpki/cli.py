"""``mynacard jpki …``: the CAs from the command line (J-LIS operator's tools)."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table

from mynacard.clock import utc_now
from mynacard.context import Context
from mynacard.errors import DomainError, InvalidInput, NotFound
from mynacard.jpki import service, verifiers
from mynacard.jpki.model import CaKind, Purpose, RevocationReason, VerifierKind, parse_serial
from mynacard.principal import Principal, Role

app = typer.Typer(help="JPKI: the signing and user-authentication CAs, revocation, CRLs, verifiers.",
                  no_args_is_help=True)
console = Console()
HomeOption = typer.Option(None, "--home", help="Data folder (default $MYNACARD_HOME or ~/.mynacard).")
OPERATOR = Principal(Role.OPERATOR, "cli")


def _ctx(home: Path | None) -> Context:
    from mynacard.bootstrap import build_context

    return build_context(home=home)


def _fail(exc: Exception) -> typer.Exit:
    console.print(f"[red]{exc}[/red]")
    return typer.Exit(1)


def _refuse(exc: Exception) -> typer.Exit:
    """Refused before anything was done (exit 2), e.g. before ``mynacard jpki init``."""
    console.print(f"[red]{exc}[/red]")
    return typer.Exit(2)


@app.command()
def init(home: Path | None = HomeOption) -> None:
    """Create both CAs if they do not exist yet (keys sealed, or in the PKCS#11 token when configured)."""
    ctx = _ctx(home)
    for kind, authority in service.ensure_authorities(ctx, OPERATOR, utc_now()).items():
        console.print(f"{kind.label_ja} G{authority.generation} ({authority.key_store}) "
                      f"SHA-256 {authority.fingerprint_sha256}")


@app.command()
def status(home: Path | None = HomeOption) -> None:
    """CA generations, CRL numbers and certificate counts."""
    ctx = _ctx(home)
    table = Table(title="JPKI certificate authorities")
    for column in ("CA", "generation", "valid until", "key", "last CRL", "revocations", "fingerprint"):
        table.add_column(column)
    for a in service.authorities(ctx):
        table.add_row(a.kind.value, f"G{a.generation}{'' if a.retired_at is None else ' (retired)'}",
                      f"{a.not_after:%Y-%m-%d}", a.key_store, str(a.last_crl_number), str(a.revocation_counter),
                      a.fingerprint_sha256[:16] + "…")
    console.print(table)
    for kind, counts in service.statistics(ctx).items():
        console.print(f"{kind}: {counts['good']:,} good, {counts['revoked']:,} revoked")


def _parse_serial(text: str) -> int:
    try:
        return parse_serial(text)
    except InvalidInput:
        raise typer.BadParameter("a serial number in hexadecimal, as openssl prints it") from None
    except NotFound:
        raise typer.BadParameter("out of range: no certificate has a serial of 0 or over 63 bits") from None


@app.command()
def revoke(serial: str = typer.Argument(..., help="Serial number (hexadecimal, as `openssl x509 -serial`)."),
           reason: str = typer.Option(..., "--reason", help="keyCompromise, affiliationChanged, superseded, "
                                      "cessationOfOperation, certificateHold, unspecified, cACompromise"),
           detail: str | None = typer.Option(None, "--detail", help="Why, for the certificate's history."),
           home: Path | None = HomeOption) -> None:
    """Revoke a certificate: visible in OCSP within a second and in the next (delta) CRL."""
    try:
        parsed = RevocationReason.parse(reason)
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from None
    ctx = _ctx(home)
    try:
        view = service.revoke_certificate(ctx, OPERATOR, _parse_serial(serial), parsed, utc_now(), detail)
    except DomainError as exc:
        raise _fail(exc) from None
    console.print(f"[green]{view.kind.value} certificate {view.serial_hex}: {view.status.value}[/green] "
                  f"({view.revocation_reason.value if view.revocation_reason else ''}, "
                  f"{view.revoked_at:%Y-%m-%d %H:%M:%S}Z)")


@app.command()
def crl(force: bool = typer.Option(False, "--force", help="Publish new full and delta CRLs now."),
        home: Path | None = HomeOption) -> None:
    """Publish the CRLs that are due (run it from cron; the web app also does it every 30 s)."""
    ctx = _ctx(home)
    if not service.authorities_exist(ctx):
        raise _refuse(service.AuthoritiesMissing())
    for info in service.publish_crls(ctx, OPERATOR, utc_now(), force=force):
        console.print(f"{info.kind.value} G{info.generation} {'delta' if info.is_delta else 'full'} CRL "
                      f"#{info.number}: {info.entry_count:,} entries, next update {info.next_update:%Y-%m-%d %H:%M}Z")


@app.command("ocsp-refresh")
def ocsp_refresh(limit: int = typer.Option(100000, "--limit"), home: Path | None = HomeOption) -> None:
    """Pre-sign OCSP responses for certificates that have none or whose answer is half-way through its life."""
    ctx = _ctx(home)
    console.print(f"{service.refresh_ocsp_responses(ctx, OPERATOR, utc_now(), limit):,} responses signed")


@app.command("ocsp-serve")
def ocsp_serve(host: str = typer.Option("127.0.0.1", "--host"), port: int = typer.Option(8001, "--port"),
               threads: int = typer.Option(4, "--threads", help="Threads for look-ups and signing."),
               workers: int = typer.Option(1, "--workers", min=1,
                                           help="Responder processes sharing the port (SO_REUSEPORT)."),
               home: Path | None = HomeOption) -> None:
    """Run the OCSP responder as a server of its own (POST /jpki/ocsp, GET /jpki/ocsp/{base64})."""
    from mynacard.jpki.ocsp_server import serve

    ctx = _ctx(home)
    if not service.authorities_exist(ctx):  # the responder serves the CAs; it does not create them
        raise _refuse(service.AuthoritiesMissing())
    console.print(f"[green]OCSP responder on http://{host}:{port}/jpki/ocsp[/green]")
    serve(ctx, host, port, threads, workers)


@app.command()
def rollover(kind: str = typer.Argument(..., help="sign or auth"), home: Path | None = HomeOption) -> None:
    """Start a new CA generation (new key and root, link certificates both ways)."""
    try:
        ca_kind = CaKind(kind)
    except ValueError:
        raise typer.BadParameter("sign or auth") from None
    try:
        authority = service.rollover(_ctx(home), OPERATOR, ca_kind, utc_now())
    except service.AuthoritiesMissing as exc:
        raise _refuse(exc) from None
    console.print(f"{ca_kind.label_ja} G{authority.generation}: SHA-256 {authority.fingerprint_sha256}")


@app.command("verifier-add")
def verifier_add(name: str = typer.Argument(...), username: str = typer.Option(..., "--username"),
                 kind: str = typer.Option("certified_private", "--kind",
                                          help=", ".join(k.value for k in VerifierKind)),
                 purpose: list[str] = typer.Option(["signature"], "--purpose", help="signature, authentication"),
                 home: Path | None = HomeOption) -> None:
    """Register a verifier and print its API key (shown once)."""
    ctx = _ctx(home)
    try:
        verifier, key = verifiers.register_verifier(ctx, OPERATOR, name, kind, [Purpose(p) for p in purpose],
                                                    username, utc_now())
    except (DomainError, ValueError) as exc:
        raise _fail(exc) from None
    console.print(f"verifier {verifier.id} {verifier.name} ({verifier.kind.value}: "
                  f"{', '.join(sorted(p.value for p in verifier.purposes))})")
    console.print(f"API key: {key}")


@app.command("verifiers")
def verifier_list(home: Path | None = HomeOption) -> None:
    """Registered verifiers."""
    table = Table(title="verifiers")
    for column in ("id", "name", "kind", "purposes", "account", "state"):
        table.add_column(column)
    for v in verifiers.list_verifiers(_ctx(home), OPERATOR):
        table.add_row(str(v.id), v.name, v.kind.value, ", ".join(sorted(p.value for p in v.purposes)), v.username,
                      "active" if v.active else "suspended")
    console.print(table)


@app.command()
def show(serial: str = typer.Argument(...), home: Path | None = HomeOption) -> None:
    """A certificate's state, lineage and history."""
    ctx = _ctx(home)
    number = _parse_serial(serial)
    try:
        chain = service.lineage(ctx, OPERATOR, number)
        events = service.certificate_events(ctx, OPERATOR, number)
    except DomainError as exc:
        raise _fail(exc) from None
    for v in chain:
        marker = "→" if v.serial == number else " "
        console.print(f"{marker} {v.kind.value} {v.serial_hex} G{v.generation} {v.status.value}"
                      f"{' ' + v.revocation_reason.value if v.revocation_reason else ''} "
                      f"until {v.not_after:%Y-%m-%d} (card {v.card_serial})")
    for e in events:
        console.print(f"  {e['at']:%Y-%m-%d %H:%M:%S} {e['from_status'] or '—'} → {e['to_status']} "
                      f"{e['reason'] or ''} by {e['actor']}: {e['detail'] or ''}")
