"""The emulator at the APDU level: commands, status words, access rules, security status, the issuer channel,
persistence — in raw bytes, as reference/jpki-technical.md §1.4, §1.5 and §8 describe the card."""

from __future__ import annotations

import hashlib

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding
from cryptography.hazmat.primitives.asymmetric.utils import NoDigestInfo

from mynacard.chip import emulator, tlv
from mynacard.chip.apdu import SW, ResponseApdu, encode_command
from mynacard.chip.cardface import face_code
from mynacard.chip.client import digest_info
from mynacard.chip.emulator import Chip
from mynacard.chip.image import ChipImage
from mynacard.chip.issuance import spki_from_template
from mynacard.chip.model import ATR, Application, PinKind

from .conftest import Authorities, CardSetup, key_secrets

JPKI = "00A4040C0A" + Application.JPKI.aid.hex()
CARD_INFO = "00A4040C0A" + Application.CARD_INFO.aid.hex()


def tx(chip: Chip, *apdus: str | bytes) -> ResponseApdu:
    """Send each APDU, return the last response."""
    response = ResponseApdu(b"", 0)
    for apdu in apdus:
        raw = bytes.fromhex(apdu) if isinstance(apdu, str) else apdu
        response = ResponseApdu.decode(chip.transmit(raw))
    return response


def select_ef(fid: int) -> str:
    return f"00A4020C02{fid:04X}"


def verify(value: str) -> bytes:
    return encode_command(0x00, 0x20, 0x00, 0x80, value.encode())


def read_all(chip: Chip, fid: int) -> bytes:
    head = tx(chip, select_ef(fid), "00B0000004")
    assert head.sw == SW.OK, hex(head.sw)
    size = int.from_bytes(head.data[2:4], "big") + 4
    rest = tx(chip, encode_command(0x00, 0xB0, 0x00, 0x04, le=size - 4, extended=True))
    assert rest.sw == SW.OK
    return head.data + rest.data


def test_atr_is_the_one_opensc_knows(chip: Chip) -> None:
    assert chip.atr == ATR == bytes.fromhex("3BE000FF8131FE4514")
    assert chip.reset() == ATR


def test_tex2e_trace_reads_the_auth_certificate(chip: Chip, card_setup: CardSetup) -> None:
    """SELECT JPKI → SELECT 000A → READ 4 → READ (extended) the rest, as the real-card trace does."""
    assert tx(chip, JPKI).sw == SW.OK
    assert tx(chip, "00A4020C02000A").sw == SW.OK
    head = tx(chip, "00B0000004")
    assert head.sw == SW.OK and head.data[:2] == b"\x30\x82"
    size = int.from_bytes(head.data[2:4], "big")
    rest = tx(chip, encode_command(0x00, 0xB0, 0x00, 0x04, le=size, extended=True))
    assert rest.sw == SW.OK
    assert head.data + rest.data == card_setup.personalised.auth_certificate


def test_select(chip: Chip) -> None:
    assert tx(chip, "00A4020C020018").sw == SW.NO_CURRENT_EF  # no application yet
    assert tx(chip, "00A4040C05D392F00026").sw == SW.FILE_NOT_FOUND  # a partial AID is not accepted
    assert tx(chip, "00A4040C0AA0000000030000000000").sw == SW.FILE_NOT_FOUND
    assert tx(chip, "00A40400" + "0A" + Application.JPKI.aid.hex()).sw == SW.WRONG_P1P2  # FCI not offered
    for app in Application:
        assert tx(chip, "00A4040C0A" + app.aid.hex()).sw == SW.OK
        assert chip.selected_application is app
    assert tx(chip, JPKI, "00A4020C020099").sw == SW.FILE_NOT_FOUND
    assert tx(chip, JPKI, "00A4020C0300").sw == SW.WRONG_LENGTH
    assert tx(chip, "00A4000C023F00").sw == SW.OK and chip.selected_application is None
    assert tx(chip, JPKI, "00A4080C020001").sw == SW.WRONG_P1P2


