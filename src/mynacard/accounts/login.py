"""Staff login (職員ログイン): a password checked against its scrypt hash, with two brakes on guessing —

* per client address, after :data:`~mynacard.accounts.model.BACKOFF_AFTER` wrong passwords in a row, a wait that
  doubles up to 15 minutes, during which that address's logins are refused without checking anything;
* per account, :data:`~mynacard.accounts.model.LOCK_AFTER` wrong passwords in a row lock it until an operator
  unlocks it (``mynacard accounts unlock``, or the accounts page), even for the right password.

Both are logged (the username when it names an account, the address, the count — never the password) and a lock
is written to the account audit log. A one-time password (bootstrap, a new staff account, reset) opens no session:
the login page asks for a new password first. It works for
:data:`~mynacard.accounts.model.ONE_TIME_PASSWORD_VALID` from when it was set (``password_changed_at``); after that
the right one-time password is refused as ``expired`` (only an operator's reset gives a new one) and counts as a
wrong password for both brakes — it is no successful login, so it never clears a count — and each such refusal is
written to the account audit log. Whether a password has expired is told only to whoever presents it.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Connection, delete, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from mynacard.accounts import audit
from mynacard.accounts.model import (
    FORGET_FAILURES,
    LOCK_AFTER,
    backoff,
    one_time_password_expired,
    one_time_password_expires,
    password_problem,
)
from mynacard.accounts.passwords import check_password, hash_password
from mynacard.accounts.sessions import open_session, revoke_sessions
from mynacard.accounts.tables import accounts, login_throttle
from mynacard.context import Context
from mynacard.errors import InvalidInput
from mynacard.principal import Principal, Role

__all__ = ["LoginOutcome", "attempt_login", "change_password_at_login", "clear_throttle"]

log = logging.getLogger("mynacard.accounts")


@dataclass(frozen=True)
class LoginOutcome:
    """What a login attempt came to: a session token and principal, or why not."""

    principal: Principal | None = None
    token: str | None = None
    refusal: str | None = None
    """``wrong`` (username or password), ``expired`` (the right one-time password, too late), ``locked``,
    ``throttled`` or ``must_change``."""
    retry_after: int = 0
    """Seconds to wait, when throttled."""


def _waiting(conn: Connection, client: str, now: datetime) -> int:
    row = conn.execute(select(login_throttle).where(login_throttle.c.client == client)).first()
    if row is None or now - row.last_failure_at >= FORGET_FAILURES:
        return 0
    left = (row.last_failure_at + backoff(row.failures) - now).total_seconds()
    return max(0, int(left + 0.999))


def _count_client_failure(conn: Connection, client: str, now: datetime) -> int:
    maker = pg_insert if conn.dialect.name == "postgresql" else sqlite_insert
    stale = login_throttle.c.last_failure_at < now - FORGET_FAILURES
    from sqlalchemy import case

    stmt = maker(login_throttle).values(client=client, failures=1, last_failure_at=now)
    stmt = stmt.on_conflict_do_update(index_elements=["client"], set_={
        "failures": case((stale, 1), else_=login_throttle.c.failures + 1), "last_failure_at": now})
    conn.execute(stmt)
    return int(conn.execute(select(login_throttle.c.failures).where(login_throttle.c.client == client)).scalar_one())


def clear_throttle(conn: Connection, client: str) -> None:
    conn.execute(delete(login_throttle).where(login_throttle.c.client == client))


def _refuse(conn: Connection, row: object | None, client: str, now: datetime,
            expired: bool = False) -> LoginOutcome:
    """Count a wrong password — or the right one-time password after it expired — against the address and (if it
    names one) the account; lock at the limit. An expired one is also written to the account audit log."""
    from_client = _count_client_failure(conn, client, now)
    if row is None:
        log.warning("login refused: unknown or password-less account, from %s (%d in a row from there)",
                    client, from_client)
        return LoginOutcome(refusal="wrong")
    account_id, username = row.id, row.username  # type: ignore[attr-defined]
    failures = int(conn.execute(update(accounts).where(accounts.c.id == account_id)
                                .values(failed_logins=accounts.c.failed_logins + 1)
                                .returning(accounts.c.failed_logins)).scalar_one())
    if expired:
        set_at = row.password_changed_at  # type: ignore[attr-defined]
        ended = one_time_password_expires(set_at).isoformat() if set_at else None
        log.warning("login refused: expired one-time password for %s from %s (expired %s; %d in a row)",
                    username, client, ended or "unknown", failures)
        audit.record(conn, "one_time_password_expired", "login", username, client, now,
                     set_at=set_at.isoformat() if set_at else None, expired_at=ended, failures=failures)
    else:
        log.warning("login refused: wrong password for %s from %s (%d in a row)", username, client, failures)
    if failures >= LOCK_AFTER:
        locked = conn.execute(update(accounts).where(accounts.c.id == account_id, accounts.c.locked_at.is_(None))
                              .values(locked_at=now)).rowcount
        if locked:
            log.warning("account %s locked after %d wrong passwords (last from %s)", username, failures, client)
            audit.record(conn, "locked", "login", username, client, now, failures=failures)
            # An expired one-time password's remedy (a reset) clears the lock too: say what helps.
            return LoginOutcome(refusal="expired" if expired else "locked")
    return LoginOutcome(refusal="expired" if expired else "wrong")


def attempt_login(ctx: Context, username: str, password: str, client: str, now: datetime) -> LoginOutcome:
    """Check a staff login and, when it holds, open a session."""
    client = (client or "unknown")[:64]
    with ctx.transaction() as tx:
        conn = tx.conn
        wait = _waiting(conn, client, now)
        if wait:
            log.warning("login throttled from %s for %d s", client, wait)
            return LoginOutcome(refusal="throttled", retry_after=wait)
        row = conn.execute(select(accounts).where(accounts.c.username == username[:64])).first()
        usable = row is not None and row.disabled_at is None and row.password_hash is not None
        if usable and row is not None and row.locked_at is not None:
            _count_client_failure(conn, client, now)
            log.warning("login refused: %s is locked, from %s", row.username, client)
            return LoginOutcome(refusal="locked")
        if not check_password(password[:256], row.password_hash if usable and row is not None else None):
            outcome = _refuse(conn, row if usable else None, client, now)
        elif (row is not None and row.must_change_password
              and one_time_password_expired(row.password_changed_at, now)):
            outcome = _refuse(conn, row, client, now, expired=True)
        else:
            outcome = None
    if outcome is not None:  # the failure counts were committed above
        return outcome
    assert row is not None
    with ctx.transaction() as tx:
        conn = tx.conn
        conn.execute(update(accounts).where(accounts.c.id == row.id).values(failed_logins=0))
        clear_throttle(conn, client)
        if row.must_change_password:
            return LoginOutcome(refusal="must_change")
        token = open_session(ctx, conn, row.id, client, now)
    log.info("login: %s from %s", row.username, client)
    return LoginOutcome(Principal(Role(row.role), row.username, row.municipality_code), token)


def change_password_at_login(ctx: Context, username: str, old: str, new: str, client: str,
                             now: datetime) -> LoginOutcome:
    """Replace a one-time (or any) password by a new one, then log in; the old one is checked like a login."""
    problem = password_problem(new, username)
    if problem:
        raise InvalidInput(problem, [f"new_password: {problem}"])
    if new == old:
        raise InvalidInput("the new password must differ from the old one", ["new_password: unchanged"])
    checked = attempt_login(ctx, username, old, client, now)
    if checked.refusal not in (None, "must_change"):
        return checked
    with ctx.transaction() as tx:
        conn = tx.conn
        row = conn.execute(select(accounts).where(accounts.c.username == username)).one()
        conn.execute(update(accounts).where(accounts.c.id == row.id).values(
            password_hash=hash_password(new), must_change_password=False, password_changed_at=now))
        revoke_sessions(conn, row.id, now)
        audit.record(conn, "password_changed", username, username, client, now)
        token = open_session(ctx, conn, row.id, client, now)
    return LoginOutcome(Principal(Role(row.role), row.username, row.municipality_code), token)
