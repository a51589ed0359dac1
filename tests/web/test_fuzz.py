"""No input makes the server fail (issue 22): schemathesis fuzzes the app's whole OpenAPI document, in process,
as every role that has routes, on a seeded town so that the generated cases reach data that exists.

The check that matters is ``not_a_server_error``: no request, however malformed, answers 5xx; successful answers
also match their documented schema. Every operation gets a few schema-conforming and a few schema-violating
cases (``MYNACARD_FUZZ_EXAMPLES`` each), each sent as every caller. The seed is printed and fixed by default;
``MYNACARD_FUZZ_SEED=N`` replays a run and ``MYNACARD_FUZZ_SEED=random`` draws a fresh one.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from fastapi import FastAPI

from mynacard.accounts import service as accounts
from mynacard.bootstrap import build_context
from mynacard.context import Context
from mynacard.exchange import demo as exchange_demo
from mynacard.jpki import service as jpki
from mynacard.mykey import points, shelter
from mynacard.plans import service as plans
from mynacard.plans.model import Means, Month
from mynacard.principal import Role
from mynacard.web.app import create_app
from tests.conftest import NOW
from tests.exchange.conftest import numbers_of, register_people
from tests.helpers import CHIYODA, SAPPORO, SYSTEM, apply_all, make_residents, produce
from tests.office.support import EVENING, town_with_notices
from tests.portal.conftest import open_test_session
from tests.web.fuzzing import (
    Caller,
    Link,
    Report,
    add_links,
    fuzz,
    fuzz_examples,
    fuzz_seed,
    load_schema,
    pages_document,
    stateful,
)

pytestmark = pytest.mark.fuzz

OPENAPI = "/api/openapi.json"

# (account, role, municipality) of every caller with an API key; the resident has a Mynaportal session.
ACCOUNTS = [("fuzz-operator", Role.OPERATOR, None), (f"clerk-{CHIYODA}", Role.CLERK, CHIYODA),
            (f"supervisor-{CHIYODA}", Role.SUPERVISOR, CHIYODA), ("fuzz-verifier", Role.VERIFIER, None),
            ("kiosk-fuzz-0001", Role.KIOSK, None), ("131016-tax", Role.AGENCY, None),
            ("partner-fuzz", Role.AGENCY, None), ("shop-fuzz", Role.AGENCY, None),
            ("fuzz-manufacturer", Role.MANUFACTURER, None), ("fuzz-contractor", Role.CONTRACTOR, None)]


PROTECT = {"username": ([name for name, _, _ in ACCOUNTS], "fuzz-target")}
"""The callers' own accounts are never the subject of the accounts API's cases (``fuzz-target`` is instead)."""


@dataclass
class World:
    ctx: Context
    callers: list[Caller]
    seeds: dict[str, list[object]]


def _seed_world(ctx: Context) -> World:
    """A town with every kind of thing the API names: cards at each stage, an unreceived box, a site with
    slots and notices, the information network's agencies with enrolled residents, a published plan, the point
    programme's partner and shop, a shelter; and one account per role."""
    town = town_with_notices(ctx, 4)
    waiting = make_residents(ctx, 2, NOW - timedelta(days=10), CHIYODA, seed=7)
    apply_all(ctx, waiting, NOW - timedelta(days=9))
    boxes = produce(ctx, NOW - timedelta(days=8))
    people = register_people(ctx, CHIYODA, 6, seed=5)
    world = exchange_demo.build_world(ctx, [CHIYODA], people, NOW, national_share=1.0, record_share=1.0,
                                      numbers=numbers_of(ctx, people))
    means = Means.from_dict({"sites": [{"name": "本庁", "terminals": 2, "staff": 3}]})
    plans.save_plan(ctx, SYSTEM, CHIYODA, target=Month.of(NOW.date()) + 3, means=means, now=NOW)
    points.register_partner(ctx, SYSTEM, "fuzz", "Fuzz Airlines")
    points.register_shop(ctx, SYSTEM, "fuzz", "Fuzz Bakery", CHIYODA)
    shelter.register_shelter(ctx, SYSTEM, "chiyoda-01", "千代田小学校", CHIYODA, 300)
    jpki.ensure_authorities(ctx, SYSTEM, NOW)  # the operator's `mynacard jpki init`
    now = datetime.now(UTC)
    callers = [Caller("anonymous")]
    for username, role, code in ACCOUNTS:
        accounts.create_account(ctx, username, role, None, now, code)
        callers.append(Caller(role.value if not username.startswith(("partner", "shop")) else username.split("-")[0],
                              headers={"Authorization": f"Bearer {accounts.issue_api_key(ctx, username)}"}))
    # the account the accounts API may disable, re-role or re-key: never one the callers use
    accounts.create_account(ctx, "fuzz-target", Role.CLERK, None, now, CHIYODA)
    token = open_test_session(ctx, people[0].id, now)
    callers.append(Caller("resident", cookies={"mynaportal_session": token}))
    card_ids = list(town.card_ids)
    refs = sorted(world.refs.get("131016-tax", {}).values())
    seeds: dict[str, list[object]] = {
        "code": [CHIYODA, SAPPORO], "municipality_code": [CHIYODA], "card_id": card_ids, "box_id": boxes,
        "site_id": [town.site_id], "number": town.notices[:2], "agency_id": ["131016-tax", "131016-child", "nenkin"],
        "local_ref": refs[:2], "username": ["fuzz-target"], "prefecture_code": ["13"],
        "kind": ["targets", "shop", "partner"], "owner": ["fuzz"], "agency": ["131016-tax"],
    }
    return World(ctx, callers, seeds)


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory, sqlite_template: Path) -> Iterator[World]:
    import shutil

    from mynacard.jpki import keys
    from tests.jpki.support import CA_KEYS

    home = tmp_path_factory.mktemp("fuzz")
    shutil.copy(sqlite_template, home / "fuzz.db")
    with pytest.MonkeyPatch.context() as mp:
        for name in ("MYNACARD_JPKI_PKCS11_MODULE", "MYNACARD_JPKI_PKCS11_TOKEN", "MYNACARD_JPKI_PKCS11_PIN",
                     "MYNACARD_JPKI_PKCS11_PIN_FILE", "MYNACARD_JPKI_BASE_URL", "MYNACARD_JPKI_MTLS_HEADER"):
            mp.delenv(name, raising=False)
        mp.setenv("MYNACARD_JPKI_SCHEDULER", "0")
        mp.setattr(keys, "generate_software_key", lambda: keys.SoftwareSigner(CA_KEYS.take()))
        ctx = build_context(home=home, database_url=f"sqlite:///{home / 'fuzz.db'}")
        yield _seed_world(ctx)
        ctx.db.dispose()


