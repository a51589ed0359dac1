"""Shelter check-in (避難所): touches of the card at a shelter, synced from the shelter's offline client, and
the municipality's disaster page (who is where, who from a household is still missing, counts by shelter).

A touch carries a client-made id (UUID), so a batch sent twice — or a sync cut off after the server committed
— adds nothing the second time (``ON CONFLICT DO NOTHING`` on the id). The card is checked as the
municipality set it: with the PIN, the card signed the touch itself (id, shelter, time) with its
authentication key, which the server checks against the certificate; without, the certificate alone (the
municipality allows the unauthenticated read for check-in). Either way the certificate must chain to JPKI,
be valid at the touch and unrevoked. Disaster work is one of the uses the law allows, so the holder is looked
up from the certificate (J-LIS's serial → resident mapping) — never from an individual number.
"""

from __future__ import annotations

import base64
import binascii
import re
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import insert, select, update

from mynacard.context import Context
from mynacard.db import bulk_insert_ignore
from mynacard.errors import Forbidden, InvalidInput, NotFound
from mynacard.jpki import service as jpki
from mynacard.jpki.model import Purpose
from mynacard.jpki.relying_party import RelyingParty
from mynacard.mykey.model import missing_members, presence
from mynacard.mykey.platform import PLATFORM
from mynacard.mykey.tables import mykey_settings, shelter_touches, shelters
from mynacard.principal import Principal, Role
from mynacard.registry import service as registry

__all__ = [
    "DisasterView",
    "Shelter",
    "SyncReceipt",
    "Touch",
    "disaster_view",
    "receive_touches",
    "register_shelter",
    "set_pin_required",
    "shelter",
    "touch_message",
]

_STAFF = (Role.CLERK, Role.SUPERVISOR, Role.OPERATOR, Role.SYSTEM)
_CODE = re.compile(r"[A-Za-z0-9_-]{1,32}")
MAX_BATCH = 500


@dataclass(frozen=True)
class Shelter:
    id: int
    code: str
    name: str
    municipality_code: str
    capacity: int
    pin_required: bool


@dataclass(frozen=True)
class Touch:
    """A touch as the shelter client recorded it."""

    touch_id: str
    certificate: bytes
    direction: str
    touched_at: datetime
    signature: bytes | None = None

    def to_json(self) -> dict[str, Any]:
        return {"touch_id": self.touch_id, "certificate": base64.b64encode(self.certificate).decode(),
                "direction": self.direction, "touched_at": self.touched_at.isoformat(),
                "signature": base64.b64encode(self.signature).decode() if self.signature else None}

    @classmethod
    def from_json(cls, data: Any) -> Touch:
        try:
            signature = data.get("signature")
            touched = datetime.fromisoformat(str(data["touched_at"]))
            if touched.tzinfo is None:
                raise ValueError("a touch time needs its UTC offset")
            touched.astimezone(UTC)  # a time that has no UTC instant (year 1 with a positive offset) is refused
            return cls(str(uuid.UUID(str(data["touch_id"]))), base64.b64decode(data["certificate"], validate=True),
                       str(data["direction"]), touched,
                       base64.b64decode(signature, validate=True) if signature else None)
        except (KeyError, TypeError, ValueError, AttributeError, OverflowError, binascii.Error) as exc:
            raise InvalidInput(f"not a touch: {exc}") from None


@dataclass(frozen=True)
class SyncReceipt:
    """What the municipality made of a batch: new, already there (a repeat), refused with the reason."""

    accepted: tuple[str, ...]
    duplicates: tuple[str, ...]
    refused: dict[str, str]

    def to_json(self) -> dict[str, Any]:
        return {"accepted": list(self.accepted), "duplicates": list(self.duplicates), "refused": self.refused}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> SyncReceipt:
        return cls(tuple(data["accepted"]), tuple(data["duplicates"]), dict(data["refused"]))


