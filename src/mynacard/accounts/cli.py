"""``mynacard accounts …``: the operator's administration of accounts from the command line — the first operator
(``bootstrap``), staff and machine accounts, passwords, API keys, locks, roles, and the audit log's check.

The command line acts with the database's own credentials, so it acts as the installation's operator; each act is
written to the account audit log as ``cli:<login name>``. Secrets (one-time passwords, API keys) are printed once.
"""

from __future__ import annotations

import getpass
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table

from mynacard.accounts import service
from mynacard.accounts.model import ONE_TIME_PASSWORD_VALID, AccountView, one_time_password_expires
from mynacard.bootstrap import build_context
from mynacard.clock import JST, utc_now
from mynacard.context import Context
from mynacard.errors import DomainError, InvalidInput
from mynacard.principal import Principal, Role

app = typer.Typer(help="Staff and machine accounts (利用者アカウント).", no_args_is_help=True)
key_app = typer.Typer(help="API keys of machine accounts.", no_args_is_help=True)
app.add_typer(key_app, name="key")
console = Console()
HomeOption = typer.Option(None, "--home", help="Data folder (default $MYNACARD_HOME or ~/.mynacard).")
_ROLES = ", ".join(r.value for r in Role if r is not Role.RESIDENT)


def _actor() -> Principal:
    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = "unknown"
    return Principal.system(f"cli:{user}"[:64])


@contextmanager
def _acting(home: Path | None) -> Iterator[Context]:
    """The installation's context; a refusal is printed with its reason and exits 2, having changed nothing."""
    try:
        yield build_context(home=home)
    except DomainError as exc:
        console.print(f"[red]{type(exc).__name__}[/red]: {exc}")
        raise typer.Exit(2) from None


def _secret(label: str, value: str) -> None:
    console.print(f"[bold]{label}[/bold] (shown once, never again): [bold yellow]{value}[/bold yellow]")


def _moment(at: datetime) -> str:
    return f"{at.astimezone(UTC):%Y-%m-%d %H:%M} UTC ({at.astimezone(JST):%Y-%m-%d %H:%M} JST)"


