"""What the plan pages show, assembled from service results: chart markup, map dots, table rows.

Presentation only (no database): :mod:`mynacard.plans.api` calls the service, then these, then renders.
"""

from __future__ import annotations

import csv
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import date
from functools import lru_cache
from importlib.resources import files
from typing import Any

from markupsafe import Markup

from mynacard.plans.charts import (
    PALETTE,
    Band,
    Dot,
    Marker,
    Series,
    bar_chart,
    dot_map,
    line_chart,
    month_colour,
)
from mynacard.plans.forecast import Forecast
from mynacard.plans.model import Month
from mynacard.plans.report import NationalReport, PublishedPlan
from mynacard.plans.service import ActualSeries, LiveStatus

__all__ = ["coordinates", "municipality_charts", "national_charts", "plain"]

Translate = Callable[..., str]


@lru_cache(maxsize=1)
def coordinates() -> dict[str, tuple[float, float]]:
    """Town-hall latitude and longitude per municipality, from the registry's public reference data."""
    text = (files("mynacard.registry") / "data" / "municipalities.csv").read_text(encoding="utf-8")
    return {r["code"]: (float(r["lat"]), float(r["lng"])) for r in csv.DictReader(text.splitlines())}


def plain(value: Any) -> Any:
    """Dataclass values as JSON: months and dates as text, nested structures converted."""
    if isinstance(value, Month | date):
        return str(value) if isinstance(value, Month) else value.isoformat()
    if isinstance(value, dict):
        return {str(plain(k)) if k is not None else "done": plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [plain(v) for v in value]
    if hasattr(value, "__dataclass_fields__"):
        return {k: plain(getattr(value, k)) for k in value.__dataclass_fields__}
    if hasattr(value, "value") and isinstance(value.value, str):
        return value.value
    return value


def _month_end(month: Month) -> date:
    return month.last_day


def _legend_rows(report: NationalReport, t: Translate) -> list[tuple[str, str]]:
    rows = [m for m in report.rows if m is not None]
    out = [("hsl(210,10%,70%)", t("plans.done"))]
    out += [(month_colour(i, len(rows)), str(m)) for i, m in enumerate(rows)]
    return out


@dataclass(frozen=True)
class NationalCharts:
    progress: Markup
    gap: Markup
    cleared: Markup
    daily: Markup
    map: Markup
    legend: list[tuple[str, str]]


def _clearance_colour(report: NationalReport, clearance: Month | None) -> str:
    rows = [m for m in report.rows if m is not None]
    if clearance is None:
        return "hsl(210,10%,70%)"
    index = rows.index(clearance) if clearance in rows else len(rows) - 1
    return month_colour(index, len(rows))


def national_charts(report: NationalReport, plans: Sequence[PublishedPlan], actuals: ActualSeries,
                    t: Translate, lang: str) -> NationalCharts:
    planned_n = [(_month_end(p.month), float(p.notices_sent)) for p in report.progress]
    planned_a = [(_month_end(p.month), float(p.applications)) for p in report.progress]
    series = [Series(t("plans.chart.notices_planned"), planned_n, PALETTE[0], dashed=True),
              Series(t("plans.chart.applications_planned"), planned_a, PALETTE[1], dashed=True)]
    actual_n = [(_month_end(m), float(v)) for m, v in actuals.cumulative("notice_sent")]
    actual_a = [(_month_end(m), float(v)) for m, v in actuals.cumulative("applied")]
    actual_i = [(_month_end(m), float(v)) for m, v in actuals.cumulative("issued")]
    if actual_n or actual_a:
        series += [Series(t("plans.chart.notices_actual"), actual_n, PALETTE[0]),
                   Series(t("plans.chart.applications_actual"), actual_a, PALETTE[1]),
                   Series(t("plans.chart.issued_actual"), actual_i, PALETTE[2])]
    progress = line_chart(series, label=t("plans.chart.progress"), element_id="chart-progress",
                          markers=[Marker(report.as_of, t("plans.chart.report_day"))])
    # The burn-down: applications that have no notice yet, planned and actual.
    gap = [Series(t("plans.chart.gap_planned"), [(_month_end(p.month), float(p.applications - p.notices_sent))
                                                   for p in report.progress], PALETTE[3], dashed=True)]
    if actual_n or actual_a:
        notices = dict(actuals.cumulative("notice_sent"))
        applied = dict(actuals.cumulative("applied"))
        months = sorted(set(notices) | set(applied))
        gap.append(Series(t("plans.chart.gap_actual"), [(_month_end(m), float(_carried(applied, m)
                                                                                - _carried(notices, m)))
                                                          for m in months], PALETTE[3]))
    gap_chart = line_chart(gap, label=t("plans.chart.gap"), element_id="chart-gap",
                           markers=[Marker(report.as_of, t("plans.chart.report_day"))])
    cleared = bar_chart([str(c.month) for c in report.cleared], [c.count for c in report.cleared],
                        label=t("plans.chart.cleared"), limit=report.municipalities,
                        limit_label=t("plans.chart.all_municipalities", n=f"{report.municipalities:,}"),
                        element_id="chart-cleared")
    daily = bar_chart([str(d.month) for d in report.daily], [d.per_day for d in report.daily],
                      label=t("plans.chart.daily"), limit=report.cms_capacity,
                      limit_label=t("plans.chart.capacity", n=f"{report.cms_capacity:,}"),
                      element_id="chart-daily")
    where = coordinates()
    dots = []
    for p in plans:
        if p.municipality_code not in where:
            continue
        lat, lng = where[p.municipality_code]
        clearance = report.clearance_by_code.get(p.municipality_code)
        label = t("plans.done") if clearance is None else str(clearance)
        dots.append(Dot(lat, lng, _clearance_colour(report, clearance), f"{p.name}: {label}",
                        f"/plans/m/{p.municipality_code}?lang={lang}",
                        {"code": p.municipality_code, "clearance": label}))
    places = dot_map(dots, label=t("plans.chart.map"), element_id="map")
    return NationalCharts(progress, gap_chart, cleared, daily, places, _legend_rows(report, t))


def _carried(cumulative: dict[Month, int], month: Month) -> int:
    known = [m for m in cumulative if m <= month]
    return cumulative[max(known)] if known else 0


_FLOW = (("applied", "plans.chart.applications_actual"), ("received", "plans.chart.received_actual"),
         ("notice_sent", "plans.chart.notices_actual"), ("issued", "plans.chart.issued_actual"))
_FIELD = {"applied": "applications", "received": "arrivals", "notice_sent": "notices", "issued": "issued"}


def _cumulative(live: LiveStatus, state: str) -> list[tuple[date, float]]:
    """Cumulative entries into ``state``: month ends before the recent days, then day by day."""
    first = live.history[0].day if live.history else live.today
    in_window = sum(getattr(o, _FIELD[state]) for o in live.history)
    total = sum(n.get(state, 0) for n in live.monthly.values()) - in_window
    points, running = [], 0
    for month in sorted(live.monthly):
        if month.last_day < first:
            running += live.monthly[month].get(state, 0)
            points.append((month.last_day, float(running)))
    running = total
    for o in live.history:
        running += getattr(o, _FIELD[state])
        points.append((o.day, float(running)))
    return points


@dataclass(frozen=True)
class MunicipalityCharts:
    burndown: Markup
    flow: Markup
    plan_vs_actual: Markup


def municipality_charts(live: LiveStatus, fc: Forecast, changed: Forecast | None, plan: PublishedPlan | None,
                        t: Translate) -> MunicipalityCharts:
    backlog = [(d, float(n)) for d, n in live.backlog_by_day()]
    series = [Series(t("plans.chart.backlog_actual"), backlog, PALETTE[0])]
    bands = []
    if fc.path:
        series.append(Series(t("plans.chart.backlog_forecast"), [(p.day, p.median) for p in fc.path],
                             PALETTE[0], dashed=True))
        bands.append(Band(t("plans.chart.band"), [(p.day, p.low, p.high) for p in fc.path], PALETTE[0]))
    if changed is not None and changed.path:
        series.append(Series(t("plans.chart.backlog_what_if"), [(p.day, p.median) for p in changed.path],
                             PALETTE[2], dashed=True))
    markers = [Marker(live.today, t("plans.chart.today"))]
    if plan is not None and plan.clearance is not None:
        markers.append(Marker(plan.clearance.last_day, t("plans.chart.target"), "#b3261e"))
    burndown = line_chart(series, bands=bands, markers=markers, label=t("plans.chart.burndown"),
                          element_id="chart-burndown")

    flow = line_chart([Series(t(key), _cumulative(live, state), PALETTE[i])
                       for i, (state, key) in enumerate(_FLOW)], label=t("plans.chart.flow"),
                      element_id="chart-flow")
    vs: list[Series] = []
    if plan is not None and plan.months:
        vs.append(Series(t("plans.chart.notices_planned"),
                         [(_month_end(m), float(n)) for m, (n, _) in sorted(plan.months.items())], PALETTE[0],
                         dashed=True))
    vs.append(Series(t("plans.chart.notices_actual"), _cumulative(live, "notice_sent"), PALETTE[2]))
    plan_vs_actual = line_chart(vs, label=t("plans.chart.plan_vs_actual"), element_id="chart-plan-vs-actual",
                                markers=[Marker(live.today, t("plans.chart.today"))])
    return MunicipalityCharts(burndown, flow, plan_vs_actual)



def shift(before: date | None, after: date | None) -> int | None:
    """Days a what-if moves the expected clearance (negative: earlier)."""
    if before is None or after is None:
        return None
    return (after - before).days
