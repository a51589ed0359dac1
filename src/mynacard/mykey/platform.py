"""The MyKey platform (マイキープラットフォーム): MyKey IDs bound to authentication certificates, and the
public facilities (library, sports facility, community bus) that link their member numbers to them.

The linkage chain is the real one: 利用者証明用電子証明書の発行番号 → マイキーID → each facility's member
number. No individual number is used or stored. A card proves itself to the platform by signing a
challenge with its authentication key after the PIN (:class:`CardProof`, made by
:mod:`mynacard.mykey.terminal` through ``CardClient``); the JPKI relying-party SDK checks chain, validity and
revocation. A renewed certificate is recognised through the JPKI lineage (old → new): the first time the new
serial is seen, it is bound to the MyKey ID of its predecessor.
"""

from __future__ import annotations

import secrets
import threading
import time
import weakref
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, insert, select
from sqlalchemy.exc import IntegrityError

from mynacard.context import Context
from mynacard.db import bulk_insert_ignore
from mynacard.errors import Conflict, Forbidden, InvalidInput, NotFound
from mynacard.jpki import service as jpki
from mynacard.jpki.model import Purpose
from mynacard.jpki.relying_party import Challenge, RelyingParty, Verification
from mynacard.mykey.model import FacilityKind, check_member_number, check_mykey_id, mykey_id_from
from mynacard.mykey.tables import mykey_certificates, mykey_facilities, mykey_ids, mykey_links
from mynacard.principal import Principal, Role

__all__ = [
    "PLATFORM",
    "CardProof",
    "Facility",
    "Recognition",
    "create_mykey_id",
    "facility",
    "issue_challenge",
    "link_member",
    "links_of",
    "mykey_id_of_certificate",
    "recognise",
    "register_facility",
    "verify_card",
]

PLATFORM = Principal.system("mykey")
"""The platform acts as a J-LIS internal relying party (it runs on the JPKI platform)."""
CACHE_SECONDS = 30.0
"""How long a process keeps the relying party (the JPKI roots) and facility rows: a new CA generation or a
changed facility is seen within this time. Revocation status is never cached here."""
_CACHE: weakref.WeakKeyDictionary[Any, dict[str, tuple[float, Any]]] = weakref.WeakKeyDictionary()
_CACHE_LOCK = threading.Lock()


def _cached(ctx: Context, key: str, load: Callable[[], Any]) -> Any:
    now = time.monotonic()
    with _CACHE_LOCK:
        per_db = _CACHE.setdefault(ctx.db, {})
        found = per_db.get(key)
    if found is not None and found[0] > now:
        return found[1]
    value = load()
    with _CACHE_LOCK:
        if len(per_db) > 10_000:
            per_db.clear()
        per_db[key] = (now + CACHE_SECONDS, value)
    return value


def _relying_party(ctx: Context) -> RelyingParty:
    rp: RelyingParty = _cached(ctx, "rp", lambda: RelyingParty.for_service(ctx, PLATFORM))
    return rp
_STAFF = (Role.CLERK, Role.SUPERVISOR, Role.OPERATOR, Role.SYSTEM)


@dataclass(frozen=True)
class CardProof:
    """What a card gives a terminal: its authentication certificate and, after the PIN, its signature over
    the platform's challenge. Without a challenge it is a read of the certificate alone (no PIN)."""

    certificate: bytes
    challenge_id: str | None = None
    signature: bytes | None = None

    @property
    def with_pin(self) -> bool:
        return self.challenge_id is not None and self.signature is not None


@dataclass(frozen=True)
class Facility:
    id: int
    code: str
    name: str
    kind: FacilityKind
    municipality_code: str
    pin_required: bool


@dataclass(frozen=True)
class Recognition:
    """A card touched at a facility: whose member card it stands for."""

    facility_code: str
    member_number: str
    mykey_id: str
    certificate_serial: str


def issue_challenge(ctx: Context, now: datetime) -> Challenge:
    """A single-use challenge for a card to sign (kept in the JPKI challenge store: any process checks it)."""
    return _relying_party(ctx).issue_challenge(now)


