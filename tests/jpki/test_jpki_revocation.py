"""Revocation on real events, with the reason codes of reference §4, and the CRLs that carry it."""

from __future__ import annotations

from datetime import timedelta

import pytest
from cryptography import x509

from mynacard.errors import InvalidInput, NotFound
from mynacard.jpki import service
from mynacard.jpki.model import CaKind, CertificateStatus, RevocationReason
from mynacard.principal import Principal, Role
from mynacard.registry import service as registry
from tests.conftest import NOW
from tests.jpki.support import CLERK, OPERATOR, OTHER_CLERK, SYSTEM, Card, Town


def _status(town: Town, card: Card) -> dict[CaKind, tuple[CertificateStatus, RevocationReason | None]]:
    latest = {}
    for v in service.certificates_of_card(town.ctx, SYSTEM, card.id):
        latest[v.kind] = (v.status, v.revocation_reason)
    return latest


GOOD = (CertificateStatus.GOOD, None)
AFFILIATION = (CertificateStatus.REVOKED, RevocationReason.AFFILIATION_CHANGED)


def test_a_move_revokes_the_signing_certificate_only(town: Town) -> None:
    card = town.card(town.resident())
    registry.move_resident(town.ctx, CLERK, card.resident_id, "東京都千代田区丸の内1番1号", None, NOW)
    assert _status(town, card) == {CaKind.SIGN: AFFILIATION, CaKind.AUTH: GOOD}


def test_a_move_to_another_municipality_revokes_the_signing_certificate(town: Town) -> None:
    card = town.card(town.resident())
    registry.move_resident(town.ctx, CLERK, card.resident_id, "北海道札幌市中央区北1条西2丁目", "011002", NOW)
    assert _status(town, card) == {CaKind.SIGN: AFFILIATION, CaKind.AUTH: GOOD}


def test_a_name_change_revokes_the_signing_certificate_only(town: Town) -> None:
    card = town.card(town.resident(given="花子", sex="2", kana=("ヤマダ", "ハナコ")))
    registry.change_name(town.ctx, CLERK, card.resident_id, "佐藤", "花子", "サトウ", "ハナコ", NOW,
                         keep_maiden_name=True)
    assert _status(town, card) == {CaKind.SIGN: AFFILIATION, CaKind.AUTH: GOOD}


def test_death_revokes_both(town: Town) -> None:
    card = town.card(town.resident())
    registry.record_death(town.ctx, CLERK, card.resident_id, NOW)
    assert _status(town, card) == {CaKind.SIGN: AFFILIATION, CaKind.AUTH: AFFILIATION}


def test_moving_abroad_with_continued_use_keeps_the_authentication_certificate(town: Town) -> None:
    kept = town.card(town.resident())
    registry.record_move_abroad(town.ctx, CLERK, kept.resident_id, NOW, continued_use=True)
    assert _status(town, kept) == {CaKind.SIGN: AFFILIATION, CaKind.AUTH: GOOD}
    gone = town.card(town.resident(given="次郎", kana=("ヤマダ", "ジロウ")))
    registry.record_move_abroad(town.ctx, CLERK, gone.resident_id, NOW, continued_use=False)
    assert _status(town, gone) == {CaKind.SIGN: AFFILIATION, CaKind.AUTH: AFFILIATION}


