"""Use cases of the municipal issuance office: receipt checks, the pre-issuance setup batch, issuance notices
(staged mailing, re-notice, destruction of uncollected cards), appointments (sites, counters, shifts, slots,
booking) and what the window needs (:func:`card_for_notice`, :func:`mark_notice_collected`).

Card states move only through :mod:`mynacard.cards.ledger` (one ``card_events`` row per move), inside the same
transaction as the office's own rows, so a card's state, its notice and its booking never disagree.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from functools import lru_cache
from typing import Any

from sqlalchemy import Connection, and_, func, insert, select, update
from sqlalchemy.exc import IntegrityError

from mynacard.cards import ledger
from mynacard.cards import service as cards
from mynacard.cards.model import AbolitionReason, CardState
from mynacard.clock import JST, local_date
from mynacard.context import Context
from mynacard.errors import Conflict, InvalidInput, NotFound
from mynacard.office.model import (
    BOOKING_HORIZON_DAYS,
    BookingState,
    CounterKind,
    NoticeCard,
    NoticeState,
    SiteKind,
    destruction_due,
    expected_wait_minutes,
    mailing_allowance,
    new_notice_number,
    parse_notice_number,
    pickup_deadline,
    plan_slots,
)
from mynacard.office.tables import (
    office_bookings,
    office_counters,
    office_notices,
    office_receipt_checks,
    office_setup_runs,
    office_shifts,
    office_sites,
    office_slots,
)
from mynacard.plans.model import is_government_business_day
from mynacard.principal import Principal, Role
from mynacard.registry import service as registry
from mynacard.registry.model import ResidentStatus
from mynacard.sealing import Sealer

__all__ = [
    "Booking",
    "ChipInspector",
    "ReceiptCheckResult",
    "backlog",
    "book",
    "bookings_on",
    "cancel_booking",
    "card_for_notice",
    "check_received_cards",
    "congestion",
    "destroy_uncollected",
    "generate_slots",
    "mark_notice_collected",
    "notice_for_print",
    "open_slots",
    "rebook",
    "renotice",
    "run_pre_issuance_setup",
    "send_notices",
]

S = CardState
_MUNICIPAL = (Role.CLERK, Role.SUPERVISOR, Role.OPERATOR, Role.SYSTEM)
_SUPERVISING = (Role.SUPERVISOR, Role.OPERATOR, Role.SYSTEM)
MAX_BIRTH_DATE_FAILURES = 5
"""After this many wrong dates of birth a notice can no longer be used on the web (call the office)."""
SETUP_CARDS_PER_TERMINAL = 100
"""Cards one integrated terminal sets up in one off-peak run (交付前設定)."""
OFF_PEAK = (time(8, 30), time(17, 15))
"""Opening hours of the windows on business days: the setup batch runs outside them (or on closed days)."""


def _scope(principal: Principal, municipality_code: str) -> None:
    principal.require(*_MUNICIPAL)
    if not principal.can_see_municipality(municipality_code):
        raise NotFound("no such municipality office")


@lru_cache(maxsize=8)
def _sealer(key: bytes) -> Sealer:
    return Sealer(key)


def _birth_hash(ctx: Context, notice_number: str, birth_date: date) -> str:
    return _sealer(ctx.settings.data_key).lookup_hash(f"office-notice-birth:{notice_number}:{birth_date}")


def _pg(conn: Connection) -> bool:
    return conn.dialect.name == "postgresql"


# --- sites, counters, shifts and slots (予約枠) ------------------------------------------------------------------

def add_site(ctx: Context, principal: Principal, municipality_code: str, name: str, kind: SiteKind | str,
             counters: dict[CounterKind | str, int], now: datetime, address: str | None = None) -> int:
    """A site (本庁, 支所, 臨時交付窓口) with its counters: ``{kind: number}``; every issuance counter has a
    terminal. Adding the same site again returns its id and changes nothing."""
    principal.require(*_SUPERVISING)
    _scope(principal, municipality_code)
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
    _scope(principal, municipality_code)
    with ctx.db.connect() as conn:
        return _sites(conn, municipality_code)


def _sites(conn: Connection, municipality_code: str) -> list[SiteView]:
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


def add_shift(ctx: Context, principal: Principal, site_id: int, day: date, starts: time, ends: time, staff: int,
              note: str | None = None) -> int:
    """A staffed opening of a site: weekday hours, a Saturday opening (土曜開庁) or an evening (夜間延長)."""
    principal.require(*_SUPERVISING)
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
    principal.require(*_SUPERVISING)
    if last < first or (last - first).days > 366:
        raise InvalidInput("generate slots for at most a year")
    added = 0
    with ctx.transaction() as tx:
        site = _site(tx.conn, principal, site_id)
        counters = _sites(tx.conn, site.municipality_code)
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


def _slot_query() -> Any:
    return (select(office_slots, office_sites.c.name.label("site_name"))
            .join(office_sites, office_sites.c.id == office_slots.c.site_id))


def _slot_view(r: Any) -> SlotView:
    return SlotView(r.id, r.site_id, r.site_name, CounterKind(r.kind), r.starts_at, r.ends_at, r.capacity, r.booked)


def open_slots(ctx: Context, municipality_code: str, now: datetime, days: int = BOOKING_HORIZON_DAYS,
               kind: CounterKind = CounterKind.ISSUANCE, only_free: bool = True) -> list[SlotView]:
    """Bookable slots of a municipality from now to the booking horizon (public: times and places only)."""
    query = _slot_query().where(
        office_slots.c.municipality_code == municipality_code, office_slots.c.kind == kind.value,
        office_slots.c.starts_at > now, office_slots.c.starts_at <= now + timedelta(days=days)).order_by(
        office_slots.c.starts_at, office_slots.c.site_id)
    if only_free:
        query = query.where(office_slots.c.booked < office_slots.c.capacity)
    with ctx.db.connect() as conn:
        return [_slot_view(r) for r in conn.execute(query)]


def _issuance_capacity(conn: Connection, municipality_code: str, now: datetime) -> int:
    return int(conn.execute(select(func.coalesce(func.sum(office_slots.c.capacity), 0)).where(
        office_slots.c.municipality_code == municipality_code, office_slots.c.kind == CounterKind.ISSUANCE.value,
        office_slots.c.starts_at > now,
        office_slots.c.starts_at <= now + timedelta(days=BOOKING_HORIZON_DAYS))).scalar_one())


# --- receipt checks (到着時の券面・IC チップ確認) ------------------------------------------------------------------

ChipInspector = Callable[[cards.OfficeCard, date], "list[str] | None"]
"""Reads a card's chip and returns what is wrong with it ([] = fine), or None when there is no chip to read
(a card made without a chip file). :func:`mynacard.office.chipcheck.chip_file_inspector` reads card files."""


@dataclass(frozen=True)
class ReceiptCheckResult:
    passed: list[int]
    defective: dict[int, str]
    chips_read: int


def check_received_cards(ctx: Context, principal: Principal, municipality_code: str, now: datetime,
                         chip: ChipInspector | None = None, limit: int = 500) -> ReceiptCheckResult:
    """Check received cards not yet checked: the printed face against the registry, then the chip. A failing
    card becomes ``defective`` with the reason (back to the manufacturer; the next print order reprints it)."""
    _scope(principal, municipality_code)
    today = local_date(now)
    checked = select(office_receipt_checks.c.card_id).where(office_receipt_checks.c.outcome == "passed")
    with ctx.transaction() as tx:
        conn = tx.conn
        # cards that passed before wait for setup: leave them to it, unlocked
        ids = cards.claim_in_municipality(conn, [S.RECEIVED], municipality_code, limit, excluding=checked,
                                          changed_before=now)
        found = cards.office_cards(conn, ids)
        people = registry.get_residents(conn, {c.resident_id for c in found.values()})
        passed: list[int] = []
        defective: dict[int, str] = {}
        chip_read: set[int] = set()
        for card_id in ids:
            card = found[card_id]
            resident = people[card.resident_id]
            problems: list[str] = []
            if resident.status is not ResidentStatus.ACTIVE:
                problems.append(f"resident record is {resident.status.value}")
            mismatches = card.facts.mismatches(resident.facts)
            if mismatches:
                problems.append("printed face differs from the registry: " + ", ".join(mismatches))
            if chip is not None and not problems:
                chip_problems = chip(card, today)
                if chip_problems is not None:
                    chip_read.add(card_id)
                    problems.extend(chip_problems)
            if problems:
                defective[card_id] = "; ".join(problems)
            else:
                passed.append(card_id)
        rows = [{"card_id": c, "municipality_code": municipality_code, "outcome": "defective" if why else "passed",
                 "problems": why, "chip_checked": int(c in chip_read), "checked_at": now,
                 "checked_by": principal.subject}
                for c, why in [*((c, None) for c in passed), *defective.items()]]
        if rows:
            conn.execute(insert(office_receipt_checks), rows)
        ledger.advance(conn, list(defective), [S.RECEIVED], S.DEFECTIVE, actor=principal.subject, now=now,
                       reasons=[f"receipt check: {why}" for why in defective.values()])
    return ReceiptCheckResult(passed, defective, len(chip_read))


# --- pre-issuance setup (交付前設定) -------------------------------------------------------------------------------

def is_off_peak(moment: datetime) -> bool:
    """Outside the windows' opening hours: evenings, nights, weekends and holidays (JST)."""
    local = moment.astimezone(JST)
    if not is_government_business_day(local.date()):
        return True
    return not OFF_PEAK[0] <= local.time() < OFF_PEAK[1]


