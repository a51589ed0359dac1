"""Revocation (失効): per CA under the CA row's lock, numbered by the CA's revocation counter so that delta
CRLs and the OCSP responders' caches are exact across processes; on request, on a lost card (一時保留), on
abolition, at the holder's request and on registry life events; platform operators are told."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, delete, insert, select, update

from mynacard.context import Context, Transaction
from mynacard.errors import InvalidInput, NotFound
from mynacard.jpki import crl as crl_codec
from mynacard.jpki.authorities import lock_authority
from mynacard.jpki.certificates import CertificateView, may_see, scoped_certificate, view_of, views_query
from mynacard.jpki.config import settings_of
from mynacard.jpki.model import WINDOW_ROLES, CaKind, CertificateStatus, RevocationReason, revocations_for_life_event
from mynacard.jpki.ocsp_store import store_presigned
from mynacard.jpki.tables import (
    jpki_authorities,
    jpki_certificate_events,
    jpki_certificates,
    jpki_notifications,
    jpki_ocsp_responses,
    jpki_subscriptions,
)
from mynacard.principal import Principal, Role


def revoke_ids(ctx: Context | None, conn: Connection, certificate_ids: Sequence[int], reason: RevocationReason,
               now: datetime, actor: str, detail: str, presign: bool = True) -> list[int]:
    """Revoke the good ones among ``certificate_ids``; returns those revoked now.

    Per CA, under the CA row's lock: number the revocation, stamp the CRL number it comes after, store the
    pre-encoded CRL entry and the event, drop stale OCSP responses (and, with a context, sign the revoked
    ones at once), and notify subscribed platform operators.
    """
    if not certificate_ids:
        return []
    rows: list[Any] = []
    ids = list(dict.fromkeys(certificate_ids))
    for i in range(0, len(ids), 5000):
        rows.extend(conn.execute(select(jpki_certificates.c.id, jpki_certificates.c.authority_id,
                                        jpki_certificates.c.serial, jpki_certificates.c.status)
                                 .where(jpki_certificates.c.id.in_(ids[i:i + 5000]))))
    by_authority: dict[int, list[Any]] = defaultdict(list)
    for row in rows:
        by_authority[row.authority_id].append(row)
    revoked: list[int] = []
    moment = now.replace(microsecond=0)
    for authority_id in sorted(by_authority):
        ca = lock_authority(conn, authority_id)
        query = select(jpki_certificates.c.id, jpki_certificates.c.serial).where(
            jpki_certificates.c.id.in_([r.id for r in by_authority[authority_id]]),
            jpki_certificates.c.status == CertificateStatus.GOOD.value).order_by(jpki_certificates.c.id)
        if conn.dialect.name == "postgresql":
            query = query.with_for_update()
        good = conn.execute(query).all()
        counter = ca.revocation_counter
        for row in good:
            counter += 1
            conn.execute(update(jpki_certificates).where(jpki_certificates.c.id == row.id).values(
                status=CertificateStatus.REVOKED.value, revoked_at=moment, revocation_reason=reason.value,
                revocation_no=counter, crl_after=ca.last_crl_number,
                crl_entry=crl_codec.encode_entry(row.serial, moment, reason)))
        if good:
            conn.execute(update(jpki_authorities).where(jpki_authorities.c.id == authority_id)
                         .values(revocation_counter=counter))
            done = [r.id for r in good]
            conn.execute(insert(jpki_certificate_events), [
                {"certificate_id": cid, "from_status": "good", "to_status": "revoked", "reason": reason.value,
                 "actor": actor, "at": now, "detail": detail} for cid in done])
            conn.execute(delete(jpki_ocsp_responses).where(jpki_ocsp_responses.c.certificate_id.in_(done)))
            _notify_revocation(conn, done, reason, now)
            revoked.extend(done)
    if presign and ctx is not None and revoked:
        settings = settings_of(ctx)
        for cid in revoked:
            for algorithm in ("sha1", "sha256"):
                store_presigned(ctx, conn, cid, algorithm, now, settings)
    return revoked


def _notify_revocation(conn: Connection, certificate_ids: list[int], reason: RevocationReason,
                       now: datetime) -> None:
    subs = conn.execute(select(jpki_subscriptions.c.verifier_id, jpki_subscriptions.c.certificate_id).where(
        jpki_subscriptions.c.certificate_id.in_(certificate_ids))).all()
    if subs:
        conn.execute(insert(jpki_notifications), [
            {"verifier_id": s.verifier_id, "certificate_id": s.certificate_id, "event": "revoked",
             "reason": reason.value, "new_certificate_id": None, "created_at": now, "acknowledged_at": None}
            for s in subs])


def notify_reissue(conn: Connection, old_id: int, new_id: int, now: datetime) -> None:
    """Subscribers of the predecessor learn where the new certificate is (現況確認) and follow it."""
    verifiers = list(conn.execute(select(jpki_subscriptions.c.verifier_id).where(
        jpki_subscriptions.c.certificate_id == old_id)).scalars())
    if verifiers:
        conn.execute(insert(jpki_notifications), [
            {"verifier_id": v, "certificate_id": old_id, "event": "reissued", "reason": None,
             "new_certificate_id": new_id, "created_at": now, "acknowledged_at": None} for v in verifiers])
        conn.execute(insert(jpki_subscriptions), [
            {"verifier_id": v, "certificate_id": new_id, "created_at": now} for v in verifiers])


def revoke_certificate(ctx: Context, principal: Principal, serial: int, reason: RevocationReason | str,
                       now: datetime, detail: str | None = None) -> CertificateView:
    """Revoke one certificate (the operator's command, or a clerk for a resident of their town).

    Revoking a revoked certificate changes nothing and returns it as it is.
    """
    principal.require(*WINDOW_ROLES)
    try:
        reason = RevocationReason.parse(reason) if isinstance(reason, str) else reason
    except ValueError as exc:
        raise InvalidInput(str(exc)) from None
    with ctx.transaction() as tx:
        row = scoped_certificate(ctx, principal, tx.conn, serial)
        revoke_ids(ctx, tx.conn, [row.id], reason, now, principal.subject, detail or "revoked on request")
        return view_of(tx.conn.execute(views_query().where(jpki_certificates.c.id == row.id)).one())


def _revoke_card(ctx: Context, principal: Principal, card_id: int, reason: RevocationReason, now: datetime,
                 detail: str, kinds: Iterable[CaKind] = tuple(CaKind),
                 tx: Transaction | None = None) -> list[CertificateView]:
    wanted = [k.value for k in kinds]

    def run(c: Connection) -> list[CertificateView]:
        rows = c.execute(views_query().where(jpki_certificates.c.card_id == card_id)).all()
        if not rows or not may_see(principal, c, rows[-1]):
            raise NotFound("no certificates for this card")
        targets = [r.id for r in rows if r.kind in wanted and r.status == CertificateStatus.GOOD.value]
        done = set(revoke_ids(ctx, c, targets, reason, now, principal.subject, detail))
        return [view_of(r) for r in c.execute(views_query().where(jpki_certificates.c.id.in_(done))
                                            .order_by(jpki_certificates.c.id))]

    with ctx.join(tx) as work:
        return run(work.conn)


def hold_card_certificates(ctx: Context, principal: Principal, card_id: int, now: datetime,
                           tx: Transaction | None = None) -> list[CertificateView]:
    """A card reported lost or suspended (一時利用停止, by phone at any hour): both certificates are put on
    hold (一時保留, certificateHold). J-LIS never releases a hold: new certificates are issued instead.
    Pass ``tx`` to revoke inside the caller's transaction."""
    principal.require(*WINDOW_ROLES)
    return _revoke_card(ctx, principal, card_id, RevocationReason.CERTIFICATE_HOLD, now,
                        "card lost or suspended (一時保留)", tx=tx)


def abolish_card_certificates(ctx: Context, principal: Principal, card_id: int, now: datetime,
                              tx: Transaction | None = None) -> list[CertificateView]:
    """The card was abolished (返納, 破損, 期限切れ …): its certificates are revoked (cessationOfOperation).
    Pass ``tx`` to revoke inside the caller's transaction."""
    principal.require(*WINDOW_ROLES)
    return _revoke_card(ctx, principal, card_id, RevocationReason.CESSATION_OF_OPERATION, now,
                        "card abolished (廃止)", tx=tx)


def revoke_at_holder_request(ctx: Context, principal: Principal, card_id: int, now: datetime,
                             kinds: Iterable[CaKind] = tuple(CaKind),
                             key_compromise: bool = False, tx: Transaction | None = None) -> list[CertificateView]:
    """The holder asks for revocation (失効申請) — or reports that a key may be known to others
    (秘密鍵の漏えい等の届出, keyCompromise). The holder themselves (online) or a clerk at the window."""
    if principal.role is not Role.RESIDENT:
        principal.require(*WINDOW_ROLES)
    reason = RevocationReason.KEY_COMPROMISE if key_compromise else RevocationReason.CESSATION_OF_OPERATION
    return _revoke_card(ctx, principal, card_id, reason, now, "the holder's request (失効申請)", kinds, tx)


def revoke_for_life_event(conn: Connection, kind: str, payload: dict[str, Any], now: datetime) -> list[int]:
    """The reaction to a registry life event (subscribed in :mod:`mynacard.bootstrap`): revoke what
    :func:`~mynacard.jpki.model.revocations_for_life_event` says. Runs in the bus delivery's transaction;
    the OCSP responders sign the revoked responses when they see the revocation."""
    plan = revocations_for_life_event(kind, payload)
    if not plan:
        return []
    resident_id = int(payload["resident_id"])
    revoked: list[int] = []
    for ca_kind, reason in plan.items():
        ids = list(conn.execute(select(jpki_certificates.c.id).where(
            jpki_certificates.c.resident_id == resident_id, jpki_certificates.c.kind == ca_kind.value,
            jpki_certificates.c.status == CertificateStatus.GOOD.value)).scalars())
        revoked += revoke_ids(None, conn, ids, reason, now, "registry",
                           f"{kind.removeprefix('registry.')} (異動等失効)", presign=False)
    return revoked


def revocations_since(ctx: Context, counters: dict[int, int]) -> tuple[dict[int, int], list[tuple[int, int]]]:
    """For OCSP responder caches: the CAs' current revocation counters, and (authority id, serial) of every
    certificate revoked after the given counters (exact: counters advance in commit order)."""
    changed: list[tuple[int, int]] = []
    with ctx.db.connect() as conn:
        now_counters = dict(conn.execute(select(jpki_authorities.c.id, jpki_authorities.c.revocation_counter)).all())
        for authority_id, counter in now_counters.items():
            before = counters.get(authority_id, counter)
            if counter > before:
                changed += [(authority_id, s) for s in conn.execute(select(jpki_certificates.c.serial).where(
                    jpki_certificates.c.authority_id == authority_id,
                    jpki_certificates.c.revocation_no > before,
                    jpki_certificates.c.revocation_no <= counter)).scalars()]
    return now_counters, changed
