"""The public personal authentication service (公的個人認証サービス, JPKI) as a pure domain model.

Rules only: the two certificate authorities, revocation reasons and what triggers them, certificate
validity, how the basic four facts are written into a signing certificate (era code, substitute
characters, romanised place names), verifier kinds and what each may receive. No I/O, no clock: time comes
in as an argument. Sources: ``reference/jpki-technical.md`` §3–4 and §7; the profile as built is in
``docs/JPKI-PROFILE.md``.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from enum import StrEnum
from functools import lru_cache

from mynacard.cards.model import CERT_YEARS, certificate_expiry
from mynacard.clock import JST
from mynacard.errors import InvalidInput, NotFound
from mynacard.principal import Role
from mynacard.registry.model import BasicFacts, add_years, age_on

__all__ = [
    "ADDRESS_MAX_CHARS",
    "CHALLENGE_BYTES",
    "CHALLENGE_TTL",
    "ISSUER_ROLES",
    "OPERATOR_ROLES",
    "PREFECTURES_ROMAN",
    "ROOT_VALIDITY_YEARS",
    "SIGN_CERT_MIN_AGE",
    "SUBSTITUTE_CHARACTER",
    "WINDOW_ROLES",
    "CaKind",
    "CertificateStatus",
    "CrlSchedule",
    "Era",
    "Purpose",
    "RevocationReason",
    "SigningFacts",
    "VerifierKind",
    "certificate_not_after",
    "end_of_jst_day",
    "era_of",
    "jpki_birth_date",
    "may_hold_sign_certificate",
    "parse_jpki_birth_date",
    "parse_serial",
    "revocations_for_life_event",
    "rollover_due",
    "romanise_kana",
    "romanise_municipality",
    "root_not_after",
    "signing_facts",
    "substitute",
]

ROOT_VALIDITY_YEARS = 10
"""The real roots are valid for ten years (2015-10-20 → 2025-10-19, 2023-07-16 → 2033-07-15)."""

RENEWAL_WINDOW = timedelta(days=92)
"""Renewed within the last three months before expiry → to the 6th birthday instead (reference §3.6)."""

SIGN_CERT_MIN_AGE = 15
"""No signing certificate for under-15s (reference §2, municipal pages)."""

ISSUER_ROLES = (Role.MANUFACTURER, Role.OPERATOR, Role.SYSTEM)
"""Who issues at manufacture: the manufacturer's run, the operator, system jobs."""

WINDOW_ROLES = (Role.CLERK, Role.SUPERVISOR, Role.OPERATOR, Role.SYSTEM)
"""Who acts on a card's certificates at the window (scoped to the town for clerks and supervisors)."""

OPERATOR_ROLES = (Role.OPERATOR, Role.SYSTEM)
"""The CA's own acts: creating generations, rollover, CRLs, pre-signing."""

ADDRESS_MAX_CHARS = 200
"""The address otherName holds at most 200 characters (reference §3.3)."""

SUBSTITUTE_CHARACTER = "〓"
"""代替文字: what replaces a character outside JIS X 0208 and JIS X 0212 (補助漢字).

The real J-LIS substitution table is not public; the geta mark (〓, U+3013) is the conventional stand-in
for a character that cannot be represented, and the position string records where it was used."""

CHALLENGE_BYTES = 32
CHALLENGE_TTL = timedelta(minutes=5)
"""A login challenge is 32 random bytes, valid for five minutes and usable once."""


class CaKind(StrEnum):
    """The two certificate authorities of JPKI."""

    SIGN = "sign"
    """署名用 — issues the signing certificate (an electronic seal that carries the basic four facts)."""
    AUTH = "auth"
    """利用者証明用 — issues the user-authentication certificate ("it is me"; no personal facts)."""

    @property
    def label_ja(self) -> str:
        return {"sign": "署名用電子証明書", "auth": "利用者証明用電子証明書"}[self.value]


class CertificateStatus(StrEnum):
    """Revocation state of an issued certificate (expiry is a matter of time, not of state)."""

    GOOD = "good"
    REVOKED = "revoked"


