"""Enrolment and codes (符号の取得): an agency's persons are linked to the registry only on a full match of
the basic four facts; anything less opens a review (:mod:`~mynacard.exchange.reviews`)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

from sqlalchemy import bindparam, insert, select, update

from mynacard import numbers
from mynacard.context import Context
from mynacard.errors import Forbidden, InvalidInput
from mynacard.exchange.access import acting_for, check_local_ref
from mynacard.exchange.agencies import open_network
from mynacard.exchange.envelope import canonical
from mynacard.exchange.hub import Network
from mynacard.exchange.model import Agency, AgencyKind, EnrolmentDecision, LinkStatus, SubmittedFacts, decide_enrolment
from mynacard.exchange.tables import exchange_reviews
from mynacard.principal import Principal
from mynacard.registry import service as registry
from mynacard.sealing import Sealer

__all__ = ["EnrolmentRequest", "EnrolmentResult", "enrol", "enrol_batch", "open_reviews", "upsert_person",
           "validate_enrolment"]


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


def validate_enrolment(requests: Sequence[EnrolmentRequest]) -> list[tuple[str, str, SubmittedFacts]]:
    problems: list[str] = []
    out = []
    seen: set[str] = set()
    for i, r in enumerate(requests):
        label = f"#{i + 1}"
        try:
            ref = check_local_ref(r.local_ref)
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


def _person_values(net: Network, persons: Any, ref: str, number: str, sub: SubmittedFacts) -> dict[str, Any]:
    sealer = Sealer(net.ctx.settings.data_key)
    return {"family_name": sub.facts.family_name, "given_name": sub.facts.given_name,
            "family_kana": sub.family_kana, "given_kana": sub.given_kana,
            "birth_date": sub.facts.birth_date, "sex": sub.facts.sex.value, "address": sub.facts.address,
            "updated_at": net.now,
            "sealed_number": sealer.seal(number.encode(), f"{persons.name}:{ref}".encode())}


def upsert_person(net: Network, agency: Agency, ref: str, number: str, sub: SubmittedFacts,
                  overwrite: bool) -> None:
    persons = net.store(agency.id).persons
    values = _person_values(net, persons, ref, number, sub)
    exists = net.conn.execute(select(persons.c.local_ref).where(persons.c.local_ref == ref)).first()
    if exists is None:
        net.conn.execute(insert(persons).values(local_ref=ref, **values))
    elif overwrite:
        net.conn.execute(update(persons).where(persons.c.local_ref == ref).values(**values))


def enrol_batch(net: Network, agency: Agency, actor: str, items: Sequence[tuple[str, str, SubmittedFacts]],
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
    review_ids = open_reviews(net, agency.id, [(items[i], reasons, rid) for i, reasons, rid in to_review], source)
    for (i, reasons, _), review_id in zip(to_review, review_ids, strict=True):
        results[i] = EnrolmentResult(items[i][0], "review", None, review_id, reasons)
    return [r for r in results if r is not None]


def open_reviews(net: Network, agency_id: str,
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
    digests = [str(r["request_digest"]) for r in rows]
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
        found.update((str(r["request_digest"]), int(n)) for r, n in zip(fresh, new_ids, strict=True))
    return [found[d] for d in digests]


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
    acting_for(principal, agency_id)
    checked = validate_enrolment(requests)
    with open_network(ctx, now) as net:
        agency = net.agency(agency_id)
        if agency.kind is AgencyKind.PORTAL or not agency.active:
            raise Forbidden(f"agency {agency_id} cannot enrol persons")
        return enrol_batch(net, agency, principal.subject, checked, "enrolment")
