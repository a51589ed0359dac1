"""Use cases of issuance plans (交付計画): import and export, drawing up and publishing a municipality's
plan, forecasting its clearance from the live queue, and the national report (deck p.7–10).

Plans are published information, like the ministry's list of 2016: anyone may read them, and the card counts
they are built on are read as aggregates (never a person) with the :data:`PUBLIC` principal, as the cards
dashboard does. Changing a plan is scoped: a supervisor changes only their own municipality's plan, the
national operator any, and only the operator imports plans for many municipalities, refreshes the national
snapshot of actuals or sets the card management system's capacity.

Live data come only through :mod:`mynacard.cards.service`. Per municipality they are read live (an indexed
query of one town's cards); the national pages read a snapshot of the card history
(:func:`refresh_actuals`, e.g. nightly), because counting every event of 13 million cards is a batch job.
"""

from __future__ import annotations

import hashlib
import json
import zlib
from collections import defaultdict
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

from sqlalchemy import Connection, delete, func, insert, select
from sqlalchemy.exc import IntegrityError

from mynacard.calendar import is_government_business_day
from mynacard.cards import service as cards
from mynacard.cards.model import CardState
from mynacard.clock import local_date
from mynacard.context import Context
from mynacard.errors import Conflict, Forbidden, InvalidInput, NotFound
from mynacard.plans import csvfiles
from mynacard.plans.forecast import DayObservation, Forecast, ForecastInputs, WhatIf, forecast
from mynacard.plans.model import Means, Month, PlanFigures, PlanInputs, plan_figures
from mynacard.plans.report import NationalReport, PublishedPlan, national_report
from mynacard.plans.tables import (
    plan_actuals,
    plan_forecasts,
    plan_imports,
    plan_months,
    plan_revisions,
    plan_settings,
    plan_targets,
)
from mynacard.principal import Principal, Role
from mynacard.registry import service as registry

__all__ = [
    "BACKLOG_STATES",
    "FLOW_STATES",
    "PIPELINE_STATES",
    "PUBLIC",
    "ActualSeries",
    "ImportResult",
    "LiveStatus",
    "PlanSettings",
    "RefreshResult",
    "StoredForecast",
    "draft_plan",
    "export_plans",
    "find_municipalities",
    "forecast_for",
    "get_settings",
    "import_plans",
    "latest_plan_day",
    "live_status",
    "national_actuals",
    "national_forecasts",
    "national_report_for",
    "plan_history",
    "plan_of",
    "published_plans",
    "recent_imports",
    "refresh_actuals",
    "report_and_plans",
    "save_plan",
    "set_settings",
    "stored_forecasts",
]

PUBLIC = Principal.system("plans-publication")
"""Reads published aggregates (card counts per municipality), never a person's data."""

S = CardState
BACKLOG_STATES = (S.RECEIVED, S.PRE_ISSUANCE_SET)
"""Cards at the municipality whose notice has not been sent (滞留分)."""
PIPELINE_STATES = (S.APPLIED, S.IN_REVIEW, S.ACCEPTED, S.PRINT_ORDERED, S.MANUFACTURED, S.SHIPPED,
                   S.DEFECTIVE)
"""Cards applied for that have not reached the municipality yet."""
FLOW_STATES = (S.APPLIED, S.RECEIVED, S.NOTICE_SENT, S.ISSUED)
"""Entries counted as the flow: applications, arrivals, first notices, handovers."""
HISTORY_DAYS = 56
"""Recent days the forecast learns from."""
DEFAULT_CMS_CAPACITY = 100_000
"""Cards per day the card management system is assumed to handle unless configured (about the
manufacturer's 2016 output; no official figure was published)."""

_EDITORS = (Role.SUPERVISOR, Role.OPERATOR, Role.SYSTEM)
_NATIONAL = (Role.OPERATOR, Role.SYSTEM)


def _check_editor(principal: Principal, codes: Collection[str]) -> None:
    principal.require(*_EDITORS)
    scope = principal.municipality_scope()
    if scope is not None and (others := sorted(set(codes) - {scope})):
        raise Forbidden(f"a supervisor of {scope} may not change the plans of {', '.join(others[:5])}")


def _require_municipality(ctx: Context, code: str) -> registry.Municipality:
    try:
        return registry.get_municipality(ctx, code)
    except NotFound:
        raise NotFound(f"no municipality {code!r}") from None


