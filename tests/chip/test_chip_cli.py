"""``mynacard card …`` on card files and through a PC/SC reader."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding
from typer.testing import CliRunner

from mynacard.chip.cardfile import load_image
from mynacard.chip.emulator import Chip
from mynacard.chip.model import Application, PinKind
from mynacard.cli import app
from mynacard.config import load_settings

from .conftest import CardSetup, PcscLab

runner = CliRunner()
PINS = ["--auth-pin", "1357", "--sign-password", "Kiosk2026", "--card-info-pin", "2468",
        "--residence-pin", "9999"]


@pytest.fixture(scope="module")
def demo_card(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    home = tmp_path_factory.mktemp("cli-home")
    card = home / "resident.card"
    result = runner.invoke(app, ["card", "personalise", "--demo", "--seed", "42", "--out", str(card),
                                 "--home", str(home), *PINS])
    assert result.exit_code == 0, result.output
    return home, card


def _copy(demo_card: tuple[Path, Path], tmp_path: Path) -> tuple[Path, Path]:
    home, card = demo_card
    copy = tmp_path / "card"
    copy.write_bytes(card.read_bytes())
    return home, copy


def test_personalise_demo_makes_a_working_card(demo_card: tuple[Path, Path]) -> None:
    home, card = demo_card
    image = load_image(card, load_settings(home=home).data_key)
    number = image.file(Application.CARD_INFO, 0x0001)[3:15].decode()
    result = runner.invoke(app, ["card", "info", str(card), "--home", str(home), "--pin", "2468"])
    assert result.exit_code == 0, result.output
    assert "JPKIAPICCTOKEN2" in result.output and image.serial in result.output
    assert f"****-****-{number[8:]}" in result.output and number not in result.output  # masked, always
    assert "署名 OK" in result.output
    assert image.meta["municipality_code"] == "131016"


def test_the_same_seed_gives_the_same_resident_and_files_are_never_overwritten(
        demo_card: tuple[Path, Path], tmp_path: Path) -> None:
    home, card = demo_card
    again = runner.invoke(app, ["card", "personalise", "--demo", "--seed", "42", "--out", str(card),
                                "--home", str(home), *PINS])
    assert again.exit_code == 1 and "already exists" in again.output
    other = tmp_path / "twin.card"
    twin = runner.invoke(app, ["card", "personalise", "--demo", "--seed", "42", "--out", str(other),
                               "--home", str(home), *PINS])
    assert twin.exit_code == 0
    key = load_settings(home=home).data_key
    first, second = load_image(card, key), load_image(other, key)
    assert first.file(Application.CARD_INFO, 0x0002) == second.file(Application.CARD_INFO, 0x0002)
    assert first.keys != second.keys  # each chip makes its own keys
    no_demo = runner.invoke(app, ["card", "personalise", "--out", str(tmp_path / "x"), "--home", str(home)])
    assert no_demo.exit_code == 2


def test_certs_and_sign(demo_card: tuple[Path, Path], tmp_path: Path) -> None:
    home, card = _copy(demo_card, tmp_path)
    out = tmp_path / "certs"
    result = runner.invoke(app, ["card", "certs", str(card), "--home", str(home), "--password", "kiosk2026",
                                 "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in out.iterdir()) == ["auth-ca.pem", "auth.pem", "sign-ca.pem", "sign.pem"]
    document = tmp_path / "doc.txt"
    document.write_text("申請書")
    for key, pin, cert in (("auth", "1357", "auth.pem"), ("sign", "KIOSK2026", "sign.pem")):
        signed = runner.invoke(app, ["card", "sign", str(card), "--home", str(home), "--key", key,
                                     "--pin", pin, "--in", str(document)])
        assert signed.exit_code == 0, signed.output
        public = x509.load_pem_x509_certificate((out / cert).read_bytes()).public_key()
        public.verify(bytes.fromhex(signed.output.strip()), document.read_bytes(), padding.PKCS1v15(),
                      hashes.SHA256())
    digest = runner.invoke(app, ["card", "sign", str(card), "--home", str(home), "--pin", "1357", "--digest",
                                 hashlib.sha256(b"x").hexdigest(), "--out", str(tmp_path / "sig")])
    assert digest.exit_code == 0 and (tmp_path / "sig").stat().st_size == 256


def test_pins_and_errors(demo_card: tuple[Path, Path], tmp_path: Path) -> None:
    home, card = _copy(demo_card, tmp_path)
    wrong = runner.invoke(app, ["card", "sign", str(card), "--home", str(home), "--pin", "0000", "--digest",
                                "00" * 32])
    assert wrong.exit_code == 1 and "2 tries left" in wrong.output
    status = runner.invoke(app, ["card", "pins", str(card), "--home", str(home)])
    assert status.exit_code == 0 and "(auth)" in status.output
    auth_row = next(line for line in status.output.splitlines() if "(auth)" in line)
    assert auth_row.split("│")[2].strip() == "2"
    changed = runner.invoke(app, ["card", "pins", str(card), "--home", str(home), "--change", "auth",
                                  "--old", "1357", "--new", "8024"])
    assert changed.exit_code == 0, changed.output
    image = load_image(card, load_settings(home=home).data_key)
    assert image.pins[PinKind.AUTH].value == b"8024" and image.pins[PinKind.AUTH].tries_left == 3
    neither = runner.invoke(app, ["card", "info", "--home", str(home)])
    assert neither.exit_code == 1 and "not both" in neither.output
    bad_key = tmp_path / "key"
    bad_key.write_text("c2hvcnQ=")
    refused = runner.invoke(app, ["card", "info", str(card), "--key-file", str(bad_key)])
    assert refused.exit_code == 1


@pytest.mark.pcsc
def test_reading_a_card_in_a_pc_sc_reader(pcsc_lab: PcscLab, chip: Chip, card_setup: CardSetup) -> None:
    pcsc_lab.use(chip)
    listed = runner.invoke(app, ["card", "readers"])
    assert pcsc_lab.pcscd.reader in listed.output
    result = runner.invoke(app, ["card", "info", "--reader", pcsc_lab.pcscd.reader, "--pin",
                                 card_setup.pins.card_info])
    assert result.exit_code == 0, result.output
    assert card_setup.holder.card_serial in result.output and "PC/SC reader" in result.output
    assert "****-****-9018" in result.output
