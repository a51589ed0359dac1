"""The card-face application (券面事項確認AP): the face of the card as images, with the photo.

Layout (reference/jpki-technical.md §5, tags confirmed, contents partly ours):

* EF 0002 front: ``FF 20 { DF21 header, DF22 生年月日, DF23 性別, DF24 signer's public key, DF25 氏名 (PNG),
  DF26 住所 (PNG), DF27 顔写真, DF28 signature, DF29 有効期限, DF2A セキュリティコード (PNG) }``.
  The real card stores the photo as JPEG 2000; we store the JPEG the application came with.
  Unlocked by 照合番号A (the individual number) or 照合番号B (see :func:`face_code`);
* EF 0005 back: ``FF 40 { DF41 個人番号 (PNG), DF42 public key, DF43 signature }``, 照合番号A only;
* EF 0003 AP info ``FF 50 { DF51 id, DF52 version, DF53 municipality code }`` (tags ours);
* EF 0006 endorsements (追記欄) — **ours**: the real card writes new addresses on the back of the plastic;
  we mirror each endorsement as ``FF 60 { FF 61 { DF62 date, DF63 new address } … }``.

Text is drawn with IPAexGothic when it is installed (Debian ``fonts-ipaexfont``), else Pillow's default font.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from datetime import date
from functools import cache

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from PIL import Image, ImageDraw, ImageFont

from mynacard.chip import tlv
from mynacard.chip.cardinfo import CardInfoSigner
from mynacard.registry.model import Sex

__all__ = [
    "CardFace",
    "Endorsement",
    "decode_endorsements",
    "decode_front",
    "encode_ap_info",
    "encode_back",
    "encode_endorsements",
    "encode_front",
    "face_code",
    "render_text",
    "wareki_yymmdd",
]

_ERAS = ((date(2019, 5, 1), "令和"), (date(1989, 1, 8), "平成"), (date(1926, 12, 25), "昭和"),
         (date(1912, 7, 30), "大正"), (date(1868, 1, 25), "明治"))
_PHOTO_MAX = 20 * 1024


def wareki_yymmdd(d: date) -> str:
    """The date as two-digit Japanese-era year, month, day (令和8年4月6日 → ``080406``)."""
    for start, _era in _ERAS:
        if d >= start:
            return f"{d.year - start.year + 1:02d}{d.month:02d}{d.day:02d}"
    raise ValueError("dates before the Meiji era have no era year here")


def face_code(birth_date: date, card_valid_until: date, security_code: str) -> str:
    """照合番号B: era YYMMDD of the birth date + the card's expiry year (西暦) + the security code (14 digits;
    jsapdu's reading of the layout, **[uncertain]**)."""
    if len(security_code) != 4 or not security_code.isdigit() or not security_code.isascii():
        raise ValueError("a security code has four digits")
    return wareki_yymmdd(birth_date) + f"{card_valid_until.year:04d}" + security_code


