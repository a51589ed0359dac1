"""Our roots against the real JPKI roots, field by field; the end-entity profiles against reference §3.

Differences allowed here are exactly those listed in docs/JPKI-PROFILE.md: serial number, key, subject key
identifier value, validity dates and signature (all necessarily ours).
"""

from __future__ import annotations

import hashlib
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, ExtensionOID, NameOID, SignatureAlgorithmOID

from mynacard.clock import JST
from mynacard.context import Context
from mynacard.jpki import keys, profiles
from mynacard.jpki.model import CaKind, root_not_after, signing_facts
from mynacard.registry.model import BasicFacts

DATA = Path(__file__).parent / "data"
REAL = {
    CaKind.SIGN: ["sign_ca_2015.pem", "sign_ca_2023.pem"],
    CaKind.AUTH: ["auth_ca_2015.pem", "auth_ca_2023.pem"],
}
FINGERPRINTS = {  # reference/jpki-technical.md §3.1
    "sign_ca_2015.pem": "19645405a1fe14377434bd55957628ac4038557c542403a2243f21c706fc9355",
    "sign_ca_2023.pem": "d227f6cde11d35c5252178f106f843d24651944975413b539fa2fb68dbfa365f",
    "auth_ca_2015.pem": "4dcfc4ca0aaf9fb2a3081b3f0c991c320b3acc008667a341eeaec5af1d58ca7d",
    "auth_ca_2023.pem": "64114f29620c24ed2631d46476a040e7ee740d956089c00b036a6a8118c322b5",
}
NOW = datetime(2026, 4, 6, 0, 30, tzinfo=UTC)


def _real(name: str) -> x509.Certificate:
    return x509.load_pem_x509_certificate((DATA / name).read_bytes())


@pytest.fixture(scope="module")
def ca_key() -> keys.SoftwareSigner:
    return keys.generate_software_key()


def _ours(kind: CaKind, signer: keys.SoftwareSigner) -> x509.Certificate:
    return profiles.root_certificate(kind, signer, 0x6D18006, NOW, root_not_after(NOW))


def test_the_reference_roots_are_the_published_ones() -> None:
    for name, fingerprint in FINGERPRINTS.items():
        assert hashlib.sha256(_real(name).public_bytes(serialization.Encoding.DER)).hexdigest() == fingerprint


def _extension_shape(cert: x509.Certificate) -> list[tuple[str, bool]]:
    return [(e.oid.dotted_string, e.critical) for e in cert.extensions]


@pytest.mark.parametrize("kind", list(CaKind))
def test_our_roots_match_the_real_roots_field_by_field(kind: CaKind, ca_key: keys.SoftwareSigner) -> None:
    ours = _ours(kind, ca_key)
    for name in REAL[kind]:
        real = _real(name)
        # names, byte for byte (PrintableString C, UTF8String O and OU), self-issued
        assert ours.subject.public_bytes() == real.subject.public_bytes()
        assert ours.issuer.public_bytes() == real.issuer.public_bytes()
        assert ours.version == real.version == x509.Version.v3
        assert ours.signature_algorithm_oid == real.signature_algorithm_oid == SignatureAlgorithmOID.RSA_WITH_SHA256
        ours_key, real_key = ours.public_key(), real.public_key()
        assert isinstance(ours_key, rsa.RSAPublicKey) and isinstance(real_key, rsa.RSAPublicKey)
        assert ours_key.key_size == real_key.key_size == 2048
        assert ours_key.public_numbers().e == real_key.public_numbers().e == 65537
        # the same extensions, in the same order, with the same criticality
        assert _extension_shape(ours) == _extension_shape(real)
        for oid in (ExtensionOID.KEY_USAGE, ExtensionOID.BASIC_CONSTRAINTS, ExtensionOID.SUBJECT_ALTERNATIVE_NAME,
                    ExtensionOID.CRL_DISTRIBUTION_POINTS):
            assert ours.extensions.get_extension_for_oid(oid).value.public_bytes() == \
                real.extensions.get_extension_for_oid(oid).value.public_bytes(), oid
        # differences, as documented: serial, key, subject key identifier value, dates, signature
        assert ours.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value != \
            real.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
        # the validity follows the real pattern: ten years less a day, ending at 23:59:59 JST
        end = ours.not_valid_after_utc.astimezone(JST)
        real_end = real.not_valid_after_utc.astimezone(JST)
        assert (end.hour, end.minute, end.second) == (real_end.hour, real_end.minute, real_end.second) == (23, 59, 59)
        real_days = (real_end.date() - real.not_valid_before_utc.astimezone(JST).date()).days
        our_days = (end.date() - ours.not_valid_before_utc.astimezone(JST).date()).days
        assert abs(our_days - real_days) <= 2  # leap days


