"""The whole flow in process (kiosk → centre → municipality → PDF → print) on SQLite and PostgreSQL, and every
refusal the acceptance names: each gives a clear reason and no document."""

from __future__ import annotations

import json
from datetime import date, datetime, timedelta

import pytest
from sqlalchemy import func, select

from mynacard.clock import JST
from mynacard.context import Context
from mynacard.kiosk import municipal, pdf
from mynacard.kiosk.auth import PinBlocked, WrongPin
from mynacard.kiosk.centre import Centre, LocalGateway
from mynacard.kiosk.model import DocumentKind, DocumentOptions, DocumentState, Offering, RefusalReason, Refused
from mynacard.kiosk.service import verify_audit
from mynacard.kiosk.tables import kiosk_audit, kiosk_documents, kiosk_sessions
from mynacard.kiosk.terminal import KioskTerminal, LocalCentreClient, MemoryPrinter, VirtualReader
from mynacard.kiosk.testing import TestJpki
from mynacard.registry import service as registry
from tests.conftest import NOW
from tests.helpers import SYSTEM
from tests.kiosk.conftest import VERIFY_BASE, Town, card_for


def _terminal(centre: Centre, at: datetime = NOW, kiosk_id: str = "kiosk-0001") -> tuple[KioskTerminal, VirtualReader,
                                                                                      MemoryPrinter]:
    reader, printer = VirtualReader(), MemoryPrinter()
    return KioskTerminal(kiosk_id, LocalCentreClient(centre, kiosk_id, lambda: at), reader, printer), reader, printer


def _documents(ctx: Context) -> int:
    with ctx.db.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(kiosk_documents)).scalar_one())


def _session_state(ctx: Context, request_id: str) -> tuple[str, str | None]:
    with ctx.db.connect() as conn:
        row = conn.execute(select(kiosk_sessions.c.state, kiosk_sessions.c.refusal).where(
            kiosk_sessions.c.request_id == request_id)).one()
    return row.state, row.refusal


def test_resident_record_goes_to_the_card_holder_and_nobody_else(ctx: Context, town: Town, jpki: TestJpki,
                                                                 centre: Centre) -> None:
    holder = town.adult(household_size=3)
    terminal, reader, printer = _terminal(centre)
    reader.place(card_for(jpki, holder.id))
    session = terminal.start()
    menu = terminal.enter_pin(session, "1234")
    assert menu.holder_name == holder.facts.name
    assert {m.resident_id for m in menu.household} == {
        r.id for r in town.people.values() if r.household_id == holder.household_id}
    item = menu.item(DocumentKind.RESIDENT_RECORD)
    assert item is not None and item.refusal is None and item.fee_yen == 200
    members = tuple(m.resident_id for m in menu.household)
    options = DocumentOptions(DocumentKind.RESIDENT_RECORD, members, include_relationship=True, copies=2)
    result = terminal.order_and_print(session, options, paid_yen=500)
    assert result.change_yen == 100 and result.copies == 2
    printed, copies = printer.jobs[session.request_id]
    assert copies == 2
    facts = pdf.read_facts(printed)
    assert facts.request_id == session.request_id and facts.document_id == result.document_id
    view = municipal.verification(ctx, result.document_id, NOW)
    assert view.valid and view.state is DocumentState.PRINTED and view.request_id == session.request_id
    assert view.content is not None
    names = [f.value for s in view.content.sections for f in s.fields if f.label == "氏名"]
    household = [r for r in town.people.values() if r.household_id == holder.household_id]
    assert sorted(names) == sorted(f"{r.facts.family_name}　{r.facts.given_name}" for r in household)
    assert _session_state(ctx, session.request_id) == ("completed", None)
    with ctx.db.connect() as conn:
        actions = [r.action for r in conn.execute(select(kiosk_audit.c.action).where(
            kiosk_audit.c.request_id == session.request_id).order_by(kiosk_audit.c.id))]
        check = json.loads(conn.execute(select(kiosk_audit.c.details).where(
            kiosk_audit.c.request_id == session.request_id, kiosk_audit.c.action == "release_check")).scalar_one())
    assert actions == ["session_opened", "authenticated", "order_accepted", "document_prepared", "release_check",
                       "released", "document_issued", "printed", "document_printed"]
    assert check["matched"] is True and check["holder_resident_id"] == holder.id
    report = verify_audit(ctx)
    assert report.ok, report.problems


