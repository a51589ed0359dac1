"""``mynacard kiosk …``: set up convenience-store issuance, run the whole flow from the command line, serve
the centre (several worker processes) and a kiosk's touch screen, check the audit trail."""

from __future__ import annotations

from collections.abc import Callable
from datetime import date, datetime
from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table

from mynacard.bootstrap import build_context
from mynacard.context import Context
from mynacard.kiosk.auth import KioskCard
from mynacard.kiosk.model import DocumentKind, DocumentOptions, Offering, RefusalReason, Refused

app = typer.Typer(help="Convenience-store issuance (コンビニ交付): centre, municipal servers, kiosks.",
                  no_args_is_help=True)
console = Console()
HomeOption = typer.Option(None, "--home", help="Data folder (default $MYNACARD_HOME or ~/.mynacard).")


def _context(home: Path | None) -> Context:
    return build_context(home=home)


def _refuse(message: object) -> typer.Exit:
    """Refused before anything was written: the reason, exit 2."""
    console.print(f"[red]{message}[/red]")
    return typer.Exit(2)


def _clock(ctx: Context) -> Callable[[], datetime]:
    """The kiosk clock (``MYNACARD_KIOSK_CLOCK`` only in a demo installation; refused elsewhere)."""
    from mynacard.errors import InvalidInput
    from mynacard.kiosk.demo_guard import DemoOnly
    from mynacard.kiosk.service import clock_from_env

    try:
        return clock_from_env(ctx)
    except (DemoOnly, InvalidInput) as exc:
        raise _refuse(exc) from None


def _now(ctx: Context) -> datetime:
    return _clock(ctx)()


def asgi_app() -> object:
    """The web app built from the environment, for ``uvicorn --factory`` with several worker processes."""
    from mynacard.web.app import create_app

    return create_app(build_context())


@app.command()
def setup(
    municipality: list[str] = typer.Option(..., "--municipality", "-m", help="Local government code(s)."),
    fee: list[str] = typer.Option([], "--fee", help="KIND=YEN, e.g. juminhyo=200 (default: every document at "
                                                   "the usual fee)."),
    only: list[str] = typer.Option([], "--only", help="Offer only these documents (juminhyo, kisai, inkan, "
                                                     "shotoku, koseki_zenbu, koseki_kojin, fuhyo)."),
    records: bool = typer.Option(True, "--records/--no-records",
                                 help="Also seed synthetic municipal records (a demo installation only: a real "
                                      "one refuses them; give --no-records)."),
    home: Path | None = HomeOption,
) -> None:
    """Join municipalities to the kiosk service (offerings, fees, a document-signing key)."""
    from mynacard.kiosk import demo, municipal
    from mynacard.kiosk.demo_guard import is_demo_installation
    from mynacard.kiosk.model import DEFAULT_FEES
    from mynacard.principal import Principal

    ctx = _context(home)
    fees = dict(DEFAULT_FEES)
    for item in fee:
        kind, _, yen = item.partition("=")
        if kind not in fees or not yen.isdigit():
            raise typer.BadParameter(f"--fee takes KIND=YEN with KIND one of {', '.join(fees)}")
        fees[kind] = int(yen)
    kinds = [DocumentKind(k) for k in only] if only else list(DocumentKind)
    if records and not is_demo_installation(ctx):  # before anything is written
        raise _refuse("synthetic municipal records (family registers, seals, tax records) are invented data for a "
                      "demonstration: this database is not a demo installation (mynacard demo). Run kiosk setup "
                      "with --no-records; a municipality's real records come from its own systems.")
    now = _now(ctx)
    for code in municipality:
        settings = municipal.configure(ctx, Principal.system("cli"), code, now,
                                       offerings=[Offering(k, fees[k.value]) for k in kinds])
        line = ", ".join(f"{k.value} {o.fee_yen}円" for k, o in settings.offerings.items())
        console.print(f"[green]{code} {settings.full_name}[/green]: {line}")
        if records:
            counts = demo.seed_records(ctx, Principal.system("cli"), code, now)
            console.print(f"  records: {counts}")


@app.command()
def closure(
    day: str = typer.Argument(..., help="YYYY-MM-DD"),
    reason: str = typer.Option(..., "--reason"),
    municipality: str | None = typer.Option(None, "--municipality", "-m",
                                            help="One municipality (default: the whole service)."),
    document: str | None = typer.Option(None, "--document", help="Only this document kind."),
    home: Path | None = HomeOption,
) -> None:
    """Record a maintenance day (the whole service, one municipality, or one document there)."""
    from mynacard.kiosk import municipal
    from mynacard.principal import Principal

    ctx = _context(home)
    municipal.add_closure(ctx, Principal.system("cli"), date.fromisoformat(day), reason, _now(ctx),
                          municipality_code=municipality, kind=DocumentKind(document) if document else None)
    console.print(f"[green]closed[/green] {day} {municipality or 'nationwide'} {document or ''}")


