"""Pre-signed OCSP responses, one per certificate and CertID hash, signed by the generation's delegated
responder and refreshed at half their lifetime; what the responders (web route and ``ocsp_server``) serve."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, delete, insert, select

from mynacard.context import Context
from mynacard.jpki import ocsp
from mynacard.jpki.authorities import Authority, authority_from_row, ocsp_signer
from mynacard.jpki.config import JpkiSettings, settings_of
from mynacard.jpki.model import OPERATOR_ROLES, CertificateStatus, RevocationReason
from mynacard.jpki.tables import jpki_authorities, jpki_certificates, jpki_ocsp_responses
from mynacard.principal import Principal


def _hashes(authority: Authority, algorithm: str) -> tuple[bytes, bytes]:
    if algorithm == "sha1":
        return bytes.fromhex(authority.name_sha1), bytes.fromhex(authority.key_sha1)
    if algorithm == "sha256":
        return bytes.fromhex(authority.name_sha256), bytes.fromhex(authority.key_sha256)
    raise ValueError(f"no pre-signed responses for {algorithm}")


def sign_ocsp_response(ctx: Context, authority: Authority, statuses: Sequence[ocsp.SingleStatus], now: datetime,
                       nonce: bytes | None = None, conn: Connection | None = None) -> bytes:
    """A signed OCSP response from the generation's delegated responder."""
    responder = ocsp_signer(ctx, authority, now, conn)
    return ocsp.build_response(statuses, produced_at=now, responder_key_hash=responder.key_hash,
                               responder_cert_der=responder.certificate_der, signer=responder.signer, nonce=nonce)


def single_status(row: Any, cert_id_der: bytes, now: datetime, lifetime: timedelta) -> ocsp.SingleStatus:
    """What the responder says about a certificate row (``None`` row → unknown)."""
    if row is None:
        return ocsp.SingleStatus(cert_id_der, "unknown", now, None)
    if row.status == CertificateStatus.REVOKED.value:
        return ocsp.SingleStatus(cert_id_der, "revoked", now, now + lifetime, row.revoked_at,
                                 RevocationReason(row.revocation_reason))
    return ocsp.SingleStatus(cert_id_der, "good", now, now + lifetime)


def store_presigned(ctx: Context, conn: Connection, certificate_id: int, algorithm: str, now: datetime,
                    settings: JpkiSettings) -> tuple[bytes, Any] | None:
    """Sign and store the response for one certificate (inside ``conn``'s transaction)."""
    row = conn.execute(select(jpki_certificates.c.id, jpki_certificates.c.serial, jpki_certificates.c.status,
                              jpki_certificates.c.revoked_at, jpki_certificates.c.revocation_reason,
                              jpki_certificates.c.authority_id).where(
        jpki_certificates.c.id == certificate_id)).first()
    if row is None:
        return None
    authority = authority_from_row(conn.execute(select(jpki_authorities).where(
        jpki_authorities.c.id == row.authority_id)).one())
    name_hash, key_hash = _hashes(authority, algorithm)
    moment = now.replace(microsecond=0)
    status = single_status(row, ocsp.cert_id(algorithm, name_hash, key_hash, row.serial), moment,
                           settings.ocsp_lifetime)
    der = sign_ocsp_response(ctx, authority, [status], moment, conn=conn)
    conn.execute(delete(jpki_ocsp_responses).where(jpki_ocsp_responses.c.certificate_id == certificate_id,
                                                   jpki_ocsp_responses.c.hash_algorithm == algorithm))
    conn.execute(insert(jpki_ocsp_responses).values(
        certificate_id=certificate_id, hash_algorithm=algorithm, status=row.status, der=der,
        this_update=moment, next_update=moment + settings.ocsp_lifetime))
    return der, row


@dataclass(frozen=True)
class PresignedResponse:
    """A stored response and the certificate facts the responder's cache keeps beside it."""

    der: bytes
    certificate_id: int
    status: str
    this_update: datetime
    next_update: datetime
    revoked_at: datetime | None
    reason: RevocationReason | None