def test_the_individual_number_only_when_asked_and_never_in_the_trail(ctx: Context, town: Town, jpki: TestJpki,
                                                                      centre: Centre) -> None:
    holder = town.adult()
    number = registry.individual_number_of(ctx, SYSTEM, holder.id, "test", NOW)
    terminal, reader, printer = _terminal(centre)
    reader.place(card_for(jpki, holder.id))
    plain = terminal.start()
    terminal.enter_pin(plain, "1234")
    terminal.order_and_print(plain, DocumentOptions(DocumentKind.RESIDENT_RECORD), 200)
    with_number = terminal.start()
    terminal.enter_pin(with_number, "1234")
    result = terminal.order_and_print(
        with_number, DocumentOptions(DocumentKind.RESIDENT_RECORD, include_individual_number=True), 200)
    import subprocess

    def text(pdf_bytes: bytes) -> str:
        return subprocess.run(["pdftotext", "-", "-"], input=pdf_bytes, capture_output=True, check=True).stdout.decode()

    spaced = f"{number[:4]} {number[4:8]} {number[8:]}"
    assert spaced not in text(printer.jobs[plain.request_id][0])
    assert spaced in text(printer.jobs[with_number.request_id][0])
    view = municipal.verification(ctx, result.document_id, NOW)
    assert view.content is not None
    shown = [f.shown(reveal=False) for s in view.content.sections for f in s.fields if f.secret]
    assert shown == [f"●●●● ●●●● {number[-4:]}"]
    with ctx.db.connect() as conn:
        trail = " ".join(conn.execute(select(kiosk_audit.c.details)).scalars())
    assert number not in trail and spaced not in trail


def test_a_wrong_pin_counts_down_and_a_blocked_card_is_refused(ctx: Context, town: Town, jpki: TestJpki,
                                                               centre: Centre) -> None:
    terminal, reader, printer = _terminal(centre)
    card = card_for(jpki, town.adult().id)
    reader.place(card)
    session = terminal.start()
    with pytest.raises(WrongPin) as first:
        terminal.enter_pin(session, "0000")
    assert first.value.tries_left == 2 and first.value.reason is RefusalReason.WRONG_PIN
    with pytest.raises(WrongPin):
        terminal.enter_pin(session, "9999")
    with pytest.raises(PinBlocked) as blocked:
        terminal.enter_pin(session, "1111")
    assert blocked.value.reason is RefusalReason.PIN_BLOCKED
    assert _session_state(ctx, session.request_id) == ("aborted", "pin_blocked")
    again = terminal.start()
    with pytest.raises(PinBlocked):
        terminal.enter_pin(again, "1234")  # the right PIN no longer helps: only the window can reset it
    assert printer.jobs == {} and _documents(ctx) == 0


def test_a_good_pin_after_a_wrong_one_resets_the_count(ctx: Context, town: Town, jpki: TestJpki,
                                                       centre: Centre) -> None:
    terminal, reader, _ = _terminal(centre)
    card = card_for(jpki, town.adult().id)
    reader.place(card)
    session = terminal.start()
    with pytest.raises(WrongPin):
        terminal.enter_pin(session, "4321")
    terminal.enter_pin(session, "1234")
    assert card.tries_left == 3


@pytest.mark.parametrize("case", ["revoked", "expired", "unknown_ca", "not_registered", "forged_signature"])
def test_bad_certificates_are_refused_with_their_reason(ctx: Context, town: Town, jpki: TestJpki, centre: Centre,
                                                        case: str) -> None:
    holder = town.adult()
    if case == "revoked":
        card = card_for(jpki, holder.id)
        jpki.revoke(card.serial, NOW - timedelta(days=1))
        expected = RefusalReason.CERTIFICATE_REVOKED
    elif case == "expired":
        card = card_for(jpki, holder.id, valid_from=NOW - timedelta(days=400),
                        valid_until=NOW - timedelta(days=1))
        expected = RefusalReason.CERTIFICATE_EXPIRED
    elif case == "unknown_ca":
        card = TestJpki(NOW).issue_card(holder.id, NOW, key_type="ec")
        expected = RefusalReason.UNKNOWN_CERTIFICATE
    elif case == "not_registered":
        card = card_for(jpki, holder.id, register=False)
        expected = RefusalReason.UNKNOWN_CERTIFICATE  # the responder does not know the serial
    else:
        card = card_for(jpki, holder.id)
        other = card_for(jpki, town.adult(1).id)
        card.key = other.key  # a card answering with a key that is not its certificate's
        expected = RefusalReason.BAD_SIGNATURE
    terminal, reader, printer = _terminal(centre)
    reader.place(card)
    session = terminal.start()
    with pytest.raises(Refused) as refused:
        terminal.enter_pin(session, "1234")
    assert refused.value.reason is expected
    assert _session_state(ctx, session.request_id) == ("aborted", expected.value)
    assert printer.jobs == {} and _documents(ctx) == 0


