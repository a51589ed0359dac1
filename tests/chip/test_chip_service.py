"""Card use cases on the card store: roles and municipal scope, idempotency, events (SQLite and PostgreSQL)."""

from __future__ import annotations

from dataclasses import replace

import pytest
from sqlalchemy import func, select

from mynacard.bus import domain_events
from mynacard.chip import service
from mynacard.chip.cardfile import load_image
from mynacard.chip.client import CardClient, PinBlocked, WrongPin
from mynacard.chip.model import PinKind
from mynacard.chip.transport import InProcessTransport
from mynacard.context import Context
from mynacard.errors import Forbidden, NotFound
from mynacard.principal import Principal, Role

from .conftest import NOW, PINS, Authorities, make_holder

MAKER = Principal(Role.MANUFACTURER, "mfr-east")
CLERK = Principal(Role.CLERK, "chiyoda-1", "131016")
SAPPORO = Principal(Role.CLERK, "sapporo-1", "011002")
RESIDENT = Principal(Role.RESIDENT, "r-1")


def _events(ctx: Context, kind: str) -> int:
    with ctx.db.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(domain_events)
                                .where(domain_events.c.kind == kind)).scalar_one())


def _make(ctx: Context, authorities: Authorities, serial: str = "A000000077701") -> str:
    made = service.manufacture_card(ctx, MAKER, make_holder(serial), authorities.issuer, authorities.signer, NOW)
    assert made.created
    return serial


def test_manufacture_is_for_the_manufacturer_and_happens_once(ctx: Context, authorities: Authorities) -> None:
    holder = make_holder("A000000077702")
    for who in (CLERK, RESIDENT):
        with pytest.raises(Forbidden):
            service.manufacture_card(ctx, who, holder, authorities.issuer, authorities.signer, NOW)
    first = service.manufacture_card(ctx, MAKER, holder, authorities.issuer, authorities.signer, NOW)
    assert first.created and first.security_code is not None and first.path.exists()
    data = first.path.read_bytes()
    again = service.manufacture_card(ctx, MAKER, holder, authorities.issuer, authorities.signer, NOW)
    assert not again.created and again.path == first.path and first.path.read_bytes() == data
    assert _events(ctx, "chip.manufactured") == 1
    assert service.card_municipality(ctx, holder.card_serial) == "131016"


def test_the_window_of_the_cards_municipality_sets_and_resets_pins(ctx: Context,
                                                                 authorities: Authorities) -> None:
    serial = _make(ctx, authorities)
    with pytest.raises(NotFound):
        service.set_initial_pins(ctx, SAPPORO, serial, PINS, NOW)
    with pytest.raises(Forbidden):
        service.set_initial_pins(ctx, RESIDENT, serial, PINS, NOW)
    service.set_initial_pins(ctx, CLERK, serial, PINS, NOW)
    with service.insert_card(ctx, serial) as chip:
        client = CardClient(InProcessTransport(chip))
        client.verify(PinKind.AUTH, PINS.auth)
        for _ in range(3):
            with pytest.raises((WrongPin, PinBlocked)):
                client.verify(PinKind.AUTH, "0000")
    with pytest.raises(NotFound):
        service.reset_pin(ctx, SAPPORO, serial, PinKind.AUTH, "4444", NOW)
    service.reset_pin(ctx, CLERK, serial, PinKind.AUTH, "4444", NOW)
    with service.insert_card(ctx, serial) as chip:
        CardClient(InProcessTransport(chip)).verify(PinKind.AUTH, "4444")
    assert (_events(ctx, "chip.pins_set"), _events(ctx, "chip.pin_reset")) == (1, 1)


def test_endorsement_within_and_into_a_municipality(ctx: Context, authorities: Authorities) -> None:
    serial = _make(ctx, authorities)
    assert service.endorse_address(ctx, CLERK, serial, "東京都千代田区永田町1丁目7番1号", authorities.signer, NOW)
    assert not service.endorse_address(ctx, CLERK, serial, "東京都千代田区永田町1丁目7番1号", authorities.signer,
                                       NOW)
    with pytest.raises(NotFound):  # Sapporo may not touch a Chiyoda card for a move within Chiyoda
        service.endorse_address(ctx, SAPPORO, serial, "北海道札幌市中央区北1条西2丁目", authorities.signer, NOW)
    # 転入: Sapporo's window endorses the card of a resident moving in; the card becomes Sapporo's.
    assert service.endorse_address(ctx, SAPPORO, serial, "北海道札幌市中央区北1条西2丁目", authorities.signer,
                                   NOW, new_municipality_code="011002")
    assert service.card_municipality(ctx, serial) == "011002"
    with pytest.raises(NotFound):
        service.reset_pin(ctx, CLERK, serial, PinKind.AUTH, "4444", NOW)
    image = load_image(service.card_path(ctx, serial), ctx.settings.data_key)
    assert image.meta["municipality_code"] == "011002"
    assert _events(ctx, "chip.endorsed") == 2


def test_replacing_the_signing_certificate_at_the_window(ctx: Context, authorities: Authorities) -> None:
    serial = _make(ctx, authorities)
    holder = make_holder(serial)
    moved = replace(holder, facts=replace(holder.facts, address="東京都千代田区永田町1丁目7番1号"))
    with pytest.raises(Forbidden):
        service.replace_sign_certificate(ctx, MAKER, serial, moved, authorities.issuer, NOW)
    der = service.replace_sign_certificate(ctx, CLERK, serial, moved, authorities.issuer, NOW)
    image = load_image(service.card_path(ctx, serial), ctx.settings.data_key)
    assert image.files[next(k for k in image.files if k[1] == 0x0001 and k[0].name == "JPKI")] == der
    assert _events(ctx, "chip.sign_certificate_replaced") == 1


def test_serials_are_checked(ctx: Context) -> None:
    from mynacard.errors import InvalidInput
    for bad in ("", "../etc/passwd", "A" * 14, "A 1", "A00000000000"):
        with pytest.raises(InvalidInput):
            service.card_path(ctx, bad)
    with pytest.raises(NotFound):
        service.set_initial_pins(ctx, CLERK, "A000000000000", PINS, NOW)