def verify_card(ctx: Context, proof: CardProof, now: datetime, *, pin_required: bool = True) -> int:
    """The serial of a valid, unrevoked authentication certificate the card proved it holds (or, where no
    PIN is required and none was given, that it presented). Anything else: :class:`Forbidden`."""
    rp = _relying_party(ctx)
    verification: Verification
    if proof.with_pin:
        assert proof.challenge_id is not None and proof.signature is not None
        verification = rp.verify_login(proof.challenge_id, proof.signature, proof.certificate, now)
    elif pin_required:
        raise Forbidden("this needs the card's PIN (利用者証明用電子証明書の暗証番号)")
    else:
        verification = rp.check_certificate(proof.certificate, Purpose.AUTHENTICATION, now)
    if not verification.valid or verification.signer is None:
        raise Forbidden("the card was not accepted: " + "; ".join(verification.problems or ("unknown",)))
    return verification.signer.serial


def _hex(serial: int) -> str:
    return f"{serial:X}"


def _bound(conn: Connection, serials: list[str]) -> str | None:
    return conn.execute(select(mykey_certificates.c.mykey_id)
                        .where(mykey_certificates.c.serial.in_(serials)).limit(1)).scalar()


def mykey_id_of_certificate(ctx: Context, serial: int, now: datetime) -> str | None:
    """The MyKey ID a certificate stands for: bound directly, or through its predecessors in the JPKI lineage
    (a renewed certificate), in which case the new serial is bound on the way (so this happens once)."""
    with ctx.db.connect() as conn:
        found = _bound(conn, [_hex(serial)])
    if found is not None:
        return str(found)
    try:
        chain = jpki.lineage(ctx, PLATFORM, serial)
    except NotFound:
        return None
    older = [_hex(c.serial) for c in chain if c.serial != serial]
    if not older:
        return None
    with ctx.transaction() as tx:
        found = _bound(tx.conn, older)
        if found is None:
            return None
        bulk_insert_ignore(tx.conn, mykey_certificates, [{"serial": _hex(serial), "mykey_id": found,
                                                          "bound_at": now, "how": "lineage"}], "serial")
        tx.record("mykey.certificate_followed", {"mykey_id": found, "serial": _hex(serial)}, now)
    return str(found)


def create_mykey_id(ctx: Context, proof: CardProof, now: datetime) -> str:
    """マイキーIDの設定: the card holder proves themselves with the authentication certificate and its PIN;
    one ID per person — a second call (or a new card) returns the same ID and binds the certificate to it."""
    serial = verify_card(ctx, proof, now)
    resident_id = jpki.holder_of_certificate(ctx, PLATFORM, serial, now)
    for _attempt in range(5):
        try:
            with ctx.transaction() as tx:
                conn = tx.conn
                existing = conn.execute(select(mykey_ids.c.mykey_id)
                                        .where(mykey_ids.c.resident_id == resident_id)).scalar()
                mykey_id = existing or mykey_id_from(secrets.token_bytes(8))
                if existing is None:
                    conn.execute(insert(mykey_ids).values(mykey_id=mykey_id, resident_id=resident_id,
                                                          created_at=now))
                    tx.record("mykey.created", {"mykey_id": mykey_id}, now)
                bound = conn.execute(select(mykey_certificates.c.mykey_id)
                                     .where(mykey_certificates.c.serial == _hex(serial))).scalar()
                if bound is not None and bound != mykey_id:
                    raise Conflict("this certificate is bound to another MyKey ID")
                if bound is None:
                    conn.execute(insert(mykey_certificates).values(serial=_hex(serial), mykey_id=mykey_id,
                                                                   bound_at=now, how="card"))
            return str(mykey_id)
        except IntegrityError:
            continue  # a concurrent first creation, or an ID drawn twice: read again
    raise Conflict("the MyKey ID could not be created; try again")


def _facility_row(conn: Connection, code: str) -> Facility:
    row = conn.execute(select(mykey_facilities).where(mykey_facilities.c.code == code)).first()
    if row is None:
        raise NotFound(f"no facility {code}")
    return Facility(row.id, row.code, row.name, FacilityKind(row.kind), row.municipality_code, row.pin_required)


def facility(ctx: Context, code: str) -> Facility:
    def load() -> Facility:
        with ctx.db.connect() as conn:
            return _facility_row(conn, code)

    place: Facility = _cached(ctx, "facility:" + code, load)
    return place