@app.command("make-card")
def make_card(
    resident_id: int = typer.Option(..., "--resident-id"),
    pin: str = typer.Option("1234", "--pin", help="利用者証明用暗証番号 (4 digits; also set as the card-info and "
                                                  "residence PINs)."),
    home: Path | None = HomeOption,
) -> None:
    """A chip card (card file) for a registered resident: keys made in the chip, certificates from JPKI. A demo
    installation only (no application, identity check or window step): a real one refuses."""
    from mynacard.errors import DomainError
    from mynacard.kiosk.chip_card import make_resident_card
    from mynacard.kiosk.demo_guard import DemoOnly, is_demo_installation
    from mynacard.principal import Principal

    ctx = _context(home)
    if not is_demo_installation(ctx):
        raise _refuse("kiosk make-card issues a card with good JPKI certificates and a known PIN without any "
                      "application, identity check or window step: it works only in a demo installation "
                      "(mynacard demo), and this database is not one. Real cards are issued at the window.")
    try:
        made = make_resident_card(ctx, Principal.system("kiosk-cli"), resident_id, pin, _now(ctx))
    except DemoOnly as exc:
        raise _refuse(exc) from None
    except DomainError as exc:
        console.print(f"[red]{exc}[/red]")
        raise typer.Exit(1) from None
    console.print(f"[green]card[/green] {made.path} (manufacture number {made.serial})"
                  + ("" if made.created else " — already made; PINs unchanged"))


@app.command()
def issue(
    card: Path = typer.Option(..., "--card", help="Card file."),
    pin: str = typer.Option(..., "--pin"),
    document: str = typer.Option("juminhyo", "--document"),
    out: Path = typer.Option(..., "--out", help="Where to write the PDF."),
    members: str = typer.Option("", "--members", help="住民票: comma-separated resident ids (default: you)."),
    relationship: bool = typer.Option(False, "--relationship", help="住民票: show 世帯主・続柄."),
    domicile: bool = typer.Option(False, "--domicile", help="住民票: show 本籍・筆頭者."),
    with_number: bool = typer.Option(False, "--with-number", help="住民票: show the individual number."),
    copies: int = typer.Option(1, "--copies"),
    centre_url: str | None = typer.Option(None, "--centre", help="Centre URL (default: in process)."),
    api_key: str | None = typer.Option(None, "--api-key", envvar="MYNACARD_KIOSK_API_KEY"),
    kiosk_id: str = typer.Option("cli-kiosk", "--kiosk-id"),
    home: Path | None = HomeOption,
) -> None:
    """Run the whole flow against a card file: PIN, authentication, document, fee, PDF, "print" to --out."""
    from mynacard.kiosk.service import build_centre, public_url
    from mynacard.kiosk.terminal import (
        CentreClient,
        HttpCentreClient,
        KioskTerminal,
        LocalCentreClient,
        SpoolPrinter,
        VirtualReader,
    )

    kiosk_card = _open_card(card, home)
    client: CentreClient
    if centre_url:
        if not api_key:
            raise typer.BadParameter("--api-key (or MYNACARD_KIOSK_API_KEY) is needed with --centre")
        client = HttpCentreClient(centre_url, api_key)
    else:
        ctx = _context(home)
        client = LocalCentreClient(build_centre(ctx, public_url(ctx)), kiosk_id, _clock(ctx))
    spool = out.parent / f".{out.name}.spool"
    terminal = KioskTerminal(kiosk_id, client, VirtualReader(kiosk_card), SpoolPrinter(spool))
    try:
        session = terminal.start()
        menu = terminal.enter_pin(session, pin)
        kind = DocumentKind(document)
        item = menu.item(kind)
        if item is None or item.refusal is not None:
            terminal.cancel(session, "not_offered")
            raise Refused(item.refusal if item is not None and item.refusal else RefusalReason.NOT_OFFERED)
        member_ids = tuple(int(m) for m in members.split(",") if m.strip())
        options = DocumentOptions(kind, member_ids, relationship, domicile, with_number, copies)
        console.print(f"{menu.holder_name} 様 — {kind.label_ja} {item.fee_yen}円 × {copies}")
        result = terminal.order_and_print(session, options, item.fee_yen * copies)
    except Refused as exc:
        console.print(f"[red]refused[/red] ({exc.reason.value}): {exc.reason.message_ja}\n  {exc.reason.message_en}")
        raise typer.Exit(2) from None
    (spool / f"{result.request_id}.pdf").replace(out)
    spool.rmdir()
    console.print(f"[green]printed[/green] {out} — certificate {result.document_id}, request {result.request_id}")


