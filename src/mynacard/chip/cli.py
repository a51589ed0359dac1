"""``mynacard card …``: make a demo card, put it in the vpcd reader, read and use a card (file or reader).

A card is either a card file (the plastic card, sealed with the data key of ``MYNACARD_HOME`` or
``--key-file``) or a card in a PC/SC reader (``--reader``; a real My Number Card works too). PINs given as
options are for scripts and tests; without them the command asks, hiding the input.
"""

from __future__ import annotations

import base64
import csv
import hashlib
import os
import random
import secrets
import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from datetime import date, timedelta
from importlib.resources import files
from pathlib import Path
from typing import Any

import typer
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from rich.console import Console
from rich.table import Table

from mynacard.chip.client import CardClient, NotOnCard
from mynacard.chip.model import KeyKind, PinKind
from mynacard.clock import utc_now
from mynacard.errors import DomainError, InvalidInput

__all__ = ["app"]

app = typer.Typer(help="The IC card: demo cards, the vpcd reader, and reading a card (file or PC/SC).",
                  no_args_is_help=True)
console = Console()

HomeOption = typer.Option(None, "--home", help="Data folder (default $MYNACARD_HOME or ~/.mynacard).")
KeyFileOption = typer.Option(None, "--key-file",
                             help="File with the card file's base64 32-byte key (default: the data key).")
ReaderOption = typer.Option(None, "--reader", "-r",
                            help="Use the card in this PC/SC reader (its name or a part of it).")
CardArgument = typer.Argument(None, help="Card file (omit with --reader).")


def _key(home: Path | None, key_file: Path | None) -> bytes:
    if key_file is not None:
        key = base64.b64decode(key_file.read_text().strip())
        if len(key) != 32:
            raise InvalidInput("the key file must hold 32 bytes in base64")
        return key
    from mynacard.config import load_settings

    return load_settings(home=home).data_key


@contextmanager
def _client(card: Path | None, reader: str | None, home: Path | None,
            key_file: Path | None) -> Iterator[CardClient]:
    from mynacard.chip.cardfile import CardFile
    from mynacard.chip.transport import InProcessTransport, PcscTransport

    if (card is None) == (reader is None):
        raise InvalidInput("give a card file or --reader, not both")
    if reader is not None:
        with PcscTransport(reader or None) as transport:
            yield CardClient(transport)
        return
    assert card is not None
    with CardFile(card, _key(home, key_file), wait=2.0) as chip:
        yield CardClient(InProcessTransport(chip))


def _fail(exc: DomainError) -> typer.Exit:
    from mynacard.cli import refusal_message  # every problem of a refused input, as every command says it

    console.print(f"[red]{refusal_message(exc)}[/red]", markup=True, highlight=False)
    return typer.Exit(1)


def _ask(value: str | None, label: str) -> str:
    return value if value is not None else typer.prompt(label, hide_input=True)


# --- personalise ------------------------------------------------------------------------------------

def _municipality(code: str) -> dict[str, str]:
    text = (files("mynacard.registry") / "data" / "municipalities.csv").read_text(encoding="utf-8")
    for row in csv.DictReader(text.splitlines()):
        if row["code"] == code:
            return row
    raise InvalidInput(f"unknown municipality {code!r}")


def _demo_holder(seed: int | None, municipality_code: str, today: date) -> tuple[Any, str]:
    from faker import Faker

    from mynacard.cards.model import validity
    from mynacard.cards.personalisation import CardHolder
    from mynacard.numbers import derive_individual_number, resident_record_code_check_digit
    from mynacard.registry.model import BasicFacts, Sex
    from mynacard.sim.photos import face_photo

    rng = random.Random(seed if seed is not None else secrets.randbits(64))
    fake = Faker("ja_JP")
    fake.seed_instance(rng.randrange(2**32))
    place = _municipality(municipality_code)
    sex = rng.choice([Sex.MALE, Sex.FEMALE])
    given = fake.first_name_male() if sex is Sex.MALE else fake.first_name_female()
    birth = today - timedelta(days=rng.randint(20 * 365, 70 * 365))
    address = (f"{place['prefecture']}{place['name']}{fake.town()}{rng.randint(1, 9)}丁目"
               f"{rng.randint(1, 30)}番{rng.randint(1, 20)}号")
    facts = BasicFacts.parse(fake.last_name(), given, birth, sex, address)
    base = f"{rng.randrange(10**10):010d}"
    resident_code = base + str(resident_record_code_check_digit(base))
    number = derive_individual_number(rng.randbytes(32), resident_code)
    v = validity(birth, today, today)
    serial = f"D{rng.randrange(10**10):010d}01"
    holder = CardHolder(serial, municipality_code, facts, v.card_until, v.certificates_until, True, True,
                        individual_number=number, photo=face_photo(rng.randrange(100)))
    return holder, resident_code


