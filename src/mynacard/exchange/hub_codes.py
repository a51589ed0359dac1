"""Codes and links (符号管理) in the hub: which agency code stands for which person, issuing fresh codes,
suspending and withdrawing them, and each person's Mynaportal code (開示システム用符号)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, and_, bindparam, func, insert, or_, select, update

from mynacard.errors import Conflict, NotFound
from mynacard.exchange.hub_wire import NetworkBase, insert_ignore
from mynacard.exchange.model import PORTAL_AGENCY_ID, Agency, AgencyKind, LinkStatus, derive_agency_code
from mynacard.exchange.tables import exchange_link_events, exchange_links
from mynacard.registry import service as registry

__all__ = ["Codes", "Link", "resident_codes"]


# Statements on the hot path, built once and run with bind parameters.
_LINK_BY_CODE = select(exchange_links).where(exchange_links.c.code == bindparam("code"))
_PERSON_LINKS = select(exchange_links).where(
    exchange_links.c.resident_id == bindparam("rid"),
    exchange_links.c.agency_id.in_(bindparam("agencies", expanding=True)),
    exchange_links.c.status != LinkStatus.UNLINKED.value)
_AROUND_CODE = select(exchange_links).where(
    exchange_links.c.resident_id == select(exchange_links.c.resident_id).where(
        exchange_links.c.code == bindparam("code")).scalar_subquery(),
    or_(exchange_links.c.code == bindparam("code"),
        and_(exchange_links.c.agency_id.in_(bindparam("agencies", expanding=True)),
             exchange_links.c.status != LinkStatus.UNLINKED.value)))


@dataclass(frozen=True)
class Link:
    """One agency's code for one person."""

    id: int
    agency_id: str
    code: str
    resident_id: int
    generation: int
    local_ref: str
    status: LinkStatus


def _link(row: Any) -> Link:
    return Link(row.id, row.agency_id, row.code, row.resident_id, row.generation, row.local_ref,
                LinkStatus(row.status))


