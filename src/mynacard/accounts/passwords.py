"""Password hashing (scrypt from the standard library; no crypto of our own)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets

__all__ = ["check_password", "hash_password", "one_time_password"]

_SCRYPT = {"n": 2**14, "r": 8, "p": 1}
_DUMMY = "scrypt$AAAAAAAAAAAAAAAAAAAAAA==$AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="


def hash_password(password: str, salt: bytes | None = None) -> str:
    salt = salt or secrets.token_bytes(16)
    digest = hashlib.scrypt(password.encode(), salt=salt, dklen=32, **_SCRYPT)
    return "scrypt$" + base64.b64encode(salt).decode() + "$" + base64.b64encode(digest).decode()


def check_password(password: str, stored: str | None) -> bool:
    """Whether ``password`` matches ``stored``; with nothing stored it still spends the hash's time, so that a
    wrong username and a wrong password take as long."""
    try:
        _, salt, _digest = (stored or _DUMMY).split("$")
        return hmac.compare_digest(hash_password(password, base64.b64decode(salt)), stored or _DUMMY) \
            and stored is not None
    except ValueError:
        return False


def one_time_password() -> str:
    """A random password to hand over once (bootstrap, reset); the next login must replace it."""
    return "-".join(secrets.token_urlsafe(6) for _ in range(3))
