"""The pure plan model: months, the government calendar, means and capacity, plan figures."""

from __future__ import annotations

from datetime import date, time, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mynacard.calendar import (
    business_days,
    is_government_business_day,
    is_year_end_closure,
    public_holiday_name,
    week_of_month,
)
from mynacard.errors import InvalidInput
from mynacard.plans.forecast import capacity_array
from mynacard.plans.model import (
    EVERY_WEEK,
    Hours,
    Means,
    Month,
    PlanInputs,
    Site,
    SiteKind,
    daily_capacity,
    parse_target,
    plan_figures,
)

# 2016's national holidays as the Cabinet Office published them (国民の祝日), typed here independently of
# the holiday library the model uses.
HOLIDAYS_2016 = {date(2016, 1, 1), date(2016, 1, 11), date(2016, 2, 11), date(2016, 3, 20), date(2016, 3, 21),
                 date(2016, 4, 29), date(2016, 5, 3), date(2016, 5, 4), date(2016, 5, 5), date(2016, 7, 18),
                 date(2016, 8, 11), date(2016, 9, 19), date(2016, 9, 22), date(2016, 10, 10),
                 date(2016, 11, 3), date(2016, 11, 23), date(2016, 12, 23)}


def test_month_parsing_and_arithmetic() -> None:
    m = Month.parse("2016-06")
    assert (m.year, m.month, str(m)) == (2016, 6, "2016-06")
    assert m + 7 == Month(2017, 1) and m + -6 == Month(2015, 12)
    assert Month(2017, 1) - Month(2016, 6) == 7
    assert m.first_day == date(2016, 6, 1) and m.last_day == date(2016, 6, 30)
    assert Month(2016, 2).last_day == date(2016, 2, 29)
    assert list(Month(2016, 11).until(Month(2017, 2))) == [Month(2016, 11), Month(2016, 12), Month(2017, 1),
                                                           Month(2017, 2)]
    for bad in ("2016-13", "2016-6", "16-06", "2016/06", "", "2016-00"):
        with pytest.raises(ValueError):
            Month.parse(bad)
    assert parse_target("done") is None and parse_target("DONE") is None
    assert parse_target("2016-08") == Month(2016, 8)


def test_2016_holidays_and_the_year_end_closure() -> None:
    days = [date(2016, 1, 1) + timedelta(days=i) for i in range(366)]
    assert {d for d in days if public_holiday_name(d)} == HOLIDAYS_2016
    assert public_holiday_name(date(2016, 8, 11)) == "山の日"  # first held in 2016
    assert public_holiday_name(date(2019, 5, 1)) is not None  # the 2019 enthronement day
    assert all(is_year_end_closure(date(2016, 12, d)) for d in (29, 30, 31))
    assert all(is_year_end_closure(date(2017, 1, d)) for d in (1, 2, 3))
    assert not is_year_end_closure(date(2016, 12, 28)) and not is_year_end_closure(date(2017, 1, 4))
    expected = [d for d in days if d.weekday() < 5 and d not in HOLIDAYS_2016 and not is_year_end_closure(d)]
    assert business_days(date(2016, 1, 1), date(2016, 12, 31)) == expected
    # The working days the deck's months had: June 22, July 20 (海の日), August 22 (山の日).
    counts = [len(business_days(Month(2016, m).first_day, Month(2016, m).last_day)) for m in (6, 7, 8)]
    assert counts == [22, 20, 22]
    assert not is_government_business_day(date(2016, 12, 29))  # a Thursday, but closed


