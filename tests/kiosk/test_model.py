"""The pure rules of kiosk issuance: hours, the year-end closure, eligibility, options, masking, dates."""

from __future__ import annotations

from datetime import date, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mynacard.calendar import is_year_end_closure
from mynacard.clock import JST
from mynacard.errors import Conflict, InvalidInput
from mynacard.kiosk.model import (
    DocumentContent,
    DocumentId,
    DocumentKind,
    DocumentOptions,
    Field,
    Offering,
    PersonRecord,
    RefusalReason,
    Refused,
    RequestId,
    Section,
    SessionState,
    check_document,
    check_holder,
    check_service_hours,
    check_session_transition,
    decide_order,
    fiscal_year_available,
    wareki,
)
from mynacard.registry.model import BasicFacts, Resident, ResidentStatus, Sex

MONDAY = datetime(2026, 4, 6, 10, 0, tzinfo=JST)


def _resident(rid: int = 1, born: date = date(1980, 5, 5), status: ResidentStatus = ResidentStatus.ACTIVE,
              household: int = 1, name: str = "太郎", address: str = "東京都千代田区千代田1番1号") -> Resident:
    return Resident(rid, "12345678901", "131016", household, BasicFacts("山田", name, born, Sex.MALE, address),
                    "ヤマダ", "タロウ", None, status, "世帯主")


def _refusal(fn: object, *args: object, **kw: object) -> RefusalReason:
    with pytest.raises(Refused) as exc:
        fn(*args, **kw)  # type: ignore[operator]
    return exc.value.reason


def test_hours_are_0630_to_2300_jst_whatever_the_zone_of_now() -> None:
    check_service_hours(datetime(2026, 4, 6, 6, 30, tzinfo=JST))
    check_service_hours(datetime(2026, 4, 6, 22, 59, 59, tzinfo=JST))
    assert _refusal(check_service_hours, datetime(2026, 4, 6, 6, 29, 59, tzinfo=JST)) is RefusalReason.CLOSED_HOURS
    assert _refusal(check_service_hours, datetime(2026, 4, 6, 23, 0, tzinfo=JST)) is RefusalReason.CLOSED_HOURS
    from datetime import UTC

    check_service_hours(datetime(2026, 4, 5, 21, 30, tzinfo=UTC))  # 06:30 JST on the 6th
    assert _refusal(check_service_hours, datetime(2026, 4, 5, 21, 29, tzinfo=UTC)) is RefusalReason.CLOSED_HOURS
    with pytest.raises(ValueError):
        check_service_hours(datetime(2026, 4, 6, 10, 0))


@pytest.mark.parametrize(("day", "closed"), [(date(2026, 12, 28), False), (date(2026, 12, 29), True),
                                             (date(2026, 12, 31), True), (date(2027, 1, 1), True),
                                             (date(2027, 1, 3), True), (date(2027, 1, 4), False)])
def test_the_year_end_closure(day: date, closed: bool) -> None:
    assert is_year_end_closure(day) is closed
    moment = datetime.combine(day, datetime.min.time(), JST) + timedelta(hours=12)
    if closed:
        assert _refusal(check_service_hours, moment) is RefusalReason.YEAR_END
    else:
        check_service_hours(moment)


def test_maintenance_days_close_the_service() -> None:
    assert _refusal(check_service_hours, MONDAY, [MONDAY.date()]) is RefusalReason.MAINTENANCE
    check_service_hours(MONDAY, [MONDAY.date() + timedelta(days=1)])


def test_holder_rules_each_with_its_reason() -> None:
    assert _refusal(check_holder, PersonRecord(_resident(born=date(2011, 4, 7))), MONDAY) is RefusalReason.UNDER_15
    check_holder(PersonRecord(_resident(born=date(2011, 4, 6))), MONDAY)  # 15 today
    assert _refusal(check_holder, PersonRecord(_resident(status=ResidentStatus.DECEASED)), MONDAY) \
        is RefusalReason.DECEASED
    assert _refusal(check_holder, PersonRecord(_resident(status=ResidentStatus.ABROAD)), MONDAY) \
        is RefusalReason.MOVED_OUT
    assert _refusal(check_holder, PersonRecord(_resident(), transfer_out_filed=True), MONDAY) \
        is RefusalReason.MOVED_OUT
    assert _refusal(check_holder, PersonRecord(_resident(), support_measure=True), MONDAY) \
        is RefusalReason.SUPPORT_MEASURE
    assert _refusal(check_holder, PersonRecord(_resident(), moved_in_on=MONDAY.date()), MONDAY) \
        is RefusalReason.MOVED_IN_TODAY
    check_holder(PersonRecord(_resident(), moved_in_on=MONDAY.date() - timedelta(days=1)), MONDAY)
    assert _refusal(check_holder, PersonRecord(_resident(name="長" * 19)), MONDAY) is RefusalReason.TEXT_TOO_LONG