def _open_card(path: Path, home: Path | None) -> KioskCard:
    """A card file (the chip part's sealed card image, under the installation's data key) on this kiosk's
    reader; the card is inserted for each step."""
    from mynacard.chip.cardfile import load_image
    from mynacard.config import load_settings
    from mynacard.errors import DomainError
    from mynacard.kiosk.chip_card import CardFileKioskCard

    key = load_settings(home=home).data_key
    try:
        load_image(path, key)
    except (DomainError, ValueError, KeyError, OSError):
        raise typer.BadParameter(f"{path} is not a card file this installation can open") from None
    return CardFileKioskCard(path, key)


@app.command()
def serve(host: str = "127.0.0.1", port: int = 8000,
          workers: int | None = typer.Option(None, "--workers", min=1,
                                             help="Worker processes (default: one per core)."),
          threads: int | None = typer.Option(None, "--threads", min=1,
                                             help="Requests each worker process runs at once (default: 4).")) -> None:
    """Serve the web app (centre, municipal servers, verification page) with several worker processes, each
    with a listening socket of its own (the kernel spreads the kiosks' connections over them)."""
    from mynacard.web.serve import DEFAULT_THREADS, default_workers
    from mynacard.web.serve import serve as serve_processes

    serve_processes("mynacard.kiosk.cli:asgi_app", host, port, workers or default_workers(),
                    threads or DEFAULT_THREADS)


@app.command()
def terminal(
    centre_url: str = typer.Option(..., "--centre"),
    api_key: str = typer.Option(..., "--api-key", envvar="MYNACARD_KIOSK_API_KEY"),
    card: Path | None = typer.Option(None, "--card", help="Card file on the reader."),
    kiosk_id: str = typer.Option("kiosk-demo", "--kiosk-id"),
    spool: Path = typer.Option(Path("var/kiosk-spool"), "--spool"),
    host: str = "127.0.0.1",
    port: int = 8100,
    home: Path | None = HomeOption,
) -> None:
    """Serve a kiosk's touch screen (the card on --card, prints into --spool)."""
    import uvicorn

    from mynacard.kiosk.terminal import HttpCentreClient, KioskTerminal, SpoolPrinter, VirtualReader
    from mynacard.kiosk.terminal_app import create_terminal_app

    reader = VirtualReader(_open_card(card, home) if card else None)
    kiosk = KioskTerminal(kiosk_id, HttpCentreClient(centre_url, api_key), reader, SpoolPrinter(spool))
    console.print(f"[bold green]kiosk {kiosk_id}[/bold green] on http://{host}:{port} → {centre_url}")
    uvicorn.run(create_terminal_app(kiosk), host=host, port=port, log_level="warning")


@app.command("audit")
def audit_verify(home: Path | None = HomeOption) -> None:
    """Recompute every hash chain of the kiosk audit trail."""
    from mynacard.kiosk.service import verify_audit

    report = verify_audit(_context(home))
    table = Table(title="kiosk audit trail")
    table.add_column("streams", justify="right")
    table.add_column("entries", justify="right")
    table.add_row(f"{report.streams:,}", f"{report.entries:,}")
    console.print(table)
    for problem in report.problems[:20]:
        console.print(f"[red]{problem}[/red]")
    if not report.ok:
        raise typer.Exit(1)
    console.print("[green]every chain is whole[/green]")


@app.command()
def reconcile(home: Path | None = HomeOption) -> None:
    """Abort requests left open past their time and void their documents."""
    from mynacard.kiosk.service import build_centre
    from mynacard.principal import Principal

    ctx = _context(home)
    report = build_centre(ctx, "").reconcile(Principal.system("reconcile"), _now(ctx))
    console.print(report)


@app.command("ca-cert")
def ca_cert(out: Path = typer.Option(..., "--out"), home: Path | None = HomeOption) -> None:
    """Write the document-signing root certificate(s) (PEM) that certificates chain to."""
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization

    from mynacard.kiosk.municipal import trust_roots_der

    pems = [x509.load_der_x509_certificate(d).public_bytes(serialization.Encoding.PEM)
            for d in trust_roots_der(_context(home))]
    out.write_bytes(b"".join(pems))
    console.print(f"[green]{len(pems)} root(s)[/green] → {out}")
