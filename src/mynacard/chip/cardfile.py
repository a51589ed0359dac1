"""The card file: a chip image sealed at rest, so that a card exists across processes — the plastic card.

Format: the magic ``MYNACARD-CHIP\\n``, a version byte, then the image (:mod:`mynacard.chip.image`)
sealed with AES-GCM (:class:`~mynacard.sealing.Sealer`, key derived from ``Settings.data_key`` or an
explicit 32-byte key), the magic and version bound as associated data. A wrong key and a changed byte are
both refused.

Like a plastic card, a card file is in one reader at a time: :class:`CardFile` holds an exclusive lock
(a ``.<name>.lock`` file beside it) while the card is open, and every change of the chip's persistent
memory (a retry counter, a PIN, a written file) is written through at once, atomically (write, fsync,
rename), before the card answers — so no process can roll a retry counter back by copying or reopening.
"""

from __future__ import annotations

import fcntl
import time
from pathlib import Path
from types import TracebackType
from typing import IO

from cryptography.exceptions import InvalidTag

from mynacard.chip.emulator import Chip
from mynacard.chip.image import ChipImage
from mynacard.errors import Conflict, InvalidInput, NotFound
from mynacard.private_files import write_private
from mynacard.sealing import Sealer

__all__ = ["MAGIC", "CardFile", "load_image", "open_image", "save_image", "seal_image"]

MAGIC = b"MYNACARD-CHIP\n"
VERSION = 1
_HEADER = MAGIC + bytes((VERSION,))


def seal_image(image: ChipImage, key: bytes) -> bytes:
    return _HEADER + Sealer(key).seal(image.to_bytes(), _HEADER)


def open_image(data: bytes, key: bytes) -> ChipImage:
    """Unseal a card file's bytes; raises :class:`InvalidInput` for anything but a good card file."""
    if not data.startswith(MAGIC):
        raise InvalidInput("not a mynacard card file")
    if data[len(MAGIC):len(_HEADER)] != bytes((VERSION,)):
        raise InvalidInput("unsupported card file version")
    try:
        raw = Sealer(key).open(data[len(_HEADER):], _HEADER)
    except (InvalidTag, ValueError):
        raise InvalidInput("the card file cannot be opened: wrong key, or the file was changed") from None
    try:
        return ChipImage.from_bytes(raw)
    except ValueError as exc:
        raise InvalidInput(f"the card file is damaged: {exc}") from None


def save_image(path: Path, image: ChipImage, key: bytes) -> None:
    """Write atomically (0600): a temporary file beside ``path``, fsync, rename over it."""
    write_private(path, seal_image(image, key))


def _missing(path: Path) -> str:
    # the card's manufacture number only: the server's folders are nobody's business at a counter
    return f"カードのICチップを読み取れません (no chip for card {path.stem})"


def load_image(path: Path, key: bytes) -> ChipImage:
    """Read a card file without inserting it anywhere (inspection, tests)."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise NotFound(_missing(path)) from None
    return open_image(data, key)


class CardFile:
    """A card file, inserted (locked and loaded) while open: ``with CardFile(path, key) as chip: ...``."""

    def __init__(self, path: Path, key: bytes, *, wait: float = 0.0) -> None:
        if len(key) != 32:
            raise ValueError("a card file key is 32 bytes")
        self.path = Path(path)
        self._key = key
        self._wait = wait
        self._lock: IO[bytes] | None = None
        self.chip: Chip | None = None

    @classmethod
    def create(cls, path: Path, image: ChipImage, key: bytes) -> None:
        """Write a new card file; refuses to overwrite a card that exists."""
        path = Path(path)
        if path.exists():
            raise Conflict(f"{path} already exists")
        path.parent.mkdir(parents=True, exist_ok=True)
        save_image(path, image, key)

    @property
    def lock_path(self) -> Path:
        return self.path.with_name(f".{self.path.name}.lock")

    def open(self) -> Chip:
        """Take the card (exclusive lock) and return its chip; changes are written through to the file."""
        if self.chip is not None:
            return self.chip
        if not self.path.exists():
            raise NotFound(_missing(self.path))
        lock = self.lock_path.open("ab")
        deadline = time.monotonic() + self._wait
        while True:
            try:
                fcntl.flock(lock.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    lock.close()
                    raise Conflict(f"card {self.path.name} is in use (open in another reader)") from None
                time.sleep(0.05)
        try:
            image = load_image(self.path, self._key)
        except BaseException:
            lock.close()
            raise
        self._lock = lock
        self.chip = Chip(image, persist=self._save)
        return self.chip

    def set_meta(self, key: str, value: str) -> None:
        """Change a card-management fact kept with the image (not reachable by APDU), written through."""
        if self.chip is None:
            raise Conflict("the card is not open")
        self.chip.image.meta[key] = value
        self._save(self.chip.image)

    def _save(self, image: ChipImage) -> None:
        save_image(self.path, image, self._key)

    def close(self) -> None:
        """Take the card out: its volatile state is gone, the lock released."""
        if self.chip is not None:
            self.chip.power_off()
            self.chip = None
        if self._lock is not None:
            fcntl.flock(self._lock.fileno(), fcntl.LOCK_UN)
            self._lock.close()
            self._lock = None

    def __enter__(self) -> Chip:
        return self.open()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"CardFile({str(self.path)!r})"