def run_pre_issuance_setup(ctx: Context, principal: Principal, municipality_code: str, now: datetime,
                           per_terminal: int = SETUP_CARDS_PER_TERMINAL) -> int:
    """One off-peak run of the setup batch: received cards that passed their check become ``pre_issuance_set``,
    at most ``per_terminal`` per integrated terminal of the municipality. Refused during opening hours (the
    terminals serve the windows then). Returns cards set up."""
    _scope(principal, municipality_code)
    if not is_off_peak(now):
        raise Conflict("the pre-issuance setup runs off peak (before 08:30, after 17:15, or on closed days)")
    if not 1 <= per_terminal <= 10000:
        raise InvalidInput("1–10,000 cards per terminal and run")
    passed = select(office_receipt_checks.c.card_id).where(
        office_receipt_checks.c.outcome == "passed", office_receipt_checks.c.municipality_code == municipality_code)
    with ctx.transaction() as tx:
        conn = tx.conn
        terminals = sum(s.terminals for s in _sites(conn, municipality_code))
        if terminals == 0:
            raise Conflict("the municipality has no integrated terminals registered (add a site with counters)")
        limit = terminals * per_terminal
        ids = cards.claim_in_municipality(conn, [S.RECEIVED], municipality_code, limit, among=passed,
                                         changed_before=now)
        moved = ledger.advance(conn, ids, [S.RECEIVED], S.PRE_ISSUANCE_SET, actor=principal.subject, now=now,
                               reason="pre-issuance setup")
        conn.execute(insert(office_setup_runs).values(
            municipality_code=municipality_code, started_at=now, terminals=terminals, limit_cards=limit,
            cards=len(moved), run_by=principal.subject))
    return len(moved)


