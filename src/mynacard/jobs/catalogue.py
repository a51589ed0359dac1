"""The scheduled stages of the programme that the job runner runs, each through its part's own use case.

The runner knows nothing of the parts; this list is where they meet (a composition room, like ``bootstrap``).
What is not here yet and still runs elsewhere is said in docs/ARCHITECTURE.md (the web server's own CRL thread,
the simulation's pipeline stages).
"""

from __future__ import annotations

from datetime import datetime, timedelta

from mynacard.context import Context
from mynacard.jobs.model import JobSpec
from mynacard.principal import Principal

__all__ = ["JOBS", "job"]

SYSTEM = Principal.system("jobs")


def _crls(ctx: Context, now: datetime) -> str:
    from mynacard.jpki import service as jpki

    published = jpki.publish_crls(ctx, SYSTEM, now)
    return f"{len(published)} CRL(s) published" if published else "no CRL was due"


def _ocsp(ctx: Context, now: datetime) -> str:
    from mynacard.jpki import service as jpki

    return f"{jpki.refresh_ocsp_responses(ctx, SYSTEM, now):,} OCSP responses signed"


def _staff_sessions(ctx: Context, now: datetime) -> str:
    from mynacard.accounts.sessions import sweep_sessions

    return f"{sweep_sessions(ctx, now):,} ended staff sessions removed"


def _portal_sessions(ctx: Context, now: datetime) -> str:
    from mynacard.portal import service as portal

    counts = portal.sweep_sessions(ctx, SYSTEM, now)
    return (f"{counts.closed_now:,} Mynaportal sessions closed, {counts.active:,} active, "
            f"{counts.challenges_purged:,} expired login challenges deleted")


def _ledger(ctx: Context, now: datetime) -> str:
    from mynacard.cards import service as cards

    report, _check = cards.check_ledger(ctx, SYSTEM, now)
    if not report.ok:
        raise RuntimeError("the card ledger disagrees with the card states: see `mynacard status`")
    return f"ledger whole: {report.cards:,} cards, {report.events:,} events"


def _plans(ctx: Context, now: datetime) -> str:
    from mynacard.plans import service as plans

    result = plans.refresh_actuals(ctx, SYSTEM, now)
    return f"plan figures refreshed: {result.municipalities:,} municipalities, {result.forecasts:,} forecasts"


JOBS: tuple[JobSpec, ...] = (
    JobSpec("jpki.crl", timedelta(minutes=15), "失効リストの発行 (full and delta CRLs when due)", _crls),
    JobSpec("jpki.ocsp", timedelta(hours=1), "OCSP 応答の事前署名 (pre-signed answers kept warm)", _ocsp),
    JobSpec("accounts.sessions", timedelta(hours=1), "職員セッションの整理 (ended staff sessions)",
            _staff_sessions),
    JobSpec("portal.sessions", timedelta(minutes=10),
            "マイナポータルのセッションとログイン用チャレンジの整理 (idle sessions, expired challenges)",
            _portal_sessions),
    JobSpec("cards.ledger", timedelta(hours=6), "カード台帳の照合 (the ledger check the first page shows)",
            _ledger, lease=timedelta(hours=1)),
    JobSpec("plans.refresh", timedelta(days=1), "交付計画の実績と予測の更新 (the national snapshot, at night)",
            _plans, lease=timedelta(hours=2)),
)
"""Every scheduled job, in the order a runner looks at them."""


def job(name: str) -> JobSpec:
    """The job of that name (:class:`KeyError` names the known ones)."""
    for spec in JOBS:
        if spec.name == name:
            return spec
    raise KeyError(f"no job {name!r}; the jobs are: {', '.join(s.name for s in JOBS)}")
