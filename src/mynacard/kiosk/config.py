"""Settings of the kiosk part from environment variables, read where they are used (never at import).

| variable | meaning |
|---|---|
| ``MYNACARD_KIOSK_RENDER_SLOTS`` | certificates rendered and signed at once per process (default 2, at least 1) |

``MYNACARD_KIOSK_CLOCK`` and ``MYNACARD_KIOSK_PUBLIC_URL`` are read by :mod:`mynacard.kiosk.service`,
``MYNACARD_FONT_DIR`` by :mod:`mynacard.fonts`.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

__all__ = ["RENDER_SLOTS_ENV", "KioskSettings", "kiosk_settings"]

RENDER_SLOTS_ENV = "MYNACARD_KIOSK_RENDER_SLOTS"


@dataclass(frozen=True)
class KioskSettings:
    render_slots: int = 2
    """Certificates rendered and signed at once in one process (see :mod:`mynacard.kiosk.preparation`)."""


def _render_slots(raw: str | None) -> int:
    if raw is None:
        return KioskSettings.render_slots
    try:
        return max(1, int(raw))
    except ValueError:
        raise ValueError(f"{RENDER_SLOTS_ENV} must be a whole number, not {raw!r}") from None


def kiosk_settings() -> KioskSettings:
    """The current settings (read each time: cheap, and tests change the environment)."""
    return KioskSettings(render_slots=_render_slots(os.environ.get(RENDER_SLOTS_ENV)))
