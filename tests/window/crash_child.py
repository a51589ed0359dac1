"""A window terminal process that dies (``os._exit``, no clean-up, locks dropped by the kernel) at one step
of a window issuance: ``python -m tests.window.crash_child HOME DATABASE_URL CARD_ID STEP``."""

from __future__ import annotations

import os
import sys
from datetime import UTC, datetime
from pathlib import Path

from mynacard.bootstrap import build_context
from mynacard.chip.issuance import InitialPins
from mynacard.principal import Principal, Role
from mynacard.window import service as window
from mynacard.window.model import Document, IdentityCheck


def main() -> None:
    home, url, card_id, step = sys.argv[1:5]
    ctx = build_context(home=Path(home), database_url=url)

    def die(at: str) -> None:
        if at == step:
            os._exit(137)

    window.issue_card(ctx, Principal(Role.CLERK, "clerk-131016", "131016"),
                      identity=IdentityCheck([Document.PASSPORT]),
                      pins=InitialPins(auth="1234", card_info="2345", residence="3456", sign="ABC12345"),
                      notification_card="collected", now=datetime(2026, 4, 6, 0, 30, tzinfo=UTC),
                      card_id=int(card_id), fault=die)
    sys.exit(3)  # the step was never reached


if __name__ == "__main__":
    main()