def test_read_binary_rules(chip: Chip) -> None:
    tx(chip, JPKI, "00A4020C02000B")
    cert = read_all(chip, 0x000B)
    size = len(cert)
    assert tx(chip, encode_command(0, 0xB0, size >> 8, size & 0xFF, le=1)).sw == SW.OFFSET_OUTSIDE_EF
    tail = tx(chip, encode_command(0, 0xB0, (size - 3) >> 8, (size - 3) & 0xFF, le=10))
    assert (tail.data, tail.sw) == (cert[-3:], SW.END_OF_FILE)  # fewer than Le: warning 62 82
    short_max = tx(chip, encode_command(0, 0xB0, (size - 3) >> 8, (size - 3) & 0xFF, le=256))
    assert (short_max.data, short_max.sw) == (cert[-3:], SW.OK)  # Le=00 means "up to 256"
    assert tx(chip, "00B00000").sw == SW.WRONG_LENGTH  # no Le
    assert tx(chip, "00B0000001FF").sw == SW.WRONG_LENGTH  # data on a read
    assert tx(chip, "00B0810004").sw == SW.FUNCTION_NOT_SUPPORTED  # SFI addressing
    for fid in (0x0017, 0x001A, 0x0018, 0x001B):  # keys and PINs are never readable
        assert tx(chip, select_ef(fid), "00B0000004").sw == SW.INCOMPATIBLE_FILE_STRUCTURE
    assert tx(chip, select_ef(0x0001), "00B0000004").sw == SW.SECURITY_STATUS_NOT_SATISFIED


def test_read_record_gives_the_manufacture_number(chip: Chip) -> None:
    response = tx(chip, "00A4040C0A" + Application.COMMON.aid.hex(), "00B2010C00")
    assert response.sw == SW.OK
    assert tlv.read_element(response.data)[1][2:] == chip.image.serial.encode()
    assert tx(chip, "00B2020C00").sw == SW.RECORD_NOT_FOUND
    assert tx(chip, "00B2010800").sw == SW.WRONG_P1P2
    assert tx(chip, "00B2011400").sw == SW.FILE_NOT_FOUND  # SFI 2


@pytest.mark.parametrize("kind", list(PinKind))
def test_pin_counter_table(chip: Chip, card_setup: CardSetup, kind: PinKind) -> None:
    """Wrong entries count down to 63 C0, a blocked PIN answers 69 84 even to the right value, the empty
    VERIFY never uses a try, and a right entry before blocking restores the counter."""
    correct = {PinKind.AUTH: card_setup.pins.auth, PinKind.SIGN: card_setup.pins.sign,
               PinKind.CARD_INFO: card_setup.pins.card_info, PinKind.RESIDENCE: card_setup.pins.residence,
               PinKind.CARD_INFO_NUMBER: card_setup.number, PinKind.FACE_NUMBER: card_setup.number,
               PinKind.FACE_CODE: face_code(card_setup.holder.facts.birth_date,
                                            card_setup.holder.card_valid_until,
                                            card_setup.personalised.security_code)}[kind]
    policy = kind.policy
    assert policy.max_tries == {PinKind.SIGN: 5}.get(kind, 3)
    wrong = "9" * policy.max_length if kind is not PinKind.SIGN else "WRONG9"
    select = ["00A4040C0A" + policy.application.aid.hex(), select_ef(policy.fid)]
    assert tx(chip, *select, "00200080").sw == SW.tries(policy.max_tries)
    assert tx(chip, "00200080").sw == SW.tries(policy.max_tries)  # the query used no try
    assert tx(chip, verify(wrong)).sw == SW.tries(policy.max_tries - 1)
    assert tx(chip, verify(correct)).sw == SW.OK
    assert chip.image.pins[kind].tries_left == policy.max_tries  # reset by the right entry
    assert tx(chip, "00200080").sw == SW.OK  # verified in this session
    for left in range(policy.max_tries - 1, -1, -1):
        assert tx(chip, verify(wrong)).sw == SW.tries(left)
    assert tx(chip, "00200080").sw == SW.tries(0)
    assert tx(chip, verify(correct)).sw == SW.REFERENCE_DATA_NOT_USABLE  # blocked stays blocked
    assert chip.image.pins[kind].tries_left == 0
    assert not chip.is_verified(kind)


