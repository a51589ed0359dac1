"""Interoperability with software nobody here wrote: pcscd + vsmartcard vpcd + OpenSC + OpenSSL.

The emulated card sits in a vpcd reader of a private pcscd (see ``conftest.pcsc_lab``). OpenSC must take it
for a JPKI card, ``pkcs15-tool`` must list its certificates, and signatures made through OpenSC
(``pkcs15-crypt``, and ``pkcs11-tool`` with ``opensc-pkcs11.so``) and through pyscard's own API with the raw
APDUs of the real-card traces must verify with ``openssl``. The last test runs ``mynacard card serve-vpcd``
as its own process on the reader's second slot. Under CI=true none of this may skip.
"""

from __future__ import annotations

import base64
import hashlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization

from mynacard.chip.apdu import encode_command
from mynacard.chip.cardfile import CardFile, load_image
from mynacard.chip.client import CardClient, digest_info
from mynacard.chip.emulator import Chip
from mynacard.chip.model import Application, PinKind
from mynacard.chip.pcscd import wait_for_card
from mynacard.chip.transport import CardTransportError, PcscTransport

from .conftest import CardSetup, PcscLab, run_tool

pytestmark = pytest.mark.pcsc

PKCS11_MODULE_CANDIDATES = ("/usr/lib/x86_64-linux-gnu/opensc-pkcs11.so",
                            "/usr/lib/aarch64-linux-gnu/opensc-pkcs11.so", "/usr/lib64/opensc-pkcs11.so")


@pytest.fixture
def lab(pcsc_lab: PcscLab, opensc_tools: None, chip: Chip, tmp_path: Path) -> Iterator[PcscLab]:
    """The lab with this test's card really inserted (OpenSC connects on its own), and OpenSC's caches
    kept out of the user's home."""
    pcsc_lab.insert(chip)
    old_home = os.environ.get("HOME")
    os.environ["HOME"] = str(tmp_path)
    try:
        yield pcsc_lab
    finally:
        if old_home is None:
            os.environ.pop("HOME", None)
        else:
            os.environ["HOME"] = old_home


def _pem(path: Path, der: bytes | None) -> Path:
    assert der is not None
    path.write_bytes(x509.load_der_x509_certificate(der).public_bytes(serialization.Encoding.PEM))
    return path


def _openssl_verify(tmp_path: Path, cert_pem: Path, message: bytes, signature: bytes) -> str:
    (tmp_path / "msg").write_bytes(message)
    (tmp_path / "sig").write_bytes(signature)
    pub = tmp_path / "pub.pem"
    subprocess.run(["openssl", "x509", "-in", str(cert_pem), "-pubkey", "-noout", "-out", str(pub)],
                   check=True)
    result = subprocess.run(["openssl", "dgst", "-sha256", "-verify", str(pub), "-signature",
                             str(tmp_path / "sig"), str(tmp_path / "msg")], capture_output=True, text=True,
                            check=False)
    return result.stdout.strip() + result.stderr.strip()


def test_opensc_takes_the_emulated_card_for_a_jpki_card(lab: PcscLab) -> None:
    listing = run_tool(lab, "opensc-tool", "--list-readers")
    assert lab.pcscd.reader in listing.stdout
    name = run_tool(lab, "opensc-tool", "--reader", lab.pcscd.reader, "--name")
    assert name.returncode == 0, name.stderr
    assert name.stdout.strip().splitlines()[0] == "jpki"
    atr = run_tool(lab, "opensc-tool", "--reader", lab.pcscd.reader, "--atr")
    assert "3b:e0:00:ff:81:31:fe:45:14" in atr.stdout.lower()


def test_pkcs15_tool_lists_the_certificates(lab: PcscLab, card_setup: CardSetup, tmp_path: Path) -> None:
    listing = run_tool(lab, "pkcs15-tool", "--reader", lab.pcscd.reader, "--list-certificates")
    assert listing.returncode == 0, listing.stderr
    out = listing.stdout
    for label, path in (("User Authentication Certificate", "000a"),
                        ("Digital Signature Certificate", "0001"),
                        ("User Authentication Certificate CA", "000b"),
                        ("Digital Signature Certificate CA", "0002")):
        assert f"[{label}]" in out and f"Path           : {path}" in out
    read = run_tool(lab, "pkcs15-tool", "--reader", lab.pcscd.reader, "--read-certificate", "01",
                    "--output", str(tmp_path / "auth.pem"))
    assert read.returncode == 0, read.stderr
    cert = x509.load_pem_x509_certificate((tmp_path / "auth.pem").read_bytes())
    assert cert.public_bytes(serialization.Encoding.DER) == card_setup.personalised.auth_certificate
    pins = run_tool(lab, "pkcs15-tool", "--reader", lab.pcscd.reader, "--list-pins")
    assert "User Authentication PIN" in pins.stdout and "Tries left     : 3" in pins.stdout
    assert "Digital Signature PIN" in pins.stdout and "Tries left     : 5" in pins.stdout