# --- issuance notices (交付通知書) -------------------------------------------------------------------------------

def send_notices(ctx: Context, principal: Principal, municipality_code: str, now: datetime,
                 limit: int | None = None) -> list[str]:
    """Staged mailing: notices for set-up cards, oldest first, never more outstanding than the issuance
    counters can serve within the booking horizon. Returns the new notice numbers."""
    _scope(principal, municipality_code)
    with ctx.transaction() as tx:
        conn = tx.conn
        if _pg(conn):  # one mailing run per municipality at a time, so two runs cannot both use the room
            conn.execute(select(func.pg_advisory_xact_lock(func.hashtext("office-mailing:" + municipality_code))))
        _close_void_notices(conn, municipality_code, now)
        outstanding = int(conn.execute(select(func.count()).select_from(office_notices).where(
            office_notices.c.municipality_code == municipality_code,
            office_notices.c.state == NoticeState.SENT.value)).scalar_one())
        room = mailing_allowance(_issuance_capacity(conn, municipality_code, now), outstanding)
        if limit is not None:
            room = min(room, max(0, limit))
        if room == 0:
            return []
        ids = cards.claim_in_municipality(conn, [S.PRE_ISSUANCE_SET], municipality_code, room,
                                         changed_before=now)
        found = cards.office_cards(conn, ids)
        deadline = pickup_deadline(local_date(now))
        numbers: list[str] = []
        rows = []
        for card_id in ids:
            card = found[card_id]
            number = new_notice_number()
            numbers.append(number)
            rows.append(_notice_row(ctx, number, card, 1, now, deadline))
        if rows:
            conn.execute(insert(office_notices), rows)
        ledger.advance(conn, ids, [S.PRE_ISSUANCE_SET], S.NOTICE_SENT, actor=principal.subject, now=now,
                       reason="issuance notice 1")
    return numbers


def _close_void_notices(conn: Connection, municipality_code: str, now: datetime) -> int:
    """Outstanding notices whose card is no longer waiting (voided when the holder moved away or died) become
    ``void``, free their booking, and stop counting against the mailing room."""
    open_notices = conn.execute(select(office_notices.c.notice_number, office_notices.c.card_id).where(
        office_notices.c.municipality_code == municipality_code,
        office_notices.c.state == NoticeState.SENT.value)).all()
    states = cards.states_of(conn, [r.card_id for r in open_notices])
    stale = [r.notice_number for r in open_notices if states.get(r.card_id) is not S.NOTICE_SENT]
    for number in stale:
        _close_bookings(conn, number, BookingState.CANCELLED, now)
        conn.execute(update(office_notices).where(office_notices.c.notice_number == number).values(
            state=NoticeState.VOID.value, closed_at=now))
    return len(stale)