def touch_message(touch_id: str, shelter_code: str, touched_at: datetime, direction: str) -> bytes:
    """What the card signs at a PIN check-in: binds the signature to this touch and this shelter."""
    return f"mynacard-shelter|{touch_id}|{shelter_code}|{direction}|{touched_at.isoformat()}".encode()


def set_pin_required(ctx: Context, principal: Principal, municipality_code: str, required: bool) -> None:
    """The municipality's choice: check-in with the PIN, or the unauthenticated certificate read."""
    principal.require(*_STAFF)
    if not principal.can_see_municipality(municipality_code):
        raise Forbidden("a municipality sets only its own shelters' rule")
    with ctx.transaction() as tx:
        conn = tx.conn
        done = conn.execute(update(mykey_settings).where(mykey_settings.c.municipality_code == municipality_code)
                            .values(shelter_pin_required=required)).rowcount
        if not done:
            conn.execute(insert(mykey_settings).values(municipality_code=municipality_code,
                                                       shelter_pin_required=required))


def register_shelter(ctx: Context, principal: Principal, code: str, name: str, municipality_code: str,
                     capacity: int) -> Shelter:
    principal.require(*_STAFF)
    if not principal.can_see_municipality(municipality_code):
        raise Forbidden("a municipality registers only its own shelters")
    if not _CODE.fullmatch(code or "") or not name.strip() or capacity < 0:
        raise InvalidInput("a shelter needs a code (letters, digits, - _), a name and a capacity")
    with ctx.transaction() as tx:
        conn = tx.conn
        if conn.execute(select(shelters.c.id).where(shelters.c.code == code)).first() is None:
            conn.execute(insert(shelters).values(code=code, name=name.strip()[:128],
                                                 municipality_code=municipality_code, capacity=capacity))
    return shelter(ctx, code)


def shelter(ctx: Context, code: str) -> Shelter:
    with ctx.db.connect() as conn:
        row = conn.execute(select(shelters, mykey_settings.c.shelter_pin_required).outerjoin(
            mykey_settings, mykey_settings.c.municipality_code == shelters.c.municipality_code)
            .where(shelters.c.code == code)).first()
    if row is None:
        raise NotFound(f"no shelter {code}")
    return Shelter(row.id, row.code, row.name, row.municipality_code, row.capacity,
                   True if row.shelter_pin_required is None else bool(row.shelter_pin_required))


def _check(rp: RelyingParty, place: Shelter, touch: Touch) -> tuple[int | None, str | None]:
    if touch.direction not in ("in", "out"):
        return None, "direction is in or out"
    if touch.signature is not None:
        message = touch_message(touch.touch_id, place.code, touch.touched_at, touch.direction)
        verification = rp.verify_signature(message, touch.signature, touch.certificate, touch.touched_at,
                                           purpose=Purpose.AUTHENTICATION)
    elif place.pin_required:
        return None, "this municipality checks in with the PIN"
    else:
        verification = rp.check_certificate(touch.certificate, Purpose.AUTHENTICATION, touch.touched_at)
    if not verification.valid or verification.signer is None:
        return None, "; ".join(verification.problems) or "not accepted"
    return verification.signer.serial, None


