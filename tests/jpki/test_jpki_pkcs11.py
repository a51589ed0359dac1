"""CA keys in a PKCS#11 token (the production path), tested against SoftHSM2 with a token made for the run."""

from __future__ import annotations

import os
import secrets
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from mynacard.context import Context
from mynacard.jpki import authorities, keys, service
from mynacard.jpki.model import CaKind
from tests.conftest import NOW, require
from tests.jpki.support import CLERK, OPERATOR, Town, openssl

MODULE = "/usr/lib/softhsm/libsofthsm2.so"


@pytest.fixture(scope="session")
def softhsm(tmp_path_factory: pytest.TempPathFactory) -> Iterator[keys.Pkcs11Config]:
    """A fresh SoftHSM2 token in a temporary SOFTHSM2_CONF, with random PINs."""
    util = shutil.which("softhsm2-util")
    require(util is not None and Path(MODULE).exists(), f"SoftHSM2 not installed ({MODULE})")
    assert util is not None
    root = tmp_path_factory.mktemp("softhsm")
    (root / "tokens").mkdir()
    conf = root / "softhsm2.conf"
    conf.write_text(f"directories.tokendir = {root / 'tokens'}\nobjectstore.backend = file\nlog.level = ERROR\n")
    old = os.environ.get("SOFTHSM2_CONF")
    os.environ["SOFTHSM2_CONF"] = str(conf)
    pin, so_pin = secrets.token_hex(8), secrets.token_hex(8)
    label = f"jpki-test-{secrets.token_hex(3)}"
    for name in (label, label + "-spare"):  # the spare one is never logged in (SoftHSM sees tokens made before
        subprocess.run([util, "--init-token", "--free", "--label", name, "--so-pin", so_pin, "--pin", pin],
                       check=True, capture_output=True, env=os.environ.copy())  # the module is loaded)
    yield keys.Pkcs11Config(MODULE, label, pin)
    if old is None:
        os.environ.pop("SOFTHSM2_CONF", None)
    else:
        os.environ["SOFTHSM2_CONF"] = old


@pytest.fixture
def hsm_env(softhsm: keys.Pkcs11Config, monkeypatch: pytest.MonkeyPatch, ctx: Context) -> keys.Pkcs11Config:
    monkeypatch.setenv("MYNACARD_JPKI_PKCS11_MODULE", softhsm.module)
    monkeypatch.setenv("MYNACARD_JPKI_PKCS11_TOKEN", softhsm.token_label)
    monkeypatch.setenv("MYNACARD_JPKI_PKCS11_PIN", softhsm.pin)
    ctx.reload_settings()
    return softhsm


def test_cas_generated_in_the_token_issue_certificates_and_crls_openssl_accepts(
        ctx: Context, hsm_env: keys.Pkcs11Config, tmp_path: Path) -> None:
    cas = service.ensure_authorities(ctx, OPERATOR, NOW)
    assert {a.key_store for a in cas.values()} == {"pkcs11"}
    with ctx.db.connect() as conn:
        from mynacard.jpki.tables import jpki_authorities

        assert set(conn.execute(jpki_authorities.select().with_only_columns(
            jpki_authorities.c.sealed_key)).scalars()) == {None}  # nothing of the key outside the token
    assert not keys.open_pkcs11_key(hsm_env, cas[CaKind.SIGN].key_label).extractable

    town = Town(ctx)
    card = town.card(town.resident())
    service.hold_card_certificates(ctx, CLERK, card.id, NOW)
    info = service.publish_crls(ctx, OPERATOR, NOW, force=True, kinds=[CaKind.SIGN])[0]
    ca = tmp_path / "ca.pem"
    ca.write_bytes(cas[CaKind.SIGN].pem.encode())
    crl = tmp_path / "crl.pem"
    crl.write_bytes(x509.load_der_x509_crl(info.der).public_bytes(serialization.Encoding.PEM))
    cert = tmp_path / "sign.pem"
    cert.write_bytes(x509.load_der_x509_certificate(card.issued.sign_certificate or b"").public_bytes(
        serialization.Encoding.PEM))
    at = str(int(NOW.timestamp()) + 60)
    rc, out = openssl("verify", "-attime", at, "-CAfile", str(ca), str(cert))
    assert rc == 0, out
    rc, out = openssl("verify", "-attime", at, "-crl_check", "-CAfile", str(ca), "-CRLfile", str(crl), str(cert))
    assert rc != 0 and "certificate revoked" in out, out
    rc, out = openssl("crl", "-in", str(crl), "-CAfile", str(ca), "-noout")
    assert "verify OK" in out, out


def test_without_the_token_configured_a_token_key_is_refused_clearly(
        ctx: Context, hsm_env: keys.Pkcs11Config, monkeypatch: pytest.MonkeyPatch) -> None:
    service.ensure_authorities(ctx, OPERATOR, NOW)
    authorities._SIGNERS.clear()  # a new process: nothing cached
    monkeypatch.delenv("MYNACARD_JPKI_PKCS11_MODULE")
    ctx.reload_settings()
    with pytest.raises(keys.Pkcs11Error, match="PKCS#11"):
        service.publish_crls(ctx, OPERATOR, NOW, force=True)