def test_the_roots_alternative_name_is_the_japanese_directory_name(ca_key: keys.SoftwareSigner) -> None:
    san = _ours(CaKind.SIGN, ca_key).extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    (name,) = san.get_values_for_type(x509.DirectoryName)
    assert [a.value for a in name] == ["JP", "公的個人認証サービス", "公的個人認証サービス署名用",
                                       "地方公共団体情報システム機構"]


def _urls() -> profiles.CaUrls:
    base = "http://127.0.0.1:8000"
    return profiles.CaUrls(f"{base}/jpki/crl/sign.crl?generation=1", f"{base}/jpki/crl/sign-delta.crl?generation=1",
                           f"{base}/jpki/ca/sign.cer?generation=1", f"{base}/jpki/ocsp", f"{base}/jpki/cps")


def _end_entity(kind: CaKind, ca_key: keys.SoftwareSigner) -> tuple[x509.Certificate, x509.Certificate]:
    root = _ours(kind, ca_key)
    chip = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    facts = signing_facts(BasicFacts.parse("山田", "太郎", date(1980, 1, 1), "1", "東京都千代田区千代田1番1号"))
    req = profiles.EndEntityRequest(kind, chip.public_key(), 0x1234, "20260406093000123A", NOW,
                                    NOW + timedelta(days=1800), "Tokyo-to", "Chiyoda-ku",
                                    facts if kind is CaKind.SIGN else None)
    return profiles.end_entity_certificate(req, root, ca_key, _urls()), root


def test_signing_certificate_profile(ca_key: keys.SoftwareSigner) -> None:
    cert, root = _end_entity(CaKind.SIGN, ca_key)
    cert.verify_directly_issued_by(root)
    assert [(a.oid, a.value) for a in cert.subject] == [
        (NameOID.COUNTRY_NAME, "JP"), (NameOID.LOCALITY_NAME, "Tokyo-to"), (NameOID.LOCALITY_NAME, "Chiyoda-ku"),
        (NameOID.COMMON_NAME, "20260406093000123A")]
    ku = cert.extensions.get_extension_for_class(x509.KeyUsage)
    assert ku.critical and ku.value.digital_signature and ku.value.content_commitment
    assert not (ku.value.key_cert_sign or ku.value.key_encipherment)
    cp = cert.extensions.get_extension_for_class(x509.CertificatePolicies)
    assert cp.critical and [p.policy_identifier.dotted_string for p in cp.value] == ["1.2.392.200149.8.5.1.1.20"]
    assert cp.value[0].policy_qualifiers == ["http://127.0.0.1:8000/jpki/cps"]
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName)
    assert not san.critical
    assert [o.type_id.dotted_string[-1] for o in san.value.get_values_for_type(x509.OtherName)] == list("143526")
    facts = profiles.read_signing_facts(cert)
    assert facts is not None and (facts.name, facts.sex, facts.birth_date) == ("山田\u3000太郎", "1", "319800101")
    ian = cert.extensions.get_extension_for_class(x509.IssuerAlternativeName).value
    assert ian.get_values_for_type(x509.DirectoryName) == [profiles.ca_alt_name(CaKind.SIGN)]
    cdp = cert.extensions.get_extension_for_class(x509.CRLDistributionPoints).value
    assert cdp[0].full_name == [x509.UniformResourceIdentifier("http://127.0.0.1:8000/jpki/crl/sign.crl?generation=1")]
    partition = cdp[1].full_name[0].value  # type: ignore[index, union-attr]
    assert [a.value for a in partition][-3:] == ["CRL Distribution Points", "Tokyo-to", "Chiyoda-ku"]
    aia = cert.extensions.get_extension_for_class(x509.AuthorityInformationAccess).value
    assert aia[0].access_location.value == "http://127.0.0.1:8000/jpki/ocsp"
    assert cert.extensions.get_extension_for_class(x509.FreshestCRL).value[0].full_name[0].value.endswith(  # type: ignore[index]
        "sign-delta.crl?generation=1")
    assert cert.signature_algorithm_oid == SignatureAlgorithmOID.RSA_WITH_SHA256


