"""Individual numbers (個人番号) and corporate numbers (法人番号).

Check digits follow the ordinances quoted in ``reference/jpki-technical.md`` §6:

* individual number: 11-digit base + mod-11 check digit last (平成26年総務省令第85号 第5条);
* corporate number: check digit first + 12-digit base, mod 9 (平成26年財務省令第70号 第2条).

An individual number is derived from the resident record code (住民票コード) by a keyed, non-reversible
transformation: HMAC-SHA256 under a configured secret, reduced to 11 digits, plus the check digit. Collisions
in the 10^11 space are expected (about five per million numbers) and resolved deterministically by trying the
next ``attempt`` until the unique index accepts the number. This module is pure: storage and the unique index
live in :mod:`mynacard.registry`.
"""

from __future__ import annotations

import hashlib
import hmac
import re

__all__ = [
    "corporate_number_check_digit",
    "derive_individual_number",
    "individual_number_check_digit",
    "is_valid_corporate_number",
    "is_valid_individual_number",
    "is_valid_resident_record_code",
    "mask_individual_number",
    "resident_record_code_check_digit",
]

_DIGITS = re.compile(r"[0-9]+")
# Weights from the rightmost base digit: Qn = n+1 for n<=6, n-5 for n>=7.
_INDIVIDUAL_WEIGHTS = (2, 3, 4, 5, 6, 7, 2, 3, 4, 5, 6)


def _digits(value: str, length: int, what: str) -> str:
    if not isinstance(value, str) or len(value) != length or not _DIGITS.fullmatch(value):
        raise ValueError(f"{what} must be exactly {length} ASCII digits")
    return value


def individual_number_check_digit(base: str) -> int:
    """Check digit of an 11-digit individual number base (個人番号の検査用数字)."""
    _digits(base, 11, "individual number base")
    total = sum(int(d) * w for d, w in zip(reversed(base), _INDIVIDUAL_WEIGHTS, strict=True))
    remainder = total % 11
    return 0 if remainder <= 1 else 11 - remainder


def is_valid_individual_number(number: str) -> bool:
    """True for 12 ASCII digits whose last digit is the correct check digit."""
    if not isinstance(number, str) or len(number) != 12 or not _DIGITS.fullmatch(number):
        return False
    return individual_number_check_digit(number[:11]) == int(number[11])


def corporate_number_check_digit(base: str) -> int:
    """Check digit of a 12-digit corporate number base (法人番号の検査用数字); always 1–9."""
    _digits(base, 12, "corporate number base")
    total = sum(int(d) * (1 if n % 2 else 2) for n, d in enumerate(reversed(base), start=1))
    return 9 - total % 9


def is_valid_corporate_number(number: str) -> bool:
    """True for 13 ASCII digits whose first digit is the correct check digit."""
    if not isinstance(number, str) or len(number) != 13 or not _DIGITS.fullmatch(number):
        return False
    return corporate_number_check_digit(number[1:]) == int(number[0])


def resident_record_code_check_digit(base: str) -> int:
    """Check digit of a 10-digit resident record code base (住民票コード).

    The real algorithm is not public; we use the same mod-11 weighting as the individual number over the
    10 digits, which catches every single-digit error and adjacent transposition just as well.
    """
    _digits(base, 10, "resident record code base")
    total = sum(int(d) * w for d, w in zip(reversed(base), _INDIVIDUAL_WEIGHTS, strict=False))
    remainder = total % 11
    return 0 if remainder <= 1 else 11 - remainder


def is_valid_resident_record_code(code: str) -> bool:
    """True for 11 ASCII digits with a correct check digit."""
    if not isinstance(code, str) or len(code) != 11 or not _DIGITS.fullmatch(code):
        return False
    return resident_record_code_check_digit(code[:10]) == int(code[10])


def derive_individual_number(secret: bytes, resident_record_code: str, attempt: int = 0) -> str:
    """The individual number for a resident record code, for the given collision ``attempt``.

    HMAC-SHA256 over the code and the attempt counter; the first 8 bytes reduced modulo 10^11 give the
    base (the bias of 2^64 mod 10^11 is below 10^-8 and irrelevant here). Without the secret the number
    cannot be computed from the code, and the code cannot be recovered from the number.
    """
    if not secret:
        raise ValueError("the number secret must not be empty")
    _digits(resident_record_code, 11, "resident record code")
    if attempt < 0:
        raise ValueError("attempt must be >= 0")
    mac = hmac.new(secret, f"{resident_record_code}:{attempt}".encode(), hashlib.sha256).digest()
    base = f"{int.from_bytes(mac[:8], 'big') % 10**11:011d}"
    return base + str(individual_number_check_digit(base))


def mask_individual_number(number: str) -> str:
    """Display form that shows only the last four digits: ``****-****-9018``."""
    if not isinstance(number, str) or len(number) != 12 or not _DIGITS.fullmatch(number):
        return "****-****-****"
    return f"****-****-{number[8:]}"
