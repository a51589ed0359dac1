"""The network's use cases on both databases: agencies and their stores, enrolment, queries, notices,
corrections, reconciliation, reviews and who may do what."""

from __future__ import annotations

import json
import re
from datetime import date, timedelta

import pytest
from sqlalchemy import func, inspect, select, text

from mynacard.context import Context
from mynacard.errors import Conflict, Forbidden, InvalidInput, NotFound
from mynacard.exchange import demo
from mynacard.exchange import hub as hubmod
from mynacard.exchange import keys as keyring
from mynacard.exchange import service as ex
from mynacard.exchange.model import AgencyCode, ExchangeStatus, LinkStatus, SubmittedFacts
from mynacard.exchange.store import store_for
from mynacard.exchange.tables import exchange_links, exchange_log, exchange_reviews
from mynacard.principal import Principal, Role
from mynacard.registry import service as registry
from mynacard.registry.model import Resident
from tests.conftest import NOW
from tests.exchange.conftest import register_one
from tests.helpers import SYSTEM

OPERATOR = Principal(Role.OPERATOR, "jlis-operator")
TAX = ex.AgencyRegistration("131016-tax", "千代田区 税務課", "Chiyoda tax division", "municipal_tax", "131016")
CHILD = ex.AgencyRegistration("131016-child", "千代田区 子育て支援課", "Chiyoda child division", "municipal_child",
                              "131016")
PENSION = ex.AgencyRegistration("nenkin", "日本年金機構", "Japan Pension Service", "pension")


def agency(agency_id: str) -> Principal:
    return Principal(Role.AGENCY, agency_id)


def number_of(ctx: Context, resident: Resident) -> str:
    return registry.individual_number_of(ctx, SYSTEM, resident.id, "test", NOW)


def request(ref: str, number: str, r: Resident, **changes: object) -> ex.EnrolmentRequest:
    values: dict[str, object] = {"family_name": r.facts.family_name, "given_name": r.facts.given_name,
                                 "birth_date": r.facts.birth_date, "sex": r.facts.sex.value,
                                 "address": r.facts.address, **changes}
    return ex.EnrolmentRequest(ref, number, **values)  # type: ignore[arg-type]


def count(ctx: Context, table: object, *where: object) -> int:
    with ctx.db.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(table).where(*where)).scalar_one())  # type: ignore[arg-type]


# --- agencies ----------------------------------------------------------------------------------------------------

def test_an_agency_gets_its_own_store_and_only_public_keys_in_the_directory(ctx: Context) -> None:
    tax = ex.register_agency(ctx, OPERATOR, TAX, NOW)
    assert (tax.id, tax.kind.value, tax.municipality_code) == ("131016-tax", "municipal_tax", "131016")
    assert len(tax.sign_public_key) == 32 and len(tax.enc_public_key) == 32
    assert ex.register_agency(ctx, OPERATOR, TAX, NOW) == tax  # a retry changes nothing
    with ctx.db.connect() as conn:
        names = inspect(conn).get_table_names(schema="agency_131016_tax" if ctx.db.is_postgres else None)
        if ctx.db.is_postgres:
            assert {"persons", "records", "exchanges", "inbox", "keys"} <= set(names)
            assert "persons" not in inspect(conn).get_table_names()  # nothing of it in the network's schema
        else:
            expected = {f"agency_131016_tax__{t}" for t in ("persons", "records", "exchanges", "inbox", "keys")}
            assert expected <= set(names)
        store = store_for("131016-tax", conn.dialect.name)
        sealed = conn.execute(select(store.keys.c.sealed_private)).scalar_one()
        keys = keyring.agency_keys(ctx, conn, store, 1, tax.sign_public_key)
    sign, enc = keys.raw_private()
    assert sign not in sealed and enc not in sealed and len(sealed) == 12 + 64 + 16
    assert [a.id for a in ex.list_agencies(ctx, kind="municipal_tax")] == ["131016-tax"]