def test_a_signature_through_opensc_verifies_with_openssl(lab: PcscLab, card_setup: CardSetup,
                                                          tmp_path: Path) -> None:
    message = "電子申請 2026-04-06".encode()
    (tmp_path / "digest").write_bytes(hashlib.sha256(message).digest())
    result = run_tool(lab, "pkcs15-crypt", "--reader", lab.pcscd.reader, "--sign", "--key", "01", "--pkcs1",
                      "--sha-256", "--input", str(tmp_path / "digest"), "--output", str(tmp_path / "sig.bin"),
                      "--pin", card_setup.pins.auth)
    assert result.returncode == 0, result.stderr
    auth_pem = _pem(tmp_path / "auth.pem", card_setup.personalised.auth_certificate)
    assert _openssl_verify(tmp_path, auth_pem, message, (tmp_path / "sig.bin").read_bytes()) == "Verified OK"
    # The chain verifies with OpenSSL too (demo CA).
    ca = CardClient(PcscTransport(lab.pcscd.reader)).read_auth_ca_certificate()
    (tmp_path / "ca.pem").write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    chain = subprocess.run(["openssl", "verify", "-CAfile", str(tmp_path / "ca.pem"), str(auth_pem)],
                           capture_output=True, text=True, check=False)
    assert chain.stdout.strip().endswith("OK"), chain.stdout + chain.stderr


def test_pkcs11_tool_signs_with_the_signing_key(lab: PcscLab, card_setup: CardSetup, tmp_path: Path) -> None:
    module = next((m for m in PKCS11_MODULE_CANDIDATES if Path(m).exists()), None)
    assert module is not None, "opensc-pkcs11.so not found"
    slots = run_tool(lab, "pkcs11-tool", "--module", module, "--list-slots")
    assert "JPKI (Digital Signature PIN)" in slots.stdout, slots.stdout
    message = b"contract v1"
    (tmp_path / "msg").write_bytes(message)
    result = run_tool(lab, "pkcs11-tool", "--module", module, "--token-label", "JPKI (Digital Signature PIN)",
                      "--login", "--pin", card_setup.pins.sign or "", "--sign",
                      "--mechanism", "SHA256-RSA-PKCS", "--id", "02",
                      "--input-file", str(tmp_path / "msg"), "--output-file", str(tmp_path / "s"))
    assert result.returncode == 0, result.stdout + result.stderr
    sign_pem = _pem(tmp_path / "sign.pem", card_setup.personalised.sign_certificate)
    assert _openssl_verify(tmp_path, sign_pem, message, (tmp_path / "s").read_bytes()) == "Verified OK"


def test_a_wrong_pin_through_opensc_uses_a_try_on_the_card(lab: PcscLab, chip: Chip, tmp_path: Path) -> None:
    (tmp_path / "digest").write_bytes(bytes(32))
    result = run_tool(lab, "pkcs15-crypt", "--reader", lab.pcscd.reader, "--sign", "--key", "01", "--pkcs1",
                      "--sha-256", "--input", str(tmp_path / "digest"), "--output", str(tmp_path / "sig"),
                      "--pin", "0000")
    assert result.returncode != 0
    assert chip.image.pins[PinKind.AUTH].tries_left == 2
    pins = run_tool(lab, "pkcs15-tool", "--reader", lab.pcscd.reader, "--list-pins")
    assert "Tries left     : 2" in pins.stdout


def test_pyscard_raw_apdus_sign_and_openssl_verifies(lab: PcscLab, card_setup: CardSetup,
                                                     tmp_path: Path) -> None:
    """The tex2e trace through pyscard's own reader API: SELECT JPKI, SELECT 0018, VERIFY, SELECT 0017,
    80 2A 00 80 with a SHA-256 DigestInfo."""
    from smartcard.System import readers

    reader = next(r for r in readers() if str(r) == lab.pcscd.reader)
    connection = reader.createConnection()
    connection.connect()
    try:
        def send(apdu: bytes) -> tuple[bytes, int]:
            data, sw1, sw2 = connection.transmit(list(apdu))
            return bytes(data), (sw1 << 8) | sw2

        message = b"pyscard raw"
        assert send(encode_command(0x00, 0xA4, 0x04, 0x0C, Application.JPKI.aid))[1] == 0x9000
        assert send(bytes.fromhex("00A4020C020018"))[1] == 0x9000
        assert send(encode_command(0x00, 0x20, 0x00, 0x80, card_setup.pins.auth.encode()))[1] == 0x9000
        assert send(bytes.fromhex("00A4020C020017"))[1] == 0x9000
        info = digest_info(hashes.SHA256(), hashlib.sha256(message).digest())
        signature, sw = send(encode_command(0x80, 0x2A, 0x00, 0x80, info, 256))
        assert sw == 0x9000 and len(signature) == 256
        # Extended-length READ BINARY goes through pcscd and vpcd as well.
        assert send(bytes.fromhex("00A4020C02000A"))[1] == 0x9000
        cert, sw = send(encode_command(0x00, 0xB0, 0x00, 0x00, le=65536, extended=True))
        assert sw == 0x9000 and cert == card_setup.personalised.auth_certificate
    finally:
        connection.disconnect()
    auth_pem = _pem(tmp_path / "auth.pem", cert)
    assert _openssl_verify(tmp_path, auth_pem, message, signature) == "Verified OK"


