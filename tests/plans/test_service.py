"""Plans on the database (SQLite and PostgreSQL): imports that take all or nothing, revisions, scope,
plans drawn up from the live backlog, the actuals snapshot and the national batch forecast."""

from __future__ import annotations

from datetime import date, datetime, time, timedelta

import pytest

from mynacard.calendar import business_days
from mynacard.clock import JST
from mynacard.context import Context
from mynacard.errors import Forbidden, InvalidInput
from mynacard.plans import service
from mynacard.plans.model import Means, Month, Site
from mynacard.principal import Principal, Role
from mynacard.sim.population import seed_population
from tests.helpers import notify, receive_at

OPERATOR = Principal(Role.OPERATOR, "jlis")
CHIYODA, SAPPORO = "131016", "011002"
NOW = datetime(2016, 6, 17, 18, 0, tzinfo=JST)
AS_OF = date(2016, 6, 17)
TARGETS = ("targets.csv", b"municipality_code,application_month,target_month\n"
                          b"131016,2016-04,2016-07\n131016,2016-05,2016-08\n011002,2016-05,done\n")
MONTHLY = ("monthly.csv", b"municipality_code,month,notices_sent_cumulative,applications_cumulative\n"
                          b"131016,2016-05,700,1000\n131016,2016-08,1300,1300\n011002,2016-05,90,100\n")


def _jst(day: date, hour: int = 9) -> datetime:
    return datetime.combine(day, time(hour), JST)


def test_an_import_with_a_bad_row_changes_nothing(ctx: Context) -> None:
    bad = ("monthly.csv", MONTHLY[1] + b"011002,2016-06,100,90\n")
    with pytest.raises(InvalidInput) as exc:
        service.import_plans(ctx, OPERATOR, [TARGETS, bad], as_of=AS_OF, now=NOW)
    assert exc.value.problems == ["monthly.csv:5: 100 notices sent but only 90 applications"]
    assert service.published_plans(ctx, OPERATOR) == []
    assert service.recent_imports(ctx, OPERATOR) == []


def test_imports_make_revisions_keep_what_they_leave_out_and_do_not_repeat(ctx: Context) -> None:
    first = service.import_plans(ctx, OPERATOR, [TARGETS, MONTHLY], as_of=AS_OF, now=NOW)
    assert (first.municipalities, first.rows, first.already_imported) == (2, 6, False)
    again = service.import_plans(ctx, OPERATOR, [MONTHLY, TARGETS], as_of=AS_OF, now=NOW)
    assert again.already_imported and again.import_id == first.import_id
    means = ("means.csv", "municipality_code,site,terminals,staff\n131016,本庁,2,3\n".encode())
    service.import_plans(ctx, OPERATOR, [means], as_of=date(2016, 6, 20), now=NOW)
    plan = service.plan_of(ctx, OPERATOR, CHIYODA)
    assert plan is not None and plan.revision == 2
    assert plan.targets == {Month(2016, 4): Month(2016, 7), Month(2016, 5): Month(2016, 8)}
    assert plan.months[Month(2016, 8)] == (1300, 1300)
    assert plan.means == Means((Site("本庁", terminals=2, staff=3),))
    assert plan.clearance == Month(2016, 8)
    # The report on the earlier day still sees revision 1 (no means); history lists both.
    earlier = service.plan_of(ctx, OPERATOR, CHIYODA, as_of=AS_OF)
    assert earlier is not None and earlier.revision == 1 and earlier.means is None
    assert [r["revision"] for r in service.plan_history(ctx, OPERATOR, CHIYODA)] == [1, 2]
    sapporo = service.plan_of(ctx, OPERATOR, SAPPORO)
    assert sapporo is not None and sapporo.revision == 1 and sapporo.clearance is None
    # Export gives back files that import to the same plans.
    exported = [(f"{k}.csv", service.export_plans(ctx, OPERATOR, k).encode()) for k in service.EXPORT_KINDS]
    assert exported[0][1].decode().splitlines()[1:] == ["011002,2016-05,done", "131016,2016-04,2016-07",
                                                        "131016,2016-05,2016-08"]
    service.import_plans(ctx, OPERATOR, exported, as_of=date(2016, 6, 21), now=NOW)
    copy = service.plan_of(ctx, OPERATOR, CHIYODA)
    assert copy is not None and copy.revision == 3
    assert (copy.targets, copy.months, copy.means) == (plan.targets, plan.months, plan.means)