def test_registration_is_checked_and_restricted(ctx: Context) -> None:
    ex.register_agency(ctx, OPERATOR, TAX, NOW)
    with pytest.raises(Conflict):
        ex.register_agency(ctx, OPERATOR, ex.AgencyRegistration(TAX.id, "別の名前", TAX.name_en, TAX.kind,
                                                                 TAX.municipality_code), NOW)
    bad = [ex.AgencyRegistration("Bad_ID", "x", "x", "municipal_tax", "131016"),
           ex.AgencyRegistration("131016-x", "x", "x", "municipal_tax", None),
           ex.AgencyRegistration("nenkin2", "x", "x", "pension", "131016"),
           ex.AgencyRegistration("portal2", "x", "x", "portal"),
           ex.AgencyRegistration("foo", "x", "x", "no_such_kind"),
           ex.AgencyRegistration("131016-y", "", "x", "municipal_tax", "999999")]
    for reg in bad:
        with pytest.raises(InvalidInput):
            ex.register_agency(ctx, OPERATOR, reg, NOW)
    for who in (agency("131016-tax"), Principal(Role.CLERK, "c", "131016"), Principal(Role.RESIDENT, "1")):
        with pytest.raises(Forbidden):
            ex.register_agency(ctx, who, PENSION, NOW)
    assert [a.id for a in ex.list_agencies(ctx) if a.id != "mynaportal"] == ["131016-tax"]


# --- enrolment -------------------------------------------------------------------------------------------------------

def test_a_full_match_links_and_anything_less_goes_to_review(ctx: Context) -> None:
    for reg in (TAX, CHILD):
        ex.register_agency(ctx, OPERATOR, reg, NOW)
    taro = register_one(ctx, "山田", "太郎", date(1980, 1, 2), "1", "東京都千代田区千代田1-1")
    n = number_of(ctx, taro)
    (linked,) = ex.enrol(ctx, agency("131016-tax"), "131016-tax", [request("T-1", n, taro)], NOW)
    assert linked.outcome == "linked" and AgencyCode(linked.code or "")
    (again,) = ex.enrol(ctx, agency("131016-tax"), "131016-tax", [request("T-1", n, taro)], NOW)
    assert (again.outcome, again.code) == ("already_linked", linked.code)
    (other,) = ex.enrol(ctx, agency("131016-child"), "131016-child", [request("C-1", n, taro)], NOW)
    assert other.code != linked.code  # two agencies, two codes that share nothing

    (partial,) = ex.enrol(ctx, agency("131016-child"), "131016-child",
                          [request("C-2", n, taro, address="東京都千代田区千代田1-2")], NOW)
    assert (partial.outcome, partial.code, partial.reasons) == (
        "review", None, ("address", "person_linked_to_other_record"))
    assert count(ctx, exchange_links, exchange_links.c.local_ref == "C-2") == 0
    (retry,) = ex.enrol(ctx, agency("131016-child"), "131016-child",
                        [request("C-2", n, taro, address="東京都千代田区千代田1-2")], NOW)
    assert retry.review_id == partial.review_id  # an identical retry opens no second review
    reviews = ex.list_reviews(ctx, agency("131016-child"))
    assert [r.id for r in reviews] == [partial.review_id]
    assert reviews[0].masked_number == "****-****-" + n[8:] and n not in json.dumps(reviews[0].submitted)
    assert ex.list_reviews(ctx, agency("131016-tax")) == []


def test_a_bad_batch_changes_nothing_and_never_echoes_a_number(ctx: Context) -> None:
    ex.register_agency(ctx, OPERATOR, TAX, NOW)
    taro = register_one(ctx, "山田", "太郎", date(1980, 1, 2), "1", "東京都千代田区千代田1-1")
    n = number_of(ctx, taro)
    broken = n[:11] + str((int(n[11]) + 1) % 10)
    with pytest.raises(InvalidInput) as err:
        ex.enrol(ctx, agency("131016-tax"), "131016-tax",
                 [request("T-1", n, taro), request("T-2", broken, taro), request("T-1", n, taro)], NOW)
    assert len(err.value.problems) == 2 and broken not in str(err.value.problems) and n not in str(err.value)
    persons = store_for("131016-tax", ctx.db.engine.dialect.name).persons
    assert count(ctx, persons) == 0 and count(ctx, exchange_links) == 0


