"""Certificates issued at the municipal window for a card in use (電子証明書の発行・更新): renewal, a new
signing certificate after a change of address or name, each linked to its predecessor, and the handover
record (交付)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Connection, insert, select

from mynacard.cards import service as cards
from mynacard.cards.model import CardState
from mynacard.cards.personalisation import CardHolder, IssuedCertificates
from mynacard.clock import local_date
from mynacard.context import Context, Transaction
from mynacard.errors import Conflict, InvalidInput, NotFound
from mynacard.jpki.authorities import issuing_generations
from mynacard.jpki.certificates import CertificateRecord, CertificateView, certificate_by_serial, view_of, views_query
from mynacard.jpki.issuance import Draft, card_key, latest_by_card, sign_drafts, spki_sha256, store_drafts
from mynacard.jpki.model import (
    WINDOW_ROLES,
    CaKind,
    CertificateStatus,
    RevocationReason,
    certificate_not_after,
    may_hold_sign_certificate,
)
from mynacard.jpki.revocation import notify_reissue, revoke_ids
from mynacard.jpki.tables import jpki_certificate_events, jpki_certificates
from mynacard.principal import Principal
from mynacard.registry import service as registry
from mynacard.registry.model import Resident, ResidentStatus


def _card_for_window(ctx: Context, principal: Principal, card_id: int,
                     conn: Connection | None = None) -> tuple[cards.CardView, Resident]:
    """The card and its holder's record — read in the caller's transaction when given, so that a change of
    address made in the same transaction is what the new certificate carries."""
    principal.require(*WINDOW_ROLES)
    try:
        card = cards.get_card(ctx, Principal.system("jpki"), card_id)
    except NotFound:
        raise NotFound("no such card") from None
    resident = registry.get_resident(ctx, Principal.system("jpki"), card.resident_id, conn)
    if not (principal.can_see_municipality(card.municipality_code)
            or principal.can_see_municipality(resident.municipality_code)):
        raise NotFound("no such card")
    return card, resident


def reissue_certificate(ctx: Context, principal: Principal, card_id: int, kind: CaKind, public_key: bytes,
                        now: datetime, tx: Transaction | None = None) -> CertificateRecord:
    """Issue a new certificate for a card at the window (電子証明書の発行・更新), e.g. a signing certificate
    after an address change, from a key the chip generated just now.

    The previous certificate of that kind is linked as its predecessor (old → new) and, if still good,
    revoked as superseded; platform operators subscribed to it are told where the new one is and follow
    it. Repeating the call with the same key returns the same certificate. Pass ``tx`` to issue inside
    the caller's transaction (it then commits or rolls back with the caller's work; the card and its holder
    are read in it, so that a change of address made there is what the new certificate carries).
    """
    card, resident = _card_for_window(ctx, principal, card_id, tx.conn if tx is not None else None)
    with ctx.join(tx) as work:
        return _reissue(ctx, principal, work.conn, card, resident, kind, public_key, now)


def _reissue(ctx: Context, principal: Principal, conn: Connection, card: cards.CardView, resident: Resident,
             kind: CaKind, public_key: bytes, now: datetime) -> CertificateRecord:
    card_id = card.id
    key = card_key(public_key, "new")
    if card.state is not CardState.ISSUED:
        raise Conflict(f"certificates are issued only for a card in use (this one is {card.state.value})")
    abroad_continued = resident.status is ResidentStatus.ABROAD
    if resident.status is not ResidentStatus.ACTIVE and not abroad_continued:
        raise Conflict(f"the resident record is {resident.status.value}")
    if kind is CaKind.SIGN and not may_hold_sign_certificate(resident.facts.birth_date, local_date(now)):
        raise Conflict("no signing certificate before the 15th birthday")
    if card.card_valid_until is None:
        raise Conflict("the card has no validity recorded")
    spki = spki_sha256(key)
    latest = latest_by_card(conn, [card_id])
    previous = latest.get((card_id, kind.value))
    if previous is not None and previous.spki_sha256 == spki:
        if previous.status != "good":
            raise Conflict("this key's certificate was revoked; the chip must generate a new key")
        row = conn.execute(views_query().where(jpki_certificates.c.id == previous.id)).one()
        return CertificateRecord(view_of(row), previous.der)
    cas = issuing_generations(ctx, conn, now, principal)
    auth = latest.get((card_id, CaKind.AUTH.value))
    auth_until = auth.not_after if (kind is CaKind.SIGN and auth is not None and auth.status == "good") else None
    not_after = certificate_not_after(
        birth_date=resident.facts.birth_date, issued_at=now, card_valid_until=card.card_valid_until,
        ca_not_after=cas[kind].not_after,
        previous_not_after=previous.not_after if previous is not None else None, auth_not_after=auth_until)
    if not_after <= now:
        raise Conflict("the card or the authentication certificate has expired")
    draft = Draft(kind, cas[kind], key, spki, 0, resident, card_id, card.card_serial,
                   resident.municipality_code, not_after,
                   cards.facts_digest(resident.facts) if kind is CaKind.SIGN else None, previous, "W")
    sign_drafts(ctx, conn, [draft], now)
    if previous is not None and previous.status == "good":
        revoke_ids(ctx, conn, [previous.id], RevocationReason.SUPERSEDED, now, principal.subject,
                   "renewed at the window (更新)")
    (new_id,) = store_drafts(conn, [draft], principal.subject, now, "issued at the window", want_ids=True)
    if previous is not None:
        notify_reissue(conn, previous.id, new_id, now)
    row = conn.execute(views_query().where(jpki_certificates.c.id == new_id)).one()
    return CertificateRecord(view_of(row), draft.der)


def reissue_sign_certificate(ctx: Context, principal: Principal, old_serial: int, new_public_key_spki_der: bytes,
                             holder: CardHolder | None, now: datetime,
                             tx: Transaction | None = None) -> CertificateRecord:
    """A new signing certificate (署名用電子証明書) at the window in place of ``old_serial`` — typically after
    an address or name change revoked the old one (affiliationChanged) — from the key the chip just
    generated (SubjectPublicKeyInfo DER). Lineage old → new is recorded (``replaces_id``, :func:`lineage`),
    a still-good old certificate is revoked as superseded, and subscribed platform operators are notified.

    The certificate carries the registry's basic four facts (基本4情報). ``holder`` is what the window has
    just endorsed on the card (追記); when given, its facts must equal the registry's and its card must be
    the old certificate's, otherwise :class:`Conflict` and nothing is issued. A retry with the same key
    returns the same certificate; a second replacement of an already replaced certificate is refused.
    Clerks of the holder's municipality, supervisors, operators and system jobs only. Pass ``conn`` to
    issue inside the caller's transaction.
    """
    principal.require(*WINDOW_ROLES)
    old = certificate_by_serial(ctx, principal, old_serial).view
    if old.kind is not CaKind.SIGN:
        raise InvalidInput("not a signing certificate")
    card_id = old.card_id
    if card_id is None:
        raise Conflict("the certificate is not on a card known here")
    card, resident = _card_for_window(ctx, principal, card_id, tx.conn if tx is not None else None)
    if holder is not None:
        if holder.card_id is not None and holder.card_id != card_id:
            raise Conflict("the holder's card is not the card of this certificate")
        if holder.facts != resident.facts:
            raise Conflict("the facts on the card differ from the resident registry; record the change first")
    key = card_key(new_public_key_spki_der, "new signing")

    def run(c: Connection) -> CertificateRecord:
        latest = latest_by_card(c, [card_id])[(card_id, CaKind.SIGN.value)]
        if latest.id != old.id:
            retry = latest.replaces_id == old.id and latest.spki_sha256 == spki_sha256(key)
            if not retry:
                raise Conflict(f"certificate {old.serial_hex} was already replaced by {latest.serial:X}")
        return _reissue(ctx, principal, c, card, resident, CaKind.SIGN, new_public_key_spki_der, now)

    with ctx.join(tx) as work:
        return run(work.conn)


class WindowIssuer:
    """The :class:`~mynacard.cards.personalisation.CertificateIssuer` of a municipal window: new certificates
    for a card in use from keys its chip just generated (e.g. ``chip.issuance.IssuerTerminal.
    replace_sign_certificate`` after an address change), each linked to its predecessor (old → new).

    ``holder.card_id`` names the card; ``holder.facts`` (what the window endorsed on the card) must equal the
    registry's, otherwise :class:`Conflict` and nothing is issued. A retry with the same key returns the same
    certificate; a new key after a failed chip write supersedes the orphan (revoked ``superseded``), so a card
    never keeps two good certificates of one kind. Pass ``tx`` to issue inside the caller's transaction.
    """

    def __init__(self, ctx: Context, principal: Principal, tx: Transaction | None = None) -> None:
        principal.require(*WINDOW_ROLES)
        self.ctx = ctx
        self.principal = principal
        self.tx = tx

    def issue(self, holder: CardHolder, auth_public_key: bytes | None, sign_public_key: bytes | None,
              now: datetime) -> IssuedCertificates:
        if holder.card_id is None:
            raise InvalidInput("the window issues for a card in use: card_id is needed")
        if auth_public_key is None and sign_public_key is None:
            raise InvalidInput("no public key to certify")
        with self.ctx.join(self.tx) as work:
            return self._issue(work.conn, holder, holder.card_id, auth_public_key, sign_public_key, now)

    def _issue(self, conn: Connection, holder: CardHolder, card_id: int, auth_public_key: bytes | None,
               sign_public_key: bytes | None, now: datetime) -> IssuedCertificates:
        card, resident = _card_for_window(self.ctx, self.principal, card_id, conn)
        if holder.facts != resident.facts:
            raise Conflict("the facts on the card differ from the resident registry; record the change first")
        out: dict[CaKind, bytes] = {}
        for kind, key in ((CaKind.AUTH, auth_public_key), (CaKind.SIGN, sign_public_key)):
            if key is not None:
                out[kind] = _reissue(self.ctx, self.principal, conn, card, resident, kind, key, now).der
        cas = issuing_generations(self.ctx, conn, now, self.principal)
        return IssuedCertificates(auth_certificate=out.get(CaKind.AUTH), auth_ca_certificate=cas[CaKind.AUTH].der,
                                  sign_certificate=out.get(CaKind.SIGN), sign_ca_certificate=cas[CaKind.SIGN].der)


def record_handover(ctx: Context, principal: Principal, card_id: int, now: datetime,
                    tx: Transaction | None = None) -> list[CertificateView]:
    """Record in each good certificate's history that its card was handed to the holder (交付).

    The real JPKI has no activation step: the certificates are issued at manufacture and are ``good`` from
    then on (the card's PINs, set by the holder at the window, are what guard the keys; a card destroyed
    before handover has its certificates revoked as ``unspecified``, 交付前に破棄). So this changes no
    status, no CRL and no OCSP answer: it only appends a history event, once (a retry adds nothing).
    """
    card, _resident = _card_for_window(ctx, principal, card_id)

    def run(c: Connection) -> list[CertificateView]:
        rows = c.execute(views_query().where(jpki_certificates.c.card_id == card.id,
                                              jpki_certificates.c.status == CertificateStatus.GOOD.value)
                         .order_by(jpki_certificates.c.id)).all()
        ids = [r.id for r in rows]
        done = set(c.execute(select(jpki_certificate_events.c.certificate_id).where(
            jpki_certificate_events.c.certificate_id.in_(ids),
            jpki_certificate_events.c.detail == _HANDOVER)).scalars()) if ids else set()
        todo = [i for i in ids if i not in done]
        if todo:
            c.execute(insert(jpki_certificate_events), [
                {"certificate_id": i, "from_status": CertificateStatus.GOOD.value,
                 "to_status": CertificateStatus.GOOD.value, "reason": None, "actor": principal.subject,
                 "at": now, "detail": _HANDOVER} for i in todo])
        return [view_of(r) for r in rows]

    with ctx.join(tx) as work:
        return run(work.conn)


_HANDOVER = "handed over with the card (交付)"
