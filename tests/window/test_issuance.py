"""Window issuance (窓口交付) as one atomic, idempotent saga: a crash at every step, then a retry or a
recovery, always ends with a consistent card, chip and certificate state."""

from __future__ import annotations

from datetime import timedelta

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from mynacard.cards import service as cards
from mynacard.cards.model import CardState
from mynacard.chip import service as chips
from mynacard.chip.cardfile import CardFile, load_image
from mynacard.chip.client import CardClient
from mynacard.chip.issuance import InitialPins
from mynacard.chip.model import KeyKind, PinKind
from mynacard.chip.transport import InProcessTransport
from mynacard.context import Context
from mynacard.errors import InvalidInput, NotFound
from mynacard.window import service as window
from mynacard.window.model import STEPS, Document, IdentityCheck, IssuanceStatus
from tests.conftest import NOW
from tests.helpers import SYSTEM

from .support import SAPPORO, chip_cards, clerk

PINS = InitialPins(auth="1234", card_info="2345", residence="3456", sign="ABC12345")
ID = IdentityCheck([Document.DRIVING_LICENCE])


class Crash(Exception):
    """A power cut at a step boundary."""


def _crash_at(step: str) -> window.FaultHook:
    def fault(at: str) -> None:
        if at == step:
            raise Crash(at)
    return fault


def _issued_events(ctx: Context, card_id: int) -> int:
    return sum(1 for e in cards.card_history(ctx, SYSTEM, card_id) if e["to_state"] == "issued")


def _chip_works(ctx: Context, card_id: int, pins: InitialPins) -> None:
    serial = cards.get_card(ctx, SYSTEM, card_id).card_serial
    assert serial
    with CardFile(chips.card_path(ctx, serial), ctx.settings.data_key) as chip:
        client = CardClient(InProcessTransport(chip))
        cert = client.read_auth_certificate()
        signature = client.sign_message(KeyKind.AUTH, pins.auth, b"challenge")
        key = cert.public_key()
        assert isinstance(key, rsa.RSAPublicKey)
        key.verify(signature, b"challenge", padding.PKCS1v15(), hashes.SHA256())
        client.verify(PinKind.CARD_INFO, pins.card_info)
        if pins.sign is not None and client.has_sign_certificate():
            client.read_sign_certificate(pins.sign)


def _pins_on_chip(ctx: Context, card_id: int) -> set[PinKind]:
    serial = cards.get_card(ctx, SYSTEM, card_id).card_serial
    assert serial
    image = load_image(chips.card_path(ctx, serial), ctx.settings.data_key)
    return {k for k in (PinKind.AUTH, PinKind.SIGN, PinKind.CARD_INFO, PinKind.RESIDENCE)
            if image.pins[k].value is not None}


def test_issue_card_sets_pins_and_issues_once(ctx: Context) -> None:
    (card_id,) = chip_cards(ctx, 1, NOW)
    assert window.check_consistency(ctx, card_id) == []
    assert _pins_on_chip(ctx, card_id) == set()
    result = window.issue_card(ctx, clerk(), identity=ID, pins=PINS, notification_card="collected", now=NOW,
                               card_id=card_id)
    assert result.status is IssuanceStatus.ISSUED and not result.replayed
    assert result.auth_certificate_serial
    assert cards.get_card(ctx, SYSTEM, card_id).state is CardState.ISSUED
    assert window.check_consistency(ctx, card_id) == []
    _chip_works(ctx, card_id, PINS)
    again = window.issue_card(ctx, clerk(), identity=ID, pins=InitialPins("9999", "9999", "9999", "ZZZ99999"),
                              notification_card="collected", now=NOW + timedelta(minutes=1), card_id=card_id)
    assert again.replayed and again.status is IssuanceStatus.ISSUED
    assert _issued_events(ctx, card_id) == 1
    _chip_works(ctx, card_id, PINS)  # the retry did not touch the chip


def test_bad_input_changes_nothing(ctx: Context) -> None:
    (card_id,) = chip_cards(ctx, 1, NOW)
    with pytest.raises(InvalidInput) as refused:
        window.issue_card(ctx, clerk(), identity=IdentityCheck([Document.HEALTH_INSURANCE]), pins=PINS,
                          notification_card="collected", now=NOW, card_id=card_id)
    assert "B 2点" in refused.value.problems[0]
    with pytest.raises(InvalidInput):
        window.issue_card(ctx, clerk(), identity=ID, pins=InitialPins("12", "2345", "3456", "ABC12345"),
                          notification_card="collected", now=NOW, card_id=card_id)
    with pytest.raises(InvalidInput):
        window.issue_card(ctx, clerk(), identity=ID, pins=InitialPins("1234", "2345", "3456", None),
                          notification_card="collected", now=NOW, card_id=card_id)
    with pytest.raises(NotFound):
        window.issue_card(ctx, clerk(SAPPORO), identity=ID, pins=PINS, notification_card="collected", now=NOW,
                          card_id=card_id)
    assert window.issuance_of(ctx, clerk(), card_id) is None
    assert _pins_on_chip(ctx, card_id) == set()
    assert cards.get_card(ctx, SYSTEM, card_id).state is CardState.NOTICE_SENT