class RevocationReason(StrEnum):
    """Revocation reasons used by J-LIS (CPS §4.9.9 as listed by a platform operator; reference §4)."""

    UNSPECIFIED = "unspecified"
    """交付前に破棄 — destroyed before it was handed over. Written without a reason code (RFC 5280 §5.3.1)."""
    KEY_COMPROMISE = "keyCompromise"
    """利用者の秘密鍵が危殆化した."""
    CA_COMPROMISE = "cACompromise"
    """CAの秘密鍵が危殆化した."""
    AFFILIATION_CHANGED = "affiliationChanged"
    """記載内容の変更 — the basic four facts changed (move, name change, death, move abroad: 異動等失効)."""
    SUPERSEDED = "superseded"
    """更新 — replaced by a new certificate."""
    CESSATION_OF_OPERATION = "cessationOfOperation"
    """不要になった — the holder asked for revocation (失効申請) or the card was abolished."""
    CERTIFICATE_HOLD = "certificateHold"
    """一時保留 — the card was reported lost or suspended. J-LIS never releases a hold."""

    @property
    def code(self) -> int:
        """The CRLReason value (RFC 5280 §5.3.1)."""
        return _REASON_CODES[self]

    @property
    def label_ja(self) -> str:
        return _REASON_JA[self]

    @classmethod
    def parse(cls, text: str) -> RevocationReason:
        """Accept the RFC name (``keyCompromise``), snake case (``key_compromise``) or the numeric code."""
        raw = str(text).strip()
        if raw.isdigit():
            for reason, code in _REASON_CODES.items():
                if code == int(raw):
                    return reason
        folded = raw.replace("_", "").replace("-", "").lower()
        for reason in cls:
            if reason.value.lower() == folded:
                return reason
        names = ", ".join(r.value for r in cls)
        raise ValueError(f"unknown revocation reason {text!r} (one of: {names})")


_REASON_CODES = {
    RevocationReason.UNSPECIFIED: 0,
    RevocationReason.KEY_COMPROMISE: 1,
    RevocationReason.CA_COMPROMISE: 2,
    RevocationReason.AFFILIATION_CHANGED: 3,
    RevocationReason.SUPERSEDED: 4,
    RevocationReason.CESSATION_OF_OPERATION: 5,
    RevocationReason.CERTIFICATE_HOLD: 6,
}
_REASON_JA = {
    RevocationReason.UNSPECIFIED: "交付前に破棄",
    RevocationReason.KEY_COMPROMISE: "秘密鍵の危殆化",
    RevocationReason.CA_COMPROMISE: "認証局の秘密鍵の危殆化",
    RevocationReason.AFFILIATION_CHANGED: "記載内容の変更",
    RevocationReason.SUPERSEDED: "更新",
    RevocationReason.CESSATION_OF_OPERATION: "不要になった(失効申請)",
    RevocationReason.CERTIFICATE_HOLD: "一時保留",
}


def revocations_for_life_event(kind: str, payload: dict[str, object]) -> dict[CaKind, RevocationReason]:
    """Which certificates a registry life event revokes, and why (reference §4 "Triggers", §7).

    - any change of the basic four facts (転居, 転出, 氏名の変更 …) revokes the signing certificate;
      the authentication certificate stays;
    - death (住民票の消除) revokes both;
    - a move abroad revokes the signing certificate on the move-out date; the authentication certificate
      stays only with the continued-use procedure (継続利用), otherwise it goes with the card.

    All are 異動等失効, written as ``affiliationChanged``.
    """
    kind = kind.removeprefix("registry.")
    reason = RevocationReason.AFFILIATION_CHANGED
    if kind == "resident_died":
        return {CaKind.SIGN: reason, CaKind.AUTH: reason}
    if kind == "moved_abroad":
        plan = {CaKind.SIGN: reason}
        if not payload.get("continued_use"):
            plan[CaKind.AUTH] = reason
        return plan
    if kind in ("resident_moved", "name_changed") and payload.get("basic_facts_changed"):
        return {CaKind.SIGN: reason}
    return {}


# --- validity ------------------------------------------------------------------------------------------

def end_of_jst_day(day: date) -> datetime:
    """23:59:59 JST of a day, in UTC: the real roots and certificates end at 14:59:59Z."""
    return datetime.combine(day, time(23, 59, 59), JST).astimezone(UTC)


def root_not_after(not_before: datetime) -> datetime:
    """A root runs ten years less a day, to the end of that JST day (2023-07-16 → 2033-07-15 14:59:59Z)."""
    day = add_years(not_before.astimezone(JST).date(), ROOT_VALIDITY_YEARS) - timedelta(days=1)
    return end_of_jst_day(day)


def rollover_due(ca_not_after: datetime, now: datetime) -> bool:
    """A new CA generation is needed once the current one could no longer cover a full certificate
    (five years and a renewal window) — which is why the real CAs roll over every four years."""
    return ca_not_after - now < timedelta(days=365 * (CERT_YEARS + 1) + 2)


