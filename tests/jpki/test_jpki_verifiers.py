"""The verifier registry, the per-verifier query log, and platform operators' subscriptions (現況確認)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from cryptography import x509

from mynacard.errors import Conflict, Forbidden, InvalidInput, NotFound
from mynacard.jpki import service, verifiers
from mynacard.jpki.model import CaKind, Purpose, VerifierKind
from mynacard.jpki.profiles import read_signing_facts
from mynacard.principal import Principal, Role
from mynacard.registry import service as registry
from tests.conftest import NOW
from tests.jpki.support import CLERK, OPERATOR, Town, chip_key, spki


def _serial(der: bytes | None) -> int:
    return x509.load_der_x509_certificate(der or b"").serial_number


def test_registration_is_the_operators_and_checked(town: Town) -> None:
    ctx = town.ctx
    verifier, key = verifiers.register_verifier(ctx, OPERATOR, "東京法務局", "government", ["signature"], "houmu", NOW)
    assert verifier.kind is VerifierKind.GOVERNMENT and verifier.purposes == {Purpose.SIGNATURE}
    assert key.startswith("myna_") and verifiers.authenticate(ctx, key) == Principal(Role.VERIFIER, "houmu")
    with pytest.raises(Conflict):
        verifiers.register_verifier(ctx, OPERATOR, "again", "government", ["signature"], "houmu", NOW)
    with pytest.raises(InvalidInput):
        verifiers.register_verifier(ctx, OPERATOR, "x", "government", [], "nobody", NOW)
    with pytest.raises(InvalidInput):
        verifiers.register_verifier(ctx, OPERATOR, "x", "casino", ["signature"], "casino", NOW)
    with pytest.raises(Forbidden):
        verifiers.register_verifier(ctx, CLERK, "x", "government", ["signature"], "clerky", NOW)
    assert [v.username for v in verifiers.list_verifiers(ctx, OPERATOR)] == ["houmu"]


def test_a_suspended_verifier_receives_nothing_and_the_refusal_is_logged(town: Town) -> None:
    ctx = town.ctx
    verifier, _ = verifiers.register_verifier(ctx, OPERATOR, "銀行", "certified_private", ["signature"], "bank", NOW)
    me = Principal(Role.VERIFIER, "bank")
    assert verifiers.require_verifier(ctx, me, Purpose.SIGNATURE, "crl", NOW) == verifier
    verifiers.set_suspended(ctx, OPERATOR, verifier.id, True, NOW)
    with pytest.raises(Forbidden, match="not a registered verifier"):
        verifiers.require_verifier(ctx, me, Purpose.SIGNATURE, "crl", NOW)
    with pytest.raises(Forbidden, match="not a registered verifier"):
        verifiers.require_verifier(ctx, Principal(Role.VERIFIER, "unknown"), Purpose.SIGNATURE, "crl", NOW,
                                   remote="192.0.2.7")
    with pytest.raises(Forbidden, match="not a registered verifier"):
        verifiers.require_verifier(ctx, None, Purpose.AUTHENTICATION, "ocsp", NOW, remote="192.0.2.8")
    refused = verifiers.queries(ctx, OPERATOR, refused_only=True)
    assert {q["caller"] for q in refused} == {"verifier:bank", "verifier:unknown@192.0.2.7", "anonymous@192.0.2.8"}
    verifiers.set_suspended(ctx, OPERATOR, verifier.id, False, NOW)
    assert verifiers.require_verifier(ctx, me, Purpose.SIGNATURE, "crl", NOW) is not None
    # a verifier reads its own log, not the operator's view of everyone
    assert all(q["verifier_id"] == verifier.id for q in verifiers.queries(ctx, me))
    with pytest.raises(Forbidden):
        verifiers.queries(ctx, Principal(Role.CLERK, "c", "131016"))


def test_platform_operators_follow_certificates_and_learn_of_the_new_one(town: Town) -> None:
    ctx = town.ctx
    card = town.card(town.resident())
    serial = _serial(card.issued.sign_certificate)
    verifiers.register_verifier(ctx, OPERATOR, "PF株式会社", "platform_operator", ["signature", "authentication"],
                                "platform", NOW)
    verifiers.register_verifier(ctx, OPERATOR, "証券会社", "certified_private", ["signature"], "broker", NOW)
    platform, broker = Principal(Role.VERIFIER, "platform"), Principal(Role.VERIFIER, "broker")
    sub = verifiers.subscribe(ctx, platform, serial, NOW)
    assert verifiers.subscribe(ctx, platform, serial, NOW) == sub  # idempotent
    with pytest.raises(Forbidden, match="platform operators"):
        verifiers.subscribe(ctx, broker, serial, NOW)
    with pytest.raises(NotFound):
        verifiers.subscribe(ctx, platform, _serial(card.issued.auth_certificate), NOW)
    assert verifiers.notifications(ctx, platform, NOW) == []

    registry.move_resident(ctx, CLERK, card.resident_id, "東京都千代田区霞が関2丁目1番2号", None, NOW)
    (revoked,) = verifiers.notifications(ctx, platform, NOW)
    assert (revoked.certificate_serial, revoked.event, revoked.reason) == (serial, "revoked", "affiliationChanged")
    assert revoked.new_certificate_serial is None

    new = service.reissue_certificate(ctx, CLERK, card.id, CaKind.SIGN, spki(chip_key()), NOW + timedelta(days=1))
    _, reissued = verifiers.notifications(ctx, platform, NOW)
    assert reissued.event == "reissued" and reissued.new_certificate_serial == new.view.serial
    assert reissued.new_certificate_url == f"http://127.0.0.1:8000/api/jpki/certificates/{new.view.serial:X}"
    fetched = verifiers.subscribed_certificate(ctx, platform, new.view.serial, NOW)
    facts = read_signing_facts(x509.load_der_x509_certificate(fetched.der))
    assert facts is not None and facts.address == "東京都千代田区霞が関2丁目1番2号"
    with pytest.raises(Forbidden):
        verifiers.subscribed_certificate(ctx, broker, new.view.serial, NOW)
    with pytest.raises(NotFound):
        verifiers.subscribed_certificate(ctx, platform, _serial(card.issued.auth_certificate), NOW)
    # acknowledged notifications are not shown again; the follow-up carries to the new certificate
    assert verifiers.acknowledge_notifications(ctx, platform, [revoked.id, reissued.id], NOW) == 2
    assert verifiers.notifications(ctx, platform, NOW) == []
    registry.change_name(ctx, CLERK, card.resident_id, "佐藤", "太郎", "サトウ", "タロウ", NOW + timedelta(days=2))
    (again,) = verifiers.notifications(ctx, platform, NOW)
    assert again.certificate_serial == new.view.serial and again.event == "revoked"
    actions = {q["action"] for q in verifiers.queries(ctx, platform)}
    assert {"subscribe", "notifications", "certificate"} <= actions