# --- query and provide ------------------------------------------------------------------------------------------------

def _both(world: demo.World, a: str, b: str) -> list[int]:
    return sorted(set(world.refs[a]) & set(world.refs[b]))


def test_a_permitted_query_is_answered_end_to_end(ctx: Context, world: demo.World) -> None:
    rid = _both(world, "131016-child", "131016-tax")[0]
    tax_store = store_for("131016-tax", ctx.db.engine.dialect.name)
    with ctx.db.connect() as conn:
        stored = conn.execute(select(tax_store.records.c.data).where(
            tax_store.records.c.local_ref == world.refs["131016-tax"][rid])).scalar()
    outcome = ex.query(ctx, agency("131016-child"), "131016-child", ex.QueryRequest(
        "131016-tax", "child_allowance", "local_tax", world.refs["131016-child"][rid], "q-1"), NOW)
    if stored is None:
        assert outcome.status is ExchangeStatus.NO_RECORD and outcome.data is None
    else:
        assert outcome.status is ExchangeStatus.PROVIDED and outcome.data == json.loads(stored)
    assert outcome.reason == "C-01"
    with ctx.db.connect() as conn:
        row = conn.execute(select(exchange_log).where(exchange_log.c.seq == outcome.seq)).one()
        assert (row.requester, row.provider, row.procedure, row.item, row.status) == (
            "131016-child", "131016-tax", "child_allowance", "local_tax", outcome.status.value)
        # Both agencies keep their own record of it (番号法 §23).
        for agency_id, role in (("131016-child", "requester"), ("131016-tax", "provider")):
            mine = store_for(agency_id, conn.dialect.name).exchanges
            assert conn.execute(select(mine.c.role).where(mine.c.message_id == "q-1")).scalar() == role
    # A retry is answered again and logged once; reusing the ID for another request is refused.
    replay = ex.query(ctx, agency("131016-child"), "131016-child", ex.QueryRequest(
        "131016-tax", "child_allowance", "local_tax", world.refs["131016-child"][rid], "q-1"), NOW)
    assert (replay.seq, replay.data, replay.replayed) == (outcome.seq, outcome.data, True)
    assert count(ctx, exchange_log, exchange_log.c.message_id == "q-1") == 1
    with pytest.raises(Conflict):
        ex.query(ctx, agency("131016-child"), "131016-child", ex.QueryRequest(
            "131016-tax", "childcare_admission", "local_tax", world.refs["131016-child"][rid], "q-1"), NOW)


def test_statuses_no_record_and_not_enrolled(ctx: Context, world: demo.World) -> None:
    child_refs = world.refs["131016-child"]
    not_at_pension = [rid for rid in child_refs if rid not in world.refs["nenkin"]]
    outcome = ex.query(ctx, agency("131016-child"), "131016-child", ex.QueryRequest(
        "nenkin", "single_parent_allowance", "pension_benefit", child_refs[not_at_pension[0]]), NOW)
    assert outcome.status is ExchangeStatus.NOT_ENROLLED and outcome.data is None
    rid = _both(world, "131016-child", "nenkin")[0]
    with ctx.db.begin() as conn:
        records = store_for("nenkin", conn.dialect.name).records
        conn.execute(records.delete().where(records.c.local_ref == world.refs["nenkin"][rid]))
    outcome = ex.query(ctx, agency("131016-child"), "131016-child", ex.QueryRequest(
        "nenkin", "single_parent_allowance", "pension_benefit", child_refs[rid]), NOW)
    assert outcome.status is ExchangeStatus.NO_RECORD