def certificate_not_after(*, birth_date: date, issued_at: datetime, card_valid_until: date,
                          ca_not_after: datetime, requested_until: date | None = None,
                          previous_not_after: datetime | None = None,
                          auth_not_after: datetime | None = None) -> datetime:
    """When a certificate issued at ``issued_at`` expires (reference §3.6).

    To the 5th birthday after issuance — the 6th when it renews a certificate that expires within the
    next three months — never past the card's expiry, never past what the caller asked for, never past
    the issuing CA; a signing certificate also never past the holder's authentication certificate.
    Expressed as the end of that JST day.
    """
    issued_on = issued_at.astimezone(JST).date()
    renewing = previous_not_after is not None and issued_at <= previous_not_after <= issued_at + RENEWAL_WINDOW
    day = certificate_expiry(birth_date, issued_on, card_valid_until, renewing=renewing)
    if requested_until is not None:
        day = min(day, requested_until)
    limits = [end_of_jst_day(day), ca_not_after]
    if auth_not_after is not None:
        limits.append(auth_not_after)
    return min(limits)


# --- the basic four facts as the signing certificate writes them ----------------------------------------

class Era(StrEnum):
    """Era codes of the date-of-birth otherName (元号コード)."""

    UNKNOWN = "0"
    MEIJI = "1"
    TAISHO = "2"
    SHOWA = "3"
    HEISEI = "4"
    REIWA = "5"


_ERA_STARTS = (
    (date(2019, 5, 1), Era.REIWA),
    (date(1989, 1, 8), Era.HEISEI),
    (date(1926, 12, 25), Era.SHOWA),
    (date(1912, 7, 30), Era.TAISHO),
    (date(1868, 10, 23), Era.MEIJI),
)


def era_of(day: date) -> Era:
    """The era a Gregorian day falls in (明治 from 1868-10-23; before that 不明)."""
    return next((era for start, era in _ERA_STARTS if day >= start), Era.UNKNOWN)


def jpki_birth_date(day: date) -> str:
    """``EYYYYMMDD``: the era code, then the Gregorian date (reference §3.3, e.g. ``319800101``)."""
    return f"{era_of(day).value}{day:%Y%m%d}"


def parse_jpki_birth_date(text: str) -> date:
    """Inverse of :func:`jpki_birth_date`; raises ``ValueError`` when the era does not fit the date."""
    if len(text) != 9 or not text.isascii() or not text.isdigit():
        raise ValueError("a JPKI date of birth is nine digits: era code and YYYYMMDD")
    day = date(int(text[1:5]), int(text[5:7]), int(text[7:9]))
    if era_of(day).value != text[0]:
        raise ValueError(f"era code {text[0]} does not match {day.isoformat()}")
    return day


def _representable(ch: str) -> bool:
    """JIS X 0208 (levels 1 and 2) or JIS X 0212 (補助漢字), via the EUC-JP codec, or plain ASCII."""
    if ch.isascii():
        return ch.isprintable()
    try:
        encoded = ch.encode("euc_jp")
    except UnicodeEncodeError:
        return False
    return len(encoded) >= 2 and encoded[0] != 0x8E  # 0x8E: half-width katakana (JIS X 0201), not allowed


@lru_cache(maxsize=65536)
def substitute(text: str) -> tuple[str, str]:
    """Replace characters the certificate may not carry; return (text, position string of ``0``/``1``).

    Only JIS X 0208 level 1/2 and 補助漢字 may appear (reference §3.3); every other character becomes
    :data:`SUBSTITUTE_CHARACTER` and its position is marked ``1`` in the 代替文字使用位置情報.
    """
    out: list[str] = []
    marks: list[str] = []
    for ch in unicodedata.normalize("NFC", text):
        if _representable(ch):
            out.append(ch)
            marks.append("0")
        else:
            out.append(SUBSTITUTE_CHARACTER)
            marks.append("1")
    return "".join(out), "".join(marks)


@dataclass(frozen=True)
class SigningFacts:
    """The basic four facts as written in a signing certificate's subjectAltName (基本4情報)."""

    name: str
    """氏名 (1.2.392.200149.8.5.5.1): family and given name with a full-width space, substituted."""
    name_substitutions: str
    """氏名 代替文字使用位置情報 (.5.5.2): one ``0``/``1`` per character of :attr:`name`."""
    sex: str
    """性別 (.5.5.3): ``1`` 男, ``2`` 女, ``3`` 不明."""
    birth_date: str
    """生年月日 (.5.5.4): ``EYYYYMMDD``."""
    address: str
    """住所 (.5.5.5), substituted, at most 200 characters."""
    address_substitutions: str
    """住所 代替文字使用位置情報 (.5.5.6)."""

    @property
    def birth_day(self) -> date:
        return parse_jpki_birth_date(self.birth_date)


