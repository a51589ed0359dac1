"""Certificates as other parts see them: views without the personal facts, who may see which (the
operator all; a clerk those of residents of their town; a resident their own), look-ups by serial, card and
manufacture number (製造番号), lineage, history and public counts."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from sqlalchemy import Connection, func, select

from mynacard.cards.model import is_manufacture_number
from mynacard.context import Context
from mynacard.errors import InvalidInput, NotFound
from mynacard.jpki.model import OPERATOR_ROLES, WINDOW_ROLES, CaKind, CertificateStatus, RevocationReason
from mynacard.jpki.tables import jpki_authorities, jpki_certificate_events, jpki_certificates
from mynacard.principal import Principal, Role
from mynacard.registry import service as registry


@dataclass(frozen=True)
class CertificateView:
    """An issued certificate, without the personal facts it may carry."""

    id: int
    kind: CaKind
    serial: int
    generation: int
    card_id: int | None
    card_serial: str | None
    resident_id: int
    municipality_code: str
    subject_cn: str
    not_before: datetime
    not_after: datetime
    issued_at: datetime
    status: CertificateStatus
    revoked_at: datetime | None
    revocation_reason: RevocationReason | None
    replaces_id: int | None

    @property
    def serial_hex(self) -> str:
        return f"{self.serial:X}"


@dataclass(frozen=True)
class CertificateRecord:
    """A certificate with its DER (what a relying party or the chip receives)."""

    view: CertificateView
    der: bytes

    @property
    def pem(self) -> str:
        return x509.load_der_x509_certificate(self.der).public_bytes(serialization.Encoding.PEM).decode()


_VIEW_COLUMNS = (jpki_certificates.c.id, jpki_certificates.c.kind, jpki_certificates.c.serial,
                 jpki_authorities.c.generation, jpki_certificates.c.card_id, jpki_certificates.c.card_serial,
                 jpki_certificates.c.resident_id, jpki_certificates.c.municipality_code,
                 jpki_certificates.c.subject_cn, jpki_certificates.c.not_before, jpki_certificates.c.not_after,
                 jpki_certificates.c.issued_at, jpki_certificates.c.status, jpki_certificates.c.revoked_at,
                 jpki_certificates.c.revocation_reason, jpki_certificates.c.replaces_id)


def view_of(row: Any) -> CertificateView:
    return CertificateView(
        id=row.id, kind=CaKind(row.kind), serial=row.serial, generation=row.generation, card_id=row.card_id,
        card_serial=row.card_serial, resident_id=row.resident_id, municipality_code=row.municipality_code,
        subject_cn=row.subject_cn, not_before=row.not_before, not_after=row.not_after, issued_at=row.issued_at,
        status=CertificateStatus(row.status), revoked_at=row.revoked_at,
        revocation_reason=RevocationReason(row.revocation_reason) if row.revocation_reason else None,
        replaces_id=row.replaces_id)


def views_query() -> Any:
    return select(*_VIEW_COLUMNS).join(jpki_authorities,
                                       jpki_authorities.c.id == jpki_certificates.c.authority_id)


def may_see(principal: Principal, conn: Connection, row: Any) -> bool:
    """Operators see every certificate; clerks those of residents of their municipality (where the card
    was issued or where the resident lives now); a resident their own."""
    if principal.role in OPERATOR_ROLES:
        return True
    if principal.role is Role.RESIDENT:
        return str(row.resident_id) == principal.subject
    if principal.role in (Role.CLERK, Role.SUPERVISOR):
        if principal.can_see_municipality(row.municipality_code):
            return True
        resident = registry.get_residents(conn, [row.resident_id]).get(row.resident_id)
        return resident is not None and principal.can_see_municipality(resident.municipality_code)
    return False


def certificate_by_serial(ctx: Context, principal: Principal, serial: int) -> CertificateRecord:
    """A certificate by serial number, if the caller may see it (otherwise :class:`NotFound`)."""
    with ctx.db.connect() as conn:
        row = conn.execute(views_query().add_columns(jpki_certificates.c.der)
                           .where(jpki_certificates.c.serial == serial)).first()
        if row is None or not may_see(principal, conn, row):
            raise NotFound("no such certificate")
    return CertificateRecord(view_of(row), row.der)


def certificates_of_card(ctx: Context, principal: Principal, card_id: int) -> list[CertificateView]:
    """Every certificate ever issued for a card, oldest first (the lineage is in ``replaces_id``)."""
    with ctx.db.connect() as conn:
        rows = conn.execute(views_query().where(jpki_certificates.c.card_id == card_id)
                            .order_by(jpki_certificates.c.id)).all()
        if rows and not may_see(principal, conn, rows[-1]):
            raise NotFound("no such card")
    return [view_of(r) for r in rows]


def certificates_of_card_serial(ctx: Context, principal: Principal, card_serial: str) -> list[CertificateView]:
    """Every certificate ever issued for the card with this manufacture number (製造番号), oldest first: those
    issued under the number (the CA's own record of it, also for cards made outside the issuance pipeline, such
    as the kiosk's test cards) and those of the same card under its other prints. Only certificates the caller
    may see; none → :class:`NotFound`."""
    number = card_serial.strip().upper()
    if not is_manufacture_number(number):
        raise InvalidInput("カードの製造番号は英数字13桁です (a manufacture number is 13 letters and digits, "
                           "e.g. E000000000101)")
    with ctx.db.connect() as conn:
        rows = conn.execute(views_query().where(jpki_certificates.c.card_serial == number)).all()
        ids = {r.card_id for r in rows if r.card_id is not None}
        if ids:
            rows = conn.execute(views_query().where(
                (jpki_certificates.c.card_serial == number) | jpki_certificates.c.card_id.in_(ids))).all()
        visible = sorted((r for r in rows if may_see(principal, conn, r)), key=lambda r: r.id)
    if not visible:
        raise NotFound("その製造番号のカードの電子証明書はありません (no certificates for this card)")
    return [view_of(r) for r in visible]


def lineage(ctx: Context, principal: Principal, serial: int) -> list[CertificateView]:
    """A certificate with its predecessors and successors, oldest first (old → new)."""
    record = certificate_by_serial(ctx, principal, serial)
    with ctx.db.connect() as conn:
        chain = [record.view]
        while chain[0].replaces_id is not None:
            row = conn.execute(views_query().where(jpki_certificates.c.id == chain[0].replaces_id)).one()
            chain.insert(0, view_of(row))
        while True:
            successor = conn.execute(views_query().where(jpki_certificates.c.replaces_id == chain[-1].id)
                                     .order_by(jpki_certificates.c.id)).first()
            if successor is None:
                break
            chain.append(view_of(successor))
    return chain


def holder_of_certificate(ctx: Context, principal: Principal, serial: int, now: datetime) -> int:
    """The resident holding a certificate (J-LIS maps serial ↔ resident for municipalities and the
    certificate issuance centre behind convenience-store kiosks). Only for the operator, system jobs, the
    kiosk centre and clerks of the resident's municipality."""
    if principal.role is Role.KIOSK:
        principal = Principal.system(f"kiosk:{principal.subject}")
    principal.require(*WINDOW_ROLES)
    return certificate_by_serial(ctx, principal, serial).view.resident_id


def scoped_certificate(ctx: Context, principal: Principal, conn: Connection, serial: int) -> Any:
    row = conn.execute(views_query().where(jpki_certificates.c.serial == serial)).first()
    if row is None or not may_see(principal, conn, row):
        raise NotFound("no such certificate")
    return row


def statistics(ctx: Context) -> dict[str, dict[str, int]]:
    """Certificates by CA kind and status (aggregates only: public)."""
    out: dict[str, dict[str, int]] = {k.value: {"good": 0, "revoked": 0} for k in CaKind}
    with ctx.db.connect() as conn:
        for kind, status, n in conn.execute(select(jpki_certificates.c.kind, jpki_certificates.c.status,
                                                   func.count()).group_by(jpki_certificates.c.kind,
                                                                          jpki_certificates.c.status)):
            out[kind][status] = n
    return out


def certificate_events(ctx: Context, principal: Principal, serial: int) -> list[dict[str, Any]]:
    """The append-only history of a certificate (issued, revoked …)."""
    record = certificate_by_serial(ctx, principal, serial)
    with ctx.db.connect() as conn:
        return [dict(r._mapping) for r in conn.execute(
            select(jpki_certificate_events.c.from_status, jpki_certificate_events.c.to_status,
                   jpki_certificate_events.c.reason, jpki_certificate_events.c.actor, jpki_certificate_events.c.at,
                   jpki_certificate_events.c.detail)
            .where(jpki_certificate_events.c.certificate_id == record.view.id).order_by(jpki_certificate_events.c.id))]
