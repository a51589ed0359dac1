"""The card file: sealed at rest, one reader at a time, every change written through at once — so a card
exists across processes, and a retry counter cannot be rolled back by reopening or copying."""

from __future__ import annotations

import base64
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from mynacard.chip.cardfile import MAGIC, CardFile, load_image, open_image
from mynacard.chip.client import CardClient, WrongPin
from mynacard.chip.model import PinKind
from mynacard.chip.transport import InProcessTransport
from mynacard.errors import Conflict, InvalidInput, NotFound

from .conftest import CardSetup


@pytest.fixture
def key() -> bytes:
    return os.urandom(32)


@pytest.fixture
def card_file(tmp_path: Path, card_setup: CardSetup, key: bytes) -> Path:
    path = tmp_path / "card.mynacard"
    CardFile.create(path, card_setup.image.copy(), key)
    return path


def test_sealed_roundtrip(card_file: Path, card_setup: CardSetup, key: bytes) -> None:
    data = card_file.read_bytes()
    assert data.startswith(MAGIC)
    assert card_setup.number.encode() not in data and b"JPKIAPICCTOKEN2" not in data  # encrypted
    assert load_image(card_file, key).to_bytes() == card_setup.image.to_bytes()
    assert stat.S_IMODE(card_file.stat().st_mode) == 0o600
    assert [p.name for p in card_file.parent.iterdir()] == [card_file.name]  # no temporary file left


def test_wrong_key_tampering_and_strangers_are_refused(card_file: Path, key: bytes, tmp_path: Path) -> None:
    with pytest.raises(InvalidInput, match="wrong key"):
        load_image(card_file, os.urandom(32))
    data = bytearray(card_file.read_bytes())
    data[len(MAGIC) + 30] ^= 0x01
    with pytest.raises(InvalidInput, match="changed"):
        open_image(bytes(data), key)
    with pytest.raises(InvalidInput, match="not a mynacard card file"):
        open_image(b"%PDF-1.7 ...", key)
    with pytest.raises(InvalidInput, match="version"):
        open_image(MAGIC + b"\x09" + bytes(40), key)
    with pytest.raises(NotFound):
        load_image(tmp_path / "missing", key)
    with pytest.raises(Conflict):
        CardFile.create(card_file, load_image(card_file, key), key)


def test_a_card_is_in_one_reader_at_a_time(card_file: Path, key: bytes) -> None:
    first = CardFile(card_file, key)
    first.open()
    try:
        with pytest.raises(Conflict, match="in use"):
            CardFile(card_file, key).open()
    finally:
        first.close()
    with CardFile(card_file, key) as chip:
        assert chip.image.serial


def test_every_change_is_written_through(card_file: Path, card_setup: CardSetup, key: bytes) -> None:
    with CardFile(card_file, key) as chip:
        client = CardClient(InProcessTransport(chip))
        with pytest.raises(WrongPin):
            client.verify(PinKind.AUTH, "0000")
        assert load_image(card_file, key).pins[PinKind.AUTH].tries_left == 2  # on disk while still open
        client.change_pin(PinKind.CARD_INFO, card_setup.pins.card_info, "8642")
    reopened = load_image(card_file, key)
    assert reopened.pins[PinKind.AUTH].tries_left == 2
    assert reopened.pins[PinKind.CARD_INFO].value == b"8642"


def test_the_card_exists_across_processes(card_file: Path, key: bytes, tmp_path: Path) -> None:
    """A wrong PIN entered by another process (the CLI) is on the card when this process reads it."""
    key_file = tmp_path / "k"
    key_file.write_text(base64.b64encode(key).decode())
    result = subprocess.run([sys.executable, "-m", "mynacard.cli", "card", "sign", str(card_file), "--key",
                             "auth", "--pin", "0000", "--digest", "00" * 32, "--key-file", str(key_file)],
                            capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 1 and "2 tries left" in result.stdout
    with CardFile(card_file, key) as chip:
        assert CardClient(InProcessTransport(chip)).tries_left(PinKind.AUTH) == 2
