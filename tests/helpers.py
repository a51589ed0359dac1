"""Small builders shared by tests: principals, residents, applications, a whole pipeline run."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta

from mynacard.cards import service as cards
from mynacard.cards.model import CardState
from mynacard.context import Context
from mynacard.principal import Principal, Role
from mynacard.registry import service as registry
from mynacard.sim.photos import face_photo
from mynacard.sim.population import generate_residents
from mynacard.sim.production import produce_pending, receive_all

SYSTEM = Principal.system("test")
CONTRACTOR = Principal(Role.CONTRACTOR, "test-contractor")
MANUFACTURER = Principal(Role.MANUFACTURER, "test-manufacturer")
CHIYODA = "131016"
SAPPORO = "011002"


def clerk(code: str = CHIYODA) -> Principal:
    return Principal(Role.CLERK, f"clerk-{code}", code)


def make_residents(ctx: Context, n: int, now: datetime, municipality: str = CHIYODA, seed: int = 1) -> list[int]:
    town = registry.get_municipality(ctx, municipality)
    people = list(generate_residents(town, n, now.date(), seed))
    return registry.register_residents(ctx, SYSTEM, people, now)


def application_for(ctx: Context, resident_id: int, app_id: str, *, given_name: str | None = None,
                    photo: bytes | None = None) -> cards.ApplicationInput:
    r = registry.residents_by_id(ctx, SYSTEM, [resident_id])[resident_id]
    return cards.ApplicationInput(
        application_id=app_id, channel="online", family_name=r.facts.family_name,
        given_name=given_name or r.facts.given_name, birth_date=r.facts.birth_date, sex=r.facts.sex.value,
        address=r.facts.address, photo=photo or face_photo(resident_id % 16))


def apply_all(ctx: Context, resident_ids: Sequence[int], now: datetime) -> dict[int, str]:
    """Issue forms and submit one clean application per resident; returns resident id → application ID."""
    forms = cards.issue_application_forms(ctx, SYSTEM, resident_ids, now)
    items = [application_for(ctx, rid, forms[rid]) for rid in resident_ids]
    cards.submit_applications(ctx, CONTRACTOR, items, now)
    return {rid: str(a) for rid, a in forms.items()}


def produce(ctx: Context, now: datetime) -> list[int]:
    """Screen, order, acknowledge, manufacture and ship everything pending; returns the new box ids."""
    return produce_pending(ctx, now, manufactured_at=now + timedelta(days=1), shipped_at=now + timedelta(days=2))


def receive_at(ctx: Context, code: str, count: int, applied_at: datetime, received_at: datetime) -> list[int]:
    """``count`` residents of ``code`` who hold an unused form apply at ``applied_at``; their cards are
    screened, printed, made and shipped at once and checked in at ``received_at``. Returns the card ids."""
    if count <= 0:
        return []
    forms = cards.unused_application_forms(ctx, SYSTEM, limit=count, municipality_codes=[code])
    assert len(forms) == count, f"only {len(forms)} unused forms left in {code}"
    items = [application_for(ctx, rid, app_id) for app_id, rid in forms]
    created = cards.submit_applications(ctx, CONTRACTOR, items, applied_at).created
    produce_pending(ctx, applied_at + timedelta(minutes=5))
    receive_all(ctx, received_at, clerk)
    return created


def notify(ctx: Context, card_ids: Sequence[int], at: datetime) -> None:
    """Pre-issuance setup and the issuance notice for each card, one transaction per step as a window does."""
    for card_id in card_ids:
        cards.transition(ctx, SYSTEM, card_id, CardState.PRE_ISSUANCE_SET, None, at)
        cards.transition(ctx, SYSTEM, card_id, CardState.NOTICE_SENT, None, at)


def csrf(client: object, path: str = "/login") -> str:
    """The CSRF token of a test client's browser session (the hidden ``csrf`` field of every form), for tests
    that post forms with a TestClient or httpx client."""
    import re

    page = client.get(path).text  # type: ignore[attr-defined]
    found = re.search(r'name="csrf" value="([^"]+)"', page)
    assert found, f"no CSRF token on {path}"
    return found.group(1)