def _random_pins(rng: random.Random) -> dict[str, str]:
    digits = "0123456789"
    letters = "ABCDEFGHJKLMNPQRSTUVWXYZ"
    sign = "".join(rng.choice(letters) for _ in range(4)) + "".join(rng.choice(digits) for _ in range(4))
    return {"auth": f"{rng.randrange(10**4):04d}", "sign": sign, "card_info": f"{rng.randrange(10**4):04d}",
            "residence": f"{rng.randrange(10**4):04d}"}


@app.command()
def personalise(
    out: Path = typer.Option(..., "--out", "-o", help="Card file to write."),
    demo: bool = typer.Option(False, "--demo", help="A synthetic resident, registered in the installation's "
                              "registry, with certificates from the installation's JPKI CAs (only mode yet)."),
    municipality: str = typer.Option("131016", "--municipality", "-m", help="Local government code."),
    seed: int | None = typer.Option(None, "--seed", help="Same seed, same synthetic resident."),
    auth_pin: str | None = typer.Option(None, "--auth-pin", help="利用者証明用暗証番号 (default: random)."),
    sign_password: str | None = typer.Option(None, "--sign-password", help="署名用パスワード (random)."),
    card_info_pin: str | None = typer.Option(None, "--card-info-pin", help="券面事項入力補助用暗証番号."),
    residence_pin: str | None = typer.Option(None, "--residence-pin", help="住民基本台帳用暗証番号."),
    home: Path | None = HomeOption,
    key_file: Path | None = KeyFileOption,
) -> None:
    """Make a personalised card: keys born in the chip, certificates, card-info and face data, PINs set.
    (Longer than ~80 lines only by its eleven options: the body is the few steps of a personalisation.)"""
    from mynacard.bootstrap import build_context
    from mynacard.chip.cardfile import CardFile
    from mynacard.chip.emulator import Chip
    from mynacard.chip.image import ChipImage
    from mynacard.chip.issuance import InitialPins, IssuerTerminal
    from mynacard.chip.issuerkey import IssuerMasterKey
    from mynacard.chip.signerkey import card_info_signer
    from mynacard.chip.transport import InProcessTransport
    from mynacard.clock import local_date
    from mynacard.config import load_settings
    from mynacard.jpki.service import JpkiIssuer
    from mynacard.migrate import upgrade
    from mynacard.numbers import mask_individual_number
    from mynacard.principal import Principal, Role
    from mynacard.registry import service as registry

    if not demo:
        console.print("[red]only --demo is available until the JPKI authorities are wired in[/red]")
        raise typer.Exit(2)
    try:
        if out.exists():
            raise InvalidInput(f"{out} already exists; a card is never overwritten")
        settings = load_settings(home=home)
        key = _key(home, key_file)
        now = utc_now()
        today = local_date(now)
        holder, resident_code = _demo_holder(seed, municipality, today)
        rng = random.Random(seed) if seed is not None else random.Random(secrets.randbits(64))
        chosen = _random_pins(rng)
        pins = InitialPins(auth=auth_pin or chosen["auth"], card_info=card_info_pin or chosen["card_info"],
                           residence=residence_pin or chosen["residence"],
                           sign=(sign_password or chosen["sign"]).upper())
        # the synthetic resident joins the installation's registry (number, resident code) and the JPKI CAs
        # of the installation issue the certificates, as at a real manufacture
        ctx = build_context(settings)
        upgrade(ctx.db)
        system = Principal.system("card-cli")
        (resident_id,) = registry.register_residents(ctx, system, [registry.NewResident(
            municipality, holder.facts, "デモ", "ジュウミン")], now)
        resident = registry.get_resident(ctx, system, resident_id)
        number = registry.individual_number_of(ctx, system, resident_id, "個人番号カードの発行 (demo card)", now)
        holder = replace(holder, individual_number=number, resident_id=resident_id)
        resident_code = resident.resident_code
        issuer = JpkiIssuer(ctx, Principal(Role.MANUFACTURER, "card-cli"))
        signer = card_info_signer(settings)
        master = IssuerMasterKey.from_settings(settings)
        chip = Chip(ChipImage.blank(holder.card_serial, master.card_key(holder.card_serial)))
        chip.image.meta.update({"municipality_code": holder.municipality_code,
                                "personalised_on": today.isoformat()})
        terminal = IssuerTerminal(InProcessTransport(chip), master)
        made = terminal.personalise(holder, issuer, signer, now, resident_code=resident_code)
        terminal.set_initial_pins(pins)
        CardFile.create(out, chip.image, key)
    except DomainError as exc:
        raise _fail(exc) from None
    table = Table(title=f"card {holder.card_serial} → {out}", show_header=False)
    facts = holder.facts
    for label, value in [
        ("氏名 name", facts.name), ("住所 address", facts.address), ("生年月日 born", str(facts.birth_date)),
        ("個人番号 number", mask_individual_number(holder.individual_number or "")),
        ("有効期限 card valid until", str(holder.card_valid_until)),
        ("利用者証明用暗証番号 auth PIN", pins.auth), ("署名用パスワード sign password", pins.sign or ""),
        ("券面事項入力補助用暗証番号 card-info PIN", pins.card_info),
        ("住民基本台帳用暗証番号 residence PIN", pins.residence),
        ("セキュリティコード security code", made.security_code),
    ]:
        table.add_row(label, value)
    console.print(table)
    console.print("[yellow]demo card: synthetic resident, certificates from this installation's JPKI CAs, "
                  "PINs shown once[/yellow]")


