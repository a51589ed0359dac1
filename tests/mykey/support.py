"""Builders for the MyKey tests: a resident of Chiyoda-ku with a real emulated chip whose keys were made inside
it and whose certificates the JPKI CAs issued, and the window's renewal of its authentication certificate."""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import date, datetime, timedelta

from mynacard.cards import service as cards
from mynacard.cards.personalisation import CardHolder
from mynacard.chip.cardinfo import CardInfoSigner
from mynacard.chip.client import CardClient
from mynacard.chip.emulator import Chip
from mynacard.chip.image import ChipImage
from mynacard.chip.issuance import InitialPins, IssuerTerminal
from mynacard.chip.issuerkey import IssuerMasterKey
from mynacard.chip.model import Application, KeyKind
from mynacard.chip.transport import InProcessTransport
from mynacard.context import Context
from mynacard.jpki import service as jpki
from mynacard.jpki.model import CaKind
from mynacard.registry import service as registry
from mynacard.registry.model import BasicFacts
from tests.conftest import NOW
from tests.jpki.support import CHIYODA, CLERK, MANUFACTURER, SYSTEM, Town

PINS = InitialPins(auth="1234", card_info="2580", residence="9753", sign="JPKI2026")
NUMBER = "123456789018"  # only on the chip's card-info application; MyKey never reads it
MASTER = IssuerMasterKey(os.urandom(32))
_SIGNER: list[CardInfoSigner] = []


def card_info_signer() -> CardInfoSigner:
    if not _SIGNER:
        _SIGNER.append(CardInfoSigner.generate())
    return _SIGNER[0]


@dataclass
class ChipCard:
    """A resident's card in a reader: the emulated chip and the client other parts use."""

    ctx: Context
    card_id: int
    resident_id: int
    chip: Chip

    @property
    def client(self) -> CardClient:
        return CardClient(InProcessTransport(self.chip))

    def renew_auth_certificate(self, now: datetime) -> int:
        """利用者証明用電子証明書の更新 at the window: a new key pair made in the chip, the certificate from the
        JPKI CA (linked old → new), written to the chip. Returns the new serial."""
        return self.renew(CaKind.AUTH, now)

    def renew(self, kind: CaKind, now: datetime) -> int:
        terminal = IssuerTerminal(InProcessTransport(self.chip), MASTER)
        terminal.open(Application.JPKI)
        spki = terminal.generate_key(KeyKind.AUTH if kind is CaKind.AUTH else KeyKind.SIGN)
        record = jpki.reissue_certificate(self.ctx, CLERK, self.card_id, kind, spki, now)
        terminal.write(0x000A if kind is CaKind.AUTH else 0x0001, record.der)
        self.chip.reset()
        return record.view.serial


def chip_card(town: Town, family: str = "山田", given: str = "太郎", birth: date = date(1980, 1, 1),
              resident_id: int | None = None) -> ChipCard:
    """A handed-over card whose chip generated its own keys and holds JPKI certificates for them (the pool
    certificates of the pipeline are superseded as a reprint's would be)."""
    ctx = town.ctx
    rid = resident_id if resident_id is not None else town.resident(family, given, birth)
    made = town.card(rid)
    view = cards.get_card(ctx, SYSTEM, made.id)
    person = registry.get_resident(ctx, SYSTEM, rid)
    holder = CardHolder(view.card_serial or made.serial, person.municipality_code, person.facts,
                        view.card_valid_until or date(2035, 1, 1), date(2030, 1, 1), True, True,
                        individual_number=NUMBER, card_id=made.id, resident_id=rid)
    serial = holder.card_serial
    chip = Chip(ChipImage.blank(serial, MASTER.card_key(serial)))
    terminal = IssuerTerminal(InProcessTransport(chip), MASTER)
    terminal.personalise(holder, jpki.JpkiIssuer(ctx, MANUFACTURER), card_info_signer(), NOW)
    terminal.set_initial_pins(PINS)
    chip.reset()
    return ChipCard(ctx, made.id, rid, chip)


def household(ctx: Context, names: list[tuple[str, str, date, str]]) -> list[int]:
    """One household of Chiyoda-ku (the first is its head): (given name, kana, birth, relationship)."""
    people = [registry.NewResident(CHIYODA, BasicFacts.parse("鈴木", given, birth, "1" if i == 0 else "2",
                                                             "東京都千代田区神田1番1号"),
                                   "スズキ", kana, household_key="suzuki", relationship=relationship)
              for i, (given, kana, birth, relationship) in enumerate(names)]
    return registry.register_residents(ctx, SYSTEM, people, NOW - timedelta(days=40))


def portal_session(ctx: Context, resident_id: int, now: datetime) -> str:
    """A Mynaportal session for a resident whose card login the JPKI relying party verified (the login page
    itself is the portal's test). On PostgreSQL the agency stores are schemas that outlive the per-test
    truncation, so they are dropped first, as the exchange tests do."""
    from mynacard.exchange.store import drop_all_agency_stores
    from mynacard.portal import service as portal
    from mynacard.portal.model import CardLogin

    with ctx.db.begin() as conn:
        drop_all_agency_stores(conn)
    return portal.open_session(ctx, CardLogin("1A2B3C", resident_id, now), now).token
