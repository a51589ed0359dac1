"""Properties of the pure rules: conversion rounding, balanced postings, shelter presence."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mynacard.errors import InvalidInput
from mynacard.mykey.model import (
    MYKEY_ALPHABET,
    Posting,
    Rate,
    check_mykey_id,
    missing_members,
    mykey_id_from,
    presence,
)

rates = st.builds(Rate, st.integers(1, 20), st.integers(1, 20))


@given(rates, st.integers(1, 10**7), st.integers(1, 10**7))
def test_conversion_rounds_down_and_splitting_never_gains(rate: Rate, a: int, b: int) -> None:
    def points(n: int) -> int:
        try:
            return rate.convert(n)
        except InvalidInput:
            return 0

    assert points(a) == a * rate.numerator // rate.denominator
    assert points(a) + points(b) <= points(a + b)


@given(st.sampled_from(["conversion", "earning", "redemption"]), st.integers(1, 10**6))
def test_every_posting_balances(kind: str, amount: int) -> None:
    if kind == "conversion":
        posting = Posting.conversion("131016", "jal", "ABCDEFGH", amount, Rate(3, 2))
    elif kind == "earning":
        posting = Posting.earning("131016", "ABCDEFGH", amount, "x")
    else:
        posting = Posting.redemption("131016", "ABCDEFGH", "bakery", amount)
    assert sum(leg.amount for leg in posting.legs) == 0 and len(posting.fingerprint) == 64


@given(st.binary(min_size=8, max_size=8))
def test_mykey_ids_are_well_formed(raw: bytes) -> None:
    made = mykey_id_from(raw)
    assert len(made) == 8 and set(made) <= set(MYKEY_ALPHABET) and check_mykey_id(made.lower()) == made


def test_unbalanced_and_bad_ids_are_refused() -> None:
    with pytest.raises(InvalidInput):
        check_mykey_id("ABCDEFG0")  # 0 is not in the alphabet (looks like O)
    with pytest.raises(InvalidInput):
        Posting.redemption("131016", "ABCDEFGH", "bakery", 0)


T0 = datetime(2026, 4, 6, tzinfo=UTC)
touch_lists = st.lists(st.tuples(st.integers(1, 6), st.sampled_from(["a", "b", "c"]), st.sampled_from(["in", "out"]),
                                 st.integers(0, 50)), max_size=40)


@given(touch_lists, st.randoms(use_true_random=False))
def test_presence_is_the_latest_touch_in_any_order(touches: list[tuple[int, str, str, int]],
                                                   rng: random.Random) -> None:
    rows = [(r, s, d, T0 + timedelta(minutes=m)) for r, s, d, m in touches]
    shuffled = rows[:]
    rng.shuffle(shuffled)
    where = presence(rows)
    assert where == presence(shuffled)
    for resident, place in where.items():
        last = max(t for r, _, _, t in rows if r == resident)
        at_last = {(s, d) for r, s, d, t in rows if r == resident and t == last}
        assert (place is None) == all(d == "out" for _, d in at_last)


@given(touch_lists)
def test_missing_members_are_in_a_household_with_someone_present(touches: list[tuple[int, str, str, int]]) -> None:
    where = presence((r, s, d, T0 + timedelta(minutes=m)) for r, s, d, m in touches)
    households = {1: [1, 2, 3], 2: [4, 5], 3: [6]}
    missing = missing_members(households, where)
    for household, absent in missing.items():
        assert any(where.get(m) for m in households[household])
        assert absent and all(not where.get(m) and m in households[household] for m in absent)
    for household, members in households.items():
        if household not in missing:
            assert all(where.get(m) for m in members) or not any(where.get(m) for m in members)