def _one_time(username: str, password: str, set_at: datetime) -> None:
    """Print a one-time password once, and until when it works."""
    _secret("one-time password", password)
    hours = int(ONE_TIME_PASSWORD_VALID.total_seconds() // 3600)
    console.print(f"valid until {_moment(one_time_password_expires(set_at))} ({hours} hours); after that an "
                  f"operator gives a new one: mynacard accounts reset-password {username}", highlight=False)


def _status(a: AccountView) -> str:
    return {"active": "[green]active[/green]", "locked": "[red]locked[/red]",
            "disabled": "[dim]disabled[/dim]"}[a.status]


@app.command()
def bootstrap(username: str = typer.Argument("operator", help="The first operator's username."),
              home: Path | None = HomeOption) -> None:
    """The first operator account of a new installation, with a one-time password (to change at first login)."""
    at = utc_now()
    with _acting(home) as ctx:
        password = service.bootstrap(ctx, username, at)
    console.print(f"operator [bold]{username}[/bold] created; log in at /login and set a new password")
    _one_time(username, password, at)


@app.command()
def create(username: str = typer.Argument(...),
           role: str = typer.Option(..., "--role", "-r", help=f"One of: {_ROLES}."),
           municipality: str | None = typer.Option(None, "--municipality", "-m",
                                                   help="Municipality code (clerk and supervisor only)."),
           machine: bool = typer.Option(False, "--machine", help="A machine account: an API key, no password."),
           label: str = typer.Option("key", "--key-label", help="The first key's label (machine accounts)."),
           home: Path | None = HomeOption) -> None:
    """Create a staff account (one-time password) or a machine account (API key)."""
    from mynacard.accounts.passwords import one_time_password

    with _acting(home) as ctx:
        at, who = utc_now(), _actor()
        if machine:
            service.create_account(ctx, username, role, None, at, municipality, actor=who)
            key_id, key = service.add_api_key(ctx, who, username, at, label=label)
            console.print(f"machine account [bold]{username}[/bold] ({role}) created, key #{key_id}")
            _secret("API key", key)
        else:
            password = one_time_password()
            service.create_account(ctx, username, role, password, at, municipality, actor=who,
                                   must_change_password=True)
            console.print(f"account [bold]{username}[/bold] ({role}) created; the first login sets a new password")
            _one_time(username, password, at)


@app.command("list")
def list_(role: str | None = typer.Option(None, "--role", "-r"),
          municipality: str | None = typer.Option(None, "--municipality", "-m"),
          home: Path | None = HomeOption) -> None:
    """Every account, with its status, keys and live sessions."""
    with _acting(home) as ctx:
        try:
            chosen = Role(role) if role else None
        except ValueError:
            raise InvalidInput(f"unknown role {role!r}; roles: {_ROLES}") from None
        rows = service.list_accounts(ctx, _actor(), utc_now(), role=chosen, municipality_code=municipality)
    table = Table(title=f"accounts ({len(rows)})")
    for column in ("username", "role", "municipality", "status", "keys", "sessions", "created"):
        table.add_column(column)
    for a in rows:
        active = sum(k.active(utc_now()) for k in a.keys)
        table.add_row(a.username, a.role.value, a.municipality_code or "", _status(a), str(active), str(a.sessions),
                      f"{a.created_at:%Y-%m-%d}")
    console.print(table)


@app.command()
def show(username: str, home: Path | None = HomeOption) -> None:
    """One account: its state, keys and the audit log's entries about it."""
    with _acting(home) as ctx:
        a = service.get_account(ctx, _actor(), username, utc_now())
        log = service.audit_entries(ctx, _actor(), username, limit=20)
    until = a.one_time_password_expires_at
    one_time = "" if not a.must_change_password else " (one-time, expired)" \
        if until is None or a.one_time_password_expired(utc_now()) else f" (one-time, valid until {_moment(until)})"
    console.print(f"[bold]{a.username}[/bold] {a.role.value} {a.municipality_code or ''} {_status(a)}; "
                  f"password: {'yes' if a.has_password else 'no'}"
                  f"{one_time}; wrong passwords in a row: {a.failed_logins}; "
                  f"live sessions: {a.sessions}")
    keys = Table(title="API keys")
    for column in ("id", "label", "prefix", "created", "last used", "expires", "state"):
        keys.add_column(column)
    for k in a.keys:
        keys.add_row(str(k.id), k.label, k.prefix + "…", f"{k.created_at:%Y-%m-%d %H:%M}",
                     f"{k.last_used_at:%Y-%m-%d %H:%M}" if k.last_used_at else "—",
                     f"{k.expires_at:%Y-%m-%d}" if k.expires_at else "—",
                     "active" if k.active(utc_now()) else "revoked" if k.revoked_at else "expired")
    console.print(keys)
    audit = Table(title="audit log")
    for column in ("when (UTC)", "action", "by", "from"):
        audit.add_column(column)
    for e in log:
        audit.add_row(f"{e['at']:%Y-%m-%d %H:%M:%S}", e["action"], e["actor"], e["from"])
    console.print(audit)


def _act(home: Path | None, message: str, act: Callable[[Context, Principal, datetime], object]) -> None:
    with _acting(home) as ctx:
        act(ctx, _actor(), utc_now())
    console.print(message)


@app.command()
def disable(username: str, home: Path | None = HomeOption) -> None:
    """Disable an account: its sessions and keys stop working at once."""
    _act(home, f"{username} disabled", lambda ctx, who, at: service.set_disabled(ctx, who, username, True, at))


@app.command()
def enable(username: str, home: Path | None = HomeOption) -> None:
    """Enable a disabled account again (its old sessions stay ended)."""
    _act(home, f"{username} enabled", lambda ctx, who, at: service.set_disabled(ctx, who, username, False, at))


@app.command()
def unlock(username: str, address: str | None = typer.Option(None, "--address",
                                                             help="Also clear this client address's wait."),
           home: Path | None = HomeOption) -> None:
    """Clear an account's lock after wrong passwords (and a client address's wait)."""
    _act(home, f"{username} unlocked", lambda ctx, who, at: service.unlock(ctx, who, username, at, address=address))


@app.command("reset-password")
def reset_password(username: str, home: Path | None = HomeOption) -> None:
    """A one-time password for a staff account; every session of it ends."""
    at = utc_now()
    with _acting(home) as ctx:
        password = service.reset_password(ctx, _actor(), username, at)
    console.print(f"{username}: password reset, logged out everywhere")
    _one_time(username, password, at)


@app.command("set-role")
def set_role(username: str, role: str = typer.Option(..., "--role", "-r", help=f"One of: {_ROLES}."),
             municipality: str | None = typer.Option(None, "--municipality", "-m"),
             home: Path | None = HomeOption) -> None:
    """Change an account's role or municipality (its sessions end)."""
    _act(home, f"{username}: {role} {municipality or ''}",
         lambda ctx, who, at: service.set_role(ctx, who, username, role, municipality, at))


@key_app.command("add")
def key_add(username: str, label: str = typer.Option("key", "--label"),
            expires_days: int | None = typer.Option(None, "--expires-days", min=1, max=3650,
                                                    help="Days the key is valid (default: no expiry)."),
            home: Path | None = HomeOption) -> None:
    """One more API key for the account (its other keys keep working: rotation without downtime)."""
    with _acting(home) as ctx:
        at = utc_now()
        expires = at + timedelta(days=expires_days) if expires_days else None
        key_id, key = service.add_api_key(ctx, _actor(), username, at, label=label, expires_at=expires)
    console.print(f"{username}: key #{key_id} ({label})")
    _secret("API key", key)


@key_app.command("revoke")
def key_revoke(username: str, key_id: int = typer.Argument(..., min=1, max=2**63 - 1),
               home: Path | None = HomeOption) -> None:
    """Revoke one API key: it stops working at once."""
    _act(home, f"{username}: key #{key_id} revoked",
         lambda ctx, who, at: service.revoke_api_key(ctx, who, username, key_id, at))


@app.command()
def audit(home: Path | None = HomeOption, last: int = typer.Option(20, "--last", min=0, max=1000)) -> None:
    """Check the account audit log's hash chain and show its newest entries; exits 1 if it is broken."""
    with _acting(home) as ctx:
        report = service.verify_audit(ctx)
        log = service.audit_entries(ctx, _actor(), limit=last) if last else []
    table = Table(title="account audit log")
    for column in ("#", "when (UTC)", "action", "account", "by", "from"):
        table.add_column(column)
    for e in log:
        table.add_row(str(e["seq"]), f"{e['at']:%Y-%m-%d %H:%M:%S}", e["action"], e["target"], e["actor"], e["from"])
    console.print(table)
    if not report.ok:
        for problem in report.problems[:20]:
            console.print(f"[red]✗[/red] {problem}")
        raise typer.Exit(1)
    console.print(f"[green]audit log whole[/green]: {report.entries} entries")


@app.command("sweep-sessions")
def sweep_sessions(home: Path | None = HomeOption) -> None:
    """Remove staff sessions that ended more than a day ago."""
    from mynacard.accounts.sessions import sweep_sessions as sweep

    with _acting(home) as ctx:
        console.print(f"removed {sweep(ctx, utc_now())} ended sessions")
