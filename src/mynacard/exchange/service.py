"""Use cases of the information provision network: agencies, enrolment and codes, record copies, queries,
notices, the log and its verification — and the few functions Mynaportal calls on a resident's behalf.

Every function takes the caller's :class:`~mynacard.principal.Principal` and checks it: an agency acts only
for itself; the national operator (J-LIS) administers agencies, reviews and the log but cannot query; a
municipal supervisor decides reviews of their own municipality's agencies; a resident reaches only their own
records.
Every batch validates its whole input first and changes nothing when any item is wrong.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any
from weakref import WeakKeyDictionary

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from sqlalchemy import bindparam, delete, func, insert, or_, select, update
from sqlalchemy.exc import NoResultFound

from mynacard import numbers
from mynacard.context import Context, Transaction
from mynacard.db import Database
from mynacard.errors import Conflict, Forbidden, InvalidInput, NotFound
from mynacard.exchange import hub as hubmod
from mynacard.exchange import keys as keyring
from mynacard.exchange.envelope import EnvelopeError, canonical
from mynacard.exchange.hub import Delivery, Network, QueryOutcome, SelfInformationPart, new_message_id
from mynacard.exchange.model import (
    CHAIN_GENESIS,
    PORTAL_AGENCY_ID,
    Agency,
    AgencyId,
    AgencyKind,
    AgencyStatus,
    ChainBreak,
    ChainVerifier,
    EnrolmentDecision,
    ExchangeKind,
    ExchangeStatus,
    InfoItem,
    LinkStatus,
    LogEntry,
    SubmittedFacts,
    check_record_data,
    decide_enrolment,
    first_break,
    log_cutoff,
)
from mynacard.exchange.store import store_for
from mynacard.exchange.tables import (
    exchange_agencies,
    exchange_link_events,
    exchange_links,
    exchange_log,
    exchange_log_checkpoints,
    exchange_log_head,
    exchange_reviews,
)
from mynacard.principal import Principal, Role
from mynacard.registry import service as registry
from mynacard.registry.model import BasicFacts, Sex
from mynacard.sealing import Sealer

__all__ = [
    "AgencyRegistration",
    "ChainReport",
    "Delivery",
    "EnrolmentRequest",
    "EnrolmentResult",
    "InboxItem",
    "LinkHistory",
    "NoticeInput",
    "NoticeView",
    "QueryOutcome",
    "QueryRequest",
    "RecordInput",
    "RecordView",
    "ReviewView",
    "SelfInformationPart",
    "checkpoint_log",
    "correct_link",
    "decide_review",
    "deliver_applications",
    "enrol",
    "exchange_log_entries",
    "get_agency",
    "inbox",
    "link_history",
    "list_agencies",
    "list_reviews",
    "mark_notice_read",
    "notices_for",
    "prepare",
    "purge_expired_log",
    "query",
    "reconcile",
    "records_about",
    "register_agencies",
    "register_agency",
    "register_records",
    "request_self_information",
    "send_notice",
    "set_agency_status",
    "unlink",
    "update_inbox_status",
    "verify_log",
]

_ADMIN = (Role.OPERATOR, Role.SYSTEM)
_LOCAL_REF = re.compile(r"[A-Za-z0-9._:-]{1,64}")
_INBOX_STATUSES = ("received", "in_progress", "accepted", "rejected", "completed")


# --- plumbing -----------------------------------------------------------------------------------------------

_ready: WeakKeyDictionary[Database, keyring.HubKeys] = WeakKeyDictionary()


def prepare(ctx: Context, now: datetime) -> keyring.HubKeys:
    """Make sure the hub's keys and Mynaportal's place on the network exist (call outside a transaction)."""
    ready = _ready.get(ctx.db)
    if ready is not None:
        return ready
    hub = keyring.hub_keys(ctx, now)
    with ctx.db.connect() as conn:
        present = conn.execute(select(exchange_agencies.c.id).where(
            exchange_agencies.c.id == PORTAL_AGENCY_ID)).first()
    if present is None:
        _register(ctx, Principal.system("hub"), [AgencyRegistration(
            PORTAL_AGENCY_ID, "マイナポータル (情報提供等記録開示システム)", "Mynaportal",
            AgencyKind.PORTAL.value)], now, allow_portal=True)
    _ready[ctx.db] = hub
    return hub


@contextmanager
def _network(ctx: Context, now: datetime) -> Iterator[Network]:
    hub = prepare(ctx, now)
    with ctx.transaction() as tx:
        yield Network(ctx, tx, hub, now)


def _acting_for(principal: Principal, agency_id: str) -> None:
    """An agency acts only for itself; system jobs (the simulation, the bench) may act for any agency."""
    if principal.role is Role.AGENCY:
        if principal.subject != agency_id:
            raise Forbidden("an agency may act only for itself")
        return
    principal.require(Role.SYSTEM)


def _administers(principal: Principal, agency: Agency) -> None:
    """The operator, system jobs, the agency itself, or a supervisor of the agency's municipality."""
    if principal.role is Role.AGENCY:
        if principal.subject != agency.id:
            raise Forbidden("an agency may act only for itself")
        return
    if principal.role is Role.SUPERVISOR:
        if agency.municipality_code != principal.municipality_code:
            raise Forbidden("a supervisor decides only for their own municipality's agencies")
        return
    principal.require(*_ADMIN)


def _resident_id(principal: Principal) -> int:
    principal.require(Role.RESIDENT)
    return int(principal.subject)


def _agency_id(value: str) -> AgencyId:
    try:
        return AgencyId(value)
    except ValueError as exc:
        raise InvalidInput(str(exc)) from None


def _local_ref(value: Any) -> str:
    if not isinstance(value, str) or not _LOCAL_REF.fullmatch(value):
        raise InvalidInput("a local reference has 1–64 characters A–Z a–z 0–9 . _ : -")
    return value


# --- agencies -----------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class AgencyRegistration:
    """An agency joining the network."""

    id: str
    name: str
    """Japanese name (e.g. 千代田区 税務課)."""
    name_en: str
    kind: str
    municipality_code: str | None = None
    """Required for municipal divisions, forbidden for national bodies; optional for health insurers
    (a municipality's National Health Insurance)."""


def register_agency(ctx: Context, principal: Principal, registration: AgencyRegistration,
                    now: datetime) -> Agency:
    """Register an agency: its directory entry with public keys, and its own store with its private keys
    (sealed). Registering the same agency again with the same facts returns it unchanged."""
    return register_agencies(ctx, principal, [registration], now)[0]


def register_agencies(ctx: Context, principal: Principal, registrations: Sequence[AgencyRegistration],
                      now: datetime) -> list[Agency]:
    """Register several agencies at once (a municipality's divisions joining together): all or none."""
    principal.require(*_ADMIN)
    keyring.hub_keys(ctx, now)
    return _register(ctx, principal, registrations, now)


