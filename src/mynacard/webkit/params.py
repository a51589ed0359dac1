"""Typed, bounded inputs of the web app, declared once per kind of value and reused by every part's routes.

A value is validated where it enters: FastAPI refuses anything out of bounds with a 422 that names the field
(:func:`mynacard.webkit.errors.validation_error`) before a route or a service sees it, so that no input can
reach the database out of range (SQLite and PostgreSQL keep ids in a signed 64-bit ``BIGINT``) or make date
arithmetic overflow. Each kind comes in the three places an input can be:

- ``…Path`` for a path parameter: ``def card(card_id: IdPath)``;
- ``…Query`` for a query parameter, the default given as usual: ``limit: Limit = 100``,
  ``day: DayQuery | None = None``;
- the bare name for a field of a pydantic body model: ``card_id: Id``, ``note: LongText | None = None``.

Form fields of pages take the same bounds through :func:`parse_id` and :func:`bounded` (or ``Form(...)`` with the
same numbers). The domain's own rules (a municipality code's check digit, an application ID's) stay in the
domain: the types here bound shape and size, the services still refuse with their reasons (4xx).
"""

from __future__ import annotations

from datetime import date
from typing import Annotated

from fastapi import Path, Query
from pydantic import Field

from mynacard.errors import InvalidInput

__all__ = [
    "AGENCY_ID_PATTERN", "DAY_MAX", "DAY_MIN", "ID_MAX", "KEY_PATTERN", "LIMIT_MAX", "MONTH_PATTERN",
    "MUNICIPALITY_PATTERN", "PAGE_MAX", "PREFECTURE_PATTERN", "REF_PATTERN", "TEXT_LONG", "TEXT_SHORT", "After",
    "AgencyId", "AgencyIdPath", "AgencyIdQuery", "Count", "Day", "DayQuery", "Id", "IdPath", "IdQuery", "Key",
    "KeyPath", "Limit", "LongText", "Month", "MonthQuery", "Municipality", "MunicipalityPath", "MunicipalityQuery",
    "Name", "Page", "PrefecturePath", "PrefectureQuery", "Ref", "RefPath", "ShortText", "TextPath", "TextQuery",
    "bounded", "parse_id",
]

ID_MAX = 2**63 - 1
"""The largest database id: SQLite's INTEGER and PostgreSQL's BIGINT are signed 64-bit."""
LIMIT_MAX = 1000
"""The most rows one request may ask for."""
PAGE_MAX = 100_000
TEXT_SHORT = 200
"""A name, a label, a reason, a title."""
TEXT_LONG = 4000
"""A note, a message body, an address."""
DAY_MIN = date(1900, 1, 1)
DAY_MAX = date(2199, 12, 31)
"""Dates the programme can mean (birth dates to card expiry), far from ``date.min``/``date.max`` so that a day
before or after never overflows."""

MUNICIPALITY_PATTERN = r"^[0-9]{6}$"
"""全国地方公共団体コード: six ASCII digits (the check digit is the registry's rule: an unknown code is a 404)."""
PREFECTURE_PATTERN = r"^[0-9]{2}$"
MONTH_PATTERN = r"^[0-9]{4}-(0[1-9]|1[0-2])$"
AGENCY_ID_PATTERN = r"^[a-z0-9]+(-[a-z0-9]+)*$"
KEY_PATTERN = r"^[!-~]+$"
"""An idempotency or request key: 1–64 printable ASCII characters without spaces."""
REF_PATTERN = r"^[A-Za-z0-9._:-]+$"
"""An agency's own reference of a record: what the network accepts (A–Z a–z 0–9 . _ : -)."""

# --- database ids -----------------------------------------------------------------------------------------

Id = Annotated[int, Field(ge=1, le=ID_MAX, description="a database id (1 … 2^63−1)")]
IdPath = Annotated[int, Path(ge=1, le=ID_MAX, description="a database id (1 … 2^63−1)")]
IdQuery = Annotated[int, Query(ge=1, le=ID_MAX, description="a database id (1 … 2^63−1)")]

# --- paging -----------------------------------------------------------------------------------------------

