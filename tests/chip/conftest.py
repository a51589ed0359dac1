"""Fixtures of the chip tests: test authorities, a personalised card, and the card over each transport.

RSA-2048 key generation is the slow part, so the test CA, the card-info signer and one personalised chip
image are made once per session; every test gets its own copy of the image (a fresh card with the same
keys), so tests never see each other's PIN counters or files.

``transport`` runs a test twice: over the in-process transport and through the real PC/SC stack — a private
pcscd with the vsmartcard vpcd driver, the chip connected to it as a virtual card, pyscard as the client.
Under CI=true the PC/SC variant must run (``require`` fails instead of skipping).
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from mynacard.cards.personalisation import CardHolder
from mynacard.chip.cardinfo import CardInfoSigner
from mynacard.chip.demo_issuer import DemoCertificateIssuer
from mynacard.chip.emulator import Chip
from mynacard.chip.image import ChipImage
from mynacard.chip.issuance import InitialPins, IssuerTerminal, PersonalisedCard
from mynacard.chip.issuerkey import IssuerMasterKey
from mynacard.chip.pcscd import PcscdUnavailable, PrivatePcscd, wait_for_card
from mynacard.chip.transport import InProcessTransport, PcscTransport, Transport
from mynacard.chip.vpcd import VpcdCard
from mynacard.registry.model import BasicFacts, Sex
from mynacard.sim.photos import face_photo
from tests.conftest import NOW, require

SERIAL = "A000000012301"
NUMBER = "123456789018"
RESIDENT_CODE = "12345678903"
PINS = InitialPins(auth="1234", card_info="2580", residence="9753", sign="JPKI2026")


@dataclass(frozen=True)
class Authorities:
    master: IssuerMasterKey
    issuer: DemoCertificateIssuer
    signer: CardInfoSigner


@dataclass(frozen=True)
class CardSetup:
    """A personalised card image with everything a test needs to know about it."""

    image: ChipImage
    holder: CardHolder
    personalised: PersonalisedCard
    pins: InitialPins
    number: str
    resident_code: str

    def chip(self) -> Chip:
        return Chip(self.image.copy())


def make_holder(serial: str = SERIAL, *, wants_sign: bool = True,
                birth: date = date(1985, 5, 5)) -> CardHolder:
    facts = BasicFacts.parse("山田", "太郎", birth, Sex.MALE, "東京都千代田区千代田1丁目1番1号")
    return CardHolder(serial, "131016", facts, date(2036, 5, 5), date(2031, 5, 5), wants_sign, True,
                      individual_number=NUMBER, photo=face_photo(1))


def key_secrets(image: ChipImage) -> list[bytes]:
    """32-byte windows of every private component (d, p, q, dP, dQ, qInv) of the chip's keys."""
    out = []
    for der in image.keys.values():
        key = serialization.load_der_private_key(der, password=None)
        assert isinstance(key, rsa.RSAPrivateKey)
        n = key.private_numbers()
        for value in (n.d, n.p, n.q, n.dmp1, n.dmq1, n.iqmp):
            raw = value.to_bytes((value.bit_length() + 7) // 8, "big")
            out += [raw[:32], raw[len(raw) // 2:len(raw) // 2 + 32]]
    return out


@pytest.fixture(scope="session")
def authorities() -> Authorities:
    return Authorities(IssuerMasterKey(os.urandom(32)), DemoCertificateIssuer.generate(NOW),
                       CardInfoSigner.generate())


def personalise(authorities: Authorities, holder: CardHolder, pins: InitialPins | None = PINS,
                resident_code: str | None = RESIDENT_CODE) -> tuple[Chip, PersonalisedCard]:
    chip = Chip(ChipImage.blank(holder.card_serial, authorities.master.card_key(holder.card_serial)))
    terminal = IssuerTerminal(InProcessTransport(chip), authorities.master)
    made = terminal.personalise(holder, authorities.issuer, authorities.signer, NOW,
                                resident_code=resident_code)
    if pins is not None:
        terminal.set_initial_pins(pins)
    chip.reset()
    return chip, made


@pytest.fixture(scope="session")
def card_setup(authorities: Authorities) -> CardSetup:
    holder = make_holder()
    chip, made = personalise(authorities, holder)
    return CardSetup(chip.image.copy(), holder, made, PINS, NUMBER, RESIDENT_CODE)


@pytest.fixture
def chip(card_setup: CardSetup) -> Chip:
    """A fresh copy of the personalised card."""
    return card_setup.chip()


# --- PC/SC -----------------------------------------------------------------------------------------

@dataclass
class PcscLab:
    pcscd: PrivatePcscd
    slot: VpcdCard

    def insert(self, chip: Chip) -> None:
        """Pull whatever card is in the reader, insert ``chip``, and wait until PC/SC sees it."""
        self.slot.remove()
        wait_for_card(self.pcscd.reader, present=False)
        self.slot.insert(chip)
        wait_for_card(self.pcscd.reader, present=True)

    def use(self, chip: Chip) -> None:
        """Have ``chip`` answer in the reader — swapped in place when a card is already there (it starts
        from its reset state; PcscTransport resets the card when it disconnects anyway)."""
        if self.slot.connected:
            self.slot.swap(chip)
        else:
            self.insert(chip)

    def env(self) -> dict[str, str]:
        return {**os.environ, **self.pcscd.env}


@pytest.fixture(scope="session")
def pcsc_lab() -> Iterator[PcscLab]:
    """A private pcscd with a vpcd reader and a card slot fed by this process (session-wide)."""
    problem = None
    if not shutil.which("pcscd") and not os.path.exists("/usr/sbin/pcscd"):
        problem = "pcscd is not installed"
    daemon = PrivatePcscd()
    if problem is None:
        try:
            daemon.start()
        except PcscdUnavailable as exc:
            problem = str(exc)
    require(problem is None, f"PC/SC stack unavailable: {problem}")
    # The PC/SC client library reads the socket path once per process: set it before the first use.
    os.environ.update(daemon.env)
    slot = VpcdCard(port=daemon.port)
    try:
        yield PcscLab(daemon, slot)
    finally:
        slot.stop()
        daemon.stop()


@pytest.fixture
def opensc_tools() -> None:
    missing = [t for t in ("opensc-tool", "pkcs15-tool", "pkcs15-crypt", "pkcs11-tool", "openssl")
               if shutil.which(t) is None]
    require(not missing, f"OpenSC/OpenSSL tools missing: {', '.join(missing)}")


def run_tool(lab: PcscLab, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(list(args), capture_output=True, text=True, env=lab.env(), timeout=60, check=False)


@pytest.fixture(params=["in-process", pytest.param("pcsc", marks=pytest.mark.pcsc)])
def transport(request: pytest.FixtureRequest, chip: Chip) -> Iterator[Transport]:
    """The test's card, in process or in the vpcd reader through pcscd."""
    if request.param == "in-process":
        t: Transport = InProcessTransport(chip)
        yield t
        t.close()
        return
    lab: PcscLab = request.getfixturevalue("pcsc_lab")
    lab.use(chip)
    with PcscTransport(lab.pcscd.reader) as pcsc:
        yield pcsc