def _check_registration(ctx: Context, reg: AgencyRegistration, allow_portal: bool) -> list[str]:
    problems = []
    try:
        AgencyId(reg.id)
    except ValueError as exc:
        problems.append(str(exc))
    try:
        kind = AgencyKind(reg.kind)
    except ValueError:
        problems.append(f"unknown agency kind {reg.kind!r}")
        kind = AgencyKind.PORTAL
    if kind is AgencyKind.PORTAL and not allow_portal:
        problems.append("the portal kind is reserved for Mynaportal")
    for label, name in (("name", reg.name), ("name_en", reg.name_en)):
        if not isinstance(name, str) or not 1 <= len(name.strip()) <= 120:
            problems.append(f"{label} must have 1–120 characters")
    code = reg.municipality_code or None
    if kind.municipal and code is None:
        problems.append(f"a {kind.value} agency belongs to a municipality: give its code")
    if code is not None and not (kind.municipal or kind is AgencyKind.HEALTH_INSURER):
        problems.append(f"a {kind.value} agency is national: no municipality code")
    if code is not None:
        try:
            registry.get_municipality(ctx, code)
        except NotFound:
            problems.append(f"unknown municipality {code!r}")
    return [f"{reg.id}: {p}" for p in problems]


def _register(ctx: Context, principal: Principal, registrations: Sequence[AgencyRegistration], now: datetime,
              allow_portal: bool = False) -> list[Agency]:
    problems = [p for reg in registrations for p in _check_registration(ctx, reg, allow_portal)]
    ids = [reg.id for reg in registrations]
    if len(set(ids)) != len(ids):
        problems.append("the same agency appears twice in this batch")
    if problems:
        raise InvalidInput("agency not registered; nothing was changed", problems)
    out = []
    with ctx.transaction() as tx:
        conn = tx.conn
        for reg in registrations:
            agency_id, kind, code = AgencyId(reg.id), AgencyKind(reg.kind), reg.municipality_code or None
            row = conn.execute(select(exchange_agencies).where(exchange_agencies.c.id == agency_id)).first()
            if row is not None:
                existing = hubmod.agency_from_row(row)
                if (existing.name, existing.name_en, existing.kind, existing.municipality_code) != (
                        reg.name.strip(), reg.name_en.strip(), kind, code):
                    raise Conflict(f"agency {agency_id} is registered with other facts")
                out.append(existing)
                continue
            store = store_for(agency_id, conn.dialect.name)
            if store.exists(conn):
                raise Conflict(f"a store named {agency_id.store_name} already exists; remove it first")
            store.create(conn)
            keys = keyring.new_agency_keys(ctx, conn, store, 1, now)
            conn.execute(insert(exchange_agencies).values(
                id=agency_id, name=reg.name.strip(), name_en=reg.name_en.strip(), kind=kind.value,
                municipality_code=code, sign_public_key=keys.sign_public, enc_public_key=keys.enc_public,
                key_version=1, status=AgencyStatus.ACTIVE.value, registered_at=now,
                registered_by=principal.subject))
            tx.record("exchange.agency_registered", {"agency_id": agency_id, "kind": kind.value,
                                                     "municipality_code": code}, now)
            out.append(Agency(agency_id, reg.name.strip(), reg.name_en.strip(), kind, code, AgencyStatus.ACTIVE,
                              1, keys.sign_public, keys.enc_public))
    return out


def list_agencies(ctx: Context, kind: str | None = None,
                  municipality_code: str | None = None) -> list[Agency]:
    """The network's directory (names, kinds and public keys are public)."""
    conditions = []
    if kind:
        conditions.append(exchange_agencies.c.kind == kind)
    if municipality_code:
        conditions.append(exchange_agencies.c.municipality_code == municipality_code)
    with ctx.db.connect() as conn:
        return hubmod.agencies_where(conn, *conditions)


def get_agency(ctx: Context, agency_id: str) -> Agency:
    with ctx.db.connect() as conn:
        row = conn.execute(select(exchange_agencies).where(exchange_agencies.c.id == agency_id)).first()
    if row is None:
        raise NotFound(f"no agency {agency_id!r}")
    return hubmod.agency_from_row(row)


def set_agency_status(ctx: Context, principal: Principal, agency_id: str, status: str, reason: str,
                      now: datetime) -> Agency:
    """Suspend an agency (its messages are refused from then on) or reinstate it."""
    principal.require(*_ADMIN)
    try:
        target = AgencyStatus(status)
    except ValueError:
        raise InvalidInput("status is 'active' or 'suspended'") from None
    if not reason.strip():
        raise InvalidInput("a reason is required")
    if agency_id == PORTAL_AGENCY_ID:
        raise InvalidInput("Mynaportal cannot be suspended from here")
    with ctx.transaction() as tx:
        done = tx.conn.execute(update(exchange_agencies).where(exchange_agencies.c.id == agency_id)
                               .values(status=target.value)).rowcount
        if not done:
            raise NotFound(f"no agency {agency_id!r}")
        tx.record("exchange.agency_status_changed", {"agency_id": agency_id, "status": target.value,
                                                     "reason": reason, "actor": principal.subject}, now)
    return get_agency(ctx, agency_id)


# --- enrolment and codes (符号の取得) -----------------------------------------------------------------------

@dataclass(frozen=True)
class EnrolmentRequest:
    """One person an agency enrols: its own reference, the individual number and the facts it holds."""

    local_ref: str
    """団体内統合宛名番号 or the agency's own person number."""
    individual_number: str = field(repr=False)
    family_name: str = ""
    given_name: str = ""
    birth_date: date | None = None
    sex: str = ""
    address: str = ""
    family_kana: str | None = None
    given_kana: str | None = None

    def facts(self) -> SubmittedFacts:
        if self.birth_date is None:
            raise ValueError("date of birth is required")
        return SubmittedFacts.parse(self.family_name, self.given_name, self.birth_date, self.sex,
                                    self.address, self.family_kana, self.given_kana)


@dataclass(frozen=True)
class EnrolmentResult:
    local_ref: str
    outcome: str
    """``linked``, ``already_linked`` or ``review`` (never linked)."""
    code: str | None
    """The agency's own code for the person (only when linked)."""
    review_id: int | None = None
    reasons: tuple[str, ...] = ()


def _validate_enrolment(requests: Sequence[EnrolmentRequest]) -> list[tuple[str, str, SubmittedFacts]]:
    problems: list[str] = []
    out = []
    seen: set[str] = set()
    for i, r in enumerate(requests):
        label = f"#{i + 1}"
        try:
            ref = _local_ref(r.local_ref)
            label = f"#{i + 1} ({ref})"
            if ref in seen:
                raise InvalidInput("the same local reference appears twice in this batch")
            seen.add(ref)
            if not numbers.is_valid_individual_number(r.individual_number):
                # Never echo the number back: the message names the row only.
                raise InvalidInput("not a valid individual number (12 digits with a correct check digit)")
            out.append((ref, r.individual_number, r.facts()))
        except (InvalidInput, ValueError) as exc:
            problems.append(f"{label}: {exc}")
    if problems:
        raise InvalidInput(f"{len(problems)} enrolment(s) refused; nothing was changed", problems)
    return out


def _submission(agency_id: str, ref: str, number: str, sub: SubmittedFacts) -> dict[str, Any]:
    f = sub.facts
    return {"agency": agency_id, "local_ref": ref, "number": number, "family_name": f.family_name,
            "given_name": f.given_name, "birth_date": f.birth_date.isoformat(), "sex": f.sex.value,
            "address": f.address, "family_kana": sub.family_kana, "given_kana": sub.given_kana}


