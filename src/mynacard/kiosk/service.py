"""Convenience-store issuance as other parts and the command line use it.

The three services live in their own modules — :mod:`~mynacard.kiosk.centre` (証明書交付センター),
:mod:`~mynacard.kiosk.municipal` (証明発行サーバ) and :mod:`~mynacard.kiosk.terminal` (the kiosk) — and meet
only through their interfaces. This module wires a centre for an installation and re-exports the use cases
other parts call (the records a municipality keeps, maintenance days, the audit check).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from mynacard.context import Context
from mynacard.errors import Conflict
from mynacard.kiosk import audit
from mynacard.kiosk.auth import AuthenticatedCard, CardAuthenticator, HolderDirectory
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
    "TEST_JPKI_ENV",
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

TEST_JPKI_ENV = "MYNACARD_KIOSK_TEST_JPKI"
"""Folder of a saved :class:`~mynacard.kiosk.testing.TestJpki` (tests, demo, benchmark) until JPKI lands."""
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


@dataclass(frozen=True)
class _Unconfigured:
    """Card authentication before the JPKI part is wired: every card is refused with a clear reason."""

    def authenticate(self, certificate: bytes, challenge: bytes, signature: bytes,
                     now: datetime) -> AuthenticatedCard:
        raise Conflict("card authentication is not configured (JPKI relying party, or "
                       f"{TEST_JPKI_ENV} for the test stand-in)")

    def resident_for(self, serial: int, now: datetime) -> int | None:
        return None


def card_authentication(ctx: Context, clock: Clock | None = None) -> tuple[CardAuthenticator, HolderDirectory]:
    """The card authenticator and holder directory of this installation.

    Until the JPKI part lands this is the test stand-in named by ``MYNACARD_KIOSK_TEST_JPKI``; the lead wires
    JPKI's relying-party SDK here (docs/ARCHITECTURE.md, "kiosk: what to wire").
    """
    folder = os.environ.get(TEST_JPKI_ENV)
    if folder:
        from mynacard.kiosk.testing import TestJpki

        jpki = TestJpki.load(Path(folder))
        if clock is not None:
            jpki.clock = clock
        return jpki.authenticator(), jpki
    unconfigured = _Unconfigured()
    return unconfigured, unconfigured


def build_centre(ctx: Context, verify_base_url: str, *, gateway: MunicipalGateway | None = None,
                 authenticator: CardAuthenticator | None = None, directory: HolderDirectory | None = None,
                 clock: Clock | None = None) -> Centre:
    """A certificate issuance centre for this installation (the municipalities reached in process unless a
    gateway is given)."""
    if authenticator is None or directory is None:
        authenticator, directory = card_authentication(ctx, clock)
    return Centre(ctx, authenticator, directory, gateway or LocalGateway(ctx), verify_base_url)


def verify_audit(ctx: Context) -> audit.AuditReport:
    """Recompute every hash chain of the kiosk audit trail."""
    return audit.verify_chains(ctx.db)