def presigned_response(ctx: Context, authority: Authority, serial: int, algorithm: str,
                       now: datetime) -> PresignedResponse | None:
    """The pre-signed response for one certificate, signing (and storing) a new one when there is none or
    half its lifetime has passed. None for a serial this CA generation never issued."""
    settings = settings_of(ctx)
    columns = (jpki_certificates.c.id, jpki_certificates.c.status, jpki_certificates.c.revoked_at,
               jpki_certificates.c.revocation_reason)
    with ctx.db.connect() as conn:
        row = conn.execute(select(*columns, jpki_ocsp_responses.c.der, jpki_ocsp_responses.c.status.label("rs"),
                                  jpki_ocsp_responses.c.this_update, jpki_ocsp_responses.c.next_update)
                           .select_from(jpki_certificates.outerjoin(jpki_ocsp_responses, (
                               jpki_ocsp_responses.c.certificate_id == jpki_certificates.c.id)
                               & (jpki_ocsp_responses.c.hash_algorithm == algorithm)))
                           .where(jpki_certificates.c.authority_id == authority.id,
                                  jpki_certificates.c.serial == serial)).first()
    if row is None:
        return None
    half = settings.ocsp_lifetime / 2
    if row.der is not None and row.rs == row.status and now < row.this_update + half:
        return PresignedResponse(row.der, row.id, row.status, row.this_update, row.next_update, row.revoked_at,
                                 RevocationReason(row.revocation_reason) if row.revocation_reason else None)
    with ctx.transaction() as tx:
        conn = tx.conn
        lock = select(*columns).where(jpki_certificates.c.id == row.id)
        if conn.dialect.name == "postgresql":
            lock = lock.with_for_update()
        conn.execute(lock).one()  # serialise with a revocation of this certificate
        made = store_presigned(ctx, conn, row.id, algorithm, now, settings)
    assert made is not None
    der, current = made
    moment = now.replace(microsecond=0)
    return PresignedResponse(der, row.id, current.status, moment, moment + settings.ocsp_lifetime,
                             current.revoked_at,
                             RevocationReason(current.revocation_reason) if current.revocation_reason else None)


def certificate_status_row(ctx: Context, authority: Authority, serial: int) -> Any:
    """(id, serial, status, revoked_at, revocation_reason) of a certificate of this generation, or None."""
    with ctx.db.connect() as conn:
        return conn.execute(select(jpki_certificates.c.id, jpki_certificates.c.serial, jpki_certificates.c.status,
                                   jpki_certificates.c.revoked_at, jpki_certificates.c.revocation_reason)
                            .where(jpki_certificates.c.authority_id == authority.id,
                                   jpki_certificates.c.serial == serial)).first()


def refresh_ocsp_responses(ctx: Context, principal: Principal, now: datetime, limit: int = 10000) -> int:
    """Pre-sign responses (SHA-1 CertIDs, what most clients send) for good certificates that have none or
    whose response passed half its lifetime — the scheduled job that keeps the responders' answers warm."""
    principal.require(*OPERATOR_ROLES)
    settings = settings_of(ctx)
    stale_before = now - settings.ocsp_lifetime / 2
    with ctx.db.connect() as conn:
        ids = list(conn.execute(
            select(jpki_certificates.c.id).select_from(jpki_certificates.outerjoin(jpki_ocsp_responses, (
                   jpki_ocsp_responses.c.certificate_id == jpki_certificates.c.id)
                & (jpki_ocsp_responses.c.hash_algorithm == "sha1")))
            .where(jpki_certificates.c.not_after > now,
                   (jpki_ocsp_responses.c.der.is_(None)) | (jpki_ocsp_responses.c.this_update < stale_before))
            .order_by(jpki_certificates.c.id).limit(limit)).scalars())
    for i in range(0, len(ids), 500):
        with ctx.transaction() as tx:
            conn = tx.conn
            for cid in ids[i:i + 500]:
                store_presigned(ctx, conn, cid, "sha1", now, settings)
    return len(ids)
