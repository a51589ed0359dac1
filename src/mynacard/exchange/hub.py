"""The hub (情報提供ネットワークシステム, コアシステム) and the agencies' hosted interface systems, working
inside one transaction of the caller.

Every hop is an envelope (:mod:`mynacard.exchange.envelope`): signed by its sender, encrypted to its
recipient.
The hub reads routing (codes, procedure, item) but never the provided data, which the provider encrypts to the
requester end to end; the requester never sees the provider's code, the provider never sees the requester's.
The individual number never travels in any of these messages. Each exchange appends one entry to the
hash-chained log, and the whole round trip — log entry, both agencies' own records — commits or rolls back
as one, so a retried request can never act twice.

Services (:mod:`mynacard.exchange.service`) open the transaction and call a :class:`Network` bound to it.
"""

from __future__ import annotations

import base64
import json
import re
import secrets
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any
from weakref import WeakKeyDictionary

from sqlalchemy import Connection, and_, bindparam, func, insert, or_, select, text, update
from sqlalchemy.dialects import postgresql, sqlite

from mynacard.context import Context, Transaction
from mynacard.db import Database, UtcDateTime
from mynacard.errors import Conflict, Forbidden, InvalidInput, NotFound
from mynacard.exchange import keys as keyring
from mynacard.exchange.envelope import EnvelopeError, Opened, PartyKeys, canonical, open_envelope, seal
from mynacard.exchange.model import (
    CHAIN_GENESIS,
    CHECKPOINT_EVERY,
    PORTAL_AGENCY_ID,
    Agency,
    AgencyCode,
    AgencyId,
    AgencyKind,
    AgencyStatus,
    ExchangeKind,
    ExchangeStatus,
    InfoItem,
    LinkStatus,
    LogEntry,
    Procedure,
    chain_hash,
    chain_of,
    derive_agency_code,
    find_permission,
)
from mynacard.exchange.store import AgencyStore, store_for
from mynacard.exchange.tables import (
    exchange_agencies,
    exchange_link_events,
    exchange_links,
    exchange_log,
    exchange_log_checkpoints,
    exchange_log_head,
    exchange_log_seq,
    exchange_reply_handles,
)
from mynacard.registry import service as registry

__all__ = [
    "Delivery",
    "Link",
    "Network",
    "QueryOutcome",
    "SelfInformationPart",
    "agency_from_row",
    "checkpoint_message",
    "head_message",
    "wiretap",
]


# Statements on the hot path, built once and run with bind parameters.
_AGENCY = select(exchange_agencies).where(exchange_agencies.c.id == bindparam("id"))
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
_LOGGED = select(exchange_log).where(exchange_log.c.requester == bindparam("requester"),
                                     exchange_log.c.message_id == bindparam("mid")).order_by(exchange_log.c.seq)
_FRESHNESS = timedelta(minutes=5)
_MESSAGE_ID = re.compile(r"[A-Za-z0-9._:-]{1,64}")

_HEAD = select(exchange_log_head.c.chain_seq, exchange_log_head.c.row_hash).where(
    exchange_log_head.c.chain == bindparam("chain"))
_HEAD_LOCKED = _HEAD.with_for_update()
_NEXT_SEQ_PG = select(exchange_log_seq.next_value())
_NEXT_SEQ_SQLITE = select(func.coalesce(func.max(exchange_log.c.seq), 0) + 1)
_ADD_LOG = insert(exchange_log)
_ADD_LOG_AND_MOVE_HEAD_PG = text("""
    WITH entry AS (
        INSERT INTO exchange_log (seq, chain, chain_seq, kind, message_id, requester, provider, procedure, item,
                                  subject_code, status, reason, requested_at, completed_at, prev_hash, row_hash)
        VALUES (:seq, :chain, :chain_seq, :kind, :message_id, :requester, :provider, :procedure, :item,
                :subject_code, :status, :reason, :requested_at, :completed_at, :prev_hash, :row_hash)
        RETURNING seq)
    UPDATE exchange_log_head SET chain_seq = :h_pos, row_hash = :h_hash, signature = :h_sig, updated_at = :h_at
    WHERE chain = :chain AND EXISTS (SELECT 1 FROM entry)""").bindparams(
    bindparam("requested_at", type_=UtcDateTime()), bindparam("completed_at", type_=UtcDateTime()),
    bindparam("h_at", type_=UtcDateTime()))
_MOVE_HEAD = update(exchange_log_head).where(exchange_log_head.c.chain == bindparam("h_chain")).values(
    chain_seq=bindparam("h_pos"), row_hash=bindparam("h_hash"), signature=bindparam("h_sig"),
    updated_at=bindparam("h_at"))