def _submitted_from(data: dict[str, Any]) -> SubmittedFacts:
    facts = BasicFacts(data["family_name"], data["given_name"], date.fromisoformat(data["birth_date"]),
                       Sex(data["sex"]), data["address"])
    return SubmittedFacts(facts, data.get("family_kana"), data.get("given_kana"))


def _person_values(net: Network, persons: Any, ref: str, number: str, sub: SubmittedFacts) -> dict[str, Any]:
    sealer = Sealer(net.ctx.settings.data_key)
    return {"family_name": sub.facts.family_name, "given_name": sub.facts.given_name,
            "family_kana": sub.family_kana, "given_kana": sub.given_kana,
            "birth_date": sub.facts.birth_date, "sex": sub.facts.sex.value, "address": sub.facts.address,
            "updated_at": net.now,
            "sealed_number": sealer.seal(number.encode(), f"{persons.name}:{ref}".encode())}


def _upsert_person(net: Network, agency: Agency, ref: str, number: str, sub: SubmittedFacts,
                   overwrite: bool) -> None:
    persons = net.store(agency.id).persons
    values = _person_values(net, persons, ref, number, sub)
    exists = net.conn.execute(select(persons.c.local_ref).where(persons.c.local_ref == ref)).first()
    if exists is None:
        net.conn.execute(insert(persons).values(local_ref=ref, **values))
    elif overwrite:
        net.conn.execute(update(persons).where(persons.c.local_ref == ref).values(**values))


def _enrol_batch(net: Network, agency: Agency, actor: str, items: Sequence[tuple[str, str, SubmittedFacts]],
                 source: str) -> list[EnrolmentResult]:
    """Enrol many records with a handful of statements: look everything up at once, decide each in the model
    (a person or record claimed earlier in the same batch counts as claimed), then write in bulk."""
    conn = net.conn
    sealer = Sealer(net.ctx.settings.data_key)
    persons = net.store(agency.id).persons
    refs = [ref for ref, _, _ in items]
    rids = [registry.resident_id_for_number(conn, sealer, number) for _, number, _ in items]
    found_ids = [r for r in rids if r is not None]
    people = registry.get_residents(conn, found_ids)
    by_ref, by_person = net.live_links(agency.id, local_refs=refs, resident_ids=found_ids)
    known: set[str] = set()
    for i in range(0, len(refs), 2000):
        known.update(conn.execute(select(persons.c.local_ref).where(persons.c.local_ref.in_(refs[i:i + 2000])))
                     .scalars())
    person_of_ref = {ref: link.resident_id for ref, link in by_ref.items()}
    ref_of_person = {rid: link.local_ref for rid, link in by_person.items()}
    results: list[EnrolmentResult | None] = [None] * len(items)
    inserts: list[dict[str, Any]] = []
    updates: list[dict[str, Any]] = []
    to_link: list[tuple[int, tuple[int, str, str]]] = []
    to_review: list[tuple[int, tuple[str, ...], int | None]] = []
    for i, ((ref, number, sub), rid) in enumerate(zip(items, rids, strict=True)):
        resident = people.get(rid) if rid is not None else None
        verdict = decide_enrolment(
            sub, resident,
            person_linked_elsewhere=rid is not None and ref_of_person.get(rid, ref) != ref,
            record_linked_to_other=ref in person_of_ref and person_of_ref[ref] != rid)
        values = _person_values(net, persons, ref, number, sub)
        if verdict.decision is EnrolmentDecision.LINK and resident is not None:
            (updates if ref in known else inserts).append({**values, "local_ref": ref})
            link = by_ref.get(ref)
            if link is None:
                to_link.append((i, (resident.id, resident.resident_code, ref)))
                person_of_ref[ref], ref_of_person[resident.id] = resident.id, ref
            else:
                if link.status is LinkStatus.SUSPENDED:
                    net.set_link_status(link, LinkStatus.ACTIVE, actor, "full match again", "reinstated")
                    _close_reviews(net, agency.id, ref, actor, "full match on re-enrolment", link.id)
                results[i] = EnrolmentResult(ref, "already_linked", link.code)
        else:
            if ref not in known:
                inserts.append({**values, "local_ref": ref})
            to_review.append((i, verdict.reasons, rid))
        known.add(ref)
    if inserts:
        conn.execute(insert(persons), inserts)
    if updates:
        columns = [k for k in updates[0] if k != "local_ref"]
        conn.execute(update(persons).where(persons.c.local_ref == bindparam("ref")).values(
            **{k: bindparam(f"v_{k}") for k in columns}),
            [{"ref": u["local_ref"], **{f"v_{k}": u[k] for k in columns}} for u in updates])
    issued = net.issue_links(agency, [p for _, p in to_link], actor,
                             f"full match of the basic four facts ({source})")
    for (i, _), link in zip(to_link, issued, strict=True):
        results[i] = EnrolmentResult(link.local_ref, "linked", link.code)
    review_ids = _open_reviews(net, agency.id, [(items[i], reasons, rid) for i, reasons, rid in to_review], source)
    for (i, reasons, _), review_id in zip(to_review, review_ids, strict=True):
        results[i] = EnrolmentResult(items[i][0], "review", None, review_id, reasons)
    return [r for r in results if r is not None]


def _open_reviews(net: Network, agency_id: str,
                  items: Sequence[tuple[tuple[str, str, SubmittedFacts], tuple[str, ...], int | None]],
                  source: str) -> list[int]:
    """Open a review per item, or find the pending one an identical earlier request opened."""
    if not items:
        return []
    sealer = Sealer(net.ctx.settings.data_key)
    rows = []
    for (ref, number, sub), reasons, rid in items:
        submission = _submission(agency_id, ref, number, sub)
        rows.append({"agency_id": agency_id, "local_ref": ref, "source": source,
                     "request_digest": sealer.lookup_hash(canonical({**submission, "source": source}).decode()),
                     "candidate_resident_id": rid, "reasons": ",".join(reasons), "status": "pending",
                     "created_at": net.now,
                     "sealed_submission": sealer.seal(canonical(submission),
                                                      f"exchange_reviews:{agency_id}:{ref}".encode())})
    digests = [r["request_digest"] for r in rows]
    found: dict[str, int] = {}
    for i in range(0, len(digests), 2000):
        found.update((d, int(n)) for n, d in net.conn.execute(
            select(exchange_reviews.c.id, exchange_reviews.c.request_digest).where(
                exchange_reviews.c.agency_id == agency_id, exchange_reviews.c.status == "pending",
                exchange_reviews.c.request_digest.in_(digests[i:i + 2000]))))
    fresh = [r for r in rows if r["request_digest"] not in found]
    if fresh:
        new_ids = net.conn.execute(insert(exchange_reviews).returning(
            exchange_reviews.c.id, sort_by_parameter_order=True), fresh).scalars()
        found.update((r["request_digest"], int(n)) for r, n in zip(fresh, new_ids, strict=True))
    return [found[d] for d in digests]


def _resident(conn: Any, resident_id: int | None) -> Any:
    return None if resident_id is None else registry.get_residents(conn, [resident_id]).get(resident_id)


