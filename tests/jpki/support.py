"""Builders for the JPKI tests: a town with residents, cards driven through the real pipeline to the
window, chip keys generated with ``cryptography`` where a chip would generate them, and ``openssl``."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from mynacard.cards import service as cards
from mynacard.cards.model import CardState, validity
from mynacard.cards.personalisation import CardHolder, IssuedCertificates
from mynacard.clock import local_date
from mynacard.context import Context, Transaction
from mynacard.jpki import service
from mynacard.principal import Principal, Role
from mynacard.registry import service as registry
from mynacard.registry.model import BasicFacts
from mynacard.sim.photos import face_photo
from tests.conftest import NOW

CHIYODA = "131016"
SAPPORO = "011002"
SYSTEM = Principal.system("test")
OPERATOR = Principal(Role.OPERATOR, "jlis-operator")
CONTRACTOR = Principal(Role.CONTRACTOR, "test-contractor")
MANUFACTURER = Principal(Role.MANUFACTURER, "test-manufacturer")
CLERK = Principal(Role.CLERK, "clerk-chiyoda", CHIYODA)
OTHER_CLERK = Principal(Role.CLERK, "clerk-sapporo", SAPPORO)

class KeyPool:
    """RSA-2048 keys generated at test time, handed out in turn: key generation is the slowest step of these
    tests, and a key only has to differ from the others in use within one test (``size`` at most)."""

    def __init__(self, size: int) -> None:
        self.size = size
        self.keys: list[rsa.RSAPrivateKey] = []
        self.next = 0

    def take(self) -> rsa.RSAPrivateKey:
        if len(self.keys) < self.size:
            self.keys.append(rsa.generate_private_key(public_exponent=65537, key_size=2048))
            return self.keys[-1]
        key = self.keys[self.next % self.size]
        self.next += 1
        return key


CHIP_KEYS = KeyPool(24)
CA_KEYS = KeyPool(24)


def chip_key() -> rsa.RSAPrivateKey:
    """An RSA-2048 key as the chip would generate (from the pool)."""
    return CHIP_KEYS.take()


def spki(key: rsa.RSAPrivateKey) -> bytes:
    return key.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)


@dataclass
class Card:
    """A card handed over at the window, with the keys its chip holds."""

    id: int
    serial: str
    resident_id: int
    auth_key: rsa.RSAPrivateKey
    sign_key: rsa.RSAPrivateKey
    issued: IssuedCertificates
    keys_by_card: dict[str, rsa.RSAPrivateKey] = field(default_factory=dict)


CAS_CREATED_AT = NOW - timedelta(days=30)
"""When the tests' operator created the CAs (``mynacard jpki init``): before any card the tests make."""


