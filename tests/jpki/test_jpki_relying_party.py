"""The relying-party SDK: signatures (raw and CMS detached) and challenge-response logins made with a card."""

from __future__ import annotations

import subprocess
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, utils
from cryptography.hazmat.primitives.serialization import pkcs7

from mynacard.context import Context
from mynacard.jpki import keys, profiles, service, verifiers
from mynacard.jpki.model import CaKind, Purpose, VerifierKind, root_not_after
from mynacard.jpki.relying_party import CrlStatusSource, MemoryChallengeStore, RelyingParty, TrustStore
from mynacard.principal import Principal, Role
from mynacard.registry import service as registry
from tests.conftest import NOW
from tests.jpki.support import CLERK, OPERATOR, Card, Town, chip_key, serve

DOC = "契約書 第1条 …".encode()


def _card_signs(card: Card, data: bytes) -> bytes:
    """What the card returns for COMPUTE DIGITAL SIGNATURE over a SHA-256 DigestInfo of ``data``."""
    return card.sign_key.sign(data, padding.PKCS1v15(), hashes.SHA256())


def _verifier(ctx: Context, username: str, *purposes: Purpose,
              kind: VerifierKind = VerifierKind.CERTIFIED_PRIVATE) -> tuple[Principal, str]:
    _, key = verifiers.register_verifier(ctx, OPERATOR, f"{username} 株式会社", kind, purposes, username, NOW)
    return Principal(Role.VERIFIER, username), key


def test_a_raw_signature_is_checked_and_the_signer_named_with_the_four_facts(town: Town) -> None:
    card = town.card(town.resident())
    me, _ = _verifier(town.ctx, "bank", Purpose.SIGNATURE)
    party = RelyingParty.for_service(town.ctx, me)
    result = party.verify_signature(DOC, _card_signs(card, DOC), card.issued.sign_certificate or b"", NOW)
    assert result.valid, result.problems
    assert result.signer is not None and result.signer.kind is CaKind.SIGN
    assert result.signer.facts is not None and result.signer.facts.address == "東京都千代田区千代田1番1号"
    assert result.revocation is not None and result.revocation.status == "good"
    # prehashed (the host computed the digest, as for a large file)
    digest = hashes.Hash(hashes.SHA256())
    digest.update(DOC)
    value = digest.finalize()
    sig = card.sign_key.sign(value, padding.PKCS1v15(), utils.Prehashed(hashes.SHA256()))
    assert party.verify_signature(value, sig, card.issued.sign_certificate or b"", NOW, prehashed=True).valid
    # tampered data, or a signature by another key, fail
    bad = party.verify_signature(DOC + b"!", _card_signs(card, DOC), card.issued.sign_certificate or b"", NOW)
    assert not bad.valid and "does not verify" in bad.problems[0]
    other = chip_key().sign(DOC, padding.PKCS1v15(), hashes.SHA256())
    assert not party.verify_signature(DOC, other, card.issued.sign_certificate or b"", NOW).valid
    logged = verifiers.queries(town.ctx, me)
    assert logged and all(q["action"] == "status" and q["outcome"] == "answered" for q in logged)


def test_revoked_expired_wrong_purpose_and_foreign_certificates_are_refused(town: Town) -> None:
    card = town.card(town.resident())
    me, _ = _verifier(town.ctx, "bank", Purpose.SIGNATURE, Purpose.AUTHENTICATION)
    party = RelyingParty.for_service(town.ctx, me)
    signature = _card_signs(card, DOC)
    # an authentication certificate cannot sign documents
    wrong = party.verify_signature(DOC, card.auth_key.sign(DOC, padding.PKCS1v15(), hashes.SHA256()),
                                   card.issued.auth_certificate or b"", NOW)
    assert not wrong.valid and any("cannot be used for signature" in p for p in wrong.problems)
    # expired
    end = x509.load_der_x509_certificate(card.issued.sign_certificate or b"").not_valid_after_utc
    late = party.verify_signature(DOC, signature, card.issued.sign_certificate or b"", end + timedelta(days=1))
    assert any("expired" in p for p in late.problems)
    # a look-alike CA with the very same name but another key
    fake_key = keys.generate_software_key()
    fake_root = profiles.root_certificate(CaKind.SIGN, fake_key, 1, NOW - timedelta(days=1), root_not_after(NOW))
    urls = profiles.CaUrls("http://x/crl", "http://x/d", "http://x/ca", "http://x/ocsp", "http://x/cps")
    forged = profiles.end_entity_certificate(profiles.EndEntityRequest(
        CaKind.SIGN, card.sign_key.public_key(), 77, "X", NOW - timedelta(days=1), NOW + timedelta(days=30),
        "Tokyo-to", "Chiyoda-ku", profiles.read_signing_facts(x509.load_der_x509_certificate(
            card.issued.sign_certificate or b""))), fake_root, fake_key, urls)
    result = party.verify_signature(DOC, signature, forged.public_bytes(serialization.Encoding.DER), NOW)
    assert not result.valid and result.problems == ("not issued by a trusted JPKI certificate authority",)
    # revoked after a move: the signature no longer counts
    registry.move_resident(town.ctx, CLERK, card.resident_id, "東京都千代田区丸の内1番1号", None, NOW)
    revoked = party.verify_signature(DOC, signature, card.issued.sign_certificate or b"", NOW + timedelta(seconds=1))
    assert not revoked.valid and any("revoked (affiliationChanged)" in p for p in revoked.problems)


