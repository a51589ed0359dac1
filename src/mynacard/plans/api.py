"""HTTP routes of issuance plans: the national dashboard, a prefecture, a municipality's published plan and
forecast (public, as the ministry published them), the plan form for a municipality's supervisor, the
operator's import and settings, and the JSON and CSV behind them. Thin: parse, call the service, render."""

from __future__ import annotations

from datetime import date
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, File, Form, Path, Query, Request, UploadFile
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from pydantic import BaseModel, Field

from mynacard.clock import local_date
from mynacard.context import Context
from mynacard.errors import DomainError, Forbidden, InvalidInput, NotFound
from mynacard.plans import csvfiles, service, views
from mynacard.plans.forecast import Forecast, WhatIf
from mynacard.plans.model import Means, Month, Site, SiteKind, format_target
from mynacard.principal import Principal, Role
from mynacard.registry import service as registry
from mynacard.webkit.deps import context, language, optional_principal, principal, render
from mynacard.webkit.i18n import register, translator
from mynacard.webkit.params import (
    DAY_MAX,
    DAY_MIN,
    Day,
    LongText,
    MunicipalityPath,
    PrefecturePath,
    PrefectureQuery,
    TextQuery,
)
from mynacard.webkit.params import Month as MonthText

router = APIRouter()

