"""MyKey IDs through the card (CardClient), facility links, and renewal through the certificate lineage."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest
from sqlalchemy import select

from mynacard.chip.client import WrongPin
from mynacard.context import Context
from mynacard.errors import Conflict, Forbidden, NotFound
from mynacard.mykey import platform
from mynacard.mykey.model import MYKEY_ALPHABET, FacilityKind
from mynacard.mykey.tables import mykey_certificates, mykey_ids
from mynacard.mykey.terminal import prove
from mynacard.principal import Principal, Role
from tests.conftest import NOW
from tests.jpki.support import CHIYODA, SAPPORO, Town
from tests.mykey.support import PINS, ChipCard, chip_card

LIBRARY_CLERK = Principal(Role.CLERK, "library-desk", CHIYODA)


def _proof(ctx: Context, card: ChipCard, now: datetime, pin: str = PINS.auth) -> platform.CardProof:
    return prove(card.client, platform.issue_challenge(ctx, now), pin)


def _facilities(ctx: Context) -> None:
    staff = LIBRARY_CLERK
    platform.register_facility(ctx, staff, "chiyoda-lib", "千代田区立図書館", FacilityKind.LIBRARY, CHIYODA, NOW)
    platform.register_facility(ctx, staff, "chiyoda-gym", "千代田区総合体育館", FacilityKind.SPORTS, CHIYODA, NOW)
    platform.register_facility(ctx, staff, "chiyoda-bus", "風ぐるま", FacilityKind.BUS, CHIYODA, NOW,
                               pin_required=False)


def test_library_and_sports_cards_survive_renewal(town: Town) -> None:
    """Acceptance: one MyKey ID, a library card and a sports-facility card linked, the authentication
    certificate renewed (new key in the chip), both facilities still recognise the holder — all through
    CardClient."""
    ctx = town.ctx
    card = chip_card(town)
    _facilities(ctx)
    mykey_id = platform.create_mykey_id(ctx, _proof(ctx, card, NOW), NOW)
    assert len(mykey_id) == 8 and set(mykey_id) <= set(MYKEY_ALPHABET)
    assert platform.link_member(ctx, LIBRARY_CLERK, "chiyoda-lib", "L-000123", _proof(ctx, card, NOW), NOW) == mykey_id
    assert platform.link_member(ctx, LIBRARY_CLERK, "chiyoda-gym", "G77", _proof(ctx, card, NOW), NOW) == mykey_id
    old_serial = card.client.read_auth_certificate().serial_number

    later = NOW + timedelta(days=30)
    new_serial = card.renew_auth_certificate(later)
    assert new_serial != old_serial
    assert card.client.read_auth_certificate().serial_number == new_serial

    at_library = platform.recognise(ctx, "chiyoda-lib", _proof(ctx, card, later), later)
    at_gym = platform.recognise(ctx, "chiyoda-gym", _proof(ctx, card, later), later)
    assert (at_library.member_number, at_library.mykey_id) == ("L-000123", mykey_id)
    assert (at_gym.member_number, at_gym.mykey_id) == ("G77", mykey_id)
    assert at_library.certificate_serial == f"{new_serial:X}"
    with ctx.db.connect() as conn:
        bound = dict(conn.execute(select(mykey_certificates.c.serial, mykey_certificates.c.how)).all())
        assert conn.execute(select(mykey_ids.c.mykey_id)).scalars().all() == [mykey_id]
    assert bound == {f"{old_serial:X}": "card", f"{new_serial:X}": "lineage"}
    assert sorted(platform.links_of(ctx, Principal(Role.RESIDENT, str(card.resident_id)), mykey_id)) == [
        ("chiyoda-gym", "千代田区総合体育館"), ("chiyoda-lib", "千代田区立図書館")]


def test_the_old_certificate_no_longer_works_after_renewal(town: Town) -> None:
    ctx = town.ctx
    card = chip_card(town)
    _facilities(ctx)
    platform.create_mykey_id(ctx, _proof(ctx, card, NOW), NOW)
    platform.link_member(ctx, LIBRARY_CLERK, "chiyoda-lib", "L1", _proof(ctx, card, NOW), NOW)
    old = prove(card.client)  # a copy of the old certificate, as a skimmer would keep
    later = NOW + timedelta(days=1)
    card.renew_auth_certificate(later)
    with pytest.raises(Forbidden, match="revoked"):
        platform.recognise(ctx, "chiyoda-bus", old, later)


def test_one_mykey_id_per_person_and_no_number(town: Town) -> None:
    ctx = town.ctx
    card = chip_card(town)
    first = platform.create_mykey_id(ctx, _proof(ctx, card, NOW), NOW)
    assert platform.create_mykey_id(ctx, _proof(ctx, card, NOW), NOW) == first
    other = chip_card(town, "佐藤", "花子")
    assert platform.create_mykey_id(ctx, _proof(ctx, other, NOW), NOW) != first
    columns = {c.name for c in mykey_ids.columns} | {c.name for c in mykey_certificates.columns}
    assert not any("number" in c for c in columns)


def test_pin_and_challenge_are_required(town: Town) -> None:
    ctx = town.ctx
    card = chip_card(town)
    _facilities(ctx)
    with pytest.raises(WrongPin):
        _proof(ctx, card, NOW, pin="9999")
    with pytest.raises(Forbidden, match="PIN"):
        platform.create_mykey_id(ctx, prove(card.client), NOW)
    proof = _proof(ctx, card, NOW)
    platform.create_mykey_id(ctx, proof, NOW)
    with pytest.raises(Forbidden, match="challenge"):
        platform.create_mykey_id(ctx, proof, NOW)  # a replayed signature: the challenge is used up
    with pytest.raises(Forbidden):
        platform.recognise(ctx, "chiyoda-lib", prove(card.client), NOW)  # the library wants the PIN


def test_no_pin_touch_on_the_bus_and_members_only(town: Town) -> None:
    ctx = town.ctx
    card = chip_card(town)
    _facilities(ctx)
    with pytest.raises(NotFound, match="no MyKey ID"):
        platform.recognise(ctx, "chiyoda-bus", prove(card.client), NOW)
    platform.create_mykey_id(ctx, _proof(ctx, card, NOW), NOW)
    with pytest.raises(NotFound, match="not a member"):
        platform.recognise(ctx, "chiyoda-bus", prove(card.client), NOW)
    platform.link_member(ctx, LIBRARY_CLERK, "chiyoda-bus", "BUS-9", _proof(ctx, card, NOW), NOW)
    assert platform.recognise(ctx, "chiyoda-bus", prove(card.client), NOW).member_number == "BUS-9"


def test_links_are_unique_and_scoped(town: Town) -> None:
    ctx = town.ctx
    one, two = chip_card(town), chip_card(town, "佐藤", "花子")
    _facilities(ctx)
    for c in (one, two):
        platform.create_mykey_id(ctx, _proof(ctx, c, NOW), NOW)
    platform.link_member(ctx, LIBRARY_CLERK, "chiyoda-lib", "L1", _proof(ctx, one, NOW), NOW)
    platform.link_member(ctx, LIBRARY_CLERK, "chiyoda-lib", "L1", _proof(ctx, one, NOW), NOW)  # a retry
    with pytest.raises(Conflict):
        platform.link_member(ctx, LIBRARY_CLERK, "chiyoda-lib", "L1", _proof(ctx, two, NOW), NOW)
    with pytest.raises(Conflict):
        platform.link_member(ctx, LIBRARY_CLERK, "chiyoda-lib", "L2", _proof(ctx, one, NOW), NOW)
    sapporo = Principal(Role.CLERK, "sapporo", SAPPORO)
    with pytest.raises(NotFound):
        platform.link_member(ctx, sapporo, "chiyoda-lib", "L3", _proof(ctx, two, NOW), NOW)
    with pytest.raises(Forbidden):
        platform.register_facility(ctx, sapporo, "x-lib", "x", FacilityKind.LIBRARY, CHIYODA, NOW)
