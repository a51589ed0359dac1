"""Issuance in the production flow (the chip's keys → the CA → the chip), at the window, and the rules."""

from __future__ import annotations

from dataclasses import replace
from datetime import date, timedelta

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from mynacard.cards.personalisation import CardHolder
from mynacard.clock import JST
from mynacard.errors import Conflict, Forbidden, InvalidInput, NotFound
from mynacard.jpki import service
from mynacard.jpki.model import CaKind, CertificateStatus, RevocationReason
from mynacard.jpki.profiles import read_signing_facts
from mynacard.principal import Principal, Role
from mynacard.registry import service as registry
from tests.conftest import NOW
from tests.jpki.support import CHIYODA, CLERK, MANUFACTURER, OPERATOR, OTHER_CLERK, SYSTEM, Town, chip_key, spki


def test_manufacture_issues_both_certificates_from_the_chip_keys(town: Town) -> None:
    rid = town.resident()
    card = town.card(rid)
    issued = card.issued
    assert issued.auth_certificate and issued.sign_certificate
    auth = x509.load_der_x509_certificate(issued.auth_certificate)
    sign = x509.load_der_x509_certificate(issued.sign_certificate)
    # the certificates carry the chip's public keys and chain to the CA certificates given to the chip
    assert auth.public_key().public_numbers() == card.auth_key.public_key().public_numbers()
    assert sign.public_key().public_numbers() == card.sign_key.public_key().public_numbers()
    auth.verify_directly_issued_by(x509.load_der_x509_certificate(issued.auth_ca_certificate))
    sign.verify_directly_issued_by(x509.load_der_x509_certificate(issued.sign_ca_certificate))
    facts = read_signing_facts(sign)
    assert facts is not None and facts.name == "山田\u3000太郎" and facts.birth_date == "319800101"
    assert read_signing_facts(auth) is None
    # recorded against the card and the resident
    views = service.certificates_of_card(town.ctx, SYSTEM, card.id)
    assert {(v.kind, v.status) for v in views} == {(CaKind.AUTH, CertificateStatus.GOOD),
                                                    (CaKind.SIGN, CertificateStatus.GOOD)}
    assert all(v.resident_id == rid and v.card_serial == card.serial for v in views)


def test_validity_is_the_fifth_birthday_never_past_the_card(town: Town) -> None:
    rid = town.resident(birth=date(1990, 6, 15))
    card = town.card(rid)
    sign = x509.load_der_x509_certificate(card.issued.sign_certificate or b"")
    auth = x509.load_der_x509_certificate(card.issued.auth_certificate or b"")
    made_on = (NOW - timedelta(days=10)).astimezone(JST).date()
    first = date(made_on.year, 6, 15) if date(made_on.year, 6, 15) > made_on else date(made_on.year + 1, 6, 15)
    fifth = first.replace(year=first.year + 4)  # birthdays strictly after issuance: the 1st, … the 5th
    for cert in (sign, auth):
        end = cert.not_valid_after_utc.astimezone(JST)
        assert end.date() == fifth and (end.hour, end.minute, end.second) == (23, 59, 59)


def test_a_child_gets_no_signing_certificate_and_a_declined_one_is_not_issued(town: Town) -> None:
    child = town.card(town.resident(given="花子", birth=date(2016, 5, 1), sex="2", kana=("ヤマダ", "ハナコ")))
    assert child.issued.auth_certificate is not None and child.issued.sign_certificate is None
    declined = town.card(town.resident(given="次郎", kana=("ヤマダ", "ジロウ")), wants_sign=False)
    assert declined.issued.sign_certificate is None and declined.issued.auth_certificate is not None


def test_a_retry_with_the_same_keys_returns_the_same_certificates(town: Town) -> None:
    rid = town.resident()
    card = town.card(rid)
    view = service.certificates_of_card(town.ctx, SYSTEM, card.id)
    holder = CardHolder(card.serial, CHIYODA, registry.get_resident(town.ctx, SYSTEM, rid).facts,
                        date(2036, 1, 1), date(2031, 1, 1), True, True, card_id=card.id)
    again = service.issue_card_certificates(town.ctx, MANUFACTURER, holder, spki(card.auth_key),
                                            spki(card.sign_key), NOW)
    assert again.auth_certificate == card.issued.auth_certificate
    assert again.sign_certificate == card.issued.sign_certificate
    assert len(service.certificates_of_card(town.ctx, SYSTEM, card.id)) == len(view) == 2


