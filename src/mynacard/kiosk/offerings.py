"""A municipality's kiosk service: whether it takes part, the documents it offers at what fee and hours
(:func:`configure`, :func:`settings_of`), and the maintenance days of the whole service, of a municipality or of
one document there (:func:`add_closure`, :func:`closed_days`)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, time
from typing import Any

from sqlalchemy import Connection, bindparam, delete, insert, literal_column, null, or_, select, union_all

from mynacard.context import Context
from mynacard.errors import InvalidInput
from mynacard.kiosk import audit
from mynacard.kiosk.documents import Issuer
from mynacard.kiosk.model import DEFAULT_FEES, DocumentKind, Offering
from mynacard.kiosk.municipal_keys import ensure_signing_key
from mynacard.kiosk.municipal_scope import audit_stream, require_scope, town, towns
from mynacard.kiosk.tables import kiosk_closures, kiosk_municipal_settings, kiosk_offerings
from mynacard.principal import Principal, Role

__all__ = [
    "MunicipalSettings",
    "add_closure",
    "closed_days",
    "configure",
    "settings_and_closures",
    "settings_of",
]


@dataclass(frozen=True)
class MunicipalSettings:
    """A municipality's kiosk service: whether it takes part, and what it offers at what fee."""

    code: str
    name: str
    """e.g. 千代田区 (the seal reads 千代田区長之印)."""
    full_name: str
    """e.g. 東京都千代田区."""
    participating: bool
    mayor_name: str | None
    offerings: dict[DocumentKind, Offering] = field(default_factory=dict)

    @property
    def issuer(self) -> Issuer:
        return Issuer(self.code, self.full_name, self.mayor_name)


def _hhmm(t: time) -> str:
    return t.strftime("%H:%M")


def _time(text: str) -> time:
    return time.fromisoformat(text)


def configure(ctx: Context, principal: Principal, code: str, now: datetime, *, participating: bool = True,
              offerings: Sequence[Offering] | None = None, mayor_name: str | None = None) -> MunicipalSettings:
    """Join (or change) the kiosk service: the documents offered and their fees (default: every document at
    :data:`~mynacard.kiosk.model.DEFAULT_FEES`), and make sure a document-signing key exists."""
    require_scope(principal, code)
    found = town(ctx, code)
    chosen = list(offerings) if offerings is not None else [
        Offering(kind, DEFAULT_FEES[kind.value]) for kind in DocumentKind]
    kinds = [o.kind for o in chosen]
    if len(set(kinds)) != len(kinds):
        raise InvalidInput("a document is offered twice")
    if mayor_name is not None and not 1 <= len(mayor_name) <= 40:
        raise InvalidInput("a mayor's name has 1–40 characters")
    with ctx.transaction() as tx:
        conn = tx.conn
        conn.execute(delete(kiosk_offerings).where(kiosk_offerings.c.municipality_code == code))
        conn.execute(delete(kiosk_municipal_settings).where(kiosk_municipal_settings.c.municipality_code == code))
        conn.execute(insert(kiosk_municipal_settings).values(
            municipality_code=code, participating=participating, mayor_name=mayor_name, updated_at=now))
        if chosen:
            conn.execute(insert(kiosk_offerings), [
                {"municipality_code": code, "kind": o.kind.value, "fee_yen": o.fee_yen,
                 "weekdays_only": o.weekdays_only, "opens": _hhmm(o.opens), "closes": _hhmm(o.closes)}
                for o in chosen])
        audit.append(conn, audit_stream(code), "configured", principal.subject, now, details={
            "participating": participating, "offerings": {o.kind.value: o.fee_yen for o in chosen}})
    ensure_signing_key(ctx, code, found.full_name, now)
    settings = settings_of(ctx, code)
    assert settings is not None
    return settings


# Statements run in every kiosk session are built once: building one costs SQLAlchemy more than running it.
_SETTINGS = (select(kiosk_municipal_settings.c.participating, kiosk_municipal_settings.c.mayor_name,
                    kiosk_offerings.c.kind, kiosk_offerings.c.fee_yen, kiosk_offerings.c.weekdays_only,
                    kiosk_offerings.c.opens, kiosk_offerings.c.closes)
             .select_from(kiosk_municipal_settings.outerjoin(
                 kiosk_offerings, kiosk_offerings.c.municipality_code == kiosk_municipal_settings.c.municipality_code))
             .where(kiosk_municipal_settings.c.municipality_code == bindparam("code")))