def receive_touches(ctx: Context, principal: Principal, shelter_code: str, touches: list[Touch],
                    now: datetime) -> SyncReceipt:
    """A shelter client's batch: each touch checked and stored once; repeats are reported, not stored again."""
    principal.require(*_STAFF)
    place = shelter(ctx, shelter_code)
    if not principal.can_see_municipality(place.municipality_code):
        raise NotFound(f"no shelter {shelter_code}")
    if len(touches) > MAX_BATCH:
        raise InvalidInput(f"at most {MAX_BATCH} touches a batch")
    rp = RelyingParty.for_service(ctx, PLATFORM, now)
    with ctx.db.connect() as conn:
        ids = [t.touch_id for t in touches]
        known = set(conn.execute(select(shelter_touches.c.touch_id)
                                 .where(shelter_touches.c.touch_id.in_(ids))).scalars())
    rows: list[dict[str, Any]] = []
    refused: dict[str, str] = {}
    for touch in touches:
        if touch.touch_id in known or any(r["touch_id"] == touch.touch_id for r in rows):
            continue
        serial, problem = _check(rp, place, touch)
        if serial is None:
            refused[touch.touch_id] = problem or "not accepted"
            continue
        try:
            resident_id = jpki.holder_of_certificate(ctx, PLATFORM, serial, now)
        except NotFound:
            refused[touch.touch_id] = "unknown certificate"
            continue
        rows.append({"touch_id": touch.touch_id, "shelter_id": place.id, "resident_id": resident_id,
                     "certificate_serial": f"{serial:X}", "direction": touch.direction,
                     "touched_at": touch.touched_at, "received_at": now})
    with ctx.transaction() as tx:
        inserted = bulk_insert_ignore(tx.conn, shelter_touches, rows, "touch_id") if rows else set()
    accepted = tuple(t.touch_id for t in touches if t.touch_id in inserted)
    duplicates = tuple(t.touch_id for t in touches if t.touch_id not in inserted and t.touch_id not in refused)
    return SyncReceipt(accepted, tuple(dict.fromkeys(duplicates)), refused)


# --- the disaster page -----------------------------------------------------------------------------------

@dataclass(frozen=True)
class Person:
    resident_id: int
    name: str
    relationship: str
    shelter_name: str | None


@dataclass(frozen=True)
class ShelterCount:
    code: str
    name: str
    capacity: int
    present: int


@dataclass(frozen=True)
class DisasterView:
    municipality_code: str
    shelters: list[ShelterCount]
    present: dict[str, list[Person]]
    """Shelter code → who is there now."""
    missing: list[tuple[Person, list[Person]]]
    """For each household with someone checked in: someone of it who is, and those still missing."""

    @property
    def total_present(self) -> int:
        return sum(s.present for s in self.shelters)


def disaster_view(ctx: Context, principal: Principal, municipality_code: str) -> DisasterView:
    """The municipality's disaster page, from every touch synced so far (its own shelters and residents only)."""
    principal.require(*_STAFF)
    if not principal.can_see_municipality(municipality_code):
        raise NotFound("no such municipality")
    with ctx.db.connect() as conn:
        places = conn.execute(select(shelters).where(shelters.c.municipality_code == municipality_code)
                              .order_by(shelters.c.code)).all()
        by_id = {p.id: p for p in places}
        touches = conn.execute(select(shelter_touches.c.resident_id, shelter_touches.c.shelter_id,
                                      shelter_touches.c.direction, shelter_touches.c.touched_at)
                               .where(shelter_touches.c.shelter_id.in_(list(by_id)))).all() if by_id else []
        where = presence((t.resident_id, by_id[t.shelter_id].code, t.direction, t.touched_at) for t in touches)
        people = registry.get_residents(conn, list(where))
        households: dict[int, list[int]] = {}
        members_of: dict[int, Any] = {}
        for resident in people.values():
            if resident.household_id is not None and resident.household_id not in households:
                members = registry.household_members(conn, resident.household_id)
                households[resident.household_id] = [m.id for m in members]
                members_of.update((m.id, m) for m in members)
        members_of.update(people)
    names = {p.code: p.name for p in places}

    def person(rid: int) -> Person:
        r = members_of[rid]
        code = where.get(rid)
        return Person(rid, r.facts.name, r.relationship,
                      names[code] if code else None)

    present: dict[str, list[Person]] = {p.code: [] for p in places}
    for rid, code in sorted(where.items()):
        if code is not None and rid in members_of:
            present[code].append(person(rid))
    missing = []
    for household, absent in sorted(missing_members(households, where).items()):
        found = next(m for m in households[household] if where.get(m))
        missing.append((person(found), [person(m) for m in absent]))
    counts = [ShelterCount(p.code, p.name, p.capacity, len(present[p.code])) for p in places]
    return DisasterView(municipality_code, counts, present, missing)
