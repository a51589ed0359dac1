"""The operator's view of the job runner: ``/admin/jobs`` (Japanese first) with "run now", and its JSON."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from mynacard.clock import JST
from mynacard.context import Context
from mynacard.errors import NotFound
from mynacard.jobs import service
from mynacard.jobs.catalogue import JOBS, job
from mynacard.jobs.model import JobSpec
from mynacard.principal import Principal, Role
from mynacard.webkit.deps import context, principal, render
from mynacard.webkit.i18n import register
from mynacard.webkit.params import TextPath

__all__ = ["router"]

router = APIRouter()

register({
    "jobs.title": ("定期処理", "Scheduled jobs"),
    "jobs.name": ("処理", "Job"),
    "jobs.every": ("間隔", "Every"),
    "jobs.next": ("次回 (日本時間)", "Next (JST)"),
    "jobs.running": ("実行中のプロセス", "Running on"),
    "jobs.last": ("前回の結果", "Last outcome"),
    "jobs.failures": ("連続失敗", "Failures in a row"),
    "jobs.detail": ("内容", "Detail"),
    "jobs.never": ("未実行", "never run"),
    "jobs.run": ("今すぐ実行", "Run now"),
    "jobs.requested": ("実行を依頼しました。次の巡回で実行されます。",
                       "Requested: the next pass of a runner takes it."),
    "jobs.minutes": ("{n} 分", "{n} min"),
    "jobs.worker": ("処理は `mynacard worker` が実行します (複数起動しても、同じ処理は同時に一つしか動きません)。",
                    "`mynacard worker` runs them (start several: one job never runs twice at once)."),
})


def _operator(request: Request) -> Principal:
    who = principal(request)
    who.require(Role.OPERATOR)
    return who


def _spec(name: str) -> JobSpec:
    try:
        return job(name)
    except KeyError:
        raise NotFound("no such job") from None


def _json(s: service.JobStatus) -> dict[str, Any]:
    return {**s.__dict__, "next_due_at": s.next_due_at.isoformat(),
            "last_started_at": s.last_started_at.isoformat() if s.last_started_at else None,
            "run_requested_at": s.run_requested_at.isoformat() if s.run_requested_at else None}


@router.get("/admin/jobs", response_class=HTMLResponse, include_in_schema=False)
def jobs_page(request: Request, requested: str = Query("", max_length=64)) -> Response:
    who = _operator(request)
    rows = service.status(context(request), who, JOBS)
    return render(request, "admin_jobs.html", rows=rows, jst=JST,
                  requested=requested if any(r.name == requested for r in rows) else "")


@router.post("/admin/jobs/{name}/run", include_in_schema=False)
def run_page(request: Request, name: TextPath) -> Response:
    who = _operator(request)
    ctx = context(request)
    service.request_run(ctx, who, _spec(name), ctx.now())
    return RedirectResponse(f"/admin/jobs?requested={name}", status_code=303)


@router.get("/api/admin/jobs", tags=["jobs"])
def jobs_json(ctx: Context = Depends(context), who: Principal = Depends(principal)) -> list[dict[str, Any]]:
    """Every scheduled job: its schedule, lease, last outcome and failures in a row (the operator)."""
    who.require(Role.OPERATOR)
    return [_json(s) for s in service.status(ctx, who, JOBS)]


@router.post("/api/admin/jobs/{name}/run", tags=["jobs"], status_code=202)
def run_json(name: TextPath, ctx: Context = Depends(context), who: Principal = Depends(principal)) -> dict[str, str]:
    """Ask for a run now: the next pass of a runner takes the job whatever its schedule."""
    who.require(Role.OPERATOR)
    service.request_run(ctx, who, _spec(name), ctx.now())
    return {"requested": name}
