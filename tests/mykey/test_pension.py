"""Pension status confirmation (現況確認) through the platform-operator subscription: consent signed with the
card's signing key through CardClient; a move shows as changed facts once renewed; a death suspends."""

from __future__ import annotations

from datetime import timedelta

import pytest
from cryptography.hazmat.primitives import serialization

from mynacard.chip.model import KeyKind
from mynacard.errors import Forbidden
from mynacard.jpki import verifiers
from mynacard.jpki.model import CaKind
from mynacard.mykey import pension
from mynacard.mykey.pension import consent_message
from mynacard.principal import Principal, Role
from mynacard.registry import service as registry
from tests.conftest import NOW
from tests.jpki.support import CLERK, OPERATOR, Town
from tests.mykey.support import PINS, ChipCard, chip_card

PLATFORM = Principal(Role.VERIFIER, "pf-nenkin")
DER = serialization.Encoding.DER


def _enrol(ctx, card: ChipCard, contract: str) -> pension.Annuitant:  # type: ignore[no-untyped-def]
    client = card.client
    sign_cert = client.read_sign_certificate(PINS.sign).public_bytes(DER)
    signature = client.sign_message(KeyKind.SIGN, PINS.sign, consent_message("nenkin-life", contract))
    auth_cert = client.read_auth_certificate().public_bytes(DER)
    return pension.enrol(ctx, PLATFORM, "nenkin-life", contract, sign_cert, signature, auth_cert, NOW)


def test_status_confirmation_through_the_subscription(town: Town) -> None:
    ctx = town.ctx
    verifiers.register_verifier(ctx, OPERATOR, "年金PF株式会社", "platform_operator",
                                ["signature", "authentication"], "pf-nenkin", NOW)
    steady, mover, late = chip_card(town), chip_card(town, "佐藤", "一郎"), chip_card(town, "田中", "次郎")
    enrolled = _enrol(ctx, steady, "C-0001")
    assert (enrolled.status, enrolled.name) == ("confirmed", "山田　太郎")
    _enrol(ctx, mover, "C-0002")
    _enrol(ctx, late, "C-0003")
    assert _enrol(ctx, steady, "C-0001").status == "confirmed"  # a retry enrols nothing new

    day = NOW + timedelta(days=1)
    registry.move_resident(ctx, CLERK, mover.resident_id, "東京都千代田区霞が関2丁目1番2号", None, day)
    registry.record_death(ctx, CLERK, late.resident_id, day)
    by_contract = {a.contract_number: a for a in pension.confirm_all(ctx, PLATFORM, day)}
    assert by_contract["C-0001"].status == "confirmed"
    assert by_contract["C-0002"].status == "contact"
    assert by_contract["C-0003"].status == "suspended"

    later = day + timedelta(days=3)
    mover.renew(CaKind.SIGN, later)  # the window issues a signing certificate with the new address
    by_contract = {a.contract_number: a for a in pension.confirm_all(ctx, PLATFORM, later)}
    assert by_contract["C-0002"].status == "changed" and by_contract["C-0002"].detail == "変更: 住所"
    assert by_contract["C-0002"].address == "東京都千代田区霞が関2丁目1番2号"
    assert by_contract["C-0003"].status == "suspended"
    again = {a.contract_number: a.status for a in pension.confirm_all(ctx, PLATFORM, later + timedelta(days=30))}
    assert again == {"C-0001": "confirmed", "C-0002": "confirmed", "C-0003": "suspended"}


def test_only_a_platform_operator_and_a_valid_consent(town: Town) -> None:
    ctx = town.ctx
    verifiers.register_verifier(ctx, OPERATOR, "証券会社", "certified_private", ["signature"], "broker", NOW)
    card = chip_card(town)
    with pytest.raises(Forbidden):
        pension.confirm_all(ctx, Principal(Role.VERIFIER, "broker"), NOW)
    verifiers.register_verifier(ctx, OPERATOR, "年金PF株式会社", "platform_operator",
                                ["signature", "authentication"], "pf-nenkin", NOW)
    client = card.client
    sign_cert = client.read_sign_certificate(PINS.sign).public_bytes(DER)
    wrong = client.sign_message(KeyKind.SIGN, PINS.sign, consent_message("nenkin-life", "OTHER"))
    with pytest.raises(Forbidden, match="consent"):
        pension.enrol(ctx, PLATFORM, "nenkin-life", "C-0009", sign_cert, wrong,
                      client.read_auth_certificate().public_bytes(DER), NOW)
    assert pension.annuitants(ctx, PLATFORM, NOW) == []
