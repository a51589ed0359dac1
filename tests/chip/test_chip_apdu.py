"""APDU parsing and encoding (ISO/IEC 7816-4 §5.1) and BER-TLV, including property tests."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mynacard.chip import tlv
from mynacard.chip.apdu import (
    SW,
    ApduError,
    CommandApdu,
    ResponseApdu,
    encode_command,
    is_well_formed_status,
    parse_command,
)


@pytest.mark.parametrize(("hex_apdu", "expected"), [
    ("00A4040C0AD392F000260100000001",
     CommandApdu(0x00, 0xA4, 0x04, 0x0C, bytes.fromhex("D392F000260100000001"))),
    ("00B0000004", CommandApdu(0x00, 0xB0, 0x00, 0x00, le=4)),
    ("00B0000000", CommandApdu(0x00, 0xB0, 0x00, 0x00, le=256)),
    ("00B00004000610", CommandApdu(0x00, 0xB0, 0x00, 0x04, le=0x0610, extended=True)),
    ("00B000000000", None),
    ("00200080", CommandApdu(0x00, 0x20, 0x00, 0x80)),
    ("802A00800330313200", CommandApdu(0x80, 0x2A, 0x00, 0x80, b"012", le=256)),
    ("802A0080000003303132", CommandApdu(0x80, 0x2A, 0x00, 0x80, b"012", extended=True)),
    ("802A00800000033031320000", CommandApdu(0x80, 0x2A, 0x00, 0x80, b"012", le=65536, extended=True)),
])
def test_parses_the_four_cases_short_and_extended(hex_apdu: str, expected: CommandApdu | None) -> None:
    if expected is None:
        with pytest.raises(ApduError):
            parse_command(bytes.fromhex(hex_apdu))
        return
    assert parse_command(bytes.fromhex(hex_apdu)) == expected


@pytest.mark.parametrize("hex_apdu", [
    "", "00", "00A4", "00A404",  # shorter than a header
    "00A4040C05D392",  # Lc says 5, 2 bytes follow
    "00A4040C02D392F0F0F0",  # two extra bytes
    "00B0000000",  # (valid: case 2 short) — checked below not to raise
    "00B00000000000FF",  # extended Le with a trailing byte
    "00D600000000",  # extended Lc of zero
    "00D6000000000201",  # extended Lc 2, one byte
])
def test_refuses_lengths_that_match_no_case(hex_apdu: str) -> None:
    raw = bytes.fromhex(hex_apdu)
    if hex_apdu == "00B0000000":
        assert parse_command(raw).le == 256
        return
    with pytest.raises(ApduError) as err:
        parse_command(raw)
    assert err.value.sw == SW.WRONG_LENGTH


@given(cla=st.integers(0, 255), ins=st.integers(0, 255), p1=st.integers(0, 255), p2=st.integers(0, 255),
       data=st.binary(max_size=600), le=st.none() | st.integers(1, 65536), extended=st.booleans())
def test_encode_then_parse_is_identity(cla: int, ins: int, p1: int, p2: int, data: bytes, le: int | None,
                                       extended: bool) -> None:
    raw = encode_command(cla, ins, p1, p2, data, le, extended=extended)
    cmd = parse_command(raw)
    assert (cmd.cla, cmd.ins, cmd.p1, cmd.p2, cmd.data, cmd.le) == (cla, ins, p1, p2, data, le)
    assert cmd.encode() == raw


@given(st.binary(max_size=300))
def test_parse_never_raises_anything_but_apdu_error(raw: bytes) -> None:
    try:
        cmd = parse_command(raw)
    except ApduError as exc:
        assert exc.sw == SW.WRONG_LENGTH
    else:
        assert cmd.encode() == raw


def test_encode_rejects_impossible_fields() -> None:
    with pytest.raises(ValueError):
        encode_command(0x100, 0, 0, 0)
    with pytest.raises(ValueError):
        encode_command(0, 0xB0, 0, 0, le=0)
    with pytest.raises(ValueError):
        encode_command(0, 0xD6, 0, 0, bytes(65536))


def test_responses_and_status_words() -> None:
    r = ResponseApdu.decode(bytes.fromhex("3082061F9000"))
    assert (r.data, r.sw, r.ok, r.sw1, r.sw2) == (bytes.fromhex("3082061F"), 0x9000, True, 0x90, 0x00)
    assert r.encode() == bytes.fromhex("3082061F9000")
    with pytest.raises(ValueError):
        ResponseApdu.decode(b"\x90")
    assert SW.tries(2) == 0x63C2 and SW.tries(20) == 0x63CF and SW.more_data(300) == 0x6100
    assert all(is_well_formed_status(s) for s in (0x9000, 0x6110, 0x6282, 0x63C0, 0x6A82, 0x6F00))
    assert not any(is_well_formed_status(s) for s in (0x0000, 0x9001, 0x6000, 0x7000, 0xFFFF))


# --- BER-TLV ---------------------------------------------------------------------------------------

def test_tlv_private_tags_and_long_lengths() -> None:
    element = tlv.encode(0xDF22, "山田\u3000太郎".encode())
    assert element[:3] == bytes((0xDF, 0x22, 15))
    big = tlv.encode(0xFF20, bytes(300))
    assert big[:5] == bytes.fromhex("FF2082012C") and tlv.total_length(big[:5]) == len(big)
    assert tlv.encode_length(0x80) == b"\x81\x80"
    assert list(tlv.iter_tlv(element + b"\xff\xff\xff")) == [(0xDF22, "山田\u3000太郎".encode())]
    assert tlv.find(element + tlv.encode(0xDF23, b"x"), 0xDF23) == b"x"
    with pytest.raises(tlv.TlvError):
        tlv.find(element, 0xDF99)


@pytest.mark.parametrize("raw", ["DF", "DF22", "DF2205414243", "FF2082", "FF20850100", "DF8080"])
def test_tlv_refuses_truncated_elements(raw: str) -> None:
    with pytest.raises(tlv.TlvError):
        tlv.read_element(bytes.fromhex(raw))


@given(st.lists(st.tuples(st.sampled_from([0x04, 0x30, 0x5F4E, 0x7F21, 0xDF22, 0xFF20, 0x9F8101]),
                          st.binary(max_size=400)), max_size=5))
def test_tlv_roundtrip(elements: list[tuple[int, bytes]]) -> None:
    data = b"".join(tlv.encode(t, v) for t, v in elements)
    assert list(tlv.iter_tlv(data)) == elements