@pytest.mark.parametrize("step", STEPS)
def test_crash_at_every_step_then_retry(ctx: Context, step: str) -> None:
    (card_id,) = chip_cards(ctx, 1, NOW)
    with pytest.raises(Crash):
        window.issue_card(ctx, clerk(), identity=ID, pins=PINS, notification_card="collected", now=NOW,
                          card_id=card_id, fault=_crash_at(step))
    state = cards.get_card(ctx, SYSTEM, card_id).state
    assert state is (CardState.ISSUED if step == "committed" else CardState.NOTICE_SENT)
    retry = window.issue_card(ctx, clerk(), identity=ID, pins=PINS, notification_card="collected",
                              now=NOW + timedelta(minutes=2), card_id=card_id)
    assert retry.status is IssuanceStatus.ISSUED
    assert retry.replayed == (step == "committed")
    assert window.check_consistency(ctx, card_id) == []
    assert _issued_events(ctx, card_id) == 1
    _chip_works(ctx, card_id, PINS)


@pytest.mark.parametrize("step", STEPS)
def test_crash_at_every_step_then_recovery(ctx: Context, step: str) -> None:
    (card_id,) = chip_cards(ctx, 1, NOW)
    serial = cards.get_card(ctx, SYSTEM, card_id).card_serial
    assert serial
    before = load_image(chips.card_path(ctx, serial), ctx.settings.data_key).to_bytes()
    with pytest.raises(Crash):
        window.issue_card(ctx, clerk(), identity=ID, pins=PINS, notification_card="collected", now=NOW,
                          card_id=card_id, fault=_crash_at(step))
    assert window.recover(ctx, clerk(), NOW + timedelta(minutes=5)) == []  # not yet stale
    rolled = window.recover(ctx, clerk(), NOW + timedelta(hours=1))
    assert window.check_consistency(ctx, card_id) == []
    if step == "committed":
        assert rolled == []
        assert cards.get_card(ctx, SYSTEM, card_id).state is CardState.ISSUED
        return
    assert rolled == [card_id]
    assert cards.get_card(ctx, SYSTEM, card_id).state is CardState.NOTICE_SENT
    assert _pins_on_chip(ctx, card_id) == set()
    assert load_image(chips.card_path(ctx, serial), ctx.settings.data_key).to_bytes() == before
    # the resident comes back another day: a fresh attempt issues the card
    later = window.issue_card(ctx, clerk(), identity=ID, pins=PINS, notification_card="none",
                              now=NOW + timedelta(days=1), card_id=card_id)
    assert later.status is IssuanceStatus.ISSUED and not later.replayed
    assert window.check_consistency(ctx, card_id) == []


def test_cancel_cannot_undo_an_issued_card(ctx: Context) -> None:
    (card_id,) = chip_cards(ctx, 1, NOW)
    window.issue_card(ctx, clerk(), identity=ID, pins=PINS, notification_card="collected", now=NOW, card_id=card_id)
    assert window.cancel_issuance(ctx, clerk(), card_id, NOW) is IssuanceStatus.ISSUED
    _chip_works(ctx, card_id, PINS)
    assert window.recover(ctx, clerk(), NOW + timedelta(days=1)) == []
    assert cards.get_card(ctx, SYSTEM, card_id).state is CardState.ISSUED