@pytest.mark.parametrize(("moment", "expected"), [
    (datetime(2026, 4, 6, 6, 29, tzinfo=JST), RefusalReason.CLOSED_HOURS),
    (datetime(2026, 4, 6, 6, 30, tzinfo=JST), None),
    (datetime(2027, 1, 3, 22, 0, tzinfo=JST), RefusalReason.YEAR_END),
])  # every boundary is in test_model.py; here, that the centre applies them
def test_hours_and_the_year_end(ctx: Context, town: Town, jpki: TestJpki, centre: Centre, moment: datetime,
                                expected: RefusalReason | None) -> None:
    terminal, reader, _ = _terminal(centre, moment)
    jpki.clock = lambda: moment
    reader.place(jpki.issue_card(town.adult().id, moment))
    if expected is None:
        terminal.enter_pin(terminal.start(), "1234")
        return
    with pytest.raises(Refused) as refused:
        terminal.start()
    assert refused.value.reason is expected and _documents(ctx) == 0


def test_maintenance_days_nationwide_and_of_one_municipality(ctx: Context, town: Town, jpki: TestJpki,
                                                             centre: Centre) -> None:
    terminal, reader, printer = _terminal(centre)
    reader.place(card_for(jpki, town.adult().id))
    municipal.add_closure(ctx, SYSTEM, NOW.astimezone(JST).date(), "システム更新", NOW, municipality_code=town.code)
    session = terminal.start()  # the centre is open …
    with pytest.raises(Refused) as refused:
        terminal.enter_pin(session, "1234")  # … the home municipality is not
    assert refused.value.reason is RefusalReason.MAINTENANCE
    municipal.add_closure(ctx, SYSTEM, NOW.astimezone(JST).date(), "センター保守", NOW)
    with pytest.raises(Refused) as national:
        terminal.start()
    assert national.value.reason is RefusalReason.MAINTENANCE
    assert printer.jobs == {} and _documents(ctx) == 0


def test_a_document_suspended_for_the_day_is_refused_and_the_others_are_not(ctx: Context, town: Town,
                                                                            jpki: TestJpki, centre: Centre) -> None:
    municipal.add_closure(ctx, SYSTEM, NOW.astimezone(JST).date(), "税データ切替", NOW, municipality_code=town.code,
                          kind=DocumentKind.RESIDENT_RECORD_ENTRY)
    municipal.add_closure(ctx, SYSTEM, NOW.astimezone(JST).date() + timedelta(days=1), "翌日の保守", NOW,
                          municipality_code=town.code)
    terminal, reader, printer = _terminal(centre)
    reader.place(card_for(jpki, town.adult().id))
    session = terminal.start()
    menu = terminal.enter_pin(session, "1234")  # tomorrow's closure is not today's
    suspended, copy = menu.item(DocumentKind.RESIDENT_RECORD_ENTRY), menu.item(DocumentKind.RESIDENT_RECORD)
    assert suspended is not None and suspended.refusal is RefusalReason.DOCUMENT_SUSPENDED
    assert copy is not None and copy.refusal is None
    with pytest.raises(Refused) as refused:  # the centre offers only what the menu did
        terminal.order_and_print(session, DocumentOptions(DocumentKind.RESIDENT_RECORD_ENTRY), 300)
    assert refused.value.reason is RefusalReason.NOT_OFFERED
    order = municipal.DocumentOrder("b" * 32, town.adult().id, town.code,  # and the municipality checks again
                                    DocumentOptions(DocumentKind.RESIDENT_RECORD_ENTRY), VERIFY_BASE)
    with pytest.raises(Refused) as again:
        municipal.prepare(ctx, SYSTEM, order, NOW)
    assert again.value.reason is RefusalReason.DOCUMENT_SUSPENDED
    assert printer.jobs == {} and _documents(ctx) == 0