def test_facts_that_no_longer_match_the_registry_withhold_the_signing_certificate(town: Town) -> None:
    rid = town.resident()
    card = town.card(rid)
    stale = registry.get_resident(town.ctx, SYSTEM, rid).facts
    holder = CardHolder(card.serial, CHIYODA, replace(stale, address="東京都千代田区永田町2番2号"),
                        date(2036, 1, 1), date(2031, 1, 1), True, True, card_id=card.id)
    out = service.issue_card_certificates(town.ctx, MANUFACTURER, holder, spki(chip_key()), spki(chip_key()), NOW)
    assert out.sign_certificate is None and out.auth_certificate is not None


def test_bad_input_is_refused_whole_and_changes_nothing(town: Town) -> None:
    rid = town.resident()
    facts = registry.get_resident(town.ctx, SYSTEM, rid).facts
    good = CardHolder("E000000000101", CHIYODA, facts, date(2036, 1, 1), date(2031, 1, 1), True, True,
                      resident_id=rid)
    small = rsa.generate_private_key(public_exponent=65537, key_size=1024)
    with pytest.raises(InvalidInput) as err:
        service.issue_batch(town.ctx, MANUFACTURER, [
            service.IssueRequest(good, spki(chip_key()), spki(chip_key())),
            service.IssueRequest(replace(good, card_serial="E000000000201"), spki(small), b"not a key"),
        ], NOW)
    assert len(err.value.problems) == 1 and "RSA-2048" in err.value.problems[0]
    assert service.statistics(town.ctx) == {"sign": {"good": 0, "revoked": 0}, "auth": {"good": 0, "revoked": 0}}
    with pytest.raises(Forbidden):
        service.issue_batch(town.ctx, CLERK, [service.IssueRequest(good, spki(chip_key()), None)], NOW)


def test_window_reissue_after_a_move_keeps_lineage_and_supersedes_nothing_revoked(town: Town) -> None:
    rid = town.resident()
    card = town.card(rid)
    registry.move_resident(town.ctx, CLERK, rid, "東京都千代田区永田町1番7号", None, NOW)
    old_sign = next(v for v in service.certificates_of_card(town.ctx, SYSTEM, card.id) if v.kind is CaKind.SIGN)
    assert old_sign.status is CertificateStatus.REVOKED
    assert old_sign.revocation_reason is RevocationReason.AFFILIATION_CHANGED
    key = chip_key()
    record = service.reissue_certificate(town.ctx, CLERK, card.id, CaKind.SIGN, spki(key), NOW + timedelta(hours=1))
    facts = read_signing_facts(x509.load_der_x509_certificate(record.der))
    assert facts is not None and facts.address == "東京都千代田区永田町1番7号"
    assert record.view.replaces_id == old_sign.id and record.view.status is CertificateStatus.GOOD
    chain = service.lineage(town.ctx, SYSTEM, record.view.serial)
    assert [v.id for v in chain] == [old_sign.id, record.view.id]
    # a retry returns the same certificate; the old one keeps its own revocation reason
    again = service.reissue_certificate(town.ctx, CLERK, card.id, CaKind.SIGN, spki(key), NOW + timedelta(hours=2))
    assert again.view.id == record.view.id
    old = service.certificate_by_serial(town.ctx, SYSTEM, old_sign.serial).view
    assert old.revocation_reason is RevocationReason.AFFILIATION_CHANGED
    # the new signing certificate never outlives the authentication certificate
    auth = next(v for v in service.certificates_of_card(town.ctx, SYSTEM, card.id) if v.kind is CaKind.AUTH)
    assert record.view.not_after <= auth.not_after


