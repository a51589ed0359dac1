"""The kiosk with the real parts: a chip card (keys made in the emulated chip, certificates from the JPKI CAs)
on the reader through ``CardClient``, and the centre wired to JPKI's relying-party SDK and J-LIS's holder
records — the production wiring of :func:`mynacard.kiosk.service.build_centre`."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest
from cryptography import x509
from sqlalchemy import func, select

from mynacard.context import Context
from mynacard.jpki import service as jpki
from mynacard.jpki.card_auth import JpkiCardAuthenticator
from mynacard.jpki.model import RevocationReason
from mynacard.kiosk import municipal, pdf, signing
from mynacard.kiosk.auth import PinBlocked, WrongPin
from mynacard.kiosk.chip_card import CardFileKioskCard, make_resident_card
from mynacard.kiosk.jpki_auth import JpkiHolderDirectory
from mynacard.kiosk.model import DocumentKind, DocumentOptions, RefusalReason, Refused
from mynacard.kiosk.service import build_centre
from mynacard.kiosk.tables import kiosk_documents
from mynacard.kiosk.terminal import KioskTerminal, LocalCentreClient, MemoryPrinter, VirtualReader
from mynacard.sealing import Sealer
from tests.conftest import NOW
from tests.helpers import SYSTEM
from tests.kiosk.conftest import VERIFY_BASE, Town


def _kiosk(ctx: Context, at: datetime = NOW) -> tuple[KioskTerminal, VirtualReader, MemoryPrinter]:
    centre = build_centre(ctx, VERIFY_BASE)
    assert isinstance(centre.authenticator, JpkiCardAuthenticator)
    assert isinstance(centre.directory, JpkiHolderDirectory)
    reader, printer = VirtualReader(), MemoryPrinter()
    client = LocalCentreClient(centre, "kiosk-0001", lambda: at)
    return KioskTerminal("kiosk-0001", client, reader, printer), reader, printer


def _card(ctx: Context, resident_id: int, pin: str = "1234") -> CardFileKioskCard:
    made = make_resident_card(ctx, SYSTEM, resident_id, pin, NOW)
    return CardFileKioskCard(made.path, ctx.settings.data_key)


def _documents(ctx: Context) -> int:
    with ctx.db.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(kiosk_documents)).scalar_one())


def test_a_chip_card_gets_its_holder_a_signed_resident_record(ctx: Context, town: Town) -> None:
    holder = town.adult()
    card = _card(ctx, holder.id, "4321")
    terminal, reader, printer = _kiosk(ctx)
    reader.place(card)
    session = terminal.start()
    menu = terminal.enter_pin(session, "4321")
    assert menu.holder_name == holder.facts.name
    result = terminal.order_and_print(session, DocumentOptions(DocumentKind.RESIDENT_RECORD), 200)
    printed, _ = printer.jobs[session.request_id]
    facts = pdf.read_facts(printed)
    assert facts.request_id == session.request_id and facts.document_id == result.document_id
    assert facts.holder_ref == municipal.holder_ref(Sealer(ctx.settings.data_key), holder.resident_code)
    assert signing.validate_pdf(printed, municipal.trust_roots_der(ctx)).ok
    view = municipal.verification(ctx, result.document_id, NOW)
    assert view.valid and view.content is not None
    names = [f.value for s in view.content.sections for f in s.fields if f.label == "氏名"]
    assert names == [f"{holder.facts.family_name}　{holder.facts.given_name}"]


def test_the_chip_counts_wrong_pins_and_blocks(ctx: Context, town: Town) -> None:
    terminal, reader, printer = _kiosk(ctx)
    reader.place(_card(ctx, town.adult(1).id))
    session = terminal.start()
    with pytest.raises(WrongPin) as first:
        terminal.enter_pin(session, "0000")
    assert first.value.tries_left == 2 and first.value.reason is RefusalReason.WRONG_PIN
    with pytest.raises(WrongPin) as malformed:
        terminal.enter_pin(session, "12a")  # refused before the chip: no try used
    assert malformed.value.tries_left == 2
    with pytest.raises(WrongPin):
        terminal.enter_pin(session, "1111")
    with pytest.raises(PinBlocked):
        terminal.enter_pin(session, "2222")
    with pytest.raises(PinBlocked):  # even the right PIN now
        terminal.enter_pin(terminal.start(), "1234")
    assert _documents(ctx) == 0 and printer.jobs == {}


def test_a_revoked_or_expired_certificate_is_refused(ctx: Context, town: Town) -> None:
    holder = town.adult(2)
    card = _card(ctx, holder.id)
    serial = x509.load_der_x509_certificate(card.read_auth_certificate()).serial_number
    jpki.revoke_certificate(ctx, SYSTEM, serial, RevocationReason.KEY_COMPROMISE, NOW - timedelta(minutes=5))
    terminal, reader, printer = _kiosk(ctx)
    reader.place(card)
    with pytest.raises(Refused) as revoked:
        terminal.enter_pin(terminal.start(), "1234")
    assert revoked.value.reason is RefusalReason.CERTIFICATE_REVOKED

    other = town.adult(3)
    card = _card(ctx, other.id)
    not_after = x509.load_der_x509_certificate(card.read_auth_certificate()).not_valid_after_utc
    later = not_after.replace(hour=1) + timedelta(days=3)  # 10:00 JST, after the certificate's end
    while later.weekday() >= 5:
        later += timedelta(days=1)
    terminal, reader, printer = _kiosk(ctx, later)
    reader.place(card)
    with pytest.raises(Refused) as expired:
        terminal.enter_pin(terminal.start(), "1234")
    assert expired.value.reason is RefusalReason.CERTIFICATE_EXPIRED
    assert _documents(ctx) == 0 and printer.jobs == {}


def test_the_production_centre_never_uses_the_test_stand_in(ctx: Context, monkeypatch: pytest.MonkeyPatch,
                                                            tmp_path: object) -> None:
    """``MYNACARD_KIOSK_TEST_JPKI`` is read only by the test-only app factory, not by the production wiring."""
    from mynacard.kiosk.api import centre_of
    from mynacard.kiosk.testing import TEST_JPKI_ENV
    from mynacard.web.app import create_app

    monkeypatch.setenv(TEST_JPKI_ENV, str(tmp_path))
    centre = build_centre(ctx, VERIFY_BASE)
    assert isinstance(centre.authenticator, JpkiCardAuthenticator)
    assert isinstance(centre.directory, JpkiHolderDirectory)
    app = create_app(ctx)

    class _Request:  # what centre_of reads
        def __init__(self) -> None:
            self.app = app
            self.base_url = "http://kiosk.test/"

    assert isinstance(centre_of(_Request()).authenticator, JpkiCardAuthenticator)  # type: ignore[arg-type]