# --- settings -----------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class PlanSettings:
    cms_daily_capacity: int
    """Cards per day the card management system can take (カード管理システムの処理能力)."""
    support_after: Month | None
    """Municipalities whose plan finishes after this month are listed for the support team; None = two
    months after the report's month."""
    actuals_refreshed_at: datetime | None
    actuals_daily_since: date | None


def get_settings(ctx: Context) -> PlanSettings:
    with ctx.db.connect() as conn:
        values = dict(conn.execute(select(plan_settings.c.key, plan_settings.c.value)).all())
    return PlanSettings(
        cms_daily_capacity=int(values.get("cms_daily_capacity", DEFAULT_CMS_CAPACITY)),
        support_after=Month.parse(values["support_after"]) if values.get("support_after") else None,
        actuals_refreshed_at=(datetime.fromisoformat(values["actuals_refreshed_at"])
                              if values.get("actuals_refreshed_at") else None),
        actuals_daily_since=(date.fromisoformat(values["actuals_daily_since"])
                             if values.get("actuals_daily_since") else None),
    )


def _put_settings(conn: Connection, values: Mapping[str, str], now: datetime, actor: str) -> None:
    if not values:
        return
    conn.execute(delete(plan_settings).where(plan_settings.c.key.in_(list(values))))
    conn.execute(insert(plan_settings), [{"key": k, "value": v, "updated_at": now, "updated_by": actor}
                                         for k, v in values.items()])


def set_settings(ctx: Context, principal: Principal, now: datetime, *, cms_daily_capacity: int | None = None,
                 support_after: Month | None = None) -> PlanSettings:
    """Set the card management system's daily capacity and the support team's month (national operator)."""
    principal.require(*_NATIONAL)
    values: dict[str, str] = {}
    if cms_daily_capacity is not None:
        if not 1 <= cms_daily_capacity <= 100_000_000:
            raise InvalidInput("the card management system's capacity must be 1–100,000,000 cards a day")
        values["cms_daily_capacity"] = str(cms_daily_capacity)
    if support_after is not None:
        values["support_after"] = str(support_after)
    with ctx.transaction() as tx:
        _put_settings(tx.conn, values, now, principal.subject)
    return get_settings(ctx)


# --- reading published plans --------------------------------------------------------------------------------

def _month_of(value: date | None) -> Month | None:
    return None if value is None else Month.of(value)


def _latest_ids(as_of: date | None, codes: Collection[str] | None = None,
                prefecture_code: str | None = None) -> Any:
    query = (select(func.max(plan_revisions.c.id).label("id"))
             .group_by(plan_revisions.c.municipality_code))
    if as_of is not None:
        query = query.where(plan_revisions.c.as_of <= as_of)
    if codes is not None:
        query = query.where(plan_revisions.c.municipality_code.in_(list(codes)))
    if prefecture_code is not None:
        query = query.where(plan_revisions.c.municipality_code.like(f"{prefecture_code}%"))
    return query.subquery()


def _load_plans(conn: Connection, names: Mapping[str, registry.Municipality], as_of: date | None,
                codes: Collection[str] | None = None,
                prefecture_code: str | None = None) -> list[PublishedPlan]:
    latest = _latest_ids(as_of, codes, prefecture_code)
    revisions = conn.execute(select(plan_revisions).join(latest, latest.c.id == plan_revisions.c.id)).all()
    targets: dict[int, dict[Month, Month | None]] = defaultdict(dict)
    for rid, applied, target in conn.execute(
            select(plan_targets.c.revision_id, plan_targets.c.application_month, plan_targets.c.target_month)
            .join(latest, latest.c.id == plan_targets.c.revision_id)):
        targets[rid][Month.of(applied)] = _month_of(target)
    months: dict[int, dict[Month, tuple[int, int]]] = defaultdict(dict)
    for rid, month, notices, applications in conn.execute(
            select(plan_months.c.revision_id, plan_months.c.month, plan_months.c.notices_sent_cumulative,
                   plan_months.c.applications_cumulative)
            .join(latest, latest.c.id == plan_months.c.revision_id)):
        months[rid][Month.of(month)] = (int(notices), int(applications))
    out = []
    for r in revisions:
        muni = names.get(r.municipality_code)
        out.append(PublishedPlan(
            municipality_code=r.municipality_code, prefecture_code=r.municipality_code[:2],
            name=muni.full_name if muni else r.municipality_code, revision=r.revision, as_of=r.as_of,
            targets=targets[r.id], months=months[r.id],
            means=Means.from_dict(json.loads(r.means)) if r.means else None,
            backlog_total=r.backlog_total, required_per_day=r.required_per_day,
            capacity_per_day=r.capacity_per_day, shortfall_per_day=r.shortfall_per_day, source=r.source))
    return sorted(out, key=lambda p: p.municipality_code)