def test_a_query_outside_the_table_is_refused_and_logged(ctx: Context, world: demo.World) -> None:
    rid = _both(world, "131016-child", "131016-tax")[0]
    with pytest.raises(Forbidden, match="refused and logged as entry") as err:
        ex.query(ctx, agency("131016-child"), "131016-child", ex.QueryRequest(
            "131016-tax", "public_assistance", "local_tax", world.refs["131016-child"][rid], "bad-1"), NOW)
    with ctx.db.connect() as conn:
        row = conn.execute(select(exchange_log).where(exchange_log.c.message_id == "bad-1")).one()
    assert str(row.seq) in str(err.value)
    assert (row.status, row.provider, row.procedure) == ("refused", "131016-tax", "public_assistance")
    assert row.reason.startswith("not_permitted") and row.subject_code is not None
    # Nothing reached the provider: it has no record of the message.
    tax = store_for("131016-tax", ctx.db.engine.dialect.name).exchanges
    assert count(ctx, tax, tax.c.message_id == "bad-1") == 0
    # The same for a permitted procedure but an item the row does not list, and for an unknown provider.
    with pytest.raises(Forbidden):
        ex.query(ctx, agency("131016-child"), "131016-child", ex.QueryRequest(
            "131016-tax", "child_allowance", "resident_record", world.refs["131016-child"][rid]), NOW)
    with pytest.raises(Forbidden, match="provider_unavailable"):
        ex.query(ctx, agency("131016-child"), "131016-child", ex.QueryRequest(
            "no-such-agency", "child_allowance", "local_tax", world.refs["131016-child"][rid]), NOW)
    assert count(ctx, exchange_log, exchange_log.c.status == "refused") == 3


def test_a_code_works_only_for_the_agency_it_was_issued_to(ctx: Context, world: demo.World) -> None:
    """An agency that obtains another agency's code (a leak, collusion) gets nothing with it."""
    rid = _both(world, "131016-child", "131016-tax")[0]
    with ctx.db.connect() as conn:
        tax_code = conn.execute(select(exchange_links.c.code).where(
            exchange_links.c.agency_id == "131016-tax", exchange_links.c.resident_id == rid)).scalar_one()
    hub = ex.prepare(ctx, NOW)
    with ctx.transaction() as tx:
        net = hubmod.Network(ctx, tx, hub, NOW)
        child = net.agency("131016-child")
        env = net.send(child.id, net.keys_of(child), keyring.HUB_ID, {
            "type": "query", "message_id": "stolen-1", "sent_at": NOW.isoformat(), "provider": "131016-tax",
            "procedure": "child_allowance", "item": "local_tax", "code": tax_code})
        reply = net.party_open(child, net.hub_handle_query(env), keyring.HUB_ID, "query_reply").body
    assert (reply["status"], reply["inner"]) == ("refused", None) and reply["reason"].startswith("unknown_code")
    assert count(ctx, exchange_log, exchange_log.c.message_id == "stolen-1", exchange_log.c.status == "refused") == 1


def test_stale_or_forged_messages_are_refused_by_the_hub(ctx: Context, world: demo.World) -> None:
    hub = ex.prepare(ctx, NOW)
    with ctx.transaction() as tx:
        net = hubmod.Network(ctx, tx, hub, NOW)
        child = net.agency("131016-child")
        stale = net.send(child.id, net.keys_of(child), keyring.HUB_ID, {
            "type": "query", "message_id": "old-1", "sent_at": (NOW - timedelta(hours=1)).isoformat(),
            "provider": "131016-tax", "procedure": "child_allowance", "item": "local_tax", "code": "A" * 26})
        with pytest.raises(InvalidInput, match="stale"):
            net.hub_handle_query(stale)
        forged = net.send("131016-child", net.keys_of(net.agency("131016-tax")), keyring.HUB_ID, {
            "type": "query", "message_id": "f-1", "sent_at": NOW.isoformat()})
        with pytest.raises(InvalidInput, match="signature"):
            net.hub_handle_query(forged)


