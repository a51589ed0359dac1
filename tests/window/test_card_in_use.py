"""The card in use: suspension by phone and lifting it only at the window, loss and reissue, address change
with the endorsement and a new signing certificate, PIN reset of a blocked PIN."""

from __future__ import annotations

from datetime import timedelta

import pytest

from mynacard.cards import service as cards
from mynacard.cards.ledger import verify_ledger
from mynacard.cards.model import CardState
from mynacard.chip import service as chips
from mynacard.chip.cardfile import CardFile
from mynacard.chip.client import CardClient, PinBlocked, WrongPin
from mynacard.chip.model import KeyKind, PinKind
from mynacard.chip.transport import InProcessTransport
from mynacard.context import Context
from mynacard.errors import Conflict, Forbidden, NotFound
from mynacard.jpki import service as jpki
from mynacard.registry import service as registry
from mynacard.window import service as window
from tests.conftest import NOW
from tests.helpers import SYSTEM

from .support import CALL_CENTRE, CHIYODA, SAPPORO, chip_cards, clerk
from .test_issuance import ID, PINS, _chip_works


def _issued_card(ctx: Context) -> int:
    (card_id,) = chip_cards(ctx, 1, NOW)
    window.issue_card(ctx, clerk(), identity=ID, pins=PINS, notification_card="collected", now=NOW, card_id=card_id)
    return card_id


def _statuses(ctx: Context, card_id: int) -> list[tuple[str, str, str | None]]:
    return [(str(v.kind), v.status, v.revocation_reason) for v in jpki.certificates_of_card(ctx, SYSTEM, card_id)]


def _client_run(ctx: Context, card_id: int, action: object) -> object:
    serial = cards.get_card(ctx, SYSTEM, card_id).card_serial
    assert serial
    with CardFile(chips.card_path(ctx, serial), ctx.settings.data_key) as chip:
        return action(CardClient(InProcessTransport(chip)))  # type: ignore[operator]


def test_suspend_by_phone_then_lift_only_at_the_window(ctx: Context) -> None:
    card_id = _issued_card(ctx)
    before = {k: s for k, s, _ in _statuses(ctx, card_id)}
    assert before == {"auth": "good", "sign": "good"}
    night = NOW + timedelta(hours=17)  # 02:30 JST
    with pytest.raises(Forbidden):
        window.suspend_by_phone(ctx, clerk(), card_id, "call-1", night)
    first = window.suspend_by_phone(ctx, CALL_CENTRE, card_id, "call-1", night)
    assert first.state is CardState.SUSPENDED and len(first.certificates) == 2
    again = window.suspend_by_phone(ctx, CALL_CENTRE, card_id, "call-1", night)
    assert again.replayed
    assert sorted(_statuses(ctx, card_id)) == [("auth", "revoked", "certificateHold"),
                                               ("sign", "revoked", "certificateHold")]
    with pytest.raises(Forbidden):  # lifting is never by phone
        window.lift_suspension(ctx, CALL_CENTRE, card_id, ID, night)
    lifted = window.lift_suspension(ctx, clerk(), card_id, ID, NOW + timedelta(days=1))
    assert lifted.state is CardState.ISSUED and len(lifted.certificates) == 2
    good = [(k, s) for k, s, _ in _statuses(ctx, card_id) if s == "good"]
    assert sorted(good) == [("auth", "good"), ("sign", "good")]
    for serial in lifted.certificates:  # lineage: each new one replaces a held one
        chain = jpki.lineage(ctx, SYSTEM, int(serial))
        assert len(chain) == 2 and chain[0].status == "revoked"
    assert window.check_consistency(ctx, card_id) == []
    _chip_works(ctx, card_id, PINS)  # new keys in the chip, the same PINs
    assert window.lift_suspension(ctx, clerk(), card_id, ID, NOW + timedelta(days=1)).certificates == ()


def test_a_suspension_key_names_one_card_a_reused_key_for_another_card_is_refused(ctx: Context) -> None:
    """The call's ticket number makes a retry harmless for *its* card; the same ticket for another card is
    refused (409) and that card stays live — it must never answer "replayed" and leave a lost card usable."""
    first_card, second_card = chip_cards(ctx, 2, NOW)
    for card_id in (first_card, second_card):
        window.issue_card(ctx, clerk(), identity=ID, pins=PINS, notification_card="collected", now=NOW,
                          card_id=card_id)
    night = NOW + timedelta(hours=17)
    assert not window.suspend_by_phone(ctx, CALL_CENTRE, first_card, "call-7", night).replayed
    before = sorted(_statuses(ctx, second_card))
    with pytest.raises(Conflict, match="another card"):
        window.suspend_by_phone(ctx, CALL_CENTRE, second_card, "call-7", night)
    assert cards.get_card(ctx, SYSTEM, second_card).state is CardState.ISSUED
    assert sorted(_statuses(ctx, second_card)) == before == [("auth", "good", None), ("sign", "good", None)]
    assert window.suspend_by_phone(ctx, CALL_CENTRE, first_card, "call-7", night).replayed  # same card: replay
    second = window.suspend_by_phone(ctx, CALL_CENTRE, second_card, "call-8", night)  # its own ticket
    assert second.state is CardState.SUSPENDED and not second.replayed and len(second.certificates) == 2
    for card_id in (first_card, second_card):
        assert window.check_consistency(ctx, card_id) == []