Tap = Callable[[str, str, bytes], None]
_taps: WeakKeyDictionary[Database, list[Tap]] = WeakKeyDictionary()


@contextmanager
def wiretap(ctx: Context) -> Iterator[list[tuple[str, str, bytes]]]:
    """Record every envelope that crosses the network of ``ctx`` while the block runs: (sender, recipient,
    bytes). For audits and tests (the scan that proves no individual number travels); observation only."""
    seen: list[tuple[str, str, bytes]] = []

    def tap(sender: str, recipient: str, envelope: bytes) -> None:
        seen.append((sender, recipient, envelope))

    _taps.setdefault(ctx.db, []).append(tap)
    try:
        yield seen
    finally:
        _taps[ctx.db].remove(tap)


def head_message(chain: int, position: int, row_hash: str) -> bytes:
    """What the hub signs for the head of a chain."""
    return canonical({"log": "exchange", "chain": chain, "position": position, "hash": row_hash})


def checkpoint_message(kind: str, chain: int, position: int, row_hash: str) -> bytes:
    """What the hub signs for a checkpoint or a retention anchor of a chain."""
    return canonical({"log": "exchange", "checkpoint": kind, "chain": chain, "position": position,
                      "hash": row_hash})


def agency_from_row(row: Any) -> Agency:
    return Agency(AgencyId(row.id), row.name, row.name_en, AgencyKind(row.kind), row.municipality_code,
                  AgencyStatus(row.status), row.key_version, bytes(row.sign_public_key),
                  bytes(row.enc_public_key))


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


@dataclass(frozen=True)
class QueryOutcome:
    """What the requesting agency learns from one query."""

    message_id: str
    seq: int
    """The log entry of this exchange."""
    status: ExchangeStatus
    reason: str | None
    """The permitted-exchange row that allowed it, or why it was refused."""
    data: dict[str, Any] | None
    updated_at: str | None
    """When the provider last updated its copy of the item."""
    replayed: bool = False
    """True when this answers a retry of a message already logged."""


@dataclass(frozen=True)
class SelfInformationPart:
    """One agency's answer to a person's own-information request."""

    agency_id: str
    seq: int
    status: ExchangeStatus
    items: dict[str, dict[str, Any]]
    """item → {"data": …, "updated_at": …}."""


@dataclass(frozen=True)
class Delivery:
    """A notice or an application delivered through the hub."""

    message_id: str
    recipient: str
    seq: int
    inbox_id: int | None


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def _unb64(text: Any) -> bytes:
    if not isinstance(text, str):
        raise EnvelopeError("missing inner envelope")
    return base64.b64decode(text, validate=True)


def _insert_ignore(conn: Connection, table: Any, row: dict[str, Any]) -> bool:
    dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
    return bool(conn.execute(dialect.insert(table).values(**row).on_conflict_do_nothing()).rowcount)


def check_message_id(value: Any) -> str:
    if not isinstance(value, str) or not _MESSAGE_ID.fullmatch(value):
        raise InvalidInput("a message ID has 1–64 characters A–Z a–z 0–9 . _ : -")
    return value


def new_message_id(prefix: str) -> str:
    return f"{prefix}-{secrets.token_hex(12)}"


