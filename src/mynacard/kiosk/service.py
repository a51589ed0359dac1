"""Convenience-store issuance as other parts and the command line use it.

The three services live in their own modules — :mod:`~mynacard.kiosk.centre` (証明書交付センター),
:mod:`~mynacard.kiosk.municipal` (証明発行サーバ) and :mod:`~mynacard.kiosk.terminal` (the kiosk) — and meet
only through their interfaces. This module wires a centre for an installation and re-exports the use cases
other parts call (the records a municipality keeps, maintenance days, the audit check).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from datetime import UTC, datetime

from mynacard.context import Context
from mynacard.errors import InvalidInput
from mynacard.kiosk import audit
from mynacard.kiosk.auth import CardAuthenticator, HolderDirectory
from mynacard.kiosk.centre import Centre, LocalGateway, MunicipalGateway
from mynacard.kiosk.demo_guard import DemoOnly, require_demo
from mynacard.kiosk.municipal import (
    add_closure,
    add_support_measure,
    configure,
    create_family_register,
    file_transfer_out,
    record_tax,
    register_family_register_use,
    register_seal,
    set_family_register_pending,
    settings_of,
    trust_roots_der,
    verification,
)

__all__ = [
    "CLOCK_ENV",
    "PUBLIC_URL_ENV",
    "Clock",
    "DemoOnly",
    "add_closure",
    "add_support_measure",
    "build_centre",
    "card_authentication",
    "clock_from_env",
    "configure",
    "create_family_register",
    "file_transfer_out",
    "public_url",
    "record_tax",
    "register_family_register_use",
    "register_seal",
    "set_family_register_pending",
    "settings_of",
    "trust_roots_der",
    "verification",
    "verify_audit",
]

CLOCK_ENV = "MYNACARD_KIOSK_CLOCK"
"""An ISO instant: the server's clock starts there and runs at real speed (demos pin the hour). Honoured only
in a demo installation (:mod:`mynacard.installation`): a real kiosk service runs on the wall clock."""

PUBLIC_URL_ENV = "MYNACARD_KIOSK_PUBLIC_URL"
"""The public base URL of the verification page a certificate's QR code opens (default: the JPKI base URL,
``MYNACARD_JPKI_BASE_URL``). Configuration only: never taken from a request (its Host header is the caller's)."""

Clock = Callable[[], datetime]


def clock_from_env(ctx: Context) -> Clock:
    """The installation's clock, or — in a demo installation only — an offset clock when ``MYNACARD_KIOSK_CLOCK``
    is set. Outside a demo the variable is refused (:class:`DemoOnly`): it would shift the production kiosks'
    clock (business hours, maintenance days, the three-month verification period)."""
    start = os.environ.get(CLOCK_ENV)
    if not start:
        return ctx.clock
    require_demo(ctx, f"{CLOCK_ENV} (it shifts the kiosk service's clock; unset it)")
    try:
        anchor = datetime.fromisoformat(start)
    except ValueError:
        raise InvalidInput(f"{CLOCK_ENV} must be an ISO instant with a time zone, not {start!r}") from None
    if anchor.tzinfo is None:
        raise InvalidInput(f"{CLOCK_ENV} needs a time zone")
    offset = anchor - datetime.now(UTC)
    return lambda: datetime.now(UTC) + offset


def public_url(ctx: Context) -> str:
    """The base URL printed in certificates' QR codes (``MYNACARD_KIOSK_PUBLIC_URL``, else the JPKI base URL)."""
    from mynacard.jpki.config import settings_of

    base = (os.environ.get(PUBLIC_URL_ENV) or settings_of(ctx).base_url).strip().rstrip("/")
    if not base.startswith(("http://", "https://")) or len(base) > 200 or not base.isprintable() or " " in base:
        raise InvalidInput(f"{PUBLIC_URL_ENV} must be an http(s) URL of at most 200 characters")
    return base


def card_authentication(ctx: Context) -> tuple[CardAuthenticator, HolderDirectory]:
    """The card authenticator and holder directory of this installation: JPKI's relying-party SDK (roots and
    revocation status from the CA database, every query logged against the centre) and J-LIS's certificate
    serial → resident records. JPKI is told the time on every call."""
    from mynacard.kiosk.jpki_auth import JpkiHolderDirectory, centre_card_authenticator

    return centre_card_authenticator(ctx), JpkiHolderDirectory(ctx)


def build_centre(ctx: Context, verify_base_url: str, *, gateway: MunicipalGateway | None = None,
                 authenticator: CardAuthenticator | None = None,
                 directory: HolderDirectory | None = None) -> Centre:
    """A certificate issuance centre for this installation (the municipalities reached in process unless a
    gateway is given)."""
    if authenticator is None or directory is None:
        authenticator, directory = card_authentication(ctx)
    return Centre(ctx, authenticator, directory, gateway or LocalGateway(ctx), verify_base_url)


def verify_audit(ctx: Context) -> audit.AuditReport:
    """Recompute every hash chain of the kiosk audit trail."""
    return audit.verify_chains(ctx.db)