def _refused_at_menu(ctx: Context, centre: Centre, jpki: TestJpki, resident_id: int,
                     at: datetime = NOW) -> RefusalReason:
    terminal, reader, printer = _terminal(centre, at)
    reader.place(jpki.issue_card(resident_id, at))
    session = terminal.start()
    with pytest.raises(Refused) as refused:
        terminal.enter_pin(session, "1234")
    assert printer.jobs == {} and _session_state(ctx, session.request_id)[0] == "aborted"
    return refused.value.reason


def test_ineligible_holders_get_a_clear_refusal(ctx: Context, town: Town, jpki: TestJpki, centre: Centre) -> None:
    assert _refused_at_menu(ctx, centre, jpki, town.child().id) is RefusalReason.UNDER_15
    abroad = town.adult(0)
    registry.record_move_abroad(ctx, SYSTEM, abroad.id, NOW, continued_use=True)
    assert _refused_at_menu(ctx, centre, jpki, abroad.id) is RefusalReason.MOVED_OUT
    filed = town.adult(1)
    municipal.file_transfer_out(ctx, SYSTEM, filed.id, NOW.date() + timedelta(days=7), NOW)
    assert _refused_at_menu(ctx, centre, jpki, filed.id) is RefusalReason.MOVED_OUT
    protected = town.adult(2)
    municipal.add_support_measure(ctx, SYSTEM, protected.id, NOW.date() - timedelta(days=3), None, NOW)
    assert _refused_at_menu(ctx, centre, jpki, protected.id) is RefusalReason.SUPPORT_MEASURE
    died = town.adult(3)
    registry.record_death(ctx, SYSTEM, died.id, NOW)
    assert _refused_at_menu(ctx, centre, jpki, died.id) is RefusalReason.DECEASED
    mover = town.adult(4)
    registry.move_resident(ctx, SYSTEM, mover.id, "北海道札幌市中央区北1条西2丁目", "011002", NOW)
    municipal.configure(ctx, SYSTEM, "011002", NOW)
    assert _refused_at_menu(ctx, centre, jpki, mover.id) is RefusalReason.MOVED_IN_TODAY  # 転入 today
    terminal, reader, _ = _terminal(centre, NOW + timedelta(days=1))
    jpki.clock = lambda: NOW + timedelta(days=1)
    reader.place(jpki.issue_card(mover.id, NOW))
    menu = terminal.enter_pin(terminal.start(), "1234")  # the next day it works, from the new town
    assert menu.home_municipality == "011002"
    assert _documents(ctx) == 0


def test_a_document_the_municipality_does_not_offer(ctx: Context, town: Town, jpki: TestJpki,
                                                    centre: Centre) -> None:
    municipal.configure(ctx, SYSTEM, town.code, NOW, offerings=[Offering(DocumentKind.RESIDENT_RECORD, 150)])
    terminal, reader, printer = _terminal(centre)
    reader.place(card_for(jpki, town.adult().id))
    session = terminal.start()
    menu = terminal.enter_pin(session, "1234")
    assert [i.kind for i in menu.items] == [DocumentKind.RESIDENT_RECORD] and menu.items[0].fee_yen == 150
    with pytest.raises(Refused) as refused:
        terminal.order_and_print(session, DocumentOptions(DocumentKind.SEAL_REGISTRATION), 300)
    assert refused.value.reason is RefusalReason.NOT_OFFERED
    assert printer.jobs == {} and _documents(ctx) == 0
    assert _session_state(ctx, session.request_id) == ("aborted", "not_offered")


def test_underpaid_is_refused_and_nothing_changes(ctx: Context, town: Town, jpki: TestJpki, centre: Centre) -> None:
    terminal, reader, printer = _terminal(centre)
    reader.place(card_for(jpki, town.adult().id))
    session = terminal.start()
    terminal.enter_pin(session, "1234")
    with pytest.raises(Refused) as refused:
        terminal.order_and_print(session, DocumentOptions(DocumentKind.RESIDENT_RECORD, copies=2), 300)
    assert refused.value.reason is RefusalReason.WRONG_FEE
    assert _session_state(ctx, session.request_id) == ("authenticated", None)
    terminal.order_and_print(session, DocumentOptions(DocumentKind.RESIDENT_RECORD, copies=2), 400)
    assert len(printer.jobs) == 1