def _sealed_submission(sealer: Sealer, row: Any) -> dict[str, Any]:
    context = f"exchange_reviews:{row.agency_id}:{row.local_ref}".encode()
    data: dict[str, Any] = json.loads(sealer.open(row.sealed_submission, context))
    return data


def _close_reviews(net: Network, agency_id: str, ref: str, actor: str, reason: str, link_id: int) -> None:
    net.conn.execute(update(exchange_reviews).where(
        exchange_reviews.c.agency_id == agency_id, exchange_reviews.c.local_ref == ref,
        exchange_reviews.c.status == "pending").values(
        status="linked", decided_at=net.now, decided_by=actor, decision_reason=reason, link_id=link_id))


def enrol(ctx: Context, principal: Principal, agency_id: str, requests: Sequence[EnrolmentRequest],
          now: datetime) -> list[EnrolmentResult]:
    """Enrol persons: a full match of the basic four facts (and kana, when given) with the registry record
    the individual number leads to gives the agency its code; anything less goes to a human review queue and
    is never linked. An identical retry returns the same result and opens no second review."""
    _acting_for(principal, agency_id)
    checked = _validate_enrolment(requests)
    with _network(ctx, now) as net:
        agency = net.agency(agency_id)
        if agency.kind is AgencyKind.PORTAL or not agency.active:
            raise Forbidden(f"agency {agency_id} cannot enrol persons")
        return _enrol_batch(net, agency, principal.subject, checked, "enrolment")


@dataclass(frozen=True)
class ReviewView:
    """A request in the review queue, as a reviewer sees it (the number masked)."""

    id: int
    agency_id: str
    local_ref: str
    source: str
    reasons: tuple[str, ...]
    masked_number: str
    submitted: dict[str, Any]
    status: str
    created_at: datetime
    decided_at: datetime | None
    decided_by: str | None
    decision_reason: str | None


def _review_view(row: Any, sealer: Sealer) -> ReviewView:
    data = _sealed_submission(sealer, row)
    number = data.pop("number")
    return ReviewView(row.id, row.agency_id, row.local_ref, row.source,
                      tuple(r for r in row.reasons.split(",") if r), numbers.mask_individual_number(number),
                      data, row.status, row.created_at, row.decided_at, row.decided_by, row.decision_reason)


def list_reviews(ctx: Context, principal: Principal, agency_id: str | None = None,
                 status: str | None = "pending", limit: int = 200) -> list[ReviewView]:
    """Reviews the caller may see: an agency its own, a supervisor their municipality's, the operator all."""
    query = select(exchange_reviews).order_by(exchange_reviews.c.id).limit(max(1, min(limit, 1000)))
    if status:
        query = query.where(exchange_reviews.c.status == status)
    if principal.role is Role.AGENCY:
        if agency_id not in (None, principal.subject):
            raise Forbidden("an agency sees only its own reviews")
        agency_id = principal.subject
    elif principal.role is Role.SUPERVISOR:
        mine = select(exchange_agencies.c.id).where(
            exchange_agencies.c.municipality_code == principal.municipality_code)
        query = query.where(exchange_reviews.c.agency_id.in_(mine))
    else:
        principal.require(*_ADMIN)
    if agency_id:
        query = query.where(exchange_reviews.c.agency_id == agency_id)
    sealer = Sealer(ctx.settings.data_key)
    with ctx.db.connect() as conn:
        return [_review_view(r, sealer) for r in conn.execute(query)]


def decide_review(ctx: Context, principal: Principal, review_id: int, decision: str, reason: str,
                  now: datetime, corrected: SubmittedFacts | None = None) -> ReviewView:
    """A person decides a review: ``reject`` it, or ``retry`` it with the facts corrected at the agency (after
    checking with the person). A retry links only on a full match; otherwise nothing changes (409)."""
    if decision not in ("reject", "retry"):
        raise InvalidInput("decision must be 'reject' or 'retry'")
    if not reason.strip():
        raise InvalidInput("a reason is required")
    sealer = Sealer(ctx.settings.data_key)
    with _network(ctx, now) as net:
        query = select(exchange_reviews).where(exchange_reviews.c.id == review_id)
        if net.conn.dialect.name == "postgresql":
            query = query.with_for_update()
        row = net.conn.execute(query).first()
        if row is None:
            raise NotFound("no such review")
        agency = net.agency(row.agency_id)
        if principal.role is Role.AGENCY:
            raise Forbidden("a review is decided by a person, not by the agency's system")
        _administers(principal, agency)
        if row.status != "pending":
            raise Conflict(f"review {review_id} is already {row.status}")
        view = _review_view(row, sealer)
        data = _sealed_submission(sealer, row)
        by_ref = net.live_link(agency.id, local_ref=row.local_ref, for_update=True)
        if decision == "reject":
            if row.source == "reconcile" and by_ref is not None:
                net.set_link_status(by_ref, LinkStatus.UNLINKED, principal.subject, reason, "unlinked")
            net.conn.execute(update(exchange_reviews).where(exchange_reviews.c.id == review_id).values(
                status="rejected", decided_at=now, decided_by=principal.subject, decision_reason=reason))
        else:
            facts = corrected or _submitted_from(data)
            result = _enrol_one_for_review(net, agency, principal.subject, row.local_ref, data["number"],
                                           facts)
            if result.outcome == "review":
                raise Conflict("still not a full match (" + ", ".join(result.reasons) + "); nothing linked")
            link = net.live_link(agency.id, local_ref=row.local_ref)
            net.conn.execute(update(exchange_reviews).where(exchange_reviews.c.id == review_id).values(
                status="linked", decided_at=now, decided_by=principal.subject, decision_reason=reason,
                link_id=None if link is None else link.id))
    return ReviewView(**{**view.__dict__, "status": "rejected" if decision == "reject" else "linked",
                         "decided_at": now, "decided_by": principal.subject, "decision_reason": reason})


def _enrol_one_for_review(net: Network, agency: Agency, actor: str, ref: str, number: str,
                          sub: SubmittedFacts) -> EnrolmentResult:
    """Like enrolment, but a failed match opens no new review (the reviewer is looking at it)."""
    conn = net.conn
    resident_id = registry.resident_id_for_number(conn, Sealer(net.ctx.settings.data_key), number)
    resident = _resident(conn, resident_id)
    by_ref = net.live_link(agency.id, local_ref=ref, for_update=True)
    by_person = net.live_link(agency.id, resident_id=resident_id) if resident_id is not None else None
    verdict = decide_enrolment(
        sub, resident, person_linked_elsewhere=by_person is not None and by_person.local_ref != ref,
        record_linked_to_other=by_ref is not None and by_ref.resident_id != resident_id)
    if verdict.decision is not EnrolmentDecision.LINK or resident is None:
        return EnrolmentResult(ref, "review", None, None, verdict.reasons)
    _upsert_person(net, agency, ref, number, sub, overwrite=True)
    if by_ref is not None:
        net.set_link_status(by_ref, LinkStatus.ACTIVE, actor, "full match after review", "reinstated")
        return EnrolmentResult(ref, "already_linked", by_ref.code)
    link = net.issue_link(agency, resident.id, resident.resident_code, ref, actor, "full match after review")
    return EnrolmentResult(ref, "linked", link.code)