register({
    "plans.title": ("マイナンバーカード交付計画", "My Number Card issuance plans"),
    "plans.national": ("全国の交付計画", "Issuance plans — nation"),
    "plans.as_of": ("基準日", "As of"),
    "plans.show": ("表示", "Show"),
    "plans.support_after": ("支援対象(この月より後に完了)", "Support team: finishing after"),
    "plans.table": ("交付通知書発送完了目標見込み時期別団体数", "Municipalities by target month of notices"),
    "plans.applied": ("申請月", "Application month"),
    "plans.target": ("発送完了目標", "Target"),
    "plans.and_later": ("以降", "and later"),
    "plans.done": ("送付済", "Done"),
    "plans.total": ("合計", "Total"),
    "plans.cleared": ("滞留解消した団体数(累積)", "Municipalities cleared (cumulative)"),
    "plans.share": ("割合", "Share"),
    "plans.notices": ("交付通知書送付枚数(累積)", "Notices sent (cumulative)"),
    "plans.applications": ("申請数(累積)", "Applications (cumulative)"),
    "plans.ratio": ("送付率", "Ratio"),
    "plans.month": ("月", "Month"),
    "plans.without_plan": ("計画未策定の団体: {n}", "Municipalities without a plan: {n}"),
    "plans.with_plan": ("{n} 団体の計画を集計", "{n} municipalities' plans"),
    "plans.daily": ("計画が必要とする全国の1日あたり交付通知枚数",
                    "National notices per open day the plans imply"),
    "plans.daily_capacity": ("カード管理システムの処理能力: 1日 {n} 枚",
                             "Card management system capacity: {n} a day"),
    "plans.over": ("処理能力超過", "over capacity"),
    "plans.ok": ("処理能力内", "within capacity"),
    "plans.against_capacity": ("処理能力との比較", "Against capacity"),
    "plans.support": ("交付促進支援チームの対象団体", "Municipalities for the support team"),
    "plans.support_none": ("対象団体はありません。", "None."),
    "plans.prefectures": ("都道府県別", "By prefecture"),
    "plans.prefecture": ("都道府県", "Prefecture"),
    "plans.municipality": ("市区町村", "Municipality"),
    "plans.municipalities": ("市区町村別", "Municipalities"),
    "plans.clearance": ("滞留解消目標", "Clearance target"),
    "plans.backlog": ("滞留枚数", "Backlog"),
    "plans.required": ("必要交付枚数/日", "Needed a day"),
    "plans.capacity": ("体制の処理能力/日", "Means give a day"),
    "plans.shortfall": ("不足/日", "Short a day"),
    "plans.flagged": ("体制不足", "Means fall short"),
    "plans.csv": ("CSV", "CSV"),
    "plans.downloads": ("ダウンロード", "Downloads"),
    "plans.export_targets": ("計画(目標)CSV", "Plans (targets) CSV"),
    "plans.export_monthly": ("計画(月別)CSV", "Plans (monthly) CSV"),
    "plans.export_means": ("体制CSV", "Means CSV"),
    "plans.support_csv": ("支援対象CSV", "Support list CSV"),
    "plans.chart.progress": ("交付通知書送付と申請(累積)", "Notices sent and applications (cumulative)"),
    "plans.chart.notices_planned": ("送付(計画)", "Notices (plan)"),
    "plans.chart.applications_planned": ("申請(計画)", "Applications (plan)"),
    "plans.chart.notices_actual": ("送付(実績)", "Notices (actual)"),
    "plans.chart.applications_actual": ("申請(実績)", "Applications (actual)"),
    "plans.chart.received_actual": ("到着(実績)", "Cards arrived (actual)"),
    "plans.chart.issued_actual": ("交付(実績)", "Handed over (actual)"),
    "plans.chart.report_day": ("基準日", "report day"),
    "plans.chart.cleared": ("滞留解消した団体数(累積)", "Municipalities cleared (cumulative)"),
    "plans.chart.all_municipalities": ("全{n}団体", "all {n}"),
    "plans.chart.daily": ("全国の1日あたり交付通知枚数(計画)", "National notices per open day (plans)"),
    "plans.chart.capacity": ("処理能力 {n}", "capacity {n}"),
    "plans.chart.map": ("市区町村別の滞留解消目標", "Clearance target by municipality"),
    "plans.chart.burndown": ("滞留枚数の推移と見込み", "Backlog: so far and forecast"),
    "plans.chart.backlog_actual": ("滞留(実績)", "Backlog (actual)"),
    "plans.chart.backlog_forecast": ("滞留(見込み)", "Backlog (forecast)"),
    "plans.chart.backlog_what_if": ("滞留(変更後の見込み)", "Backlog (with the change)"),
    "plans.chart.band": ("90%幅", "90% band"),
    "plans.chart.today": ("今日", "today"),
    "plans.chart.target": ("目標", "target"),
    "plans.chart.flow": ("申請・到着・通知・交付(累積)",
                         "Applications, arrivals, notices, handovers (cumulative)"),
    "plans.chart.plan_vs_actual": ("計画と実績(交付通知書送付)", "Plan against actual (notices sent)"),
    "plans.actuals_at": ("実績は {t} 時点", "Actuals as of {t}"),
    "plans.actuals_none": ("実績の集計はまだありません(mynacard plans refresh)", "No actuals snapshot yet"),
    "plans.m.title": ("{name}のマイナンバーカード交付計画", "{name}: My Number Card issuance plan"),
    "plans.m.no_plan": ("この市区町村の交付計画はまだ公表されていません。",
                        "No plan has been published yet."),
    "plans.m.plan": ("公表中の計画", "Published plan"),
    "plans.m.revision": ("第{n}版({day}時点)", "revision {n} (as of {day})"),
    "plans.m.targets": ("申請月ごとの交付通知書発送完了目標",
                        "Target month of notices per application month"),
    "plans.m.means": ("実施体制", "Means"),
    "plans.m.site": ("窓口", "Site"),
    "plans.m.kind": ("種別", "Kind"),
    "plans.m.terminals": ("統合端末", "Terminals"),
    "plans.m.staff": ("職員", "Staff"),
    "plans.m.hours": ("開庁時間", "Hours"),
    "plans.m.after_hours": ("時間外開庁", "Evenings"),
    "plans.m.saturdays": ("土曜開庁", "Saturdays"),
    "plans.m.sundays": ("日曜開庁", "Sundays"),
    "plans.m.period": ("期間", "Period"),
    "plans.m.per_day": ("1日あたり", "per day"),
    "plans.m.status": ("現在の状況", "Now"),
    "plans.m.backlog_by_month": ("申請月別の滞留枚数", "Backlog by application month"),
    "plans.m.pipeline": ("製造・配送中", "On the way"),
    "plans.m.forecast": ("滞留解消の見込み", "When the backlog will be cleared"),
    "plans.m.forecast_median": ("見込み日", "Expected"),
    "plans.m.forecast_band": ("90%の幅", "90% band"),
    "plans.m.forecast_basis": ("直近{days}日の実績による", "From the last {days} days"),
    "plans.m.throughput": ("窓口の処理 {n} 枚/日", "window handles {n} a day"),
    "plans.m.arrivals": ("カード到着 {n} 枚/日", "cards arrive {n} a day"),
    "plans.m.cleared": ("滞留はありません(通知は通常1週間以内)", "No backlog (notices within a week)"),
    "plans.m.no_throughput": ("窓口の処理実績がないため見込みを出せません", "No window work observed yet"),
    "plans.m.beyond": ("今の体制では{date}までに解消しません", "Not cleared by {date} with these means"),
    "plans.m.cohorts": ("申請月ごとの見込み", "Expected per application month"),
    "plans.m.what_if": ("体制を変えると", "What if"),
    "plans.m.add_terminals": ("統合端末を追加", "Add terminals"),
    "plans.m.add_staff": ("職員を追加", "Add staff"),
    "plans.m.open_saturdays": ("毎週土曜に開庁", "Open every Saturday"),
    "plans.m.open_evenings": ("平日19時まで開庁", "Open weekdays until 19:00"),
    "plans.m.temporary_days": ("臨時交付窓口(日数)", "Temporary window (days)"),
    "plans.m.try": ("試算", "Try"),
    "plans.m.moves": ("見込み日は {before} → {after}({days:+d}日)",
                      "Expected {before} → {after} ({days:+d} days)"),
    "plans.m.what_if_needs_means": ("試算には体制を含む計画が必要です",
                                    "Trying changes needs a plan with means"),
    "plans.m.history": ("改訂履歴", "Revisions"),
    "plans.m.edit": ("計画を編集", "Edit the plan"),
    "plans.m.source.import": ("取込", "imported"),
    "plans.m.source.drafted": ("作成", "drawn up"),
    "plans.edit.title": ("{name}の交付計画の作成", "{name}: draw up the plan"),
    "plans.edit.target": ("滞留解消の目標月", "Clear the backlog by"),
    "plans.edit.arrivals": ("1日あたりの新規到着見込み(空欄: 直近実績)", "New cards a day (blank: recent)"),
    "plans.edit.note": ("備考", "Note"),
    "plans.edit.preview": ("試算", "Preview"),
    "plans.edit.publish": ("公表", "Publish"),
    "plans.edit.published": ("公表しました", "Published"),
    "plans.edit.add_site": ("窓口を追加する場合は空欄の行に記入", "Fill an empty row to add a site"),
    "plans.edit.days_help": ("時間外: 0=月…4=金 (例 1;3) / 土日: every, none, 2;4",
                             "Evenings: 0=Mon…4=Fri (1;3) / weekends: every, none, 2;4"),
    "plans.edit.row": ("{n}行目の{field}", "{field}, row {n}"),
    "plans.edit.after_hours_days": ("時間外開庁の曜日", "Evening days"),
    "plans.edit.after_hours_until": ("時間外開庁の終了時刻", "Evenings until"),
    "plans.edit.opens_on": ("期間の開始日", "Period from"),
    "plans.edit.closes_on": ("期間の終了日", "Period until"),
    "plans.admin.title": ("交付計画の管理", "Plans administration"),
    "plans.admin.import": ("計画CSVの取込", "Import plan CSV"),
    "plans.admin.files": ("ファイル", "Files"),
    "plans.admin.imported": ("{rows}行・{n}団体を取り込みました",
                             "Imported {rows} rows for {n} municipalities"),
    "plans.admin.already": ("同じファイルは取込済みです(変更なし)", "Already imported (nothing changed)"),
    "plans.admin.settings": ("設定", "Settings"),
    "plans.admin.capacity": ("カード管理システムの処理能力(枚/日)",
                             "Card management system capacity (a day)"),
    "plans.admin.save": ("保存", "Save"),
    "plans.admin.refresh": ("実績を再集計", "Rebuild the actuals snapshot"),
    "plans.admin.refreshed": ("{rows}行を集計しました", "Snapshot rebuilt: {rows} rows"),
    "plans.admin.recent": ("最近の取込", "Recent imports"),
    "plans.find": ("お住まいの市区町村の計画を探す", "Find your municipality's plan"),
    "plans.find.placeholder": ("市区町村名・コード", "Name or code"),
    "plans.find.none": ("見つかりません", "Nothing found"),
    "plans.site.main": ("本庁", "Town hall"),
    "plans.site.branch": ("支所・出張所", "Branch"),
    "plans.site.temporary": ("臨時交付窓口", "Temporary window"),
    "plans.problems": ("問題のある行", "Problems"),
    "plans.forecast": ("見込み", "Forecast"),
    "plans.behind": ("計画の目標より遅れる見込みの団体", "Forecast later than the plan"),
    "plans.behind_none": ("ありません", "None"),
    "plans.forecasts_from": ("見込みは{day}までの実績による(全国一括)",
                             "Forecasts from the actuals to {day}"),
    "plans.never": ("解消せず", "not cleared"),
    "plans.chart.gap": ("申請済・交付通知書未送付(累積差)", "Applied, no notice yet"),
    "plans.chart.gap_planned": ("未送付(計画)", "No notice yet (plan)"),
    "plans.chart.gap_actual": ("未送付(実績)", "No notice yet (actual)"),
})