def test_window_renewal_supersedes_a_good_certificate(town: Town) -> None:
    rid = town.resident()
    card = town.card(rid)
    old_auth = next(v for v in service.certificates_of_card(town.ctx, SYSTEM, card.id) if v.kind is CaKind.AUTH)
    record = service.reissue_certificate(town.ctx, CLERK, card.id, CaKind.AUTH, spki(chip_key()), NOW)
    old = service.certificate_by_serial(town.ctx, SYSTEM, old_auth.serial).view
    assert old.status is CertificateStatus.REVOKED and old.revocation_reason is RevocationReason.SUPERSEDED
    assert record.view.replaces_id == old.id


def test_window_reissue_is_scoped_to_the_municipality(town: Town) -> None:
    card = town.card(town.resident())
    with pytest.raises(NotFound):
        service.reissue_certificate(town.ctx, OTHER_CLERK, card.id, CaKind.AUTH, spki(chip_key()), NOW)
    with pytest.raises(Forbidden):
        service.reissue_certificate(town.ctx, Principal(Role.KIOSK, "k1"), card.id, CaKind.AUTH,
                                    spki(chip_key()), NOW)


def test_window_reissue_refuses_a_card_not_in_use(town: Town) -> None:
    card = town.card(town.resident(), hand_over=False)
    with pytest.raises(Conflict):
        service.reissue_certificate(town.ctx, CLERK, card.id, CaKind.AUTH, spki(chip_key()), NOW)


def test_the_certificates_key_is_the_cards_key(town: Town) -> None:
    card = town.card(town.resident())
    cert = x509.load_der_x509_certificate(card.issued.sign_certificate or b"")
    signature = card.sign_key.sign(b"document", padding.PKCS1v15(), hashes.SHA256())
    key = cert.public_key()
    assert isinstance(key, rsa.RSAPublicKey)
    key.verify(signature, b"document", padding.PKCS1v15(), hashes.SHA256())


def test_operator_sees_every_certificate_clerks_only_their_town(town: Town) -> None:
    card = town.card(town.resident())
    serial = card.issued.auth_certificate and x509.load_der_x509_certificate(card.issued.auth_certificate).serial_number
    assert serial
    assert service.certificate_by_serial(town.ctx, OPERATOR, serial).view.card_id == card.id
    assert service.certificate_by_serial(town.ctx, CLERK, serial).view.card_id == card.id
    with pytest.raises(NotFound):
        service.certificate_by_serial(town.ctx, OTHER_CLERK, serial)
    with pytest.raises(NotFound):
        service.certificate_by_serial(town.ctx, Principal(Role.RESIDENT, str(card.resident_id + 1)), serial)
    assert service.holder_of_certificate(town.ctx, Principal(Role.KIOSK, "kiosk-1"), serial, NOW) == card.resident_id


def test_a_card_twice_in_one_batch_is_refused(town: Town) -> None:
    rid = town.resident()
    facts = registry.get_resident(town.ctx, SYSTEM, rid).facts
    holder = CardHolder("E000000000101", CHIYODA, facts, date(2036, 1, 1), date(2031, 1, 1), False, True,
                        resident_id=rid)
    with pytest.raises(InvalidInput) as err:
        service.issue_batch(town.ctx, MANUFACTURER, [service.IssueRequest(holder, spki(chip_key()), None)] * 2, NOW)
    assert "twice" in err.value.problems[0]


def _holder_after_move(town: Town, card_id: int, resident_id: int) -> CardHolder:
    facts = registry.get_resident(town.ctx, SYSTEM, resident_id).facts
    return CardHolder(card_serial="E", municipality_code=CHIYODA, facts=facts, card_valid_until=date(2035, 1, 1),
                      cert_valid_until=date(2030, 1, 1), wants_sign_cert=True, wants_auth_cert=True,
                      card_id=card_id, resident_id=resident_id)