def test_security_status_is_lost_on_reselect_and_reset_but_not_on_ef_select(chip: Chip,
                                                                            card_setup: CardSetup) -> None:
    sign_data = encode_command(0x80, 0x2A, 0x00, 0x80, digest_info(hashes.SHA256(), bytes(32)), 256)
    assert tx(chip, JPKI, select_ef(0x0018), verify(card_setup.pins.auth)).sw == SW.OK
    assert tx(chip, select_ef(0x000A), select_ef(0x0017), sign_data).sw == SW.OK  # EF selects keep it
    assert tx(chip, JPKI, select_ef(0x0017), sign_data).sw == SW.SECURITY_STATUS_NOT_SATISFIED
    assert tx(chip, select_ef(0x0018), verify(card_setup.pins.auth)).sw == SW.OK
    chip.reset()
    assert tx(chip, JPKI, select_ef(0x0017), sign_data).sw == SW.SECURITY_STATUS_NOT_SATISFIED
    assert tx(chip, select_ef(0x0018), verify(card_setup.pins.auth), CARD_INFO, JPKI, select_ef(0x0017),
              sign_data).sw == SW.SECURITY_STATUS_NOT_SATISFIED


def test_compute_digital_signature(chip: Chip, card_setup: CardSetup) -> None:
    cert = x509.load_der_x509_certificate(card_setup.personalised.auth_certificate or b"")
    info = digest_info(hashes.SHA256(), hashlib.sha256(b"message").digest())
    assert len(info) == 0x33  # Lc 33 in the real trace
    sign = encode_command(0x80, 0x2A, 0x00, 0x80, info, 256)
    assert tx(chip, JPKI, select_ef(0x0017), sign).sw == SW.SECURITY_STATUS_NOT_SATISFIED
    tx(chip, select_ef(0x0018), verify(card_setup.pins.auth), select_ef(0x0017))
    response = tx(chip, sign)
    assert response.sw == SW.OK and len(response.data) == 256
    cert.public_key().verify(response.data, b"message", padding.PKCS1v15(), hashes.SHA256())
    # The card pads whatever it is given (up to 245 bytes) — recoverable with the public key.
    raw = tx(chip, encode_command(0x80, 0x2A, 0x00, 0x80, b"A" * 245, 256))
    recovered = cert.public_key().recover_data_from_signature(raw.data, padding.PKCS1v15(), NoDigestInfo())
    assert recovered == b"A" * 245
    assert tx(chip, encode_command(0x80, 0x2A, 0x00, 0x80, b"A" * 246, 256)).sw == SW.WRONG_LENGTH
    assert tx(chip, encode_command(0x80, 0x2A, 0x00, 0x00, info, 256)).sw == SW.WRONG_P1P2
    assert tx(chip, encode_command(0x00, 0x2A, 0x00, 0x80, info, 256)).sw == SW.CLA_NOT_SUPPORTED
    # The auth PIN does not unlock the signing key.
    assert tx(chip, select_ef(0x001A), sign).sw == SW.SECURITY_STATUS_NOT_SATISFIED
    assert tx(chip, select_ef(0x000A), sign).sw == SW.INCOMPATIBLE_FILE_STRUCTURE


def test_change_reference_data(chip: Chip, card_setup: CardSetup) -> None:
    change = encode_command(0x00, 0x24, 0x01, 0x80, b"4321")
    assert tx(chip, JPKI, select_ef(0x0018), change).sw == SW.SECURITY_STATUS_NOT_SATISFIED
    assert tx(chip, verify(card_setup.pins.auth)).sw == SW.OK
    assert tx(chip, encode_command(0x00, 0x24, 0x01, 0x80, b"43210")).sw == SW.WRONG_DATA  # 5 digits
    assert tx(chip, encode_command(0x00, 0x24, 0x01, 0x80, b"43a1")).sw == SW.WRONG_DATA
    assert tx(chip, change).sw == SW.OK
    assert tx(chip, JPKI, select_ef(0x0018), verify(card_setup.pins.auth)).sw == SW.tries(2)
    assert tx(chip, verify("4321")).sw == SW.OK
    assert chip.image.pins[PinKind.AUTH].tries_left == 3
    # 照合番号 are not the holder's to change.
    tx(chip, "00A4040C0A" + Application.CARD_FACE.aid.hex(), select_ef(0x0013), verify(card_setup.number))
    assert tx(chip, encode_command(0x00, 0x24, 0x01, 0x80, b"000000000000")).sw == SW.CONDITIONS_NOT_SATISFIED