def _names(ctx: Context) -> dict[str, registry.Municipality]:
    return {m.code: m for m in registry.list_municipalities(ctx)}


def published_plans(ctx: Context, principal: Principal, *, as_of: date | None = None,
                    prefecture_code: str | None = None) -> list[PublishedPlan]:
    """The latest plan of every municipality that has one, as published on ``as_of`` (default: now)."""
    with ctx.db.connect() as conn:
        return _load_plans(conn, _names(ctx), as_of, prefecture_code=prefecture_code)


def plan_of(ctx: Context, principal: Principal, code: str, *,
            as_of: date | None = None) -> PublishedPlan | None:
    """A municipality's published plan (None if it has none)."""
    muni = _require_municipality(ctx, code)
    with ctx.db.connect() as conn:
        plans = _load_plans(conn, {code: muni}, as_of, codes=[code])
    return plans[0] if plans else None


def latest_plan_day(ctx: Context) -> date | None:
    """The day of the newest published plan (what the national report shows by default)."""
    with ctx.db.connect() as conn:
        return conn.execute(select(func.max(plan_revisions.c.as_of))).scalar()


def recent_imports(ctx: Context, principal: Principal, limit: int = 10) -> list[dict[str, Any]]:
    principal.require(*_NATIONAL)
    with ctx.db.connect() as conn:
        rows = conn.execute(select(plan_imports).order_by(plan_imports.c.id.desc()).limit(limit)).all()
    return [{"id": r.id, "as_of": r.as_of, "files": json.loads(r.files), "municipalities": r.municipalities,
             "rows": r.rows, "imported_at": r.imported_at, "imported_by": r.imported_by} for r in rows]


def find_municipalities(ctx: Context, query: str, limit: int = 30) -> list[registry.Municipality]:
    """Municipalities whose code, name or reading contains ``query`` (residents looking for their town)."""
    text = query.strip()
    if not text:
        return []
    if len(text) > 40:
        raise InvalidInput("search for at most 40 characters")
    hits = [m for m in registry.list_municipalities(ctx)
            if text in m.code or text in m.name or text in m.full_name or text in m.kana]
    return hits[:limit]


def plan_history(ctx: Context, principal: Principal, code: str) -> list[dict[str, Any]]:
    """Every revision of a municipality's plan: when, by whom, from what, and its clearance month."""
    _require_municipality(ctx, code)
    with ctx.db.connect() as conn:
        rows = conn.execute(select(plan_revisions).where(plan_revisions.c.municipality_code == code)
                            .order_by(plan_revisions.c.revision)).all()
    return [{"revision": r.revision, "as_of": r.as_of, "target_month": _month_of(r.target_month),
             "source": r.source, "created_at": r.created_at, "created_by": r.created_by,
             "required_per_day": r.required_per_day, "shortfall_per_day": r.shortfall_per_day,
             "note": r.note} for r in rows]


# --- import and export --------------------------------------------------------------------------------------

@dataclass(frozen=True)
class ImportResult:
    import_id: int
    municipalities: int
    rows: int
    already_imported: bool
    """True when exactly these files were imported before for the same day (nothing changed now)."""
    kinds: dict[str, str]


def _digest(files: Sequence[tuple[str, bytes]], as_of: date) -> str:
    h = hashlib.sha256(f"plans-import\x1f{as_of.isoformat()}".encode())
    for content in sorted(data for _, data in files):
        h.update(hashlib.sha256(content).digest())
    return h.hexdigest()


def _revision_rows(revision_id: int, targets: Mapping[Month, Month | None],
                   months: Mapping[Month, tuple[int, int]], as_of: date,
                   backlog: Mapping[Month, int] | None = None,
                   planned_from: Month | None = None) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    first_planned = planned_from or Month.of(as_of)
    t_rows = [{"revision_id": revision_id, "application_month": m.first_day,
               "target_month": t.first_day if t else None, "backlog": (backlog or {}).get(m)}
              for m, t in sorted(targets.items())]
    m_rows = [{"revision_id": revision_id, "month": m.first_day, "notices_sent_cumulative": n,
               "applications_cumulative": a, "planned": m >= first_planned}
              for m, (n, a) in sorted(months.items())]
    return t_rows, m_rows