def _month_param(value: str | None, name: str) -> Month | None:
    if not value:
        return None
    try:
        month = Month.parse(value)
    except ValueError:
        raise InvalidInput(f"{name}: a month is YYYY-MM") from None
    if not DAY_MIN.year <= month.year <= DAY_MAX.year:
        raise InvalidInput(f"{name}: a month from {DAY_MIN.year} to {DAY_MAX.year}")
    return month


def _day_param(value: str | None, name: str) -> date | None:
    if not value:
        return None
    try:
        day = date.fromisoformat(value)
    except ValueError:
        raise InvalidInput(f"{name}: a day is YYYY-MM-DD") from None
    if not DAY_MIN <= day <= DAY_MAX:
        raise InvalidInput(f"{name}: a day from {DAY_MIN} to {DAY_MAX}")
    return day


AsOf = Annotated[str | None, Query(max_length=10, description="the report day (YYYY-MM-DD; blank: the latest)")]
After = Annotated[str | None, Query(max_length=7, description="the support month (YYYY-MM; blank: the default)")]
ExportKind = Annotated[str, Path(max_length=16, description="targets, monthly or means")]


def _report_day(ctx: Context, as_of: str | None) -> date:
    return _day_param(as_of, "as_of") or service.latest_plan_day(ctx) or local_date(ctx.now())


