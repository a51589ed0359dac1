"""The plan routes over HTTP: every route with every role, imports and plan changes through the API and the
pages, JSON and CSV. Both databases."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, date, datetime

import pytest
from fastapi.testclient import TestClient

from mynacard.accounts.service import create_account, issue_api_key
from mynacard.context import Context
from mynacard.plans import service
from mynacard.plans.model import Month
from mynacard.principal import Role
from mynacard.web.app import create_app
from tests.helpers import csrf

NOW = datetime(2026, 4, 6, 0, 30, tzinfo=UTC)
TARGETS = b"municipality_code,application_month,target_month\n131016,2026-03,2026-06\n011002,2026-03,done\n"
# The API works out plans on the real clock: the target is three months from now.
PLAN = {"target_month": str(Month.of(date.today()) + 3),
        "sites": [{"name": "本庁", "terminals": 2, "staff": 3}]}
ROLES = ("anonymous", "clerk", "supervisor", "other_supervisor", "operator")


@pytest.fixture
def client(ctx: Context) -> Iterator[tuple[TestClient, dict[str, str]]]:
    keys = {}
    accounts = (("clerk", Role.CLERK, "131016"), ("supervisor", Role.SUPERVISOR, "131016"),
                ("other_supervisor", Role.SUPERVISOR, "011002"), ("operator", Role.OPERATOR, None))
    for name, role, code in accounts:
        create_account(ctx, name, role, "correct horse battery", NOW, municipality_code=code)
        keys[name] = issue_api_key(ctx, name)
    with TestClient(create_app(ctx)) as c:
        yield c, keys


def _headers(keys: dict[str, str], who: str) -> dict[str, str]:
    return {} if who == "anonymous" else {"Authorization": f"Bearer {keys[who]}"}


def _import(c: TestClient, keys: dict[str, str], who: str, data: bytes = TARGETS) -> object:
    return c.post("/api/plans/import", headers=_headers(keys, who), data={"as_of": "2026-04-06"},
                  files=[("files", ("targets.csv", data, "text/csv"))])


WALK = [
    # method, path, body, expected status per role (anonymous, clerk, supervisor, other_supervisor, operator)
    ("GET", "/plans", None, (200, 200, 200, 200, 200)),
    ("GET", "/plans?lang=en", None, (200, 200, 200, 200, 200)),
    ("GET", "/plans/pref/13", None, (200, 200, 200, 200, 200)),
    ("GET", "/plans/pref/99", None, (404, 404, 404, 404, 404)),
    ("GET", "/plans/m/131016", None, (200, 200, 200, 200, 200)),
    ("GET", "/plans/m/131016?add_terminals=1&saturdays=true", None, (200, 200, 200, 200, 200)),
    ("GET", "/plans/m/999999", None, (404, 404, 404, 404, 404)),
    ("GET", "/plans/find?q=千代田区", None, (303, 303, 303, 303, 303)),
    ("GET", "/plans/find?q=千代田", None, (200, 200, 200, 200, 200)),  # 千代田区 and 群馬県千代田町
    ("GET", "/plans/national.csv", None, (200, 200, 200, 200, 200)),
    ("GET", "/plans/support.csv", None, (200, 200, 200, 200, 200)),
    ("GET", "/plans/export/targets.csv", None, (200, 200, 200, 200, 200)),
    ("GET", "/plans/export/nothing.csv", None, (422, 422, 422, 422, 422)),
    ("GET", "/api/plans/national", None, (200, 200, 200, 200, 200)),
    ("GET", "/api/plans/131016", None, (200, 200, 200, 200, 200)),
    ("GET", "/api/plans/131016/forecast", None, (200, 200, 200, 200, 200)),
    ("GET", "/api/plans/131016/forecast?add_terminals=1", None, (422, 422, 422, 422, 422)),  # no means yet
    ("GET", "/plans/m/131016/edit", None, (401, 403, 200, 403, 200)),
    ("GET", "/plans/admin", None, (401, 403, 403, 403, 200)),
    ("POST", "/api/plans/131016/draft", PLAN, (401, 200, 200, 200, 200)),
    ("PUT", "/api/plans/131016", PLAN, (401, 403, 200, 403, 200)),
    ("PUT", "/api/plans/131016", {**PLAN, "target_month": "2020-01"}, (401, 403, 422, 403, 422)),
    ("POST", "/api/plans/refresh", None, (401, 403, 403, 403, 200)),
    ("PUT", "/api/plans/settings", {"cms_daily_capacity": 50000}, (401, 403, 403, 403, 200)),
]


@pytest.mark.parametrize("who", ROLES)
def test_every_route_with_every_role(client: tuple[TestClient, dict[str, str]], who: str) -> None:
    c, keys = client
    assert _import(c, keys, "operator").status_code == 200  # type: ignore[attr-defined]
    index = ROLES.index(who)
    for method, path, body, expected in WALK:
        response = c.request(method, path, headers={**_headers(keys, who), "Accept": "application/json"}
                             if path.startswith("/api/") else _headers(keys, who),
                             json=body, follow_redirects=False)
        want = expected[index]
        if want == 401 and not path.startswith("/api/"):
            want = 303  # a browser is sent to the login page
        assert response.status_code == want, (method, path, who, response.text[:300])
    expected_import = {"anonymous": 401, "clerk": 403, "supervisor": 403, "other_supervisor": 403,
                       "operator": 200}[who]  # the file holds rows of two municipalities
    assert _import(c, keys, who).status_code == expected_import  # type: ignore[attr-defined]


def test_imports_through_the_api(client: tuple[TestClient, dict[str, str]]) -> None:
    c, keys = client
    bad = TARGETS + b"131016,2026-13,2026-07\n999999,2026-03,done\n"
    response = _import(c, keys, "operator", bad)
    assert response.status_code == 422  # type: ignore[attr-defined]
    body = response.json()  # type: ignore[attr-defined]
    assert [p.split(": ")[0] for p in body["problems"]] == ["targets.csv:4", "targets.csv:5"]
    assert c.get("/api/plans/national").json()["with_plan"] == 0
    own = b"municipality_code,application_month,target_month\n131016,2026-03,2026-05\n"
    assert _import(c, keys, "supervisor", own).status_code == 200  # type: ignore[attr-defined]
    first = _import(c, keys, "operator").json()  # type: ignore[attr-defined]
    assert _import(c, keys, "operator").json() == {**first, "already_imported": True}  # type: ignore[attr-defined]
    national = c.get("/api/plans/national?as_of=2026-04-06").json()
    assert national["with_plan"] == 2 and national["municipalities"] == 1741
    # The table counts municipalities with a plan; the other 1,739 are reported as without one.
    assert national["counts"]["2026-06"] == [1] and national["counts"]["done"] == [1]
    csv_text = c.get("/plans/national.csv?as_of=2026-04-06").content.decode("utf-8-sig")
    assert csv_text.splitlines()[0].startswith("target\\applied,2026-03 and later,month")
    assert csv_text.splitlines()[1].startswith("done,1,2026-03,1,0.1%,")


def test_a_supervisor_publishes_a_plan_with_the_form(client: tuple[TestClient, dict[str, str]],
                                                     ctx: Context) -> None:
    c, _ = client
    assert c.post("/login", data={"csrf": csrf(c), "username": "supervisor", "password": "correct horse battery"},
                  follow_redirects=False).status_code == 303
    page = c.get("/plans/m/131016/edit")
    assert page.status_code == 200 and 'name="site_0" value="本庁"' in page.text
    form = {"target": PLAN["target_month"], "arrivals": "0", "note": "", "action": "preview",
            "site_0": "本庁", "kind_0": "main", "terminals_0": "1", "staff_0": "2",
            "weekday_hours_0": "08:30-17:15",
            "saturdays_0": "none", "sundays_0": "none", "site_1": "", "kind_1": "main"}
    form["csrf"] = csrf(c)
    preview = c.post("/plans/m/131016/edit", data=form)
    assert preview.status_code == 200 and 'id="figures"' in preview.text
    assert service.plan_of(ctx, service.PUBLIC, "131016") is None  # a preview publishes nothing
    bad = c.post("/plans/m/131016/edit", data={**form, "weekday_hours_0": "17:00-08:00", "action": "publish"})
    assert bad.status_code == 422 and "closing time" in bad.text
    assert service.plan_of(ctx, service.PUBLIC, "131016") is None
    published = c.post("/plans/m/131016/edit", data={**form, "action": "publish"})
    assert published.status_code == 200 and 'id="published"' in published.text
    plan = service.plan_of(ctx, service.PUBLIC, "131016")
    assert plan is not None and plan.means is not None and plan.means.sites[0].terminals == 1
    page = c.get("/plans/m/131016?add_terminals=1")
    assert page.status_code == 200 and 'id="what-if"' in page.text
    assert c.get("/plans/m/011002/edit").status_code == 403
    data = json.loads(c.get("/api/plans/131016").text)
    assert data["plan"]["revision"] == 1 and data["revisions"][0]["created_by"] == "supervisor"