# --- vpcd -------------------------------------------------------------------------------------------

@app.command("serve-vpcd")
def serve_vpcd(
    card: Path = typer.Argument(..., help="Card file to put in the reader."),
    port: int = typer.Option(35963, "--port", min=1, max=65535,
                             help="vpcd port (Debian's /etc/reader.conf.d/vpcd: 0x8C7B)."),
    host: str = typer.Option("127.0.0.1", "--host", help="Host where pcscd with vpcd runs."),
    home: Path | None = HomeOption,
    key_file: Path | None = KeyFileOption,
) -> None:
    """Attach the card to the vsmartcard vpcd reader of pcscd until interrupted (Ctrl-C or SIGTERM)."""
    from mynacard.chip.cardfile import CardFile
    from mynacard.chip.vpcd import serve

    stop = threading.Event()

    def _stop(signum: int, frame: object) -> None:
        stop.set()

    previous = signal.signal(signal.SIGTERM, _stop)
    try:
        with CardFile(card, _key(home, key_file)) as chip:
            console.print(f"card {chip.image.serial}: waiting for pcscd's vpcd reader on {host}:{port} "
                          "(Ctrl-C takes the card out)")

            def connected() -> None:
                console.print(f"card {chip.image.serial} is in the vpcd reader")

            worker = threading.Thread(target=serve, args=(chip, host, port),
                                      kwargs={"stop": stop, "on_connect": connected}, daemon=True)
            worker.start()
            try:
                while worker.is_alive():
                    worker.join(0.2)
            except KeyboardInterrupt:
                stop.set()
                worker.join(5)
    except DomainError as exc:
        raise _fail(exc) from None
    finally:
        signal.signal(signal.SIGTERM, previous)
    console.print("card removed")


# --- reading ----------------------------------------------------------------------------------------

def _cert_row(table: Table, label: str, cert: x509.Certificate) -> None:
    table.add_row(label, cert.subject.rfc4514_string(), cert.issuer.rfc4514_string(),
                  f"{cert.not_valid_before_utc:%Y-%m-%d} – {cert.not_valid_after_utc:%Y-%m-%d}")


@app.command()
def info(
    card: Path | None = CardArgument,
    reader: str | None = ReaderOption,
    pin: str | None = typer.Option(None, "--pin",
                                   help="券面事項入力補助用暗証番号: also show the card-info facts."),
    home: Path | None = HomeOption,
    key_file: Path | None = KeyFileOption,
) -> None:
    """What the card is, its authentication certificate, PIN tries left (and with --pin its facts)."""
    from mynacard.numbers import mask_individual_number

    try:
        with _client(card, reader, home, key_file) as client:
            if not client.is_my_number_card():
                raise InvalidInput("not a My Number Card (no JPKI application with a My Number Card token)")
            console.print(f"[bold]{client.token_label()}[/bold]  製造番号 {client.manufacture_number()}  "
                          f"({client.transport.name})")
            table = Table("certificate", "subject", "issuer", "valid")
            try:
                _cert_row(table, "利用者証明用 auth", client.read_auth_certificate())
            except NotOnCard:
                table.add_row("利用者証明用 auth", "(none)", "", "")
            console.print(table)
            _print_pins(client)
            if pin is not None:
                card_info = client.read_card_info(pin)
                facts = card_info.facts
                masked = mask_individual_number(card_info.individual_number)
                console.print(f"氏名 {facts.name}  住所 {facts.address}  生年月日 {facts.birth_date}  "
                              f"性別 {facts.sex.label_ja}  個人番号 {masked}"
                              f"  署名 {'OK' if card_info.signature_valid else 'INVALID'}")
    except DomainError as exc:
        raise _fail(exc) from None