def test_every_document_kind(ctx: Context, town: Town, jpki: TestJpki, centre: Centre) -> None:
    holder = town.adult()
    terminal, reader, printer = _terminal(centre)
    reader.place(card_for(jpki, holder.id))
    titles = {}
    for kind in DocumentKind:
        session = terminal.start()
        menu = terminal.enter_pin(session, "1234")
        item = menu.item(kind)
        assert item is not None and item.refusal is None, (kind, item)
        result = terminal.order_and_print(session, DocumentOptions(kind), item.fee_yen)
        view = municipal.verification(ctx, result.document_id, NOW)
        assert view.valid and view.content is not None
        titles[kind] = view.content.title
    assert titles[DocumentKind.INCOME_TAX] == "所得・課税証明書（令和7年度）"
    assert titles[DocumentKind.FAMILY_REGISTER_ALL] == "戸籍全部事項証明書"
    assert len(printer.jobs) == len(DocumentKind)


def test_records_missing_or_pending_give_their_refusal(ctx: Context, town: Town, jpki: TestJpki,
                                                       centre: Centre) -> None:
    holder = town.adult()
    with ctx.db.begin() as conn:
        from mynacard.kiosk.tables import (
            kiosk_family_register_members,
            kiosk_family_registers,
            kiosk_seal_registrations,
        )

        conn.execute(kiosk_seal_registrations.delete().where(kiosk_seal_registrations.c.resident_id == holder.id))
        register_id = conn.execute(select(kiosk_family_register_members.c.register_id).where(
            kiosk_family_register_members.c.resident_id == holder.id)).scalar_one()
        conn.execute(kiosk_family_registers.update().where(kiosk_family_registers.c.id == register_id)
                     .values(municipality_code="011002"))
    municipal.configure(ctx, SYSTEM, "011002", NOW)
    terminal, reader, _ = _terminal(centre)
    reader.place(card_for(jpki, holder.id))
    session = terminal.start()
    menu = terminal.enter_pin(session, "1234")
    refusals = {i.kind: i.refusal for i in menu.items}
    assert refusals[DocumentKind.SEAL_REGISTRATION] is RefusalReason.NO_SEAL_REGISTRATION
    assert refusals[DocumentKind.FAMILY_REGISTER_ALL] is RefusalReason.FAMILY_REGISTER_NOT_REGISTERED
    menu = terminal.register_family_register_use(session)  # 利用登録申請, once, at the kiosk
    assert menu.item(DocumentKind.FAMILY_REGISTER_ALL).refusal is None  # type: ignore[union-attr]
    municipal.set_family_register_pending(ctx, SYSTEM, register_id, True, NOW)
    again = terminal.start()
    menu = terminal.enter_pin(again, "1234")
    assert menu.item(DocumentKind.FAMILY_REGISTER_ALL).refusal is RefusalReason.FAMILY_REGISTER_PENDING  # type: ignore[union-attr]
    with pytest.raises(Refused) as refused:
        terminal.order_and_print(again, DocumentOptions(DocumentKind.FAMILY_REGISTER_ALL), 350)
    assert refused.value.reason is RefusalReason.NOT_OFFERED


def test_household_members_only_and_support_measures_in_the_household(ctx: Context, town: Town, jpki: TestJpki,
                                                                     centre: Centre) -> None:
    holder = town.adult(household_size=3)
    stranger = next(r for r in town.people.values() if r.household_id != holder.household_id)
    terminal, reader, printer = _terminal(centre)
    reader.place(card_for(jpki, holder.id))
    session = terminal.start()
    terminal.enter_pin(session, "1234")
    with pytest.raises(Refused) as refused:
        terminal.order_and_print(session, DocumentOptions(DocumentKind.RESIDENT_RECORD, (holder.id, stranger.id)),
                                 400)
    assert refused.value.reason is RefusalReason.NOT_IN_HOUSEHOLD
    member = next(r for r in town.people.values() if r.household_id == holder.household_id and r.id != holder.id)
    municipal.add_support_measure(ctx, SYSTEM, member.id, NOW.date(), None, NOW)
    again = terminal.start()
    terminal.enter_pin(again, "1234")
    with pytest.raises(Refused) as protected:
        terminal.order_and_print(again, DocumentOptions(DocumentKind.RESIDENT_RECORD, (holder.id, member.id)), 400)
    assert protected.value.reason is RefusalReason.SUPPORT_MEASURE
    assert printer.jobs == {} and _documents(ctx) == 0


