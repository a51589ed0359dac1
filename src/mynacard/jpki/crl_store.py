"""Full and delta CRLs per CA generation: generated under the CA row's lock from the pre-encoded entries,
the last three full ones kept, published on schedule or when a stable URL finds its file due."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, delete, insert, select, update

from mynacard.context import Context
from mynacard.errors import Conflict, NotFound
from mynacard.jpki import crl as crl_codec
from mynacard.jpki.authorities import (
    Authority,
    authorities,
    authority_from_row,
    ca_signer,
    current_authority,
    current_of,
    ensure_authorities,
    load_authorities,
    lock_authority,
)
from mynacard.jpki.config import JpkiSettings, settings_of
from mynacard.jpki.model import OPERATOR_ROLES, CaKind, CertificateStatus
from mynacard.jpki.tables import jpki_authorities, jpki_certificates, jpki_crls
from mynacard.principal import Principal

_KEEP_FULL_CRLS = 3


@dataclass(frozen=True)
class CrlInfo:
    """A published CRL."""

    kind: CaKind
    generation: int
    number: int
    is_delta: bool
    base_number: int | None
    this_update: datetime
    next_update: datetime
    entry_count: int
    der: bytes = field(repr=False)


def _generate_crl(ctx: Context, conn: Connection, authority_id: int, delta: bool, now: datetime,
                  settings: JpkiSettings) -> CrlInfo:
    ca = authority_from_row(lock_authority(conn, authority_id))
    if delta and ca.last_full_crl_number == 0:
        raise Conflict("a delta CRL needs a full CRL first")
    number = ca.last_crl_number + 1
    this_update = now.replace(microsecond=0)
    next_update = (settings.crl.delta_next_update if delta else settings.crl.full_next_update)(this_update)
    query = select(jpki_certificates.c.crl_entry).where(
        jpki_certificates.c.authority_id == authority_id,
        jpki_certificates.c.status == CertificateStatus.REVOKED.value,
        jpki_certificates.c.not_after > this_update)  # expired certificates leave the CRL (RFC 5280 §3.3)
    if delta:
        query = query.where(jpki_certificates.c.crl_after >= ca.last_full_crl_number)
    entries = list(conn.execute(query.order_by(jpki_certificates.c.serial)).scalars())
    urls = ca.urls(settings)
    der = crl_codec.build_crl(
        issuer_der=ca.certificate.subject.public_bytes(), authority_key_id=bytes.fromhex(ca.subject_key_id),
        number=number, this_update=this_update, next_update=next_update, entries=entries,
        signer=ca_signer(ctx, conn, ca), delta_base=ca.last_full_crl_number if delta else None,
        freshest_crl_url=None if delta else urls.delta_crl)
    conn.execute(insert(jpki_crls).values(
        authority_id=authority_id, number=number, is_delta=delta,
        base_number=ca.last_full_crl_number if delta else None, this_update=this_update, next_update=next_update,
        entry_count=len(entries), der=der))
    values: dict[str, int] = {"last_crl_number": number}
    if not delta:
        values["last_full_crl_number"] = number
        keep = conn.execute(select(jpki_crls.c.number).where(
            jpki_crls.c.authority_id == authority_id, jpki_crls.c.is_delta.is_(False))
            .order_by(jpki_crls.c.number.desc()).limit(_KEEP_FULL_CRLS)).scalars().all()
        conn.execute(delete(jpki_crls).where(jpki_crls.c.authority_id == authority_id,
                                             jpki_crls.c.number < min(keep)))
    conn.execute(update(jpki_authorities).where(jpki_authorities.c.id == authority_id).values(**values))
    return CrlInfo(ca.kind, ca.generation, number, delta, ca.last_full_crl_number if delta else None, this_update,
                   next_update, len(entries), der)


def _latest_crl(conn: Connection, authority_id: int, delta: bool) -> Any:
    return conn.execute(select(jpki_crls).where(jpki_crls.c.authority_id == authority_id,
                                                jpki_crls.c.is_delta.is_(delta))
                        .order_by(jpki_crls.c.number.desc()).limit(1)).first()


def _crl_info(row: Any, authority: Authority) -> CrlInfo:
    return CrlInfo(authority.kind, authority.generation, row.number, row.is_delta, row.base_number, row.this_update,
                   row.next_update, row.entry_count, row.der)


def publish_crls(ctx: Context, principal: Principal, now: datetime, *, force: bool = False,
                 kinds: Iterable[CaKind] = tuple(CaKind), delta_only: bool = False,
                 create: bool = False) -> list[CrlInfo]:
    """The scheduled job: a new full CRL per CA generation when the last one is due, a new delta when the
    last delta (or the full it would follow) is due; ``force`` publishes both now. Generations whose root
    has expired publish nothing, and nothing is published before the CAs exist (with ``create``, the operator's
    own act, they are made first). Returns what was published."""
    principal.require(*OPERATOR_ROLES)
    settings = settings_of(ctx)
    if create:  # only the operator's command line asks for it; the web never does
        ensure_authorities(ctx, principal, now)
    out: list[CrlInfo] = []
    wanted = {k for k in kinds}
    for authority in authorities(ctx):
        if authority.kind not in wanted or authority.not_after <= now:
            continue
        with ctx.transaction() as tx:
            conn = tx.conn
            lock_authority(conn, authority.id)
            full = _latest_crl(conn, authority.id, False)
            if full is None or (not delta_only and (force or settings.crl.due(full.next_update, now))):
                out.append(_generate_crl(ctx, conn, authority.id, False, now, settings))
                continue
            last_delta = _latest_crl(conn, authority.id, True)
            if force or last_delta is None or last_delta.base_number != full.number or settings.crl.due(
                    last_delta.next_update, now):
                out.append(_generate_crl(ctx, conn, authority.id, True, now, settings))
    return out


def current_crl(ctx: Context, kind: CaKind, delta: bool, now: datetime, generation: int | None = None) -> CrlInfo:
    """The CRL to serve at a stable URL: the latest of its kind, published first if it is due (so the file
    behind the URL is never stale even if no scheduler runs)."""
    settings = settings_of(ctx)
    authority = current_authority(ctx, kind, now, generation)
    with ctx.db.connect() as conn:
        full = _latest_crl(conn, authority.id, False)
        row = _latest_crl(conn, authority.id, True) if delta else full
    stale = (row is None or settings.crl.due(row.next_update, now)
             or (delta and full is not None and row.base_number != full.number))
    if not stale:
        return _crl_info(row, authority)
    if authority.not_after <= now:
        raise NotFound(f"the {kind.value} CA generation {authority.generation} has expired")
    with ctx.transaction() as tx:
        conn = tx.conn
        lock_authority(conn, authority.id)
        full = _latest_crl(conn, authority.id, False)
        if full is None or settings.crl.due(full.next_update, now):
            made = _generate_crl(ctx, conn, authority.id, False, now, settings)
            full = _latest_crl(conn, authority.id, False)
            if not delta:
                return made
        if not delta:
            return _crl_info(full, authority)
        last = _latest_crl(conn, authority.id, True)
        if last is None or last.base_number != full.number or settings.crl.due(last.next_update, now):
            return _generate_crl(ctx, conn, authority.id, True, now, settings)
        return _crl_info(last, authority)


def crl_numbers(ctx: Context, kind: CaKind) -> list[tuple[int, bool]]:
    """(number, is_delta) of the CRLs kept for the current generation, in order (for checks and pages)."""
    with ctx.db.connect() as conn:
        current = current_of(load_authorities(conn), kind)
        if current is None:
            return []
        return [(n, d) for n, d in conn.execute(select(jpki_crls.c.number, jpki_crls.c.is_delta).where(
            jpki_crls.c.authority_id == current.id).order_by(jpki_crls.c.number))]