def import_plans(ctx: Context, principal: Principal, files: Sequence[tuple[str, bytes]], *, as_of: date,
                 now: datetime) -> ImportResult:
    """Import plans from CSV files (see :mod:`mynacard.plans.csvfiles` for the headers).

    Every row of every file is checked first; one bad row refuses the whole import, with every problem and its
    line number. Each municipality in the files gets a new revision; what its rows do not give (targets,
    monthly figures or means) is kept from its previous revision. Importing the same files for the same day
    again changes nothing.
    """
    principal.require(*_EDITORS)
    if not files:
        raise InvalidInput("no files to import")
    names = _names(ctx)
    parsed = csvfiles.parse_files(files, known_codes=names.keys(), as_of=as_of)
    if parsed.problems:
        raise InvalidInput(f"{len(parsed.problems)} problem(s); nothing was imported", parsed.problems)
    codes = sorted(parsed.municipalities)
    if not codes:
        raise InvalidInput("the files hold no rows")
    _check_editor(principal, codes)
    digest = _digest(files, as_of)
    try:
        with ctx.transaction() as tx:
            conn = tx.conn
            done = conn.execute(select(plan_imports).where(plan_imports.c.sha256 == digest)).first()
            if done is not None:
                return ImportResult(done.id, done.municipalities, done.rows, True, json.loads(done.files))
            import_id = conn.execute(insert(plan_imports).values(
                sha256=digest, as_of=as_of, files=json.dumps(parsed.kinds, ensure_ascii=False),
                municipalities=len(codes), rows=parsed.rows, imported_at=now, imported_by=principal.subject)
                .returning(plan_imports.c.id)).scalar_one()
            previous = {p.municipality_code: p for p in _load_plans(conn, names, None, codes=codes)}
            revisions = []
            for code in codes:
                old = previous.get(code)
                targets = parsed.targets.get(code, dict(old.targets) if old else {})
                means = parsed.means.get(code, old.means if old else None)
                clearance = max((t for t in targets.values() if t is not None), default=None)
                revisions.append({
                    "municipality_code": code, "revision": (old.revision if old else 0) + 1, "as_of": as_of,
                    "target_month": clearance.first_day if clearance else None, "source": "import",
                    "import_id": import_id, "means": json.dumps(means.to_dict(), ensure_ascii=False) if means
                    else None, "created_at": now, "created_by": principal.subject})
            ids = list(conn.execute(insert(plan_revisions).returning(plan_revisions.c.id,
                                                                     sort_by_parameter_order=True),
                                    revisions).scalars())
            t_rows: list[dict[str, Any]] = []
            m_rows: list[dict[str, Any]] = []
            for code, rid in zip(codes, ids, strict=True):
                old = previous.get(code)
                targets = parsed.targets.get(code, dict(old.targets) if old else {})
                months = parsed.monthly.get(code, dict(old.months) if old else {})
                t, m = _revision_rows(rid, targets, months, as_of)
                t_rows.extend(t)
                m_rows.extend(m)
            for table, rows in ((plan_targets, t_rows), (plan_months, m_rows)):
                for i in range(0, len(rows), 20000):
                    conn.execute(insert(table), rows[i:i + 20000])
    except IntegrityError:
        raise Conflict("another import or plan change for these municipalities happened at the same time; "
                       "try again") from None
    return ImportResult(import_id, len(codes), parsed.rows, False, parsed.kinds)


EXPORT_KINDS = ("targets", "monthly", "means")


def export_plans(ctx: Context, principal: Principal, kind: str, *, as_of: date | None = None,
                 prefecture_code: str | None = None) -> str:
    """The published plans as one of the importable CSV files (``targets``, ``monthly`` or ``means``)."""
    if kind not in EXPORT_KINDS:
        raise InvalidInput(f"export kind must be one of {', '.join(EXPORT_KINDS)}")
    plans = published_plans(ctx, principal, as_of=as_of, prefecture_code=prefecture_code)
    if kind == "targets":
        return csvfiles.write_csv(csvfiles.TARGETS_HEADER, (
            row for p in plans for row in csvfiles.targets_rows(p.municipality_code, dict(p.targets))))
    if kind == "monthly":
        return csvfiles.write_csv(csvfiles.MONTHLY_HEADER, (
            [p.municipality_code, str(m), n, a] for p in plans for m, (n, a) in sorted(p.months.items())))
    return csvfiles.write_csv(csvfiles.MEANS_HEADER, (
        row for p in plans if p.means for row in csvfiles.means_rows(p.municipality_code, p.means)))


