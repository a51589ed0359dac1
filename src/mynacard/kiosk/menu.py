"""What the kiosk screen offers an authenticated holder (:func:`menu`): each document the municipalities
offer them with its fee and, greyed out, why it cannot be issued now; the household members they may ask for."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection

from mynacard.clock import local_date
from mynacard.context import Context
from mynacard.kiosk.holder_facts import HolderFacts, check_issuable, issuing_municipality, load_facts
from mynacard.kiosk.model import DocumentKind, DocumentOptions, RefusalReason, Refused, check_holder
from mynacard.kiosk.municipal_scope import CENTRE_ROLES, towns
from mynacard.kiosk.offerings import MunicipalSettings, settings_and_closures, settings_of
from mynacard.principal import Principal
from mynacard.registry.model import ResidentStatus

__all__ = ["HouseholdMember", "Menu", "MenuItem", "menu"]


@dataclass(frozen=True)
class MenuItem:
    kind: DocumentKind
    fee_yen: int
    issuing_municipality: str
    refusal: RefusalReason | None
    """Why it cannot be issued now (shown greyed out), or None."""


@dataclass(frozen=True)
class HouseholdMember:
    resident_id: int
    name: str
    relationship: str
    selectable: bool


@dataclass(frozen=True)
class Menu:
    """What the kiosk screen offers the authenticated holder."""

    holder_name: str
    home_municipality: str
    home_municipality_name: str
    items: tuple[MenuItem, ...]
    household: tuple[HouseholdMember, ...]
    family_register_municipality: str | None
    family_register_usable: bool

    def item(self, kind: DocumentKind) -> MenuItem | None:
        return next((i for i in self.items if i.kind is kind), None)

    def to_dict(self) -> dict[str, Any]:
        return {"holder_name": self.holder_name, "home_municipality": self.home_municipality,
                "home_municipality_name": self.home_municipality_name,
                "items": [{"kind": i.kind.value, "label_ja": i.kind.label_ja, "label_en": i.kind.label_en,
                           "fee_yen": i.fee_yen, "issuing_municipality": i.issuing_municipality,
                           "refusal": i.refusal.value if i.refusal else None,
                           "refusal_ja": i.refusal.message_ja if i.refusal else None,
                           "refusal_en": i.refusal.message_en if i.refusal else None} for i in self.items],
                "household": [{"resident_id": m.resident_id, "name": m.name, "relationship": m.relationship,
                               "selectable": m.selectable} for m in self.household],
                "family_register_municipality": self.family_register_municipality,
                "family_register_usable": self.family_register_usable}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Menu:
        return cls(data["holder_name"], data["home_municipality"], data["home_municipality_name"],
                   tuple(MenuItem(DocumentKind(i["kind"]), int(i["fee_yen"]), i["issuing_municipality"],
                                  RefusalReason(i["refusal"]) if i["refusal"] else None) for i in data["items"]),
                   tuple(HouseholdMember(int(m["resident_id"]), m["name"], m["relationship"], bool(m["selectable"]))
                         for m in data["household"]),
                   data["family_register_municipality"], bool(data["family_register_usable"]))


def menu(ctx: Context, principal: Principal, holder_id: int, now: datetime) -> Menu:
    """The documents the holder may get now, with fees; raises :class:`Refused` if the holder may get none
    (under 15, moved out, support measure, deceased, the home municipality closed or not taking part)."""
    principal.require(*CENTRE_ROLES)
    today = local_date(now)
    towns(ctx)
    with ctx.db.connect() as conn:
        facts = load_facts(conn, holder_id, today)
        holder = facts.holder.resident
        check_holder(facts.holder, now)
        home, closed = settings_and_closures(ctx, conn, holder.municipality_code, today)
        if home is None or not home.participating:
            raise Refused(RefusalReason.NOT_PARTICIPATING)
        closures = {home.code: closed}
        if closures[home.code][0]:
            raise Refused(RefusalReason.MAINTENANCE)
        items = _items(ctx, conn, facts, home, closures, now)
    return Menu(holder.facts.name, home.code, home.full_name, items, _household(facts),
                facts.register.municipality_code if facts.register else None, facts.register_usable)


def _items(ctx: Context, conn: Connection, facts: HolderFacts, home: MunicipalSettings,
           closures: dict[str, tuple[bool, set[DocumentKind]]], now: datetime) -> tuple[MenuItem, ...]:
    """Every document offered to the holder (by their home municipality, or by their 本籍's for a family
    register document), each with the reason it is refused now, if it is."""
    holder = facts.holder.resident
    items = []
    others: dict[str, MunicipalSettings | None] = {}
    for kind in DocumentKind:
        code = issuing_municipality(kind, holder, facts)
        settings: MunicipalSettings | None
        if code == home.code:
            settings = home
        else:
            if code not in others:
                others[code] = settings_of(ctx, code, conn)
            settings = others[code]
        offering = settings.offerings.get(kind) if settings is not None else None
        if offering is None:
            continue
        refusal = None
        try:
            check_issuable(kind, DocumentOptions(kind), facts, settings, conn, now, closures)
        except Refused as exc:
            refusal = exc.reason
        items.append(MenuItem(kind, offering.fee_yen, code, refusal))
    return tuple(items)


def _household(facts: HolderFacts) -> tuple[HouseholdMember, ...]:
    """The holder's household; a member is selectable unless inactive or under a support measure."""
    return tuple(HouseholdMember(
        p.id, f"{p.resident.facts.family_name}　{p.resident.facts.given_name}", p.resident.relationship,
        p.resident.status is ResidentStatus.ACTIVE and not p.support_measure) for p in facts.household)