def test_reissue_after_loss_abolishes_and_gives_a_new_form(ctx: Context) -> None:
    card_id = _issued_card(ctx)
    window.suspend_by_phone(ctx, CALL_CENTRE, card_id, "call-lost", NOW + timedelta(hours=1))
    form = window.reissue_after_loss(ctx, clerk(), card_id, ID, NOW + timedelta(days=1))
    assert len(form) == 23
    assert cards.get_card(ctx, SYSTEM, card_id).state is CardState.ABOLISHED
    assert {s for _, s, _ in _statuses(ctx, card_id)} == {"revoked"}
    assert window.reissue_after_loss(ctx, clerk(), card_id, ID, NOW + timedelta(days=1)) == form


def test_pin_reset_of_a_blocked_pin_at_the_window(ctx: Context) -> None:
    card_id = _issued_card(ctx)

    def block(client: CardClient) -> None:
        for _ in range(3):
            with pytest.raises((WrongPin, PinBlocked)):
                client.sign_message(KeyKind.AUTH, "0000", b"x")
        with pytest.raises(PinBlocked):
            client.sign_message(KeyKind.AUTH, PINS.auth, b"x")

    _client_run(ctx, card_id, block)
    assert window.tries_left(ctx, clerk(), card_id)["auth"] == 0
    window.reset_pin(ctx, clerk(), card_id, "auth", "4321", ID, NOW)
    assert window.tries_left(ctx, clerk(), card_id)["auth"] == 3
    _client_run(ctx, card_id, lambda c: c.sign_message(KeyKind.AUTH, "4321", b"x"))
    with pytest.raises(Forbidden):
        window.reset_pin(ctx, CALL_CENTRE, card_id, PinKind.AUTH, "1111", ID, NOW)


def test_address_change_endorses_the_chip_and_issues_a_new_signing_certificate(ctx: Context) -> None:
    card_id = _issued_card(ctx)
    card = cards.get_card(ctx, SYSTEM, card_id)
    new_address = "東京都千代田区霞が関2丁目1番2号"
    registry.move_resident(ctx, clerk(), card.resident_id, new_address, None, NOW + timedelta(days=2))
    revoked = [(k, s) for k, s, _ in _statuses(ctx, card_id) if k == "sign"]
    assert revoked == [("sign", "revoked")]  # the registry's move revoked it (bus reaction)
    result = window.change_address(ctx, clerk(), card_id, NOW + timedelta(days=3), new_sign_password="NEW12345")
    assert len(result.certificates) == 1
    chain = jpki.lineage(ctx, SYSTEM, int(result.certificates[0]))
    assert [v.status for v in chain] == ["revoked", "good"]
    assert window.check_consistency(ctx, card_id) == []

    def read(client: CardClient) -> tuple[str, int]:
        facts = client.read_card_info(PINS.card_info).facts
        cert = client.read_sign_certificate("NEW12345")
        return facts.address, cert.serial_number

    address_and_serial = _client_run(ctx, card_id, read)
    assert address_and_serial == (new_address, int(result.certificates[0]))
    assert window.change_address(ctx, clerk(), card_id, NOW + timedelta(days=3)).replayed


def test_moving_to_another_municipality_hands_the_card_to_its_window(ctx: Context) -> None:
    """転入: the card in use follows its holder. The new municipality's window sees it and endorses the new
    address; the old one no longer sees it; the card's history shows the hand-over and its ledger still holds."""
    card_id = _issued_card(ctx)
    resident_id = cards.get_card(ctx, SYSTEM, card_id).resident_id
    new_address = "北海道札幌市中央区北1条西2丁目1番地"
    with pytest.raises(NotFound):
        cards.get_card(ctx, clerk(SAPPORO), card_id)
    registry.move_resident(ctx, clerk(CHIYODA), resident_id, new_address, SAPPORO, NOW + timedelta(days=2))
    card = cards.get_card(ctx, clerk(SAPPORO), card_id)
    assert (card.municipality_code, card.state) == (SAPPORO, CardState.ISSUED)
    with pytest.raises(NotFound):
        cards.get_card(ctx, clerk(CHIYODA), card_id)
    with pytest.raises(NotFound):
        window.reissue_after_loss(ctx, clerk(CHIYODA), card_id, ID, NOW + timedelta(days=3))
    last = cards.card_history(ctx, clerk(SAPPORO), card_id)[-1]
    assert (last["from_state"], last["to_state"], last["reason"]) == ("issued", "issued", f"転入 {CHIYODA} → {SAPPORO}")
    result = window.change_address(ctx, clerk(SAPPORO), card_id, NOW + timedelta(days=3), new_sign_password="NEW12345")
    assert len(result.certificates) == 1
    assert _client_run(ctx, card_id, lambda client: client.read_card_info(PINS.card_info).facts.address) == new_address
    with ctx.db.connect() as conn:
        assert verify_ledger(conn).ok
