"""Mynaportal's use cases on both databases: sessions, records, own information and its exports, notices,
and the one-stop child-rearing application."""

from __future__ import annotations

import csv
import io
import json
from datetime import timedelta

import pytest
from sqlalchemy import func, select, text

from mynacard.context import Context
from mynacard.errors import Conflict, Forbidden, InvalidInput
from mynacard.exchange import demo
from mynacard.exchange import service as ex
from mynacard.exchange.store import store_for
from mynacard.exchange.tables import exchange_log
from mynacard.portal import service as portal
from mynacard.portal.model import CardLogin
from mynacard.portal.tables import portal_applications, portal_sessions
from mynacard.principal import Principal, Role
from mynacard.registry import service as registry
from mynacard.registry.model import Resident
from tests.conftest import NOW
from tests.exchange.conftest import register_people
from tests.helpers import SYSTEM
from tests.portal.conftest import open_test_session, resident

Town = tuple[demo.World, list[Resident]]


def test_a_session_lives_while_used_and_dies_idle_old_or_logged_out(ctx: Context, town: Town) -> None:
    _, people = town
    rid = people[0].id
    token = open_test_session(ctx, rid)
    assert portal.resume_session(ctx, token, NOW + timedelta(minutes=5)) == resident(rid)
    assert portal.resume_session(ctx, token, NOW + timedelta(minutes=19)) == resident(rid)  # used at 5: alive
    assert portal.resume_session(ctx, token, NOW + timedelta(minutes=35)) is None  # 16 minutes idle
    assert portal.resume_session(ctx, token, NOW + timedelta(minutes=36)) is None  # and stays closed
    busy = open_test_session(ctx, rid)
    for minute in range(10, 60, 10):
        assert portal.resume_session(ctx, busy, NOW + timedelta(minutes=minute)) is not None
    assert portal.resume_session(ctx, busy, NOW + timedelta(minutes=60)) is None  # an hour at most
    short = open_test_session(ctx, rid)
    portal.close_session(ctx, short, NOW)
    assert portal.resume_session(ctx, short, NOW) is None
    assert portal.resume_session(ctx, "not-a-token", NOW) is None
    with ctx.db.connect() as conn:
        reasons = [r.close_reason for r in conn.execute(select(portal_sessions).order_by(portal_sessions.c.created_at))]
        dump = str(conn.execute(select(portal_sessions)).all())
    assert sorted(r or "" for r in reasons) == ["expired", "idle", "logout"]
    assert token not in dump and busy not in dump  # only keyed hashes of tokens are stored


def test_a_card_login_must_be_fresh_and_name_a_living_resident(ctx: Context, town: Town) -> None:
    _, people = town
    with pytest.raises(Forbidden, match="stale"):
        portal.open_session(ctx, CardLogin("AB12", people[0].id, NOW - timedelta(minutes=10)), NOW)
    registry.record_death(ctx, SYSTEM, people[1].id, NOW)
    with pytest.raises(Forbidden):
        portal.open_session(ctx, CardLogin("AB13", people[1].id, NOW), NOW)
    with pytest.raises(Forbidden):
        portal.open_session(ctx, CardLogin("AB14", 999_999, NOW), NOW)
    ticket = portal.open_session(ctx, CardLogin("AB15", people[2].id, NOW), NOW)
    assert ticket.name == people[2].facts.name and len(ticket.token) >= 40


def test_each_person_reads_their_own_records_and_information(ctx: Context, town: Town) -> None:
    world, people = town
    demo.run_exchanges(ctx, world, 30, NOW)
    me, other = resident(people[0].id), resident(people[1].id)
    mine, total = portal.my_records(ctx, me, NOW)
    theirs, _ = portal.my_records(ctx, other, NOW)
    assert not {r.seq for r in mine} & {r.seq for r in theirs}
    assert portal.own_information(ctx, me) == []
    fetched = portal.refresh_own_information(ctx, me, NOW)
    items = portal.own_information(ctx, me)
    assert fetched == len(items) > 0 and portal.own_information(ctx, other) == []
    # What the folder says is what each agency holds, item by item.
    with ctx.db.connect() as conn:
        for i in items:
            records = store_for(i.agency_id, conn.dialect.name).records
            stored = conn.execute(select(records.c.data).where(
                records.c.local_ref == world.refs[i.agency_id][people[0].id], records.c.item == i.item)).scalar_one()
            assert json.loads(stored) == i.data
    # Asking was itself an exchange per agency, in the person's records.
    after, total_after = portal.my_records(ctx, me, NOW)
    holders = [a for a in world.refs if people[0].id in world.refs[a]]
    assert total_after == total + len(holders)
    assert {r.kind.value for r in after} >= {"self_information"}
    # A second fetch replaces the folder.
    assert portal.refresh_own_information(ctx, me, NOW + timedelta(days=1)) == fetched
    assert {i.fetched_at for i in portal.own_information(ctx, me)} == {NOW + timedelta(days=1)}