def test_get_response_chains_long_answers(chip: Chip) -> None:
    tx(chip, JPKI, select_ef(0x0017))
    whole = tx(chip, encode_command(0x00, 0x47, 0x81, 0x00, le=65536, extended=True))
    assert whole.sw == SW.OK and whole.data[:2] == b"\x7f\x49" and len(whole.data) == 270
    first = tx(chip, encode_command(0x00, 0x47, 0x81, 0x00, le=256))
    assert first.sw == SW.more_data(14) and len(first.data) == 256
    part = tx(chip, "00C0000005")
    assert part.sw == SW.more_data(9)
    last = tx(chip, "00C0000000")
    assert last.sw == SW.OK and first.data + part.data + last.data == whole.data
    assert tx(chip, "00C0000000").sw == SW.CONDITIONS_NOT_SATISFIED  # nothing pending any more
    tx(chip, encode_command(0x00, 0x47, 0x81, 0x00, le=256))
    tx(chip, JPKI)  # any other command drops the pending data
    assert tx(chip, "00C0000000").sw == SW.CONDITIONS_NOT_SATISFIED
    spki = spki_from_template(whole.data)
    cert = x509.load_der_x509_certificate(chip.image.file(Application.JPKI, 0x000A))
    assert cert.public_key().public_bytes(serialization.Encoding.DER,
                                          serialization.PublicFormat.SubjectPublicKeyInfo) == spki


@pytest.mark.parametrize(("apdu", "sw"), [
    ("FFCA000000", SW.CLA_NOT_SUPPORTED),  # a PC/SC pseudo-APDU reaches the card: not for it
    ("01A4040C0AD392F000260100000001", SW.LOGICAL_CHANNEL_NOT_SUPPORTED),
    ("0CB0000004", SW.SECURE_MESSAGING_NOT_SUPPORTED),
    ("10B0000004", SW.CHAINING_NOT_SUPPORTED),
    ("40B0000004", SW.CLA_NOT_SUPPORTED),
    ("00CA9F7F00", SW.INS_NOT_SUPPORTED),
    ("80B0000004", SW.CLA_NOT_SUPPORTED),
    ("00", SW.WRONG_LENGTH),
])
def test_refusals_before_the_command(chip: Chip, apdu: str, sw: int) -> None:
    assert tx(chip, JPKI, apdu).sw == sw


def test_ordinary_terminals_cannot_use_issuer_commands(chip: Chip, card_setup: CardSetup) -> None:
    assert tx(chip, JPKI, select_ef(0x000A)).sw == SW.OK
    assert tx(chip, "00D6000001FF").sw == SW.SECURITY_STATUS_NOT_SATISFIED
    assert tx(chip, "000E0000").sw == SW.SECURITY_STATUS_NOT_SATISFIED
    assert tx(chip, select_ef(0x0018), encode_command(0, 0x2C, 0x02, 0x80, b"0000")).sw == \
        SW.SECURITY_STATUS_NOT_SATISFIED
    assert tx(chip, select_ef(0x0018), "002C0380").sw == SW.SECURITY_STATUS_NOT_SATISFIED
    assert tx(chip, select_ef(0x001A), "0047800000").sw == SW.SECURITY_STATUS_NOT_SATISFIED
    # EXTERNAL AUTHENTICATE without a challenge, with a wrong cryptogram, with a reused challenge.
    assert tx(chip, encode_command(0, 0x82, 0x00, 0x81, bytes(16))).sw == SW.CONDITIONS_NOT_SATISFIED
    assert len(tx(chip, "0084000008").data) == 8
    assert tx(chip, encode_command(0, 0x82, 0x00, 0x81, bytes(16))).sw == SW.VERIFICATION_FAILED
    assert tx(chip, encode_command(0, 0x82, 0x00, 0x81, bytes(16))).sw == SW.CONDITIONS_NOT_SATISFIED
    assert tx(chip, encode_command(0, 0x82, 0x00, 0x82, bytes(16))).sw == SW.REFERENCED_DATA_NOT_FOUND
    assert tx(chip, "0084000010").sw == SW.WRONG_LENGTH
    assert chip.image.file(Application.JPKI, 0x000A) == card_setup.personalised.auth_certificate


