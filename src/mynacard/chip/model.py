"""The My Number Card chip as a pure model: applications, files, PINs, keys and their rules.

Facts and their sources are in ``reference/jpki-technical.md`` §1, §2, §5 and §8; where the reference marks a
fact as uncertain, the docstring here says so and says what we chose. Nothing here does I/O or reads a clock;
the emulator (:mod:`mynacard.chip.emulator`) runs this model at the APDU level.

The card holds five applications (DFs selected by AID only):

* 公的個人認証AP (JPKI): the two key pairs, the two certificates and their CA certificates, the token file;
* 券面事項入力補助AP (card-info input support, "text AP"): individual number, basic four facts, signature;
* 券面事項確認AP (card face, "visual AP"): the face data with the photo, and the individual number image;
* 住基AP (residence): the resident record code — AID and files **[uncertain]** in the reference;
* the common DF: the card's manufacture number (製造番号) as record 1 of SFI 1.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from enum import Enum, StrEnum

from mynacard.errors import InvalidInput

__all__ = [
    "ATR",
    "FILE_SYSTEM",
    "HOLDER_PINS",
    "TOKEN_LABEL",
    "Access",
    "Application",
    "EfKind",
    "EfSpec",
    "KeyKind",
    "PinKind",
    "PinPolicy",
    "check_new_pin",
    "check_new_pins",
    "check_pin_format",
    "ef_spec",
    "normalise_pin",
]

ATR = bytes.fromhex("3BE000FF8131FE4514")
"""Answer to reset of the contact interface, as OpenSC's ``card-jpki.c`` lists it (T=1, no historical
bytes; the check byte is correct). Vendors may differ **[single]**."""

TOKEN_LABEL = "JPKIAPICCTOKEN2"
"""First 32 bytes of EF 0006 in the JPKI application on a My Number Card (space padded)."""


class Application(Enum):
    """The applications (DFs) of the card, each selected by its AID (DF name)."""

    JPKI = bytes.fromhex("D392F000260100000001")
    """公的個人認証AP."""
    CARD_INFO = bytes.fromhex("D3921000310001010408")
    """券面事項入力補助AP — individual number and basic four facts as text."""
    CARD_FACE = bytes.fromhex("D3921000310001010402")
    """券面事項確認AP — the card face as images, with the photo."""
    RESIDENCE = bytes.fromhex("D3921000310001010401")
    """住基AP — AID **[uncertain]** (most likely per the reference); holds the resident record code."""
    COMMON = bytes.fromhex("D3921000310001010100")
    """The common (card-management) DF: READ RECORD 1 of SFI 1 gives the manufacture number
    **[uncertain]**."""

    @property
    def aid(self) -> bytes:
        return self.value

    @classmethod
    def by_aid(cls, aid: bytes) -> Application | None:
        for app in cls:
            if app.value == aid:
                return app
        return None

    @property
    def label(self) -> str:
        return _APP_LABELS[self]


_APP_LABELS = {
    Application.JPKI: "公的個人認証AP",
    Application.CARD_INFO: "券面事項入力補助AP",
    Application.CARD_FACE: "券面事項確認AP",
    Application.RESIDENCE: "住基AP",
    Application.COMMON: "共通DF",
}


@dataclass(frozen=True)
class PinPolicy:
    """The rules of one PIN (暗証番号) or verification number (照合番号)."""

    application: Application
    fid: int
    """The PIN EF selected before VERIFY (``00 20 00 80``)."""
    label: str
    """Japanese name."""
    min_length: int
    max_length: int
    alphabet: str
    max_tries: int
    holder_sets: bool
    """True for the secrets the holder chooses (and may change); False for 照合番号, derived from the
    card face."""


_DIGITS = "0123456789"
_UPPER_ALNUM = "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"


class PinKind(StrEnum):
    """Every PIN the card checks. Values are the names used on the command line and in files."""

    AUTH = "auth"
    """利用者証明用電子証明書の暗証番号: 4 digits, 3 tries (JPKI EF 0018)."""
    SIGN = "sign"
    """署名用電子証明書のパスワード: 6–16 of A–Z and 0–9, 5 tries (JPKI EF 001B)."""
    CARD_INFO = "card-info"
    """券面事項入力補助用の暗証番号: 4 digits, 3 tries (text AP EF 0011)."""
    RESIDENCE = "residence"
    """住民基本台帳用の暗証番号: 4 digits, 3 tries (住基AP EF 001C, EF **[uncertain]**)."""
    CARD_INFO_NUMBER = "card-info-number"
    """照合番号A of the text AP: the 12-digit individual number (EF 0014); tries **[uncertain]**, we use 3."""
    FACE_NUMBER = "face-number"
    """照合番号A of the card-face AP: the 12-digit individual number (EF 0013) — front and back."""
    FACE_CODE = "face-code"
    """照合番号B of the card-face AP (EF 0012): birth date YYMMDD in the Japanese era, the card's expiry
    year YYYY and the 4-digit security code printed on the face — 14 digits, front only. Tries
    **[uncertain]**, we use 3."""

    @property
    def policy(self) -> PinPolicy:
        return _PIN_POLICIES[self]


_PIN_POLICIES = {
    PinKind.AUTH: PinPolicy(Application.JPKI, 0x0018, "利用者証明用暗証番号", 4, 4, _DIGITS, 3, True),
    PinKind.SIGN: PinPolicy(Application.JPKI, 0x001B, "署名用パスワード", 6, 16, _UPPER_ALNUM, 5, True),
    PinKind.CARD_INFO: PinPolicy(Application.CARD_INFO, 0x0011, "券面事項入力補助用暗証番号", 4, 4, _DIGITS,
                                 3, True),
    PinKind.RESIDENCE: PinPolicy(Application.RESIDENCE, 0x001C, "住民基本台帳用暗証番号", 4, 4, _DIGITS, 3,
                                 True),
    PinKind.CARD_INFO_NUMBER: PinPolicy(Application.CARD_INFO, 0x0014, "照合番号A（個人番号）", 12, 12,
                                        _DIGITS, 3, False),
    PinKind.FACE_NUMBER: PinPolicy(Application.CARD_FACE, 0x0013, "照合番号A（個人番号）", 12, 12, _DIGITS, 3,
                                   False),
    PinKind.FACE_CODE: PinPolicy(Application.CARD_FACE, 0x0012, "照合番号B", 14, 14, _DIGITS, 3, False),
}

HOLDER_PINS: tuple[PinKind, ...] = tuple(k for k in PinKind if k.policy.holder_sets)
"""The PINs the holder chooses (and may have reset at the window): auth, sign, card-info, residence."""


def check_pin_format(kind: PinKind, value: str) -> str:
    """The card-level rule: length and alphabet. Returns the value; raises :class:`InvalidInput`."""
    p = kind.policy
    if not isinstance(value, str):
        raise InvalidInput(f"{p.label}: not text")
    if not p.min_length <= len(value) <= p.max_length:
        size = (f"{p.min_length}" if p.min_length == p.max_length else f"{p.min_length}–{p.max_length}")
        raise InvalidInput(f"{p.label} must have {size} characters")
    if any(ch not in p.alphabet for ch in value):
        allowed = "digits" if p.alphabet == _DIGITS else "capital letters A–Z and digits"
        raise InvalidInput(f"{p.label} may contain only {allowed}")
    return value


_HAS_LETTER = re.compile(r"[A-Z]")
_HAS_DIGIT = re.compile(r"[0-9]")


def check_new_pin(kind: PinKind, value: str) -> str:
    """The issuing rule for a PIN the holder chooses: the card rule, and for the signing password at least
    one letter and one digit (英字1文字以上、数字1文字以上; whether the card itself enforces the mix is
    **[uncertain]**, so the card does not and the window does)."""
    if not kind.policy.holder_sets:
        raise InvalidInput(f"{kind.policy.label} is not chosen by the holder")
    check_pin_format(kind, value)
    if kind is PinKind.SIGN and not (_HAS_LETTER.search(value) and _HAS_DIGIT.search(value)):
        raise InvalidInput("署名用パスワード needs at least one letter (A–Z) and one digit")
    return value


def check_new_pins(pins: Iterable[tuple[PinKind, str]]) -> None:
    """:func:`check_new_pin` for every PIN the holder chose at once (交付時の暗証番号設定), before any is
    written: one :class:`InvalidInput` whose ``problems`` name every PIN that breaks the rules."""
    problems = []
    for kind, value in pins:
        try:
            check_new_pin(kind, value)
        except InvalidInput as exc:
            problems.append(f"{kind.policy.label}: {exc}")
    if problems:
        raise InvalidInput("暗証番号が設定の条件を満たしません (a PIN breaks the rules)", problems)


def normalise_pin(kind: PinKind, value: str) -> str:
    """What a client sends: surrounding spaces removed, the signing password in capitals (as the real
    clients do; jpki/myna upper-cases it)."""
    text = value.strip()
    return text.upper() if kind is PinKind.SIGN else text


class KeyKind(StrEnum):
    """The two JPKI key pairs, born in the chip."""

    AUTH = "auth"
    """利用者証明用 — signs with the authentication PIN (key EF 0017, certificate EF 000A)."""
    SIGN = "sign"
    """署名用 — signs with the signing password (key EF 001A, certificate EF 0001)."""

    @property
    def key_fid(self) -> int:
        return 0x0017 if self is KeyKind.AUTH else 0x001A

    @property
    def certificate_fid(self) -> int:
        return 0x000A if self is KeyKind.AUTH else 0x0001

    @property
    def ca_certificate_fid(self) -> int:
        return 0x000B if self is KeyKind.AUTH else 0x0002

    @property
    def pin(self) -> PinKind:
        return PinKind.AUTH if self is KeyKind.AUTH else PinKind.SIGN


class EfKind(Enum):
    DATA = "data"
    """A transparent EF, read with READ BINARY."""
    RECORDS = "records"
    """A record EF, read with READ RECORD."""
    PIN = "pin"
    """Holds a PIN: the target of VERIFY / CHANGE REFERENCE DATA / RESET RETRY COUNTER; never readable."""
    KEY = "key"
    """Holds a private key: the target of COMPUTE DIGITAL SIGNATURE and key generation; never readable."""


@dataclass(frozen=True)
class Access:
    """Who may read a data EF: anyone, or after VERIFY of one of ``pins`` in the current application.

    Writing (UPDATE/ERASE BINARY) always needs the issuer's authentication (EXTERNAL AUTHENTICATE)."""

    pins: frozenset[PinKind] = frozenset()

    @property
    def free(self) -> bool:
        return not self.pins


