"""ISO/IEC 7816-4 APDUs: command parsing and encoding, responses, and the status words the card uses.

A command APDU is ``CLA INS P1 P2 [Lc data] [Le]`` in one of four cases, each in a short form (Lc and Le
one byte, Le ``00`` = 256) or an extended form (a ``00`` marker, then two-byte Lc/Le, Le ``0000`` = 65536;
§5.1 of ISO/IEC 7816-4). The card parses with :func:`parse_command`, which never accepts an ambiguous or
truncated APDU: a length that matches no case is ``67 00`` (wrong length), as on a real card.
Pure: no I/O.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum

__all__ = [
    "SW",
    "ApduError",
    "CommandApdu",
    "ResponseApdu",
    "encode_command",
    "is_well_formed_status",
    "parse_command",
]


class SW(IntEnum):
    """Status words (SW1-SW2) this card answers with. ``63 Cx`` (tries left) is built by :meth:`tries`."""

    OK = 0x9000
    """正常終了."""
    END_OF_FILE = 0x6282
    """Warning: end of file reached before reading Le bytes."""
    VERIFICATION_FAILED = 0x6300
    """Authentication failed (issuer cryptogram wrong)."""
    MEMORY_FAILURE = 0x6581
    """The card could not write its persistent memory; nothing changed."""
    WRONG_LENGTH = 0x6700
    """Lc or Le inconsistent with the command, or an APDU that matches no case."""
    LOGICAL_CHANNEL_NOT_SUPPORTED = 0x6881
    SECURE_MESSAGING_NOT_SUPPORTED = 0x6882
    CHAINING_NOT_SUPPORTED = 0x6884
    INCOMPATIBLE_FILE_STRUCTURE = 0x6981
    """Command incompatible with the file (e.g. READ BINARY on a key or PIN)."""
    SECURITY_STATUS_NOT_SATISFIED = 0x6982
    """The PIN (or issuer authentication) this needs has not been verified in the current application."""
    REFERENCE_DATA_NOT_USABLE = 0x6984
    """The PIN is blocked (or not yet set)."""
    CONDITIONS_NOT_SATISFIED = 0x6985
    """E.g. EXTERNAL AUTHENTICATE without a challenge, GET RESPONSE with nothing pending."""
    NO_CURRENT_EF = 0x6986
    """Command not allowed: no current EF (or no current application)."""
    WRONG_DATA = 0x6A80
    """Incorrect parameters in the data field (e.g. a new PIN of the wrong format)."""
    FUNCTION_NOT_SUPPORTED = 0x6A81
    FILE_NOT_FOUND = 0x6A82
    RECORD_NOT_FOUND = 0x6A83
    NOT_ENOUGH_MEMORY = 0x6A84
    WRONG_P1P2 = 0x6A86
    REFERENCED_DATA_NOT_FOUND = 0x6A88
    OFFSET_OUTSIDE_EF = 0x6B00
    INS_NOT_SUPPORTED = 0x6D00
    CLA_NOT_SUPPORTED = 0x6E00
    NO_PRECISE_DIAGNOSIS = 0x6F00

    @staticmethod
    def tries(left: int) -> int:
        """``63 Cx``: verification failed or counter query, ``x`` tries left (0–15)."""
        return 0x63C0 | max(0, min(left, 15))

    @staticmethod
    def more_data(remaining: int) -> int:
        """``61 xx``: ``xx`` more bytes with GET RESPONSE (``00`` = 256 or more)."""
        return 0x6100 | (remaining if remaining < 256 else 0)


def is_well_formed_status(sw: int) -> bool:
    """True for a status word ISO/IEC 7816-4 allows as a card's answer (9000, 61xx, 62xx–6Fxx)."""
    sw1 = sw >> 8
    if sw == 0x9000 or sw1 == 0x61:
        return True
    return 0x62 <= sw1 <= 0x6F and sw1 not in (0x60, 0x90)


class ApduError(Exception):
    """A command APDU the card refuses before looking at INS; ``sw`` is the answer."""

    def __init__(self, sw: int, message: str) -> None:
        super().__init__(message)
        self.sw = sw