def _csv(text: str, name: str) -> Response:
    return Response("\ufeff" + text, media_type="text/csv; charset=utf-8",
                    headers={"Content-Disposition": f'attachment; filename="{name}"'})


def _prefectures(ctx: Context) -> list[tuple[str, str]]:
    seen: dict[str, str] = {}
    for m in registry.list_municipalities(ctx):
        seen.setdefault(m.prefecture_code, m.prefecture)
    return sorted(seen.items())


# --- the nation and a prefecture ----------------------------------------------------------------------------

def _report_page(request: Request, ctx: Context, as_of: str | None, after: str | None,
                 prefecture_code: str | None) -> HTMLResponse:
    day = _report_day(ctx, as_of)
    report, plans = service.report_and_plans(ctx, service.PUBLIC, as_of=day, prefecture_code=prefecture_code,
                                             support_after=_month_param(after, "after"))
    actuals = service.national_actuals(ctx, service.PUBLIC, prefecture_code=prefecture_code)
    lang = language(request)
    charts = views.national_charts(report, plans, actuals, translator(lang), lang)
    forecasts = service.stored_forecasts(ctx, service.PUBLIC, prefecture_code=prefecture_code)
    late = [p for p in plans if (f := forecasts.get(p.municipality_code)) and f.later_than(p.clearance)]
    behind = sorted(late, reverse=True,
                    key=lambda p: (forecasts[p.municipality_code].median or date.max, p.municipality_code))
    prefecture = next((name for code, name in _prefectures(ctx) if code == prefecture_code), None)
    months = [m for m in report.rows if m is not None]
    return render(request, "plans_national.html", report=report, plans=plans, charts=charts,
                  actuals=actuals, prefecture_code=prefecture_code, prefecture=prefecture,
                  prefectures=_prefectures(ctx), months=months, format_target=format_target,
                  forecasts=forecasts, behind=behind,
                  query=f"as_of={report.as_of.isoformat()}&after={report.support_after}")


@router.get("/plans", response_class=HTMLResponse, include_in_schema=False)
def national_page(request: Request, as_of: AsOf = None, after: After = None,
                  ctx: Context = Depends(context)) -> HTMLResponse:
    """The national dashboard (public): the deck's table, charts, map, daily number and support list."""
    return _report_page(request, ctx, as_of, after, None)


@router.get("/plans/pref/{prefecture_code}", response_class=HTMLResponse, include_in_schema=False)
def prefecture_page(request: Request, prefecture_code: PrefecturePath, as_of: AsOf = None,
                    after: After = None, ctx: Context = Depends(context)) -> HTMLResponse:
    return _report_page(request, ctx, as_of, after, prefecture_code)


@router.get("/plans/national.csv", include_in_schema=False)
@router.get("/api/plans/national.csv")
def national_csv(as_of: AsOf = None, after: After = None, prefecture: PrefectureQuery | None = None,
                 ctx: Context = Depends(context)) -> Response:
    """The deck-shaped table as CSV."""
    report = service.national_report_for(ctx, service.PUBLIC, as_of=_report_day(ctx, as_of),
                                         prefecture_code=prefecture,
                                         support_after=_month_param(after, "after"))
    rows = report.csv_rows()
    return _csv(csvfiles.write_csv(rows[0], rows[1:]), f"plans-report-{report.as_of}.csv")


