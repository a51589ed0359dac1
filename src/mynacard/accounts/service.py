"""Accounts (利用者アカウント): staff log in with a password, machines with API keys.

An operator (J-LIS) administers them — create, disable and enable, reset a password, issue and revoke keys,
change the role or the municipality, unlock — through ``mynacard accounts …``, the page ``/admin/accounts`` or
its JSON API; each act is one transaction with its entry in the hash-chained account audit log. A clerk's or
supervisor's account is bound to one municipality; that binding becomes the
:class:`~mynacard.principal.Principal` scope of every request they make.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Connection, func, insert, select, update

from mynacard.accounts import audit
from mynacard.accounts.keys import authenticate_api_key, insert_key, key_views, revoke_all_keys
from mynacard.accounts.login import LoginOutcome, attempt_login, change_password_at_login, clear_throttle
from mynacard.accounts.model import AccountView, password_problem, role_problem, username_problem
from mynacard.accounts.passwords import hash_password, one_time_password
from mynacard.accounts.sessions import end_session, live_sessions, resolve_session, revoke_sessions
from mynacard.accounts.tables import accounts, api_keys
from mynacard.context import Context, Transaction
from mynacard.errors import Conflict, InvalidInput, NotFound
from mynacard.principal import Principal, Role

__all__ = [
    "CLI",
    "LoginOutcome",
    "add_api_key",
    "attempt_login",
    "audit_entries",
    "authenticate_api_key",
    "bootstrap",
    "change_password_at_login",
    "create_account",
    "end_session",
    "get_account",
    "issue_api_key",
    "list_accounts",
    "reset_password",
    "resolve_session",
    "revoke_api_key",
    "set_disabled",
    "set_role",
    "unlock",
    "verify_audit",
]

CLI = "cli"
"""The ``client`` of acts done from the command line (the web passes the caller's address)."""
_ADMINS = (Role.OPERATOR, Role.SYSTEM)
_SYSTEM = Principal.system("accounts")


def _row(conn: Connection, username: str) -> Any:
    row = conn.execute(select(accounts).where(accounts.c.username == username)).first()
    if row is None:
        raise NotFound(f"no account {username!r}")
    return row


def _view(conn: Connection, row: Any, now: datetime) -> AccountView:
    r = row
    return AccountView(
        r.id, r.username, Role(r.role), r.municipality_code, r.created_at, r.disabled_at,
        r.locked_at, r.failed_logins, r.password_hash is not None,
        r.must_change_password, key_views(conn, r.id), live_sessions(conn, r.id, now), r.password_changed_at)


def _active_operators(conn: Connection, other_than: int) -> int:
    return int(conn.execute(select(func.count()).select_from(accounts).where(
        accounts.c.role == Role.OPERATOR.value, accounts.c.disabled_at.is_(None),
        accounts.c.password_hash.is_not(None), accounts.c.id != other_than)).scalar_one())


def create_account(ctx: Context, username: str, role: Role | str, password: str | None, now: datetime,
                   municipality_code: str | None = None, *, actor: Principal = _SYSTEM,
                   client: str = CLI, must_change_password: bool = False,
                   tx: Transaction | None = None) -> Principal:
    """Create a staff account (with a password) or a machine account (without: it gets API keys). With
    ``tx`` it is written in the caller's transaction."""
    actor.require(*_ADMINS)
    problems = []
    try:
        role = Role(role)
    except ValueError:
        raise InvalidInput(f"unknown role {role!r}; roles: {', '.join(r.value for r in Role)}",
                           [f"role: unknown {role!r}"]) from None
    municipality_code = municipality_code or None
    for field, problem in (("username", username_problem(username)),
                           ("municipality_code", role_problem(role, municipality_code)),
                           ("password", password_problem(password, username) if password is not None else None)):
        if problem:
            problems.append(f"{field}: {problem}")
    if problems:
        raise InvalidInput("; ".join(p.split(": ", 1)[1] for p in problems), problems)
    with ctx.join(tx) as work:
        conn = work.conn
        if conn.execute(select(accounts.c.id).where(accounts.c.username == username)).first():
            raise Conflict(f"account {username!r} exists")
        conn.execute(insert(accounts).values(
            username=username, role=role.value, municipality_code=municipality_code,
            password_hash=hash_password(password) if password else None, created_at=now,
            must_change_password=must_change_password, password_changed_at=now if password else None))
        audit.record(conn, "created", actor.subject, username, client, now, role=role.value,
                     municipality_code=municipality_code, password=password is not None)
    return Principal(role, username, municipality_code)


def bootstrap(ctx: Context, username: str, now: datetime) -> str:
    """The first operator account, with a one-time password (returned, to print once; it works for
    :data:`~mynacard.accounts.model.ONE_TIME_PASSWORD_VALID` from ``now``). Refused once any operator exists: there
    is no built-in default password, and no second way in."""
    with ctx.db.connect() as conn:
        if _active_operators(conn, other_than=-1):
            raise Conflict("an operator account exists already; operators create the others")
    password = one_time_password()
    create_account(ctx, username, Role.OPERATOR, password, now, actor=Principal.system("bootstrap"),
                   must_change_password=True)
    return password


def list_accounts(ctx: Context, actor: Principal, now: datetime, *, role: Role | None = None,
                  municipality_code: str | None = None) -> list[AccountView]:
    actor.require(*_ADMINS)
    query = select(accounts).order_by(accounts.c.username)
    if role is not None:
        query = query.where(accounts.c.role == Role(role).value)
    if municipality_code:
        query = query.where(accounts.c.municipality_code == municipality_code)
    with ctx.db.connect() as conn:
        return [_view(conn, row, now) for row in conn.execute(query.limit(10_000))]


def get_account(ctx: Context, actor: Principal, username: str, now: datetime) -> AccountView:
    actor.require(*_ADMINS)
    with ctx.db.connect() as conn:
        return _view(conn, _row(conn, username), now)


def set_disabled(ctx: Context, actor: Principal, username: str, disabled: bool, now: datetime,
                 client: str = CLI) -> AccountView:
    """Disable an account (its sessions and keys stop working at once) or enable it again. The last operator
    who can log in cannot be disabled."""
    actor.require(*_ADMINS)
    with ctx.transaction() as tx:
        conn = tx.conn
        row = _row(conn, username)
        if disabled and row.role == Role.OPERATOR.value and not _active_operators(conn, row.id):
            raise Conflict("this is the last operator who can log in; create another operator first")
        conn.execute(update(accounts).where(accounts.c.id == row.id).values(
            disabled_at=now if disabled else None))
        if disabled:
            revoke_sessions(conn, row.id, now)
        audit.record(conn, "disabled" if disabled else "enabled", actor.subject, username, client, now)
        return _view(conn, _row(conn, username), now)


def reset_password(ctx: Context, actor: Principal, username: str, now: datetime, client: str = CLI,
                   password: str | None = None) -> str:
    """A new password for a staff account — one-time unless the operator sets it — and logout everywhere.
    Returns the password to hand over. A one-time one works for
    :data:`~mynacard.accounts.model.ONE_TIME_PASSWORD_VALID` from ``now`` (a fresh window each reset)."""
    actor.require(*_ADMINS)
    one_time = password is None
    password = password if password is not None else one_time_password()
    problem = password_problem(password, username)
    if problem:
        raise InvalidInput(problem, [f"password: {problem}"])
    with ctx.transaction() as tx:
        conn = tx.conn
        row = _row(conn, username)
        conn.execute(update(accounts).where(accounts.c.id == row.id).values(
            password_hash=hash_password(password), must_change_password=one_time, password_changed_at=now,
            failed_logins=0, locked_at=None))
        ended = revoke_sessions(conn, row.id, now)
        audit.record(conn, "password_reset", actor.subject, username, client, now, one_time=one_time,
                     sessions_ended=ended)
    return password


def unlock(ctx: Context, actor: Principal, username: str, now: datetime, client: str = CLI,
           address: str | None = None) -> AccountView:
    """Clear an account's lock and wrong-password count (and, if given, a client address's wait)."""
    actor.require(*_ADMINS)
    with ctx.transaction() as tx:
        conn = tx.conn
        row = _row(conn, username)
        conn.execute(update(accounts).where(accounts.c.id == row.id).values(
            failed_logins=0, locked_at=None))
        if address:
            clear_throttle(conn, address)
        audit.record(conn, "unlocked", actor.subject, username, client, now, address=address)
        return _view(conn, _row(conn, username), now)


def set_role(ctx: Context, actor: Principal, username: str, role: Role | str, municipality_code: str | None,
             now: datetime, client: str = CLI) -> AccountView:
    """Change an account's role or municipality; its sessions end (the next login carries the new scope)."""
    actor.require(*_ADMINS)
    try:
        role = Role(role)
    except ValueError:
        raise InvalidInput(f"unknown role {role!r}", [f"role: unknown {role!r}"]) from None
    municipality_code = municipality_code or None
    problem = role_problem(role, municipality_code)
    if problem:
        raise InvalidInput(problem, [f"municipality_code: {problem}"])
    with ctx.transaction() as tx:
        conn = tx.conn
        row = _row(conn, username)
        if (row.role == Role.OPERATOR.value and role is not Role.OPERATOR
                and not _active_operators(conn, row.id)):
            raise Conflict("this is the last operator who can log in; create another operator first")
        conn.execute(update(accounts).where(accounts.c.id == row.id).values(
            role=role.value, municipality_code=municipality_code))
        revoke_sessions(conn, row.id, now)
        audit.record(conn, "role_changed", actor.subject, username, client, now,
                     old_role=row.role, old_municipality_code=row.municipality_code,
                     role=role.value, municipality_code=municipality_code)
        return _view(conn, _row(conn, username), now)


def add_api_key(ctx: Context, actor: Principal, username: str, now: datetime, *, label: str = "key",
                expires_at: datetime | None = None, client: str = CLI) -> tuple[int, str]:
    """One more API key for the account (the others keep working); returns its id and the key, shown once."""
    actor.require(*_ADMINS)
    label = label.strip()
    if not 1 <= len(label) <= 64 or not label.isprintable():
        raise InvalidInput("a key's label has 1–64 printable characters", ["label: 1–64 printable characters"])
    if expires_at is not None and expires_at <= now:
        raise InvalidInput("a key's expiry must be in the future", ["expires_at: in the past"])
    with ctx.transaction() as tx:
        conn = tx.conn
        row = _row(conn, username)
        if row.disabled_at is not None:
            raise Conflict(f"account {username!r} is disabled")
        key_id, key = insert_key(ctx, conn, row.id, label, now, expires_at)
        audit.record(conn, "key_issued", actor.subject, username, client, now, key_id=key_id, label=label,
                     expires_at=expires_at.isoformat() if expires_at else None)
    return key_id, key


def revoke_api_key(ctx: Context, actor: Principal, username: str, key_id: int, now: datetime,
                   client: str = CLI) -> None:
    """Revoke one key of the account: it stops working at once."""
    actor.require(*_ADMINS)
    with ctx.transaction() as tx:
        conn = tx.conn
        row = _row(conn, username)
        done = conn.execute(update(api_keys).where(
            api_keys.c.id == key_id, api_keys.c.account_id == row.id,
            api_keys.c.revoked_at.is_(None)).values(revoked_at=now)).rowcount
        if not done:
            raise NotFound(f"account {username!r} has no active key {key_id}")
        audit.record(conn, "key_revoked", actor.subject, username, client, now, key_id=key_id)


def issue_api_key(ctx: Context, username: str, now: datetime | None = None, *, actor: Principal = _SYSTEM,
                  client: str = CLI, tx: Transaction | None = None) -> str:
    """Replace every key of the account by one new key (the others are revoked at once); returns it. With
    ``tx`` it is written in the caller's transaction."""
    from mynacard.accounts.sessions import utcnow

    now = now or utcnow()
    actor.require(*_ADMINS)
    with ctx.join(tx) as work:
        conn = work.conn
        row = conn.execute(select(accounts).where(accounts.c.username == username)).first()
        if row is None:
            raise InvalidInput(f"no account {username!r}")
        revoked = revoke_all_keys(conn, row.id, now)
        key_id, key = insert_key(ctx, conn, row.id, "key", now, None)
        audit.record(conn, "key_replaced", actor.subject, username, client, now, key_id=key_id, revoked=revoked)
    return key


def verify_audit(ctx: Context) -> audit.AuditReport:
    """Recompute the account audit log's hash chain."""
    return audit.verify(ctx.db)


def audit_entries(ctx: Context, actor: Principal, username: str | None = None,
                  limit: int = 200) -> list[audit.AuditEntry]:
    """The newest entries of the account audit log (optionally about one account)."""
    actor.require(*_ADMINS)
    with ctx.db.connect() as conn:
        return audit.entries(conn, target=username, limit=limit)