@pytest.mark.parametrize("step", STEPS)
def test_killed_terminal_process_then_retry(ctx: Context, step: str) -> None:
    """The terminal's process is killed at each step (no exception handlers, no clean-up); a retry from
    another process completes the issuance exactly once."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    (card_id,) = chip_cards(ctx, 1, NOW)
    root = Path(__file__).resolve().parents[2]
    env = {**os.environ, "PYTHONPATH": f"{root / 'src'}{os.pathsep}{root}"}
    done = subprocess.run([sys.executable, "-m", "tests.window.crash_child", str(ctx.settings.home),
                           ctx.settings.database_url, str(card_id), step], env=env, cwd=root,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 137, done.stderr[-2000:]
    state = cards.get_card(ctx, SYSTEM, card_id).state
    assert state is (CardState.ISSUED if step == "committed" else CardState.NOTICE_SENT)
    retry = window.issue_card(ctx, clerk(), identity=ID, pins=PINS, notification_card="collected",
                              now=NOW + timedelta(minutes=2), card_id=card_id)
    assert retry.status is IssuanceStatus.ISSUED
    assert window.check_consistency(ctx, card_id) == []
    assert _issued_events(ctx, card_id) == 1
    _chip_works(ctx, card_id, PINS)


def test_issue_by_scanned_notice_closes_the_notice_once(ctx: Context) -> None:
    from mynacard.office import service as office
    from mynacard.office.model import NoticeState
    from tests.office.support import EVENING, open_windows

    (card_id,) = chip_cards(ctx, 1, NOW, notice=False)
    open_windows(ctx)
    office.check_received_cards(ctx, SYSTEM, "131016", EVENING - timedelta(hours=1))
    office.run_pre_issuance_setup(ctx, SYSTEM, "131016", EVENING)
    (number,) = office.send_notices(ctx, SYSTEM, "131016", EVENING)
    with pytest.raises(NotFound):
        window.issue_card(ctx, clerk(SAPPORO), identity=ID, pins=PINS, notification_card="collected",
                          now=EVENING, notice_number=number)
    with pytest.raises(Crash):
        window.issue_card(ctx, clerk(), identity=ID, pins=PINS, notification_card="collected", now=EVENING,
                          notice_number=number, fault=_crash_at("collected"))
    assert [n["notice_number"] for n in office.notices_of(ctx, SYSTEM, "131016", NoticeState.SENT)] == [number]
    result = window.issue_card(ctx, clerk(), identity=ID, pins=PINS, notification_card="collected",
                               now=EVENING, notice_number=number)
    assert result.card_id == card_id and result.idempotency_key == number and not result.replayed
    assert [n["notice_number"] for n in office.notices_of(ctx, SYSTEM, "131016", NoticeState.COLLECTED)] == [number]
    again = window.issue_card(ctx, clerk(), identity=ID, pins=PINS, notification_card="collected",
                              now=EVENING, notice_number=number)
    assert again.replayed
    assert window.check_consistency(ctx, card_id) == []


def test_two_terminals_at_once_issue_once(ctx: Context) -> None:
    """Two terminals scan the same notice at the same moment: the card is issued once, with one holder's
    PINs; the other terminal gets the same answer (replayed) or a clear conflict, never a second issuance."""
    import threading

    from mynacard.errors import Conflict

    (card_id,) = chip_cards(ctx, 1, NOW)
    other = InitialPins(auth="9876", card_info="8765", residence="7654", sign="XYZ98765")
    outcomes: list[object] = []

    def terminal(pins: InitialPins) -> None:
        try:
            outcomes.append(window.issue_card(ctx, clerk(), identity=ID, pins=pins, notification_card="collected",
                                              now=NOW, card_id=card_id))
        except Conflict as exc:
            outcomes.append(exc)

    threads = [threading.Thread(target=terminal, args=(p,)) for p in (PINS, other)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    fresh = [o for o in outcomes if isinstance(o, window.IssuanceResult) and not o.replayed]
    assert len(fresh) == 1 and len(outcomes) == 2
    assert _issued_events(ctx, card_id) == 1
    assert window.check_consistency(ctx, card_id) == []
    # exactly one holder's PINs work on the chip
    from mynacard.chip.client import CardError

    works = []
    for pins in (PINS, other):
        try:
            _chip_works(ctx, card_id, pins)
            works.append(pins)
        except CardError:
            pass
    assert len(works) == 1


def test_cli_recover_and_check(ctx: Context, monkeypatch: pytest.MonkeyPatch) -> None:
    from typer.testing import CliRunner

    from mynacard.cli import app

    (card_id,) = chip_cards(ctx, 1, NOW)
    with pytest.raises(Crash):
        window.issue_card(ctx, clerk(), identity=ID, pins=PINS, notification_card="collected", now=NOW,
                          card_id=card_id, fault=_crash_at("pins_set"))
    monkeypatch.setenv("MYNACARD_DATABASE_URL", ctx.settings.database_url)
    runner = CliRunner()
    home = str(ctx.settings.home)
    open_now = runner.invoke(app, ["window", "check", str(card_id), "--home", home])
    assert open_now.exit_code == 1 and "still open" in open_now.output
    done = runner.invoke(app, ["window", "recover", "--older-than", "0", "--home", home])
    assert done.exit_code == 0 and f"[{card_id}]" in done.output
    assert runner.invoke(app, ["window", "check", str(card_id), "--home", home]).exit_code == 0
    assert _pins_on_chip(ctx, card_id) == set()