@router.get("/plans/support.csv", include_in_schema=False)
@router.get("/api/plans/support.csv")
def support_csv(as_of: AsOf = None, after: After = None,
                ctx: Context = Depends(context)) -> Response:
    """Municipalities that finish after the chosen month, for the support team."""
    report = service.national_report_for(ctx, service.PUBLIC, as_of=_report_day(ctx, as_of),
                                         support_after=_month_param(after, "after"))
    text = csvfiles.write_csv(
        ("municipality_code", "name", "clearance_month", "backlog", "required_per_day", "shortfall_per_day"),
        ([s.municipality_code, s.name, str(s.clearance), s.backlog_total, s.required_per_day,
          s.shortfall_per_day] for s in report.support))
    return _csv(text, f"plans-support-after-{report.support_after}.csv")


@router.get("/api/plans/national")
def national_json(as_of: AsOf = None, after: After = None, prefecture: PrefectureQuery | None = None,
                  ctx: Context = Depends(context)) -> dict[str, Any]:
    """The national (or a prefecture's) report as JSON."""
    report = service.national_report_for(ctx, service.PUBLIC, as_of=_report_day(ctx, as_of),
                                         prefecture_code=prefecture,
                                         support_after=_month_param(after, "after"))
    out: dict[str, Any] = views.plain(report)
    out["counts"] = {format_target(row): counts for row, counts in report.counts.items()}
    out["rows"] = [format_target(r) for r in report.rows]
    out.pop("clearance_by_code", None)
    return out


@router.get("/plans/export/{kind}.csv", include_in_schema=False)
@router.get("/api/plans/export/{kind}.csv")
def export_csv(kind: ExportKind, as_of: AsOf = None, ctx: Context = Depends(context)) -> Response:
    """The published plans as importable CSV (targets, monthly or means)."""
    text = service.export_plans(ctx, service.PUBLIC, kind, as_of=_day_param(as_of, "as_of"))
    return _csv(text, f"plans-{kind}.csv")


@router.get("/plans/find", response_class=HTMLResponse, include_in_schema=False)
def find_page(request: Request, q: TextQuery = "", ctx: Context = Depends(context)) -> Response:
    """Residents look up their municipality by name, reading or code."""
    hits = service.find_municipalities(ctx, q)
    if len(hits) == 1:
        return RedirectResponse(f"/plans/m/{hits[0].code}", status_code=303)
    return render(request, "plans_find.html", q=q, hits=hits)


# --- a municipality -----------------------------------------------------------------------------------------

def _what_if(add_terminals: int, add_staff: int, saturdays: bool, evenings: bool,
             temporary_days: int) -> WhatIf:
    return WhatIf(add_terminals=add_terminals, add_staff=add_staff, saturdays=saturdays, after_hours=evenings,
                  temporary_days=temporary_days)


def _can_edit(who: Principal | None, code: str) -> bool:
    if who is None:
        return False
    if who.role in (Role.OPERATOR, Role.SYSTEM):
        return True
    return who.role is Role.SUPERVISOR and who.municipality_code == code


@router.get("/plans/m/{code}", response_class=HTMLResponse, include_in_schema=False)
def municipality_page(request: Request, code: MunicipalityPath, add_terminals: int = Query(0, ge=0, le=100),
                      add_staff: int = Query(0, ge=0, le=500), saturdays: bool = False,
                      evenings: bool = False, temporary_days: int = Query(0, ge=0, le=730),
                      ctx: Context = Depends(context)) -> HTMLResponse:
    """A municipality's published plan, its live queue and the forecast, with what-ifs (public)."""
    muni = registry.get_municipality(ctx, code)
    now = ctx.now()
    live = service.live_status(ctx, service.PUBLIC, code, now)
    plan = service.plan_of(ctx, service.PUBLIC, code)
    fc = service.forecast_for(ctx, service.PUBLIC, code, now, live=live)
    what_if = _what_if(add_terminals, add_staff, saturdays, evenings, temporary_days)
    changed: Forecast | None = None
    what_if_error = None
    if not what_if.empty:
        try:
            changed = service.forecast_for(ctx, service.PUBLIC, code, now, live=live, what_if=what_if)
        except InvalidInput as exc:
            what_if_error = str(exc)
    t = translator(language(request))
    charts = views.municipality_charts(live, fc, changed, plan, t)
    return render(request, "plans_municipality.html", muni=muni, live=live, plan=plan, fc=fc, changed=changed,
                  what_if=what_if, what_if_error=what_if_error, charts=charts,
                  history=service.plan_history(ctx, service.PUBLIC, code), format_target=format_target,
                  shift=views.shift(fc.median, changed.median) if changed else None,
                  can_edit=_can_edit(optional_principal(request), code), history_days=service.HISTORY_DAYS)


