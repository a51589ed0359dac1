"""A one-time password lives a bounded time: the CLI and the operator's page say until when, a login with it after
that is refused with the reason (and counted, and audited), a reset gives a fresh window, and the demo's fixed
passwords never expire."""

from __future__ import annotations

import json
import logging
import re
from datetime import UTC, datetime, timedelta

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select, update
from typer.testing import CliRunner

from mynacard.accounts import service
from mynacard.accounts.demo import create_demo_accounts
from mynacard.accounts.model import (
    LOCK_AFTER,
    ONE_TIME_PASSWORD_VALID,
    one_time_password_expired,
    one_time_password_expires,
)
from mynacard.accounts.tables import account_audit, accounts
from mynacard.cli import app as cli
from mynacard.clock import JST
from mynacard.context import Context
from mynacard.installation import mark_demo
from mynacard.principal import Role
from mynacard.web.app import create_app
from tests.helpers import csrf

runner = CliRunner()
T0 = datetime(2026, 4, 6, 0, 30, tzinfo=UTC)


def _cli(ctx: Context, *args: str) -> tuple[int, str]:
    result = runner.invoke(cli, ["accounts", *args, "--home", str(ctx.settings.home)],
                           env={"MYNACARD_DATABASE_URL": ctx.settings.database_url, "COLUMNS": "200"})
    return result.exit_code, result.output


def _secret(output: str) -> str:
    found = re.search(r"shown once, never again\): \s*(\S+)", output)
    assert found, output
    return found.group(1)


def _valid_until(output: str) -> datetime:
    found = re.search(r"valid until (\d{4}-\d\d-\d\d \d\d:\d\d) UTC \((\d{4}-\d\d-\d\d \d\d:\d\d) JST\)", output)
    assert found, output
    utc = datetime.strptime(found.group(1), "%Y-%m-%d %H:%M").replace(tzinfo=UTC)
    assert datetime.strptime(found.group(2), "%Y-%m-%d %H:%M").replace(tzinfo=JST) == utc
    return utc


def _client(ctx: Context, address: str = "10.0.0.1") -> TestClient:
    return TestClient(create_app(ctx), client=(address, 50000))


def _login(client: TestClient, username: str, password: str, lang: str = "ja") -> object:
    return client.post(f"/login?lang={lang}", data={"csrf": csrf(client), "username": username,
                                                    "password": password, "next": "/window"},
                       follow_redirects=False)


def _set_back(ctx: Context, username: str, age: timedelta) -> None:
    """Make the account's password as old as ``age`` (time passing, without waiting for it)."""
    with ctx.db.begin() as conn:
        conn.execute(update(accounts).where(accounts.c.username == username).values(
            password_changed_at=datetime.now(UTC) - age))


def _account(ctx: Context, username: str) -> object:
    with ctx.db.connect() as conn:
        return conn.execute(select(accounts).where(accounts.c.username == username)).one()


def _audit(ctx: Context, action: str) -> list[dict[str, object]]:
    with ctx.db.connect() as conn:
        rows = conn.execute(select(account_audit.c.actor, account_audit.c.details)
                            .where(account_audit.c.action == action).order_by(account_audit.c.seq)).all()
    return [{"actor": r.actor, **json.loads(r.details)} for r in rows]


def test_the_rule_at_its_boundary() -> None:
    assert timedelta(hours=72) == ONE_TIME_PASSWORD_VALID
    assert one_time_password_expires(T0) == T0 + timedelta(hours=72)
    assert not one_time_password_expired(T0, T0)
    assert not one_time_password_expired(T0, T0 + ONE_TIME_PASSWORD_VALID - timedelta(microseconds=1))
    assert one_time_password_expired(T0, T0 + ONE_TIME_PASSWORD_VALID)  # from the moment on, not after it
    assert one_time_password_expired(T0, T0 + timedelta(days=365))
    assert one_time_password_expired(None, T0)  # a one-time password of unknown age does not work


