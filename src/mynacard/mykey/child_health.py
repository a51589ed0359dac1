"""Mother-and-child health records (母子保健): vaccinations and check-ups the municipality's health centre
records, shown to the parent in Mynaportal with reminders for what is due or was missed.

The schedule (:data:`SCHEDULE`) is the routine programme (定期接種) and the statutory check-ups (乳幼児健診) in
simplified windows by age in months; a vaccination not recorded by the end of its window is *missed* (the
reminder says to contact the health centre), one whose window is open is *due*.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime

from sqlalchemy import insert, select

from mynacard.context import Context
from mynacard.errors import Conflict, Forbidden, InvalidInput, NotFound
from mynacard.mykey.tables import child_health_records
from mynacard.principal import Principal, Role
from mynacard.registry import service as registry

__all__ = ["SCHEDULE", "ChildHealth", "Item", "Reminder", "for_parent", "record", "reminders"]

_HEALTH_CENTRE = (Role.CLERK, Role.SUPERVISOR, Role.OPERATOR, Role.SYSTEM)
CHILD_AGE_LIMIT_MONTHS = 12 * 13


@dataclass(frozen=True)
class Item:
    kind: str
    """``vaccination`` or ``checkup``."""
    code: str
    ja: str
    en: str
    from_month: int
    until_month: int
    """The window, in completed months of age: from ``from_month`` up to (not including) ``until_month``."""


SCHEDULE: tuple[Item, ...] = (
    Item("vaccination", "HepB-1", "B型肝炎 1回目", "Hepatitis B, 1st", 2, 9),
    Item("vaccination", "HepB-2", "B型肝炎 2回目", "Hepatitis B, 2nd", 3, 9),
    Item("vaccination", "HepB-3", "B型肝炎 3回目", "Hepatitis B, 3rd", 7, 12),
    Item("vaccination", "Rota-1", "ロタウイルス 1回目", "Rotavirus, 1st", 2, 4),
    Item("vaccination", "PCV-1", "小児用肺炎球菌 1回目", "Pneumococcal, 1st", 2, 7),
    Item("vaccination", "DPT-IPV-Hib-1", "五種混合 1回目", "DTaP-IPV-Hib, 1st", 2, 7),
    Item("vaccination", "DPT-IPV-Hib-2", "五種混合 2回目", "DTaP-IPV-Hib, 2nd", 3, 8),
    Item("vaccination", "DPT-IPV-Hib-3", "五種混合 3回目", "DTaP-IPV-Hib, 3rd", 4, 9),
    Item("vaccination", "BCG", "BCG", "BCG", 5, 12),
    Item("vaccination", "MR-1", "麻しん風しん 1期", "Measles-rubella, 1st", 12, 24),
    Item("vaccination", "VZV-1", "水痘 1回目", "Varicella, 1st", 12, 15),
    Item("vaccination", "MR-2", "麻しん風しん 2期", "Measles-rubella, 2nd", 60, 84),
    Item("checkup", "4m", "4か月児健康診査", "4-month check-up", 3, 6),
    Item("checkup", "18m", "1歳6か月児健康診査", "18-month check-up", 18, 24),
    Item("checkup", "3y", "3歳児健康診査", "3-year check-up", 36, 48),
)
_BY_CODE = {(i.kind, i.code): i for i in SCHEDULE}


def months_old(birth: date, on: date) -> int:
    months = (on.year - birth.year) * 12 + on.month - birth.month
    return months - 1 if on.day < birth.day else months


@dataclass(frozen=True)
class Reminder:
    item: Item
    state: str
    """``due`` (window open) or ``missed`` (window passed, not recorded)."""


def reminders(birth: date, on: date, done: set[tuple[str, str]]) -> list[Reminder]:
    """What to remind the parent of (pure): every scheduled item not recorded whose window has opened."""
    age = months_old(birth, on)
    out = []
    for item in SCHEDULE:
        if (item.kind, item.code) in done or age < item.from_month:
            continue
        out.append(Reminder(item, "missed" if age >= item.until_month else "due"))
    return sorted(out, key=lambda r: (r.state != "missed", r.item.from_month))


@dataclass(frozen=True)
class RecordLine:
    item: Item
    done_on: date
    note: str


@dataclass(frozen=True)
class ChildHealth:
    resident_id: int
    name: str
    birth_date: date
    months: int
    records: list[RecordLine]
    reminders: list[Reminder]


def record(ctx: Context, principal: Principal, child_resident_id: int, kind: str, code: str, done_on: date,
           now: datetime, note: str = "") -> bool:
    """The health centre of the child's municipality records a vaccination or a check-up. Returns False when
    it was already recorded on that day (a retry); a different day for the same item is a conflict."""
    principal.require(*_HEALTH_CENTRE)
    item = _BY_CODE.get((kind, code))
    if item is None:
        raise InvalidInput(f"unknown {kind} {code!r}")
    child = registry.get_resident(ctx, Principal.system("child-health"), child_resident_id)
    if not principal.can_see_municipality(child.municipality_code):
        raise NotFound("no such child")
    if not child.facts.birth_date <= done_on <= now.date():
        raise InvalidInput("the date must be between the birth and today")
    with ctx.transaction() as tx:
        existing = tx.conn.execute(select(child_health_records.c.done_on).where(
            child_health_records.c.child_resident_id == child.id, child_health_records.c.kind == kind,
            child_health_records.c.code == code)).scalar()
        if existing is not None:
            if existing == done_on:
                return False
            raise Conflict(f"{item.ja} is already recorded on {existing}")
        tx.conn.execute(insert(child_health_records).values(
            child_resident_id=child.id, municipality_code=child.municipality_code, kind=kind, code=code,
            done_on=done_on, note=note[:200], recorded_by=principal.subject[:64], recorded_at=now))
        tx.record("mykey.child_health_recorded", {"child": child.id, "kind": kind, "code": code}, now)
    return True


def for_parent(ctx: Context, principal: Principal, on: date) -> list[ChildHealth]:
    """The records and reminders of the children (under 13) in the logged-in resident's household — only
    when the caller is an adult of that household, never anyone else's."""
    if principal.role is not Role.RESIDENT or not principal.subject.isdigit():
        raise Forbidden("only a resident sees their children's records")
    system = Principal.system("child-health")
    me = registry.get_resident(ctx, system, int(principal.subject))
    if me.household_id is None or months_old(me.facts.birth_date, on) < 18 * 12:
        return []
    with ctx.db.connect() as conn:
        members = registry.household_members(conn, me.household_id)
        children = [m for m in members if m.id != me.id and months_old(m.facts.birth_date, on) < CHILD_AGE_LIMIT_MONTHS
                    and m.facts.birth_date <= on]
        rows = conn.execute(select(child_health_records).where(
            child_health_records.c.child_resident_id.in_([c.id for c in children]))
            .order_by(child_health_records.c.done_on)).all() if children else []
    out = []
    for child in children:
        mine = [r for r in rows if r.child_resident_id == child.id]
        done = {(r.kind, r.code) for r in mine}
        out.append(ChildHealth(child.id, child.facts.name, child.facts.birth_date,
                               months_old(child.facts.birth_date, on),
                               [RecordLine(_BY_CODE[(r.kind, r.code)], r.done_on, r.note) for r in mine],
                               reminders(child.facts.birth_date, on, done)))
    return out
