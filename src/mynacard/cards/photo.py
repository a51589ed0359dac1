"""The face photo of an application (申請用顔写真): checks and the content-addressed, sealed photo store.

Rules (reference/operations-and-incidents.md §1.2): 4.5 cm high × 3.5 cm wide; online uploads 480–6000 px in
each dimension, JPEG (we also take PNG from photo booths and scanners), colour or monochrome. Pillow reads
only the header here, so the check is cheap; a photo that cannot be parsed is refused.
"""

from __future__ import annotations

import hashlib
import io
import re
from dataclasses import dataclass
from pathlib import Path

from cryptography.exceptions import InvalidTag
from PIL import Image, UnidentifiedImageError

from mynacard.errors import InvalidInput
from mynacard.private_files import private_dir, write_private
from mynacard.sealing import Sealer

__all__ = ["ASPECT", "MAX_BYTES", "MAX_SIDE", "MIN_SIDE", "PhotoDamaged", "PhotoInfo", "PhotoStore", "check_photo"]

MIN_SIDE = 480
MAX_SIDE = 6000
MAX_BYTES = 20 * 1024 * 1024
ASPECT = 4.5 / 3.5
"""Height over width of the printed photo."""
ASPECT_TOLERANCE = 0.04
_FORMATS = {"JPEG": "image/jpeg", "PNG": "image/png"}
_MODES = {"RGB", "L", "RGBA", "P", "LA", "CMYK", "YCbCr"}


@dataclass(frozen=True)
class PhotoInfo:
    """What the check learned about an accepted photo."""

    sha256: str
    media_type: str
    width: int
    height: int


def check_photo(data: bytes) -> PhotoInfo:
    """Accept a JPEG or PNG face photo of the right size and shape, or raise :class:`InvalidInput`."""
    if not isinstance(data, bytes | bytearray) or not data:
        raise InvalidInput("photo: no image was sent")
    if len(data) > MAX_BYTES:
        raise InvalidInput(f"photo: larger than {MAX_BYTES // (1024 * 1024)} MB")
    try:
        with Image.open(io.BytesIO(data)) as img:
            fmt, (width, height), mode = img.format, img.size, img.mode
    except (UnidentifiedImageError, OSError, ValueError, Image.DecompressionBombError):
        raise InvalidInput("photo: not a readable JPEG or PNG image") from None
    if fmt not in _FORMATS:
        raise InvalidInput(f"photo: {fmt or 'unknown'} is not accepted; send JPEG or PNG")
    if mode not in _MODES:
        raise InvalidInput(f"photo: colour mode {mode} is not accepted")
    if min(width, height) < MIN_SIDE:
        raise InvalidInput(f"photo: too small ({width}×{height} px); each side needs at least {MIN_SIDE} px")
    if max(width, height) > MAX_SIDE:
        raise InvalidInput(f"photo: too large ({width}×{height} px); at most {MAX_SIDE} px per side")
    ratio = height / width
    if abs(ratio - ASPECT) / ASPECT > ASPECT_TOLERANCE:
        raise InvalidInput(
            f"photo: wrong shape ({width}×{height} px, height/width {ratio:.2f}); "
            f"it must be 4.5 cm high by 3.5 cm wide (height/width {ASPECT:.2f})")
    return PhotoInfo(hashlib.sha256(data).hexdigest(), _FORMATS[fmt], width, height)


class PhotoDamaged(ValueError):
    """A stored photo that does not open under the data key or whose bytes are not its SHA-256."""


_SEALED = b"\x00MYNAPHOTO1\n"
"""Prefix of a sealed photo file. A JPEG begins FF D8 and a PNG 89 50, so neither can be mistaken for it."""
_SHA256 = re.compile(r"[0-9a-f]{64}")


class PhotoStore:
    """Photos on disk under their SHA-256, so the same bytes are stored once.

    Each file is ``_SEALED`` followed by the photo sealed with AES-GCM under the data key
    (:class:`~mynacard.sealing.Sealer`), the associated data ``b"photo:" + sha256`` binding it to its name;
    files are 0600 and written atomically, folders 0700. Reading opens the seal and checks the SHA-256.

    Legacy: versions before the photos were sealed wrote the plain JPEG or PNG bytes (0644). A file without the
    prefix is read as such a legacy plaintext photo (its SHA-256 is still checked), and :meth:`put` of the same
    photo replaces it with the sealed form.
    """

    def __init__(self, root: Path, sealer: Sealer) -> None:
        self.root = root
        self._sealer = sealer

    def path(self, sha256: str) -> Path:
        if not _SHA256.fullmatch(sha256):
            raise ValueError("a photo is named by its SHA-256 in lower-case hex")
        return self.root / sha256[:2] / sha256

    @staticmethod
    def _context(sha256: str) -> bytes:
        return b"photo:" + sha256.encode("ascii")

    def put(self, info: PhotoInfo, data: bytes) -> None:
        target = self.path(info.sha256)
        if hashlib.sha256(data).hexdigest() != info.sha256:
            raise ValueError("the photo's bytes are not the SHA-256 they were checked under")
        try:
            with target.open("rb") as f:
                if f.read(len(_SEALED)) == _SEALED:
                    return  # stored already (content-addressed: the same bytes)
        except FileNotFoundError:
            pass
        private_dir(self.root)
        private_dir(target.parent)
        write_private(target, _SEALED + self._sealer.seal(bytes(data), self._context(info.sha256)))

    def get(self, sha256: str) -> bytes:
        """The photo's bytes; ``OSError`` when there is no such file, :class:`PhotoDamaged` when the file does
        not open or does not hash to ``sha256``."""
        stored = self.path(sha256).read_bytes()
        if stored.startswith(_SEALED):
            try:
                data = self._sealer.open(stored[len(_SEALED):], self._context(sha256))
            except InvalidTag:
                raise PhotoDamaged(f"photo {sha256[:12]}…: the sealed file does not open (changed, or another "
                                   "installation's data key)") from None
        else:
            data = stored  # legacy: a plaintext photo written before photos were sealed
        if hashlib.sha256(data).hexdigest() != sha256:
            raise PhotoDamaged(f"photo {sha256[:12]}…: the stored bytes are not this photo")
        return data
