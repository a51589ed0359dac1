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
from mynacard.kiosk import audit
from mynacard.kiosk.auth import CardAuthenticator, HolderDirectory
from mynacard.kiosk.centre import Centre, LocalGateway, MunicipalGateway
from mynacard.kiosk.municipal import (
    add_closure,
    add_support_measure,
    configure,
    create_family_register,
    file_transfer_out,
    record_tax,
    register_family_register_use,
    register_seal,
    seed_records,
    set_family_register_pending,
    settings_of,
    trust_roots_der,
    verification,
)

__all__ = [
    "CLOCK_ENV",
    "Clock",
    "add_closure",
    "add_support_measure",
    "build_centre",
    "card_authentication",
    "clock_from_env",
    "configure",
    "create_family_register",
    "file_transfer_out",
    "record_tax",
    "register_family_register_use",
    "register_seal",
    "seed_records",
    "set_family_register_pending",
    "settings_of",
    "trust_roots_der",
    "verification",
    "verify_audit",
]

CLOCK_ENV = "MYNACARD_KIOSK_CLOCK"
"""An ISO instant: the server's clock starts there and runs at real speed (tests and demos pin the hour)."""

Clock = Callable[[], datetime]


def clock_from_env() -> Clock:
    """The wall clock, or an offset clock when ``MYNACARD_KIOSK_CLOCK`` is set."""
    start = os.environ.get(CLOCK_ENV)
    if not start:
        return lambda: datetime.now(UTC)
    anchor = datetime.fromisoformat(start)
    if anchor.tzinfo is None:
        raise ValueError(f"{CLOCK_ENV} needs a time zone")
    offset = anchor - datetime.now(UTC)
    return lambda: datetime.now(UTC) + offset


def card_authentication(ctx: Context) -> tuple[CardAuthenticator, HolderDirectory]:
    """The card authenticator and holder directory of this installation: JPKI's relying-party SDK (roots and
    revocation status from the CA database, every query logged against the centre) and J-LIS's certificate
    serial → resident records. JPKI is told the time on every call."""
    from mynacard.kiosk.jpki_auth import JpkiCardAuthenticator, JpkiHolderDirectory

    return JpkiCardAuthenticator(ctx), JpkiHolderDirectory(ctx)


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