# --- live data of one municipality --------------------------------------------------------------------------

@dataclass(frozen=True)
class LiveStatus:
    """A municipality's queue and recent flow, read live from the card pipeline."""

    municipality_code: str
    today: date
    backlog: dict[Month, int]
    """Cards received, notice not sent, by application month."""
    pipeline: int
    history: list[DayObservation]
    """Each day from ``today - HISTORY_DAYS`` to today (today may be incomplete)."""
    monthly: dict[Month, dict[str, int]]
    """Entries into applied / received / notice_sent / issued per month, all time."""

    @property
    def backlog_total(self) -> int:
        return sum(self.backlog.values())

    def cumulative(self, state: CardState, through: Month) -> int:
        return sum(n.get(state.value, 0) for m, n in self.monthly.items() if m <= through)

    def backlog_by_day(self) -> list[tuple[date, int]]:
        """The queue at the end of each observed day, walked back from today's: a day's arrivals joined it
        and its notices left it."""
        out = []
        queue = self.backlog_total
        for o in reversed(self.history):
            out.append((o.day, max(0, queue)))
            queue = queue - o.arrivals + o.notices
        return out[::-1]

    def recent_mean(self, field: str, days: int = 28, business_only: bool = False) -> float:
        """Mean per day over the last complete ``days`` days (or their business days)."""
        window = [o for o in self.history if self.today - timedelta(days=days) <= o.day < self.today]
        if business_only:
            window = [o for o in window if is_government_business_day(o.day)]
        return sum(getattr(o, field) for o in window) / len(window) if window else 0.0


def _observations(rows: Sequence[cards.TransitionCount], first: date, last: date) -> list[DayObservation]:
    by_day: dict[date, dict[str, int]] = defaultdict(dict)
    for r in rows:
        if r.daily:
            by_day[r.period][r.state.value] = by_day[r.period].get(r.state.value, 0) + r.count
    out = []
    for i in range((last - first).days + 1):
        day = first + timedelta(days=i)
        n = by_day.get(day, {})
        out.append(DayObservation(day, n.get("applied", 0), n.get("received", 0), n.get("notice_sent", 0),
                                  n.get("issued", 0)))
    return out


def live_status(ctx: Context, principal: Principal, code: str, now: datetime) -> LiveStatus:
    """The live queue and flow of one municipality (published aggregates)."""
    _require_municipality(ctx, code)
    today = local_date(now)
    first = today - timedelta(days=HISTORY_DAYS)
    backlog = cards.counts_by_application_month(ctx, PUBLIC, BACKLOG_STATES, code).get(code, {})
    pipeline = cards.counts_by_application_month(ctx, PUBLIC, PIPELINE_STATES, code).get(code, {})
    flow = cards.transition_counts(ctx, PUBLIC, FLOW_STATES, daily_since=first, municipality_code=code)
    monthly: dict[Month, dict[str, int]] = defaultdict(dict)
    for r in flow:
        m = Month.of(r.period)
        monthly[m][r.state.value] = monthly[m].get(r.state.value, 0) + r.count
    return LiveStatus(code, today, {Month.of(d): n for d, n in backlog.items()}, sum(pipeline.values()),
                      _observations(flow, first, today), dict(monthly))


# --- drawing up and publishing a plan -----------------------------------------------------------------------

def _inputs(live: LiveStatus, target: Month, means: Means | None, arrivals_per_day: float | None,
            applications_per_day: float | None) -> PlanInputs:
    current = Month.of(live.today)
    past = {m: (live.cumulative(S.NOTICE_SENT, m), live.cumulative(S.APPLIED, m))
            for m in sorted(live.monthly) if m < current}
    return PlanInputs(
        municipality_code=live.municipality_code, as_of=live.today, target=target, backlog=live.backlog,
        means=means,
        arrivals_per_day=(arrivals_per_day if arrivals_per_day is not None
                          else round(live.recent_mean("arrivals", business_only=True), 1)),
        applications_per_day=(applications_per_day if applications_per_day is not None
                              else round(live.recent_mean("applications"), 1)),
        notices_sent=live.cumulative(S.NOTICE_SENT, current),
        applications=live.cumulative(S.APPLIED, current),
        past_months=past)