def test_suspended_agencies_cannot_exchange(ctx: Context, world: demo.World) -> None:
    rid = _both(world, "131016-child", "131016-tax")[0]
    ex.set_agency_status(ctx, OPERATOR, "131016-tax", "suspended", "漏えい事案の調査中", NOW)
    with pytest.raises(Forbidden, match="provider_unavailable"):
        ex.query(ctx, agency("131016-child"), "131016-child", ex.QueryRequest(
            "131016-tax", "child_allowance", "local_tax", world.refs["131016-child"][rid]), NOW)
    with pytest.raises(Forbidden, match="suspended"):
        ex.query(ctx, agency("131016-tax"), "131016-tax", ex.QueryRequest(
            "nenkin", "local_tax_assessment", "pension_benefit", world.refs["131016-tax"][rid]), NOW)
    ex.set_agency_status(ctx, OPERATOR, "131016-tax", "active", "調査終了", NOW)
    assert ex.query(ctx, agency("131016-child"), "131016-child", ex.QueryRequest(
        "131016-tax", "child_allowance", "local_tax", world.refs["131016-child"][rid]), NOW).seq > 0


def test_who_may_do_what(ctx: Context, world: demo.World) -> None:
    rid = _both(world, "131016-child", "131016-tax")[0]
    q = ex.QueryRequest("131016-tax", "child_allowance", "local_tax", world.refs["131016-child"][rid])
    for who in (agency("131016-tax"), OPERATOR, Principal(Role.CLERK, "c", "131016"),
                Principal(Role.SUPERVISOR, "s", "131016"), Principal(Role.RESIDENT, str(rid))):
        with pytest.raises(Forbidden):
            ex.query(ctx, who, "131016-child", q, NOW)
    with pytest.raises(Forbidden):
        ex.enrol(ctx, agency("131016-tax"), "131016-child", [], NOW)
    with pytest.raises(Forbidden):
        ex.register_records(ctx, agency("131016-tax"), "131016-child", [], NOW)
    with pytest.raises(Forbidden):
        ex.exchange_log_entries(ctx, Principal(Role.CLERK, "c", "131016"))
    with pytest.raises(Forbidden):
        ex.verify_log(ctx, agency("131016-tax"))
    # An agency reads the log entries it took part in, and no others.
    ex.query(ctx, agency("131016-child"), "131016-child", q, NOW)
    assert {e.requester for e in ex.exchange_log_entries(ctx, agency("nenkin"))} <= {"nenkin"}
    with pytest.raises(Forbidden, match="own share"):  # never another agency's share, quietly or not
        ex.exchange_log_entries(ctx, agency("nenkin"), agency_id="131016-tax")
    assert ex.exchange_log_entries(ctx, agency("nenkin"), agency_id="nenkin") == ex.exchange_log_entries(
        ctx, agency("nenkin"))
    mine = ex.exchange_log_entries(ctx, agency("131016-tax"))
    assert mine and all("131016-tax" in (e.requester, e.provider) for e in mine)
    assert len(ex.exchange_log_entries(ctx, OPERATOR)) >= len(mine)


def test_record_copies_are_validated_all_or_nothing(ctx: Context, world: demo.World) -> None:
    ref = next(iter(world.refs["131016-tax"].values()))
    store = store_for("131016-tax", ctx.db.engine.dialect.name).records
    before = count(ctx, store)
    number = number_of(ctx, registry.get_resident(ctx, SYSTEM, next(iter(world.refs["131016-tax"]))))
    cases = [
        [ex.RecordInput(ref, "local_tax", {"所得": 1}), ex.RecordInput(ref, "pension_benefit", {"年額": 1})],
        [ex.RecordInput(ref, "local_tax", {"所得": 1}), ex.RecordInput("nobody", "local_tax", {"所得": 1})],
        [ex.RecordInput(ref, "local_tax", {"番号": number})],
        [ex.RecordInput(ref, "no_such_item", {"a": 1})],
    ]
    for items in cases:
        with pytest.raises(InvalidInput):
            ex.register_records(ctx, agency("131016-tax"), "131016-tax", items, NOW)
    assert count(ctx, store) == before
    assert ex.register_records(ctx, agency("131016-tax"), "131016-tax",
                               [ex.RecordInput(ref, "local_tax", {"所得": 42})], NOW) == 1
    with ctx.db.connect() as conn:
        assert json.loads(conn.execute(select(store.c.data).where(store.c.local_ref == ref)).scalar_one()) == {
            "所得": 42}