def test_issuer_session_is_bound_to_the_application(chip: Chip, authorities: Authorities) -> None:
    master = authorities.master
    challenge = tx(chip, JPKI, "0084000008").data
    answer = master.answer(chip.image.serial, Application.JPKI.aid, challenge)
    assert tx(chip, encode_command(0, 0x82, 0x00, 0x81, answer)).sw == SW.OK
    assert tx(chip, select_ef(0x0018), "002C0380").sw == SW.OK
    # A cryptogram made for another application does not open this one.
    challenge = tx(chip, CARD_INFO, "0084000008").data
    answer = master.answer(chip.image.serial, Application.JPKI.aid, challenge)
    assert tx(chip, encode_command(0, 0x82, 0x00, 0x81, answer)).sw == SW.VERIFICATION_FAILED
    # Reselecting closes the issuer session.
    challenge = tx(chip, JPKI, "0084000008").data
    tx(chip, encode_command(0, 0x82, 0x00, 0x81, master.answer(chip.image.serial, Application.JPKI.aid,
                                                                challenge)))
    assert tx(chip, JPKI, select_ef(0x0018), "002C0380").sw == SW.SECURITY_STATUS_NOT_SATISFIED


def test_the_retry_counter_is_written_before_the_pin_is_compared(card_setup: CardSetup) -> None:
    """Anti-tearing: the decremented counter reaches persistent memory before the comparison, so pulling
    the card mid-VERIFY never gives a free guess; a right PIN then restores it."""
    written: list[int] = []
    chip = Chip(card_setup.image.copy(),
                persist=lambda img: written.append(img.pins[PinKind.AUTH].tries_left))
    assert tx(chip, JPKI, select_ef(0x0018), verify(card_setup.pins.auth)).sw == SW.OK
    assert written == [2, 3]
    written.clear()
    assert tx(chip, verify("0000")).sw == SW.tries(2)
    assert written == [2]


def test_a_failed_write_changes_nothing_and_says_so(card_setup: CardSetup) -> None:
    def broken(_: ChipImage) -> None:
        raise OSError("disk full")

    chip = Chip(card_setup.image.copy(), persist=broken)
    before = chip.image.to_bytes()
    assert tx(chip, JPKI, select_ef(0x0018), verify("0000")).sw == SW.MEMORY_FAILURE
    assert tx(chip, verify(card_setup.pins.auth)).sw == SW.MEMORY_FAILURE
    assert not chip.is_verified(PinKind.AUTH)
    assert chip.image.to_bytes() == before


def test_internal_errors_become_6f00(chip: Chip, monkeypatch: pytest.MonkeyPatch) -> None:
    def boom(self: Chip, cmd: object) -> tuple[bytes, int]:
        raise RuntimeError("bug")

    monkeypatch.setitem(emulator._INTERINDUSTRY, 0xB0, boom)
    assert tx(chip, JPKI, select_ef(0x000A), "00B0000004").sw == SW.NO_PRECISE_DIAGNOSIS


def test_keys_are_generated_in_the_chip_and_never_leave_it(chip: Chip) -> None:
    """Every APDU that mentions a key EF answers either a status word or the public key template."""
    secrets = key_secrets(chip.image)
    assert len(secrets) == 24
    for fid in (0x0017, 0x001A):
        for apdu in ("00B0000000", "00B00000000000", "00B2010400", "0047810000", "00CA000000", "00C0000000"):
            response = tx(chip, JPKI, select_ef(fid), apdu)
            assert not any(s in response.data for s in secrets)