def draft_plan(ctx: Context, principal: Principal, code: str, *, target: Month, means: Means | None,
               now: datetime, arrivals_per_day: float | None = None,
               applications_per_day: float | None = None) -> tuple[PlanInputs, PlanFigures]:
    """Work a plan out from the live backlog without saving it (a preview anyone may ask for)."""
    live = live_status(ctx, principal, code, now)
    inputs = _inputs(live, target, means, arrivals_per_day, applications_per_day)
    return inputs, plan_figures(inputs)


def save_plan(ctx: Context, principal: Principal, code: str, *, target: Month, means: Means | None,
              now: datetime, arrivals_per_day: float | None = None, note: str | None = None) -> PublishedPlan:
    """Publish a municipality's plan worked out from its live backlog (a new revision).

    Saving the same plan again on the same day returns the published one and changes nothing.
    """
    _check_editor(principal, [code])
    if note is not None and len(note) > 2000:
        raise InvalidInput("a note has at most 2,000 characters")
    inputs, figures = draft_plan(ctx, principal, code, target=target, means=means, now=now,
                                 arrivals_per_day=arrivals_per_day)
    means_json = json.dumps(means.to_dict(), ensure_ascii=False) if means else None
    clearance = max((t for t in figures.targets.values() if t is not None), default=None)
    months = {f.month: (f.notices_sent_cumulative, f.applications_cumulative) for f in figures.months}
    try:
        with ctx.transaction() as tx:
            conn = tx.conn
            latest = conn.execute(select(plan_revisions).where(plan_revisions.c.municipality_code == code)
                                  .order_by(plan_revisions.c.revision.desc()).limit(1)).first()
            if (latest is not None and latest.source == "drafted" and latest.as_of == inputs.as_of
                    and latest.means == means_json and _month_of(latest.target_month) == clearance
                    and latest.required_per_day == figures.required_per_day and latest.note == note):
                return _load_plans(conn, _names(ctx), None, codes=[code])[0]
            rid = conn.execute(insert(plan_revisions).values(
                municipality_code=code, revision=(latest.revision if latest else 0) + 1, as_of=inputs.as_of,
                target_month=clearance.first_day if clearance else None, source="drafted", means=means_json,
                backlog_total=figures.backlog_total, arrivals_per_day=inputs.arrivals_per_day,
                required_per_day=figures.required_per_day, capacity_per_day=figures.capacity_per_day,
                shortfall_per_day=figures.shortfall_per_day if means else None, bottleneck=figures.bottleneck,
                note=note, created_at=now, created_by=principal.subject).returning(plan_revisions.c.id)
            ).scalar_one()
            t_rows, m_rows = _revision_rows(rid, figures.targets, months, inputs.as_of, inputs.backlog)
            if t_rows:
                conn.execute(insert(plan_targets), t_rows)
            if m_rows:
                conn.execute(insert(plan_months), m_rows)
            return _load_plans(conn, _names(ctx), None, codes=[code])[0]
    except IntegrityError:
        raise Conflict(f"the plan of {code} was changed at the same time; reload and try again") from None


# --- forecasts ----------------------------------------------------------------------------------------------

def _seed(code: str, as_of: date, what_if: WhatIf) -> int:
    return zlib.crc32(f"{code}|{as_of.isoformat()}|{what_if!r}".encode())


def _queue_at_end_of(backlog: Mapping[Month, int], today: DayObservation) -> dict[Month, int]:
    """Yesterday evening's queue from now's: today's notices went out of the oldest months (first in, first
    out), today's arrivals came into the newest."""
    queue = {m: n for m, n in backlog.items() if n > 0}
    if today.notices:
        oldest = min(queue, default=Month.of(today.day))
        queue[oldest] = queue.get(oldest, 0) + today.notices
    remove = today.arrivals
    for m in sorted(queue, reverse=True):
        take = min(remove, queue[m])
        queue[m] -= take
        remove -= take
    return {m: n for m, n in queue.items() if n > 0}


def forecast_for(ctx: Context, principal: Principal, code: str, now: datetime, *,
                 what_if: WhatIf | None = None, runs: int = 400,
                 live: LiveStatus | None = None) -> Forecast:
    """Forecast a municipality's clearance from its live queue, under its published plan's means (changed
    by ``what_if``). The forecast stands on the last complete day: yesterday, since today is still going."""
    what_if = what_if or WhatIf()
    live = live or live_status(ctx, principal, code, now)
    plan = plan_of(ctx, principal, code)
    today = live.history[-1]
    as_of = live.today - timedelta(days=1)
    inputs = ForecastInputs(
        municipality_code=code, as_of=as_of, queue=_queue_at_end_of(live.backlog, today),
        pipeline=live.pipeline + today.arrivals, history=live.history[:-1],
        means=plan.means if plan else None, what_if=what_if, runs=runs, seed=_seed(code, as_of, what_if))
    return forecast(inputs)