def test_loss_abolition_and_the_holders_request(town: Town) -> None:
    lost = town.card(town.resident())
    service.hold_card_certificates(town.ctx, CLERK, lost.id, NOW)
    hold = (CertificateStatus.REVOKED, RevocationReason.CERTIFICATE_HOLD)
    assert _status(town, lost) == {CaKind.SIGN: hold, CaKind.AUTH: hold}
    # J-LIS never releases a hold; a later abolition changes nothing
    service.abolish_card_certificates(town.ctx, OPERATOR, lost.id, NOW + timedelta(days=1))
    assert _status(town, lost) == {CaKind.SIGN: hold, CaKind.AUTH: hold}

    returned = town.card(town.resident(given="次郎", kana=("ヤマダ", "ジロウ")))
    done = service.abolish_card_certificates(town.ctx, OPERATOR, returned.id, NOW)
    assert {v.revocation_reason for v in done} == {RevocationReason.CESSATION_OF_OPERATION}

    asked = town.card(town.resident(given="三郎", kana=("ヤマダ", "サブロウ")))
    me = Principal(Role.RESIDENT, str(asked.resident_id))
    service.revoke_at_holder_request(town.ctx, me, asked.id, NOW, kinds=[CaKind.SIGN])
    assert _status(town, asked) == {CaKind.SIGN: (CertificateStatus.REVOKED,
                                                  RevocationReason.CESSATION_OF_OPERATION), CaKind.AUTH: GOOD}
    service.revoke_at_holder_request(town.ctx, CLERK, asked.id, NOW, kinds=[CaKind.AUTH], key_compromise=True)
    assert _status(town, asked)[CaKind.AUTH] == (CertificateStatus.REVOKED, RevocationReason.KEY_COMPROMISE)
    stranger = Principal(Role.RESIDENT, str(lost.resident_id))
    with pytest.raises(NotFound):
        service.revoke_at_holder_request(town.ctx, stranger, asked.id, NOW)
    with pytest.raises(NotFound):
        service.hold_card_certificates(town.ctx, OTHER_CLERK, asked.id, NOW)


def test_revoking_twice_changes_nothing_and_a_bad_reason_is_refused(town: Town) -> None:
    card = town.card(town.resident())
    serial = x509.load_der_x509_certificate(card.issued.auth_certificate or b"").serial_number
    first = service.revoke_certificate(town.ctx, OPERATOR, serial, "keyCompromise", NOW)
    again = service.revoke_certificate(town.ctx, OPERATOR, serial, "superseded", NOW + timedelta(hours=1))
    assert (again.revoked_at, again.revocation_reason) == (first.revoked_at, RevocationReason.KEY_COMPROMISE)
    history = service.certificate_events(town.ctx, OPERATOR, serial)
    assert [(e["from_status"], e["to_status"]) for e in history] == [(None, "good"), ("good", "revoked")]
    with pytest.raises(InvalidInput):
        service.revoke_certificate(town.ctx, OPERATOR, serial, "tired", NOW)


def test_crls_number_monotonically_and_carry_the_reasons(town: Town) -> None:
    card = town.card(town.resident())
    other = town.card(town.resident(given="次郎", kana=("ヤマダ", "ジロウ")))
    t0 = NOW
    full1 = service.publish_crls(town.ctx, OPERATOR, t0, force=True, kinds=[CaKind.SIGN])
    assert [(c.is_delta, c.entry_count) for c in full1] == [(False, 0)]
    registry.move_resident(town.ctx, CLERK, card.resident_id, "東京都千代田区丸の内2番2号", None, t0)
    delta = service.current_crl(town.ctx, CaKind.SIGN, True, t0 + timedelta(minutes=1))
    parsed = x509.load_der_x509_crl(delta.der)
    assert parsed.extensions.get_extension_for_class(x509.DeltaCRLIndicator).value.crl_number == full1[0].number
    sign_serial = x509.load_der_x509_certificate(card.issued.sign_certificate or b"").serial_number
    entry = parsed.get_revoked_certificate_by_serial_number(sign_serial)
    assert entry is not None
    assert entry.extensions.get_extension_for_class(x509.CRLReason).value.reason is x509.ReasonFlags.affiliation_changed
    # a hold after the delta: in the next delta and the next full CRL, each with a higher number
    service.hold_card_certificates(town.ctx, CLERK, other.id, t0 + timedelta(minutes=2))
    later = t0 + timedelta(minutes=20)
    delta2 = service.current_crl(town.ctx, CaKind.SIGN, True, later)
    full2 = service.current_crl(town.ctx, CaKind.SIGN, False, later + timedelta(days=1))
    numbers = [full1[0].number, delta.number, delta2.number, full2.number]
    assert numbers == sorted(numbers) and len(set(numbers)) == 4
    other_serial = x509.load_der_x509_certificate(other.issued.sign_certificate or b"").serial_number
    for crl in (delta2, full2):
        got = x509.load_der_x509_crl(crl.der)
        assert {e.serial_number for e in got} == {sign_serial, other_serial}
        held = got.get_revoked_certificate_by_serial_number(other_serial)
        assert held is not None
        assert held.extensions.get_extension_for_class(x509.CRLReason).value.reason is x509.ReasonFlags.certificate_hold
    # the next delta after the new full CRL is empty again
    delta3 = service.current_crl(town.ctx, CaKind.SIGN, True, later + timedelta(days=1, minutes=1))
    assert delta3.base_number == full2.number and delta3.entry_count == 0
    assert service.crl_numbers(town.ctx, CaKind.SIGN)[-1] == (delta3.number, True)