@router.get("/api/plans/{code}")
def municipality_json(code: MunicipalityPath, ctx: Context = Depends(context)) -> dict[str, Any]:
    """A municipality's published plan, revisions and live queue."""
    now = ctx.now()
    plan = service.plan_of(ctx, service.PUBLIC, code)
    live = service.live_status(ctx, service.PUBLIC, code, now)
    return {"municipality_code": code, "plan": views.plain(plan), "clearance": str(plan.clearance)
            if plan and plan.clearance else None,
            "revisions": views.plain(service.plan_history(ctx, service.PUBLIC, code)),
            "backlog": {str(m): n for m, n in sorted(live.backlog.items())}, "pipeline": live.pipeline}


@router.get("/api/plans/{code}/forecast")
def forecast_json(code: MunicipalityPath, add_terminals: int = Query(0, ge=0, le=100),
                  add_staff: int = Query(0, ge=0, le=500), saturdays: bool = False, evenings: bool = False,
                  temporary_days: int = Query(0, ge=0, le=730),
                  ctx: Context = Depends(context)) -> dict[str, Any]:
    """The clearance forecast with its 90% band; what-if parameters change the plan's means."""
    what_if = _what_if(add_terminals, add_staff, saturdays, evenings, temporary_days)
    fc = service.forecast_for(ctx, service.PUBLIC, code, ctx.now(), what_if=what_if)
    out: dict[str, Any] = views.plain(fc)
    out["path"] = out["path"][:120]
    return out


# --- changing a plan ----------------------------------------------------------------------------------------

_SITE_FIELDS = ("site", "kind", "terminals", "staff", "weekday_hours", "after_hours_days",
                "after_hours_until", "saturdays", "sundays", "opens_on", "closes_on",
                "terminal_minutes_per_card", "staff_minutes_per_card")


def _site_rows(means: Means | None) -> list[dict[str, str]]:
    rows = []
    if means is not None:
        for values in csvfiles.means_rows("", means):
            row = dict(zip(csvfiles.MEANS_HEADER, (str(v) for v in values), strict=True))
            rows.append({k: row.get(k, "") for k in _SITE_FIELDS})
    else:
        rows.append({"site": "本庁", "kind": "main", "terminals": "1", "staff": "2",
                     "weekday_hours": "08:30-17:15", "saturdays": "none", "sundays": "none",
                     "terminal_minutes_per_card": "15", "staff_minutes_per_card": "20"})
    rows.append({k: "" for k in _SITE_FIELDS})
    return rows


def _form_rows(form: Any) -> list[dict[str, str]]:
    """The site rows of the plan form (``site_0``, ``terminals_0``, …), as typed."""
    return [{k: str(form.get(f"{k}_{i}", "")).strip() for k in _SITE_FIELDS} for i in range(20)
            if f"site_{i}" in form]


def _means_from_rows(rows: list[dict[str, str]]) -> Means:
    sites: list[Site] = []
    problems = []
    for row in rows:
        if not row["site"]:
            continue
        try:
            site = csvfiles.site_from_fields(row)
        except (ValueError, KeyError) as exc:
            problems.append(f"{row['site']}: {exc}")
            continue
        problems.extend(site.problems())
        sites.append(site)
    if problems:
        raise InvalidInput("the means are not valid: " + "; ".join(problems), problems)
    return Means(tuple(sites)).check()


@router.get("/plans/m/{code}/edit", response_class=HTMLResponse, include_in_schema=False)
def edit_page(request: Request, code: MunicipalityPath, ctx: Context = Depends(context),
              who: Principal = Depends(principal)) -> HTMLResponse:
    if not _can_edit(who, code):
        raise Forbidden("only this municipality's supervisor or the national operator may change its plan")
    muni = registry.get_municipality(ctx, code)
    plan = service.plan_of(ctx, who, code)
    target = plan.clearance if plan and plan.clearance else Month.of(local_date(ctx.now())) + 2
    return render(request, "plans_edit.html", muni=muni, rows=_site_rows(plan.means if plan else None),
                  target=str(target), arrivals="", note="", figures=None, error=None, published=False)