# --- the national snapshot of actuals -----------------------------------------------------------------------

@dataclass(frozen=True)
class RefreshResult:
    rows: int
    municipalities: int
    refreshed_at: datetime
    daily_since: date
    forecasts: int = 0


def refresh_actuals(ctx: Context, principal: Principal, now: datetime, daily_days: int = HISTORY_DAYS,
                    *, forecasts: bool = True) -> RefreshResult:
    """Rebuild the national snapshot of the card history (entries into applied / received / notice sent /
    issued per municipality and month, and per day for the last ``daily_days`` days) in one transaction;
    then, unless ``forecasts`` is false, forecast every municipality from it and keep those forecasts for
    the national pages (:func:`stored_forecasts`)."""
    principal.require(*_NATIONAL)
    since = local_date(now) - timedelta(days=daily_days)
    counts = cards.transition_counts(ctx, principal, FLOW_STATES, daily_since=since)
    rows = [{"municipality_code": c.municipality_code, "daily": c.daily, "period": c.period,
             "state": c.state.value, "count": c.count} for c in counts]
    with ctx.transaction() as tx:
        tx.conn.execute(delete(plan_actuals))
        for i in range(0, len(rows), 20000):
            tx.conn.execute(insert(plan_actuals), rows[i:i + 20000])
        _put_settings(tx.conn, {"actuals_refreshed_at": now.isoformat(),
                                "actuals_daily_since": since.isoformat()}, now, principal.subject)
    stored = 0
    if forecasts:
        batch = national_forecasts(ctx, principal)
        with ctx.transaction() as tx:
            tx.conn.execute(delete(plan_forecasts))
            if batch:
                tx.conn.execute(insert(plan_forecasts), [
                    {"municipality_code": code, "as_of": f.as_of, "status": f.status.value, "low": f.low,
                     "median": f.median, "high": f.high, "backlog": f.backlog,
                     "throughput_per_day": f.throughput_per_day, "arrivals_per_day": f.arrivals_per_day}
                    for code, f in batch.items()])
        stored = len(batch)
    return RefreshResult(len(rows), len({r["municipality_code"] for r in rows}), now, since, stored)


@dataclass(frozen=True)
class StoredForecast:
    """A municipality's forecast from the last national batch."""

    as_of: date
    status: str
    low: date | None
    median: date | None
    high: date | None
    backlog: int
    throughput_per_day: float
    arrivals_per_day: float

    def later_than(self, target: Month | None) -> bool:
        """Expected after the end of ``target`` (or not within the horizon at all)."""
        if self.status == "cleared":
            return False
        return self.median is None or (target is not None and self.median > target.last_day)


def stored_forecasts(ctx: Context, principal: Principal, *,
                     prefecture_code: str | None = None) -> dict[str, StoredForecast]:
    """The last national batch of forecasts (made by :func:`refresh_actuals`), by municipality."""
    query = select(plan_forecasts)
    if prefecture_code:
        query = query.where(plan_forecasts.c.municipality_code.like(f"{prefecture_code}%"))
    with ctx.db.connect() as conn:
        return {r.municipality_code: StoredForecast(r.as_of, r.status, r.low, r.median, r.high, r.backlog,
                                                    r.throughput_per_day, r.arrivals_per_day)
                for r in conn.execute(query)}


@dataclass(frozen=True)
class ActualSeries:
    """Actual entries per month (all time) and per day (recent) for the nation, a prefecture or a town."""

    refreshed_at: datetime | None
    monthly: dict[Month, dict[str, int]]
    daily: dict[date, dict[str, int]]

    def cumulative(self, state: str) -> list[tuple[Month, int]]:
        total, out = 0, []
        for month in sorted(self.monthly):
            total += self.monthly[month].get(state, 0)
            out.append((month, total))
        return out