def _notice_row(ctx: Context, number: str, card: cards.OfficeCard, sequence: int, now: datetime,
                deadline: date) -> dict[str, Any]:
    return {"notice_number": number, "card_id": card.id, "resident_id": card.resident_id,
            "municipality_code": card.municipality_code, "state": NoticeState.SENT.value, "sequence": sequence,
            "birth_hash": _birth_hash(ctx, number, card.facts.birth_date), "failed_attempts": 0,
            "sent_at": now, "pickup_deadline": deadline, "closed_at": None}


def _notice(conn: Connection, number: str, *, lock: bool = False) -> Any:
    query = select(office_notices).where(office_notices.c.notice_number == number)
    if lock and _pg(conn):
        query = query.with_for_update()
    return conn.execute(query).first()


def renotice(ctx: Context, principal: Principal, notice_number: str, now: datetime) -> str:
    """再通知: a new notice (new number, new pickup deadline) replaces an outstanding one; the old number stops
    working and its booking is cancelled. Returns the new number."""
    principal.require(*_MUNICIPAL)
    number = parse_notice_number(notice_number)
    with ctx.transaction() as tx:
        conn = tx.conn
        old = _notice(conn, number, lock=True)
        if old is None or not principal.can_see_municipality(old.municipality_code):
            raise NotFound("no such notice")
        if old.state != NoticeState.SENT.value:
            raise Conflict(f"this notice is {old.state}; only an outstanding notice can be sent again")
        card = cards.office_cards(conn, [old.card_id])[old.card_id]
        _close_bookings(conn, number, BookingState.CANCELLED, now)
        conn.execute(update(office_notices).where(office_notices.c.notice_number == number).values(
            state=NoticeState.WITHDRAWN.value, closed_at=now))
        fresh = new_notice_number()
        conn.execute(insert(office_notices).values(
            _notice_row(ctx, fresh, card, old.sequence + 1, now, pickup_deadline(local_date(now)))))
        moved = ledger.advance(conn, [old.card_id], [S.NOTICE_SENT], S.NOTICE_SENT, actor=principal.subject,
                               now=now, reason=f"issuance notice {old.sequence + 1} (re-notice)")
        if not moved:
            raise Conflict("the card is no longer waiting for pickup")
    return fresh


def _close_bookings(conn: Connection, number: str, state: BookingState, now: datetime) -> None:
    """Close the notice's active booking (cancelled frees its place; visited keeps it counted)."""
    active = conn.execute(select(office_bookings.c.id, office_bookings.c.slot_id).where(
        office_bookings.c.notice_number == number, office_bookings.c.state == BookingState.ACTIVE.value)).first()
    if active is None:
        return
    conn.execute(update(office_bookings).where(office_bookings.c.id == active.id).values(
        state=state.value, closed_at=now))
    if state is BookingState.CANCELLED:
        conn.execute(update(office_slots).where(office_slots.c.id == active.slot_id).values(
            booked=office_slots.c.booked - 1))


def destroy_uncollected(ctx: Context, principal: Principal, municipality_code: str, now: datetime) -> list[int]:
    """廃棄: cards whose (re-)notice deadline has passed and whose application is about a year old, or that
    expired before pickup, are abolished (uncollected_destroyed); their notices expire and bookings end.
    Returns the card ids destroyed."""
    principal.require(*_SUPERVISING)
    _scope(principal, municipality_code)
    today = local_date(now)
    with ctx.transaction() as tx:
        conn = tx.conn
        rows = conn.execute(select(office_notices.c.notice_number, office_notices.c.card_id,
                                   office_notices.c.pickup_deadline).where(
            office_notices.c.municipality_code == municipality_code,
            office_notices.c.state == NoticeState.SENT.value, office_notices.c.pickup_deadline < today)).all()
        found = cards.office_cards(conn, [r.card_id for r in rows])
        due = [r for r in rows if r.card_id in found and destruction_due(
            today, r.pickup_deadline, local_date(found[r.card_id].applied_at), found[r.card_id].card_valid_until)]
        for r in due:
            _close_bookings(conn, r.notice_number, BookingState.CANCELLED, now)
            conn.execute(update(office_notices).where(office_notices.c.notice_number == r.notice_number).values(
                state=NoticeState.EXPIRED.value, closed_at=now))
        moved = ledger.advance(conn, [r.card_id for r in due], [S.NOTICE_SENT], S.ABOLISHED,
                               actor=principal.subject, now=now, reason="uncollected: destroyed after retention",
                               values={"abolition_reason": AbolitionReason.UNCOLLECTED_DESTROYED.value})
        if len(moved) != len(due):
            raise Conflict("some cards changed state while being destroyed; run again")
    return moved


