"""Accounts as a person uses them: made only with ``mynacard accounts …``, then used over HTTP with a password and
with API keys; key rotation; disabling; the brakes on guessing; CSRF; the audit log; bad input refused whole."""

from __future__ import annotations

import logging
import math
import re
import time
from datetime import UTC, datetime

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select, update
from typer.testing import CliRunner

from mynacard.accounts import service
from mynacard.accounts.model import BACKOFF_AFTER, LOCK_AFTER
from mynacard.accounts.tables import account_audit, accounts
from mynacard.cli import app as cli
from mynacard.context import Context
from mynacard.web.app import create_app
from tests.helpers import csrf

runner = CliRunner()


def _cli(ctx: Context, *args: str) -> tuple[int, str]:
    result = runner.invoke(cli, ["accounts", *args, "--home", str(ctx.settings.home)],
                           env={"MYNACARD_DATABASE_URL": ctx.settings.database_url, "COLUMNS": "200"})
    return result.exit_code, result.output


def _secret(output: str) -> str:
    found = re.search(r"shown once, never again\): \s*(\S+)", output)
    assert found, output
    return found.group(1)


def _client(ctx: Context, address: str = "10.0.0.1") -> TestClient:
    return TestClient(create_app(ctx), client=(address, 50000))


def _login(client: TestClient, username: str, password: str) -> object:
    return client.post("/login", data={"csrf": csrf(client), "username": username, "password": password,
                                       "next": "/window"}, follow_redirects=False)


def test_accounts_made_by_the_cli_work_over_http_and_stop_at_once(ctx: Context) -> None:
    code, out = _cli(ctx, "bootstrap", "jlis-ops")
    assert code == 0, out
    first = _secret(out)
    code, out = _cli(ctx, "create", "chiyoda-clerk", "--role", "clerk", "-m", "131016")
    assert code == 0, out
    one_time = _secret(out)
    code, out = _cli(ctx, "create", "kiosk-0001", "--role", "kiosk", "--machine")
    assert code == 0, out
    old_key = _secret(out)

    clerk = _client(ctx)
    must_change = _login(clerk, "chiyoda-clerk", one_time)
    assert must_change.status_code == 200 and "新しいパスワード" in must_change.text  # type: ignore[attr-defined]
    assert clerk.get("/window", follow_redirects=False).status_code == 303  # no session yet
    new_password = "a-new-window-password"
    done = clerk.post("/login/password", follow_redirects=False, data={
        "csrf": csrf(clerk), "username": "chiyoda-clerk", "old_password": one_time, "new_password": new_password,
        "new_password2": new_password, "next": "/window"})
    assert done.status_code == 303 and done.headers["location"] == "/window"
    assert clerk.get("/window").status_code == 200
    assert clerk.get("/admin/accounts").status_code == 403  # not an operator

    operator = _client(ctx, "10.0.0.2")
    assert _login(operator, "jlis-ops", first).status_code == 200  # the one-time password must be replaced
    operator.post("/login/password", data={"csrf": csrf(operator), "username": "jlis-ops", "old_password": first,
                                           "new_password": "operator-on-night-duty",
                                           "new_password2": "operator-on-night-duty"})
    assert "kiosk-0001" in operator.get("/admin/accounts").text

    # Rotation without downtime: a second key works beside the first, then the first is revoked.
    kiosk = _client(ctx, "10.0.0.3")
    headers = {"authorization": f"Bearer {old_key}"}
    assert kiosk.get("/api/admin/accounts", headers=headers).status_code == 403  # a kiosk, not an operator
    code, out = _cli(ctx, "key", "add", "kiosk-0001", "--label", "2027")
    new_key = _secret(out)
    for key in (old_key, new_key):
        assert service.authenticate_api_key(ctx, key) is not None
    code, out = _cli(ctx, "key", "revoke", "kiosk-0001", "1")
    assert code == 0, out
    assert service.authenticate_api_key(ctx, old_key) is None
    assert service.authenticate_api_key(ctx, new_key) is not None

    # Disabling: the live session and every key stop working at once.
    assert _cli(ctx, "disable", "chiyoda-clerk")[0] == 0
    assert clerk.get("/window", follow_redirects=False).status_code == 303
    assert _cli(ctx, "disable", "kiosk-0001")[0] == 0
    assert service.authenticate_api_key(ctx, new_key) is None
    # Logout ends the session on the server: a kept copy of the cookie opens nothing.
    cookie = operator.cookies.get("mynacard_staff")
    operator.post("/logout", data={"csrf": csrf(operator, "/admin/accounts")})
    thief = _client(ctx, "10.0.0.9")
    thief.cookies.set("mynacard_staff", cookie)
    assert thief.get("/admin/accounts", follow_redirects=False).status_code == 303
    code, out = _cli(ctx, "audit")
    assert code == 0 and "audit log whole" in out and "key_revoked" in out and "disabled" in out