class Codes(NetworkBase):
    """The hub's part of :class:`~mynacard.exchange.hub.Network` that keeps agency codes and links."""

    def link_by_code(self, code: str) -> Link | None:
        row = self.conn.execute(_LINK_BY_CODE, {"code": code}).first()
        return None if row is None else _link(row)

    def links_around(self, code: str, agency_ids: Sequence[str]) -> tuple[Link | None, dict[str, Link]]:
        """The link behind ``code`` and the same person's live links at ``agency_ids``, in one statement."""
        own: Link | None = None
        others: dict[str, Link] = {}
        for row in self.conn.execute(_AROUND_CODE, {"code": code, "agencies": list(agency_ids)}):
            link = _link(row)
            if link.code == code:
                own = link
            if link.status is not LinkStatus.UNLINKED and link.agency_id in agency_ids:
                others[link.agency_id] = link
        if own is not None and PORTAL_AGENCY_ID in others:
            self._portal_codes[own.resident_id] = others[PORTAL_AGENCY_ID].code
        return own, others

    def person_links(self, resident_id: int, agency_ids: Sequence[str]) -> dict[str, Link]:
        """The person's live links at the given agencies, in one statement."""
        rows = self.conn.execute(_PERSON_LINKS, {"rid": resident_id, "agencies": list(agency_ids)})
        links = {row.agency_id: _link(row) for row in rows}
        portal = links.get(PORTAL_AGENCY_ID)
        if portal is not None:
            self._portal_codes[resident_id] = portal.code
        return links

    def live_link(self, agency_id: str, *, resident_id: int | None = None,
                  local_ref: str | None = None, for_update: bool = False) -> Link | None:
        """The active or suspended link of an agency to a person (by resident or by the agency's record)."""
        query = select(exchange_links).where(exchange_links.c.agency_id == agency_id,
                                             exchange_links.c.status != LinkStatus.UNLINKED.value)
        if resident_id is not None:
            query = query.where(exchange_links.c.resident_id == resident_id)
        if local_ref is not None:
            query = query.where(exchange_links.c.local_ref == local_ref)
        if for_update and self.conn.dialect.name == "postgresql":
            query = query.with_for_update()
        row = self.conn.execute(query).first()
        return None if row is None else _link(row)

    def live_links(self, agency_id: str, *, local_refs: Sequence[str] = (),
                   resident_ids: Sequence[int] = ()) -> tuple[dict[str, Link], dict[int, Link]]:
        """Live links of an agency by its records and by persons, in two statements (for batches)."""
        live = (exchange_links.c.agency_id == agency_id, exchange_links.c.status != LinkStatus.UNLINKED.value)
        by_ref: dict[str, Link] = {}
        by_person: dict[int, Link] = {}
        refs, ids = sorted(set(local_refs)), sorted(set(resident_ids))
        for i in range(0, len(refs), 2000):
            for row in self.conn.execute(select(exchange_links).where(
                    *live, exchange_links.c.local_ref.in_(refs[i:i + 2000]))):
                by_ref[row.local_ref] = _link(row)
        for i in range(0, len(ids), 2000):
            for row in self.conn.execute(select(exchange_links).where(
                    *live, exchange_links.c.resident_id.in_(ids[i:i + 2000]))):
                by_person[row.resident_id] = _link(row)
        return by_ref, by_person

    def issue_links(self, agency: Agency, people: Sequence[tuple[int, str, str]], actor: str,
                    reason: str) -> list[Link]:
        """Issue fresh codes for many (resident id, resident code, local ref) at once; one person once."""
        if not people:
            return []
        ids = sorted({p[0] for p in people})
        links = exchange_links.c
        nxt: dict[int, int] = {}
        for i in range(0, len(ids), 2000):
            nxt.update((rid, int(g)) for rid, g in self.conn.execute(
                select(links.resident_id, func.max(links.generation) + 1).where(
                    links.agency_id == agency.id, links.resident_id.in_(ids[i:i + 2000]))
                .group_by(links.resident_id)))
        rows: list[dict[str, Any]] = [
            {"agency_id": agency.id, "resident_id": rid, "generation": nxt.get(rid, 0), "local_ref": ref,
             "code": derive_agency_code(self.hub.code_root, agency.id, code, nxt.get(rid, 0)),
             "status": LinkStatus.ACTIVE.value, "linked_at": self.now, "changed_at": self.now}
            for rid, code, ref in people]
        link_ids = list(self.conn.execute(
            insert(exchange_links).returning(exchange_links.c.id, sort_by_parameter_order=True), rows).scalars())
        self.conn.execute(insert(exchange_link_events), [
            {"link_id": lid, "kind": "linked", "from_status": None, "to_status": LinkStatus.ACTIVE.value,
             "actor": actor, "at": self.now, "reason": reason} for lid in link_ids])
        if agency.kind is not AgencyKind.PORTAL:
            persons = self.store(agency.id).persons
            self.conn.execute(update(persons).where(persons.c.local_ref == bindparam("ref")).values(
                code=bindparam("new_code"), link_status=LinkStatus.ACTIVE.value, updated_at=self.now),
                [{"ref": r["local_ref"], "new_code": r["code"]} for r in rows])
        return [Link(lid, agency.id, r["code"], r["resident_id"], r["generation"], r["local_ref"], LinkStatus.ACTIVE)
                for lid, r in zip(link_ids, rows, strict=True)]

    def issue_link(self, agency: Agency, resident_id: int, resident_code: str, local_ref: str, actor: str,
                   reason: str) -> Link:
        """Issue the agency a fresh code for the person (never one that was issued before)."""
        links = exchange_links.c
        generation = self.conn.execute(
            select(func.coalesce(func.max(links.generation) + 1, 0)).where(
                links.agency_id == agency.id, links.resident_id == resident_id)).scalar_one()
        code = derive_agency_code(self.hub.code_root, agency.id, resident_code, int(generation))
        link_id = self.conn.execute(insert(exchange_links).values(
            agency_id=agency.id, code=code, resident_id=resident_id, generation=generation,
            local_ref=local_ref, status=LinkStatus.ACTIVE.value, linked_at=self.now, changed_at=self.now)
            .returning(exchange_links.c.id)).scalar_one()
        self._link_event(link_id, "linked", None, LinkStatus.ACTIVE, actor, reason)
        if agency.kind is not AgencyKind.PORTAL:
            persons = self.store(agency.id).persons
            self.conn.execute(update(persons).where(persons.c.local_ref == local_ref).values(
                code=code, link_status=LinkStatus.ACTIVE.value, updated_at=self.now))
        return Link(link_id, agency.id, code, resident_id, int(generation), local_ref, LinkStatus.ACTIVE)

    def set_link_status(self, link: Link, status: LinkStatus, actor: str, reason: str, kind: str) -> Link:
        if link.status is status:
            return link
        self.conn.execute(update(exchange_links).where(exchange_links.c.id == link.id).values(
            status=status.value, changed_at=self.now))
        self._link_event(link.id, kind, link.status, status, actor, reason)
        agency = self.agency(link.agency_id)
        if agency.kind is not AgencyKind.PORTAL:
            persons = self.store(agency.id).persons
            self.conn.execute(update(persons).where(persons.c.local_ref == link.local_ref).values(
                code=None if status is LinkStatus.UNLINKED else link.code, link_status=status.value,
                updated_at=self.now))
        return Link(link.id, link.agency_id, link.code, link.resident_id, link.generation, link.local_ref,
                    status)

    def _link_event(self, link_id: int, kind: str, before: LinkStatus | None, after: LinkStatus, actor: str,
                    reason: str) -> None:
        self.conn.execute(insert(exchange_link_events).values(
            link_id=link_id, kind=kind, from_status=None if before is None else before.value,
            to_status=after.value, actor=actor, at=self.now, reason=reason))

    def portal_code(self, resident_id: int) -> str:
        """The person's Mynaportal code (開示システム用符号), issued on first need."""
        if resident_id in self._portal_codes:
            return self._portal_codes[resident_id]
        link = self.live_link(PORTAL_AGENCY_ID, resident_id=resident_id)
        if link is None:
            people = registry.get_residents(self.conn, [resident_id])
            if resident_id not in people:
                raise NotFound("no such resident")
            code = derive_agency_code(self.hub.code_root, PORTAL_AGENCY_ID,
                                      people[resident_id].resident_code, 0)
            inserted = insert_ignore(self.conn, exchange_links, {
                "agency_id": PORTAL_AGENCY_ID, "code": code, "resident_id": resident_id, "generation": 0,
                "local_ref": code, "status": LinkStatus.ACTIVE.value, "linked_at": self.now,
                "changed_at": self.now})
            link = self.live_link(PORTAL_AGENCY_ID, resident_id=resident_id)
            if link is None:
                raise RuntimeError("the portal link could not be created")
            if inserted:
                self._link_event(link.id, "linked", None, LinkStatus.ACTIVE, "hub", "Mynaportal code")
        self._portal_codes[resident_id] = link.code
        return link.code

    def _requester_code(self, agency: Agency, local_ref: str) -> str:
        row = self.conn.execute(self.store(agency.id).code_of_ref, {"ref": local_ref}).first()
        if row is None:
            raise NotFound(f"agency {agency.id} holds no person {local_ref!r}")
        if row.code is None:
            raise Conflict(f"person {local_ref!r} of {agency.id} has no code: enrol first (a full match)")
        if row.link_status != LinkStatus.ACTIVE.value:
            raise Conflict(f"the link of {local_ref!r} is {row.link_status} until a person reviews it")
        return str(row.code)


def resident_codes(conn: Connection, resident_ids: Sequence[int]) -> dict[int, str]:
    return {rid: r.resident_code for rid, r in registry.get_residents(conn, resident_ids).items()}