def test_site_opening_minutes() -> None:
    site = Site("本庁", weekday_hours=Hours.parse("08:30-17:15"), after_hours_days=frozenset({1, 3}),
                after_hours_until=time(19, 0), saturdays=frozenset({2, 4}),
                saturday_hours=Hours.parse("09:00-12:00"))
    assert site.open_minutes(date(2016, 6, 13)) == 525  # Monday
    assert site.open_minutes(date(2016, 6, 14)) == 525 + 105  # Tuesday, until 19:00
    assert week_of_month(date(2016, 6, 11)) == 2 and site.open_minutes(date(2016, 6, 11)) == 180
    assert site.open_minutes(date(2016, 6, 4)) == 0  # first Saturday
    assert site.open_minutes(date(2016, 6, 12)) == 0  # Sunday
    assert site.open_minutes(date(2016, 7, 18)) == 0  # 海の日
    assert site.open_minutes(date(2016, 12, 29)) == 0
    saturday_holiday = Site("x", saturdays=EVERY_WEEK)
    assert saturday_holiday.open_minutes(date(2016, 9, 24)) > 0
    assert saturday_holiday.open_minutes(date(2021, 3, 20)) == 0  # 春分の日 on a Saturday
    temporary = Site("臨時", SiteKind.TEMPORARY, opens_on=date(2016, 7, 1), closes_on=date(2016, 7, 31))
    assert temporary.open_minutes(date(2016, 6, 30)) == 0
    assert temporary.open_minutes(date(2016, 7, 1)) == 525
    assert temporary.open_minutes(date(2016, 8, 1)) == 0


def test_daily_capacity_is_limited_by_terminals_or_staff() -> None:
    # 525 minutes: terminals 2 × 525 / 15 = 70, staff 4 × 525 / 20 = 105 → 70, terminal-limited.
    means = Means((Site("本庁", terminals=2, staff=4),))
    monday = date(2016, 6, 13)
    assert daily_capacity(means, monday) == 70
    assert means.sites[0].capacity(monday) == (70, "terminals")
    # One more terminal: 105 by terminals, 105 by staff.
    assert daily_capacity(means.with_terminals(1), monday) == 105
    # Staff-limited: more terminals change nothing.
    staff_bound = Means((Site("本庁", terminals=5, staff=1),))
    assert daily_capacity(staff_bound, monday) == 26 == daily_capacity(staff_bound.with_terminals(3), monday)
    # A branch adds its own capacity; a Saturday opening gives capacity on Saturdays only.
    two = means.with_site(Site("北支所", SiteKind.BRANCH, terminals=1, staff=1))
    assert daily_capacity(two, monday) == 70 + 26
    assert daily_capacity(means, date(2016, 6, 11)) == 0
    assert daily_capacity(means.with_saturdays(), date(2016, 6, 11)) == 2 * 480 // 15


def test_means_are_checked() -> None:
    with pytest.raises(InvalidInput):
        Means(()).check()
    with pytest.raises(InvalidInput) as exc:
        Means((Site("a", terminals=-1), Site("a", staff_minutes_per_card=0))).check()
    assert any("terminals" in p for p in exc.value.problems)
    assert any("distinct" in p for p in exc.value.problems)
    with pytest.raises(ValueError):
        Hours.parse("17:00-08:30")


site_strategy = st.builds(
    Site, name=st.text(alphabet="本庁北支所臨時窓口abc", min_size=1, max_size=8),
    kind=st.sampled_from(list(SiteKind)), terminals=st.integers(0, 20), staff=st.integers(0, 40),
    after_hours_days=st.frozensets(st.integers(0, 4)), saturdays=st.frozensets(st.integers(1, 5)),
    sundays=st.frozensets(st.integers(1, 5)),
    opens_on=st.one_of(st.none(), st.dates(date(2015, 1, 1), date(2030, 1, 1))),
    terminal_minutes_per_card=st.sampled_from([5.0, 12.5, 15.0, 30.0]))


@given(st.lists(site_strategy, min_size=1, max_size=4))
def test_means_survive_serialisation(sites: list[Site]) -> None:
    means = Means(tuple(sites))
    assert Means.from_dict(means.to_dict()) == means


@settings(max_examples=40, deadline=None)
@given(st.lists(site_strategy, min_size=1, max_size=3), st.dates(date(2015, 12, 1), date(2024, 12, 1)))
def test_the_forecast_computes_capacity_as_the_model_does(sites: list[Site], first: date) -> None:
    """The forecast's whole-array capacity is the model's daily capacity, day for day (holidays, the year
    end, Saturdays by week of the month, evenings, temporary windows)."""
    means = Means(tuple(sites))
    days = [first + timedelta(days=i) for i in range(70)]
    assert capacity_array(means, first, 70).tolist() == [daily_capacity(means, d) for d in days]