def test_the_login_applies_the_boundary(ctx: Context) -> None:
    service.create_account(ctx, "sato", Role.CLERK, "a-one-time-pass-1", T0, "131016", must_change_password=True)
    just_before = T0 + ONE_TIME_PASSWORD_VALID - timedelta(seconds=1)
    assert service.attempt_login(ctx, "sato", "a-one-time-pass-1", "192.0.2.1", just_before).refusal == "must_change"
    at_end = T0 + ONE_TIME_PASSWORD_VALID
    assert service.attempt_login(ctx, "sato", "a-one-time-pass-1", "192.0.2.1", at_end).refusal == "expired"
    # A password set by the operator (not one-time) and a replaced one never expire.
    service.create_account(ctx, "suzuki", Role.CLERK, "a-chosen-password-2", T0, "131016")
    assert service.attempt_login(ctx, "suzuki", "a-chosen-password-2", "192.0.2.2", T0 + timedelta(days=400)).token


def test_an_expired_one_time_password_is_refused_with_the_reason(
        ctx: Context, caplog: pytest.LogCaptureFixture) -> None:
    code, out = _cli(ctx, "create", "chiyoda-clerk", "--role", "clerk", "-m", "131016")
    assert code == 0, out
    one_time = _secret(out)
    until = _valid_until(out)
    assert timedelta(hours=71, minutes=59) <= until - datetime.now(UTC) <= ONE_TIME_PASSWORD_VALID
    assert "reset-password chiyoda-clerk" in out
    _set_back(ctx, "chiyoda-clerk", ONE_TIME_PASSWORD_VALID + timedelta(seconds=1))

    caplog.set_level(logging.INFO, logger="mynacard")
    client = _client(ctx, "192.0.2.9")
    refused = _login(client, "chiyoda-clerk", one_time)
    assert refused.status_code == 401  # type: ignore[attr-defined]
    text = refused.text  # type: ignore[attr-defined]
    assert "有効期限" in text and "72時間" in text and "パスワード再設定" in text and "管理者" in text
    english = _login(client, "chiyoda-clerk", one_time, lang="en")
    assert "has expired" in english.text and "Ask an operator for a new one" in english.text  # type: ignore
    assert client.get("/window", follow_redirects=False).status_code == 303  # no session
    # The change form does not take it either; the password stays as it was.
    changed = client.post("/login/password?lang=en", follow_redirects=False, data={
        "csrf": csrf(client), "username": "chiyoda-clerk", "old_password": one_time,
        "new_password": "a-new-window-password", "new_password2": "a-new-window-password"})
    assert changed.status_code == 401 and "has expired" in changed.text
    assert service.attempt_login(ctx, "chiyoda-clerk", "a-new-window-password", "192.0.2.10",
                                 datetime.now(UTC)).refusal == "wrong"

    # Only whoever presents the expired password learns that it expired: a wrong one gets the usual answer.
    wrong = _login(_client(ctx, "192.0.2.11"), "chiyoda-clerk", "not-the-password-at-all")
    assert wrong.status_code == 401 and "有効期限" not in wrong.text  # type: ignore[attr-defined]

    # Counted as failed logins (3 expired: ja, en, the change form; 2 wrong), audited, never with the password.
    row = _account(ctx, "chiyoda-clerk")
    assert row.failed_logins == 5 and row.locked_at is None  # type: ignore[attr-defined]
    entries = _audit(ctx, "one_time_password_expired")
    assert len(entries) == 3 and {e["actor"] for e in entries} == {"login"}
    assert {e["target"] for e in entries} == {"chiyoda-clerk"} and entries[0]["from"] == "192.0.2.9"
    assert entries[0]["failures"] == 1 and entries[0]["expired_at"]
    with ctx.db.connect() as conn:
        everything = " ".join(conn.execute(select(account_audit.c.details)).scalars())
    assert one_time not in everything and one_time not in caplog.text
    assert "expired one-time password for chiyoda-clerk from 192.0.2.9" in caplog.text


