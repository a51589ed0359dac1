"""Root rollover (as J-LIS in 2019 and 2023) and the ``mynacard jpki`` commands."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from typer.testing import CliRunner

from mynacard.context import Context
from mynacard.jpki import cli as jpki_cli
from mynacard.jpki import service
from mynacard.jpki.model import CaKind
from mynacard.jpki.relying_party import RelyingParty, TrustStore
from mynacard.jpki.responder import OcspResponder
from tests.conftest import NOW
from tests.jpki.support import CLERK, OPERATOR, Town, openssl


def _pem(der: bytes) -> bytes:
    return x509.load_der_x509_certificate(der).public_bytes(serialization.Encoding.PEM)


def test_rollover_keeps_old_certificates_checkable_and_issues_with_the_new_key(town: Town, tmp_path: Path) -> None:
    ctx = town.ctx
    old_card = town.card(town.resident())
    old = service.current_authority(ctx, CaKind.SIGN, NOW)
    new = service.rollover(ctx, OPERATOR, CaKind.SIGN, NOW + timedelta(days=1))
    assert (new.generation, new.certificate.subject) == (2, old.certificate.subject)
    assert new.key_sha1 != old.key_sha1
    later = NOW + timedelta(days=12)
    new_card = town.card(town.resident(given="次郎", kana=("ヤマダ", "ジロウ")), now=later)
    new_cert = x509.load_der_x509_certificate(new_card.issued.sign_certificate or b"")
    new_cert.verify_directly_issued_by(new.certificate)
    assert new_card.issued.sign_ca_certificate == new.der
    assert "generation=2" in new_cert.extensions.get_extension_for_class(
        x509.CRLDistributionPoints).value[0].full_name[0].value  # type: ignore[index]
    # the authentication CA did not roll over
    assert new_card.issued.auth_ca_certificate == old_card.issued.auth_ca_certificate

    # link certificates: each root's key vouched for by the other
    bundle = x509.load_pem_x509_certificates(service.ca_bundle_pem(ctx, CaKind.SIGN).encode())
    links = [c for c in bundle if c.serial_number not in (old.certificate.serial_number, new.certificate.serial_number)]
    assert len(links) == 2
    links[0].verify_directly_issued_by(old.certificate)  # NewWithOld
    links[1].verify_directly_issued_by(new.certificate)  # OldWithNew

    # the old generation still publishes its CRL (signed by its own key) and answers OCSP
    service.hold_card_certificates(ctx, CLERK, old_card.id, later)
    old_crl = service.current_crl(ctx, CaKind.SIGN, False, later + timedelta(minutes=1), generation=1)
    assert x509.load_der_x509_crl(old_crl.der).is_signature_valid(old.certificate.public_key())  # type: ignore[arg-type]
    assert old_crl.entry_count == 1
    new_crl = service.current_crl(ctx, CaKind.SIGN, False, later + timedelta(minutes=1))
    assert new_crl.generation == 2 and new_crl.entry_count == 0

    # openssl picks the right root among both generations
    roots = tmp_path / "roots.pem"
    roots.write_bytes(old.pem.encode() + new.pem.encode())
    crls = tmp_path / "crls.pem"
    crls.write_bytes(b"".join(x509.load_der_x509_crl(c.der).public_bytes(serialization.Encoding.PEM)
                              for c in (old_crl, new_crl)))
    at = str(int(later.timestamp()) + 600)
    for card, ok in ((old_card, False), (new_card, True)):
        cert = tmp_path / f"{card.id}.pem"
        cert.write_bytes(_pem(card.issued.sign_certificate or b""))
        rc, out = openssl("verify", "-attime", at, "-crl_check", "-CAfile", str(roots), "-CRLfile", str(crls),
                          str(cert))
        assert (rc == 0) is ok, out

    # the SDK trusts both generations; the responder answers for both
    party = RelyingParty.for_service(ctx, OPERATOR)
    assert len(party.trust.roots) == 3 and isinstance(party.trust, TrustStore)
    responder = OcspResponder(ctx)
    from cryptography.hazmat.primitives import hashes
    from cryptography.x509 import ocsp as x509_ocsp

    for card, issuer, status in ((old_card, old, x509_ocsp.OCSPCertStatus.REVOKED),
                                 (new_card, new, x509_ocsp.OCSPCertStatus.GOOD)):
        cert = x509.load_der_x509_certificate(card.issued.sign_certificate or b"")
        req = x509_ocsp.OCSPRequestBuilder().add_certificate(cert, issuer.certificate, hashes.SHA1()).build()
        answer = responder.answer(req.public_bytes(serialization.Encoding.DER), later, lambda kind: True)
        assert x509_ocsp.load_der_ocsp_response(answer.der).certificate_status is status


def test_the_jpki_commands(ctx: Context) -> None:
    runner = CliRunner()
    home = ["--home", str(ctx.settings.home)]
    env = {"MYNACARD_DATABASE_URL": ctx.db.url.render_as_string(hide_password=False)}
    init = runner.invoke(jpki_cli.app, ["init", *home], env=env)
    assert init.exit_code == 0 and "署名用電子証明書 G1 (sealed)" in init.output, init.output
    town = Town(ctx)
    card = town.card(town.resident())
    serial = f"{x509.load_der_x509_certificate(card.issued.auth_certificate or b'').serial_number:X}"
    bad = runner.invoke(jpki_cli.app, ["revoke", serial, "--reason", "tired", *home], env=env)
    assert bad.exit_code != 0 and "unknown revocation reason" in bad.output
    missing = runner.invoke(jpki_cli.app, ["revoke", "ABCDEF", "--reason", "keyCompromise", *home], env=env)
    assert missing.exit_code == 1 and "no such certificate" in missing.output
    done = runner.invoke(jpki_cli.app, ["revoke", f"serial={serial}", "--reason", "key_compromise", *home], env=env)
    assert done.exit_code == 0 and f"auth certificate {serial}: revoked (keyCompromise" in done.output, done.output
    crl = runner.invoke(jpki_cli.app, ["crl", "--force", *home], env=env)
    assert crl.exit_code == 0 and "auth G1 full CRL" in crl.output and "1 entries" in crl.output, crl.output
    added = runner.invoke(jpki_cli.app, ["verifier-add", "東京都庁", "--username", "tocho", "--kind", "government",
                                         "--purpose", "signature", "--purpose", "authentication", *home], env=env)
    assert added.exit_code == 0 and "API key: myna_" in added.output, added.output
    listed = runner.invoke(jpki_cli.app, ["verifiers", *home], env=env)
    assert "tocho" in listed.output
    shown = runner.invoke(jpki_cli.app, ["show", serial, *home], env=env)
    assert shown.exit_code == 0 and "good → revoked keyCompromise by cli" in shown.output, shown.output
    status = runner.invoke(jpki_cli.app, ["status", *home], env=env)
    assert status.exit_code == 0 and "auth: 0 good, 1 revoked" in status.output, status.output
    refreshed = runner.invoke(jpki_cli.app, ["ocsp-refresh", *home], env=env)
    assert refreshed.exit_code == 0 and "responses signed" in refreshed.output
    rolled = runner.invoke(jpki_cli.app, ["rollover", "auth", *home], env=env)
    assert rolled.exit_code == 0 and "利用者証明用電子証明書 G2" in rolled.output
