"""Wiring: the one place that builds a :class:`~mynacard.context.Context` and subscribes every reaction.

When a part must react to another's events, its handler is subscribed here, so that a reader can see all
the cross-part reactions of the system on one page.
"""

from __future__ import annotations

from pathlib import Path

from mynacard.bus import MessageBus
from mynacard.config import Settings, load_settings
from mynacard.context import Context
from mynacard.db import Database

__all__ = ["LIFE_EVENTS", "build_bus", "build_context"]

LIFE_EVENTS = ("registry.resident_moved", "registry.name_changed", "registry.resident_died",
               "registry.moved_abroad")


def build_bus() -> MessageBus:
    from mynacard.cards import handlers as card_handlers
    from mynacard.jpki import handlers as jpki_handlers
    from mynacard.kiosk import handlers as kiosk_handlers

    bus = MessageBus()
    for kind in LIFE_EVENTS:
        bus.subscribe(kind, "cards.on_life_event", card_handlers.on_life_event)
        bus.subscribe(kind, "jpki.on_life_event", jpki_handlers.on_life_event)
    bus.subscribe("registry.resident_moved", "kiosk.on_resident_moved", kiosk_handlers.on_resident_moved)
    return bus


def build_context(settings: Settings | None = None, *, home: Path | None = None,
                  database_url: str | None = None) -> Context:
    """A context on the configured database (migrations are run separately: `mynacard db upgrade`)."""
    import mynacard.schema  # noqa: F401  (registers every table)

    settings = settings or load_settings(home=home, database_url=database_url)
    return Context(settings=settings, db=Database(settings.database_url), bus=build_bus())