class Town:
    """Residents of Chiyoda-ku and a way to get each one an issued card. The CAs exist (the operator created
    them, as ``mynacard jpki init`` does): no request creates them."""

    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx
        service.ensure_authorities(ctx, OPERATOR, CAS_CREATED_AT)

    def resident(self, family: str = "山田", given: str = "太郎", birth: date = date(1980, 1, 1), sex: str = "1",
                 address: str = "東京都千代田区千代田1番1号", municipality: str = CHIYODA,
                 kana: tuple[str, str] = ("ヤマダ", "タロウ"), at: datetime = NOW - timedelta(days=40)) -> int:
        facts = BasicFacts.parse(family, given, birth, sex, address)
        (rid,) = registry.register_residents(self.ctx, SYSTEM, [registry.NewResident(
            municipality, facts, kana[0], kana[1])], at)
        return rid

    def card(self, resident_id: int, now: datetime = NOW, wants_sign: bool = True, wants_auth: bool = True,
             hand_over: bool = True) -> Card:
        """Drive one application through the pipeline; the manufacturer's personaliser issues the
        certificates inside the manufacturing transaction, as the chip part will."""
        ctx = self.ctx
        applied = now - timedelta(days=20)
        forms = cards.issue_application_forms(ctx, SYSTEM, [resident_id], applied)
        person = registry.get_resident(ctx, SYSTEM, resident_id)
        result = cards.submit_applications(ctx, CONTRACTOR, [cards.ApplicationInput(
            forms[resident_id], "online", person.facts.family_name, person.facts.given_name,
            person.facts.birth_date, person.facts.sex.value, person.facts.address, face_photo(resident_id % 7),
            wants_sign_cert=wants_sign, wants_auth_cert=wants_auth)], applied)
        (card_id,) = result.created
        cards.screen_applications(ctx, CONTRACTOR, applied)
        made = now - timedelta(days=10)
        for batch in cards.order_printing(ctx, SYSTEM, made):
            cards.acknowledge_print_batch(ctx, MANUFACTURER, batch, cards.read_print_file(ctx, batch), made)
        auth_key, sign_key = chip_key(), chip_key()
        issued: list[IssuedCertificates] = []

        def personalise(tx: Transaction, rows: object, at: datetime) -> None:
            for row in rows:  # type: ignore[attr-defined]
                v = validity(row.birth_date, local_date(at), local_date(row.applied_at))
                resident = registry.get_residents(tx.conn, [row.resident_id])[row.resident_id]
                holder = CardHolder(
                    card_serial=f"E{row.id:010d}{row.print_count:02d}", municipality_code=row.municipality_code,
                    facts=resident.facts, card_valid_until=v.card_until, cert_valid_until=v.certificates_until,
                    wants_sign_cert=row.wants_sign_cert, wants_auth_cert=row.wants_auth_cert, card_id=row.id,
                    resident_id=row.resident_id)
                issuer = service.JpkiIssuer(ctx, MANUFACTURER, tx)
                issued.append(issuer.issue(holder, spki(auth_key) if row.wants_auth_cert else None,
                                           spki(sign_key) if row.wants_sign_cert else None, at))

        for batch in cards.pending_print_batches(ctx, MANUFACTURER):
            cards.manufacture_batch(ctx, MANUFACTURER, batch, made, personalise=personalise)
        view = cards.get_card(ctx, SYSTEM, card_id)
        if hand_over:
            for box in cards.ship_cards(ctx, MANUFACTURER, made):
                manifest = cards.box_manifest(ctx, SYSTEM, box)
                clerk = Principal(Role.CLERK, "clerk", manifest["municipality_code"])
                cards.receive_box(ctx, clerk, box, manifest["serials"], {}, made + timedelta(days=1))
            for state in (CardState.PRE_ISSUANCE_SET, CardState.NOTICE_SENT, CardState.ISSUED):
                cards.transition(ctx, SYSTEM, card_id, state, None, now - timedelta(days=1))
        return Card(card_id, view.card_serial or "", resident_id, auth_key, sign_key, issued[-1])


def openssl(*args: str, cwd: Path | None = None, check: bool = False) -> tuple[int, str]:
    """Run the real ``openssl`` command; returns (exit code, stdout + stderr)."""
    import subprocess

    exe = shutil.which("openssl")
    if exe is None:
        pytest.fail("openssl is not installed")
    done = subprocess.run([exe, *args], capture_output=True, text=True, cwd=cwd, timeout=60)
    out = done.stdout + done.stderr
    if check and done.returncode != 0:
        raise AssertionError(f"openssl {' '.join(args)} failed:\n{out}")
    return done.returncode, out


@contextmanager
def serve(ctx: Context) -> Iterator[str]:
    """The web app on uvicorn in a thread of this process (like the ``live_server`` fixture, for any ctx)."""
    import socket
    import threading
    import time

    import uvicorn

    from mynacard.web.app import create_app

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(create_app(ctx), host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.02)
    assert server.started, "uvicorn did not start"
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)


@contextmanager
def ocsp_server(ctx: Context, idle_seconds: float = 30.0) -> Iterator[str]:
    """The dedicated OCSP responder server in a thread of this process; yields its base URL."""
    import asyncio
    import socket
    import threading

    from mynacard.jpki.ocsp_server import OcspServer

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    loop = asyncio.new_event_loop()
    server = OcspServer(ctx, threads=2, idle_seconds=idle_seconds)
    ready = threading.Event()
    stop: list[asyncio.Event] = []

    async def main() -> None:
        stop.append(asyncio.Event())
        started = asyncio.Event()
        task = asyncio.create_task(server.run("127.0.0.1", port, started, stop[0]))
        await started.wait()
        ready.set()
        await task

    thread = threading.Thread(target=loop.run_until_complete, args=(main(),), daemon=True)
    thread.start()
    assert ready.wait(20), "the OCSP server did not start"
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        loop.call_soon_threadsafe(stop[0].set)
        thread.join(timeout=10)
        loop.close()