def national_actuals(ctx: Context, principal: Principal, *, prefecture_code: str | None = None,
                     municipality_code: str | None = None) -> ActualSeries:
    """The snapshot's actuals summed over the nation, a prefecture or one municipality."""
    settings = get_settings(ctx)
    query = (select(plan_actuals.c.daily, plan_actuals.c.period, plan_actuals.c.state,
                    func.sum(plan_actuals.c.count))
             .group_by(plan_actuals.c.daily, plan_actuals.c.period, plan_actuals.c.state))
    if prefecture_code:
        query = query.where(plan_actuals.c.municipality_code.like(f"{prefecture_code}%"))
    if municipality_code:
        query = query.where(plan_actuals.c.municipality_code == municipality_code)
    monthly: dict[Month, dict[str, int]] = defaultdict(dict)
    daily: dict[date, dict[str, int]] = defaultdict(dict)
    with ctx.db.connect() as conn:
        for is_daily, period, state, n in conn.execute(query):
            month = Month.of(period)
            monthly[month][state] = monthly[month].get(state, 0) + int(n)
            if is_daily:
                daily[period][state] = int(n)
    return ActualSeries(settings.actuals_refreshed_at, dict(monthly), dict(daily))


def national_forecasts(ctx: Context, principal: Principal, *, runs: int = 200, horizon_days: int = 366,
                       prefecture_code: str | None = None) -> dict[str, Forecast]:
    """Forecast every municipality at once from the snapshot's recent days and the live queues (a batch:
    one query per aggregate for the whole country, then the model per municipality)."""
    settings = get_settings(ctx)
    if settings.actuals_refreshed_at is None or settings.actuals_daily_since is None:
        raise Conflict("no snapshot of actuals yet: run `mynacard plans refresh` first")
    last = local_date(settings.actuals_refreshed_at) - timedelta(days=1)
    first = settings.actuals_daily_since
    query = (select(plan_actuals.c.municipality_code, plan_actuals.c.period, plan_actuals.c.state,
                    plan_actuals.c.count)
             .where(plan_actuals.c.daily.is_(True), plan_actuals.c.period <= last))
    if prefecture_code:
        query = query.where(plan_actuals.c.municipality_code.like(f"{prefecture_code}%"))
    flows: dict[str, list[cards.TransitionCount]] = defaultdict(list)
    with ctx.db.connect() as conn:
        for code, period, state, n in conn.execute(query):
            flows[code].append(cards.TransitionCount(code, CardState(state), period, True, int(n)))
    backlog = cards.counts_by_application_month(ctx, PUBLIC, BACKLOG_STATES)
    pipeline = cards.counts_by_application_month(ctx, PUBLIC, PIPELINE_STATES)
    with ctx.db.connect() as conn:
        plans = {p.municipality_code: p for p in _load_plans(conn, {}, None, prefecture_code=prefecture_code)}
    codes = sorted(c for c in set(backlog) | set(flows)
                   if not prefecture_code or c.startswith(prefecture_code))
    out = {}
    for code in codes:
        plan = plans.get(code)
        out[code] = forecast(ForecastInputs(
            municipality_code=code, as_of=last,
            queue={Month.of(d): n for d, n in backlog.get(code, {}).items()},
            pipeline=sum(pipeline.get(code, {}).values()), history=_observations(flows[code], first, last),
            means=plan.means if plan else None, runs=runs, horizon_days=horizon_days,
            seed=_seed(code, last, WhatIf()), with_path=False))
    return out


# --- the national report ------------------------------------------------------------------------------------

def national_report_for(ctx: Context, principal: Principal, *, as_of: date,
                        support_after: Month | None = None,
                        prefecture_code: str | None = None) -> NationalReport:
    """The deck's p.10 table and figures from the plans published on ``as_of`` (nation or prefecture)."""
    return report_and_plans(ctx, principal, as_of=as_of, support_after=support_after,
                            prefecture_code=prefecture_code)[0]


def report_and_plans(ctx: Context, principal: Principal, *, as_of: date, support_after: Month | None = None,
                     prefecture_code: str | None = None) -> tuple[NationalReport, list[PublishedPlan]]:
    """:func:`national_report_for` and the plans it was drawn from (for pages that show both)."""
    settings = get_settings(ctx)
    names = _names(ctx)
    if prefecture_code is not None and not any(m.prefecture_code == prefecture_code for m in names.values()):
        raise NotFound(f"no prefecture {prefecture_code!r}")
    with ctx.db.connect() as conn:
        plans = _load_plans(conn, names, as_of, prefecture_code=prefecture_code)
    total = sum(1 for m in names.values() if prefecture_code is None or m.prefecture_code == prefecture_code)
    return national_report(plans, as_of=as_of, municipalities=total,
                           support_after=support_after or settings.support_after,
                           cms_capacity=settings.cms_daily_capacity), plans
