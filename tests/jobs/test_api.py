"""/admin/jobs and its JSON: the operator's, with "run now" taken by the next runner pass."""

from __future__ import annotations

from fastapi.testclient import TestClient

from mynacard.accounts import service as accounts
from mynacard.context import Context
from mynacard.jobs import service
from mynacard.jobs.catalogue import JOBS
from mynacard.principal import Role
from mynacard.web.app import create_app
from tests.helpers import csrf


def _key(ctx: Context, username: str, role: Role, code: str | None = None) -> dict[str, str]:
    accounts.create_account(ctx, username, role, None, ctx.now(), code)
    return {"authorization": f"Bearer {accounts.issue_api_key(ctx, username)}"}


def test_the_operator_sees_every_job_and_asks_for_a_run(ctx: Context) -> None:
    operator = _key(ctx, "ops-1", Role.OPERATOR)
    client = TestClient(create_app(ctx))
    listed = client.get("/api/admin/jobs", headers=operator)
    assert listed.status_code == 200 and [j["name"] for j in listed.json()] == [s.name for s in JOBS]
    page = client.get("/admin/jobs", headers=operator)
    assert page.status_code == 200 and "定期処理" in page.text and 'id="job-jpki.crl"' in page.text
    assert client.post("/api/admin/jobs/cards.ledger/run", headers=operator).status_code == 202
    asked = {j["name"]: j for j in client.get("/api/admin/jobs", headers=operator).json()}["cards.ledger"]
    assert asked["run_requested_at"] is not None
    ran = {r.name for r in service.run_due(ctx, JOBS, "runner-1")}
    assert "cards.ledger" in ran
    form = client.post("/admin/jobs/plans.refresh/run", headers=operator, data={"csrf": csrf(client)},
                       follow_redirects=False)
    assert form.status_code == 303 and form.headers["location"] == "/admin/jobs?requested=plans.refresh"
    assert client.post("/api/admin/jobs/no.such.job/run", headers=operator).status_code == 404


def test_nobody_else_sees_or_runs_the_jobs(ctx: Context) -> None:
    clerk = _key(ctx, "clerk-1", Role.CLERK, "131016")
    client = TestClient(create_app(ctx))
    assert client.get("/api/admin/jobs").status_code == 401
    assert client.get("/api/admin/jobs", headers=clerk).status_code == 403
    assert client.post("/api/admin/jobs/jpki.crl/run", headers=clerk).status_code == 403
