"""Read-only aggregates of the card pipeline for other parts (issuance plans): backlog by application month,
entries into states by JST day and month, and cards in states first in, first out. Both databases."""

from __future__ import annotations

from datetime import date, datetime

import pytest

from mynacard.cards import service as cards
from mynacard.cards.model import CardState
from mynacard.clock import JST
from mynacard.context import Context
from mynacard.errors import Forbidden
from mynacard.principal import Principal, Role
from mynacard.sim.population import seed_population
from tests.helpers import notify, receive_at

S = CardState
SYSTEM = Principal.system("test")
CHIYODA, SAPPORO = "131016", "011002"


@pytest.fixture
def town(ctx: Context) -> dict[str, list[int]]:
    seed_population(ctx, [CHIYODA, SAPPORO], 12, seed=7, now=datetime(2016, 4, 1, 9, tzinfo=JST))
    may = receive_at(ctx, CHIYODA, 5, datetime(2016, 5, 31, 23, 30, tzinfo=JST),  # 14:30 UTC: May in JST
                   datetime(2016, 6, 1, 9, tzinfo=JST))
    june = receive_at(ctx, CHIYODA, 3, datetime(2016, 6, 1, 0, 30, tzinfo=JST),  # 15:30 UTC on 5/31: June in JST
                    datetime(2016, 6, 1, 9, 30, tzinfo=JST))
    other = receive_at(ctx, SAPPORO, 2, datetime(2016, 5, 20, 10, tzinfo=JST),
                    datetime(2016, 6, 1, 10, tzinfo=JST))
    notify(ctx, may[:3], datetime(2016, 6, 2, 0, 30, tzinfo=JST))  # 6/1 15:30 UTC, 6/2 in JST
    notify(ctx, may[3:4], datetime(2016, 6, 2, 23, 30, tzinfo=JST))
    cards.transition(ctx, SYSTEM, may[0], S.NOTICE_SENT, "再通知", datetime(2016, 6, 3, 10, tzinfo=JST))
    cards.transition(ctx, SYSTEM, may[1], S.ISSUED, None, datetime(2016, 6, 6, 10, tzinfo=JST))
    return {"may": may, "june": june, "other": other}


def test_backlog_by_application_month_in_jst(ctx: Context, town: dict[str, list[int]]) -> None:
    backlog = cards.counts_by_application_month(ctx, SYSTEM, [S.RECEIVED, S.PRE_ISSUANCE_SET])
    assert backlog == {CHIYODA: {date(2016, 5, 1): 1, date(2016, 6, 1): 3}, SAPPORO: {date(2016, 5, 1): 2}}
    assert cards.counts_by_application_month(ctx, SYSTEM, [S.NOTICE_SENT, S.ISSUED], CHIYODA) == {
        CHIYODA: {date(2016, 5, 1): 4}}
    clerk = Principal(Role.CLERK, "c", CHIYODA)
    assert set(cards.counts_by_application_month(ctx, clerk, [S.RECEIVED])) == {CHIYODA}
    assert cards.counts_by_application_month(ctx, clerk, [S.RECEIVED], SAPPORO) == {}
    with pytest.raises(Forbidden):
        cards.counts_by_application_month(ctx, Principal(Role.RESIDENT, "1"), [S.RECEIVED])


def test_entries_by_jst_month_and_day(ctx: Context, town: dict[str, list[int]]) -> None:
    flow = [S.APPLIED, S.RECEIVED, S.NOTICE_SENT, S.ISSUED]
    monthly = {(c.municipality_code, c.state, c.period): c.count
               for c in cards.transition_counts(ctx, SYSTEM, flow)}
    assert all(not c.daily for c in cards.transition_counts(ctx, SYSTEM, [S.APPLIED]))
    assert monthly == {
        (CHIYODA, S.APPLIED, date(2016, 5, 1)): 5, (CHIYODA, S.APPLIED, date(2016, 6, 1)): 3,
        (CHIYODA, S.RECEIVED, date(2016, 6, 1)): 8,
        (CHIYODA, S.NOTICE_SENT, date(2016, 6, 1)): 4,  # the re-notice is not a new entry
        (CHIYODA, S.ISSUED, date(2016, 6, 1)): 1,
        (SAPPORO, S.APPLIED, date(2016, 5, 1)): 2, (SAPPORO, S.RECEIVED, date(2016, 6, 1)): 2}
    daily = cards.transition_counts(ctx, SYSTEM, [S.APPLIED, S.NOTICE_SENT], daily_since=date(2016, 6, 1),
                                    municipality_code=CHIYODA)
    got = {(c.state, c.period, c.daily): c.count for c in daily}
    assert got == {(S.APPLIED, date(2016, 5, 1), False): 5, (S.APPLIED, date(2016, 6, 1), True): 3,
                   (S.NOTICE_SENT, date(2016, 6, 2), True): 4}
    since = cards.transition_counts(ctx, SYSTEM, [S.APPLIED], since=date(2016, 6, 1))
    assert [(c.municipality_code, c.count) for c in since] == [(CHIYODA, 3)]
    clerk = Principal(Role.CLERK, "c", SAPPORO)
    assert {c.municipality_code for c in cards.transition_counts(ctx, clerk, [S.APPLIED])} == {SAPPORO}
    assert cards.transition_counts(ctx, clerk, [S.APPLIED], municipality_code=CHIYODA) == []


def test_cards_in_states_first_in_first_out(ctx: Context, town: dict[str, list[int]]) -> None:
    received = cards.card_ids_in_states(ctx, SYSTEM, CHIYODA, [S.RECEIVED])
    assert received == [town["may"][4], *town["june"]]  # the 9:00 box before the 9:30 one
    assert cards.card_ids_in_states(ctx, SYSTEM, CHIYODA, [S.RECEIVED], limit=2) == received[:2]
    early = datetime(2016, 6, 1, 9, 10, tzinfo=JST)
    first_box = cards.card_ids_in_states(ctx, SYSTEM, CHIYODA, [S.RECEIVED], changed_before=early)
    assert first_box == [town["may"][4]]
    assert cards.card_ids_in_states(ctx, Principal(Role.CLERK, "c", SAPPORO), CHIYODA, [S.RECEIVED]) == []
