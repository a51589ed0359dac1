"""Individual and corporate numbers: the ordinances' worked examples, error detection, derivation."""

from __future__ import annotations

import secrets

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mynacard import numbers

digits = st.text(alphabet="0123456789", min_size=1, max_size=1)
base11 = st.text(alphabet="0123456789", min_size=11, max_size=11)
base12 = st.text(alphabet="0123456789", min_size=12, max_size=12)


@pytest.mark.parametrize(("base", "check"), [
    ("12345678901", 8), ("00000000006", 0), ("00000000005", 1), ("98765432109", 3)])
def test_individual_number_worked_examples(base: str, check: int) -> None:
    assert numbers.individual_number_check_digit(base) == check
    assert numbers.is_valid_individual_number(base + str(check))


@pytest.mark.parametrize("number", ["7123456789012", "4011001098993", "7000012050002"])
def test_corporate_number_published_examples(number: str) -> None:
    assert numbers.is_valid_corporate_number(number)
    assert numbers.corporate_number_check_digit(number[1:]) == int(number[0])


@pytest.mark.parametrize("bad", ["", "12345678901", "1234567890189", "12345678901x", "１２３４５６７８９０１８", None])
def test_malformed_individual_numbers_are_invalid(bad: str) -> None:
    assert not numbers.is_valid_individual_number(bad)


def _remainder(base: str) -> int:
    weights = (2, 3, 4, 5, 6, 7, 2, 3, 4, 5, 6)
    return sum(int(d) * w for d, w in zip(reversed(base), weights, strict=True)) % 11


@given(base11, st.integers(0, 10), st.integers(1, 9))
def test_one_digit_errors_are_detected_except_the_ordinances_blind_spot(base: str, pos: int, delta: int) -> None:
    number = base + str(numbers.individual_number_check_digit(base))
    wrong = number[:pos] + str((int(number[pos]) + delta) % 10) + number[pos + 1:]
    if numbers.is_valid_individual_number(wrong):
        # The rule maps remainders 0 and 1 both to check digit 0: the only undetectable substitution.
        assert {_remainder(base), _remainder(wrong[:11])} == {0, 1}


@given(base11, st.integers(0, 9))
def test_adjacent_transpositions_are_detected_except_the_blind_spot(base: str, pos: int) -> None:
    if base[pos] == base[pos + 1]:
        return
    swapped = base[:pos] + base[pos + 1] + base[pos] + base[pos + 2:]
    check = str(numbers.individual_number_check_digit(base))
    if numbers.is_valid_individual_number(swapped + check):
        assert {_remainder(base), _remainder(swapped)} == {0, 1}


@given(base12, st.integers(0, 11), st.integers(1, 9))
def test_corporate_one_digit_errors_detected_except_zero_nine(base: str, pos: int, delta: int) -> None:
    number = str(numbers.corporate_number_check_digit(base)) + base
    i = pos + 1
    new_digit = (int(number[i]) + delta) % 10
    wrong = number[:i] + str(new_digit) + number[i + 1:]
    if numbers.is_valid_corporate_number(wrong):
        assert {int(number[i]), new_digit} == {0, 9}


@given(base12, st.integers(0, 10))
def test_corporate_transpositions_detected_except_zero_nine(base: str, pos: int) -> None:
    if base[pos] == base[pos + 1]:
        return
    swapped = base[:pos] + base[pos + 1] + base[pos] + base[pos + 2:]
    if numbers.is_valid_corporate_number(str(numbers.corporate_number_check_digit(base)) + swapped):
        assert {base[pos], base[pos + 1]} == {"0", "9"}


@given(base11)
def test_every_computed_number_is_valid(base: str) -> None:
    assert numbers.is_valid_individual_number(base + str(numbers.individual_number_check_digit(base)))


def test_masking_shows_only_the_last_four_digits() -> None:
    assert numbers.mask_individual_number("123456789018") == "****-****-9018"
    assert numbers.mask_individual_number("garbage") == "****-****-****"


def test_derivation_is_keyed_and_deterministic() -> None:
    code = "12345678903"
    a = numbers.derive_individual_number(b"secret-a", code)
    assert a == numbers.derive_individual_number(b"secret-a", code)
    assert a != numbers.derive_individual_number(b"secret-b", code)
    assert a != numbers.derive_individual_number(b"secret-a", code, attempt=1)
    assert numbers.is_valid_individual_number(a)
    with pytest.raises(ValueError):
        numbers.derive_individual_number(b"", code)
    with pytest.raises(ValueError):
        numbers.derive_individual_number(b"k", "123")


@pytest.mark.slow
def test_a_million_assignments_give_a_million_distinct_valid_numbers() -> None:
    """The collision rule (next attempt until the unique index accepts) over 10^6 resident codes.

    About five raw collisions are expected in a 10^11 space; each must be resolved, none may survive.
    """
    secret = secrets.token_bytes(32)
    taken: set[str] = set()
    resolved = 0
    for i in range(1_000_000):
        base = f"{i:010d}"
        code = base + str(numbers.resident_record_code_check_digit(base))
        attempt = 0
        while (number := numbers.derive_individual_number(secret, code, attempt)) in taken:
            attempt += 1
        resolved += attempt
        taken.add(number)
    assert len(taken) == 1_000_000
    assert all(numbers.is_valid_individual_number(n) for n in list(taken)[:1000])
    assert resolved < 100  # collisions are rare and each takes one step