@lru_cache(maxsize=65536)
def signing_facts(facts: BasicFacts) -> SigningFacts:
    """What the signing certificate carries for a resident's basic four facts."""
    name, name_marks = substitute(facts.name)
    address, address_marks = substitute(facts.address)
    if len(address) > ADDRESS_MAX_CHARS:
        raise ValueError(f"an address in a certificate has at most {ADDRESS_MAX_CHARS} characters")
    return SigningFacts(name, name_marks, facts.sex.jpki_code, jpki_birth_date(facts.birth_date), address,
                        address_marks)


def may_hold_sign_certificate(birth_date: date, on: date) -> bool:
    """No signing certificate before the 15th birthday."""
    return age_on(birth_date, on) >= SIGN_CERT_MIN_AGE


# --- romanised place names for the signing certificate's subject (L=<prefecture>, L=<municipality>) ------

PREFECTURES_ROMAN = (
    "Hokkaido", "Aomori-ken", "Iwate-ken", "Miyagi-ken", "Akita-ken", "Yamagata-ken", "Fukushima-ken",
    "Ibaraki-ken", "Tochigi-ken", "Gunma-ken", "Saitama-ken", "Chiba-ken", "Tokyo-to", "Kanagawa-ken",
    "Niigata-ken", "Toyama-ken", "Ishikawa-ken", "Fukui-ken", "Yamanashi-ken", "Nagano-ken", "Gifu-ken",
    "Shizuoka-ken", "Aichi-ken", "Mie-ken", "Shiga-ken", "Kyoto-fu", "Osaka-fu", "Hyogo-ken", "Nara-ken",
    "Wakayama-ken", "Tottori-ken", "Shimane-ken", "Okayama-ken", "Hiroshima-ken", "Yamaguchi-ken",
    "Tokushima-ken", "Kagawa-ken", "Ehime-ken", "Kochi-ken", "Fukuoka-ken", "Saga-ken", "Nagasaki-ken",
    "Kumamoto-ken", "Oita-ken", "Miyazaki-ken", "Kagoshima-ken", "Okinawa-ken",
)
"""Prefectures by JIS X 0401 code (index + 1), as the signing certificate's first locality (``Tokyo-to``)."""

_KANA = {
    "あ": "a", "い": "i", "う": "u", "え": "e", "お": "o",
    "か": "ka", "き": "ki", "く": "ku", "け": "ke", "こ": "ko",
    "さ": "sa", "し": "shi", "す": "su", "せ": "se", "そ": "so",
    "た": "ta", "ち": "chi", "つ": "tsu", "て": "te", "と": "to",
    "な": "na", "に": "ni", "ぬ": "nu", "ね": "ne", "の": "no",
    "は": "ha", "ひ": "hi", "ふ": "fu", "へ": "he", "ほ": "ho",
    "ま": "ma", "み": "mi", "む": "mu", "め": "me", "も": "mo",
    "や": "ya", "ゆ": "yu", "よ": "yo",
    "ら": "ra", "り": "ri", "る": "ru", "れ": "re", "ろ": "ro",
    "わ": "wa", "ゐ": "i", "ゑ": "e", "を": "o", "ん": "n",
    "が": "ga", "ぎ": "gi", "ぐ": "gu", "げ": "ge", "ご": "go",
    "ざ": "za", "じ": "ji", "ず": "zu", "ぜ": "ze", "ぞ": "zo",
    "だ": "da", "ぢ": "ji", "づ": "zu", "で": "de", "ど": "do",
    "ば": "ba", "び": "bi", "ぶ": "bu", "べ": "be", "ぼ": "bo",
    "ぱ": "pa", "ぴ": "pi", "ぷ": "pu", "ぺ": "pe", "ぽ": "po",
    "ぁ": "a", "ぃ": "i", "ぅ": "u", "ぇ": "e", "ぉ": "o", "ゔ": "vu",
}
_YOUON = {"ゃ": "a", "ゅ": "u", "ょ": "o"}