@router.post("/plans/m/{code}/edit", response_class=HTMLResponse, include_in_schema=False)
async def edit_submit(request: Request, code: MunicipalityPath, ctx: Context = Depends(context),
                      who: Principal = Depends(principal)) -> HTMLResponse:
    if not _can_edit(who, code):
        raise Forbidden("only this municipality's supervisor or the national operator may change its plan")
    muni = registry.get_municipality(ctx, code)
    form = await request.form()
    target_text = str(form.get("target", ""))
    arrivals_text = str(form.get("arrivals", "")).strip()
    note = str(form.get("note", "")).strip() or None
    rows = [r for r in _form_rows(form) if any(r.values())]
    try:
        means = _means_from_rows(rows)
        target = _month_param(target_text, "target")
        if target is None:
            raise InvalidInput("the target month is required (YYYY-MM)")
        try:
            arrivals = float(arrivals_text) if arrivals_text else None
        except ValueError:
            raise InvalidInput("new cards a day must be a number") from None
        if form.get("action") == "publish":
            service.save_plan(ctx, who, code, target=target, means=means, now=ctx.now(),
                              arrivals_per_day=arrivals, note=note)
        _, figures = service.draft_plan(ctx, who, code, target=target, means=means, now=ctx.now(),
                                        arrivals_per_day=arrivals)
    except DomainError as exc:
        if isinstance(exc, Forbidden | NotFound):
            raise
        rows.append({k: "" for k in _SITE_FIELDS})
        return render(request, "plans_edit.html", status_code=422, muni=muni, rows=rows, target=target_text,
                      arrivals=arrivals_text, note=note or "", figures=None, error=exc, published=False)
    rows.append({k: "" for k in _SITE_FIELDS})
    return render(request, "plans_edit.html", muni=muni, rows=rows, target=target_text,
                  arrivals=arrivals_text, note=note or "", figures=figures, error=None,
                  published=form.get("action") == "publish", format_target=format_target)


class SettingsIn(BaseModel):
    cms_daily_capacity: int | None = Field(default=None, ge=1, le=100_000_000)
    support_after: MonthText | None = None


@router.put("/api/plans/settings")
def settings_api(body: SettingsIn, ctx: Context = Depends(context),
                 who: Principal = Depends(principal)) -> dict[str, Any]:
    return views.plain(service.set_settings(ctx, who, ctx.now(), cms_daily_capacity=body.cms_daily_capacity,
                                            support_after=_month_param(body.support_after, "support_after")))


_HOURS = r"^[0-9]{1,2}:[0-9]{2}-[0-9]{1,2}:[0-9]{2}$"
Hours = Annotated[str, Field(pattern=_HOURS, description="opening hours, HH:MM-HH:MM")]
Week = Annotated[int, Field(ge=1, le=5, description="a week of the month (1–5)")]
MinutesPerCard = Annotated[float, Field(ge=1, le=240, allow_inf_nan=False)]


class SiteIn(BaseModel):
    """One site of a plan's means (the domain checks the rest: hours in order, distinct names)."""

    name: str = Field(min_length=1, max_length=60)
    kind: SiteKind = SiteKind.MAIN
    terminals: int = Field(default=1, ge=0, le=500)
    staff: int = Field(default=2, ge=0, le=2000)
    weekday_hours: Hours = "08:30-17:15"
    after_hours_days: list[Literal[0, 1, 2, 3, 4]] = Field(default=[], max_length=5)
    """Weekdays with evening hours: 0 (Monday) … 4 (Friday)."""
    after_hours_until: str = Field(default="19:00", pattern=r"^[0-9]{2}:[0-9]{2}$")
    saturdays: list[Week] = Field(default=[], max_length=5)
    saturday_hours: Hours = "09:00-17:00"
    sundays: list[Week] = Field(default=[], max_length=5)
    sunday_hours: Hours = "09:00-17:00"
    opens_on: Day | None = None
    closes_on: Day | None = None
    terminal_minutes_per_card: MinutesPerCard = 15.0
    staff_minutes_per_card: MinutesPerCard = 20.0


class PlanIn(BaseModel):
    target_month: MonthText
    sites: list[SiteIn] = Field(min_length=1, max_length=50)
    arrivals_per_day: float | None = Field(default=None, ge=0, le=1_000_000, allow_inf_nan=False)
    note: LongText | None = None


def _means_in(sites: list[SiteIn]) -> Means:
    return Means.from_dict({"sites": [s.model_dump(mode="json") for s in sites]}).check()


@router.put("/api/plans/{code}")
def put_plan(code: MunicipalityPath, body: PlanIn, ctx: Context = Depends(context),
             who: Principal = Depends(principal)) -> dict[str, Any]:
    """Publish a municipality's plan from its live backlog (its supervisor or the national operator)."""
    target = _month_param(body.target_month, "target_month")
    assert target is not None
    plan = service.save_plan(ctx, who, code, target=target, means=_means_in(body.sites), now=ctx.now(),
                             arrivals_per_day=body.arrivals_per_day, note=body.note)
    return {"plan": views.plain(plan), "clearance": str(plan.clearance) if plan.clearance else None}