def test_a_still_valid_one_time_password_works_and_forces_the_change(ctx: Context) -> None:
    code, out = _cli(ctx, "bootstrap", "jlis-ops")
    assert code == 0, out
    one_time = _secret(out)
    _valid_until(out)
    _set_back(ctx, "jlis-ops", ONE_TIME_PASSWORD_VALID - timedelta(minutes=5))
    client = _client(ctx)
    must_change = _login(client, "jlis-ops", one_time)
    assert must_change.status_code == 200 and "新しいパスワード" in must_change.text  # type: ignore[attr-defined]
    assert client.get("/admin/accounts", follow_redirects=False).status_code == 303  # no session yet
    done = client.post("/login/password", follow_redirects=False, data={
        "csrf": csrf(client), "username": "jlis-ops", "old_password": one_time,
        "new_password": "operator-on-night-duty", "new_password2": "operator-on-night-duty", "next": "/admin/accounts"})
    assert done.status_code == 303
    assert client.get("/admin/accounts").status_code == 200
    # The chosen password is no one-time password: it still works long after the window.
    _set_back(ctx, "jlis-ops", timedelta(days=90))
    assert service.attempt_login(ctx, "jlis-ops", "operator-on-night-duty", "192.0.2.3", datetime.now(UTC)).token

    # The operator's page shows a new one-time password with until when it works, and so does the JSON API.
    made = client.post("/admin/accounts", data={"csrf": csrf(client, "/admin/accounts"), "username": "new-clerk",
                                                "role": "clerk", "municipality_code": "131016", "kind": "staff"})
    assert made.status_code == 200
    shown = re.search(r'id="valid-until">(\d{4}-\d\d-\d\d \d\d:\d\d) JST', made.text)
    assert shown, made.text
    expected = one_time_password_expires(_account(ctx, "new-clerk").password_changed_at)  # type: ignore
    assert shown.group(1) == f"{expected.astimezone(JST):%Y-%m-%d %H:%M}" and "72" in made.text
    page = client.get("/admin/accounts/new-clerk")
    assert f"{expected.astimezone(JST):%Y-%m-%d %H:%M} JST" in page.text
    reset = client.post("/api/admin/accounts/new-clerk/password", json={})
    assert reset.status_code == 200, reset.text
    assert datetime.fromisoformat(reset.json()["one_time_password_expires_at"]) > expected


def test_a_reset_gives_a_fresh_window_and_clears_what_the_expired_one_counted(ctx: Context) -> None:
    _cli(ctx, "bootstrap", "ops")
    code, out = _cli(ctx, "create", "tanaka", "--role", "supervisor", "-m", "131016")
    stale = _secret(out)
    _set_back(ctx, "tanaka", ONE_TIME_PASSWORD_VALID + timedelta(hours=1))
    answers = [_login(_client(ctx, f"198.51.100.{i}"), "tanaka", stale).status_code  # type: ignore[attr-defined]
               for i in range(LOCK_AFTER)]
    assert answers == [401] * LOCK_AFTER  # each said "expired", the last one also locked the account
    assert _account(ctx, "tanaka").locked_at is not None  # type: ignore[attr-defined]
    assert _login(_client(ctx, "203.0.113.1"), "tanaka", stale).status_code == 423  # type: ignore[attr-defined]
    assert len(_audit(ctx, "one_time_password_expired")) == LOCK_AFTER and len(_audit(ctx, "locked")) == 1

    code, out = _cli(ctx, "show", "tanaka")
    assert "(one-time, expired)" in out, out
    before = datetime.now(UTC)
    code, out = _cli(ctx, "reset-password", "tanaka")
    assert code == 0, out
    fresh = _secret(out)
    until = _valid_until(out)
    assert until >= (before + ONE_TIME_PASSWORD_VALID).replace(second=0, microsecond=0)
    row = _account(ctx, "tanaka")
    assert row.failed_logins == 0 and row.locked_at is None and row.must_change_password  # type: ignore
    code, out = _cli(ctx, "show", "tanaka")
    assert "(one-time, valid until" in out, out

    client = _client(ctx, "203.0.113.2")
    assert _login(client, "tanaka", stale).status_code == 401  # the old one is simply wrong now
    assert _login(client, "tanaka", fresh).status_code == 200  # type: ignore[attr-defined]  # the change form
    # The fresh window is counted from the reset: 72 hours after it, that one expires too.
    set_at = _account(ctx, "tanaka").password_changed_at  # type: ignore[attr-defined]
    assert set_at >= before
    assert service.attempt_login(ctx, "tanaka", fresh, "203.0.113.3",
                                 set_at + ONE_TIME_PASSWORD_VALID).refusal == "expired"


def test_the_demo_passwords_do_not_expire(ctx: Context) -> None:
    with ctx.db.begin() as conn:
        mark_demo(conn, T0)
    logins = create_demo_accounts(ctx, ["131016"], T0)
    month_later = T0 + timedelta(days=30)
    for entry in logins:
        if entry.get("password"):
            outcome = service.attempt_login(ctx, entry["username"], entry["password"], "127.0.0.1", month_later)
            assert outcome.token is not None, (entry["username"], outcome.refusal)