@pytest.fixture(scope="module")
def app(world: World) -> FastAPI:
    app = create_app(world.ctx)
    app.state.ctx.clock = lambda: EVENING  # the seeded slots are the next morning's
    return app


def _check(report: Report, capsys: pytest.CaptureFixture[str]) -> None:
    found = report.distinct()
    with capsys.disabled():
        print("\n" + report.summary())
    assert not found, f"{len(found)} failures ({report.summary()}):\n" + "\n".join(map(str, found))


def test_no_input_to_the_api_answers_a_server_error(world: World, app: FastAPI,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    """The whole OpenAPI document, as every role."""
    schema = load_schema(app, OPENAPI, seeds=world.seeds, protect=PROTECT)
    _check(fuzz(schema, world.callers, seed=fuzz_seed(), examples=fuzz_examples()), capsys)


PAGE_CALLERS = ("anonymous", "clerk", "supervisor", "operator", "resident")


def test_no_input_to_a_page_answers_a_server_error(world: World, app: FastAPI,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    """The pages and their forms (left out of the OpenAPI document), as the roles that use pages."""
    schema = load_schema(app, "/pages.json", seeds=world.seeds, document=pages_document(app), protect=PROTECT)
    callers = [c for c in world.callers if c.name in PAGE_CALLERS]
    _check(fuzz(schema, callers, seed=fuzz_seed(), examples=fuzz_examples(), conformance=False),
           capsys)


LINKS: list[Link] = [
    (("POST", "/api/office/{code}/sites", "201"), ("POST", "/api/office/sites/{site_id}/shifts"),
     {"path.site_id": "$response.body#/site_id"}),
    (("POST", "/api/office/{code}/sites", "201"), ("POST", "/api/office/sites/{site_id}/slots"),
     {"path.site_id": "$response.body#/site_id"}),
    (("POST", "/api/office/{code}/sites", "201"), ("GET", "/api/office/{code}/sites"),
     {"path.code": "$request.path.code"}),
    (("POST", "/api/office/sites/{site_id}/slots", "200"), ("GET", "/api/office/{code}/slots"),
     {"path.code": CHIYODA}),
    (("PUT", "/api/plans/{code}", "200"), ("GET", "/api/plans/{code}/forecast"), {"path.code": "$request.path.code"}),
    (("PUT", "/api/plans/{code}", "200"), ("GET", "/api/plans/{code}"), {"path.code": "$request.path.code"}),
    (("POST", "/api/exchange/agencies", "201"), ("POST", "/api/exchange/agencies/{agency_id}/status"),
     {"path.agency_id": "$response.body#/id"}),
    (("POST", "/api/exchange/agencies", "201"), ("GET", "/api/exchange/agencies/{agency_id}/inbox"),
     {"path.agency_id": "$response.body#/id"}),
    (("POST", "/api/admin/accounts", "201"), ("GET", "/api/admin/accounts/{username}"),
     {"path.username": "$response.body#/account/username"}),
    (("POST", "/api/admin/accounts", "201"), ("POST", "/api/admin/accounts/{username}/keys"),
     {"path.username": "$response.body#/account/username"}),
    (("POST", "/api/admin/accounts", "201"), ("POST", "/api/admin/accounts/{username}/disable"),
     {"path.username": "$response.body#/account/username"}),
]
"""Create, then use what was created: the links the state machine follows (FastAPI writes none)."""
STATEFUL_CALLERS = ("supervisor", "operator")


def test_what_is_created_can_be_used_without_a_server_error(world: World, app: FastAPI,
                                                            capsys: pytest.CaptureFixture[str]) -> None:
    """Stateful: schemathesis' state machine creates sites, plans, agencies and accounts and follows the links
    to what it created (past the 404s a random id meets), as the supervisor and the operator."""
    document = add_links(copy.deepcopy(app.openapi()), LINKS)
    linked = {p for (_, source, _), (_, target), _ in LINKS for p in (source, target)}
    schema = load_schema(app, OPENAPI, seeds=world.seeds, document=document, protect=PROTECT).include(
        func=lambda ctx: ctx.operation.path in linked)
    callers = [c for c in world.callers if c.name in STATEFUL_CALLERS]
    report = stateful(schema, callers, scenarios=25, steps=10)
    _check(report, capsys)
    assert report.calls >= 25 * len(callers), report.summary()  # the machine did explore


def test_the_fuzzing_catches_a_broken_route(world: World) -> None:
    """The check would fail on any 500: a test-only route that fails like a bug is reported, with its status,
    caller and a curl line; the safety net's 500 is what the fuzzing sees."""
    from tests.web.test_errors import broken_app

    app = broken_app(world.ctx)
    schema = load_schema(app, OPENAPI)
    report = fuzz(schema, [Caller("anonymous")], seed=fuzz_seed(), examples=3,
                  include=lambda label: label.startswith("GET /api/test/"))
    found = {(f.operation, f.status) for f in report.distinct()}
    assert found == {("GET /api/test/broken/{card_id}", 500)}, report.findings
    finding = next(f for f in report.findings if f.status == 500)
    assert "Server error" in finding.message and "curl" in finding.curl and "/api/test/broken/" in finding.curl
