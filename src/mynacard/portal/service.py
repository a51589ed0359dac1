"""Use cases of Mynaportal: opening a session from a verified card login, the person's exchange records,
their own information held by agencies (fetched into their folder, downloadable as JSON or CSV), notices,
and the one-stop child-rearing application that reaches the right agencies through the network.

Everything here is for the person themselves: every function but :func:`open_session` and
:func:`resume_session` takes a resident principal, and reaches only that resident's data.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import delete, insert, select, update

from mynacard.context import Context
from mynacard.errors import Conflict, Forbidden, InvalidInput, NotFound
from mynacard.exchange import service as exchange
from mynacard.exchange.model import Agency, InfoItem
from mynacard.portal.model import (
    CardLogin,
    ChildProcedure,
    SessionState,
    export_csv,
    export_json,
    session_state,
    validate_form,
)
from mynacard.portal.tables import portal_applications, portal_deliveries, portal_self_information, portal_sessions
from mynacard.principal import Principal, Role
from mynacard.registry import service as registry
from mynacard.registry.model import Resident, ResidentStatus
from mynacard.sealing import Sealer

__all__ = [
    "ApplicationView",
    "OwnInformation",
    "SessionTicket",
    "available_procedures",
    "close_session",
    "export_own_information",
    "my_applications",
    "my_notices",
    "my_records",
    "open_session",
    "own_information",
    "procedures_from_form",
    "read_notice",
    "refresh_own_information",
    "resident_of",
    "resume_session",
    "submit_child_rearing",
    "sweep_sessions",
]

_CLOCK_SKEW = 300


def _resident_id(principal: Principal) -> int:
    principal.require(Role.RESIDENT)
    return int(principal.subject)


def _token_hash(ctx: Context, token: str) -> str:
    return Sealer(ctx.settings.session_key).lookup_hash("portal-session:" + token)


# --- sessions -------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class SessionTicket:
    """A new session: the token goes into the person's cookie and nowhere else."""

    token: str = field(repr=False)
    resident_id: int
    name: str


def open_session(ctx: Context, login: CardLogin, now: datetime) -> SessionTicket:
    """Open a resident session from a card login the JPKI relying party has verified (challenge signed by
    the card's authentication key, certificate valid and not revoked). The individual number plays no part.
    """
    if not isinstance(login.auth_cert_serial, str) or not 1 <= len(login.auth_cert_serial) <= 64:
        raise InvalidInput("a certificate serial is required")
    if login.verified_at.tzinfo is None or abs((now - login.verified_at).total_seconds()) > _CLOCK_SKEW:
        raise Forbidden("the card login is stale: sign a fresh challenge")
    people = registry.residents_by_id(ctx, Principal.system("mynaportal"), [login.resident_id])
    resident = people.get(login.resident_id)
    if resident is None or resident.status is ResidentStatus.DECEASED:
        raise Forbidden("no resident for this card")
    exchange.prepare(ctx, now)
    token = secrets.token_urlsafe(32)
    with ctx.transaction() as tx:
        tx.conn.execute(insert(portal_sessions).values(
            token_hash=_token_hash(ctx, token), resident_id=resident.id, auth_cert_serial=login.auth_cert_serial,
            created_at=now, last_seen_at=now))
    return SessionTicket(token, resident.id, resident.facts.name)


def resume_session(ctx: Context, token: str, now: datetime) -> Principal | None:
    """The resident behind a session token, if the session is still active (and it is marked used now)."""
    if not token or len(token) > 200:
        return None
    key = _token_hash(ctx, token)
    with ctx.transaction() as tx:
        conn = tx.conn
        row = conn.execute(select(portal_sessions).where(portal_sessions.c.token_hash == key)).first()
        if row is None:
            return None
        state = session_state(row.created_at, row.last_seen_at, row.closed_at, now)
        if state is not SessionState.ACTIVE:
            if row.closed_at is None:
                conn.execute(update(portal_sessions).where(portal_sessions.c.token_hash == key).values(
                    closed_at=now, close_reason=state.value))
            return None
        conn.execute(update(portal_sessions).where(portal_sessions.c.token_hash == key).values(last_seen_at=now))
    return Principal(Role.RESIDENT, str(row.resident_id))