# --- notices ----------------------------------------------------------------------------------------------------------

def test_a_notice_reaches_only_its_person(ctx: Context, world: demo.World) -> None:
    rid, other = sorted(world.refs["131016-tax"])[:2]
    delivery = ex.send_notice(ctx, agency("131016-tax"), "131016-tax", ex.NoticeInput(
        "住民税額決定のお知らせ", "令和7年度の住民税額が決定しました。", local_ref=world.refs["131016-tax"][rid]), NOW)
    me, them = Principal(Role.RESIDENT, str(rid)), Principal(Role.RESIDENT, str(other))
    (notice,) = ex.notices_for(ctx, me, NOW)
    assert (notice.title, notice.sender, notice.read_at) == ("住民税額決定のお知らせ", "131016-tax", None)
    assert ex.notices_for(ctx, them, NOW) == []
    with pytest.raises(NotFound):
        ex.mark_notice_read(ctx, them, notice.id, NOW)
    ex.mark_notice_read(ctx, me, notice.id, NOW)
    assert ex.notices_for(ctx, me, NOW)[0].read_at == NOW
    records, _ = ex.records_about(ctx, me, NOW)
    assert delivery.seq in {r.seq for r in records}
    with pytest.raises(InvalidInput):
        ex.send_notice(ctx, agency("131016-tax"), "131016-tax", ex.NoticeInput(
            "番号", "あなたの番号は " + number_of(ctx, registry.get_resident(ctx, SYSTEM, rid)),
            local_ref=world.refs["131016-tax"][rid]), NOW)


# --- corrections, reconciliation and reviews -------------------------------------------------------------------------

