"""Every table of the installation, registered on :data:`mynacard.db.metadata` by importing each part's
``tables`` module. Only migrations, the bootstrap and tests import this; parts import their own tables."""

from __future__ import annotations

from mynacard import bus as _bus  # noqa: F401  (domain_events, event_deliveries)
from mynacard import installation as _installation  # noqa: F401
from mynacard.accounts import tables as _accounts  # noqa: F401
from mynacard.cards import tables as _cards  # noqa: F401
from mynacard.db import metadata
from mynacard.exchange import tables as _exchange  # noqa: F401
from mynacard.jobs import tables as _jobs  # noqa: F401
from mynacard.jpki import tables as _jpki  # noqa: F401
from mynacard.kiosk import tables as _kiosk  # noqa: F401
from mynacard.mykey import tables as _mykey  # noqa: F401
from mynacard.office import tables as _office  # noqa: F401
from mynacard.plans import tables as _plans  # noqa: F401
from mynacard.portal import tables as _portal  # noqa: F401
from mynacard.registry import tables as _registry  # noqa: F401
from mynacard.window import tables as _window  # noqa: F401

__all__ = ["metadata"]