def _inputs(**changes: object) -> PlanInputs:
    values: dict[str, object] = dict(
        municipality_code="131016", as_of=date(2016, 6, 17), target=Month(2016, 8),
        backlog={Month(2016, 3): 300, Month(2016, 4): 700, Month(2016, 5): 1000},
        means=Means((Site("本庁", terminals=1, staff=2),)), arrivals_per_day=0.0)
    values.update(changes)
    return PlanInputs(**values)  # type: ignore[arg-type]


def test_plan_needs_its_daily_number_and_flags_a_shortfall() -> None:
    fig = plan_figures(_inputs())
    # 2016-06-18 … 08-31: 9 business days left in June, 20 in July, 22 in August.
    assert fig.open_days == 9 + 20 + 22
    assert fig.backlog_total == 2000
    assert fig.required_per_day == 40  # ceil(2000 / 51)
    # 1 terminal: 525/15 = 35 a day < 40 → flagged, short by 5 a day and 2000 − 35 × 51 = 215 cards.
    assert fig.capacity_total == 35 * 51 and fig.bottleneck == "terminals"
    assert fig.flagged and fig.shortfall_per_day == 5 and fig.shortfall_total == 215
    # 2000 / 35 = 57.1 → the 58th business day after 6/17 is in September.
    assert fig.achievable_month == Month(2016, 9)
    # Oldest first at 40 a day: March's 300 in June, April's by day 25 (July), May's by day 50 (August).
    assert fig.targets == {Month(2016, 3): Month(2016, 6), Month(2016, 4): Month(2016, 7),
                           Month(2016, 5): Month(2016, 8)}


def test_adding_means_removes_the_flag() -> None:
    fig = plan_figures(_inputs(means=Means((Site("本庁", terminals=2, staff=2),))))
    # terminals 70, staff 2 × 525 / 20 = 52 → 52 ≥ 40
    assert not fig.flagged and fig.bottleneck == "staff" and fig.shortfall_per_day == 0
    assert fig.achievable_month == Month(2016, 8)
    weekend_means = Means((Site("本庁", terminals=1, staff=2, saturdays=EVERY_WEEK),))
    saturdays = plan_figures(_inputs(means=weekend_means))
    assert saturdays.open_days == 51 + 11 and saturdays.weekend_days == 11  # 2 + 5 + 4 Saturdays
    assert saturdays.required_per_day == 33 and not saturdays.flagged  # ceil(2000/62) = 33


def test_arrivals_raise_the_daily_number_and_set_the_current_month_target() -> None:
    fig = plan_figures(_inputs(arrivals_per_day=10.0, means=None))
    assert fig.expected_arrivals == 510 and fig.required_per_day == 50  # ceil(2510 / 51)
    assert fig.capacity_total is None and not fig.flagged
    assert fig.targets[Month(2016, 6)] == Month(2016, 8)


def test_monthly_trajectory_runs_from_actuals_to_the_target() -> None:
    fig = plan_figures(_inputs(notices_sent=5000, applications=8000, applications_per_day=20.0,
                               past_months={Month(2016, 5): (4500, 7700)}))
    assert [(f.month, f.planned) for f in fig.months] == [
        (Month(2016, 5), False), (Month(2016, 6), True), (Month(2016, 7), True), (Month(2016, 8), True)]
    assert fig.months[0].notices_sent_cumulative == 4500
    june, july, august = fig.months[1:]
    assert june.notices_sent_cumulative == 5000 + 9 * 40
    assert july.notices_sent_cumulative == 5000 + 29 * 40
    assert august.notices_sent_cumulative == 7000  # everything notified by the target
    assert june.applications_cumulative == 8000 + 13 * 20


def test_impossible_plans_are_refused() -> None:
    with pytest.raises(InvalidInput, match="already over"):
        plan_figures(_inputs(target=Month(2016, 5)))
    with pytest.raises(InvalidInput, match="never open"):
        plan_figures(_inputs(means=Means((Site("臨時", SiteKind.TEMPORARY, closes_on=date(2016, 6, 17)),))))
    with pytest.raises(InvalidInput):
        plan_figures(_inputs(backlog={Month(2016, 5): -1}))


def test_nothing_to_clear() -> None:
    fig = plan_figures(_inputs(backlog={Month(2016, 5): 0}))
    assert fig.required_per_day == 0 and not fig.flagged and fig.targets == {Month(2016, 5): None}