def test_a_retried_order_delivers_the_same_document_once(ctx: Context, town: Town, jpki: TestJpki,
                                                         centre: Centre) -> None:
    from mynacard.principal import Principal, Role

    kiosk = Principal(Role.KIOSK, "kiosk-0001")
    holder = town.adult()
    card = card_for(jpki, holder.id)
    opened = centre.open_session(kiosk, "a" * 32, NOW)
    assert centre.open_session(kiosk, "a" * 32, NOW).challenge == opened.challenge
    signature = card.sign_challenge("1234", opened.challenge)
    centre.authenticate(kiosk, "a" * 32, card.certificate, signature, NOW)
    centre.authenticate(kiosk, "a" * 32, card.certificate, signature, NOW)  # a retry: same answer
    options = DocumentOptions(DocumentKind.RESIDENT_RECORD_ENTRY)
    first = centre.order(kiosk, "a" * 32, options, 200, NOW)
    second = centre.order(kiosk, "a" * 32, options, 200, NOW)
    assert first.document_id == second.document_id and first.pdf == second.pdf
    assert _documents(ctx) == 1
    with pytest.raises(Exception, match="taken"):
        centre.open_session(Principal(Role.KIOSK, "kiosk-0002"), "a" * 32, NOW)
    centre.printed(kiosk, "a" * 32, first.document_id, first.pdf_sha256, NOW)
    centre.printed(kiosk, "a" * 32, first.document_id, first.pdf_sha256, NOW)
    with pytest.raises(Exception, match="printed"):
        centre.abort(kiosk, "a" * 32, "late", NOW)


def test_an_abort_after_release_voids_the_document(ctx: Context, town: Town, jpki: TestJpki,
                                                   centre: Centre) -> None:
    from mynacard.principal import Principal, Role

    kiosk = Principal(Role.KIOSK, "kiosk-0001")
    card = card_for(jpki, town.adult().id)
    rid = "b" * 32
    opened = centre.open_session(kiosk, rid, NOW)
    centre.authenticate(kiosk, rid, card.certificate, card.sign_challenge("1234", opened.challenge), NOW)
    released = centre.order(kiosk, rid, DocumentOptions(DocumentKind.RESIDENT_RECORD), 200, NOW)
    assert municipal.verification(ctx, released.document_id, NOW).valid
    view = centre.abort(kiosk, rid, "paper_jam", NOW)
    assert view.refusal == "paper_jam" and view.paid_yen == 200
    after = municipal.verification(ctx, released.document_id, NOW)
    assert not after.valid and after.state is DocumentState.VOID
    with pytest.raises(Refused):
        centre.order(kiosk, rid, DocumentOptions(DocumentKind.RESIDENT_RECORD), 200, NOW)


def test_a_server_side_timeout_aborts_the_whole_request(ctx: Context, town: Town, jpki: TestJpki) -> None:
    class SlowGateway(LocalGateway):
        def prepare(self, order, now, deadline):  # type: ignore[no-untyped-def]
            prepared = super().prepare(order, now, None)
            import time

            time.sleep(0.05)  # the municipality answers after the request's deadline
            return prepared

    centre = Centre(ctx, jpki.authenticator(), jpki, SlowGateway(ctx), VERIFY_BASE)
    terminal, reader, printer = _terminal(centre)
    reader.place(card_for(jpki, town.adult().id))
    session = terminal.start()
    terminal.enter_pin(session, "1234")
    with pytest.raises(Refused) as refused:
        terminal.order_and_print(session, DocumentOptions(DocumentKind.RESIDENT_RECORD), 200, timeout_ms=20)
    assert refused.value.reason is RefusalReason.TIMEOUT
    assert printer.jobs == {}
    assert _session_state(ctx, session.request_id) == ("aborted", "timeout")
    with ctx.db.connect() as conn:
        states = set(conn.execute(select(kiosk_documents.c.state)).scalars())
    assert states == {"void"}


