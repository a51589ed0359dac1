"""Fixtures of the kiosk tests: a town with records, the JPKI stand-in, cards, a centre."""

from __future__ import annotations

import socket
import threading
import time
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import pytest

from mynacard import installation
from mynacard.context import Context
from mynacard.kiosk import demo, municipal
from mynacard.kiosk.centre import Centre, LocalGateway
from mynacard.kiosk.testing import SoftwareCard, TestJpki
from mynacard.principal import Principal, Role
from mynacard.registry import service as registry
from mynacard.registry.model import Resident
from tests.conftest import NOW
from tests.helpers import CHIYODA, SYSTEM, make_residents

KIOSK = Principal(Role.KIOSK, "kiosk-0001")
OTHER_KIOSK = Principal(Role.KIOSK, "kiosk-0002")
VERIFY_BASE = "http://kiosk.test"


@dataclass
class Town:
    """A seeded municipality: its residents (by id) and their records."""

    code: str
    ids: list[int]
    people: dict[int, Resident]

    def adult(self, n: int = 0, *, household_size: int | None = None) -> Resident:
        """The n-th active adult (optionally in a household of a given size)."""
        found = [r for r in self.people.values() if r.age_on(NOW.date()) >= 20 and (
            household_size is None or sum(1 for p in self.people.values()
                                          if p.household_id == r.household_id) == household_size)]
        return sorted(found, key=lambda r: r.id)[n]

    def child(self) -> Resident:
        return next(r for r in sorted(self.people.values(), key=lambda r: r.id) if r.age_on(NOW.date()) < 15)


def mark_demo(ctx: Context, now: datetime = NOW) -> None:
    """Mark the test database as a demo installation (as ``mynacard demo`` does): the kiosk tests exercise the
    demonstration's synthetic municipal records and chip cards, which a real installation refuses."""
    with ctx.db.begin() as conn:
        installation.mark_demo(conn, now)


def seed_town(ctx: Context, n: int = 40, code: str = CHIYODA, seed: int = 7, now: datetime = NOW,
              support_share: float = 0.0) -> Town:
    """Residents with synthetic municipal records — a demo feature: the database is marked as a demo."""
    mark_demo(ctx, now)
    ids = make_residents(ctx, n, now, code, seed=seed)
    municipal.configure(ctx, SYSTEM, code, now)
    demo.seed_records(ctx, SYSTEM, code, now, seed=seed, seal_share=1.0, support_share=support_share)
    people = registry.residents_by_id(ctx, SYSTEM, ids)
    return Town(code, ids, people)


@pytest.fixture
def town(ctx: Context) -> Town:
    return seed_town(ctx)


@pytest.fixture(scope="session")
def jpki_ca() -> TestJpki:
    """One test CA per run (its RSA key is the slow part); fixtures copy it."""
    return TestJpki(NOW)


@pytest.fixture
def jpki(jpki_ca: TestJpki) -> TestJpki:
    fresh = TestJpki(NOW, ca_cert=jpki_ca.ca_cert, ca_key=jpki_ca.ca_key)
    fresh.clock = lambda: NOW
    return fresh


@pytest.fixture
def centre(ctx: Context, jpki: TestJpki) -> Centre:
    return Centre(ctx, jpki.authenticator(), jpki, LocalGateway(ctx), VERIFY_BASE)


def card_for(jpki: TestJpki, resident_id: int, **kw: object) -> SoftwareCard:
    """A fresh RSA card for a resident (keys are generated at test time)."""
    return jpki.issue_card(resident_id, NOW, **kw)  # type: ignore[arg-type]


def serve(app: Any, **tls: Any) -> tuple[Any, threading.Thread, str]:
    """An ASGI app served by uvicorn on a free port in a thread; returns the server, its thread and base URL
    (``https`` when ``tls`` gives uvicorn's ``ssl_certfile`` and ``ssl_keyfile``)."""
    import uvicorn

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", **tls))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.02)
    assert server.started, "uvicorn did not start"
    return server, thread, f"{'https' if tls else 'http'}://127.0.0.1:{port}"
