"""The review queue: enrolments that were not a full match wait here, submission sealed and number
masked, until a person rejects them or retries them with corrected facts."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from sqlalchemy import select, update

from mynacard import numbers
from mynacard.context import Context
from mynacard.errors import Conflict, Forbidden, InvalidInput, NotFound
from mynacard.exchange.access import ADMIN, administers
from mynacard.exchange.agencies import open_network
from mynacard.exchange.enrolment import EnrolmentResult, upsert_person
from mynacard.exchange.hub import Network
from mynacard.exchange.model import Agency, EnrolmentDecision, LinkStatus, SubmittedFacts, decide_enrolment
from mynacard.exchange.tables import exchange_agencies, exchange_reviews
from mynacard.principal import Principal, Role
from mynacard.registry import service as registry
from mynacard.registry.model import BasicFacts, Sex
from mynacard.sealing import Sealer

__all__ = ["ReviewView", "decide_review", "list_reviews"]


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


def _submitted_from(data: dict[str, Any]) -> SubmittedFacts:
    facts = BasicFacts(data["family_name"], data["given_name"], date.fromisoformat(data["birth_date"]),
                       Sex(data["sex"]), data["address"])
    return SubmittedFacts(facts, data.get("family_kana"), data.get("given_kana"))


def _resident(conn: Any, resident_id: int | None) -> Any:
    return None if resident_id is None else registry.get_residents(conn, [resident_id]).get(resident_id)


def _sealed_submission(sealer: Sealer, row: Any) -> dict[str, Any]:
    context = f"exchange_reviews:{row.agency_id}:{row.local_ref}".encode()
    data: dict[str, Any] = json.loads(sealer.open(row.sealed_submission, context))
    return data


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
        principal.require(*ADMIN)
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
    with open_network(ctx, now) as net:
        query = select(exchange_reviews).where(exchange_reviews.c.id == review_id)
        if net.conn.dialect.name == "postgresql":
            query = query.with_for_update()
        row = net.conn.execute(query).first()
        if row is None:
            raise NotFound("no such review")
        agency = net.agency(row.agency_id)
        if principal.role is Role.AGENCY:
            raise Forbidden("a review is decided by a person, not by the agency's system")
        administers(principal, agency)
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
    upsert_person(net, agency, ref, number, sub, overwrite=True)
    if by_ref is not None:
        net.set_link_status(by_ref, LinkStatus.ACTIVE, actor, "full match after review", "reinstated")
        return EnrolmentResult(ref, "already_linked", by_ref.code)
    link = net.issue_link(agency, resident.id, resident.resident_code, ref, actor, "full match after review")
    return EnrolmentResult(ref, "linked", link.code)