Limit = Annotated[int, Query(ge=1, le=LIMIT_MAX, description=f"how many rows (1 … {LIMIT_MAX})")]
After = Annotated[int, Query(ge=0, le=ID_MAX, description="the cursor: rows after this sequence number")]
Page = Annotated[int, Query(ge=1, le=PAGE_MAX, description="the page, from 1")]
Count = Annotated[int, Field(ge=0, le=1_000_000_000)]
"""A number of things (points, cards, people): never negative, never beyond what one municipality has."""

# --- municipalities and prefectures ---------------------------------------------------------------------

Municipality = Annotated[str, Field(pattern=MUNICIPALITY_PATTERN, description="a municipality code (6 digits)")]
MunicipalityPath = Annotated[str, Path(pattern=MUNICIPALITY_PATTERN, description="a municipality code (6 digits)")]
MunicipalityQuery = Annotated[str, Query(pattern=MUNICIPALITY_PATTERN,
                                         description="a municipality code (6 digits)")]
PrefecturePath = Annotated[str, Path(pattern=PREFECTURE_PATTERN, description="a prefecture code (2 digits)")]
PrefectureQuery = Annotated[str, Query(pattern=PREFECTURE_PATTERN, description="a prefecture code (2 digits)")]

# --- dates and months -----------------------------------------------------------------------------------

Day = Annotated[date, Field(ge=DAY_MIN, le=DAY_MAX)]
DayQuery = Annotated[date, Query(ge=DAY_MIN, le=DAY_MAX, description="a day (YYYY-MM-DD)")]
Month = Annotated[str, Field(pattern=MONTH_PATTERN, description="a month (YYYY-MM)")]
MonthQuery = Annotated[str, Query(pattern=MONTH_PATTERN, description="a month (YYYY-MM)")]

# --- text -----------------------------------------------------------------------------------------------

Name = Annotated[str, Field(min_length=1, max_length=TEXT_SHORT)]
"""A required short text: a name, a title, a label."""
ShortText = Annotated[str, Field(max_length=TEXT_SHORT)]
"""An optional short text (may be empty): a reason, a status word, a kana reading."""
LongText = Annotated[str, Field(max_length=TEXT_LONG)]
TextPath = Annotated[str, Path(min_length=1, max_length=TEXT_SHORT)]
TextQuery = Annotated[str, Query(max_length=TEXT_SHORT)]
Key = Annotated[str, Field(min_length=1, max_length=64, pattern=KEY_PATTERN)]
KeyPath = Annotated[str, Path(min_length=1, max_length=64, pattern=KEY_PATTERN)]
Ref = Annotated[str, Field(min_length=1, max_length=64, pattern=REF_PATTERN,
                           description="an agency's own reference of a record (1–64 of A–Z a–z 0–9 . _ : -)")]
RefPath = Annotated[str, Path(min_length=1, max_length=64, pattern=REF_PATTERN)]
AgencyId = Annotated[str, Field(min_length=3, max_length=40, pattern=AGENCY_ID_PATTERN,
                                description="an agency on the network (e.g. 131016-tax)")]
AgencyIdPath = Annotated[str, Path(min_length=3, max_length=40, pattern=AGENCY_ID_PATTERN)]
AgencyIdQuery = Annotated[str, Query(min_length=3, max_length=40, pattern=AGENCY_ID_PATTERN)]


# --- form fields and free text that must become a number ---------------------------------------------------

def bounded(value: int, name: str, low: int, high: int) -> int:
    """``value`` if ``low <= value <= high``, else a 422 naming ``name``."""
    if not low <= value <= high:
        raise InvalidInput(f"{name}: between {low} and {high}", [f"{name}: between {low} and {high}"])
    return value


def parse_id(text: str, name: str) -> int | None:
    """A database id typed into a form (blank: None); anything but 1 … 2^63−1 in ASCII digits is a 422."""
    text = text.strip()
    if not text:
        return None
    if not (text.isascii() and text.isdigit()) or len(text) > 19:
        raise InvalidInput(f"{name}: a number from 1 to {ID_MAX}", [f"{name}: a number"])
    return bounded(int(text), name, 1, ID_MAX)
