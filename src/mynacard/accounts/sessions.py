"""Staff sessions (職員のログインセッション): kept on the server, so that logout, a password reset or disabling
the account ends them at once in every process. The cookie carries a random token; the database keeps only
its keyed hash (under the session key, ``MYNACARD_SESSION_KEY``: changing that key ends every session), and each
request checks the session against the account as it is now (role, town, disabled)."""

from __future__ import annotations

import secrets
from datetime import UTC, datetime, timedelta

from sqlalchemy import Connection, delete, insert, or_, select, update

from mynacard.accounts.model import ABSOLUTE_SESSION, IDLE_SESSION, session_alive
from mynacard.accounts.tables import accounts, staff_sessions
from mynacard.context import Context
from mynacard.principal import Principal, Role
from mynacard.sealing import Sealer

__all__ = ["end_session", "open_session", "resolve_session", "revoke_sessions", "sweep_sessions", "utcnow"]

_TOUCH_EVERY = timedelta(minutes=1)


def utcnow() -> datetime:
    return datetime.now(UTC)


def _hash(ctx: Context, token: str) -> str:
    return Sealer(ctx.settings.session_key).lookup_hash("staff-session:" + token)


def open_session(ctx: Context, conn: Connection, account_id: int, client: str, now: datetime) -> str:
    """A new session for the account in the caller's transaction; returns the cookie's token."""
    token = secrets.token_urlsafe(32)
    conn.execute(insert(staff_sessions).values(
        token_hash=_hash(ctx, token), account_id=account_id, created_at=now, last_seen_at=now,
        expires_at=now + ABSOLUTE_SESSION, client=client[:64]))
    return token


def resolve_session(ctx: Context, token: str, now: datetime) -> Principal | None:
    """The principal of a live session: not revoked, not idle too long, not past its end, account enabled."""
    if not token or len(token) > 128:
        return None
    digest = _hash(ctx, token)
    with ctx.db.connect() as conn:
        row = conn.execute(
            select(staff_sessions.c.created_at, staff_sessions.c.last_seen_at, staff_sessions.c.expires_at,
                   accounts.c.role, accounts.c.username, accounts.c.municipality_code)
            .join(accounts, accounts.c.id == staff_sessions.c.account_id)
            .where(staff_sessions.c.token_hash == digest, staff_sessions.c.revoked_at.is_(None),
                   accounts.c.disabled_at.is_(None), accounts.c.locked_at.is_(None),
                   accounts.c.must_change_password.is_(False))).first()
    if row is None or not session_alive(row.created_at, row.last_seen_at, row.expires_at, now):
        return None
    if now - row.last_seen_at >= _TOUCH_EVERY:
        with ctx.transaction() as tx:
            conn = tx.conn
            conn.execute(update(staff_sessions).where(staff_sessions.c.token_hash == digest)
                         .values(last_seen_at=now))
    return Principal(Role(row.role), row.username, row.municipality_code)


def end_session(ctx: Context, token: str, now: datetime) -> None:
    """Logout: the session stops working at once."""
    with ctx.transaction() as tx:
        conn = tx.conn
        conn.execute(update(staff_sessions).where(staff_sessions.c.token_hash == _hash(ctx, token),
                                                  staff_sessions.c.revoked_at.is_(None)).values(revoked_at=now))


def revoke_sessions(conn: Connection, account_id: int, now: datetime) -> int:
    """Logout everywhere (password reset, disable, role change), in the caller's transaction."""
    return conn.execute(update(staff_sessions).where(staff_sessions.c.account_id == account_id,
                                                     staff_sessions.c.revoked_at.is_(None))
                        .values(revoked_at=now)).rowcount


def live_sessions(conn: Connection, account_id: int, now: datetime) -> int:
    rows = conn.execute(select(staff_sessions.c.created_at, staff_sessions.c.last_seen_at,
                               staff_sessions.c.expires_at)
                        .where(staff_sessions.c.account_id == account_id, staff_sessions.c.revoked_at.is_(None)))
    return sum(session_alive(r.created_at, r.last_seen_at, r.expires_at, now) for r in rows)


def sweep_sessions(ctx: Context, now: datetime) -> int:
    """Remove sessions that ended (revoked, idle or past their end) more than a day ago; returns how many."""
    cutoff = now - timedelta(days=1)
    with ctx.transaction() as tx:
        conn = tx.conn
        return conn.execute(delete(staff_sessions).where(or_(
            staff_sessions.c.revoked_at < cutoff, staff_sessions.c.expires_at < cutoff,
            staff_sessions.c.last_seen_at < cutoff - IDLE_SESSION))).rowcount
