"""What only a demonstration may do (デモ専用): invent municipal records for a town's residents, hand out chip
cards with JPKI certificates and a known PIN without any application or identity check, and shift the kiosk
service's clock. Each asks the database whether it is a demo installation (:mod:`mynacard.installation`, which
only ``mynacard demo`` marks); a real installation refuses, whatever the environment or the options say."""

from __future__ import annotations

from mynacard.context import Context
from mynacard.errors import Forbidden

__all__ = ["DemoOnly", "is_demo_installation", "require_demo"]


class DemoOnly(Forbidden):
    """A demonstration-only act (or switch) on a real installation: refused, nothing was written."""


def is_demo_installation(ctx: Context) -> bool:
    from mynacard.installation import is_demo

    with ctx.db.connect() as conn:
        return is_demo(conn)


def require_demo(ctx: Context, what: str) -> None:
    """Refuse ``what`` unless this database is a demo installation."""
    if not is_demo_installation(ctx):
        raise DemoOnly(f"{what} is for a demonstration only: it works in a demo installation (mynacard demo), "
                       "and this database is not one")