def register_facility(ctx: Context, principal: Principal, code: str, name: str, kind: FacilityKind | str,
                      municipality_code: str, now: datetime, *, pin_required: bool = True) -> Facility:
    """A public facility joins the platform (the municipality that runs it, or the operator). Idempotent
    for the same code and details."""
    principal.require(*_STAFF)
    if not principal.can_see_municipality(municipality_code):
        raise Forbidden("a municipality registers only its own facilities")
    kind = FacilityKind(kind)
    code = check_member_number(code)
    if not name.strip():
        raise InvalidInput("a facility needs a name")
    with ctx.transaction() as tx:
        try:
            existing = _facility_row(tx.conn, code)
        except NotFound:
            tx.conn.execute(insert(mykey_facilities).values(
                code=code, name=name.strip()[:128], kind=kind.value, municipality_code=municipality_code,
                pin_required=pin_required, created_at=now))
            return _facility_row(tx.conn, code)
    if (existing.kind, existing.municipality_code) != (kind, municipality_code):
        raise Conflict(f"facility {code} is already registered with other details")
    return existing


def link_member(ctx: Context, principal: Principal, facility_code: str, member_number: str, proof: CardProof,
                now: datetime) -> str:
    """利用者登録: at the facility's counter the holder touches the card with the PIN and staff enter the member
    number; returns the MyKey ID. A retry is harmless; a member number or MyKey ID already linked to someone
    else at this facility is refused."""
    principal.require(*_STAFF)
    member_number = check_member_number(member_number)
    place = facility(ctx, facility_code)
    if not principal.can_see_municipality(place.municipality_code):
        raise NotFound(f"no facility {facility_code}")
    serial = verify_card(ctx, proof, now)
    mykey_id = mykey_id_of_certificate(ctx, serial, now)
    if mykey_id is None:
        raise NotFound("this card has no MyKey ID yet: set one first (マイキーIDの設定)")
    with ctx.transaction() as tx:
        rows = tx.conn.execute(select(mykey_links).where(
            mykey_links.c.facility_id == place.id,
            (mykey_links.c.member_number == member_number) | (mykey_links.c.mykey_id == mykey_id))).all()
        if any(r.member_number == member_number and r.mykey_id == mykey_id for r in rows):
            return mykey_id
        if rows:
            raise Conflict("this member number or this card is already linked to someone else here")
        tx.conn.execute(insert(mykey_links).values(facility_id=place.id, member_number=member_number,
                                                   mykey_id=mykey_id, linked_at=now))
        tx.record("mykey.linked", {"facility": place.code, "mykey_id": mykey_id}, now)
    return mykey_id


def recognise(ctx: Context, facility_code: str, proof: CardProof, now: datetime) -> Recognition:
    """A touch at the facility: the member the card stands for, without a separate member card."""
    place = facility(ctx, facility_code)
    serial = verify_card(ctx, proof, now, pin_required=place.pin_required)
    with ctx.db.connect() as conn:  # the usual case in one indexed join: certificate → MyKey ID → member
        row = conn.execute(select(mykey_links.c.member_number, mykey_links.c.mykey_id)
                           .join(mykey_certificates, mykey_certificates.c.mykey_id == mykey_links.c.mykey_id)
                           .where(mykey_certificates.c.serial == _hex(serial),
                                  mykey_links.c.facility_id == place.id)).first()
    if row is not None:
        return Recognition(place.code, str(row.member_number), str(row.mykey_id), _hex(serial))
    mykey_id = mykey_id_of_certificate(ctx, serial, now)  # a renewed certificate seen for the first time
    if mykey_id is None:
        raise NotFound("this card has no MyKey ID")
    with ctx.db.connect() as conn:
        member = conn.execute(select(mykey_links.c.member_number).where(
            mykey_links.c.facility_id == place.id, mykey_links.c.mykey_id == mykey_id)).scalar()
    if member is None:
        raise NotFound(f"not a member of {place.name}")
    return Recognition(place.code, str(member), mykey_id, _hex(serial))


def links_of(ctx: Context, principal: Principal, mykey_id: str) -> list[tuple[str, str]]:
    """Which facilities a MyKey ID is linked to (what the platform may see: not usage), for the operator or
    the holder (a resident principal whose subject is their resident id)."""
    mykey_id = check_mykey_id(mykey_id)
    with ctx.db.connect() as conn:
        owner = conn.execute(select(mykey_ids.c.resident_id).where(mykey_ids.c.mykey_id == mykey_id)).scalar()
        if owner is None or not (principal.role in (Role.OPERATOR, Role.SYSTEM) or (
                principal.role is Role.RESIDENT and principal.subject == str(owner))):
            raise NotFound("no such MyKey ID")
        rows = conn.execute(select(mykey_facilities.c.code, mykey_facilities.c.name)
                            .join(mykey_links, mykey_links.c.facility_id == mykey_facilities.c.id)
                            .where(mykey_links.c.mykey_id == mykey_id).order_by(mykey_facilities.c.code)).all()
    return [(r.code, r.name) for r in rows]