def test_authentication_certificate_carries_no_personal_facts(ca_key: keys.SoftwareSigner) -> None:
    cert, root = _end_entity(CaKind.AUTH, ca_key)
    cert.verify_directly_issued_by(root)
    assert [a.oid for a in cert.subject] == [NameOID.COUNTRY_NAME, NameOID.COMMON_NAME]
    with pytest.raises(x509.ExtensionNotFound):
        cert.extensions.get_extension_for_class(x509.SubjectAlternativeName)
    ku = cert.extensions.get_extension_for_class(x509.KeyUsage)
    assert ku.critical and ku.value.digital_signature and not ku.value.content_commitment
    cp = cert.extensions.get_extension_for_class(x509.CertificatePolicies).value
    assert [p.policy_identifier.dotted_string for p in cp] == ["1.2.392.200149.8.5.1.3.30"]
    assert profiles.read_signing_facts(cert) is None
    with pytest.raises(ValueError):
        profiles.end_entity_certificate(profiles.EndEntityRequest(
            CaKind.AUTH, cert.public_key(), 1, "X", NOW, NOW + timedelta(days=1), "Tokyo-to", "Chiyoda-ku",  # type: ignore[arg-type]
            signing_facts(BasicFacts.parse("山田", "太郎", date(1980, 1, 1), "1", "東京都"))), root, ca_key, _urls())


def test_card_keys_must_be_rsa_2048(ca_key: keys.SoftwareSigner) -> None:
    root = _ours(CaKind.AUTH, ca_key)
    weak = rsa.generate_private_key(public_exponent=65537, key_size=1024).public_key()
    with pytest.raises(ValueError, match="RSA-2048"):
        profiles.end_entity_certificate(profiles.EndEntityRequest(
            CaKind.AUTH, weak, 1, "X", NOW, NOW + timedelta(days=1), "Tokyo-to", "Chiyoda-ku"), root, ca_key, _urls())


def test_ocsp_responder_and_link_certificates(ca_key: keys.SoftwareSigner) -> None:
    root = _ours(CaKind.SIGN, ca_key)
    responder = keys.generate_software_key()
    cert = profiles.ocsp_responder_certificate(CaKind.SIGN, 1, responder.public_key, root, ca_key, 7, NOW,
                                               NOW + timedelta(days=365))
    cert.verify_directly_issued_by(root)
    assert ExtendedKeyUsageOID.OCSP_SIGNING in cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    cert.extensions.get_extension_for_class(x509.OCSPNoCheck)
    new = keys.generate_software_key()
    link = profiles.link_certificate(CaKind.SIGN, new.public_key, ca_key, root, 9, NOW, root_not_after(NOW))
    link.verify_directly_issued_by(root)  # NewWithOld: the new key, vouched for by the old one
    assert link.subject == root.subject and link.extensions.get_extension_for_class(x509.BasicConstraints).value.ca


def test_common_names() -> None:
    assert profiles.sign_common_name(NOW, 1234567, "A") == "2026040609300034567A"
    cn = profiles.auth_common_name(b"\x01" * 16)
    assert len(cn) == 23 and cn.isalnum() and cn.upper() == cn
    assert profiles.auth_common_name(bytes(range(15))) != cn


def test_the_roots_the_service_serves_match_the_real_roots(ctx: Context) -> None:
    """The same comparison on the roots the running service made and serves (``/jpki/ca/*.pem``)."""
    from fastapi.testclient import TestClient

    from mynacard.jpki import service
    from mynacard.web.app import create_app
    from tests.jpki.support import OPERATOR

    service.ensure_authorities(ctx, OPERATOR, NOW)  # mynacard jpki init
    with TestClient(create_app(ctx)) as client:
        for kind in CaKind:
            served = x509.load_pem_x509_certificate(client.get(f"/jpki/ca/{kind.value}.pem").content)
            for name in REAL[kind]:
                real = _real(name)
                assert served.subject.public_bytes() == real.subject.public_bytes()
                assert served.issuer.public_bytes() == real.issuer.public_bytes()
                assert _extension_shape(served) == _extension_shape(real)
                for oid in (ExtensionOID.KEY_USAGE, ExtensionOID.BASIC_CONSTRAINTS,
                            ExtensionOID.SUBJECT_ALTERNATIVE_NAME, ExtensionOID.CRL_DISTRIBUTION_POINTS):
                    assert served.extensions.get_extension_for_oid(oid).value == \
                        real.extensions.get_extension_for_oid(oid).value, oid
                # the key (and so serial, key identifier, signature) is ours
                assert served.public_key().public_bytes(serialization.Encoding.DER,
                                                        serialization.PublicFormat.SubjectPublicKeyInfo) != \
                    real.public_key().public_bytes(serialization.Encoding.DER,
                                                   serialization.PublicFormat.SubjectPublicKeyInfo)