def test_who_may_change_plans(ctx: Context) -> None:
    with pytest.raises(Forbidden):
        service.import_plans(ctx, Principal(Role.CLERK, "c", CHIYODA), [TARGETS], as_of=AS_OF, now=NOW)
    with pytest.raises(Forbidden, match="011002"):
        service.import_plans(ctx, Principal(Role.SUPERVISOR, "s", CHIYODA), [TARGETS], as_of=AS_OF, now=NOW)
    own = ("t.csv", b"municipality_code,application_month,target_month\n131016,2016-05,2016-07\n")
    service.import_plans(ctx, Principal(Role.SUPERVISOR, "s", CHIYODA), [own], as_of=AS_OF, now=NOW)
    with pytest.raises(Forbidden):
        service.save_plan(ctx, Principal(Role.SUPERVISOR, "s", SAPPORO), CHIYODA, target=Month(2016, 8),
                          means=None, now=NOW)
    with pytest.raises(Forbidden):
        service.refresh_actuals(ctx, Principal(Role.SUPERVISOR, "s", CHIYODA), NOW)
    with pytest.raises(Forbidden):
        service.set_settings(ctx, Principal(Role.SUPERVISOR, "s", CHIYODA), NOW, cms_daily_capacity=5)


@pytest.fixture
def town(ctx: Context) -> None:
    """千代田区: 300 cards applied in April and 200 in May arrive; the window notifies 10 a day until the
    16th (120 of them)."""
    seed_population(ctx, [CHIYODA, SAPPORO], 520, seed=3, now=_jst(date(2016, 3, 1)))
    april = receive_at(ctx, CHIYODA, 300, _jst(date(2016, 4, 20)), _jst(date(2016, 5, 30)))
    receive_at(ctx, CHIYODA, 200, _jst(date(2016, 5, 20)), _jst(date(2016, 6, 1)))
    for i, day in enumerate(business_days(date(2016, 6, 1), date(2016, 6, 16))):
        notify(ctx, april[i * 10:(i + 1) * 10], _jst(day, 16))
    receive_at(ctx, SAPPORO, 20, _jst(date(2016, 6, 10)), _jst(date(2016, 6, 16)))


def test_a_plan_drawn_up_from_the_live_backlog(ctx: Context, town: None) -> None:
    supervisor = Principal(Role.SUPERVISOR, "chiyoda", CHIYODA)
    one_terminal = Means((Site("本庁", terminals=1, staff=2),))
    inputs, figures = service.draft_plan(ctx, supervisor, CHIYODA, target=Month(2016, 7), means=one_terminal,
                                         now=NOW, arrivals_per_day=0)
    assert inputs.backlog == {Month(2016, 4): 180, Month(2016, 5): 200}
    assert figures.backlog_total == 380 and figures.open_days == 9 + 20
    assert figures.required_per_day == 14 and not figures.flagged  # ceil(380/29) against 35 a day
    # Oldest first at 14 a day: April's 180 take 13 days (9 left in June), then May's 200.
    assert figures.targets == {Month(2016, 4): Month(2016, 7), Month(2016, 5): Month(2016, 7)}
    assert inputs.notices_sent == 120 and inputs.applications == 500
    plan = service.save_plan(ctx, supervisor, CHIYODA, target=Month(2016, 7), means=one_terminal, now=NOW,
                             arrivals_per_day=0)
    assert plan.revision == 1 and plan.required_per_day == 14 and plan.shortfall_per_day == 0
    # Every card notified by the target; applications go on at the last four weeks' 200 / 28 = 7.1 a day.
    assert plan.months[Month(2016, 7)] == (500, 500 + round(7.1 * 44))
    # The same plan again on the same day is the same revision (a retried request does not act twice).
    assert service.save_plan(ctx, supervisor, CHIYODA, target=Month(2016, 7), means=one_terminal, now=NOW,
                             arrivals_per_day=0).revision == 1
    # A plan that no means can meet is published flagged, with its shortfall.
    thin = Means((Site("本庁", terminals=1, staff=1),))
    rushed = service.save_plan(ctx, OPERATOR, CHIYODA, target=Month(2016, 6), means=thin, now=NOW,
                               arrivals_per_day=0)
    assert rushed.revision == 2 and rushed.required_per_day == 43  # 380 / 9 days
    assert rushed.capacity_per_day == 26 and rushed.shortfall_per_day == 17
    with pytest.raises(InvalidInput, match="already over"):
        service.draft_plan(ctx, supervisor, CHIYODA, target=Month(2016, 5), means=one_terminal, now=NOW)