def close_session(ctx: Context, token: str, now: datetime) -> None:
    """Log out: the token is dead from now on."""
    with ctx.transaction() as tx:
        conn = tx.conn
        conn.execute(update(portal_sessions).where(
            portal_sessions.c.token_hash == _token_hash(ctx, token), portal_sessions.c.closed_at.is_(None))
            .values(closed_at=now, close_reason="logout"))


@dataclass(frozen=True)
class SessionCounts:
    active: int
    closed_now: int
    """Sessions found idle or expired and closed by this sweep."""
    challenges_purged: int = 0
    """Expired login challenges (the login page's, in JPKI's table) deleted by this sweep."""


def sweep_sessions(ctx: Context, principal: Principal, now: datetime) -> SessionCounts:
    """Close every session that is idle or too old (they already refuse service; this records why and
    when), count the active ones, and delete the login page's expired challenges. For the operator's
    housekeeping job."""
    principal.require(Role.OPERATOR, Role.SYSTEM)
    closed = active = 0
    with ctx.transaction() as tx:
        rows = tx.conn.execute(select(portal_sessions).where(portal_sessions.c.closed_at.is_(None))).all()
        for row in rows:
            state = session_state(row.created_at, row.last_seen_at, None, now)
            if state is SessionState.ACTIVE:
                active += 1
                continue
            tx.conn.execute(update(portal_sessions).where(portal_sessions.c.token_hash == row.token_hash)
                            .values(closed_at=now, close_reason=state.value))
            closed += 1
    from mynacard.jpki.verifiers import purge_challenges

    return SessionCounts(active, closed, purge_challenges(ctx, now))


def resident_of(ctx: Context, principal: Principal) -> Resident:
    """The logged-in resident (the page shows who is logged in before anything is sent)."""
    return registry.get_resident(ctx, principal, _resident_id(principal))


# --- records and notices ---------------------------------------------------------------------------------------

def my_records(ctx: Context, principal: Principal, now: datetime, page: int = 1,
               per_page: int = 50) -> tuple[list[exchange.RecordView], int]:
    """情報提供等記録: the exchanges about the caller of the last seven years, newest first."""
    _resident_id(principal)
    page = max(1, page)
    return exchange.records_about(ctx, principal, now, limit=per_page, offset=(page - 1) * per_page)


def my_notices(ctx: Context, principal: Principal, now: datetime) -> list[exchange.NoticeView]:
    """お知らせ, newest first."""
    return exchange.notices_for(ctx, principal, now)


def read_notice(ctx: Context, principal: Principal, notice_id: int, now: datetime) -> exchange.NoticeView:
    """One notice (marked read)."""
    exchange.mark_notice_read(ctx, principal, notice_id, now)
    found = next((n for n in exchange.notices_for(ctx, principal, now) if n.id == notice_id), None)
    if found is None:
        raise NotFound("no such notice")
    return found


# --- own information (自己情報) ----------------------------------------------------------------------------------

@dataclass(frozen=True)
class OwnInformation:
    """One item an agency holds about the caller, as last fetched into the caller's folder."""

    agency_id: str
    agency: str
    item: str
    item_label: str
    data: dict[str, Any]
    updated_at: datetime | None
    """When the agency last updated it."""
    fetched_at: datetime


def _folder_context(resident_id: int, agency_id: str, item: str) -> bytes:
    return f"portal_self_information:{resident_id}:{agency_id}:{item}".encode()


def refresh_own_information(ctx: Context, principal: Principal, now: datetime) -> int:
    """Ask every agency holding the caller for their records (each answer is an exchange, logged and shown
    in the caller's records) and replace the caller's folder with the answers; returns the items fetched."""
    resident_id = _resident_id(principal)
    parts = exchange.request_self_information(ctx, principal, now)
    sealer = Sealer(ctx.settings.data_key)
    rows = []
    for part in parts:
        for item, value in part.items.items():
            updated = value.get("updated_at")
            rows.append({"resident_id": resident_id, "agency_id": part.agency_id, "item": item,
                         "sealed_data": sealer.seal(json.dumps(value["data"], ensure_ascii=False).encode(),
                                                    _folder_context(resident_id, part.agency_id, item)),
                         "source_updated_at": datetime.fromisoformat(updated) if updated else None,
                         "fetched_at": now, "message_id": f"seq-{part.seq}"})
    with ctx.transaction() as tx:
        tx.conn.execute(delete(portal_self_information).where(portal_self_information.c.resident_id == resident_id))
        if rows:
            tx.conn.execute(insert(portal_self_information), rows)
    return len(rows)