@dataclass(frozen=True)
class LinkHistory:
    """Every code an agency record has held, with each change (what, from, to, who, when, why)."""

    code: str
    status: str
    linked_at: datetime
    events: list[dict[str, Any]]


def unlink(ctx: Context, principal: Principal, agency_id: str, local_ref: str, reason: str,
           now: datetime) -> LinkHistory:
    """Withdraw an agency's code for one of its records (a wrong link, or a record closed). The code is never
    issued again; the log keeps every exchange made with it."""
    if not reason.strip():
        raise InvalidInput("a reason is required")
    ref = _local_ref(local_ref)
    with _network(ctx, now) as net:
        agency = net.agency(agency_id)
        _administers(principal, agency)
        link = net.live_link(agency.id, local_ref=ref, for_update=True)
        if link is None:
            raise NotFound(f"{agency_id} has no live link for {ref!r}")
        net.set_link_status(link, LinkStatus.UNLINKED, principal.subject, reason, "unlinked")
        net.conn.execute(update(exchange_reviews).where(
            exchange_reviews.c.agency_id == agency.id, exchange_reviews.c.local_ref == ref,
            exchange_reviews.c.status == "pending", exchange_reviews.c.source == "reconcile").values(
            status="rejected", decided_at=now, decided_by=principal.subject, decision_reason=reason))
    return _history(ctx, agency_id, ref)[-1]


def correct_link(ctx: Context, principal: Principal, agency_id: str, request: EnrolmentRequest, reason: str,
                 now: datetime) -> EnrolmentResult:
    """Correct a wrong link in one step: the current code of the record is withdrawn and the record is
    enrolled again with the corrected number and facts (full match → new code; otherwise review)."""
    if not reason.strip():
        raise InvalidInput("a reason is required")
    ((ref, number, sub),) = _validate_enrolment([request])
    with _network(ctx, now) as net:
        agency = net.agency(agency_id)
        _administers(principal, agency)
        link = net.live_link(agency.id, local_ref=ref, for_update=True)
        if link is not None:
            net.set_link_status(link, LinkStatus.UNLINKED, principal.subject, f"correction: {reason}",
                                "corrected")
        _upsert_person(net, agency, ref, number, sub, overwrite=True)
        return _enrol_batch(net, agency, principal.subject, [(ref, number, sub)], "correction")[0]


def _history(ctx: Context, agency_id: str, ref: str) -> list[LinkHistory]:
    with ctx.db.connect() as conn:
        links = conn.execute(select(exchange_links).where(
            exchange_links.c.agency_id == agency_id, exchange_links.c.local_ref == ref)
            .order_by(exchange_links.c.id)).all()
        out = []
        for link in links:
            events = [{"kind": e.kind, "from": e.from_status, "to": e.to_status, "actor": e.actor, "at": e.at,
                       "reason": e.reason} for e in conn.execute(
                select(exchange_link_events).where(exchange_link_events.c.link_id == link.id)
                .order_by(exchange_link_events.c.id))]
            out.append(LinkHistory(link.code, link.status, link.linked_at, events))
    return out


def link_history(ctx: Context, principal: Principal, agency_id: str, local_ref: str) -> list[LinkHistory]:
    """The history of an agency record's links (oldest first)."""
    agency = get_agency(ctx, agency_id)
    _administers(principal, agency)
    return _history(ctx, agency_id, _local_ref(local_ref))


@dataclass(frozen=True)
class ReconcileReport:
    checked: int
    suspended: list[str]
    """Local references whose link was suspended (their facts no longer match the registry)."""


def reconcile(ctx: Context, principal: Principal, agency_id: str, now: datetime) -> ReconcileReport:
    """Check every active link of an agency against the registry again (reference §6 #14: not once, but
    periodically). A record whose facts no longer fully match is suspended — no exchange uses it — and goes
    to review; re-enrolling it with matching facts, or a reviewer's retry, reinstates it."""
    sealer = Sealer(ctx.settings.data_key)
    with _network(ctx, now) as net:
        agency = net.agency(agency_id)
        if principal.role is Role.AGENCY:
            _acting_for(principal, agency_id)
        else:
            _administers(principal, agency)
        persons = net.store(agency.id).persons
        links = {r.local_ref: r for r in net.conn.execute(select(exchange_links).where(
            exchange_links.c.agency_id == agency.id, exchange_links.c.status == LinkStatus.ACTIVE.value))}
        people = registry.get_residents(net.conn, [r.resident_id for r in links.values()])
        suspended = []
        rows = (net.conn.execute(select(persons).where(persons.c.local_ref.in_(list(links)))).all()
                if links else [])
        for p in rows:
            link = hubmod.Link(links[p.local_ref].id, agency.id, links[p.local_ref].code,
                               links[p.local_ref].resident_id, links[p.local_ref].generation, p.local_ref,
                               LinkStatus.ACTIVE)
            facts = BasicFacts(p.family_name, p.given_name, p.birth_date, Sex(p.sex), p.address)
            held = SubmittedFacts(facts, p.family_kana, p.given_kana)
            verdict = decide_enrolment(held, people.get(link.resident_id))
            if verdict.decision is EnrolmentDecision.LINK:
                continue
            number = sealer.open(p.sealed_number, f"{persons.name}:{p.local_ref}".encode()).decode()
            net.set_link_status(link, LinkStatus.SUSPENDED, principal.subject,
                                "reconciliation: " + ", ".join(verdict.reasons), "suspended")
            _open_reviews(net, agency.id, [((p.local_ref, number, held), verdict.reasons, link.resident_id)],
                          "reconcile")
            suspended.append(p.local_ref)
    return ReconcileReport(len(links), suspended)


# --- record copies (副本登録) -------------------------------------------------------------------------------

@dataclass(frozen=True)
class RecordInput:
    """The current copy of one item for one of the agency's persons."""

    local_ref: str
    item: str
    data: dict[str, Any]


def register_records(ctx: Context, principal: Principal, agency_id: str, items: Sequence[RecordInput],
                     now: datetime) -> int:
    """Register or replace copies of items an agency may provide (all or nothing); returns how many."""
    _acting_for(principal, agency_id)
    agency = get_agency(ctx, agency_id)
    problems = []
    checked = []
    seen: set[tuple[str, str]] = set()
    for i, r in enumerate(items):
        try:
            ref = _local_ref(r.local_ref)
            try:
                item = InfoItem(r.item)
            except ValueError:
                raise InvalidInput(f"unknown item {r.item!r}") from None
            if not agency.holds(item):
                raise InvalidInput(f"a {agency.kind.value} agency does not hold {item.value}")
            if (ref, item.value) in seen:
                raise InvalidInput("the same record appears twice in this batch")
            seen.add((ref, item.value))
            checked.append((ref, item, check_record_data(r.data)))
        except (InvalidInput, ValueError) as exc:
            problems.append(f"#{i + 1}: {exc}")
    if problems:
        raise InvalidInput(f"{len(problems)} record(s) refused; nothing was stored", problems)
    if not checked:
        return 0
    store = store_for(agency.id, ctx.db.engine.dialect.name)
    with ctx.transaction() as tx:
        refs = sorted({ref for ref, _, _ in checked})
        known: set[str] = set()
        for i in range(0, len(refs), 5000):
            known.update(tx.conn.execute(select(store.persons.c.local_ref).where(
                store.persons.c.local_ref.in_(refs[i:i + 5000]))).scalars())
        missing = [ref for ref in refs if ref not in known]
        if missing:
            raise InvalidInput("records for persons the agency has not enrolled; nothing was stored",
                               [f"{ref}: not enrolled" for ref in missing[:20]])
        existing = {(r.local_ref, r.item): r.version for r in tx.conn.execute(
            select(store.records.c.local_ref, store.records.c.item, store.records.c.version)
            .where(store.records.c.local_ref.in_(refs)))}
        for ref, item, data in checked:
            text = json.dumps(data, ensure_ascii=False, sort_keys=True)
            if (ref, item.value) in existing:
                tx.conn.execute(update(store.records).where(
                    store.records.c.local_ref == ref, store.records.c.item == item.value).values(
                    data=text, version=store.records.c.version + 1, updated_at=now))
            else:
                tx.conn.execute(insert(store.records).values(local_ref=ref, item=item.value, data=text,
                                                             version=1, updated_at=now))
    return len(checked)


