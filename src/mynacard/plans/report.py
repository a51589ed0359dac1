"""The national aggregation of issuance plans in the shape of the deck's p.10 table (pure).

Columns are application months (申請月) up to the month before the report's day, the last one standing
for "that month and later"; rows are target months (交付通知書発送完了目標見込み時期), "done"
(送付済) first. Beside them: the cumulative number and share of municipalities whose backlog is
cleared, and cumulative notices sent (交付通知書送付枚数) against cumulative applications (申請数) with
their ratio. Then the national daily number the plans imply, checked against the card management
system's capacity, and the municipalities that finish after a chosen month, for the support team
(交付促進支援チーム).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date
from decimal import ROUND_HALF_UP, Decimal
from functools import lru_cache

from mynacard.calendar import business_days
from mynacard.plans.model import Means, Month

__all__ = [
    "ClearedRow",
    "DailyRow",
    "NationalReport",
    "ProgressRow",
    "PublishedPlan",
    "SupportRow",
    "national_report",
    "percent",
]


def percent(numerator: int, denominator: int) -> str:
    """A share with one decimal, rounded half up as the ministry prints it (``62.8%``); ``―`` for 0/0."""
    if denominator <= 0:
        return "―"
    value = (Decimal(numerator) * 100 / Decimal(denominator)).quantize(Decimal("0.1"), rounding=ROUND_HALF_UP)
    return f"{value}%"


@dataclass(frozen=True)
class PublishedPlan:
    """A municipality's plan as published (the latest revision on the report's day)."""

    municipality_code: str
    prefecture_code: str
    name: str
    revision: int
    as_of: date
    targets: Mapping[Month, Month | None]
    """Application month → target month (None = done)."""
    months: Mapping[Month, tuple[int, int]]
    """Month → cumulative (notices sent, applications) at its end, actual or planned."""
    means: Means | None = None
    backlog_total: int | None = None
    required_per_day: int | None = None
    capacity_per_day: float | None = None
    shortfall_per_day: int | None = None
    source: str = "import"

    @property
    def clearance(self) -> Month | None:
        """The month by which every application month is done (None: nothing left at all)."""
        months = [t for t in self.targets.values() if t is not None]
        return max(months) if months else None

    def cumulative_over(self, months: Sequence[Month]) -> list[tuple[int, int]]:
        """(notices, applications) at the end of each of ``months`` (ascending): the last figure at or
        before it (a month without a row carries the one before), zero before the first."""
        items = sorted(self.months.items())
        out, i, value = [], 0, (0, 0)
        for month in months:
            while i < len(items) and items[i][0] <= month:
                value = items[i][1]
                i += 1
            out.append(value)
        return out

    def open_days(self, month: Month) -> int:
        if self.means is not None:
            return len(self.means.open_days(month.first_day, month.last_day))
        return _business_days_in(month)


@lru_cache(maxsize=512)
def _business_days_in(month: Month) -> int:
    return len(business_days(month.first_day, month.last_day))


@dataclass(frozen=True)
class ClearedRow:
    month: Month
    count: int
    share: str


@dataclass(frozen=True)
class ProgressRow:
    month: Month
    notices_sent: int
    applications: int
    ratio: str


@dataclass(frozen=True)
class DailyRow:
    month: Month
    per_day: int
    """Notices per open day all plans together imply in the month."""
    capacity: int
    over: bool


@dataclass(frozen=True)
class SupportRow:
    municipality_code: str
    name: str
    prefecture_code: str
    clearance: Month
    backlog_total: int | None
    required_per_day: int | None
    shortfall_per_day: int | None


@dataclass(frozen=True)
class NationalReport:
    as_of: date
    base_month: Month
    """The last month with actual figures (the "done" row's month)."""
    columns: list[Month]
    """Application months; the last stands for itself and later months."""
    rows: list[Month | None]
    """None (done) first, then target months."""
    counts: dict[Month | None, list[int]]
    """Row → count of municipalities per column."""
    column_totals: list[int]
    municipalities: int
    """Municipalities in scope (1,741 nationally)."""
    with_plan: int
    cleared: list[ClearedRow]
    progress: list[ProgressRow]
    daily: list[DailyRow]
    support_after: Month
    support: list[SupportRow]
    cms_capacity: int
    clearance_by_code: dict[str, Month | None] = field(default_factory=dict)

    @property
    def without_plan(self) -> int:
        return self.municipalities - self.with_plan

    def csv_rows(self) -> list[list[str]]:
        """The deck's table as CSV rows: the target × application-month counts, and beside each row the
        cumulative cleared municipalities and notices against applications of the month it stands for."""
        header = ["target\\applied", *(str(c) for c in self.columns[:-1]),
                  f"{self.columns[-1]} and later", "month", "cleared_cumulative", "cleared_share",
                  "notices_sent_cumulative", "applications_cumulative", "ratio"]
        out = [header]
        progress = {p.month: p for p in self.progress}
        cleared = {c.month: c for c in self.cleared}
        for row in self.rows:
            month = self.base_month if row is None else row
            c, p = cleared.get(month), progress.get(month)
            out.append(["done" if row is None else str(row), *(str(n) for n in self.counts[row]), str(month),
                        str(c.count) if c else "", c.share if c else "",
                        str(p.notices_sent) if p else "", str(p.applications) if p else "",
                        p.ratio if p else ""])
        out.append(["total", *(str(n) for n in self.column_totals), "", "", "", "", "", ""])
        return out


def national_report(plans: Iterable[PublishedPlan], *, as_of: date, municipalities: int,
                    support_after: Month | None = None, cms_capacity: int = 100_000) -> NationalReport:
    """Aggregate published plans as of ``as_of`` over ``municipalities`` municipalities in scope."""
    plans = sorted(plans, key=lambda p: p.municipality_code)
    current = Month.of(as_of)
    base = current + -1
    support_after = support_after or current + 2
    first_column = min((m for p in plans for m in p.targets), default=base)
    columns = list(min(first_column, base).until(base))
    index = {m: i for i, m in enumerate(columns)}

    per_plan: list[list[Month | None]] = []
    for plan in plans:
        values: list[Month | None] = [None] * len(columns)
        for applied, target in plan.targets.items():
            i = index[min(applied, base)]
            held = values[i]
            if target is not None and (held is None or target > held):
                values[i] = target
        per_plan.append(values)

    targets = [v for values in per_plan for v in values if v is not None]
    last_row = max([current, *targets])
    first_row = min([current, *targets])
    rows: list[Month | None] = [None, *first_row.until(last_row)]
    counts: dict[Month | None, list[int]] = {r: [0] * len(columns) for r in rows}
    for values in per_plan:
        for i, v in enumerate(values):
            counts[v][i] += 1
    column_totals = [sum(counts[r][i] for r in rows) for i in range(len(columns))]

    clearance = {p.municipality_code: p.clearance for p in plans}
    cleared_rows = [ClearedRow(base, n := sum(1 for c in clearance.values() if c is None),
                               percent(n, municipalities))]
    for month in first_row.until(last_row):
        n = sum(1 for c in clearance.values() if c is None or c <= month)
        cleared_rows.append(ClearedRow(month, n, percent(n, municipalities)))

    span = [base + -1, *base.until(last_row)]
    carried = [plan.cumulative_over(span) for plan in plans]
    progress = []
    for k, month in enumerate(span[1:], start=1):
        notices = sum(c[k][0] for c in carried)
        applications = sum(c[k][1] for c in carried)
        progress.append(ProgressRow(month, notices, applications, percent(notices, applications)))

    daily = []
    for k, month in enumerate(span[1:], start=1):
        if month < current:
            continue
        total = 0.0
        for plan, figures in zip(plans, carried, strict=True):
            sent = figures[k][0] - figures[k - 1][0]
            days = plan.open_days(month) if sent > 0 else 0
            if days:
                total += sent / days
        per_day = math.floor(total + 0.5)
        daily.append(DailyRow(month, per_day, cms_capacity, per_day > cms_capacity))

    support = [SupportRow(p.municipality_code, p.name, p.prefecture_code, c, p.backlog_total,
                          p.required_per_day, p.shortfall_per_day)
               for p in plans if (c := p.clearance) is not None and c > support_after]
    support.sort(key=lambda s: (-(s.clearance - base), s.municipality_code))
    return NationalReport(as_of, base, columns, rows, counts, column_totals, municipalities, len(plans),
                          cleared_rows, progress, daily, support_after, support, cms_capacity, clearance)

