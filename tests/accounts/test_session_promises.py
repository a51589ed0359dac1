"""The promises docs/SECURITY.md makes about staff sessions and API keys: their lifetimes, what ends them, and
that neither the token nor the key is ever stored, logged or audited as it is."""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select

from mynacard.accounts import service, sessions
from mynacard.accounts.model import ABSOLUTE_SESSION, IDLE_SESSION
from mynacard.accounts.tables import account_audit, accounts, api_keys, staff_sessions
from mynacard.context import Context
from mynacard.principal import Principal, Role

START = datetime(2026, 12, 8, 0, 30, tzinfo=UTC)
OPERATOR = Principal(Role.OPERATOR, "ops")


def _staff(ctx: Context, username: str = "sato") -> int:
    service.create_account(ctx, username, Role.CLERK, "a-long-enough-password-7", START, "131016")
    with ctx.db.connect() as conn:
        return int(conn.execute(select(accounts.c.id).where(accounts.c.username == username)).scalar_one())


def _open(ctx: Context, account_id: int, at: datetime = START) -> str:
    with ctx.transaction() as tx:
        return sessions.open_session(ctx, tx.conn, account_id, "10.0.0.1", at)


def test_a_session_ends_after_thirty_idle_minutes_and_twelve_hours_in_all(ctx: Context) -> None:
    account = _staff(ctx)
    idle = _open(ctx, account)
    assert sessions.resolve_session(ctx, idle, START + IDLE_SESSION - timedelta(minutes=1)) is not None
    assert sessions.resolve_session(ctx, idle, START + 2 * IDLE_SESSION + timedelta(minutes=1)) is None
    busy = _open(ctx, account)
    at = START
    while at + timedelta(minutes=20) < START + ABSOLUTE_SESSION:  # in use every twenty minutes all day
        at += timedelta(minutes=20)
        assert sessions.resolve_session(ctx, busy, at) is not None, at
    assert sessions.resolve_session(ctx, busy, START + ABSOLUTE_SESSION) is None  # a shift, however busy


@pytest.mark.parametrize("act", ["reset_password", "set_role", "move_town"])
def test_a_reset_or_a_change_of_role_or_town_ends_every_session(ctx: Context, act: str) -> None:
    account = _staff(ctx)
    tokens = [_open(ctx, account), _open(ctx, account)]
    later = START + timedelta(minutes=5)
    assert all(sessions.resolve_session(ctx, t, later) is not None for t in tokens)
    if act == "reset_password":
        service.reset_password(ctx, OPERATOR, "sato", later)
    elif act == "set_role":
        service.set_role(ctx, OPERATOR, "sato", Role.SUPERVISOR, "131016", later)
    else:
        service.set_role(ctx, OPERATOR, "sato", Role.CLERK, "011002", later)
    assert all(sessions.resolve_session(ctx, t, later + timedelta(minutes=1)) is None for t in tokens)


def test_tokens_and_keys_are_stored_only_as_keyed_hashes_and_never_logged_or_audited(
        ctx: Context, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="mynacard")
    token = _open(ctx, _staff(ctx))
    service.create_account(ctx, "kiosk-0001", Role.KIOSK, None, START)
    _key_id, secret = service.add_api_key(ctx, OPERATOR, "kiosk-0001", START, label="terminal 1")
    assert service.authenticate_api_key(ctx, secret) is not None
    with ctx.db.connect() as conn:
        stored = [str(v) for table in (staff_sessions, api_keys, account_audit)
                  for row in conn.execute(select(table)) for v in row]
    assert stored and not any(token in v or secret in v for v in stored)
    assert token not in caplog.text and secret not in caplog.text


@pytest.mark.parametrize("scheme", ["http", "https"])
def test_the_staff_cookie_is_http_only_same_site_and_secure_over_https(ctx: Context, scheme: str) -> None:
    from fastapi.testclient import TestClient

    from mynacard.web.app import create_app
    from mynacard.webkit.deps import STAFF_COOKIE
    from tests.helpers import csrf

    service.create_account(ctx, "suzuki", Role.CLERK, "a-long-enough-password-7", START, "131016")
    client = TestClient(create_app(ctx), base_url=f"{scheme}://testserver")
    reply = client.post("/login", data={"csrf": csrf(client), "username": "suzuki",
                                        "password": "a-long-enough-password-7", "next": "/window"},
                        follow_redirects=False)
    assert reply.status_code == 303, reply.text
    cookies = [v for k, v in reply.headers.multi_items() if k == "set-cookie"]
    staff = next(c for c in cookies if c.startswith(f"{STAFF_COOKIE}="))
    flags = {part.strip().lower() for part in staff.split(";")[1:]}
    assert "httponly" in flags and "samesite=lax" in flags
    assert ("secure" in flags) is (scheme == "https")
    assert all(("secure" in c.lower()) is (scheme == "https") for c in cookies)  # every cookie of the app