def test_document_rules() -> None:
    me, spouse, other = (PersonRecord(_resident(1)), PersonRecord(_resident(2)),
                         PersonRecord(_resident(3, household=9)))
    offer = Offering(DocumentKind.RESIDENT_RECORD, 200)
    juminhyo = DocumentOptions(DocumentKind.RESIDENT_RECORD, (1, 2))
    assert [p.id for p in check_document(juminhyo, me, [me, spouse], offer, MONDAY)] == [1, 2]
    assert _refusal(check_document, DocumentOptions(DocumentKind.RESIDENT_RECORD, (1, 3)), me, [me, spouse],
                    offer, MONDAY) is RefusalReason.NOT_IN_HOUSEHOLD
    assert _refusal(check_document, juminhyo, me, [me, PersonRecord(_resident(2), support_measure=True)], offer,
                    MONDAY) is RefusalReason.SUPPORT_MEASURE
    assert _refusal(check_document, DocumentOptions(DocumentKind.RESIDENT_RECORD), me,
                    [me, PersonRecord(_resident(2), transfer_out_filed=True)], offer, MONDAY) \
        is RefusalReason.HOUSEHOLD_MOVING_OUT
    assert _refusal(check_document, DocumentOptions(DocumentKind.RESIDENT_RECORD, include_domicile=True), me, [me],
                    offer, MONDAY) is RefusalReason.NO_DOMICILE_RECORD
    assert _refusal(check_document, juminhyo, me, [me, spouse], None, MONDAY) is RefusalReason.NOT_OFFERED
    assert _refusal(check_document, juminhyo, me, [me, spouse], offer, MONDAY, suspended=True) \
        is RefusalReason.DOCUMENT_SUSPENDED
    seal = DocumentOptions(DocumentKind.SEAL_REGISTRATION)
    assert _refusal(check_document, seal, me, [me], Offering(DocumentKind.SEAL_REGISTRATION, 200), MONDAY) \
        is RefusalReason.NO_SEAL_REGISTRATION
    tax = DocumentOptions(DocumentKind.INCOME_TAX)
    assert _refusal(check_document, tax, me, [me], Offering(DocumentKind.INCOME_TAX, 300), MONDAY) \
        is RefusalReason.NO_TAX_RECORD
    koseki = DocumentOptions(DocumentKind.FAMILY_REGISTER_ALL)
    weekday = Offering(DocumentKind.FAMILY_REGISTER_ALL, 350, weekdays_only=True, opens=datetime.min.time().replace(
        hour=9), closes=datetime.min.time().replace(hour=17))
    check_document(koseki, me, [me], weekday, MONDAY, family_register="131016")
    assert _refusal(check_document, koseki, me, [me], weekday, MONDAY + timedelta(days=5),
                    family_register="131016") is RefusalReason.DOCUMENT_HOURS
    assert _refusal(check_document, koseki, me, [me], weekday, MONDAY + timedelta(hours=8),
                    family_register="131016") is RefusalReason.DOCUMENT_HOURS
    assert _refusal(check_document, koseki, me, [me], weekday, MONDAY) is RefusalReason.NO_FAMILY_REGISTER
    assert _refusal(check_document, koseki, me, [me], weekday, MONDAY, family_register="011002",
                    family_register_usable=False) is RefusalReason.FAMILY_REGISTER_NOT_REGISTERED
    assert _refusal(check_document, koseki, me, [me], weekday, MONDAY, family_register="131016",
                    family_register_pending=True) is RefusalReason.FAMILY_REGISTER_PENDING
    del other


def test_every_refusal_has_a_message_in_both_languages() -> None:
    for reason in RefusalReason:
        assert reason.message_ja and reason.message_en and reason.message_ja != reason.message_en


def test_options_are_validated_where_they_enter() -> None:
    with pytest.raises(InvalidInput):
        DocumentOptions(DocumentKind.RESIDENT_RECORD, copies=0)
    with pytest.raises(InvalidInput):
        DocumentOptions(DocumentKind.RESIDENT_RECORD, copies=6)
    with pytest.raises(InvalidInput):
        DocumentOptions(DocumentKind.SEAL_REGISTRATION, include_individual_number=True)
    with pytest.raises(InvalidInput):
        DocumentOptions(DocumentKind.RESIDENT_RECORD, (1, 1))
    with pytest.raises(InvalidInput):
        DocumentOptions.from_dict({"kind": "passport"})
    with pytest.raises(InvalidInput):
        DocumentOptions.from_dict({"kind": "juminhyo", "member_ids": ["1"]})
    with pytest.raises(InvalidInput):
        Offering(DocumentKind.RESIDENT_RECORD, -1)


@given(st.lists(st.integers(1, 10**9), max_size=6, unique=True), st.booleans(), st.booleans(), st.booleans(),
       st.integers(1, 5))
def test_options_survive_the_wire(members: list[int], rel: bool, dom: bool, num: bool, copies: int) -> None:
    options = DocumentOptions(DocumentKind.RESIDENT_RECORD, tuple(members), rel, dom, num, copies)
    assert DocumentOptions.from_dict(options.to_dict()) == options