# --- what the window needs -----------------------------------------------------------------------------------

def _active_booking_id(conn: Connection, number: str) -> int | None:
    return conn.execute(select(office_bookings.c.id).where(
        office_bookings.c.notice_number == number,
        office_bookings.c.state.in_([BookingState.ACTIVE.value, BookingState.VISITED.value]))
        .order_by(office_bookings.c.id.desc()).limit(1)).scalar()


def card_for_notice(ctx: Context, principal: Principal, notice_number: str) -> NoticeCard:
    """The card a scanned notice is for. NotFound for an unknown notice or one of another municipality;
    Conflict for a withdrawn (re-noticed) or expired one. A collected notice is still answered, so that a
    retried issuance finds its card."""
    principal.require(*_MUNICIPAL)
    try:
        number = parse_notice_number(notice_number)
    except InvalidInput:
        raise NotFound("no such notice") from None
    with ctx.db.connect() as conn:
        row = _notice(conn, number)
        if row is None or not principal.can_see_municipality(row.municipality_code):
            raise NotFound("no such notice")
        if row.state in (NoticeState.WITHDRAWN.value, NoticeState.EXPIRED.value, NoticeState.VOID.value):
            raise Conflict(f"this notice is {row.state}: " + {
                NoticeState.WITHDRAWN.value: "a newer notice replaced it",
                NoticeState.EXPIRED.value: "the card was destroyed uncollected",
                NoticeState.VOID.value: "the card was voided"}[row.state])
        if row.state == NoticeState.SENT.value:
            card = cards.office_cards(conn, [row.card_id]).get(row.card_id)
            if card is None or card.state is not S.NOTICE_SENT:
                raise Conflict("the card of this notice is no longer waiting for pickup "
                               f"({card.state.value if card else 'gone'})")
        booking = _active_booking_id(conn, number)
    return NoticeCard(number, row.card_id, row.resident_id, row.municipality_code, row.pickup_deadline, booking)


def mark_notice_collected(conn: Connection, notice_number: str, now: datetime) -> None:
    """Close the notice and its booking (visited), inside the window's issuance transaction. Idempotent: a
    collected notice stays as it is. Raises Conflict for a withdrawn or expired notice, NotFound if unknown."""
    number = parse_notice_number(notice_number)
    row = _notice(conn, number, lock=True)
    if row is None:
        raise NotFound("no such notice")
    if row.state == NoticeState.COLLECTED.value:
        return
    if row.state != NoticeState.SENT.value:
        raise Conflict(f"this notice is {row.state} and cannot be collected")
    conn.execute(update(office_notices).where(office_notices.c.notice_number == number,
                                              office_notices.c.state == NoticeState.SENT.value)
                 .values(state=NoticeState.COLLECTED.value, closed_at=now))
    _close_bookings(conn, number, BookingState.VISITED, now)


# --- booking by the resident (予約) ------------------------------------------------------------------------------

@dataclass(frozen=True)
class Booking:
    id: int
    notice_number: str
    slot: SlotView
    state: BookingState
    created_at: datetime


def _booking(conn: Connection, booking_id: int) -> Booking:
    r = conn.execute(select(office_bookings).where(office_bookings.c.id == booking_id)).one()
    slot = conn.execute(_slot_query().where(office_slots.c.id == r.slot_id)).one()
    return Booking(r.id, r.notice_number, _slot_view(slot), BookingState(r.state), r.created_at)


def _resident_notice(ctx: Context, conn: Connection, number: str, birth_date: date) -> Any:
    """The outstanding notice, if the date of birth matches; a wrong date counts against the notice."""
    row = _notice(conn, number)
    if row is None:
        raise NotFound("the notice number and date of birth do not match a notice")
    if row.failed_attempts >= MAX_BIRTH_DATE_FAILURES:
        raise Conflict("too many wrong dates of birth for this notice: please call the office")
    if row.birth_hash != _birth_hash(ctx, number, birth_date):
        return None
    if row.state != NoticeState.SENT.value:
        raise Conflict(f"this notice is {row.state} and can no longer be used to book")
    return row


def _count_failure(ctx: Context, number: str) -> None:
    with ctx.db.begin() as conn:
        conn.execute(update(office_notices).where(office_notices.c.notice_number == number).values(
            failed_attempts=office_notices.c.failed_attempts + 1))


def find_notice(ctx: Context, notice_number: str, birth_date: date) -> tuple[NoticeCard, Booking | None]:
    """The resident's view: their notice (number + date of birth) and its active booking."""
    number = parse_notice_number(notice_number)
    with ctx.db.connect() as conn:
        row = _resident_notice(ctx, conn, number, birth_date)
        if row is not None:
            active = conn.execute(select(office_bookings.c.id).where(
                office_bookings.c.notice_number == number,
                office_bookings.c.state == BookingState.ACTIVE.value)).scalar()
            booking = _booking(conn, active) if active is not None else None
            return (NoticeCard(number, row.card_id, row.resident_id, row.municipality_code, row.pickup_deadline,
                               active), booking)
    _count_failure(ctx, number)
    raise NotFound("the notice number and date of birth do not match a notice")