def test_pulling_the_card_out_is_seen_by_pc_sc(lab: PcscLab, chip: Chip) -> None:
    transport = PcscTransport(lab.pcscd.reader)
    try:
        assert CardClient(transport).manufacture_number() == chip.image.serial
        lab.slot.remove()
        wait_for_card(lab.pcscd.reader, present=False)
        with pytest.raises(CardTransportError):
            transport.transmit(encode_command(0x00, 0xA4, 0x04, 0x0C, Application.JPKI.aid))
    finally:
        transport.close()
    lab.insert(chip)
    with PcscTransport(lab.pcscd.reader) as again:
        assert CardClient(again).manufacture_number() == chip.image.serial


def test_serve_vpcd_command_puts_a_card_file_in_the_reader(lab: PcscLab, card_setup: CardSetup,
                                                           tmp_path: Path) -> None:
    """``mynacard card serve-vpcd FILE --port P`` in its own process, on the reader's second slot: OpenSC
    lists the card's certificates, a wrong PIN is written through to the file, SIGTERM takes the card out."""
    key = os.urandom(32)
    (tmp_path / "card.key").write_text(base64.b64encode(key).decode())
    card_file = tmp_path / "resident.card"
    CardFile.create(card_file, card_setup.image.copy(), key)
    lab.slot.remove()  # only the served card is in a reader now
    wait_for_card(lab.pcscd.reader, present=False)
    second = f"{lab.pcscd.reader_label} 00 01"
    process = subprocess.Popen(
        [sys.executable, "-m", "mynacard.cli", "card", "serve-vpcd", str(card_file), "--port",
         str(lab.pcscd.port + 1), "--key-file", str(tmp_path / "card.key")],
        env=lab.env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        wait_for_card(second, present=True, timeout=20)
        listing = run_tool(lab, "pkcs15-tool", "--reader", second, "--list-certificates")
        assert listing.returncode == 0, listing.stderr
        assert "[User Authentication Certificate]" in listing.stdout
        with PcscTransport(second) as transport:
            client = CardClient(transport)
            assert client.manufacture_number() == card_setup.holder.card_serial
            with pytest.raises(Exception, match="tries left"):
                client.verify(PinKind.AUTH, "0000")
        # Written through at once: another reader of the file sees the used try while the card is served.
        assert load_image(card_file, key).pins[PinKind.AUTH].tries_left == 2
    finally:
        process.send_signal(signal.SIGTERM)
        output, _ = process.communicate(timeout=20)
    assert process.returncode == 0, output
    assert "card removed" in output
    wait_for_card(second, present=False)
    with CardFile(card_file, key) as chip:  # the lock was released
        assert chip.image.pins[PinKind.AUTH].tries_left == 2


def test_the_card_may_connect_before_pcscd_and_survives_a_pcscd_restart(opensc_tools: None, pcsc_lab: PcscLab,
                                                                       chip: Chip, tmp_path: Path) -> None:
    """What Debian's setup implies: the card side retries until vpcd listens, pcscd picks the card up by
    polling (no restart needed), and after pcscd restarts the card is back without any action."""
    from mynacard.chip.pcscd import PrivatePcscd, free_port_pair
    from mynacard.chip.vpcd import VpcdCard

    port = free_port_pair()
    slot = VpcdCard(port=port)
    slot.insert(chip, timeout=None)  # nothing listens on the port yet: the card side keeps trying
    env = {**os.environ, "HOME": str(tmp_path)}

    def card_name(daemon: PrivatePcscd) -> str:
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            named = subprocess.run(["opensc-tool", "--reader", daemon.reader, "--name"], capture_output=True,
                                   text=True, env={**env, **daemon.env}, timeout=30, check=False)
            if named.returncode == 0:
                return named.stdout.strip().splitlines()[0]
            time.sleep(0.2)
        raise AssertionError("the card did not appear")

    try:
        for _ in range(2):  # start, then restart
            with PrivatePcscd(port=port) as daemon:
                assert card_name(daemon) == "jpki"
    finally:
        slot.stop()
