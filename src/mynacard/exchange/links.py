"""An agency's links after enrolment: withdrawing a code (unlink), correcting a wrong link, each record's
history, and reconciliation: checking every active link against the registry again."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select, update

from mynacard.context import Context
from mynacard.errors import InvalidInput, NotFound
from mynacard.exchange import hub as hubmod
from mynacard.exchange.access import acting_for, administers, check_local_ref
from mynacard.exchange.agencies import get_agency, open_network
from mynacard.exchange.enrolment import (
    EnrolmentRequest,
    EnrolmentResult,
    enrol_batch,
    open_reviews,
    upsert_person,
    validate_enrolment,
)
from mynacard.exchange.model import EnrolmentDecision, LinkStatus, SubmittedFacts, decide_enrolment
from mynacard.exchange.tables import exchange_link_events, exchange_links, exchange_reviews
from mynacard.principal import Principal, Role
from mynacard.registry import service as registry
from mynacard.registry.model import BasicFacts, Sex
from mynacard.sealing import Sealer

__all__ = ["LinkHistory", "ReconcileReport", "correct_link", "link_history", "reconcile", "unlink"]


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
    ref = check_local_ref(local_ref)
    with open_network(ctx, now) as net:
        agency = net.agency(agency_id)
        administers(principal, agency)
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
    ((ref, number, sub),) = validate_enrolment([request])
    with open_network(ctx, now) as net:
        agency = net.agency(agency_id)
        administers(principal, agency)
        link = net.live_link(agency.id, local_ref=ref, for_update=True)
        if link is not None:
            net.set_link_status(link, LinkStatus.UNLINKED, principal.subject, f"correction: {reason}",
                                "corrected")
        upsert_person(net, agency, ref, number, sub, overwrite=True)
        return enrol_batch(net, agency, principal.subject, [(ref, number, sub)], "correction")[0]


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
    administers(principal, agency)
    return _history(ctx, agency_id, check_local_ref(local_ref))


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
    with open_network(ctx, now) as net:
        agency = net.agency(agency_id)
        if principal.role is Role.AGENCY:
            acting_for(principal, agency_id)
        else:
            administers(principal, agency)
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
            open_reviews(net, agency.id, [((p.local_ref, number, held), verdict.reasons, link.resident_id)],
                         "reconcile")
            suspended.append(p.local_ref)
    return ReconcileReport(len(links), suspended)