FREE = Access()


def _after(*pins: PinKind) -> Access:
    return Access(frozenset(pins))


@dataclass(frozen=True)
class EfSpec:
    """One elementary file of the card's file system."""

    fid: int
    kind: EfKind
    label: str
    read: Access = FREE
    max_size: int = 0
    """Capacity in bytes for data EFs (an UPDATE BINARY beyond it is ``6A 84``)."""
    pin: PinKind | None = None
    key: KeyKind | None = None
    sfi: int | None = None


def _data(fid: int, label: str, max_size: int, read: Access = FREE) -> EfSpec:
    return EfSpec(fid, EfKind.DATA, label, read, max_size)


def _pin(kind: PinKind) -> EfSpec:
    return EfSpec(kind.policy.fid, EfKind.PIN, kind.policy.label, pin=kind)


def _key(kind: KeyKind) -> EfSpec:
    label = "利用者証明用秘密鍵" if kind is KeyKind.AUTH else "署名用秘密鍵"
    return EfSpec(kind.key_fid, EfKind.KEY, label, key=kind)


_CERT = 4096
FILE_SYSTEM: dict[Application, dict[int, EfSpec]] = {
    Application.JPKI: {s.fid: s for s in (
        _data(0x0006, "トークン情報", 160),
        _data(0x0008, "証明書の有無 [single]", 3),
        _data(0x0001, "署名用電子証明書", _CERT, _after(PinKind.SIGN)),
        _data(0x0002, "署名用CA証明書", _CERT),
        _data(0x000A, "利用者証明用電子証明書", _CERT),
        _data(0x000B, "利用者証明用CA証明書", _CERT),
        _key(KeyKind.AUTH),
        _key(KeyKind.SIGN),
        _pin(PinKind.AUTH),
        _pin(PinKind.SIGN),
    )},
    Application.CARD_INFO: {s.fid: s for s in (
        _data(0x0001, "個人番号", 17, _after(PinKind.CARD_INFO)),
        _data(0x0002, "基本4情報", 1024, _after(PinKind.CARD_INFO, PinKind.CARD_INFO_NUMBER)),
        _data(0x0003, "署名", 336, _after(PinKind.CARD_INFO, PinKind.CARD_INFO_NUMBER)),
        _data(0x0004, "証明書 (CV)", 568, _after(PinKind.CARD_INFO, PinKind.CARD_INFO_NUMBER)),
        _data(0x0005, "AP基本情報", 64),
        _pin(PinKind.CARD_INFO),
        _pin(PinKind.CARD_INFO_NUMBER),
    )},
    Application.CARD_FACE: {s.fid: s for s in (
        _data(0x0002, "券面（表面）", 0x7FFF, _after(PinKind.FACE_NUMBER, PinKind.FACE_CODE)),
        _data(0x0003, "AP基本情報", 64),
        _data(0x0005, "券面（裏面・個人番号）", 16 * 1024, _after(PinKind.FACE_NUMBER)),
        _data(0x0006, "追記欄 [mynacard]", 4096, _after(PinKind.FACE_NUMBER, PinKind.FACE_CODE)),
        _pin(PinKind.FACE_NUMBER),
        _pin(PinKind.FACE_CODE),
    )},
    Application.RESIDENCE: {s.fid: s for s in (
        _data(0x0001, "住民票コード [uncertain]", 17, _after(PinKind.RESIDENCE)),
        _pin(PinKind.RESIDENCE),
    )},
    Application.COMMON: {s.fid: s for s in (
        EfSpec(0x0001, EfKind.RECORDS, "製造番号", FREE, 64, sfi=1),
    )},
}
"""Every EF of every application, with its kind, read rule and capacity."""


def ef_spec(app: Application, fid: int) -> EfSpec | None:
    return FILE_SYSTEM[app].get(fid)