def test_a_wrong_link_is_corrected_with_history_and_its_code_never_returns(ctx: Context) -> None:
    ex.register_agency(ctx, OPERATOR, PENSION, NOW)
    ex.register_agency(ctx, OPERATOR, TAX, NOW)
    taro = register_one(ctx, "山田", "太郎", date(1950, 1, 2), "1", "東京都千代田区千代田1-1")
    jiro = register_one(ctx, "山田", "次郎", date(1952, 3, 4), "1", "東京都千代田区千代田1-1",
                        kana=("ヤマダ", "ジロウ"))
    nt, nj = number_of(ctx, taro), number_of(ctx, jiro)
    # The pension office filed Jiro's claim under Taro's number and facts (a family member's form, §6 #14).
    (wrong,) = ex.enrol(ctx, agency("nenkin"), "nenkin", [request("P-100", nt, taro)], NOW)
    ex.enrol(ctx, agency("131016-tax"), "131016-tax", [request("T-1", nt, taro), request("T-2", nj, jiro)], NOW)
    ex.register_records(ctx, agency("131016-tax"), "131016-tax",
                        [ex.RecordInput("T-1", "local_tax", {"所得": 1}),
                         ex.RecordInput("T-2", "local_tax", {"所得": 2})], NOW)
    before = ex.query(ctx, agency("nenkin"), "nenkin", ex.QueryRequest("131016-tax", "pension_premium_exemption",
                                                                      "local_tax", "P-100"), NOW)
    assert before.data == {"所得": 1}  # Taro's data, because the link says Taro
    later = NOW + timedelta(days=3)
    fixed = ex.correct_link(ctx, agency("nenkin"), "nenkin", request("P-100", nj, jiro), "家族の番号で登録していた",
                            later)
    assert fixed.outcome == "linked" and fixed.code != wrong.code
    after = ex.query(ctx, agency("nenkin"), "nenkin", ex.QueryRequest("131016-tax", "pension_premium_exemption",
                                                                     "local_tax", "P-100"), later)
    assert after.data == {"所得": 2}
    history = ex.link_history(ctx, agency("nenkin"), "nenkin", "P-100")
    assert [(h.code, h.status) for h in history] == [(wrong.code, "unlinked"), (fixed.code, "active")]
    assert [e["kind"] for e in history[0].events] == ["linked", "corrected"]
    assert history[0].events[1]["reason"] == "correction: 家族の番号で登録していた"
    # Taro can see that his data went to the pension office under the wrong link; Jiro sees the later one.
    taro_records, _ = ex.records_about(ctx, Principal(Role.RESIDENT, str(taro.id)), later)
    jiro_records, _ = ex.records_about(ctx, Principal(Role.RESIDENT, str(jiro.id)), later)
    assert before.seq in {r.seq for r in taro_records} and before.seq not in {r.seq for r in jiro_records}
    assert after.seq in {r.seq for r in jiro_records} and after.seq not in {r.seq for r in taro_records}
    # Taro enrolled properly later gets a fresh code: a withdrawn code is never issued again.
    (taro_again,) = ex.enrol(ctx, agency("nenkin"), "nenkin", [request("P-200", nt, taro)], later)
    assert taro_again.outcome == "linked" and taro_again.code not in (wrong.code, fixed.code)
    # Unlinking withdraws the code; the record cannot be used until it is enrolled again.
    ex.unlink(ctx, agency("nenkin"), "nenkin", "P-200", "受給権消滅", later)
    with pytest.raises(Conflict, match="no code"):
        ex.query(ctx, agency("nenkin"), "nenkin", ex.QueryRequest("131016-tax", "pension_premium_exemption",
                                                                 "local_tax", "P-200"), later)
    with pytest.raises(Forbidden):
        ex.unlink(ctx, agency("131016-tax"), "nenkin", "P-100", "x", later)


def test_reconciliation_suspends_stale_links_until_they_match_again(ctx: Context) -> None:
    for reg in (TAX, CHILD):
        ex.register_agency(ctx, OPERATOR, reg, NOW)
    hanako = register_one(ctx, "佐藤", "花子", date(1990, 5, 5), "2", "東京都千代田区千代田2-2",
                          kana=("サトウ", "ハナコ"))
    n = number_of(ctx, hanako)
    ex.enrol(ctx, agency("131016-tax"), "131016-tax", [request("T-9", n, hanako)], NOW)
    ex.enrol(ctx, agency("131016-child"), "131016-child", [request("C-9", n, hanako)], NOW)
    assert ex.reconcile(ctx, agency("131016-tax"), "131016-tax", NOW).suspended == []
    registry.move_resident(ctx, SYSTEM, hanako.id, "東京都千代田区神田3-3", None, NOW)
    report = ex.reconcile(ctx, agency("131016-tax"), "131016-tax", NOW)
    assert (report.checked, report.suspended) == (1, ["T-9"])
    # A suspended link is used by nobody: the provider answers "not enrolled", the requester is stopped.
    outcome = ex.query(ctx, agency("131016-child"), "131016-child",
                       ex.QueryRequest("131016-tax", "child_allowance", "local_tax", "C-9"), NOW)
    assert outcome.status is ExchangeStatus.NOT_ENROLLED
    with pytest.raises(Conflict, match="suspended"):
        ex.query(ctx, agency("131016-tax"), "131016-tax",
                 ex.QueryRequest("131016-child", "local_tax_assessment", "child_allowance", "T-9"), NOW)
    (review,) = ex.list_reviews(ctx, OPERATOR, "131016-tax")
    assert review.source == "reconcile" and review.reasons == ("address",)
    # The agency updates its record from the registry; enrolling with the new facts reinstates the link.
    moved = registry.get_resident(ctx, SYSTEM, hanako.id)
    (result,) = ex.enrol(ctx, agency("131016-tax"), "131016-tax", [request("T-9", n, moved)], NOW)
    assert result.outcome == "already_linked"
    with ctx.db.connect() as conn:
        assert conn.execute(select(exchange_links.c.status).where(exchange_links.c.local_ref == "T-9")).scalar() == (
            LinkStatus.ACTIVE.value)
        assert conn.execute(select(exchange_reviews.c.status).where(exchange_reviews.c.id == review.id)).scalar() == (
            "linked")