def test_own_information_downloads_as_json_and_csv(ctx: Context, town: Town) -> None:
    _, people = town
    me = resident(people[0].id)
    portal.refresh_own_information(ctx, me, NOW)
    items = portal.own_information(ctx, me)
    raw, media = portal.export_own_information(ctx, me, "json", NOW)
    doc = json.loads(raw)
    assert media == "application/json" and doc["name"] == people[0].facts.name
    assert [(r["agency_id"], r["item"], r["data"]) for r in doc["records"]] == [
        (i.agency_id, i.item, i.data) for i in items]
    raw, media = portal.export_own_information(ctx, me, "csv", NOW)
    assert media.startswith("text/csv") and raw.startswith("\ufeff".encode())
    rows = list(csv.DictReader(io.StringIO(raw.decode("utf-8-sig"))))
    assert len(rows) == sum(len(i.data) for i in items)
    assert {(r["agency_id"], r["item"], r["field"]) for r in rows} == {
        (i.agency_id, i.item, f) for i in items for f in i.data}
    with pytest.raises(InvalidInput):
        portal.export_own_information(ctx, me, "xml", NOW)
    number = registry.individual_number_of(ctx, SYSTEM, people[0].id, "test", NOW)
    assert number not in raw.decode("utf-8-sig") and number not in json.dumps(doc)


def test_notices_arrive_and_are_read(ctx: Context, town: Town) -> None:
    world, people = town
    me = resident(people[0].id)
    ex.send_notice(ctx, Principal(Role.AGENCY, "nenkin"), "nenkin", ex.NoticeInput(
        "年金額改定のお知らせ", "令和8年4月分から年金額が改定されます。",
        local_ref=world.refs["nenkin"][people[0].id]), NOW)
    (notice,) = portal.my_notices(ctx, me, NOW)
    assert notice.read_at is None and notice.sender_name == "日本年金機構"
    assert portal.read_notice(ctx, me, notice.id, NOW).read_at == NOW
    assert portal.my_notices(ctx, resident(people[1].id), NOW) == []


FORMS = {
    "child_allowance": {"child_name": "山田 一郎", "child_kana": "ヤマダ イチロウ", "child_birth_date": "2025-06-01",
                        "relationship": "子", "payee_account": "公金受取口座を利用する"},
    "childcare_admission": {"child_name": "山田 一郎", "child_kana": "ヤマダ イチロウ",
                            "child_birth_date": "2025-06-01", "start_month": "2026-10", "reason": "就労"},
    "single_parent_allowance": {"child_name": "山田 一郎", "child_birth_date": "2025-06-01", "reason": "未婚",
                                "children": "1"},
    "maternal_child_health": {"due_date": "2026-09-30", "pregnancies": "2"},
}


def test_one_application_reaches_the_right_agencies_once(ctx: Context, town: Town) -> None:
    _, people = town
    me = resident(people[0].id)
    assert all(a is not None for a in portal.available_procedures(ctx, me).values())
    view = portal.submit_child_rearing(ctx, me, FORMS, "key-1", NOW)
    assert {(d["procedure"], d["agency_id"]) for d in view.deliveries} == {
        ("child_allowance", "131016-child"), ("childcare_admission", "131016-child"),
        ("single_parent_allowance", "131016-child"), ("maternal_child_health", "131016-health")}
    # The same form sent again is the same application: nothing is delivered twice.
    assert portal.submit_child_rearing(ctx, me, FORMS, "key-1", NOW).id == view.id
    child = ex.inbox(ctx, Principal(Role.AGENCY, "131016-child"), "131016-child")
    health = ex.inbox(ctx, Principal(Role.AGENCY, "131016-health"), "131016-health")
    assert len(child) == 3 and len(health) == 1
    received = {i.payload["procedure"]: i for i in child + health}
    assert received["childcare_admission"].payload["form"]["start_month"] == "2026-10"
    assert received["maternal_child_health"].payload["applicant"]["氏名"] == people[0].facts.name
    assert all(i.linked for i in child + health)  # the divisions hold a code for the applicant
    records, _ = portal.my_records(ctx, me, NOW)
    assert {d["log_seq"] for d in view.deliveries} <= {r.seq for r in records if r.kind.value == "application"}
    # The agency moves the application on; the applicant sees it in their applications and notices.
    item = received["child_allowance"]
    ex.update_inbox_status(ctx, Principal(Role.AGENCY, "131016-child"), "131016-child", item.id, "accepted",
                           "令和8年5月分から支給します。", NOW)
    (mine,) = portal.my_applications(ctx, me, NOW)
    status = {d["procedure"]: (d["status"], d["note"]) for d in mine.deliveries}
    assert status["child_allowance"] == ("accepted", "令和8年5月分から支給します。")
    assert status["childcare_admission"] == ("delivered", None)
    assert any("受理" in n.title for n in portal.my_notices(ctx, me, NOW))
    assert portal.my_applications(ctx, resident(people[1].id), NOW) == []


