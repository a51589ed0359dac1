"""The municipal issuing server's document-signing keys: one signing authority for the service, a key and
certificate per municipality under it (both sealed with the data key in the database), and the loaded signers
cached per process (keyed by the certificate, immutable)."""

from __future__ import annotations

import hashlib
import threading
from datetime import datetime, timedelta

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from sqlalchemy import Connection, bindparam, insert, select

from mynacard.context import Context
from mynacard.errors import Conflict
from mynacard.kiosk import audit, signing
from mynacard.kiosk.municipal_scope import audit_stream, sealer
from mynacard.kiosk.tables import kiosk_signing_authorities, kiosk_signing_keys

__all__ = ["ensure_signing_key", "signer", "trust_roots_der"]

_SIGNERS: dict[tuple[str, str], signing.DocumentSigner] = {}
_SIGNERS_LOCK = threading.Lock()


def ensure_signing_key(ctx: Context, code: str, full_name: str, now: datetime) -> None:
    """Make sure the municipality has a document-signing key valid for 30 more days (the service's signing
    authority is made first if there is none)."""
    box = sealer(ctx)
    with ctx.transaction() as tx:
        conn = tx.conn
        if conn.dialect.name == "postgresql":
            conn.exec_driver_sql("SELECT pg_advisory_xact_lock(7001)")
        current = conn.execute(select(kiosk_signing_keys.c.id).where(
            kiosk_signing_keys.c.municipality_code == code,
            kiosk_signing_keys.c.not_after > now + timedelta(days=30))).first()
        if current is not None:
            return
        auth_row = conn.execute(select(kiosk_signing_authorities).order_by(
            kiosk_signing_authorities.c.id.desc()).limit(1)).first()
        if auth_row is None:
            ca_cert, ca_key = signing.new_authority(now)
            auth_id = conn.execute(insert(kiosk_signing_authorities).values(
                name=signing.AUTHORITY_NAME, certificate=ca_cert.public_bytes(serialization.Encoding.DER),
                sealed_key=box.seal(_pkcs8(ca_key), b"kiosk_signing_authorities"), created_at=now)
                .returning(kiosk_signing_authorities.c.id)).scalar_one()
        else:
            auth_id = auth_row.id
            ca_cert = x509.load_der_x509_certificate(auth_row.certificate)
            ca_key = _load_key(box.open(auth_row.sealed_key, b"kiosk_signing_authorities"))
        cert, key = signing.new_signing_certificate(ca_cert, ca_key, full_name, code, now)
        conn.execute(insert(kiosk_signing_keys).values(
            municipality_code=code, authority_id=auth_id, certificate=cert.public_bytes(serialization.Encoding.DER),
            sealed_key=box.seal(_pkcs8(key), b"kiosk_signing_keys:" + code.encode()),
            not_before=cert.not_valid_before_utc, not_after=cert.not_valid_after_utc, created_at=now))
        audit.append(conn, audit_stream(code), "signing_key_created", "system", now,
                     details={"serial": f"{cert.serial_number:X}"})


def _pkcs8(key: rsa.RSAPrivateKey) -> bytes:
    return key.private_bytes(serialization.Encoding.DER, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def _load_key(der: bytes) -> rsa.RSAPrivateKey:
    key = serialization.load_der_private_key(der, None)
    if not isinstance(key, rsa.RSAPrivateKey):
        raise ValueError("document-signing keys are RSA")
    return key


_CURRENT_KEY = (select(kiosk_signing_keys.c.id, kiosk_signing_keys.c.certificate)
                .where(kiosk_signing_keys.c.municipality_code == bindparam("code"),
                       kiosk_signing_keys.c.not_before <= bindparam("now"),
                       kiosk_signing_keys.c.not_after > bindparam("now"))
                .order_by(kiosk_signing_keys.c.id.desc()).limit(1))


def signer(ctx: Context, conn: Connection, code: str, now: datetime) -> signing.DocumentSigner:
    """The municipality's current document signer (:class:`Conflict` if it has no key: configure it first)."""
    row = conn.execute(_CURRENT_KEY, {"code": code, "now": now}).first()
    if row is None:
        raise Conflict(f"municipality {code} has no document-signing key: configure it first")
    # keyed by the certificate itself: a row id can come back in another database with another key
    cache_key = (str(ctx.db.url), hashlib.sha256(bytes(row.certificate)).hexdigest())
    with _SIGNERS_LOCK:
        cached = _SIGNERS.get(cache_key)
    if cached is not None:
        return cached
    full = conn.execute(select(kiosk_signing_keys, kiosk_signing_authorities.c.certificate.label("ca")).join(
        kiosk_signing_authorities).where(kiosk_signing_keys.c.id == row.id)).one()
    key = _load_key(sealer(ctx).open(full.sealed_key, b"kiosk_signing_keys:" + code.encode()))
    made = signing.DocumentSigner(key, x509.load_der_x509_certificate(full.certificate),
                                  [x509.load_der_x509_certificate(full.ca)])
    spki = serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    if made.certificate.public_key().public_bytes(*spki) != key.public_key().public_bytes(*spki):
        raise Conflict(f"the signing key of {code} does not match its certificate")
    with _SIGNERS_LOCK:
        _SIGNERS[cache_key] = made
    return made


def trust_roots_der(ctx: Context) -> list[bytes]:
    """The document-signing roots a verifier trusts (public)."""
    with ctx.db.connect() as conn:
        return [bytes(r) for r in conn.execute(select(kiosk_signing_authorities.c.certificate)).scalars()]
