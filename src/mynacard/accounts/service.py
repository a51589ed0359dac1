"""Accounts: staff log in with a password (scrypt), machines with an API key (stored as a keyed hash).

A clerk's or supervisor's account is bound to one municipality; that binding becomes the
:class:`~mynacard.principal.Principal` scope of every request they make.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from datetime import datetime

from sqlalchemy import insert, select, update

from mynacard.accounts.tables import accounts
from mynacard.context import Context
from mynacard.errors import Conflict, InvalidInput
from mynacard.principal import Principal, Role
from mynacard.registry.model import is_valid_municipality_code
from mynacard.sealing import Sealer

__all__ = ["authenticate_api_key", "authenticate_password", "create_account", "issue_api_key"]

_SCRYPT = {"n": 2**14, "r": 8, "p": 1}


def _hash_password(password: str, salt: bytes | None = None) -> str:
    salt = salt or secrets.token_bytes(16)
    digest = hashlib.scrypt(password.encode(), salt=salt, dklen=32, **_SCRYPT)
    return "scrypt$" + base64.b64encode(salt).decode() + "$" + base64.b64encode(digest).decode()


def _check_password(password: str, stored: str) -> bool:
    try:
        _, salt, _digest = stored.split("$")
        return hmac.compare_digest(_hash_password(password, base64.b64decode(salt)), stored)
    except ValueError:
        return False


def create_account(ctx: Context, username: str, role: Role, password: str | None, now: datetime,
                   municipality_code: str | None = None) -> Principal:
    """Create a staff or machine account (an operator's task; the CLI and the demo call it)."""
    if not username or len(username) > 64 or not username.replace("-", "").replace("_", "").isalnum():
        raise InvalidInput("a username has 1–64 letters, digits, - or _")
    if role in (Role.CLERK, Role.SUPERVISOR) and not (
            municipality_code and is_valid_municipality_code(municipality_code)):
        raise InvalidInput("a municipal account needs a valid municipality code")
    if password is not None and len(password) < 10:
        raise InvalidInput("a password needs at least 10 characters")
    with ctx.db.begin() as conn:
        if conn.execute(select(accounts.c.id).where(accounts.c.username == username)).first():
            raise Conflict(f"account {username!r} exists")
        conn.execute(insert(accounts).values(
            username=username, role=role.value, municipality_code=municipality_code,
            password_hash=_hash_password(password) if password else None, created_at=now))
    return Principal(role, username, municipality_code)


def issue_api_key(ctx: Context, username: str) -> str:
    """A new API key for the account (shown once; only its keyed hash is kept)."""
    key = "myna_" + secrets.token_urlsafe(32)
    with ctx.db.begin() as conn:
        done = conn.execute(update(accounts).where(accounts.c.username == username).values(
            api_key_hash=Sealer(ctx.settings.data_key).lookup_hash(key))).rowcount
    if not done:
        raise InvalidInput(f"no account {username!r}")
    return key


def _principal(row: object) -> Principal:
    return Principal(Role(row.role), row.username, row.municipality_code)  # type: ignore[attr-defined]


def authenticate_password(ctx: Context, username: str, password: str) -> Principal | None:
    with ctx.db.connect() as conn:
        row = conn.execute(select(accounts).where(accounts.c.username == username,
                                                  accounts.c.disabled_at.is_(None))).first()
    if row is None or not row.password_hash or not _check_password(password, row.password_hash):
        return None
    return _principal(row)


def authenticate_api_key(ctx: Context, key: str) -> Principal | None:
    if not key.startswith("myna_"):
        return None
    with ctx.db.connect() as conn:
        row = conn.execute(select(accounts).where(
            accounts.c.api_key_hash == Sealer(ctx.settings.data_key).lookup_hash(key),
            accounts.c.disabled_at.is_(None))).first()
    return None if row is None else _principal(row)