def test_a_wrong_pin_or_token_is_refused(softhsm: keys.Pkcs11Config) -> None:
    with pytest.raises(keys.Pkcs11Error, match="PinIncorrect"):
        keys.generate_pkcs11_key(keys.Pkcs11Config(softhsm.module, softhsm.token_label + "-spare", "0000"), "nope")
    with pytest.raises(keys.Pkcs11Error, match="NoSuchToken"):
        keys.generate_pkcs11_key(keys.Pkcs11Config(softhsm.module, "no-such-token", "0000"), "nope")
    with pytest.raises(keys.Pkcs11Error, match="no single key"):
        keys.open_pkcs11_key(softhsm, "no-such-label")


def test_the_token_signs_the_same_structure_as_the_software_path(softhsm: keys.Pkcs11Config) -> None:
    from mynacard.jpki import profiles
    from mynacard.jpki.model import root_not_after

    label = f"probe-{secrets.token_hex(3)}"
    token = keys.generate_pkcs11_key(softhsm, label)
    try:
        root = profiles.root_certificate(CaKind.AUTH, token, 42, NOW, root_not_after(NOW))
        root.verify_directly_issued_by(root)
        software = profiles.root_certificate(CaKind.AUTH, keys.generate_software_key(), 42, NOW, root_not_after(NOW))
        strip = [e.oid for e in root.extensions if e.oid == x509.oid.ExtensionOID.SUBJECT_KEY_IDENTIFIER]
        assert strip and [e.oid for e in root.extensions] == [e.oid for e in software.extensions]
        assert root.subject == software.subject and root.not_valid_after_utc == software.not_valid_after_utc
    finally:
        keys.delete_pkcs11_key(softhsm, label)
    with pytest.raises(keys.Pkcs11Error):
        keys.open_pkcs11_key(softhsm, label)


def test_sealed_keys_are_bound_to_their_data_key_and_row(ctx: Context) -> None:
    from cryptography.exceptions import InvalidTag
    from sqlalchemy import select

    from mynacard.jpki.tables import jpki_authorities
    from mynacard.sealing import Sealer

    cas = service.ensure_authorities(ctx, OPERATOR, NOW)
    with ctx.db.connect() as conn:
        sealed = conn.execute(select(jpki_authorities.c.sealed_key).where(
            jpki_authorities.c.id == cas[CaKind.SIGN].id)).scalar_one()
    assert b"PRIVATE KEY" not in sealed and len(sealed) > 1000
    right = Sealer(ctx.settings.data_key)
    keys.open_sealed_key(sealed, right, f"jpki_authorities:sign:{cas[CaKind.SIGN].key_label}".encode())
    with pytest.raises(InvalidTag):
        keys.open_sealed_key(sealed, right, f"jpki_authorities:auth:{cas[CaKind.AUTH].key_label}".encode())
    with pytest.raises(InvalidTag):
        keys.open_sealed_key(sealed, Sealer(secrets.token_bytes(32)),
                             f"jpki_authorities:sign:{cas[CaKind.SIGN].key_label}".encode())


def test_ca_and_responder_keys_are_encrypted_at_rest_by_default(ctx: Context) -> None:
    """Without a PKCS#11 token configured, every private key the JPKI part stores is sealed (AES-GCM under the
    data key, which lives outside the database): no key material is readable from the database."""
    from sqlalchemy import select

    from mynacard.jpki.tables import jpki_authorities, jpki_ocsp_signers
    from mynacard.sealing import Sealer

    assert os.environ.get("MYNACARD_JPKI_PKCS11_MODULE") is None
    cas = service.ensure_authorities(ctx, OPERATOR, NOW)
    assert {a.key_store for a in cas.values()} == {"sealed"}
    signer = service.ocsp_signer(ctx, cas[CaKind.SIGN], NOW)
    sealer = Sealer(ctx.settings.data_key)
    with ctx.db.connect() as conn:
        stored = [(f"jpki_authorities:{r.kind}:{r.key_label}".encode(), r.sealed_key)
                  for r in conn.execute(select(jpki_authorities))]
        stored += [(f"jpki_ocsp_signers:{r.id}".encode(), r.sealed_key)
                   for r in conn.execute(select(jpki_ocsp_signers).where(jpki_ocsp_signers.c.id == signer.id))]
    assert len(stored) == 3
    for context, sealed in stored:
        opened = keys.open_sealed_key(sealed, sealer, context)
        numbers = opened._key.private_numbers()
        for secret in (numbers.p, numbers.q, numbers.d):
            assert secret.to_bytes((secret.bit_length() + 7) // 8, "big") not in sealed
        with pytest.raises(ValueError):
            serialization.load_der_private_key(sealed, password=None)