def book(ctx: Context, notice_number: str, birth_date: date, slot_id: int, now: datetime,
         idempotency_key: str | None = None) -> Booking:
    """Book an issuance slot with the notice number and date of birth. One active booking per notice (rebook
    to change it); a full slot is refused; the same ``idempotency_key`` returns the first booking."""
    number = parse_notice_number(notice_number)
    if idempotency_key is not None and not 8 <= len(idempotency_key) <= 80:
        raise InvalidInput("an Idempotency-Key has 8–80 characters")
    try:
        return _book(ctx, number, birth_date, slot_id, now, idempotency_key, rebooking=False)
    except IntegrityError:
        # Another request of the same notice (or key) committed first: answer as that one would have.
        with ctx.db.connect() as conn:
            if idempotency_key is not None:
                again = _by_key(conn, idempotency_key, number)
                if again is not None:
                    return again
        raise Conflict("this notice already has a booking: cancel it or change it (rebook)") from None


def _by_key(conn: Connection, key: str, number: str) -> Booking | None:
    row = conn.execute(select(office_bookings.c.id, office_bookings.c.notice_number).where(
        office_bookings.c.idempotency_key == key)).first()
    if row is None:
        return None
    if row.notice_number != number:
        raise Conflict("this Idempotency-Key was used for another request")
    return _booking(conn, row.id)


_SITE_NAMES: dict[tuple[str, int], str] = {}
"""Site names by (database, site id): sites are never renamed, so the hot path need not join them."""


def _site_name(conn: Connection, site_id: int) -> str:
    key = (str(conn.engine.url), site_id)
    if key not in _SITE_NAMES:
        _SITE_NAMES[key] = str(conn.execute(select(office_sites.c.name).where(office_sites.c.id == site_id))
                               .scalar_one())
    return _SITE_NAMES[key]


def _book(ctx: Context, number: str, birth_date: date, slot_id: int, now: datetime, key: str | None, *,
          rebooking: bool) -> Booking:
    # The hot path is four statements: the idempotency key, the notice with its active booking, the slot's
    # guarded UPDATE (every rule of a bookable slot in its WHERE, so the last place cannot be taken twice),
    # and the INSERT. Only a refusal reads more, to say why.
    with ctx.transaction() as tx:
        conn = tx.conn
        if key is not None and (again := _by_key(conn, key, number)) is not None:
            return again
        notice = conn.execute(
            select(office_notices.c.municipality_code, office_notices.c.state, office_notices.c.birth_hash,
                   office_notices.c.failed_attempts, office_bookings.c.id.label("active_id"),
                   office_bookings.c.slot_id.label("active_slot"))
            .outerjoin(office_bookings, and_(office_bookings.c.notice_number == office_notices.c.notice_number,
                                             office_bookings.c.state == BookingState.ACTIVE.value))
            .where(office_notices.c.notice_number == number)).first()
        if notice is None:
            raise NotFound("the notice number and date of birth do not match a notice")
        if notice.failed_attempts >= MAX_BIRTH_DATE_FAILURES:
            raise Conflict("too many wrong dates of birth for this notice: please call the office")
        matches = notice.birth_hash == _birth_hash(ctx, number, birth_date)
        if matches:
            if notice.state != NoticeState.SENT.value:
                raise Conflict(f"this notice is {notice.state} and can no longer be used to book")
            if notice.active_id is not None:
                if notice.active_slot == slot_id:
                    return _booking(conn, notice.active_id)
                if not rebooking:
                    raise Conflict("this notice already has a booking: cancel it or change it (rebook)")
                _close_bookings(conn, number, BookingState.CANCELLED, now)
            taken = conn.execute(update(office_slots).where(
                office_slots.c.id == slot_id, office_slots.c.municipality_code == notice.municipality_code,
                office_slots.c.kind == CounterKind.ISSUANCE.value, office_slots.c.starts_at > now,
                office_slots.c.starts_at <= now + timedelta(days=BOOKING_HORIZON_DAYS),
                office_slots.c.booked < office_slots.c.capacity).values(booked=office_slots.c.booked + 1)
                .returning(office_slots.c.site_id, office_slots.c.kind, office_slots.c.starts_at,
                           office_slots.c.ends_at, office_slots.c.capacity, office_slots.c.booked)).first()
            if taken is None:
                _refuse_slot(conn, slot_id, notice.municipality_code, now)
            booking_id = int(conn.execute(insert(office_bookings).values(
                notice_number=number, slot_id=slot_id, municipality_code=notice.municipality_code,
                state=BookingState.ACTIVE.value, idempotency_key=key, created_at=now, closed_at=None)
                .returning(office_bookings.c.id)).scalar_one())
            slot = SlotView(slot_id, taken.site_id, _site_name(conn, taken.site_id), CounterKind(taken.kind),
                            taken.starts_at, taken.ends_at, taken.capacity, taken.booked)
            return Booking(booking_id, number, slot, BookingState.ACTIVE, now)
    _count_failure(ctx, number)
    raise NotFound("the notice number and date of birth do not match a notice")