@cache
def _font(size: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    try:
        return ImageFont.truetype("ipaexg.ttf", size)
    except OSError:
        return ImageFont.load_default(size)


def render_text(text: str, width: int = 480, size: int = 28, per_line: int = 17) -> bytes:
    """A text line (or wrapped lines) drawn as a small greyscale PNG, as the card face stores them."""
    lines = [text[i:i + per_line] for i in range(0, len(text), per_line)] or [""]
    height = (size + 8) * len(lines) + 8
    img = Image.new("L", (width, height), 255)
    draw = ImageDraw.Draw(img)
    for i, line in enumerate(lines):
        draw.text((8, 4 + i * (size + 8)), line, fill=0, font=_font(size))
    buf = io.BytesIO()
    img.save(buf, "PNG", optimize=True)
    return buf.getvalue()


def _photo(photo: bytes | None) -> bytes:
    """The photo as stored: the JPEG as given, scaled down when it would not fit the EF."""
    if not photo:
        return b""
    if len(photo) <= _PHOTO_MAX:
        return photo
    with Image.open(io.BytesIO(photo)) as img:
        small = img.convert("RGB")
        small.thumbnail((300, 385))
        buf = io.BytesIO()
        small.save(buf, "JPEG", quality=70)
    return buf.getvalue()


def _key_element(tag: int, key: rsa.RSAPublicKey) -> bytes:
    n = key.public_numbers()
    return tlv.encode(tag, tlv.encode(0x90, n.e.to_bytes((n.e.bit_length() + 7) // 8, "big"))
                      + tlv.encode(0x91, n.n.to_bytes(256, "big")))


def encode_front(*, name: str, address: str, birth_date: date, sex: Sex, card_valid_until: date,
                 security_code: str, photo: bytes | None, signer: CardInfoSigner) -> bytes:
    """EF 0002 of the card-face AP."""
    signed = [
        tlv.encode(0xDF22, birth_date.strftime("%Y%m%d").encode("ascii")),
        tlv.encode(0xDF23, sex.value.encode("ascii")),
        _key_element(0xDF24, signer.public_key),
        tlv.encode(0xDF25, render_text(name, size=32)),
        tlv.encode(0xDF26, render_text(address, width=560, size=24, per_line=22)),
        tlv.encode(0xDF27, _photo(photo)),
    ]
    tail = [
        tlv.encode(0xDF29, card_valid_until.strftime("%Y%m%d").encode("ascii")),
        tlv.encode(0xDF2A, render_text(security_code, width=120, size=24)),
    ]
    signature = tlv.encode(0xDF28, signer.sign(b"".join(signed + tail)))
    body = [*signed, signature, *tail]
    header_size = len(tlv.encode(0xDF21, bytes(8)))
    content_size = header_size + sum(len(e) for e in body)
    start = 2 + len(tlv.encode_length(content_size)) + header_size
    positions, pos = {}, start
    for element in body:
        positions[element[:2]] = pos
        pos += len(element)
    header = b"".join(positions[bytes((0xDF, t))].to_bytes(2, "big") for t in (0x22, 0x25, 0x26, 0x27))
    return tlv.encode(0xFF20, tlv.encode(0xDF21, header) + b"".join(body))


def encode_back(number: str, signer: CardInfoSigner) -> bytes:
    """EF 0005 of the card-face AP: the individual number as printed on the back."""
    image = tlv.encode(0xDF41, render_text(f"{number[:4]} {number[4:8]} {number[8:]}", width=360, size=32))
    key = _key_element(0xDF42, signer.public_key)
    return tlv.encode(0xFF40, image + key + tlv.encode(0xDF43, signer.sign(image + key)))


def encode_ap_info(municipality_code: str) -> bytes:
    return tlv.encode(0xFF50, tlv.encode(0xDF51, bytes((0, 0, 0, 1))) + tlv.encode(0xDF52, b"\x01")
                      + tlv.encode(0xDF53, municipality_code.encode("utf-8")))


@dataclass(frozen=True)
class Endorsement:
    """One entry of the 追記欄: a new address written on the card."""

    on: date
    address: str


def encode_endorsements(entries: list[Endorsement]) -> bytes:
    if not entries:
        return b""
    items = b"".join(tlv.encode(0xFF61, tlv.encode(0xDF62, e.on.strftime("%Y%m%d").encode("ascii"))
                                + tlv.encode(0xDF63, e.address.encode("utf-8"))) for e in entries)
    return tlv.encode(0xFF60, items)


def decode_endorsements(data: bytes) -> list[Endorsement]:
    if not data:
        return []
    tag, content, _ = tlv.read_element(data)
    if tag != 0xFF60:
        raise ValueError("not an endorsement record")
    out = []
    for item_tag, item in tlv.iter_tlv(content):
        if item_tag != 0xFF61:
            raise ValueError("not an endorsement entry")
        fields = dict(tlv.iter_tlv(item))
        day = fields[0xDF62].decode("ascii")
        out.append(Endorsement(date(int(day[:4]), int(day[4:6]), int(day[6:8])),
                               fields[0xDF63].decode("utf-8")))
    return out


@dataclass(frozen=True)
class CardFace:
    """The front of the card as the card-face AP gives it."""

    birth_date: date
    sex: Sex
    name_image: bytes
    """PNG."""
    address_image: bytes
    """PNG."""
    photo: bytes
    """The face photo (JPEG here)."""
    card_valid_until: date
    security_code_image: bytes
    """PNG."""
    signature_valid: bool
    """Whether DF28 verifies under the key in DF24."""


def _day(raw: bytes) -> date:
    text = raw.decode("ascii")
    return date(int(text[:4]), int(text[4:6]), int(text[6:8]))


def decode_front(data: bytes) -> CardFace:
    try:
        tag, content, _ = tlv.read_element(data)
        if tag != 0xFF20:
            raise ValueError("not a card-face record")
        elements = []
        pos = 0
        while pos < len(content):
            start = pos
            t, value, pos = tlv.read_element(content, pos)
            elements.append((t, value, content[start:pos]))
        fields = {t: v for t, v, _ in elements}
        signed = b"".join(raw for t, _, raw in elements if t not in (0xDF21, 0xDF28))
        key_fields = dict(tlv.iter_tlv(fields[0xDF24]))
        key = rsa.RSAPublicNumbers(int.from_bytes(key_fields[0x90], "big"),
                                   int.from_bytes(key_fields[0x91], "big")).public_key()
        try:
            key.verify(fields[0xDF28], signed, padding.PKCS1v15(), hashes.SHA256())
            valid = True
        except InvalidSignature:
            valid = False
        return CardFace(_day(fields[0xDF22]), Sex(fields[0xDF23].decode("ascii")), fields[0xDF25],
                        fields[0xDF26], fields[0xDF27], _day(fields[0xDF29]), fields[0xDF2A], valid)
    except (KeyError, UnicodeDecodeError, tlv.TlvError) as exc:
        raise ValueError(f"malformed card-face record ({type(exc).__name__})") from None