def test_reconcile_expires_forgotten_requests(ctx: Context, town: Town, jpki: TestJpki, centre: Centre) -> None:
    terminal, reader, _ = _terminal(centre)
    reader.place(card_for(jpki, town.adult().id))
    session = terminal.start()
    terminal.enter_pin(session, "1234")
    report = centre.reconcile(SYSTEM, NOW + timedelta(minutes=11))
    assert report["expired"] == 1
    assert _session_state(ctx, session.request_id) == ("aborted", "session_expired")


def test_a_date_in_the_next_fiscal_year_switches_the_tax_certificate(ctx: Context, town: Town, jpki: TestJpki,
                                                                     centre: Centre) -> None:
    june = datetime(2026, 6, 1, 10, 0, tzinfo=JST)
    terminal, reader, _ = _terminal(centre, june)
    reader.place(jpki.issue_card(town.adult().id, june))
    jpki.clock = lambda: june
    session = terminal.start()
    menu = terminal.enter_pin(session, "1234")
    assert menu.item(DocumentKind.INCOME_TAX).refusal is RefusalReason.NO_TAX_RECORD  # type: ignore[union-attr]
    assert date(2026, 6, 1) > NOW.date()


def test_the_release_check_stops_another_persons_document(ctx: Context, town: Town, jpki: TestJpki) -> None:
    """A municipality that answers with a document for someone else (the 2023 failure) is caught before
    release: nothing is printed, the document is voided, and the check is in the trail with matched=false."""
    from mynacard.kiosk.municipal import DocumentOrder

    holder, stranger = town.adult(0), town.adult(5)

    class CrossedGateway(LocalGateway):
        def prepare(self, order: DocumentOrder, now: datetime, deadline: float | None):  # type: ignore[no-untyped-def]
            crossed = DocumentOrder(order.request_id, stranger.id, order.issuing_municipality, order.options,
                                    order.verify_base_url)
            return super().prepare(crossed, now, deadline)

    centre = Centre(ctx, jpki.authenticator(), jpki, CrossedGateway(ctx), VERIFY_BASE)
    terminal, reader, printer = _terminal(centre)
    reader.place(card_for(jpki, holder.id))
    session = terminal.start()
    terminal.enter_pin(session, "1234")
    with pytest.raises(Refused):
        terminal.order_and_print(session, DocumentOptions(DocumentKind.RESIDENT_RECORD_ENTRY), 200)
    assert printer.jobs == {}
    assert _session_state(ctx, session.request_id) == ("aborted", "release_check_failed")
    with ctx.db.connect() as conn:
        check = json.loads(conn.execute(select(kiosk_audit.c.details).where(
            kiosk_audit.c.request_id == session.request_id, kiosk_audit.c.action == "release_check")).scalar_one())
        state = conn.execute(select(kiosk_documents.c.state)).scalar_one()
    assert check["matched"] is False and "the document names another holder" in check["problems"]
    assert "the PDF's holder is not the authenticated card holder" in check["problems"]
    assert state == "void"


def test_a_changed_audit_row_or_a_removed_one_breaks_the_chain(ctx: Context, town: Town, jpki: TestJpki,
                                                               centre: Centre) -> None:
    terminal, reader, _ = _terminal(centre)
    reader.place(card_for(jpki, town.adult().id))
    session = terminal.start()
    terminal.enter_pin(session, "1234")
    terminal.order_and_print(session, DocumentOptions(DocumentKind.RESIDENT_RECORD), 200)
    assert verify_audit(ctx).ok
    with ctx.db.begin() as conn:
        row = conn.execute(select(kiosk_audit.c.id, kiosk_audit.c.stream).where(
            kiosk_audit.c.action == "release_check")).one()
        conn.execute(kiosk_audit.update().where(kiosk_audit.c.id == row.id).values(details='{"matched": true}'))
    report = verify_audit(ctx)
    assert not report.ok and any("content changed" in p for p in report.problems)
    with ctx.db.begin() as conn:
        last = conn.execute(select(kiosk_audit.c.id).where(kiosk_audit.c.stream == row.stream)
                            .order_by(kiosk_audit.c.seq.desc()).limit(1)).scalar_one()
        conn.execute(kiosk_audit.delete().where(kiosk_audit.c.id == last))
    assert any("recorded head" in p for p in verify_audit(ctx).problems)
