"""Sites, counters, shifts and slots (予約枠): where the windows are, how they are staffed, the slots made from
that, and which slots can be booked — the rule is :func:`mynacard.office.model.slot_requirements`, turned
into SQL conditions here by :func:`bookable`."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from typing import Any

from sqlalchemy import ColumnElement, Connection, func, insert, select, update

from mynacard.clock import JST
from mynacard.context import Context
from mynacard.errors import InvalidInput, NotFound
from mynacard.office.access import SUPERVISING, scope
from mynacard.office.model import (
    BOOKABLE_KIND,
    BOOKING_HORIZON_DAYS,
    CounterKind,
    SiteKind,
    SlotRefusal,
    plan_slots,
    slot_requirements,
)
from mynacard.office.tables import office_counters, office_shifts, office_sites, office_slots
from mynacard.principal import Principal

__all__ = ["SiteView", "SlotView", "add_shift", "add_site", "generate_slots", "open_slots", "sites"]


def add_site(ctx: Context, principal: Principal, municipality_code: str, name: str, kind: SiteKind | str,
             counters: dict[CounterKind | str, int], now: datetime, address: str | None = None) -> int:
    """A site (本庁, 支所, 臨時交付窓口) with its counters: ``{kind: number}``; every issuance counter has a
    terminal. Adding the same site again returns its id and changes nothing."""
    principal.require(*SUPERVISING)
    scope(principal, municipality_code)
    try:
        site_kind = SiteKind(kind)
        parsed = {CounterKind(k): int(n) for k, n in counters.items()}
    except (ValueError, TypeError):
        raise InvalidInput(f"a site's kind is one of {', '.join(k.value for k in SiteKind)}, and its counters "
                           f"are {', '.join(k.value for k in CounterKind)} with a number each") from None
    if not name.strip() or len(name) > 100:
        raise InvalidInput("a site needs a name (at most 100 characters)")
    if any(n < 0 or n > 100 for n in parsed.values()):
        raise InvalidInput("0–100 counters of each kind")
    with ctx.transaction() as tx:
        existing = tx.conn.execute(select(office_sites.c.id).where(
            office_sites.c.municipality_code == municipality_code, office_sites.c.name == name)).scalar()
        if existing is not None:
            return int(existing)
        site_id = int(tx.conn.execute(insert(office_sites).values(
            municipality_code=municipality_code, name=name, kind=site_kind.value, address=address,
            created_at=now).returning(office_sites.c.id)).scalar_one())
        rows = [{"site_id": site_id, "kind": k.value, "label": f"{k.value}-{i + 1}",
                 "terminals": 1 if k is CounterKind.ISSUANCE else 0}
                for k, n in parsed.items() for i in range(n)]
        if rows:
            tx.conn.execute(insert(office_counters), rows)
    return site_id


@dataclass(frozen=True)
class SiteView:
    id: int
    municipality_code: str
    name: str
    kind: SiteKind
    counters: dict[CounterKind, int]
    terminals: int


def sites(ctx: Context, principal: Principal, municipality_code: str) -> list[SiteView]:
    scope(principal, municipality_code)
    with ctx.db.connect() as conn:
        return site_views(conn, municipality_code)


def site_views(conn: Connection, municipality_code: str) -> list[SiteView]:
    """The municipality's sites with their counters by kind and their terminals."""
    rows = conn.execute(select(office_sites).where(office_sites.c.municipality_code == municipality_code)
                        .order_by(office_sites.c.id)).all()
    counts: dict[int, dict[CounterKind, int]] = defaultdict(dict)
    terminals: dict[int, int] = defaultdict(int)
    for site_id, kind, n, t in conn.execute(
            select(office_counters.c.site_id, office_counters.c.kind, func.count(),
                   func.sum(office_counters.c.terminals))
            .where(office_counters.c.site_id.in_([r.id for r in rows]))
            .group_by(office_counters.c.site_id, office_counters.c.kind)):
        counts[site_id][CounterKind(kind)] = int(n)
        terminals[site_id] += int(t or 0)
    return [SiteView(r.id, r.municipality_code, r.name, SiteKind(r.kind), dict(counts[r.id]), terminals[r.id])
            for r in rows]


def _site(conn: Connection, principal: Principal, site_id: int) -> Any:
    row = conn.execute(select(office_sites).where(office_sites.c.id == site_id)).first()
    if row is None or not principal.can_see_municipality(row.municipality_code):
        raise NotFound("no such site")
    return row


_SITE_NAMES: dict[tuple[str, int], str] = {}
"""Site names by (database, site id): sites are never renamed, so the hot path need not join them."""


def site_name(conn: Connection, site_id: int) -> str:
    key = (str(conn.engine.url), site_id)
    if key not in _SITE_NAMES:
        _SITE_NAMES[key] = str(conn.execute(select(office_sites.c.name).where(office_sites.c.id == site_id))
                               .scalar_one())
    return _SITE_NAMES[key]


