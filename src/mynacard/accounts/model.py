"""The rules of accounts, free of I/O: who may be created, what password is accepted, when a login is slowed or
an account locked, how long a one-time password and a staff session live. The services and the SQL guards are
built on these."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import cache
from importlib.resources import files

from mynacard.principal import Role
from mynacard.registry.model import is_valid_municipality_code

__all__ = ["ABSOLUTE_SESSION", "BACKOFF_AFTER", "IDLE_SESSION", "LOCK_AFTER", "MACHINE_ROLES", "MAX_BACKOFF",
           "MUNICIPAL_ROLES", "ONE_TIME_PASSWORD_VALID", "AccountView", "KeyView", "backoff",
           "one_time_password_expired", "one_time_password_expires", "password_problem", "role_problem",
           "username_problem"]

MUNICIPAL_ROLES = frozenset({Role.CLERK, Role.SUPERVISOR})
"""Roles bound to one municipality (their scope)."""
MACHINE_ROLES = frozenset({Role.KIOSK, Role.AGENCY, Role.MANUFACTURER, Role.VERIFIER, Role.CONTRACTOR})
"""Roles that are usually programs with API keys (partners and shops of MyKey are agency accounts)."""

MIN_PASSWORD = 12
MAX_PASSWORD = 256
LOCK_AFTER = 10
"""Wrong passwords in a row after which the account is locked until an operator unlocks it."""
BACKOFF_AFTER = 5
"""Wrong passwords from one client address after which it must wait before trying again."""
MAX_BACKOFF = timedelta(minutes=15)
FORGET_FAILURES = timedelta(hours=1)
"""A client address's failures are forgotten this long after its last one."""
IDLE_SESSION = timedelta(minutes=30)
ABSOLUTE_SESSION = timedelta(hours=12)
"""A staff session ends after this much idle time, and in any case this long after login (a shift)."""
ONE_TIME_PASSWORD_VALID = timedelta(hours=72)
"""A one-time password (bootstrap, a new staff account, reset) works this long after it was set — three days, so
that one handed over on a Friday still works on Monday; after that only an operator's reset gives a new one."""

_USERNAME = re.compile(r"[a-z0-9][a-z0-9._-]{0,63}")


@cache
def _common() -> frozenset[str]:
    text = (files("mynacard.accounts") / "common_passwords.txt").read_text(encoding="utf-8")
    return frozenset(line.strip() for line in text.splitlines() if line.strip() and not line.startswith("#"))


def username_problem(username: str) -> str | None:
    """Why ``username`` cannot name an account, or None."""
    if not _USERNAME.fullmatch(username or ""):
        return "a username has 1–64 lower-case letters, digits, '.', '-' or '_', starting with a letter or digit"
    return None


def role_problem(role: Role, municipality_code: str | None) -> str | None:
    """Why an account of ``role`` cannot have this municipality, or None."""
    if role in MUNICIPAL_ROLES:
        if not municipality_code or not is_valid_municipality_code(municipality_code):
            return f"a {role.value} account needs a valid municipality code (6 digits with its check digit)"
    elif municipality_code is not None:
        return f"a {role.value} account is national and has no municipality"
    return None


def password_problem(password: str, username: str) -> str | None:
    """Why ``password`` is refused for ``username`` (length, the username in it, a common password), or None."""
    if len(password) < MIN_PASSWORD:
        return f"a password needs at least {MIN_PASSWORD} characters"
    if len(password) > MAX_PASSWORD:
        return f"a password has at most {MAX_PASSWORD} characters"
    lowered = password.lower()
    if username and username.lower() in lowered:
        return "a password must not contain the username"
    if lowered in _common() or lowered.rstrip("0123456789!") in _common() or len(set(password)) < 4:
        return "this password is too common or too simple"
    return None


def backoff(failures: int) -> timedelta:
    """How long a client address waits after its ``failures``-th wrong password in a row: nothing for the first
    few, then doubling from one second up to :data:`MAX_BACKOFF`."""
    if failures < BACKOFF_AFTER:
        return timedelta(0)
    return min(timedelta(seconds=2 ** min(failures - BACKOFF_AFTER, 20)), MAX_BACKOFF)


def one_time_password_expires(set_at: datetime) -> datetime:
    """The moment a one-time password set at ``set_at`` stops working (it works strictly before it)."""
    return set_at + ONE_TIME_PASSWORD_VALID


def one_time_password_expired(set_at: datetime | None, now: datetime) -> bool:
    """Whether a one-time password set at ``set_at`` no longer works at ``now``: from :func:`one_time_password_expires`
    on. One whose setting time is unknown counts as expired (fail closed)."""
    return set_at is None or now >= one_time_password_expires(set_at)


def session_alive(created_at: datetime, last_seen_at: datetime, expires_at: datetime, now: datetime) -> bool:
    """Whether a staff session still holds: not idle too long and before its absolute end."""
    return now < expires_at and now - last_seen_at < IDLE_SESSION and created_at <= now + timedelta(minutes=5)


@dataclass(frozen=True)
class KeyView:
    """An API key as an operator sees it (never the key itself)."""

    id: int
    label: str
    prefix: str
    created_at: datetime
    last_used_at: datetime | None
    expires_at: datetime | None
    revoked_at: datetime | None

    def active(self, now: datetime) -> bool:
        return self.revoked_at is None and (self.expires_at is None or now < self.expires_at)


@dataclass(frozen=True)
class AccountView:
    """An account as an operator sees it."""

    id: int
    username: str
    role: Role
    municipality_code: str | None
    created_at: datetime
    disabled_at: datetime | None
    locked_at: datetime | None
    failed_logins: int
    has_password: bool
    must_change_password: bool
    keys: tuple[KeyView, ...] = ()
    sessions: int = 0
    password_changed_at: datetime | None = None

    @property
    def status(self) -> str:
        return "disabled" if self.disabled_at else "locked" if self.locked_at else "active"

    @property
    def one_time_password_expires_at(self) -> datetime | None:
        """When its one-time password stops working (None without one, or if its setting time is unknown)."""
        if not (self.has_password and self.must_change_password and self.password_changed_at):
            return None
        return one_time_password_expires(self.password_changed_at)

    def one_time_password_expired(self, now: datetime) -> bool:
        """Whether it has a one-time password that no longer works at ``now``."""
        return self.must_change_password and one_time_password_expired(self.password_changed_at, now)