@router.post("/api/plans/{code}/draft")
def draft_json(code: MunicipalityPath, body: PlanIn, ctx: Context = Depends(context),
               who: Principal = Depends(principal)) -> dict[str, Any]:
    """Work a plan out without publishing it."""
    target = _month_param(body.target_month, "target_month")
    assert target is not None
    _, figures = service.draft_plan(ctx, who, code, target=target, means=_means_in(body.sites), now=ctx.now(),
                                    arrivals_per_day=body.arrivals_per_day)
    return {**views.plain(figures), "flagged": figures.flagged}


# --- the national operator ----------------------------------------------------------------------------------

@router.post("/api/plans/import")
async def import_api(files: Annotated[list[UploadFile], File(max_length=20)],
                     as_of: Annotated[str, Form(max_length=10)],
                     ctx: Context = Depends(context), who: Principal = Depends(principal)) -> dict[str, Any]:
    """Import plan CSV files: all rows, or none with every problem and its line number (422)."""
    day = _day_param(as_of, "as_of")
    assert day is not None
    payload = [(f.filename or "upload.csv", await f.read()) for f in files]
    return views.plain(service.import_plans(ctx, who, payload, as_of=day, now=ctx.now()))


@router.post("/api/plans/refresh")
def refresh_api(ctx: Context = Depends(context), who: Principal = Depends(principal)) -> dict[str, Any]:
    return views.plain(service.refresh_actuals(ctx, who, ctx.now()))


def _admin(request: Request, ctx: Context, who: Principal, **values: Any) -> HTMLResponse:
    who.require(Role.OPERATOR, Role.SYSTEM)
    return render(request, "plans_admin.html", settings=service.get_settings(ctx),
                  imports=service.recent_imports(ctx, who), today=local_date(ctx.now()),
                  **{"message": None, "error": None, **values})


@router.get("/plans/admin", response_class=HTMLResponse, include_in_schema=False)
def admin_page(request: Request, ctx: Context = Depends(context),
               who: Principal = Depends(principal)) -> HTMLResponse:
    return _admin(request, ctx, who)


@router.post("/plans/admin/import", response_class=HTMLResponse, include_in_schema=False)
async def admin_import(request: Request, files: Annotated[list[UploadFile], File(max_length=20)],
                       as_of: Annotated[str, Form(max_length=10)],
                       ctx: Context = Depends(context), who: Principal = Depends(principal)) -> HTMLResponse:
    who.require(Role.OPERATOR, Role.SYSTEM)
    t = translator(language(request))
    try:
        day = _day_param(as_of, "as_of")
        assert day is not None
        result = service.import_plans(ctx, who, [(f.filename or "upload.csv", await f.read()) for f in files],
                                      as_of=day, now=ctx.now())
    except InvalidInput as exc:
        return _admin(request, ctx, who, error=exc)
    message = (t("plans.admin.already") if result.already_imported
               else t("plans.admin.imported", rows=f"{result.rows:,}", n=f"{result.municipalities:,}"))
    return _admin(request, ctx, who, message=message)


@router.post("/plans/admin/settings", include_in_schema=False)
def admin_settings(request: Request, cms_daily_capacity: Annotated[str, Form(max_length=12)] = "",
                   support_after: Annotated[str, Form(max_length=7)] = "",
                   ctx: Context = Depends(context), who: Principal = Depends(principal)) -> Response:
    try:
        capacity = int(cms_daily_capacity) if cms_daily_capacity.strip() else None
    except ValueError:
        return _admin(request, ctx, who, error=InvalidInput("the capacity is a whole number of cards a day"))
    try:
        service.set_settings(ctx, who, ctx.now(), cms_daily_capacity=capacity,
                             support_after=_month_param(support_after.strip() or None, "support_after"))
    except InvalidInput as exc:
        return _admin(request, ctx, who, error=exc)
    return RedirectResponse("/plans/admin", status_code=303)


@router.post("/plans/admin/refresh", response_class=HTMLResponse, include_in_schema=False)
def admin_refresh(request: Request, ctx: Context = Depends(context),
                  who: Principal = Depends(principal)) -> HTMLResponse:
    result = service.refresh_actuals(ctx, who, ctx.now())
    return _admin(request, ctx, who, message=translator(language(request))("plans.admin.refreshed",
                                                                           rows=f"{result.rows:,}"))
