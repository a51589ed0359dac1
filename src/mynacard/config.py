"""Settings from environment variables (``MYNACARD_*``).

Secrets never live in the repository. Values in the environment are base64. When ``MYNACARD_NUMBER_SECRET``
or ``MYNACARD_DATA_KEY`` are not set, a random value is generated once into ``$MYNACARD_HOME/keys/`` (mode
0600) so that a developer's or the demo's data stays readable across runs; production sets them from its
secret store.
"""

from __future__ import annotations

import base64
import os
import secrets
from dataclasses import dataclass, field
from pathlib import Path

__all__ = ["Settings", "default_home", "load_settings"]


def default_home() -> Path:
    """Every command's data folder: ``$MYNACARD_HOME``, or ``~/.mynacard``."""
    return Path(os.environ.get("MYNACARD_HOME", Path.home() / ".mynacard")).expanduser()


def _secret(env: str, home: Path, name: str, size: int) -> bytes:
    value = os.environ.get(env)
    if value:
        return base64.b64decode(value)
    path = home / "keys" / name
    if path.exists():
        return base64.b64decode(path.read_text().strip())
    path.parent.mkdir(parents=True, exist_ok=True)
    raw = secrets.token_bytes(size)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(base64.b64encode(raw).decode())
    return raw


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
    """32-byte AES-GCM key for data encrypted at rest (individual numbers, chip images)."""
    host: str = "127.0.0.1"
    port: int = 8000

    @property
    def batch_dir(self) -> Path:
        """Where print-data batches and shipping manifests are written."""
        return self.home / "batches"

    @property
    def photo_dir(self) -> Path:
        """Content-addressed store of application photos."""
        return self.home / "photos"


def load_settings(home: Path | None = None, database_url: str | None = None) -> Settings:
    """Settings from the environment; explicit arguments win (tests, the demo)."""
    root = home or default_home()
    root.mkdir(parents=True, exist_ok=True)
    url = database_url or os.environ.get("MYNACARD_DATABASE_URL") or f"sqlite:///{root / 'mynacard.db'}"
    data_key = _secret("MYNACARD_DATA_KEY", root, "data.key", 32)
    if len(data_key) != 32:
        raise ValueError("MYNACARD_DATA_KEY must decode to 32 bytes")
    return Settings(
        home=root,
        database_url=url,
        number_secret=_secret("MYNACARD_NUMBER_SECRET", root, "number.key", 32),
        data_key=data_key,
        host=os.environ.get("MYNACARD_HOST", "127.0.0.1"),
        port=int(os.environ.get("MYNACARD_PORT", "8000")),
    )
