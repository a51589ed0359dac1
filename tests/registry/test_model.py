"""The registry's pure model: codes, normalisation, ages and birthdays."""

from __future__ import annotations

import csv
from datetime import date
from importlib.resources import files

import pytest

from mynacard.registry.model import (
    BasicFacts,
    MunicipalityCode,
    Sex,
    age_on,
    is_valid_municipality_code,
    normalize_address,
    normalize_kana,
    nth_birthday_after,
)


def test_all_1741_municipalities_have_valid_codes_and_unique_names() -> None:
    text = (files("mynacard.registry") / "data" / "municipalities.csv").read_text(encoding="utf-8")
    rows = list(csv.DictReader(text.splitlines()))
    assert len(rows) == 1741
    assert all(is_valid_municipality_code(r["code"]) for r in rows)
    assert len({(r["prefecture"], r["name"]) for r in rows}) == 1741
    assert sum(r["name"].endswith("区") and r["prefecture"] == "東京都" for r in rows) == 23
    assert {r["code"] for r in rows} >= {"131016", "011002", "271004"}  # 千代田区, 札幌市, 大阪市


@pytest.mark.parametrize("bad", ["131017", "13101", "1310166", "abcdef", ""])
def test_bad_municipality_codes_are_refused(bad: str) -> None:
    with pytest.raises(ValueError, match="local government code"):
        MunicipalityCode(bad)


def test_text_is_normalised_once_where_it_enters() -> None:
    facts = BasicFacts.parse(" 山田 ", "太郎", date(1980, 1, 2), "1", "東京都千代田区　千代田１－１")
    assert facts.family_name == "山田"
    assert facts.address == "東京都千代田区 千代田1-1"
    assert facts.name == "山田\u3000太郎"
    assert normalize_kana("やまだ") == "ヤマダ"
    assert normalize_kana("ﾔﾏﾀﾞ") == "ヤマダ"
    with pytest.raises(ValueError):
        normalize_kana("Yamada")
    with pytest.raises(ValueError):
        normalize_address("")
    with pytest.raises(ValueError, match="sex"):
        BasicFacts.parse("山田", "太郎", date(1980, 1, 2), "5", "東京都")


def test_mismatches_name_each_differing_fact() -> None:
    a = BasicFacts.parse("山田", "太郎", date(1980, 1, 2), Sex.MALE, "東京都千代田区1")
    b = BasicFacts.parse("山田", "太朗", date(1980, 1, 3), Sex.MALE, "東京都千代田区1")
    assert a.mismatches(a) == []
    assert a.mismatches(b) == ["name", "birth_date"]


def test_ages_and_birthdays_including_29_february() -> None:
    assert age_on(date(2000, 4, 6), date(2026, 4, 5)) == 25
    assert age_on(date(2000, 4, 6), date(2026, 4, 6)) == 26
    assert nth_birthday_after(date(2000, 4, 6), date(2026, 4, 6), 10) == date(2036, 4, 6)
    assert nth_birthday_after(date(2000, 4, 6), date(2026, 4, 5), 10) == date(2035, 4, 6)
    assert nth_birthday_after(date(2004, 2, 29), date(2026, 1, 10), 5) == date(2030, 2, 28)
    assert age_on(date(2004, 2, 29), date(2026, 2, 28)) == 22
    assert Sex.NOT_APPLICABLE.jpki_code == "3"