"""A municipality's settings with its offerings, in one read (none: one row of NULLs from the outer join)."""
_ON_THE_DAY = (kiosk_closures.c.day == bindparam("day"), or_(kiosk_closures.c.municipality_code.is_(None),
                                                              kiosk_closures.c.municipality_code == bindparam("code")))
"""A closure of the whole service or of the municipality ``code`` on ``day``."""
_CLOSURES = select(kiosk_closures.c.municipality_code, kiosk_closures.c.kind).where(*_ON_THE_DAY)
_SETTINGS_AND_CLOSURES = union_all(
    _SETTINGS.add_columns(literal_column("'offer'").label("source")),
    # _SETTINGS's columns in order, NULL but for ``kind``
    select(null(), null(), kiosk_closures.c.kind, null(), null(), null(), null(), literal_column("'closure'"))
    .where(*_ON_THE_DAY))
"""Both, in one read, for the municipality a certificate comes from: offerings (``source`` 'offer') and the
day's closures (``source`` 'closure', ``kind`` None for the whole service or municipality)."""


def settings_of(ctx: Context, code: str, conn: Connection | None = None) -> MunicipalSettings | None:
    """The kiosk settings of a municipality (public information), or None if it never joined."""
    if conn is None:
        towns(ctx)
        with ctx.db.connect() as c:
            return settings_of(ctx, code, c)
    return _settings_from(ctx, code, conn.execute(_SETTINGS, {"code": code}).all())


def settings_and_closures(ctx: Context, conn: Connection, code: str,
                          day: date) -> tuple[MunicipalSettings | None, tuple[bool, set[DocumentKind]]]:
    """:func:`settings_of` and :func:`closed_days` for one municipality, in one read."""
    rows = conn.execute(_SETTINGS_AND_CLOSURES, {"code": code, "day": day}).all()
    return (_settings_from(ctx, code, [r for r in rows if r.source == "offer"]),
            _closures_from([r for r in rows if r.source == "closure"]))


def _settings_from(ctx: Context, code: str, rows: Sequence[Any]) -> MunicipalSettings | None:
    if not rows:
        return None
    found = town(ctx, code)
    offers = {DocumentKind(r.kind): Offering(DocumentKind(r.kind), r.fee_yen, r.weekdays_only, _time(r.opens),
                                             _time(r.closes))
              for r in rows if r.kind is not None}
    return MunicipalSettings(code, found.name, found.full_name, rows[0].participating, rows[0].mayor_name, offers)


def add_closure(ctx: Context, principal: Principal, day: date, reason: str, now: datetime, *,
                municipality_code: str | None = None, kind: DocumentKind | None = None) -> None:
    """A maintenance day: of the whole service (the operator, ``municipality_code`` None), of one
    municipality, or of one document there (e.g. while tax data switch over to the new year)."""
    if municipality_code is None:
        principal.require(Role.OPERATOR, Role.SYSTEM)
    else:
        require_scope(principal, municipality_code)
    if not reason.strip():
        raise InvalidInput("say why the service is closed")
    with ctx.transaction() as tx:
        exists = tx.conn.execute(select(kiosk_closures.c.id).where(
            kiosk_closures.c.day == day,
            kiosk_closures.c.municipality_code.is_(None) if municipality_code is None
            else kiosk_closures.c.municipality_code == municipality_code,
            kiosk_closures.c.kind.is_(None) if kind is None else kiosk_closures.c.kind == kind.value)).first()
        if exists:
            return
        tx.conn.execute(insert(kiosk_closures).values(municipality_code=municipality_code, day=day,
                                                      kind=kind.value if kind else None, reason=reason))
        audit.append(tx.conn, audit_stream(municipality_code or "all"), "closure_added", principal.subject, now,
                     details={"day": day.isoformat(), "kind": kind.value if kind else None, "reason": reason})


def closed_days(conn: Connection, code: str | None, day: date) -> tuple[bool, set[DocumentKind]]:
    """Whether the service is closed on ``day`` (nationwide or for ``code``), and which kinds are suspended."""
    return _closures_from(conn.execute(_CLOSURES, {"day": day, "code": code}).all())


def _closures_from(rows: Sequence[Any]) -> tuple[bool, set[DocumentKind]]:
    return any(r.kind is None for r in rows), {DocumentKind(r.kind) for r in rows if r.kind is not None}