# --- query and provide --------------------------------------------------------------------------------------

@dataclass(frozen=True)
class QueryRequest:
    """情報照会: ask ``provider`` for ``item`` about the agency's person ``local_ref``, for ``procedure``."""

    provider: str
    procedure: str
    item: str
    local_ref: str
    message_id: str | None = None
    """The caller's idempotency key; a retry with the same key is answered again and logged once."""


def query(ctx: Context, principal: Principal, agency_id: str, request: QueryRequest,
          now: datetime) -> QueryOutcome:
    """Ask another agency through the hub. A refused query is logged and then raises :class:`Forbidden`."""
    _acting_for(principal, agency_id)
    ref = _local_ref(request.local_ref)
    message_id = hubmod.check_message_id(request.message_id or new_message_id("q"))
    with _network(ctx, now) as net:
        requester = net.agency(agency_id)
        if requester.kind is AgencyKind.PORTAL:
            raise Forbidden("Mynaportal does not query agencies")
        try:
            outcome = net.query(requester, request.provider, request.procedure, request.item, ref, message_id)
        except EnvelopeError as exc:
            raise InvalidInput(f"exchange failed: {exc}") from None
    if outcome.status is ExchangeStatus.REFUSED:
        raise Forbidden(f"exchange refused and logged as entry {outcome.seq}: {outcome.reason}")
    return outcome


@dataclass(frozen=True)
class NoticeInput:
    """お知らせ for one person: by the agency's own record, or by an application's reply handle."""

    title: str
    body: str
    local_ref: str | None = None
    reply_handle: str | None = None
    message_id: str | None = None
    about: dict[str, Any] | None = None


def _check_notice(notice: NoticeInput) -> None:
    problems = []
    if not isinstance(notice.title, str) or not 1 <= len(notice.title.strip()) <= 120:
        problems.append("a title has 1–120 characters")
    if not isinstance(notice.body, str) or not 1 <= len(notice.body.strip()) <= 4000:
        problems.append("a body has 1–4,000 characters")
    if (notice.local_ref is None) == (notice.reply_handle is None):
        problems.append("address the notice by local_ref or by reply_handle, not both")
    for text in (notice.title, notice.body):
        if isinstance(text, str) and any(numbers.is_valid_individual_number(m)
                                         for m in re.findall(r"(?<![0-9])[0-9]{12}(?![0-9])", text)):
            problems.append("a notice must not contain an individual number")
    if problems:
        raise InvalidInput("notice refused", problems)


def send_notice(ctx: Context, principal: Principal, agency_id: str, notice: NoticeInput,
                now: datetime) -> Delivery:
    """Push a notice to the person's Mynaportal through the hub (end-to-end encrypted to the portal)."""
    _acting_for(principal, agency_id)
    _check_notice(notice)
    message_id = hubmod.check_message_id(notice.message_id or new_message_id("n"))
    with _network(ctx, now) as net:
        sender = net.agency(agency_id)
        if sender.kind is AgencyKind.PORTAL:
            raise Forbidden("Mynaportal does not send notices to itself")
        return net.notice(sender, message_id, notice.title.strip(), notice.body.strip(),
                          local_ref=notice.local_ref and _local_ref(notice.local_ref),
                          reply_handle=notice.reply_handle, about=notice.about)


@dataclass(frozen=True)
class InboxItem:
    """A delivery in an agency's inbox (an application from Mynaportal)."""

    id: int
    message_id: str
    sender: str
    kind: str
    local_ref: str | None
    linked: bool
    """Whether the hub could give the agency its own code for the applicant."""
    reply_handle: str | None
    title: str | None
    payload: dict[str, Any]
    status: str
    status_note: str | None
    received_at: datetime
    updated_at: datetime


def _inbox_item(r: Any) -> InboxItem:
    return InboxItem(r.id, r.message_id, r.sender, r.kind, r.local_ref, r.code is not None, r.reply_handle,
                     r.title, json.loads(r.payload), r.status, r.status_note, r.received_at, r.updated_at)


def inbox(ctx: Context, principal: Principal, agency_id: str, status: str | None = None,
          limit: int = 200) -> list[InboxItem]:
    """An agency's inbox, newest first."""
    _acting_for(principal, agency_id)
    agency = get_agency(ctx, agency_id)
    box = store_for(agency.id, ctx.db.engine.dialect.name).inbox
    query = select(box).order_by(box.c.id.desc()).limit(max(1, min(limit, 1000)))
    if status:
        query = query.where(box.c.status == status)
    with ctx.db.connect() as conn:
        return [_inbox_item(r) for r in conn.execute(query)]


def update_inbox_status(ctx: Context, principal: Principal, agency_id: str, inbox_id: int, status: str,
                        note: str, now: datetime) -> InboxItem:
    """Move an application on (受付 → 審査中 → 決定) and tell the applicant in Mynaportal."""
    _acting_for(principal, agency_id)
    if status not in _INBOX_STATUSES[1:]:
        raise InvalidInput(f"status is one of {', '.join(_INBOX_STATUSES[1:])}")
    if len(note) > 2000:
        raise InvalidInput("a note has at most 2,000 characters")
    with _network(ctx, now) as net:
        agency = net.agency(agency_id)
        box = net.store(agency.id).inbox
        row = net.conn.execute(select(box).where(box.c.id == inbox_id)).first()
        if row is None or row.kind != "application":
            raise NotFound("no such application in the inbox")
        if row.status in ("accepted", "rejected", "completed") and row.status != status:
            raise Conflict(f"the application is already {row.status}")
        if row.status == status:
            return _inbox_item(row)
        net.conn.execute(update(box).where(box.c.id == inbox_id).values(
            status=status, status_note=note or None, updated_at=now))
        payload = json.loads(row.payload)
        title = _STATUS_TITLE[status].format(agency=agency.name)
        net.notice(agency, hubmod.new_message_id("s"), title, note or title, reply_handle=row.reply_handle,
                   about={"application": row.message_id, "procedure": payload.get("procedure"),
                          "status": status})
        row = net.conn.execute(select(box).where(box.c.id == inbox_id)).one()
    return _inbox_item(row)


