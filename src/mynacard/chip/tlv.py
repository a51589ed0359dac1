"""BER-TLV as the card-info applications use it (ISO/IEC 7816-4 §6, X.690 identifier and length octets).

The card-info files use private-class tags in the high-tag-number form: ``FF 20`` is a constructed
container, ``DF 22`` a primitive element; lengths may use the long forms ``81 xx`` and ``82 xx xx``
(reference/jpki-technical.md §5). Tags are handled as the integer of their identifier bytes
(``0xDF22``). Parsing is strict: a truncated element raises :class:`TlvError`. Pure: no I/O.
"""

from __future__ import annotations

from collections.abc import Iterator

__all__ = ["TlvError", "encode", "encode_length", "find", "iter_tlv", "read_element", "total_length"]


class TlvError(ValueError):
    """Malformed BER-TLV data."""


def _tag_bytes(tag: int) -> bytes:
    if tag < 0:
        raise ValueError("a tag is a non-negative integer")
    return tag.to_bytes(max(1, (tag.bit_length() + 7) // 8), "big")


def encode_length(n: int) -> bytes:
    """Definite length octets: short form below 128, else ``81``/``82``/``83`` + big-endian length."""
    if n < 0:
        raise ValueError("a length is non-negative")
    if n < 0x80:
        return bytes((n,))
    size = (n.bit_length() + 7) // 8
    if size > 3:
        raise ValueError("element too long")
    return bytes((0x80 | size,)) + n.to_bytes(size, "big")


def encode(tag: int, value: bytes) -> bytes:
    """One TLV element."""
    return _tag_bytes(tag) + encode_length(len(value)) + value


def _read_tag(data: bytes, pos: int) -> tuple[int, int]:
    if pos >= len(data):
        raise TlvError("missing tag")
    first = data[pos]
    tag = first
    pos += 1
    if first & 0x1F == 0x1F:
        while True:
            if pos >= len(data):
                raise TlvError("truncated tag")
            b = data[pos]
            tag = (tag << 8) | b
            pos += 1
            if not b & 0x80:
                break
            if tag > 0xFFFFFFFF:
                raise TlvError("tag too long")
    return tag, pos


def _read_length(data: bytes, pos: int) -> tuple[int, int]:
    if pos >= len(data):
        raise TlvError("missing length")
    first = data[pos]
    pos += 1
    if first < 0x80:
        return first, pos
    size = first & 0x7F
    if size == 0 or size > 3:
        raise TlvError("unsupported length form")
    if pos + size > len(data):
        raise TlvError("truncated length")
    return int.from_bytes(data[pos:pos + size], "big"), pos + size


def read_element(data: bytes, pos: int = 0) -> tuple[int, bytes, int]:
    """The element at ``pos``: ``(tag, value, position after it)``."""
    tag, pos = _read_tag(data, pos)
    length, pos = _read_length(data, pos)
    end = pos + length
    if end > len(data):
        raise TlvError(f"element {tag:X} runs past the end of the data")
    return tag, bytes(data[pos:end]), end


def total_length(header: bytes) -> int:
    """Size of the whole element from its first bytes (tag and length), e.g. to size a READ BINARY."""
    tag_end = _read_tag(header, 0)[1]
    length, value_start = _read_length(header, tag_end)
    return value_start + length


def iter_tlv(data: bytes) -> Iterator[tuple[int, bytes]]:
    """The elements of a concatenation; stops at ``FF``/``00`` padding after the last element."""
    pos = 0
    while pos < len(data):
        if data[pos] in (0x00, 0xFF) and all(b == data[pos] for b in data[pos:]):
            return
        tag, value, pos = read_element(data, pos)
        yield tag, value


def find(data: bytes, tag: int) -> bytes:
    """The value of the first element with ``tag``; raises :class:`TlvError` when it is absent."""
    for t, value in iter_tlv(data):
        if t == tag:
            return value
    raise TlvError(f"element {tag:X} not found")