def test_reissue_sign_certificate_by_old_serial_after_an_address_change(town: Town) -> None:
    """The window's entry point (address change → 追記 → a new signing certificate, lineage old → new)."""
    rid = town.resident()
    card = town.card(rid)
    old = x509.load_der_x509_certificate(card.issued.sign_certificate or b"")
    stale = _holder_after_move(town, card.id, rid)  # the facts before the move
    registry.move_resident(town.ctx, CLERK, rid, "東京都千代田区永田町1番7号", None, NOW)
    holder = _holder_after_move(town, card.id, rid)
    key = chip_key()
    later = NOW + timedelta(hours=1)
    # the card's endorsed facts must be the registry's: the old facts are refused and nothing is issued
    with pytest.raises(Conflict, match="differ from the resident registry"):
        service.reissue_sign_certificate(town.ctx, CLERK, old.serial_number, spki(key), stale, later)
    assert len(service.certificates_of_card(town.ctx, SYSTEM, card.id)) == 2
    # an authentication certificate is not a signing certificate; another town's clerk sees nothing
    auth_serial = x509.load_der_x509_certificate(card.issued.auth_certificate or b"").serial_number
    with pytest.raises(InvalidInput):
        service.reissue_sign_certificate(town.ctx, CLERK, auth_serial, spki(key), holder, later)
    with pytest.raises(NotFound):
        service.reissue_sign_certificate(town.ctx, OTHER_CLERK, old.serial_number, spki(key), holder, later)

    new = service.reissue_sign_certificate(town.ctx, CLERK, old.serial_number, spki(key), holder, later)
    cert = x509.load_der_x509_certificate(new.der)
    assert cert.public_key() == key.public_key()
    facts = read_signing_facts(cert)
    assert facts is not None and facts.address == "東京都千代田区永田町1番7号"
    assert str(cert.subject.get_attributes_for_oid(x509.NameOID.COMMON_NAME)[0].value).endswith("W")
    chain = service.lineage(town.ctx, SYSTEM, old.serial_number)
    assert [v.serial for v in chain] == [old.serial_number, new.view.serial]
    assert chain[0].revocation_reason is RevocationReason.AFFILIATION_CHANGED  # kept, not overwritten
    # a retry (same key) returns the same certificate; replacing the old one again with another key is refused
    again = service.reissue_sign_certificate(town.ctx, CLERK, old.serial_number, spki(key), holder,
                                             later + timedelta(minutes=5))
    assert again.view.id == new.view.id and again.der == new.der
    with pytest.raises(Conflict, match="already replaced"):
        service.reissue_sign_certificate(town.ctx, CLERK, old.serial_number, spki(chip_key()), holder, later)
    assert len(service.certificates_of_card(town.ctx, SYSTEM, card.id)) == 3


def test_reissue_sign_certificate_inside_the_callers_transaction_rolls_back_with_it(town: Town) -> None:
    rid = town.resident()
    card = town.card(rid)
    old = x509.load_der_x509_certificate(card.issued.sign_certificate or b"")
    registry.move_resident(town.ctx, CLERK, rid, "東京都千代田区永田町1番7号", None, NOW)

    class Crash(Exception):
        pass

    with pytest.raises(Crash), town.ctx.transaction() as tx:
        service.reissue_sign_certificate(town.ctx, CLERK, old.serial_number, spki(chip_key()),
                                         None, NOW + timedelta(hours=1), tx=tx)
        raise Crash
    assert [v.serial for v in service.lineage(town.ctx, SYSTEM, old.serial_number)] == [old.serial_number]


def test_handover_records_an_event_and_changes_no_status(town: Town) -> None:
    """The real JPKI has no activation step: certificates are good from manufacture; handover is history."""
    card = town.card(town.resident())
    before = service.certificates_of_card(town.ctx, SYSTEM, card.id)
    assert {v.status for v in before} == {CertificateStatus.GOOD}
    views = service.record_handover(town.ctx, CLERK, card.id, NOW)
    service.record_handover(town.ctx, CLERK, card.id, NOW + timedelta(minutes=1))  # a retry adds nothing
    assert views == before
    for view in before:
        events = service.certificate_events(town.ctx, SYSTEM, view.serial)
        assert [e["detail"] for e in events].count("handed over with the card (交付)") == 1
    with pytest.raises(NotFound):
        service.record_handover(town.ctx, OTHER_CLERK, card.id, NOW)
