"""Settings from environment variables (``MYNACARD_*``).

Secrets never live in the repository. Each key has one purpose and a secret of its own:

- ``MYNACARD_NUMBER_SECRET`` (``number.key``): the individual-number derivation (個人番号の生成);
- ``MYNACARD_DATA_KEY`` (``data.key``): data at rest — AES-GCM sealing and the keyed look-up hashes;
- ``MYNACARD_SESSION_KEY`` (``session.key``): staff sessions, the signed browser-session cookie, CSRF tokens;
- ``MYNACARD_ISSUER_KEY`` (``issuer.key``): the chip issuer's master key, from which each card's issuer key is
  diversified.

Values in the environment are base64; the data, session and issuer keys must decode to 32 bytes. A key that
is not in the environment is read from ``$MYNACARD_HOME/keys/`` (folder 0700, files 0600), where it is
generated once so that a developer's or the demo's data stays readable across runs. Generating one logs a
WARNING, and ``mynacard status`` lists every key that comes from a file: production supplies them all from its
secret store.

A home made before the keys were separated has only ``data.key`` (and ``number.key``). Its new session key is
random, which ends the staff sessions and browser sessions open at the upgrade (staff log in again). If it
already holds chips (``chips/*.card``), its ``issuer.key`` is written as the issuer key those chips were made
with — derived from the data key, as it used to be — so that they keep answering the issuer; a home without
chips gets a random issuer key.
"""

from __future__ import annotations

import base64
import binascii
import logging
import os
import secrets
from dataclasses import dataclass, field
from pathlib import Path

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from mynacard.private_files import private_dir, tighten, write_private

__all__ = ["KEY_SIZE", "Settings", "default_home", "load_settings"]

log = logging.getLogger("mynacard.config")

KEY_SIZE = 32
"""Bytes of the data, session and issuer keys."""

_NEW_KEY = "python -c 'import base64, os; print(base64.b64encode(os.urandom(32)).decode())'"


def default_home() -> Path:
    """Every command's data folder: ``$MYNACARD_HOME``, or ``~/.mynacard``."""
    return Path(os.environ.get("MYNACARD_HOME", Path.home() / ".mynacard")).expanduser()


def _decode(text: str, where: str, size: int | None, *, strict: bool) -> bytes:
    try:
        raw = base64.b64decode(text.strip(), validate=strict)
    except (binascii.Error, ValueError):
        raise ValueError(f"{where} is not base64 (make a key with: {_NEW_KEY})") from None
    if size is not None and len(raw) != size:
        raise ValueError(f"{where} must decode to {size} bytes, not {len(raw)} (make a key with: {_NEW_KEY})")
    return raw


def _legacy_issuer_key(data_key: bytes) -> bytes:
    """The issuer master key as versions before ``MYNACARD_ISSUER_KEY`` derived it from the data key."""
    return HKDF(algorithm=hashes.SHA256(), length=KEY_SIZE, salt=None,
                info=b"mynacard:chip-issuer-master").derive(data_key)


@dataclass(frozen=True)
class _Key:
    value: bytes
    file: Path | None
    """The file it was read from, or None when it came from the environment."""


def _key(env: str, home: Path, name: str, size: int | None, *, strict: bool = True,
         first: bytes | None = None, why: str = "") -> _Key:
    """The key from ``env``, else from ``home/keys/name``, else generated there (``first`` instead of random
    bytes when given, ``why`` saying where it came from)."""
    value = os.environ.get(env)
    if value:
        return _Key(_decode(value, env, size, strict=strict), None)
    folder = private_dir(home / "keys")
    path = folder / name
    if not path.exists():
        raw = first if first is not None else secrets.token_bytes(size or KEY_SIZE)
        if write_private(path, base64.b64encode(raw) + b"\n", replace=False):
            log.warning("%s is not set: %s was generated into %s%s. Production must supply %s from its "
                        "secret store.", env, name, path, why, env)
    tighten(path, 0o600)
    return _Key(_decode(path.read_text(), str(path), size, strict=strict), path)


def _has_chips(home: Path) -> bool:
    # where chip.service keeps the card files; config sits below the chip part and cannot ask it
    folder = home / "chips"
    return folder.is_dir() and any(folder.glob("*.card"))


@dataclass(frozen=True)
class Settings:
    """Runtime configuration of one mynacard installation."""

    home: Path
    """Folder for the SQLite database, generated keys, batch files and card images."""
    database_url: str
    """SQLAlchemy URL; SQLite file under ``home`` by default, ``postgresql+psycopg://…`` in production."""
    number_secret: bytes = field(repr=False)
    """HMAC key of the individual-number derivation (個人番号の生成)."""
    data_key: bytes = field(repr=False)
    """32-byte key for data at rest: AES-GCM sealing (individual numbers, chip images, photos, CA keys) and
    the keyed look-up hashes (:class:`~mynacard.sealing.Sealer`). Nothing else."""
    session_key: bytes = field(repr=False)
    """32-byte key of the staff sessions' token hashes, the signed browser-session cookie and CSRF tokens."""
    issuer_key: bytes = field(repr=False)
    """32-byte chip issuer master key (:class:`~mynacard.chip.issuerkey.IssuerMasterKey`)."""
    host: str = "127.0.0.1"
    port: int = 8000
    keys_from_files: tuple[tuple[str, Path], ...] = ()
    """(environment variable, file) of each key read from ``home/keys`` rather than from the environment."""

    @property
    def batch_dir(self) -> Path:
        """Where print-data batches and shipping manifests are written."""
        return self.home / "batches"

    @property
    def photo_dir(self) -> Path:
        """Content-addressed store of application photos (sealed, :class:`~mynacard.cards.photo.PhotoStore`)."""
        return self.home / "photos"


def load_settings(home: Path | None = None, database_url: str | None = None) -> Settings:
    """Settings from the environment; explicit arguments win (tests, the demo)."""
    root = home or default_home()
    root.mkdir(parents=True, exist_ok=True)
    url = database_url or os.environ.get("MYNACARD_DATABASE_URL") or f"sqlite:///{root / 'mynacard.db'}"
    number = _key("MYNACARD_NUMBER_SECRET", root, "number.key", None, strict=False)
    data = _key("MYNACARD_DATA_KEY", root, "data.key", KEY_SIZE)
    session = _key("MYNACARD_SESSION_KEY", root, "session.key", KEY_SIZE)
    legacy = (not os.environ.get("MYNACARD_ISSUER_KEY") and not (root / "keys" / "issuer.key").exists()
              and _has_chips(root))
    issuer = _key("MYNACARD_ISSUER_KEY", root, "issuer.key", KEY_SIZE,
                  first=_legacy_issuer_key(data.value) if legacy else None,
                  why=" from the data key, as the chips already made were keyed" if legacy else "")
    files = tuple((env, k.file) for env, k in (("MYNACARD_NUMBER_SECRET", number), ("MYNACARD_DATA_KEY", data),
                                               ("MYNACARD_SESSION_KEY", session), ("MYNACARD_ISSUER_KEY", issuer))
                  if k.file is not None)
    return Settings(
        home=root,
        database_url=url,
        number_secret=number.value,
        data_key=data.value,
        session_key=session.value,
        issuer_key=issuer.value,
        host=os.environ.get("MYNACARD_HOST", "127.0.0.1"),
        port=int(os.environ.get("MYNACARD_PORT", "8000")),
        keys_from_files=files,
    )