def romanise_kana(kana: str) -> str:
    """Hiragana (or katakana) to passport-style Hepburn, long vowels folded (ちゅうおう → chuo)."""
    hira = "".join(chr(ord(c) - 0x60) if "\u30a1" <= c <= "\u30f6" else c for c in kana)
    out: list[str] = []
    double_next = False
    for ch in hira:
        if ch == "っ":
            double_next = True
            continue
        if ch in _YOUON and out:
            prev = out.pop()
            stem = prev[:-1] if prev.endswith("i") else prev
            syllable = stem + ("" if stem.endswith(("sh", "ch", "j")) else "y") + _YOUON[ch]
        elif ch == "ー":
            continue
        else:
            found = _KANA.get(ch)
            if found is None:
                raise ValueError(f"cannot romanise {ch!r}")
            syllable = found
        if double_next:
            syllable = ("t" if syllable.startswith("ch") else syllable[0]) + syllable
            double_next = False
        out.append(syllable)
    text = "".join(out)
    for long, short in (("ou", "o"), ("oo", "o"), ("uu", "u")):
        text = text.replace(long, short)
    return text


_SUFFIXES = (("市", "し", "shi"), ("区", "く", "ku"), ("町", "まち", "machi"), ("町", "ちょう", "cho"),
             ("村", "むら", "mura"), ("村", "そん", "son"))


def romanise_municipality(name: str, kana: str) -> str:
    """``千代田区`` / ``ちよだく`` → ``Chiyoda-ku``: the stem romanised, the suffix as written (市 shi, 区 ku,
    町 machi or cho, 村 mura or son, by its reading)."""
    for kanji, reading, roman in _SUFFIXES:
        if name.endswith(kanji) and kana.endswith(reading) and len(kana) > len(reading):
            return romanise_kana(kana[: -len(reading)]).capitalize() + "-" + roman
    return romanise_kana(kana).capitalize()


# --- verifiers ------------------------------------------------------------------------------------------

class VerifierKind(StrEnum):
    """Who may verify JPKI certificates (公的個人認証法 §17, §36; reference §4)."""

    GOVERNMENT = "government"
    """行政機関等 — government bodies, courts and the like."""
    CERTIFIED_PRIVATE = "certified_private"
    """総務大臣認定事業者 — a private business certified by the Minister of Internal Affairs."""
    PLATFORM_OPERATOR = "platform_operator"
    """プラットフォーム事業者 — a certified business that verifies for other businesses (サービスプロバイダ)
    and may subscribe to certificates to learn when a customer's facts changed (現況確認)."""

    @property
    def label_ja(self) -> str:
        return {"government": "行政機関等", "certified_private": "総務大臣認定事業者",
                "platform_operator": "プラットフォーム事業者"}[self.value]


class Purpose(StrEnum):
    """What a verifier is registered for; it decides which CA's revocation information it receives."""

    SIGNATURE = "signature"
    """署名検証者 — checks signing certificates and may receive the basic four facts."""
    AUTHENTICATION = "authentication"
    """利用者証明検証者 — checks authentication certificates; never receives personal facts."""

    @property
    def ca_kind(self) -> CaKind:
        return CaKind.SIGN if self is Purpose.SIGNATURE else CaKind.AUTH

    @classmethod
    def for_ca(cls, kind: CaKind) -> Purpose:
        return cls.SIGNATURE if kind is CaKind.SIGN else cls.AUTHENTICATION


# --- CRL schedule ----------------------------------------------------------------------------------------

@dataclass(frozen=True)
class CrlSchedule:
    """When full and delta CRLs are regenerated (a platform operator documents a daily J-LIS CRL).

    A CRL is due once ``now`` reaches its nextUpdate less :attr:`margin`, so that the CRL at the stable URL
    is never stale; a revocation appears in the next delta at the latest :attr:`delta_every` later.
    """

    full_every: timedelta = timedelta(hours=24)
    delta_every: timedelta = timedelta(minutes=15)
    margin: timedelta = timedelta(minutes=1)

    def full_next_update(self, this_update: datetime) -> datetime:
        return this_update + self.full_every

    def delta_next_update(self, this_update: datetime) -> datetime:
        return this_update + self.delta_every

    def due(self, next_update: datetime | None, now: datetime) -> bool:
        return next_update is None or now >= next_update - self.margin


_HEX = re.compile(r"[0-9A-Fa-f]+")


def parse_serial(text: str) -> int:
    """A certificate serial number in hexadecimal, as ``openssl x509 -serial`` prints it (``serial=``, ``0x``,
    colons and spaces allowed); one that no certificate of ours can have (0, over 63 bits) is not found."""
    raw = text.strip().removeprefix("serial=").replace(":", "").replace(" ", "")
    raw = raw.removeprefix("0x").removeprefix("0X")
    if not _HEX.fullmatch(raw):
        raise InvalidInput("a serial number is hexadecimal")
    if len(raw) > 64:  # before int(): a long digit string is still out of range, and converting it costs
        raise NotFound("no such certificate")
    value = int(raw, 16)
    if value <= 0 or value.bit_length() > 63:
        raise NotFound("no such certificate")
    return value