def own_information(ctx: Context, principal: Principal) -> list[OwnInformation]:
    """The caller's folder, by agency and item."""
    resident_id = _resident_id(principal)
    sealer = Sealer(ctx.settings.data_key)
    names = {a.id: a.name for a in exchange.list_agencies(ctx)}
    with ctx.db.connect() as conn:
        rows = conn.execute(select(portal_self_information).where(
            portal_self_information.c.resident_id == resident_id).order_by(
            portal_self_information.c.agency_id, portal_self_information.c.item)).all()
    out = []
    for r in rows:
        data = json.loads(sealer.open(r.sealed_data, _folder_context(resident_id, r.agency_id, r.item)))
        try:
            label = InfoItem(r.item).label_ja
        except ValueError:
            label = r.item
        out.append(OwnInformation(r.agency_id, names.get(r.agency_id, r.agency_id), r.item, label, data,
                                  r.source_updated_at, r.fetched_at))
    return out


def export_own_information(ctx: Context, principal: Principal, fmt: str, now: datetime) -> tuple[bytes, str]:
    """The caller's folder as a download: (content, media type) for ``json`` or ``csv``."""
    if fmt not in ("json", "csv"):
        raise InvalidInput("the format is json or csv")
    rows = [{"agency_id": i.agency_id, "agency": i.agency, "item": i.item, "item_label": i.item_label,
             "data": i.data, "updated_at": i.updated_at.isoformat() if i.updated_at else None,
             "fetched_at": i.fetched_at.isoformat()} for i in own_information(ctx, principal)]
    if fmt == "json":
        return export_json(rows, resident_of(ctx, principal).facts.name, now), "application/json"
    return export_csv(rows), "text/csv; charset=utf-8"


# --- the one-stop child-rearing application ------------------------------------------------------------------------

def available_procedures(ctx: Context, principal: Principal) -> dict[ChildProcedure, Agency | None]:
    """Which of the four procedures the caller's municipality takes online, and the agency that handles each."""
    resident = resident_of(ctx, principal)
    out: dict[ChildProcedure, Agency | None] = {}
    for procedure in ChildProcedure:
        found = [a for a in exchange.list_agencies(ctx, procedure.agency_kind, resident.municipality_code)
                 if a.active]
        out[procedure] = found[0] if found else None
    return out


@dataclass(frozen=True)
class ApplicationView:
    """An application and where each part of it went."""

    id: int
    submitted_at: datetime
    deliveries: list[dict[str, Any]]
    """procedure, agency id and name, the log entry, and the latest status the agency reported."""


def submit_child_rearing(ctx: Context, principal: Principal, forms: Mapping[str, Mapping[str, str]],
                         idempotency_key: str, now: datetime) -> ApplicationView:
    """Apply for one or more child-rearing procedures at once. Every form is checked first; each procedure
    is delivered, end-to-end encrypted, to the agency of the applicant's municipality that handles it; the
    application and all its deliveries commit together or not at all. The same form sent twice (the same
    ``idempotency_key``) is one application."""
    resident_id = _resident_id(principal)
    if not idempotency_key or len(idempotency_key) > 64 or not idempotency_key.isascii():
        raise InvalidInput("the form has no valid submission key; reload it")
    if not forms:
        raise InvalidInput("choose at least one procedure")
    existing = _application_by_key(ctx, resident_id, idempotency_key)
    if existing is not None:  # the same form sent again (a double click, a retry after a timeout)
        return existing
    problems: list[str] = []
    checked: dict[ChildProcedure, dict[str, Any]] = {}
    for name, raw in forms.items():
        try:
            procedure = ChildProcedure(name)
        except ValueError:
            problems.append(f"unknown procedure {name!r}")
            continue
        try:
            checked[procedure] = validate_form(procedure, raw, now.date())
        except ValueError as exc:
            problems.extend(f"{procedure.label_ja} — {line}" for line in str(exc).splitlines())
    targets = available_procedures(ctx, principal)
    for procedure in checked:
        if targets[procedure] is None:
            problems.append(f"{procedure.label_ja}: お住まいの市区町村はオンライン申請を受け付けていません "
                            "(not taken online by your municipality)")
    if problems:
        raise InvalidInput("the application was not sent; nothing was changed", problems)
    resident = resident_of(ctx, principal)
    applicant = {"氏名": resident.facts.name, "フリガナ": f"{resident.family_kana} {resident.given_kana}",
                 "生年月日": resident.facts.birth_date.isoformat(), "住所": resident.facts.address}
    exchange.prepare(ctx, now)
    sealer = Sealer(ctx.settings.data_key)
    with ctx.transaction() as tx:
        application_id = tx.conn.execute(insert(portal_applications).values(
            resident_id=resident_id, idempotency_key=idempotency_key, message_id=f"pending-{secrets.token_hex(8)}",
            procedures=",".join(p.value for p in checked), submitted_at=now,
            sealed_forms=sealer.seal(json.dumps({p.value: f for p, f in checked.items()}, ensure_ascii=False)
                                     .encode(), f"portal_applications:{resident_id}:{idempotency_key}".encode()))
            .returning(portal_applications.c.id)).scalar_one()
        tx.conn.execute(update(portal_applications).where(portal_applications.c.id == application_id)
                        .values(message_id=f"app-{application_id}"))
        rows = []
        for procedure, form in checked.items():
            agency = targets[procedure]
            assert agency is not None
            (delivery,) = exchange.deliver_applications(
                ctx, tx, principal, [(agency.id, procedure.value, form)], applicant,
                f"app-{application_id}-{procedure.value}", now)
            rows.append({"application_id": application_id, "procedure": procedure.value, "agency_id": agency.id,
                         "log_seq": delivery.seq})
        tx.conn.execute(insert(portal_deliveries), rows)
    found = _application_by_key(ctx, resident_id, idempotency_key)
    if found is None:
        raise Conflict("the application could not be read back")
    return found