def test_directly_encoded_parts_are_the_bytes_cryptography_writes() -> None:
    """The subjectAltName and subjectKeyIdentifier written as DER directly (issuance speed) are byte for byte
    what ``cryptography`` encodes from its own objects — short and long DER lengths, substituted characters."""
    from mynacard.jpki.model import SigningFacts

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048).public_key()
    for name, address in (("山田　太郎", "東京都千代田区千代田一丁目1番地"), ("A", "〓" * 200),
                          ("髙橋　𠮷子", "北海道" + "札幌市中央区" * 20)):
        facts = SigningFacts(name, "0" * len(name), "2", "319800101", address, "1" * len(address))
        expected = x509.SubjectAlternativeName([
            x509.OtherName(profiles.FACT_OIDS[f], profiles._utf8(getattr(facts, f))) for f in profiles._FACT_ORDER])
        ours = profiles._facts_san(facts)
        assert ours.oid == expected.oid and not ours.critical
        assert ours.value.public_bytes() == expected.public_bytes()
        assert x509.SubjectAlternativeName.oid == ours.value.oid
    ski = profiles._subject_key_identifier(key)
    assert ski.value.public_bytes() == x509.SubjectKeyIdentifier.from_public_key(key).public_bytes()


def test_card_certificates_written_directly_are_the_bytes_cryptographys_builder_writes(
        ca_key: keys.SoftwareSigner) -> None:
    """Issuance writes the to-be-signed part itself (:func:`profiles.end_entity_der`); for both kinds, a
    serial with its top bit set, a validity through 2049 and past it (UTCTime / GeneralizedTime), times with
    a zone other than UTC, long and non-ASCII names, the certificate is byte for byte the one
    ``cryptography``'s builder makes (RSA PKCS#1 v1.5 signatures are deterministic), and it verifies."""
    from zoneinfo import ZoneInfo

    from mynacard.jpki.model import SigningFacts

    chip = rsa.generate_private_key(public_exponent=65537, key_size=2048).public_key()
    tokyo = ZoneInfo("Asia/Tokyo")
    cases = [
        (0x1234, "20260406093000123A", NOW, NOW + timedelta(days=1800), "Tokyo-to", "Chiyoda-ku"),
        ((1 << 63) | 7, "x" * 64, NOW.astimezone(tokyo), datetime(2051, 3, 1, 9, 0, tzinfo=tokyo), "Hokkaido",
         "Sapporo-shi Chuo-ku" * 3),
        ((1 << 159) - 1, "名前", datetime(2049, 12, 31, 23, 59, 59, tzinfo=UTC),
         datetime(2050, 1, 1, tzinfo=UTC), "Okinawa-ken", "Naha-shi"),
    ]
    for kind in (CaKind.SIGN, CaKind.AUTH):
        root = _ours(kind, ca_key)
        for serial, cn, not_before, not_after, prefecture, municipality in cases:
            facts = SigningFacts("山田　太郎", "00000", "1", "319800101", "東京都" + "千代田区" * 40,
                                 "0" * 43) if kind is CaKind.SIGN else None
            req = profiles.EndEntityRequest(kind, chip, serial, cn, not_before, not_after, prefecture,
                                            municipality, facts)
            expected = profiles._end_entity_by_builder(req, root, ca_key, _urls())
            ours = profiles.end_entity_der(req, root, ca_key, _urls())
            assert ours == expected.public_bytes(serialization.Encoding.DER), (kind, serial)
            x509.load_der_x509_certificate(ours).verify_directly_issued_by(root)
