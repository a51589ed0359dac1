"""Builders for the office tests: a town's windows with slots, and cards waiting at each stage."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, time, timedelta

from mynacard.cards import service as cards
from mynacard.context import Context
from mynacard.office import service
from mynacard.office.model import CounterKind, SiteKind
from mynacard.principal import Principal, Role
from mynacard.registry import service as registry
from tests.conftest import NOW
from tests.helpers import CHIYODA, SYSTEM, make_residents, receive_at

EVENING = NOW + timedelta(hours=10)  # 19:30 JST: off peak
NEXT_DAY = NOW.date() + timedelta(days=1)


def supervisor(code: str = CHIYODA) -> Principal:
    return Principal(Role.SUPERVISOR, f"supervisor-{code}", code)


@dataclass(frozen=True)
class Town:
    code: str
    site_id: int
    card_ids: list[int]
    notices: list[str]

    def birth_date(self, ctx: Context, notice: str) -> date:
        card = service.card_for_notice(ctx, SYSTEM, notice)
        return registry.residents_by_id(ctx, SYSTEM, [card.resident_id])[card.resident_id].facts.birth_date


def open_windows(ctx: Context, code: str = CHIYODA, *, issuance: int = 2, staff: int = 3, days: int = 5,
                 first: date = NEXT_DAY, site: str = "本庁") -> int:
    """A site with ``issuance`` terminal counters and one document-check counter, staffed 09:00–12:00 for
    ``days`` days from ``first``, with its slots generated."""
    site_id = service.add_site(ctx, SYSTEM, code, site, SiteKind.MAIN,
                               {CounterKind.ISSUANCE: issuance, CounterKind.DOCUMENT_CHECK: 1}, NOW)
    for i in range(days):
        service.add_shift(ctx, SYSTEM, site_id, first + timedelta(days=i), time(9), time(12), staff)
    service.generate_slots(ctx, SYSTEM, site_id, first, first + timedelta(days=days))
    return site_id


def town_with_notices(ctx: Context, n: int, code: str = CHIYODA, *, seed: int = 1, **windows: int) -> Town:
    """``n`` residents whose cards were received, checked, set up and noticed (windows sized by ``windows``)."""
    card_ids = received_cards(ctx, n, code, seed=seed)
    site_id = open_windows(ctx, code, **windows)
    service.check_received_cards(ctx, SYSTEM, code, EVENING - timedelta(hours=1), limit=n)
    while service.run_pre_issuance_setup(ctx, SYSTEM, code, EVENING):  # one run per terminal capacity
        pass
    notices = service.send_notices(ctx, SYSTEM, code, EVENING)
    return Town(code, site_id, card_ids, notices)


def received_cards(ctx: Context, n: int, code: str = CHIYODA, *, seed: int = 1) -> list[int]:
    """``n`` new residents of ``code`` whose cards arrived two days ago (not yet checked)."""
    ids = make_residents(ctx, n, NOW - timedelta(days=30), code, seed=seed)
    cards.issue_application_forms(ctx, SYSTEM, ids, NOW - timedelta(days=25))
    return receive_at(ctx, code, n, NOW - timedelta(days=20), NOW - timedelta(days=2))


def at(day: date, hour: int, minute: int = 0) -> datetime:
    from mynacard.clock import JST
    return datetime.combine(day, time(hour, minute), JST)