def test_a_bad_or_undeliverable_application_changes_nothing(ctx: Context, town: Town) -> None:
    _, people = town
    me = resident(people[0].id)
    bad = {**FORMS, "childcare_admission": {**FORMS["childcare_admission"], "start_month": "2020-01",
                                            "child_kana": "yamada"}}
    with pytest.raises(InvalidInput) as err:
        portal.submit_child_rearing(ctx, me, bad, "k", NOW)
    assert len(err.value.problems) == 2
    with pytest.raises(InvalidInput):
        portal.submit_child_rearing(ctx, me, {"no_such_procedure": {}}, "k", NOW)
    # A resident of a town that takes no applications online.
    (osaka,) = register_people(ctx, "271004", 1)
    with pytest.raises(InvalidInput, match="not sent") as err:
        portal.submit_child_rearing(ctx, resident(osaka.id), FORMS, "k", NOW)
    assert any("オンライン申請を受け付けていません" in p for p in err.value.problems)
    # The health centre stops taking messages in the middle of a delivery: the whole application rolls back.
    ex.set_agency_status(ctx, Principal(Role.OPERATOR, "jlis"), "131016-health", "suspended", "保守", NOW)
    portal_view = portal.available_procedures(ctx, me)
    assert portal_view[next(p for p in portal_view if p.value == "maternal_child_health")] is None
    with pytest.raises(InvalidInput):
        portal.submit_child_rearing(ctx, me, FORMS, "k", NOW)
    with ctx.db.connect() as conn:
        assert conn.execute(select(func.count()).select_from(portal_applications)).scalar_one() == 0
        assert conn.execute(select(func.count()).select_from(exchange_log).where(
            exchange_log.c.kind == "application")).scalar_one() == 0
    assert ex.inbox(ctx, Principal(Role.AGENCY, "131016-child"), "131016-child") == []


def test_a_failed_delivery_in_flight_rolls_back_the_application(ctx: Context, town: Town,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    """Both agencies accept applications when the form is checked, but the second delivery fails: neither
    the application nor the first delivery survives."""
    _, people = town
    from mynacard.exchange import hub as hubmod

    real = hubmod.Network.application
    calls = {"n": 0}

    def flaky(self: hubmod.Network, *args: object, **kwargs: object) -> hubmod.Delivery:
        calls["n"] += 1
        if calls["n"] == 2:
            raise Conflict("the agency's interface system did not answer")
        return real(self, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(hubmod.Network, "application", flaky)
    with pytest.raises(Conflict):
        portal.submit_child_rearing(ctx, resident(people[0].id), FORMS, "k2", NOW)
    with ctx.db.connect() as conn:
        assert conn.execute(text("SELECT COUNT(*) FROM portal_applications")).scalar_one() == 0
        assert conn.execute(text("SELECT COUNT(*) FROM exchange_log WHERE kind = 'application'")).scalar_one() == 0
    assert ex.inbox(ctx, Principal(Role.AGENCY, "131016-child"), "131016-child") == []
    monkeypatch.undo()
    assert len(portal.submit_child_rearing(ctx, resident(people[0].id), FORMS, "k2", NOW).deliveries) == 4


def test_only_residents_reach_the_portal(ctx: Context, town: Town) -> None:
    for who in (SYSTEM, Principal(Role.CLERK, "c", "131016"), Principal(Role.OPERATOR, "o"),
                Principal(Role.AGENCY, "131016-tax")):
        for call in (lambda w: portal.my_records(ctx, w, NOW), lambda w: portal.own_information(ctx, w),
                     lambda w: portal.my_applications(ctx, w, NOW),
                     lambda w: portal.refresh_own_information(ctx, w, NOW)):
            with pytest.raises(Forbidden):
                call(who)


def test_the_operator_sweeps_stale_sessions(ctx: Context, town: Town) -> None:
    _, people = town
    open_test_session(ctx, people[0].id)
    open_test_session(ctx, people[1].id, NOW + timedelta(minutes=10))
    counts = portal.sweep_sessions(ctx, Principal(Role.OPERATOR, "jlis"), NOW + timedelta(minutes=20))
    assert (counts.active, counts.closed_now) == (1, 1)
    with pytest.raises(Forbidden):
        portal.sweep_sessions(ctx, resident(people[0].id), NOW)


def test_a_new_session_key_ends_every_mynaportal_session(ctx: Context, town: Town) -> None:
    """The session key (MYNACARD_SESSION_KEY) alone keys the sessions' hashes: replacing it ends them all, and
    the data key does not (docs/SECURITY.md)."""
    import dataclasses
    import os

    _, people = town
    token = open_test_session(ctx, people[0].id)
    assert portal.resume_session(ctx, token, NOW + timedelta(minutes=1)) is not None
    new_data_key = dataclasses.replace(ctx, settings=dataclasses.replace(ctx.settings, data_key=os.urandom(32)))
    assert portal.resume_session(new_data_key, token, NOW + timedelta(minutes=2)) is not None
    new_session_key = dataclasses.replace(ctx, settings=dataclasses.replace(ctx.settings,
                                                                             session_key=os.urandom(32)))
    assert portal.resume_session(new_session_key, token, NOW + timedelta(minutes=3)) is None
