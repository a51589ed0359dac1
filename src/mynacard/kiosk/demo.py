"""Synthetic municipal records for the demo, the simulation and the tests (デモ専用): family registers, seal
registrations, tax records, support measures and address histories invented for a town's registered residents,
so that every kiosk document can be issued. Used by ``mynacard kiosk setup`` (``--records``), the portal demo,
the benchmark and the tests; the production issuing server (:mod:`mynacard.kiosk.municipal`) never imports it.

Only a demo installation takes them (:func:`~mynacard.kiosk.demo_guard.require_demo`): a real one refuses.
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any

from sqlalchemy import Connection, func, insert, select

from mynacard.clock import local_date
from mynacard.context import Context
from mynacard.db import bulk_insert
from mynacard.kiosk import audit, documents, seal
from mynacard.kiosk.demo_guard import require_demo
from mynacard.kiosk.model import fiscal_year_available
from mynacard.kiosk.municipal_scope import audit_stream, require_scope, town
from mynacard.kiosk.tables import (
    kiosk_address_history,
    kiosk_family_register_members,
    kiosk_family_registers,
    kiosk_seal_registrations,
    kiosk_support_measures,
    kiosk_tax_records,
)
from mynacard.principal import Principal
from mynacard.registry import service as registry
from mynacard.registry.model import Resident, ResidentStatus, add_years

__all__ = ["seed_records"]

_EVENTS_BIRTH = "【出生日】{d}　【出生地】{place}"
_EVENTS_MARRIAGE = "【婚姻日】{d}　【配偶者氏名】{spouse}"
_SPOUSES = ("妻", "夫")


def seed_records(ctx: Context, principal: Principal, code: str, now: datetime, *, seed: int = 2016,
                 seal_share: float = 0.6, support_share: float = 0.005) -> dict[str, int]:
    """Plausible municipal records for the municipality's active residents: one family register per
    household (本籍 in the town, head = 筆頭者), seal registrations for about ``seal_share`` of adults, this and
    last year's tax records for adults, support measures for a few, and the address history. Idempotent:
    residents who already have a register are skipped.

    DEMONSTRATION ONLY: these records are invented for real residents, so a database that is not a demo
    installation (:mod:`mynacard.installation`) refuses (:class:`~mynacard.kiosk.demo_guard.DemoOnly`)."""
    require_scope(principal, code)
    require_demo(ctx, "seeding synthetic municipal records (family registers, seals, tax records)")
    rng = random.Random(f"{seed}:{code}:records")
    today = local_date(now)
    place = town(ctx, code).full_name
    with ctx.transaction() as tx:
        conn = tx.conn
        households = _unregistered_households(conn, code)
        seal_count = conn.execute(select(func.count()).select_from(kiosk_seal_registrations).where(
            kiosk_seal_registrations.c.municipality_code == code)).scalar_one()
        seeder = _Seeder(conn, code, place, today, now, rng, seal_share, support_share, seal_count)
        for members in households:
            seeder.household(members)
        counts = seeder.finish()
        audit.append(conn, audit_stream(code), "records_seeded", principal.subject, now, details=counts)
    return counts


def _unregistered_households(conn: Connection, code: str) -> list[list[Resident]]:
    """The municipality's active residents who are in no family register yet, by household (a resident
    without one alone)."""
    residents_all = list(registry.get_residents(conn, registry.resident_ids_in(conn, code)).values())
    linked = set(conn.execute(select(kiosk_family_register_members.c.resident_id).where(
        kiosk_family_register_members.c.resident_id.in_([r.id for r in residents_all]))).scalars()) \
        if residents_all else set()
    households: dict[int, list[Resident]] = {}
    for r in residents_all:
        if r.status is ResidentStatus.ACTIVE and r.id not in linked:
            households.setdefault(r.household_id if r.household_id is not None else -r.id, []).append(r)
    return list(households.values())


@dataclass
class _Seeder:
    """The records being invented for one municipality in one transaction; the seals, addresses and tax
    records are inserted at the end, in bulk (:meth:`finish`)."""

    conn: Connection
    code: str
    place: str
    """The municipality's full name, the place of birth in the registers."""
    today: date
    now: datetime
    rng: random.Random
    seal_share: float
    support_share: float
    seal_count: int
    """Seal registrations in the municipality so far (their numbers follow on)."""
    seals: list[dict[str, Any]] = field(default_factory=list)
    addresses: list[dict[str, Any]] = field(default_factory=list)
    taxes: list[dict[str, Any]] = field(default_factory=list)
    counts: dict[str, int] = field(default_factory=lambda: {
        "registers": 0, "seals": 0, "tax_records": 0, "support_measures": 0})

    def household(self, members: list[Resident]) -> None:
        """One family register for the household (the head first, then a spouse, then the others), and each
        member's own records."""
        members.sort(key=lambda r: (r.relationship != "世帯主", r.relationship not in _SPOUSES, r.id))
        head = members[0]
        domicile = head.facts.address.split("丁目")[0] + "丁目" if "丁目" in head.facts.address \
            else head.facts.address
        head_name = f"{head.facts.family_name}　{head.facts.given_name}"
        register_id = self.conn.execute(insert(kiosk_family_registers).values(
            municipality_code=self.code, domicile=domicile, head_name=head_name,
            pending_filing=False, updated_at=self.now).returning(kiosk_family_registers.c.id)).scalar_one()
        spouse = next((m for m in members if m.relationship in _SPOUSES), None)
        entries = []
        children = 0
        for pos, m in enumerate(members, 1):
            if m.relationship != "世帯主" and m.relationship not in _SPOUSES:
                children += 1
            entries.append(self._entry(register_id, pos, m, head, spouse, children))
            self._own_records(m)
        bulk_insert(self.conn, kiosk_family_register_members, entries)
        self.counts["registers"] += 1

    def _entry(self, register_id: int, pos: int, m: Resident, head: Resident, spouse: Resident | None,
               children: int) -> dict[str, Any]:
        """The member's row in the register: relationship to the head (``children``: the member's place
        among the children so far), parents' given names, and the birth and marriage events."""
        events = [_EVENTS_BIRTH.format(d=documents.wareki(m.facts.birth_date), place=self.place)]
        if m.relationship == "世帯主":
            relationship = "長男" if m.facts.sex.value == "1" else "長女"
            if spouse is not None:
                married = min(self.today, add_years(max(m.facts.birth_date, spouse.facts.birth_date), 28))
                events.append(_EVENTS_MARRIAGE.format(
                    d=documents.wareki(married), spouse=f"{spouse.facts.family_name}　{spouse.facts.given_name}"))
        elif m.relationship in _SPOUSES:
            relationship = m.relationship
            events.append(_EVENTS_MARRIAGE.format(d="（省略）", spouse=f"{head.facts.family_name}　"
                                                                       f"{head.facts.given_name}"))
        else:
            relationship = ("長" if children == 1 else "二" if children == 2 else "三") + (
                "男" if m.facts.sex.value == "1" else "女")
        father = mother = None
        if m.relationship == "子":
            parents = [head, spouse] if spouse else [head]
            father = next((f"{p.facts.given_name}" for p in parents if p.facts.sex.value == "1"), None)
            mother = next((f"{p.facts.given_name}" for p in parents if p.facts.sex.value == "2"), None)
        return {"register_id": register_id, "resident_id": m.id, "position": pos,
                "family_name": m.facts.family_name, "given_name": m.facts.given_name,
                "birth_date": m.facts.birth_date, "sex": m.facts.sex.value,
                "relationship": relationship, "father": father, "mother": mother,
                "events": json.dumps(events, ensure_ascii=False), "removed": False}

    def _own_records(self, m: Resident) -> None:
        """The member's address history and, drawn at random in this order, a seal registration and tax
        records (adults) and a support measure."""
        today, rng = self.today, self.rng
        self.addresses.append({"resident_id": m.id, "address": m.facts.address, "since": min(
            today, m.facts.birth_date + timedelta(days=1)) if m.relationship == "子"
            else today - timedelta(days=rng.randint(200, 4000))})
        adult = m.age_on(today) >= 18
        if adult and rng.random() < self.seal_share:
            self.seal_count += 1
            self.seals.append({"resident_id": m.id, "municipality_code": self.code,
                               "registration_number": f"{self.code[:5]}{self.seal_count:07d}",
                               "impression": seal.resident_seal_png(m.facts.family_name),
                               "registered_on": today - timedelta(days=rng.randint(30, 3000))})
        if adult:
            self._tax_records(m)
        if rng.random() < self.support_share:
            self.conn.execute(insert(kiosk_support_measures).values(
                resident_id=m.id, municipality_code=self.code, starts_on=today - timedelta(days=30), ends_on=None,
                recorded_at=self.now))
            self.counts["support_measures"] += 1

    def _tax_records(self, m: Resident) -> None:
        """This and last fiscal year's income and tax for an adult."""
        fy = fiscal_year_available(self.today)
        for year in (fy, fy - 1):
            income = self.rng.choice([0, 0, 1_200_000, 2_400_000, 3_600_000, 5_000_000, 8_000_000])
            deductions = 430_000 + self.rng.randint(0, 800_000)
            taxable = max(0, income - deductions)
            self.taxes.append({
                "resident_id": m.id, "fiscal_year": year, "municipality_code": self.code,
                "total_income": income, "employment_income": income, "deductions": deductions,
                "taxable_income": taxable, "municipal_tax": taxable * 6 // 100,
                "prefectural_tax": taxable * 4 // 100, "recorded_at": self.now})
            self.counts["tax_records"] += 1

    def finish(self) -> dict[str, int]:
        """Insert the seals, addresses and tax records gathered; the counts of what was made."""
        bulk_insert(self.conn, kiosk_seal_registrations, self.seals)
        bulk_insert(self.conn, kiosk_address_history, self.addresses)
        bulk_insert(self.conn, kiosk_tax_records, self.taxes)
        self.counts["seals"] = len(self.seals)
        return self.counts