def test_actuals_snapshot_and_the_national_batch_forecast(ctx: Context, town: None) -> None:
    result = service.refresh_actuals(ctx, OPERATOR, NOW)
    assert result.municipalities == 2 and result.daily_since == AS_OF - timedelta(days=service.HISTORY_DAYS)
    stored = service.stored_forecasts(ctx, OPERATOR)
    assert result.forecasts == 2 and set(stored) == {CHIYODA, SAPPORO}
    assert stored[SAPPORO].status == "cleared" and not stored[SAPPORO].later_than(None)
    assert stored[CHIYODA].later_than(Month(2016, 6)) and stored[CHIYODA].backlog == 380
    nation = service.national_actuals(ctx, OPERATOR)
    assert nation.cumulative("notice_sent")[-1][1] == 120
    assert nation.cumulative("applied")[-1][1] == 520
    assert service.national_actuals(ctx, OPERATOR, prefecture_code="01").cumulative("applied")[-1][1] == 20
    assert sum(day.get("notice_sent", 0) for day in nation.daily.values()) == 120
    forecasts = service.national_forecasts(ctx, OPERATOR, runs=400, horizon_days=730)
    assert set(forecasts) == {CHIYODA, SAPPORO}
    assert forecasts[SAPPORO].status.value == "cleared"  # 20 cards that came yesterday
    chiyoda = forecasts[CHIYODA]
    # 380 waiting and 10 notices a business day: at least 38 business days, more if cards keep coming
    # (the last weeks saw 200 applications on one day).
    assert chiyoda.as_of == date(2016, 6, 16) and chiyoda.low is not None
    assert chiyoda.low >= business_days(date(2016, 6, 17), date(2016, 12, 31))[38 - 1]
    # The batch, from the snapshot, and the live forecast of the same evening agree.
    live = service.forecast_for(ctx, OPERATOR, CHIYODA, _jst(date(2016, 6, 17), 20))
    assert (live.low, live.median, live.high) == (chiyoda.low, chiyoda.median, chiyoda.high)


def test_settings(ctx: Context) -> None:
    assert service.get_settings(ctx).cms_daily_capacity == service.DEFAULT_CMS_CAPACITY
    service.set_settings(ctx, OPERATOR, NOW, cms_daily_capacity=5, support_after=Month(2016, 7))
    settings = service.get_settings(ctx)
    assert settings.cms_daily_capacity == 5 and settings.support_after == Month(2016, 7)
    service.import_plans(ctx, OPERATOR, [TARGETS, MONTHLY], as_of=AS_OF, now=NOW)
    report = service.national_report_for(ctx, OPERATOR, as_of=AS_OF)
    # 千代田区's file jumps from 700 notices in May to 1,300 in August (June and July carry May's figure):
    # 600 notices over August's 22 business days, 27 a day, above a capacity of 5.
    assert [(d.per_day, d.over) for d in report.daily] == [(0, False), (0, False), (27, True)]
    assert [s.municipality_code for s in report.support] == [CHIYODA]  # finishes in August, after July
    with pytest.raises(InvalidInput):
        service.set_settings(ctx, OPERATOR, NOW, cms_daily_capacity=0)