def test_reviews_are_decided_by_people_and_never_force_a_link(ctx: Context) -> None:
    ex.register_agency(ctx, OPERATOR, TAX, NOW)
    taro = register_one(ctx, "山田", "太郎", date(1980, 1, 2), "1", "東京都千代田区千代田1-1")
    n = number_of(ctx, taro)
    (r1,) = ex.enrol(ctx, agency("131016-tax"), "131016-tax", [request("T-1", n, taro, given_name="太朗")], NOW)
    (r2,) = ex.enrol(ctx, agency("131016-tax"), "131016-tax", [request("T-2", n, taro, sex="2")], NOW)
    assert r1.review_id and r2.review_id
    for who in (agency("131016-tax"), Principal(Role.SUPERVISOR, "s", "011002"),
                Principal(Role.CLERK, "c", "131016")):
        with pytest.raises(Forbidden):
            ex.decide_review(ctx, who, r1.review_id, "reject", "x", NOW)
    supervisor = Principal(Role.SUPERVISOR, "s", "131016")
    # A retry on the submitted (wrong) facts is still no full match: nothing changes.
    with pytest.raises(Conflict, match="still not a full match"):
        ex.decide_review(ctx, supervisor, r1.review_id, "retry", "再照合", NOW)
    assert count(ctx, exchange_links) == 0
    # After checking with the person, the agency corrected the spelling: now it is a full match.
    corrected = SubmittedFacts(taro.facts)
    decided = ex.decide_review(ctx, supervisor, r1.review_id, "retry", "本人確認のうえ漢字を訂正", NOW, corrected)
    assert decided.status == "linked" and count(ctx, exchange_links, exchange_links.c.local_ref == "T-1") == 1
    ex.decide_review(ctx, OPERATOR, r2.review_id, "reject", "別人の可能性", NOW)
    with pytest.raises(Conflict):
        ex.decide_review(ctx, OPERATOR, r2.review_id, "retry", "x", NOW, corrected)
    assert count(ctx, exchange_links, exchange_links.c.local_ref == "T-2") == 0
    assert [r.status for r in ex.list_reviews(ctx, OPERATOR, status=None)] == ["linked", "rejected"]


def test_the_network_tables_hold_no_record_contents(ctx: Context, world: demo.World) -> None:
    demo.run_exchanges(ctx, world, 30, NOW)
    rid = next(iter(world.refs["131016-tax"]))
    ex.request_self_information(ctx, Principal(Role.RESIDENT, str(rid)), NOW)
    values: set[str] = set()
    with ctx.db.connect() as conn:
        for agency_id in world.agencies:
            records = store_for(agency_id, conn.dialect.name).records
            for data in conn.execute(select(records.c.data)).scalars():
                values |= {str(v) for v in json.loads(data).values() if len(str(v)) >= 5}
        assert len(values) > 20
        network = [t for t in inspect(conn).get_table_names() if t.startswith("exchange_")]
        assert len(network) == 9
        dump = "\n".join(str(tuple(row)) for t in network for row in conn.execute(text(f'SELECT * FROM "{t}"')))
    # whole values only: an amount such as 10000 is otherwise found inside a timestamp's 100000 microseconds
    assert [v for v in values if re.search(rf"(?<![0-9A-Za-z]){re.escape(v)}(?![0-9A-Za-z])", dump)] == []