def _application_by_key(ctx: Context, resident_id: int, key: str) -> ApplicationView | None:
    views = _applications(ctx, resident_id, key)
    return views[0] if views else None


def _applications(ctx: Context, resident_id: int, key: str | None = None) -> list[ApplicationView]:
    query = select(portal_applications).where(portal_applications.c.resident_id == resident_id).order_by(
        portal_applications.c.submitted_at.desc(), portal_applications.c.id.desc())
    if key is not None:
        query = query.where(portal_applications.c.idempotency_key == key)
    with ctx.db.connect() as conn:
        apps = conn.execute(query).all()
        deliveries: dict[int, list[Any]] = {}
        if apps:
            for d in conn.execute(select(portal_deliveries).where(
                    portal_deliveries.c.application_id.in_([a.id for a in apps]))):
                deliveries.setdefault(d.application_id, []).append(d)
    if not apps:
        return []
    names = {a.id: a.name for a in exchange.list_agencies(ctx)}
    return [ApplicationView(a.id, a.submitted_at, [
        {"procedure": d.procedure, "label": ChildProcedure(d.procedure).label_ja, "agency_id": d.agency_id,
         "agency": names.get(d.agency_id, d.agency_id), "log_seq": d.log_seq, "status": "delivered",
         "note": None, "message_id": f"app-{a.id}-{d.procedure}"}
        for d in sorted(deliveries.get(a.id, []), key=lambda d: d.procedure)]) for a in apps]


def my_applications(ctx: Context, principal: Principal, now: datetime) -> list[ApplicationView]:
    """The caller's applications, newest first, each delivery with the latest status its agency reported
    (agencies report by notice, which also appears under お知らせ)."""
    resident_id = _resident_id(principal)
    views = _applications(ctx, resident_id)
    latest: dict[tuple[str, str], tuple[str, str]] = {}
    for n in sorted(exchange.notices_for(ctx, principal, now), key=lambda n: n.id):
        about = n.about or {}
        if about.get("application") and about.get("status"):
            latest[(str(about["application"]), n.sender)] = (str(about["status"]), n.body)
    for view in views:
        for d in view.deliveries:
            status = latest.get((d["message_id"], d["agency_id"]))
            if status is not None:
                d["status"], d["note"] = status
    return views


def procedures_from_form(fields: Mapping[str, str], chosen: Sequence[str]) -> dict[str, dict[str, str]]:
    """Split a flat HTML form (``<procedure>.<field>`` names) into one form per chosen procedure."""
    out: dict[str, dict[str, str]] = {}
    for name in chosen:
        prefix = name + "."
        out[name] = {k[len(prefix):]: v for k, v in fields.items() if k.startswith(prefix)}
    return out