@given(st.text(max_size=40))
def test_request_and_document_ids_accept_only_their_shape(text: str) -> None:
    for kind in (RequestId, DocumentId):
        try:
            value = kind(text)
        except InvalidInput:
            continue
        assert value == text and len(text) in (26, 32)
    assert RequestId(RequestId.new()) and DocumentId(DocumentId.new())


def test_request_states_move_only_forward() -> None:
    check_session_transition(SessionState.CHALLENGED, SessionState.AUTHENTICATED)
    check_session_transition(SessionState.RELEASED, SessionState.ABORTED)
    for final in (SessionState.COMPLETED, SessionState.ABORTED):
        for target in SessionState:
            with pytest.raises(Conflict):
                check_session_transition(final, target)
    with pytest.raises(Conflict):
        check_session_transition(SessionState.AUTHENTICATED, SessionState.RELEASED)  # never skips the check


def test_secret_fields_are_masked_and_the_public_digest_ignores_them() -> None:
    number = Field("個人番号", "1234 5678 9012", secret=True)
    assert number.shown(reveal=False) == "●●●● ●●●● 9012" and number.shown(reveal=True) == "1234 5678 9012"
    base = DocumentContent(DocumentKind.RESIDENT_RECORD, "住民票の写し", "131016", "東京都千代田区", "東京都千代田区長",
                           date(2026, 4, 6), "…", (Section("1", (Field("氏名", "山田　太郎"), number)),))
    other = DocumentContent.from_dict({**base.to_dict(), "sections": [{"heading": "1", "fields": [
        {"label": "氏名", "value": "山田　太郎", "secret": False},
        {"label": "個人番号", "value": "9999 5678 9012", "secret": True}]}]})
    assert base.public_digest() == other.public_digest()
    assert DocumentContent.from_dict(base.to_dict()) == base


def test_japanese_dates_and_the_tax_year() -> None:
    assert wareki(date(2026, 4, 6)) == "令和8年4月6日"
    assert wareki(date(2019, 5, 1)) == "令和元年5月1日"
    assert wareki(date(2019, 4, 30)) == "平成31年4月30日"
    assert wareki(date(1989, 1, 8)) == "平成元年1月8日"
    assert wareki(date(1989, 1, 7)) == "昭和64年1月7日"
    assert fiscal_year_available(date(2026, 5, 31)) == 2025
    assert fiscal_year_available(date(2026, 6, 1)) == 2026


_OFFER = {"juminhyo": [300, "131016"]}


def _decide(state: SessionState = SessionState.AUTHENTICATED, *, same: bool = False, stored: str | None = None,
            expired: bool = False, kind: DocumentKind = DocumentKind.RESIDENT_RECORD, copies: int = 2,
            paid: int = 600):
    return decide_order(state, same, stored, expired, _OFFER, kind, copies, paid)


def test_an_order_is_accepted_at_the_offered_fee_per_copy() -> None:
    decision = _decide()
    assert decision.accept and decision.fee_yen == 600 and decision.issuing_municipality == "131016"
    assert decision.refusal is None and decision.busy is None and not decision.redeliver


@pytest.mark.parametrize(("kwargs", "refusal", "ends"), [
    ({"paid": 599}, RefusalReason.WRONG_FEE, False),
    ({"kind": DocumentKind.RESIDENT_RECORD_ENTRY}, RefusalReason.NOT_OFFERED, True),
    ({"expired": True}, RefusalReason.SESSION_EXPIRED, True),
    ({"state": SessionState.ABORTED, "stored": "timeout"}, RefusalReason.TIMEOUT, False),
    ({"state": SessionState.ABORTED, "stored": "release_check_failed"}, RefusalReason.ABORTED, False),
    ({"state": SessionState.ABORTED}, RefusalReason.ABORTED, False),
])
def test_why_an_order_is_refused(kwargs: dict, refusal: RefusalReason, ends: bool) -> None:
    decision = _decide(**kwargs)
    assert (decision.refusal, decision.ends_request, decision.accept) == (refusal, ends, False)


def test_the_fee_is_checked_only_for_what_is_offered_and_after_the_session() -> None:
    assert _decide(expired=True, paid=0).refusal is RefusalReason.SESSION_EXPIRED
    assert _decide(kind=DocumentKind.RESIDENT_RECORD_ENTRY, paid=0).refusal is RefusalReason.NOT_OFFERED
    assert _decide(paid=0).detail == "600 yen due, 0 paid"


def test_a_retried_order_is_redelivered_and_a_busy_one_waits() -> None:
    assert _decide(SessionState.RELEASED, same=True).redeliver
    assert _decide(SessionState.RELEASED).busy == "the request is released"
    assert _decide(SessionState.RENDERING).busy == "the request is being processed"
    assert _decide(SessionState.CHALLENGED, same=True).busy == "the request is challenged"