def test_the_four_facts_go_only_to_signature_verifiers(town: Town) -> None:
    card = town.card(town.resident())
    login_only, _ = _verifier(town.ctx, "login-shop", Purpose.AUTHENTICATION)
    party = RelyingParty.for_service(town.ctx, login_only)
    result = party.verify_signature(DOC, _card_signs(card, DOC), card.issued.sign_certificate or b"", NOW)
    assert not result.valid and result.signer is not None and result.signer.facts is None
    assert any("revocation status unavailable" in p for p in result.problems)
    refused = verifiers.queries(town.ctx, OPERATOR, refused_only=True)
    assert refused and refused[0]["caller"] == "verifier:login-shop" and refused[0]["action"] == "status"
    stranger = RelyingParty.for_service(town.ctx, Principal(Role.AGENCY, "some-agency"))
    out = stranger.verify_signature(DOC, _card_signs(card, DOC), card.issued.sign_certificate or b"", NOW)
    assert not out.valid and out.signer is not None and out.signer.facts is None


def test_cms_detached_signatures(town: Town, tmp_path: Path) -> None:
    card = town.card(town.resident())
    me, _ = _verifier(town.ctx, "notary", Purpose.SIGNATURE)
    party = RelyingParty.for_service(town.ctx, me)
    cert = x509.load_der_x509_certificate(card.issued.sign_certificate or b"")
    cms = (pkcs7.PKCS7SignatureBuilder().set_data(DOC).add_signer(cert, card.sign_key, hashes.SHA256())
           .sign(serialization.Encoding.DER, [pkcs7.PKCS7Options.DetachedSignature, pkcs7.PKCS7Options.Binary]))
    good = party.verify_cms_detached(DOC, cms, NOW)
    assert good.valid, good.problems
    assert good.signer is not None and good.signer.facts is not None and good.signing_time is not None
    tampered = party.verify_cms_detached(DOC.replace(b"1", b"2"), cms, NOW)
    assert not tampered.valid and "message digest" in tampered.problems[0]
    assert not party.verify_cms_detached(DOC, b"\x30\x03\x02\x01\x00", NOW).valid
    # the same with OpenSSL's own CMS signer (the card's key in a file, as a test stand-in for the chip)
    key_file = tmp_path / "card.key"
    key_file.write_bytes(card.sign_key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                                     serialization.NoEncryption()))
    (tmp_path / "card.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    (tmp_path / "doc.txt").write_bytes(DOC)
    subprocess.run(["openssl", "cms", "-sign", "-binary", "-md", "sha256", "-outform", "DER", "-in",
                    str(tmp_path / "doc.txt"), "-signer", str(tmp_path / "card.pem"), "-inkey", str(key_file),
                    "-out", str(tmp_path / "doc.p7s")], check=True, capture_output=True)
    by_openssl = party.verify_cms_detached(DOC, (tmp_path / "doc.p7s").read_bytes(), NOW)
    assert by_openssl.valid, by_openssl.problems


def test_challenge_response_login(town: Town) -> None:
    card = town.card(town.resident())
    portal = RelyingParty.for_service(town.ctx, Principal.system("mynaportal"))
    challenge = portal.issue_challenge(NOW)
    signature = card.auth_key.sign(challenge.nonce, padding.PKCS1v15(), hashes.SHA256())
    result = portal.verify_login(challenge.id, signature, card.issued.auth_certificate or b"", NOW)
    assert result.valid, result.problems
    assert result.signer is not None and result.signer.kind is CaKind.AUTH and result.signer.facts is None
    serial = result.signer.serial
    assert service.holder_of_certificate(town.ctx, Principal.system("mynaportal"), serial, NOW) == card.resident_id
    # single use
    again = portal.verify_login(challenge.id, signature, card.issued.auth_certificate or b"", NOW)
    assert not again.valid and again.problems == ("unknown, used or expired challenge",)
    # expiring
    late = portal.issue_challenge(NOW)
    sig = card.auth_key.sign(late.nonce, padding.PKCS1v15(), hashes.SHA256())
    assert not portal.verify_login(late.id, sig, card.issued.auth_certificate or b"", NOW + timedelta(minutes=6)).valid
    # the signing certificate does not log in; a signature over another challenge does not either
    other = portal.issue_challenge(NOW)
    with_sign = portal.verify_login(other.id, card.sign_key.sign(other.nonce, padding.PKCS1v15(), hashes.SHA256()),
                                    card.issued.sign_certificate or b"", NOW)
    assert not with_sign.valid and any("cannot be used for authentication" in p for p in with_sign.problems)
    third = portal.issue_challenge(NOW)
    assert not portal.verify_login(third.id, signature, card.issued.auth_certificate or b"", NOW).valid
    # a challenge belongs to the party that asked for it
    shop, _ = _verifier(town.ctx, "shop", Purpose.AUTHENTICATION)
    mine = RelyingParty.for_service(town.ctx, shop).issue_challenge(NOW)
    stolen = card.auth_key.sign(mine.nonce, padding.PKCS1v15(), hashes.SHA256())
    assert not portal.verify_login(mine.id, stolen, card.issued.auth_certificate or b"", NOW).valid


def test_memory_challenges_are_single_use_and_expire() -> None:
    store = MemoryChallengeStore(ttl=timedelta(seconds=30), limit=2)
    a = store.issue(NOW)
    assert store.consume(a.id, NOW) == a.nonce
    with pytest.raises(ValueError):
        store.consume(a.id, NOW)
    b = store.issue(NOW)
    with pytest.raises(ValueError):
        store.consume(b.id, NOW + timedelta(seconds=31))
    store.issue(NOW)
    store.issue(NOW)
    with pytest.raises(ValueError, match="too many"):
        store.issue(NOW)


def test_a_private_service_uses_the_sdk_remotely_over_ocsp(ctx: Context) -> None:
    town = Town(ctx)
    now = datetime.now(UTC)
    card = town.card(town.resident(at=now - timedelta(days=40)), now=now)
    _, key = verifiers.register_verifier(ctx, OPERATOR, "プラットフォーム", VerifierKind.PLATFORM_OPERATOR,
                                         [Purpose.SIGNATURE, Purpose.AUTHENTICATION], "platform", now)
    _, login_key = verifiers.register_verifier(ctx, OPERATOR, "ログイン", VerifierKind.CERTIFIED_PRIVATE,
                                               [Purpose.AUTHENTICATION], "login", now)
    trust = service.ca_bundle_pem(ctx, CaKind.SIGN) + service.ca_bundle_pem(ctx, CaKind.AUTH)
    with serve(ctx) as base:
        party = RelyingParty.remote(base, key, trust)
        signature = _card_signs(card, DOC)
        ok = party.verify_signature(DOC, signature, card.issued.sign_certificate or b"", datetime.now(UTC))
        assert ok.valid and ok.signer is not None and ok.signer.facts is not None, ok.problems
        assert ok.revocation is not None and ok.revocation.source == "ocsp"
        # login works remotely with the in-memory challenge store
        challenge = party.issue_challenge(datetime.now(UTC))
        login = party.verify_login(challenge.id, card.auth_key.sign(challenge.nonce, padding.PKCS1v15(),
                                                                    hashes.SHA256()),
                                   card.issued.auth_certificate or b"", datetime.now(UTC))
        assert login.valid, login.problems
        # a party registered for logins only gets no status for a signing certificate, hence no facts
        login_party = RelyingParty.remote(base, login_key, trust)
        refused = login_party.verify_signature(DOC, signature, card.issued.sign_certificate or b"", datetime.now(UTC))
        assert not refused.valid and refused.signer is not None and refused.signer.facts is None
        assert refused.revocation is not None and "UNAUTHORIZED" in (refused.revocation.detail or "")
        # after revocation, within a second
        registry.record_death(ctx, Principal(Role.CLERK, "c", card_municipality(ctx, card)), card.resident_id,
                              datetime.now(UTC))
        import time

        time.sleep(1.0)
        dead = party.verify_signature(DOC, signature, card.issued.sign_certificate or b"", datetime.now(UTC))
        assert not dead.valid and dead.revocation is not None and dead.revocation.status == "revoked"
        assert dead.revocation.reason == "affiliationChanged"


def card_municipality(ctx: Context, card: Card) -> str:
    return registry.get_resident(ctx, OPERATOR, card.resident_id).municipality_code


def test_crl_based_checking(town: Town) -> None:
    card = town.card(town.resident())
    full = service.current_crl(town.ctx, CaKind.SIGN, False, NOW)
    trust = TrustStore.from_pem(service.ca_bundle_pem(town.ctx, CaKind.SIGN))
    party = RelyingParty(trust, CrlStatusSource([full.der]), reveal_facts=True)
    signature = _card_signs(card, DOC)
    assert party.verify_signature(DOC, signature, card.issued.sign_certificate or b"", NOW).valid
    service.hold_card_certificates(town.ctx, CLERK, card.id, NOW + timedelta(minutes=1))
    delta = service.current_crl(town.ctx, CaKind.SIGN, True, NOW + timedelta(minutes=2))
    with_delta = RelyingParty(trust, CrlStatusSource([full.der, delta.der]))
    out = with_delta.verify_signature(DOC, signature, card.issued.sign_certificate or b"", NOW + timedelta(minutes=3))
    assert not out.valid and out.revocation is not None and out.revocation.reason == "certificateHold"
    stale = RelyingParty(trust, CrlStatusSource([full.der]))
    too_late = stale.verify_signature(DOC, signature, card.issued.sign_certificate or b"", NOW + timedelta(days=3))
    assert not too_late.valid and any("no current CRL" in p for p in too_late.problems)