@dataclass
class Network:
    """The hub and every hosted interface system, inside the caller's transaction ``tx`` at time ``now``."""

    ctx: Context
    tx: Transaction
    hub: keyring.HubKeys
    now: datetime
    _agencies: dict[str, Agency | None] = field(default_factory=dict)
    _portal_codes: dict[int, str] = field(default_factory=dict)

    @property
    def conn(self) -> Connection:
        return self.tx.conn

    # --- directory and keys ------------------------------------------------------------------------------

    def find_agency(self, agency_id: str) -> Agency | None:
        if agency_id not in self._agencies:
            row = self.conn.execute(_AGENCY, {"id": agency_id}).first()
            self._agencies[agency_id] = None if row is None else agency_from_row(row)
        return self._agencies[agency_id]

    def agency(self, agency_id: str) -> Agency:
        found = self.find_agency(agency_id)
        if found is None:
            raise NotFound(f"no agency {agency_id!r} on the network")
        return found

    def store(self, agency_id: str) -> AgencyStore:
        return store_for(agency_id, self.conn.dialect.name)

    def keys_of(self, agency: Agency) -> PartyKeys:
        return keyring.agency_keys(self.ctx, self.conn, self.store(agency.id), agency.key_version,
                                   agency.sign_public_key)

    def _sign_public(self, sender: str) -> bytes | None:
        if sender == keyring.HUB_ID:
            return self.hub.party.sign_public
        found = self.find_agency(sender)
        return found.sign_public_key if found is not None and found.active else None

    def _enc_public(self, recipient: str) -> bytes:
        if recipient == keyring.HUB_ID:
            return self.hub.party.enc_public
        return self.agency(recipient).enc_public_key

    # --- the wire ------------------------------------------------------------------------------------------

    def send(self, sender: str, sender_keys: PartyKeys, recipient: str, body: dict[str, Any]) -> bytes:
        envelope = seal(sender, sender_keys, recipient, self._enc_public(recipient), body)
        for tap in _taps.get(self.ctx.db, ()):
            tap(sender, recipient, envelope)
        return envelope

    def _open(self, envelope: bytes, recipient: str, keys: PartyKeys, expected_sender: str | None,
              expected_type: str) -> Opened:
        opened = open_envelope(envelope, recipient, keys, self._sign_public)
        if expected_sender is not None and opened.sender != expected_sender:
            raise EnvelopeError(f"expected a message from {expected_sender!r}, not {opened.sender!r}")
        if opened.body.get("type") != expected_type:
            raise EnvelopeError(f"expected a {expected_type!r} message")
        return opened

    def hub_open(self, envelope: bytes, expected_type: str, expected_sender: str | None = None) -> Opened:
        """The hub opens a message from an agency; anything wrong is refused as invalid input."""
        try:
            opened = self._open(envelope, keyring.HUB_ID, self.hub.party, expected_sender, expected_type)
        except EnvelopeError as exc:
            raise InvalidInput(f"message refused by the hub: {exc}") from None
        sent_at = opened.body.get("sent_at")
        try:
            moment = datetime.fromisoformat(sent_at) if isinstance(sent_at, str) else None
        except ValueError:
            moment = None
        if moment is None or moment.tzinfo is None or abs(moment - self.now) > _FRESHNESS:
            raise InvalidInput("message refused by the hub: missing or stale sent_at")
        return opened

    def party_open(self, agency: Agency, envelope: bytes, expected_sender: str, expected_type: str) -> Opened:
        """An agency's interface system opens a message addressed to it."""
        return self._open(envelope, agency.id, self.keys_of(agency), expected_sender, expected_type)

    def hub_send(self, recipient: str, body: dict[str, Any]) -> bytes:
        return self.send(keyring.HUB_ID, self.hub.party, recipient, {**body, "sent_at": self.now.isoformat()})

    # --- codes and links (符号管理) ------------------------------------------------------------------------

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
        rows = [{"agency_id": agency.id, "resident_id": rid, "generation": nxt.get(rid, 0), "local_ref": ref,
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
            inserted = _insert_ignore(self.conn, exchange_links, {
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

    # --- the log (情報提供等記録) ---------------------------------------------------------------------------

    def _lock_head(self, chain: int) -> tuple[int, str]:
        query = _HEAD_LOCKED if self.conn.dialect.name == "postgresql" else _HEAD
        row = self.conn.execute(query, {"chain": chain}).first()
        if row is None:
            _insert_ignore(self.conn, exchange_log_head, {"chain": chain, "chain_seq": 0,
                                                          "row_hash": CHAIN_GENESIS, "updated_at": self.now})
            row = self.conn.execute(query, {"chain": chain}).one()
        return int(row.chain_seq), str(row.row_hash)

    def append_log(self, kind: ExchangeKind, message_id: str, requester: str, provider: str | None,
                   procedure: str | None, item: str | None, subject_code: str | None, status: ExchangeStatus,
                   reason: str | None) -> int:
        """Append one entry to the person's chain (and sign its new head); returns the entry's number.

        Only appenders to the same chain wait for one another (the chain's head row is locked until commit);
        the entry number is taken under that lock, so within a chain numbers and positions rise together.
        """
        chain = chain_of(subject_code)
        last_pos, last_hash = self._lock_head(chain)
        pg = self.conn.dialect.name == "postgresql"
        seq = int(self.conn.execute(_NEXT_SEQ_PG if pg else _NEXT_SEQ_SQLITE).scalar_one())
        entry = LogEntry(seq, chain, last_pos + 1, kind, message_id, requester, provider, procedure, item,
                         subject_code, status, reason, self.now, self.now)
        row_hash = chain_hash(last_hash, entry)
        values = {
            "seq": seq, "chain": chain, "chain_seq": entry.chain_seq, "kind": kind.value, "message_id": message_id,
            "requester": requester, "provider": provider, "procedure": procedure, "item": item,
            "subject_code": subject_code, "status": status.value, "reason": reason, "requested_at": self.now,
            "completed_at": self.now, "prev_hash": last_hash, "row_hash": row_hash}
        head = {"chain": chain, "h_pos": entry.chain_seq, "h_hash": row_hash, "h_at": self.now,
                "h_sig": self.hub.party.sign.sign(head_message(chain, entry.chain_seq, row_hash))}
        if pg:  # one round trip instead of two
            self.conn.execute(_ADD_LOG_AND_MOVE_HEAD_PG, {**values, **head})
        else:
            self.conn.execute(_ADD_LOG, values)
            self.conn.execute(_MOVE_HEAD, {**head, "h_chain": chain})
        if entry.chain_seq % CHECKPOINT_EVERY == 0:
            self.conn.execute(insert(exchange_log_checkpoints).values(
                chain=chain, chain_seq=entry.chain_seq, seq=seq, kind="checkpoint", row_hash=row_hash, at=self.now,
                signature=self.hub.party.sign.sign(checkpoint_message("checkpoint", chain, entry.chain_seq,
                                                                      row_hash))))
        return seq

    def _logged(self, requester: str, message_id: str) -> list[Any]:
        return list(self.conn.execute(_LOGGED, {"requester": requester, "mid": message_id}))

    def _own_record(self, agency: Agency, message_id: str, role: str, counterpart: str | None,
                    kind: ExchangeKind, procedure: str | None, item: str | None, local_ref: str | None,
                    status: ExchangeStatus, seq: int | None) -> None:
        """The agency's own record of the exchange (番号法 §23), in its own store; a replay adds nothing."""
        self.conn.execute(self.store(agency.id).add_exchange, {
            "message_id": message_id, "role": role, "counterpart": counterpart, "kind": kind.value,
            "procedure": procedure, "item": item, "local_ref": local_ref, "status": status.value,
            "log_seq": seq, "at": self.now})

    # --- query and provide (情報照会・情報提供) -------------------------------------------------------------

    def _requester_code(self, agency: Agency, local_ref: str) -> str:
        row = self.conn.execute(self.store(agency.id).code_of_ref, {"ref": local_ref}).first()
        if row is None:
            raise NotFound(f"agency {agency.id} holds no person {local_ref!r}")
        if row.code is None:
            raise Conflict(f"person {local_ref!r} of {agency.id} has no code: enrol first (a full match)")
        if row.link_status != LinkStatus.ACTIVE.value:
            raise Conflict(f"the link of {local_ref!r} is {row.link_status} until a person reviews it")
        return str(row.code)

    def query(self, requester: Agency, provider_id: str, procedure: str, item: str, local_ref: str,
              message_id: str) -> QueryOutcome:
        """The requester's interface system asks the hub; the hub relays to the provider and back."""
        if not requester.active:
            raise Forbidden(f"agency {requester.id} is suspended")
        code = self._requester_code(requester, local_ref)
        envelope = self.send(requester.id, self.keys_of(requester), keyring.HUB_ID, {
            "type": "query", "message_id": message_id, "sent_at": self.now.isoformat(),
            "provider": provider_id, "procedure": procedure, "item": item, "code": code})
        answer = self.hub_handle_query(envelope)
        reply = self.party_open(requester, answer, keyring.HUB_ID, "query_reply").body
        status = ExchangeStatus(reply["status"])
        data: dict[str, Any] | None = None
        updated_at: str | None = None
        if reply.get("inner"):
            inner = self.party_open(requester, _unb64(reply["inner"]), provider_id, "provision").body
            if inner.get("message_id") != message_id or inner.get("item") != item:
                raise EnvelopeError("the provision does not answer this query")
            data, updated_at = inner.get("data"), inner.get("updated_at")
        self._own_record(requester, message_id, "requester", provider_id, ExchangeKind.QUERY, procedure, item,
                         local_ref, status, int(reply["seq"]))
        return QueryOutcome(message_id, int(reply["seq"]), status, reply.get("reason"), data, updated_at,
                            bool(reply.get("replayed")))

    def hub_handle_query(self, envelope: bytes) -> bytes:
        """Check the query against the permitted-exchange table, translate the code, relay, log, answer."""
        opened = self.hub_open(envelope, "query")
        requester = self.agency(opened.sender)
        body = opened.body
        message_id = check_message_id(body.get("message_id"))
        try:
            provider_id = AgencyId(body.get("provider"))
            procedure = Procedure(body.get("procedure"))
            item = InfoItem(body.get("item"))
            code = AgencyCode(body.get("code"))
        except ValueError as exc:
            raise InvalidInput(f"malformed query: {exc}") from None
        earlier = self._logged(requester.id, message_id)
        if earlier:
            return self._replay_query(requester, earlier[0], provider_id, procedure, item, code)
        link, person = self.links_around(code, [provider_id, PORTAL_AGENCY_ID])
        subject = None if link is None else self.portal_code(link.resident_id)
        provider = self.find_agency(provider_id)

        def answer(status: ExchangeStatus, reason: str | None, inner: str | None = None) -> bytes:
            seq = self.append_log(ExchangeKind.QUERY, message_id, requester.id, provider_id, procedure.value,
                                  item.value, subject, status, reason)
            return self.hub_send(requester.id, {"type": "query_reply", "message_id": message_id, "seq": seq,
                                                "status": status.value, "reason": reason, "inner": inner})

        if link is None or link.agency_id != requester.id or link.status is not LinkStatus.ACTIVE:
            return answer(ExchangeStatus.REFUSED, "unknown_code: not an active code of the requester")
        if provider is None or not provider.active:
            return answer(ExchangeStatus.REFUSED, "provider_unavailable: no such active agency")
        permission = find_permission(requester.kind, procedure, provider.kind, item)
        if permission is None:
            return answer(ExchangeStatus.REFUSED, "not_permitted: not in the permitted table (別表第二)")
        provider_link = person.get(provider.id)
        if provider_link is None or provider_link.status is not LinkStatus.ACTIVE:
            return answer(ExchangeStatus.NOT_ENROLLED, permission.row)
        status, inner = self._relay_to_provider(requester, provider, message_id, procedure, item,
                                                provider_link.code)
        return answer(status, permission.row, inner)

    def _relay_to_provider(self, requester: Agency, provider: Agency, message_id: str, procedure: Procedure,
                           item: InfoItem, provider_code: str) -> tuple[ExchangeStatus, str | None]:
        envelope = self.hub_send(provider.id, {
            "type": "provide", "message_id": message_id, "requester": requester.id,
            "procedure": procedure.value, "item": item.value, "code": provider_code})
        reply = self.hub_open(self.provider_handle(provider, envelope), "provide_reply", provider.id).body
        if reply.get("message_id") != message_id:
            raise InvalidInput("the provider answered another message")
        return ExchangeStatus(reply["status"]), reply.get("inner")

    def _replay_query(self, requester: Agency, row: Any, provider_id: str, procedure: Procedure,
                      item: InfoItem, code: str) -> bytes:
        """A retry of a logged message: the same answer, fetched again, and no second log entry."""
        link = self.link_by_code(code)
        same = (row.provider == provider_id and row.procedure == procedure.value and row.item == item.value
                and row.kind == ExchangeKind.QUERY.value
                and (row.subject_code is None) == (link is None)
                and (link is None or self.portal_code(link.resident_id) == row.subject_code))
        if not same:
            raise Conflict(f"message ID {row.message_id!r} was already used for a different request")
        status = ExchangeStatus(row.status)
        inner = None
        if status is ExchangeStatus.PROVIDED and link is not None:
            provider = self.find_agency(provider_id)
            provider_link = None if provider is None else self.live_link(provider.id,
                                                                          resident_id=link.resident_id)
            if provider is not None and provider_link and provider_link.status is LinkStatus.ACTIVE:
                status, inner = self._relay_to_provider(requester, provider, row.message_id, procedure, item,
                                                        provider_link.code)
        return self.hub_send(requester.id, {
            "type": "query_reply", "message_id": row.message_id, "seq": row.seq, "status": status.value,
            "reason": row.reason, "inner": inner, "replayed": True})

    def provider_handle(self, provider: Agency, envelope: bytes) -> bytes:
        """The provider's interface system answers from its copies (副本), encrypted to the requester."""
        body = self.party_open(provider, envelope, keyring.HUB_ID, "provide").body
        message_id, requester_id = body["message_id"], body["requester"]
        requester = self.agency(requester_id)
        procedure, item = Procedure(body["procedure"]), InfoItem(body["item"])
        store = self.store(provider.id)
        found = self.conn.execute(store.ref_and_record, {"code": body["code"], "item": item.value}).first()
        local_ref = None if found is None else found.local_ref
        data: dict[str, Any] | None = None
        updated_at: str | None = None
        if find_permission(requester.kind, procedure, provider.kind, item) is None:
            status = ExchangeStatus.REFUSED  # the provider checks the table too (defence in depth)
        elif local_ref is None:
            status = ExchangeStatus.NOT_ENROLLED
        else:
            if found is None or found.data is None:
                status = ExchangeStatus.NO_RECORD
            else:
                status = ExchangeStatus.PROVIDED
                data, updated_at = json.loads(found.data), found.updated_at.isoformat()
        inner = self.send(provider.id, self.keys_of(provider), requester.id, {
            "type": "provision", "message_id": message_id, "procedure": procedure.value, "item": item.value,
            "status": status.value, "data": data, "updated_at": updated_at})
        self._own_record(provider, message_id, "provider", requester.id, ExchangeKind.QUERY, procedure.value,
                         item.value, local_ref, status, None)
        return self.send(provider.id, self.keys_of(provider), keyring.HUB_ID, {
            "type": "provide_reply", "message_id": message_id, "sent_at": self.now.isoformat(),
            "status": status.value, "inner": _b64(inner)})

    # --- own information (自己情報提供) for Mynaportal ------------------------------------------------------

    def self_information(self, resident_id: int, message_id: str) -> list[SelfInformationPart]:
        """Mynaportal asks every agency holding the person for the person's own records."""
        portal = self.agency(PORTAL_AGENCY_ID)
        code = self.portal_code(resident_id)
        envelope = self.send(portal.id, self.keys_of(portal), keyring.HUB_ID, {
            "type": "self_information", "message_id": message_id, "sent_at": self.now.isoformat(),
            "code": code})
        reply = self.party_open(portal, self.hub_handle_self_information(envelope), keyring.HUB_ID,
                                "self_information_reply").body
        parts = []
        for part in reply["parts"]:
            items: dict[str, dict[str, Any]] = {}
            if part.get("inner"):
                inner = self.party_open(portal, _unb64(part["inner"]), part["agency"], "disclosure").body
                if inner.get("message_id") != message_id:
                    raise EnvelopeError("the disclosure does not answer this request")
                items = inner["items"]
            parts.append(SelfInformationPart(part["agency"], int(part["seq"]), ExchangeStatus(part["status"]),
                                             items))
        return parts

    def hub_handle_self_information(self, envelope: bytes) -> bytes:
        opened = self.hub_open(envelope, "self_information", PORTAL_AGENCY_ID)
        message_id = check_message_id(opened.body.get("message_id"))
        link = self.link_by_code(str(opened.body.get("code")))
        if link is None or link.agency_id != PORTAL_AGENCY_ID or link.status is not LinkStatus.ACTIVE:
            raise InvalidInput("unknown Mynaportal code")
        if self._logged(PORTAL_AGENCY_ID, message_id):
            raise Conflict(f"message ID {message_id!r} was already used")
        holders = self.conn.execute(select(exchange_links.c.agency_id, exchange_links.c.code).where(
            exchange_links.c.resident_id == link.resident_id,
            exchange_links.c.status == LinkStatus.ACTIVE.value,
            exchange_links.c.agency_id != PORTAL_AGENCY_ID).order_by(exchange_links.c.agency_id)).all()
        parts = []
        for agency_id, provider_code in holders:
            provider = self.agency(agency_id)
            if not provider.active:
                continue
            request = self.hub_send(provider.id, {"type": "disclose", "message_id": message_id,
                                                  "code": provider_code})
            answer = self.provider_disclose(provider, request)
            reply = self.hub_open(answer, "disclose_reply", provider.id).body
            status = ExchangeStatus(reply["status"])
            seq = self.append_log(ExchangeKind.SELF_INFORMATION, message_id, PORTAL_AGENCY_ID, provider.id,
                                  None, None, link.code, status, "自己情報提供")
            parts.append({"agency": provider.id, "seq": seq, "status": status.value,
                          "inner": reply.get("inner")})
        return self.hub_send(PORTAL_AGENCY_ID, {"type": "self_information_reply", "message_id": message_id,
                                                "parts": parts})

    def provider_disclose(self, provider: Agency, envelope: bytes) -> bytes:
        body = self.party_open(provider, envelope, keyring.HUB_ID, "disclose").body
        store = self.store(provider.id)
        local_ref = self.conn.execute(select(store.persons.c.local_ref).where(
            store.persons.c.code == body["code"],
            store.persons.c.link_status == LinkStatus.ACTIVE.value)).scalar()
        items: dict[str, dict[str, Any]] = {}
        if local_ref is not None:
            for r in self.conn.execute(select(store.records).where(store.records.c.local_ref == local_ref)
                                       .order_by(store.records.c.item)):
                items[r.item] = {"data": json.loads(r.data), "updated_at": r.updated_at.isoformat()}
        status = (ExchangeStatus.NOT_ENROLLED if local_ref is None
                  else ExchangeStatus.PROVIDED if items else ExchangeStatus.NO_RECORD)
        inner = self.send(provider.id, self.keys_of(provider), PORTAL_AGENCY_ID, {
            "type": "disclosure", "message_id": body["message_id"], "items": items})
        self._own_record(provider, body["message_id"], "provider", PORTAL_AGENCY_ID,
                         ExchangeKind.SELF_INFORMATION, None, None, local_ref, status, None)
        return self.send(provider.id, self.keys_of(provider), keyring.HUB_ID, {
            "type": "disclose_reply", "message_id": body["message_id"], "sent_at": self.now.isoformat(),
            "status": status.value, "inner": _b64(inner)})

    # --- notices (お知らせ) ---------------------------------------------------------------------------------

    def notice(self, sender: Agency, message_id: str, title: str, body_text: str, *,
               local_ref: str | None = None, reply_handle: str | None = None,
               about: dict[str, Any] | None = None) -> Delivery:
        """An agency sends a notice to a person's Mynaportal, by its own code or an application's reply
        handle."""
        if not sender.active:
            raise Forbidden(f"agency {sender.id} is suspended")
        route: dict[str, Any] = {"reply_handle": reply_handle} if reply_handle else {
            "code": self._requester_code(sender, local_ref or "")}
        keys = self.keys_of(sender)
        inner = self.send(sender.id, keys, PORTAL_AGENCY_ID, {
            "type": "notice", "message_id": message_id, "title": title, "body": body_text, "about": about})
        envelope = self.send(sender.id, keys, keyring.HUB_ID, {
            "type": "notice", "message_id": message_id, "sent_at": self.now.isoformat(), **route,
            "inner": _b64(inner)})
        answer = self.hub_handle_notice(envelope)
        reply = self.party_open(sender, answer, keyring.HUB_ID, "delivery_receipt").body
        self._own_record(sender, message_id, "sender", PORTAL_AGENCY_ID, ExchangeKind.NOTICE, None, None,
                         local_ref, ExchangeStatus(reply["status"]), int(reply["seq"]))
        return Delivery(message_id, PORTAL_AGENCY_ID, int(reply["seq"]), None)

    def hub_handle_notice(self, envelope: bytes) -> bytes:
        opened = self.hub_open(envelope, "notice")
        sender = self.agency(opened.sender)
        message_id = check_message_id(opened.body.get("message_id"))
        earlier = self._logged(sender.id, message_id)
        if earlier:
            return self.hub_send(sender.id, {"type": "delivery_receipt", "message_id": message_id,
                                             "seq": earlier[0].seq, "status": earlier[0].status})
        if opened.body.get("reply_handle"):
            handle = self.conn.execute(select(exchange_reply_handles).where(
                exchange_reply_handles.c.handle == opened.body["reply_handle"],
                exchange_reply_handles.c.agency_id == sender.id)).first()
            if handle is None:
                raise InvalidInput("unknown reply handle")
            subject = str(handle.subject_code)
        else:
            link = self.link_by_code(str(opened.body.get("code")))
            if link is None or link.agency_id != sender.id or link.status is not LinkStatus.ACTIVE:
                raise InvalidInput("the code is not an active code of the sender")
            subject = self.portal_code(link.resident_id)
        delivery = self.hub_send(PORTAL_AGENCY_ID, {"type": "notice_delivery", "message_id": message_id,
                                                    "sender": sender.id, "code": subject,
                                                    "inner": opened.body["inner"]})
        self.inbox_receive(self.agency(PORTAL_AGENCY_ID), delivery, "notice_delivery")
        seq = self.append_log(ExchangeKind.NOTICE, message_id, sender.id, PORTAL_AGENCY_ID, None, None,
                              subject, ExchangeStatus.DELIVERED, None)
        return self.hub_send(sender.id, {"type": "delivery_receipt", "message_id": message_id, "seq": seq,
                                         "status": ExchangeStatus.DELIVERED.value})

    def inbox_receive(self, recipient: Agency, envelope: bytes, expected_type: str) -> int:
        """A recipient's interface system opens a delivery and files it in its inbox; returns the inbox id."""
        outer = self.party_open(recipient, envelope, keyring.HUB_ID, expected_type).body
        sender = str(outer["sender"])
        kind = "notice" if expected_type == "notice_delivery" else "application"
        inner = self.party_open(recipient, _unb64(outer["inner"]), sender, kind).body
        if inner.get("message_id") != outer["message_id"]:
            raise EnvelopeError("the inner message does not belong to this delivery")
        inbox = self.store(recipient.id).inbox
        local_ref = None
        if outer.get("code") and recipient.kind is not AgencyKind.PORTAL:
            persons = self.store(recipient.id).persons
            local_ref = self.conn.execute(select(persons.c.local_ref)
                                          .where(persons.c.code == outer["code"])).scalar()
        _insert_ignore(self.conn, inbox, {
            "message_id": outer["message_id"], "sender": sender, "kind": kind, "code": outer.get("code"),
            "reply_handle": outer.get("reply_handle"), "local_ref": local_ref,
            "title": str(inner.get("title") or inner.get("procedure") or "")[:200],
            "payload": json.dumps(inner, ensure_ascii=False, sort_keys=True), "status": "received",
            "received_at": self.now, "updated_at": self.now})
        return int(self.conn.execute(select(inbox.c.id).where(
            inbox.c.sender == sender, inbox.c.message_id == outer["message_id"])).scalar_one())

    # --- applications (電子申請) from Mynaportal ------------------------------------------------------------

    def application(self, resident_id: int, message_id: str, target: Agency, procedure: str,
                    form: dict[str, Any], applicant: dict[str, Any]) -> Delivery:
        """Mynaportal delivers a person's application to one agency, end-to-end encrypted to it."""
        portal = self.agency(PORTAL_AGENCY_ID)
        keys = self.keys_of(portal)
        inner = self.send(portal.id, keys, target.id, {
            "type": "application", "message_id": message_id, "procedure": procedure, "form": form,
            "applicant": applicant, "title": procedure})
        envelope = self.send(portal.id, keys, keyring.HUB_ID, {
            "type": "application", "message_id": message_id, "sent_at": self.now.isoformat(),
            "code": self.portal_code(resident_id), "agency": target.id, "procedure": procedure,
            "inner": _b64(inner)})
        reply = self.party_open(portal, self.hub_handle_application(envelope), keyring.HUB_ID,
                                "delivery_receipt").body
        return Delivery(message_id, target.id, int(reply["seq"]), reply.get("inbox_id"))

    def hub_handle_application(self, envelope: bytes) -> bytes:
        opened = self.hub_open(envelope, "application", PORTAL_AGENCY_ID)
        body = opened.body
        message_id = check_message_id(body.get("message_id"))
        link = self.link_by_code(str(body.get("code")))
        if link is None or link.agency_id != PORTAL_AGENCY_ID or link.status is not LinkStatus.ACTIVE:
            raise InvalidInput("unknown Mynaportal code")
        target = self.agency(str(body.get("agency")))
        if not target.active:
            raise Conflict(f"agency {target.id} does not accept applications now")
        earlier = [r for r in self._logged(PORTAL_AGENCY_ID, message_id) if r.provider == target.id]
        if earlier:
            return self.hub_send(PORTAL_AGENCY_ID, {"type": "delivery_receipt", "message_id": message_id,
                                                    "seq": earlier[0].seq, "inbox_id": None})
        target_link = self.live_link(target.id, resident_id=link.resident_id)
        handle = secrets.token_hex(16)
        self.conn.execute(insert(exchange_reply_handles).values(
            handle=handle, agency_id=target.id, subject_code=link.code, created_at=self.now))
        delivery = self.hub_send(target.id, {
            "type": "application_delivery", "message_id": message_id, "sender": PORTAL_AGENCY_ID,
            "code": target_link.code if target_link and target_link.status is LinkStatus.ACTIVE else None,
            "reply_handle": handle, "inner": body["inner"]})
        inbox_id = self.inbox_receive(target, delivery, "application_delivery")
        seq = self.append_log(ExchangeKind.APPLICATION, message_id, PORTAL_AGENCY_ID, target.id,
                              str(body.get("procedure")), None, link.code, ExchangeStatus.DELIVERED, None)
        return self.hub_send(PORTAL_AGENCY_ID, {"type": "delivery_receipt", "message_id": message_id,
                                                "seq": seq, "inbox_id": inbox_id})


def agencies_where(conn: Connection, *conditions: Any) -> list[Agency]:
    return [agency_from_row(r) for r in conn.execute(
        select(exchange_agencies).where(and_(True, *conditions)).order_by(exchange_agencies.c.id))]


def resident_codes(conn: Connection, resident_ids: Sequence[int]) -> dict[int, str]:
    return {rid: r.resident_code for rid, r in registry.get_residents(conn, resident_ids).items()}
