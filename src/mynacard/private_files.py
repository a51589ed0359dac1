"""Files and folders that only the installation's own user may read: keys, photos, the SQLite database.

Files are 0600 and folders 0700 (the process's umask can only narrow that). Homes made by older versions had
0644 files and 0755 folders; :func:`tighten` takes the group's and others' permissions away when it meets one.
"""

from __future__ import annotations

import contextlib
import os
import secrets
from pathlib import Path

__all__ = ["private_dir", "tighten", "write_private"]


def tighten(path: Path, mode: int) -> None:
    """``chmod mode`` when ``path`` exists and the group or others may use it; quietly nothing when it is
    missing or not ours to change."""
    try:
        if path.stat().st_mode & 0o077:
            os.chmod(path, mode)
    except OSError:
        pass


def private_dir(path: Path) -> Path:
    """The folder ``path`` (and its parents), made if missing, 0700."""
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    tighten(path, 0o700)
    return path


def write_private(path: Path, data: bytes, *, replace: bool = True) -> bool:
    """Write ``data`` atomically as a 0600 file: a temporary file beside ``path``, fsync, then a rename over
    ``path`` — or, with ``replace=False``, a hard link that fails when ``path`` exists (the first writer wins
    across processes). Returns False when ``replace=False`` found ``path`` already there."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        if replace:
            os.replace(tmp, path)
            return True
        try:
            os.link(tmp, path)
        except FileExistsError:
            return False
        return True
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
