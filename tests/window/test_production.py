"""Manufacture with real chips: keys born in the chip, JPKI certificates, outside the DB transaction,
idempotent per card serial."""

from __future__ import annotations

from datetime import timedelta

import pytest
from cryptography.hazmat.primitives import serialization

from mynacard.cards import service as cards
from mynacard.cards.model import CardState
from mynacard.chip import service as chips
from mynacard.chip.cardfile import CardFile
from mynacard.chip.client import CardClient
from mynacard.chip.signerkey import card_info_signer
from mynacard.chip.transport import InProcessTransport
from mynacard.context import Context
from mynacard.jpki import service as jpki
from mynacard.window.production import manufacture_with_chips
from tests.conftest import NOW
from tests.helpers import CONTRACTOR, MANUFACTURER, SYSTEM, apply_all, make_residents

from .support import chip_cards


def _good_serials(ctx: Context, card_id: int) -> dict[str, int]:
    views = jpki.certificates_of_card(ctx, SYSTEM, card_id)
    good = [v for v in views if v.status == "good"]
    assert len({v.kind for v in good}) == len(good), "two good certificates of one kind for one card"
    return {v.kind: v.serial for v in good}


def test_manufacture_personalises_real_chips(ctx: Context) -> None:
    (card_id,) = chip_cards(ctx, 1, NOW, notice=False)
    card = cards.get_card(ctx, SYSTEM, card_id)
    assert card.state is CardState.RECEIVED and card.card_serial
    path = chips.card_path(ctx, card.card_serial)
    assert path.exists()
    good = _good_serials(ctx, card_id)
    assert set(good) == {"auth", "sign"}
    with CardFile(path, ctx.settings.data_key) as chip:
        client = CardClient(InProcessTransport(chip))
        assert client.manufacture_number() == card.card_serial
        auth = client.read_auth_certificate()
        assert auth.serial_number == good["auth"]
        assert client.has_sign_certificate()
    record = jpki.certificate_by_serial(ctx, SYSTEM, good["auth"])
    assert record.der == auth.public_bytes(serialization.Encoding.DER)


def test_signer_is_persistent_and_sealed(ctx: Context) -> None:
    first = card_info_signer(ctx.settings)
    path = ctx.settings.home / "keys" / "card-info-signer"
    assert path.exists() and path.stat().st_mode & 0o077 == 0
    with pytest.raises(ValueError):  # sealed: the file is not a readable private key
        serialization.load_der_private_key(path.read_bytes(), password=None)
    from mynacard.chip import signerkey
    signerkey._CACHE.clear()
    again = card_info_signer(ctx.settings)
    assert again.key_id == first.key_id


def test_crash_between_certificates_and_chip_file_revokes_the_orphan(ctx: Context,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    applied = NOW - timedelta(days=30)
    rids = make_residents(ctx, 1, applied - timedelta(days=1))
    apply_all(ctx, rids, applied)
    cards.screen_applications(ctx, CONTRACTOR, applied)
    (batch,) = cards.order_printing(ctx, SYSTEM, applied)
    cards.acknowledge_print_batch(ctx, MANUFACTURER, batch, cards.read_print_file(ctx, batch), applied)
    real_create = CardFile.create

    def crash(*args: object, **kwargs: object) -> None:
        raise RuntimeError("power cut while writing the card file")

    monkeypatch.setattr(CardFile, "create", crash)
    with pytest.raises(RuntimeError):
        manufacture_with_chips(ctx, MANUFACTURER, batch, applied)
    (item,) = cards.cards_to_manufacture(ctx, MANUFACTURER, batch, applied)
    assert cards.get_card(ctx, SYSTEM, item.card_id).state is CardState.PRINT_ORDERED
    orphans = _good_serials(ctx, item.card_id)
    assert set(orphans) == {"auth", "sign"}  # certificates committed, no chip holds their keys
    monkeypatch.setattr(CardFile, "create", real_create)
    assert manufacture_with_chips(ctx, MANUFACTURER, batch, applied) == 1
    assert manufacture_with_chips(ctx, MANUFACTURER, batch, applied) == 0
    now_good = _good_serials(ctx, item.card_id)
    assert set(now_good) == {"auth", "sign"}
    assert not set(now_good.values()) & set(orphans.values())
    for serial in orphans.values():
        assert jpki.certificate_by_serial(ctx, SYSTEM, serial).view.status == "revoked"
    with CardFile(chips.card_path(ctx, item.card_serial), ctx.settings.data_key) as chip:
        assert CardClient(InProcessTransport(chip)).read_auth_certificate().serial_number == now_good["auth"]


def test_retry_after_chip_made_reuses_the_chip(ctx: Context, monkeypatch: pytest.MonkeyPatch) -> None:
    applied = NOW - timedelta(days=30)
    rids = make_residents(ctx, 1, applied - timedelta(days=1))
    apply_all(ctx, rids, applied)
    cards.screen_applications(ctx, CONTRACTOR, applied)
    (batch,) = cards.order_printing(ctx, SYSTEM, applied)
    cards.acknowledge_print_batch(ctx, MANUFACTURER, batch, cards.read_print_file(ctx, batch), applied)
    real = cards.manufacture_batch

    def crash(*args: object, **kwargs: object) -> int:
        raise RuntimeError("crash before the cards advance")

    monkeypatch.setattr(cards, "manufacture_batch", crash)
    with pytest.raises(RuntimeError):
        manufacture_with_chips(ctx, MANUFACTURER, batch, applied)
    (item,) = cards.cards_to_manufacture(ctx, MANUFACTURER, batch, applied)
    before = chips.card_path(ctx, item.card_serial).read_bytes()
    good = _good_serials(ctx, item.card_id)
    monkeypatch.setattr(cards, "manufacture_batch", real)
    assert manufacture_with_chips(ctx, MANUFACTURER, batch, applied) == 1
    assert chips.card_path(ctx, item.card_serial).read_bytes() == before
    assert _good_serials(ctx, item.card_id) == good
    assert cards.get_card(ctx, SYSTEM, item.card_id).card_serial == item.card_serial


def test_card_cli_demo_personalises_with_the_jpki_cas(tmp_path: object) -> None:
    from pathlib import Path

    from typer.testing import CliRunner

    from mynacard.bootstrap import build_context
    from mynacard.chip.cardfile import load_image
    from mynacard.chip.model import Application
    from mynacard.cli import app
    from mynacard.jpki.model import CaKind

    home = Path(str(tmp_path))
    card = home / "demo.card"
    result = CliRunner().invoke(app, ["card", "personalise", "--demo", "--seed", "7", "--out", str(card),
                                      "--home", str(home)])
    assert result.exit_code == 0, result.output
    ctx = build_context(home=home)
    image = load_image(card, ctx.settings.data_key)
    from cryptography import x509
    auth = x509.load_der_x509_certificate(image.file(Application.JPKI, 0x000A))
    record = jpki.certificate_by_serial(ctx, SYSTEM, auth.serial_number)
    assert record.view.status == "good" and record.view.card_serial == image.serial
    root = jpki.current_authority(ctx, CaKind.AUTH, auth.not_valid_before_utc)
    auth.verify_directly_issued_by(root.certificate)
    ctx.db.dispose()
