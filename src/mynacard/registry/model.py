"""The resident registry (住民基本台帳) as a pure domain model: codes, the basic four facts, residents.

No I/O and no clock: dates come in as arguments. Text is normalised once, where it enters, so that the
full match of the basic four facts (基本4情報の完全一致) is a plain equality — in Python and in SQL alike.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass, replace
from datetime import date
from enum import StrEnum

__all__ = [
    "BasicFacts",
    "MunicipalityCode",
    "Resident",
    "ResidentStatus",
    "Sex",
    "add_years",
    "age_on",
    "is_valid_municipality_code",
    "municipality_code_check_digit",
    "normalize_address",
    "normalize_kana",
    "normalize_name_part",
    "nth_birthday_after",
]

_FULLWIDTH_SPACE = "\u3000"


def municipality_code_check_digit(first5: str) -> int:
    """Check digit of a local government code (全国地方公共団体コード): weights 6..2, (11 − Σ mod 11) mod 10."""
    if len(first5) != 5 or not first5.isascii() or not first5.isdigit():
        raise ValueError("a local government code has five digits before its check digit")
    total = sum(int(d) * w for d, w in zip(first5, (6, 5, 4, 3, 2), strict=True))
    return (11 - total % 11) % 10


def is_valid_municipality_code(code: str) -> bool:
    return (isinstance(code, str) and len(code) == 6 and code.isascii() and code.isdigit()
            and municipality_code_check_digit(code[:5]) == int(code[5]))


class MunicipalityCode(str):
    """A 6-digit local government code with its check digit (e.g. ``131016`` 千代田区)."""

    __slots__ = ()

    def __new__(cls, value: str) -> MunicipalityCode:
        if not is_valid_municipality_code(value):
            raise ValueError(f"not a local government code: {value!r} (six digits, check digit last)")
        return super().__new__(cls, value)

    @property
    def prefecture_code(self) -> str:
        return self[:2]


class Sex(StrEnum):
    """性別, stored with the ISO 5218 codes the card-info application uses."""

    MALE = "1"
    FEMALE = "2"
    NOT_APPLICABLE = "9"

    @property
    def jpki_code(self) -> str:
        """The code in the signing certificate: 1 男, 2 女, 3 不明 (JPKI uses 3 where ISO 5218 uses 9)."""
        return {"1": "1", "2": "2", "9": "3"}[self.value]

    @property
    def label_ja(self) -> str:
        return {"1": "男", "2": "女", "9": "不明"}[self.value]


class ResidentStatus(StrEnum):
    """The state of a resident record."""

    ACTIVE = "active"
    """住民 — registered in a municipality."""
    ABROAD = "abroad"
    """国外転出 — moved abroad; the record is kept for the family register attachment (戸籍の附票)."""
    DECEASED = "deceased"
    """死亡 — the record is closed (消除)."""


_SPACES = re.compile(r"\s+")


def normalize_name_part(value: str) -> str:
    """One part of a name (family or given): NFKC, no spaces. Raises on empty or non-text input."""
    if not isinstance(value, str):
        raise ValueError("a name must be text")
    text = _SPACES.sub("", unicodedata.normalize("NFKC", value))
    if not text or len(text) > 60:
        raise ValueError("a name part must have 1–60 characters")
    if any(unicodedata.category(ch).startswith(("C", "Z")) for ch in text):
        raise ValueError("a name must not contain control characters")
    return text


def normalize_kana(value: str) -> str:
    """Furigana as full-width katakana without spaces (hiragana and half-width katakana are converted)."""
    text = normalize_name_part(value)
    out = "".join(chr(ord(ch) + 0x60) if "\u3041" <= ch <= "\u3096" else ch for ch in text)
    if not all("\u30a0" <= ch <= "\u30ff" for ch in out):
        raise ValueError("furigana must be kana only")
    return out


def normalize_address(value: str) -> str:
    """An address (住所): NFKC, runs of whitespace to one space, 1–200 characters (the JPKI maximum)."""
    if not isinstance(value, str):
        raise ValueError("an address must be text")
    text = _SPACES.sub(" ", unicodedata.normalize("NFKC", value)).strip()
    if not text or len(text) > 200:
        raise ValueError("an address must have 1–200 characters")
    if any(unicodedata.category(ch) == "Cc" for ch in text):
        raise ValueError("an address must not contain control characters")
    return text


def add_years(d: date, years: int) -> date:
    """``d`` plus whole years; 29 February becomes 28 February in a common year."""
    try:
        return d.replace(year=d.year + years)
    except ValueError:
        return d.replace(year=d.year + years, day=28)


def age_on(birth_date: date, on: date) -> int:
    """Full years of age on a day (満年齢)."""
    years = on.year - birth_date.year
    return years - 1 if add_years(birth_date, years) > on else years


def nth_birthday_after(birth_date: date, after: date, n: int) -> date:
    """The n-th birthday strictly after ``after`` (n ≥ 1): 'to the 10th birthday after issuance'."""
    if n < 1:
        raise ValueError("n must be at least 1")
    return add_years(birth_date, age_on(birth_date, after) + n)


@dataclass(frozen=True)
class BasicFacts:
    """The basic four facts (基本4情報): name, address, date of birth, sex — already normalised."""

    family_name: str
    """氏 (kanji), normalised by :func:`normalize_name_part`."""
    given_name: str
    """名 (kanji)."""
    birth_date: date
    """生年月日."""
    sex: Sex
    """性別."""
    address: str
    """住所, normalised by :func:`normalize_address`."""

    @classmethod
    def parse(cls, family_name: str, given_name: str, birth_date: date, sex: Sex | str,
              address: str) -> BasicFacts:
        """Validate and normalise raw input; raises ``ValueError`` with a clear message."""
        if not isinstance(birth_date, date):
            raise ValueError("date of birth must be a date")
        try:
            sex_value = Sex(sex)
        except ValueError:
            raise ValueError("sex must be 1 (male), 2 (female) or 9 (not applicable)") from None
        return cls(normalize_name_part(family_name), normalize_name_part(given_name), birth_date,
                   sex_value, normalize_address(address))

    @property
    def name(self) -> str:
        """The name as JPKI writes it: family and given name separated by a full-width space."""
        return f"{self.family_name}{_FULLWIDTH_SPACE}{self.given_name}"

    def mismatches(self, other: BasicFacts) -> list[str]:
        """Which of the four facts differ (``name``, ``birth_date``, ``sex``, ``address``)."""
        out = []
        if (self.family_name, self.given_name) != (other.family_name, other.given_name):
            out.append("name")
        if self.birth_date != other.birth_date:
            out.append("birth_date")
        if self.sex != other.sex:
            out.append("sex")
        if self.address != other.address:
            out.append("address")
        return out


@dataclass(frozen=True)
class Resident:
    """A resident record (住民票)."""

    id: int
    resident_code: str
    """住民票コード — 11 digits, check digit last."""
    municipality_code: str
    """Where the resident is (or was last) registered."""
    household_id: int | None
    """世帯."""
    facts: BasicFacts
    family_kana: str
    given_kana: str
    maiden_name: str | None
    """旧姓, shown beside the name on the face when the resident asked for it."""
    status: ResidentStatus
    relationship: str
    """続柄 to the head of household (世帯主, 妻, 子 …)."""

    def age_on(self, on: date) -> int:
        return age_on(self.facts.birth_date, on)

    def moved(self, address: str, municipality_code: str) -> Resident:
        return replace(self, facts=replace(self.facts, address=normalize_address(address)),
                       municipality_code=MunicipalityCode(municipality_code))

    def renamed(self, family_name: str, given_name: str, family_kana: str, given_kana: str,
                keep_maiden_name: bool) -> Resident:
        previous = self.facts.family_name
        return replace(
            self,
            facts=replace(self.facts, family_name=normalize_name_part(family_name),
                          given_name=normalize_name_part(given_name)),
            family_kana=normalize_kana(family_kana),
            given_kana=normalize_kana(given_kana),
            maiden_name=(self.maiden_name or previous) if keep_maiden_name else self.maiden_name,
        )

    def require_active(self) -> None:
        if self.status is not ResidentStatus.ACTIVE:
            raise ValueError(f"the resident record is not active ({self.status.value})")
