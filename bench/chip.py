"""Benchmark of the chip: APDUs per second in process and over vpcd, signatures per second through the card
beside raw ``cryptography`` signing with the same key in the same run.

    python bench/chip.py [--seconds 1] [--rounds 5] [--no-pcsc]

The PC/SC figures need pcscd and vsmartcard-vpcd (a private pcscd is started and stopped, see
``mynacard.chip.pcscd``). Each figure is the best of ``--rounds`` timed runs of ``--seconds`` each, the runs
of the figures compared with each other interleaved.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import platform
import ssl
import subprocess
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, date, datetime
from pathlib import Path

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import Prehashed

from mynacard.cards.personalisation import CardHolder
from mynacard.chip.apdu import encode_command
from mynacard.chip.cardfile import CardFile
from mynacard.chip.cardinfo import CardInfoSigner
from mynacard.chip.client import CardClient, digest_info
from mynacard.chip.demo_issuer import DemoCertificateIssuer
from mynacard.chip.emulator import Chip
from mynacard.chip.image import ChipImage
from mynacard.chip.issuance import InitialPins, IssuerTerminal
from mynacard.chip.issuerkey import IssuerMasterKey
from mynacard.chip.model import Application, KeyKind, PinKind
from mynacard.chip.transport import InProcessTransport, Transport
from mynacard.registry.model import BasicFacts, Sex

NOW = datetime(2026, 4, 6, 0, 30, tzinfo=UTC)
PINS = InitialPins(auth="1234", card_info="2580", residence="9753", sign="JPKI2026")


def personalised_chip() -> Chip:
    master = IssuerMasterKey(os.urandom(32))
    serial = "B000000000101"
    chip = Chip(ChipImage.blank(serial, master.card_key(serial)))
    facts = BasicFacts.parse("山田", "花子", date(1990, 1, 2), Sex.FEMALE, "東京都千代田区千代田1丁目1番1号")
    holder = CardHolder(serial, "131016", facts, date(2036, 1, 2), date(2031, 1, 2), True, True,
                        individual_number="123456789018")
    terminal = IssuerTerminal(InProcessTransport(chip), master)
    terminal.personalise(holder, DemoCertificateIssuer.generate(NOW), CardInfoSigner.generate(), NOW)
    terminal.set_initial_pins(PINS)
    chip.reset()
    return chip


def _once(action: Callable[[], int], seconds: float) -> float:
    done = 0
    start = time.perf_counter()
    while (elapsed := time.perf_counter() - start) < seconds:
        done += action()
    return done / elapsed


def rates(actions: dict[str, Callable[[], int]], seconds: float, rounds: int = 3) -> dict[str, float]:
    """Operations per second of each action (which returns how many operations it did): the best of
    ``rounds`` runs of about ``seconds`` each, the actions interleaved round by round so that a burst of load
    from other work on a shared machine falls on all of them alike."""
    best = dict.fromkeys(actions, 0.0)
    for _ in range(rounds):
        for name, action in actions.items():
            best[name] = max(best[name], _once(action, seconds))
    return best


def apdu_loops(transport: Transport) -> dict[str, Callable[[], int]]:
    select_jpki = encode_command(0x00, 0xA4, 0x04, 0x0C, Application.JPKI.aid)
    select_cert = bytes.fromhex("00A4020C02000A")
    read_256 = encode_command(0x00, 0xB0, 0x00, 0x00, le=256)
    select_pin = bytes.fromhex("00A4020C020018")
    query = bytes.fromhex("00200080")
    transport.transmit(select_jpki)
    transport.transmit(select_cert)

    def selects() -> int:
        for _ in range(50):
            transport.transmit(select_cert)
        return 50

    def reads() -> int:
        for _ in range(50):
            transport.transmit(read_256)
        return 50

    def queries() -> int:
        transport.transmit(select_pin)
        for _ in range(49):
            transport.transmit(query)
        transport.transmit(select_cert)
        return 51

    return {"SELECT EF": selects, "READ BINARY 256 B": reads, "VERIFY (tries query)": queries}


def signature_loops(transport: Transport, key: rsa.RSAPrivateKey) -> dict[str, Callable[[], int]]:
    client = CardClient(transport)
    digest = hashlib.sha256(b"bench").digest()
    info = digest_info(hashes.SHA256(), digest)
    sign_apdu = encode_command(0x80, 0x2A, 0x00, 0x80, info, 256)

    def through_card_apdu() -> int:
        # One VERIFY, then COMPUTE DIGITAL SIGNATURE only: the card's own cost per signature.
        client.select(Application.JPKI)
        client.verify(PinKind.AUTH, PINS.auth)
        client.select_ef(KeyKind.AUTH.key_fid)
        for _ in range(10):
            response = transport.transmit(sign_apdu)
            assert response[-2:] == b"\x90\x00"
        return 10

    def through_client() -> int:
        client.sign_digest(KeyKind.AUTH, PINS.auth, digest)  # select, verify, select, sign
        return 1

    return {"card: COMPUTE DIGITAL SIGNATURE": through_card_apdu, "card: CardClient.sign_digest": through_client}


def verify_loops(chip: Chip, folder: Path) -> tuple[dict[str, Callable[[], int]], CardFile]:
    """A right VERIFY writes the retry counter twice (decrement first, restore after the match): in memory,
    and written through to a card file (atomic rename and fsync each time)."""
    path = folder / "bench.card"
    key = os.urandom(32)
    CardFile.create(path, chip.image.copy(), key)
    card = CardFile(path, key)
    on_file = card.open()
    verify = encode_command(0x00, 0x20, 0x00, 0x80, PINS.auth.encode())

    def loop(target: Chip) -> Callable[[], int]:
        transport = InProcessTransport(target)
        transport.transmit(encode_command(0x00, 0xA4, 0x04, 0x0C, Application.JPKI.aid))
        transport.transmit(bytes.fromhex("00A4020C020018"))

        def run() -> int:
            for _ in range(10):
                assert transport.transmit(verify) == b"\x90\x00"
            return 10

        return run

    return {"VERIFY right PIN, chip in memory": loop(Chip(chip.image.copy())),
            "VERIFY right PIN, card file written through": loop(on_file)}, card


def raw_signing(key: rsa.RSAPrivateKey) -> Callable[[], int]:
    digest = hashlib.sha256(b"bench").digest()

    def sign() -> int:
        for _ in range(10):
            key.sign(digest, padding.PKCS1v15(), Prehashed(hashes.SHA256()))
        return 10

    return sign


def machine() -> str:
    cpu = "unknown CPU"
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    pcsc = subprocess.run(["pcscd", "--version"], capture_output=True, text=True, check=False).stdout.split("\n")[0]
    return (f"{cpu}, {os.cpu_count()} cores, Python {platform.python_version()}, {ssl.OPENSSL_VERSION}, "
            f"{pcsc or 'no pcscd'}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=1.0, help="length of each timed run")
    parser.add_argument("--rounds", type=int, default=5, help="interleaved runs per figure (the best counts)")
    parser.add_argument("--no-pcsc", action="store_true", help="skip the vpcd/PC/SC figures")
    args = parser.parse_args()
    print(f"machine: {machine()}; load average {os.getloadavg()[0]:.2f} at start")
    chip = personalised_chip()
    der = chip.image.keys[KeyKind.AUTH]
    key = serialization.load_der_private_key(der, password=None)
    assert isinstance(key, rsa.RSAPrivateKey)

    rows: list[tuple[str, str, float]] = []
    in_process = InProcessTransport(chip)
    for name, value in rates(apdu_loops(in_process), args.seconds, args.rounds).items():
        rows.append(("APDU/s", f"in-process  {name}", value))
    with tempfile.TemporaryDirectory() as folder:
        loops, card = verify_loops(chip, Path(folder))
        try:
            for name, value in rates(loops, args.seconds, args.rounds).items():
                rows.append(("APDU/s", f"in-process  {name}", value))
        finally:
            card.close()
    compared = {f"in-process  {k}": v for k, v in signature_loops(in_process, key).items()}
    compared["peer: cryptography sign, same key (PKCS#1 v1.5, SHA-256 prehashed)"] = raw_signing(key)
    for name, value in rates(compared, args.seconds, args.rounds).items():
        rows.append(("signatures/s", name, value))

    if not args.no_pcsc:
        from mynacard.chip.pcscd import PrivatePcscd, wait_for_card
        from mynacard.chip.transport import PcscTransport
        from mynacard.chip.vpcd import VpcdCard

        with PrivatePcscd() as daemon:
            os.environ.update(daemon.env)
            slot = VpcdCard(port=daemon.port)
            try:
                slot.insert(chip)
                wait_for_card(daemon.reader, present=True)
                with PcscTransport(daemon.reader) as pcsc:
                    both = {f"vpcd/PC/SC  {k}": v for k, v in apdu_loops(pcsc).items()}
                    both.update({f"in-process  {k} (again, interleaved)": v
                                 for k, v in apdu_loops(InProcessTransport(chip)).items()})
                    for name, value in rates(both, args.seconds, args.rounds).items():
                        rows.append(("APDU/s", name, value))
                    signs = {f"vpcd/PC/SC  {k}": v for k, v in signature_loops(pcsc, key).items()}
                    signs["peer: cryptography sign, same key (again, interleaved)"] = raw_signing(key)
                    for name, value in rates(signs, args.seconds, args.rounds).items():
                        rows.append(("signatures/s", name, value))
            finally:
                slot.stop()

    width = max(len(r[1]) for r in rows)
    for unit, name, value in rows:
        print(f"{name:<{width}}  {value:>10,.0f} {unit}")
    print(f"load average {os.getloadavg()[0]:.2f} at the end (other work shared the machine)")


if __name__ == "__main__":
    main()