_STATUS_TITLE = {
    "in_progress": "{agency}: 申請を審査しています",
    "accepted": "{agency}: 申請が受理されました",
    "rejected": "{agency}: 申請が受理されませんでした",
    "completed": "{agency}: 手続きが完了しました",
}


# --- the log ------------------------------------------------------------------------------------------------

def _entry(r: Any) -> LogEntry:
    return LogEntry(r.seq, r.chain, r.chain_seq, ExchangeKind(r.kind), r.message_id, r.requester, r.provider,
                    r.procedure, r.item, r.subject_code, ExchangeStatus(r.status), r.reason, r.requested_at,
                    r.completed_at)


def exchange_log_entries(ctx: Context, principal: Principal, agency_id: str | None = None, after_seq: int = 0,
                         limit: int = 100) -> list[LogEntry]:
    """Log entries in order: the operator sees all, an agency the exchanges it took part in."""
    query = select(exchange_log).where(exchange_log.c.seq > after_seq).order_by(exchange_log.c.seq).limit(
        max(1, min(limit, 5000)))
    if principal.role is Role.AGENCY:
        agency_id = principal.subject
    else:
        principal.require(*_ADMIN)
    if agency_id:
        query = query.where(or_(exchange_log.c.requester == agency_id, exchange_log.c.provider == agency_id))
    with ctx.db.connect() as conn:
        return [_entry(r) for r in conn.execute(query)]


@dataclass(frozen=True)
class ChainReport:
    """The verifier's answer: whole or not, and if not, where."""

    entries: int
    first_seq: int | None
    last_seq: int | None
    chains: int
    """Chains that hold entries."""
    checkpoints: int
    breaks: list[ChainBreak]

    @property
    def ok(self) -> bool:
        return not self.breaks

    @property
    def first(self) -> ChainBreak | None:
        return first_break(self.breaks)


def verify_log(ctx: Context, principal: Principal, chunk: int = 5000) -> ChainReport:
    """Recompute every chain, check the hub's signatures on each head and checkpoint, and say where a chain
    breaks: an altered entry, a removed one, or a stretch rewritten after it was signed."""
    principal.require(*_ADMIN)
    breaks: list[ChainBreak] = []
    entries = 0
    first_seq: int | None = None
    last_seq: int | None = None
    with ctx.db.connect() as conn:
        try:
            sign_public: bytes | None = keyring.hub_public_keys(conn)[0]
        except NoResultFound:  # no hub keys: nothing was ever logged
            sign_public = None
        heads = {int(h.chain): h for h in conn.execute(select(exchange_log_head))}
        anchors: dict[int, tuple[int, str]] = {}
        marks: dict[int, dict[int, str]] = {}
        n_checkpoints = 0
        for c in conn.execute(select(exchange_log_checkpoints).order_by(
                exchange_log_checkpoints.c.chain, exchange_log_checkpoints.c.chain_seq)):
            message = hubmod.checkpoint_message(c.kind, c.chain, c.chain_seq, c.row_hash)
            if not _signed(sign_public, message, c.signature):
                breaks.append(ChainBreak(c.chain, c.chain_seq, c.seq, "checkpoint",
                                         f"the checkpoint at position {c.chain_seq} of chain {c.chain} is not "
                                         "signed by the hub"))
            elif c.kind == "anchor":
                anchors[int(c.chain)] = (int(c.chain_seq), str(c.row_hash))
            else:
                marks.setdefault(int(c.chain), {})[int(c.chain_seq)] = str(c.row_hash)
                n_checkpoints += 1
        chains = sorted(set(heads) | set(conn.execute(select(exchange_log.c.chain).distinct()).scalars()))
        for chain in chains:
            anchor_pos, anchor_hash = anchors.get(chain, (0, CHAIN_GENESIS))
            verifier = ChainVerifier(chain, anchor_pos, anchor_hash,
                                     {p: h for p, h in marks.get(chain, {}).items() if p > anchor_pos})
            after = anchor_pos if anchor_pos else -1
            while True:
                rows = conn.execute(select(exchange_log).where(
                    exchange_log.c.chain == chain, exchange_log.c.chain_seq > after)
                    .order_by(exchange_log.c.chain_seq).limit(chunk)).all()
                if not rows:
                    break
                for r in rows:
                    verifier.feed(_entry(r), r.prev_hash, r.row_hash)
                    first_seq = r.seq if first_seq is None else min(first_seq, r.seq)
                    last_seq = r.seq if last_seq is None else max(last_seq, r.seq)
                after = rows[-1].chain_seq
            entries += verifier.entries
            head = heads.get(chain)
            head_pos = head_hash = None
            if head is not None and head.chain_seq > 0:
                message = hubmod.head_message(chain, head.chain_seq, head.row_hash)
                if not _signed(sign_public, message, head.signature):
                    breaks.append(ChainBreak(chain, int(head.chain_seq), None, "head",
                                             f"the head of chain {chain} is not signed by the hub"))
                head_pos, head_hash = int(head.chain_seq), str(head.row_hash)
            breaks.extend(verifier.finish(head_pos, head_hash))
    return ChainReport(entries, first_seq, last_seq, len(chains), n_checkpoints,
                       sorted(breaks, key=lambda b: (b.chain, b.chain_seq, b.kind)))


def _signed(public: bytes | None, message: bytes, signature: bytes | None) -> bool:
    if public is None or signature is None:
        return False
    try:
        Ed25519PublicKey.from_public_bytes(public).verify(bytes(signature), message)
        return True
    except InvalidSignature:
        return False


def checkpoint_log(ctx: Context, principal: Principal, now: datetime) -> int:
    """Sign a checkpoint at the head of every chain (besides the automatic one every 1,000 entries of a
    chain); returns how many were signed."""
    principal.require(*_ADMIN)
    hub = keyring.hub_keys(ctx, now)
    signed = 0
    with ctx.transaction() as tx:
        for head in tx.conn.execute(select(exchange_log_head).where(exchange_log_head.c.chain_seq > 0)).all():
            exists = tx.conn.execute(select(exchange_log_checkpoints.c.chain_seq).where(
                exchange_log_checkpoints.c.chain == head.chain,
                exchange_log_checkpoints.c.chain_seq == head.chain_seq)).first()
            if exists is not None:
                continue
            seq = tx.conn.execute(select(exchange_log.c.seq).where(
                exchange_log.c.chain == head.chain, exchange_log.c.chain_seq == head.chain_seq)).scalar()
            tx.conn.execute(insert(exchange_log_checkpoints).values(
                chain=head.chain, chain_seq=head.chain_seq, seq=seq, kind="checkpoint", row_hash=head.row_hash,
                at=now, signature=hub.party.sign.sign(
                    hubmod.checkpoint_message("checkpoint", head.chain, head.chain_seq, head.row_hash))))
            signed += 1
    return signed