def test_a_thousand_wrong_passwords_are_slowed_and_logged_without_the_password(
        ctx: Context, caplog: pytest.LogCaptureFixture) -> None:
    _cli(ctx, "bootstrap", "ops")
    service.create_account(ctx, "tanaka", "supervisor", "the-right-password-42", datetime.now(UTC), "131016")
    client = _client(ctx, "192.0.2.7")
    caplog.set_level(logging.INFO, logger="mynacard")
    started = time.monotonic()
    answers = [_login(client, "tanaka", f"guess-{i:04d}-password").status_code  # type: ignore[attr-defined]
               for i in range(1000)]
    elapsed = time.monotonic() - started
    with ctx.db.connect() as conn:
        checked = conn.execute(select(accounts.c.failed_logins).where(accounts.c.username == "tanaka")).scalar_one()
    # The address waits: after BACKOFF_AFTER wrong passwords each check waits twice as long as the one before
    # (1 s, 2 s, 4 s …), so however fast or loaded the machine, at most BACKOFF_AFTER + 1 + log2(elapsed + 1)
    # of the thousand passwords were even checked; the rest were answered 429 unchecked.
    allowed = BACKOFF_AFTER + 1 + math.ceil(math.log2(elapsed + 1))
    assert checked <= allowed and answers.count(429) >= 1000 - allowed, (checked, allowed, elapsed)
    right = _login(client, "tanaka", "the-right-password-42")
    assert right.status_code == 429 and "秒後まで" in right.text  # type: ignore[attr-defined]
    assert "guess-" not in caplog.text and "the-right-password" not in caplog.text
    assert "192.0.2.7" in caplog.text and "tanaka" in caplog.text
    # Spread over many addresses, the account itself locks at the limit, even for the right password.
    for i in range(LOCK_AFTER):
        _login(_client(ctx, f"198.51.100.{i}"), "tanaka", "still-wrong-password")
    locked = _login(_client(ctx, "203.0.113.5"), "tanaka", "the-right-password-42")
    assert locked.status_code == 423  # type: ignore[attr-defined]
    code, out = _cli(ctx, "unlock", "tanaka", "--address", "192.0.2.7")
    assert code == 0, out
    assert _login(client, "tanaka", "the-right-password-42").status_code == 303  # type: ignore[attr-defined]
    with ctx.db.connect() as conn:
        assert conn.execute(select(func.count()).select_from(account_audit).where(
            account_audit.c.action.in_(["locked", "unlocked"]))).scalar_one() == 2


def test_forms_without_the_token_or_from_another_site_are_refused(ctx: Context) -> None:
    _cli(ctx, "bootstrap", "ops")
    client = _client(ctx)
    assert client.post("/login", data={"username": "ops", "password": "x" * 12}).status_code == 403
    forged = client.post("/login", data={"csrf": csrf(client), "username": "ops", "password": "x" * 12},
                         headers={"origin": "https://evil.example"})
    assert forged.status_code == 403
    with ctx.db.connect() as conn:  # refused before any password was checked
        assert conn.execute(select(accounts.c.failed_logins)).scalar_one() == 0


def test_bad_input_is_refused_with_a_reason_and_changes_nothing(ctx: Context) -> None:
    assert _cli(ctx, "bootstrap", "ops")[0] == 0
    cases = [
        (("create", "ops", "--role", "operator"), "exists"),
        (("create", "new-clerk", "--role", "clerk", "-m", "131017"), "municipality code"),
        (("create", "new-clerk", "--role", "clerk"), "municipality code"),
        (("create", "new-one", "--role", "wizard"), "unknown role"),
        (("create", "Bad Name", "--role", "operator"), "username"),
        (("create", "national", "--role", "operator", "-m", "131016"), "no municipality"),
        (("disable", "ops"), "last operator"),
        (("set-role", "ops", "--role", "clerk", "-m", "131016"), "last operator"),
        (("disable", "nobody"), "no account"),
        (("key", "revoke", "ops", "99"), "no active key"),
    ]
    with ctx.db.connect() as conn:
        before = conn.execute(select(func.count()).select_from(account_audit)).scalar_one()
    for args, reason in cases:
        code, out = _cli(ctx, *args)
        assert code == 2 and reason in " ".join(out.split()), (args, out)
    with ctx.db.connect() as conn:
        assert conn.execute(select(func.count()).select_from(accounts)).scalar_one() == 1
        assert conn.execute(select(func.count()).select_from(account_audit)).scalar_one() == before
    from mynacard.errors import InvalidInput
    from mynacard.principal import Principal, Role

    for weak in ("short", "password1234", "ops-is-my-name-1", "aaaaaaaaaaaaaaaa"):
        with pytest.raises(InvalidInput):
            service.create_account(ctx, "ops-two", Role.OPERATOR, weak.replace("ops", "ops-two"),
                                   datetime.now(UTC),
                                   actor=Principal.system("t"))


def test_a_changed_audit_entry_is_found(ctx: Context) -> None:
    _cli(ctx, "bootstrap", "ops")
    _cli(ctx, "create", "k", "--role", "kiosk", "--machine")
    with ctx.db.begin() as conn:
        conn.execute(update(account_audit).where(account_audit.c.seq == 1).values(actor="someone-else"))
    code, out = _cli(ctx, "audit")
    assert code == 1 and "content changed" in out