def test_expired_certificates_leave_the_crl(town: Town) -> None:
    card = town.card(town.resident())
    service.hold_card_certificates(town.ctx, CLERK, card.id, NOW)
    before = service.publish_crls(town.ctx, OPERATOR, NOW, force=True, kinds=[CaKind.AUTH])
    assert before[0].entry_count == 1
    after_expiry = x509.load_der_x509_certificate(card.issued.auth_certificate or b"").not_valid_after_utc
    late = service.publish_crls(town.ctx, OPERATOR, after_expiry + timedelta(days=1), force=True,
                                kinds=[CaKind.AUTH])
    assert late[0].entry_count == 0


def test_a_crl_is_signed_by_its_ca_and_not_stale(town: Town) -> None:
    town.card(town.resident())
    info = service.current_crl(town.ctx, CaKind.AUTH, False, NOW)
    crl = x509.load_der_x509_crl(info.der)
    ca = service.current_authority(town.ctx, CaKind.AUTH, NOW).certificate
    assert crl.is_signature_valid(ca.public_key())  # type: ignore[arg-type]
    assert crl.issuer == ca.subject and crl.next_update_utc is not None and crl.next_update_utc > NOW
    again = service.current_crl(town.ctx, CaKind.AUTH, False, NOW + timedelta(hours=1))
    assert again.number == info.number  # not due: the same CRL is served


def test_a_responder_signs_the_revoked_answer_as_soon_as_it_sees_the_revocation(town: Town) -> None:
    from sqlalchemy import select

    from mynacard.jpki.responder import OcspResponder
    from mynacard.jpki.tables import jpki_ocsp_responses

    card = town.card(town.resident())
    responder = OcspResponder(town.ctx)
    assert responder.refresh_revoked(NOW) == 0
    registry.move_resident(town.ctx, CLERK, card.resident_id, "東京都千代田区丸の内1番1号", None, NOW)
    assert responder.refresh_revoked(NOW) == 1  # the registry's reaction revoked; this process signs the answer
    with town.ctx.db.connect() as conn:
        stored = conn.execute(select(jpki_ocsp_responses.c.status, jpki_ocsp_responses.c.hash_algorithm)).all()
    assert [tuple(r) for r in stored] == [("revoked", "sha1")]
    assert responder.refresh_revoked(NOW) == 0


def test_a_hold_inside_the_callers_transaction_commits_or_rolls_back_with_it(town: Town) -> None:
    """The window suspends a card and holds its certificates in one transaction: all or nothing."""
    card = town.card(town.resident())

    class Crash(Exception):
        pass

    with pytest.raises(Crash), town.ctx.transaction() as tx:
        held = service.hold_card_certificates(town.ctx, CLERK, card.id, NOW, tx=tx)
        assert {v.revocation_reason for v in held} == {RevocationReason.CERTIFICATE_HOLD}
        raise Crash
    assert {v.status for v in service.certificates_of_card(town.ctx, SYSTEM, card.id)} == {CertificateStatus.GOOD}
    with town.ctx.transaction() as tx:
        service.hold_card_certificates(town.ctx, CLERK, card.id, NOW, tx=tx)
    after = service.certificates_of_card(town.ctx, SYSTEM, card.id)
    assert {(v.status, v.revocation_reason) for v in after} == {
        (CertificateStatus.REVOKED, RevocationReason.CERTIFICATE_HOLD)}