def _refuse_slot(conn: Connection, slot_id: int, municipality_code: str, now: datetime) -> None:
    """Say why a slot could not be taken (raises)."""
    slot = conn.execute(select(office_slots).where(office_slots.c.id == slot_id)).first()
    if slot is None or slot.municipality_code != municipality_code or slot.kind != CounterKind.ISSUANCE.value:
        raise NotFound("no such slot at your municipality's windows")
    if slot.starts_at <= now:
        raise Conflict("this slot has already begun")
    if slot.starts_at > now + timedelta(days=BOOKING_HORIZON_DAYS):
        raise Conflict(f"bookings open {BOOKING_HORIZON_DAYS} days ahead")
    raise Conflict("this slot is full: please choose another time")


def rebook(ctx: Context, notice_number: str, birth_date: date, slot_id: int, now: datetime,
           idempotency_key: str | None = None) -> Booking:
    """Move the notice's booking to another slot in one transaction (the old place is freed only if the new
    one is taken)."""
    number = parse_notice_number(notice_number)
    try:
        return _book(ctx, number, birth_date, slot_id, now, idempotency_key, rebooking=True)
    except IntegrityError:
        raise Conflict("the booking changed meanwhile: reload and try again") from None


def cancel_booking(ctx: Context, notice_number: str, birth_date: date, now: datetime) -> bool:
    """Cancel the notice's active booking; False if there was none (a repeated cancel changes nothing)."""
    number = parse_notice_number(notice_number)
    with ctx.transaction() as tx:
        notice = _resident_notice(ctx, tx.conn, number, birth_date)
        if notice is not None:
            active = tx.conn.execute(select(office_bookings.c.id).where(
                office_bookings.c.notice_number == number,
                office_bookings.c.state == BookingState.ACTIVE.value)).scalar()
            _close_bookings(tx.conn, number, BookingState.CANCELLED, now)
            return active is not None
    _count_failure(ctx, number)
    raise NotFound("the notice number and date of birth do not match a notice")


# --- clerk and supervisor views --------------------------------------------------------------------------------

@dataclass(frozen=True)
class DayBooking:
    booking_id: int
    starts_at: datetime
    site_name: str
    notice_number: str
    card_id: int
    name: str
    state: BookingState


def bookings_on(ctx: Context, principal: Principal, municipality_code: str, day: date) -> list[DayBooking]:
    """The day's bookings of the municipality's windows (本日の予約一覧), in time order."""
    _scope(principal, municipality_code)
    start = datetime.combine(day, time(0), JST)
    with ctx.db.connect() as conn:
        rows = conn.execute(
            select(office_bookings.c.id, office_bookings.c.notice_number, office_bookings.c.state,
                   office_slots.c.starts_at, office_sites.c.name.label("site_name"), office_notices.c.card_id)
            .join(office_slots, office_slots.c.id == office_bookings.c.slot_id)
            .join(office_sites, office_sites.c.id == office_slots.c.site_id)
            .join(office_notices, office_notices.c.notice_number == office_bookings.c.notice_number)
            .where(office_bookings.c.municipality_code == municipality_code,
                   office_bookings.c.state != BookingState.CANCELLED.value,
                   office_slots.c.starts_at >= start, office_slots.c.starts_at < start + timedelta(days=1))
            .order_by(office_slots.c.starts_at, office_bookings.c.id)).all()
        found = cards.office_cards(conn, [r.card_id for r in rows])
    return [DayBooking(r.id, r.starts_at, r.site_name, r.notice_number, r.card_id,
                       f"{found[r.card_id].facts.family_name} {found[r.card_id].facts.given_name}",
                       BookingState(r.state)) for r in rows]


@dataclass(frozen=True)
class Backlog:
    """滞留状況: cards by state, outstanding notices, bookable places and checks of the municipality."""

    cards_by_state: dict[str, int]
    outstanding_notices: int
    booked_ahead: int
    capacity_ahead: int
    defective: int
    setup_runs: int