def purge_expired_log(ctx: Context, principal: Principal, now: datetime) -> int:
    """Remove entries past the seven-year retention, chain by chain; a signed anchor at each chain's last
    removed position keeps the rest verifiable."""
    principal.require(*_ADMIN)
    hub = keyring.hub_keys(ctx, now)
    cutoff = log_cutoff(now)
    removed = 0
    with ctx.transaction() as tx:
        conn = tx.conn
        for chain in list(conn.execute(select(exchange_log.c.chain).distinct()).scalars()):
            in_chain = exchange_log.c.chain == chain
            # A chain is appended in time order, so its expired entries are a prefix: stop at the first live one.
            first_live = conn.execute(select(func.min(exchange_log.c.chain_seq)).where(
                in_chain, exchange_log.c.completed_at >= cutoff)).scalar()
            query = select(func.max(exchange_log.c.chain_seq)).where(in_chain, exchange_log.c.completed_at < cutoff)
            if first_live is not None:
                query = query.where(exchange_log.c.chain_seq < first_live)
            last = conn.execute(query).scalar()
            if last is None:
                continue
            row = conn.execute(select(exchange_log.c.seq, exchange_log.c.row_hash).where(
                in_chain, exchange_log.c.chain_seq == last)).one()
            removed += conn.execute(delete(exchange_log).where(in_chain, exchange_log.c.chain_seq <= last)).rowcount
            conn.execute(delete(exchange_log_checkpoints).where(
                exchange_log_checkpoints.c.chain == chain, exchange_log_checkpoints.c.chain_seq <= last))
            conn.execute(insert(exchange_log_checkpoints).values(
                chain=chain, chain_seq=last, seq=row.seq, kind="anchor", row_hash=row.row_hash, at=now,
                signature=hub.party.sign.sign(hubmod.checkpoint_message("anchor", chain, last, row.row_hash))))
    return int(removed)


# --- on a resident's behalf (Mynaportal) --------------------------------------------------------------------

@dataclass(frozen=True)
class RecordView:
    """One 情報提供等記録 as the person reads it in Mynaportal."""

    seq: int
    kind: ExchangeKind
    at: datetime
    requester: str
    requester_name: str
    provider: str | None
    provider_name: str | None
    procedure: str | None
    item: str | None
    status: ExchangeStatus
    basis: str | None
    """The permitted-exchange row that allowed it, or why it was refused."""


def records_about(ctx: Context, principal: Principal, now: datetime, limit: int = 50,
                  offset: int = 0) -> tuple[list[RecordView], int]:
    """The caller's own exchange records of the last seven years, newest first, and how many there are."""
    resident_id = _resident_id(principal)
    with _network(ctx, now) as net:
        code = net.portal_code(resident_id)
    cutoff = log_cutoff(now)
    where = (exchange_log.c.subject_code == code, exchange_log.c.completed_at >= cutoff)
    with ctx.db.connect() as conn:
        total = conn.execute(select(func.count()).select_from(exchange_log).where(*where)).scalar_one()
        rows = conn.execute(select(exchange_log).where(*where).order_by(exchange_log.c.seq.desc())
                            .limit(max(1, min(limit, 1000))).offset(max(0, offset))).all()
        names = {r.id: r.name for r in conn.execute(select(exchange_agencies.c.id, exchange_agencies.c.name))}
    return [RecordView(r.seq, ExchangeKind(r.kind), r.completed_at, r.requester,
                       names.get(r.requester, r.requester), r.provider,
                       names.get(r.provider, r.provider) if r.provider else None, r.procedure, r.item,
                       ExchangeStatus(r.status), r.reason) for r in rows], int(total)


def request_self_information(ctx: Context, principal: Principal, now: datetime,
                             message_id: str | None = None) -> list[SelfInformationPart]:
    """自己情報: every agency holding the caller answers with the caller's records (each answer is logged)."""
    resident_id = _resident_id(principal)
    mid = hubmod.check_message_id(message_id or new_message_id("j"))
    with _network(ctx, now) as net:
        try:
            return net.self_information(resident_id, mid)
        except EnvelopeError as exc:
            raise InvalidInput(f"exchange failed: {exc}") from None


@dataclass(frozen=True)
class NoticeView:
    """A notice in the person's Mynaportal."""

    id: int
    sender: str
    sender_name: str
    title: str
    body: str
    about: dict[str, Any] | None
    received_at: datetime
    read_at: datetime | None


def notices_for(ctx: Context, principal: Principal, now: datetime, limit: int = 200) -> list[NoticeView]:
    """The caller's notices, newest first."""
    resident_id = _resident_id(principal)
    with _network(ctx, now) as net:
        code = net.portal_code(resident_id)
    box = store_for(PORTAL_AGENCY_ID, ctx.db.engine.dialect.name).inbox
    with ctx.db.connect() as conn:
        rows = conn.execute(select(box).where(box.c.code == code, box.c.kind == "notice")
                            .order_by(box.c.id.desc()).limit(max(1, min(limit, 1000)))).all()
        names = {r.id: r.name for r in conn.execute(select(exchange_agencies.c.id, exchange_agencies.c.name))}
    out = []
    for r in rows:
        payload = json.loads(r.payload)
        out.append(NoticeView(r.id, r.sender, names.get(r.sender, r.sender), payload.get("title", ""),
                              payload.get("body", ""), payload.get("about"), r.received_at, r.read_at))
    return out


def mark_notice_read(ctx: Context, principal: Principal, notice_id: int, now: datetime) -> None:
    """Mark one of the caller's notices read (someone else's notice is simply not found)."""
    resident_id = _resident_id(principal)
    with _network(ctx, now) as net:
        code = net.portal_code(resident_id)
        box = net.store(PORTAL_AGENCY_ID).inbox
        mine = (box.c.id == notice_id, box.c.code == code, box.c.kind == "notice")
        if net.conn.execute(select(box.c.id).where(*mine)).first() is None:
            raise NotFound("no such notice")
        net.conn.execute(update(box).where(*mine, box.c.read_at.is_(None))
                         .values(read_at=now, updated_at=now))


def deliver_applications(ctx: Context, tx: Transaction, principal: Principal,
                         deliveries: Sequence[tuple[str, str, dict[str, Any]]], applicant: dict[str, Any],
                         message_id: str, now: datetime) -> list[Delivery]:
    """Mynaportal delivers one application to each (agency, procedure, form) inside the portal's own
    transaction ``tx``, so that the application and its deliveries commit or roll back together.
    Call :func:`prepare` before opening ``tx``."""
    resident_id = _resident_id(principal)
    net = Network(ctx, tx, keyring.hub_keys(ctx, now), now)
    out = []
    for agency_id, procedure, form in deliveries:
        target = net.agency(agency_id)
        try:
            out.append(net.application(resident_id, hubmod.check_message_id(message_id), target, procedure,
                                       form, applicant))
        except EnvelopeError as exc:
            raise InvalidInput(f"delivery failed: {exc}") from None
    return out


def held_by(ctx: Context, principal: Principal, now: datetime) -> list[Agency]:
    """The agencies that hold an active code for the caller (where the caller's records are)."""
    resident_id = _resident_id(principal)
    with ctx.db.connect() as conn:
        ids = list(conn.execute(select(exchange_links.c.agency_id).where(
            exchange_links.c.resident_id == resident_id, exchange_links.c.status == LinkStatus.ACTIVE.value,
            exchange_links.c.agency_id != PORTAL_AGENCY_ID)).scalars())
        return hubmod.agencies_where(conn, exchange_agencies.c.id.in_(ids)) if ids else []