def _print_pins(client: CardClient) -> None:
    table = Table("PIN", "tries left", "of")
    for kind, left in client.pin_status().items():
        table.add_row(f"{kind.policy.label} ({kind.value})", str(left), str(kind.policy.max_tries))
    console.print(table)


@app.command()
def certs(
    card: Path | None = CardArgument,
    reader: str | None = ReaderOption,
    password: str | None = typer.Option(None, "--password",
                                        help="署名用パスワード: include the signing certificate."),
    out: Path | None = typer.Option(None, "--out", help="Folder to write the certificates to (PEM)."),
    home: Path | None = HomeOption,
    key_file: Path | None = KeyFileOption,
) -> None:
    """The certificates on the card (the signing certificate needs the signing password)."""
    try:
        with _client(card, reader, home, key_file) as client:
            found: dict[str, x509.Certificate] = {}
            for name, read in (("auth", client.read_auth_certificate),
                               ("auth-ca", client.read_auth_ca_certificate),
                               ("sign-ca", client.read_sign_ca_certificate)):
                try:
                    found[name] = read()
                except NotOnCard:
                    continue
            if password is not None:
                found["sign"] = client.read_sign_certificate(password)
    except DomainError as exc:
        raise _fail(exc) from None
    table = Table("certificate", "subject", "issuer", "valid")
    for name, cert in found.items():
        _cert_row(table, name, cert)
    console.print(table)
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
        for name, cert in found.items():
            (out / f"{name}.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        console.print(f"written to {out}")


@app.command()
def sign(
    card: Path | None = CardArgument,
    reader: str | None = ReaderOption,
    key: KeyKind = typer.Option(KeyKind.AUTH, "--key", help="auth (利用者証明用) or sign (署名用)."),
    pin: str | None = typer.Option(None, "--pin", help="The PIN (auth) or password (sign) of the key."),
    input_file: Path | None = typer.Option(None, "--in", help="File to sign (SHA-256 is computed)."),
    digest: str | None = typer.Option(None, "--digest", help="A SHA-256 digest in hex, instead of --in."),
    out: Path | None = typer.Option(None, "--out", help="Write the raw signature here (else hex on stdout)."),
    home: Path | None = HomeOption,
    key_file: Path | None = KeyFileOption,
) -> None:
    """RSASSA-PKCS1-v1_5 / SHA-256 with a key of the card; verifies with the key's certificate."""
    if (input_file is None) == (digest is None):
        console.print("[red]give --in FILE or --digest HEX[/red]")
        raise typer.Exit(2)
    value = hashlib.sha256(input_file.read_bytes()).digest() if input_file is not None else None
    try:
        if value is None:
            try:
                value = bytes.fromhex(digest or "")
            except ValueError:
                raise InvalidInput("--digest must be hex") from None
        secret = _ask(pin, "PIN" if key is KeyKind.AUTH else "password")
        with _client(card, reader, home, key_file) as client:
            signature = client.sign_digest(key, secret, value)
    except DomainError as exc:
        raise _fail(exc) from None
    if out is not None:
        out.write_bytes(signature)
        console.print(f"{len(signature)}-byte signature written to {out}")
    else:
        typer.echo(signature.hex())


@app.command()
def pins(
    card: Path | None = CardArgument,
    reader: str | None = ReaderOption,
    change: PinKind | None = typer.Option(None, "--change",
                                          help="Change this PIN (auth, sign, card-info, residence)."),
    old: str | None = typer.Option(None, "--old", help="The current value."),
    new: str | None = typer.Option(None, "--new", help="The new value."),
    home: Path | None = HomeOption,
    key_file: Path | None = KeyFileOption,
) -> None:
    """Tries left of each PIN (without using a try), or change one."""
    try:
        with _client(card, reader, home, key_file) as client:
            if change is not None:
                client.change_pin(change, _ask(old, "current value"), _ask(new, "new value"))
                console.print(f"[green]{change.policy.label} changed[/green]")
            _print_pins(client)
    except DomainError as exc:
        raise _fail(exc) from None


@app.command()
def readers() -> None:
    """The PC/SC readers pcscd knows (set PCSCLITE_CSOCK_NAME for a private pcscd)."""
    from mynacard.chip.transport import pcsc_readers

    try:
        names = pcsc_readers()
    except DomainError as exc:
        raise _fail(exc) from None
    for name in names:
        typer.echo(name)
    if not names:
        console.print("no readers")


def main() -> None:  # pragma: no cover - for ``python -m mynacard.chip.cli``
    app()


if __name__ == "__main__":  # pragma: no cover
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    main()