def backlog(ctx: Context, principal: Principal, municipality_code: str, now: datetime) -> Backlog:
    _scope(principal, municipality_code)
    # counted as the town's own clerk would see them: its cards only, not the whole country's
    by_state = cards.counts_by_municipality_and_state(
        ctx, Principal(Role.CLERK, "office-backlog", municipality_code)).get(municipality_code, {})
    with ctx.db.connect() as conn:
        outstanding = int(conn.execute(select(func.count()).select_from(office_notices).where(
            office_notices.c.municipality_code == municipality_code,
            office_notices.c.state == NoticeState.SENT.value)).scalar_one())
        ahead = conn.execute(select(func.coalesce(func.sum(office_slots.c.booked), 0),
                                    func.coalesce(func.sum(office_slots.c.capacity), 0)).where(
            office_slots.c.municipality_code == municipality_code,
            office_slots.c.kind == CounterKind.ISSUANCE.value, office_slots.c.starts_at > now,
            office_slots.c.starts_at <= now + timedelta(days=BOOKING_HORIZON_DAYS))).one()
        defective = int(conn.execute(select(func.count()).select_from(office_receipt_checks).where(
            office_receipt_checks.c.municipality_code == municipality_code,
            office_receipt_checks.c.outcome == "defective")).scalar_one())
        runs = int(conn.execute(select(func.count()).select_from(office_setup_runs).where(
            office_setup_runs.c.municipality_code == municipality_code)).scalar_one())
    return Backlog(dict(by_state), outstanding, int(ahead[0]), int(ahead[1]), defective, runs)


@dataclass(frozen=True)
class CongestionHour:
    day: date
    hour: int
    capacity: int
    booked: int
    expected_wait_minutes: int


def congestion(ctx: Context, municipality_code: str, now: datetime, days: int = 14) -> list[CongestionHour]:
    """The public congestion forecast (混雑予想): per day and hour, places, bookings and the expected wait at
    the issuance counters. Aggregates only."""
    registry.get_municipality(ctx, municipality_code)  # NotFound for an unknown code
    first = datetime.combine(local_date(now), time(0), JST)
    with ctx.db.connect() as conn:
        rows = conn.execute(select(office_slots.c.starts_at, office_slots.c.capacity, office_slots.c.booked).where(
            office_slots.c.municipality_code == municipality_code,
            office_slots.c.kind == CounterKind.ISSUANCE.value,
            and_(office_slots.c.starts_at >= first, office_slots.c.starts_at < first + timedelta(days=days)))).all()
    hours: dict[tuple[date, int], list[int]] = defaultdict(lambda: [0, 0])
    for starts_at, capacity, booked in rows:
        local = starts_at.astimezone(JST)
        cell = hours[(local.date(), local.hour)]
        cell[0] += capacity
        cell[1] += booked
    return [CongestionHour(d, h, c, b, expected_wait_minutes(b, c)) for (d, h), (c, b) in sorted(hours.items())]


@dataclass(frozen=True)
class NoticePrint:
    """What the postcard shows: never the individual number."""

    notice_number: str
    sequence: int
    municipality_code: str
    municipality_name: str
    name: str
    address: str
    pickup_deadline: date
    sent_on: date


def notice_for_print(ctx: Context, principal: Principal, notice_number: str) -> NoticePrint:
    principal.require(*_MUNICIPAL)
    number = parse_notice_number(notice_number)
    with ctx.db.connect() as conn:
        row = _notice(conn, number)
        if row is None or not principal.can_see_municipality(row.municipality_code):
            raise NotFound("no such notice")
        card = cards.office_cards(conn, [row.card_id])[row.card_id]
    town = registry.get_municipality(ctx, row.municipality_code)
    return NoticePrint(number, row.sequence, row.municipality_code, town.full_name,
                       f"{card.facts.family_name} {card.facts.given_name}", card.facts.address,
                       row.pickup_deadline, local_date(row.sent_at))


def notices_of(ctx: Context, principal: Principal, municipality_code: str, state: NoticeState | None = None,
               limit: int = 200) -> list[dict[str, Any]]:
    """Notices of the municipality, newest first (for the clerk's list and the demo)."""
    _scope(principal, municipality_code)
    query = (select(office_notices.c.notice_number, office_notices.c.card_id, office_notices.c.state,
                    office_notices.c.sequence, office_notices.c.sent_at, office_notices.c.pickup_deadline)
             .where(office_notices.c.municipality_code == municipality_code)
             .order_by(office_notices.c.sent_at.desc(), office_notices.c.notice_number).limit(limit))
    if state is not None:
        query = query.where(office_notices.c.state == state.value)
    with ctx.db.connect() as conn:
        return [dict(r._mapping) for r in conn.execute(query)]
