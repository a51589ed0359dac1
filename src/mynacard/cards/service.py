"""Use cases of the card pipeline and its façade: application forms, intake, screening, print orders and
manufacture here (deck p.5: ① application → ② print data); shipping and municipal receipt (③ → ④) in
:mod:`~mynacard.cards.shipping`, read-only aggregates in :mod:`~mynacard.cards.aggregates`, the stored ledger check
in :mod:`~mynacard.cards.ledger_checks` — all re-exported here.

Batch stages work on chunks claimed with :func:`mynacard.cards.ledger.claim` and moved with
:func:`mynacard.cards.ledger.advance`; each chunk is one transaction, so a crash loses at most the chunk in
flight and never leaves half of it moved. Every entry point validates its whole input before it writes.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import os
import secrets
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, func, insert, select, update

from mynacard.cards import ledger
from mynacard.cards.aggregates import (
    OfficeCard,
    TransitionCount,
    card_ids_in_states,
    claim_in_municipality,
    counts_by_application_month,
    office_cards,
    states_of,
    transition_counts,
)
from mynacard.cards.ledger_checks import LedgerCheck, check_ledger, last_ledger_check
from mynacard.cards.model import (
    MUNICIPAL_ROLES,
    PIPELINE_ROLES,
    VOIDABLE,
    ApplicationId,
    CardState,
    Channel,
    check_transition,
    manufacturer_for,
    validity,
)
from mynacard.cards.photo import PhotoStore, check_photo
from mynacard.cards.shipping import (
    ReceiptResult,
    box_manifest,
    manifest_digest,
    receive_box,
    ship_cards,
    unreceived_boxes,
)
from mynacard.cards.tables import (
    application_forms,
    card_events,
    cards,
    print_batches,
)
from mynacard.clock import local_date
from mynacard.context import Context, Transaction
from mynacard.db import any_of, bulk_insert
from mynacard.errors import Conflict, InvalidInput, NotFound
from mynacard.principal import Principal, Role
from mynacard.registry import service as registry
from mynacard.registry.model import BasicFacts, ResidentStatus, Sex
from mynacard.sealing import Sealer

__all__ = [
    "ApplicationInput",
    "CardView",
    "IntakeResult",
    "LedgerCheck",
    "ManufactureItem",
    "OfficeCard",
    "ReceiptResult",
    "TransitionCount",
    "acknowledge_print_batch",
    "box_manifest",
    "card_history",
    "card_ids_in_states",
    "cards_to_manufacture",
    "check_ledger",
    "claim_in_municipality",
    "counts_by_application_month",
    "counts_by_municipality_and_state",
    "decide_review",
    "facts_digest",
    "get_card",
    "issue_application_forms",
    "last_activity",
    "last_ledger_check",
    "made_card_item",
    "manifest_digest",
    "manufacture_batch",
    "move_card",
    "office_cards",
    "order_printing",
    "pending_print_batches",
    "receive_box",
    "screen_applications",
    "ship_cards",
    "states_of",
    "submit_applications",
    "transition",
    "transition_counts",
    "unreceived_boxes",
    "unused_application_forms",
    "verify_ledger",
]

S = CardState


def facts_digest(facts: BasicFacts) -> str:
    """A digest of the basic four facts, to tell whether a form was printed before they changed."""
    raw = "\x1f".join((facts.family_name, facts.given_name, facts.birth_date.isoformat(), facts.sex.value,
                       facts.address))
    return hashlib.sha256(raw.encode()).hexdigest()


# --- application forms (交付申請書, sent with the number notification) --------------------------------------

def issue_application_forms(ctx: Context, principal: Principal, resident_ids: Sequence[int],
                            now: datetime) -> dict[int, ApplicationId]:
    """Print a form with a fresh, unguessable 申請書ID for each resident (replacing none of the old ones)."""
    principal.require(*MUNICIPAL_ROLES)
    with ctx.transaction() as tx:
        people = registry.get_residents(tx.conn, resident_ids)
        scope = principal.municipality_scope()
        missing = [i for i in resident_ids if i not in people
                   or (scope is not None and people[i].municipality_code != scope)]
        if missing:
            raise NotFound(f"no such resident: {missing[:5]}")
        out: dict[int, ApplicationId] = {}
        rows = []
        for rid in dict.fromkeys(resident_ids):
            resident = people[rid]
            if resident.status is not ResidentStatus.ACTIVE:
                raise InvalidInput(f"resident {rid} is not an active resident")
            app_id = ApplicationId.make(resident.municipality_code, secrets.randbelow(10**16))
            out[rid] = app_id
            rows.append({"application_id": app_id, "resident_id": rid,
                         "municipality_code": resident.municipality_code,
                         "facts_digest": facts_digest(resident.facts), "issued_at": now})
        bulk_insert(tx.conn, application_forms, rows)
    return out


def unused_application_forms(ctx: Context, principal: Principal, limit: int,
                             municipality_codes: Sequence[str] | None = None,
                             after: str | None = None) -> list[tuple[str, int]]:
    """Forms of residents who have no card or application yet, in application-ID order after ``after``:
    (application ID, resident id). Page with ``after`` = the last ID of the previous page."""
    principal.require(*MUNICIPAL_ROLES)
    has_card = select(cards.c.resident_id).where(cards.c.resident_id == application_forms.c.resident_id)
    query = (select(application_forms.c.application_id, application_forms.c.resident_id)
             .where(~has_card.exists()).order_by(application_forms.c.application_id).limit(limit))
    scope = principal.municipality_scope()
    if scope is not None:
        query = query.where(application_forms.c.municipality_code == scope)
    if municipality_codes:
        query = query.where(application_forms.c.municipality_code.in_(list(municipality_codes)))
    if after:
        query = query.where(application_forms.c.application_id > after)
    with ctx.db.connect() as conn:
        return [(a, r) for a, r in conn.execute(query)]


# --- intake (申請受付) ---------------------------------------------------------------------------------------

@dataclass(frozen=True)
class ApplicationInput:
    """One application as the contractor receives it (by mail, online, photo booth or at the counter)."""

    application_id: str
    channel: str
    family_name: str
    given_name: str
    birth_date: date
    sex: str
    address: str
    photo: bytes = field(repr=False)
    maiden_name: str | None = None
    wants_sign_cert: bool = True
    """False when the applicant blackened 「署名用電子証明書 不要」."""
    wants_auth_cert: bool = True


@dataclass(frozen=True)
class IntakeResult:
    """Card ids created, and application IDs that were already received identically (a retry)."""

    created: list[int]
    already_received: list[str]
    duplicates_rejected: list[str]


def _validate(items: Sequence[ApplicationInput]) -> list[tuple[ApplicationId, Channel, BasicFacts, Any]]:
    problems: list[str] = []
    out = []
    seen: set[str] = set()
    for i, item in enumerate(items):
        label = f"#{i + 1}"
        try:
            app_id = ApplicationId(item.application_id)
            label = f"#{i + 1} ({app_id})"
            if app_id in seen:
                raise InvalidInput("the same application ID appears twice in this batch")
            seen.add(app_id)
            try:
                channel = Channel(item.channel)
            except ValueError:
                raise InvalidInput(f"unknown channel {item.channel!r}") from None
            facts = BasicFacts.parse(item.family_name, item.given_name, item.birth_date, item.sex,
                                     item.address)
            photo = check_photo(item.photo)
            out.append((app_id, channel, facts, photo))
        except (InvalidInput, ValueError) as exc:
            problems.append(f"{label}: {exc}")
    if problems:
        raise _refused(problems)
    return out


def _refused(problems: list[str]) -> InvalidInput:
    shown = "; ".join(problems[:3]) + (f"; … and {len(problems) - 3} more" if len(problems) > 3 else "")
    return InvalidInput(f"{len(problems)} application(s) refused; nothing was stored: {shown}", problems)


def submit_applications(ctx: Context, principal: Principal, items: Sequence[ApplicationInput],
                        now: datetime) -> IntakeResult:
    """Receive a batch of applications: all valid and stored, or none (with every problem listed).

    A resent application (same ID, same facts and photo) is recognised and not stored twice. A second
    application while another is still pending for the same resident is stored and rejected as a
    duplicate, so the resident can be told.
    """
    principal.require(Role.CONTRACTOR, *PIPELINE_ROLES)
    checked = _validate(items)
    store = PhotoStore(ctx.settings.photo_dir, Sealer(ctx.settings.data_key))
    with ctx.transaction() as tx:
        conn = tx.conn
        ids = [c[0] for c in checked]
        forms: dict[str, Any] = {}
        existing: dict[str, Any] = {}
        for i in range(0, len(ids), 5000):
            part = ids[i:i + 5000]
            forms.update((r.application_id, r) for r in conn.execute(
                select(application_forms).where(any_of(application_forms.c.application_id, part))))
            existing.update((r.application_id, r) for r in conn.execute(
                select(cards.c.application_id, cards.c.photo_sha256, cards.c.family_name, cards.c.given_name,
                       cards.c.birth_date, cards.c.sex, cards.c.address)
                .where(any_of(cards.c.application_id, part))))
        problems = [f"{a}: unknown application ID (no such form was issued)" for a in ids if a not in forms]
        retried: list[str] = []
        fresh = []
        for app_id, channel, facts, photo in checked:
            old = existing.get(app_id)
            if old is None:
                fresh.append((app_id, channel, facts, photo))
            elif (old.photo_sha256, old.family_name, old.given_name, old.birth_date, old.sex, old.address) == (
                    photo.sha256, facts.family_name, facts.given_name, facts.birth_date, facts.sex.value,
                    facts.address):
                retried.append(app_id)
            else:
                problems.append(f"{app_id}: this application ID was already used for a different application")
        if problems:
            raise _refused(problems)
        resident_ids = {forms[a].resident_id for a, *_ in fresh}
        pending = _pending_by_resident(conn, resident_ids)
        by_item = {it.application_id: it for it in items}
        rows = []
        for app_id, channel, facts, photo in fresh:
            item = by_item[app_id]
            store.put(photo, item.photo)
            rows.append({
                "application_id": app_id, "resident_id": forms[app_id].resident_id,
                "municipality_code": forms[app_id].municipality_code, "state": S.APPLIED.value,
                "channel": channel.value, "family_name": facts.family_name, "given_name": facts.given_name,
                "birth_date": facts.birth_date, "sex": facts.sex.value, "address": facts.address,
                "maiden_name": item.maiden_name, "photo_sha256": photo.sha256,
                "wants_sign_cert": item.wants_sign_cert, "wants_auth_cert": item.wants_auth_cert,
                "applied_at": now, "updated_at": now, "print_count": 0, "version": 1,
            })
        created = bulk_insert(conn, cards, rows, return_ids=True)
        if created:
            bulk_insert(conn, card_events, [
                {"card_id": cid, "from_state": None, "to_state": S.APPLIED.value, "actor": principal.subject,
                 "at": now, "reason": r["channel"]} for cid, r in zip(created, rows, strict=True)])
        duplicates: list[str] = []
        seen_now: set[int] = set()
        dup_ids: list[int] = []
        for cid, row in zip(created, rows, strict=True):
            rid = row["resident_id"]
            if rid in pending or rid in seen_now:
                dup_ids.append(cid)
                duplicates.append(row["application_id"])
            seen_now.add(rid)
        ledger.advance(conn, dup_ids, [S.APPLIED], S.REJECTED, actor=principal.subject, now=now,
                       reason="duplicate: another application of this resident is still pending",
                       values={"review_reason": "duplicate application"})
    return IntakeResult([c for c in created if c not in set(dup_ids)], retried, duplicates)


def _pending_by_resident(conn: Connection, resident_ids: set[int]) -> set[int]:
    """Residents who already have an application or card that is not finished (not issued/ended)."""
    open_states = [s.value for s in VOIDABLE]
    out: set[int] = set()
    listed = list(resident_ids)
    for i in range(0, len(listed), 5000):
        out.update(conn.execute(select(cards.c.resident_id).where(
            any_of(cards.c.resident_id, listed[i:i + 5000]), cards.c.state.in_(open_states))).scalars())
    return out


# --- screening: the full match (基本4情報の完全一致) --------------------------------------------------------

def screen_applications(ctx: Context, principal: Principal, now: datetime,
                        limit: int = 20000) -> tuple[int, int]:
    """Accept applications whose four facts fully match the registry; send every other one to review.

    Never links on partial facts: a mismatch, a stale form or a closed resident record goes to a person.
    Returns (accepted, sent to review) for this chunk.
    """
    principal.require(Role.CONTRACTOR, *PIPELINE_ROLES)
    with ctx.transaction() as tx:
        conn = tx.conn
        ids = ledger.claim(conn, S.APPLIED, limit)
        if not ids:
            return 0, 0
        rows = conn.execute(
            select(cards.c.id, cards.c.resident_id, cards.c.application_id, cards.c.family_name,
                   cards.c.given_name, cards.c.birth_date, cards.c.sex, cards.c.address,
                   application_forms.c.facts_digest)
            .join(application_forms, application_forms.c.application_id == cards.c.application_id)
            .where(any_of(cards.c.id, ids))).all()
        people = registry.get_residents(conn, {r.resident_id for r in rows})
        accepted: list[int] = []
        review: dict[str, list[int]] = defaultdict(list)
        for r in rows:
            resident = people[r.resident_id]
            written = BasicFacts(r.family_name, r.given_name, r.birth_date, Sex(r.sex), r.address)
            if resident.status is not ResidentStatus.ACTIVE:
                review[f"resident record is {resident.status.value}"].append(r.id)
            elif mismatches := written.mismatches(resident.facts):
                review["facts differ from the registry: " + ", ".join(mismatches)].append(r.id)
            elif r.facts_digest != facts_digest(resident.facts):
                review["the form was printed before the resident's facts changed"].append(r.id)
            else:
                accepted.append(r.id)
        ledger.advance(conn, accepted, [S.APPLIED], S.ACCEPTED, actor=principal.subject, now=now)
        for reason, group in review.items():
            ledger.advance(conn, group, [S.APPLIED], S.IN_REVIEW, actor=principal.subject, now=now,
                           reason=reason, values={"review_reason": reason})
    return len(accepted), sum(len(g) for g in review.values())


def decide_review(ctx: Context, principal: Principal, card_id: int, decision: str, reason: str,
                  now: datetime) -> CardState:
    """A person decides an application in review: ``reject`` it (with a reason) or ``rescreen`` it after
    the registry or the application was corrected — which accepts it only on a full match."""
    principal.require(Role.CONTRACTOR, *PIPELINE_ROLES)
    if decision not in ("reject", "rescreen"):
        raise InvalidInput("decision must be 'reject' or 'rescreen'")
    if not reason.strip():
        raise InvalidInput("a reason is required")
    with ctx.transaction() as tx:
        row = tx.conn.execute(select(cards).where(cards.c.id == card_id)).first()
        if row is None:
            raise NotFound("no such application")
        if row.state != S.IN_REVIEW:
            raise Conflict(f"the application is {row.state}, not in review")
        if decision == "reject":
            ledger.advance(tx.conn, [card_id], [S.IN_REVIEW], S.REJECTED, actor=principal.subject, now=now,
                           reason=reason, values={"review_reason": reason})
            return S.REJECTED
        resident = registry.get_residents(tx.conn, [row.resident_id])[row.resident_id]
        written = BasicFacts(row.family_name, row.given_name, row.birth_date, Sex(row.sex), row.address)
        mismatches = written.mismatches(resident.facts)
        if mismatches or resident.status is not ResidentStatus.ACTIVE:
            raise Conflict("still not a full match (" + (", ".join(mismatches) or resident.status.value)
                           + "); correct the record first or reject")
        ledger.advance(tx.conn, [card_id], [S.IN_REVIEW], S.ACCEPTED, actor=principal.subject, now=now,
                       reason=reason, values={"review_reason": None})
    return S.ACCEPTED


# --- print orders (印刷データ) ---------------------------------------------------------------------------------

PRINT_COLUMNS = ("card_id", "application_id", "municipality_code", "family_name", "given_name", "maiden_name",
                 "birth_date", "sex", "address", "photo_sha256", "wants_sign_cert", "wants_auth_cert",
                 "print_run")


def _print_file(rows: Sequence[Any]) -> bytes:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(PRINT_COLUMNS)
    for r in rows:
        writer.writerow([r.id, r.application_id, r.municipality_code, r.family_name, r.given_name,
                         r.maiden_name or "", r.birth_date.isoformat(), r.sex, r.address, r.photo_sha256,
                         int(r.wants_sign_cert), int(r.wants_auth_cert), r.print_count + 1])
    return buf.getvalue().encode("utf-8")


def _write_atomically(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)  # personal data: owner only
    with os.fdopen(fd, "wb") as f:
        f.write(data)
    os.replace(tmp, path)


def order_printing(ctx: Context, principal: Principal, now: datetime, limit: int = 20000) -> list[int]:
    """Send accepted (and defective, for a reprint) cards to their manufacturers as print-data batches.

    Each batch is a CSV file with a JSON manifest holding its SHA-256 and card count; the cards move to
    ``print_ordered`` in the same transaction that records the batch. Returns the new batch ids.
    """
    principal.require(*PIPELINE_ROLES)
    batch_ids: list[int] = []
    with ctx.transaction() as tx:
        conn = tx.conn
        ids = ledger.claim(conn, [S.ACCEPTED, S.DEFECTIVE], limit)
        if not ids:
            return []
        rows = ledger.rows_by_id(conn, ids)
        groups: dict[str, list[Any]] = defaultdict(list)
        for r in rows:
            groups[manufacturer_for(r.municipality_code)].append(r)
        for manufacturer, group in sorted(groups.items()):
            data = _print_file(group)
            digest = hashlib.sha256(data).hexdigest()
            batch_id = conn.execute(insert(print_batches).values(
                manufacturer=manufacturer, business_date=local_date(now), file_name="", sha256=digest,
                card_count=len(group), created_at=now).returning(print_batches.c.id)).scalar_one()
            name = f"print-{local_date(now):%Y%m%d}-{batch_id:08d}-{manufacturer}.csv"
            conn.execute(update(print_batches).where(print_batches.c.id == batch_id).values(file_name=name))
            ids_here = [r.id for r in group]
            moved = ledger.advance(conn, ids_here, [S.ACCEPTED, S.DEFECTIVE], S.PRINT_ORDERED,
                                   actor=principal.subject, now=now, reason=f"print batch {batch_id}",
                                   values={"print_batch_id": batch_id}, bump_print_count=True)
            if len(moved) != len(ids_here):
                raise RuntimeError("claimed cards changed state inside the transaction")
            _write_atomically(ctx.settings.batch_dir / name, data)
            manifest = {"batch_id": batch_id, "manufacturer": manufacturer, "business_date": str(local_date(now)),
                        "file": name, "sha256": digest, "card_count": len(group)}
            _write_atomically(ctx.settings.batch_dir / f"{name}.manifest.json",
                              json.dumps(manifest, indent=1).encode())
            batch_ids.append(batch_id)
    return batch_ids


def pending_print_batches(ctx: Context, principal: Principal, manufacturer: str | None = None) -> list[int]:
    """Batches not yet fully manufactured (for the manufacturer's worker)."""
    principal.require(Role.MANUFACTURER, *PIPELINE_ROLES)
    query = select(print_batches.c.id).where(print_batches.c.manufactured_at.is_(None)).order_by(
        print_batches.c.id)
    if manufacturer:
        query = query.where(print_batches.c.manufacturer == manufacturer)
    with ctx.db.connect() as conn:
        return list(conn.execute(query).scalars())


def acknowledge_print_batch(ctx: Context, principal: Principal, batch_id: int, data: bytes,
                            now: datetime) -> None:
    """The manufacturer confirms it received the batch file intact (digest, count and card ids agree).

    A broken or foreign file is refused with the reason and nothing changes; a repeated acknowledgement of
    the same file is accepted once and ignored after.
    """
    principal.require(Role.MANUFACTURER, *PIPELINE_ROLES)
    with ctx.transaction() as tx:
        batch = tx.conn.execute(select(print_batches).where(print_batches.c.id == batch_id)).first()
        if batch is None:
            raise NotFound("no such print batch")
        digest = hashlib.sha256(data).hexdigest()
        if digest != batch.sha256:
            raise InvalidInput(f"print batch {batch_id}: SHA-256 {digest[:16]}… does not match the manifest "
                               f"({batch.sha256[:16]}…); the file is damaged or not this batch")
        try:
            reader = csv.reader(io.StringIO(data.decode("utf-8")))
            header = next(reader)
            card_ids = [int(row[0]) for row in reader]
        except (UnicodeDecodeError, StopIteration, ValueError, IndexError):
            raise InvalidInput(f"print batch {batch_id}: not a print-data file") from None
        if tuple(header) != PRINT_COLUMNS or len(card_ids) != batch.card_count:
            raise InvalidInput(f"print batch {batch_id}: {len(card_ids)} cards in the file, "
                               f"{batch.card_count} in the manifest")
        recorded = set(tx.conn.execute(select(card_events.c.card_id).where(
            card_events.c.to_state == S.PRINT_ORDERED.value, card_events.c.reason == f"print batch {batch_id}"))
            .scalars())
        if set(card_ids) != recorded:
            raise InvalidInput(f"print batch {batch_id}: the card list differs from the order")
        if batch.acknowledged_at is None:
            tx.conn.execute(update(print_batches).where(print_batches.c.id == batch_id)
                            .values(acknowledged_at=now))


def read_print_file(ctx: Context, batch_id: int) -> bytes:
    """The bytes of a batch file as the manufacturer fetched them from the transfer folder."""
    with ctx.db.connect() as conn:
        name = conn.execute(select(print_batches.c.file_name).where(print_batches.c.id == batch_id)).scalar()
    if not name:
        raise NotFound("no such print batch")
    return (ctx.settings.batch_dir / name).read_bytes()


Personaliser = Callable[[Transaction, Sequence[Any], datetime], None]
"""A hook that personalises chips (keys, certificates) for manufactured cards; the chip and JPKI parts
provide one. It runs inside the manufacturing transaction, so a failure leaves the cards unmade."""


def _serial(manufacturer: str, card_id: int, print_run: int) -> str:
    """製造番号: 13 characters — maker letter, card id (10 digits), print run (2 digits)."""
    return f"{manufacturer[4].upper()}{card_id:010d}{print_run:02d}"


@dataclass(frozen=True)
class ManufactureItem:
    """A card of a print batch waiting to be made, with what its chip will carry (read before manufacture,
    so that the slow chip personalisation runs outside the manufacturing transaction)."""

    card_id: int
    card_serial: str
    resident_id: int
    municipality_code: str
    card_valid_until: date
    cert_valid_until: date
    wants_sign_cert: bool
    wants_auth_cert: bool
    photo_sha256: str


def cards_to_manufacture(ctx: Context, principal: Principal, batch_id: int, now: datetime,
                         limit: int = 20000) -> list[ManufactureItem]:
    """The next ``limit`` cards of a batch still to be made, with the serial and validity that
    :func:`manufacture_batch` will give them on the same day (read only; nothing is claimed)."""
    principal.require(Role.MANUFACTURER, *PIPELINE_ROLES)
    with ctx.db.connect() as conn:
        batch = conn.execute(select(print_batches).where(print_batches.c.id == batch_id)).first()
        if batch is None:
            raise NotFound("no such print batch")
        rows = conn.execute(select(cards.c.id, cards.c.birth_date, cards.c.applied_at, cards.c.print_count,
                                   cards.c.municipality_code, cards.c.resident_id, cards.c.wants_sign_cert,
                                   cards.c.wants_auth_cert, cards.c.photo_sha256)
                            .where(cards.c.print_batch_id == batch_id, cards.c.state == S.PRINT_ORDERED.value)
                            .order_by(cards.c.id).limit(limit)).all()
    today = local_date(now)
    out = []
    for r in rows:
        v = validity(r.birth_date, today, local_date(r.applied_at))
        out.append(ManufactureItem(r.id, _serial(batch.manufacturer, r.id, r.print_count), r.resident_id,
                                   r.municipality_code, v.card_until, v.certificates_until, r.wants_sign_cert,
                                   r.wants_auth_cert, r.photo_sha256))
    return out


def made_card_item(ctx: Context, principal: Principal, card_id: int) -> ManufactureItem:
    """What the chip of a card already made carries, with the serial and validity manufacture fixed (for a
    card made without a chip — ``mynacard demo``'s simulated bulk — whose chip is personalised later)."""
    principal.require(Role.MANUFACTURER, *PIPELINE_ROLES)
    with ctx.db.connect() as conn:
        r = conn.execute(select(cards.c.id, cards.c.card_serial, cards.c.resident_id, cards.c.municipality_code,
                                cards.c.card_valid_until, cards.c.cert_valid_until, cards.c.wants_sign_cert,
                                cards.c.wants_auth_cert, cards.c.photo_sha256)
                         .where(cards.c.id == card_id)).first()
    if r is None:
        raise NotFound("no such card")
    if r.card_serial is None or r.card_valid_until is None or r.cert_valid_until is None:
        raise Conflict("the card has not been made yet")
    return ManufactureItem(r.id, r.card_serial, r.resident_id, r.municipality_code, r.card_valid_until,
                           r.cert_valid_until, r.wants_sign_cert, r.wants_auth_cert, r.photo_sha256)


def manufacture_batch(ctx: Context, principal: Principal, batch_id: int, now: datetime, limit: int = 20000,
                      personalise: Personaliser | None = None, card_ids: Sequence[int] | None = None) -> int:
    """Print, personalise and inspect one chunk of an acknowledged batch (発行); returns cards made.

    Fixes each card's serial, issuance day and validity dates by the real rules. Call again until it
    returns 0; several workers may share one batch. ``card_ids`` limits the chunk to those cards (the
    chips of which were personalised beforehand, see :func:`cards_to_manufacture`).
    """
    principal.require(Role.MANUFACTURER, *PIPELINE_ROLES)
    with ctx.transaction() as tx:
        conn = tx.conn
        batch = conn.execute(select(print_batches).where(print_batches.c.id == batch_id)).first()
        if batch is None:
            raise NotFound("no such print batch")
        if batch.acknowledged_at is None:
            raise Conflict(f"print batch {batch_id} has not been acknowledged")
        where = [cards.c.print_batch_id == batch_id]
        if card_ids is not None:
            where.append(cards.c.id.in_(list(card_ids)))
        ids = ledger.claim(conn, S.PRINT_ORDERED, limit, where=where)
        if not ids:
            if card_ids is not None:
                return 0
            if batch.manufactured_at is None:
                conn.execute(update(print_batches).where(print_batches.c.id == batch_id)
                             .values(manufactured_at=now))
            return 0
        rows = ledger.rows_by_id(conn, ids, cards.c.id, cards.c.birth_date, cards.c.applied_at, cards.c.print_count,
                     cards.c.municipality_code, cards.c.resident_id, cards.c.wants_sign_cert,
                     cards.c.wants_auth_cert)
        today = local_date(now)
        serials, card_until, cert_until = [], [], []
        for r in rows:
            v = validity(r.birth_date, today, local_date(r.applied_at))
            serials.append(_serial(batch.manufacturer, r.id, r.print_count))
            card_until.append(v.card_until)
            cert_until.append(v.certificates_until)
        if personalise is not None:
            personalise(tx, rows, now)
        ledger.advance(conn, [r.id for r in rows], [S.PRINT_ORDERED], S.MANUFACTURED, actor=principal.subject,
                       now=now, values={"issued_on": today}, per_card={
                           "card_serial": serials, "card_valid_until": card_until, "cert_valid_until": cert_until})
    return len(ids)


# --- single cards ------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class CardView:
    """A card as a clerk or the resident sees it (no individual number)."""

    id: int
    application_id: str
    resident_id: int
    municipality_code: str
    state: CardState
    channel: str
    card_serial: str | None
    card_valid_until: date | None
    cert_valid_until: date | None
    review_reason: str | None
    applied_at: datetime


def _view(r: Any) -> CardView:
    return CardView(r.id, r.application_id, r.resident_id, r.municipality_code, CardState(r.state), r.channel,
                    r.card_serial, r.card_valid_until, r.cert_valid_until, r.review_reason, r.applied_at)


def _scoped(principal: Principal, query: Any) -> Any:
    if principal.role is Role.RESIDENT:
        return query.where(cards.c.resident_id == int(principal.subject))
    scope = principal.municipality_scope()
    return query if scope is None else query.where(cards.c.municipality_code == scope)


def get_card(ctx: Context, principal: Principal, card_id: int) -> CardView:
    with ctx.db.connect() as conn:
        row = conn.execute(_scoped(principal, select(cards).where(cards.c.id == card_id))).first()
    if row is None:
        raise NotFound("no such card")
    return _view(row)


def card_history(ctx: Context, principal: Principal, card_id: int) -> list[dict[str, Any]]:
    get_card(ctx, principal, card_id)  # scope check
    with ctx.db.connect() as conn:
        return [dict(r._mapping) for r in conn.execute(
            select(card_events.c.from_state, card_events.c.to_state, card_events.c.actor, card_events.c.at,
                   card_events.c.reason).where(card_events.c.card_id == card_id).order_by(card_events.c.id))]


def transition(ctx: Context, principal: Principal, card_id: int, target: CardState, reason: str | None,
               now: datetime, values: dict[str, Any] | None = None) -> CardView:
    """Move one card, checking role, scope and the lifecycle; an illegal move raises and changes nothing."""
    principal.require(*MUNICIPAL_ROLES)
    with ctx.transaction() as tx:
        query = _scoped(principal, select(cards).where(cards.c.id == card_id))
        if tx.conn.dialect.name == "postgresql":
            query = query.with_for_update()
        row = tx.conn.execute(query).first()
        if row is None:
            raise NotFound("no such card")
        current = CardState(row.state)
        check_transition(current, target)
        ledger.advance(tx.conn, [card_id], [current], target, actor=principal.subject, now=now, reason=reason,
                       values=values)
        row = tx.conn.execute(select(cards).where(cards.c.id == card_id)).first()
    return _view(row)


def move_card(tx: Transaction, card_id: int, sources: Sequence[CardState], target: CardState, *, actor: str,
              now: datetime, reason: str | None = None, values: dict[str, Any] | None = None) -> bool:
    """Move one card inside the caller's transaction (the window commits the card with its own records);
    False when the card is in none of ``sources``. The caller has checked role and scope."""
    return bool(ledger.advance(tx.conn, [card_id], sources, target, actor=actor, now=now, reason=reason,
                               values=values))


def counts_by_municipality_and_state(ctx: Context, principal: Principal) -> dict[str, dict[str, int]]:
    """municipality code → state → number of cards, within the caller's scope."""
    query = _scoped(principal, select(cards.c.municipality_code, cards.c.state, func.count())
                    .group_by(cards.c.municipality_code, cards.c.state))
    out: dict[str, dict[str, int]] = defaultdict(dict)
    with ctx.db.connect() as conn:
        for muni, state, n in conn.execute(query):
            out[muni][state] = n
    return dict(out)


def last_activity(ctx: Context) -> datetime | None:
    """When the last card changed state (the simulation resumes the day after)."""
    with ctx.db.connect() as conn:
        return conn.execute(select(func.max(card_events.c.at))).scalar()


def verify_ledger(ctx: Context) -> ledger.LedgerReport:
    """Whether every card's state agrees with its history (see :func:`ledger.verify_ledger`)."""
    with ctx.db.connect() as conn:
        return ledger.verify_ledger(conn)


# --- reactions to registry events ---------------------------------------------------------------------------

def void_pending_cards(conn: Connection, resident_id: int, reason: str, now: datetime,
                       actor: str = "registry") -> list[int]:
    """Void every card of the resident that has not been handed over yet (moved away, died, abroad)."""
    ids = list(conn.execute(select(cards.c.id).where(
        cards.c.resident_id == resident_id, cards.c.state.in_([s.value for s in VOIDABLE]))).scalars())
    states = {CardState(s) for s in conn.execute(select(cards.c.state).where(cards.c.id.in_(ids))).scalars()}
    return ledger.advance(conn, ids, states, S.VOIDED, actor=actor, now=now, reason=reason)
