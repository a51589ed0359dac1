"""The card lifecycle model: transitions, validity rules, application IDs."""

from __future__ import annotations

import itertools
from datetime import date

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mynacard.cards.model import (
    TRANSITIONS,
    ApplicationId,
    CardState,
    IllegalTransition,
    card_expiry,
    certificate_expiry,
    check_transition,
    validity,
)

S = CardState


def test_the_happy_path_is_legal() -> None:
    path = [None, S.APPLIED, S.ACCEPTED, S.PRINT_ORDERED, S.MANUFACTURED, S.SHIPPED, S.RECEIVED,
            S.PRE_ISSUANCE_SET, S.NOTICE_SENT, S.ISSUED, S.SUSPENDED, S.ISSUED, S.ABOLISHED]
    for a, b in itertools.pairwise(path):
        check_transition(a, b)  # type: ignore[arg-type]


@pytest.mark.parametrize(("a", "b"), [
    (S.APPLIED, S.ISSUED), (S.ABOLISHED, S.ISSUED), (S.VOIDED, S.APPLIED), (S.ISSUED, S.VOIDED),
    (S.REJECTED, S.ACCEPTED), (S.SHIPPED, S.MANUFACTURED), (None, S.ACCEPTED)])
def test_illegal_moves_raise(a: CardState | None, b: CardState) -> None:
    with pytest.raises(IllegalTransition, match="cannot go"):
        check_transition(a, b)


def test_terminal_states_have_no_way_out_and_every_state_is_reachable() -> None:
    assert TRANSITIONS[S.ABOLISHED] == TRANSITIONS[S.REJECTED] == TRANSITIONS[S.VOIDED] == frozenset()
    reachable = {S.APPLIED}
    frontier = [S.APPLIED]
    while frontier:
        for nxt in TRANSITIONS[frontier.pop()]:
            if nxt not in reachable:
                reachable.add(nxt)
                frontier.append(nxt)
    assert reachable == set(CardState)


@pytest.mark.parametrize(("birth", "issued", "applied", "card"), [
    # the first birthday after issuance counts as the 1st: a card of 2016 expires in 2025 (the FY2025 wave)
    (date(1990, 5, 1), date(2026, 4, 6), date(2026, 3, 1), date(2035, 5, 1)),   # adult: 10th birthday
    (date(2010, 5, 1), date(2026, 4, 6), date(2026, 3, 1), date(2030, 5, 1)),   # 15: 5th birthday
    (date(2008, 4, 6), date(2026, 4, 6), date(2026, 3, 1), date(2036, 4, 6)),   # 18 on the day: adult
    (date(2002, 5, 1), date(2022, 3, 20), date(2022, 3, 1), date(2026, 5, 1)),  # 19 before 2022-04: minor
    (date(2002, 5, 1), date(2022, 4, 20), date(2022, 4, 2), date(2031, 5, 1)),  # 19 after: adult
])
def test_card_validity(birth: date, issued: date, applied: date, card: date) -> None:
    assert card_expiry(birth, issued, applied) == card


def test_certificates_last_to_the_fifth_birthday_never_past_the_card() -> None:
    v = validity(date(1990, 5, 1), date(2026, 4, 6), date(2026, 3, 1))
    assert v.certificates_until == date(2030, 5, 1) <= v.card_until
    assert certificate_expiry(date(1990, 5, 1), date(2026, 4, 6), date(2028, 1, 1)) == date(2028, 1, 1)


@given(st.dates(date(1900, 1, 1), date(2026, 1, 1)), st.dates(date(2016, 1, 1), date(2040, 1, 1)))
def test_validity_is_always_after_issuance(birth: date, issued: date) -> None:
    if birth >= issued:
        return
    v = validity(birth, issued, issued)
    assert issued < v.certificates_until <= v.card_until


def test_application_ids_carry_a_check_digit() -> None:
    app = ApplicationId.make("131016", 42)
    assert len(app) == 23 and app.municipality_code == "131016"
    wrong = app[:10] + str((int(app[10]) + 1) % 10) + app[11:]
    with pytest.raises(ValueError, match="申請書ID"):
        ApplicationId(wrong)
    for bad in ("", "1" * 22, "x" * 23):
        with pytest.raises(ValueError):
            ApplicationId(bad)
