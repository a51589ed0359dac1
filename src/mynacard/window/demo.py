"""The window in ``mynacard demo``: residents who booked come to the window and their cards are handed over
by the real window issuance (:func:`mynacard.window.service.issue_card`) when the card has a chip; the
simulated bulk made without chips goes through the office's stand-in. Demo cards get the PINs below, so that
a demo user can take a card file (``$MYNACARD_HOME/chips``) and log in with it.

After the simulated weeks, the cards of the simulated bulk still on their way to the window have no chip
either. So that a demo user at ``/window`` never meets a card that cannot be issued, a demo installation's
app (and only a demo's: :func:`mynacard.web.app.create_app` wires :func:`chip_at_window` only when the
database is marked as one) personalises such a card's chip when the clerk opens it, as the manufacturer
would have — keys made in the chip, JPKI certificates — about 0.1 s, once per card."""

from __future__ import annotations

from datetime import datetime

from mynacard.cards import service as cards
from mynacard.cards.model import CardState
from mynacard.chip import service as chips
from mynacard.chip.issuance import InitialPins
from mynacard.context import Context
from mynacard.office import demo as office_demo
from mynacard.office import service as office
from mynacard.principal import Principal, Role
from mynacard.window import service as window
from mynacard.window.model import Document, IdentityCheck, NotificationCard
from mynacard.window.production import personalise_made_card

__all__ = ["DEMO_PINS", "chip_at_window", "collect_at_window"]

DEMO_PINS = InitialPins(auth="1234", card_info="1234", residence="1234", sign="DEMO2016")
"""利用者証明用 1234, 署名用 DEMO2016, 券面事項入力補助用 1234, 住民基本台帳用 1234 (demo cards only)."""

_SYSTEM = Principal.system("demo-window")
_MANUFACTURER = Principal(Role.MANUFACTURER, "demo-manufacturer")


def collect_at_window(ctx: Context, notice_number: str, now: datetime) -> None:
    """A :data:`mynacard.office.demo.Collect`: the window's issuance for a card with a chip."""
    notice = office.card_for_notice(ctx, _SYSTEM, notice_number)
    card = cards.get_card(ctx, _SYSTEM, notice.card_id)
    if not card.card_serial or not chips.card_path(ctx, card.card_serial).exists():
        office_demo.stand_in_collect(ctx, notice_number, now)
        return
    clerk = Principal(Role.CLERK, "demo-window", card.municipality_code)
    window.issue_card(ctx, clerk, identity=IdentityCheck([Document.DRIVING_LICENCE]), pins=DEMO_PINS,
                      notification_card=NotificationCard.NONE, now=now, notice_number=notice_number)


def chip_at_window(ctx: Context, card: cards.CardView, now: datetime) -> None:
    """The chip of a simulated card waiting at the window, made now if it has none (demo installations only)."""
    if card.state is CardState.NOTICE_SENT and not window.chip_present(ctx, card):
        personalise_made_card(ctx, _MANUFACTURER, card.id, now)