@dataclass(frozen=True)
class CommandApdu:
    """A parsed command APDU."""

    cla: int
    ins: int
    p1: int
    p2: int
    data: bytes = b""
    """The command data field (Lc bytes); empty for cases 1 and 2."""
    le: int | None = None
    """Expected response length: None when absent, 256 for short ``00``, 65536 for extended ``0000``."""
    extended: bool = False
    """Whether the APDU used the extended-length form."""

    @property
    def offset(self) -> int:
        """P1-P2 as a 15-bit file offset (READ/UPDATE BINARY with bit 8 of P1 clear)."""
        return ((self.p1 & 0x7F) << 8) | self.p2

    def encode(self) -> bytes:
        return encode_command(self.cla, self.ins, self.p1, self.p2, self.data, self.le,
                              extended=self.extended)


def parse_command(raw: bytes) -> CommandApdu:
    """Parse a command APDU; raises :class:`ApduError` (``67 00``) when its length fits no case."""
    n = len(raw)
    if n < 4:
        raise ApduError(SW.WRONG_LENGTH, "an APDU has at least four header bytes")
    cla, ins, p1, p2 = raw[0], raw[1], raw[2], raw[3]
    if n == 4:
        return CommandApdu(cla, ins, p1, p2)
    b = raw[4]
    if n == 5:
        return CommandApdu(cla, ins, p1, p2, le=b or 256)
    if b != 0:
        lc = b
        if n == 5 + lc:
            return CommandApdu(cla, ins, p1, p2, bytes(raw[5:5 + lc]))
        if n == 6 + lc:
            return CommandApdu(cla, ins, p1, p2, bytes(raw[5:5 + lc]), le=raw[5 + lc] or 256)
        raise ApduError(SW.WRONG_LENGTH, "Lc does not match the length of the APDU")
    # Extended length: 00 then two bytes.
    if n == 6:
        raise ApduError(SW.WRONG_LENGTH, "truncated extended length")
    word = (raw[5] << 8) | raw[6]
    if n == 7:
        return CommandApdu(cla, ins, p1, p2, le=word or 65536, extended=True)
    lc = word
    if lc == 0:
        raise ApduError(SW.WRONG_LENGTH, "extended Lc must not be zero")
    if n == 7 + lc:
        return CommandApdu(cla, ins, p1, p2, bytes(raw[7:7 + lc]), extended=True)
    if n == 9 + lc:
        le = (raw[7 + lc] << 8) | raw[8 + lc]
        return CommandApdu(cla, ins, p1, p2, bytes(raw[7:7 + lc]), le=le or 65536, extended=True)
    raise ApduError(SW.WRONG_LENGTH, "extended Lc does not match the length of the APDU")


def encode_command(cla: int, ins: int, p1: int, p2: int, data: bytes = b"", le: int | None = None, *,
                   extended: bool = False) -> bytes:
    """Encode a command APDU; the extended form is used when asked for or when the lengths need it.

    ``le`` is the number of bytes expected (1–65536); 256 encodes as short ``00``, 65536 as ``0000``.
    """
    for name, value in (("CLA", cla), ("INS", ins), ("P1", p1), ("P2", p2)):
        if not 0 <= value <= 0xFF:
            raise ValueError(f"{name} must be one byte")
    if len(data) > 65535:
        raise ValueError("command data longer than 65,535 bytes")
    if le is not None and not 1 <= le <= 65536:
        raise ValueError("Le must be 1–65,536")
    ext = extended or len(data) > 255 or (le is not None and le > 256)
    out = bytearray((cla, ins, p1, p2))
    if not ext:
        if data:
            out.append(len(data))
            out += data
        if le is not None:
            out.append(le & 0xFF)
        return bytes(out)
    if data:
        out += b"\x00" + len(data).to_bytes(2, "big") + data
        if le is not None:
            out += (le & 0xFFFF).to_bytes(2, "big")
    elif le is not None:
        out += b"\x00" + (le & 0xFFFF).to_bytes(2, "big")
    return bytes(out)


@dataclass(frozen=True)
class ResponseApdu:
    """A response APDU: data and the status word."""

    data: bytes
    sw: int

    @property
    def sw1(self) -> int:
        return self.sw >> 8

    @property
    def sw2(self) -> int:
        return self.sw & 0xFF

    @property
    def ok(self) -> bool:
        return self.sw == SW.OK

    def encode(self) -> bytes:
        return self.data + self.sw.to_bytes(2, "big")

    @classmethod
    def decode(cls, raw: bytes) -> ResponseApdu:
        if len(raw) < 2:
            raise ValueError("a response APDU has at least the two status bytes")
        return cls(bytes(raw[:-2]), int.from_bytes(raw[-2:], "big"))

    def __str__(self) -> str:
        return f"{len(self.data)} bytes, SW {self.sw:04X}"