def add_shift(ctx: Context, principal: Principal, site_id: int, day: date, starts: time, ends: time, staff: int,
              note: str | None = None) -> int:
    """A staffed opening of a site: weekday hours, a Saturday opening (土曜開庁) or an evening (夜間延長)."""
    principal.require(*SUPERVISING)
    if ends <= starts:
        raise InvalidInput("a shift must end after it starts")
    if not 1 <= staff <= 200:
        raise InvalidInput("1–200 staff on a shift")
    with ctx.transaction() as tx:
        _site(tx.conn, principal, site_id)
        existing = tx.conn.execute(select(office_shifts.c.id).where(
            office_shifts.c.site_id == site_id, office_shifts.c.day == day, office_shifts.c.starts == starts)).scalar()
        if existing is not None:
            tx.conn.execute(update(office_shifts).where(office_shifts.c.id == existing).values(
                ends=ends, staff=staff, note=note))
            return int(existing)
        return int(tx.conn.execute(insert(office_shifts).values(
            site_id=site_id, day=day, starts=starts, ends=ends, staff=staff, note=note)
            .returning(office_shifts.c.id)).scalar_one())


def generate_slots(ctx: Context, principal: Principal, site_id: int, first: date, last: date) -> int:
    """Slots from the site's counters and shifts for the days ``first``..``last``; existing slots keep their
    bookings (a slot is added once, and its capacity is never lowered below what is booked). Returns slots
    added."""
    principal.require(*SUPERVISING)
    if last < first or (last - first).days > 366:
        raise InvalidInput("generate slots for at most a year")
    added = 0
    with ctx.transaction() as tx:
        site = _site(tx.conn, principal, site_id)
        counters = site_views(tx.conn, site.municipality_code)
        mine = next(s for s in counters if s.id == site_id)
        shifts = tx.conn.execute(select(office_shifts).where(
            office_shifts.c.site_id == site_id, office_shifts.c.day >= first, office_shifts.c.day <= last)
            .order_by(office_shifts.c.day, office_shifts.c.starts)).all()
        existing = {(k, t) for k, t in tx.conn.execute(select(office_slots.c.kind, office_slots.c.starts_at).where(
            office_slots.c.site_id == site_id,
            office_slots.c.starts_at >= datetime.combine(first, time(0), JST),
            office_slots.c.starts_at < datetime.combine(last + timedelta(days=1), time(0), JST)))}
        rows = []
        for shift in shifts:
            for plan in plan_slots(shift.day, shift.starts, shift.ends, shift.staff, mine.counters, JST):
                if (plan.kind.value, plan.starts_at) in existing:
                    continue
                existing.add((plan.kind.value, plan.starts_at))
                rows.append({"site_id": site_id, "municipality_code": site.municipality_code,
                             "kind": plan.kind.value, "starts_at": plan.starts_at, "ends_at": plan.ends_at,
                             "capacity": plan.capacity, "booked": 0})
        if rows:
            tx.conn.execute(insert(office_slots), rows)
            added = len(rows)
    return added


# --- bookable slots ----------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class SlotView:
    id: int
    site_id: int
    site_name: str
    kind: CounterKind
    starts_at: datetime
    ends_at: datetime
    capacity: int
    booked: int

    @property
    def free(self) -> int:
        return max(0, self.capacity - self.booked)


def slot_query() -> Any:
    """Slots with their site's name, for :func:`slot_view`."""
    return (select(office_slots, office_sites.c.name.label("site_name"))
            .join(office_sites, office_sites.c.id == office_slots.c.site_id))


def slot_view(r: Any) -> SlotView:
    return SlotView(r.id, r.site_id, r.site_name, CounterKind(r.kind), r.starts_at, r.ends_at, r.capacity, r.booked)


def bookable(municipality_code: str, now: datetime, kind: CounterKind = BOOKABLE_KIND, *,
             horizon_days: int = BOOKING_HORIZON_DAYS, free: bool = True) -> list[ColumnElement[bool]]:
    """The bookable-slot rule (:func:`~mynacard.office.model.slot_requirements`) as conditions on
    ``office_slots``, for a WHERE. ``free=False`` leaves out only that a place is left: the slots ahead, full
    or not."""
    return [condition for refusal, condition in slot_requirements(
                office_slots.c, municipality_code, now, kind, horizon_days)
            if free or refusal is not SlotRefusal.FULL]


def open_slots(ctx: Context, municipality_code: str, now: datetime, days: int = BOOKING_HORIZON_DAYS,
               kind: CounterKind = BOOKABLE_KIND, only_free: bool = True) -> list[SlotView]:
    """Bookable slots of a municipality from now to the booking horizon (public: times and places only);
    ``only_free=False`` lists the full ones too."""
    query = slot_query().where(*bookable(municipality_code, now, kind, horizon_days=days, free=only_free)).order_by(
        office_slots.c.starts_at, office_slots.c.site_id)
    with ctx.db.connect() as conn:
        return [slot_view(r) for r in conn.execute(query)]


def issuance_capacity(conn: Connection, municipality_code: str, now: datetime) -> int:
    """Places of the bookable issuance slots ahead (booked or not): what staged mailing may fill."""
    return int(conn.execute(select(func.coalesce(func.sum(office_slots.c.capacity), 0)).where(
        *bookable(municipality_code, now, free=False))).scalar_one())
